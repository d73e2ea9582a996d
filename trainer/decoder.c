/* decoder.c: the decoder's forward and backward pass over the op table
 * (contract in decoder.h). Layer l, on the residual stream x (N x C):
 *   h1 = rmsnorm(x);  q,k,v = h1 Wq,Wk,Wv (+bias, +LoRA);  rope(q, k)
 *   a = attention(q, k, v) within documents;  x' = x + a Wo
 *   h2 = rmsnorm(x');  m = silu(h2 Wg) * (h2 Wu);  x'' = x' + m Wd
 * then logits = rmsnorm(x) Wlm. The backward walks it in reverse with one
 * residual gradient buffer that every branch adds into. */
#include "decoder.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define HEAD_CHUNK 64   /* rows of logits alive at a time in forward_backward */

struct ft_decoder_acts {
	int32_t *pos, *doc_start, *targets;      /* N */
	float *resid;        /* (L+1) x N x C: input of each layer, then the final one */
	float *resid_mid;    /* L x N x C: after attention */
	float *ln1, *ln2;    /* L x N x C */
	float *rstd1, *rstd2;/* L x N */
	float *q, *att;      /* L x N x Q */
	float *k, *v;        /* L x N x KV */
	float *lse;          /* L x B x H x T */
	float *gate, *up, *mlp;   /* L x N x I */
	float *normed, *rstdf;    /* N x C, N */
	float *losses;       /* N */
	/* scratch */
	float *tmp, *dresid, *dln;     /* N x C */
	float *dq, *datt;              /* N x Q */
	float *dk, *dv;                /* N x KV */
	float *dgate, *dup, *dmlp;     /* N x I */
	float *logits;                 /* HEAD_CHUNK x V */
	float *lora_x, *lora_dx;       /* N x max(in) */
	float *lora_h, *lora_dh;       /* N x r */
	float *block;
};

static void zero(float *p, size_t n)
{
	memset(p, 0, n * sizeof *p);
}

int ft_decoder_init(struct ft_decoder *d, const struct ft_ops *ops, const struct ft_model *m,
		    const struct ft_lora *lora, int B, int T, struct ft_err *err)
{
	memset(d, 0, sizeof *d);
	if (B < 1 || T < 1 || (size_t)B * (size_t)T > (1u << 24))
		return ft_err_set(err, FT_E_INVAL, "bad batch shape %d x %d", B, T);
	d->ops = ops;
	d->model = m;
	d->lora = lora;
	d->B = B;
	d->T = T;
	const struct ft_model_config *c = &m->cfg;
	size_t N = (size_t)B * T, L = (size_t)c->num_layers, C = (size_t)c->hidden_size;
	size_t Q = (size_t)c->num_heads * c->head_dim, KV = (size_t)c->num_kv_heads * c->head_dim;
	size_t I = (size_t)c->intermediate_size, V = (size_t)c->vocab_size;
	size_t maxin = C > I ? C : I, r = lora ? (size_t)lora->cfg.rank : 0;
	if (Q > maxin)
		maxin = Q;
	struct ft_decoder_acts *a = calloc(1, sizeof *a);
	if (!a)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	d->a = a;
	struct {
		float **p;
		size_t n;
	} parts[] = {
		{ &a->resid, (L + 1) * N * C }, { &a->resid_mid, L * N * C },
		{ &a->ln1, L * N * C },         { &a->ln2, L * N * C },
		{ &a->rstd1, L * N },           { &a->rstd2, L * N },
		{ &a->q, L * N * Q },           { &a->att, L * N * Q },
		{ &a->k, L * N * KV },          { &a->v, L * N * KV },
		{ &a->lse, L * N * c->num_heads },
		{ &a->gate, L * N * I },        { &a->up, L * N * I },  { &a->mlp, L * N * I },
		{ &a->normed, N * C },          { &a->rstdf, N },       { &a->losses, N },
		{ &a->tmp, N * C },             { &a->dresid, N * C },  { &a->dln, N * C },
		{ &a->dq, N * Q },              { &a->datt, N * Q },
		{ &a->dk, N * KV },             { &a->dv, N * KV },
		{ &a->dgate, N * I },           { &a->dup, N * I },     { &a->dmlp, N * I },
		{ &a->logits, HEAD_CHUNK * V },
		{ &a->lora_x, r ? N * maxin : 0 }, { &a->lora_dx, r ? N * maxin : 0 },
		{ &a->lora_h, N * r },          { &a->lora_dh, N * r },
	};
	size_t total = 0;
	for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
		if (parts[i].n > SIZE_MAX / 8 - total) {
			ft_decoder_release(d);
			return ft_err_set(err, FT_E_TOOBIG, "activations too large");
		}
		total += parts[i].n;
	}
	a->block = malloc(total * sizeof(float) + 3 * N * sizeof(int32_t));
	if (!a->block) {
		ft_decoder_release(d);
		return ft_err_set(err, FT_E_NOMEM, "out of memory for %zu activations", total);
	}
	float *p = a->block;
	for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
		*parts[i].p = p;
		p += parts[i].n;
	}
	a->pos = (int32_t *)p;
	a->doc_start = a->pos + N;
	a->targets = a->doc_start + N;
	return FT_OK;
}

void ft_decoder_release(struct ft_decoder *d)
{
	if (d->a)
		free(d->a->block);
	free(d->a);
	d->a = NULL;
}

/* Positions, document starts and targets of every token; checks the batch. */
static int prepare(struct ft_decoder *d, const struct ft_batch *b, long *trained,
		   struct ft_err *err)
{
	if (b->B < 1 || b->T < 1 || b->B > d->B || b->T > d->T)
		return ft_err_set(err, FT_E_INVAL, "batch is %d x %d, the decoder at most %d x %d",
				  b->B, b->T, d->B, d->T);
	int T = b->T, V = d->model->cfg.vocab_size;
	struct ft_decoder_acts *a = d->a;
	for (int r = 0; r < b->B; r++) {
		const int32_t *starts = NULL;
		int nstarts = 0;
		if (b->doc_offsets) {
			int lo = b->doc_offsets[r], hi = b->doc_offsets[r + 1];
			if (lo < 0 || hi <= lo || (r == 0 && lo != 0))
				return ft_err_set(err, FT_E_DATA, "row %d: bad document offsets", r);
			starts = b->doc_starts + lo;
			nstarts = hi - lo;
			if (starts[0] != 0)
				return ft_err_set(err, FT_E_DATA, "row %d: first document starts at %d",
						  r, starts[0]);
		}
		int k = 0, start = 0;
		for (int t = 0; t < T; t++) {
			size_t n = (size_t)r * T + t;
			if (k < nstarts && starts[k] == t) {
				start = t;
				k++;
				if (k < nstarts && starts[k] <= t)
					return ft_err_set(err, FT_E_DATA,
							  "row %d: document starts not increasing", r);
			}
			if (b->tokens[n] < 0 || b->tokens[n] >= V)
				return ft_err_set(err, FT_E_DATA, "row %d: token %d outside the vocabulary",
						  r, b->tokens[n]);
			a->pos[n] = t - start;
			a->doc_start[n] = start;
		}
		if (k < nstarts)
			return ft_err_set(err, FT_E_DATA, "row %d: document start %d beyond the row", r,
					  starts[k]);
	}
	long count = 0;
	for (int r = 0; r < b->B; r++)
		for (int t = 0; t < T; t++) {
			size_t n = (size_t)r * T + t;
			bool ok = t + 1 < T && (!b->mask || b->mask[n + 1]) &&
				  a->doc_start[n + 1] == a->doc_start[n];
			a->targets[n] = ok ? b->tokens[n + 1] : -1;
			count += ok;
		}
	*trained = count;
	return FT_OK;
}

long ft_batch_trained(const struct ft_batch *b)
{
	long count = 0;
	for (int r = 0; r < b->B; r++) {
		const int32_t *starts = NULL;
		int k = 0, nstarts = 0;
		if (b->doc_offsets) {
			starts = b->doc_starts + b->doc_offsets[r];
			nstarts = b->doc_offsets[r + 1] - b->doc_offsets[r];
		}
		for (int t = 1; t < b->T; t++) {
			while (k < nstarts && starts[k] < t)
				k++;
			bool starts_doc = k < nstarts && starts[k] == t;
			count += !starts_doc && (!b->mask || b->mask[(size_t)r * b->T + t]);
		}
	}
	return count;
}

/* ---- linear layers with their LoRA branch ------------------------------ */

/* The adapter's input: x, or x with inverted dropout from a mask that is a
 * function of (seed, step, layer, module, element). */
static const float *lora_input(struct ft_decoder *d, int l, int mod, const float *x, int N,
			       int in, bool train)
{
	double p = d->lora->cfg.dropout;
	if (!train || p == 0.0)
		return x;
	float *xd = d->a->lora_x, keep = (float)(1.0 / (1.0 - p));
	uint64_t seed = d->lora->cfg.seed ^ (d->dropout_step * 0x9e3779b97f4a7c15ull);
	uint64_t site = (uint64_t)l * FT_MOD_COUNT + (uint64_t)mod;
	size_t n_all = (size_t)N * in;
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n_all; i++)
		xd[i] = ft_rng_hash(seed, site, i) < p ? 0.0f : x[i] * keep;
	return xd;
}

static bool has_lora(const struct ft_decoder *d, int mod)
{
	return d->lora && (d->lora->cfg.targets & (1u << mod));
}

static void linear_forward(struct ft_decoder *d, int l, int mod, float *out, const float *x,
			   int N, bool train)
{
	const struct ft_model *m = d->model;
	int in, outd;
	ft_module_dims(&m->cfg, mod, &in, &outd);
	const struct ft_layer_weights *L = &m->w.layers[l];
	d->ops->matmul_forward(out, x, L->w[mod], L->b[mod], N, in, outd, 1.0f, 0);
	if (!has_lora(d, mod))
		return;
	const struct ft_lora_layer *A = &d->lora->w.layers[l];
	int r = d->lora->cfg.rank;
	const float *xd = lora_input(d, l, mod, x, N, in, train);
	d->ops->matmul_forward(d->a->lora_h, xd, A->A[mod], NULL, N, in, r, 1.0f, 0);
	d->ops->matmul_forward(out, d->a->lora_h, A->B[mod], NULL, N, r, outd, d->lora->scaling,
			       1);
}

/* dx += d/dx, and weight gradients into g / lg (either may be NULL). */
static void linear_backward(struct ft_decoder *d, int l, int mod, float *dx, const float *dy,
			    const float *x, int N, const struct ft_weights *g,
			    const struct ft_lora_weights *lg)
{
	const struct ft_model *m = d->model;
	int in, outd;
	ft_module_dims(&m->cfg, mod, &in, &outd);
	const struct ft_layer_weights *L = &m->w.layers[l];
	d->ops->matmul_backward(dx, g ? g->layers[l].w[mod] : NULL, g ? g->layers[l].b[mod] : NULL,
				dy, x, L->w[mod], N, in, outd, 1.0f);
	if (!has_lora(d, mod))
		return;
	struct ft_decoder_acts *a = d->a;
	const struct ft_lora_layer *A = &d->lora->w.layers[l];
	int r = d->lora->cfg.rank;
	bool dropped = d->lora->cfg.dropout > 0.0;
	const float *xd = lora_input(d, l, mod, x, N, in, true);
	/* recompute h = xd A^T, then through y += scaling * h B^T */
	d->ops->matmul_forward(a->lora_h, xd, A->A[mod], NULL, N, in, r, 1.0f, 0);
	zero(a->lora_dh, (size_t)N * r);
	d->ops->matmul_backward(a->lora_dh, lg ? lg->layers[l].B[mod] : NULL, NULL, dy, a->lora_h,
				A->B[mod], N, r, outd, d->lora->scaling);
	float *dxd = dx;
	if (dropped) {
		dxd = a->lora_dx;
		zero(dxd, (size_t)N * in);
	}
	d->ops->matmul_backward(dxd, lg ? lg->layers[l].A[mod] : NULL, NULL, a->lora_dh, xd,
				A->A[mod], N, in, r, 1.0f);
	if (dropped) {
		/* the dropout mask again: d/dx of x*mask*keep is mask*keep; xd/x
		 * would divide by zero, so recompute the mask from lora_input's
		 * rule on a vector of ones */
		double p = d->lora->cfg.dropout;
		float keep = (float)(1.0 / (1.0 - p));
		uint64_t seed = d->lora->cfg.seed ^ (d->dropout_step * 0x9e3779b97f4a7c15ull);
		uint64_t site = (uint64_t)l * FT_MOD_COUNT + (uint64_t)mod;
		size_t n_all = (size_t)N * in;
#pragma omp parallel for schedule(static)
		for (size_t i = 0; i < n_all; i++)
			if (ft_rng_hash(seed, site, i) >= p)
				dx[i] += dxd[i] * keep;
	}
}

/* ---- forward ----------------------------------------------------------- */

static void forward_layers(struct ft_decoder *d, const struct ft_batch *b, bool train)
{
	const struct ft_ops *ops = d->ops;
	const struct ft_model *m = d->model;
	const struct ft_model_config *c = &m->cfg;
	struct ft_decoder_acts *a = d->a;
	int B = b->B, T = b->T, N = B * T, C = c->hidden_size, I = c->intermediate_size;
	int H = c->num_heads, KVH = c->num_kv_heads, D = c->head_dim;
	size_t NC = (size_t)N * C, NQ = (size_t)N * H * D, NKV = (size_t)N * KVH * D;
	size_t NI = (size_t)N * I;
	float eps = (float)c->rms_norm_eps;

	ops->embedding_forward(a->resid, b->tokens, m->w.embed, N, C);
	for (int l = 0; l < c->num_layers; l++) {
		const struct ft_layer_weights *L = &m->w.layers[l];
		float *x = a->resid + l * NC, *xmid = a->resid_mid + l * NC;
		float *ln1 = a->ln1 + l * NC, *ln2 = a->ln2 + l * NC;
		float *q = a->q + l * NQ, *k = a->k + l * NKV, *v = a->v + l * NKV;
		float *att = a->att + l * NQ, *lse = a->lse + (size_t)l * N * H;
		float *gate = a->gate + l * NI, *up = a->up + l * NI, *mlp = a->mlp + l * NI;

		ops->rmsnorm_forward(ln1, a->rstd1 + (size_t)l * N, x, L->input_layernorm, N, C, eps);
		linear_forward(d, l, FT_MOD_Q, q, ln1, N, train);
		linear_forward(d, l, FT_MOD_K, k, ln1, N, train);
		linear_forward(d, l, FT_MOD_V, v, ln1, N, train);
		ops->rope_forward(q, a->pos, &m->rope, N, H, D);
		ops->rope_forward(k, a->pos, &m->rope, N, KVH, D);
		ops->attention_forward(att, lse, q, k, v, a->doc_start, B, T, H, KVH, D);
		linear_forward(d, l, FT_MOD_O, a->tmp, att, N, train);
		ops->add(xmid, x, a->tmp, NC);

		ops->rmsnorm_forward(ln2, a->rstd2 + (size_t)l * N, xmid, L->post_attention_layernorm,
				     N, C, eps);
		linear_forward(d, l, FT_MOD_GATE, gate, ln2, N, train);
		linear_forward(d, l, FT_MOD_UP, up, ln2, N, train);
		ops->swiglu_forward(mlp, gate, up, NI);
		linear_forward(d, l, FT_MOD_DOWN, a->tmp, mlp, N, train);
		ops->add(x + NC, xmid, a->tmp, NC);
	}
	ops->rmsnorm_forward(a->normed, a->rstdf, a->resid + (size_t)c->num_layers * NC,
			     m->w.norm, N, C, eps);
}

static double sum_losses(const float *losses, size_t N)
{
	double s = 0.0;
	for (size_t n = 0; n < N; n++)
		s += losses[n];
	return s;
}

int ft_decoder_forward(struct ft_decoder *d, const struct ft_batch *b, float *logits,
		       double *loss_sum, long *trained, struct ft_err *err)
{
	long count;
	int rc = prepare(d, b, &count, err);
	if (rc)
		return rc;
	forward_layers(d, b, false);
	const struct ft_model_config *c = &d->model->cfg;
	struct ft_decoder_acts *a = d->a;
	int N = b->B * b->T, C = c->hidden_size, V = c->vocab_size;
	for (int r0 = 0; r0 < N; r0 += HEAD_CHUNK) {
		int rows = N - r0 < HEAD_CHUNK ? N - r0 : HEAD_CHUNK;
		float *out = logits ? logits + (size_t)r0 * V : a->logits;
		d->ops->matmul_forward(out, a->normed + (size_t)r0 * C, d->model->w.lm_head, NULL,
				       rows, C, V, 1.0f, 0);
		d->ops->crossentropy_forward(a->losses + r0, out, a->targets + r0, rows, V);
	}
	if (loss_sum)
		*loss_sum = sum_losses(a->losses, (size_t)N);
	if (trained)
		*trained = count;
	return FT_OK;
}

/* ---- backward ---------------------------------------------------------- */

/* The lowest layer whose weights or adapters receive a gradient (num_layers
 * when none does); the backward pass need not go below it unless the
 * embedding table trains. */
static int lowest_trained_layer(const struct ft_decoder *d, const struct ft_weights *g,
				const struct ft_lora_weights *lg)
{
	int L = d->model->cfg.num_layers;
	if (g && g->embed)
		return 0;
	for (int l = 0; l < L; l++) {
		if (g) {
			const struct ft_layer_weights *GL = &g->layers[l];
			if (GL->input_layernorm || GL->post_attention_layernorm)
				return l;
			for (int mod = 0; mod < FT_MOD_COUNT; mod++)
				if (GL->w[mod] || GL->b[mod])
					return l;
		}
		if (lg)
			for (int mod = 0; mod < FT_MOD_COUNT; mod++)
				if (lg->layers[l].A[mod] || lg->layers[l].B[mod])
					return l;
	}
	return L;
}

int ft_decoder_forward_backward(struct ft_decoder *d, const struct ft_batch *b,
				float grad_scale, const struct ft_weights *g,
				const struct ft_lora_weights *lg, double *loss_sum, long *trained,
				struct ft_err *err)
{
	long count;
	int rc = prepare(d, b, &count, err);
	if (rc)
		return rc;
	if (!d->lora)
		lg = NULL;
	if (d->lora && d->lora->cfg.dropout > 0.0)
		d->dropout_step++;
	forward_layers(d, b, true);

	const struct ft_ops *ops = d->ops;
	const struct ft_model *m = d->model;
	const struct ft_model_config *c = &m->cfg;
	struct ft_decoder_acts *a = d->a;
	int B = b->B, T = b->T, N = B * T, C = c->hidden_size, I = c->intermediate_size;
	int H = c->num_heads, KVH = c->num_kv_heads, D = c->head_dim, V = c->vocab_size;
	size_t NC = (size_t)N * C, NQ = (size_t)N * H * D, NKV = (size_t)N * KVH * D;
	size_t NI = (size_t)N * I;

	/* LM head and loss, chunk by chunk: logits, loss, dlogits, dnormed, dWlm */
	zero(a->dln, NC);
	for (int r0 = 0; r0 < N; r0 += HEAD_CHUNK) {
		int rows = N - r0 < HEAD_CHUNK ? N - r0 : HEAD_CHUNK;
		bool any = false;
		for (int n = r0; n < r0 + rows; n++)
			any |= a->targets[n] >= 0;
		if (!any) {
			zero(a->losses + r0, (size_t)rows);
			continue;
		}
		const float *x = a->normed + (size_t)r0 * C;
		ops->matmul_forward(a->logits, x, m->w.lm_head, NULL, rows, C, V, 1.0f, 0);
		ops->crossentropy_forward(a->losses + r0, a->logits, a->targets + r0, rows, V);
		ops->crossentropy_backward(a->logits, a->logits, a->targets + r0, rows, V,
					   grad_scale);
		ops->matmul_backward(a->dln + (size_t)r0 * C, g ? g->lm_head : NULL, NULL, a->logits,
				     x, m->w.lm_head, rows, C, V, 1.0f);
	}
	zero(a->dresid, NC);
	ops->rmsnorm_backward(a->dresid, g ? g->norm : NULL, a->dln,
			      a->resid + (size_t)c->num_layers * NC, m->w.norm, a->rstdf, N, C);

	int lowest = lowest_trained_layer(d, g, lg);
	for (int l = c->num_layers - 1; l >= lowest; l--) {
		const struct ft_layer_weights *L = &m->w.layers[l];
		const struct ft_layer_weights *GL = g ? &g->layers[l] : NULL;
		float *x = a->resid + l * NC, *xmid = a->resid_mid + l * NC;
		float *ln1 = a->ln1 + l * NC, *ln2 = a->ln2 + l * NC;
		float *q = a->q + l * NQ, *k = a->k + l * NKV, *v = a->v + l * NKV;
		float *att = a->att + l * NQ, *lse = a->lse + (size_t)l * N * H;
		float *gate = a->gate + l * NI, *up = a->up + l * NI, *mlp = a->mlp + l * NI;

		/* MLP branch: dresid is d(x''), the same as d(x') through the skip */
		zero(a->dmlp, NI);
		linear_backward(d, l, FT_MOD_DOWN, a->dmlp, a->dresid, mlp, N, g, lg);
		zero(a->dgate, NI);
		zero(a->dup, NI);
		ops->swiglu_backward(a->dgate, a->dup, a->dmlp, gate, up, NI);
		zero(a->dln, NC);
		linear_backward(d, l, FT_MOD_GATE, a->dln, a->dgate, ln2, N, g, lg);
		linear_backward(d, l, FT_MOD_UP, a->dln, a->dup, ln2, N, g, lg);
		ops->rmsnorm_backward(a->dresid, GL ? GL->post_attention_layernorm : NULL, a->dln,
				      xmid, L->post_attention_layernorm, a->rstd2 + (size_t)l * N,
				      N, C);

		/* attention branch: dresid is now d(x') */
		zero(a->datt, NQ);
		linear_backward(d, l, FT_MOD_O, a->datt, a->dresid, att, N, g, lg);
		zero(a->dq, NQ);
		zero(a->dk, NKV);
		zero(a->dv, NKV);
		ops->attention_backward(a->dq, a->dk, a->dv, a->datt, att, lse, q, k, v, a->doc_start,
					B, T, H, KVH, D);
		ops->rope_backward(a->dq, a->pos, &m->rope, N, H, D);
		ops->rope_backward(a->dk, a->pos, &m->rope, N, KVH, D);
		zero(a->dln, NC);
		linear_backward(d, l, FT_MOD_Q, a->dln, a->dq, ln1, N, g, lg);
		linear_backward(d, l, FT_MOD_K, a->dln, a->dk, ln1, N, g, lg);
		linear_backward(d, l, FT_MOD_V, a->dln, a->dv, ln1, N, g, lg);
		ops->rmsnorm_backward(a->dresid, GL ? GL->input_layernorm : NULL, a->dln, x,
				      L->input_layernorm, a->rstd1 + (size_t)l * N, N, C);
	}
	if (g && g->embed)
		ops->embedding_backward(g->embed, a->dresid, b->tokens, N, C, V);

	if (loss_sum)
		*loss_sum = sum_losses(a->losses, (size_t)N);
	if (trained)
		*trained = count;
	return FT_OK;
}
