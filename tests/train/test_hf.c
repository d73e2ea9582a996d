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

#include "decoder.h"
#include "json.h"
#include "lora.h"
#include "model.h"
#include "ops.h"
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
	test_cond("decoder init", ft_decoder_init(&d, &ft_ops_cpu, &m, NULL, B, T, &err) == 0);

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
	double loss2 = 0;
	test_cond("forward_backward", ft_decoder_forward_backward(&d, &batch, 1.0f / (float)trained,
								  grads, NULL, &loss2, &trained,
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
		test_cond("lora decoder", ft_decoder_init(&dl, &ft_ops_cpu, &m, &lo, B, T, &err) == 0);
		float *lg = calloc(lo.nfloats, sizeof *lg);
		double lloss = 0;
		test_cond("lora forward_backward",
			  ft_decoder_forward_backward(&dl, &batch, 1.0f / (float)trained, NULL, lg,
						      &lloss, NULL, &err) == 0);
		double lwant = jnum(lj, "loss_sum");
		test_cond("lora loss as PEFT", fabs(lloss - lwant) <= TOL * fabs(lwant));
		for (size_t i = 0; i < lo.nparams; i++) {
			char key[160];
			snprintf(key, sizeof key, "lora_grad.%s", lo.params[i].name);
			compare(name, &exp, key, lg + lo.params[i].offset, lo.params[i].numel, TOL);
		}
		free(lg);
		ft_decoder_release(&dl);
		ft_lora_release(&lo);
	}

	/* three AdamW steps of full fine-tuning */
	const cJSON *aj = ft_json_path(cs, "adamw");
	if (aj && cJSON_IsObject(aj)) {
		float lr = (float)jnum(aj, "lr"), b1 = (float)jnum(aj, "beta1");
		float b2 = (float)jnum(aj, "beta2"), eps = (float)jnum(aj, "eps");
		float wd = (float)jnum(aj, "weight_decay");
		int steps = (int)jnum(aj, "steps");
		float *mom = calloc(m.nfloats, sizeof *mom), *var = calloc(m.nfloats, sizeof *var);
		for (int s = 1; s <= steps; s++) {
			memset(grads, 0, m.nfloats * sizeof *grads);
			double ls = 0;
			ft_decoder_forward_backward(&d, &batch, 1.0f / (float)trained, grads, NULL, &ls,
						    NULL, &err);
			double lw = jnum(aj, s == 1 ? "loss_sums.0" : s == 2 ? "loss_sums.1" :
							"loss_sums.2");
			test_cond("adamw step loss as torch", fabs(ls - lw) <= TOL * fabs(lw));
			for (size_t i = 0; i < m.nparams; i++) {
				const struct ft_param *p = &m.params[i];
				ft_ops_cpu.adamw(m.weights + p->offset, grads + p->offset,
						 mom + p->offset, var + p->offset, p->numel, lr, b1, b2,
						 eps, p->decay ? wd : 0.0f, s);
			}
		}
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
