/* crossentropy.c: softmax cross-entropy per row against a target id, only
 * on trained rows (target >= 0). The caller sums the per-row losses in order
 * and scales the gradient by 1 / (trained tokens of the optimizer step). */
#include <assert.h>
#include <math.h>

#include "cpu.h"

static float row_lse(const float *x, int V)
{
	float mx = -INFINITY;
	for (int i = 0; i < V; i++)
		mx = x[i] > mx ? x[i] : mx;
	double s = 0.0;
	for (int i = 0; i < V; i++)
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
			for (int i = 0; i < V; i++)
				dx[i] = 0.0f;
			continue;
		}
		float lse = row_lse(x, V);
		int t = targets[n];
		for (int i = 0; i < V; i++)
			dx[i] = scale * (expf(x[i] - lse) - (i == t ? 1.0f : 0.0f));
	}
}
