/* attention.c: scaled dot-product attention, causal and restricted to the
 * query's own document (packed rows), with grouped-query heads.
 *
 * The work is done document by document and head by head with BLAS, as
 * eager attention does: for a document of n tokens (rows s..s+n of a
 * packed row) and query head h reading kv head h / group,
 *   S = scale Q K^T (n x n),  P = causal softmax(S),  O = P V
 * forward keeps O and the log-sum-exp of each query's scores; backward
 * recomputes P = exp(S - lse) (as FlashAttention does) and, with
 * Dt = dO_t . O_t:
 *   dV += P^T dO,  dP = dO V^T,  dS = P (dP - Dt),
 *   dQ += scale dS K,  dK += scale dS^T Q.
 * Q, K, V, O and their gradients are read in place: a head's rows are a
 * strided matrix (leading dimension H*D or KVH*D). Heads of one group add
 * into the same dK/dV in a fixed order, and every BLAS output element is
 * computed by one thread, so results do not depend on the thread count.
 * The upper triangle of S is computed and discarded (half the FLOPs), the
 * price of handing whole blocks to sgemm.
 *
 * Scratch: two n x n blocks, kept between calls and grown as needed (the
 * decoder calls ops from one thread). The op table says ops cannot fail;
 * running out of memory for them aborts with a message. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h"

static float *scratch;
static size_t scratch_cap;

/* Two blocks of n x n floats. */
static float *blocks(int n)
{
	size_t need = 2 * (size_t)n * (size_t)n;
	if (need > scratch_cap) {
		free(scratch);
		scratch = malloc(need * sizeof *scratch);
		if (!scratch) {
			fprintf(stderr, "ft: out of memory for attention over %d tokens\n", n);
			abort();
		}
		scratch_cap = need;
	}
	return scratch;
}

/* The end of the document starting at s in row b (doc_start is the start of
 * each position's document). */
static int doc_end(const int32_t *row_start, int s, int T)
{
	int e = s + 1;
	while (e < T && row_start[e] == s)
		e++;
	return e;
}

/* P = causal softmax of P (holding scaled scores), lse of each row. */
static void softmax_rows(float *P, float *lse, int n)
{
#pragma omp parallel for schedule(static) if (n >= 64)
	for (int t = 0; t < n; t++) {
		float *p = P + (size_t)t * n;
		float mx = -INFINITY;
		for (int j = 0; j <= t; j++)
			mx = p[j] > mx ? p[j] : mx;
		float sum = 0.0f;
		for (int j = 0; j <= t; j++) {
			p[j] = expf(p[j] - mx);
			sum += p[j];
		}
		float inv = 1.0f / sum;
		for (int j = 0; j <= t; j++)
			p[j] *= inv;
		for (int j = t + 1; j < n; j++)
			p[j] = 0.0f;
		lse[t] = mx + logf(sum);
	}
}

void ft_cpu_attention_forward(float *out, float *lse, const float *q, const float *k,
			      const float *v, const int32_t *doc_start, int B, int T, int H,
			      int KVH, int D)
{
	assert(H % KVH == 0);
	int group = H / KVH, ldq = H * D, ldk = KVH * D;
	float scale = 1.0f / sqrtf((float)D);
	for (int b = 0; b < B; b++) {
		const int32_t *rs = doc_start + (size_t)b * T;
		for (int s = 0; s < T;) {
			assert(rs[s] == s);
			int e = doc_end(rs, s, T), n = e - s;
			float *P = blocks(n);
			for (int h = 0; h < H; h++) {
				size_t qo = ((size_t)b * T + s) * ldq + (size_t)h * D;
				size_t ko = ((size_t)b * T + s) * ldk + (size_t)(h / group) * D;
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, D, scale,
					    q + qo, ldq, k + ko, ldk, 0.0f, P, n);
				softmax_rows(P, lse + ((size_t)b * H + h) * T + s, n);
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, n, 1.0f, P,
					    n, v + ko, ldk, 0.0f, out + qo, ldq);
			}
			s = e;
		}
	}
}

void ft_cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout,
			       const float *out, const float *lse, const float *q, const float *k,
			       const float *v, const int32_t *doc_start, int B, int T, int H,
			       int KVH, int D)
{
	int group = H / KVH, ldq = H * D, ldk = KVH * D;
	float scale = 1.0f / sqrtf((float)D);
	for (int b = 0; b < B; b++) {
		const int32_t *rs = doc_start + (size_t)b * T;
		for (int s = 0; s < T;) {
			int e = doc_end(rs, s, T), n = e - s;
			float *P = blocks(n), *dP = P + (size_t)n * n;
			for (int h = 0; h < H; h++) {
				size_t qo = ((size_t)b * T + s) * ldq + (size_t)h * D;
				size_t ko = ((size_t)b * T + s) * ldk + (size_t)(h / group) * D;
				const float *L = lse + ((size_t)b * H + h) * T + s;
				/* P again, from the saved log-sum-exp */
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, D, scale,
					    q + qo, ldq, k + ko, ldk, 0.0f, P, n);
#pragma omp parallel for schedule(static) if (n >= 64)
				for (int t = 0; t < n; t++) {
					float *p = P + (size_t)t * n;
					for (int j = 0; j <= t; j++)
						p[j] = expf(p[j] - L[t]);
					for (int j = t + 1; j < n; j++)
						p[j] = 0.0f;
				}
				if (dv)
					cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D, n, 1.0f,
						    P, n, dout + qo, ldq, 1.0f, dv + ko, ldk);
				if (!dq && !dk)
					continue;
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, D, 1.0f,
					    dout + qo, ldq, v + ko, ldk, 0.0f, dP, n);
#pragma omp parallel for schedule(static) if (n >= 64)
				for (int t = 0; t < n; t++) {
					const float *o = out + qo + (size_t)t * ldq;
					const float *g = dout + qo + (size_t)t * ldq;
					float Dt = 0.0f;
					for (int d = 0; d < D; d++)
						Dt += g[d] * o[d];
					float *p = P + (size_t)t * n, *dp = dP + (size_t)t * n;
					for (int j = 0; j < n; j++)   /* dS, into dP */
						dp[j] = p[j] * (dp[j] - Dt);
				}
				if (dq)
					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, n, scale,
						    dP, n, k + ko, ldk, 1.0f, dq + qo, ldq);
				if (dk)
					cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D, n, scale,
						    dP, n, q + qo, ldq, 1.0f, dk + ko, ldk);
			}
			s = e;
		}
	}
}
