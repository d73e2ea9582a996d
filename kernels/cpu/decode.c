/* decode.c: the decode ops (decode.h) on the CPU.
 *
 * matmul_rows: every output element is one dot product summed in a fixed
 * order (16 lanes, then the lanes pairwise), so a row's result does not
 * depend on how many rows come with it. OpenBLAS's sgemm does not promise
 * that: for small matrices and single rows it takes other kernels whose
 * sums round differently (measured on 0.3.21), which would make a
 * sequence's tokens depend on its batch.
 *
 * attention_cached: one (token, head) pair per task: scores s_j = scale q.k_j
 * for j <= pos, then softmax as attention.c computes it (max, exp, sum,
 * multiply by the inverse) and out = sum_j p_j v_j, every sum in j order,
 * so a token's result is the same whatever else is in the batch and
 * however many threads run. Two passes over the keys instead of a scratch
 * row of scores: the dot products are computed twice, which costs less
 * than the projections around it at the context lengths served here. */
#include <assert.h>
#include <math.h>
#include <stddef.h>

#include "decode.h"

#define LANES 16

/* a . b in a fixed order: lane l sums elements l, l+16, ...; the lanes
 * then add pairwise. */
static float dot_lanes(const float *a, const float *b, int n)
{
	float acc[LANES] = { 0 };
	int i = 0;
	for (; i + LANES <= n; i += LANES)
#pragma omp simd
		for (int l = 0; l < LANES; l++)
			acc[l] += a[i + l] * b[i + l];
	for (int l = 0; i < n; i++, l++)
		acc[l] += a[i] * b[i];
	for (int w = LANES / 2; w > 0; w /= 2)
		for (int l = 0; l < w; l++)
			acc[l] += acc[l + w];
	return acc[0];
}

/* below this many multiply-adds a pass is not worth waking threads for */
#define PARALLEL_MIN (1 << 16)

static void cpu_matmul_rows(float *out, const void *inp_, const void *weight_,
			    const void *bias_, int N, int IC, int OC)
{
	const float *inp = inp_, *weight = weight_, *bias = bias_;
	size_t work = (size_t)N * IC * OC;
#pragma omp parallel for schedule(static) if (work >= PARALLEL_MIN)
	for (int o = 0; o < OC; o++) {
		const float *w = weight + (size_t)o * IC;
		float b = bias ? bias[o] : 0.0f;
		for (int n = 0; n < N; n++)
			out[(size_t)n * OC + o] = b + dot_lanes(inp + (size_t)n * IC, w, IC);
	}
}

static float dot(const float *a, const float *b, int D)
{
	float s = 0.0f;
	for (int d = 0; d < D; d++)
		s += a[d] * b[d];
	return s;
}

static void attend_one(float *out, const float *q, const float *k, const float *v, int len,
		       int ld, int D, float scale)
{
	float mx = -INFINITY;
	for (int j = 0; j < len; j++) {
		float s = dot(q, k + (size_t)j * ld, D) * scale;
		mx = s > mx ? s : mx;
	}
	float acc[FT_DECODE_MAX_HEAD_DIM], sum = 0.0f;
	for (int d = 0; d < D; d++)
		acc[d] = 0.0f;
	for (int j = 0; j < len; j++) {
		float p = expf(dot(q, k + (size_t)j * ld, D) * scale - mx);
		const float *vj = v + (size_t)j * ld;
		sum += p;
		for (int d = 0; d < D; d++)
			acc[d] += p * vj[d];
	}
	float inv = 1.0f / sum;
	for (int d = 0; d < D; d++)
		out[d] = acc[d] * inv;
}

static void cpu_attention_cached(void *out_, const void *q_, const void *const *k_,
				 const void *const *v_, const int32_t *pos, int N, int H, int KVH,
				 int D)
{
	float *out = out_;
	const float *q = q_;
	assert(H % KVH == 0 && D <= FT_DECODE_MAX_HEAD_DIM);
	int group = H / KVH, ld = KVH * D;
	float scale = 1.0f / sqrtf((float)D);
	size_t work = 0;
	for (int n = 0; n < N; n++)
		work += (size_t)(pos[n] + 1) * H * D;
#pragma omp parallel for schedule(dynamic) collapse(2) if (work >= PARALLEL_MIN)
	for (int n = 0; n < N; n++)
		for (int h = 0; h < H; h++) {
			size_t qo = ((size_t)n * H + h) * D, ko = (size_t)(h / group) * D;
			const float *kn = k_[n], *vn = v_[n];
			attend_one(out + qo, q + qo, kn + ko, vn + ko, pos[n] + 1, ld, D, scale);
		}
}

const struct ft_decode_ops ft_decode_ops_cpu = {
	.name = "cpu",
	.matmul_rows = cpu_matmul_rows,
	.attention_cached = cpu_attention_cached,
};
