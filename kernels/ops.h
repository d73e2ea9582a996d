/* ops.h: the op table the trainer is written against (after llm.c's
 * train_gpt2.c layers and ggml's backend interface). One implementation per
 * backend: kernels/cpu (C11 + OpenMP + OpenBLAS, the readable reference) and
 * kernels/cuda (bf16 storage, fp32 accumulation; built when nvcc is found).
 * Shapes: N rows (tokens, B*T), C channels; row-major and contiguous.
 *
 * Memory. Every pointer an op takes lives in the backend's memory (host
 * memory for cpu, device memory for cuda), made with ops->alloc and filled
 * with ops->upload. Two element types:
 *  - "x" tensors (void *): activations and the weights the forward pass
 *    reads, in the backend's storage type ops->xtype (fp32 on the CPU, bf16
 *    on CUDA; ops->xsize bytes each; index them with ft_x_at);
 *  - fp32 tensors (float *): everything that accumulates or is the
 *    optimizer's (weight gradients, master weights, AdamW moments) and the
 *    small per-row statistics (rstd, lse, losses). Integer inputs (tokens,
 *    positions, document starts, targets) are int32.
 * On the CPU the storage type is fp32, so a model's fp32 block serves as
 * its own x weights and master weights.
 *
 * Conventions:
 *  - forward ops overwrite their outputs unless said otherwise;
 *  - backward ops ACCUMULATE (+=) into every gradient they are given, so
 *    residual branches and micro-batches add up; a NULL gradient pointer
 *    means "not wanted" (frozen weight, input that needs no gradient);
 *  - results are deterministic: every reduction runs in a fixed order that
 *    does not depend on the number of threads (no atomics on CUDA);
 *  - ops are queued in order on the backend's one stream; download, the
 *    reductions returning a value and sync wait for what came before.
 * Ops cannot fail: shapes are the caller's contract (asserted), and a
 * backend that meets an error it cannot report (a CUDA launch failure)
 * stops the program with its message. Only alloc reports failure (NULL). */
#ifndef FT_OPS_H
#define FT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rotary embedding frequencies for one head size: inv_freq[i] for
 * i < head_dim/2, with the llama3 scaling applied when asked. Host memory;
 * a backend gets its own copy through upload. */
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

enum ft_xtype { FT_X_F32, FT_X_BF16 };

/* Sequence layout shared by rope and attention: for token n (of B*T),
 * pos[n] is its position inside its document and doc_start[n] the index
 * within its row of the first token of its document. */

struct ft_ops {
	const char *name;
	enum ft_xtype xtype;
	size_t xsize;          /* bytes per x element */
	int lm_head_rows;      /* rows of logits the decoder computes at a time */

	/* ---- memory ---- */
	/* bytes of backend memory, zeroed; NULL when there is not enough */
	void *(*alloc)(size_t bytes);
	void (*release)(void *p);                      /* NULL is fine */
	void (*memzero)(void *p, size_t bytes);
	void (*upload)(void *dst, const void *host, size_t bytes);
	void (*download)(void *host, const void *src, size_t bytes);
	void (*copy)(void *dst, const void *src, size_t bytes);   /* within the backend */
	/* between fp32 and the storage type, n values, both in backend memory
	 * (to_x rounds to nearest even) */
	void (*to_x)(void *dst, const float *src, size_t n);
	void (*from_x)(float *dst, const void *src, size_t n);
	void (*sync)(void);

	/* ---- layers ---- */
	/* out[N][OC] = scale * inp[N][IC] @ weight[OC][IC]^T (+ bias[OC] if not
	 * NULL), or out += that when accumulate is set. */
	void (*matmul_forward)(void *out, const void *inp, const void *weight, const void *bias,
			       int N, int IC, int OC, float scale, int accumulate);
	/* dinp += scale * dout @ weight; dweight += scale * dout^T @ inp;
	 * dbias += column sums of dout (the bias is not scaled). */
	void (*matmul_backward)(void *dinp, float *dweight, float *dbias, const void *dout,
				const void *inp, const void *weight, int N, int IC, int OC,
				float scale);

	/* out[N][C] = table[tokens[n]][C]; dtable[tokens[n]] += dout[n] */
	void (*embedding_forward)(void *out, const int32_t *tokens, const void *table, int N,
				  int C);
	void (*embedding_backward)(float *dtable, const void *dout, const int32_t *tokens, int N,
				   int C, int V);

	/* out = inp * rstd * weight, rstd[n] = 1/sqrt(mean(inp[n]^2) + eps) saved */
	void (*rmsnorm_forward)(void *out, float *rstd, const void *inp, const void *weight,
				int N, int C, float eps);
	void (*rmsnorm_backward)(void *dinp, float *dweight, const void *dout, const void *inp,
				 const void *weight, const float *rstd, int N, int C);

	/* In place on x[N][H][D], HF rotate_half convention: pairs (i, i+D/2),
	 * angle pos[n] * inv_freq[i] computed in fp32 (inv_freq: D/2 floats in
	 * backend memory). */
	void (*rope_forward)(void *x, const int32_t *pos, const float *inv_freq, int N, int H,
			     int D);
	/* In place: x holds dout on entry and dinp on return. */
	void (*rope_backward)(void *x, const int32_t *pos, const float *inv_freq, int N, int H,
			      int D);

	/* Causal attention within documents, grouped-query: q[B*T][H][D],
	 * k, v[B*T][KVH][D] (query head h reads kv head h / (H/KVH)),
	 * out[B*T][H][D]; lse[B][H][T] (log-sum-exp of the scaled scores) is
	 * saved for the backward pass, which recomputes the probabilities. */
	void (*attention_forward)(void *out, float *lse, const void *q, const void *k,
				  const void *v, const int32_t *doc_start, int B, int T, int H,
				  int KVH, int D);
	void (*attention_backward)(void *dq, void *dk, void *dv, const void *dout,
				   const void *out, const float *lse, const void *q, const void *k,
				   const void *v, const int32_t *doc_start, int B, int T, int H,
				   int KVH, int D);

	/* out = silu(gate) * up, elementwise over n values */
	void (*swiglu_forward)(void *out, const void *gate, const void *up, size_t n);
	void (*swiglu_backward)(void *dgate, void *dup, const void *dout, const void *gate,
				const void *up, size_t n);

	/* Cross-entropy of logits[N][V] against targets[N] (-1: not trained).
	 * losses[n] = -log softmax(logits[n])[targets[n]], 0 when untrained.
	 * Backward writes (does not accumulate) dlogits = scale * (softmax -
	 * onehot) on trained rows and 0 elsewhere; dlogits may alias logits. */
	void (*crossentropy_forward)(float *losses, const void *logits, const int32_t *targets,
				     int N, int V);
	void (*crossentropy_backward)(void *dlogits, const void *logits, const int32_t *targets,
				      int N, int V, float scale);

	/* out = a + b (n values); dst += src */
	void (*add)(void *out, const void *a, const void *b, size_t n);
	void (*accumulate)(void *dst, const void *src, size_t n);

	/* Inverted dropout with the mask of ft_rng_hash (trainer/rng.h):
	 * element i is dropped when ft_rng_hash(seed, site, i) < p, and kept
	 * ones are scaled by 1/(1-p). Forward: out = mask(x); backward:
	 * dx += mask(dout). */
	void (*dropout_forward)(void *out, const void *x, size_t n, double p, uint64_t seed,
				uint64_t site);
	void (*dropout_backward)(void *dx, const void *dout, size_t n, double p, uint64_t seed,
				 uint64_t site);

	/* ---- optimizer, fp32 ---- */
	/* One AdamW step over n parameters (torch.optim.AdamW): decoupled decay
	 * p -= lr*wd*p, moments m, v updated, bias-corrected with step t >= 1;
	 * xparam, when not NULL, receives the new values in the storage type. */
	void (*adamw)(float *param, const float *grad, float *m, float *v, size_t n, float lr,
		      float beta1, float beta2, float eps, float weight_decay, int t,
		      void *xparam);
	/* sum of x[i]^2 in double, in an order fixed by n alone */
	double (*sumsq)(const float *x, size_t n);
	/* whether any of x[0..n) is a NaN or an infinity */
	int (*nonfinite)(const float *x, size_t n);
	/* x *= s */
	void (*scale)(float *x, size_t n, float s);
};

extern const struct ft_ops ft_ops_cpu;

/* The CUDA table, or NULL with why in err when this build has none or no
 * device can be used (ft_ops_cuda_open picks device `device`). */
const struct ft_ops *ft_ops_cuda_open(int device, struct ft_err *err);

/* Element i of an x tensor. */
static inline void *ft_x_at(const struct ft_ops *ops, void *p, size_t i)
{
	return (char *)p + i * ops->xsize;
}

/* n fp32 values of host memory into the x tensor dst, in the storage type:
 * through an fp32 staging buffer in backend memory unless the storage is
 * fp32 already. 0, or FT_E_NOMEM when the staging buffer cannot be had. */
static inline int ft_x_upload(const struct ft_ops *ops, void *dst, const float *host, size_t n)
{
	if (ops->xtype == FT_X_F32) {
		ops->upload(dst, host, n * sizeof(float));
		return FT_OK;
	}
	float *tmp = (float *)ops->alloc(n * sizeof(float));
	if (!tmp)
		return FT_E_NOMEM;
	ops->upload(tmp, host, n * sizeof(float));
	ops->to_x(dst, tmp, n);
	ops->release(tmp);
	return FT_OK;
}

#ifdef __cplusplus
}
#endif

#endif
