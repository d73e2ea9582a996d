/* test_optim.c: the learning-rate schedules, gradient clipping, the
 * non-finite check, and recipe parsing (trainer/optim.c, trainer/recipe.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "recipe.h"
#include "testhelp.h"

static bool near(double a, double b)
{
	return fabs(a - b) <= 1e-12 * fmax(1.0, fabs(b));
}

static void test_schedules(void)
{
	struct ft_schedule s = { .lr = 1e-3, .type = FT_SCHED_COSINE, .warmup = 4, .total = 14 };
	test_cond("warmup starts at lr/warmup", near(ft_lr_at(&s, 0), 0.25e-3));
	test_cond("warmup is linear", near(ft_lr_at(&s, 2), 0.75e-3));
	test_cond("warmup ends at lr", near(ft_lr_at(&s, 3), 1e-3));
	test_cond("cosine starts at lr", near(ft_lr_at(&s, 4), 1e-3));
	test_cond("cosine half way is lr/2", near(ft_lr_at(&s, 9), 0.5e-3));
	test_cond("cosine quarter", near(ft_lr_at(&s, 6), 1e-3 * 0.5 * (1 + cos(M_PI * 0.2))));
	test_cond("cosine last step still moves", ft_lr_at(&s, 13) > 0 && ft_lr_at(&s, 13) < 1e-4);
	s.min_lr_ratio = 0.1;
	test_cond("cosine floor", near(ft_lr_at(&s, 9), 1e-3 * (0.1 + 0.9 * 0.5)));
	s.type = FT_SCHED_LINEAR;
	s.min_lr_ratio = 0;
	test_cond("linear", near(ft_lr_at(&s, 9), 0.5e-3) && near(ft_lr_at(&s, 13), 0.1e-3));
	s.type = FT_SCHED_CONSTANT;
	test_cond("constant", near(ft_lr_at(&s, 13), 1e-3) && near(ft_lr_at(&s, 1), 0.5e-3));
	bool mono = true;
	s = (struct ft_schedule){ .lr = 1, .type = FT_SCHED_COSINE, .total = 100 };
	for (long i = 1; i < 100; i++)
		mono &= ft_lr_at(&s, i) < ft_lr_at(&s, i - 1);
	test_cond("cosine without warmup decreases every step", mono && near(ft_lr_at(&s, 0), 1));
}

static void test_clip_and_nonfinite(void)
{
	struct ft_param p[2] = { { .name = "a", .ndim = 1, .shape = { 3 }, .offset = 0, .numel = 3,
				   .decay = true },
				 { .name = "b", .ndim = 1, .shape = { 1 }, .offset = 3, .numel = 1 } };
	float w[4] = { 1, 1, 1, 1 }, g[4] = { 3, 0, 0, 4 }, m[4] = { 0 }, v[4] = { 0 };
	struct ft_trainable tr = { 0 };
	ft_trainable_add(&tr, &p[0], w, g, m, v);
	ft_trainable_add(&tr, &p[1], w, g, m, v);
	test_cond("two tensors, four values", tr.n == 2 && tr.numel == 4);
	double norm = ft_trainable_grad_norm(&ft_ops_cpu, &tr);
	test_cond("global norm over all tensors", near(norm, 5.0));
	test_cond("finite", ft_trainable_nonfinite(&ft_ops_cpu, &tr, false) == NULL);
	struct ft_adamw a = { .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.5,
			      .max_grad_norm = 1.0 };
	ft_adamw_step(&ft_ops_cpu, &tr, &a, 0.1, 1, norm);
	test_cond("clipped to norm 1", fabsf(g[0] - 3.0f / 5.0f) < 1e-6f && fabsf(g[3] - 0.8f) < 1e-6f);
	/* first Adam step: p -= lr * (decay p + sign(g)) for a nonzero g */
	test_cond("decay on 'a', not on 'b'",
		  fabsf(w[1] - (1.0f - 0.1f * 0.5f)) < 1e-6f && fabsf(w[3] - 0.9f) < 1e-5f);
	g[2] = NAN;
	test_cond("NaN found in 'a'", ft_trainable_nonfinite(&ft_ops_cpu, &tr, false) == &tr.t[0]);
	g[2] = 0;
	g[3] = INFINITY;
	test_cond("infinity found in 'b'", ft_trainable_nonfinite(&ft_ops_cpu, &tr, false) == &tr.t[1]);
	test_cond("weights finite", ft_trainable_nonfinite(&ft_ops_cpu, &tr, true) == NULL);
	w[3] = -INFINITY;
	test_cond("weight check finds 'b'", ft_trainable_nonfinite(&ft_ops_cpu, &tr, true) == &tr.t[1]);
	ft_trainable_zero_grad(&ft_ops_cpu, &tr);
	test_cond("zero_grad", g[0] == 0 && g[3] == 0);
	ft_trainable_release(&tr);
}

static void test_recipe(void)
{
	struct ft_recipe r;
	struct ft_err err = { 0 };
	ft_recipe_init(&r);
	test_cond("defaults", r.method == FT_METHOD_LORA && r.lora_rank == 8 && r.lr == 2e-4 &&
				      r.lora_targets == (1u << FT_MOD_COUNT) - 1 && r.shuffle);
	static const char text[] =
		"# a recipe\n"
		"model = \"m\"   # comment\n"
		"train = 'x'\n";
	test_cond("comments, basic and literal strings",
		  ft_recipe_parse(&r, text, sizeof text - 1, "r.toml", &err) == 0 &&
			  strcmp(r.model, "m") == 0 && strcmp(r.train, "x") == 0);
	static const char good[] =
		"model = \"base dir\"\n\n"
		"method = \"full\"\r\n"
		"lora_targets = [\"q\", \"v_proj\"]\n"
		"train_modules = \"q,norm\"\n"
		"lr = 3e-5\n"
		"max-steps = 10\n"
		"shuffle = false\n"
		"lr_scheduler = \"linear\"\n"
		"export_dtype = \"f16\"\n";
	err = (struct ft_err){ 0 };
	test_cond("parse", ft_recipe_parse(&r, good, sizeof good - 1, "r.toml", &err) == 0);
	test_cond("values", strcmp(r.model, "base dir") == 0 && r.method == FT_METHOD_FULL &&
				    r.lora_targets == ((1u << FT_MOD_Q) | (1u << FT_MOD_V)) &&
				    r.train_modules == ((1u << FT_MOD_Q) | FT_TRAIN_NORMS) &&
				    r.lr == 3e-5 && r.max_steps == 10 && !r.shuffle &&
				    r.lr_scheduler == FT_SCHED_LINEAR && r.export_dtype == FT_DT_F16);
	/* the resolved text reads back to the same recipe */
	struct ft_buf b;
	ft_buf_init(&b, 1 << 20);
	test_cond("write", ft_recipe_write(&r, &b) == 0);
	struct ft_recipe r2;
	ft_recipe_init(&r2);
	test_cond("reparse", ft_recipe_parse(&r2, b.data, b.len, "w", &err) == 0);
	struct ft_buf b2;
	ft_buf_init(&b2, 1 << 20);
	ft_recipe_write(&r2, &b2);
	test_cond("round trip", b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0);
	ft_buf_release(&b);
	ft_buf_release(&b2);
	ft_recipe_release(&r2);

	static const struct {
		const char *text;
		long line;
		const char *msg;
	} bad[] = {
		{ "lr = 1\nbogus = 2\n", 2, "unknown key 'bogus'" },
		{ "lr 1\n", 1, "expected '='" },
		{ "lr = fast\n", 1, "not a number" },
		{ "lr = 1e400\n", 1, "not a number" },
		{ "lr = 11\n", 1, "outside" },
		{ "lora_rank = 2.5\n", 1, "not a whole number" },
		{ "shuffle = yes\n", 1, "not true or false" },
		{ "method = \"qlora\"\n", 1, "not lora or full" },
		{ "lora_targets = \"q,lm_head\"\n", 1, "unknown LoRA target" },
		{ "lora_targets = [\"q\"\n", 1, "unclosed array" },
		{ "model = \"a\" b\n", 1, "unexpected text" },
		{ "model = \"a\n", 1, "bad string" },
		{ "model =\n", 1, "missing value" },
		{ "\n\n= 3\n", 3, "expected 'key = value'" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err = (struct ft_err){ 0 };
		int rc = ft_recipe_parse(&r, bad[i].text, strlen(bad[i].text), "r.toml", &err);
		char descr[1300];
		snprintf(descr, sizeof descr, "bad recipe %zu: line %ld, '%s' (got line %ld: %s)", i,
			 bad[i].line, bad[i].msg, err.line, err.msg);
		test_cond(descr, rc != 0 && err.line == bad[i].line && strstr(err.msg, bad[i].msg) &&
					 err.file && strcmp(err.file, "r.toml") == 0);
	}
	ft_recipe_release(&r);
	ft_recipe_init(&r);
	test_cond("check: model required", ft_recipe_check(&r, &err) != 0 && strstr(err.msg, "model"));
	ft_recipe_release(&r);
	test_cond("key lookup with dashes", ft_recipe_key("grad-accum", 10) != NULL &&
						    ft_recipe_key("grad_accumx", 11) == NULL);
}

int main(void)
{
	test_schedules();
	test_clip_and_nonfinite();
	test_recipe();
	return test_report();
}
