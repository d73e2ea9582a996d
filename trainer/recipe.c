/* recipe.c: ft-train's keys, the recipe file parser and the resolved
 * printout (contract in recipe.h). The file format is the TOML subset a
 * flat configuration needs: basic "..." and literal '...' strings, bare
 * numbers and booleans, arrays of strings on one line, comments. */
#include "recipe.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lora.h"
#include "model.h"

#define OFF(field) offsetof(struct ft_recipe, field)
#define BIG 1e15

const struct ft_recipe_key ft_recipe_keys[] = {
	{ "model", FT_RK_PATH, OFF(model), NULL, 0, 0,
	  "Hugging Face model directory to start from (config.json, safetensors)" },
	{ "train", FT_RK_PATH, OFF(train), NULL, 0, 0,
	  "training shard or shard index from ft-tokenize" },
	{ "val", FT_RK_PATH, OFF(val), "", 0, 0,
	  "validation shard or index (empty: no evaluation)" },
	{ "train_on_inputs", FT_RK_BOOL, OFF(train_on_inputs), "false", 0, 0,
	  "train on every token of a document, not only those the shard marks trained "
	  "(continued pretraining)" },
	{ "output", FT_RK_PATH, OFF(output), NULL, 0, 0,
	  "run directory: metrics, checkpoints, exports" },
	{ "method", FT_RK_METHOD, OFF(method), "lora", 0, 0, "lora or full" },
	{ "lora_rank", FT_RK_INT, OFF(lora_rank), "8", 1, 4096, "LoRA rank r" },
	{ "lora_alpha", FT_RK_FLOAT, OFF(lora_alpha), "16", 1e-9, 1e9,
	  "LoRA alpha: the update is scaled by alpha/r (alpha/sqrt(r) with use_rslora)" },
	{ "lora_dropout", FT_RK_FLOAT, OFF(lora_dropout), "0.05", 0, 0.99,
	  "dropout on the adapters' input while training" },
	{ "lora_targets", FT_RK_LORA_TARGETS, OFF(lora_targets), "all", 0, 0,
	  "projections given adapters: q,k,v,o,gate,up,down or all" },
	{ "use_rslora", FT_RK_BOOL, OFF(use_rslora), "false", 0, 0,
	  "rank-stabilised LoRA scaling alpha/sqrt(r)" },
	{ "freeze_layers", FT_RK_INT, OFF(freeze_layers), "0", 0, 1 << 20,
	  "full: leave the bottom N layers frozen" },
	{ "freeze_embeddings", FT_RK_BOOL, OFF(freeze_embeddings), "false", 0, 0,
	  "full: leave the token embeddings frozen (and a tied LM head)" },
	{ "freeze_lm_head", FT_RK_BOOL, OFF(freeze_lm_head), "false", 0, 0,
	  "full: leave an untied LM head frozen" },
	{ "train_modules", FT_RK_TRAIN_MODULES, OFF(train_modules), "all", 0, 0,
	  "full: what trains in unfrozen layers: q,k,v,o,gate,up,down,norm or all" },
	{ "lr", FT_RK_FLOAT, OFF(lr), "2e-4", 0, 10, "peak learning rate" },
	{ "lr_scheduler", FT_RK_SCHED, OFF(lr_scheduler), "cosine", 0, 0,
	  "cosine, linear or constant, after the warmup" },
	{ "warmup_steps", FT_RK_LONG, OFF(warmup_steps), "0", 0, BIG,
	  "steps of linear warmup (0: warmup_ratio decides)" },
	{ "warmup_ratio", FT_RK_FLOAT, OFF(warmup_ratio), "0", 0, 1,
	  "warmup as a fraction of all steps" },
	{ "min_lr_ratio", FT_RK_FLOAT, OFF(min_lr_ratio), "0", 0, 1,
	  "the schedule decays to lr * min_lr_ratio" },
	{ "weight_decay", FT_RK_FLOAT, OFF(weight_decay), "0", 0, 10,
	  "AdamW decoupled weight decay (never on norms and biases)" },
	{ "adam_beta1", FT_RK_FLOAT, OFF(adam_beta1), "0.9", 0, 0.999999, "AdamW beta1" },
	{ "adam_beta2", FT_RK_FLOAT, OFF(adam_beta2), "0.999", 0, 0.999999, "AdamW beta2" },
	{ "adam_eps", FT_RK_FLOAT, OFF(adam_eps), "1e-8", 0, 1, "AdamW epsilon" },
	{ "max_grad_norm", FT_RK_FLOAT, OFF(max_grad_norm), "1", 0, 1e9,
	  "clip the global gradient norm to this (0: no clipping)" },
	{ "micro_batch", FT_RK_INT, OFF(micro_batch), "1", 1, 1 << 16,
	  "rows per forward/backward pass" },
	{ "grad_accum", FT_RK_INT, OFF(grad_accum), "1", 1, 1 << 16,
	  "micro-batches per optimizer step" },
	{ "epochs", FT_RK_INT, OFF(epochs), "1", 1, 1 << 20, "passes over the training rows" },
	{ "max_steps", FT_RK_LONG, OFF(max_steps), "0", 0, BIG,
	  "optimizer steps to run (0: epochs decide; otherwise it wins)" },
	{ "seed", FT_RK_LONG, OFF(seed), "42", 0, 9007199254740991.0,
	  "seed of the LoRA init, row order and dropout" },
	{ "shuffle", FT_RK_BOOL, OFF(shuffle), "true", 0, 0,
	  "visit rows in a new seeded order each epoch" },
	{ "eval_every", FT_RK_LONG, OFF(eval_every), "0", 0, BIG,
	  "evaluate on val every N steps (0: at the end only)" },
	{ "eval_rows", FT_RK_LONG, OFF(eval_rows), "0", 0, BIG,
	  "evaluate on the first N val rows (0: all)" },
	{ "save_every", FT_RK_LONG, OFF(save_every), "0", 0, BIG,
	  "write a checkpoint every N steps (0: at the end only)" },
	{ "keep_last", FT_RK_INT, OFF(keep_last), "2", 1, 1 << 20,
	  "checkpoints kept (the best one is kept besides)" },
	{ "save_best", FT_RK_BOOL, OFF(save_best), "true", 0, 0,
	  "checkpoint each new best validation loss" },
	{ "log_every", FT_RK_LONG, OFF(log_every), "1", 1, BIG,
	  "print progress every N steps" },
	{ "merge", FT_RK_BOOL, OFF(merge), "false", 0, 0,
	  "lora: also export the model with the adapters merged in" },
	{ "export_dtype", FT_RK_DTYPE, OFF(export_dtype), "bf16", 0, 0,
	  "dtype of exported model weights: f32, bf16, f16" },
	{ "recompute", FT_RK_BOOL, OFF(recompute), "false", 0, 0,
	  "keep only each layer's input and recompute the rest in the backward pass (less memory, one more forward)" },
	{ "threads", FT_RK_INT, OFF(threads), "0", 0, 4096,
	  "CPU threads (0: OpenMP's default)" },
	{ "device", FT_RK_DEVICE, OFF(device), "cpu", 0, 0,
	  "where to train: cpu, cuda (GPU 0) or cuda:N" },
	{ "zero_stage", FT_RK_INT, OFF(zero_stage), "1", 0, 1,
	  "ranks: 1 shards the AdamW moments (ZeRO-1), 0 keeps them whole on each" },
};
const size_t ft_recipe_nkeys = sizeof ft_recipe_keys / sizeof ft_recipe_keys[0];

static const char *const method_names[] = { "full", "lora" };
static const char *const sched_names[] = { "cosine", "linear", "constant" };

static void *field(struct ft_recipe *r, const struct ft_recipe_key *k)
{
	return (char *)r + k->offset;
}

static const void *cfield(const struct ft_recipe *r, const struct ft_recipe_key *k)
{
	return (const char *)r + k->offset;
}

void ft_recipe_init(struct ft_recipe *r)
{
	memset(r, 0, sizeof *r);
	for (size_t i = 0; i < ft_recipe_nkeys; i++)
		if (ft_recipe_keys[i].def &&
		    ft_recipe_set(r, &ft_recipe_keys[i], ft_recipe_keys[i].def, NULL))
			abort();   /* a default that does not parse is a bug in the table */
}

void ft_recipe_release(struct ft_recipe *r)
{
	for (size_t i = 0; i < ft_recipe_nkeys; i++)
		if (ft_recipe_keys[i].type == FT_RK_PATH) {
			char **p = field(r, &ft_recipe_keys[i]);
			free(*p);
			*p = NULL;
		}
}

const struct ft_recipe_key *ft_recipe_key(const char *name, size_t len)
{
	for (size_t i = 0; i < ft_recipe_nkeys; i++) {
		const char *k = ft_recipe_keys[i].name;
		if (strlen(k) != len)
			continue;
		size_t j = 0;
		while (j < len && (name[j] == k[j] || (name[j] == '-' && k[j] == '_')))
			j++;
		if (j == len)
			return &ft_recipe_keys[i];
	}
	return NULL;
}

static int pick(const char *value, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(value, names[i]) == 0)
			return i;
	return -1;
}

static int parse_number(const struct ft_recipe_key *k, const char *s, double *out,
			struct ft_err *err)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno == ERANGE || !isfinite(v))
		return ft_err_set(err, FT_E_DATA, "%s: '%s' is not a number", k->name, s);
	if (v < k->min || v > k->max)
		return ft_err_set(err, FT_E_DATA, "%s: %s is outside [%g, %g]", k->name, s, k->min,
				  k->max);
	if (k->type != FT_RK_FLOAT && v != floor(v))
		return ft_err_set(err, FT_E_DATA, "%s: '%s' is not a whole number", k->name, s);
	*out = v;
	return FT_OK;
}

/* "q,k,v,o,gate,up,down,norm" or "all" for train_modules */
static int parse_train_modules(const char *s, unsigned *out, struct ft_err *err)
{
	if (strcmp(s, "all") == 0) {
		*out = ((1u << FT_MOD_COUNT) - 1) | FT_TRAIN_NORMS;
		return FT_OK;
	}
	char *copy = strdup(s);
	if (!copy)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	unsigned set = 0;
	int rc = FT_OK;
	struct ft_buf rest;
	ft_buf_init(&rest, 1 << 16);
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (strcmp(tok, "norm") == 0 || strcmp(tok, "norms") == 0)
			set |= FT_TRAIN_NORMS;
		else if (ft_buf_printf(&rest, "%s%s", rest.len ? "," : "", tok))
			rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	unsigned mods = 0;
	if (!rc && rest.len)
		rc = ft_lora_parse_targets(rest.data, &mods, err);
	if (!rc && !(set | mods))
		rc = ft_err_set(err, FT_E_DATA, "empty module list");
	*out = set | mods;
	ft_buf_release(&rest);
	free(copy);
	return rc;
}

int ft_device_parse(const char *s, int *device)
{
	char *end;
	long n = 0;
	if (strcmp(s, "cpu") == 0)
		n = -1;
	else if (strncmp(s, "cuda", 4) != 0 ||
		 (s[4] && (s[4] != ':' || !isdigit((unsigned char)s[5]) ||
			   (n = strtol(s + 5, &end, 10)) > 1023 || *end)))
		return FT_E_DATA;
	*device = (int)n;
	return FT_OK;
}

int ft_recipe_set(struct ft_recipe *r, const struct ft_recipe_key *k, const char *value,
		  struct ft_err *err)
{
	double v;
	int i, rc;
	switch (k->type) {
	case FT_RK_PATH: {
		char *copy = strdup(value);
		if (!copy)
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
		char **p = field(r, k);
		free(*p);
		*p = copy;
		return FT_OK;
	}
	case FT_RK_INT:
		if ((rc = parse_number(k, value, &v, err)))
			return rc;
		*(int *)field(r, k) = (int)v;
		return FT_OK;
	case FT_RK_LONG:
		if ((rc = parse_number(k, value, &v, err)))
			return rc;
		*(long *)field(r, k) = (long)v;
		return FT_OK;
	case FT_RK_FLOAT:
		if ((rc = parse_number(k, value, &v, err)))
			return rc;
		*(double *)field(r, k) = v;
		return FT_OK;
	case FT_RK_BOOL:
		if (strcmp(value, "true") == 0)
			*(bool *)field(r, k) = true;
		else if (strcmp(value, "false") == 0)
			*(bool *)field(r, k) = false;
		else
			return ft_err_set(err, FT_E_DATA, "%s: '%s' is not true or false", k->name,
					  value);
		return FT_OK;
	case FT_RK_METHOD:
		if ((i = pick(value, method_names, 2)) < 0)
			return ft_err_set(err, FT_E_DATA, "method: '%s' is not lora or full", value);
		*(enum ft_method *)field(r, k) = (enum ft_method)i;
		return FT_OK;
	case FT_RK_SCHED:
		if ((i = pick(value, sched_names, 3)) < 0)
			return ft_err_set(err, FT_E_DATA,
					  "lr_scheduler: '%s' is not cosine, linear or constant",
					  value);
		*(enum ft_sched *)field(r, k) = (enum ft_sched)i;
		return FT_OK;
	case FT_RK_LORA_TARGETS:
	case FT_RK_TRAIN_MODULES: {
		struct ft_err e = { 0 };
		rc = k->type == FT_RK_LORA_TARGETS ? ft_lora_parse_targets(value, field(r, k), &e)
						   : parse_train_modules(value, field(r, k), &e);
		return rc ? ft_err_set(err, rc, "%s: %s", k->name, e.msg) : FT_OK;
	}
	case FT_RK_DTYPE:
		if (strcmp(value, "f32") == 0 || strcmp(value, "fp32") == 0)
			*(enum ft_dtype *)field(r, k) = FT_DT_F32;
		else if (strcmp(value, "bf16") == 0)
			*(enum ft_dtype *)field(r, k) = FT_DT_BF16;
		else if (strcmp(value, "f16") == 0 || strcmp(value, "fp16") == 0)
			*(enum ft_dtype *)field(r, k) = FT_DT_F16;
		else
			return ft_err_set(err, FT_E_DATA, "%s: '%s' is not f32, bf16 or f16",
					  k->name, value);
		return FT_OK;
	case FT_RK_DEVICE:
		if (ft_device_parse(value, field(r, k)))
			return ft_err_set(err, FT_E_DATA, "%s: '%s' is not cpu, cuda or cuda:N",
					  k->name, value);
		return FT_OK;
	}
	return ft_err_set(err, FT_E_INVAL, "%s: unknown key type", k->name);
}

/* ---- the file format ---------------------------------------------------- */

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* A basic TOML string at p (after the opening quote): escapes \" \\ \n \t. */
static int parse_string(const char **pp, const char *end, struct ft_buf *out)
{
	const char *p = *pp;
	while (p < end && *p != '"') {
		char c = *p++;
		if (c == '\\') {
			if (p >= end)
				return -1;
			c = *p++;
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c == '"' || c == '\\' ? c : 0;
			if (!c)
				return -1;
		} else if ((unsigned char)c < 0x20) {
			return -1;
		}
		if (ft_buf_putc(out, c))
			return -1;
	}
	if (p >= end)
		return -1;
	*pp = p + 1;
	return 0;
}

int ft_recipe_parse(struct ft_recipe *r, const char *text, size_t len, const char *path,
		    struct ft_err *err)
{
	const char *p = text, *end = text + len;
	struct ft_buf val;
	ft_buf_init(&val, 1 << 16);
	int rc = FT_OK;
	long line = 0;
	while (!rc && p < end) {
		line++;
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		const char *q = skip_space(p, eol);
		const char *next = eol < end ? eol + 1 : end;
		if (q == eol || *q == '#' || (*q == '\r' && q + 1 == eol)) {
			p = next;
			continue;
		}
		const char *key = q;
		while (q < eol && (isalnum((unsigned char)*q) || *q == '_' || *q == '-'))
			q++;
		const struct ft_recipe_key *k = ft_recipe_key(key, (size_t)(q - key));
		if (q == key) {
			rc = ft_err_set(err, FT_E_PARSE, "expected 'key = value'");
			break;
		}
		if (!k) {
			rc = ft_err_set(err, FT_E_DATA, "unknown key '%.*s'", (int)(q - key), key);
			break;
		}
		q = skip_space(q, eol);
		if (q == eol || *q != '=') {
			rc = ft_err_set(err, FT_E_PARSE, "expected '=' after '%s'", k->name);
			break;
		}
		q = skip_space(q + 1, eol);
		ft_buf_reset(&val);
		if (q < eol && *q == '"') {
			q++;
			if (parse_string(&q, eol, &val)) {
				rc = ft_err_set(err, FT_E_PARSE, "bad string for '%s'", k->name);
				break;
			}
		} else if (q < eol && *q == '\'') {
			/* a TOML literal string: no escapes */
			const char *close = memchr(q + 1, '\'', (size_t)(eol - q - 1));
			if (!close || ft_buf_append(&val, q + 1, (size_t)(close - q - 1))) {
				rc = ft_err_set(err, FT_E_PARSE, "bad string for '%s'", k->name);
				break;
			}
			q = close + 1;
		} else if (q < eol && *q == '[') {
			/* an array of strings, joined with commas */
			q = skip_space(q + 1, eol);
			while (!rc && q < eol && *q != ']') {
				if (*q != '"' || (q++, val.len && ft_buf_putc(&val, ',')) ||
				    parse_string(&q, eol, &val)) {
					rc = ft_err_set(err, FT_E_PARSE, "bad array for '%s'", k->name);
					break;
				}
				q = skip_space(q, eol);
				if (q < eol && *q == ',')
					q = skip_space(q + 1, eol);
			}
			if (!rc && (q >= eol || *q != ']'))
				rc = ft_err_set(err, FT_E_PARSE, "unclosed array for '%s'", k->name);
			if (rc)
				break;
			q++;
		} else {
			const char *v = q;
			while (q < eol && *q != '#' && *q != ' ' && *q != '\t' && *q != '\r')
				q++;
			if (q == v) {
				rc = ft_err_set(err, FT_E_PARSE, "missing value for '%s'", k->name);
				break;
			}
			if (ft_buf_append(&val, v, (size_t)(q - v))) {
				rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
				break;
			}
		}
		q = skip_space(q, eol);
		if (q < eol && *q != '#' && !(*q == '\r' && q + 1 == eol)) {
			rc = ft_err_set(err, FT_E_PARSE, "unexpected text after the value of '%s'",
					k->name);
			break;
		}
		rc = ft_recipe_set(r, k, val.data ? val.data : "", err);
		p = next;
	}
	ft_buf_release(&val);
	if (rc && err) {
		err->line = line;
		err->file = path;
	}
	return rc;
}

int ft_recipe_load(struct ft_recipe *r, const char *path, struct ft_err *err)
{
	struct ft_buf text;
	ft_buf_init(&text, 1 << 20);
	int rc = ft_buf_read_file(&text, path, err);
	if (!rc)
		rc = ft_recipe_parse(r, text.data ? text.data : "", text.len, path, err);
	ft_buf_release(&text);
	return rc;
}

static int format_list(struct ft_buf *out, unsigned bits, bool norms)
{
	if (bits == (((1u << FT_MOD_COUNT) - 1) | (norms ? FT_TRAIN_NORMS : 0)))
		return ft_buf_puts(out, "\"all\"");
	int rc = ft_buf_putc(out, '[');
	bool first = true;
	for (int m = 0; m < FT_MOD_COUNT; m++)
		if (bits & (1u << m)) {
			size_t n = strlen(ft_module_names[m]) - 5;   /* without _proj */
			rc |= ft_buf_printf(out, "%s\"%.*s\"", first ? "" : ", ", (int)n,
					    ft_module_names[m]);
			first = false;
		}
	if (norms && (bits & FT_TRAIN_NORMS))
		rc |= ft_buf_printf(out, "%s\"norm\"", first ? "" : ", ");
	return rc | ft_buf_putc(out, ']');
}

int ft_recipe_format(const struct ft_recipe *r, const struct ft_recipe_key *k,
		     struct ft_buf *out)
{
	const void *f = cfield(r, k);
	char num[32];
	switch (k->type) {
	case FT_RK_PATH: {
		const char *s = *(char *const *)f;
		return ft_json_write_string(out, s ? s : "", s ? strlen(s) : 0);
	}
	case FT_RK_INT:
		return ft_buf_printf(out, "%d", *(const int *)f);
	case FT_RK_LONG:
		return ft_buf_printf(out, "%ld", *(const long *)f);
	case FT_RK_FLOAT:
		ft_fmt_jsonfloat(*(const double *)f, num);
		return ft_buf_puts(out, num);
	case FT_RK_BOOL:
		return ft_buf_puts(out, *(const bool *)f ? "true" : "false");
	case FT_RK_METHOD:
		return ft_buf_printf(out, "\"%s\"", method_names[*(const enum ft_method *)f]);
	case FT_RK_SCHED:
		return ft_buf_printf(out, "\"%s\"", sched_names[*(const enum ft_sched *)f]);
	case FT_RK_LORA_TARGETS:
		return format_list(out, *(const unsigned *)f, false);
	case FT_RK_TRAIN_MODULES:
		return format_list(out, *(const unsigned *)f, true);
	case FT_RK_DTYPE: {
		enum ft_dtype d = *(const enum ft_dtype *)f;
		return ft_buf_puts(out, d == FT_DT_F32 ? "\"f32\"" : d == FT_DT_BF16 ? "\"bf16\"" :
								       "\"f16\"");
	}
	case FT_RK_DEVICE: {
		int d = *(const int *)f;
		return d < 0 ? ft_buf_puts(out, "\"cpu\"") : ft_buf_printf(out, "\"cuda:%d\"", d);
	}
	}
	return -1;
}

int ft_recipe_write(const struct ft_recipe *r, struct ft_buf *out)
{
	int rc = 0;
	for (size_t i = 0; i < ft_recipe_nkeys; i++) {
		rc |= ft_buf_printf(out, "%s = ", ft_recipe_keys[i].name);
		rc |= ft_recipe_format(r, &ft_recipe_keys[i], out);
		rc |= ft_buf_putc(out, '\n');
	}
	return rc ? FT_E_NOMEM : FT_OK;
}

int ft_recipe_check(const struct ft_recipe *r, struct ft_err *err)
{
	if (!r->model || !*r->model)
		return ft_err_set(err, FT_E_DATA, "no model (set 'model' or --model)");
	if (!r->train || !*r->train)
		return ft_err_set(err, FT_E_DATA, "no training data (set 'train' or --train)");
	if (!r->output || !*r->output)
		return ft_err_set(err, FT_E_DATA, "no output directory (set 'output' or -o)");
	if (r->method == FT_METHOD_LORA && !r->lora_targets)
		return ft_err_set(err, FT_E_DATA, "lora_targets is empty");
	if (r->lr_scheduler != FT_SCHED_CONSTANT && r->min_lr_ratio > 1)
		return ft_err_set(err, FT_E_DATA, "min_lr_ratio above 1");
	return FT_OK;
}
