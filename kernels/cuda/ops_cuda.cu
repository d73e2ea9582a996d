/* ops_cuda.cu: the CUDA op table (contract in kernels/ops.h): device
 * memory, one stream, bf16 x tensors; the device is opened once per
 * process by ft_ops_cuda_open. Also the failure path every CUDA file uses
 * and the shared scratch buffer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda.cuh"

cudaStream_t ft_cuda_stream;
int ft_cuda_sm_count;

void ft_cuda_fail(const char *what, const char *file, int line, const char *msg)
{
	fprintf(stderr, "%s: cuda: %s:%d: %s: %s\n", program_invocation_short_name, file, line,
		what, msg);
	exit(1);
}

void ft_cuda_warn(cudaError_t e, const char *what)
{
	if (e != cudaSuccess)
		fprintf(stderr, "%s: cuda: at exit: %s: %s\n", program_invocation_short_name, what,
			cudaGetErrorString(e));
}

static void *scratch;
static size_t scratch_bytes;

void *ft_cuda_scratch(size_t bytes)
{
	if (bytes <= scratch_bytes)
		return scratch;
	CUDA_CHECK(cudaStreamSynchronize(ft_cuda_stream));
	if (scratch)
		CUDA_CHECK(cudaFree(scratch));
	scratch = NULL;
	scratch_bytes = 0;
	size_t want = bytes < (1u << 20) ? (1u << 20) : bytes;
	CUDA_CHECK(cudaMalloc(&scratch, want));
	scratch_bytes = want;
	return scratch;
}

/* ---- memory --------------------------------------------------------------- */

static void *cuda_alloc(size_t bytes)
{
	void *p = NULL;
	if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
		(void)cudaGetLastError();   /* out of memory is reported, not sticky */
		return NULL;
	}
	CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, ft_cuda_stream));
	return p;
}

static void cuda_release(void *p)
{
	if (p) {
		CUDA_CHECK(cudaStreamSynchronize(ft_cuda_stream));
		CUDA_CHECK(cudaFree(p));
	}
}

static void cuda_memzero(void *p, size_t bytes)
{
	CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, ft_cuda_stream));
}

/* From pageable host memory the copy has left the host buffer when this
 * returns, so the caller may reuse it at once. */
static void cuda_upload(void *dst, const void *host, size_t bytes)
{
	CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, ft_cuda_stream));
}

static void cuda_download(void *host, const void *src, size_t bytes)
{
	CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, ft_cuda_stream));
	CUDA_CHECK(cudaStreamSynchronize(ft_cuda_stream));
}

static void cuda_copy(void *dst, const void *src, size_t bytes)
{
	CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ft_cuda_stream));
}

static void cuda_sync(void)
{
	CUDA_CHECK(cudaStreamSynchronize(ft_cuda_stream));
}

static const struct ft_ops ops_cuda = {
	.name = "cuda",
	.xtype = FT_X_BF16,
	.xsize = sizeof(bf16),
	.lm_head_rows = 1024,
	.alloc = cuda_alloc,
	.release = cuda_release,
	.memzero = cuda_memzero,
	.upload = cuda_upload,
	.download = cuda_download,
	.copy = cuda_copy,
	.to_x = ft_cuda_to_x,
	.from_x = ft_cuda_from_x,
	.sync = cuda_sync,
	.matmul_forward = ft_cuda_matmul_forward,
	.matmul_backward = ft_cuda_matmul_backward,
	.embedding_forward = ft_cuda_embedding_forward,
	.embedding_backward = ft_cuda_embedding_backward,
	.rmsnorm_forward = ft_cuda_rmsnorm_forward,
	.rmsnorm_backward = ft_cuda_rmsnorm_backward,
	.rope_forward = ft_cuda_rope_forward,
	.rope_backward = ft_cuda_rope_backward,
	.attention_forward = ft_cuda_attention_forward,
	.attention_backward = ft_cuda_attention_backward,
	.swiglu_forward = ft_cuda_swiglu_forward,
	.swiglu_backward = ft_cuda_swiglu_backward,
	.crossentropy_forward = ft_cuda_crossentropy_forward,
	.crossentropy_backward = ft_cuda_crossentropy_backward,
	.add = ft_cuda_add,
	.accumulate = ft_cuda_accumulate,
	.dropout_forward = ft_cuda_dropout_forward,
	.dropout_backward = ft_cuda_dropout_backward,
	.adamw = ft_cuda_adamw,
	.sumsq = ft_cuda_sumsq,
	.nonfinite = ft_cuda_nonfinite,
	.scale = ft_cuda_scale,
};

static int opened = -1;

/* At a clean exit the buffers kept for the process's life (cuBLASLt's
 * workspace, the scratch) and the stream go back, so nothing is left for a
 * leak check to find. Not after a failure: the context may be broken. */
static void cuda_close(int status, void *arg)
{
	(void)arg;
	if (status != 0)
		return;
	ft_cuda_warn(cudaStreamSynchronize(ft_cuda_stream), "cudaStreamSynchronize");
	ft_cuda_matmul_release();
	if (scratch)
		ft_cuda_warn(cudaFree(scratch), "cudaFree(scratch)");
	scratch = NULL;
	scratch_bytes = 0;
	ft_cuda_warn(cudaStreamDestroy(ft_cuda_stream), "cudaStreamDestroy");
}

extern "C" const struct ft_ops *ft_ops_cuda_open(int device, struct ft_err *err)
{
	if (opened >= 0) {
		if (opened != device) {
			ft_err_set(err, FT_E_INVAL, "cuda: device %d is open, not %d", opened, device);
			return NULL;
		}
		return &ops_cuda;
	}
	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess) {
		ft_err_set(err, FT_E_INVAL, "cuda: no usable device: %s", cudaGetErrorString(e));
		return NULL;
	}
	if (device < 0 || device >= count) {
		ft_err_set(err, FT_E_INVAL, "cuda: device %d asked for, %d present", device, count);
		return NULL;
	}
	struct cudaDeviceProp prop;
	CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
	if (prop.major < 8) {
		ft_err_set(err, FT_E_INVAL,
			   "cuda: device %d (%s) is sm_%d%d; the kernels need sm_80 or newer (bf16)",
			   device, prop.name, prop.major, prop.minor);
		return NULL;
	}
	CUDA_CHECK(cudaSetDevice(device));
	CUDA_CHECK(cudaStreamCreateWithFlags(&ft_cuda_stream, cudaStreamNonBlocking));
	ft_cuda_sm_count = prop.multiProcessorCount;
	ft_cuda_matmul_init();
	if (on_exit(cuda_close, NULL) != 0) {
		ft_err_set(err, FT_E_NOMEM, "cuda: cannot register the release at exit");
		return NULL;
	}
	opened = device;
	return &ops_cuda;
}
