/* layers.cu: the CUDA layer ops other than matmul and attention (contracts
 * in kernels/ops.h; the specification is kernels/cpu). x tensors are bf16,
 * math is fp32 in the CPU's order of operations, and sums the CPU takes in
 * double are taken in double here. Determinism without atomics: a row
 * reduction is one block of a fixed size reduced by a fixed tree
 * (block_reduce), and column sums walk their rows in order. Elementwise ops
 * are scalar grid-stride loops: simple first, vectorise once measured. */
#include <assert.h>
#include <math.h>
#include <stdint.h>

#include "cuda.cuh"

enum {
	EW_THREADS = 256,       /* elementwise ops */
	ROW_THREADS = 256,      /* rmsnorm and rope: one block per row */
	CE_THREADS = 512,       /* cross-entropy: one block per row of V logits */
	COL_THREADS = 64,       /* column walks (embedding and rmsnorm weight grads) */
	DW_MAX_CHUNKS = 256,    /* rmsnorm dweight: at most this many row chunks */
	DW_MIN_ROWS = 16,       /*   of at least this many rows each */
};

static __device__ __forceinline__ float ld(const bf16 *p, size_t i)
{
	return __bfloat162float(p[i]);
}

static __device__ __forceinline__ bf16 rn(float f)
{
	return __float2bfloat16_rn(f);
}

/* ---- reductions ---------------------------------------------------------- */

struct sum_op {
	template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct max_op {
	__device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

/* Butterfly over the warp. Lanes l and l^o add the same two values (a + b ==
 * b + a exactly), so every lane ends with the same, order-fixed result. */
template <typename T, typename Op> static __device__ T warp_reduce(T v, Op op)
{
	for (int o = 16; o > 0; o >>= 1)
		v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

/* Reduce v over the block; every thread gets the result. blockDim.x must be
 * a multiple of 32 (at most 1024), not necessarily a power of two; all
 * threads of the block must call it (it synchronises). */
template <typename T, typename Op> static __device__ T block_reduce(T v, Op op, T identity)
{
	__shared__ T partial[32];
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
	v = warp_reduce(v, op);
	__syncthreads();   /* a previous call's readers are done with partial */
	if (lane == 0)
		partial[warp] = v;
	__syncthreads();
	v = lane < nwarps ? partial[lane] : identity;
	return warp_reduce(v, op);   /* every warp redoes the last step: no broadcast */
}

/* ---- embedding ----------------------------------------------------------- */

static __global__ void embedding_forward_kernel(bf16 *out, const int32_t *tokens, const bf16 *table,
						int C)
{
	size_t n = blockIdx.x;
	const bf16 *row = table + (size_t)tokens[n] * C;
	bf16 *o = out + n * C;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		o[c] = row[c];
}

/* Thread c owns column c of dtable and walks the tokens in order, so a
 * repeated token adds up in the same order every run and no two threads
 * touch one value. Simple, not fast (C threads, N dependent steps each):
 * only full fine-tuning trains the embedding. */
static __global__ void embedding_backward_kernel(float *dtable, const bf16 *dout,
						 const int32_t *tokens, int N, int C, int V)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	for (int n = 0; n < N; n++) {
		int tok = tokens[n];
		assert(tok >= 0 && tok < V);
		dtable[(size_t)tok * C + c] += ld(dout, (size_t)n * C + c);
	}
}

void ft_cuda_embedding_forward(void *out, const int32_t *tokens, const void *table, int N,
			       int C)
{
	assert(N >= 0 && C > 0);
	if (N == 0)
		return;
	embedding_forward_kernel<<<N, ROW_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)out, tokens, (const bf16 *)table, C);
	LAUNCH_CHECK();
}

void ft_cuda_embedding_backward(float *dtable, const void *dout, const int32_t *tokens, int N,
				int C, int V)
{
	assert(N >= 0 && C > 0 && V > 0);
	if (!dtable || N == 0)
		return;
	unsigned blocks = (unsigned)((C + COL_THREADS - 1) / COL_THREADS);
	embedding_backward_kernel<<<blocks, COL_THREADS, 0, ft_cuda_stream>>>(
		dtable, (const bf16 *)dout, tokens, N, C, V);
	LAUNCH_CHECK();
}

/* ---- rmsnorm ------------------------------------------------------------- */

/* One block per row. The sum of squares is in double as on the CPU; squares
 * of bf16 values are exact in double and their sum nearly always is, so on
 * the same inputs rstd is the CPU's bit for bit whatever the summing order. */
static __global__ void rmsnorm_forward_kernel(bf16 *out, float *rstd, const bf16 *inp,
					      const bf16 *weight, int C, float eps)
{
	size_t n = blockIdx.x;
	const bf16 *x = inp + n * C;
	bf16 *y = out + n * C;
	double ss = 0.0;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		double v = ld(x, c);
		ss += v * v;
	}
	ss = block_reduce(ss, sum_op(), 0.0);
	float r = 1.0f / sqrtf((float)(ss / C) + eps);
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		y[c] = rn(ld(weight, c) * (ld(x, c) * r));
	if (threadIdx.x == 0)
		rstd[n] = r;
}

/* dx += r * w*dy - (r^3/C * sum(w*dy*x)) * x, one block per row. */
static __global__ void rmsnorm_backward_dinp_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp,
						    const bf16 *weight, const float *rstd, int C)
{
	size_t n = blockIdx.x;
	const bf16 *x = inp + n * C, *dy = dout + n * C;
	bf16 *dx = dinp + n * C;
	float r = rstd[n];
	double dot = 0.0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dot += (double)ld(weight, c) * ld(dy, c) * ld(x, c);
	dot = block_reduce(dot, sum_op(), 0.0);
	float k = (float)(dot * r * r * r / C);
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dx[c] = rn(ld(dx, c) + (r * ld(weight, c) * ld(dy, c) - k * ld(x, c)));
}

/* dweight, stage 1: partial[chunk][c] = sum over the chunk's rows, in order,
 * of dy*x*r (double). Chunks in grid.x, column blocks in grid.y. */
static __global__ void rmsnorm_dweight_partial_kernel(double *partial, const bf16 *dout,
						      const bf16 *inp, const float *rstd, int N,
						      int C, int rows_per_chunk)
{
	int c = blockIdx.y * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	int chunk = blockIdx.x;
	int n0 = chunk * rows_per_chunk;
	int n1 = n0 + rows_per_chunk < N ? n0 + rows_per_chunk : N;
	double s = 0.0;
	for (int n = n0; n < n1; n++) {
		size_t i = (size_t)n * C + c;
		s += (double)ld(dout, i) * ld(inp, i) * rstd[n];
	}
	partial[(size_t)chunk * C + c] = s;
}

/* dweight, stage 2: dweight[c] += the chunks' partials summed in order. */
static __global__ void rmsnorm_dweight_sum_kernel(float *dweight, const double *partial,
						  int nchunks, int C)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	double s = 0.0;
	for (int k = 0; k < nchunks; k++)
		s += partial[(size_t)k * C + c];
	dweight[c] += (float)s;
}

void ft_cuda_rmsnorm_forward(void *out, float *rstd, const void *inp, const void *weight,
			     int N, int C, float eps)
{
	assert(N >= 0 && C > 0);
	if (N == 0)
		return;
	rmsnorm_forward_kernel<<<N, ROW_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)out, rstd, (const bf16 *)inp, (const bf16 *)weight, C, eps);
	LAUNCH_CHECK();
}

/* The weight gradient is two stages over a split that depends on N alone
 * (rows_per_chunk = max(DW_MIN_ROWS, ceil(N / DW_MAX_CHUNKS))): the chunks
 * give the parallelism one thread per column walking all N rows would lack,
 * and the scratch stays at most DW_MAX_CHUNKS * C doubles. It runs before
 * dinp's kernel, so a dinp that aliases dout or inp cannot change it. */
void ft_cuda_rmsnorm_backward(void *dinp, float *dweight, const void *dout, const void *inp,
			      const void *weight, const float *rstd, int N, int C)
{
	assert(N >= 0 && C > 0);
	if (N == 0)
		return;
	if (dweight) {
		int rows = (N + DW_MAX_CHUNKS - 1) / DW_MAX_CHUNKS;
		if (rows < DW_MIN_ROWS)
			rows = DW_MIN_ROWS;
		int nchunks = (N + rows - 1) / rows;
		double *partial = (double *)ft_cuda_scratch((size_t)nchunks * C * sizeof(double));
		unsigned colblocks = (unsigned)((C + COL_THREADS - 1) / COL_THREADS);
		dim3 grid((unsigned)nchunks, colblocks);
		rmsnorm_dweight_partial_kernel<<<grid, COL_THREADS, 0, ft_cuda_stream>>>(
			partial, (const bf16 *)dout, (const bf16 *)inp, rstd, N, C, rows);
		LAUNCH_CHECK();
		rmsnorm_dweight_sum_kernel<<<colblocks, COL_THREADS, 0, ft_cuda_stream>>>(
			dweight, partial, nchunks, C);
		LAUNCH_CHECK();
	}
	if (dinp) {
		rmsnorm_backward_dinp_kernel<<<N, ROW_THREADS, 0, ft_cuda_stream>>>(
			(bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, (const bf16 *)weight,
			rstd, C);
		LAUNCH_CHECK();
	}
}

/* ---- rope ---------------------------------------------------------------- */

/* One block per token: its D/2 angles are computed once into shared memory
 * (cos in cs[0..half), dir*sin in cs[half..D)), then shared by its H heads.
 * The angle is (float)pos * inv_freq in fp32 and cosf/sinf are the precise
 * ones (no --use_fast_math), as on the CPU. */
static __global__ void rope_kernel(bf16 *x, const int32_t *pos, const float *inv_freq, int H, int D,
				   float dir)
{
	extern __shared__ float cs[];
	int half = D / 2;
	size_t n = blockIdx.x;
	for (int i = threadIdx.x; i < half; i += blockDim.x) {
		float angle = (float)pos[n] * inv_freq[i];
		cs[i] = cosf(angle);
		cs[half + i] = dir * sinf(angle);
	}
	__syncthreads();
	bf16 *xn = x + n * H * D;
	int work = H * half;
	for (int j = threadIdx.x; j < work; j += blockDim.x) {
		int h = j / half, i = j - h * half;
		bf16 *v = xn + (size_t)h * D;
		float a = ld(v, i), b = ld(v, i + half);
		float c = cs[i], s = cs[half + i];
		v[i] = rn(a * c - b * s);
		v[i + half] = rn(b * c + a * s);
	}
}

static void rope_apply(void *x, const int32_t *pos, const float *inv_freq, int N, int H, int D,
		       float dir)
{
	assert(N >= 0 && H > 0 && D > 0 && D % 2 == 0);
	if (N == 0)
		return;
	rope_kernel<<<N, ROW_THREADS, (size_t)D * sizeof(float), ft_cuda_stream>>>(
		(bf16 *)x, pos, inv_freq, H, D, dir);
	LAUNCH_CHECK();
}

void ft_cuda_rope_forward(void *x, const int32_t *pos, const float *inv_freq, int N, int H,
			  int D)
{
	rope_apply(x, pos, inv_freq, N, H, D, 1.0f);
}

/* the inverse rotation: the same with -sin */
void ft_cuda_rope_backward(void *x, const int32_t *pos, const float *inv_freq, int N, int H,
			   int D)
{
	rope_apply(x, pos, inv_freq, N, H, D, -1.0f);
}

/* ---- swiglu -------------------------------------------------------------- */

static __global__ void swiglu_forward_kernel(bf16 *out, const bf16 *gate, const bf16 *up, size_t n)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
		float g = ld(gate, i);
		out[i] = rn(g / (1.0f + expf(-g)) * ld(up, i));
	}
}

/* silu'(g) = s * (1 + g * (1 - s)), s = sigmoid(g) */
static __global__ void swiglu_backward_kernel(bf16 *dgate, bf16 *dup, const bf16 *dout,
					      const bf16 *gate, const bf16 *up, size_t n)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
		float g = ld(gate, i), s = 1.0f / (1.0f + expf(-g)), d = ld(dout, i);
		if (dgate)
			dgate[i] = rn(ld(dgate, i) + d * ld(up, i) * s * (1.0f + g * (1.0f - s)));
		if (dup)
			dup[i] = rn(ld(dup, i) + d * g * s);
	}
}

void ft_cuda_swiglu_forward(void *out, const void *gate, const void *up, size_t n)
{
	if (n == 0)
		return;
	swiglu_forward_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)out, (const bf16 *)gate, (const bf16 *)up, n);
	LAUNCH_CHECK();
}

void ft_cuda_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
			     const void *up, size_t n)
{
	if (n == 0 || (!dgate && !dup))
		return;
	swiglu_backward_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)dgate, (bf16 *)dup, (const bf16 *)dout, (const bf16 *)gate,
		(const bf16 *)up, n);
	LAUNCH_CHECK();
}

/* ---- cross-entropy ------------------------------------------------------- */

/* Logits pair j: elements 2j and 2j+1, one 32-bit load when the row allows.
 * Both paths give the same values, so the order of the sums below does not
 * depend on alignment. */
static __device__ __forceinline__ float2 load_pair(const bf16 *row, int j, bool aligned)
{
	if (aligned)
		return __bfloat1622float2(((const __nv_bfloat162 *)row)[j]);
	return make_float2(ld(row, 2 * j), ld(row, 2 * j + 1));
}

static __device__ __forceinline__ void store_pair(bf16 *row, int j, bool aligned, float a,
						  float b)
{
	if (aligned) {
		((__nv_bfloat162 *)row)[j] = __floats2bfloat162_rn(a, b);
	} else {
		row[2 * j] = rn(a);
		row[2 * j + 1] = rn(b);
	}
}

/* log sum exp of a row of V logits, for every thread of the block: the max,
 * then the sum of exp(x - max) (fp32 per thread, the odd tail added last by
 * thread 0, the block's partials in double), lse = max + log(sum). */
static __device__ float row_lse(const bf16 *row, int V, bool aligned)
{
	int pairs = V / 2;
	float mx = -INFINITY;
	for (int j = threadIdx.x; j < pairs; j += blockDim.x) {
		float2 v = load_pair(row, j, aligned);
		mx = fmaxf(mx, fmaxf(v.x, v.y));
	}
	if ((V & 1) && threadIdx.x == 0)
		mx = fmaxf(mx, ld(row, V - 1));
	mx = block_reduce(mx, max_op(), -INFINITY);
	float s = 0.0f;
	for (int j = threadIdx.x; j < pairs; j += blockDim.x) {
		float2 v = load_pair(row, j, aligned);
		s += expf(v.x - mx);
		s += expf(v.y - mx);
	}
	if ((V & 1) && threadIdx.x == 0)
		s += expf(ld(row, V - 1) - mx);
	double sum = block_reduce((double)s, sum_op(), 0.0);
	return mx + (float)log(sum);
}

/* One block per row; the early return on an untrained row is the same for
 * the whole block, so no thread misses a barrier. */
static __global__ void crossentropy_forward_kernel(float *losses, const bf16 *logits,
						   const int32_t *targets, int V)
{
	size_t n = blockIdx.x;
	int t = targets[n];
	if (t < 0) {
		if (threadIdx.x == 0)
			losses[n] = 0.0f;
		return;
	}
	assert(t < V);
	const bf16 *row = logits + n * V;
	float lse = row_lse(row, V, ((uintptr_t)row & 3) == 0);
	if (threadIdx.x == 0)
		losses[n] = lse - ld(row, t);
}

/* dlogits = scale * (exp(x - lse) - onehot), as the CPU: scale * p, then
 * minus scale at the target. dlogits may alias logits: row_lse's last
 * block_reduce waits for every thread's reads, and afterwards each element
 * is read and then written by the one thread that owns it. */
static __global__ void crossentropy_backward_kernel(bf16 *dlogits, const bf16 *logits,
						    const int32_t *targets, int V, float scale)
{
	size_t n = blockIdx.x;
	int t = targets[n];
	bf16 *drow = dlogits + n * V;
	if (t < 0) {
		for (int i = threadIdx.x; i < V; i += blockDim.x)
			drow[i] = rn(0.0f);
		return;
	}
	assert(t < V);
	const bf16 *row = logits + n * V;
	bool aligned = ((uintptr_t)row & 3) == 0 && ((uintptr_t)drow & 3) == 0;
	float lse = row_lse(row, V, aligned);
	int pairs = V / 2;
	for (int j = threadIdx.x; j < pairs; j += blockDim.x) {
		float2 v = load_pair(row, j, aligned);
		float d0 = scale * expf(v.x - lse), d1 = scale * expf(v.y - lse);
		if (2 * j == t)
			d0 -= scale;
		if (2 * j + 1 == t)
			d1 -= scale;
		store_pair(drow, j, aligned, d0, d1);
	}
	if ((V & 1) && threadIdx.x == 0) {
		float d = scale * expf(ld(row, V - 1) - lse);
		if (V - 1 == t)
			d -= scale;
		drow[V - 1] = rn(d);
	}
}

void ft_cuda_crossentropy_forward(float *losses, const void *logits, const int32_t *targets,
				  int N, int V)
{
	assert(N >= 0 && V > 0);
	if (N == 0)
		return;
	crossentropy_forward_kernel<<<N, CE_THREADS, 0, ft_cuda_stream>>>(
		losses, (const bf16 *)logits, targets, V);
	LAUNCH_CHECK();
}

void ft_cuda_crossentropy_backward(void *dlogits, const void *logits, const int32_t *targets,
				   int N, int V, float scale)
{
	assert(N >= 0 && V > 0);
	if (N == 0)
		return;
	crossentropy_backward_kernel<<<N, CE_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)dlogits, (const bf16 *)logits, targets, V, scale);
	LAUNCH_CHECK();
}

/* ---- add, accumulate ----------------------------------------------------- */

static __global__ void add_kernel(bf16 *out, const bf16 *a, const bf16 *b, size_t n)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		out[i] = rn(ld(a, i) + ld(b, i));
}

static __global__ void accumulate_kernel(bf16 *dst, const bf16 *src, size_t n)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		dst[i] = rn(ld(dst, i) + ld(src, i));
}

void ft_cuda_add(void *out, const void *a, const void *b, size_t n)
{
	if (n == 0)
		return;
	add_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)out, (const bf16 *)a, (const bf16 *)b, n);
	LAUNCH_CHECK();
}

void ft_cuda_accumulate(void *dst, const void *src, size_t n)
{
	if (n == 0)
		return;
	accumulate_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)dst, (const bf16 *)src, n);
	LAUNCH_CHECK();
}

/* ---- dropout ------------------------------------------------------------- */

/* Must equal ft_splitmix64 (lib/hash.h) bit for bit. */
static __device__ __forceinline__ uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Must equal ft_rng_hash (trainer/rng.h) bit for bit: the mask is the one
 * the CPU trainer draws, and the backward pass recomputes it. */
static __device__ __forceinline__ double rng_hash(uint64_t seed, uint64_t a, uint64_t b)
{
	uint64_t x = seed ^ (a * 0xd1342543de82ef95ull) ^ (b * 0x9e3779b97f4a7c15ull);
	uint64_t h = splitmix64(&x);
	h = splitmix64(&h);
	return (double)(h >> 11) * 0x1p-53;
}

/* As trainer/decoder.c's lora_input: dropped when hash < p, kept ones
 * times keep = (float)(1.0 / (1.0 - p)). */
static __global__ void dropout_forward_kernel(bf16 *out, const bf16 *x, size_t n, double p,
					      float keep, uint64_t seed, uint64_t site)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		out[i] = rng_hash(seed, site, i) < p ? rn(0.0f) : rn(ld(x, i) * keep);
}

static __global__ void dropout_backward_kernel(bf16 *dx, const bf16 *dout, size_t n, double p,
					       float keep, uint64_t seed, uint64_t site)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		if (rng_hash(seed, site, i) >= p)
			dx[i] = rn(ld(dx, i) + ld(dout, i) * keep);
}

void ft_cuda_dropout_forward(void *out, const void *x, size_t n, double p, uint64_t seed,
			     uint64_t site)
{
	if (n == 0)
		return;
	float keep = (float)(1.0 / (1.0 - p));
	dropout_forward_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)out, (const bf16 *)x, n, p, keep, seed, site);
	LAUNCH_CHECK();
}

void ft_cuda_dropout_backward(void *dx, const void *dout, size_t n, double p, uint64_t seed,
			      uint64_t site)
{
	if (n == 0 || !dx)
		return;
	float keep = (float)(1.0 / (1.0 - p));
	dropout_backward_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)dx, (const bf16 *)dout, n, p, keep, seed, site);
	LAUNCH_CHECK();
}

/* ---- conversions --------------------------------------------------------- */

static __global__ void to_x_kernel(bf16 *dst, const float *src, size_t n)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		dst[i] = rn(src[i]);
}

static __global__ void from_x_kernel(float *dst, const bf16 *src, size_t n)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		dst[i] = ld(src, i);
}

void ft_cuda_to_x(void *dst, const float *src, size_t n)
{
	if (n == 0)
		return;
	to_x_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(
		(bf16 *)dst, src, n);
	LAUNCH_CHECK();
}

void ft_cuda_from_x(float *dst, const void *src, size_t n)
{
	if (n == 0)
		return;
	from_x_kernel<<<ft_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, ft_cuda_stream>>>(
		dst, (const bf16 *)src, n);
	LAUNCH_CHECK();
}
