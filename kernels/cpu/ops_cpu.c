/* ops_cpu.c: the CPU op table (contract in kernels/ops.h) and the two
 * elementwise helpers too small for a file of their own. */
#include "cpu.h"

void ft_cpu_add(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

void ft_cpu_accumulate(float *dst, const float *src, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		dst[i] += src[i];
}

const struct ft_ops ft_ops_cpu = {
	.name = "cpu",
	.matmul_forward = ft_cpu_matmul_forward,
	.matmul_backward = ft_cpu_matmul_backward,
	.embedding_forward = ft_cpu_embedding_forward,
	.embedding_backward = ft_cpu_embedding_backward,
	.rmsnorm_forward = ft_cpu_rmsnorm_forward,
	.rmsnorm_backward = ft_cpu_rmsnorm_backward,
	.rope_forward = ft_cpu_rope_forward,
	.rope_backward = ft_cpu_rope_backward,
	.attention_forward = ft_cpu_attention_forward,
	.attention_backward = ft_cpu_attention_backward,
	.swiglu_forward = ft_cpu_swiglu_forward,
	.swiglu_backward = ft_cpu_swiglu_backward,
	.crossentropy_forward = ft_cpu_crossentropy_forward,
	.crossentropy_backward = ft_cpu_crossentropy_backward,
	.add = ft_cpu_add,
	.accumulate = ft_cpu_accumulate,
	.adamw = ft_cpu_adamw,
};
