/* test_cuda: the CUDA op table against the CPU reference (kernels/ops.h).
 * Every op runs on both backends on the same inputs (random, rounded to
 * bf16 so both see identical values); the CUDA outputs are poisoned with
 * NaN before each run, so an element a kernel forgets to write shows up as
 * non-finite; gradients start from random values, so "accumulate" is
 * checked too. Errors are relative L2 norms against the CPU, with per-op
 * tolerances set by bf16 storage (2^-8 relative per rounding). Then the
 * whole decoder (full and LoRA with dropout) on a Hugging Face fixture
 * model, loss and every gradient, a short AdamW run whose losses must
 * track the CPU's, and decoding with the KV cache (logits along the CPU's
 * greedy sequence, batch invariance). Without a CUDA device (or in a build without nvcc) it
 * says so and runs the harness with the CPU table in CUDA's place (which
 * checks the harness and the decoder's backend plumbing: the weights it
 * reads redirected to another block, the optimizer's storage copies), so
 * it does not rot where there is no GPU; FT_REQUIRE_CUDA=1 (make
 * test-cuda) makes a missing device a failure instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "gencheck.h"
#include "generate.h"
#include "lora.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "rng.h"
#include "testhelp.h"

static const struct ft_ops *cpu = &ft_ops_cpu, *gpu;
static struct ft_rng rng;

/* ---- values and transfers ------------------------------------------------ */

/* x rounded to the nearest bf16, ties to even (what __float2bfloat16_rn
 * does) */
static float bf16_round(float x)
{
	uint32_t u;
	memcpy(&u, &x, sizeof u);
	if ((u & 0x7f800000u) == 0x7f800000u)
		return x;
	u += 0x7fffu + ((u >> 16) & 1u);
	u &= 0xffff0000u;
	memcpy(&x, &u, sizeof x);
	return x;
}

static float *rnd(size_t n, double scale)
{
	float *p = malloc((n ? n : 1) * sizeof *p);
	for (size_t i = 0; i < n; i++)
		p[i] = bf16_round((float)(scale * ft_rng_normal(&rng)));
	return p;
}

static float *copyf(const float *h, size_t n)
{
	float *p = malloc((n ? n : 1) * sizeof *p);
	memcpy(p, h, n * sizeof *p);
	return p;
}

static float *gf(const float *h, size_t n)
{
	float *d = gpu->alloc(n * sizeof(float));
	gpu->upload(d, h, n * sizeof(float));
	return d;
}

static void *gx(const float *h, size_t n)
{
	void *d = gpu->alloc(n * gpu->xsize);
	ft_x_upload(gpu, d, h, n);
	return d;
}

static int32_t *gi(const int32_t *h, size_t n)
{
	int32_t *d = gpu->alloc(n * sizeof(int32_t));
	gpu->upload(d, h, n * sizeof(int32_t));
	return d;
}

static float *nans(size_t n)
{
	float *p = malloc((n ? n : 1) * sizeof *p);
	for (size_t i = 0; i < n; i++)
		p[i] = NAN;
	return p;
}

/* device buffers full of NaN */
static void *gx_poison(size_t n)
{
	float *h = nans(n);
	void *d = gx(h, n);
	free(h);
	return d;
}

static float *gf_poison(size_t n)
{
	float *h = nans(n);
	float *d = gf(h, n);
	free(h);
	return d;
}

static float *hf(const float *d, size_t n)
{
	float *h = malloc((n ? n : 1) * sizeof *h);
	gpu->download(h, d, n * sizeof(float));
	return h;
}

static float *hx(const void *d, size_t n)
{
	float *d32 = gpu->alloc(n * sizeof(float));
	gpu->from_x(d32, d, n);
	float *h = hf(d32, n);
	gpu->release(d32);
	return h;
}

/* got (CUDA) against want (CPU): every element finite and
 * ||got - want|| <= tol ||want|| (plus a floor for all-zero references). */
static double close_to(const char *what, const float *got, const float *want, size_t n,
		       double tol)
{
	double d = 0, w = 0;
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(got[i])) {
			bad++;
			continue;
		}
		d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
		w += (double)want[i] * want[i];
	}
	double e = sqrt(d) / (sqrt(w) > 1e-30 ? sqrt(w) : 1e-30);
	char descr[300];
	snprintf(descr, sizeof descr, "%s: %zu of %zu not finite, relative error %.3g (tol %.3g)",
		 what, bad, n, e, tol);
	test_cond(descr, bad == 0 && (e <= tol || sqrt(d) <= 1e-6));
	if (getenv("FT_TEST_VERBOSE"))
		printf("%-46s rel %.3g\n", what, e);
	return e;
}

/* the CUDA x tensor d against the CPU's h */
static void close_x(const char *what, const void *d, const float *h, size_t n, double tol)
{
	float *got = hx(d, n);
	close_to(what, got, h, n, tol);
	free(got);
}

static void close_f(const char *what, const float *d, const float *h, size_t n, double tol)
{
	float *got = hf(d, n);
	close_to(what, got, h, n, tol);
	free(got);
}

/* ---- ops ------------------------------------------------------------------ */

static void test_matmul(int N, int IC, int OC, int bias, int accumulate)
{
	char what[160];
	float *x = rnd((size_t)N * IC, 1), *w = rnd((size_t)OC * IC, 0.1);
	float *b = bias ? rnd(OC, 1) : NULL, *out = rnd((size_t)N * OC, 1);
	void *dx = gx(x, (size_t)N * IC), *dw = gx(w, (size_t)OC * IC);
	void *db = bias ? gx(b, OC) : NULL;
	void *dout = accumulate ? gx(out, (size_t)N * OC) : gx_poison((size_t)N * OC);
	cpu->matmul_forward(out, x, w, b, N, IC, OC, 0.5f, accumulate);
	gpu->matmul_forward(dout, dx, dw, db, N, IC, OC, 0.5f, accumulate);
	snprintf(what, sizeof what, "matmul forward %dx%dx%d%s%s", N, IC, OC,
		 bias ? " bias" : "", accumulate ? " +=" : "");
	close_x(what, dout, out, (size_t)N * OC, 1e-2);

	/* backward from random gradients, into random accumulators */
	float *g = rnd((size_t)N * OC, 1), *gin = rnd((size_t)N * IC, 1);
	float *gw = rnd((size_t)OC * IC, 1), *gb = rnd(OC, 1);
	void *dg = gx(g, (size_t)N * OC), *dgin = gx(gin, (size_t)N * IC);
	float *dgw = gf(gw, (size_t)OC * IC), *dgb = gf(gb, OC);
	cpu->matmul_backward(gin, gw, bias ? gb : NULL, g, x, w, N, IC, OC, 0.5f);
	gpu->matmul_backward(dgin, dgw, bias ? dgb : NULL, dg, dx, dw, N, IC, OC, 0.5f);
	snprintf(what, sizeof what, "matmul dinp %dx%dx%d", N, IC, OC);
	close_x(what, dgin, gin, (size_t)N * IC, 1e-2);
	snprintf(what, sizeof what, "matmul dweight %dx%dx%d", N, IC, OC);
	close_f(what, dgw, gw, (size_t)OC * IC, 1e-3);
	if (bias) {
		snprintf(what, sizeof what, "matmul dbias %dx%dx%d", N, IC, OC);
		close_f(what, dgb, gb, OC, 1e-4);
	}
	gpu->release(dx); gpu->release(dw); gpu->release(db); gpu->release(dout);
	gpu->release(dg); gpu->release(dgin); gpu->release(dgw); gpu->release(dgb);
	free(x); free(w); free(b); free(out); free(g); free(gin); free(gw); free(gb);
}

static void test_embedding(int N, int C, int V)
{
	int32_t *tok = malloc((size_t)N * sizeof *tok);
	for (int n = 0; n < N; n++)
		tok[n] = (int32_t)(ft_rng_next(&rng) % (uint64_t)(V < 8 ? V : 8 + n % (V - 7)));
	float *table = rnd((size_t)V * C, 1), *out = rnd((size_t)N * C, 1);
	void *dtable = gx(table, (size_t)V * C), *dout = gx_poison((size_t)N * C);
	int32_t *dtok = gi(tok, N);
	cpu->embedding_forward(out, tok, table, N, C);
	gpu->embedding_forward(dout, dtok, dtable, N, C);
	close_x("embedding forward", dout, out, (size_t)N * C, 0);
	float *g = rnd((size_t)N * C, 1), *gt = rnd((size_t)V * C, 1);
	void *dg = gx(g, (size_t)N * C);
	float *dgt = gf(gt, (size_t)V * C);
	cpu->embedding_backward(gt, g, tok, N, C, V);
	gpu->embedding_backward(dgt, dg, dtok, N, C, V);
	close_f("embedding backward (repeated tokens)", dgt, gt, (size_t)V * C, 1e-6);
	gpu->release(dtable); gpu->release(dout); gpu->release(dtok); gpu->release(dg);
	gpu->release(dgt);
	free(tok); free(table); free(out); free(g); free(gt);
}

static void test_rmsnorm(int N, int C)
{
	char what[120];
	float *x = rnd((size_t)N * C, 2), *w = rnd(C, 1), *out = rnd((size_t)N * C, 1);
	float *rstd = rnd(N, 1);
	void *dx = gx(x, (size_t)N * C), *dw = gx(w, C), *dout = gx_poison((size_t)N * C);
	float *drstd = gf_poison(N);
	cpu->rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f);
	gpu->rmsnorm_forward(dout, drstd, dx, dw, N, C, 1e-5f);
	snprintf(what, sizeof what, "rmsnorm forward %dx%d", N, C);
	close_x(what, dout, out, (size_t)N * C, 1e-2);
	snprintf(what, sizeof what, "rmsnorm rstd %dx%d", N, C);
	close_f(what, drstd, rstd, N, 1e-5);
	float *g = rnd((size_t)N * C, 1), *gin = rnd((size_t)N * C, 1), *gw = rnd(C, 1);
	void *dg = gx(g, (size_t)N * C), *dgin = gx(gin, (size_t)N * C);
	float *dgw = gf(gw, C);
	/* the CUDA side gets the CPU's rstd, so the backward is tested alone */
	float *drstd2 = gf(rstd, N);
	cpu->rmsnorm_backward(gin, gw, g, x, w, rstd, N, C);
	gpu->rmsnorm_backward(dgin, dgw, dg, dx, dw, drstd2, N, C);
	snprintf(what, sizeof what, "rmsnorm dinp %dx%d", N, C);
	close_x(what, dgin, gin, (size_t)N * C, 1e-2);
	snprintf(what, sizeof what, "rmsnorm dweight %dx%d", N, C);
	close_f(what, dgw, gw, C, 1e-4);
	/* without the weight gradient */
	cpu->rmsnorm_backward(gin, NULL, g, x, w, rstd, N, C);
	gpu->rmsnorm_backward(dgin, NULL, dg, dx, dw, drstd2, N, C);
	snprintf(what, sizeof what, "rmsnorm dinp, no dweight %dx%d", N, C);
	close_x(what, dgin, gin, (size_t)N * C, 1e-2);
	gpu->release(dx); gpu->release(dw); gpu->release(dout); gpu->release(drstd);
	gpu->release(dg); gpu->release(dgin); gpu->release(dgw); gpu->release(drstd2);
	free(x); free(w); free(out); free(rstd); free(g); free(gin); free(gw);
}

static void test_rope(int N, int H, int D, int maxpos)
{
	char what[120];
	struct ft_rope rope;
	struct ft_rope_params rp = { .type = FT_ROPE_LLAMA3, .theta = 500000, .factor = 32,
				     .low_freq_factor = 1, .high_freq_factor = 4,
				     .original_max_position_embeddings = 8192 };
	test_cond("rope init", ft_rope_init(&rope, D, &rp) == 0);
	int32_t *pos = malloc((size_t)N * sizeof *pos);
	for (int n = 0; n < N; n++)
		pos[n] = (int32_t)(ft_rng_next(&rng) % (uint64_t)maxpos);
	size_t n = (size_t)N * H * D;
	float *x = rnd(n, 1);
	void *dx = gx(x, n);
	int32_t *dpos = gi(pos, N);
	float *dfreq = gf(rope.inv_freq, (size_t)D / 2);
	cpu->rope_forward(x, pos, rope.inv_freq, N, H, D);
	gpu->rope_forward(dx, dpos, dfreq, N, H, D);
	snprintf(what, sizeof what, "rope forward D=%d positions < %d", D, maxpos);
	close_x(what, dx, x, n, 1e-2);
	float *g = rnd(n, 1);
	void *dg = gx(g, n);
	cpu->rope_backward(g, pos, rope.inv_freq, N, H, D);
	gpu->rope_backward(dg, dpos, dfreq, N, H, D);
	snprintf(what, sizeof what, "rope backward D=%d", D);
	close_x(what, dg, g, n, 1e-2);
	gpu->release(dx); gpu->release(dpos); gpu->release(dfreq); gpu->release(dg);
	free(pos); free(x); free(g);
	ft_rope_release(&rope);
}

/* Rows of T tokens, documents starting at the given offsets (row 0) and one
 * document per other row. */
static void test_attention(int B, int T, int H, int KVH, int D, const int *starts, int nstarts)
{
	char what[160];
	size_t N = (size_t)B * T, nq = N * H * D, nkv = N * KVH * D;
	int32_t *ds = malloc(N * sizeof *ds);
	for (int b = 0; b < B; b++)
		for (int t = 0, k = 0, s = 0; t < T; t++) {
			if (b == 0 && k < nstarts && starts[k] == t) {
				s = t;
				k++;
			}
			ds[(size_t)b * T + t] = b == 0 ? s : 0;
		}
	float *q = rnd(nq, 1), *k = rnd(nkv, 1), *v = rnd(nkv, 1);
	float *out = rnd(nq, 1), *lse = rnd(N * H, 1);
	void *dq = gx(q, nq), *dk = gx(k, nkv), *dv = gx(v, nkv), *dout = gx_poison(nq);
	float *dlse = gf_poison(N * H);
	int32_t *dds = gi(ds, N);
	cpu->attention_forward(out, lse, q, k, v, ds, B, T, H, KVH, D);
	gpu->attention_forward(dout, dlse, dq, dk, dv, dds, B, T, H, KVH, D);
	snprintf(what, sizeof what, "attention forward B=%d T=%d H=%d/%d D=%d docs=%d", B, T, H,
		 KVH, D, nstarts);
	close_x(what, dout, out, nq, 1.5e-2);
	snprintf(what, sizeof what, "attention lse T=%d D=%d", T, D);
	close_f(what, dlse, lse, N * H, 1e-4);

	/* backward from the CPU's forward results (bf16-rounded, as the GPU
	 * would have stored them), into random accumulators */
	for (size_t i = 0; i < nq; i++)
		out[i] = bf16_round(out[i]);
	void *dout2 = gx(out, nq);
	float *dlse2 = gf(lse, N * H);
	float *g = rnd(nq, 1), *gq = rnd(nq, 1), *gk = rnd(nkv, 1), *gv = rnd(nkv, 1);
	void *dg = gx(g, nq), *dgq = gx(gq, nq), *dgk = gx(gk, nkv), *dgv = gx(gv, nkv);
	cpu->attention_backward(gq, gk, gv, g, out, lse, q, k, v, ds, B, T, H, KVH, D);
	gpu->attention_backward(dgq, dgk, dgv, dg, dout2, dlse2, dq, dk, dv, dds, B, T, H, KVH, D);
	snprintf(what, sizeof what, "attention dq T=%d D=%d", T, D);
	close_x(what, dgq, gq, nq, 2e-2);
	snprintf(what, sizeof what, "attention dk T=%d D=%d", T, D);
	close_x(what, dgk, gk, nkv, 2e-2);
	snprintf(what, sizeof what, "attention dv T=%d D=%d", T, D);
	close_x(what, dgv, gv, nkv, 2e-2);
	gpu->release(dq); gpu->release(dk); gpu->release(dv); gpu->release(dout);
	gpu->release(dlse); gpu->release(dds); gpu->release(dout2); gpu->release(dlse2);
	gpu->release(dg); gpu->release(dgq); gpu->release(dgk); gpu->release(dgv);
	free(ds); free(q); free(k); free(v); free(out); free(lse); free(g); free(gq); free(gk);
	free(gv);
}

static void test_swiglu(size_t n)
{
	float *a = rnd(n, 2), *b = rnd(n, 1), *out = rnd(n, 1);
	void *da = gx(a, n), *db = gx(b, n), *dout = gx_poison(n);
	cpu->swiglu_forward(out, a, b, n);
	gpu->swiglu_forward(dout, da, db, n);
	close_x("swiglu forward", dout, out, n, 1e-2);
	float *g = rnd(n, 1), *ga = rnd(n, 1), *gb = rnd(n, 1);
	void *dg = gx(g, n), *dga = gx(ga, n), *dgb = gx(gb, n);
	cpu->swiglu_backward(ga, gb, g, a, b, n);
	gpu->swiglu_backward(dga, dgb, dg, da, db, n);
	close_x("swiglu dgate", dga, ga, n, 1e-2);
	close_x("swiglu dup", dgb, gb, n, 1e-2);
	gpu->release(da); gpu->release(db); gpu->release(dout); gpu->release(dg);
	gpu->release(dga); gpu->release(dgb);
	free(a); free(b); free(out); free(g); free(ga); free(gb);
}

static void test_crossentropy(int N, int V)
{
	char what[120];
	size_t n = (size_t)N * V;
	float *logits = rnd(n, 3), *losses = rnd(N, 1);
	int32_t *tg = malloc((size_t)N * sizeof *tg);
	for (int i = 0; i < N; i++)
		tg[i] = i % 4 == 1 ? -1 : i == N - 1 ? V - 1 : (int32_t)(ft_rng_next(&rng) % (uint64_t)V);
	void *dl = gx(logits, n);
	float *dlosses = gf_poison(N);
	int32_t *dtg = gi(tg, N);
	cpu->crossentropy_forward(losses, logits, tg, N, V);
	gpu->crossentropy_forward(dlosses, dl, dtg, N, V);
	snprintf(what, sizeof what, "crossentropy forward %dx%d", N, V);
	close_f(what, dlosses, losses, N, 1e-5);
	/* the backward in place, as the decoder runs it */
	cpu->crossentropy_backward(logits, logits, tg, N, V, 1.0f / 7);
	gpu->crossentropy_backward(dl, dl, dtg, N, V, 1.0f / 7);
	snprintf(what, sizeof what, "crossentropy backward in place %dx%d", N, V);
	close_x(what, dl, logits, n, 1e-2);
	gpu->release(dl); gpu->release(dlosses); gpu->release(dtg);
	free(logits); free(losses); free(tg);
}

static void test_elementwise(size_t n)
{
	float *a = rnd(n, 1), *b = rnd(n, 1), *out = rnd(n, 1);
	void *da = gx(a, n), *db = gx(b, n), *dout = gx_poison(n);
	cpu->add(out, a, b, n);
	gpu->add(dout, da, db, n);
	close_x("add", dout, out, n, 5e-3);
	cpu->accumulate(a, b, n);
	gpu->accumulate(da, db, n);
	close_x("accumulate", da, a, n, 5e-3);

	/* to_x / from_x: fp32 values come back rounded as bf16_round does */
	float *raw = malloc(n * sizeof *raw);
	for (size_t i = 0; i < n; i++)
		raw[i] = (float)ft_rng_normal(&rng);
	float *draw = gf(raw, n);
	void *dxr = gpu->alloc(n * gpu->xsize);
	gpu->to_x(dxr, draw, n);
	float *back = hx(dxr, n);
	size_t diff = 0;
	for (size_t i = 0; i < n; i++)
		diff += back[i] != (gpu->xtype == FT_X_BF16 ? bf16_round(raw[i]) : raw[i]);
	test_cond("to_x rounds to nearest even, from_x is exact", diff == 0);

	/* dropout: the same mask as the CPU, element for element */
	double p = 0.1;
	uint64_t seed = 0x1234abcdull, site = 13;
	cpu->dropout_forward(out, b, n, p, seed, site);
	gpu->dropout_forward(dout, db, n, p, seed, site);
	float *got = hx(dout, n);
	size_t mism = 0;
	for (size_t i = 0; i < n; i++)
		mism += (got[i] == 0.0f) != (out[i] == 0.0f);
	test_cond("dropout forward: the CPU's mask", mism == 0);
	close_to("dropout forward", got, out, n, 5e-3);
	cpu->dropout_backward(a, b, n, p, seed, site);
	gpu->dropout_backward(da, db, n, p, seed, site);
	close_x("dropout backward", da, a, n, 5e-3);
	gpu->release(da); gpu->release(db); gpu->release(dout); gpu->release(draw);
	gpu->release(dxr);
	free(a); free(b); free(out); free(raw); free(back); free(got);
}

static void test_optimizer(size_t n)
{
	float *p = rnd(n, 1), *g = rnd(n, 1), *m = rnd(n, 0.1), *v = rnd(n, 0.1);
	for (size_t i = 0; i < n; i++)
		v[i] = fabsf(v[i]);
	float *dp = gf(p, n), *dg = gf(g, n), *dm = gf(m, n), *dv = gf(v, n);
	void *dxp = gx_poison(n);
	for (int t = 1; t <= 3; t++) {
		cpu->adamw(p, g, m, v, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t, NULL);
		gpu->adamw(dp, dg, dm, dv, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t, dxp);
	}
	close_f("adamw param", dp, p, n, 1e-6);
	close_f("adamw m", dm, m, n, 1e-6);
	close_f("adamw v", dv, v, n, 1e-6);
	float *rounded = copyf(p, n);
	for (size_t i = 0; i < n && gpu->xtype == FT_X_BF16; i++)
		rounded[i] = bf16_round(rounded[i]);
	close_x("adamw xparam = bf16(param)", dxp, rounded, n, 0);

	double want = cpu->sumsq(g, n), got = gpu->sumsq(dg, n);
	char what[120];
	snprintf(what, sizeof what, "sumsq %.17g vs %.17g", got, want);
	test_cond(what, fabs(got - want) <= 1e-12 * want);
	test_cond("nonfinite: clean", gpu->nonfinite(dg, n) == 0);
	float inf = INFINITY;
	gpu->upload(dg + n - 1, &inf, sizeof inf);
	test_cond("nonfinite: the last element", gpu->nonfinite(dg, n) == 1);
	cpu->scale(p, n, 0.3f);
	gpu->scale(dp, n, 0.3f);
	close_f("scale", dp, p, n, 1e-6);
	gpu->release(dp); gpu->release(dg); gpu->release(dm); gpu->release(dv);
	gpu->release(dxp);
	free(p); free(g); free(m); free(v); free(rounded);
}

/* ---- the whole decoder ------------------------------------------------- */

/* Three documents in row 0, one in row 1, a partial mask. */
enum { DB = 2, DT = 40 };
static int32_t d_tokens[DB * DT];
static uint8_t d_mask[DB * DT];
static const int32_t d_offsets[DB + 1] = { 0, 3, 4 };
static const int32_t d_starts[4] = { 0, 11, 25, 0 };

static struct ft_batch make_batch(int V)
{
	for (int i = 0; i < DB * DT; i++) {
		d_tokens[i] = (int32_t)(ft_rng_next(&rng) % (uint64_t)V);
		d_mask[i] = i % 7 != 3;
	}
	return (struct ft_batch){ DB, DT, d_tokens, d_mask, d_offsets, d_starts };
}

/* The model's weights on the GPU in bf16, pointed at by w. */
static void *upload_weights(const struct ft_model *m, struct ft_weights *w)
{
	void *x = gx(m->weights, m->nfloats);
	ft_model_point(m, x, gpu->xsize, w);
	return x;
}

static void test_decoder(const char *dir, int lora_dropout)
{
	struct ft_err err = { 0 };
	struct ft_model m;
	char path[512];
	snprintf(path, sizeof path, "data/hf/%s", dir);
	int rc = ft_model_load(&m, path, &err);
	test_cond("fixture model loads", rc == 0);
	if (rc) {
		printf("%s\n", err.msg);
		return;
	}
	for (size_t i = 0; i < m.nfloats; i++)
		m.weights[i] = bf16_round(m.weights[i]);
	struct ft_lora lo, *lp = NULL;
	if (lora_dropout >= 0) {
		struct ft_lora_config lc = { .rank = 4, .alpha = 8, .targets = (1u << FT_MOD_COUNT) - 1,
					     .dropout = lora_dropout ? 0.1 : 0.0, .seed = 7 };
		test_cond("lora init", ft_lora_init(&lo, &m.cfg, &lc, &err) == 0);
		ft_lora_init_random(&lo, 3);
		for (size_t i = 0; i < lo.nfloats; i++)   /* B nonzero, so every path carries signal */
			lo.weights[i] = bf16_round(lo.weights[i] + (float)(0.05 * ft_rng_normal(&rng)));
		lp = &lo;
	}
	struct ft_batch b = make_batch(m.cfg.vocab_size);
	long trained = ft_batch_trained(&b);
	float scale = 1.0f / (float)trained;

	struct ft_decoder dc, dg;
	rc = ft_decoder_init(&dc, cpu, &m, lp, DB, DT, false, &err) ||
	     ft_decoder_init(&dg, gpu, &m, lp, DB, DT, false, &err);
	test_cond("decoders", rc == 0);
	if (rc) {
		printf("%s\n", err.msg);
		return;
	}
	struct ft_weights xw, gw_c, gw_g;
	struct ft_lora_weights xlw, lg_c, lg_g;
	void *xblock = upload_weights(&m, &xw), *xlblock = NULL;
	dg.xw = &xw;
	if (lp) {
		xlblock = gx(lo.weights, lo.nfloats);
		ft_lora_point(&lo, xlblock, gpu->xsize, &xlw);
		dg.xlw = &xlw;
	}
	size_t ng = lp ? lo.nfloats : m.nfloats;
	float *grad_c = calloc(ng, sizeof(float)), *grad_g = gpu->alloc(ng * sizeof(float));
	if (lp) {
		ft_lora_point(&lo, grad_c, sizeof(float), &lg_c);
		ft_lora_point(&lo, grad_g, sizeof(float), &lg_g);
	} else {
		ft_model_point(&m, grad_c, sizeof(float), &gw_c);
		ft_model_point(&m, grad_g, sizeof(float), &gw_g);
	}
	double lc = 0, lgpu = 0;
	long tc = 0, tg = 0;
	rc = ft_decoder_forward_backward(&dc, &b, scale, lp ? NULL : &gw_c, lp ? &lg_c : NULL, &lc,
					 &tc, &err) ||
	     ft_decoder_forward_backward(&dg, &b, scale, lp ? NULL : &gw_g, lp ? &lg_g : NULL,
					 &lgpu, &tg, &err);
	test_cond("forward_backward on both", rc == 0 && tc == tg && tc == trained);
	char what[200];
	snprintf(what, sizeof what, "%s%s: loss %.6g (cuda) vs %.6g (cpu)", dir,
		 lp ? lora_dropout ? " lora+dropout" : " lora" : " full", lgpu / tc, lc / tc);
	test_cond(what, fabs(lgpu - lc) <= 1e-2 * fabs(lc));
	float *got = hf(grad_g, ng);
	const struct ft_param *params = lp ? lo.params : m.params;
	size_t nparams = lp ? lo.nparams : m.nparams;
	double worst = 0;
	for (size_t i = 0; i < nparams; i++) {
		snprintf(what, sizeof what, "%s gradient of %s", dir, params[i].name);
		double e = close_to(what, got + params[i].offset, grad_c + params[i].offset,
				    params[i].numel, 6e-2);
		worst = e > worst ? e : worst;
	}
	printf("%s%s: loss %.6g vs %.6g, worst gradient relative error %.3g\n", dir,
	       lp ? " lora" : " full", lgpu / tc, lc / tc, worst);

	/* activation recomputation on the same backend: bit for bit the same */
	struct ft_decoder dr;
	struct ft_weights gw_r;
	struct ft_lora_weights lg_r;
	float *grad_r = gpu->alloc(ng * sizeof(float));
	if (lp)
		ft_lora_point(&lo, grad_r, sizeof(float), &lg_r);
	else
		ft_model_point(&m, grad_r, sizeof(float), &gw_r);
	double lr = 0;
	rc = ft_decoder_init(&dr, gpu, &m, lp, DB, DT, true, &err);
	if (!rc) {
		dr.xw = &xw;
		dr.xlw = lp ? &xlw : NULL;
		rc = ft_decoder_forward_backward(&dr, &b, scale, lp ? NULL : &gw_r,
						 lp ? &lg_r : NULL, &lr, NULL, &err);
	}
	float *got_r = hf(grad_r, ng);
	snprintf(what, sizeof what, "%s%s: recomputed activations give the same loss and gradients",
		 dir, lp ? lora_dropout ? " lora+dropout" : " lora" : " full");
	test_cond(what, rc == 0 && lr == lgpu && memcmp(got_r, got, ng * sizeof(float)) == 0);
	free(got_r);
	gpu->release(grad_r);
	if (lp)
		ft_lora_weights_release(&lg_r);
	else
		ft_weights_release(&gw_r);
	ft_decoder_release(&dr);

	/* the forward alone, with logits */
	size_t nl = (size_t)DB * DT * m.cfg.vocab_size;
	float *logc = malloc(nl * sizeof *logc), *logg = malloc(nl * sizeof *logg);
	double fc = 0, fg = 0;
	rc = ft_decoder_forward(&dc, &b, logc, &fc, NULL, &err) ||
	     ft_decoder_forward(&dg, &b, logg, &fg, NULL, &err);
	test_cond("forward on both", rc == 0);
	snprintf(what, sizeof what, "%s logits", dir);
	close_to(what, logg, logc, nl, 3e-2);

	free(logc); free(logg); free(got); free(grad_c);
	gpu->release(grad_g);
	gpu->release(xblock);
	gpu->release(xlblock);
	ft_weights_release(&xw);
	if (lp) {
		ft_lora_weights_release(&xlw);
		ft_lora_weights_release(&lg_c);
		ft_lora_weights_release(&lg_g);
		ft_lora_release(&lo);
	} else {
		ft_weights_release(&gw_c);
		ft_weights_release(&gw_g);
	}
	ft_decoder_release(&dc);
	ft_decoder_release(&dg);
	ft_model_release(&m);
}

/* Full fine-tuning, 12 AdamW steps on one batch on each backend: the CUDA
 * losses track the CPU's. The GPU keeps fp32 master weights and moments
 * and refreshes its bf16 copy in the AdamW kernel. */
static void test_training(void)
{
	struct ft_err err = { 0 };
	struct ft_model m;
	if (ft_model_load(&m, "data/hf/llama", &err)) {
		test_cond("fixture model loads", 0);
		return;
	}
	for (size_t i = 0; i < m.nfloats; i++)
		m.weights[i] = bf16_round(m.weights[i]);
	struct ft_batch b = make_batch(m.cfg.vocab_size);
	float scale = 1.0f / (float)ft_batch_trained(&b);
	size_t nf = m.nfloats;
	struct ft_decoder dc, dg;
	ft_decoder_init(&dc, cpu, &m, NULL, DB, DT, false, &err);
	ft_decoder_init(&dg, gpu, &m, NULL, DB, DT, false, &err);
	struct ft_weights xw, gwc, gwg;
	void *xblock = upload_weights(&m, &xw);
	dg.xw = &xw;
	float *master = gf(m.weights, nf);
	float *cg = calloc(nf, sizeof(float)), *cm = calloc(nf, sizeof(float));
	float *cv = calloc(nf, sizeof(float));
	float *gg = gpu->alloc(nf * sizeof(float)), *gm = gpu->alloc(nf * sizeof(float));
	float *gv = gpu->alloc(nf * sizeof(float));
	ft_model_point(&m, cg, sizeof(float), &gwc);
	ft_model_point(&m, gg, sizeof(float), &gwg);
	struct ft_trainable tc = { 0 }, tg = { 0 };
	for (size_t i = 0; i < m.nparams; i++) {
		if (m.cfg.tie_word_embeddings && !strcmp(m.params[i].name, "lm_head.weight"))
			continue;
		ft_trainable_add(&tc, &m.params[i], m.weights, cg, cm, cv);
		ft_trainable_add(&tg, &m.params[i], master, gg, gm, gv);
	}
	ft_trainable_set_x(&tg, gpu, xblock);
	struct ft_adamw aw = { .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01,
			       .max_grad_norm = 1.0 };
	double first_c = 0, last_c = 0, worst = 0;
	for (int s = 1; s <= 12; s++) {
		double lc, lg;
		ft_trainable_zero_grad(cpu, &tc);
		ft_trainable_zero_grad(gpu, &tg);
		ft_decoder_forward_backward(&dc, &b, scale, &gwc, NULL, &lc, NULL, &err);
		ft_decoder_forward_backward(&dg, &b, scale, &gwg, NULL, &lg, NULL, &err);
		double nc = ft_trainable_grad_norm(cpu, &tc), ng = ft_trainable_grad_norm(gpu, &tg);
		ft_adamw_step(cpu, &tc, &aw, 3e-3, s, nc);
		ft_adamw_step(gpu, &tg, &aw, 3e-3, s, ng);
		double e = fabs(lg - lc) / fabs(lc);
		worst = e > worst ? e : worst;
		if (s == 1)
			first_c = lc;
		last_c = lc;
	}
	char what[200];
	snprintf(what, sizeof what, "12 AdamW steps: CUDA losses within %.3g of the CPU's "
		 "(tol 2e-2); CPU loss %.4g -> %.4g", worst, first_c * scale, last_c * scale);
	test_cond(what, worst <= 2e-2 && last_c < first_c);
	printf("%s\n", what);
	ft_trainable_release(&tc);
	ft_trainable_release(&tg);
	ft_weights_release(&xw);
	ft_weights_release(&gwc);
	ft_weights_release(&gwg);
	gpu->release(xblock); gpu->release(master); gpu->release(gg); gpu->release(gm);
	gpu->release(gv);
	free(cg); free(cm); free(cv);
	ft_decoder_release(&dc);
	ft_decoder_release(&dg);
	ft_model_release(&m);
}

/* Decoding: the CPU's greedy continuation of a prompt is fed to both
 * engines token by token (teacher forcing, so one near-tie cannot send
 * them down different paths); the logits must agree at every step, and
 * the GPU's choice must be the CPU's wherever the CPU's two best logits
 * are not within bf16 noise of each other. Then batch invariance on the
 * GPU: a sequence's logits bit-identical alone and batched. */
static void test_decode(const char *dir)
{
	struct ft_err err = { 0 };
	struct ft_model m;
	char path[512], what[200];
	snprintf(path, sizeof path, "data/hf/%s", dir);
	if (ft_model_load(&m, path, &err)) {
		test_cond("fixture model loads", 0);
		return;
	}
	for (size_t i = 0; i < m.nfloats; i++)
		m.weights[i] = bf16_round(m.weights[i]);
	const struct ft_decode_ops *dops =
		gpu == &ft_ops_cpu ? &ft_decode_ops_cpu : ft_decode_ops_cuda();
	enum { P = 7, G = 24, T = P + G };
	int V = m.cfg.vocab_size;
	int32_t seq[T];
	for (int i = 0; i < P; i++)
		seq[i] = (int32_t)(ft_rng_next(&rng) % (uint64_t)V);
	struct ft_gen gc, gg;
	struct ft_weights xw;
	void *xblock = upload_weights(&m, &xw);
	int rc = ft_gen_init(&gc, cpu, &ft_decode_ops_cpu, &m, 1, &err) ||
		 ft_gen_init(&gg, gpu, dops, &m, 1, &err) || ft_gen_reset(&gc, 0, T, &err) ||
		 ft_gen_reset(&gg, 0, T, &err);
	test_cond("decoding engines", rc == 0);
	if (rc) {
		printf("%s\n", err.msg);
		return;
	}
	gg.xw = &xw;
	float *lc = malloc((size_t)V * sizeof *lc), *lg = malloc((size_t)V * sizeof *lg);
	double worst = 0;
	int chosen = 0, ties = 0;
	for (int t = P; t <= T - 1 && !rc; t++) {
		struct ft_gen_feed f = t == P ? (struct ft_gen_feed){ 0, seq, P }
					      : (struct ft_gen_feed){ 0, seq + t - 1, 1 };
		rc = ft_gen_forward(&gc, &f, 1, lc, false, &err) ||
		     ft_gen_forward(&gg, &f, 1, lg, false, &err);
		int best = 0, second = -1, gbest = 0;
		for (int i = 1; i < V; i++) {
			if (lc[i] > lc[best]) {
				second = best;
				best = i;
			} else if (second < 0 || lc[i] > lc[second]) {
				second = i;
			}
			gbest = lg[i] > lg[gbest] ? i : gbest;
		}
		seq[t] = best;
		snprintf(what, sizeof what, "%s decode step %d logits", dir, t - P);
		double e = close_to(what, lg, lc, (size_t)V, 3e-2);
		worst = e > worst ? e : worst;
		if (lc[best] - lc[second] < 5e-2f * (fabsf(lc[best]) + 1.0f))
			ties++;
		else
			chosen += gbest == best;
	}
	test_cond("decode passes run", rc == 0);
	snprintf(what, sizeof what, "%s: the GPU's greedy choice is the CPU's at every step "
		 "without a near-tie (%d of %d; %d near-ties), logits within %.3g", dir, chosen,
		 T - P - ties, ties, worst);
	test_cond(what, chosen == T - P - ties);
	printf("%s\n", what);
	snprintf(what, sizeof what, "%s on %s", dir, gpu->name);
	check_batch(what, &m, gpu, dops, &xw, seq, T);
	ft_gen_release(&gc);
	ft_gen_release(&gg);
	gpu->release(xblock);
	ft_weights_release(&xw);
	free(lc);
	free(lg);
	ft_model_release(&m);
}

int main(void)
{
	struct ft_err err = { 0 };
	gpu = ft_ops_cuda_open(0, &err);
	if (!gpu) {
		printf("CUDA tests skipped: %s\n", err.msg);
		const char *req = getenv("FT_REQUIRE_CUDA");
		if (req && !strcmp(req, "1")) {
			test_cond("a CUDA device (FT_REQUIRE_CUDA=1)", 0);
			return test_report();
		}
		printf("checking the harness with the CPU table in CUDA's place\n");
		gpu = &ft_ops_cpu;
	}
	ft_rng_seed(&rng, 42);

	test_matmul(37, 64, 48, 0, 0);
	test_matmul(37, 64, 48, 1, 1);
	test_matmul(300, 256, 352, 1, 0);
	test_matmul(1, 8, 4, 0, 1);
	test_embedding(50, 64, 100);
	test_embedding(1000, 96, 37);
	test_rmsnorm(33, 96);
	test_rmsnorm(8, 4096);
	test_rmsnorm(5000, 32);
	test_rope(40, 4, 16, 4000);
	test_rope(64, 8, 128, 131072);
	test_rope(17, 2, 64, 1000);
	static const int docs[] = { 0, 13, 40 }, one[] = { 0 }, many[] = { 0, 1, 2, 90, 91, 200 };
	test_attention(2, 70, 4, 2, 8, docs, 3);
	test_attention(2, 70, 4, 2, 16, docs, 3);
	test_attention(1, 300, 4, 4, 64, many, 6);
	test_attention(2, 257, 8, 2, 64, one, 1);
	test_attention(1, 200, 4, 1, 128, docs, 3);
	test_attention(1, 130, 2, 2, 256, docs, 3);
	test_attention(1, 33, 2, 1, 32, one, 1);
	test_swiglu(1003);
	test_swiglu(1 << 20);
	test_crossentropy(20, 32000);
	test_crossentropy(5, 1001);
	test_crossentropy(3, 128256);
	test_elementwise(5003);
	test_elementwise(1 << 21);
	test_optimizer(3001);
	test_optimizer(1 << 20);

	test_decoder("llama", -1);
	test_decoder("qwen2", -1);
	test_decoder("tied", -1);
	test_decoder("llama3", 0);
	test_decoder("llama", 1);
	test_training();
	test_decode("llama");
	test_decode("qwen2");
	test_decode("tied");
	return test_report();
}
