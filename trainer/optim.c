/* optim.c: schedule, trainable tensors, clipping and AdamW (contract in
 * optim.h). */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ft_lr_at(const struct ft_schedule *s, long step)
{
	if (step < s->warmup)
		return s->lr * (double)(step + 1) / (double)s->warmup;
	if (s->type == FT_SCHED_CONSTANT)
		return s->lr;
	long span = s->total - s->warmup;
	double progress = span > 0 ? (double)(step - s->warmup) / (double)span : 0.0;
	if (progress > 1.0)
		progress = 1.0;
	double f = s->type == FT_SCHED_COSINE ? 0.5 * (1.0 + cos(M_PI * progress)) : 1.0 - progress;
	return s->lr * (s->min_lr_ratio + (1.0 - s->min_lr_ratio) * f);
}

int ft_trainable_add(struct ft_trainable *tr, const struct ft_param *p, float *w, float *g,
		     float *m, float *v)
{
	if (tr->n == tr->cap) {
		size_t cap = tr->cap ? 2 * tr->cap : 64;
		void *q = realloc(tr->t, cap * sizeof *tr->t);
		if (!q)
			return FT_E_NOMEM;
		tr->t = q;
		tr->cap = cap;
	}
	tr->t[tr->n++] = (struct ft_tensor_ref){ p, w + p->offset, g ? g + p->offset : NULL,
						  m ? m + p->offset : NULL,
						  v ? v + p->offset : NULL, NULL };
	tr->numel += p->numel;
	return FT_OK;
}

void ft_trainable_release(struct ft_trainable *tr)
{
	free(tr->t);
	memset(tr, 0, sizeof *tr);
}

void ft_trainable_set_x(struct ft_trainable *tr, const struct ft_ops *ops, void *xblock)
{
	for (size_t i = 0; i < tr->n; i++)
		tr->t[i].x = ft_x_at(ops, xblock, tr->t[i].p->offset);
}

void ft_trainable_zero_grad(const struct ft_ops *ops, struct ft_trainable *tr)
{
	for (size_t i = 0; i < tr->n; i++)
		ops->memzero(tr->t[i].g, tr->t[i].p->numel * sizeof(float));
}

const struct ft_tensor_ref *ft_trainable_nonfinite(const struct ft_ops *ops,
						   const struct ft_trainable *tr, bool weights)
{
	for (size_t i = 0; i < tr->n; i++)
		if (ops->nonfinite(weights ? tr->t[i].w : tr->t[i].g, tr->t[i].p->numel))
			return &tr->t[i];
	return NULL;
}

double ft_trainable_grad_norm(const struct ft_ops *ops, const struct ft_trainable *tr)
{
	double s = 0.0;
	for (size_t i = 0; i < tr->n; i++)
		s += ops->sumsq(tr->t[i].g, tr->t[i].p->numel);
	return sqrt(s);
}

void ft_adamw_step(const struct ft_ops *ops, struct ft_trainable *tr, const struct ft_adamw *a,
		   double lr, long t, double grad_norm)
{
	if (a->max_grad_norm > 0.0 && grad_norm > a->max_grad_norm) {
		float c = (float)(a->max_grad_norm / (grad_norm + 1e-6));
		for (size_t i = 0; i < tr->n; i++)
			ops->scale(tr->t[i].g, tr->t[i].p->numel, c);
	}
	for (size_t i = 0; i < tr->n; i++) {
		const struct ft_tensor_ref *r = &tr->t[i];
		ops->adamw(r->w, r->g, r->m, r->v, r->p->numel, (float)lr, (float)a->beta1,
			   (float)a->beta2, (float)a->eps,
			   r->p->decay ? (float)a->weight_decay : 0.0f, (int)t, r->x);
	}
}
