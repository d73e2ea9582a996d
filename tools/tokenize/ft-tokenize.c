/* ft-tokenize: samples (ft-template's JSON Lines) to token shards.
 *
 * Each sample's text is split at special tokens, which only template text
 * may spell (a CONTROL or USER_DEFINED piece of the model); every run of
 * text between them is encoded as a whole, as the model's own tokenizer
 * encodes it, and each token is trained when any byte it covers is
 * trained. Workers encode batches in parallel (lib/pool.h); everything
 * after that (length policy, packing, shard writing) runs in input order on
 * the main thread, so the output is the same for any -j.
 *
 * Packing is first-fit-decreasing over a window of documents: the window's
 * documents, longest first, each go into the first row with room. Rows that
 * are not nearly full hand their documents back to the next window (a few
 * times at most), so memory is bounded by the window, not the input. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "cli.h"
#include "json.h"
#include "jsonl.h"
#include "lines.h"
#include "out.h"
#include "pool.h"
#include "sample.h"
#include "sha256.h"
#include "shard.h"
#include "spm.h"
#include "tokenize.h"

#define BATCH_LINES 256
#define BATCH_BYTES ((size_t)4 << 20)
#define MAX_SEQ_LEN (1L << 24)
#define MAX_CARRY 4          /* windows a document may be handed back to */
#define HIST_MAX 32          /* length histogram: powers of two up to 2^31 */

static const char usage_text[] =
"Usage: ft-tokenize -m MODEL -L LEN -o OUT [OPTION]... [FILE]...\n"
"Tokenize samples from ft-template with a SentencePiece model into token\n"
"shards with loss masks and document boundaries (docs/shard-format.md).\n"
"With no FILE, or when FILE is -, read standard input; .gz is read\n"
"transparently. Special tokens come only from template text.\n"
"\n"
"  -m, --model=FILE        SentencePiece tokenizer model (tokenizer.model)\n"
"  -L, --seq-len=N         tokens per row\n"
"  -c, --config=FILE       the model's tokenizer_config.json: its 'legacy',\n"
"                          'add_bos_token' and added special tokens apply\n"
"  -o, --output=OUT        the shard to write; with --shard-tokens, the index\n"
"                          (shards beside it: OUT without .json + -NNNNN.bin)\n"
"      --pack              several samples per row, first-fit-decreasing\n"
"                          (default)\n"
"      --pad               one sample per row, the rest padding\n"
"      --pack-window=N     samples considered together when packing\n"
"                          (default 2048)\n"
"      --truncate=SIDE     cut over-long samples: right keeps the start\n"
"                          (default), left keeps the end (and the BOS)\n"
"      --drop              drop over-long samples instead\n"
"      --split-long        split over-long samples into several documents\n"
"                          (--pack only)\n"
"      --bos=add|keep      add: every sample starts with one BOS (default);\n"
"                          keep: only what the template rendered\n"
"      --eos=add|keep      add: append EOS unless the sample ends with it,\n"
"                          trained when the text before it is; keep: only\n"
"                          what the template rendered (default)\n"
"      --dummy-prefix=each|first\n"
"                          each: every run of text between special tokens\n"
"                          starts with the model's dummy prefix, as\n"
"                          SentencePiece encodes it (default; Hugging Face\n"
"                          legacy=true); first: only at the sample's start\n"
"                          (Hugging Face legacy=false)\n"
"      --eot=PIECE         an end-of-turn piece: trained when it follows\n"
"                          trained text (EOS always is); repeatable\n"
"      --pad-id=N          id of padding (default: the model's pad, else\n"
"                          EOS, else 0)\n"
"      --shard-tokens=N    start a new shard every N tokens (K/M/G suffix)\n"
"      --stats=FILE        statistics as JSON\n"
"      --report=FILE       every truncated, split or dropped sample, as\n"
"                          JSON Lines\n"
"  -j, --jobs=N            encoding threads (default: CPUs, at most 8);\n"
"                          the output does not depend on N\n"
"      --skip-bad          skip bad records with a warning, count them, go on\n"
"      --max-line=SIZE     longest accepted line, K/M/G suffix (default 1G)\n"
"      --progress          show progress even if stderr is not a terminal\n"
"  -q, --quiet             no summary on stderr\n"
"  -h, --help              show this help and exit\n"
"      --version           show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input or write error, 2 usage error.\n";

enum length_policy { TRUNC_RIGHT, TRUNC_LEFT, DROP_LONG, SPLIT_LONG };

struct opts {
	const char *model_path, *config_path, *output, *stats_path, *report_path;
	uint32_t seq_len;
	bool pad;
	long window;
	enum length_policy policy;
	bool policy_set;
	bool add_bos, add_eos;
	bool bos_set, prefix_set;
	bool prefix_first;   /* the dummy prefix only at the start of a sample */
	const char **eot;
	int neot;
	long pad_id;
	bool pad_id_set;
	unsigned long long shard_tokens;
	int jobs;
	bool skip_bad, quiet, progress;
	size_t max_line;
};

/* ---- the tokenizer (lib/tokenize.h) ------------------------------------ */

static cJSON *read_config(const char *path)
{
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_buf b;
	ft_buf_init(&b, (size_t)64 << 20);
	if (ft_buf_read_file(&b, path, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	cJSON *c = NULL;
	if (ft_json_parse(b.data ? b.data : "", b.len, &c, &err) || !cJSON_IsObject(c))
		ft_die(FT_EXIT_DATA, "%s: not a JSON object%s%s", path, err.msg[0] ? ": " : "", err.msg);
	ft_buf_release(&b);
	return c;
}

/* tokenizer_config.json: "legacy" and "add_bos_token" set defaults the
 * command line did not. */
static void config_defaults(struct opts *o)
{
	if (!o->config_path)
		return;
	cJSON *c = read_config(o->config_path);
	const cJSON *legacy = cJSON_GetObjectItemCaseSensitive(c, "legacy");
	if (!o->prefix_set && cJSON_IsBool(legacy))
		o->prefix_first = cJSON_IsFalse(legacy);
	const cJSON *bos = cJSON_GetObjectItemCaseSensitive(c, "add_bos_token");
	if (!o->bos_set && cJSON_IsBool(bos))
		o->add_bos = cJSON_IsTrue(bos);
	cJSON_Delete(c);
}

static void vocab_load(struct ft_vocab *v, const struct opts *o)
{
	struct ft_err err;
	ft_err_clear(&err);
	cJSON *config = o->config_path ? read_config(o->config_path) : NULL;
	struct ft_buf warnings;
	ft_buf_init(&warnings, 0);
	int rc = ft_vocab_load(v, o->model_path, config, o->config_path, o->prefix_first,
			       &warnings, &err);
	cJSON_Delete(config);
	for (const char *p = warnings.data, *e; p && (e = strchr(p, '\n')); p = e + 1)
		ft_warn("%.*s", (int)(e - p), p);
	ft_buf_release(&warnings);
	if (rc)
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	for (int i = 0; i < o->neot; i++)
		if (ft_vocab_add_eot(v, o->eot[i]))
			ft_usage_error("--eot '%s' is not a piece of %s", o->eot[i], o->model_path);
}

/* ---- batches: lines in, tokenized samples out ------------------------- */

enum res_status { SAMPLE_OK, SAMPLE_BAD, SAMPLE_EMPTY };

struct result {
	enum res_status status;
	size_t tok;          /* first token in the batch's ids/mask */
	uint32_t ntok;
	uint32_t straddle, specials, eot_trained, plain_user;
	size_t id_off, id_len;  /* the sample's id in the batch's ids_text */
	struct ft_err err;      /* for SAMPLE_BAD */
	char prefix[200];
};

struct batch {
	struct ft_lines in;
	struct result *res;
	int32_t *ids;
	uint8_t *mask;
	size_t ntok, captok;
	struct ft_buf ids_text;
};

struct worker {
	struct ft_buf text;
	struct ft_segments segs;
	uint8_t *trained;    /* per byte of text */
	size_t cap_trained;
	struct ft_spm_tokens toks;
	struct ft_arena arena;
};

struct ctx {
	const struct opts *o;
	const struct ft_vocab *v;
	struct worker *workers;
};

static void batch_tokens_reserve(struct batch *b, size_t extra)
{
	if (b->ntok + extra <= b->captok)
		return;
	size_t cap = b->captok ? b->captok : 1 << 16;
	while (cap < b->ntok + extra)
		cap *= 2;
	b->ids = ft_xrealloc(b->ids, cap * sizeof *b->ids);
	b->mask = ft_xrealloc(b->mask, cap);
	b->captok = cap;
}

static void process_record(struct worker *w, const struct ctx *c, struct batch *b,
			   const struct ft_line *en, struct result *r)
{
	const struct ft_vocab *v = c->v;
	const struct opts *o = c->o;
	cJSON *rec = NULL;
	struct ft_err *err = &r->err;
	r->status = SAMPLE_BAD;
	if (ft_jsonl_parse(b->in.text.data + en->off, en->len, 0, en->col_offset, &rec, err) < 0)
		return;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
	r->id_off = b->ids_text.len;
	if (cJSON_IsString(id))
		ft_buf_puts(&b->ids_text, id->valuestring);
	else if (cJSON_IsNumber(id))
		ft_json_write(&b->ids_text, id);
	else
		ft_buf_printf(&b->ids_text, "%llu", en->recno);
	r->id_len = b->ids_text.len - r->id_off;
	if (cJSON_IsString(id) || cJSON_IsNumber(id))
		snprintf(r->prefix, sizeof r->prefix, "record '%.150s': ", b->ids_text.data + r->id_off);
	int rc = ft_sample_read(rec, &w->text, &w->segs, err);
	cJSON_Delete(rec);
	if (rc)
		return;
	size_t len = w->text.len;
	if (len > w->cap_trained) {
		w->cap_trained = len;
		w->trained = ft_xrealloc(w->trained, len);
	}
	for (size_t i = 0; i < w->segs.n; i++)
		memset(w->trained + w->segs.v[i].off, w->segs.v[i].train, w->segs.v[i].len);
	struct ft_encode_stats est;
	int erc = ft_vocab_encode(v, w->text.data, w->text.len, &w->segs, &w->toks, &est, err);
	r->specials += est.specials;
	r->plain_user += est.plain_user;
	if (erc)
		return;

	size_t n = w->toks.n;
	bool bos = o->add_bos && v->bos >= 0 && (n == 0 || w->toks.ids[0] != v->bos);
	bool eos = o->add_eos && v->eos >= 0 && (n == 0 || w->toks.ids[n - 1] != v->eos);
	size_t total = n + bos + eos;
	if (total == 0) {
		r->status = SAMPLE_EMPTY;
		return;
	}
	if (total > UINT32_MAX) {
		ft_err_set(err, FT_E_TOOBIG, "more than %u tokens", UINT32_MAX);
		return;
	}
	batch_tokens_reserve(b, total);
	int32_t *ids = b->ids + b->ntok;
	uint8_t *mask = b->mask + b->ntok;
	size_t k = 0;
	if (bos) {
		ids[k] = v->bos;
		mask[k++] = 0;
	}
	for (size_t i = 0; i < n; i++, k++) {
		uint32_t lo = w->toks.begin[i], hi = w->toks.end[i];
		ids[k] = w->toks.ids[i];
		if (lo == hi) {
			/* a byte-fallback piece before its character's last byte, or a
			 * piece (the dummy prefix) that covers no input byte */
			if (hi < len)
				hi = lo + 1;
			else if (lo > 0)
				lo = hi - 1;
		}
		bool any = false, all = true;
		for (uint32_t p = lo; p < hi; p++) {
			any |= w->trained[p];
			all &= w->trained[p];
		}
		mask[k] = any;
		if (any && !all)
			r->straddle++;
		/* the end of a turn after trained text is trained: the model must
		 * learn to stop. Control and user-defined ids are specials from
		 * template text here: plain runs never produce them. */
		int t = ids[k];
		enum ft_spm_type ty = ft_spm_type(v->spm, t);
		if (!any && k > 0 && mask[k - 1] && v->ends_turn[t] &&
		    (ty == FT_SPM_CONTROL || ty == FT_SPM_USER_DEFINED)) {
			mask[k] = 1;
			r->eot_trained++;
		}
	}
	if (eos) {
		ids[k] = v->eos;
		mask[k] = k > 0 && mask[k - 1];
		k++;
	}
	r->tok = b->ntok;
	r->ntok = (uint32_t)k;
	b->ntok += k;
	r->status = SAMPLE_OK;
}

static void work(void *batch, int wi, void *arg)
{
	struct batch *b = batch;
	const struct ctx *c = arg;
	struct worker *w = &c->workers[wi];
	b->ntok = 0;
	ft_buf_reset(&b->ids_text);
	b->res = ft_xrealloc(b->res, (size_t)(b->in.n ? b->in.n : 1) * sizeof *b->res);
	ft_json_use_arena(&w->arena);
	for (int i = 0; i < b->in.n; i++) {
		struct result *r = &b->res[i];
		memset(r, 0, sizeof *r);
		const struct ft_line *en = &b->in.e[i];
		if (en->err >= 0) {
			r->status = SAMPLE_BAD;
			r->err = b->in.errs[en->err];
		} else {
			process_record(w, c, b, en, r);
		}
		if (r->status == SAMPLE_BAD) {
			r->err.file = en->file;
			r->err.line = en->lineno;
		}
		ft_arena_reset(&w->arena);
	}
	ft_json_use_arena(NULL);
}

/* ---- documents, packing and rows -------------------------------------- */

struct doc {
	unsigned long long sample;
	uint32_t len, flags;
	int carried;
	int32_t *ids;
	uint8_t *mask;
};

struct hist {
	unsigned long long n[HIST_MAX];
};

struct stats {
	unsigned long long records, samples, skipped, empty;
	unsigned long long docs, rows, shards;
	unsigned long long tokens_in, trained_in;    /* samples as tokenized */
	unsigned long long real, trained, pad;       /* what the shards hold */
	unsigned long long truncated, split, split_docs, tokens_cut;
	unsigned long long drop_long, drop_untrained, drop_cut;
	unsigned long long straddle, specials, eot_trained, plain_user;
	struct hist len_hist;
};

struct writer {
	const struct opts *o;
	const struct ft_vocab *v;
	struct ft_shard_meta meta;
	struct ft_shard_writer *cur;
	char *cur_path;
	char **paths;        /* committed shards (for the index and for cleanup) */
	size_t npaths;
	char *stem;          /* with --shard-tokens: OUT without .json */
	int32_t *row_ids;
	uint8_t *row_mask;
	struct ft_shard_doc *row_docs;
	size_t nrow_docs, cap_row_docs;
	uint32_t row_fill;
	struct stats *st;
	struct ft_out *report;
	struct ft_buf line;
};

static struct writer *cleanup_writer;

/* A failed run leaves no shard behind: not the finished ones either. */
static void remove_partial_output(void)
{
	struct writer *w = cleanup_writer;
	if (!w)
		return;
	if (w->cur)
		ft_shard_writer_abort(w->cur);
	w->cur = NULL;
	for (size_t i = 0; i < w->npaths; i++)
		unlink(w->paths[i]);
}

static void writer_open_shard(struct writer *w)
{
	struct ft_err err;
	ft_err_clear(&err);
	free(w->cur_path);
	if (w->stem) {
		size_t n = strlen(w->stem) + 16;
		w->cur_path = ft_xrealloc(NULL, n);
		snprintf(w->cur_path, n, "%s-%05zu.bin", w->stem, w->npaths);
	} else {
		w->cur_path = strdup(w->o->output);
		if (!w->cur_path)
			ft_die(FT_EXIT_DATA, "out of memory");
	}
	if (ft_shard_writer_open(&w->cur, w->cur_path, &w->meta, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
}

static void writer_commit_shard(struct writer *w)
{
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_shard_writer *sw = w->cur;
	w->cur = NULL;
	if (ft_shard_writer_commit(sw, NULL, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	w->paths = ft_xrealloc(w->paths, (w->npaths + 1) * sizeof *w->paths);
	w->paths[w->npaths++] = w->cur_path;
	w->cur_path = NULL;
	w->st->shards++;
}

static void writer_flush_row(struct writer *w)
{
	if (!w->nrow_docs)
		return;
	uint32_t L = w->o->seq_len;
	for (uint32_t p = w->row_fill; p < L; p++) {
		w->row_ids[p] = w->meta.pad_id;
		w->row_mask[p] = 0;
	}
	if (!w->cur)
		writer_open_shard(w);
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_shard_writer_add_row(w->cur, w->row_ids, w->row_mask, w->row_docs, w->nrow_docs, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	w->st->rows++;
	w->st->pad += L - w->row_fill;
	w->nrow_docs = 0;
	w->row_fill = 0;
	if (w->o->shard_tokens &&
	    ft_shard_writer_rows(w->cur) * (unsigned long long)L >= w->o->shard_tokens)
		writer_commit_shard(w);
}

/* Place d at the end of the current row (the caller checked it fits). */
static void row_add(struct writer *w, const struct doc *d)
{
	if (w->nrow_docs == w->cap_row_docs) {
		w->cap_row_docs = w->cap_row_docs ? 2 * w->cap_row_docs : 16;
		w->row_docs = ft_xrealloc(w->row_docs, w->cap_row_docs * sizeof *w->row_docs);
	}
	w->row_docs[w->nrow_docs++] = (struct ft_shard_doc){
		.sample = d->sample, .start = w->row_fill, .len = d->len, .flags = d->flags };
	memcpy(w->row_ids + w->row_fill, d->ids, d->len * sizeof *d->ids);
	memcpy(w->row_mask + w->row_fill, d->mask, d->len);
	for (uint32_t i = 0; i < d->len; i++)
		w->st->trained += d->mask[i];
	w->row_fill += d->len;
	w->st->real += d->len;
	w->st->docs++;
}

static void doc_free(struct doc *d)
{
	free(d->ids);
	free(d->mask);
	free(d);
}

/* The packer: a window of documents waiting for rows. */
struct packer {
	struct doc **docs;
	size_t n, cap, window;
	uint32_t *bin_fill;
	size_t *bin_of;
};

static int cmp_doc_len(const void *a, const void *b)
{
	const struct doc *x = *(struct doc *const *)a, *y = *(struct doc *const *)b;
	if (x->len != y->len)
		return x->len < y->len ? 1 : -1;
	return x->sample < y->sample ? -1 : x->sample > y->sample;
}

static int cmp_doc_sample(const void *a, const void *b)
{
	const struct doc *x = *(struct doc *const *)a, *y = *(struct doc *const *)b;
	return x->sample < y->sample ? -1 : x->sample > y->sample;
}

/* First-fit-decreasing over the window; at the end of the input (final)
 * every row is written, otherwise rows with more than 1/64 free hand their
 * documents back, unless one of them was handed back MAX_CARRY times. */
static void pack_window(struct packer *pk, struct writer *w, bool final)
{
	uint32_t L = w->o->seq_len;
	size_t n = pk->n;
	if (!n)
		return;
	qsort(pk->docs, n, sizeof *pk->docs, cmp_doc_len);
	pk->bin_fill = ft_xrealloc(pk->bin_fill, n * sizeof *pk->bin_fill);
	pk->bin_of = ft_xrealloc(pk->bin_of, n * sizeof *pk->bin_of);
	size_t nbins = 0;
	for (size_t i = 0; i < n; i++) {
		size_t b = 0;
		while (b < nbins && pk->bin_fill[b] + pk->docs[i]->len > L)
			b++;
		if (b == nbins)
			pk->bin_fill[nbins++] = 0;
		pk->bin_fill[b] += pk->docs[i]->len;
		pk->bin_of[i] = b;
	}
	struct doc **row = ft_xrealloc(NULL, n * sizeof *row);
	struct doc **carry = ft_xrealloc(NULL, n * sizeof *carry);
	size_t kept = 0;
	for (size_t b = 0; b < nbins; b++) {
		size_t k = 0;
		bool stale = false;
		for (size_t i = 0; i < n; i++)
			if (pk->bin_of[i] == b) {
				row[k++] = pk->docs[i];
				stale |= pk->docs[i]->carried >= MAX_CARRY;
			}
		bool full = L - pk->bin_fill[b] <= L / 64;
		if (!final && !full && !stale && kept + k <= pk->window / 2) {
			for (size_t i = 0; i < k; i++) {
				row[i]->carried++;
				carry[kept++] = row[i];
			}
			continue;
		}
		qsort(row, k, sizeof *row, cmp_doc_sample);
		for (size_t i = 0; i < k; i++) {
			row_add(w, row[i]);
			doc_free(row[i]);
		}
		writer_flush_row(w);
	}
	free(row);
	memcpy(pk->docs, carry, kept * sizeof *carry);
	free(carry);
	pk->n = kept;
}

static void pack_add(struct packer *pk, struct writer *w, struct doc *d)
{
	if (pk->n == pk->cap) {
		pk->cap = pk->cap ? 2 * pk->cap : 256;
		pk->docs = ft_xrealloc(pk->docs, pk->cap * sizeof *pk->docs);
	}
	pk->docs[pk->n++] = d;
	if (pk->n >= pk->window)
		pack_window(pk, w, false);
}

/* ---- the length policy and the report ---------------------------------- */

static void report(struct writer *w, const struct result *r, const struct batch *b,
		   const struct ft_line *en, const char *action, const char *reason,
		   uint32_t tokens, uint32_t kept)
{
	if (!w->report)
		return;
	struct ft_buf *l = &w->line;
	ft_buf_reset(l);
	ft_buf_printf(l, "{\"sample\":%llu,\"id\":", en->recno - 1);
	ft_json_write_string(l, b->ids_text.data + r->id_off, r->id_len);
	ft_buf_puts(l, ",\"file\":");
	ft_json_write_string(l, en->file, strlen(en->file));
	ft_buf_printf(l, ",\"line\":%ld,\"action\":\"%s\"", en->lineno, action);
	if (reason)
		ft_buf_printf(l, ",\"reason\":\"%s\"", reason);
	ft_buf_printf(l, ",\"tokens\":%u,\"kept\":%u}\n", tokens, kept);
	if (ft_out_write(w->report, l->data, l->len))
		ft_die(FT_EXIT_DATA, "%s: write error: %s", ft_out_name(w->report), strerror(errno));
}

/* Trained targets of a document: its first token is never one (nothing
 * before it predicts it), so its mask is cleared. */
static uint32_t targets(uint8_t *mask, uint32_t n)
{
	uint32_t t = 0;
	if (n)
		mask[0] = 0;
	for (uint32_t i = 1; i < n; i++)
		t += mask[i];
	return t;
}

static struct doc *doc_new(unsigned long long sample, const int32_t *ids, const uint8_t *mask,
			   uint32_t n, uint32_t flags)
{
	struct doc *d = ft_xrealloc(NULL, sizeof *d);
	d->sample = sample;
	d->len = n;
	d->flags = flags;
	d->carried = 0;
	d->ids = ft_xrealloc(NULL, n * sizeof *ids);
	d->mask = ft_xrealloc(NULL, n);
	memcpy(d->ids, ids, n * sizeof *ids);
	memcpy(d->mask, mask, n);
	return d;
}

static void emit_doc(struct packer *pk, struct writer *w, struct doc *d)
{
	if (pk) {
		pack_add(pk, w, d);
		return;
	}
	row_add(w, d);
	doc_free(d);
	writer_flush_row(w);
}

static void hist_add(struct hist *h, uint32_t n)
{
	int k = 0;
	while (k < HIST_MAX - 1 && (1ULL << k) < n)
		k++;
	h->n[k]++;
}

/* One tokenized sample, in input order. */
static void take_sample(struct packer *pk, struct writer *w, const struct batch *b,
			const struct ft_line *en, const struct result *r)
{
	const struct opts *o = w->o;
	struct stats *st = w->st;
	uint32_t L = o->seq_len, n = r->ntok;
	int32_t *ids = b->ids + r->tok;
	uint8_t *mask = b->mask + r->tok;
	unsigned long long sample = en->recno - 1;
	st->samples++;
	st->tokens_in += n;
	st->straddle += r->straddle;
	st->specials += r->specials;
	st->eot_trained += r->eot_trained;
	st->plain_user += r->plain_user;
	hist_add(&st->len_hist, n);
	uint32_t t = targets(mask, n);
	st->trained_in += t;
	if (!t) {
		st->drop_untrained++;
		report(w, r, b, en, "dropped", "no trained tokens", n, 0);
		return;
	}
	if (n <= L) {
		emit_doc(pk, w, doc_new(sample, ids, mask, n, 0));
		return;
	}
	switch (o->policy) {
	case DROP_LONG:
		st->drop_long++;
		report(w, r, b, en, "dropped", "longer than the sequence length", n, 0);
		return;
	case SPLIT_LONG: {
		st->split++;
		uint32_t kept = 0;
		for (uint32_t off = 0, piece = 0; off < n; off += L, piece++) {
			uint32_t k = n - off < L ? n - off : L;
			uint32_t pt = targets(mask + off, k);
			if (pt) {
				emit_doc(pk, w, doc_new(sample, ids + off, mask + off, k,
							FT_DOC_SPLIT | (piece ? FT_DOC_CONTINUED : 0)));
				st->split_docs++;
				kept += k;
			} else {
				st->tokens_cut += k;
			}
		}
		report(w, r, b, en, "split", NULL, n, kept);
		return;
	}
	case TRUNC_RIGHT:
	case TRUNC_LEFT:
		break;
	}
	struct doc *d;
	if (o->policy == TRUNC_RIGHT) {
		d = doc_new(sample, ids, mask, L, FT_DOC_TRUNCATED);
	} else {
		/* keep the end; a leading BOS stays in front */
		bool keep_bos = o->add_bos && ids[0] == w->v->bos;
		d = doc_new(sample, ids + (n - L), mask + (n - L), L, FT_DOC_TRUNCATED);
		if (keep_bos) {
			d->ids[0] = ids[0];
			d->mask[0] = 0;
		}
	}
	st->tokens_cut += n - L;
	if (!targets(d->mask, d->len)) {
		st->drop_cut++;
		report(w, r, b, en, "dropped", "no trained tokens left after truncation", n, 0);
		doc_free(d);
		return;
	}
	st->truncated++;
	report(w, r, b, en, "truncated", o->policy == TRUNC_RIGHT ? "right" : "left", n, L);
	emit_doc(pk, w, d);
}

/* ---- batches in order, then the main loop ------------------------------ */

struct run {
	const struct opts *o;
	struct packer *pk;
	struct writer *w;
	struct stats *st;
	bool failed;
	struct ft_progress prog;
};

static void consume(struct run *rn, struct batch *b)
{
	for (int i = 0; i < b->in.n && !rn->failed; i++) {
		const struct result *r = &b->res[i];
		const struct ft_line *en = &b->in.e[i];
		rn->st->records++;
		switch (r->status) {
		case SAMPLE_OK:
			take_sample(rn->pk, rn->w, b, en, r);
			break;
		case SAMPLE_EMPTY:
			rn->st->empty++;
			rn->st->samples++;
			report(rn->w, r, b, en, "dropped", "no tokens", 0, 0);
			break;
		case SAMPLE_BAD: {
			bool fatal = b->in.fatal_at_end && i == b->in.n - 1;
			if (rn->o->skip_bad && !fatal && r->err.code != FT_E_NOMEM) {
				ft_report(&r->err, r->prefix[0] ? r->prefix : NULL);
				rn->st->skipped++;
				break;
			}
			ft_progress_done(&rn->prog);
			ft_report(&r->err, r->prefix[0] ? r->prefix : NULL);
			rn->failed = true;
			break;
		}
		}
	}
}

static void drain(struct run *rn, struct ft_pool *pool, bool wait)
{
	struct batch *b;
	while ((b = ft_pool_next_done(pool, wait))) {
		consume(rn, b);
		ft_pool_release(pool, b);
	}
}

static struct batch *next_batch(struct run *rn, struct ft_pool *pool)
{
	struct batch *b;
	while (!(b = ft_pool_acquire(pool))) {
		b = ft_pool_next_done(pool, true);
		consume(rn, b);
		ft_pool_release(pool, b);
	}
	ft_lines_reset(&b->in);
	return b;
}

static void json_stats(struct ft_buf *j, const struct stats *st, const struct opts *o)
{
	unsigned long long total = st->rows * (unsigned long long)o->seq_len;
	ft_buf_printf(j, "{\"records\":%llu,\"samples\":%llu,\"skipped\":%llu,\"docs\":%llu,"
		      "\"rows\":%llu,\"shards\":%llu,\"seq_len\":%u,\"mode\":\"%s\",",
		      st->records, st->samples, st->skipped, st->docs, st->rows, st->shards,
		      o->seq_len, o->pad ? "pad" : "pack");
	ft_buf_printf(j, "\"tokens\":%llu,\"real_tokens\":%llu,\"trained_tokens\":%llu,"
		      "\"pad_tokens\":%llu,",
		      total, st->real, st->trained, st->pad);
	ft_buf_printf(j, "\"packing_efficiency\":%.6f,\"trained_share\":%.6f,",
		      total ? (double)st->real / (double)total : 0.0,
		      total ? (double)st->trained / (double)total : 0.0);
	ft_buf_printf(j, "\"sample_tokens\":%llu,\"sample_trained_tokens\":%llu,",
		      st->tokens_in, st->trained_in);
	ft_buf_printf(j, "\"truncated\":%llu,\"split\":%llu,\"split_docs\":%llu,\"tokens_cut\":%llu,",
		      st->truncated, st->split, st->split_docs, st->tokens_cut);
	ft_buf_printf(j, "\"dropped\":{\"too_long\":%llu,\"no_trained_tokens\":%llu,"
		      "\"nothing_trained_after_truncation\":%llu,\"no_tokens\":%llu},",
		      st->drop_long, st->drop_untrained, st->drop_cut, st->empty);
	ft_buf_printf(j, "\"straddling_tokens\":%llu,\"special_tokens\":%llu,"
		      "\"end_of_turn_trained\":%llu,\"runs_with_user_pieces_as_text\":%llu,",
		      st->straddle, st->specials, st->eot_trained, st->plain_user);
	ft_buf_puts(j, "\"length_histogram\":[");
	int first = HIST_MAX, last = -1;
	for (int k = 0; k < HIST_MAX; k++)
		if (st->len_hist.n[k]) {
			first = first < k ? first : k;
			last = k;
		}
	for (int k = first; k <= last; k++)
		ft_buf_printf(j, "%s{\"max_tokens\":%llu,\"samples\":%llu}", k > first ? "," : "",
			      1ULL << k, st->len_hist.n[k]);
	ft_buf_puts(j, "]}\n");
}

static void write_small(const char *path, const struct ft_buf *b)
{
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_out *out;
	if (ft_out_open(&out, path, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	if (ft_out_write(out, b->data, b->len) || ft_out_commit(out, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg[0] ? err.msg : "write error");
}

static void summary(const struct stats *st, const struct opts *o)
{
	unsigned long long total = st->rows * (unsigned long long)o->seq_len;
	fprintf(stderr, "ft-tokenize: %llu samples -> %llu rows of %u", st->samples, st->rows,
		o->seq_len);
	if (st->shards > 1)
		fprintf(stderr, " in %llu shards", st->shards);
	fprintf(stderr, ": %llu tokens, %.1f%% trained, %.1f%% %s", st->real,
		total ? 100.0 * (double)st->trained / (double)total : 0.0,
		total ? 100.0 * (double)st->real / (double)total : 0.0,
		o->pad ? "not padding" : "packed");
	if (st->truncated)
		fprintf(stderr, ", %llu truncated", st->truncated);
	if (st->split)
		fprintf(stderr, ", %llu split", st->split);
	unsigned long long dropped = st->drop_long + st->drop_untrained + st->drop_cut + st->empty;
	if (dropped)
		fprintf(stderr, ", %llu dropped", dropped);
	if (st->skipped)
		fprintf(stderr, ", %llu skipped", st->skipped);
	if (st->straddle)
		fprintf(stderr, ", %llu tokens straddle a trained boundary", st->straddle);
	fputc('\n', stderr);
}

static void add_str(const char ***v, int *n, const char *s)
{
	*v = ft_xrealloc(*v, (size_t)(*n + 1) * sizeof **v);
	(*v)[(*n)++] = s;
}

static void set_policy(struct opts *o, enum length_policy p)
{
	if (o->policy_set && o->policy != p)
		ft_usage_error("give only one of --truncate, --drop and --split-long");
	o->policy = p;
	o->policy_set = true;
}

static bool add_or_keep(const char *opt, const char *v)
{
	if (!strcmp(v, "add"))
		return true;
	if (!strcmp(v, "keep"))
		return false;
	ft_usage_error("invalid %s '%s': expected 'add' or 'keep'", opt, v);
}

static void parse_args(struct opts *o, int argc, char **argv)
{
	enum { O_PACK = 256, O_PAD, O_PREFIX, O_WINDOW, O_TRUNC, O_DROP, O_SPLIT, O_BOS, O_EOS, O_EOT,
	       O_PADID, O_SHARD, O_STATS, O_REPORT, O_SKIP, O_MAXLINE, O_PROGRESS, O_VERSION };
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "seq-len", required_argument, NULL, 'L' },
		{ "config", required_argument, NULL, 'c' },
		{ "dummy-prefix", required_argument, NULL, O_PREFIX },
		{ "output", required_argument, NULL, 'o' },
		{ "pack", no_argument, NULL, O_PACK },
		{ "pad", no_argument, NULL, O_PAD },
		{ "pack-window", required_argument, NULL, O_WINDOW },
		{ "truncate", required_argument, NULL, O_TRUNC },
		{ "drop", no_argument, NULL, O_DROP },
		{ "split-long", no_argument, NULL, O_SPLIT },
		{ "bos", required_argument, NULL, O_BOS },
		{ "eos", required_argument, NULL, O_EOS },
		{ "eot", required_argument, NULL, O_EOT },
		{ "pad-id", required_argument, NULL, O_PADID },
		{ "shard-tokens", required_argument, NULL, O_SHARD },
		{ "stats", required_argument, NULL, O_STATS },
		{ "report", required_argument, NULL, O_REPORT },
		{ "jobs", required_argument, NULL, 'j' },
		{ "skip-bad", no_argument, NULL, O_SKIP },
		{ "max-line", required_argument, NULL, O_MAXLINE },
		{ "progress", no_argument, NULL, O_PROGRESS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	bool mode_set = false;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:L:c:o:j:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model_path = optarg; break;
		case 'L': o->seq_len = (uint32_t)ft_opt_long("-L", optarg, 2, MAX_SEQ_LEN); break;
		case 'o': o->output = optarg; break;
		case 'c': o->config_path = optarg; break;
		case O_PREFIX:
			if (strcmp(optarg, "each") && strcmp(optarg, "first"))
				ft_usage_error("invalid --dummy-prefix '%s': expected 'each' or 'first'", optarg);
			o->prefix_first = !strcmp(optarg, "first");
			o->prefix_set = true;
			break;
		case O_PACK:
		case O_PAD:
			if (mode_set && o->pad != (c == O_PAD))
				ft_usage_error("give only one of --pack and --pad");
			o->pad = c == O_PAD;
			mode_set = true;
			break;
		case O_WINDOW: o->window = ft_opt_long("--pack-window", optarg, 1, 1L << 22); break;
		case O_TRUNC:
			if (!strcmp(optarg, "right"))
				set_policy(o, TRUNC_RIGHT);
			else if (!strcmp(optarg, "left"))
				set_policy(o, TRUNC_LEFT);
			else
				ft_usage_error("invalid --truncate '%s': expected 'left' or 'right'", optarg);
			break;
		case O_DROP: set_policy(o, DROP_LONG); break;
		case O_SPLIT: set_policy(o, SPLIT_LONG); break;
		case O_BOS:
			o->add_bos = add_or_keep("--bos", optarg);
			o->bos_set = true;
			break;
		case O_EOS: o->add_eos = add_or_keep("--eos", optarg); break;
		case O_EOT: add_str(&o->eot, &o->neot, optarg); break;
		case O_PADID:
			o->pad_id = ft_opt_long("--pad-id", optarg, 0, INT32_MAX);
			o->pad_id_set = true;
			break;
		case O_SHARD: o->shard_tokens = ft_opt_size("--shard-tokens", optarg); break;
		case O_STATS: o->stats_path = optarg; break;
		case O_REPORT: o->report_path = optarg; break;
		case 'j': o->jobs = (int)ft_opt_long("-j", optarg, 1, 256); break;
		case O_SKIP: o->skip_bad = true; break;
		case O_MAXLINE: o->max_line = ft_opt_size("--max-line", optarg); break;
		case O_PROGRESS: o->progress = true; break;
		case 'q': o->quiet = true; break;
		case 'h': fputs(usage_text, stdout); ft_close_stdout(); exit(0);
		case O_VERSION: printf("ft-tokenize %s\n", FT_VERSION); ft_close_stdout(); exit(0);
		case ':': ft_usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt)
				ft_usage_error("unknown option '-%c'", optopt);
			ft_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!o->model_path)
		ft_usage_error("no tokenizer model: give -m FILE");
	if (!o->seq_len)
		ft_usage_error("no sequence length: give -L N");
	if (!o->output)
		ft_usage_error("no output: give -o FILE");
	if (!strcmp(o->output, "-"))
		ft_usage_error("shards are not written to standard output: give -o FILE");
	if (o->pad && o->policy == SPLIT_LONG)
		ft_usage_error("--split-long needs --pack");
	config_defaults(o);
	if (!o->jobs) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o->jobs = n < 1 ? 1 : n > 8 ? 8 : (int)n;
	}
}

static void writer_init(struct writer *w, const struct opts *o, const struct ft_vocab *v,
			struct stats *st)
{
	memset(w, 0, sizeof *w);
	w->o = o;
	w->v = v;
	w->st = st;
	w->meta.vocab_size = (uint32_t)v->vocab_size;
	w->meta.seq_len = o->seq_len;
	w->meta.flags = o->pad ? 0 : FT_SHARD_PACKED;
	w->meta.bos_id = v->bos;
	w->meta.eos_id = v->eos;
	int pad = ft_spm_pad_id(v->spm);
	if (o->pad_id_set) {
		if (o->pad_id >= v->vocab_size)
			ft_usage_error("--pad-id %ld is outside the vocabulary (%d)", o->pad_id,
				       v->vocab_size);
		pad = (int)o->pad_id;
	} else if (pad < 0) {
		pad = v->eos >= 0 ? v->eos : 0;
	}
	w->meta.pad_id = pad;
	memcpy(w->meta.tokenizer, ft_spm_fingerprint(v->spm), 32);
	if (o->shard_tokens) {
		size_t n = strlen(o->output);
		if (n > 5 && !strcmp(o->output + n - 5, ".json"))
			n -= 5;
		w->stem = strndup(o->output, n);
		if (!w->stem)
			ft_die(FT_EXIT_DATA, "out of memory");
	}
	w->row_ids = ft_xrealloc(NULL, o->seq_len * sizeof *w->row_ids);
	w->row_mask = ft_xrealloc(NULL, o->seq_len);
	ft_buf_init(&w->line, 0);
	cleanup_writer = w;
}

static void writer_finish(struct writer *w)
{
	struct ft_err err;
	ft_err_clear(&err);
	if (!w->cur && !w->npaths)
		writer_open_shard(w);  /* no rows: an empty shard, still a valid one */
	if (w->cur)
		writer_commit_shard(w);
	if (w->stem) {
		const char **rel = ft_xrealloc(NULL, w->npaths * sizeof *rel);
		for (size_t i = 0; i < w->npaths; i++) {
			const char *slash = strrchr(w->paths[i], '/');
			rel[i] = slash ? slash + 1 : w->paths[i];
		}
		/* the index names shards relative to its directory, theirs too */
		int rc = ft_shard_index_write(w->o->output, rel, w->npaths, &err);
		free(rel);
		if (rc)
			ft_die(FT_EXIT_DATA, "%s", err.msg);
	}
}

static void writer_release(struct writer *w)
{
	for (size_t i = 0; i < w->npaths; i++)
		free(w->paths[i]);
	free(w->paths);
	free(w->cur_path);
	free(w->stem);
	free(w->row_ids);
	free(w->row_mask);
	free(w->row_docs);
	ft_buf_release(&w->line);
	cleanup_writer = NULL;
}

int main(int argc, char **argv)
{
	ft_cli_init("ft-tokenize");
	struct opts o = { .window = 2048, .add_bos = true, .policy = TRUNC_RIGHT };
	parse_args(&o, argc, argv);

	struct ft_vocab v;
	vocab_load(&v, &o);
	struct stats st;
	memset(&st, 0, sizeof st);
	struct ft_err err;
	ft_err_clear(&err);

	struct writer w;
	writer_init(&w, &o, &v, &st);
	atexit(remove_partial_output);
	if (o.report_path && ft_out_open(&w.report, o.report_path, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	struct packer pk = { .window = (size_t)o.window };

	int nbatch = o.jobs > 1 ? 2 * o.jobs + 2 : 1;
	struct batch *batches = calloc((size_t)nbatch, sizeof *batches);
	void **bp = calloc((size_t)nbatch, sizeof *bp);
	struct ctx cx = { .o = &o, .v = &v };
	cx.workers = calloc((size_t)o.jobs, sizeof *cx.workers);
	if (!batches || !bp || !cx.workers)
		ft_die(FT_EXIT_DATA, "out of memory");
	for (int i = 0; i < nbatch; i++) {
		ft_lines_init(&batches[i].in);
		ft_buf_init(&batches[i].ids_text, 0);
		bp[i] = &batches[i];
	}
	for (int i = 0; i < o.jobs; i++) {
		ft_buf_init(&cx.workers[i].text, 0);
		ft_segments_init(&cx.workers[i].segs);
		ft_spm_tokens_init(&cx.workers[i].toks);
		ft_arena_init(&cx.workers[i].arena, 0);
	}
	ft_json_use_arena(NULL);  /* cJSON's hooks in place before any thread runs */
	struct ft_pool *pool;
	if (ft_pool_start(&pool, o.jobs, bp, nbatch, work, &cx, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);

	struct run rn = { .o = &o, .pk = o.pad ? NULL : &pk, .w = &w, .st = &st };
	ft_progress_init(&rn.prog, o.progress);
	int status = FT_EXIT_OK;
	unsigned long long recno = 0, done_bytes = 0;
	int nfiles = argc - optind;
	for (int fi = 0; fi < (nfiles ? nfiles : 1) && !rn.failed; fi++) {
		const char *path = nfiles ? argv[optind + fi] : "-";
		struct ft_jsonl_reader *rd;
		ft_err_clear(&err);
		if (ft_jsonl_open(&rd, path, 0, o.max_line, &err)) {
			ft_report(&err, NULL);
			status = FT_EXIT_DATA;
			break;
		}
		struct batch *b = next_batch(&rn, pool);
		while (!rn.failed) {
			const char *line;
			size_t len;
			ft_err_clear(&err);
			int rc = ft_jsonl_next_line(rd, &line, &len, &err);
			if (rc == 0)
				break;
			recno++;
			/* a broken file cannot go on: report after what came before */
			bool broken = rc == FT_E_IO || rc == FT_E_NOMEM;
			if (rc < 0 ? ft_lines_add_error(&b->in, &err, recno, broken)
				   : ft_lines_add(&b->in, line, len, ft_jsonl_name(rd),
						  ft_jsonl_lineno(rd), ft_jsonl_col_offset(rd), recno))
				ft_die(FT_EXIT_DATA, "out of memory");
			if (broken)
				break;
			if (ft_lines_full(&b->in, BATCH_LINES, BATCH_BYTES)) {
				ft_pool_submit(pool, b);
				drain(&rn, pool, false);
				b = next_batch(&rn, pool);
			}
			ft_progress_update(&rn.prog, recno, done_bytes + ft_jsonl_bytes(rd));
		}
		ft_pool_submit(pool, b);
		drain(&rn, pool, false);
		done_bytes += ft_jsonl_bytes(rd);
		ft_jsonl_close(rd);
	}
	drain(&rn, pool, true);
	ft_pool_free(pool);
	ft_progress_done(&rn.prog);
	if (rn.failed)
		status = FT_EXIT_DATA;
	if (status)
		exit(status);  /* atexit removes every output */

	if (!o.pad)
		pack_window(&pk, &w, true);
	writer_flush_row(&w);
	writer_finish(&w);
	if (w.report && ft_out_commit(w.report, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	w.report = NULL;
	if (o.stats_path) {
		struct ft_buf j;
		ft_buf_init(&j, 0);
		json_stats(&j, &st, &o);
		write_small(o.stats_path, &j);
		ft_buf_release(&j);
	}
	if (!o.quiet)
		summary(&st, &o);
	cleanup_writer = NULL;  /* committed: keep it */

	for (int i = 0; i < nbatch; i++) {
		struct batch *b = &batches[i];
		ft_lines_release(&b->in);
		ft_buf_release(&b->ids_text);
		free(b->res);
		free(b->ids);
		free(b->mask);
	}
	for (int i = 0; i < o.jobs; i++) {
		struct worker *wk = &cx.workers[i];
		ft_buf_release(&wk->text);
		ft_segments_release(&wk->segs);
		ft_spm_tokens_release(&wk->toks);
		ft_arena_release(&wk->arena);
		free(wk->trained);
	}
	free(cx.workers);
	free(batches);
	free(bp);
	free(pk.docs);
	free(pk.bin_fill);
	free(pk.bin_of);
	writer_release(&w);
	ft_vocab_release(&v);
	free(o.eot);
	return 0;
}
