/* nocuda.c: ft_ops_cuda_open and ft_decode_ops_cuda for a build without
 * nvcc (make CUDA=0, or no CUDA toolkit found): the CUDA backend is not
 * there, and says so. */
#include "decode.h"
#include "ops.h"

const struct ft_ops *ft_ops_cuda_open(int device, struct ft_err *err)
{
	(void)device;
	ft_err_set(err, FT_E_INVAL, "cuda: this build has no CUDA backend (built without nvcc)");
	return NULL;
}

const struct ft_decode_ops *ft_decode_ops_cuda(void)
{
	return NULL;
}
