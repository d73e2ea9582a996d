/* test_hf: the CPU decoder against Hugging Face transformers + PEFT, from the
 * fixtures tests/hf/make_fixtures.py wrote into tests/data/hf/<case>/:
 * logits, loss, the gradient of every weight, LoRA A/B gradients, and the
 * weights after three AdamW steps, with fp32 tolerances (relative error of
 * each tensor, as a norm, at most 1e-4 and no element off by more than
 * 1e-4 of the tensor's largest magnitude). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decoder.h"
#include "json.h"
#include "lora.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "safetensors.h"
#include "testhelp.h"

#define TOL 1e-4

static const char *datadir(void)
{
	const char *d = getenv("TESTDATA");
	return d ? d : "data";
}

static double worst_rel;   /* largest relative error seen, for the log */

/* Compare got[0..n) with the fixture tensor name. */
static void compare(const char *what, const struct ft_st_file *exp, const char *name,
		    const float *got, size_t n, double tol)
{
	const struct ft_st_tensor *t = ft_st_find(exp, name);
	char descr[256];
	snprintf(descr, sizeof descr, "%s: fixture '%s' present with %zu elements", what, name, n);
	test_cond(descr, t && t->numel == n);
	if (!t || t->numel != n)
		return;
	float *want = malloc(n * sizeof *want);
	ft_st_to_f32(t, want, n, NULL);
	double d2 = 0, w2 = 0, dmax = 0, wmax = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]);
		d2 += d * d;
		w2 += (double)want[i] * want[i];
		dmax = d > dmax ? d : dmax;
		wmax = fabs(want[i]) > wmax ? fabs(want[i]) : wmax;
	}
	double rel = sqrt(d2) / (sqrt(w2) > 1e-30 ? sqrt(w2) : 1e-30);
	double relmax = dmax / (wmax > 1e-30 ? wmax : 1e-30);
	bool ok = (rel <= tol && relmax <= tol) || (wmax == 0 && dmax == 0);
	if (wmax > 0 && rel > worst_rel)
		worst_rel = rel;
	snprintf(descr, sizeof descr, "%s: '%s' relative error %.3g (max element %.3g)", what,
		 name, rel, relmax);
	test_cond(descr, ok);
	free(want);
}

static int *json_ints(const cJSON *a, int *n)
{
	*n = cJSON_GetArraySize(a);
	int *v = calloc((size_t)*n + 1, sizeof *v);
	int i = 0;
	for (const cJSON *e = a ? a->child : NULL; e; e = e->next)
		v[i++] = (int)ft_json_int(e);
	return v;
}

static double jnum(const cJSON *o, const char *path)
{
	const cJSON *n = ft_json_path(o, path);
	return n ? n->valuedouble : NAN;
}

/* The adapter PEFT saved (DIR/peft): ft_lora_load reads it into the
 * weights the fixture used; ft_lora_save writes the same tensor names,
 * shapes and settings back; merging gives the adapted model's logits. */
static void check_peft(const char *dir, const struct ft_model *m, const struct ft_lora *lo,
		       const struct ft_batch *batch)
{
	struct ft_err err = { 0 };
	char peft[1100], out[1024], path[1200];
	snprintf(peft, sizeof peft, "%s/peft", dir);
	struct ft_lora got;
	test_cond("PEFT adapter loads", ft_lora_load(&got, &m->cfg, peft, &err) == 0);
	if (err.code) {
		fprintf(stderr, "  %s\n", err.msg);
		return;
	}
	test_cond("PEFT adapter: rank, targets, scaling as the fixture",
		  got.cfg.rank == lo->cfg.rank && got.cfg.targets == lo->cfg.targets &&
			  got.scaling == lo->scaling && got.nfloats == lo->nfloats);
	test_cond("PEFT adapter: weights as the fixture",
		  memcmp(got.weights, lo->weights, lo->nfloats * sizeof(float)) == 0);

	snprintf(out, sizeof out, "%s/ft-peft-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	test_cond("temp dir", mkdtemp(out) != NULL);
	test_cond("ft_lora_save", ft_lora_save(&got, out, "base", &err) == 0);
	struct ft_st_file a, b;
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", peft);
	test_cond("open PEFT's tensors", ft_st_open(&a, path, &err) == 0);
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
	test_cond("open ours", ft_st_open(&b, path, &err) == 0);
	bool same = a.ntensors == b.ntensors;
	for (size_t i = 0; same && i < a.ntensors; i++) {   /* both sorted by name */
		const struct ft_st_tensor *x = &a.tensors[i], *y = &b.tensors[i];
		same = strcmp(x->name, y->name) == 0 && x->dtype == y->dtype &&
		       x->ndim == y->ndim && x->shape[0] == y->shape[0] &&
		       x->shape[1] == y->shape[1] &&
		       memcmp(x->data, y->data, x->numel * sizeof(float)) == 0;
	}
	test_cond("ft_lora_save: PEFT's tensor names, shapes, dtypes and values", same);
	test_cond("ft_lora_save: format metadata as PEFT's",
		  ft_st_meta(&b, "format") && ft_st_meta(&a, "format") &&
			  strcmp(ft_st_meta(&a, "format"), ft_st_meta(&b, "format")) == 0);
	ft_st_close(&a);
	ft_st_close(&b);
	struct ft_lora again;
	test_cond("our adapter loads back", ft_lora_load(&again, &m->cfg, out, &err) == 0);
	test_cond("and is the same", again.nfloats == got.nfloats && again.scaling == got.scaling &&
					     memcmp(again.weights, got.weights,
						    got.nfloats * sizeof(float)) == 0);
	ft_lora_release(&again);
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
	remove(path);
	snprintf(path, sizeof path, "%s/adapter_config.json", out);
	remove(path);
	rmdir(out);

	/* merged weights compute what base + adapters compute */
	int V = m->cfg.vocab_size;
	size_t nl = (size_t)batch->B * batch->T * V;
	float *l1 = malloc(nl * sizeof *l1), *l2 = malloc(nl * sizeof *l2);
	struct ft_decoder d1, d2;
	ft_decoder_init(&d1, &ft_ops_cpu, m, &got, batch->B, batch->T, false, &err);
	ft_decoder_forward(&d1, batch, l1, NULL, NULL, &err);
	struct ft_model merged;
	ft_model_init(&merged, &m->cfg, &err);
	memcpy(merged.weights, m->weights, m->nfloats * sizeof(float));
	ft_lora_merge(&got, &merged);
	ft_decoder_init(&d2, &ft_ops_cpu, &merged, NULL, batch->B, batch->T, false, &err);
	ft_decoder_forward(&d2, batch, l2, NULL, NULL, &err);
	/* largest difference relative to the largest logit (fp32 rounding) */
	double worst = 0, top = 0;
	for (size_t i = 0; i < nl; i++) {
		worst = fmax(worst, fabs(l1[i] - l2[i]));
		top = fmax(top, fabs(l1[i]));
	}
	char descr[128];
	snprintf(descr, sizeof descr, "merged model's logits = adapted model's (worst %.2g of %.2g)",
		 worst, top);
	test_cond(descr, worst <= 1e-5 * top);
	ft_decoder_release(&d1);
	ft_decoder_release(&d2);
	ft_model_release(&merged);
	free(l1);
	free(l2);
	ft_lora_release(&got);
}

static void run_case(const char *name)
{
	char dir[512], path[600];
	snprintf(dir, sizeof dir, "%s/hf/%s", datadir(), name);
	struct ft_err err = { 0 };

	/* the case */
	snprintf(path, sizeof path, "%s/case.json", dir);
	FILE *f = fopen(path, "rb");
	test_cond("case.json opens", f != NULL);
	if (!f)
		return;
	static char text[1 << 16];
	size_t len = fread(text, 1, sizeof text, f);
	fclose(f);
	cJSON *cs = NULL;
	test_cond("case.json parses", ft_json_parse(text, len, &cs, &err) == 0);
	if (!cs)
		return;
	int B = (int)jnum(cs, "B"), T = (int)jnum(cs, "T"), n;
	int *tok = json_ints(ft_json_path(cs, "tokens"), &n);
	int *mk = json_ints(ft_json_path(cs, "mask"), &n);
	int *offs = json_ints(ft_json_path(cs, "doc_offsets"), &n);
	int *starts = json_ints(ft_json_path(cs, "doc_starts"), &n);
	int32_t *tokens = malloc((size_t)B * T * sizeof *tokens);
	uint8_t *mask = malloc((size_t)B * T);
	for (int i = 0; i < B * T; i++) {
		tokens[i] = tok[i];
		mask[i] = (uint8_t)mk[i];
	}
	struct ft_batch batch = { .B = B, .T = T, .tokens = tokens, .mask = mask,
				  .doc_offsets = offs, .doc_starts = starts };

	struct ft_model m;
	int rc = ft_model_load(&m, dir, &err);
	if (rc)
		printf("%s: %s\n", name, err.msg);
	test_cond("model loads", rc == 0);
	struct ft_st_file exp;
	snprintf(path, sizeof path, "%s/expected.safetensors", dir);
	int erc = ft_st_open(&exp, path, &err);
	test_cond("expected.safetensors opens", erc == 0);
	if (rc || erc)
		goto out;

	int V = m.cfg.vocab_size;
	struct ft_decoder d;
	test_cond("decoder init", ft_decoder_init(&d, &ft_ops_cpu, &m, NULL, B, T, false, &err) == 0);

	/* logits and loss */
	float *logits = malloc((size_t)B * T * V * sizeof *logits);
	double loss = 0;
	long trained = 0;
	test_cond("forward", ft_decoder_forward(&d, &batch, logits, &loss, &trained, &err) == 0);
	compare(name, &exp, "logits", logits, (size_t)B * T * V, TOL);
	test_cond("trained count as HF", trained == (long)jnum(cs, "trained"));
	double want = jnum(cs, "loss_sum");
	test_cond("loss sum as HF", fabs(loss - want) <= TOL * fabs(want));

	/* gradients of every weight */
	float *grads = calloc(m.nfloats, sizeof *grads);
	struct ft_weights gw;
	test_cond("point grads", ft_model_point(&m, grads, sizeof(float), &gw) == 0);
	test_cond("batch trained count", ft_batch_trained(&batch) == trained);
	double loss2 = 0;
	test_cond("forward_backward", ft_decoder_forward_backward(&d, &batch, 1.0f / (float)trained,
								  &gw, NULL, &loss2, &trained,
								  &err) == 0);
	test_cond("forward_backward loss == forward loss", loss2 == loss);
	for (size_t i = 0; i < m.nparams; i++) {
		char key[128];
		snprintf(key, sizeof key, "grad.%s", m.params[i].name);
		compare(name, &exp, key, grads + m.params[i].offset, m.params[i].numel, TOL);
	}

	/* LoRA: adapters from the fixture, base frozen */
	const cJSON *lj = ft_json_path(cs, "lora");
	if (lj && cJSON_IsObject(lj)) {
		struct ft_lora_config lc = { .rank = (int)jnum(lj, "rank"),
					     .alpha = jnum(lj, "alpha"),
					     .rslora = cJSON_IsTrue(ft_json_path(lj, "rslora")) };
		test_cond("lora targets parse",
			  ft_lora_parse_targets(ft_json_path(lj, "targets")->valuestring,
						&lc.targets, &err) == 0);
		struct ft_lora lo;
		test_cond("lora init", ft_lora_init(&lo, &m.cfg, &lc, &err) == 0);
		for (size_t i = 0; i < lo.nparams; i++) {
			char key[160];
			snprintf(key, sizeof key, "lora.%s", lo.params[i].name);
			const struct ft_st_tensor *t = ft_st_find(&exp, key);
			test_cond("lora fixture tensor present", t != NULL);
			if (t)
				ft_st_to_f32(t, lo.weights + lo.params[i].offset, lo.params[i].numel,
					     NULL);
		}
		struct ft_decoder dl;
		test_cond("lora decoder", ft_decoder_init(&dl, &ft_ops_cpu, &m, &lo, B, T, false, &err) == 0);
		float *lg = calloc(lo.nfloats, sizeof *lg);
		struct ft_lora_weights lgw;
		test_cond("point lora grads", ft_lora_point(&lo, lg, sizeof(float), &lgw) == 0);
		double lloss = 0;
		test_cond("lora forward_backward",
			  ft_decoder_forward_backward(&dl, &batch, 1.0f / (float)trained, NULL, &lgw,
						      &lloss, NULL, &err) == 0);
		double lwant = jnum(lj, "loss_sum");
		test_cond("lora loss as PEFT", fabs(lloss - lwant) <= TOL * fabs(lwant));
		for (size_t i = 0; i < lo.nparams; i++) {
			char key[160];
			snprintf(key, sizeof key, "lora_grad.%s", lo.params[i].name);
			compare(name, &exp, key, lg + lo.params[i].offset, lo.params[i].numel, TOL);
		}
		free(lg);
		ft_lora_weights_release(&lgw);
		ft_decoder_release(&dl);
		char dir[1024];
		snprintf(dir, sizeof dir, "%s/hf/%s", datadir(), name);
		check_peft(dir, &m, &lo, &batch);
		ft_lora_release(&lo);
	}

	/* three AdamW steps of full fine-tuning */
	const cJSON *aj = ft_json_path(cs, "adamw");
	if (aj && cJSON_IsObject(aj)) {
		float lr = (float)jnum(aj, "lr"), b1 = (float)jnum(aj, "beta1");
		float b2 = (float)jnum(aj, "beta2"), eps = (float)jnum(aj, "eps");
		float wd = (float)jnum(aj, "weight_decay");
		int steps = (int)jnum(aj, "steps");
		/* the trainer's own step: every weight trainable, decay per parameter,
		 * no clipping (the fixture does not clip) */
		float *mom = calloc(m.nfloats, sizeof *mom), *var = calloc(m.nfloats, sizeof *var);
		struct ft_trainable tr = { 0 };
		for (size_t i = 0; i < m.nparams; i++)
			ft_trainable_add(&tr, &m.params[i], m.weights, grads, mom, var);
		struct ft_adamw aw = { b1, b2, eps, wd, 0.0 };
		for (int s = 1; s <= steps; s++) {
			ft_trainable_zero_grad(&ft_ops_cpu, &tr);
			double ls = 0;
			ft_decoder_forward_backward(&d, &batch, 1.0f / (float)trained, &gw, NULL, &ls,
						    NULL, &err);
			double lw = jnum(aj, s == 1 ? "loss_sums.0" : s == 2 ? "loss_sums.1" :
							"loss_sums.2");
			test_cond("adamw step loss as torch", fabs(ls - lw) <= TOL * fabs(lw));
			test_cond("finite gradients", ft_trainable_nonfinite(&ft_ops_cpu, &tr, false) == NULL);
			ft_adamw_step(&ft_ops_cpu, &tr, &aw, lr, s, ft_trainable_grad_norm(&ft_ops_cpu, &tr));
		}
		ft_trainable_release(&tr);
		for (size_t i = 0; i < m.nparams; i++) {
			char key[128];
			snprintf(key, sizeof key, "adamw.%s", m.params[i].name);
			compare(name, &exp, key, m.weights + m.params[i].offset, m.params[i].numel,
				TOL);
		}
		free(mom);
		free(var);
	}

	free(grads);
	ft_weights_release(&gw);
	free(logits);
	ft_decoder_release(&d);
	ft_st_close(&exp);
	ft_model_release(&m);
out:
	cJSON_Delete(cs);
	free(tok);
	free(mk);
	free(offs);
	free(starts);
	free(tokens);
	free(mask);
}

int main(void)
{
	const char *cases[] = { "llama", "qwen2", "tied", "llama3" };
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		run_case(cases[i]);
	printf("worst relative error %.3g\n", worst_rel);
	return test_report();
}
