/* adamw.c: AdamW (Loshchilov & Hutter 2019) exactly as torch.optim.AdamW's
 * single-tensor path orders its float operations: decay first, then the
 * moments, then the bias-corrected step. Elementwise, so deterministic. */
#include <math.h>

#include "cpu.h"

void ft_cpu_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr,
		  float beta1, float beta2, float eps, float weight_decay, int t)
{
	float bc1 = 1.0f - powf(beta1, (float)t);
	float bc2_sqrt = sqrtf(1.0f - powf(beta2, (float)t));
	float step_size = lr / bc1;
	float decay = 1.0f - lr * weight_decay;
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float g = grad[i];
		param[i] *= decay;
		m[i] += (1.0f - beta1) * (g - m[i]);
		v[i] = v[i] * beta2 + (1.0f - beta2) * g * g;
		float denom = sqrtf(v[i]) / bc2_sqrt + eps;
		param[i] -= step_size * (m[i] / denom);
	}
}
