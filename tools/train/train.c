/* train.c: `ft-train train`, the training run: a recipe and its overrides
 * resolved, the model (and adapters) loaded, rows streamed from shards in
 * optimizer steps of micro_batch x grad_accum rows, the loss of each step
 * averaged over all its trained tokens, AdamW with clipping and a
 * schedule, evaluation, atomic checkpoints with exact resume, metrics,
 * a loss plot and the exports (PEFT adapter, merged or full model).
 *
 * Run directory (OUT):
 *   recipe.toml        the resolved recipe (every key)
 *   metrics.jsonl      one line per step, one per evaluation
 *   loss.svg           the loss curve, at the end
 *   checkpoints/step-NNNNNNNN/   trainer_state.json, optimizer.safetensors,
 *                      and adapter_* (lora) or config.json + model.safetensors
 *   adapter/           lora: the PEFT adapter
 *   merged/            lora with merge = true: base + adapters, HF format
 *   model/             full: the trained model, HF format */
#include "train.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "comm.h"
#include "cli.h"
#include "data.h"
#include "decoder.h"
#include "dirs.h"
#include "dist.h"
#include "json.h"
#include "lora.h"
#include "model.h"
#include "optim.h"
#include "out.h"
#include "plot.h"
#include "recipe.h"
#include "sha256.h"

#define STATE_FORMAT "ft-train-checkpoint"

/* files of a model directory that travel with exported weights */
static const char *const tokenizer_files[] = {
	"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
	"special_tokens_map.json", "generation_config.json", "chat_template.jinja",
};

struct curve {
	double *x, *y;
	size_t n, cap;
};

/* A stretch of the gradient block that trains: what the ranks all-reduce. */
struct span {
	size_t offset, n;
};

struct run {
	const struct ft_recipe *r;
	int rank, world;              /* this process among the data-parallel ranks */
	struct span *spans;           /* the trainable stretches of grads, merged */
	size_t nspans;
	/* ZeRO-1: the trainable tensors, one after the other, make a flat vector
	 * of tr.numel values; rank k keeps the AdamW moments of its contiguous
	 * part [zlo, zhi) alone (zm, zv), updates those weights and sends them
	 * to the others. mom, var and each tensor's m, v are then NULL. */
	bool zero;
	size_t *flat;                 /* tr.n + 1: where each tensor starts */
	size_t *zcounts, *zdispls;    /* world: each rank's part, for collectives */
	size_t zlo, zhi;
	float *zm, *zv;
	struct ft_model model;        /* host, fp32: loading, checkpoints, exports */
	struct ft_lora lora;
	bool use_lora;
	/* the backend: the CPU trains on the host blocks themselves; a GPU on
	 * fp32 master weights of what trains (master) and bf16 copies of
	 * everything the forward pass reads (xblock: the model, xlblock: the
	 * adapters), with the host blocks brought up to date before each
	 * checkpoint and export (to_host) */
	const struct ft_ops *ops;
	bool gpu;
	int device;                   /* the CUDA device this rank uses */
	float *master;
	void *xblock, *xlblock;
	struct ft_weights xw;
	struct ft_lora_weights xlw;
	/* in the backend's memory, in the trainable layout (model or lora) */
	float *grads, *mom, *var;
	struct ft_weights gw;         /* into grads, NULL where frozen (full) */
	struct ft_lora_weights lgw;
	struct ft_trainable tr;
	/* what checkpoints read and write, on the host: tr itself on the CPU, a
	 * mirror of it (host weights, hmom, hvar) with a GPU */
	struct ft_trainable htr, *io;
	float *hmom, *hvar;
	struct ft_data train, val;
	bool has_val;
	struct ft_decoder dec;
	struct ft_schedule sched;
	struct ft_adamw adamw;
	long rows_per_step, steps_per_epoch, total_steps;
	long step;                    /* steps done */
	double best_val;
	long best_step;
	unsigned long long tokens_seen;
	double elapsed;               /* seconds of training before this process */
	char *config_text;            /* the model's config.json, copied to exports */
	size_t config_len;
	FILE *metrics;                /* appended to, flushed per line */
	unsigned long long tokens_run;   /* tokens computed by this process */
	struct curve train_curve, val_curve;
	char ckdir[4096];
};

static volatile sig_atomic_t stop_requested;

/* The first Ctrl-C stops after the current step with a checkpoint; a
 * second one kills at once. */
static void on_signal(int sig)
{
	stop_requested = 1;
	signal(sig, SIG_DFL);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void curve_add(struct curve *c, double x, double y)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		double *nx = realloc(c->x, cap * sizeof *nx);
		if (nx)
			c->x = nx;
		double *ny = nx ? realloc(c->y, cap * sizeof *ny) : NULL;
		if (!nx || !ny)
			ft_die(FT_EXIT_DATA, "out of memory");
		c->y = ny;
		c->cap = cap;
	}
	c->x[c->n] = x;
	c->y[c->n++] = y;
}

static void die_err(const struct ft_err *err)
{
	ft_report(err, NULL);
	ft_out_abort_all();
	exit(FT_EXIT_DATA);
}

static void path_join(char *out, size_t size, const char *dir, const char *name)
{
	if (snprintf(out, size, "%s/%s", dir, name) >= (int)size)
		ft_die(FT_EXIT_DATA, "path too long: '%s/%s'", dir, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	struct ft_err err = { 0 };
	struct ft_out *o;
	if (ft_out_open(&o, path, &err))
		die_err(&err);
	ft_out_write(o, data, len);
	if (ft_out_commit(o, &err))
		die_err(&err);
}

static void copy_tokenizer_files(const char *from, const char *to)
{
	struct ft_buf b;
	ft_buf_init(&b, (size_t)1 << 31);
	for (size_t i = 0; i < sizeof tokenizer_files / sizeof *tokenizer_files; i++) {
		char src[4096], dst[4096];
		struct stat st;
		path_join(src, sizeof src, from, tokenizer_files[i]);
		if (stat(src, &st) != 0)
			continue;
		struct ft_err err = { 0 };
		ft_buf_reset(&b);
		if (ft_buf_read_file(&b, src, &err))
			die_err(&err);
		path_join(dst, sizeof dst, to, tokenizer_files[i]);
		write_file(dst, b.data ? b.data : "", b.len);
	}
	ft_buf_release(&b);
}

/* ---- what trains ---------------------------------------------------------- */

/* Set to NULL every pointer of w that points at p. */
static void freeze_ptr(struct ft_weights *w, int layers, const float *p)
{
	if (w->embed == p)
		w->embed = NULL;
	if (w->norm == p)
		w->norm = NULL;
	if (w->lm_head == p)
		w->lm_head = NULL;
	for (int l = 0; l < layers; l++) {
		struct ft_layer_weights *L = &w->layers[l];
		if (L->input_layernorm == p)
			L->input_layernorm = NULL;
		if (L->post_attention_layernorm == p)
			L->post_attention_layernorm = NULL;
		for (int m = 0; m < FT_MOD_COUNT; m++) {
			if (L->w[m] == p)
				L->w[m] = NULL;
			if (L->b[m] == p)
				L->b[m] = NULL;
		}
	}
}

/* Whether full fine-tuning trains parameter name under recipe r. */
static bool full_trains(const struct ft_recipe *r, const char *name)
{
	if (strcmp(name, "model.embed_tokens.weight") == 0)
		return !r->freeze_embeddings;
	if (strcmp(name, "lm_head.weight") == 0)
		return !r->freeze_lm_head;
	if (strcmp(name, "model.norm.weight") == 0)
		return r->train_modules & FT_TRAIN_NORMS;
	int layer, n = 0;
	if (sscanf(name, "model.layers.%d.%n", &layer, &n) != 1 || n == 0)
		return true;
	if (layer < r->freeze_layers)
		return false;
	const char *rest = name + n;
	if (strstr(rest, "layernorm"))
		return r->train_modules & FT_TRAIN_NORMS;
	for (int m = 0; m < FT_MOD_COUNT; m++) {
		size_t len = strlen(ft_module_paths[m]);
		if (strncmp(rest, ft_module_paths[m], len) == 0 && rest[len] == '.')
			return r->train_modules & (1u << m);
	}
	return true;
}

static float *backend_floats(const struct run *u, size_t n, const char *what)
{
	float *p = u->ops->alloc(n * sizeof(float));
	if (!p)
		ft_die(FT_EXIT_DATA, "out of %s memory for %s (%zu floats)", u->ops->name, what, n);
	return p;
}

/* The GPU's copies of the weights: fp32 masters of the trainable block,
 * bf16 copies of the model and the adapters (filled by to_device). */
static void setup_device_weights(struct run *u)
{
	size_t nm = u->model.nfloats, nl = u->use_lora ? u->lora.nfloats : 0;
	u->master = backend_floats(u, u->use_lora ? nl : nm, "master weights");
	u->xblock = u->ops->alloc(nm * u->ops->xsize);
	u->xlblock = nl ? u->ops->alloc(nl * u->ops->xsize) : NULL;
	if (!u->xblock || (nl && !u->xlblock))
		ft_die(FT_EXIT_DATA, "out of %s memory for the model's weights", u->ops->name);
	if (ft_model_point(&u->model, u->xblock, u->ops->xsize, &u->xw) ||
	    (nl && ft_lora_point(&u->lora, u->xlblock, u->ops->xsize, &u->xlw)))
		ft_die(FT_EXIT_DATA, "out of memory");
}

static void trainable_add(struct run *u, const struct ft_param *p, float *host)
{
	if (ft_trainable_add(&u->tr, p, u->gpu ? u->master : host, u->grads, u->mom, u->var) ||
	    (u->gpu && ft_trainable_add(&u->htr, p, host, NULL, u->hmom, u->hvar)))
		ft_die(FT_EXIT_DATA, "out of memory");
}

static void setup_trainable(struct run *u)
{
	const struct ft_recipe *r = u->r;
	size_t n = u->use_lora ? u->lora.nfloats : u->model.nfloats;
	if (u->gpu)
		setup_device_weights(u);
	u->grads = backend_floats(u, n, "gradients");
	if (!u->zero) {
		u->mom = backend_floats(u, n, "optimizer state");
		u->var = backend_floats(u, n, "optimizer state");
	}
	if (u->gpu) {
		u->hmom = calloc(n, sizeof(float));
		u->hvar = calloc(n, sizeof(float));
		if (!u->hmom || !u->hvar)
			ft_die(FT_EXIT_DATA, "out of memory for optimizer state (%zu floats)", 2 * n);
	}
	u->io = u->gpu ? &u->htr : &u->tr;
	if (u->use_lora) {
		if (ft_lora_point(&u->lora, u->grads, sizeof(float), &u->lgw))
			ft_die(FT_EXIT_DATA, "out of memory");
		for (size_t i = 0; i < u->lora.nparams; i++)
			trainable_add(u, &u->lora.params[i], u->lora.weights);
		if (u->gpu)
			ft_trainable_set_x(&u->tr, u->ops, u->xlblock);
		return;
	}
	if (ft_model_point(&u->model, u->grads, sizeof(float), &u->gw))
		ft_die(FT_EXIT_DATA, "out of memory");
	for (size_t i = 0; i < u->model.nparams; i++) {
		const struct ft_param *p = &u->model.params[i];
		if (!full_trains(r, p->name)) {
			freeze_ptr(&u->gw, u->model.cfg.num_layers, u->grads + p->offset);
			continue;
		}
		trainable_add(u, p, u->model.weights);
	}
	if (u->tr.n == 0)
		ft_die(FT_EXIT_DATA, "nothing to train: every weight is frozen");
	if (u->gpu)
		ft_trainable_set_x(&u->tr, u->ops, u->xblock);
}

/* Host weights and moments to the GPU: its masters, bf16 copies and moments. */
static void to_device(struct run *u)
{
	if (!u->gpu)
		return;
	const struct ft_ops *ops = u->ops;
	size_t nm = u->model.nfloats;
	if (u->use_lora) {
		size_t nl = u->lora.nfloats;
		ops->upload(u->master, u->lora.weights, nl * sizeof(float));
		ops->to_x(u->xlblock, u->master, nl);
		if (ft_x_upload(ops, u->xblock, u->model.weights, nm))
			ft_die(FT_EXIT_DATA, "out of %s memory for the model's weights", ops->name);
	} else {
		ops->upload(u->master, u->model.weights, nm * sizeof(float));
		ops->to_x(u->xblock, u->master, nm);
	}
	size_t n = u->use_lora ? u->lora.nfloats : nm;
	if (!u->zero) {   /* ZeRO-1's parts went up when they were read */
		ops->upload(u->mom, u->hmom, n * sizeof(float));
		ops->upload(u->var, u->hvar, n * sizeof(float));
	}
}

/* The GPU's trained weights and moments to the host blocks. */
static void to_host(struct run *u)
{
	if (!u->gpu)
		return;
	size_t n = u->use_lora ? u->lora.nfloats : u->model.nfloats;
	u->ops->download(u->use_lora ? u->lora.weights : u->model.weights, u->master,
			 n * sizeof(float));
	if (!u->zero) {   /* ZeRO-1's parts are gathered where they are written */
		u->ops->download(u->hmom, u->mom, n * sizeof(float));
		u->ops->download(u->hvar, u->var, n * sizeof(float));
	}
}

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return (x->offset > y->offset) - (x->offset < y->offset);
}

/* The trainable tensors' stretches of the gradient block, sorted and
 * merged where they touch: one all-reduce each. */
static void setup_spans(struct run *u)
{
	u->spans = calloc(u->tr.n, sizeof *u->spans);
	if (!u->spans)
		ft_die(FT_EXIT_DATA, "out of memory");
	for (size_t i = 0; i < u->tr.n; i++)
		u->spans[i] = (struct span){ (size_t)(u->tr.t[i].g - u->grads), u->tr.t[i].p->numel };
	qsort(u->spans, u->tr.n, sizeof *u->spans, cmp_span);
	size_t n = 0;
	for (size_t i = 0; i < u->tr.n; i++) {
		if (n && u->spans[n - 1].offset + u->spans[n - 1].n == u->spans[i].offset)
			u->spans[n - 1].n += u->spans[i].n;
		else
			u->spans[n++] = u->spans[i];
	}
	u->nspans = n;
}

/* The part of the flat vector rank k keeps under ZeRO-1: an even cut. */
static size_t zero_cut(const struct run *u, int k)
{
	return (size_t)((unsigned long long)u->tr.numel * (unsigned long long)k /
			(unsigned long long)u->world);
}

static void setup_zero(struct run *u)
{
	u->flat = calloc(u->tr.n + 1, sizeof *u->flat);
	u->zcounts = calloc((size_t)u->world, sizeof *u->zcounts);
	u->zdispls = calloc((size_t)u->world, sizeof *u->zdispls);
	if (!u->flat || !u->zcounts || !u->zdispls)
		ft_die(FT_EXIT_DATA, "out of memory");
	for (size_t i = 0; i < u->tr.n; i++)
		u->flat[i + 1] = u->flat[i] + u->tr.t[i].p->numel;
	for (int k = 0; k < u->world; k++) {
		u->zdispls[k] = zero_cut(u, k);
		u->zcounts[k] = zero_cut(u, k + 1) - zero_cut(u, k);
	}
	u->zlo = u->zdispls[u->rank];
	u->zhi = u->zlo + u->zcounts[u->rank];
	size_t n = u->zhi - u->zlo;
	if (u->gpu) {
		u->zm = backend_floats(u, n ? n : 1, "optimizer state");
		u->zv = backend_floats(u, n ? n : 1, "optimizer state");
		return;
	}
	u->zm = calloc(n ? n : 1, sizeof(float));
	u->zv = calloc(n ? n : 1, sizeof(float));
	if (!u->zm || !u->zv)
		ft_die(FT_EXIT_DATA, "out of memory for optimizer state (%zu floats)", 2 * n);
}

/* The overlap [*a, *b) of tensor i with rank k's part of the flat vector;
 * false when empty. */
static bool zero_overlap(const struct run *u, size_t i, int k, size_t *a, size_t *b)
{
	size_t lo = u->zdispls[k], hi = lo + u->zcounts[k];
	*a = u->flat[i] > lo ? u->flat[i] : lo;
	*b = u->flat[i + 1] < hi ? u->flat[i + 1] : hi;
	return *a < *b;
}

/* ZeRO-1's optimizer step: ft_adamw_step's arithmetic on this rank's part,
 * element for element, then every rank's updated weights to all. */
static void zero_step(struct run *u, double lr, double grad_norm)
{
	const struct ft_adamw *a = &u->adamw;
	bool clip = a->max_grad_norm > 0.0 && grad_norm > a->max_grad_norm;
	float c = clip ? (float)(a->max_grad_norm / (grad_norm + 1e-6)) : 1.0f;
	for (size_t i = 0; i < u->tr.n; i++) {
		const struct ft_tensor_ref *t = &u->tr.t[i];
		size_t lo, hi;
		if (!zero_overlap(u, i, u->rank, &lo, &hi))
			continue;
		size_t off = lo - u->flat[i], n = hi - lo;
		float *g = t->g + off;
		if (clip)
			u->dec.ops->scale(g, n, c);
		u->dec.ops->adamw(t->w + off, g, u->zm + (lo - u->zlo), u->zv + (lo - u->zlo), n,
				  (float)lr, (float)a->beta1, (float)a->beta2, (float)a->eps,
				  t->p->decay ? (float)a->weight_decay : 0.0f, (int)(u->step + 1), NULL);
	}
	/* then every rank's part to all: the fp32 masters, and from them (on a
	 * GPU) the storage copies the forward pass reads */
	size_t *counts = calloc((size_t)u->world, sizeof *counts);
	size_t *displs = calloc((size_t)u->world, sizeof *displs);
	if (!counts || !displs)
		ft_die(FT_EXIT_DATA, "out of memory");
	for (size_t i = 0; i < u->tr.n; i++) {
		for (int k = 0; k < u->world; k++) {
			size_t lo, hi;
			bool some = zero_overlap(u, i, k, &lo, &hi);
			counts[k] = some ? hi - lo : 0;
			displs[k] = some ? lo - u->flat[i] : 0;
		}
		ft_dist_allgather_float_queued(u->tr.t[i].w, counts, displs);
		if (u->tr.t[i].x)
			u->dec.ops->to_x(u->tr.t[i].x, u->tr.t[i].w, u->tr.t[i].p->numel);
	}
	ft_dist_wait();
	free(counts);
	free(displs);
}

/* ---- checkpoints ---------------------------------------------------------- */

/* Step of a checkpoint directory name "step-NNNNNNNN", or -1. */
static long checkpoint_step(const char *name)
{
	char *end;
	if (strncmp(name, "step-", 5) != 0)
		return -1;
	errno = 0;
	long s = strtol(name + 5, &end, 10);
	return *end || errno || s < 0 ? -1 : s;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* The steps of the checkpoints in dir, sorted; *n of them (caller frees). */
static long *list_checkpoints(const char *dir, size_t *n)
{
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	long *steps = NULL;
	size_t cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		long s = checkpoint_step(e->d_name);
		if (s < 0)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			long *p = realloc(steps, cap * sizeof *p);
			if (!p)
				ft_die(FT_EXIT_DATA, "out of memory");
			steps = p;
		}
		steps[(*n)++] = s;
	}
	closedir(d);
	if (*n)
		qsort(steps, *n, sizeof *steps, cmp_long);
	return steps;
}

static void checkpoint_name(char *out, size_t size, const char *ckdir, long step)
{
	if (snprintf(out, size, "%s/step-%08ld", ckdir, step) >= (int)size)
		ft_die(FT_EXIT_DATA, "path too long under '%s'", ckdir);
}

/* A fingerprint of the training rows: their count and every shard header. */
static void data_fingerprint(const struct ft_data *d, char out[17])
{
	uint64_t h = 1469598103934665603ull ^ d->n_rows;
	for (size_t i = 0; i < d->set.n; i++) {
		h ^= ft_shard_header_crc(d->set.shards[i]);
		h *= 1099511628211ull;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* Called on every rank; the lead rank alone writes (under ZeRO-1, after
 * gathering every rank's moments: the checkpoint is the same either way). */
static void save_checkpoint(struct run *u)
{
	const struct ft_recipe *r = u->r;
	float *all_m = NULL, *all_v = NULL;
	to_host(u);
	if (u->zero) {
		if (u->rank == 0) {
			all_m = malloc(u->io->numel * sizeof(float));
			all_v = malloc(u->io->numel * sizeof(float));
			if (!all_m || !all_v)
				ft_die(FT_EXIT_DATA, "out of memory gathering the optimizer state "
				       "(%zu floats)", 2 * u->io->numel);
		}
		ft_dist_gather_float(all_m, u->zm, u->zcounts, u->zdispls, 0);
		ft_dist_gather_float(all_v, u->zv, u->zcounts, u->zdispls, 0);
	}
	if (u->rank != 0)
		return;
	struct ft_err err = { 0 };
	char final[4096], tmp[4096], path[4096];
	/* the metrics so far reach the disk before the checkpoint that covers them */
	if (fsync(fileno(u->metrics)) != 0 && errno != EINVAL)
		ft_die(FT_EXIT_DATA, "cannot sync metrics: %s", strerror(errno));
	checkpoint_name(final, sizeof final, u->ckdir, u->step);
	if (ft_dir_tmp(final, tmp, sizeof tmp, &err))
		die_err(&err);
	if (u->use_lora) {
		if (ft_lora_save(&u->lora, tmp, r->model, &err))
			die_err(&err);
	} else {
		path_join(path, sizeof path, tmp, "model.safetensors");
		if (ft_model_save_weights(&u->model, path, FT_DT_F32, &err))
			die_err(&err);
		path_join(path, sizeof path, tmp, "config.json");
		write_file(path, u->config_text, u->config_len);
	}
	/* optimizer moments of the trainable tensors */
	struct ft_st_writer w;
	ft_st_writer_init(&w);
	for (size_t i = 0; i < u->io->n; i++) {
		const struct ft_tensor_ref *t = &u->io->t[i];
		char name[256];
		snprintf(name, sizeof name, "exp_avg.%s", t->p->name);
		const float *m = u->zero ? all_m + u->flat[i] : t->m;
		const float *v = u->zero ? all_v + u->flat[i] : t->v;
		if (ft_st_writer_add(&w, name, FT_DT_F32, t->p->shape, t->p->ndim, m, &err))
			die_err(&err);
		snprintf(name, sizeof name, "exp_avg_sq.%s", t->p->name);
		if (ft_st_writer_add(&w, name, FT_DT_F32, t->p->shape, t->p->ndim, v, &err))
			die_err(&err);
	}
	path_join(path, sizeof path, tmp, "optimizer.safetensors");
	if (ft_st_writer_commit(&w, path, &err))
		die_err(&err);
	ft_st_writer_release(&w);
	free(all_m);
	free(all_v);

	struct ft_buf s;
	ft_buf_init(&s, 1 << 20);
	char fp[17], num[32];
	data_fingerprint(&u->train, fp);
	ft_buf_printf(&s, "{\n  \"format\": \"%s\",\n  \"version\": 1,\n  \"step\": %ld,\n"
			  "  \"total_steps\": %ld,\n  \"dropout_step\": %llu,\n"
			  "  \"tokens_seen\": %llu,\n",
		      STATE_FORMAT, u->step, u->total_steps,
		      (unsigned long long)u->dec.dropout_step, u->tokens_seen);
	ft_fmt_jsonfloat(u->elapsed, num);
	ft_buf_printf(&s, "  \"elapsed_s\": %s,\n", num);
	if (u->best_step >= 0) {
		ft_fmt_jsonfloat(u->best_val, num);
		ft_buf_printf(&s, "  \"best_val_loss\": %s,\n  \"best_step\": %ld,\n", num,
			      u->best_step);
	}
	ft_buf_printf(&s, "  \"method\": \"%s\",\n  \"seed\": %ld,\n  \"world_size\": %d,\n"
			  "  \"rows_per_step\": %ld,\n"
			  "  \"train_rows\": %llu,\n  \"train_fingerprint\": \"%s\"\n}\n",
		      u->use_lora ? "lora" : "full", r->seed, u->world, u->rows_per_step,
		      (unsigned long long)u->train.n_rows, fp);
	path_join(path, sizeof path, tmp, "trainer_state.json");
	write_file(path, s.data, s.len);
	ft_buf_release(&s);
	if (ft_dir_commit(tmp, final, &err))
		die_err(&err);

	/* keep the last keep_last and the best */
	size_t n;
	long *steps = list_checkpoints(u->ckdir, &n);
	for (size_t i = 0; i + (size_t)r->keep_last < n; i++) {
		if (steps[i] == u->best_step)
			continue;
		checkpoint_name(path, sizeof path, u->ckdir, steps[i]);
		if (ft_dir_remove(path, &err))
			die_err(&err);
	}
	free(steps);
}

static const cJSON *state_field(const cJSON *root, const char *key, const char *path)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
	if (!v)
		ft_die(FT_EXIT_DATA, "'%s': no \"%s\"", path, key);
	return v;
}

static long state_long(const cJSON *root, const char *key, const char *path)
{
	const cJSON *v = state_field(root, key, path);
	if (!ft_json_is_int(v) || v->valuedouble < 0)
		ft_die(FT_EXIT_DATA, "'%s': \"%s\" is not a count", path, key);
	return (long)ft_json_int(v);
}

/* Read the checkpoint's trainer_state.json and check it fits this run. */
static cJSON *read_state(const struct run *u, const char *dir)
{
	char path[4096];
	path_join(path, sizeof path, dir, "trainer_state.json");
	struct ft_buf b;
	ft_buf_init(&b, 1 << 20);
	struct ft_err err = { 0 };
	if (ft_buf_read_file(&b, path, &err))
		die_err(&err);
	cJSON *root;
	if (ft_json_parse(b.data ? b.data : "", b.len, &root, &err))
		ft_die(FT_EXIT_DATA, "'%s': %s", path, err.msg);
	ft_buf_release(&b);
	const cJSON *f = state_field(root, "format", path);
	if (!cJSON_IsString(f) || strcmp(f->valuestring, STATE_FORMAT) != 0)
		ft_die(FT_EXIT_DATA, "'%s': not an ft-train checkpoint", path);
	const cJSON *m = state_field(root, "method", path);
	const char *method = u->use_lora ? "lora" : "full";
	if (!cJSON_IsString(m) || strcmp(m->valuestring, method) != 0)
		ft_die(FT_EXIT_DATA, "'%s': the checkpoint is of another method (this run: %s)", path,
		       method);
	/* each rank's rows, the dropout masks and the summation order depend on
	 * the rank count: only the same count continues the same run */
	const cJSON *ws = cJSON_GetObjectItemCaseSensitive(root, "world_size");
	long world = ws ? state_long(root, "world_size", path) : 1;
	if (world != u->world)
		ft_die(FT_EXIT_DATA, "'%s': the checkpoint was written by a run of %ld rank%s; this "
		       "run has %d (resume with the same count: mpirun -np %ld)", path, world,
		       world == 1 ? "" : "s", u->world, world);
	char fp[17];
	data_fingerprint(&u->train, fp);
	const cJSON *tf = state_field(root, "train_fingerprint", path);
	if (state_long(root, "rows_per_step", path) != u->rows_per_step ||
	    state_long(root, "seed", path) != u->r->seed || !cJSON_IsString(tf) ||
	    strcmp(tf->valuestring, fp) != 0)
		ft_die(FT_EXIT_DATA, "'%s': the checkpoint was trained on other rows (train data, "
		       "seed, micro_batch or grad_accum differ)", path);
	return root;
}

static void load_optimizer(struct run *u, const char *dir)
{
	char path[4096];
	path_join(path, sizeof path, dir, "optimizer.safetensors");
	struct ft_err err = { 0 };
	struct ft_st_file f;
	if (ft_st_open(&f, path, &err))
		die_err(&err);
	/* ZeRO-1: each tensor whole, then this rank's part of it */
	float *whole = NULL;
	if (u->zero) {
		size_t most = 1;
		for (size_t i = 0; i < u->io->n; i++)
			if (u->io->t[i].p->numel > most)
				most = u->io->t[i].p->numel;
		if (!(whole = malloc(most * sizeof *whole)))
			ft_die(FT_EXIT_DATA, "out of memory");
	}
	for (size_t i = 0; i < u->io->n; i++) {
		const struct ft_tensor_ref *t = &u->io->t[i];
		size_t lo = 0, hi = 0;
		if (u->zero && !zero_overlap(u, i, u->rank, &lo, &hi))
			continue;
		for (int k = 0; k < 2; k++) {
			char name[256];
			snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", t->p->name);
			const struct ft_st_tensor *st = ft_st_find(&f, name);
			if (!st)
				ft_die(FT_EXIT_DATA, "'%s': missing '%s' (did the trained modules "
				       "change?)", path, name);
			if (st->numel != t->p->numel)
				ft_die(FT_EXIT_DATA, "'%s': '%s' has the wrong shape", path, name);
			if (ft_st_to_f32(st, u->zero ? whole : k ? t->v : t->m, t->p->numel, &err))
				die_err(&err);
			if (u->zero)
				u->dec.ops->upload((k ? u->zv : u->zm) + (lo - u->zlo),
						   whole + (lo - u->flat[i]), (hi - lo) * sizeof *whole);
		}
	}
	free(whole);
	if (f.ntensors != 2 * u->io->n)
		ft_die(FT_EXIT_DATA, "'%s': %zu tensors, this run trains %zu", path, f.ntensors,
		       u->io->n);
	ft_st_close(&f);
}

/* Keep the metrics of steps up to the checkpoint's; reload the curves. */
static void trim_metrics(struct run *u, const char *path)
{
	struct ft_buf in, out;
	ft_buf_init(&in, (size_t)1 << 32);
	ft_buf_init(&out, (size_t)1 << 32);
	struct ft_err err = { 0 };
	if (ft_buf_read_file(&in, path, &err) && err.code != FT_E_IO)
		die_err(&err);
	const char *p = in.data, *end = in.data ? in.data + in.len : NULL;
	while (p && p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;   /* a line cut by the interruption */
		cJSON *j;
		if (ft_json_parse(p, (size_t)(eol - p), &j, NULL) == 0) {
			const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
			if (cJSON_IsNumber(s) && s->valuedouble <= u->step) {
				ft_buf_append(&out, p, (size_t)(eol - p + 1));
				const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "loss");
				const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "eval_loss");
				if (cJSON_IsNumber(l))
					curve_add(&u->train_curve, s->valuedouble, l->valuedouble);
				if (cJSON_IsNumber(e))
					curve_add(&u->val_curve, s->valuedouble, e->valuedouble);
			}
			cJSON_Delete(j);
		}
		p = eol + 1;
	}
	write_file(path, out.data ? out.data : "", out.len);
	ft_buf_release(&in);
	ft_buf_release(&out);
}

/* ---- steps and evaluation ------------------------------------------------- */

static void metrics_line(struct run *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metrics_line(struct run *u, const char *fmt, ...)
{
	struct ft_buf b;
	ft_buf_init(&b, 1 << 16);
	va_list ap;
	va_start(ap, fmt);
	ft_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	ft_buf_putc(&b, '\n');
	if (fwrite(b.data, 1, b.len, u->metrics) != b.len || fflush(u->metrics) != 0)
		ft_die(FT_EXIT_DATA, "cannot write metrics: %s", strerror(errno));
	ft_buf_release(&b);
}

static const char *fmt(double v, char buf[32])
{
	ft_fmt_jsonfloat(v, buf);
	return buf;
}

/* The rows of step s: count and first index into the epoch's order. */
static const uint64_t *step_rows(struct run *u, long s, long *n)
{
	long epoch = s / u->steps_per_epoch, i = s % u->steps_per_epoch;
	const uint64_t *order = ft_data_order(&u->train, epoch, u->r->shuffle, (uint64_t)u->r->seed);
	long first = i * u->rows_per_step, left = (long)u->train.n_rows - first;
	*n = left < u->rows_per_step ? left : u->rows_per_step;
	return order + first;
}

/* One optimizer step. Its rows are cut into micro-batches of micro_batch
 * rows; rank k of N runs micro-batches k*grad_accum .. (k+1)*grad_accum-1
 * (the last step of an epoch may leave a rank fewer, or none). The trained
 * labels of every rank are counted first and summed, so each label weighs
 * 1/(all trained labels of the step) whatever the rank count; then the
 * gradients are summed over the ranks and every rank applies the same
 * update. A micro-batch's dropout masks follow its index in the step, not
 * the rank that runs it. *stop says whether any rank was asked to stop. */
static void train_step(struct run *u, double *loss, double *gnorm, double *lr,
		       long *trained_out, unsigned long long *tokens, bool *stop)
{
	const struct ft_recipe *r = u->r;
	struct ft_err err = { 0 };
	struct ft_batch b;
	long n;
	const uint64_t *rows = step_rows(u, u->step, &n);
	long mb = r->micro_batch, n_micro = (n + mb - 1) / mb;
	long first = (long)u->rank * r->grad_accum, last = first + r->grad_accum;
	if (last > n_micro)
		last = n_micro;
	bool dropout = u->use_lora && u->lora.cfg.dropout > 0.0;
	uint64_t dropout0 = u->dec.dropout_step;
	long local[2] = { 0, stop_requested };   /* trained labels, stop asked */
	for (long j = first; j < last; j++) {
		long i = j * mb;
		int m = (int)(n - i < mb ? n - i : mb);
		if (ft_data_batch(&u->train, rows + i, m, &b, &err))
			die_err(&err);
		local[0] += ft_batch_trained(&b);
	}
	long mine = local[0];
	ft_dist_sum_long(local, 2);
	long trained = local[0];
	*stop = local[1] != 0;
	ft_trainable_zero_grad(u->dec.ops, &u->tr);
	float scale = 1.0f / (float)(trained > 0 ? trained : 1);
	double sums[2] = { 0.0, 0.0 };   /* loss, positions computed */
	long counted = 0;
	for (long j = first; j < last; j++) {
		long i = j * mb;
		int m = (int)(n - i < mb ? n - i : mb);
		if (ft_data_batch(&u->train, rows + i, m, &b, &err))
			die_err(&err);
		if (dropout)
			u->dec.dropout_step = dropout0 + (uint64_t)j;
		double ls;
		long c;
		if (ft_decoder_forward_backward(&u->dec, &b, scale, u->use_lora ? NULL : &u->gw,
						u->use_lora ? &u->lgw : NULL, &ls, &c, &err))
			ft_die(FT_EXIT_DATA, "step %ld: %s", u->step + 1, err.msg);
		sums[0] += ls;
		counted += c;
		sums[1] += (double)b.B * (double)b.T;
	}
	if (dropout)
		u->dec.dropout_step = dropout0 + (uint64_t)n_micro;
	if (counted != mine)
		ft_die(FT_EXIT_DATA, "step %ld: %ld trained tokens counted, %ld seen (bug)",
		       u->step + 1, mine, counted);
	for (size_t k = 0; k < u->nspans; k++)
		ft_dist_sum_float(u->grads + u->spans[k].offset, u->spans[k].n);
	ft_dist_sum_double(sums, 2);
	*tokens = (unsigned long long)sums[1];
	*loss = trained ? sums[0] / (double)trained : 0.0;
	*trained_out = trained;
	if (!isfinite(*loss))
		ft_die(FT_EXIT_DATA, "step %ld: the loss is %s; stopping (last checkpoint kept)",
		       u->step + 1, isnan(*loss) ? "NaN" : "infinite");
	const struct ft_tensor_ref *bad = ft_trainable_nonfinite(u->dec.ops, &u->tr, false);
	if (bad)
		ft_die(FT_EXIT_DATA, "step %ld: the gradient of '%s' is not finite; stopping (last "
		       "checkpoint kept)", u->step + 1, bad->p->name);
	*gnorm = ft_trainable_grad_norm(u->dec.ops, &u->tr);
	*lr = ft_lr_at(&u->sched, u->step);
	if (trained && u->zero)
		zero_step(u, *lr, *gnorm);
	else if (trained)
		ft_adamw_step(u->dec.ops, &u->tr, &u->adamw, *lr, u->step + 1, *gnorm);
	/* a weight can overflow to infinity in the update itself */
	if ((bad = ft_trainable_nonfinite(u->dec.ops, &u->tr, true)))
		ft_die(FT_EXIT_DATA, "step %ld: '%s' is not finite after the update; stopping "
		       "(last checkpoint kept)", u->step + 1, bad->p->name);
}

/* The validation loss over the first eval_rows rows: micro-batch j runs on
 * rank j mod N, and the sums meet on every rank. */
static void evaluate(struct run *u, double *loss, long *count)
{
	const struct ft_recipe *r = u->r;
	struct ft_err err = { 0 };
	uint64_t rows = u->val.n_rows;
	if (r->eval_rows > 0 && (uint64_t)r->eval_rows < rows)
		rows = (uint64_t)r->eval_rows;
	const uint64_t *order = ft_data_order(&u->val, 0, false, 0);
	double sum = 0.0;
	long total = 0;
	uint64_t stride = (uint64_t)r->micro_batch * (uint64_t)u->world;
	for (uint64_t i = (uint64_t)r->micro_batch * (uint64_t)u->rank; i < rows; i += stride) {
		int m = (int)(rows - i < (uint64_t)r->micro_batch ? rows - i : (uint64_t)r->micro_batch);
		struct ft_batch b;
		if (ft_data_batch(&u->val, order + i, m, &b, &err))
			die_err(&err);
		double ls;
		long c;
		if (ft_decoder_forward(&u->dec, &b, NULL, &ls, &c, &err))
			ft_die(FT_EXIT_DATA, "evaluation: %s", err.msg);
		sum += ls;
		total += c;
	}
	ft_dist_sum_double(&sum, 1);
	ft_dist_sum_long(&total, 1);
	*loss = total ? sum / (double)total : NAN;
	*count = total;
}

/* ---- exports -------------------------------------------------------------- */

static void export_model(struct run *u, const char *name)
{
	struct ft_err err = { 0 };
	char final[4096], tmp[4096], path[4096];
	path_join(final, sizeof final, u->r->output, name);
	if (ft_dir_tmp(final, tmp, sizeof tmp, &err))
		die_err(&err);
	path_join(path, sizeof path, tmp, "config.json");
	write_file(path, u->config_text, u->config_len);
	path_join(path, sizeof path, tmp, "model.safetensors");
	if (ft_model_save_weights(&u->model, path, u->r->export_dtype, &err))
		die_err(&err);
	copy_tokenizer_files(u->r->model, tmp);
	if (ft_dir_commit(tmp, final, &err))
		die_err(&err);
	fprintf(stderr, "ft-train: wrote %s\n", final);
}

static void export_all(struct run *u)
{
	struct ft_err err = { 0 };
	if (u->use_lora) {
		char final[4096], tmp[4096];
		path_join(final, sizeof final, u->r->output, "adapter");
		if (ft_dir_tmp(final, tmp, sizeof tmp, &err) ||
		    ft_lora_save(&u->lora, tmp, u->r->model, &err))
			die_err(&err);
		copy_tokenizer_files(u->r->model, tmp);
		if (ft_dir_commit(tmp, final, &err))
			die_err(&err);
		fprintf(stderr, "ft-train: wrote %s\n", final);
		if (u->r->merge) {
			ft_lora_merge(&u->lora, &u->model);
			export_model(u, "merged");
		}
	} else {
		export_model(u, "model");
	}
}

static void write_plot(struct run *u)
{
	struct ft_buf svg;
	ft_buf_init(&svg, (size_t)1 << 30);
	char title[512], path[4096];
	snprintf(title, sizeof title, "ft-train %s: %s", u->use_lora ? "lora" : "full",
		 u->r->output);
	struct ft_series tr = { u->train_curve.x, u->train_curve.y, u->train_curve.n };
	struct ft_series va = { u->val_curve.x, u->val_curve.y, u->val_curve.n };
	if (ft_plot_loss_svg(&svg, title, &tr, &va))
		ft_die(FT_EXIT_DATA, "out of memory");
	path_join(path, sizeof path, u->r->output, "loss.svg");
	write_file(path, svg.data, svg.len);
	ft_buf_release(&svg);
}

/* ---- the run -------------------------------------------------------------- */

static void check_tokenizer(const struct run *u)
{
	char path[4096];
	path_join(path, sizeof path, u->r->model, "tokenizer.model");
	uint8_t digest[32];
	struct ft_err err = { 0 };
	struct ft_buf b;
	ft_buf_init(&b, (size_t)1 << 30);
	if (access(path, R_OK) != 0 || ft_buf_read_file(&b, path, &err) != 0) {
		ft_buf_release(&b);
		return;
	}
	ft_sha256(b.data ? b.data : "", b.len, digest);
	ft_buf_release(&b);
	if (memcmp(digest, u->train.set.shards[0]->h.tokenizer, 32) != 0)
		ft_warn("warning: '%s' is not the tokenizer the shards were made with", path);
}

/* Every rank must run the same recipe on the same rows: compare a hash of
 * the resolved recipe and the data with the lead rank's. */
static void check_same_run(const struct run *u)
{
	struct ft_buf text;
	ft_buf_init(&text, 1 << 20);
	char fp[17];
	data_fingerprint(&u->train, fp);
	if (ft_recipe_write(u->r, &text) || ft_buf_printf(&text, "%s\n", fp))
		ft_die(FT_EXIT_DATA, "out of memory");
	uint8_t mine[32], lead[32];
	ft_sha256(text.data, text.len, mine);
	ft_buf_release(&text);
	memcpy(lead, mine, sizeof lead);
	ft_dist_bcast(lead, sizeof lead, 0);
	if (memcmp(lead, mine, sizeof mine) != 0)
		ft_die(FT_EXIT_DATA, "this rank's recipe or training data differ from rank 0's "
		       "(every rank must run the same command on the same files)");
}

/* Find the checkpoint to resume from: DIR as given, or the latest in OUT. */
static bool resume_dir(const char *resume, const char *ckdir, char *out, size_t size)
{
	if (!resume)
		return false;
	if (*resume && strcmp(resume, "latest") != 0) {
		snprintf(out, size, "%s", resume);
		return true;
	}
	size_t n;
	long *steps = list_checkpoints(ckdir, &n);
	if (!n) {
		free(steps);
		ft_warn("no checkpoint in '%s': starting from the beginning", ckdir);
		return false;
	}
	checkpoint_name(out, size, ckdir, steps[n - 1]);
	free(steps);
	return true;
}

int ft_train_run(const struct ft_recipe *r, const char *resume)
{
	struct run run = { .r = r, .best_step = -1, .best_val = INFINITY };
	struct run *u = &run;
	struct ft_err err = { 0 };
	ft_dist_init(r->device);
	u->rank = ft_dist_rank();
	u->world = ft_dist_size();
	bool lead = u->rank == 0;   /* the rank that writes: metrics, checkpoints, exports */
	static char progname[64];
	if (u->world > 1) {
		snprintf(progname, sizeof progname, "%s (rank %d)", ft_progname, u->rank);
		ft_progname = progname;
	}
	if (ft_recipe_check(r, &err))
		ft_usage_error("%s", err.msg);
	if (r->threads)
		omp_set_num_threads(r->threads);
	/* OpenBLAS keeps its own pool: the same count, so threads = 1 means one */
	openblas_set_num_threads(omp_get_max_threads());
	u->ops = &ft_ops_cpu;
	u->device = r->device;
	if (r->device >= 0) {
		/* a machine's ranks take the devices from r->device on, one each
		 * (modulo the devices it sees: a launcher may show each rank one) */
		int count = ft_cuda_device_count();
		if (u->world > 1 && count > 0)
			u->device = (r->device + ft_dist_local_rank()) % count;
		if (!(u->ops = ft_ops_cuda_open(u->device, &err)))
			die_err(&err);
		u->gpu = true;
		ft_dist_use_nccl();
	}
	path_join(u->ckdir, sizeof u->ckdir, r->output, "checkpoints");
	char ckpt[4096] = "";
	bool resuming = false;
	if (lead) {
		if (ft_dir_make(r->output, &err) || ft_dir_make(u->ckdir, &err))
			die_err(&err);
		resuming = resume_dir(resume, u->ckdir, ckpt, sizeof ckpt);
	}
	/* every rank resumes from the checkpoint the lead chose (a shared file
	 * system holds the run directory) */
	ft_dist_bcast(&resuming, sizeof resuming, 0);
	ft_dist_bcast(ckpt, sizeof ckpt, 0);
	u->use_lora = r->method == FT_METHOD_LORA;
	/* with NCCL even for one rank, so that a one-GPU job runs its code */
	u->zero = (u->world > 1 || ft_dist_nccl()) && r->zero_stage == 1;

	/* the model: the base, or for full fine-tuning the checkpoint's weights */
	struct ft_buf cfg;
	ft_buf_init(&cfg, 1 << 24);
	char path[4096];
	path_join(path, sizeof path, r->model, "config.json");
	if (ft_buf_read_file(&cfg, path, &err))
		die_err(&err);
	u->config_text = ft_buf_detach(&cfg, &u->config_len);
	if (ft_model_load(&u->model, resuming && !u->use_lora ? ckpt : r->model, &err))
		die_err(&err);
	if (u->model.cfg.warning[0])
		ft_warn("warning: %s", u->model.cfg.warning);
	if (u->use_lora) {
		struct ft_lora_config lc = { .rank = r->lora_rank, .alpha = r->lora_alpha,
					     .rslora = r->use_rslora, .targets = r->lora_targets,
					     .dropout = r->lora_dropout, .seed = (uint64_t)r->seed };
		if (ft_lora_init(&u->lora, &u->model.cfg, &lc, &err))
			die_err(&err);
		ft_lora_init_random(&u->lora, (uint64_t)r->seed);
		if (resuming) {
			struct ft_lora saved;
			if (ft_lora_load(&saved, &u->model.cfg, ckpt, &err))
				die_err(&err);
			if (saved.cfg.rank != lc.rank || saved.cfg.targets != lc.targets ||
			    saved.scaling != u->lora.scaling)
				ft_die(FT_EXIT_DATA, "'%s': the checkpoint's adapters differ from this "
				       "recipe's (rank, targets or scaling)", ckpt);
			memcpy(u->lora.weights, saved.weights, u->lora.nfloats * sizeof(float));
			ft_lora_release(&saved);
		}
	}
	setup_trainable(u);
	setup_spans(u);
	if (u->zero)
		setup_zero(u);

	/* data */
	if (ft_data_open(&u->train, r->train, r->micro_batch, u->model.cfg.vocab_size, &err))
		die_err(&err);
	u->train.all_tokens = r->train_on_inputs;
	uint32_t T = u->train.seq_len;
	u->has_val = r->val && *r->val;
	if (u->has_val) {
		if (ft_data_open(&u->val, r->val, r->micro_batch, u->model.cfg.vocab_size, &err))
			die_err(&err);
		u->val.all_tokens = r->train_on_inputs;
		if (memcmp(u->val.set.shards[0]->h.tokenizer, u->train.set.shards[0]->h.tokenizer,
			   32) != 0)
			ft_die(FT_EXIT_DATA, "'%s' and '%s' were made with different tokenizers",
			       r->train, r->val);
		if (u->val.seq_len > T)
			T = u->val.seq_len;
	}
	check_tokenizer(u);
	if (u->world > 1)
		check_same_run(u);
	if (ft_decoder_init(&u->dec, u->ops, &u->model, u->use_lora ? &u->lora : NULL,
			    r->micro_batch, (int)T, r->recompute, &err))
		die_err(&err);
	if (u->gpu) {
		u->dec.xw = &u->xw;
		u->dec.xlw = u->use_lora ? &u->xlw : NULL;
	}

	u->rows_per_step = (long)r->micro_batch * r->grad_accum * u->world;
	u->steps_per_epoch = (long)((u->train.n_rows + (uint64_t)u->rows_per_step - 1) /
				    (uint64_t)u->rows_per_step);
	u->total_steps = r->max_steps ? r->max_steps : (long)r->epochs * u->steps_per_epoch;
	u->sched = (struct ft_schedule){
		.lr = r->lr, .min_lr_ratio = r->min_lr_ratio, .type = r->lr_scheduler,
		.warmup = r->warmup_steps ? r->warmup_steps
					  : (long)ceil(r->warmup_ratio * (double)u->total_steps),
		.total = u->total_steps,
	};
	u->adamw = (struct ft_adamw){ r->adam_beta1, r->adam_beta2, r->adam_eps, r->weight_decay,
				      r->max_grad_norm };

	if (resuming) {
		cJSON *st = read_state(u, ckpt);
		u->step = state_long(st, "step", ckpt);
		u->dec.dropout_step = (uint64_t)state_long(st, "dropout_step", ckpt);
		u->tokens_seen = (unsigned long long)state_long(st, "tokens_seen", ckpt);
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(st, "elapsed_s");
		u->elapsed = cJSON_IsNumber(e) ? e->valuedouble : 0.0;
		const cJSON *bv = cJSON_GetObjectItemCaseSensitive(st, "best_val_loss");
		if (cJSON_IsNumber(bv)) {
			u->best_val = bv->valuedouble;
			u->best_step = state_long(st, "best_step", ckpt);
		}
		cJSON_Delete(st);
		load_optimizer(u, ckpt);
		if (u->step > u->total_steps)
			ft_die(FT_EXIT_DATA, "'%s' is at step %ld, past this run's %ld steps", ckpt,
			       u->step, u->total_steps);
	}

	/* the resolved recipe, where the run stands, and the metrics file: the
	 * lead rank's alone */
	if (lead) {
		struct ft_buf text;
		ft_buf_init(&text, 1 << 20);
		if (ft_recipe_write(r, &text))
			ft_die(FT_EXIT_DATA, "out of memory");
		path_join(path, sizeof path, r->output, "recipe.toml");
		write_file(path, text.data, text.len);
		fputs(text.data, stderr);
		ft_buf_release(&text);
		size_t total_params = u->model.nfloats + (u->use_lora ? u->lora.nfloats : 0);
		fprintf(stderr,
			"ft-train: %s, %d layers, hidden %d, vocab %d; trainable %zu of %zu parameters "
			"(%.4f%%)\n",
			u->use_lora ? "lora" : "full", u->model.cfg.num_layers, u->model.cfg.hidden_size,
			u->model.cfg.vocab_size, u->tr.numel, total_params,
			100.0 * (double)u->tr.numel / (double)total_params);
		const struct ft_shard_set *set = &u->train.set;
		fprintf(stderr,
			"ft-train: %llu rows of %u tokens (%llu trained%s), %ld rows per step, %ld steps "
			"per epoch, %ld steps, warmup %ld\n",
			(unsigned long long)u->train.n_rows, u->train.seq_len,
			(unsigned long long)(r->train_on_inputs
						     ? set->n_rows * u->train.seq_len - set->n_pad
						     : set->n_trained),
			r->train_on_inputs ? ": train_on_inputs" : "", u->rows_per_step,
			u->steps_per_epoch, u->total_steps, u->sched.warmup);
		if (u->gpu) {
			size_t nt = u->use_lora ? u->lora.nfloats : u->model.nfloats;
			double wx = (double)(u->model.nfloats + (u->use_lora ? u->lora.nfloats : 0)) *
				    (double)u->ops->xsize;
			double moments = 8.0 * (double)(u->zero ? u->zhi - u->zlo : nt);
			fprintf(stderr, "ft-train: cuda:%d: weights in bf16 %.1f MiB; fp32 master "
				"weights, gradients and AdamW moments %.1f MiB%s\n", u->device,
				wx / 1048576.0, (8.0 * (double)nt + moments) / 1048576.0,
				ft_dist_nccl() ? "; ranks over NCCL" : "");
		}
		if (u->world > 1)
			fprintf(stderr, "ft-train: %d ranks, each %d x %d rows per step\n", u->world,
				r->micro_batch, r->grad_accum);
		if (u->zero)
			fprintf(stderr, "ft-train: ZeRO-1: each rank keeps the AdamW moments of %zu of "
				"%zu parameters: %.1f MiB instead of %.1f MiB\n", u->zhi - u->zlo,
				u->tr.numel, 8.0 * (double)(u->zhi - u->zlo) / 1048576.0,
				8.0 * (double)u->tr.numel / 1048576.0);
		if (resuming)
			fprintf(stderr, "ft-train: resuming from %s at step %ld\n", ckpt, u->step);

		path_join(path, sizeof path, r->output, "metrics.jsonl");
		if (resuming)
			trim_metrics(u, path);
		else
			write_file(path, "", 0);
		/* appended to in place, a line per step: ft_out would replace it */
		if (!(u->metrics = fopen(path, "a")))
			ft_die(FT_EXIT_DATA, "cannot open '%s': %s", path, strerror(errno));
	}

	to_device(u);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	double t0 = now(), elapsed0 = u->elapsed;
	long first_step = u->step;
	int status = FT_EXIT_OK;
	while (u->step < u->total_steps) {
		double loss, gnorm, lr;
		long trained;
		unsigned long long tokens;
		bool stop;
		train_step(u, &loss, &gnorm, &lr, &trained, &tokens, &stop);
		u->step++;
		u->tokens_seen += tokens;
		u->tokens_run += tokens;
		double t = now() - t0;
		u->elapsed = elapsed0 + t;
		double tok_s = t > 0 ? (double)u->tokens_run / t : 0.0;
		double epoch = (double)u->step / (double)u->steps_per_epoch;
		char b1[32], b2[32], b3[32], b4[32], b5[32];
		if (lead)
			metrics_line(u, "{\"step\": %ld, \"epoch\": %s, \"loss\": %s, \"lr\": %s, "
			     "\"grad_norm\": %s, \"trained_tokens\": %ld, \"tokens\": %llu, "
			     "\"tok_s\": %.1f, \"elapsed_s\": %s}",
			     u->step, fmt(epoch, b1), fmt(loss, b2), fmt(lr, b3), fmt(gnorm, b4),
			     trained, tokens, tok_s, fmt(u->elapsed, b5));
		if (lead)
			curve_add(&u->train_curve, (double)u->step, loss);
		if (lead && (u->step % r->log_every == 0 || u->step == u->total_steps)) {
			char eta[32];
			double per = t / (double)(u->step - first_step);
			ft_fmt_duration(per * (double)(u->total_steps - u->step), eta, sizeof eta);
			fprintf(stderr,
				"step %ld/%ld | epoch %.2f | loss %.4f | lr %.3g | grad norm %.3f | "
				"%.0f tok/s | ETA %s\n",
				u->step, u->total_steps, epoch, loss, lr, gnorm, tok_s, eta);
		}
		bool last = u->step == u->total_steps;
		bool save = (r->save_every && u->step % r->save_every == 0) || last;
		if (u->has_val && ((r->eval_every && u->step % r->eval_every == 0) || last)) {
			double vl;
			long vc;
			evaluate(u, &vl, &vc);
			if (!isfinite(vl))
				ft_die(FT_EXIT_DATA, "evaluation at step %ld: the loss is %s%s", u->step,
				       isnan(vl) ? "NaN" : "infinite",
				       vc ? "" : " (no trained tokens in the validation rows)");
			bool best = vl < u->best_val;
			if (best) {
				u->best_val = vl;
				u->best_step = u->step;
				save |= r->save_best;
			}
			if (lead) {
				metrics_line(u, "{\"step\": %ld, \"eval_loss\": %s, \"eval_ppl\": %s, "
					     "\"eval_tokens\": %ld}",
					     u->step, fmt(vl, b1), fmt(exp(vl), b2), vc);
				curve_add(&u->val_curve, (double)u->step, vl);
				fprintf(stderr, "eval step %ld | loss %.4f | ppl %.3f%s\n", u->step, vl,
					exp(vl), best ? " | best" : "");
			}
		}
		if (save || stop)
			save_checkpoint(u);
		if (stop) {
			if (lead)
				fprintf(stderr, "ft-train: interrupted at step %ld; checkpoint written, "
					"--resume continues\n", u->step);
			status = 130;
			break;
		}
	}
	if (lead && first_step == u->total_steps)
		fprintf(stderr, "ft-train: the checkpoint is at the last step already\n");
	if (lead && fclose(u->metrics) != 0)
		ft_die(FT_EXIT_DATA, "cannot write metrics: %s", strerror(errno));
	if (lead && status == FT_EXIT_OK) {
		write_plot(u);
		to_host(u);
		export_all(u);
		if (u->best_step >= 0)
			fprintf(stderr, "ft-train: best validation loss %.4f at step %ld\n",
				u->best_val, u->best_step);
	}

	ft_decoder_release(&u->dec);
	ft_data_release(&u->train);
	if (u->has_val)
		ft_data_release(&u->val);
	ft_trainable_release(&u->tr);
	ft_trainable_release(&u->htr);
	ft_weights_release(&u->gw);
	ft_lora_weights_release(&u->lgw);
	ft_weights_release(&u->xw);
	ft_lora_weights_release(&u->xlw);
	if (u->use_lora)
		ft_lora_release(&u->lora);
	ft_model_release(&u->model);
	u->ops->release(u->grads);
	u->ops->release(u->mom);
	u->ops->release(u->var);
	u->ops->release(u->master);
	u->ops->release(u->xblock);
	u->ops->release(u->xlblock);
	free(u->hmom);
	free(u->hvar);
	free(u->spans);
	free(u->flat);
	free(u->zcounts);
	free(u->zdispls);
	if (u->gpu) {
		u->ops->release(u->zm);
		u->ops->release(u->zv);
	} else {
		free(u->zm);
		free(u->zv);
	}
	free(u->config_text);
	free(u->train_curve.x);
	free(u->train_curve.y);
	free(u->val_curve.x);
	free(u->val_curve.y);
	/* the job ends together: no rank leaves while the lead still writes */
	ft_dist_barrier();
	ft_dist_finalize();
	return status;
}
