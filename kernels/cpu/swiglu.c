/* swiglu.c: the SwiGLU gate of Llama's MLP (Shazeer 2020), silu(g) * u with
 * silu(g) = g * sigmoid(g); silu'(g) = s * (1 + g * (1 - s)). */
#include <math.h>

#include "cpu.h"

void ft_cpu_swiglu_forward(float *out, const float *gate, const float *up, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float g = gate[i];
		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void ft_cpu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
			    const float *up, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float g = gate[i], s = 1.0f / (1.0f + expf(-g));
		if (dgate)
			dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
		if (dup)
			dup[i] += dout[i] * g * s;
	}
}
