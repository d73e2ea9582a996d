/* optim.cu: the fp32 optimizer ops (contracts in kernels/ops.h): AdamW in
 * kernels/cpu/adamw.c's exact float operation order, and the reductions
 * behind gradient clipping and the overflow check. sumsq sums fixed chunks
 * of the input with a fixed tree and then the chunks' partials with another,
 * so its result depends on n alone; sumsq and nonfinite return a value and
 * so wait for the stream. */
#include <assert.h>
#include <math.h>
#include <stdint.h>

#include "cuda.cuh"

enum {
	EW_THREADS = 256,
	SUMSQ_THREADS = 256,
	SUMSQ_PER_THREAD = 16,
	SUMSQ_CHUNK = SUMSQ_THREADS * SUMSQ_PER_THREAD,   /* elements per partial */
	SUMSQ_FINAL_THREADS = 1024,
};

/* ---- adamw --------------------------------------------------------------- */

/* The _rn intrinsics keep nvcc from contracting a multiply and an add into
 * an fma, so each step rounds as the CPU's does. */
static __global__ void adamw_kernel(float *param, const float *grad, float *m, float *v,
				    size_t n, float one_minus_beta1, float beta2,
				    float one_minus_beta2, float eps, float bc2_sqrt,
				    float step_size, float decay, bf16 *xparam)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
		float g = grad[i], mi = m[i], vi = v[i];
		float p = __fmul_rn(param[i], decay);
		mi = __fadd_rn(mi, __fmul_rn(one_minus_beta1, __fsub_rn(g, mi)));
		vi = __fadd_rn(__fmul_rn(vi, beta2), __fmul_rn(__fmul_rn(one_minus_beta2, g), g));
		float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
		p = __fsub_rn(p, __fmul_rn(step_size, __fdiv_rn(mi, denom)));
		param[i] = p;
		m[i] = mi;
		v[i] = vi;
		if (xparam)
			xparam[i] = __float2bfloat16_rn(p);
	}
}

/* The per-step scalars are computed here on the host with the CPU's
 * expressions (same powf), so they are the CPU's bit for bit. */
void ft_cuda_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr,
		   float beta1, float beta2, float eps, float weight_decay, int t, void *xparam)
{
	assert(t >= 1);
	if (n == 0)
		return;
	float bc1 = 1.0f - powf(beta1, (float)t);
	float bc2_sqrt = sqrtf(1.0f - powf(beta2, (float)t));
	float step_size = lr / bc1;
	float decay = 1.0f - lr * weight_decay;
	adamw_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(
		param, grad, m, v, n, 1.0f - beta1, beta2, 1.0f - beta2, eps, bc2_sqrt, step_size,
		decay, (bf16 *)xparam);
	LAUNCH_CHECK();
}

/* ---- sumsq --------------------------------------------------------------- */

/* Butterfly over the warp: lanes l and l^o add the same two values, so all
 * lanes end with the same, order-fixed sum. */
static __device__ double warp_sum(double s)
{
	for (int o = 16; o > 0; o >>= 1)
		s += __shfl_xor_sync(0xffffffffu, s, o);
	return s;
}

/* Sum over the block (blockDim.x a multiple of 32), in a fixed order; every
 * thread gets it. All threads must call it. */
static __device__ double block_sum(double s)
{
	__shared__ double partial[32];
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
	s = warp_sum(s);
	__syncthreads();
	if (lane == 0)
		partial[warp] = s;
	__syncthreads();
	return warp_sum(lane < nwarps ? partial[lane] : 0.0);
}

/* partial[b] = sum of x[i]^2 over chunk b (SUMSQ_CHUNK elements), thread t
 * taking elements t, t + SUMSQ_THREADS, ... of it. The loop over chunks
 * makes the grid size irrelevant to the result. */
static __global__ void sumsq_partial_kernel(double *partial, const float *x, size_t n,
					    size_t nchunks)
{
	for (size_t b = blockIdx.x; b < nchunks; b += gridDim.x) {
		size_t base = b * SUMSQ_CHUNK;
		double s = 0.0;
		for (int k = 0; k < SUMSQ_PER_THREAD; k++) {
			size_t i = base + (size_t)k * SUMSQ_THREADS + threadIdx.x;
			if (i < n) {
				double xi = x[i];
				s += xi * xi;
			}
		}
		s = block_sum(s);
		if (threadIdx.x == 0)
			partial[b] = s;
	}
}

/* One block: thread t sums partials t, t + blockDim.x, ... then the tree. */
static __global__ void sumsq_final_kernel(double *result, const double *partial, size_t nchunks)
{
	double s = 0.0;
	for (size_t b = threadIdx.x; b < nchunks; b += blockDim.x)
		s += partial[b];
	s = block_sum(s);
	if (threadIdx.x == 0)
		*result = s;
}

double ft_cuda_sumsq(const float *x, size_t n)
{
	if (n == 0)
		return 0.0;
	size_t nchunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
	double *scratch = (double *)ft_cuda_scratch((nchunks + 1) * sizeof(double));
	double *result = scratch, *partial = scratch + 1;
	unsigned blocks = ft_cuda_blocks(nchunks, 1);
	sumsq_partial_kernel<<<blocks, SUMSQ_THREADS, 0, ft_cuda_stream>>>(partial, x, n, nchunks);
	LAUNCH_CHECK();
	sumsq_final_kernel<<<1, SUMSQ_FINAL_THREADS, 0, ft_cuda_stream>>>(result, partial, nchunks);
	LAUNCH_CHECK();
	double s;
	CUDA_CHECK(cudaMemcpyAsync(&s, result, sizeof s, cudaMemcpyDeviceToHost, ft_cuda_stream));
	CUDA_CHECK(cudaStreamSynchronize(ft_cuda_stream));
	return s;
}

/* ---- nonfinite ----------------------------------------------------------- */

/* Every thread that meets a NaN or an infinity stores the same 1: racing
 * plain stores of one value, no atomics needed. */
static __global__ void nonfinite_kernel(int *flag, const float *x, size_t n)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		if (!isfinite(x[i]))
			*flag = 1;
}

int ft_cuda_nonfinite(const float *x, size_t n)
{
	if (n == 0)
		return 0;
	int *flag = (int *)ft_cuda_scratch(sizeof(int));
	CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), ft_cuda_stream));
	nonfinite_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(flag, x,
											     n);
	LAUNCH_CHECK();
	int found;
	CUDA_CHECK(cudaMemcpyAsync(&found, flag, sizeof found, cudaMemcpyDeviceToHost,
				   ft_cuda_stream));
	CUDA_CHECK(cudaStreamSynchronize(ft_cuda_stream));
	return found != 0;
}

/* ---- scale --------------------------------------------------------------- */

static __global__ void scale_kernel(float *x, size_t n, float s)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		x[i] *= s;
}

void ft_cuda_scale(float *x, size_t n, float s)
{
	if (n == 0)
		return;
	scale_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(x, n, s);
	LAUNCH_CHECK();
}
