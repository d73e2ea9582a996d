/* recipe.h: ft-train's configuration. A recipe file (recipes/NAME.toml) sets
 * keys, one "key = value" per line in a TOML subset (strings, numbers,
 * booleans, arrays of strings; '#' comments); every key is also a command
 * line option (--key=VALUE, '-' and '_' alike) that overrides the file.
 * The table of keys (ft_recipe_keys) is the single source of names, types,
 * defaults and help text: the parser, the resolved printout, --help and
 * docs/train.md all follow it. Errors: 0 or FT_E_* with err set (err->file
 * and err->line for a recipe file). */
#ifndef FT_RECIPE_H
#define FT_RECIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "ft.h"
#include "safetensors.h"

enum ft_method { FT_METHOD_FULL, FT_METHOD_LORA };
enum ft_sched { FT_SCHED_COSINE, FT_SCHED_LINEAR, FT_SCHED_CONSTANT };

/* Bits of train_modules beyond the seven projections (1 << FT_MOD_*). */
enum { FT_TRAIN_NORMS = 1u << 7 };

struct ft_recipe {
	/* data and model */
	char *model, *train, *val, *output;
	bool train_on_inputs;       /* every document token is a label, not only trained ones */
	/* method */
	enum ft_method method;
	int lora_rank;
	double lora_alpha, lora_dropout;
	unsigned lora_targets;      /* 1 << FT_MOD_* */
	bool use_rslora;
	int freeze_layers;          /* full: bottom N layers frozen */
	bool freeze_embeddings, freeze_lm_head;
	unsigned train_modules;     /* full: 1 << FT_MOD_* | FT_TRAIN_NORMS */
	/* optimisation */
	double lr, min_lr_ratio, weight_decay, adam_beta1, adam_beta2, adam_eps;
	double max_grad_norm;       /* 0: no clipping */
	enum ft_sched lr_scheduler;
	long warmup_steps;
	double warmup_ratio;
	int micro_batch, grad_accum, epochs;
	long max_steps;             /* 0: epochs decide */
	long seed;
	bool shuffle;
	/* evaluation, checkpoints, logging, export */
	long eval_every, eval_rows, save_every, log_every;
	int keep_last;
	bool save_best, merge;
	enum ft_dtype export_dtype;
	bool recompute;             /* activation recomputation, layer by layer */
	int threads;                /* 0: OpenMP's default */
	int zero_stage;             /* data parallel: 1 shards the AdamW moments (ZeRO-1) */
	int device;                 /* -1: the CPU; N: CUDA device N */
};

enum ft_recipe_type {
	FT_RK_PATH, FT_RK_INT, FT_RK_LONG, FT_RK_FLOAT, FT_RK_BOOL, FT_RK_METHOD,
	FT_RK_SCHED, FT_RK_LORA_TARGETS, FT_RK_TRAIN_MODULES, FT_RK_DTYPE, FT_RK_DEVICE
};

struct ft_recipe_key {
	const char *name;
	enum ft_recipe_type type;
	size_t offset;              /* into struct ft_recipe */
	const char *def;            /* default, as it would be written; NULL: unset */
	double min, max;            /* numbers */
	const char *help;
};

extern const struct ft_recipe_key ft_recipe_keys[];
extern const size_t ft_recipe_nkeys;

/* Every key at its default. */
void ft_recipe_init(struct ft_recipe *r);
void ft_recipe_release(struct ft_recipe *r);
/* Look a key up by name ('-' and '_' alike); NULL when unknown. */
const struct ft_recipe_key *ft_recipe_key(const char *name, size_t len);
/* "cpu" (-1), "cuda" (0) or "cuda:N" (N) into *device; FT_E_DATA otherwise. */
int ft_device_parse(const char *s, int *device);
/* Set one key from its text (unquoted). */
int ft_recipe_set(struct ft_recipe *r, const struct ft_recipe_key *k, const char *value,
		  struct ft_err *err);
/* Read a recipe file: each key it names is set, in order. */
int ft_recipe_load(struct ft_recipe *r, const char *path, struct ft_err *err);
/* Parse recipe text (path is for messages). */
int ft_recipe_parse(struct ft_recipe *r, const char *text, size_t len, const char *path,
		    struct ft_err *err);
/* The resolved recipe, every key, in the file format (a reloadable recipe). */
int ft_recipe_write(const struct ft_recipe *r, struct ft_buf *out);
/* One key's value as the file format writes it ("..." for strings). */
int ft_recipe_format(const struct ft_recipe *r, const struct ft_recipe_key *k,
		     struct ft_buf *out);
/* Checks across keys once everything is set (required paths, ranges that
 * depend on each other). */
int ft_recipe_check(const struct ft_recipe *r, struct ft_err *err);

#endif
