/* ft-generate: prompts (ft-template --mode prompt) to predictions, decoded
 * on the CPU with a KV cache (trainer/generate.h).
 *
 * Records are read lazily into a queue; up to --batch of them decode
 * together, each in its own cache slot, and a slot that finishes takes the
 * next record at once (continuous batching). Finished records are written
 * in input order. A record's tokens depend only on the record, --seed and
 * the model: the decode arithmetic of a slot does not see the others
 * (generate.h), and sampling draws from a generator seeded by --seed and
 * the record's id, so the output is the same for any --batch and thread
 * count. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "buf.h"
#include "cli.h"
#include "generate.h"
#include "hash.h"
#include "jinja.h"
#include "json.h"
#include "jsonl.h"
#include "lora.h"
#include "model.h"
#include "out.h"
#include "recipe.h"
#include "rng.h"
#include "sample.h"
#include "spm.h"
#include "tokenize.h"

static const char usage_text[] =
"Usage: ft-generate -m MODEL_DIR [OPTION]... [FILE]...\n"
"Generate a prediction for every prompt sample (ft-template --mode prompt)\n"
"with a Llama-family model, as JSON Lines in input order.\n"
"With no FILE, or when FILE is -, read standard input; .gz is read\n"
"transparently. Prompts are tokenized as ft-tokenize tokenizes samples.\n"
"\n"
"  -m, --model=DIR         Hugging Face model directory (config.json,\n"
"                          safetensors)\n"
"  -a, --adapter=DIR       a LoRA adapter (ft-train's or Hugging Face PEFT's),\n"
"                          merged into the weights at load\n"
"  -t, --tokenizer=FILE    SentencePiece model (default: DIR/tokenizer.model)\n"
"  -c, --config=FILE       the model's tokenizer_config.json: its 'legacy',\n"
"                          'add_bos_token' and added special tokens apply\n"
"      --bos=add|keep      add: every prompt starts with one BOS (default);\n"
"                          keep: only what the template rendered\n"
"      --dummy-prefix=each|first\n"
"                          as ft-tokenize (default each)\n"
"      --eot=PIECE         a piece that ends a turn: generation stops there\n"
"                          (besides EOS and known end-of-turn pieces);\n"
"                          repeatable\n"
"  -n, --max-new-tokens=N  tokens generated at most per prompt (default 512,\n"
"                          at most half the model's context)\n"
"      --temperature=T     sample at temperature T (default 0: greedy)\n"
"      --top-k=K           sample from the K most likely tokens only\n"
"      --top-p=P           sample from the most likely tokens whose\n"
"                          probability reaches P\n"
"  -s, --seed=N            seed of sampling (default 0); a record's draws\n"
"                          depend on the seed and its id only\n"
"      --stop=STRING       stop when the text generated contains STRING,\n"
"                          which is cut off; repeatable\n"
"  -b, --batch=N           prompts decoded together (default 8); the output\n"
"                          does not depend on N\n"
"      --threads=N         CPU threads (default: OpenMP's default)\n"
"      --device=DEV        cpu (default), cuda (GPU 0) or cuda:N\n"
"  -o, --output=FILE       write to FILE (atomically) instead of stdout\n"
"      --ids               records give prompt_ids (token ids) instead of\n"
"                          segments; no tokenizer needed\n"
"      --print-ids         the output adds prompt_ids and completion_ids\n"
"  -i, --interactive       read prompts from standard input, one a line,\n"
"                          and print each continuation\n"
"  -T, --template=FILE     with -i: render each line as a user message of a\n"
"                          conversation through the chat template FILE\n"
"      --skip-bad          skip bad records with a warning, count them, go on\n"
"      --max-line=SIZE     longest accepted line, K/M/G suffix (default 1G)\n"
"      --progress          show progress even if stderr is not a terminal\n"
"  -q, --quiet             no summary on stderr\n"
"  -h, --help              show this help and exit\n"
"      --version           show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input or write error, 2 usage error.\n";

#define MAX_BATCH 1024

/* End-of-turn pieces generation stops at whenever the tokenizer has them
 * as special pieces (the list ft-template knows). */
static const char *const known_eot[] = {
	"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>",
	"</s>",
};

struct opts {
	const char *model_dir, *adapter, *tokenizer, *config, *output, *template_path;
	bool add_bos, bos_set, prefix_first, prefix_set;
	const char **eot, **stop;
	int neot, nstop;
	long max_new;
	struct ft_sampling sampling;
	bool top_k_set, top_p_set;
	uint64_t seed;
	int batch, threads, device;
	bool ids, print_ids, interactive, skip_bad, progress, quiet;
	size_t max_line;
};

enum stop_kind { STOP_NONE, STOP_EOS, STOP_STRING, STOP_LENGTH };
static const char *const stop_names[] = { "", "eos", "stop", "length" };

struct job {
	char *id_json;       /* the id as JSON (as it came, or the record number) */
	char *id_text;       /* for messages and the sampling seed */
	char *reference;     /* JSON, or NULL */
	char *rest;          /* the other fields: ,"key":value... */
	int32_t *ids;        /* prompt, then completion */
	int nprompt, ncompl;
	bool started;
	struct ft_rng rng;
	enum stop_kind stop;
	size_t cut;          /* with STOP_STRING: bytes of text kept */
	bool lead_space;     /* the prompt's trailing whitespace was not encoded */
	bool done;
};

struct run {
	const struct opts *o;
	struct ft_model model;
	struct ft_vocab vocab;
	bool have_vocab;
	bool *eos;               /* per model id: generation stops */
	bool *spaced;            /* per model id: the piece starts with whitespace */
	int V;                   /* model vocabulary */
	int ctx;                 /* max_position_embeddings */
	struct ft_gen gen;
	struct job **slot_job;   /* per slot */
	int nslots;
	float *logits;           /* batch x V */
	int32_t *order;          /* V */
	struct ft_spm_tokens toks;
	struct ft_buf text, line;
	struct ft_segments segs;
	/* input */
	int nfiles, file_i;
	char **files;
	struct ft_jsonl_reader *rd;
	unsigned long long recno;
	bool input_done;
	/* jobs in input order, not yet written */
	struct job **queue;
	size_t qhead, qlen, qcap;
	struct ft_out *out;
	struct ft_progress prog;
	/* counts */
	unsigned long long records, prompt_tokens, completion_tokens, skipped, truncated;
	double prefill_s, decode_s;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* ---- loading ----------------------------------------------------------- */

static cJSON *read_json(const char *path)
{
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_buf b;
	ft_buf_init(&b, (size_t)64 << 20);
	if (ft_buf_read_file(&b, path, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	cJSON *c = NULL;
	if (ft_json_parse(b.data ? b.data : "", b.len, &c, &err) || !cJSON_IsObject(c))
		ft_die(FT_EXIT_DATA, "%s: not a JSON object%s%s", path, err.msg[0] ? ": " : "",
		       err.msg);
	ft_buf_release(&b);
	return c;
}

/* eos_token_id of a config (a number or a list) into r->eos. */
static void eos_from_config(struct run *r, const char *path)
{
	if (!file_exists(path))
		return;
	cJSON *c = read_json(path);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "eos_token_id");
	const cJSON *one = cJSON_IsArray(e) ? e->child : e;
	for (; one; one = cJSON_IsArray(e) ? one->next : NULL)
		if (ft_json_is_int(one) && ft_json_int(one) >= 0 && ft_json_int(one) < r->V)
			r->eos[ft_json_int(one)] = true;
	cJSON_Delete(c);
}

/* The model's weights (adapters merged) in a GPU's memory and storage
 * type, w pointing into them. */
static void *upload_weights(const struct ft_ops *ops, const struct ft_model *m,
			    struct ft_weights *w)
{
	void *x = ops->alloc(m->nfloats * ops->xsize);
	if (!x || ft_x_upload(ops, x, m->weights, m->nfloats))
		ft_die(FT_EXIT_DATA, "out of %s memory for the model's weights", ops->name);
	if (ft_model_point(m, x, ops->xsize, w))
		ft_die(FT_EXIT_DATA, "out of memory");
	return x;
}

static void load_model(struct run *r, struct opts *o)
{
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_model_load(&r->model, o->model_dir, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	if (r->model.cfg.warning[0])
		ft_warn("warning: %s", r->model.cfg.warning);
	if (o->adapter) {
		struct ft_lora lo;
		if (ft_lora_load(&lo, &r->model.cfg, o->adapter, &err))
			ft_die(FT_EXIT_DATA, "%s", err.msg);
		ft_lora_merge(&lo, &r->model);
		ft_lora_release(&lo);
	}
	r->V = r->model.cfg.vocab_size;
	r->ctx = r->model.cfg.max_position_embeddings;
	if (!o->max_new)   /* the default: 512, at most half the context */
		o->max_new = r->ctx / 2 < 512 ? (r->ctx / 2 > 0 ? r->ctx / 2 : 1) : 512;
	if (o->max_new >= r->ctx)
		ft_usage_error("--max-new-tokens %ld leaves no room for a prompt in the model's "
			       "context of %d tokens", o->max_new, r->ctx);
}

static void load_tokenizer(struct run *r)
{
	const struct opts *o = r->o;
	char path[4096];
	const char *tok = o->tokenizer;
	if (!tok) {
		snprintf(path, sizeof path, "%s/tokenizer.model", o->model_dir);
		tok = path;
		if (o->ids && !file_exists(path))
			return;   /* ids in, ids out */
	}
	struct ft_err err;
	ft_err_clear(&err);
	cJSON *config = o->config ? read_json(o->config) : NULL;
	struct ft_buf warnings;
	ft_buf_init(&warnings, 0);
	int rc = ft_vocab_load(&r->vocab, tok, config, o->config, o->prefix_first, &warnings,
			       &err);
	cJSON_Delete(config);
	for (const char *p = warnings.data, *e; p && (e = strchr(p, '\n')); p = e + 1)
		ft_warn("%.*s", (int)(e - p), p);
	ft_buf_release(&warnings);
	if (rc)
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	for (int i = 0; i < o->neot; i++)
		if (ft_vocab_add_eot(&r->vocab, o->eot[i]))
			ft_usage_error("--eot '%s' is not a piece of %s", o->eot[i], tok);
	r->have_vocab = true;
	if (r->vocab.vocab_size > r->V)
		ft_die(FT_EXIT_DATA, "%s has %d pieces, the model's vocabulary only %d", tok,
		       r->vocab.vocab_size, r->V);
}

/* Does the piece of id decode to text starting with whitespace: "▁..."
 * (SentencePiece's space), or a byte piece of a space, tab, CR or LF? */
static bool starts_with_space(const struct ft_spm *spm, int id)
{
	size_t len;
	const char *p = ft_spm_piece(spm, id, &len);
	if (!p)
		return false;
	if (ft_spm_type(spm, id) == FT_SPM_BYTE)
		return len == 6 && (!memcmp(p, "<0x20>", 6) || !memcmp(p, "<0x09>", 6) ||
				    !memcmp(p, "<0x0A>", 6) || !memcmp(p, "<0x0D>", 6));
	return len >= 3 && !memcmp(p, "\xe2\x96\x81", 3);
}

/* Generation stops at the tokenizer's EOS and end-of-turn pieces (known
 * ones and --eot) and at the eos_token_id of config.json and
 * generation_config.json. */
static void stop_tokens(struct run *r)
{
	r->eos = calloc((size_t)r->V, sizeof *r->eos);
	if (!r->eos)
		ft_die(FT_EXIT_DATA, "out of memory");
	char path[4096];
	snprintf(path, sizeof path, "%s/config.json", r->o->model_dir);
	eos_from_config(r, path);
	snprintf(path, sizeof path, "%s/generation_config.json", r->o->model_dir);
	eos_from_config(r, path);
	r->spaced = calloc((size_t)r->V, sizeof *r->spaced);
	if (!r->spaced)
		ft_die(FT_EXIT_DATA, "out of memory");
	if (!r->have_vocab)
		return;
	const struct ft_vocab *v = &r->vocab;
	for (int id = 0; id < v->vocab_size; id++) {
		if (v->ends_turn[id])
			r->eos[id] = true;
		r->spaced[id] = starts_with_space(v->spm, id);
	}
	for (size_t i = 0; i < sizeof known_eot / sizeof *known_eot; i++) {
		int id = ft_spm_piece_id(v->spm, known_eot[i], strlen(known_eot[i]));
		enum ft_spm_type t = id >= 0 ? ft_spm_type(v->spm, id) : FT_SPM_NORMAL;
		if (t == FT_SPM_CONTROL || t == FT_SPM_USER_DEFINED)
			r->eos[id] = true;
	}
}

/* ---- prompts ----------------------------------------------------------- */

/* Does text[from..len) hold only whitespace, and some? */
static bool only_space(const char *text, size_t from, size_t len)
{
	if (from >= len)
		return false;
	for (size_t i = from; i < len; i++)
		if (!strchr(" \t\r\n", text[i]))
			return false;
	return true;
}

/* Tokens of text cut into r->segs, with ft-tokenize's BOS rule, into a new
 * array. *lead_space: the text ends in whitespace that no token covers
 * (SentencePiece drops trailing whitespace; in training it is the "▁" that
 * starts the next token), so the first token generated must start with
 * whitespace, as it would in the training sample: token healing at the
 * prompt's end. */
static int encode_prompt(struct run *r, const char *text, size_t len, int32_t **ids, int *n,
			 bool *lead_space, struct ft_err *err)
{
	int rc = ft_vocab_encode(&r->vocab, text, len, &r->segs, &r->toks, NULL, err);
	if (rc)
		return rc;
	size_t nt = r->toks.n;
	*lead_space = only_space(text, nt ? r->toks.end[nt - 1] : 0, len);
	int bos = r->vocab.bos;
	bool add = r->o->add_bos && bos >= 0 && (nt == 0 || r->toks.ids[0] != bos);
	if (nt + add == 0)
		return ft_err_set(err, FT_E_DATA, "empty prompt");
	if (nt + add > (size_t)INT32_MAX / 2)
		return ft_err_set(err, FT_E_TOOBIG, "prompt of %zu tokens", nt + add);
	*n = (int)(nt + add);
	*ids = ft_xmalloc(((size_t)*n + (size_t)r->o->max_new) * sizeof **ids);
	if (add)
		(*ids)[0] = bos;
	memcpy(*ids + add, r->toks.ids, nt * sizeof **ids);
	return FT_OK;
}

static int read_prompt_ids(struct run *r, const cJSON *rec, int32_t **ids, int *n,
			   struct ft_err *err)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(rec, "prompt_ids");
	if (!cJSON_IsArray(a) || !cJSON_GetArraySize(a))
		return ft_err_set(err, FT_E_DATA, "'prompt_ids' is not a non-empty array");
	*n = cJSON_GetArraySize(a);
	*ids = ft_xmalloc(((size_t)*n + (size_t)r->o->max_new) * sizeof **ids);
	int i = 0;
	for (const cJSON *e = a->child; e; e = e->next) {
		if (!ft_json_is_int(e) || ft_json_int(e) < 0 || ft_json_int(e) >= r->V) {
			free(*ids);
			*ids = NULL;
			return ft_err_set(err, FT_E_DATA, "prompt_ids[%d] is not a token id below %d",
					  i, r->V);
		}
		(*ids)[i++] = (int32_t)ft_json_int(e);
	}
	return FT_OK;
}

/* Keep the prompt's last tokens (after its BOS) so that max_new tokens
 * fit in the model's context. */
static void truncate_prompt(struct run *r, struct job *j, const char *file, long line)
{
	int room = r->ctx - (int)r->o->max_new;
	if (j->nprompt <= room)
		return;
	int keep_bos = r->have_vocab && j->ids[0] == r->vocab.bos && room > 1;
	ft_warn("%s:%ld: record '%.150s': prompt of %d tokens cut to %d from the left "
		"(context %d, --max-new-tokens %ld)", file, line, j->id_text, j->nprompt,
		room, r->ctx, r->o->max_new);
	memmove(j->ids + keep_bos, j->ids + j->nprompt - (room - keep_bos),
		(size_t)(room - keep_bos) * sizeof *j->ids);
	j->nprompt = room;
	r->truncated++;
}

static char *json_text(const cJSON *v)
{
	struct ft_buf b;
	ft_buf_init(&b, 0);
	if (ft_json_write(&b, v))
		ft_die(FT_EXIT_DATA, "out of memory");
	char *s = ft_xstrndup(b.data ? b.data : "", b.len);
	ft_buf_release(&b);
	return s;
}

static bool ours(const char *key)
{
	static const char *const keys[] = { "id", "segments", "reference", "prediction",
					    "prompt_tokens", "completion_tokens", "stop",
					    "prompt_ids", "completion_ids" };
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (!strcmp(key, keys[i]))
			return true;
	return false;
}

/* The record's fields for the output line. */
static void job_fields(struct job *j, const cJSON *rec, unsigned long long recno)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
	char num[32];
	if (cJSON_IsString(id)) {
		j->id_json = json_text(id);
		j->id_text = ft_xstrndup(id->valuestring, strlen(id->valuestring));
	} else if (cJSON_IsNumber(id)) {
		j->id_json = json_text(id);
		j->id_text = ft_xstrndup(j->id_json, strlen(j->id_json));
	} else {
		snprintf(num, sizeof num, "\"%llu\"", recno);
		j->id_json = ft_xstrndup(num, strlen(num));
		j->id_text = ft_xstrndup(num + 1, strlen(num) - 2);
	}
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(rec, "reference");
	j->reference = ref ? json_text(ref) : NULL;
	struct ft_buf b;
	ft_buf_init(&b, 0);
	for (const cJSON *f = rec->child; f; f = f->next) {
		if (ours(f->string))
			continue;
		ft_buf_puts(&b, ",");
		ft_json_write_string(&b, f->string, strlen(f->string));
		ft_buf_puts(&b, ":");
		ft_json_write(&b, f);
	}
	j->rest = ft_xstrndup(b.data ? b.data : "", b.len);
	ft_buf_release(&b);
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->id_json);
	free(j->id_text);
	free(j->reference);
	free(j->rest);
	free(j->ids);
	free(j);
}

/* A job from a parsed record, or NULL with err set. */
static struct job *job_new(struct run *r, const cJSON *rec, struct ft_err *err)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		ft_die(FT_EXIT_DATA, "out of memory");
	job_fields(j, rec, r->recno);
	int rc;
	if (r->o->ids) {
		rc = read_prompt_ids(r, rec, &j->ids, &j->nprompt, err);
	} else {
		rc = ft_sample_read(rec, &r->text, &r->segs, err);
		if (!rc)
			rc = encode_prompt(r, r->text.data, r->text.len, &j->ids, &j->nprompt,
					   &j->lead_space, err);
	}
	if (rc) {
		job_free(j);
		return NULL;
	}
	uint64_t h = ft_hash_siphash(j->id_text, strlen(j->id_text), r->o->seed, 0x67656e6572617465ull);
	ft_rng_seed(&j->rng, h);
	return j;
}

/* ---- input ------------------------------------------------------------- */

static void bad_record(struct run *r, struct ft_err *err, const cJSON *rec)
{
	char prefix[200] = "";
	const cJSON *id = rec ? cJSON_GetObjectItemCaseSensitive(rec, "id") : NULL;
	if (cJSON_IsString(id))
		snprintf(prefix, sizeof prefix, "record '%.150s': ", id->valuestring);
	else if (cJSON_IsNumber(id))
		snprintf(prefix, sizeof prefix, "record '%g': ", id->valuedouble);
	if (r->o->skip_bad) {
		ft_report(err, prefix);
		r->skipped++;
		return;
	}
	ft_report(err, prefix);
	ft_out_abort_all();
	exit(FT_EXIT_DATA);
}

/* The next good record as a job, or NULL at the end of the input. */
static struct job *next_job(struct run *r)
{
	struct ft_err err;
	while (!r->input_done) {
		ft_err_clear(&err);
		if (!r->rd) {
			if (r->file_i >= (r->nfiles ? r->nfiles : 1)) {
				r->input_done = true;
				break;
			}
			const char *path = r->nfiles ? r->files[r->file_i] : "-";
			if (ft_jsonl_open(&r->rd, path, 0, r->o->max_line, &err)) {
				ft_report(&err, NULL);
				ft_out_abort_all();
				exit(FT_EXIT_DATA);
			}
		}
		cJSON *rec = NULL;
		int rc = ft_jsonl_next(r->rd, &rec, &err);
		if (rc == 0) {
			ft_jsonl_close(r->rd);
			r->rd = NULL;
			r->file_i++;
			continue;
		}
		r->recno++;
		if (rc < 0) {
			/* a broken file cannot go on, even with --skip-bad */
			if (rc == FT_E_IO || rc == FT_E_NOMEM || !r->o->skip_bad) {
				ft_report(&err, NULL);
				ft_out_abort_all();
				exit(FT_EXIT_DATA);
			}
			bad_record(r, &err, NULL);
			continue;
		}
		const char *file = ft_jsonl_name(r->rd);
		long line = ft_jsonl_lineno(r->rd);
		struct job *j = job_new(r, rec, &err);
		if (!j) {
			err.file = file;
			err.line = line;
			bad_record(r, &err, rec);
			cJSON_Delete(rec);
			continue;
		}
		cJSON_Delete(rec);
		truncate_prompt(r, j, file, line);
		return j;
	}
	return NULL;
}

/* ---- decoding ---------------------------------------------------------- */

/* The text of a job's first n completion tokens into out (reset first). */
static void completion_text(struct run *r, const struct job *j, int n, struct ft_buf *out)
{
	ft_buf_reset(out);
	struct ft_err err;
	ft_err_clear(&err);
	if (n > 0 && ft_spm_decode(r->vocab.spm, j->ids + j->nprompt, (size_t)n, out, NULL, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
}

/* The start of the earliest stop string in text[0..len), into *at. */
static bool find_stop(const struct opts *o, const char *text, size_t len, size_t *at)
{
	bool found = false;
	for (int i = 0; i < o->nstop; i++) {
		const char *p = memmem(text, len, o->stop[i], strlen(o->stop[i]));
		if (p && (!found || (size_t)(p - text) < *at)) {
			*at = (size_t)(p - text);
			found = true;
		}
	}
	return found;
}

static void accept_token(struct run *r, struct job *j, int32_t t)
{
	j->ids[j->nprompt + j->ncompl++] = t;
	if (r->eos[t]) {
		j->stop = STOP_EOS;
	} else if (r->o->nstop && r->have_vocab) {
		completion_text(r, j, j->ncompl, &r->line);
		if (find_stop(r->o, r->line.data ? r->line.data : "", r->line.len, &j->cut))
			j->stop = STOP_STRING;
	}
	if (!j->stop && j->ncompl >= r->o->max_new)
		j->stop = STOP_LENGTH;
	j->done = j->stop != STOP_NONE;
}

/* The next token of the job whose logits these are. */
static int32_t choose(struct run *r, struct job *j, float *logits)
{
	/* ids the tokenizer has no piece for cannot be written out */
	if (r->have_vocab)
		for (int i = r->vocab.vocab_size; i < r->V; i++)
			logits[i] = -INFINITY;
	if (j->ncompl == 0 && j->lead_space)
		for (int i = 0; i < r->V; i++)
			if (!r->spaced[i] && !r->eos[i])
				logits[i] = -INFINITY;
	double u = r->o->sampling.temperature > 0.0 ? ft_rng_uniform(&j->rng) : 0.0;
	return ft_gen_pick(logits, r->V, &r->o->sampling, u, r->order);
}

/* One forward pass over every busy slot: a new job's prompt, or a running
 * job's last token; then each takes its next token. */
static void step(struct run *r)
{
	static struct ft_gen_feed feeds[MAX_BATCH];
	int nf = 0;
	for (int s = 0; s < r->nslots; s++) {
		struct job *j = r->slot_job[s];
		if (!j)
			continue;
		if (!j->started) {
			feeds[nf++] = (struct ft_gen_feed){ s, j->ids, j->nprompt };
			j->started = true;
			r->prompt_tokens += (unsigned long long)j->nprompt;
		} else {
			feeds[nf++] = (struct ft_gen_feed){ s, j->ids + j->nprompt + j->ncompl - 1, 1 };
		}
	}
	if (!nf)
		return;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_gen_forward(&r->gen, feeds, nf, r->logits, false, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	for (int f = 0; f < nf; f++) {
		struct job *j = r->slot_job[feeds[f].slot];
		accept_token(r, j, choose(r, j, r->logits + (size_t)f * r->V));
		r->completion_tokens++;
		if (j->done)
			r->slot_job[feeds[f].slot] = NULL;
	}
}

static void start_job(struct run *r, int slot, struct job *j)
{
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_gen_reset(&r->gen, slot, j->nprompt + (int)r->o->max_new, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	r->slot_job[slot] = j;
}

/* ---- output ------------------------------------------------------------ */

/* What a finished job says: its completion without the end token, cut
 * before a stop string. */
static void prediction(struct run *r, const struct job *j, struct ft_buf *out)
{
	ft_buf_reset(out);
	if (!r->have_vocab)
		return;
	completion_text(r, j, j->ncompl - (j->stop == STOP_EOS), out);
	if (j->stop == STOP_STRING && j->cut <= out->len) {
		out->len = j->cut;
		if (out->data)
			out->data[out->len] = 0;
	}
}

static void write_job(struct run *r, const struct job *j)
{
	struct ft_buf *b = &r->line;
	prediction(r, j, &r->text);
	ft_buf_reset(b);
	int rc = ft_buf_printf(b, "{\"id\":%s,\"prediction\":", j->id_json);
	rc |= ft_json_write_string(b, r->text.data ? r->text.data : "", r->text.len);
	if (j->reference)
		rc |= ft_buf_printf(b, ",\"reference\":%s", j->reference);
	rc |= ft_buf_printf(b, ",\"prompt_tokens\":%d,\"completion_tokens\":%d,\"stop\":\"%s\"%s",
			    j->nprompt, j->ncompl, stop_names[j->stop], j->rest);
	if (r->o->print_ids) {
		rc |= ft_buf_puts(b, ",\"prompt_ids\":[");
		for (int i = 0; i < j->nprompt + j->ncompl; i++)
			rc |= ft_buf_printf(b, "%s%d%s", i == 0 || i == j->nprompt ? "" : ",", j->ids[i],
					    i == j->nprompt - 1 ? "],\"completion_ids\":[" : "");
		rc |= ft_buf_puts(b, "]");
	}
	rc |= ft_buf_puts(b, "}\n");
	if (rc)
		ft_die(FT_EXIT_DATA, "out of memory");
	if (ft_out_write(r->out, b->data, b->len))
		ft_die(FT_EXIT_DATA, "%s: write error", ft_out_name(r->out));
	r->records++;
}

static void queue_push(struct run *r, struct job *j)
{
	if (r->qhead && r->qhead == r->qlen)
		r->qhead = r->qlen = 0;
	if (r->qlen == r->qcap) {
		if (r->qhead) {
			memmove(r->queue, r->queue + r->qhead, (r->qlen - r->qhead) * sizeof *r->queue);
			r->qlen -= r->qhead;
			r->qhead = 0;
		} else {
			r->qcap = r->qcap ? 2 * r->qcap : 64;
			r->queue = realloc(r->queue, r->qcap * sizeof *r->queue);
			if (!r->queue)
				ft_die(FT_EXIT_DATA, "out of memory");
		}
	}
	r->queue[r->qlen++] = j;
}

/* Write the finished jobs at the head of the queue. */
static void flush_done(struct run *r)
{
	while (r->qhead < r->qlen && r->queue[r->qhead]->done) {
		write_job(r, r->queue[r->qhead]);
		job_free(r->queue[r->qhead]);
		r->qhead++;
	}
	ft_progress_update(&r->prog, r->records, 0);
}

static void run_batch(struct run *r)
{
	for (;;) {
		for (int s = 0; s < r->nslots && !r->input_done; s++) {
			if (r->slot_job[s])
				continue;
			struct job *j = next_job(r);
			if (!j)
				break;
			queue_push(r, j);
			start_job(r, s, j);
		}
		bool busy = false;
		for (int s = 0; s < r->nslots; s++)
			busy |= r->slot_job[s] != NULL;
		if (!busy)
			break;
		step(r);
		flush_done(r);
	}
}

/* ---- interactive ------------------------------------------------------- */

struct chat {
	struct ft_tpl *tpl;
	cJSON *messages;
	struct ft_render render;
};

static void chat_init(struct chat *c, struct run *r)
{
	memset(c, 0, sizeof *c);
	ft_render_init(&c->render);
	c->messages = cJSON_CreateArray();
	if (!r->o->template_path)
		return;
	struct ft_buf src;
	struct ft_err err;
	ft_err_clear(&err);
	ft_buf_init(&src, (size_t)64 << 20);
	if (ft_buf_read_file(&src, r->o->template_path, &err) ||
	    ft_tpl_compile(&c->tpl, r->o->template_path, src.data ? src.data : "", src.len, &err)) {
		if (!err.file)
			err.file = r->o->template_path;
		ft_report(&err, NULL);
		exit(FT_EXIT_DATA);
	}
	ft_buf_release(&src);
}

static void chat_release(struct chat *c)
{
	ft_tpl_free(c->tpl);
	cJSON_Delete(c->messages);
	ft_render_release(&c->render);
}

static void add_message(cJSON *messages, const char *role, const char *content)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "role", role);
	cJSON_AddStringToObject(m, "content", content);
	cJSON_AddItemToArray(messages, m);
}

/* The prompt for one line: the line as data text, or the conversation so
 * far rendered through the template. */
static int chat_prompt(struct run *r, struct chat *c, const char *line, struct job *j,
		       struct ft_err *err)
{
	if (!c->tpl) {
		size_t len = strlen(line);
		r->segs.n = 0;
		if (len) {
			if (r->segs.cap < 1) {
				r->segs.v = realloc(r->segs.v, sizeof *r->segs.v);
				if (!r->segs.v)
					ft_die(FT_EXIT_DATA, "out of memory");
				r->segs.cap = 1;
			}
			r->segs.v[0] = (struct ft_segment){ .off = 0, .len = len, .data = true };
			r->segs.n = 1;
		}
		return encode_prompt(r, line, len, &j->ids, &j->nprompt, &j->lead_space, err);
	}
	add_message(c->messages, "user", line);
	struct ft_tpl_vars *vars = ft_tpl_vars_new();
	const struct ft_vocab *v = &r->vocab;
	const char *bos = v->bos >= 0 ? ft_spm_piece(v->spm, v->bos, NULL) : "";
	const char *eos = v->eos >= 0 ? ft_spm_piece(v->spm, v->eos, NULL) : "";
	int rc = !vars || ft_tpl_vars_json(vars, "messages", c->messages) ||
		 ft_tpl_vars_bool(vars, "add_generation_prompt", true) ||
		 ft_tpl_vars_str(vars, "bos_token", bos, FT_TPL_LITERAL) ||
		 ft_tpl_vars_str(vars, "eos_token", eos, FT_TPL_LITERAL);
	if (rc) {
		ft_tpl_vars_free(vars);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	ft_render_reset(&c->render);
	rc = ft_tpl_render(c->tpl, vars, &c->render, err);
	ft_tpl_vars_free(vars);
	if (!rc && ft_segments_from_render(&r->segs, &c->render))
		rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
	if (rc)
		return rc;
	return encode_prompt(r, c->render.text.data, c->render.text.len, &j->ids, &j->nprompt,
			     &j->lead_space,
			     err);
}

static void run_interactive(struct run *r)
{
	struct chat c;
	chat_init(&c, r);
	bool tty = isatty(STDIN_FILENO);
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	for (;;) {
		if (tty)
			fputs("> ", stderr);
		ssize_t n = getline(&line, &cap, stdin);
		if (n < 0)
			break;
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		struct job *j = calloc(1, sizeof *j);
		struct ft_err err;
		ft_err_clear(&err);
		if (!j)
			ft_die(FT_EXIT_DATA, "out of memory");
		if (chat_prompt(r, &c, line, j, &err)) {
			err.file = "<stdin>";
			err.line = lineno;
			ft_report(&err, NULL);
			job_free(j);
			if (c.tpl)   /* the user turn stays out of the conversation */
				cJSON_DeleteItemFromArray(c.messages, cJSON_GetArraySize(c.messages) - 1);
			continue;
		}
		ft_rng_seed(&j->rng, r->o->seed ^ (uint64_t)lineno * 0x9e3779b97f4a7c15ull);
		truncate_prompt(r, j, "<stdin>", lineno);
		start_job(r, 0, j);
		while (!j->done)
			step(r);
		prediction(r, j, &r->text);
		printf("%s\n", r->text.data ? r->text.data : "");
		fflush(stdout);
		if (c.tpl)
			add_message(c.messages, "assistant", r->text.data ? r->text.data : "");
		job_free(j);
	}
	free(line);
	chat_release(&c);
}

/* ---- command line ------------------------------------------------------ */

enum {
	OPT_VERSION = 256, OPT_BOS, OPT_PREFIX, OPT_EOT, OPT_TEMP, OPT_TOPK, OPT_TOPP, OPT_STOP,
	OPT_THREADS, OPT_DEVICE, OPT_IDS, OPT_PRINT_IDS, OPT_SKIP_BAD, OPT_MAX_LINE, OPT_PROGRESS,
};

static void add_str(const char ***v, int *n, const char *s)
{
	*v = realloc(*v, (size_t)(*n + 1) * sizeof **v);
	if (!*v)
		ft_die(FT_EXIT_DATA, "out of memory");
	(*v)[(*n)++] = s;
}

static void parse_args(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "adapter", required_argument, NULL, 'a' },
		{ "tokenizer", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' },
		{ "bos", required_argument, NULL, OPT_BOS },
		{ "dummy-prefix", required_argument, NULL, OPT_PREFIX },
		{ "eot", required_argument, NULL, OPT_EOT },
		{ "max-new-tokens", required_argument, NULL, 'n' },
		{ "temperature", required_argument, NULL, OPT_TEMP },
		{ "top-k", required_argument, NULL, OPT_TOPK },
		{ "top-p", required_argument, NULL, OPT_TOPP },
		{ "seed", required_argument, NULL, 's' },
		{ "stop", required_argument, NULL, OPT_STOP },
		{ "batch", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "output", required_argument, NULL, 'o' },
		{ "ids", no_argument, NULL, OPT_IDS },
		{ "print-ids", no_argument, NULL, OPT_PRINT_IDS },
		{ "interactive", no_argument, NULL, 'i' },
		{ "template", required_argument, NULL, 'T' },
		{ "skip-bad", no_argument, NULL, OPT_SKIP_BAD },
		{ "max-line", required_argument, NULL, OPT_MAX_LINE },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "m:a:t:c:n:s:b:o:iT:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model_dir = optarg; break;
		case 'a': o->adapter = optarg; break;
		case 't': o->tokenizer = optarg; break;
		case 'c': o->config = optarg; break;
		case OPT_BOS:
			if (strcmp(optarg, "add") && strcmp(optarg, "keep"))
				ft_usage_error("--bos must be add or keep, not '%s'", optarg);
			o->add_bos = !strcmp(optarg, "add");
			o->bos_set = true;
			break;
		case OPT_PREFIX:
			if (strcmp(optarg, "each") && strcmp(optarg, "first"))
				ft_usage_error("--dummy-prefix must be each or first, not '%s'", optarg);
			o->prefix_first = !strcmp(optarg, "first");
			o->prefix_set = true;
			break;
		case OPT_EOT: add_str(&o->eot, &o->neot, optarg); break;
		case 'n': o->max_new = ft_opt_long("--max-new-tokens", optarg, 1, 1 << 24); break;
		case OPT_TEMP:
			o->sampling.temperature = ft_opt_double("--temperature", optarg, 0.0, 1e6);
			break;
		case OPT_TOPK:
			o->sampling.top_k = (int)ft_opt_long("--top-k", optarg, 0, 1 << 30);
			o->top_k_set = true;
			break;
		case OPT_TOPP:
			o->sampling.top_p = ft_opt_double("--top-p", optarg, 0.0, 1.0);
			if (!(o->sampling.top_p > 0.0))
				ft_usage_error("--top-p must be above 0");
			o->top_p_set = true;
			break;
		case 's': o->seed = ft_opt_u64("--seed", optarg); break;
		case OPT_STOP:
			if (!optarg[0])
				ft_usage_error("--stop needs a non-empty string");
			add_str(&o->stop, &o->nstop, optarg);
			break;
		case 'b': o->batch = (int)ft_opt_long("--batch", optarg, 1, MAX_BATCH); break;
		case OPT_THREADS: o->threads = (int)ft_opt_long("--threads", optarg, 1, 4096); break;
		case OPT_DEVICE:
			if (ft_device_parse(optarg, &o->device))
				ft_usage_error("--device must be cpu, cuda or cuda:N, not '%s'", optarg);
			break;
		case 'o': o->output = optarg; break;
		case OPT_IDS: o->ids = true; break;
		case OPT_PRINT_IDS: o->print_ids = true; break;
		case 'i': o->interactive = true; break;
		case 'T': o->template_path = optarg; break;
		case OPT_SKIP_BAD: o->skip_bad = true; break;
		case OPT_MAX_LINE: o->max_line = ft_opt_size("--max-line", optarg); break;
		case OPT_PROGRESS: o->progress = true; break;
		case 'q': o->quiet = true; break;
		case 'h':
			fputs(usage_text, stdout);
			ft_close_stdout();
			exit(FT_EXIT_OK);
		case OPT_VERSION:
			printf("ft-generate %s\n", FT_VERSION);
			ft_close_stdout();
			exit(FT_EXIT_OK);
		case ':':
			ft_usage_error("option '%s' needs a value", ft_opt_name(argv[optind - 1]));
		default:
			ft_usage_error("unknown option '%s'", ft_opt_name(argv[optind - 1]));
		}
	}
	if (!o->model_dir)
		ft_usage_error("no model: give -m DIR");
	if ((o->top_k_set || o->top_p_set) && o->sampling.temperature <= 0.0)
		ft_usage_error("--top-k and --top-p need --temperature above 0");
	if (o->template_path && !o->interactive)
		ft_usage_error("--template needs --interactive");
	if (o->interactive && (o->ids || optind < argc || o->output))
		ft_usage_error("--interactive reads standard input and writes standard output: "
			       "no FILE, -o or --ids");
}

static void summary(const struct run *r, double seconds)
{
	char extra[96] = "";
	int n = 0;
	if (r->truncated)
		n += snprintf(extra + n, sizeof extra - (size_t)n, ", %llu truncated", r->truncated);
	if (r->skipped)
		snprintf(extra + n, sizeof extra - (size_t)n, ", %llu skipped", r->skipped);
	ft_warn("%llu records, %llu prompt tokens, %llu generated in %.1f s (%.1f tokens/s)%s",
		r->records, r->prompt_tokens, r->completion_tokens, seconds,
		seconds > 0 ? (double)r->completion_tokens / seconds : 0.0, extra);
}

int main(int argc, char **argv)
{
	ft_cli_init("ft-generate");
	struct opts o = { .add_bos = true, .batch = 8, .device = -1,
			  .sampling = { .temperature = 0.0, .top_k = 0, .top_p = 1.0 } };
	parse_args(&o, argc, argv);
	if (o.config) {
		/* tokenizer_config.json: "legacy" and "add_bos_token" set defaults
		 * the command line did not, as in ft-tokenize */
		cJSON *c = read_json(o.config);
		const cJSON *legacy = cJSON_GetObjectItemCaseSensitive(c, "legacy");
		if (!o.prefix_set && cJSON_IsBool(legacy))
			o.prefix_first = cJSON_IsFalse(legacy);
		const cJSON *bos = cJSON_GetObjectItemCaseSensitive(c, "add_bos_token");
		if (!o.bos_set && cJSON_IsBool(bos))
			o.add_bos = cJSON_IsTrue(bos);
		cJSON_Delete(c);
	}
	if (o.threads)
		omp_set_num_threads(o.threads);
	/* OpenBLAS keeps its own pool: the same count */
	openblas_set_num_threads(omp_get_max_threads());

	struct run r = { .o = &o };
	load_model(&r, &o);
	load_tokenizer(&r);
	if ((o.nstop || o.interactive) && !r.have_vocab)
		ft_usage_error("--stop and --interactive need a tokenizer: give -t FILE");
	stop_tokens(&r);
	int slots = r.nslots = o.interactive ? 1 : o.batch;
	struct ft_err err;
	ft_err_clear(&err);
	const struct ft_ops *ops = &ft_ops_cpu;
	const struct ft_decode_ops *dops = &ft_decode_ops_cpu;
	void *xblock = NULL;
	struct ft_weights xw = { 0 };
	if (o.device >= 0) {
		if (!(ops = ft_ops_cuda_open(o.device, &err)))
			ft_die(FT_EXIT_DATA, "%s", err.msg);
		dops = ft_decode_ops_cuda();
		xblock = upload_weights(ops, &r.model, &xw);
	}
	if (ft_gen_init(&r.gen, ops, dops, &r.model, slots, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	if (xblock)
		r.gen.xw = &xw;
	r.slot_job = calloc((size_t)slots, sizeof *r.slot_job);
	r.logits = malloc((size_t)slots * (size_t)r.V * sizeof *r.logits);
	r.order = malloc((size_t)r.V * sizeof *r.order);
	if (!r.slot_job || !r.logits || !r.order)
		ft_die(FT_EXIT_DATA, "out of memory");
	ft_spm_tokens_init(&r.toks);
	ft_buf_init(&r.text, 0);
	ft_buf_init(&r.line, 0);
	ft_segments_init(&r.segs);

	double t0 = now();
	if (o.interactive) {
		run_interactive(&r);
	} else {
		r.nfiles = argc - optind;
		r.files = argv + optind;
		if (ft_out_open(&r.out, o.output, &err))
			ft_die(FT_EXIT_DATA, "%s", err.msg);
		ft_progress_init(&r.prog, o.progress);
		run_batch(&r);
		ft_progress_done(&r.prog);
		if (ft_out_commit(r.out, &err))
			ft_die(FT_EXIT_DATA, "%s", err.msg);
	}
	if (!o.quiet && !o.interactive)
		summary(&r, now() - t0);

	ft_gen_release(&r.gen);
	if (xblock) {
		ops->release(xblock);
		ft_weights_release(&xw);
	}
	ft_model_release(&r.model);
	if (r.have_vocab)
		ft_vocab_release(&r.vocab);
	ft_spm_tokens_release(&r.toks);
	ft_buf_release(&r.text);
	ft_buf_release(&r.line);
	ft_segments_release(&r.segs);
	free(r.slot_job);
	free(r.logits);
	free(r.order);
	free(r.eos);
	free(r.spaced);
	free(r.queue);
	free(o.eot);
	free(o.stop);
	return FT_EXIT_OK;
}
