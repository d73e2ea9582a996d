/* cuda.cuh: the CUDA ops, one file per op family, gathered into the table
 * by ops_cuda.cu. Internal to kernels/cuda; each op's contract is in
 * kernels/ops.h. Storage: x tensors are bf16 (__nv_bfloat16), everything
 * else fp32; arithmetic in fp32. Every op is queued on ft_cuda_stream and
 * checked (CUDA_CHECK after each API call, LAUNCH_CHECK after each launch);
 * a failure stops the program with the call, file and line (ft_cuda_fail).
 * Determinism: no atomics; each reduction has a fixed order for given
 * shapes. */
#ifndef FT_KERNELS_CUDA_CUH
#define FT_KERNELS_CUDA_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "ops.h"

typedef __nv_bfloat16 bf16;

extern cudaStream_t ft_cuda_stream;
extern int ft_cuda_sm_count;   /* multiprocessors of the open device */

/* Print "ft: cuda: FILE:LINE: WHAT: MSG" and exit(70). */
[[noreturn]] void ft_cuda_fail(const char *what, const char *file, int line, const char *msg);

#define CUDA_CHECK(call)                                                                  \
	do {                                                                              \
		cudaError_t e_ = (call);                                                  \
		if (e_ != cudaSuccess)                                                    \
			ft_cuda_fail(#call, __FILE__, __LINE__, cudaGetErrorString(e_));  \
	} while (0)
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())
/* For the release at exit, where exiting again is not allowed: print
 * "ft: cuda: at exit: WHAT: MSG" when e is an error, and go on. */
void ft_cuda_warn(cudaError_t e, const char *what);

/* Device scratch of at least bytes, kept and grown between calls (growing
 * waits for the stream); valid until the next call. One op at a time. */
void *ft_cuda_scratch(size_t bytes);

/* A register tile of accumulators set to 0 (loops unrolled: the tile stays
 * in registers). */
template <int R, int C> static __device__ __forceinline__ void ft_zero(float (&x)[R][C])
{
#pragma unroll
	for (int r = 0; r < R; r++)
#pragma unroll
		for (int c = 0; c < C; c++)
			x[r][c] = 0.0f;
}

static inline unsigned ft_cuda_blocks(size_t n, unsigned threads)
{
	size_t b = (n + threads - 1) / threads;
	return (unsigned)(b > 65535u * 16u ? 65535u * 16u : b);   /* grid-stride beyond */
}

/* matmul.cu (cuBLASLt); release reports failures with ft_cuda_warn */
void ft_cuda_matmul_init(void);
void ft_cuda_matmul_release(void);
void ft_cuda_matmul_forward(void *out, const void *inp, const void *weight, const void *bias,
			    int N, int IC, int OC, float scale, int accumulate);
void ft_cuda_matmul_backward(void *dinp, float *dweight, float *dbias, const void *dout,
			     const void *inp, const void *weight, int N, int IC, int OC,
			     float scale);

/* attention.cu */
void ft_cuda_attention_forward(void *out, float *lse, const void *q, const void *k,
			       const void *v, const int32_t *doc_start, int B, int T, int H,
			       int KVH, int D);
void ft_cuda_attention_backward(void *dq, void *dk, void *dv, const void *dout,
				const void *out, const float *lse, const void *q, const void *k,
				const void *v, const int32_t *doc_start, int B, int T, int H,
				int KVH, int D);

/* layers.cu */
void ft_cuda_embedding_forward(void *out, const int32_t *tokens, const void *table, int N,
			       int C);
void ft_cuda_embedding_backward(float *dtable, const void *dout, const int32_t *tokens, int N,
				int C, int V);
void ft_cuda_rmsnorm_forward(void *out, float *rstd, const void *inp, const void *weight,
			     int N, int C, float eps);
void ft_cuda_rmsnorm_backward(void *dinp, float *dweight, const void *dout, const void *inp,
			      const void *weight, const float *rstd, int N, int C);
void ft_cuda_rope_forward(void *x, const int32_t *pos, const float *inv_freq, int N, int H,
			  int D);
void ft_cuda_rope_backward(void *x, const int32_t *pos, const float *inv_freq, int N, int H,
			   int D);
void ft_cuda_swiglu_forward(void *out, const void *gate, const void *up, size_t n);
void ft_cuda_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
			     const void *up, size_t n);
void ft_cuda_crossentropy_forward(float *losses, const void *logits, const int32_t *targets,
				  int N, int V);
void ft_cuda_crossentropy_backward(void *dlogits, const void *logits, const int32_t *targets,
				   int N, int V, float scale);
void ft_cuda_add(void *out, const void *a, const void *b, size_t n);
void ft_cuda_accumulate(void *dst, const void *src, size_t n);
void ft_cuda_dropout_forward(void *out, const void *x, size_t n, double p, uint64_t seed,
			     uint64_t site);
void ft_cuda_dropout_backward(void *dx, const void *dout, size_t n, double p, uint64_t seed,
			      uint64_t site);
void ft_cuda_to_x(void *dst, const float *src, size_t n);
void ft_cuda_from_x(float *dst, const void *src, size_t n);

/* optim.cu */
void ft_cuda_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr,
		   float beta1, float beta2, float eps, float weight_decay, int t, void *xparam);
double ft_cuda_sumsq(const float *x, size_t n);
int ft_cuda_nonfinite(const float *x, size_t n);
void ft_cuda_scale(float *x, size_t n, float s);

#endif
