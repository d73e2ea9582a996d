/* ops.h: the op table the trainer is written against (after llm.c's
 * train_gpt2.c layers and ggml's backend interface). One implementation per
 * backend: kernels/cpu (C11 + OpenMP + OpenBLAS, the readable reference) and,
 * next, kernels/cuda. All tensors are fp32, row-major, contiguous; the caller
 * owns every buffer. Shapes: N rows (tokens, B*T), C channels.
 *
 * Conventions:
 *  - forward ops overwrite their outputs unless said otherwise;
 *  - backward ops ACCUMULATE (+=) into every gradient they are given, so
 *    residual branches and micro-batches add up; a NULL gradient pointer
 *    means "not wanted" (frozen weight, input that needs no gradient);
 *  - results are deterministic: every reduction runs in a fixed order that
 *    does not depend on the number of threads.
 * Ops cannot fail: shapes are the caller's contract (asserted). */
#ifndef FT_OPS_H
#define FT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ft.h"

/* Rotary embedding frequencies for one head size: inv_freq[i] for
 * i < head_dim/2, with the llama3 scaling applied when asked. */
struct ft_rope {
	int head_dim;
	float *inv_freq;      /* head_dim/2, owned (ft_rope_init / ft_rope_release) */
};

enum ft_rope_type { FT_ROPE_DEFAULT, FT_ROPE_LLAMA3 };

struct ft_rope_params {
	enum ft_rope_type type;
	double theta;
	double factor, low_freq_factor, high_freq_factor;   /* llama3 */
	double original_max_position_embeddings;            /* llama3 */
};

/* 0, or FT_E_NOMEM / FT_E_INVAL (odd head_dim). */
int ft_rope_init(struct ft_rope *r, int head_dim, const struct ft_rope_params *p);
void ft_rope_release(struct ft_rope *r);

/* Sequence layout shared by rope and attention: for token n (of B*T),
 * pos[n] is its position inside its document and doc_start[n] the index
 * within its row of the first token of its document. */

struct ft_ops {
	const char *name;

	/* out[N][OC] = scale * inp[N][IC] @ weight[OC][IC]^T (+ bias[OC] if not
	 * NULL), or out += that when accumulate is set. */
	void (*matmul_forward)(float *out, const float *inp, const float *weight,
			       const float *bias, int N, int IC, int OC, float scale,
			       int accumulate);
	/* dinp += scale * dout @ weight; dweight += scale * dout^T @ inp;
	 * dbias += column sums of dout (the bias is not scaled). */
	void (*matmul_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
				const float *inp, const float *weight, int N, int IC, int OC,
				float scale);

	/* out[N][C] = table[tokens[n]][C] */
	void (*embedding_forward)(float *out, const int32_t *tokens, const float *table,
				  int N, int C);
	void (*embedding_backward)(float *dtable, const float *dout, const int32_t *tokens,
				   int N, int C, int V);

	/* out = inp * rstd * weight, rstd[n] = 1/sqrt(mean(inp[n]^2) + eps) saved */
	void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *weight,
				int N, int C, float eps);
	void (*rmsnorm_backward)(float *dinp, float *dweight, const float *dout,
				 const float *inp, const float *weight, const float *rstd,
				 int N, int C);

	/* In place on x[N][H][D], HF rotate_half convention: pairs (i, i+D/2). */
	void (*rope_forward)(float *x, const int32_t *pos, const struct ft_rope *rope,
			     int N, int H, int D);
	/* In place: x holds dout on entry and dinp on return. */
	void (*rope_backward)(float *x, const int32_t *pos, const struct ft_rope *rope,
			      int N, int H, int D);

	/* Causal attention within documents, grouped-query: q[B*T][H][D],
	 * k, v[B*T][KVH][D] (query head h reads kv head h / (H/KVH)),
	 * out[B*T][H][D]; lse[B][H][T] (log-sum-exp of the scaled scores) is
	 * saved for the backward pass, which recomputes the probabilities. */
	void (*attention_forward)(float *out, float *lse, const float *q, const float *k,
				  const float *v, const int32_t *doc_start, int B, int T,
				  int H, int KVH, int D);
	void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout,
				   const float *out, const float *lse, const float *q,
				   const float *k, const float *v, const int32_t *doc_start,
				   int B, int T, int H, int KVH, int D);

	/* out = silu(gate) * up, elementwise over n values */
	void (*swiglu_forward)(float *out, const float *gate, const float *up, size_t n);
	void (*swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate,
				const float *up, size_t n);

	/* Cross-entropy of logits[N][V] against targets[N] (-1: not trained).
	 * losses[n] = -log softmax(logits[n])[targets[n]], 0 when untrained.
	 * Backward writes (does not accumulate) dlogits = scale * (softmax -
	 * onehot) on trained rows and 0 elsewhere; dlogits may alias logits. */
	void (*crossentropy_forward)(float *losses, const float *logits,
				     const int32_t *targets, int N, int V);
	void (*crossentropy_backward)(float *dlogits, const float *logits,
				      const int32_t *targets, int N, int V, float scale);

	/* out = a + b (n values); dst += src */
	void (*add)(float *out, const float *a, const float *b, size_t n);
	void (*accumulate)(float *dst, const float *src, size_t n);

	/* One AdamW step over n parameters (torch.optim.AdamW): decoupled decay
	 * p -= lr*wd*p, moments m, v updated, bias-corrected with step t >= 1. */
	void (*adamw)(float *param, const float *grad, float *m, float *v, size_t n,
		      float lr, float beta1, float beta2, float eps, float weight_decay,
		      int t);
};

extern const struct ft_ops ft_ops_cpu;

#endif
