/* matmul.c: the linear layer, y = x W^T + b with W stored [out][in] as
 * Hugging Face stores nn.Linear weights, on OpenBLAS sgemm (which splits
 * work over the output only, so it is deterministic). */
#include <assert.h>
#include <cblas.h>

#include "cpu.h"

void ft_cpu_matmul_forward(float *out, const float *inp, const float *weight,
			   const float *bias, int N, int IC, int OC, float scale, int accumulate)
{
	assert(N >= 0 && IC > 0 && OC > 0);
	if (N == 0)
		return;
	float beta = accumulate ? 1.0f : 0.0f;
	if (bias) {
#pragma omp parallel for schedule(static)
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++)
				out[(size_t)n * OC + o] = (accumulate ? out[(size_t)n * OC + o] : 0.0f) +
							  bias[o];
		beta = 1.0f;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, scale, inp, IC, weight,
		    IC, beta, out, OC);
}

void ft_cpu_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
			    const float *inp, const float *weight, int N, int IC, int OC,
			    float scale)
{
	assert(N >= 0 && IC > 0 && OC > 0);
	if (N == 0)
		return;
	if (dinp)   /* dinp[N][IC] += scale * dout[N][OC] @ W[OC][IC] */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, scale, dout, OC,
			    weight, IC, 1.0f, dinp, IC);
	if (dweight) /* dW[OC][IC] += scale * dout^T @ inp */
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, scale, dout, OC,
			    inp, IC, 1.0f, dweight, IC);
	if (dbias) {
#pragma omp parallel for schedule(static)
		for (int o = 0; o < OC; o++) {
			float s = 0.0f;
			for (int n = 0; n < N; n++)
				s += dout[(size_t)n * OC + o];
			dbias[o] += s;   /* the bias is not scaled in the forward pass */
		}
	}
}
