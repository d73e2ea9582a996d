/* generate.c: decoding with a KV cache (contract in generate.h). A forward
 * pass is decoder.c's forward_layers on the new tokens only, each at its
 * position in its sequence, with attention over the slot's cache instead of
 * over the row:
 *   h1 = rmsnorm(x);  q,k,v = h1 Wq,Wk,Wv (+bias);  rope(q, k) at pos
 *   store k, v at row pos of the slot's cache;  a = attention over rows 0..pos
 *   x' = x + a Wo;  h2 = rmsnorm(x');  x'' = x' + (silu(h2 Wg) * h2 Wu) Wd
 * then logits = rmsnorm(x) Wlm for the rows asked for. LoRA adapters are
 * merged into the weights before (ft_lora_merge), so none appear here.
 *
 * Batch invariance: the rows of a pass are laid out with every one-token
 * feed first; those rows (decode steps) go through the row-wise matmul of
 * the decode ops, whose rows do not depend on each other, and each longer
 * feed (a prompt) through the op table's matmul on its own rows, the same
 * call whether it runs alone or batched. Every other op works row by row,
 * the attention token by token. */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* x tensors (kernels/ops.h) are void pointers in the backend's storage
 * type; xat indexes them. */
static void *xat(const struct ft_gen *g, void *p, size_t i)
{
	return ft_x_at(g->ops, p, i);
}

struct ft_gen_scratch {
	int rows;                         /* capacity in tokens */
	void *block;                      /* backend memory: */
	void *x, *ln, *tmp;               /* rows x C */
	void *q, *att;                    /* rows x Q */
	void *k, *v;                      /* rows x KV */
	void *gate, *up;                  /* rows x I */
	float *rstd;                      /* rows */
	float *f32;                       /* rows x max(C, Q, I, V): matmul_rows' output */
	int32_t *tokens, *pos;            /* rows */
	const void **kp, **vp;            /* layers x rows: cache pointers for attention_cached */
	/* host copies of the layout */
	void *hblock;
	int32_t *h_tokens, *h_pos, *slot; /* rows */
	const void **h_kp, **h_vp;        /* layers x rows */
	/* the pass's layout: nsingle one-token rows first, then the feeds of
	 * several tokens, feed i at rows multi_start[i] (multi_len[i] rows);
	 * feed f's first row is feed_row[f] */
	int nsingle, nmulti;
	int *multi_start, *multi_len, *feed_row;   /* nslots each */
};

/* Parts of a block, each padded to 16 bytes: sized with base NULL, then
 * pointed into it. */
static void *carve(char *base, size_t *off, size_t n, size_t size)
{
	void *p = base ? base + *off : NULL;
	*off += (n * size + 15) & ~(size_t)15;
	return p;
}

static size_t layout(struct ft_gen_scratch *s, char *base, size_t xs, size_t R, size_t L,
		     size_t C, size_t Q, size_t KV, size_t I, size_t F)
{
	size_t off = 0;
	s->x = carve(base, &off, R * C, xs);
	s->ln = carve(base, &off, R * C, xs);
	s->tmp = carve(base, &off, R * C, xs);
	s->q = carve(base, &off, R * Q, xs);
	s->att = carve(base, &off, R * Q, xs);
	s->k = carve(base, &off, R * KV, xs);
	s->v = carve(base, &off, R * KV, xs);
	s->gate = carve(base, &off, R * I, xs);
	s->up = carve(base, &off, R * I, xs);
	s->rstd = carve(base, &off, R, sizeof(float));
	s->f32 = carve(base, &off, R * F, sizeof(float));
	s->tokens = carve(base, &off, R, sizeof(int32_t));
	s->pos = carve(base, &off, R, sizeof(int32_t));
	s->kp = carve(base, &off, L * R, sizeof(void *));
	s->vp = carve(base, &off, L * R, sizeof(void *));
	return off;
}

/* Scratch for at least rows tokens. */
static int scratch_reserve(struct ft_gen *g, int rows, struct ft_err *err)
{
	struct ft_gen_scratch *s = g->s;
	if (rows <= s->rows)
		return FT_OK;
	int want = s->rows ? s->rows : 64;
	while (want < rows)
		want *= 2;
	const struct ft_model_config *c = &g->model->cfg;
	size_t R = (size_t)want, C = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
	size_t L = (size_t)c->num_layers;
	size_t Q = (size_t)c->num_heads * c->head_dim, KV = (size_t)c->num_kv_heads * c->head_dim;
	size_t F = C > Q ? C : Q;
	F = F > I ? F : I;
	F = F > (size_t)c->vocab_size ? F : (size_t)c->vocab_size;
	size_t bytes = layout(s, NULL, g->ops->xsize, R, L, C, Q, KV, I, F);
	void *block = g->ops->alloc(bytes);
	void *hblock = malloc(R * (3 * sizeof(int32_t) + 2 * L * sizeof(void *)));
	if (!block || !hblock) {
		g->ops->release(block);
		free(hblock);
		return ft_err_set(err, FT_E_NOMEM, "out of memory for %d tokens of scratch", want);
	}
	g->ops->release(s->block);
	free(s->hblock);
	s->block = block;
	s->hblock = hblock;
	s->rows = want;
	layout(s, block, g->ops->xsize, R, L, C, Q, KV, I, F);
	s->h_kp = hblock;
	s->h_vp = s->h_kp + L * R;
	s->h_tokens = (int32_t *)(s->h_vp + L * R);
	s->h_pos = s->h_tokens + R;
	s->slot = s->h_pos + R;
	return FT_OK;
}

int ft_gen_init(struct ft_gen *g, const struct ft_ops *ops, const struct ft_decode_ops *dops,
		const struct ft_model *m, int nslots, struct ft_err *err)
{
	memset(g, 0, sizeof *g);
	if (nslots < 1)
		return ft_err_set(err, FT_E_INVAL, "no sequence slots");
	g->ops = ops;
	g->dops = dops;
	g->model = m;
	g->xw = &m->w;
	g->nslots = nslots;
	g->slots = calloc((size_t)nslots, sizeof *g->slots);
	g->s = calloc(1, sizeof *g->s);
	if (g->s)
		g->s->multi_start = calloc(3 * (size_t)nslots, sizeof(int));
	int32_t half = m->cfg.head_dim / 2;
	if (g->s && g->s->multi_start)
		g->inv_freq = ops->alloc((size_t)half * sizeof(float));
	if (!g->slots || !g->s || !g->s->multi_start || !g->inv_freq) {
		ft_gen_release(g);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	ops->upload(g->inv_freq, m->rope.inv_freq, (size_t)half * sizeof(float));
	g->s->multi_len = g->s->multi_start + nslots;
	g->s->feed_row = g->s->multi_len + nslots;
	return scratch_reserve(g, 64, err);
}

void ft_gen_release(struct ft_gen *g)
{
	for (int i = 0; g->slots && i < g->nslots; i++) {
		g->ops->release(g->slots[i].k);
		g->ops->release(g->slots[i].v);
	}
	free(g->slots);
	if (g->s) {
		g->ops->release(g->s->block);
		free(g->s->hblock);
		free(g->s->multi_start);
	}
	free(g->s);
	if (g->inv_freq)
		g->ops->release(g->inv_freq);
	memset(g, 0, sizeof *g);
}

int ft_gen_reset(struct ft_gen *g, int slot, int cap, struct ft_err *err)
{
	if (slot < 0 || slot >= g->nslots || cap < 1)
		return ft_err_set(err, FT_E_INVAL, "bad slot %d or capacity %d", slot, cap);
	struct ft_gen_slot *s = &g->slots[slot];
	s->len = 0;
	if (cap <= s->cap)
		return FT_OK;
	const struct ft_model_config *c = &g->model->cfg;
	size_t n = (size_t)c->num_layers * (size_t)cap * (size_t)c->num_kv_heads * c->head_dim;
	g->ops->release(s->k);
	g->ops->release(s->v);
	s->k = g->ops->alloc(n * g->ops->xsize);
	s->v = g->ops->alloc(n * g->ops->xsize);
	s->cap = cap;
	if (!s->k || !s->v) {
		g->ops->release(s->k);
		g->ops->release(s->v);
		memset(s, 0, sizeof *s);
		return ft_err_set(err, FT_E_NOMEM, "out of %s memory for a cache of %d tokens",
				  g->ops->name, cap);
	}
	return FT_OK;
}

/* out[n] = x[n] W^T + b through the row-wise matmul (fp32 out), as x. */
static void linear_rows(struct ft_gen *g, void *out, const void *x, const void *w,
			const void *b, int n, int in, int outd)
{
	if (g->ops->xtype == FT_X_F32) {
		g->dops->matmul_rows(out, x, w, b, n, in, outd);
		return;
	}
	g->dops->matmul_rows(g->s->f32, x, w, b, n, in, outd);
	g->ops->to_x(out, g->s->f32, (size_t)n * outd);
}

/* out = x W^T + b over the pass's rows, laid out as gather() says: the
 * one-token rows together through the row-wise matmul, each longer feed
 * on its own through the op table's. */
static void linear(struct ft_gen *g, void *out, const void *x, const void *w, const void *b,
		   int in, int outd)
{
	struct ft_gen_scratch *s = g->s;
	if (s->nsingle)
		linear_rows(g, out, x, w, b, s->nsingle, in, outd);
	for (int i = 0; i < s->nmulti; i++) {
		size_t r0 = (size_t)s->multi_start[i];
		g->ops->matmul_forward(xat(g, out, r0 * outd), xat(g, (void *)x, r0 * in), w, b,
				       s->multi_len[i], in, outd, 1.0f, 0);
	}
}

static void module(struct ft_gen *g, int l, int mod, void *out, const void *x)
{
	int in, outd;
	ft_module_dims(&g->model->cfg, mod, &in, &outd);
	linear(g, out, x, g->xw->layers[l].w[mod], g->xw->layers[l].b[mod], in, outd);
}

/* Checks the feeds and lays their tokens out as rows: token, slot and
 * position of each. */
static int gather(struct ft_gen *g, const struct ft_gen_feed *feeds, int nfeeds, int *rows,
		  struct ft_err *err)
{
	long N = 0;
	int V = g->model->cfg.vocab_size;
	for (int f = 0; f < nfeeds; f++) {
		const struct ft_gen_feed *fd = &feeds[f];
		if (fd->slot < 0 || fd->slot >= g->nslots || fd->n < 1)
			return ft_err_set(err, FT_E_INVAL, "bad feed: slot %d, %d tokens", fd->slot,
					  fd->n);
		const struct ft_gen_slot *sl = &g->slots[fd->slot];
		if (sl->len + fd->n > sl->cap)
			return ft_err_set(err, FT_E_INVAL, "slot %d: %d + %d tokens exceed its %d",
					  fd->slot, sl->len, fd->n, sl->cap);
		for (int f2 = 0; f2 < f; f2++)
			if (feeds[f2].slot == fd->slot)
				return ft_err_set(err, FT_E_INVAL, "slot %d fed twice", fd->slot);
		N += fd->n;
	}
	if (N < 1 || N > (1 << 24))
		return ft_err_set(err, FT_E_INVAL, "%ld tokens in one pass", N);
	int rc = scratch_reserve(g, (int)N, err);
	if (rc)
		return rc;
	struct ft_gen_scratch *s = g->s;
	int n = 0;
	s->nsingle = s->nmulti = 0;
	for (int single = 1; single >= 0; single--)
		for (int f = 0; f < nfeeds; f++) {
			const struct ft_gen_feed *fd = &feeds[f];
			if ((fd->n == 1) != single)
				continue;
			if (single) {
				s->nsingle++;
			} else {
				s->multi_start[s->nmulti] = n;
				s->multi_len[s->nmulti++] = fd->n;
			}
			s->feed_row[f] = n;
			for (int i = 0; i < fd->n; i++, n++) {
				int32_t t = fd->tokens[i];
				if (t < 0 || t >= V)
					return ft_err_set(err, FT_E_DATA,
							  "token %d outside the vocabulary of %d", t, V);
				s->h_tokens[n] = t;
				s->slot[n] = fd->slot;
				s->h_pos[n] = g->slots[fd->slot].len + i;
			}
		}
	g->ops->upload(s->tokens, s->h_tokens, (size_t)n * sizeof(int32_t));
	g->ops->upload(s->pos, s->h_pos, (size_t)n * sizeof(int32_t));
	*rows = n;
	return FT_OK;
}

/* The cache pointers the attention reads, for every layer of the pass's
 * rows (layer l's at l * N), in one upload each. */
static void cache_pointers(struct ft_gen *g, int N)
{
	const struct ft_model_config *c = &g->model->cfg;
	struct ft_gen_scratch *s = g->s;
	size_t KV = (size_t)c->num_kv_heads * c->head_dim, LN = (size_t)c->num_layers * N;
	for (int l = 0; l < c->num_layers; l++)
		for (int n = 0; n < N; n++) {
			struct ft_gen_slot *sl = &g->slots[s->slot[n]];
			size_t base = (size_t)l * sl->cap * KV;
			s->h_kp[(size_t)l * N + n] = xat(g, sl->k, base);
			s->h_vp[(size_t)l * N + n] = xat(g, sl->v, base);
		}
	g->ops->upload(s->kp, s->h_kp, LN * sizeof(void *));
	g->ops->upload(s->vp, s->h_vp, LN * sizeof(void *));
}

/* Keys and values of layer l's rows into their slots' caches: a feed's
 * rows are consecutive positions of one slot, so one copy each. */
static void cache_store(struct ft_gen *g, int l, int N)
{
	const struct ft_model_config *c = &g->model->cfg;
	struct ft_gen_scratch *s = g->s;
	size_t KV = (size_t)c->num_kv_heads * c->head_dim;
	for (int n = 0, run; n < N; n += run) {
		for (run = 1; n + run < N && s->slot[n + run] == s->slot[n] &&
			      s->h_pos[n + run] == s->h_pos[n] + run; run++)
			;
		struct ft_gen_slot *sl = &g->slots[s->slot[n]];
		size_t at = ((size_t)l * sl->cap + (size_t)s->h_pos[n]) * KV;
		size_t bytes = (size_t)run * KV * g->ops->xsize;
		g->ops->copy(xat(g, sl->k, at), xat(g, s->k, n * KV), bytes);
		g->ops->copy(xat(g, sl->v, at), xat(g, s->v, n * KV), bytes);
	}
}

static void layer_forward(struct ft_gen *g, int l, int N)
{
	const struct ft_ops *ops = g->ops;
	const struct ft_model_config *c = &g->model->cfg;
	const struct ft_layer_weights *L = &g->xw->layers[l];
	struct ft_gen_scratch *s = g->s;
	int C = c->hidden_size, H = c->num_heads, KVH = c->num_kv_heads, D = c->head_dim;
	size_t NC = (size_t)N * C, NI = (size_t)N * c->intermediate_size;
	float eps = (float)c->rms_norm_eps;

	ops->rmsnorm_forward(s->ln, s->rstd, s->x, L->input_layernorm, N, C, eps);
	module(g, l, FT_MOD_Q, s->q, s->ln);
	module(g, l, FT_MOD_K, s->k, s->ln);
	module(g, l, FT_MOD_V, s->v, s->ln);
	ops->rope_forward(s->q, s->pos, g->inv_freq, N, H, D);
	ops->rope_forward(s->k, s->pos, g->inv_freq, N, KVH, D);
	cache_store(g, l, N);
	size_t lN = (size_t)l * N;
	g->dops->attention_cached(s->att, s->q, s->kp + lN, s->vp + lN, s->pos, N, H, KVH, D);
	module(g, l, FT_MOD_O, s->tmp, s->att);
	ops->add(s->x, s->x, s->tmp, NC);

	ops->rmsnorm_forward(s->ln, s->rstd, s->x, L->post_attention_layernorm, N, C, eps);
	module(g, l, FT_MOD_GATE, s->gate, s->ln);
	module(g, l, FT_MOD_UP, s->up, s->ln);
	ops->swiglu_forward(s->gate, s->gate, s->up, NI);
	module(g, l, FT_MOD_DOWN, s->tmp, s->gate);
	ops->add(s->x, s->x, s->tmp, NC);
}

int ft_gen_forward(struct ft_gen *g, const struct ft_gen_feed *feeds, int nfeeds,
		   float *logits, bool every_token, struct ft_err *err)
{
	int N = 0;
	int rc = gather(g, feeds, nfeeds, &N, err);
	if (rc)
		return rc;
	const struct ft_model_config *c = &g->model->cfg;
	struct ft_gen_scratch *s = g->s;
	int C = c->hidden_size, V = c->vocab_size;
	g->ops->embedding_forward(s->x, s->tokens, g->xw->embed, N, C);
	cache_pointers(g, N);
	for (int l = 0; l < c->num_layers; l++)
		layer_forward(g, l, N);
	for (int f = 0; f < nfeeds; f++)
		g->slots[feeds[f].slot].len += feeds[f].n;

	/* the rows whose logits are wanted, in feed order, into tmp */
	int rows = 0;
	for (int f = 0; f < nfeeds; f++) {
		int first = every_token ? s->feed_row[f] : s->feed_row[f] + feeds[f].n - 1;
		int count = every_token ? feeds[f].n : 1;
		g->ops->copy(xat(g, s->tmp, (size_t)rows * C), xat(g, s->x, (size_t)first * C),
			     (size_t)count * C * g->ops->xsize);
		rows += count;
	}
	g->ops->rmsnorm_forward(s->ln, s->rstd, s->tmp, g->xw->norm, rows, C,
				(float)c->rms_norm_eps);
	/* fp32 logits (rows <= N: f32 has room), then to the caller */
	g->dops->matmul_rows(s->f32, s->ln, g->xw->lm_head, NULL, rows, C, V);
	g->ops->download(logits, s->f32, (size_t)rows * V * sizeof(float));
	return FT_OK;
}

/* ---- sampling ---------------------------------------------------------- */

/* descending logit, then ascending id: a fixed order for equal logits */
static int cmp_desc(const void *a, const void *b, void *arg)
{
	const float *l = arg;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	if (l[x] != l[y])
		return l[x] > l[y] ? -1 : 1;
	return x < y ? -1 : x > y;
}

int ft_gen_pick(float *logits, int V, const struct ft_sampling *s, double u, int32_t *order)
{
	int best = 0;
	for (int i = 1; i < V; i++)
		if (logits[i] > logits[best])
			best = i;
	if (s->temperature <= 0.0)
		return best;
	float inv_t = (float)(1.0 / s->temperature);
	for (int i = 0; i < V; i++)
		logits[i] *= inv_t;
	float mx = logits[best];
	int n = V;
	for (int i = 0; i < V; i++)
		order[i] = i;
	bool filter = (s->top_k > 0 && s->top_k < V) || s->top_p < 1.0;
	if (filter)
		qsort_r(order, (size_t)V, sizeof *order, cmp_desc, logits);
	if (s->top_k > 0 && s->top_k < V) {
		float kth = logits[order[s->top_k - 1]];
		n = s->top_k;
		while (n < V && logits[order[n]] == kth)
			n++;
	}
	double z = 0.0;
	for (int i = 0; i < n; i++)
		z += exp((double)logits[order[i]] - mx);
	if (s->top_p < 1.0) {
		/* keep a token while the mass above it is below p */
		double above = 0.0;
		int keep = 0;
		while (keep < n && (keep == 0 || above < s->top_p * z))
			above += exp((double)logits[order[keep++]] - mx);
		n = keep;
		z = above;
	}
	double target = u * z, cum = 0.0;
	for (int i = 0; i < n; i++) {
		cum += exp((double)logits[order[i]] - mx);
		if (cum > target)
			return order[i];
	}
	return order[n - 1];
}
