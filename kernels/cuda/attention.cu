/* attention.cu: causal attention within packed documents, grouped-query
 * heads (contract in kernels/ops.h; the specification is
 * kernels/cpu/attention.c). FlashAttention-2 (Dao, 2023): no T x T matrix is
 * ever stored; blocks walk tiles of queries and keys with the scores in
 * registers and shared memory.
 *
 * Forward: one block per (row b, head h, query tile). It walks the key
 * tiles its queries can see and keeps, per query, the running maximum m,
 * the running sum l and the unnormalised output (online softmax, all fp32);
 * at the end O = acc / l and lse = m + log l.
 * Backward, with P = exp(S - lse) recomputed and Dt = dO_t . O_t:
 *   1. Dt for every (b, h, t), into scratch [B][H][T];
 *   2. one block per (b, kv head, key tile): over the query heads of its
 *      group and the query tiles that see the tile, dV += P^T dO and
 *      dK += scale dS^T Q with dS = P (dO V^T - Dt), in registers; then one
 *      read-add-round-store into dk, dv;
 *   3. one block per (b, h, query tile): dQ += scale dS K over its key tiles.
 * P is computed twice (2 and 3) so that every gradient element is owned by
 * one block: no atomics, and every sum runs in an order fixed by the shapes.
 *
 * Masking: query t sees keys doc_start[t] <= j <= t. Documents are
 * contiguous (the CPU reference relies on it too), so doc_start is
 * non-decreasing along a row and the smallest start among a query tile's
 * queries is that of its first query: key tiles before it and after the
 * tile's last query are skipped, and so are query tiles past the end of a
 * key tile's last document. The exact mask is applied inside the tiles.
 *
 * Exponentials: exp2f on scores pre-multiplied by scale * log2(e), as
 * FlashAttention does (one multiply per score instead of exp's range
 * reduction); lse is stored in natural-log units and multiplied by log2(e)
 * again on reading. Both are the accurate exp2f/log2f (no fast-math); the
 * folded constant moves a score by about 1 ulp, far below bf16's precision.
 * A fully masked row (only the padding rows of a partial tile) keeps m =
 * -inf; the exponent base is then 0, so -inf - -inf never happens.
 *
 * Head size: kernels are compiled for buckets DB = 32, 64, 128, 256; a head
 * of D <= DB dims is zero-padded to DB in shared memory (D even, so dims go
 * two at a time as bf16x2) and only d < D is stored.
 *
 * Threads: a block is a grid of 16 columns (tx) by NT/16 rows (ty). A tile
 * of scores [R][C] gives thread (ty, tx) rows ty + TY r and columns
 * tx + 16 c; an accumulator [R][DB] gives it the same rows and the dim pairs
 * tx + 16 c, so the thread that computes a query's scores also owns its
 * output row, and a row's statistics reduce over 16 lanes of a warp.
 * Shared tiles are bf16 rows padded by one pair (odd stride in 32-bit
 * words: 16 or 32 different rows read at one dim hit different banks).
 *
 * These SIMT kernels (fp32 FMAs) serve heads of 256 dims; heads up to 128
 * go to the tensor-core kernels further down, which keep the same masks,
 * tile order and statistics. */
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cuda.cuh"
#include "mma.cuh"

typedef __nv_bfloat162 bf162;

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

enum { DT_THREADS = 256 };   /* kernel 1: one warp per (token, head) */

struct attn_shape {
	int B, T, H, KVH, D;
	float scale;   /* 1/sqrt(D): S = scale Q K^T */
	float sl2;     /* scale * log2(e): S in base-2 units for exp2f */
};

/* Dynamic shared memory, carved by each kernel into 4-byte words (bf16
 * pairs, floats, ints): sizes below list the pieces in carving order. */
extern __shared__ uint32_t attn_smem[];

/* Words per shared row of a DB-dim head: DB/2 pairs and one of padding. */
static __host__ __device__ constexpr int row_words(int DB)
{
	return DB / 2 + 1;
}

/* Q[BQ], K[BK], V[BK] rows; P[BQ][BK+1]; doc starts[BQ] */
static constexpr size_t fwd_smem(int DB, int BQ, int BK)
{
	return 4 * ((size_t)(BQ + 2 * BK) * row_words(DB) + (size_t)BQ * (BK + 1) + BQ);
}

/* K, V[BK], Q, dO[BQ] rows; P^T, dS^T[BK][BQ+1]; lse, Dt, doc starts[BQ] */
static constexpr size_t dkv_smem(int DB, int BK, int BQ)
{
	return 4 * ((size_t)(2 * BK + 2 * BQ) * row_words(DB) + 2 * (size_t)BK * (BQ + 1) +
		    3 * BQ);
}

/* Q, dO[BQ], K, V[BK] rows; dS[BQ][BK+1]; lse, Dt, doc starts[BQ] */
static constexpr size_t dq_smem(int DB, int BQ, int BK)
{
	return 4 * ((size_t)(2 * BQ + 2 * BK) * row_words(DB) + (size_t)BQ * (BK + 1) + 3 * BQ);
}

/* ---- tile helpers -------------------------------------------------------- */

/* Max and sum over the 16 lanes holding one row. Lanes l and l^o combine
 * the same two values (commutative, exact for max), so all 16 end with the
 * same bits. */
static __device__ __forceinline__ float max16(float x)
{
	for (int o = 8; o > 0; o >>= 1)
		x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
	return x;
}

static __device__ __forceinline__ float sum16(float x)
{
	for (int o = 8; o > 0; o >>= 1)
		x += __shfl_xor_sync(0xffffffffu, x, o);
	return x;
}

/* rows x DB tile from global rows src + r*ld (r < valid, dims < D) into
 * shared memory, zeros elsewhere. D is even and every row starts at an even
 * element, so pairs are 4-byte aligned. */
template <int DB, int NT>
static __device__ void load_rows(bf162 *dst, int rows, const bf16 *src, size_t ld, int valid,
				 int D)
{
	constexpr int P = DB / 2, LS = row_words(DB);
	for (int idx = threadIdx.x; idx < rows * P; idx += NT) {
		int r = idx / P, p = idx % P;
		bf162 x = __floats2bfloat162_rn(0.0f, 0.0f);
		if (r < valid && 2 * p < D)
			x = *(const bf162 *)(src + r * ld + 2 * p);
		dst[r * LS + p] = x;
	}
}

/* s[r][c] += A[ty + TY r] . Bt[tx + 16 c] over the first npairs dim pairs
 * (the rest are zero). */
template <int RR, int CC, int TY, int LS>
static __device__ __forceinline__ void tile_dots(float (&s)[RR][CC], const bf162 *A,
						 const bf162 *Bt, int ty, int tx, int npairs)
{
#pragma unroll 2
	for (int p = 0; p < npairs; p++) {
		float2 a[RR], b[CC];
#pragma unroll
		for (int r = 0; r < RR; r++)
			a[r] = __bfloat1622float2(A[(ty + TY * r) * LS + p]);
#pragma unroll
		for (int c = 0; c < CC; c++)
			b[c] = __bfloat1622float2(Bt[(tx + 16 * c) * LS + p]);
#pragma unroll
		for (int r = 0; r < RR; r++)
#pragma unroll
			for (int c = 0; c < CC; c++)
				s[r][c] = fmaf(a[r].y, b[c].y, fmaf(a[r].x, b[c].x, s[r][c]));
	}
}

/* Two such products in one pass: s += A Bt^T and t += A2 B2t^T. */
template <int RR, int CC, int TY, int LS>
static __device__ __forceinline__ void tile_dots2(float (&s)[RR][CC], const bf162 *A,
						  const bf162 *Bt, float (&t)[RR][CC],
						  const bf162 *A2, const bf162 *B2t, int ty, int tx,
						  int npairs)
{
#pragma unroll 1
	for (int p = 0; p < npairs; p++) {
		float2 a[RR], b[CC], a2[RR], b2[CC];
#pragma unroll
		for (int r = 0; r < RR; r++) {
			a[r] = __bfloat1622float2(A[(ty + TY * r) * LS + p]);
			a2[r] = __bfloat1622float2(A2[(ty + TY * r) * LS + p]);
		}
#pragma unroll
		for (int c = 0; c < CC; c++) {
			b[c] = __bfloat1622float2(Bt[(tx + 16 * c) * LS + p]);
			b2[c] = __bfloat1622float2(B2t[(tx + 16 * c) * LS + p]);
		}
#pragma unroll
		for (int r = 0; r < RR; r++)
#pragma unroll
			for (int c = 0; c < CC; c++) {
				s[r][c] = fmaf(a[r].y, b[c].y, fmaf(a[r].x, b[c].x, s[r][c]));
				t[r][c] = fmaf(a2[r].y, b2[c].y, fmaf(a2[r].x, b2[c].x, t[r][c]));
			}
	}
}

/* acc[r][2c..2c+1] += sum_k W[ty + TY r][k] M[k][pair tx + 16 c], k < N:
 * W fp32 with row stride WS, M bf16 rows. */
template <int RR, int CP, int TY, int LS, int WS, int N>
static __device__ __forceinline__ void tile_accum(float (&acc)[RR][2 * CP], const float *W,
						  const bf162 *M, int ty, int tx)
{
#pragma unroll 4
	for (int k = 0; k < N; k++) {
		float w[RR];
#pragma unroll
		for (int r = 0; r < RR; r++)
			w[r] = W[(ty + TY * r) * WS + k];
#pragma unroll
		for (int c = 0; c < CP; c++) {
			float2 m = __bfloat1622float2(M[k * LS + tx + 16 * c]);
#pragma unroll
			for (int r = 0; r < RR; r++) {
				acc[r][2 * c] = fmaf(w[r], m.x, acc[r][2 * c]);
				acc[r][2 * c + 1] = fmaf(w[r], m.y, acc[r][2 * c + 1]);
			}
		}
	}
}

/* What a block of a forward or dQ launch owns: query tile qt (tiles of BQ
 * queries, heavy late tiles first) of head h in row b; its kv head's K and V
 * rows start at kb, vb (row b, token 0). */
struct qblock {
	int b, h, q0, nq;
	size_t ldq, ldk;      /* elements between tokens of q (and dq, out), k, v */
	const int32_t *ds;    /* row b's document starts */
	const bf16 *kb, *vb;
};

static __device__ __forceinline__ struct qblock query_block(int BQ, const bf16 *k, const bf16 *v,
							     const int32_t *doc_start,
							     const struct attn_shape &sh)
{
	const int nqt = (sh.T + BQ - 1) / BQ, BH = sh.B * sh.H;
	const int bh = (int)blockIdx.x % BH, qt = nqt - 1 - (int)blockIdx.x / BH;
	struct qblock r;
	r.b = bh / sh.H;
	r.h = bh % sh.H;
	r.q0 = qt * BQ;
	r.nq = min(BQ, sh.T - r.q0);
	r.ldq = (size_t)sh.H * sh.D;
	r.ldk = (size_t)sh.KVH * sh.D;
	r.ds = doc_start + (size_t)r.b * sh.T;
	const size_t kv0 = (size_t)r.b * sh.T * r.ldk + (size_t)(r.h / (sh.H / sh.KVH)) * sh.D;
	r.kb = k + kv0;
	r.vb = v + kv0;
	return r;
}

/* What a block of a dK/dV launch owns: key tile kt (tiles of BK keys, early
 * heavy tiles first) of kv head kvh in row b, starting at element ko. */
struct kblock {
	int b, kvh, k0, nk;
	size_t ldk, ko;
	const int32_t *ds;
};

static __device__ __forceinline__ struct kblock key_block(int BK, const int32_t *doc_start,
							   const struct attn_shape &sh)
{
	const int BKV = sh.B * sh.KVH;
	const int bkv = (int)blockIdx.x % BKV, kt = (int)blockIdx.x / BKV;
	struct kblock r;
	r.b = bkv / sh.KVH;
	r.kvh = bkv % sh.KVH;
	r.k0 = kt * BK;
	r.nk = min(BK, sh.T - r.k0);
	r.ldk = (size_t)sh.KVH * sh.D;
	r.ko = ((size_t)r.b * sh.T + r.k0) * r.ldk + (size_t)r.kvh * sh.D;
	r.ds = doc_start + (size_t)r.b * sh.T;
	return r;
}

/* ---- forward ------------------------------------------------------------- */

/* Block: query tile qt of head h in row b; heavy (late) tiles first. */
template <int DB, int BQ, int BK, int NT>
static __global__ void __launch_bounds__(NT)
	attn_forward_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
			    const int32_t *doc_start, struct attn_shape sh)
{
	constexpr int TY = NT / 16, RR = BQ / TY, SC = BK / 16, CP = DB / 32;
	constexpr int LS = row_words(DB), PS = BK + 1;
	static_assert(NT % 32 == 0 && BQ % TY == 0 && BK % 16 == 0 && DB % 32 == 0, "tile");

	bf162 *Qs = (bf162 *)attn_smem;
	bf162 *Ks = Qs + BQ * LS;
	bf162 *Vs = Ks + BK * LS;
	float *Ps = (float *)(Vs + BK * LS);   /* [BQ][PS] */
	int *dsq = (int *)(Ps + BQ * PS);      /* [BQ] */

	const int T = sh.T, H = sh.H, D = sh.D;
	const struct qblock qb = query_block(BQ, k, v, doc_start, sh);
	const int b = qb.b, h = qb.h, q0 = qb.q0, nq = qb.nq;
	const size_t ldq = qb.ldq, ldk = qb.ldk;
	const int32_t *ds = qb.ds;
	const bf16 *kb = qb.kb, *vb = qb.vb;
	const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

	load_rows<DB, NT>(Qs, BQ, q + ((size_t)b * T + q0) * ldq + (size_t)h * D, ldq, nq, D);
	for (int i = threadIdx.x; i < BQ; i += NT)
		dsq[i] = i < nq ? ds[q0 + i] : INT_MAX;   /* padding rows see nothing */

	float acc[RR][2 * CP], m[RR], l[RR];
	ft_zero(acc);
#pragma unroll
	for (int r = 0; r < RR; r++) {
		m[r] = -INFINITY;
		l[r] = 0.0f;
	}

	const int kfirst = ds[q0], klast = q0 + nq - 1;
	for (int kt = kfirst / BK; kt <= klast / BK; kt++) {
		const int k0 = kt * BK, nk = min(BK, T - k0);
		__syncthreads();   /* the previous tile's readers of Ks, Vs, Ps are done */
		load_rows<DB, NT>(Ks, BK, kb + (size_t)k0 * ldk, ldk, nk, D);
		load_rows<DB, NT>(Vs, BK, vb + (size_t)k0 * ldk, ldk, nk, D);
		__syncthreads();

		float s[RR][SC];
		ft_zero(s);
		tile_dots<RR, SC, TY, LS>(s, Qs, Ks, ty, tx, D / 2);

#pragma unroll
		for (int r = 0; r < RR; r++) {
			const int i = ty + TY * r;
			float mt = -INFINITY;
#pragma unroll
			for (int c = 0; c < SC; c++) {
				const int j = k0 + tx + 16 * c;
				s[r][c] = j >= dsq[i] && j <= q0 + i ? s[r][c] * sh.sl2 : -INFINITY;
				mt = fmaxf(mt, s[r][c]);
			}
			const float mnew = fmaxf(m[r], max16(mt));
			const float base = mnew == -INFINITY ? 0.0f : mnew;
			const float alpha = exp2f(m[r] - base);   /* 0 while m was -inf */
			float rs = 0.0f;
#pragma unroll
			for (int c = 0; c < SC; c++) {
				const float p = exp2f(s[r][c] - base);
				Ps[i * PS + tx + 16 * c] = p;
				rs += p;
			}
			l[r] = l[r] * alpha + sum16(rs);
			m[r] = mnew;
#pragma unroll
			for (int c = 0; c < 2 * CP; c++)
				acc[r][c] *= alpha;
		}
		__syncthreads();
		tile_accum<RR, CP, TY, LS, PS, BK>(acc, Ps, Vs, ty, tx);
	}

#pragma unroll
	for (int r = 0; r < RR; r++) {
		const int i = ty + TY * r;
		if (i >= nq)
			continue;
		const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
		bf16 *o = out + ((size_t)b * T + q0 + i) * ldq + (size_t)h * D;
#pragma unroll
		for (int c = 0; c < CP; c++) {
			const int d = 2 * (tx + 16 * c);
			if (d < D)
				*(bf162 *)(o + d) = __floats2bfloat162_rn(acc[r][2 * c] * inv,
									  acc[r][2 * c + 1] * inv);
		}
		if (tx == 0)
			lse[((size_t)b * H + h) * T + q0 + i] =
				l[r] > 0.0f ? (m[r] + log2f(l[r])) * LN2 : -INFINITY;
	}
}

/* ---- backward ------------------------------------------------------------ */

/* Kernel 1: Dt[b][h][t] = dO . O for token n = b*T + t, head h; one warp
 * each, grid-stride over the (n, h) pairs. */
static __global__ void __launch_bounds__(DT_THREADS)
	attn_dt_kernel(float *Dt, const bf16 *dout, const bf16 *out, struct attn_shape sh)
{
	const size_t pairs = (size_t)sh.B * sh.T * sh.H;
	const size_t stride = (size_t)gridDim.x * (DT_THREADS / 32);
	const int lane = threadIdx.x % 32;
	for (size_t w = ((size_t)blockIdx.x * DT_THREADS + threadIdx.x) / 32; w < pairs;
	     w += stride) {
		const bf16 *g = dout + w * sh.D, *o = out + w * sh.D;   /* (n*H + h)*D */
		float sum = 0.0f;
		for (int d = 2 * lane; d < sh.D; d += 64) {
			float2 a = __bfloat1622float2(*(const bf162 *)(g + d));
			float2 c = __bfloat1622float2(*(const bf162 *)(o + d));
			sum = fmaf(a.y, c.y, fmaf(a.x, c.x, sum));
		}
		for (int off = 16; off > 0; off >>= 1)
			sum += __shfl_xor_sync(0xffffffffu, sum, off);
		if (lane == 0) {
			const size_t n = w / sh.H, t = n % sh.T, b = n / sh.T;
			const int h = (int)(w % sh.H);
			Dt[(b * sh.H + h) * sh.T + t] = sum;
		}
	}
}

/* The statistics of the query rows of one (b, h, query tile), by NT
 * threads: lse in base-2 units, Dt and doc starts (INT_MAX on padding rows:
 * masked out). */
template <int NT>
static __device__ void load_query_stats(float *lq, float *dtq, int *dsq, int BQ, const float *lse,
					const float *Dt, const int32_t *ds, int b, int h, int q0,
					int nq, const struct attn_shape &sh)
{
	const size_t so = ((size_t)b * sh.H + h) * sh.T + q0;   /* [B][H][T] */
	for (int i = threadIdx.x; i < BQ; i += NT) {
		lq[i] = i < nq ? lse[so + i] * LOG2E : 0.0f;
		dtq[i] = i < nq ? Dt[so + i] : 0.0f;
		dsq[i] = i < nq ? ds[q0 + i] : INT_MAX;
	}
}

/* Query rows of one (b, h, query tile) into shared memory: Q, dO and their
 * statistics. */
template <int DB, int BQ, int NT>
static __device__ void load_queries(bf162 *Qs, bf162 *Gs, float *lq, float *dtq, int *dsq,
				    const bf16 *q, const bf16 *dout, const float *lse,
				    const float *Dt, const int32_t *ds, int b, int h, int q0,
				    int nq, struct attn_shape sh)
{
	const size_t ldq = (size_t)sh.H * sh.D;
	const size_t qo = ((size_t)b * sh.T + q0) * ldq + (size_t)h * sh.D;
	load_rows<DB, NT>(Qs, BQ, q + qo, ldq, nq, sh.D);
	load_rows<DB, NT>(Gs, BQ, dout + qo, ldq, nq, sh.D);
	load_query_stats<NT>(lq, dtq, dsq, BQ, lse, Dt, ds, b, h, q0, nq, sh);
}

/* Kernel 2: dK, dV of key tile kt of kv head kvh in row b (early, heavy
 * tiles first). Rows of the score tiles are keys, columns queries. */
template <int DB, int BK, int BQ, int NT>
static __global__ void __launch_bounds__(NT)
	attn_dkv_kernel(bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse, const float *Dt,
			const bf16 *q, const bf16 *k, const bf16 *v, const int32_t *doc_start,
			struct attn_shape sh)
{
	constexpr int TY = NT / 16, RR = BK / TY, SC = BQ / 16, CP = DB / 32;
	constexpr int LS = row_words(DB), PS = BQ + 1;
	static_assert(NT % 32 == 0 && BK % TY == 0 && BQ % 16 == 0 && DB % 32 == 0, "tile");

	bf162 *Ks = (bf162 *)attn_smem;
	bf162 *Vs = Ks + BK * LS;
	bf162 *Qs = Vs + BK * LS;
	bf162 *Gs = Qs + BQ * LS;              /* dO */
	float *Pt = (float *)(Gs + BQ * LS);   /* [BK][PS] */
	float *dSt = Pt + BK * PS;             /* [BK][PS] */
	float *lq = dSt + BK * PS;             /* [BQ] */
	float *dtq = lq + BQ;                  /* [BQ] */
	int *dsq = (int *)(dtq + BQ);          /* [BQ] */

	const int T = sh.T, H = sh.H, D = sh.D, group = H / sh.KVH, nqt = (T + BQ - 1) / BQ;
	const struct kblock kbk = key_block(BK, doc_start, sh);
	const int b = kbk.b, kvh = kbk.kvh, k0 = kbk.k0, nk = kbk.nk, klast = k0 + nk - 1;
	const size_t ldk = kbk.ldk, ko = kbk.ko;
	const int32_t *ds = kbk.ds;
	const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

	load_rows<DB, NT>(Ks, BK, k + ko, ldk, nk, D);
	load_rows<DB, NT>(Vs, BK, v + ko, ldk, nk, D);

	float dK[RR][2 * CP], dV[RR][2 * CP];
	ft_zero(dK);
	ft_zero(dV);

	for (int g = 0; g < group; g++) {
		const int h = kvh * group + g;
		/* the first tile holding query k0; stop at the first tile whose
		 * documents all start after the key tile (non-decreasing starts) */
		for (int qt = k0 / BQ; qt < nqt && ds[qt * BQ] <= klast; qt++) {
			const int q0 = qt * BQ, nq = min(BQ, T - q0);
			__syncthreads();   /* the previous tile's readers are done */
			load_queries<DB, BQ, NT>(Qs, Gs, lq, dtq, dsq, q, dout, lse, Dt, ds, b, h,
						 q0, nq, sh);
			__syncthreads();

			float s[RR][SC], dp[RR][SC];
			ft_zero(s);
			ft_zero(dp);
			tile_dots2<RR, SC, TY, LS>(s, Ks, Qs, dp, Vs, Gs, ty, tx, D / 2);

#pragma unroll
			for (int r = 0; r < RR; r++) {
				const int jl = ty + TY * r, j = k0 + jl;
#pragma unroll
				for (int c = 0; c < SC; c++) {
					const int i = tx + 16 * c;
					const float p = j >= dsq[i] && j <= q0 + i
								? exp2f(s[r][c] * sh.sl2 - lq[i])
								: 0.0f;
					Pt[jl * PS + i] = p;
					dSt[jl * PS + i] = p * (dp[r][c] - dtq[i]);
				}
			}
			__syncthreads();
			tile_accum<RR, CP, TY, LS, PS, BQ>(dV, Pt, Gs, ty, tx);
			tile_accum<RR, CP, TY, LS, PS, BQ>(dK, dSt, Qs, ty, tx);
		}
	}

#pragma unroll
	for (int r = 0; r < RR; r++) {
		const int jl = ty + TY * r;
		if (jl >= nk)
			continue;
		const size_t o = ko + (size_t)jl * ldk;
#pragma unroll
		for (int c = 0; c < CP; c++) {
			const int d = 2 * (tx + 16 * c);
			if (d >= D)
				continue;
			if (dk) {
				bf162 *p = (bf162 *)(dk + o + d);
				float2 x = __bfloat1622float2(*p);
				*p = __floats2bfloat162_rn(x.x + sh.scale * dK[r][2 * c],
							   x.y + sh.scale * dK[r][2 * c + 1]);
			}
			if (dv) {
				bf162 *p = (bf162 *)(dv + o + d);
				float2 x = __bfloat1622float2(*p);
				*p = __floats2bfloat162_rn(x.x + dV[r][2 * c],
							   x.y + dV[r][2 * c + 1]);
			}
		}
	}
}

/* Kernel 3: dQ of query tile qt of head h in row b (late, heavy tiles
 * first). Rows of the score tiles are queries, columns keys. */
template <int DB, int BQ, int BK, int NT>
static __global__ void __launch_bounds__(NT)
	attn_dq_kernel(bf16 *dq, const bf16 *dout, const float *lse, const float *Dt,
		       const bf16 *q, const bf16 *k, const bf16 *v, const int32_t *doc_start,
		       struct attn_shape sh)
{
	constexpr int TY = NT / 16, RR = BQ / TY, SC = BK / 16, CP = DB / 32;
	constexpr int LS = row_words(DB), PS = BK + 1;
	static_assert(NT % 32 == 0 && BQ % TY == 0 && BK % 16 == 0 && DB % 32 == 0, "tile");

	bf162 *Qs = (bf162 *)attn_smem;
	bf162 *Gs = Qs + BQ * LS;              /* dO */
	bf162 *Ks = Gs + BQ * LS;
	bf162 *Vs = Ks + BK * LS;
	float *dS = (float *)(Vs + BK * LS);   /* [BQ][PS] */
	float *lq = dS + BQ * PS;              /* [BQ] */
	float *dtq = lq + BQ;                  /* [BQ] */
	int *dsq = (int *)(dtq + BQ);          /* [BQ] */

	const int T = sh.T, H = sh.H, D = sh.D;
	const struct qblock qb = query_block(BQ, k, v, doc_start, sh);
	const int b = qb.b, h = qb.h, q0 = qb.q0, nq = qb.nq;
	const size_t ldk = qb.ldk;
	const int32_t *ds = qb.ds;
	const bf16 *kb = qb.kb, *vb = qb.vb;
	const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

	load_queries<DB, BQ, NT>(Qs, Gs, lq, dtq, dsq, q, dout, lse, Dt, ds, b, h, q0, nq, sh);

	float acc[RR][2 * CP];
	ft_zero(acc);

	const int kfirst = ds[q0], klast = q0 + nq - 1;
	for (int kt = kfirst / BK; kt <= klast / BK; kt++) {
		const int k0 = kt * BK, nk = min(BK, T - k0);
		__syncthreads();   /* the previous tile's readers of Ks, Vs, dS are done */
		load_rows<DB, NT>(Ks, BK, kb + (size_t)k0 * ldk, ldk, nk, D);
		load_rows<DB, NT>(Vs, BK, vb + (size_t)k0 * ldk, ldk, nk, D);
		__syncthreads();

		float s[RR][SC], dp[RR][SC];
		ft_zero(s);
		ft_zero(dp);
		tile_dots2<RR, SC, TY, LS>(s, Qs, Ks, dp, Gs, Vs, ty, tx, D / 2);

#pragma unroll
		for (int r = 0; r < RR; r++) {
			const int i = ty + TY * r;
#pragma unroll
			for (int c = 0; c < SC; c++) {
				const int j = k0 + tx + 16 * c;
				const float p = j >= dsq[i] && j <= q0 + i
							? exp2f(s[r][c] * sh.sl2 - lq[i])
							: 0.0f;
				dS[i * PS + tx + 16 * c] = p * (dp[r][c] - dtq[i]);
			}
		}
		__syncthreads();
		tile_accum<RR, CP, TY, LS, PS, BK>(acc, dS, Ks, ty, tx);
	}

#pragma unroll
	for (int r = 0; r < RR; r++) {
		const int i = ty + TY * r;
		if (i >= nq)
			continue;
		bf16 *o = dq + ((size_t)b * T + q0 + i) * ((size_t)H * D) + (size_t)h * D;
#pragma unroll
		for (int c = 0; c < CP; c++) {
			const int d = 2 * (tx + 16 * c);
			if (d >= D)
				continue;
			bf162 *p = (bf162 *)(o + d);
			float2 x = __bfloat1622float2(*p);
			*p = __floats2bfloat162_rn(x.x + sh.scale * acc[r][2 * c],
						   x.y + sh.scale * acc[r][2 * c + 1]);
		}
	}
}

/* ---- tensor cores: head sizes up to 128 --------------------------------------
 *
 * The same three kernels with the tile products on mma.sync m16n8k16
 * (mma.cuh): bf16 operands, fp32 accumulation. A block is 4 warps; each
 * warp owns 16 rows of the block's tile (queries in the forward pass and
 * for dQ, keys for dK/dV) and keeps its rows' scores, statistics and
 * output accumulators in registers, in the mma's fragment layout: lane
 * 4g + t holds rows g and g+8 of its 16 and columns 2t, 2t+1 of each
 * 8-column slice. A score tile's accumulators are, pair by pair, the A
 * fragment of the next product (P V, dS K...), so P and dS go to the
 * tensor cores from registers, rounded to bf16 (FlashAttention-2 does the
 * same; the softmax sums use the fp32 values).
 *
 * Shared tiles are 32-bit words (bf16 pairs). Operands read along the head
 * dims (Q, K, V, dO as rows) are stored as rows of DB/2 words; operands
 * read along the tokens (V, K, Q, dO as the B of a product over tokens)
 * are stored transposed, a row per dim holding token pairs, so every
 * fragment is one 32-bit load. Rows are padded by 4 words: the 8 rows x 4
 * words that a fragment load touches fall in 32 different banks.
 *
 * Row statistics reduce over the 4 lanes of a quad (shuffles 1 and 2); a
 * row's running sum stays split over the quad until the end. The masks,
 * tile skipping, lse and Dt are those of the SIMT kernels above. */

enum { MMA_THREADS = 128 };   /* 4 warps of 16 rows: 64-row tiles */

/* words per shared row: n words of data and 4 of padding */
static __host__ __device__ constexpr int padded(int n)
{
	return n + 4;
}

static __device__ __forceinline__ uint32_t word_of(bf162 v)
{
	uint32_t u;
	memcpy(&u, &v, sizeof u);
	return u;
}

static __device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
	return word_of(__floats2bfloat162_rn(lo, hi));
}

/* rows x DB/2 words from global rows src + r*ld (r < valid, dims < D) into
 * rows of S words; zeros elsewhere */
template <int DB, int S>
static __device__ void mma_load_rows(uint32_t *dst, int rows, const bf16 *src, size_t ld,
				     int valid, int D)
{
	constexpr int P = DB / 2;
	for (int idx = threadIdx.x; idx < rows * P; idx += MMA_THREADS) {
		const int r = idx / P, p = idx % P;
		uint32_t x = 0;
		if (r < valid && 2 * p < D)
			x = word_of(*(const bf162 *)(src + r * ld + 2 * p));
		dst[r * S + p] = x;
	}
}

/* The transpose of rows x DB (rows even): dst[d * S + j] holds dim d of
 * rows 2j (low half) and 2j+1 (high half); zeros past valid and D. */
template <int DB, int S>
static __device__ void mma_load_cols(uint32_t *dst, int rows, const bf16 *src, size_t ld,
				     int valid, int D)
{
	constexpr int P = DB / 2;
	for (int idx = threadIdx.x; idx < rows / 2 * P; idx += MMA_THREADS) {
		const int j = idx / P, p = idx % P, r = 2 * j;
		uint32_t u0 = 0, u1 = 0;
		if (2 * p < D) {
			if (r < valid)
				u0 = word_of(*(const bf162 *)(src + r * ld + 2 * p));
			if (r + 1 < valid)
				u1 = word_of(*(const bf162 *)(src + (r + 1) * ld + 2 * p));
		}
		dst[2 * p * S + j] = (u0 & 0xffffu) | (u1 << 16);
		dst[(2 * p + 1) * S + j] = (u0 >> 16) | (u1 & 0xffff0000u);
	}
}

/* The A fragment of rows row0.. row0+15, words kw.. of a row-major tile. */
template <int S>
static __device__ __forceinline__ void frag_a(uint32_t (&a)[4], const uint32_t *m, int row0,
					      int kw)
{
	const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
	a[0] = m[(row0 + g) * S + kw + t];
	a[1] = m[(row0 + g + 8) * S + kw + t];
	a[2] = m[(row0 + g) * S + kw + 4 + t];
	a[3] = m[(row0 + g + 8) * S + kw + 4 + t];
}

/* The B fragment of columns col0.. col0+7, words kw..: column n is row
 * col0 + n of the tile (B = that tile transposed). */
template <int S>
static __device__ __forceinline__ void frag_b(uint32_t (&b)[2], const uint32_t *m, int col0,
					      int kw)
{
	const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
	b[0] = m[(col0 + g) * S + kw + t];
	b[1] = m[(col0 + g) * S + kw + 4 + t];
}

/* acc[n] (+)= A B over K = 16 KK: A rows row0.. of tile Am (words per row
 * SA), B columns 8n of tile Bm (SB); NN column slices */
template <int NN, int KK, int SA, int SB>
static __device__ __forceinline__ void mma_tile(float (&acc)[NN][4], const uint32_t *Am, int row0,
						const uint32_t *Bm)
{
#pragma unroll
	for (int kk = 0; kk < KK; kk++) {
		uint32_t a[4];
		frag_a<SA>(a, Am, row0, 8 * kk);
#pragma unroll
		for (int n = 0; n < NN; n++) {
			uint32_t b[2];
			frag_b<SB>(b, Bm, 8 * n, 8 * kk);
			ft_mma_bf16(acc[n], a, b);
		}
	}
}

/* acc[n] += P B over K = 16 KK with P in registers (accumulator layout of a
 * 16 x 16 KK tile, rounded to bf16 here); B columns 8n of Bm (SB) */
template <int NN, int KK, int SB>
static __device__ __forceinline__ void mma_tile_p(float (&acc)[NN][4], const float (&p)[2 * KK][4],
						  const uint32_t *Bm)
{
#pragma unroll
	for (int kk = 0; kk < KK; kk++) {
		const uint32_t a[4] = { pack2(p[2 * kk][0], p[2 * kk][1]),
					pack2(p[2 * kk][2], p[2 * kk][3]),
					pack2(p[2 * kk + 1][0], p[2 * kk + 1][1]),
					pack2(p[2 * kk + 1][2], p[2 * kk + 1][3]) };
#pragma unroll
		for (int n = 0; n < NN; n++) {
			uint32_t b[2];
			frag_b<SB>(b, Bm, 8 * n, 8 * kk);
			ft_mma_bf16(acc[n], a, b);
		}
	}
}

static __device__ __forceinline__ float quad_max(float x)
{
	x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
	return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

static __device__ __forceinline__ float quad_sum(float x)
{
	x += __shfl_xor_sync(0xffffffffu, x, 1);
	return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* Rows row0+g, row0+g+8 of a bf16 [.][ld] tensor += scale * acc (dims < D):
 * read, add in fp32, round, store. */
template <int NN>
static __device__ __forceinline__ void add_rows(bf16 *base, size_t ld, int valid, int D,
						float scale, const float (&acc)[NN][4], int row0)
{
	const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
#pragma unroll
	for (int h = 0; h < 2; h++) {
		const int r = row0 + g + 8 * h;
		if (r >= valid)
			continue;
#pragma unroll
		for (int n = 0; n < NN; n++) {
			const int d = 8 * n + 2 * t;
			if (d >= D)
				continue;
			bf162 *p = (bf162 *)(base + r * ld + d);
			const float2 x = __bfloat1622float2(*p);
			*p = __floats2bfloat162_rn(x.x + scale * acc[n][2 * h],
						   x.y + scale * acc[n][2 * h + 1]);
		}
	}
}

/* shared words of the forward kernel: Q, K rows, V transposed, doc starts */
static constexpr size_t mma_fwd_smem(int DB, int BQ, int BK)
{
	return 4 * ((size_t)(BQ + BK) * padded(DB / 2) + (size_t)DB * padded(BK / 2) + BQ);
}

/* Forward: block = query tile qt (BQ = 64 rows) of head h in row b, heavy
 * tiles first; key tiles of BK. */
template <int DB, int BK>
static __global__ void __launch_bounds__(MMA_THREADS)
	attn_forward_mma(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
			 const int32_t *doc_start, struct attn_shape sh)
{
	constexpr int BQ = 64, SQ = padded(DB / 2), SV = padded(BK / 2);
	constexpr int NS = BK / 8, NO = DB / 8;
	uint32_t *Qs = attn_smem;
	uint32_t *Ks = Qs + BQ * SQ;
	uint32_t *Vt = Ks + BK * SQ;   /* [DB][SV] */
	int *dsq = (int *)(Vt + DB * SV);

	const int T = sh.T, H = sh.H, D = sh.D;
	const struct qblock qb = query_block(BQ, k, v, doc_start, sh);
	const int b = qb.b, h = qb.h, q0 = qb.q0, nq = qb.nq;
	const size_t ldq = qb.ldq, ldk = qb.ldk;
	const int32_t *ds = qb.ds;
	const bf16 *kb = qb.kb, *vb = qb.vb;
	const int w16 = threadIdx.x / 32 * 16, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;

	mma_load_rows<DB, SQ>(Qs, BQ, q + ((size_t)b * T + q0) * ldq + (size_t)h * D, ldq, nq, D);
	for (int i = threadIdx.x; i < BQ; i += MMA_THREADS)
		dsq[i] = i < nq ? ds[q0 + i] : INT_MAX;

	float o[NO][4], m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };
	ft_zero(o);
	const int kfirst = ds[q0], klast = q0 + nq - 1;
	for (int kt = kfirst / BK; kt <= klast / BK; kt++) {
		const int k0 = kt * BK, nk = min(BK, T - k0);
		__syncthreads();   /* the previous tile's readers of Ks, Vt are done */
		mma_load_rows<DB, SQ>(Ks, BK, kb + (size_t)k0 * ldk, ldk, nk, D);
		mma_load_cols<DB, SV>(Vt, BK, vb + (size_t)k0 * ldk, ldk, nk, D);
		__syncthreads();

		float s[NS][4];
		ft_zero(s);
		mma_tile<NS, DB / 16, SQ, SQ>(s, Qs, w16, Ks);

#pragma unroll
		for (int hh = 0; hh < 2; hh++) {
			const int i = w16 + g + 8 * hh, lo = dsq[i], hi = q0 + i;
			float mt = -INFINITY;
#pragma unroll
			for (int n = 0; n < NS; n++)
#pragma unroll
				for (int e = 0; e < 2; e++) {
					const int j = k0 + 8 * n + 2 * t + e;
					float &x = s[n][2 * hh + e];
					x = j >= lo && j <= hi ? x * sh.sl2 : -INFINITY;
					mt = fmaxf(mt, x);
				}
			const float mnew = fmaxf(m[hh], quad_max(mt));
			const float base = mnew == -INFINITY ? 0.0f : mnew;
			const float alpha = exp2f(m[hh] - base);
			float rs = 0.0f;
#pragma unroll
			for (int n = 0; n < NS; n++)
#pragma unroll
				for (int e = 0; e < 2; e++) {
					float &x = s[n][2 * hh + e];
					x = exp2f(x - base);
					rs += x;
				}
			l[hh] = l[hh] * alpha + rs;   /* this lane's share of the row */
			m[hh] = mnew;
#pragma unroll
			for (int n = 0; n < NO; n++) {
				o[n][2 * hh] *= alpha;
				o[n][2 * hh + 1] *= alpha;
			}
		}
		mma_tile_p<NO, BK / 16, SV>(o, s, Vt);
	}

#pragma unroll
	for (int hh = 0; hh < 2; hh++) {
		const float sum = quad_sum(l[hh]);
		const int i = w16 + g + 8 * hh;
		if (i >= nq)
			continue;
		const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
		bf16 *orow = out + ((size_t)b * T + q0 + i) * ldq + (size_t)h * D;
#pragma unroll
		for (int n = 0; n < NO; n++) {
			const int d = 8 * n + 2 * t;
			if (d < D)
				*(bf162 *)(orow + d) = __floats2bfloat162_rn(o[n][2 * hh] * inv,
									     o[n][2 * hh + 1] * inv);
		}
		if (t == 0)
			lse[((size_t)b * H + h) * T + q0 + i] =
				sum > 0.0f ? (m[hh] + log2f(sum)) * LN2 : -INFINITY;
	}
}

/* shared words of dK/dV: K, V rows [BK]; Q, dO rows [BQ]; Q, dO transposed
 * [DB][BQ/2]; lse, Dt, doc starts [BQ] */
static constexpr size_t mma_dkv_smem(int DB, int BK, int BQ)
{
	return 4 * ((size_t)(2 * BK + 2 * BQ) * padded(DB / 2) + 2 * (size_t)DB * padded(BQ / 2) +
		    3 * BQ);
}

/* dK, dV: block = key tile kt (64 keys) of kv head kvh in row b; over the
 * group's query heads and the query tiles (BQ) that see the tile. Score
 * tiles are transposed here: rows keys, columns queries. */
template <int DB, int BQ>
static __global__ void __launch_bounds__(MMA_THREADS)
	attn_dkv_mma(bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse, const float *Dt,
		     const bf16 *q, const bf16 *k, const bf16 *v, const int32_t *doc_start,
		     struct attn_shape sh)
{
	constexpr int BK = 64, SR = padded(DB / 2), ST = padded(BQ / 2);
	constexpr int NS = BQ / 8, NO = DB / 8;
	uint32_t *Ks = attn_smem;
	uint32_t *Vs = Ks + BK * SR;
	uint32_t *Qs = Vs + BK * SR;
	uint32_t *Gs = Qs + BQ * SR;    /* dO */
	uint32_t *Qt = Gs + BQ * SR;    /* [DB][ST] */
	uint32_t *Gt = Qt + DB * ST;
	float *lq = (float *)(Gt + DB * ST);
	float *dtq = lq + BQ;
	int *dsq = (int *)(dtq + BQ);

	const int T = sh.T, H = sh.H, D = sh.D, group = H / sh.KVH, nqt = (T + BQ - 1) / BQ;
	const struct kblock kbk = key_block(BK, doc_start, sh);
	const int b = kbk.b, kvh = kbk.kvh, k0 = kbk.k0, nk = kbk.nk, klast = k0 + nk - 1;
	const size_t ldk = kbk.ldk, ldq = (size_t)H * D, ko = kbk.ko;
	const int32_t *ds = kbk.ds;
	const int w16 = threadIdx.x / 32 * 16, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;

	mma_load_rows<DB, SR>(Ks, BK, k + ko, ldk, nk, D);
	mma_load_rows<DB, SR>(Vs, BK, v + ko, ldk, nk, D);

	float dK[NO][4], dV[NO][4];
	ft_zero(dK);
	ft_zero(dV);
	for (int gi = 0; gi < group; gi++) {
		const int h = kvh * group + gi;
		for (int qt = k0 / BQ; qt < nqt && ds[qt * BQ] <= klast; qt++) {
			const int q0 = qt * BQ, nq = min(BQ, T - q0);
			const size_t qo = ((size_t)b * T + q0) * ldq + (size_t)h * D;
			__syncthreads();   /* the previous tile's readers are done */
			mma_load_rows<DB, SR>(Qs, BQ, q + qo, ldq, nq, D);
			mma_load_rows<DB, SR>(Gs, BQ, dout + qo, ldq, nq, D);
			mma_load_cols<DB, ST>(Qt, BQ, q + qo, ldq, nq, D);
			mma_load_cols<DB, ST>(Gt, BQ, dout + qo, ldq, nq, D);
			load_query_stats<MMA_THREADS>(lq, dtq, dsq, BQ, lse, Dt, ds, b, h, q0, nq, sh);
			__syncthreads();

			float s[NS][4], dp[NS][4];
			ft_zero(s);
			ft_zero(dp);
			mma_tile<NS, DB / 16, SR, SR>(s, Ks, w16, Qs);    /* S^T = K Q^T */
			mma_tile<NS, DB / 16, SR, SR>(dp, Vs, w16, Gs);   /* dP^T = V dO^T */
#pragma unroll
			for (int hh = 0; hh < 2; hh++) {
				const int j = k0 + w16 + g + 8 * hh;
#pragma unroll
				for (int n = 0; n < NS; n++)
#pragma unroll
					for (int e = 0; e < 2; e++) {
						const int i = 8 * n + 2 * t + e;
						const int c = 2 * hh + e;
						const float p = j >= dsq[i] && j <= q0 + i
									? exp2f(s[n][c] * sh.sl2 - lq[i])
									: 0.0f;
						s[n][c] = p;
						dp[n][c] = p * (dp[n][c] - dtq[i]);
					}
			}
			mma_tile_p<NO, BQ / 16, ST>(dV, s, Gt);    /* dV += P^T dO */
			mma_tile_p<NO, BQ / 16, ST>(dK, dp, Qt);   /* dK += dS^T Q */
		}
	}
	if (dk)
		add_rows(dk + ko, ldk, nk, D, sh.scale, dK, w16);
	if (dv)
		add_rows(dv + ko, ldk, nk, D, 1.0f, dV, w16);
}

/* shared words of dQ: Q, dO rows [64]; K, V rows [BK]; K transposed
 * [DB][BK/2]; lse, Dt, doc starts [64] */
static constexpr size_t mma_dq_smem(int DB, int BK)
{
	return 4 * ((size_t)(2 * 64 + 2 * BK) * padded(DB / 2) + (size_t)DB * padded(BK / 2) +
		    3 * 64);
}

/* dQ: block = query tile qt (64 queries) of head h in row b, heavy tiles
 * first; key tiles of BK. */
template <int DB, int BK>
static __global__ void __launch_bounds__(MMA_THREADS)
	attn_dq_mma(bf16 *dq, const bf16 *dout, const float *lse, const float *Dt, const bf16 *q,
		    const bf16 *k, const bf16 *v, const int32_t *doc_start, struct attn_shape sh)
{
	constexpr int BQ = 64, SR = padded(DB / 2), SK = padded(BK / 2);
	constexpr int NS = BK / 8, NO = DB / 8;
	uint32_t *Qs = attn_smem;
	uint32_t *Gs = Qs + BQ * SR;
	uint32_t *Ks = Gs + BQ * SR;
	uint32_t *Vs = Ks + BK * SR;
	uint32_t *Kt = Vs + BK * SR;   /* [DB][SK] */
	float *lq = (float *)(Kt + DB * SK);
	float *dtq = lq + BQ;
	int *dsq = (int *)(dtq + BQ);

	const int T = sh.T, D = sh.D;
	const struct qblock qb = query_block(BQ, k, v, doc_start, sh);
	const int b = qb.b, h = qb.h, q0 = qb.q0, nq = qb.nq;
	const size_t ldq = qb.ldq, ldk = qb.ldk;
	const size_t qo = ((size_t)b * T + q0) * ldq + (size_t)h * D;
	const int32_t *ds = qb.ds;
	const bf16 *kb = qb.kb, *vb = qb.vb;
	const int w16 = threadIdx.x / 32 * 16, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;

	mma_load_rows<DB, SR>(Qs, BQ, q + qo, ldq, nq, D);
	mma_load_rows<DB, SR>(Gs, BQ, dout + qo, ldq, nq, D);
	load_query_stats<MMA_THREADS>(lq, dtq, dsq, BQ, lse, Dt, ds, b, h, q0, nq, sh);

	float acc[NO][4];
	ft_zero(acc);
	const int kfirst = ds[q0], klast = q0 + nq - 1;
	for (int kt = kfirst / BK; kt <= klast / BK; kt++) {
		const int k0 = kt * BK, nk = min(BK, T - k0);
		__syncthreads();   /* the previous tile's readers of Ks, Vs, Kt are done */
		mma_load_rows<DB, SR>(Ks, BK, kb + (size_t)k0 * ldk, ldk, nk, D);
		mma_load_rows<DB, SR>(Vs, BK, vb + (size_t)k0 * ldk, ldk, nk, D);
		mma_load_cols<DB, SK>(Kt, BK, kb + (size_t)k0 * ldk, ldk, nk, D);
		__syncthreads();

		float s[NS][4], dp[NS][4];
		ft_zero(s);
		ft_zero(dp);
		mma_tile<NS, DB / 16, SR, SR>(s, Qs, w16, Ks);    /* S = Q K^T */
		mma_tile<NS, DB / 16, SR, SR>(dp, Gs, w16, Vs);   /* dP = dO V^T */
#pragma unroll
		for (int hh = 0; hh < 2; hh++) {
			const int i = w16 + g + 8 * hh;
#pragma unroll
			for (int n = 0; n < NS; n++)
#pragma unroll
				for (int e = 0; e < 2; e++) {
					const int j = k0 + 8 * n + 2 * t + e, c = 2 * hh + e;
					const float p = j >= dsq[i] && j <= q0 + i
								? exp2f(s[n][c] * sh.sl2 - lq[i])
								: 0.0f;
					dp[n][c] = p * (dp[n][c] - dtq[i]);
				}
		}
		mma_tile_p<NO, BK / 16, SK>(acc, dp, Kt);   /* dQ += dS K */
	}
	add_rows(dq + qo, ldq, nq, D, sh.scale, acc, w16);
}

/* ---- host ---------------------------------------------------------------- */

/* Kernels above 48 KB of dynamic shared memory must opt in; cheap, so done
 * at every launch rather than tracked. */
template <typename K> static void smem_opt_in(K *kernel, size_t bytes)
{
	CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
					(int)bytes));
}

static struct attn_shape shape_of(int B, int T, int H, int KVH, int D)
{
	assert(B >= 0 && T >= 0 && H > 0 && KVH > 0 && H % KVH == 0);
	assert(D >= 2 && D <= 256 && D % 2 == 0);
	assert((long long)B * T <= INT_MAX);
	/* grids of B*H*ceil(T/16) blocks at most (the smallest tile is 32) */
	assert((long long)B * H * ((T + 15) / 16) <= INT_MAX);
	struct attn_shape sh;
	sh.B = B;
	sh.T = T;
	sh.H = H;
	sh.KVH = KVH;
	sh.D = D;
	sh.scale = 1.0f / sqrtf((float)D);
	sh.sl2 = sh.scale * LOG2E;
	return sh;
}

static int head_bucket(int D)
{
	return D <= 32 ? 32 : D <= 64 ? 64 : D <= 128 ? 128 : 256;
}

template <int DB, int BQ, int BK, int NT>
static void forward(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
		    const int32_t *doc_start, const struct attn_shape &sh)
{
	const size_t smem = fwd_smem(DB, BQ, BK);
	const unsigned blocks = (unsigned)(sh.B * sh.H * ((sh.T + BQ - 1) / BQ));
	smem_opt_in(attn_forward_kernel<DB, BQ, BK, NT>, smem);
	attn_forward_kernel<DB, BQ, BK, NT>
		<<<blocks, NT, smem, ft_cuda_stream>>>(out, lse, q, k, v, doc_start, sh);
	LAUNCH_CHECK();
}

template <int DB, int BK>
static void forward_mma(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
			const int32_t *doc_start, const struct attn_shape &sh)
{
	const size_t smem = mma_fwd_smem(DB, 64, BK);
	const unsigned blocks = (unsigned)(sh.B * sh.H * ((sh.T + 63) / 64));
	smem_opt_in(attn_forward_mma<DB, BK>, smem);
	attn_forward_mma<DB, BK>
		<<<blocks, MMA_THREADS, smem, ft_cuda_stream>>>(out, lse, q, k, v, doc_start, sh);
	LAUNCH_CHECK();
}

/* Forward: see the top of the file. out and lse are overwritten. */
void ft_cuda_attention_forward(void *out, float *lse, const void *q, const void *k,
			       const void *v, const int32_t *doc_start, int B, int T, int H,
			       int KVH, int D)
{
	const struct attn_shape sh = shape_of(B, T, H, KVH, D);
	if (B == 0 || T == 0)
		return;
	bf16 *o = (bf16 *)out;
	const bf16 *qq = (const bf16 *)q, *kk = (const bf16 *)k, *vv = (const bf16 *)v;
	/* tensor cores up to 128 dims: <DB, key tile>; 256: SIMT <DB, BQ, BK, threads> */
	switch (head_bucket(D)) {
	case 32: forward_mma<32, 64>(o, lse, qq, kk, vv, doc_start, sh); break;
	case 64: forward_mma<64, 64>(o, lse, qq, kk, vv, doc_start, sh); break;
	case 128: forward_mma<128, 64>(o, lse, qq, kk, vv, doc_start, sh); break;
	default: forward<256, 32, 32, 128>(o, lse, qq, kk, vv, doc_start, sh); break;
	}
}

/* Kernels 2 and 3 of one bucket: <DB, key tile and query tile of kernel 2,
 * query tile and key tile of kernel 3>. */
template <int DB, int KBK, int KBQ, int QBQ, int QBK>
static void backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse,
		     const float *Dt, const bf16 *q, const bf16 *k, const bf16 *v,
		     const int32_t *doc_start, const struct attn_shape &sh)
{
	if (dk || dv) {
		const size_t smem = dkv_smem(DB, KBK, KBQ);
		const unsigned blocks = (unsigned)(sh.B * sh.KVH * ((sh.T + KBK - 1) / KBK));
		smem_opt_in(attn_dkv_kernel<DB, KBK, KBQ, 256>, smem);
		attn_dkv_kernel<DB, KBK, KBQ, 256><<<blocks, 256, smem, ft_cuda_stream>>>(
			dk, dv, dout, lse, Dt, q, k, v, doc_start, sh);
		LAUNCH_CHECK();
	}
	if (dq) {
		const size_t smem = dq_smem(DB, QBQ, QBK);
		const unsigned blocks = (unsigned)(sh.B * sh.H * ((sh.T + QBQ - 1) / QBQ));
		smem_opt_in(attn_dq_kernel<DB, QBQ, QBK, 128>, smem);
		attn_dq_kernel<DB, QBQ, QBK, 128><<<blocks, 128, smem, ft_cuda_stream>>>(
			dq, dout, lse, Dt, q, k, v, doc_start, sh);
		LAUNCH_CHECK();
	}
}

/* The tensor-core kernels 2 and 3: <DB, query tile of kernel 2, key tile
 * of kernel 3> (key tiles of kernel 2 and query tiles of 3 are 64). */
template <int DB, int KBQ, int QBK>
static void backward_mma(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse,
			 const float *Dt, const bf16 *q, const bf16 *k, const bf16 *v,
			 const int32_t *doc_start, const struct attn_shape &sh)
{
	if (dk || dv) {
		const size_t smem = mma_dkv_smem(DB, 64, KBQ);
		const unsigned blocks = (unsigned)(sh.B * sh.KVH * ((sh.T + 63) / 64));
		smem_opt_in(attn_dkv_mma<DB, KBQ>, smem);
		attn_dkv_mma<DB, KBQ><<<blocks, MMA_THREADS, smem, ft_cuda_stream>>>(
			dk, dv, dout, lse, Dt, q, k, v, doc_start, sh);
		LAUNCH_CHECK();
	}
	if (dq) {
		const size_t smem = mma_dq_smem(DB, QBK);
		const unsigned blocks = (unsigned)(sh.B * sh.H * ((sh.T + 63) / 64));
		smem_opt_in(attn_dq_mma<DB, QBK>, smem);
		attn_dq_mma<DB, QBK><<<blocks, MMA_THREADS, smem, ft_cuda_stream>>>(
			dq, dout, lse, Dt, q, k, v, doc_start, sh);
		LAUNCH_CHECK();
	}
}

/* Backward: adds into dq, dk, dv (bf16: read, add in fp32, round, store);
 * a NULL gradient is skipped. lse is the forward's. Uses the scratch for Dt
 * (B*H*T floats). */
void ft_cuda_attention_backward(void *dq, void *dk, void *dv, const void *dout,
				const void *out, const float *lse, const void *q, const void *k,
				const void *v, const int32_t *doc_start, int B, int T, int H,
				int KVH, int D)
{
	const struct attn_shape sh = shape_of(B, T, H, KVH, D);
	if (B == 0 || T == 0 || (!dq && !dk && !dv))
		return;
	const bf16 *g = (const bf16 *)dout, *o = (const bf16 *)out;
	const bf16 *qq = (const bf16 *)q, *kk = (const bf16 *)k, *vv = (const bf16 *)v;
	bf16 *gq = (bf16 *)dq, *gk = (bf16 *)dk, *gv = (bf16 *)dv;

	float *Dt = (float *)ft_cuda_scratch((size_t)B * H * T * sizeof(float));
	const size_t pairs = (size_t)B * T * H;
	attn_dt_kernel<<<ft_cuda_blocks(pairs * 32, DT_THREADS), DT_THREADS, 0, ft_cuda_stream>>>(
		Dt, g, o, sh);
	LAUNCH_CHECK();

	/* tensor cores up to 128 dims (kernel 2 with 32-query tiles at 128: its
	 * dK and dV accumulators take 128 registers); 256: SIMT, 256 threads for
	 * kernel 2, 128 for kernel 3, up to 64 accumulators each */
	switch (head_bucket(D)) {
	case 32:
		backward_mma<32, 64, 64>(gq, gk, gv, g, lse, Dt, qq, kk, vv, doc_start, sh);
		break;
	case 64:
		backward_mma<64, 64, 64>(gq, gk, gv, g, lse, Dt, qq, kk, vv, doc_start, sh);
		break;
	case 128:
		backward_mma<128, 32, 64>(gq, gk, gv, g, lse, Dt, qq, kk, vv, doc_start, sh);
		break;
	default:
		backward<256, 32, 32, 32, 32>(gq, gk, gv, g, lse, Dt, qq, kk, vv, doc_start, sh);
		break;
	}
}
