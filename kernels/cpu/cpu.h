/* cpu.h: the CPU ops, one file per op family, gathered into ft_ops_cpu by
 * ops_cpu.c (which also holds the memory ops and the small elementwise
 * ones). The CPU stores x tensors in fp32, so these take float pointers.
 * Internal to kernels/cpu; the contract of each op is in kernels/ops.h.
 * Determinism: OpenMP loops split work over outputs only;
 * every sum runs sequentially over its inputs, so results do not change with
 * the thread count. */
#ifndef FT_KERNELS_CPU_H
#define FT_KERNELS_CPU_H

#include "ops.h"

void ft_cpu_matmul_forward(float *out, const float *inp, const float *weight,
			   const float *bias, int N, int IC, int OC, float scale, int accumulate);
void ft_cpu_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
			    const float *inp, const float *weight, int N, int IC, int OC,
			    float scale);
void ft_cpu_embedding_forward(float *out, const int32_t *tokens, const float *table, int N,
			      int C);
void ft_cpu_embedding_backward(float *dtable, const float *dout, const int32_t *tokens,
			       int N, int C, int V);
void ft_cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
			    int N, int C, float eps);
void ft_cpu_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
			     const float *weight, const float *rstd, int N, int C);
void ft_cpu_rope_forward(float *x, const int32_t *pos, const float *inv_freq, int N, int H,
			 int D);
void ft_cpu_rope_backward(float *x, const int32_t *pos, const float *inv_freq, int N, int H,
			  int D);
void ft_cpu_attention_forward(float *out, float *lse, const float *q, const float *k,
			      const float *v, const int32_t *doc_start, int B, int T, int H,
			      int KVH, int D);
void ft_cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout,
			       const float *out, const float *lse, const float *q, const float *k,
			       const float *v, const int32_t *doc_start, int B, int T, int H,
			       int KVH, int D);
void ft_cpu_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void ft_cpu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
			    const float *up, size_t n);
void ft_cpu_crossentropy_forward(float *losses, const float *logits, const int32_t *targets,
				 int N, int V);
void ft_cpu_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets,
				  int N, int V, float scale);
void ft_cpu_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr,
		  float beta1, float beta2, float eps, float weight_decay, int t);

#endif
