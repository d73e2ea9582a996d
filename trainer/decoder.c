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

/* x tensors (kernels/ops.h) are void pointers in the backend's storage
 * type; xat indexes them. */
static void *xat(const struct ft_decoder *d, void *p, size_t i)
{
	return ft_x_at(d->ops, p, i);
}

struct ft_decoder_acts {
	/* backend memory */
	int32_t *tokens, *pos, *doc_start, *targets;   /* N */
	float *inv_freq;     /* head_dim / 2 */
	void *resid;         /* (L+1) x N x C: input of each layer, then the final one */
	/* the rest of each layer's activations, for S = L layers (S = 1 when
	 * the backward pass recomputes them layer by layer) */
	void *resid_mid;     /* S x N x C: after attention */
	void *ln1, *ln2;     /* S x N x C */
	float *rstd1, *rstd2;/* S x N */
	void *q, *att;       /* S x N x Q */
	void *k, *v;         /* S x N x KV */
	float *lse;          /* S x B x H x T */
	void *gate, *up, *mlp;    /* S x N x I */
	void *normed;        /* N x C */
	float *rstdf;        /* N */
	float *losses;       /* N */
	/* scratch */
	void *tmp, *dresid, *dln;      /* N x C */
	void *dq, *datt;               /* N x Q */
	void *dk, *dv;                 /* N x KV */
	void *dgate, *dup, *dmlp;      /* N x I */
	void *logits;                  /* head_rows x V */
	float *logits32;               /* head_rows x V, fp32 for the caller */
	void *lora_x, *lora_dx;        /* N x max(in) */
	void *lora_h, *lora_dh;        /* N x r */
	void *block;
	/* host copies of the batch layout */
	int32_t *h_pos, *h_doc_start, *h_targets;   /* N */
	float *h_losses;                            /* N */
};

static void zero(const struct ft_decoder *d, void *p, size_t n)
{
	d->ops->memzero(p, n * d->ops->xsize);
}

/* The activations are parts of one backend block, each padded to 16 bytes
 * so that every part stays aligned: layout runs once to size the block
 * (base NULL) and once to point into it. */
struct carver {
	char *base;
	size_t off;
	bool overflow;
};

static void *carve(struct carver *cv, size_t n, size_t size)
{
	size_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes) || bytes > SIZE_MAX / 2 - cv->off) {
		cv->overflow = true;
		return NULL;
	}
	void *p = cv->base ? cv->base + cv->off : NULL;
	cv->off += (bytes + 15) & ~(size_t)15;
	return p;
}

static void layout(struct ft_decoder_acts *a, struct carver *cv, size_t xs, size_t L, size_t S,
		   size_t N, size_t C, size_t Q, size_t KV, size_t I, size_t V, size_t rows,
		   size_t maxin, size_t r, size_t H, size_t D)
{
	a->resid = carve(cv, (L + 1) * N * C, xs);
	a->resid_mid = carve(cv, S * N * C, xs);
	a->ln1 = carve(cv, S * N * C, xs);
	a->ln2 = carve(cv, S * N * C, xs);
	a->q = carve(cv, S * N * Q, xs);
	a->att = carve(cv, S * N * Q, xs);
	a->k = carve(cv, S * N * KV, xs);
	a->v = carve(cv, S * N * KV, xs);
	a->gate = carve(cv, S * N * I, xs);
	a->up = carve(cv, S * N * I, xs);
	a->mlp = carve(cv, S * N * I, xs);
	a->normed = carve(cv, N * C, xs);
	a->tmp = carve(cv, N * C, xs);
	a->dresid = carve(cv, N * C, xs);
	a->dln = carve(cv, N * C, xs);
	a->dq = carve(cv, N * Q, xs);
	a->datt = carve(cv, N * Q, xs);
	a->dk = carve(cv, N * KV, xs);
	a->dv = carve(cv, N * KV, xs);
	a->dgate = carve(cv, N * I, xs);
	a->dup = carve(cv, N * I, xs);
	a->dmlp = carve(cv, N * I, xs);
	a->logits = carve(cv, rows * V, xs);
	a->lora_x = carve(cv, r ? N * maxin : 0, xs);
	a->lora_dx = carve(cv, r ? N * maxin : 0, xs);
	a->lora_h = carve(cv, N * r, xs);
	a->lora_dh = carve(cv, N * r, xs);
	a->rstd1 = carve(cv, S * N, sizeof(float));
	a->rstd2 = carve(cv, S * N, sizeof(float));
	a->lse = carve(cv, S * N * H, sizeof(float));
	a->rstdf = carve(cv, N, sizeof(float));
	a->losses = carve(cv, N, sizeof(float));
	a->logits32 = carve(cv, rows * V, sizeof(float));
	a->inv_freq = carve(cv, D / 2, sizeof(float));
	a->tokens = carve(cv, N, sizeof(int32_t));
	a->pos = carve(cv, N, sizeof(int32_t));
	a->doc_start = carve(cv, N, sizeof(int32_t));
	a->targets = carve(cv, N, sizeof(int32_t));
}

int ft_decoder_init(struct ft_decoder *d, const struct ft_ops *ops, const struct ft_model *m,
		    const struct ft_lora *lora, int B, int T, bool recompute, struct ft_err *err)
{
	memset(d, 0, sizeof *d);
	if (B < 1 || T < 1 || (size_t)B * (size_t)T > (1u << 24))
		return ft_err_set(err, FT_E_INVAL, "bad batch shape %d x %d", B, T);
	d->ops = ops;
	d->model = m;
	d->lora = lora;
	d->xw = &m->w;
	d->xlw = lora ? &lora->w : NULL;
	d->B = B;
	d->T = T;
	d->recompute = recompute;
	const struct ft_model_config *c = &m->cfg;
	size_t N = (size_t)B * T, L = (size_t)c->num_layers, C = (size_t)c->hidden_size;
	size_t S = recompute ? 1 : L;
	size_t Q = (size_t)c->num_heads * c->head_dim, KV = (size_t)c->num_kv_heads * c->head_dim;
	size_t I = (size_t)c->intermediate_size, V = (size_t)c->vocab_size;
	size_t maxin = C > I ? C : I, r = lora ? (size_t)lora->cfg.rank : 0;
	size_t rows = (size_t)ops->lm_head_rows < N ? (size_t)ops->lm_head_rows : N;
	d->head_rows = (int)rows;
	if (Q > maxin)
		maxin = Q;
	struct ft_decoder_acts *a = calloc(1, sizeof *a);
	if (!a)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	d->a = a;
	struct carver cv = { NULL, 0, false };
	layout(a, &cv, ops->xsize, L, S, N, C, Q, KV, I, V, rows, maxin, r, (size_t)c->num_heads,
	       (size_t)c->head_dim);
	if (cv.overflow) {
		ft_decoder_release(d);
		return ft_err_set(err, FT_E_TOOBIG, "activations too large");
	}
	size_t total = cv.off;
	a->block = ops->alloc(total);
	a->h_pos = malloc(3 * N * sizeof(int32_t));
	a->h_losses = malloc(N * sizeof(float));
	if (!a->block || !a->h_pos || !a->h_losses) {
		const char *where = a->block ? "host" : ops->name;
		ft_decoder_release(d);
		return ft_err_set(err, FT_E_NOMEM, "out of %s memory for %zu bytes of activations",
				  where, total);
	}
	cv = (struct carver){ a->block, 0, false };
	layout(a, &cv, ops->xsize, L, S, N, C, Q, KV, I, V, rows, maxin, r, (size_t)c->num_heads,
	       (size_t)c->head_dim);
	a->h_doc_start = a->h_pos + N;
	a->h_targets = a->h_doc_start + N;
	ops->upload(a->inv_freq, m->rope.inv_freq, (size_t)c->head_dim / 2 * sizeof(float));
	return FT_OK;
}

void ft_decoder_release(struct ft_decoder *d)
{
	if (d->a) {
		d->ops->release(d->a->block);
		free(d->a->h_pos);
		free(d->a->h_losses);
	}
	free(d->a);
	d->a = NULL;
}

/* Positions, document starts and targets of every token, on the host and
 * then in the backend with the tokens; checks the batch. */
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
			a->h_pos[n] = t - start;
			a->h_doc_start[n] = start;
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
				  a->h_doc_start[n + 1] == a->h_doc_start[n];
			a->h_targets[n] = ok ? b->tokens[n + 1] : -1;
			count += ok;
		}
	size_t bytes = (size_t)b->B * T * sizeof(int32_t);
	d->ops->upload(a->tokens, b->tokens, bytes);
	d->ops->upload(a->pos, a->h_pos, bytes);
	d->ops->upload(a->doc_start, a->h_doc_start, bytes);
	d->ops->upload(a->targets, a->h_targets, bytes);
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

/* Dropout masks are a function of (seed, step, layer, module, element). */
static uint64_t dropout_seed(const struct ft_decoder *d)
{
	return d->lora->cfg.seed ^ (d->dropout_step * 0x9e3779b97f4a7c15ull);
}

static uint64_t dropout_site(int l, int mod)
{
	return (uint64_t)l * FT_MOD_COUNT + (uint64_t)mod;
}

/* The adapter's input: x, or x with inverted dropout. */
static const void *lora_input(struct ft_decoder *d, int l, int mod, const void *x, int N,
			      int in, bool train)
{
	double p = d->lora->cfg.dropout;
	if (!train || p == 0.0)
		return x;
	d->ops->dropout_forward(d->a->lora_x, x, (size_t)N * in, p, dropout_seed(d),
				dropout_site(l, mod));
	return d->a->lora_x;
}

static bool has_lora(const struct ft_decoder *d, int mod)
{
	return d->lora && (d->lora->cfg.targets & (1u << mod));
}

static void linear_forward(struct ft_decoder *d, int l, int mod, void *out, const void *x, int N,
			   bool train)
{
	int in, outd;
	ft_module_dims(&d->model->cfg, mod, &in, &outd);
	const struct ft_layer_weights *L = &d->xw->layers[l];
	d->ops->matmul_forward(out, x, L->w[mod], L->b[mod], N, in, outd, 1.0f, 0);
	if (!has_lora(d, mod))
		return;
	const struct ft_lora_layer *A = &d->xlw->layers[l];
	int r = d->lora->cfg.rank;
	const void *xd = lora_input(d, l, mod, x, N, in, train);
	d->ops->matmul_forward(d->a->lora_h, xd, A->A[mod], NULL, N, in, r, 1.0f, 0);
	d->ops->matmul_forward(out, d->a->lora_h, A->B[mod], NULL, N, r, outd, d->lora->scaling,
			       1);
}

/* dx += d/dx, and weight gradients into g / lg (either may be NULL). */
static void linear_backward(struct ft_decoder *d, int l, int mod, void *dx, const void *dy,
			    const void *x, int N, const struct ft_weights *g,
			    const struct ft_lora_weights *lg)
{
	int in, outd;
	ft_module_dims(&d->model->cfg, mod, &in, &outd);
	const struct ft_layer_weights *L = &d->xw->layers[l];
	d->ops->matmul_backward(dx, g ? g->layers[l].w[mod] : NULL, g ? g->layers[l].b[mod] : NULL,
				dy, x, L->w[mod], N, in, outd, 1.0f);
	if (!has_lora(d, mod))
		return;
	struct ft_decoder_acts *a = d->a;
	const struct ft_lora_layer *A = &d->xlw->layers[l];
	int r = d->lora->cfg.rank;
	double p = d->lora->cfg.dropout;
	const void *xd = lora_input(d, l, mod, x, N, in, true);
	/* recompute h = xd A^T, then through y += scaling * h B^T */
	d->ops->matmul_forward(a->lora_h, xd, A->A[mod], NULL, N, in, r, 1.0f, 0);
	zero(d, a->lora_dh, (size_t)N * r);
	d->ops->matmul_backward(a->lora_dh, lg ? lg->layers[l].B[mod] : NULL, NULL, dy, a->lora_h,
				A->B[mod], N, r, outd, d->lora->scaling);
	void *dxd = dx;
	if (p > 0.0) {
		dxd = a->lora_dx;
		zero(d, dxd, (size_t)N * in);
	}
	d->ops->matmul_backward(dxd, lg ? lg->layers[l].A[mod] : NULL, NULL, a->lora_dh, xd,
				A->A[mod], N, in, r, 1.0f);
	/* through the dropout: the same mask again, recomputed */
	if (p > 0.0)
		d->ops->dropout_backward(dx, dxd, (size_t)N * in, p, dropout_seed(d),
					 dropout_site(l, mod));
}

/* Layer l's activations for a batch of N tokens: its input x (and output,
 * the next layer's input, right after it) and the rest, in layer l's slot,
 * or in the one slot that every layer shares when they are recomputed. */
struct layer_acts {
	void *x, *xmid, *ln1, *ln2, *q, *k, *v, *att, *gate, *up, *mlp;
	float *lse, *rstd1, *rstd2;
};

static void layer_acts(const struct ft_decoder *d, int l, int N, struct layer_acts *la)
{
	const struct ft_model_config *c = &d->model->cfg;
	const struct ft_decoder_acts *a = d->a;
	size_t NC = (size_t)N * c->hidden_size, NI = (size_t)N * c->intermediate_size;
	size_t NQ = (size_t)N * c->num_heads * c->head_dim;
	size_t NKV = (size_t)N * c->num_kv_heads * c->head_dim, L = d->recompute ? 0 : (size_t)l;
	la->x = xat(d, a->resid, (size_t)l * NC);
	la->xmid = xat(d, a->resid_mid, L * NC);
	la->ln1 = xat(d, a->ln1, L * NC);
	la->ln2 = xat(d, a->ln2, L * NC);
	la->q = xat(d, a->q, L * NQ);
	la->k = xat(d, a->k, L * NKV);
	la->v = xat(d, a->v, L * NKV);
	la->att = xat(d, a->att, L * NQ);
	la->gate = xat(d, a->gate, L * NI);
	la->up = xat(d, a->up, L * NI);
	la->mlp = xat(d, a->mlp, L * NI);
	la->lse = a->lse + L * (size_t)N * c->num_heads;
	la->rstd1 = a->rstd1 + L * (size_t)N;
	la->rstd2 = a->rstd2 + L * (size_t)N;
}

/* ---- forward ----------------------------------------------------------- */

/* Layer l's forward pass, from its input to its output (the next layer's
 * input); without the tail (the down projection and the residual add) when
 * only the activations the backward pass reads are wanted again. */
static void forward_layer(struct ft_decoder *d, const struct ft_batch *b, int l, bool train,
			  bool tail)
{
	const struct ft_ops *ops = d->ops;
	const struct ft_model_config *c = &d->model->cfg;
	const struct ft_layer_weights *L = &d->xw->layers[l];
	struct ft_decoder_acts *a = d->a;
	int B = b->B, T = b->T, N = B * T, C = c->hidden_size;
	int H = c->num_heads, KVH = c->num_kv_heads, D = c->head_dim;
	size_t NC = (size_t)N * C, NI = (size_t)N * c->intermediate_size;
	float eps = (float)c->rms_norm_eps;
	struct layer_acts la;
	layer_acts(d, l, N, &la);

	ops->rmsnorm_forward(la.ln1, la.rstd1, la.x, L->input_layernorm, N, C, eps);
	linear_forward(d, l, FT_MOD_Q, la.q, la.ln1, N, train);
	linear_forward(d, l, FT_MOD_K, la.k, la.ln1, N, train);
	linear_forward(d, l, FT_MOD_V, la.v, la.ln1, N, train);
	ops->rope_forward(la.q, a->pos, a->inv_freq, N, H, D);
	ops->rope_forward(la.k, a->pos, a->inv_freq, N, KVH, D);
	ops->attention_forward(la.att, la.lse, la.q, la.k, la.v, a->doc_start, B, T, H, KVH, D);
	linear_forward(d, l, FT_MOD_O, a->tmp, la.att, N, train);
	ops->add(la.xmid, la.x, a->tmp, NC);

	ops->rmsnorm_forward(la.ln2, la.rstd2, la.xmid, L->post_attention_layernorm, N, C, eps);
	linear_forward(d, l, FT_MOD_GATE, la.gate, la.ln2, N, train);
	linear_forward(d, l, FT_MOD_UP, la.up, la.ln2, N, train);
	ops->swiglu_forward(la.mlp, la.gate, la.up, NI);
	if (!tail)
		return;
	linear_forward(d, l, FT_MOD_DOWN, a->tmp, la.mlp, N, train);
	ops->add(xat(d, la.x, NC), la.xmid, a->tmp, NC);
}

static void forward_layers(struct ft_decoder *d, const struct ft_batch *b, bool train)
{
	const struct ft_model_config *c = &d->model->cfg;
	struct ft_decoder_acts *a = d->a;
	int N = b->B * b->T, C = c->hidden_size;

	d->ops->embedding_forward(a->resid, a->tokens, d->xw->embed, N, C);
	for (int l = 0; l < c->num_layers; l++)
		forward_layer(d, b, l, train, true);
	d->ops->rmsnorm_forward(a->normed, a->rstdf,
				xat(d, a->resid, (size_t)c->num_layers * N * C), d->xw->norm, N,
				C, (float)c->rms_norm_eps);
}

/* The sum of the N losses, in order, on the host. */
static double sum_losses(struct ft_decoder *d, size_t N)
{
	d->ops->download(d->a->h_losses, d->a->losses, N * sizeof(float));
	double s = 0.0;
	for (size_t n = 0; n < N; n++)
		s += d->a->h_losses[n];
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
	for (int r0 = 0; r0 < N; r0 += d->head_rows) {
		int rows = N - r0 < d->head_rows ? N - r0 : d->head_rows;
		d->ops->matmul_forward(a->logits, xat(d, a->normed, (size_t)r0 * C), d->xw->lm_head,
				       NULL, rows, C, V, 1.0f, 0);
		d->ops->crossentropy_forward(a->losses + r0, a->logits, a->targets + r0, rows, V);
		if (logits) {
			size_t n = (size_t)rows * V;
			d->ops->from_x(a->logits32, a->logits, n);
			d->ops->download(logits + (size_t)r0 * V, a->logits32, n * sizeof(float));
		}
	}
	if (loss_sum)
		*loss_sum = sum_losses(d, (size_t)N);
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
	const struct ft_model_config *c = &d->model->cfg;
	const struct ft_weights *w = d->xw;
	struct ft_decoder_acts *a = d->a;
	int B = b->B, T = b->T, N = B * T, C = c->hidden_size, I = c->intermediate_size;
	int H = c->num_heads, KVH = c->num_kv_heads, D = c->head_dim, V = c->vocab_size;
	size_t NC = (size_t)N * C, NQ = (size_t)N * H * D, NKV = (size_t)N * KVH * D;
	size_t NI = (size_t)N * I;

	/* LM head and loss, chunk by chunk: logits, loss, dlogits, dnormed, dWlm */
	zero(d, a->dln, NC);
	for (int r0 = 0; r0 < N; r0 += d->head_rows) {
		int rows = N - r0 < d->head_rows ? N - r0 : d->head_rows;
		bool any = false;
		for (int n = r0; n < r0 + rows; n++)
			any |= a->h_targets[n] >= 0;
		if (!any) {
			ops->memzero(a->losses + r0, (size_t)rows * sizeof(float));
			continue;
		}
		const void *x = xat(d, a->normed, (size_t)r0 * C);
		ops->matmul_forward(a->logits, x, w->lm_head, NULL, rows, C, V, 1.0f, 0);
		ops->crossentropy_forward(a->losses + r0, a->logits, a->targets + r0, rows, V);
		ops->crossentropy_backward(a->logits, a->logits, a->targets + r0, rows, V,
					   grad_scale);
		ops->matmul_backward(xat(d, a->dln, (size_t)r0 * C), g ? g->lm_head : NULL, NULL,
				     a->logits, x, w->lm_head, rows, C, V, 1.0f);
	}
	zero(d, a->dresid, NC);
	ops->rmsnorm_backward(a->dresid, g ? g->norm : NULL, a->dln,
			      xat(d, a->resid, (size_t)c->num_layers * NC), w->norm, a->rstdf, N, C);

	int lowest = lowest_trained_layer(d, g, lg);
	for (int l = c->num_layers - 1; l >= lowest; l--) {
		const struct ft_layer_weights *L = &w->layers[l];
		const struct ft_layer_weights *GL = g ? &g->layers[l] : NULL;
		struct layer_acts la;
		layer_acts(d, l, N, &la);
		if (d->recompute)   /* the layer's activations again, from its saved input */
			forward_layer(d, b, l, true, false);

		/* MLP branch: dresid is d(x''), the same as d(x') through the skip */
		zero(d, a->dmlp, NI);
		linear_backward(d, l, FT_MOD_DOWN, a->dmlp, a->dresid, la.mlp, N, g, lg);
		zero(d, a->dgate, NI);
		zero(d, a->dup, NI);
		ops->swiglu_backward(a->dgate, a->dup, a->dmlp, la.gate, la.up, NI);
		zero(d, a->dln, NC);
		linear_backward(d, l, FT_MOD_GATE, a->dln, a->dgate, la.ln2, N, g, lg);
		linear_backward(d, l, FT_MOD_UP, a->dln, a->dup, la.ln2, N, g, lg);
		ops->rmsnorm_backward(a->dresid, GL ? GL->post_attention_layernorm : NULL, a->dln,
				      la.xmid, L->post_attention_layernorm, la.rstd2, N, C);

		/* attention branch: dresid is now d(x') */
		zero(d, a->datt, NQ);
		linear_backward(d, l, FT_MOD_O, a->datt, a->dresid, la.att, N, g, lg);
		zero(d, a->dq, NQ);
		zero(d, a->dk, NKV);
		zero(d, a->dv, NKV);
		ops->attention_backward(a->dq, a->dk, a->dv, a->datt, la.att, la.lse, la.q, la.k, la.v,
					a->doc_start, B, T, H, KVH, D);
		ops->rope_backward(a->dq, a->pos, a->inv_freq, N, H, D);
		ops->rope_backward(a->dk, a->pos, a->inv_freq, N, KVH, D);
		zero(d, a->dln, NC);
		linear_backward(d, l, FT_MOD_Q, a->dln, a->dq, la.ln1, N, g, lg);
		linear_backward(d, l, FT_MOD_K, a->dln, a->dk, la.ln1, N, g, lg);
		linear_backward(d, l, FT_MOD_V, a->dln, a->dv, la.ln1, N, g, lg);
		ops->rmsnorm_backward(a->dresid, GL ? GL->input_layernorm : NULL, a->dln, la.x,
				      L->input_layernorm, la.rstd1, N, C);
	}
	if (g && g->embed)
		ops->embedding_backward(g->embed, a->dresid, a->tokens, N, C, V);

	if (loss_sum)
		*loss_sum = sum_losses(d, (size_t)N);
	if (trained)
		*trained = count;
	return FT_OK;
}
