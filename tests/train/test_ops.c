/* test_ops: every CPU op's backward against central finite differences of
 * its forward (loss = sum of r * out with fixed random r, accumulated in
 * double), AdamW against a double-precision transcription of
 * torch.optim.AdamW, results independent of the thread count, and the whole
 * decoder (with LoRA dropout, which the Hugging Face fixtures do not cover)
 * against finite differences of its loss. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "lora.h"
#include "model.h"
#include "ops.h"
#include "rng.h"
#include "testhelp.h"

static const struct ft_ops *ops = &ft_ops_cpu;
static struct ft_rng rng;

static float *rnd(size_t n, double scale)
{
	float *p = malloc(n * sizeof *p + 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (float)(scale * ft_rng_normal(&rng));
	return p;
}

static float *zeros(size_t n)
{
	return calloc(n + 1, sizeof(float));
}

static double dotd(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* ||a - b|| / ||b|| */
static double rel_err(const float *a, const double *b, size_t n)
{
	double d = 0, w = 0;
	for (size_t i = 0; i < n; i++) {
		d += (a[i] - b[i]) * (a[i] - b[i]);
		w += b[i] * b[i];
	}
	return sqrt(d) / (sqrt(w) > 1e-30 ? sqrt(w) : 1e-30);
}

/* The op under test: recompute and return sum(r * out). */
typedef double (*loss_fn)(void);

/* Central differences of loss over p[0..n), compared with grad. */
static void check_fd(const char *what, loss_fn loss, float *p, size_t n, const float *grad,
		     double h, double tol)
{
	double *fd = malloc(n * sizeof *fd);
	for (size_t j = 0; j < n; j++) {
		float save = p[j];
		p[j] = (float)(save + h);
		double hp = p[j] - save;
		double lp = loss();
		p[j] = (float)(save - h);
		double hm = save - p[j];
		double lm = loss();
		p[j] = save;
		fd[j] = (lp - lm) / (hp + hm);
	}
	double e = rel_err(grad, fd, n);
	char descr[200];
	snprintf(descr, sizeof descr, "%s: gradient vs finite differences, relative error %.2g",
		 what, e);
	test_cond(descr, e < tol);
	free(fd);
}

/* ---- matmul ------------------------------------------------------------ */

enum { MN = 4, MIC = 6, MOC = 5 };
static float *m_x, *m_w, *m_b, *m_prev, *m_out, *m_r;
static const float m_scale = 0.75f;

static double matmul_loss(void)
{
	memcpy(m_out, m_prev, MN * MOC * sizeof(float));
	ops->matmul_forward(m_out, m_x, m_w, m_b, MN, MIC, MOC, m_scale, 1);
	return dotd(m_out, m_r, MN * MOC);
}

static void test_matmul(void)
{
	m_x = rnd(MN * MIC, 1);
	m_w = rnd(MOC * MIC, 1);
	m_b = rnd(MOC, 1);
	m_prev = rnd(MN * MOC, 1);
	m_out = zeros(MN * MOC);
	m_r = rnd(MN * MOC, 1);
	matmul_loss();
	int bad = 0;
	for (int n = 0; n < MN; n++)
		for (int o = 0; o < MOC; o++) {
			double s = 0;
			for (int i = 0; i < MIC; i++)
				s += (double)m_x[n * MIC + i] * m_w[o * MIC + i];
			double want = m_prev[n * MOC + o] + m_scale * s + m_b[o];
			bad += fabs(m_out[n * MOC + o] - want) > 1e-5 * (1 + fabs(want));
		}
	test_cond("matmul forward: prev + scale * x W^T + b", bad == 0);
	float *dx = zeros(MN * MIC), *dw = zeros(MOC * MIC), *db = zeros(MOC);
	ops->matmul_backward(dx, dw, db, m_r, m_x, m_w, MN, MIC, MOC, m_scale);
	check_fd("matmul dinp", matmul_loss, m_x, MN * MIC, dx, 1e-2, 1e-3);
	check_fd("matmul dweight", matmul_loss, m_w, MOC * MIC, dw, 1e-2, 1e-3);
	check_fd("matmul dbias", matmul_loss, m_b, MOC, db, 1e-2, 1e-3);
	/* backward accumulates */
	float *dx2 = zeros(MN * MIC);
	memcpy(dx2, dx, MN * MIC * sizeof(float));
	ops->matmul_backward(dx2, NULL, NULL, m_r, m_x, m_w, MN, MIC, MOC, m_scale);
	test_cond("matmul backward accumulates", fabsf(dx2[3] - 2 * dx[3]) < 1e-5f);
	free(dx2); free(dx); free(dw); free(db);
	free(m_x); free(m_w); free(m_b); free(m_prev); free(m_out); free(m_r);
}

/* ---- embedding --------------------------------------------------------- */

enum { EN = 6, EC = 5, EV = 7 };
static const int32_t e_tok[EN] = { 3, 1, 3, 6, 0, 3 };
static float *e_table, *e_out, *e_r;

static double embedding_loss(void)
{
	ops->embedding_forward(e_out, e_tok, e_table, EN, EC);
	return dotd(e_out, e_r, EN * EC);
}

static void test_embedding(void)
{
	e_table = rnd(EV * EC, 1);
	e_out = zeros(EN * EC);
	e_r = rnd(EN * EC, 1);
	embedding_loss();
	test_cond("embedding forward copies rows", memcmp(e_out + EC, e_table + EC, EC * 4) == 0);
	float *dt = zeros(EV * EC);
	ops->embedding_backward(dt, e_r, e_tok, EN, EC, EV);
	check_fd("embedding dtable (repeated tokens)", embedding_loss, e_table, EV * EC, dt, 1e-2,
		 1e-3);
	free(dt); free(e_table); free(e_out); free(e_r);
}

/* ---- rmsnorm ----------------------------------------------------------- */

enum { RN = 3, RC = 8 };
static float *r_x, *r_w, *r_out, *r_rstd, *r_r;

static double rmsnorm_loss(void)
{
	ops->rmsnorm_forward(r_out, r_rstd, r_x, r_w, RN, RC, 1e-5f);
	return dotd(r_out, r_r, RN * RC);
}

static void test_rmsnorm(void)
{
	r_x = rnd(RN * RC, 1);
	r_w = rnd(RC, 1);
	r_out = zeros(RN * RC);
	r_rstd = zeros(RN);
	r_r = rnd(RN * RC, 1);
	rmsnorm_loss();
	double ss = 0;
	for (int c = 0; c < RC; c++)
		ss += (double)r_x[c] * r_x[c];
	double want = r_w[2] * r_x[2] / sqrt(ss / RC + 1e-5);
	test_cond("rmsnorm forward", fabs(r_out[2] - want) < 1e-5 * (1 + fabs(want)));
	float *dx = zeros(RN * RC), *dw = zeros(RC);
	ops->rmsnorm_backward(dx, dw, r_r, r_x, r_w, r_rstd, RN, RC);
	check_fd("rmsnorm dinp", rmsnorm_loss, r_x, RN * RC, dx, 1e-2, 2e-3);
	check_fd("rmsnorm dweight", rmsnorm_loss, r_w, RC, dw, 1e-2, 2e-3);
	free(dx); free(dw); free(r_x); free(r_w); free(r_out); free(r_rstd); free(r_r);
}

/* ---- rope -------------------------------------------------------------- */

enum { PN = 5, PH = 2, PD = 8 };
static const int32_t p_pos[PN] = { 0, 1, 2, 0, 7 };
static float *p_x, *p_out, *p_r;
static struct ft_rope p_rope;

static double rope_loss(void)
{
	memcpy(p_out, p_x, PN * PH * PD * sizeof(float));
	ops->rope_forward(p_out, p_pos, p_rope.inv_freq, PN, PH, PD);
	return dotd(p_out, p_r, PN * PH * PD);
}

static void test_rope(void)
{
	struct ft_rope_params rp = { .type = FT_ROPE_LLAMA3, .theta = 10000, .factor = 8,
				     .low_freq_factor = 1, .high_freq_factor = 4,
				     .original_max_position_embeddings = 64 };
	test_cond("rope init", ft_rope_init(&p_rope, PD, &rp) == 0);
	/* transformers' _compute_llama3_parameters for these numbers:
	 * inv_freq 1, 0.1, 0.01, 0.001 -> wavelengths 6.28 (high: kept),
	 * 62.8 (medium: smoothed), 628 and 6283 (low: divided by 8) */
	double w1 = 2 * M_PI / 0.1, s1 = (64 / w1 - 1) / 3;
	double want1 = (1 - s1) * 0.1 / 8 + s1 * 0.1;
	test_cond("llama3 inv_freq: high band kept", fabsf(p_rope.inv_freq[0] - 1.0f) < 1e-7f);
	test_cond("llama3 inv_freq: medium band smoothed",
		  fabs(p_rope.inv_freq[1] - want1) < 1e-8);
	test_cond("llama3 inv_freq: low band divided",
		  fabs(p_rope.inv_freq[2] - 0.01 / 8) < 1e-9 &&
			  fabs(p_rope.inv_freq[3] - 0.001 / 8) < 1e-10);
	p_x = rnd(PN * PH * PD, 1);
	p_out = zeros(PN * PH * PD);
	p_r = rnd(PN * PH * PD, 1);
	rope_loss();
	test_cond("rope: position 0 is the identity",
		  memcmp(p_out + 3 * PH * PD, p_x + 3 * PH * PD, PH * PD * 4) == 0);
	float *v = p_x + 1 * PH * PD + PD;   /* token 1 (pos 1), head 1 */
	float want = v[1] * cosf(p_rope.inv_freq[1]) - v[5] * sinf(p_rope.inv_freq[1]);
	test_cond("rope: rotate_half pairing", fabsf(p_out[PH * PD + PD + 1] - want) < 1e-6f);
	float *dx = zeros(PN * PH * PD);
	memcpy(dx, p_r, PN * PH * PD * sizeof(float));
	ops->rope_backward(dx, p_pos, p_rope.inv_freq, PN, PH, PD);
	check_fd("rope dinp", rope_loss, p_x, PN * PH * PD, dx, 1e-2, 1e-3);
	free(dx); free(p_x); free(p_out); free(p_r);
	ft_rope_release(&p_rope);
}

/* ---- attention --------------------------------------------------------- */

enum { AB = 2, AT = 6, AH = 4, AKV = 2, AD = 4 };
/* row 0: documents at 0 and 2 and 5; row 1: one document */
static const int32_t a_start[AB * AT] = { 0, 0, 2, 2, 2, 5, 0, 0, 0, 0, 0, 0 };
static float *a_q, *a_k, *a_v, *a_out, *a_lse, *a_r;

static double attention_loss(void)
{
	ops->attention_forward(a_out, a_lse, a_q, a_k, a_v, a_start, AB, AT, AH, AKV, AD);
	return dotd(a_out, a_r, AB * AT * AH * AD);
}

static void test_attention(void)
{
	size_t nq = AB * AT * AH * AD, nkv = AB * AT * AKV * AD;
	a_q = rnd(nq, 1);
	a_k = rnd(nkv, 1);
	a_v = rnd(nkv, 1);
	a_out = zeros(nq);
	a_lse = zeros(AB * AH * AT);
	a_r = rnd(nq, 1);
	attention_loss();
	/* the first token of a document sees only itself: out = its v (kv head
	 * h / 2) */
	const float *o = a_out + (2 * AH + 3) * AD, *vv = a_v + (2 * AKV + 1) * AD;
	test_cond("attention: a document's first token attends to itself only",
		  fabsf(o[0] - vv[0]) < 1e-6f && fabsf(o[3] - vv[3]) < 1e-6f);
	float *dq = zeros(nq), *dk = zeros(nkv), *dv = zeros(nkv);
	ops->attention_backward(dq, dk, dv, a_r, a_out, a_lse, a_q, a_k, a_v, a_start, AB, AT,
				AH, AKV, AD);
	check_fd("attention dq", attention_loss, a_q, nq, dq, 1e-2, 2e-3);
	check_fd("attention dk", attention_loss, a_k, nkv, dk, 1e-2, 2e-3);
	check_fd("attention dv", attention_loss, a_v, nkv, dv, 1e-2, 2e-3);
	/* nothing crosses a document boundary: token 1's k has no effect on
	 * token 2's output (row 0), so its gradient from there is 0; check by
	 * perturbing */
	float save_out[AH * AD];
	memcpy(save_out, a_out + 2 * AH * AD, sizeof save_out);
	a_k[(0 * AT + 1) * AKV * AD] += 1.0f;
	a_v[(0 * AT + 1) * AKV * AD] += 1.0f;
	attention_loss();
	test_cond("attention: documents are isolated",
		  memcmp(save_out, a_out + 2 * AH * AD, sizeof save_out) == 0);
	free(dq); free(dk); free(dv);
	free(a_q); free(a_k); free(a_v); free(a_out); free(a_lse); free(a_r);
}

/* ---- swiglu ------------------------------------------------------------ */

enum { SN = 12 };
static float *s_g, *s_u, *s_out, *s_r;

static double swiglu_loss(void)
{
	ops->swiglu_forward(s_out, s_g, s_u, SN);
	return dotd(s_out, s_r, SN);
}

static void test_swiglu(void)
{
	s_g = rnd(SN, 2);
	s_u = rnd(SN, 1);
	s_out = zeros(SN);
	s_r = rnd(SN, 1);
	swiglu_loss();
	test_cond("swiglu forward", fabsf(s_out[0] - s_g[0] / (1 + expf(-s_g[0])) * s_u[0]) < 1e-6f);
	float *dg = zeros(SN), *du = zeros(SN);
	ops->swiglu_backward(dg, du, s_r, s_g, s_u, SN);
	check_fd("swiglu dgate", swiglu_loss, s_g, SN, dg, 1e-2, 1e-3);
	check_fd("swiglu dup", swiglu_loss, s_u, SN, du, 1e-2, 1e-3);
	free(dg); free(du); free(s_g); free(s_u); free(s_out); free(s_r);
}

/* ---- cross-entropy ----------------------------------------------------- */

enum { CN = 4, CV = 9 };
static const int32_t c_tgt[CN] = { 2, -1, 8, 0 };
static float *c_logits, *c_loss;
static const float c_scale = 0.25f;

static double ce_loss(void)
{
	ops->crossentropy_forward(c_loss, c_logits, c_tgt, CN, CV);
	double s = 0;
	for (int n = 0; n < CN; n++)
		s += c_loss[n];
	return c_scale * s;
}

static void test_crossentropy(void)
{
	c_logits = rnd(CN * CV, 3);
	c_loss = zeros(CN);
	ce_loss();
	double z = 0;
	for (int i = 0; i < CV; i++)
		z += exp(c_logits[i]);
	test_cond("cross-entropy forward", fabs(c_loss[0] - (log(z) - c_logits[2])) < 1e-5);
	test_cond("untrained row: no loss", c_loss[1] == 0.0f);
	float *dl = zeros(CN * CV);
	ops->crossentropy_backward(dl, c_logits, c_tgt, CN, CV, c_scale);
	bool zero_row = true;
	for (int i = 0; i < CV; i++)
		zero_row &= dl[CV + i] == 0.0f;
	test_cond("untrained row: no gradient", zero_row);
	check_fd("cross-entropy dlogits", ce_loss, c_logits, CN * CV, dl, 1e-2, 1e-3);
	free(dl); free(c_logits); free(c_loss);
}

/* ---- adamw ------------------------------------------------------------- */

static void test_adamw(void)
{
	enum { N = 50 };
	float *p = rnd(N, 1), *m = zeros(N), *v = zeros(N);
	double pd[N], md[N] = { 0 }, vd[N] = { 0 };
	for (int i = 0; i < N; i++)
		pd[i] = p[i];
	double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
	for (int t = 1; t <= 3; t++) {
		float *g = rnd(N, 0.1);
		ops->adamw(p, g, m, v, N, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, t, NULL);
		for (int i = 0; i < N; i++) {
			pd[i] *= 1 - lr * wd;
			md[i] = b1 * md[i] + (1 - b1) * g[i];
			vd[i] = b2 * vd[i] + (1 - b2) * (double)g[i] * g[i];
			double mh = md[i] / (1 - pow(b1, t)), vh = vd[i] / (1 - pow(b2, t));
			pd[i] -= lr * mh / (sqrt(vh) + eps);
		}
		free(g);
	}
	double e = rel_err(p, pd, N);
	test_cond("adamw: three steps as the textbook formula in double", e < 1e-6);
	free(p); free(m); free(v);
}

/* ---- the decoder ------------------------------------------------------- */

static struct ft_model dm;
static struct ft_lora dlo;
static struct ft_decoder dd;
static struct ft_batch dbatch;
static float *dgrads, *dlgrads;

/* forward_backward with gradient blocks (NULL: frozen) */
static int fwd_bwd(struct ft_decoder *d, const struct ft_batch *b, float scale, float *g,
		   float *lg, double *loss, long *n, struct ft_err *err)
{
	struct ft_weights gw;
	struct ft_lora_weights lw;
	if (g)
		ft_model_point(d->model, g, sizeof(float), &gw);
	if (lg)
		ft_lora_point(d->lora, lg, sizeof(float), &lw);
	int rc = ft_decoder_forward_backward(d, b, scale, g ? &gw : NULL, lg ? &lw : NULL, loss,
					     n, err);
	if (g)
		ft_weights_release(&gw);
	if (lg)
		ft_lora_weights_release(&lw);
	return rc;
}

/* loss sum with the dropout masks of step 1 */
static double decoder_loss(void)
{
	double loss = 0;
	dd.dropout_step = 0;
	float *g = zeros(dlo.nfloats);
	fwd_bwd(&dd, &dbatch, 1.0f, NULL, g, &loss, NULL, NULL);
	free(g);
	return loss;
}

static double decoder_loss_base(void)
{
	double loss = 0;
	ft_decoder_forward(&dd, &dbatch, NULL, &loss, NULL, NULL);
	return loss;
}

static void test_decoder(void)
{
	struct ft_err err = { 0 };
	struct ft_model_config c = {
		.arch = FT_ARCH_QWEN2, .vocab_size = 24, .hidden_size = 16,
		.intermediate_size = 24, .num_layers = 2, .num_heads = 4, .num_kv_heads = 2,
		.head_dim = 4, .max_position_embeddings = 64, .rms_norm_eps = 1e-5,
		.initializer_range = 0.4, .qkv_bias = true,
		.rope = { .type = FT_ROPE_DEFAULT, .theta = 10000 },
	};
	test_cond("model init", ft_model_init(&dm, &c, &err) == 0);
	ft_model_init_random(&dm, 7);
	for (size_t i = 0; i < dm.nparams; i++)   /* norms and biases off 1 and 0 */
		if (dm.params[i].ndim == 1)
			for (size_t k = 0; k < dm.params[i].numel; k++)
				dm.weights[dm.params[i].offset + k] += (float)(0.2 * ft_rng_normal(&rng));
	struct ft_lora_config lc = { .rank = 3, .alpha = 6, .dropout = 0.3, .seed = 11 };
	test_cond("lora targets", ft_lora_parse_targets("q,v_proj,o,down", &lc.targets, &err) == 0);
	test_cond("lora init", ft_lora_init(&dlo, &c, &lc, &err) == 0);
	ft_lora_init_random(&dlo, 5);
	for (size_t i = 1; i < dlo.nparams; i += 2)   /* B away from 0 */
		for (size_t k = 0; k < dlo.params[i].numel; k++)
			dlo.weights[dlo.params[i].offset + k] = (float)(0.3 * ft_rng_normal(&rng));

	enum { B = 2, T = 7 };
	static int32_t tokens[B * T];
	static uint8_t mask[B * T];
	static const int32_t offs[] = { 0, 2, 3 }, starts[] = { 0, 3, 0 };
	for (int i = 0; i < B * T; i++) {
		tokens[i] = (int32_t)(ft_rng_next(&rng) % 24);
		mask[i] = i % 5 != 2;
	}
	dbatch = (struct ft_batch){ B, T, tokens, mask, offs, starts };

	/* determinism across thread counts */
	test_cond("decoder init", ft_decoder_init(&dd, ops, &dm, &dlo, B, T, false, &err) == 0);
	float *g1 = zeros(dm.nfloats), *g2 = zeros(dm.nfloats);
	float *l1 = zeros(dlo.nfloats), *l2 = zeros(dlo.nfloats);
	double s1, s2;
	long n1;
	omp_set_num_threads(1);
	dd.dropout_step = 0;
	fwd_bwd(&dd, &dbatch, 0.1f, g1, l1, &s1, &n1, &err);
	omp_set_num_threads(3);
	dd.dropout_step = 0;
	fwd_bwd(&dd, &dbatch, 0.1f, g2, l2, &s2, NULL, &err);
	test_cond("same loss with 1 and 3 threads", s1 == s2);
	test_cond("same gradients with 1 and 3 threads",
		  memcmp(g1, g2, dm.nfloats * 4) == 0 && memcmp(l1, l2, dlo.nfloats * 4) == 0);

	/* activation recomputation: the same operations again, so the same loss
	 * and gradients bit for bit (dropout masks included), and the forward
	 * alone the same */
	struct ft_decoder dr;
	test_cond("decoder init (recompute)",
		  ft_decoder_init(&dr, ops, &dm, &dlo, B, T, true, &err) == 0);
	float *g3 = zeros(dm.nfloats), *l3 = zeros(dlo.nfloats);
	double s3, f2, f3;
	dr.dropout_step = 0;
	fwd_bwd(&dr, &dbatch, 0.1f, g3, l3, &s3, NULL, &err);
	test_cond("recompute: the same loss", s3 == s2);
	test_cond("recompute: the same gradients",
		  memcmp(g3, g2, dm.nfloats * 4) == 0 && memcmp(l3, l2, dlo.nfloats * 4) == 0);
	test_cond("recompute: the same forward pass",
		  ft_decoder_forward(&dd, &dbatch, NULL, &f2, NULL, &err) == 0 &&
			  ft_decoder_forward(&dr, &dbatch, NULL, &f3, NULL, &err) == 0 && f2 == f3);
	ft_decoder_release(&dr);
	free(g3); free(l3);
	/* trained labels: row 0 docs [0,3) [3,7), row 1 one doc; mask[t+1] */
	long want = 0;
	for (int r = 0; r < B; r++)
		for (int t = 0; t + 1 < T; t++)
			want += mask[r * T + t + 1] && !(r == 0 && t == 2);
	test_cond("trained label count", n1 == want);
	test_cond("ft_batch_trained agrees", ft_batch_trained(&dbatch) == want);
	free(g1); free(g2); free(l1); free(l2);

	/* LoRA gradients (dropout 0.3) against finite differences, on a sample
	 * of A and B elements across modules */
	dlgrads = zeros(dlo.nfloats);
	dd.dropout_step = 0;
	fwd_bwd(&dd, &dbatch, 1.0f, NULL, dlgrads, NULL, NULL, &err);
	enum { SAMPLE = 48 };
	float analytic[SAMPLE];
	double fd[SAMPLE];
	for (int s = 0; s < SAMPLE; s++) {
		size_t j = (size_t)(ft_rng_next(&rng) % dlo.nfloats);
		analytic[s] = dlgrads[j];
		float save = dlo.weights[j];
		dlo.weights[j] = save + 1e-2f;
		double lp = decoder_loss();
		dlo.weights[j] = save - 1e-2f;
		double lm = decoder_loss();
		dlo.weights[j] = save;
		fd[s] = (lp - lm) / 2e-2;
	}
	double e = rel_err(analytic, fd, SAMPLE);
	char descr[160];
	snprintf(descr, sizeof descr,
		 "decoder LoRA (dropout) gradients vs finite differences, relative error %.2g", e);
	test_cond(descr, e < 2e-2);
	free(dlgrads);
	ft_decoder_release(&dd);

	/* base model gradients, no adapters, a sample of every weight */
	test_cond("decoder init (no lora)", ft_decoder_init(&dd, ops, &dm, NULL, B, T, false, &err) == 0);
	dgrads = zeros(dm.nfloats);
	fwd_bwd(&dd, &dbatch, 1.0f, dgrads, NULL, NULL, NULL, &err);
	float an2[SAMPLE];
	double fd2[SAMPLE];
	for (int s = 0; s < SAMPLE; s++) {
		size_t j = (size_t)(ft_rng_next(&rng) % dm.nfloats);
		an2[s] = dgrads[j];
		float save = dm.weights[j];
		dm.weights[j] = save + 1e-2f;
		double lp = decoder_loss_base();
		dm.weights[j] = save - 1e-2f;
		double lm = decoder_loss_base();
		dm.weights[j] = save;
		fd2[s] = (lp - lm) / 2e-2;
	}
	e = rel_err(an2, fd2, SAMPLE);
	snprintf(descr, sizeof descr,
		 "decoder weight gradients vs finite differences, relative error %.2g", e);
	test_cond(descr, e < 2e-2);
	free(dgrads);
	ft_decoder_release(&dd);

	/* batch checks */
	static const int32_t bad_starts[] = { 0, 5, 3 }, bad_offs[] = { 0, 3, 3 };
	struct ft_batch bb = { B, T, tokens, mask, bad_offs, bad_starts };
	ft_decoder_init(&dd, ops, &dm, NULL, B, T, false, &err);
	test_cond("decreasing document starts refused",
		  ft_decoder_forward(&dd, &bb, NULL, NULL, NULL, &err) == FT_E_DATA);
	tokens[3] = 24;
	test_cond("token outside the vocabulary refused",
		  ft_decoder_forward(&dd, &dbatch, NULL, NULL, NULL, &err) == FT_E_DATA);
	ft_decoder_release(&dd);
	ft_lora_release(&dlo);
	ft_model_release(&dm);
}

static void test_config(void)
{
	struct ft_model_config c;
	struct ft_err err = { 0 };
	const char *base = "{\"architectures\":[\"%s\"],\"hidden_size\":64,"
			   "\"intermediate_size\":128,\"num_hidden_layers\":2,"
			   "\"num_attention_heads\":4,\"vocab_size\":100%s}";
	char text[1024];
#define CFG(arch, extra) (snprintf(text, sizeof text, base, arch, extra), \
			  ft_model_config_parse(&c, text, strlen(text), &err))
	test_cond("llama config", CFG("LlamaForCausalLM", "") == 0 && c.num_kv_heads == 4 &&
					  c.head_dim == 16 && !c.tie_word_embeddings &&
					  c.rope.theta == 10000.0);
	test_cond("qwen2 has q/k/v bias", CFG("Qwen2ForCausalLM", "") == 0 && c.qkv_bias &&
						  !c.o_bias);
	test_cond("llama attention_bias", CFG("LlamaForCausalLM", ",\"attention_bias\":true") == 0 &&
						  c.qkv_bias && c.o_bias);
	test_cond("unsupported architecture", CFG("GPT2LMHeadModel", "") == FT_E_DATA &&
						      strstr(err.msg, "GPT2LMHeadModel"));
	test_cond("mistral sliding window warns",
		  CFG("MistralForCausalLM", ",\"sliding_window\":4096") == 0 && c.warning[0]);
	test_cond("llama3 rope_scaling (transformers 4)",
		  CFG("LlamaForCausalLM", ",\"rope_theta\":500000.0,\"rope_scaling\":{\"factor\":8.0,"
			"\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
			"\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"}") == 0 &&
			  c.rope.type == FT_ROPE_LLAMA3 && c.rope.theta == 500000.0);
	test_cond("rope_parameters (transformers 5)",
		  CFG("LlamaForCausalLM", ",\"rope_parameters\":{\"rope_theta\":1e6,"
			"\"rope_type\":\"default\"}") == 0 && c.rope.theta == 1e6);
	test_cond("yarn refused", CFG("LlamaForCausalLM", ",\"rope_scaling\":{\"type\":\"yarn\","
				      "\"factor\":4.0}") == FT_E_DATA && strstr(err.msg, "yarn"));
	test_cond("llama3 without factor refused",
		  CFG("LlamaForCausalLM", ",\"rope_scaling\":{\"rope_type\":\"llama3\"}") == FT_E_DATA);
	test_cond("GQA heads must divide", CFG("LlamaForCausalLM", ",\"num_key_value_heads\":3") ==
						   FT_E_DATA);
	test_cond("gelu refused", CFG("LlamaForCausalLM", ",\"hidden_act\":\"gelu\"") == FT_E_DATA);
	test_cond("mlp_bias refused", CFG("LlamaForCausalLM", ",\"mlp_bias\":true") == FT_E_DATA);
	test_cond("negative size refused", CFG("LlamaForCausalLM", ",\"head_dim\":-2") == FT_E_DATA);
	test_cond("odd head_dim refused", CFG("LlamaForCausalLM", ",\"head_dim\":7") == FT_E_DATA);
	const char *nohidden = "{\"architectures\":[\"LlamaForCausalLM\"]}";
	test_cond("missing field", ft_model_config_parse(&c, nohidden, strlen(nohidden), &err) ==
					   FT_E_DATA &&
					  strstr(err.msg, "hidden_size"));
	test_cond("not JSON", ft_model_config_parse(&c, "{", 1, &err) == FT_E_PARSE);
	/* a preset written out parses back to itself */
	struct ft_model_config p, q;
	struct ft_buf b;
	ft_buf_init(&b, 0);
	ft_model_config_preset(&p, "tiny", &err);
	p.rope.type = FT_ROPE_LLAMA3;
	p.rope.factor = 8;
	p.rope.low_freq_factor = 1;
	p.rope.high_freq_factor = 4;
	p.rope.original_max_position_embeddings = 8192;
	test_cond("config write", ft_model_config_write(&p, &b) == 0);
	test_cond("written config parses", ft_model_config_parse(&q, b.data, b.len, &err) == 0);
	test_cond("round trip", q.hidden_size == p.hidden_size && q.num_kv_heads == p.num_kv_heads &&
				q.rope.type == FT_ROPE_LLAMA3 && q.rope.factor == 8 &&
				q.rope.original_max_position_embeddings == 8192 &&
				q.rms_norm_eps == p.rms_norm_eps);
	ft_buf_release(&b);
	unsigned t;
	test_cond("lora targets all", ft_lora_parse_targets("all", &t, &err) == 0 && t == 127);
	test_cond("lora target unknown", ft_lora_parse_targets("q,x", &t, &err) == FT_E_INVAL);
#undef CFG
}

int main(void)
{
	ft_rng_seed(&rng, 42);
	test_matmul();
	test_embedding();
	test_rmsnorm();
	test_rope();
	test_attention();
	test_swiglu();
	test_crossentropy();
	test_adamw();
	test_config();
	test_decoder();
	return test_report();
}
