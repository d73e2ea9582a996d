/* rmsnorm.c: RMSNorm (Zhang & Sennrich 2019) as Llama's LlamaRMSNorm:
 * y = w * x / sqrt(mean(x^2) + eps). Backward, with r = rstd:
 * dx = r * (w*dy) - r^3/C * x * sum(w*dy*x);  dw += sum over rows of dy*x*r.
 * The weight gradient is a second pass over channels, each summing its rows
 * in order (deterministic whatever the thread count). */
#include <math.h>

#include "cpu.h"

void ft_cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
			    int N, int C, float eps)
{
#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float *y = out + (size_t)n * C;
		double ss = 0.0;
		for (int c = 0; c < C; c++)
			ss += (double)x[c] * x[c];
		float r = 1.0f / sqrtf((float)(ss / C) + eps);
		for (int c = 0; c < C; c++)
			y[c] = weight[c] * (x[c] * r);
		rstd[n] = r;
	}
}

void ft_cpu_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
			     const float *weight, const float *rstd, int N, int C)
{
	if (dinp) {
#pragma omp parallel for schedule(static)
		for (int n = 0; n < N; n++) {
			const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
			float *dx = dinp + (size_t)n * C;
			float r = rstd[n];
			double dot = 0.0;
			for (int c = 0; c < C; c++)
				dot += (double)weight[c] * dy[c] * x[c];
			float k = (float)(dot * r * r * r / C);
			for (int c = 0; c < C; c++)
				dx[c] += r * weight[c] * dy[c] - k * x[c];
		}
	}
	if (dweight) {
#pragma omp parallel for schedule(static)
		for (int c = 0; c < C; c++) {
			double s = 0.0;
			for (int n = 0; n < N; n++)
				s += (double)dout[(size_t)n * C + c] * inp[(size_t)n * C + c] * rstd[n];
			dweight[c] += (float)s;
		}
	}
}
