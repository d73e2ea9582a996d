/* attention.c: scaled dot-product attention, causal and restricted to the
 * query's own document (packed rows), with grouped-query heads. Forward
 * keeps only out and the log-sum-exp of each query's scores; backward
 * recomputes the probabilities P = exp(s - lse) (as FlashAttention does)
 * and, with Dt = dout_t . out_t:
 *   dv_j += sum_t P_tj dout_t
 *   dS_tj = P_tj (dout_t . v_j - Dt)
 *   dq_t += scale * sum_j dS_tj k_j,  dk_j += scale * sum_t dS_tj q_t
 * dq is one pass over queries, dk/dv a second pass over keys: each output
 * is owned by one loop iteration and summed in a fixed order. */
#include <assert.h>
#include <math.h>

#include "cpu.h"

static float dot(const float *a, const float *b, int D)
{
	float s = 0.0f;
	for (int d = 0; d < D; d++)
		s += a[d] * b[d];
	return s;
}

void ft_cpu_attention_forward(float *out, float *lse, const float *q, const float *k,
			      const float *v, const int32_t *doc_start, int B, int T, int H,
			      int KVH, int D)
{
	assert(H % KVH == 0);
	int group = H / KVH;
	float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for collapse(3) schedule(static)
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++)
			for (int t = 0; t < T; t++) {
				size_t nt = (size_t)b * T + t;
				const float *qt = q + (nt * H + h) * D;
				float *ot = out + (nt * H + h) * D;
				int kvh = h / group, j0 = doc_start[nt];
				assert(j0 >= 0 && j0 <= t);
				float mx = -INFINITY;
				for (int j = j0; j <= t; j++) {
					const float *kj = k + (((size_t)b * T + j) * KVH + kvh) * D;
					float s = scale * dot(qt, kj, D);
					mx = s > mx ? s : mx;
				}
				for (int d = 0; d < D; d++)
					ot[d] = 0.0f;
				float sum = 0.0f;
				for (int j = j0; j <= t; j++) {
					size_t nj = ((size_t)b * T + j) * KVH + kvh;
					float p = expf(scale * dot(qt, k + nj * D, D) - mx);
					sum += p;
					const float *vj = v + nj * D;
					for (int d = 0; d < D; d++)
						ot[d] += p * vj[d];
				}
				for (int d = 0; d < D; d++)
					ot[d] /= sum;
				lse[((size_t)b * H + h) * T + t] = mx + logf(sum);
			}
}

void ft_cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout,
			       const float *out, const float *lse, const float *q, const float *k,
			       const float *v, const int32_t *doc_start, int B, int T, int H,
			       int KVH, int D)
{
	int group = H / KVH;
	float scale = 1.0f / sqrtf((float)D);
	if (dq) {
#pragma omp parallel for collapse(3) schedule(static)
		for (int b = 0; b < B; b++)
			for (int h = 0; h < H; h++)
				for (int t = 0; t < T; t++) {
					size_t nt = ((size_t)b * T + t) * H + h;
					const float *qt = q + nt * D, *dot_ = dout + nt * D;
					float *dqt = dq + nt * D;
					float L = lse[((size_t)b * H + h) * T + t];
					float Dt = dot(dot_, out + nt * D, D);
					int kvh = h / group;
					for (int j = doc_start[(size_t)b * T + t]; j <= t; j++) {
						size_t nj = ((size_t)b * T + j) * KVH + kvh;
						float p = expf(scale * dot(qt, k + nj * D, D) - L);
						float ds = p * (dot(dot_, v + nj * D, D) - Dt);
						const float *kj = k + nj * D;
						for (int d = 0; d < D; d++)
							dqt[d] += scale * ds * kj[d];
					}
				}
	}
	if (!dk && !dv)
		return;
#pragma omp parallel for collapse(3) schedule(static)
	for (int b = 0; b < B; b++)
		for (int kvh = 0; kvh < KVH; kvh++)
			for (int j = 0; j < T; j++) {
				size_t nj = ((size_t)b * T + j) * KVH + kvh;
				const float *kj = k + nj * D, *vj = v + nj * D;
				int start = doc_start[(size_t)b * T + j];
				for (int h = kvh * group; h < (kvh + 1) * group; h++)
					for (int t = j; t < T && doc_start[(size_t)b * T + t] == start;
					     t++) {
						size_t nt = ((size_t)b * T + t) * H + h;
						const float *qt = q + nt * D, *dot_ = dout + nt * D;
						float L = lse[((size_t)b * H + h) * T + t];
						float p = expf(scale * dot(qt, kj, D) - L);
						if (dv)
							for (int d = 0; d < D; d++)
								dv[nj * D + d] += p * dot_[d];
						if (dk) {
							float Dt = dot(dot_, out + nt * D, D);
							float ds = p * (dot(dot_, vj, D) - Dt);
							for (int d = 0; d < D; d++)
								dk[nj * D + d] += scale * ds * qt[d];
						}
					}
			}
}
