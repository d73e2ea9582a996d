/* nocuda.c: ft_ops_cuda_open, ft_decode_ops_cuda and the NCCL communicators
 * of comm.h for a build without nvcc (make CUDA=0, or no CUDA toolkit
 * found): the CUDA backend is not there, and says so. */
#include "comm.h"
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

/* comm.h: no CUDA, so no NCCL communicators (dist.c only opens one for a
 * CUDA run, which this build refuses before). */
int ft_cuda_device_count(void)
{
	return 0;
}

int ft_comm_unique_id(unsigned char id[FT_COMM_ID_BYTES], struct ft_err *err)
{
	(void)id;
	return ft_err_set(err, FT_E_INVAL, "nccl: this build has no CUDA backend");
}

struct ft_comm *ft_comm_open(const unsigned char id[FT_COMM_ID_BYTES], int rank, int world,
			     double timeout_s, struct ft_err *err)
{
	(void)id; (void)rank; (void)world; (void)timeout_s;
	ft_err_set(err, FT_E_INVAL, "nccl: this build has no CUDA backend");
	return NULL;
}

int ft_comm_sum(struct ft_comm *c, void *x, size_t n, enum ft_comm_type t, struct ft_err *err)
{
	(void)c; (void)x; (void)n; (void)t;
	return ft_err_set(err, FT_E_INVAL, "nccl: this build has no CUDA backend");
}

int ft_comm_bcast(struct ft_comm *c, void *x, size_t bytes, int root, struct ft_err *err)
{
	(void)c; (void)x; (void)bytes; (void)root;
	return ft_err_set(err, FT_E_INVAL, "nccl: this build has no CUDA backend");
}

int ft_comm_allgather(struct ft_comm *c, float *x, const size_t *counts, const size_t *displs,
		      bool queue, struct ft_err *err)
{
	(void)c; (void)x; (void)counts; (void)displs; (void)queue;
	return ft_err_set(err, FT_E_INVAL, "nccl: this build has no CUDA backend");
}

int ft_comm_wait(struct ft_comm *c, struct ft_err *err)
{
	(void)c;
	return ft_err_set(err, FT_E_INVAL, "nccl: this build has no CUDA backend");
}

int ft_comm_gather(struct ft_comm *c, float *all, const float *mine, const size_t *counts,
		   const size_t *displs, int root, struct ft_err *err)
{
	(void)c; (void)all; (void)mine; (void)counts; (void)displs; (void)root;
	return ft_err_set(err, FT_E_INVAL, "nccl: this build has no CUDA backend");
}

int ft_comm_close(struct ft_comm *c, struct ft_err *err)
{
	(void)c; (void)err;
	return FT_OK;
}

void ft_comm_abort(struct ft_comm *c)
{
	(void)c;
}
