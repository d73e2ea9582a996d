/* optim.h: the optimizer side of a training step, shared by every backend:
 * the learning-rate schedule, the list of trainable tensors (weights,
 * gradients and AdamW moments side by side), the global gradient norm and
 * clipping, the non-finite check, and the AdamW update through the op
 * table, in the backend's memory. Weight decay applies to a tensor only when its ft_param says so
 * (matrices; never norms and biases), like the two parameter groups of
 * the usual Hugging Face recipe. Nothing here allocates except
 * ft_trainable_add; nothing fails except on memory. */
#ifndef FT_OPTIM_H
#define FT_OPTIM_H

#include <stdbool.h>
#include <stddef.h>

#include "model.h"
#include "ops.h"
#include "recipe.h"

struct ft_schedule {
	double lr, min_lr_ratio;
	enum ft_sched type;
	long warmup, total;   /* steps */
};

/* Learning rate of step s (0-based, s < total): linear warmup from
 * lr/warmup at step 0 up to lr at step warmup-1, then cosine or linear
 * decay from lr towards lr*min_lr_ratio over the remaining steps (the last
 * step still moves), or constant. */
double ft_lr_at(const struct ft_schedule *s, long step);

struct ft_tensor_ref {
	const struct ft_param *p;   /* name, shape, decay */
	float *w, *g, *m, *v;       /* fp32 master weights, gradients, moments */
	void *x;                    /* the storage-type copy AdamW refreshes, or NULL */
};

struct ft_trainable {
	struct ft_tensor_ref *t;
	size_t n, cap;
	size_t numel;
};

/* Add parameter p, at p->offset in each of the four blocks; m and v may be
 * NULL where the caller keeps the moments elsewhere (sharded over ranks),
 * and then ft_adamw_step must not be used; g may be NULL in a host mirror
 * of a GPU's tensors, which only checkpoints read and write. */
int ft_trainable_add(struct ft_trainable *tr, const struct ft_param *p, float *w, float *g,
		     float *m, float *v);
void ft_trainable_release(struct ft_trainable *tr);
/* The storage-type copy of p (at p->offset * ops->xsize in xblock) that
 * ft_adamw_step keeps in step with the fp32 weights. */
void ft_trainable_set_x(struct ft_trainable *tr, const struct ft_ops *ops, void *xblock);
void ft_trainable_zero_grad(const struct ft_ops *ops, struct ft_trainable *tr);
/* The first tensor whose gradient (or, with weights, whose values) holds
 * a NaN or an infinity, or NULL. */
const struct ft_tensor_ref *ft_trainable_nonfinite(const struct ft_ops *ops,
						   const struct ft_trainable *tr, bool weights);
/* The L2 norm of all gradients together (summed in a fixed order). */
double ft_trainable_grad_norm(const struct ft_ops *ops, const struct ft_trainable *tr);

struct ft_adamw {
	double beta1, beta2, eps, weight_decay;
	double max_grad_norm;       /* 0: no clipping */
};

/* One step: gradients scaled by max_grad_norm / (norm + 1e-6) when norm is
 * above it (torch's clip_grad_norm_), then AdamW at lr with bias
 * correction for step t (1-based). */
void ft_adamw_step(const struct ft_ops *ops, struct ft_trainable *tr, const struct ft_adamw *a,
		   double lr, long t, double grad_norm);

#endif
