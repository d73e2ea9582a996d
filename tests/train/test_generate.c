/* test_generate: decoding with a KV cache (trainer/generate.h) on the
 * fixtures tests/hf/make_fixtures.py wrote into tests/data/hf/<case>/:
 *  - greedy continuations equal transformers' generate(do_sample=False),
 *    token for token, for the base models and with the PEFT adapters
 *    merged (generate.json);
 *  - the logits of a prefill followed by one-token steps equal the
 *    decoder's full recomputation (ft_decoder_forward) within 1e-5;
 *  - a sequence's logits are bit-identical whether it runs alone or
 *    beside others (prefill and decode mixed in one pass);
 *  - sampling: greedy is the first largest logit, top-k 1 is greedy, the
 *    draw is a function of u, top-p keeps the smallest sufficient set. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "gencheck.h"
#include "generate.h"
#include "json.h"
#include "lora.h"
#include "model.h"
#include "testhelp.h"

#define CACHE_TOL 1e-5

static const char *datadir(void)
{
	const char *d = getenv("TESTDATA");
	return d ? d : "data";
}

static cJSON *read_json(const char *path)
{
	struct ft_buf b;
	ft_buf_init(&b, 0);
	cJSON *root = NULL;
	if (ft_buf_read_file(&b, path, NULL) == 0)
		ft_json_parse(b.data ? b.data : "", b.len, &root, NULL);
	ft_buf_release(&b);
	return root;
}

static int32_t *ints(const cJSON *a, int *n)
{
	*n = cJSON_GetArraySize(a);
	int32_t *v = calloc((size_t)*n + 1, sizeof *v);
	int i = 0;
	for (const cJSON *e = a ? a->child : NULL; e; e = e->next)
		v[i++] = (int32_t)ft_json_int(e);
	return v;
}

static int argmax(const float *x, int V)
{
	int best = 0;
	for (int i = 1; i < V; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

/* Greedy decoding of prompt in slot 0 until max_new tokens or eos (kept,
 * as transformers keeps it); returns the count written to out. */
static int greedy(struct ft_gen *g, const int32_t *prompt, int n, int max_new, int eos,
		  int32_t *out)
{
	struct ft_err err;
	int V = g->model->cfg.vocab_size;
	float *logits = malloc((size_t)V * sizeof *logits);
	int k = 0;
	if (ft_gen_reset(g, 0, n + max_new, &err))
		return -1;
	struct ft_gen_feed f = { 0, prompt, n };
	while (k < max_new) {
		if (ft_gen_forward(g, &f, 1, logits, false, &err)) {
			printf("forward: %s\n", err.msg);
			break;
		}
		out[k] = argmax(logits, V);
		f = (struct ft_gen_feed){ 0, &out[k], 1 };
		if (out[k++] == eos)
			break;
	}
	free(logits);
	return k;
}

/* Each prompt of the fixture, greedy, against the ids transformers chose. */
static void check_greedy(const char *name, const struct ft_model *m, const cJSON *fix,
			 const char *which)
{
	struct ft_gen g;
	struct ft_err err;
	test_cond("gen init", ft_gen_init(&g, &ft_ops_cpu, &ft_decode_ops_cpu, m, 1, &err) == 0);
	int max_new = (int)ft_json_int(ft_json_path(fix, "max_new_tokens"));
	const cJSON *e = ft_json_path(fix, "eos_token_id");
	int eos = ft_json_is_int(e) ? (int)ft_json_int(e) : -1;
	const cJSON *prompts = ft_json_path(fix, "prompts");
	const cJSON *want = ft_json_path(fix, which);
	int i = 0;
	for (const cJSON *p = prompts->child, *w = want->child; p && w; p = p->next, w = w->next) {
		int n, nw;
		int32_t *prompt = ints(p, &n);
		int32_t *exp = ints(cJSON_GetObjectItem(w, "ids"), &nw);
		int32_t *got = calloc((size_t)max_new + 1, sizeof *got);
		int k = greedy(&g, prompt, n, max_new, eos, got);
		char descr[160];
		snprintf(descr, sizeof descr, "%s %s prompt %d: %d greedy ids as transformers'", name,
			 which, i, nw);
		bool same = k == nw && !memcmp(got, exp, (size_t)nw * sizeof *got);
		test_cond(descr, same);
		if (!same) {
			for (int t = 0; t < k; t++)
				printf("%s%d", t ? "," : "got ", got[t]);
			printf("\n");
		}
		free(prompt);
		free(exp);
		free(got);
		i++;
	}
	test_cond("fixture has prompts", i > 0);
	ft_gen_release(&g);
}

/* Prefill of the first n0 tokens then one token at a time, against the
 * decoder's logits for the whole sequence. */
static void check_cache(const char *name, const struct ft_model *m, const int32_t *seq, int T,
			int n0)
{
	struct ft_err err;
	int V = m->cfg.vocab_size;
	struct ft_decoder d;
	float *full = malloc((size_t)T * V * sizeof *full);
	float *step = malloc((size_t)T * V * sizeof *step);
	struct ft_batch b = { .B = 1, .T = T, .tokens = seq };
	test_cond("decoder", ft_decoder_init(&d, &ft_ops_cpu, m, NULL, 1, T, false, &err) == 0 &&
				     ft_decoder_forward(&d, &b, full, NULL, NULL, &err) == 0);
	ft_decoder_release(&d);
	struct ft_gen g;
	int rc = ft_gen_init(&g, &ft_ops_cpu, &ft_decode_ops_cpu, m, 1, &err) ||
		 ft_gen_reset(&g, 0, T, &err);
	struct ft_gen_feed f = { 0, seq, n0 };
	rc = rc || ft_gen_forward(&g, &f, 1, step, true, &err);
	for (int t = n0; t < T && !rc; t++) {
		f = (struct ft_gen_feed){ 0, seq + t, 1 };
		rc = ft_gen_forward(&g, &f, 1, step + (size_t)t * V, false, &err);
	}
	test_cond("cached forward runs", rc == 0);
	double worst = 0;
	for (size_t i = 0; i < (size_t)T * V; i++)
		worst = fmax(worst, fabs((double)full[i] - step[i]));
	char descr[160];
	snprintf(descr, sizeof descr, "%s: cached logits = full recomputation (max diff %.3g)",
		 name, worst);
	test_cond(descr, worst <= CACHE_TOL);
	printf("%s: KV cache vs recomputation, %d positions: max |diff| %.3g\n", name, T, worst);
	ft_gen_release(&g);
	free(full);
	free(step);
}

static void check_case(const char *name)
{
	char dir[512], path[600];
	snprintf(dir, sizeof dir, "%s/hf/%s", datadir(), name);
	snprintf(path, sizeof path, "%s/generate.json", dir);
	cJSON *fix = read_json(path);
	test_cond("generate.json reads", fix != NULL);
	struct ft_model m;
	struct ft_err err;
	int rc = ft_model_load(&m, dir, &err);
	test_cond("model loads", rc == 0);
	if (!fix || rc) {
		cJSON_Delete(fix);
		return;
	}
	check_greedy(name, &m, fix, "base");

	/* a sequence: the longest prompt and its continuation */
	const cJSON *p = cJSON_GetArrayItem(ft_json_path(fix, "prompts"), 2);
	const cJSON *c = ft_json_path(cJSON_GetArrayItem(ft_json_path(fix, "base"), 2), "ids");
	int np, nc;
	int32_t *pi = ints(p, &np), *ci = ints(c, &nc);
	int32_t *seq = malloc((size_t)(np + nc) * sizeof *seq);
	memcpy(seq, pi, (size_t)np * sizeof *seq);
	memcpy(seq + np, ci, (size_t)nc * sizeof *seq);
	check_cache(name, &m, seq, np + nc, np);
	check_batch(name, &m, &ft_ops_cpu, &ft_decode_ops_cpu, NULL, seq, np + nc);
	free(pi);
	free(ci);
	free(seq);

	snprintf(path, sizeof path, "%s/peft", dir);
	if (cJSON_GetArraySize(ft_json_path(fix, "peft")) > 0) {
		struct ft_lora lo;
		rc = ft_lora_load(&lo, &m.cfg, path, &err);
		test_cond("peft adapter loads", rc == 0);
		if (!rc) {
			ft_lora_merge(&lo, &m);
			ft_lora_release(&lo);
			check_greedy(name, &m, fix, "peft");
		}
	}
	ft_model_release(&m);
	cJSON_Delete(fix);
}

static void check_sampling(void)
{
	enum { V = 6 };
	float base[V] = { 1.0f, 3.0f, 3.0f, 0.5f, 2.0f, -1.0f }, l[V];
	int32_t order[V];
	struct ft_sampling greedy = { 0.0, 0, 1.0 }, k1 = { 1.0, 1, 1.0 };
	struct ft_sampling k2 = { 1.0, 2, 1.0 }, p = { 1.0, 0, 0.5 }, all = { 0.7, 0, 1.0 };
	memcpy(l, base, sizeof l);
	test_cond("greedy: first largest", ft_gen_pick(l, V, &greedy, 0.9, order) == 1);
	memcpy(l, base, sizeof l);
	/* top-k 1 keeps both tied largest logits, as transformers does */
	int t = ft_gen_pick(l, V, &k1, 0.99, order);
	test_cond("top-k 1 keeps the ties of the k-th", t == 2);
	memcpy(l, base, sizeof l);
	test_cond("top-k 2: low u, first", ft_gen_pick(l, V, &k2, 0.0, order) == 1);
	memcpy(l, base, sizeof l);
	/* p 0.5: token 1 alone has e^3/(2e^3+e^2+e+e^.5+e^-1) < 0.5: both 3s */
	bool only_top = true;
	for (double u = 0.0; u < 1.0; u += 0.01) {
		memcpy(l, base, sizeof l);
		int x = ft_gen_pick(l, V, &p, u, order);
		only_top &= x == 1 || x == 2;
	}
	test_cond("top-p 0.5 keeps the two largest", only_top);
	int hits[V] = { 0 };
	for (double u = 0.0005; u < 1.0; u += 0.001) {
		memcpy(l, base, sizeof l);
		hits[ft_gen_pick(l, V, &all, u, order)]++;
	}
	bool every = true;
	for (int i = 0; i < V; i++)
		every &= hits[i] > 0;
	test_cond("temperature alone can draw every token", every);
	test_cond("draws follow the probabilities", hits[1] > hits[4] && hits[4] > hits[0] &&
							    hits[0] > hits[5]);
}

int main(void)
{
	const char *cases[] = { "llama", "qwen2", "tied", "llama3" };
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		check_case(cases[i]);
	check_sampling();
	return test_report();
}
