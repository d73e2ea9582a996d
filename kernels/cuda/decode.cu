/* decode.cu: the decode ops on CUDA (contract in kernels/decode.h; the
 * specification is kernels/cpu/decode.c). x tensors are bf16, arithmetic
 * fp32, no atomics, and every sum runs in an order fixed by the shapes that
 * belong to one row or one token, never by N: a sequence's tokens do not
 * depend on what it is batched with.
 *
 * matmul_rows: one warp per OPW consecutive outputs; it reads those weight
 * rows once per tile of up to MM_ROWS input rows and multiplies each of
 * them into every row of the tile (inputs come through L1: they are small
 * and every warp reads them). The order of one element, which depends on
 * IC alone: IC is cut into vectors of 8 values; lane l takes vectors l,
 * l + 32, ... in turn and, within one, values 0..7 in turn (one fmaf each,
 * into one fp32 accumulator); the IC % 8 values after the last vector go to
 * lanes 0..IC%8-1, one each; then the 32 lanes add by an xor butterfly;
 * then the bias is added. Vector loads (16 bytes) are used when IC % 8 == 0
 * and the pointers are aligned, scalar loads otherwise: the loads differ,
 * the arithmetic does not. OPW (1 or 4, picked from OC to fill the device)
 * and the row tiling only decide which warp computes an element, not how.
 *
 * attention_cached: split-K flash decoding (online softmax, Milakov &
 * Gimelshein 2018; Dao et al.'s Flash-Decoding, 2023). A token of context
 * len = pos + 1 has its keys cut into at most AT_SPLITS contiguous splits
 * of `per` keys, per = ceil(len / AT_SPLITS) rounded up to AT_GRAIN, a
 * function of len alone. Kernel 1, one block per (split, kv head, group of
 * at most AT_HEADS query heads, token): warp w takes the split's keys
 * w, w + AT_WARPS, ... in turn and keeps per head a running max m, sum l
 * and unnormalised output (a lane owns DPL consecutive dims); the score is
 * (q . k) scale, lanes' partial dot products added by an xor butterfly.
 * The block then merges its warps in warp order and stores the split's
 * (m, l, acc) in scratch. Kernel 2, one block per (head, token), merges the
 * splits in split order: M = max m_s, l = sum l_s e^(m_s - M), acc = sum
 * acc_s e^(m_s - M), out = acc (1 / l) in bf16. The reference takes the
 * max first and sums in key order; the results agree to rounding. The
 * partials live in ft_cuda_scratch, at most AT_SCRATCH bytes: a prompt's
 * tokens come through here too, so long batches go in passes of tokens.
 *
 * Head size: a lane owns DPL = 1, 2, 4 or 8 dims, so D <= 256 here (the CPU
 * allows FT_DECODE_MAX_HEAD_DIM = 1024): the per-head state lives in
 * registers, and no model served has larger heads. Dims past D are zero.
 *
 * First version, plain SIMT fp32: correctness and batch invariance first;
 * tile sizes are to be tuned on a GPU. */
#include <assert.h>
#include <math.h>
#include <stdint.h>

#include "cuda.cuh"

extern "C" {
#include "decode.h"
}

enum {
	MM_WARPS = 8,            /* matmul_rows: warps per block */
	MM_THREADS = MM_WARPS * 32,
	MM_ROWS = 8,             /*   input rows multiplied per pass over the weights */
	AT_WARPS = 4,            /* attention_cached: warps per block of kernel 1 */
	AT_THREADS = AT_WARPS * 32,
	AT_SPLITS = 32,          /*   at most this many splits of a token's keys */
	AT_GRAIN = 32,           /*   a split's keys are a multiple of this (but the last) */
	AT_HEADS = 8,            /*   at most this many query heads per block */
	AT_MAX_DIM = 256,        /*   head size: 32 lanes of at most 8 dims */
	AT_COMBINE_THREADS = 128,
};
#define AT_SCRATCH ((size_t)64 << 20)   /* attention_cached: bytes of partials a pass */

static __device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;   /* lanes l and l^o add the same two values: all lanes agree */
}

/* The two bf16 of a little-endian 32-bit word, exactly, as floats. */
static __device__ __forceinline__ void unpack2(uint32_t w, float *f)
{
	f[0] = __uint_as_float(w << 16);
	f[1] = __uint_as_float(w & 0xffff0000u);
}

/* ---- matmul_rows ---------------------------------------------------------- */

/* p[0..7] as floats: one 16-byte load (p 16-byte aligned) or eight. */
template <bool VEC> static __device__ __forceinline__ void load8(float *f, const bf16 *p)
{
	if (VEC) {
		uint4 u = __ldg((const uint4 *)p);
		unpack2(u.x, f);
		unpack2(u.y, f + 2);
		unpack2(u.z, f + 4);
		unpack2(u.w, f + 6);
	} else {
#pragma unroll
		for (int e = 0; e < 8; e++)
			f[e] = __bfloat162float(p[e]);
	}
}

/* Warp (blockIdx.x, warp) owns outputs o0 .. o0 + OPW - 1 for all N rows. */
template <int OPW, bool VEC>
static __global__ void __launch_bounds__(MM_THREADS)
matmul_rows_kernel(float *out, const bf16 *inp, const bf16 *weight, const bf16 *bias, int N,
		   int IC, int OC)
{
	int lane = threadIdx.x & 31;
	int o0 = (int)((blockIdx.x * MM_WARPS + (threadIdx.x >> 5)) * OPW);
	if (o0 >= OC)
		return;   /* whole warps only, and no block barrier below */
	int nvec = IC / 8, tail = IC % 8;
	const bf16 *w[OPW];
#pragma unroll
	for (int j = 0; j < OPW; j++)   /* past OC: a valid row, result not stored */
		w[j] = weight + (size_t)min(o0 + j, OC - 1) * IC;
	for (int r0 = 0; r0 < N; r0 += MM_ROWS) {
		int rows = min(MM_ROWS, N - r0);
		const bf16 *x = inp + (size_t)r0 * IC;
		float acc[MM_ROWS][OPW];
		ft_zero(acc);
		for (int v = lane; v < nvec; v += 32) {
			float wf[OPW][8];
#pragma unroll
			for (int j = 0; j < OPW; j++)
				load8<VEC>(wf[j], w[j] + (size_t)v * 8);
#pragma unroll
			for (int r = 0; r < MM_ROWS; r++) {
				if (r >= rows)
					break;
				float xf[8];
				load8<VEC>(xf, x + (size_t)r * IC + (size_t)v * 8);
#pragma unroll
				for (int j = 0; j < OPW; j++)
#pragma unroll
					for (int e = 0; e < 8; e++)
						acc[r][j] = fmaf(xf[e], wf[j][e], acc[r][j]);
			}
		}
		if (lane < tail) {
			size_t i = (size_t)nvec * 8 + lane;
#pragma unroll
			for (int r = 0; r < MM_ROWS; r++) {
				if (r >= rows)
					break;
				float xv = __bfloat162float(x[(size_t)r * IC + i]);
#pragma unroll
				for (int j = 0; j < OPW; j++)
					acc[r][j] = fmaf(xv, __bfloat162float(w[j][i]), acc[r][j]);
			}
		}
#pragma unroll
		for (int r = 0; r < MM_ROWS; r++) {
			if (r >= rows)
				break;
#pragma unroll
			for (int j = 0; j < OPW; j++) {
				float s = warp_sum(acc[r][j]);
				int o = o0 + j;
				if (lane == r * OPW + j && o < OC) {
					float b = bias ? __bfloat162float(bias[o]) : 0.0f;
					out[(size_t)(r0 + r) * OC + o] = b + s;
				}
			}
		}
	}
}

template <int OPW>
static void launch_matmul_rows(float *out, const bf16 *inp, const bf16 *weight,
			       const bf16 *bias, int N, int IC, int OC, bool vec)
{
	unsigned blocks = (unsigned)((OC + MM_WARPS * OPW - 1) / (MM_WARPS * OPW));
	if (vec)
		matmul_rows_kernel<OPW, true><<<blocks, MM_THREADS, 0, ft_cuda_stream>>>(
			out, inp, weight, bias, N, IC, OC);
	else
		matmul_rows_kernel<OPW, false><<<blocks, MM_THREADS, 0, ft_cuda_stream>>>(
			out, inp, weight, bias, N, IC, OC);
	LAUNCH_CHECK();
}

static void cuda_matmul_rows(float *out, const void *inp, const void *weight, const void *bias,
			     int N, int IC, int OC)
{
	assert(N >= 0 && IC > 0 && OC > 0);
	if (N == 0)
		return;
	static_assert(MM_ROWS * 4 <= 32, "a warp's lanes store a tile's outputs");
	bool vec = IC % 8 == 0 && (uintptr_t)inp % 16 == 0 && (uintptr_t)weight % 16 == 0;
	/* four outputs a warp reuse each input load four times; one a warp
	 * when that would leave the device short of blocks */
	int sms = ft_cuda_sm_count > 0 ? ft_cuda_sm_count : 1;
	if ((size_t)OC >= (size_t)MM_WARPS * 4 * 2 * sms)
		launch_matmul_rows<4>(out, (const bf16 *)inp, (const bf16 *)weight,
				      (const bf16 *)bias, N, IC, OC, vec);
	else
		launch_matmul_rows<1>(out, (const bf16 *)inp, (const bf16 *)weight,
				      (const bf16 *)bias, N, IC, OC, vec);
}

/* ---- attention_cached ----------------------------------------------------- */

/* Keys per split for a context of len keys: a function of len alone. */
static __device__ __forceinline__ int split_keys(int len)
{
	int per = (len + AT_SPLITS - 1) / AT_SPLITS;
	return (per + AT_GRAIN - 1) / AT_GRAIN * AT_GRAIN;
}

/* Lane's dims lane*DPL .. lane*DPL + DPL-1 of row as floats, 0 past D: one
 * vector load when VEC (D == 32 DPL, row aligned to 2 DPL bytes). */
template <int DPL>
static __device__ __forceinline__ void load_dims(float *f, const bf16 *row, int lane, int D,
						 bool vec)
{
	if (DPL == 8 && vec) {
		uint4 u = __ldg((const uint4 *)(row + lane * 8));
		unpack2(u.x, f);
		unpack2(u.y, f + 2);
		unpack2(u.z, f + 4);
		unpack2(u.w, f + 6);
	} else if (DPL == 4 && vec) {
		uint2 u = __ldg((const uint2 *)(row + lane * 4));
		unpack2(u.x, f);
		unpack2(u.y, f + 2);
	} else if (DPL == 2 && vec) {
		unpack2(__ldg((const unsigned int *)(row + lane * 2)), f);
	} else {
#pragma unroll
		for (int i = 0; i < DPL; i++) {
			int d = lane * DPL + i;
			f[i] = d < D ? __bfloat162float(row[d]) : 0.0f;
		}
	}
}

/* Keys loaded ahead per warp step: about 32 floats of k and v per lane. */
static __host__ __device__ constexpr int keys_ahead(int DPL)
{
	return DPL >= 8 ? 2 : DPL == 4 ? 4 : 8;
}

/* Kernel 1: block (split s, kv head and head group, token n). Partial
 * results go to part_acc[n][h][s][D] and part_ml[n][h][s][2] (m, l). */
template <int DPL>
static __global__ void __launch_bounds__(AT_THREADS)
attention_split_kernel(float *part_acc, float *part_ml, const bf16 *q, const bf16 *const *k,
		       const bf16 *const *v, const int32_t *pos, int H, int KVH, int D,
		       int HB, float scale)
{
	constexpr int KU = keys_ahead(DPL), DW = 32 * DPL;
	__shared__ float sh_acc[AT_WARPS][AT_HEADS][DW];
	__shared__ float sh_m[AT_WARPS][AT_HEADS], sh_l[AT_WARPS][AT_HEADS];

	int s = blockIdx.x, n = blockIdx.z;
	int group = H / KVH, groups = (group + HB - 1) / HB;
	int kvh = blockIdx.y / groups, g0 = (blockIdx.y % groups) * HB;
	int nh = min(HB, group - g0), h0 = kvh * group + g0;
	int len = pos[n] + 1;
	assert(len >= 1);
	int per = split_keys(len), a = s * per;
	if (a >= len)
		return;   /* the whole block: an empty split, never read */
	int b = min(len, a + per);
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	size_t ld = (size_t)KVH * D;
	const bf16 *kn = k[n] + (size_t)kvh * D, *vn = v[n] + (size_t)kvh * D;
	bool vec = D == DW && (((uintptr_t)kn | (uintptr_t)vn) & (2 * DPL - 1)) == 0;

	float qf[AT_HEADS][DPL], acc[AT_HEADS][DPL], m[AT_HEADS], l[AT_HEADS];
#pragma unroll
	for (int g = 0; g < AT_HEADS; g++) {
		m[g] = -INFINITY;
		l[g] = 0.0f;
#pragma unroll
		for (int i = 0; i < DPL; i++) {
			int d = lane * DPL + i;
			qf[g][i] = g < nh && d < D ?
				__bfloat162float(q[((size_t)n * H + h0 + g) * D + d]) : 0.0f;
			acc[g][i] = 0.0f;
		}
	}
	for (int j0 = a + warp; j0 < b; j0 += AT_WARPS * KU) {
		float kf[KU][DPL], vf[KU][DPL];
#pragma unroll
		for (int u = 0; u < KU; u++) {
			int j = j0 + u * AT_WARPS;
			if (j < b) {
				load_dims<DPL>(kf[u], kn + (size_t)j * ld, lane, D, vec);
				load_dims<DPL>(vf[u], vn + (size_t)j * ld, lane, D, vec);
			}
		}
#pragma unroll
		for (int u = 0; u < KU; u++) {
			if (j0 + u * AT_WARPS >= b)
				break;
#pragma unroll
			for (int g = 0; g < AT_HEADS; g++) {
				if (g >= nh)
					break;
				float dot = 0.0f;
#pragma unroll
				for (int i = 0; i < DPL; i++)
					dot = fmaf(qf[g][i], kf[u][i], dot);
				float sc = warp_sum(dot) * scale;
				if (sc > m[g]) {   /* the same on all lanes */
					float c = expf(m[g] - sc);
					l[g] *= c;
#pragma unroll
					for (int i = 0; i < DPL; i++)
						acc[g][i] *= c;
					m[g] = sc;
				}
				float p = expf(sc - m[g]);
				l[g] += p;
#pragma unroll
				for (int i = 0; i < DPL; i++)
					acc[g][i] = fmaf(p, vf[u][i], acc[g][i]);
			}
		}
	}

	/* merge the warps, in warp order; warp 0 has key a, so M is finite
	 * and a warp without keys (m = -inf, l = 0) weighs 0 */
#pragma unroll
	for (int g = 0; g < AT_HEADS; g++) {
		if (g >= nh)
			break;
		if (lane == 0) {
			sh_m[warp][g] = m[g];
			sh_l[warp][g] = l[g];
		}
#pragma unroll
		for (int i = 0; i < DPL; i++)
			sh_acc[warp][g][lane * DPL + i] = acc[g][i];
	}
	__syncthreads();
	for (int t = threadIdx.x; t < nh * D; t += AT_THREADS) {
		int g = t / D, d = t % D;
		float M = sh_m[0][g];
		for (int w = 1; w < AT_WARPS; w++)
			M = fmaxf(M, sh_m[w][g]);
		float sum = 0.0f, o = 0.0f;
		for (int w = 0; w < AT_WARPS; w++) {
			float c = expf(sh_m[w][g] - M);
			sum = fmaf(sh_l[w][g], c, sum);
			o = fmaf(sh_acc[w][g][d], c, o);
		}
		size_t ph = ((size_t)n * H + h0 + g) * AT_SPLITS + s;
		part_acc[ph * D + d] = o;
		if (d == 0) {
			part_ml[ph * 2] = M;
			part_ml[ph * 2 + 1] = sum;
		}
	}
}

/* Kernel 2: block (head h, token n) merges the token's splits in order. */
static __global__ void __launch_bounds__(AT_COMBINE_THREADS)
attention_combine_kernel(bf16 *out, const float *part_acc, const float *part_ml,
			 const int32_t *pos, int H, int D)
{
	__shared__ float weight[AT_SPLITS];
	__shared__ float inv_sum;
	int h = blockIdx.x, n = blockIdx.y;
	int len = pos[n] + 1, per = split_keys(len), splits = (len + per - 1) / per;
	size_t ph = ((size_t)n * H + h) * AT_SPLITS;
	const float *ml = part_ml + ph * 2;
	if (threadIdx.x == 0) {
		float M = ml[0];
		for (int s = 1; s < splits; s++)
			M = fmaxf(M, ml[s * 2]);
		float sum = 0.0f;
		for (int s = 0; s < splits; s++) {
			weight[s] = expf(ml[s * 2] - M);
			sum = fmaf(ml[s * 2 + 1], weight[s], sum);
		}
		inv_sum = 1.0f / sum;
	}
	__syncthreads();
	const float *acc = part_acc + ph * D;
	for (int d = threadIdx.x; d < D; d += AT_COMBINE_THREADS) {
		float o = 0.0f;
		for (int s = 0; s < splits; s++)
			o = fmaf(acc[(size_t)s * D + d], weight[s], o);
		out[((size_t)n * H + h) * D + d] = __float2bfloat16_rn(o * inv_sum);
	}
}

template <int DPL>
static void launch_attention_split(float *part_acc, float *part_ml, const bf16 *q,
				   const bf16 *const *k, const bf16 *const *v,
				   const int32_t *pos, int N, int H, int KVH, int D, int HB,
				   float scale)
{
	int groups = (H / KVH + HB - 1) / HB;
	dim3 grid(AT_SPLITS, (unsigned)(KVH * groups), (unsigned)N);
	attention_split_kernel<DPL><<<grid, AT_THREADS, 0, ft_cuda_stream>>>(
		part_acc, part_ml, q, k, v, pos, H, KVH, D, HB, scale);
	LAUNCH_CHECK();
}

static void cuda_attention_cached(void *out, const void *q, const void *const *k,
				  const void *const *v, const int32_t *pos, int N, int H, int KVH,
				  int D)
{
	assert(N >= 0 && H > 0 && KVH > 0 && H % KVH == 0 && D > 0);
	assert(D <= AT_MAX_DIM);   /* the CPU's limit is FT_DECODE_MAX_HEAD_DIM */
	assert(H <= 65535);
	if (N == 0)
		return;
	int group = H / KVH, groups = (group + AT_HEADS - 1) / AT_HEADS;
	int HB = (group + groups - 1) / groups;   /* heads per block, evened out */
	float scale = 1.0f / sqrtf((float)D);
	/* passes of tokens: a token's result does not depend on its pass */
	size_t token_parts = (size_t)H * AT_SPLITS, token_bytes = token_parts * (D + 2) * 4;
	size_t fit = AT_SCRATCH / token_bytes;
	int pass = fit < 1 ? 1 : fit > 65535 ? 65535 : (int)fit;
	pass = pass < N ? pass : N;
	float *part_acc = (float *)ft_cuda_scratch((size_t)pass * token_bytes);
	float *part_ml = part_acc + (size_t)pass * token_parts * D;
	for (int n0 = 0; n0 < N; n0 += pass) {
		int n = N - n0 < pass ? N - n0 : pass;
		size_t xo = (size_t)n0 * H * D;
		const bf16 *qb = (const bf16 *)q + xo;
		const bf16 *const *kb = (const bf16 *const *)k + n0;
		const bf16 *const *vb = (const bf16 *const *)v + n0;
		if (D <= 32)
			launch_attention_split<1>(part_acc, part_ml, qb, kb, vb, pos + n0, n, H, KVH,
						  D, HB, scale);
		else if (D <= 64)
			launch_attention_split<2>(part_acc, part_ml, qb, kb, vb, pos + n0, n, H, KVH,
						  D, HB, scale);
		else if (D <= 128)
			launch_attention_split<4>(part_acc, part_ml, qb, kb, vb, pos + n0, n, H, KVH,
						  D, HB, scale);
		else
			launch_attention_split<8>(part_acc, part_ml, qb, kb, vb, pos + n0, n, H, KVH,
						  D, HB, scale);
		attention_combine_kernel<<<dim3((unsigned)H, (unsigned)n), AT_COMBINE_THREADS, 0,
					   ft_cuda_stream>>>((bf16 *)out + xo, part_acc, part_ml,
							     pos + n0, H, D);
		LAUNCH_CHECK();
	}
}

static const struct ft_decode_ops decode_ops_cuda = {
	.name = "cuda",
	.matmul_rows = cuda_matmul_rows,
	.attention_cached = cuda_attention_cached,
};

extern "C" const struct ft_decode_ops *ft_decode_ops_cuda(void)
{
	return &decode_ops_cuda;
}
