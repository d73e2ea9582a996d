/* crossentropy.c: softmax cross-entropy per row against a target id, only
 * on trained rows (target >= 0). The caller sums the per-row losses in order
 * and scales the gradient by 1 / (trained tokens of the optimizer step).
 *
 * A row is a whole vocabulary of logits, and the exponentials dominate the
 * op (three per logit: two log-sum-exps and the softmax), so they are taken
 * four at a time with GCC's vector extensions (SSE2 on any x86-64, NEON on
 * arm64, no intrinsics): e^x = 2^k e^r, x = k ln2 + r, |r| <= ln2/2, e^r by
 * Cephes expf's degree-6 polynomial, within 1e-7 relative of exp(). Every
 * sum runs in a fixed order, so results do not change with the thread
 * count. */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu.h"

typedef float v4sf __attribute__((vector_size(16)));
typedef int32_t v4si __attribute__((vector_size(16)));

static inline v4sf splat(float x)
{
	return (v4sf){ x, x, x, x };
}

/* e^x for four x <= 0 (logits minus their maximum); 0 below -87.3, where
 * e^x leaves the normal floats. */
static inline v4sf exp4(v4sf x)
{
	/* k = round(x / ln2): adding and taking away 1.5 * 2^23 rounds */
	v4sf k = (x * splat(1.44269504088896341f) + splat(12582912.0f)) - splat(12582912.0f);
	v4sf r = x - k * splat(0.693359375f) + k * splat(2.12194440e-4f);
	v4sf p = splat(1.9875691500e-4f);
	p = p * r + splat(1.3981999507e-3f);
	p = p * r + splat(8.3334519073e-3f);
	p = p * r + splat(4.1665795894e-2f);
	p = p * r + splat(1.6666665459e-1f);
	p = p * r + splat(5.0000001201e-1f);
	p = p * r * r + r + splat(1.0f);
	v4si e = __builtin_convertvector(k, v4si) + 127;
	e &= e > 0;                                /* 2^k below the normals: 0 */
	v4si bits = (v4si)(p * (v4sf)(e << 23));
	return (v4sf)(bits & ~(x < splat(-87.3f)));
}

static inline v4sf load4(const float *p)
{
	v4sf v;
	memcpy(&v, p, sizeof v);
	return v;
}

static float row_max(const float *x, int V)
{
	v4sf m4 = splat(-INFINITY);
	int i = 0;
	for (; i + 4 <= V; i += 4) {
		v4sf v = load4(x + i);
		v4si gt = v > m4;
		m4 = (v4sf)(((v4si)v & gt) | ((v4si)m4 & ~gt));
	}
	float mx = -INFINITY;
	for (int j = 0; j < 4; j++)
		mx = m4[j] > mx ? m4[j] : mx;
	for (; i < V; i++)
		mx = x[i] > mx ? x[i] : mx;
	return mx;
}

/* log sum exp of a row: four partial sums, then the tail, in a fixed order */
static float row_lse(const float *x, int V)
{
	float mx = row_max(x, V);
	v4sf s4 = splat(0.0f), m4 = splat(mx);
	int i = 0;
	for (; i + 4 <= V; i += 4)
		s4 += exp4(load4(x + i) - m4);
	double s = (double)s4[0] + s4[1] + s4[2] + s4[3];
	for (; i < V; i++)
		s += exp((double)(x[i] - mx));
	return mx + (float)log(s);
}

void ft_cpu_crossentropy_forward(float *losses, const float *logits, const int32_t *targets,
				 int N, int V)
{
#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++) {
		if (targets[n] < 0) {
			losses[n] = 0.0f;
			continue;
		}
		assert(targets[n] < V);
		const float *x = logits + (size_t)n * V;
		losses[n] = row_lse(x, V) - x[targets[n]];
	}
}

void ft_cpu_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets,
				  int N, int V, float scale)
{
#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++) {
		const float *x = logits + (size_t)n * V;
		float *dx = dlogits + (size_t)n * V;
		if (targets[n] < 0) {
			memset(dx, 0, (size_t)V * sizeof *dx);
			continue;
		}
		float lse = row_lse(x, V);
		v4sf l4 = splat(lse), s4 = splat(scale);
		int i = 0;
		for (; i + 4 <= V; i += 4) {
			v4sf d = s4 * exp4(load4(x + i) - l4);
			memcpy(dx + i, &d, sizeof d);
		}
		for (; i < V; i++)
			dx[i] = scale * expf(x[i] - lse);
		dx[targets[n]] -= scale;
	}
}
