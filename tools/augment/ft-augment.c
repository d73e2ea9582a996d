/* ft-augment: add variants of JSON Lines records written by a chat model
 * (any OpenAI-compatible /chat/completions endpoint) or, offline, by lexicon
 * substitution.
 *
 * One thread runs everything: records are read into a window of slots (the
 * reorder buffer), each selected record's variants become items, an item
 * becomes a request body rendered from the prompt, looked up in the reply
 * cache, and otherwise queued. Queued items leave in (ready time, input
 * order) when the in-flight limit and the rpm/tpm buckets allow; replies
 * come back in any order, failures are queued again after a backoff, and
 * the oldest slot is written out as soon as all its items are settled. So
 * output order is input order, memory is bounded by the window, and one
 * slow or throttled request never holds up the requests behind it (only,
 * once the window is full, the output). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "buf.h"
#include "cache.h"
#include "chat.h"
#include "cli.h"
#include "client.h"
#include "hash.h"
#include "jinja.h"
#include "json.h"
#include "jsonl.h"
#include "lexicon.h"
#include "out.h"
#include "ratelimit.h"

#define MAX_VARIANTS 1000
#define MAX_PATH_PARTS 32
#define MAX_REQUIRE 32
#define PROMPT_MAX ((size_t)1 << 20)
#define EXCERPT 200

static const char usage_text[] =
"Usage: ft-augment -p PROMPT -m MODEL --into PATH [OPTION]... [FILE]...\n"
"  or:  ft-augment --backend=lexicon --lexicon=TSV --into PATH [OPTION]... [FILE]...\n"
"Add variants of JSON Lines records, written by a chat model through an\n"
"OpenAI-compatible /chat/completions endpoint, or offline by phrase\n"
"substitution. Every record is written out followed by its variants, in input\n"
"order. With no FILE, or when FILE is -, read standard input; .gz input is\n"
"read transparently.\n"
"\n"
"Selection:\n"
"  -n, --variants=N      variants per selected record (default 1)\n"
"      --prob=P          augment a seeded fraction P of the records (default 1)\n"
"      --select=EXPR     augment only records for which the template expression\n"
"                        EXPR is true; the record's fields are its variables\n"
"  -s, --seed=N          seed of --prob and of the lexicon (default 0)\n"
"\n"
"Prompt and request (api backend):\n"
"  -p, --prompt=FILE     prompt template (ft-template's language) rendering the\n"
"                        messages as a JSON array, or text sent as one user\n"
"                        message; variables: the record's fields, record,\n"
"                        variant (0-based), variants. Blank output: no variant\n"
"      --system=TEXT     system message before a text prompt\n"
"  -m, --model=NAME      model to ask\n"
"      --base-url=URL    endpoint base (default $OPENAI_BASE_URL, else\n"
"                        https://api.openai.com/v1); requests go to\n"
"                        URL/chat/completions\n"
"      --api-key-file=FILE  read the API key from FILE's first line (default:\n"
"                        $OPENAI_API_KEY; none: no Authorization header)\n"
"      --temperature=T, --top-p=P, --max-tokens=N\n"
"                        sampling parameters (default: the server's)\n"
"      --api-seed=N      send \"seed\": N + variant index\n"
"      --json-mode       ask for a JSON object (response_format json_object)\n"
"      --dry-run         print the request bodies instead of sending them\n"
"\n"
"Reply and variant:\n"
"      --into=PATH       where the reply goes in the variant: a dotted path like\n"
"                        text or dialog.0.content (lexicon: '*' matches any key)\n"
"      --append          append the reply to the array at PATH (a JSON array\n"
"                        reply appends its elements)\n"
"      --json            parse the reply as JSON (a ```json fence is removed)\n"
"      --require=KEY     with --json: the reply (each element of an array\n"
"                        reply) must have KEY, a dotted path; repeatable\n"
"      --tag=NAME        variant ids are ID-NAME1, ID-NAME2, ... (default aug);\n"
"                        give each augmentation of a pipeline its own\n"
"      --drop-original   write only the variants, no input record\n"
"\n"
"Throughput and faults:\n"
"  -c, --concurrency=C   requests in flight (default 8)\n"
"      --rpm=N, --tpm=N  requests and tokens per minute (default: unlimited\n"
"                        until the server's x-ratelimit headers say otherwise)\n"
"      --retries=K       retries of a failed request (default 5)\n"
"      --backoff=S       first retry delay in seconds, doubling, with full\n"
"                        jitter, at most 60 (default 1)\n"
"      --timeout=S       seconds per request (default 120)\n"
"      --window=N        records held for in-order output (default 1024)\n"
"      --rejects=FILE    write variants that failed, with the reason, to FILE\n"
"\n"
"Cache:\n"
"      --cache=DIR       reply cache (default $XDG_CACHE_HOME/ft/augment, or\n"
"                        ~/.cache/ft/augment); a rerun pays for nothing cached\n"
"      --no-cache        neither read nor write the cache\n"
"\n"
"Lexicon backend:\n"
"      --backend=NAME    api (default) or lexicon\n"
"      --lexicon=FILE    lexicon TSV: one group of interchangeable phrases a line\n"
"      --lexicon-prob=P  chance of replacing each match (default 0.5)\n"
"\n"
"Other:\n"
"  -o, --output=FILE     write to FILE, atomically (default standard output)\n"
"      --price-in=USD, --price-out=USD\n"
"                        price per million prompt / completion tokens, for\n"
"                        the cost in the summary\n"
"      --skip-bad        skip bad records with a warning, count them, go on\n"
"      --max-line=SIZE   longest accepted line, K/M/G suffix (default 1G)\n"
"      --progress        show progress even if stderr is not a terminal\n"
"  -q, --quiet           no summary on stderr\n"
"  -h, --help            show this help and exit\n"
"      --version         show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input, write error or a refused request\n"
"(HTTP 401, 403, 404), 2 usage error, 3 some variants were rejected.\n";

enum {
	OPT_PROB = 256, OPT_SELECT, OPT_SYSTEM, OPT_BASE_URL, OPT_KEY_FILE, OPT_TEMPERATURE,
	OPT_TOP_P, OPT_MAX_TOKENS, OPT_API_SEED, OPT_JSON_MODE, OPT_DRY_RUN, OPT_INTO,
	OPT_APPEND, OPT_JSON, OPT_REQUIRE, OPT_DROP, OPT_RPM, OPT_TPM, OPT_RETRIES,
	OPT_BACKOFF, OPT_TIMEOUT, OPT_WINDOW, OPT_REJECTS, OPT_CACHE, OPT_NO_CACHE,
	OPT_BACKEND, OPT_LEXICON, OPT_LEXICON_PROB, OPT_PRICE_IN, OPT_PRICE_OUT,
	OPT_SKIP_BAD, OPT_MAX_LINE, OPT_PROGRESS, OPT_VERSION, OPT_TAG,
};

static const struct option long_opts[] = {
	{ "variants", required_argument, NULL, 'n' },
	{ "prob", required_argument, NULL, OPT_PROB },
	{ "select", required_argument, NULL, OPT_SELECT },
	{ "seed", required_argument, NULL, 's' },
	{ "prompt", required_argument, NULL, 'p' },
	{ "system", required_argument, NULL, OPT_SYSTEM },
	{ "model", required_argument, NULL, 'm' },
	{ "base-url", required_argument, NULL, OPT_BASE_URL },
	{ "api-key-file", required_argument, NULL, OPT_KEY_FILE },
	{ "temperature", required_argument, NULL, OPT_TEMPERATURE },
	{ "top-p", required_argument, NULL, OPT_TOP_P },
	{ "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
	{ "api-seed", required_argument, NULL, OPT_API_SEED },
	{ "json-mode", no_argument, NULL, OPT_JSON_MODE },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "into", required_argument, NULL, OPT_INTO },
	{ "append", no_argument, NULL, OPT_APPEND },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "require", required_argument, NULL, OPT_REQUIRE },
	{ "drop-original", no_argument, NULL, OPT_DROP },
	{ "tag", required_argument, NULL, OPT_TAG },
	{ "concurrency", required_argument, NULL, 'c' },
	{ "rpm", required_argument, NULL, OPT_RPM },
	{ "tpm", required_argument, NULL, OPT_TPM },
	{ "retries", required_argument, NULL, OPT_RETRIES },
	{ "backoff", required_argument, NULL, OPT_BACKOFF },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "window", required_argument, NULL, OPT_WINDOW },
	{ "rejects", required_argument, NULL, OPT_REJECTS },
	{ "cache", required_argument, NULL, OPT_CACHE },
	{ "no-cache", no_argument, NULL, OPT_NO_CACHE },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "lexicon", required_argument, NULL, OPT_LEXICON },
	{ "lexicon-prob", required_argument, NULL, OPT_LEXICON_PROB },
	{ "output", required_argument, NULL, 'o' },
	{ "price-in", required_argument, NULL, OPT_PRICE_IN },
	{ "price-out", required_argument, NULL, OPT_PRICE_OUT },
	{ "skip-bad", no_argument, NULL, OPT_SKIP_BAD },
	{ "max-line", required_argument, NULL, OPT_MAX_LINE },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* A dotted path, split once: "dialog.0.content" -> dialog, 0, content. */
struct path {
	const char *text;
	char *part[MAX_PATH_PARTS];
	int n;
};

static struct {
	const char *prompt, *system, *model, *base_url, *key_file, *into_text, *select;
	const char *rejects, *cache_dir, *lexicon, *output, *tag;
	struct path into;
	const char *require_text[MAX_REQUIRE];
	struct path require[MAX_REQUIRE];
	int nrequire;
	long variants, concurrency, retries, window;
	double prob, rpm, tpm, backoff, timeout, lexicon_prob, price_in, price_out;
	uint64_t seed;
	struct ft_chat_params params;
	bool api_seed_given;
	long long api_seed;
	bool lexicon_backend, dry_run, append, json, drop_original, no_cache, skip_bad;
	bool progress, quiet, priced;
	size_t max_line;
} o;

/* ---- records, items, the window ---- */

enum item_state { ITEM_QUEUED, ITEM_SENT, ITEM_OK, ITEM_REJECTED, ITEM_SKIPPED };

struct slot;

struct item {
	struct slot *slot;
	int variant;
	enum item_state state;
	char *body;              /* request body */
	size_t body_len;
	char key[65];            /* cache key */
	double est_tokens;       /* for the tpm bucket */
	int attempts;
	double ready_at;
	unsigned long long order;   /* queue tie-break: input order */
	cJSON *variant_rec;      /* the finished variant */
	char *reason;            /* why rejected */
};

struct slot {
	char *line;              /* the record as read (written back verbatim) */
	size_t line_len;
	cJSON *rec;
	char *file;
	long lineno;
	bool bad;                  /* skipped with --skip-bad: nothing is written */
	int nitems, unsettled;
	struct item *items;
};

static struct {
	struct slot **ring;
	size_t cap, head, count;
	struct item **heap;      /* queued items, by (ready_at, order) */
	size_t nheap, heapcap;
} w;

static struct {
	unsigned long long records, bad, selected, variants_out, rejected, skipped, unchanged;
	unsigned long long requests, retries, cache_hits, cache_damaged, replies_ok, http_replies;
	long long prompt_tokens, completion_tokens, cached_prompt_tokens, cached_completion_tokens;
} st;

static struct ft_tpl *prompt_tpl, *select_tpl;
static struct ft_tpl_vars *vars;
static struct ft_render render;
static struct ft_cache cache;
static bool cache_on;
static struct ft_lexicon *lexicon;
static struct client *client;
static struct ft_bucket rpm_bucket, tpm_bucket;
static struct ft_out *out, *rejects_out;
static char *url, *url_shown, *api_key;
static uint64_t backoff_rng;
static volatile sig_atomic_t interrupted;
static unsigned long long next_order;
static struct ft_buf obuf;

static double now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		ft_die(1, "clock_gettime: %s", strerror(errno));
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void oom_check(int rc)
{
	if (rc == FT_E_NOMEM)
		ft_die(1, "out of memory");
}

/* ---- secrets ---- */

/* Replace in s every run of 6 or more bytes that also occurs in the API
 * key by "***": a server's error may quote the key, whole or masked. */
static void scrub(char *s)
{
	if (!api_key || !*api_key)
		return;
	size_t klen = strlen(api_key);
	struct ft_buf b;
	ft_buf_init(&b, 0);
	for (size_t i = 0; s[i];) {
		size_t best = 0;
		for (size_t j = 0; j < klen; j++) {
			size_t k = 0;
			while (s[i + k] && j + k < klen && s[i + k] == api_key[j + k])
				k++;
			if (k > best)
				best = k;
		}
		if (best >= 6) {
			oom_check(ft_buf_puts(&b, "***"));
			i += best;
		} else {
			oom_check(ft_buf_putc(&b, s[i]));
			i++;
		}
	}
	memcpy(s, b.data ? b.data : "", b.len + 1);   /* never longer: runs of >= 6 became 3 */
	ft_buf_release(&b);
}

/* ---- paths ---- */

static void path_parse(struct path *p, const char *opt, const char *text, bool wildcards)
{
	p->text = text;
	p->n = 0;
	const char *s = text;
	if (!*s)
		ft_usage_error("%s: empty path", opt);
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);
		if (!len)
			ft_usage_error("%s: empty part in path '%s'", opt, text);
		if (p->n == MAX_PATH_PARTS)
			ft_usage_error("%s: path '%s' has more than %d parts", opt, text,
				       MAX_PATH_PARTS);
		p->part[p->n] = ft_xstrndup(s, len);
		if (!wildcards && !strcmp(p->part[p->n], "*"))
			ft_usage_error("%s: '*' is only for the lexicon backend", opt);
		p->n++;
		if (!dot)
			break;
		s = dot + 1;
	}
}

static bool is_index(const char *s, long *idx)
{
	if (!isdigit((unsigned char)*s))
		return false;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (*end || errno || v > 1000000000L)
		return false;
	*idx = v;
	return true;
}

/* The child of node named by part (object key, or array index), or NULL. */
static cJSON *child(cJSON *node, const char *part)
{
	long idx;
	if (cJSON_IsObject(node))
		return cJSON_GetObjectItemCaseSensitive(node, part);
	if (cJSON_IsArray(node) && is_index(part, &idx))
		return cJSON_GetArrayItem(node, (int)idx);
	return NULL;
}

/* The node at p's first `upto` parts, or NULL with why set. */
static cJSON *path_walk(cJSON *root, const struct path *p, int upto, char *why, size_t size)
{
	cJSON *n = root;
	for (int i = 0; i < upto; i++) {
		cJSON *c = child(n, p->part[i]);
		if (!c) {
			snprintf(why, size, "'%s' has no '%s'", i ? p->part[i - 1] : "record",
				 p->part[i]);
			return NULL;
		}
		n = c;
	}
	return n;
}

/* Can the reply go into rec at --into? (the record's shape, checked when
 * the record is read, so a bad record fails before any request is paid) */
static bool into_fits(cJSON *rec, char *why, size_t size)
{
	const struct path *p = &o.into;
	cJSON *parent = path_walk(rec, p, p->n - 1, why, size);
	if (!parent)
		return false;
	const char *last = p->part[p->n - 1];
	long idx;
	if (o.append) {
		cJSON *t = child(parent, last);
		if (!cJSON_IsArray(t)) {
			snprintf(why, size, "--append: '%s' is %s", last,
				 t ? "not an array" : "missing");
			return false;
		}
		return true;
	}
	if (cJSON_IsObject(parent))
		return true;
	if (cJSON_IsArray(parent) && is_index(last, &idx) && idx < cJSON_GetArraySize(parent))
		return true;
	snprintf(why, size, "'%s' is not an object or an array with index '%s'",
		 p->n > 1 ? p->part[p->n - 2] : "record", last);
	return false;
}

/* Put value (owned) into rec at --into. */
static void into_set(cJSON *rec, cJSON *value)
{
	const struct path *p = &o.into;
	char why[256];
	cJSON *parent = path_walk(rec, p, p->n - 1, why, sizeof why);
	const char *last = p->part[p->n - 1];
	long idx;
	if (o.append) {
		cJSON *t = child(parent, last);
		if (cJSON_IsArray(value)) {
			cJSON *e;
			while ((e = value->child)) {
				cJSON_DetachItemViaPointer(value, e);
				cJSON_AddItemToArray(t, e);
			}
			cJSON_Delete(value);
		} else {
			cJSON_AddItemToArray(t, value);
		}
	} else if (cJSON_IsObject(parent)) {
		if (cJSON_GetObjectItemCaseSensitive(parent, last))
			cJSON_ReplaceItemInObjectCaseSensitive(parent, last, value);
		else
			cJSON_AddItemToObject(parent, last, value);
	} else {
		is_index(last, &idx);
		cJSON_ReplaceItemInArray(parent, (int)idx, value);
	}
}

/* ---- records ---- */

/* The record's id as text (string, or integer literal), or false. */
static bool id_text(const cJSON *rec, char *buf, size_t size)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
	if (cJSON_IsString(id) && id->valuestring[0]) {
		snprintf(buf, size, "%s", id->valuestring);
		return strlen(id->valuestring) < size;
	}
	if (ft_json_is_int(id)) {
		snprintf(buf, size, "%lld", (long long)ft_json_int(id));
		return true;
	}
	return false;
}

static void bind_record(const cJSON *rec)
{
	ft_tpl_vars_clear(vars);
	for (const cJSON *f = rec->child; f; f = f->next)
		oom_check(ft_tpl_vars_json(vars, f->string, f));
	oom_check(ft_tpl_vars_json(vars, "record", rec));
}

static bool is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)s[i]))
			return false;
	return true;
}

/* Does --select hold for rec? -1: render error (reported). */
static int select_holds(struct slot *s)
{
	if (!select_tpl)
		return 1;
	bind_record(s->rec);
	ft_render_reset(&render);
	struct ft_err err = { 0 };
	if (ft_tpl_render(select_tpl, vars, &render, &err)) {
		oom_check(err.code);
		ft_warn("%s:%ld: --select: %s", s->file, s->lineno, err.msg);
		return -1;
	}
	return render.text.len > 0;
}

static bool chosen_by_prob(struct slot *s)
{
	if (o.prob >= 1)
		return true;
	char id[512];
	uint64_t h = id_text(s->rec, id, sizeof id)
			     ? ft_hash_siphash(id, strlen(id), o.seed, 0x61756731)
			     : ft_hash_siphash(s->line, s->line_len, o.seed, 0x61756732);
	return ft_hash_unit(h) < o.prob;
}

/* Render the prompt for variant v of s into messages; 0 ok, 1 blank
 * (skip the variant), -1 error (reported). */
static int render_messages(struct slot *s, int v, cJSON **messages)
{
	*messages = NULL;
	bind_record(s->rec);
	cJSON *vn = cJSON_CreateNumber(v), *nn = cJSON_CreateNumber((double)o.variants);
	if (!vn || !nn)
		ft_die(1, "out of memory");
	vn->type |= FT_JSON_INTLIT;
	nn->type |= FT_JSON_INTLIT;
	oom_check(ft_tpl_vars_json(vars, "variant", vn));
	oom_check(ft_tpl_vars_json(vars, "variants", nn));
	ft_render_reset(&render);
	struct ft_err err = { 0 };
	int rc = ft_tpl_render(prompt_tpl, vars, &render, &err);
	ft_tpl_vars_clear(vars);
	cJSON_Delete(vn);
	cJSON_Delete(nn);
	if (rc) {
		oom_check(err.code);
		ft_warn("%s:%ld: %s:%ld:%ld: %s", s->file, s->lineno, o.prompt, err.line, err.col,
			err.msg);
		return -1;
	}
	const char *t = render.text.data ? render.text.data : "";
	size_t len = render.text.len;
	while (len && isspace((unsigned char)*t))
		t++, len--;
	while (len && isspace((unsigned char)t[len - 1]))
		len--;
	if (!len)
		return 1;
	cJSON *m = NULL;
	if (*t == '[' && ft_json_parse(t, len, &m, &err) == 0 && cJSON_IsArray(m)) {
		if (ft_chat_check_messages(m, &err)) {
			ft_warn("%s:%ld: %s: the rendered messages: %s", s->file, s->lineno,
				o.prompt, err.msg);
			cJSON_Delete(m);
			return -1;
		}
		*messages = m;
		return 0;
	}
	cJSON_Delete(m);
	m = cJSON_CreateArray();
	if (!m)
		ft_die(1, "out of memory");
	if (o.system) {
		cJSON *sys = cJSON_CreateObject();
		if (!sys || !cJSON_AddStringToObject(sys, "role", "system") ||
		    !cJSON_AddStringToObject(sys, "content", o.system))
			ft_die(1, "out of memory");
		cJSON_AddItemToArray(m, sys);
	}
	cJSON *u = cJSON_CreateObject();
	char *text = ft_xstrndup(t, len);
	if (!u || !cJSON_AddStringToObject(u, "role", "user") ||
	    !cJSON_AddStringToObject(u, "content", text))
		ft_die(1, "out of memory");
	free(text);
	cJSON_AddItemToArray(m, u);
	*messages = m;
	return 0;
}

/* ---- queue (a binary heap of items) ---- */

static bool before(const struct item *a, const struct item *b)
{
	return a->ready_at < b->ready_at || (a->ready_at == b->ready_at && a->order < b->order);
}

static void heap_push(struct item *it)
{
	if (w.nheap == w.heapcap) {
		w.heapcap = w.heapcap ? w.heapcap * 2 : 256;
		w.heap = realloc(w.heap, w.heapcap * sizeof *w.heap);
		if (!w.heap)
			ft_die(1, "out of memory");
	}
	size_t i = w.nheap++;
	while (i && before(it, w.heap[(i - 1) / 2])) {
		w.heap[i] = w.heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w.heap[i] = it;
	it->state = ITEM_QUEUED;
}

static struct item *heap_pop(void)
{
	struct item *top = w.heap[0], *last = w.heap[--w.nheap];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= w.nheap)
			break;
		if (c + 1 < w.nheap && before(w.heap[c + 1], w.heap[c]))
			c++;
		if (!before(w.heap[c], last))
			break;
		w.heap[i] = w.heap[c];
		i = c;
	}
	if (w.nheap)
		w.heap[i] = last;
	return top;
}

/* ---- settling items ---- */

static void settle(struct item *it, enum item_state state)
{
	it->state = state;
	it->slot->unsettled--;
	free(it->body);
	it->body = NULL;
}

static void reject(struct item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reject(struct item *it, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	scrub(msg);
	free(it->reason);
	it->reason = ft_xstrndup(msg, strlen(msg));
	st.rejected++;
	settle(it, ITEM_REJECTED);
}

/* Remove one markdown code fence around s[0..*len) (```json ... ```). */
static const char *unfence(const char *s, size_t *len)
{
	size_t n = *len;
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= 6 && !memcmp(s, "```", 3) && !memcmp(s + n - 3, "```", 3)) {
		const char *nl = memchr(s, '\n', n - 3);
		if (nl) {
			n -= (size_t)(nl + 1 - s) + 3;
			s = nl + 1;
		}
	}
	*len = n;
	return s;
}

/* Check a successful reply and build the variant from it: 0, or -1 with
 * why set (a failed reply, to retry). */
static int accept_reply(struct item *it, const char *body, size_t len, char *why, size_t size,
			struct ft_chat_reply *r)
{
	struct ft_err err = { 0 };
	if (ft_chat_parse_reply(body, len, r, &err)) {
		oom_check(err.code);
		snprintf(why, size, "%.300s", err.msg);
		return -1;
	}
	if (!strcmp(r->finish_reason, "length")) {
		snprintf(why, size, "reply cut off at max_tokens (finish_reason \"length\")");
		return -1;
	}
	if (is_blank(r->content, r->content_len)) {
		snprintf(why, size, "empty reply");
		return -1;
	}
	cJSON *value;
	if (o.json) {
		size_t n = r->content_len;
		const char *j = unfence(r->content, &n);
		if (ft_json_parse(j, n, &value, &err)) {
			oom_check(err.code);
			snprintf(why, size, "reply is not JSON: column %ld: %.300s", err.col, err.msg);
			return -1;
		}
		for (int q = 0; q < o.nrequire; q++) {
			bool arr = cJSON_IsArray(value);
			for (cJSON *e = arr ? value->child : value; e; e = arr ? e->next : NULL) {
				char w2[128];
				if (!path_walk(e, &o.require[q], o.require[q].n, w2, sizeof w2)) {
					snprintf(why, size, "reply lacks required '%s'",
						 o.require_text[q]);
					cJSON_Delete(value);
					return -1;
				}
			}
		}
	} else {
		char *text = ft_xstrndup(r->content, r->content_len);
		value = cJSON_CreateString(text);
		free(text);
		if (!value)
			ft_die(1, "out of memory");
	}
	cJSON *v = cJSON_Duplicate(it->slot->rec, true);
	if (!v)
		ft_die(1, "out of memory");
	into_set(v, value);
	cJSON *model = cJSON_CreateString(r->model[0] ? r->model : o.params.model);
	if (!model)
		ft_die(1, "out of memory");
	cJSON_AddItemToObject(v, "aug_model", model);
	it->variant_rec = v;
	return 0;
}

static void count_usage(const struct ft_chat_reply *r, bool cached)
{
	long long p = r->prompt_tokens > 0 ? r->prompt_tokens : 0;
	long long c = r->completion_tokens > 0 ? r->completion_tokens : 0;
	if (cached) {
		st.cached_prompt_tokens += p;
		st.cached_completion_tokens += c;
	} else {
		st.prompt_tokens += p;
		st.completion_tokens += c;
	}
}

/* A failed attempt: queue it again after a backoff (at least the server's
 * retry-after), or reject it once the retries are spent. */
static void retry_or_reject(struct item *it, const char *why, double retry_after)
{
	if (it->attempts > o.retries) {
		reject(it, "%s (after %d attempt%s)", why, it->attempts,
		       it->attempts == 1 ? "" : "s");
		return;
	}
	double d = ft_backoff(it->attempts - 1, o.backoff, 60, &backoff_rng);
	if (retry_after > d)
		d = retry_after;
	it->ready_at = now() + d;
	st.retries++;
	heap_push(it);
}

/* ---- making items ---- */

static void lexicon_walk(cJSON *node, const struct path *p, int depth, uint64_t *rng,
			 long *nsub)
{
	if (depth == p->n) {
		if (!cJSON_IsString(node))
			return;
		struct ft_buf b;
		ft_buf_init(&b, 0);
		long k = 0;
		oom_check(ft_lexicon_paraphrase(lexicon, node->valuestring,
						strlen(node->valuestring), ft_splitmix64(rng),
						o.lexicon_prob, &b, &k));
		if (k) {
			char *s = b.data;
			b.data = NULL;
			free(node->valuestring);
			node->valuestring = s;
			*nsub += k;
		}
		ft_buf_release(&b);
		return;
	}
	const char *part = p->part[depth];
	if (!strcmp(part, "*")) {
		if (cJSON_IsObject(node) || cJSON_IsArray(node))
			for (cJSON *c = node->child; c; c = c->next)
				lexicon_walk(c, p, depth + 1, rng, nsub);
		return;
	}
	cJSON *c = child(node, part);
	if (c)
		lexicon_walk(c, p, depth + 1, rng, nsub);
}

static void make_lexicon_item(struct slot *s, struct item *it, const char *id)
{
	uint64_t rng = ft_hash_siphash(id, strlen(id), o.seed, 0x6c657831 + (uint64_t)it->variant);
	cJSON *v = cJSON_Duplicate(s->rec, true);
	if (!v)
		ft_die(1, "out of memory");
	long nsub = 0;
	lexicon_walk(v, &o.into, 0, &rng, &nsub);
	if (!nsub) {
		cJSON_Delete(v);
		st.unchanged++;
		settle(it, ITEM_SKIPPED);
		return;
	}
	cJSON *model = cJSON_CreateString("lexicon");
	if (!model)
		ft_die(1, "out of memory");
	cJSON_AddItemToObject(v, "aug_model", model);
	it->variant_rec = v;
	settle(it, ITEM_OK);
}

/* Write a dry run's request body. */
static void dry_run_body(const struct item *it)
{
	if (ft_out_write(out, it->body, it->body_len) || ft_out_write(out, "\n", 1))
		ft_die(1, "cannot write %s", ft_out_name(out));
}

/* Render variant v's request body into it->body (it->body stays NULL when
 * the prompt renders blank). false: a bad record (reported). */
static bool build_request(struct slot *s, struct item *it)
{
	cJSON *messages;
	int rc = render_messages(s, it->variant, &messages);
	if (rc)
		return rc > 0;
	struct ft_chat_params p = o.params;
	if (o.api_seed_given) {
		p.has_seed = true;
		p.seed = o.api_seed + it->variant;
	}
	struct ft_buf body;
	ft_buf_init(&body, 0);
	struct ft_err err = { 0 };
	if (ft_chat_request(&body, &p, messages, &err)) {
		oom_check(err.code);
		ft_warn("%s:%ld: %s", s->file, s->lineno, err.msg);
		cJSON_Delete(messages);
		ft_buf_release(&body);
		return false;
	}
	double est = (double)ft_chat_estimate_tokens(messages);
	cJSON_Delete(messages);
	/* servers count max_tokens against tpm up front; else guess a reply
	 * as long as the prompt */
	est += o.params.has_max_tokens ? (double)o.params.max_tokens : est;
	it->est_tokens = est;
	it->body = ft_buf_detach(&body, &it->body_len);
	if (!it->body)
		ft_die(1, "out of memory");
	return true;
}

/* Settle a built item from the cache, or queue it. */
static void dispatch(struct item *it)
{
	if (!it->body) {
		st.skipped++;
		settle(it, ITEM_SKIPPED);
		return;
	}
	if (o.dry_run) {
		dry_run_body(it);
		settle(it, ITEM_SKIPPED);
		return;
	}
	/* the cache key: endpoint, variant index and the canonical body (model,
	 * messages, parameters); never the API key */
	struct ft_buf km;
	ft_buf_init(&km, 0);
	oom_check(ft_buf_printf(&km, "ft-augment 1\n%s\n%d\n", url, it->variant));
	oom_check(ft_buf_append(&km, it->body, it->body_len));
	ft_cache_key(km.data, km.len, it->key);
	ft_buf_release(&km);
	if (cache_on) {
		struct ft_buf hit;
		ft_buf_init(&hit, CLIENT_MAX_BODY);
		struct ft_err cerr = { 0 };
		int got = ft_cache_get(&cache, it->key, &hit, &cerr);
		if (got < 0)
			ft_die(1, "cache: %s", cerr.msg);
		if (!got && cerr.code == FT_E_DATA) {
			st.cache_damaged++;
			ft_warn("cache: %s (asking again)", cerr.msg);
		}
		if (got > 0) {
			struct ft_chat_reply r = { 0 };
			char why[256];
			int rc = accept_reply(it, hit.data, hit.len, why, sizeof why, &r);
			if (!rc)
				count_usage(&r, true);
			ft_chat_reply_release(&r);
			ft_buf_release(&hit);
			if (!rc) {
				st.cache_hits++;
				settle(it, ITEM_OK);
				return;
			}
			/* a cached reply this run no longer accepts (another
			 * --require, say): ask again; the new reply replaces it */
		}
		ft_buf_release(&hit);
	}
	it->ready_at = 0;
	it->order = next_order++;
	heap_push(it);
}

static void slot_free(struct slot *s)
{
	for (int i = 0; i < s->nitems; i++) {
		cJSON_Delete(s->items[i].variant_rec);
		free(s->items[i].body);
		free(s->items[i].reason);
	}
	free(s->items);
	cJSON_Delete(s->rec);
	free(s->line);
	free(s->file);
	free(s);
}

/* Turn the record just read into items. false: a bad record (reported). */
static bool plan(struct slot *s)
{
	if (!cJSON_IsObject(s->rec)) {
		ft_warn("%s:%ld: record is not a JSON object", s->file, s->lineno);
		return false;
	}
	int sel = select_holds(s);
	if (sel < 0)
		return false;
	if (!sel || !chosen_by_prob(s))
		return true;
	char id[512];
	if (!id_text(s->rec, id, sizeof id)) {
		ft_warn("%s:%ld: record has no \"id\" (a non-empty string or an integer): "
			"its variants could not point back to it", s->file, s->lineno);
		return false;
	}
	char why[256];
	if (!o.lexicon_backend && !into_fits(s->rec, why, sizeof why)) {
		ft_warn("%s:%ld: --into %s: %s", s->file, s->lineno, o.into.text, why);
		return false;
	}
	s->nitems = (int)o.variants;
	s->unsettled = s->nitems;
	s->items = calloc((size_t)s->nitems, sizeof *s->items);
	if (!s->items)
		ft_die(1, "out of memory");
	for (int v = 0; v < s->nitems; v++) {
		struct item *it = &s->items[v];
		it->slot = s;
		it->variant = v;
		if (o.lexicon_backend)
			make_lexicon_item(s, it, id);
		else if (!build_request(s, it))
			return false;
	}
	st.selected++;
	/* every variant rendered: only now is anything sent */
	for (int v = 0; !o.lexicon_backend && v < s->nitems; v++)
		dispatch(&s->items[v]);
	return true;
}

/* ---- output ---- */

static void put(struct ft_out *f, const char *p, size_t n)
{
	if (ft_out_write(f, p, n))
		ft_die(1, "cannot write %s", ft_out_name(f));
}

static void finish_variant(struct slot *s, struct item *it)
{
	cJSON *v = it->variant_rec;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(s->rec, "id");
	const cJSON *group = cJSON_GetObjectItemCaseSensitive(s->rec, "group");
	char idbuf[512], newid[560];
	id_text(s->rec, idbuf, sizeof idbuf);
	snprintf(newid, sizeof newid, "%s-%s%d", idbuf, o.tag, it->variant + 1);
	cJSON *nid = cJSON_CreateString(newid);
	cJSON *grp = cJSON_Duplicate(group ? group : id, true);
	cJSON *of = cJSON_Duplicate(id, true);
	if (!nid || !grp || !of)
		ft_die(1, "out of memory");
	cJSON_ReplaceItemInObjectCaseSensitive(v, "id", nid);
	if (cJSON_GetObjectItemCaseSensitive(v, "group"))
		cJSON_ReplaceItemInObjectCaseSensitive(v, "group", grp);
	else
		cJSON_AddItemToObject(v, "group", grp);
	/* aug_model was added last when the variant was made: keep aug_of before it */
	cJSON *model = cJSON_DetachItemFromObjectCaseSensitive(v, "aug_model");
	cJSON_DeleteItemFromObjectCaseSensitive(v, "aug_of");
	cJSON_AddItemToObject(v, "aug_of", of);
	if (model)
		cJSON_AddItemToObject(v, "aug_model", model);
}

static void write_reject(struct slot *s, struct item *it)
{
	char id[512];
	id_text(s->rec, id, sizeof id);
	if (!rejects_out) {
		ft_warn("%s:%ld: record '%s' variant %d rejected: %s", s->file, s->lineno, id,
			it->variant + 1, it->reason);
		return;
	}
	ft_buf_reset(&obuf);
	int rc = ft_buf_puts(&obuf, "{\"id\":");
	rc |= ft_json_write(&obuf, cJSON_GetObjectItemCaseSensitive(s->rec, "id"));
	rc |= ft_buf_printf(&obuf, ",\"variant\":%d,\"file\":", it->variant + 1);
	rc |= ft_json_write_string(&obuf, s->file, strlen(s->file));
	rc |= ft_buf_printf(&obuf, ",\"line\":%ld,\"attempts\":%d,\"reason\":", s->lineno,
			    it->attempts);
	rc |= ft_json_write_string(&obuf, it->reason, strlen(it->reason));
	rc |= ft_buf_puts(&obuf, ",\"record\":");
	rc |= ft_buf_append(&obuf, s->line, s->line_len);
	rc |= ft_buf_puts(&obuf, "}\n");
	oom_check(rc ? FT_E_NOMEM : 0);
	put(rejects_out, obuf.data, obuf.len);
}

static void emit(struct slot *s)
{
	if (s->bad)
		return;
	if (!o.dry_run && !o.drop_original) {
		put(out, s->line, s->line_len);
		put(out, "\n", 1);
	}
	for (int i = 0; i < s->nitems; i++) {
		struct item *it = &s->items[i];
		if (it->state == ITEM_REJECTED) {
			write_reject(s, it);
			continue;
		}
		if (it->state != ITEM_OK)
			continue;
		finish_variant(s, it);
		ft_buf_reset(&obuf);
		if (ft_json_write(&obuf, it->variant_rec) || ft_buf_putc(&obuf, '\n'))
			ft_die(1, "out of memory");
		put(out, obuf.data, obuf.len);
		st.variants_out++;
	}
}

/* ---- progress ---- */

static struct {
	bool on;
	double start, last;
	unsigned long long total, done;   /* records; total 0: unknown */
} prog;

/* Lines in the input files (gzip or plain), for the ETA: 0 when an input
 * is not a regular file or cannot be read (no ETA then). */
static unsigned long long count_lines(char **files, int n)
{
	unsigned long long lines = 0;
	static char buf[1 << 16];
	for (int i = 0; i < n; i++) {
		struct stat sb;
		if (!strcmp(files[i], "-") || stat(files[i], &sb) || !S_ISREG(sb.st_mode))
			return 0;
		gzFile f = gzopen(files[i], "rb");
		if (!f)
			return 0;
		int got;
		while ((got = gzread(f, buf, sizeof buf)) > 0)
			for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + got - p))); p++)
				lines++;
		gzclose(f);
		if (got < 0)
			return 0;
	}
	return lines;
}

static void progress(bool final)
{
	if (!prog.on)
		return;
	double t = now();
	if (!final && t - prog.last < 0.2)
		return;
	prog.last = t;
	double el = t - prog.start > 1e-9 ? t - prog.start : 1e-9;
	char eta[32] = "?", total[32] = "?";
	if (prog.total) {
		snprintf(total, sizeof total, "%llu", prog.total);
		if (prog.done && prog.done <= prog.total)
			ft_fmt_duration(el * (double)(prog.total - prog.done) / (double)prog.done,
				     eta, sizeof eta);
	}
	fprintf(stderr,
		"\r\033[K%s: %llu/%s records, %llu requests, %.1f req/s, %.0f tok/s, "
		"%llu retries, %llu rejected, ETA %s",
		ft_progname, prog.done, total, st.requests, (double)st.requests / el,
		(double)(st.prompt_tokens + st.completion_tokens) / el, st.retries, st.rejected,
		final ? "0s" : eta);
	if (final)
		fputc('\n', stderr);
}

/* ---- the loop ---- */

static void flush_done(void)
{
	while (w.count) {
		struct slot *s = w.ring[w.head];
		if (s->unsettled)
			break;
		emit(s);
		prog.done++;
		slot_free(s);
		w.ring[w.head] = NULL;
		w.head = (w.head + 1) % w.cap;
		w.count--;
	}
}

struct input {
	char **files;
	int nfiles, at;
	struct ft_jsonl_reader *r;
	bool done;
};

static void bad_record(struct slot *s)
{
	if (!o.skip_bad)
		ft_die(1, "stopped at the first bad record (--skip-bad skips bad records)");
	/* nothing of it was queued: plan() fails before dispatching */
	s->bad = true;
	s->unsettled = 0;
	st.bad++;
}

/* Read records until the window is full or the input ends. */
static void fill(struct input *in)
{
	while (!in->done && w.count < w.cap) {
		if (!in->r) {
			if (in->at == in->nfiles) {
				in->done = true;
				break;
			}
			struct ft_err err = { 0 };
			if (ft_jsonl_open(&in->r, in->files[in->at], 0, o.max_line, &err)) {
				ft_report(&err, NULL);
				ft_out_abort_all();
				exit(FT_EXIT_DATA);
			}
		}
		const char *line;
		size_t len;
		struct ft_err err = { 0 };
		int rc = ft_jsonl_next_line(in->r, &line, &len, &err);
		if (rc == 0) {
			ft_jsonl_close(in->r);
			in->r = NULL;
			in->at++;
			continue;
		}
		struct slot *s = calloc(1, sizeof *s);
		if (!s)
			ft_die(1, "out of memory");
		const char *name = ft_jsonl_name(in->r);
		s->file = ft_xstrndup(name, strlen(name));
		s->lineno = ft_jsonl_lineno(in->r);
		st.records++;
		if (rc < 0) {
			ft_report(&err, NULL);
			if (rc == FT_E_IO || !o.skip_bad)
				ft_die(1, "stopped%s", rc == FT_E_IO ? "" : " at the first bad record (--skip-bad skips bad records)");
			s->bad = true;
			st.bad++;
		} else {
			s->line = ft_xstrndup(line, len);
			s->line_len = len;
			rc = ft_jsonl_parse_line(in->r, &s->rec, &err);
			if (rc != 1) {
				ft_report(&err, NULL);
				bad_record(s);
			} else if (!plan(s)) {
				bad_record(s);
			}
		}
		w.ring[(w.head + w.count) % w.cap] = s;
		w.count++;
	}
}

/* Start queued items while the in-flight limit and the buckets allow;
 * returns the time the next one may go (0: none waiting). */
static double launch(void)
{
	/* With no limits given, one request goes first: its reply's headers
	 * tell the limits before a full -c of requests has gone out unpaced
	 * (which, on top of a window's steady rate, a server would refuse). */
	int most = o.rpm > 0 || o.tpm > 0 || st.http_replies ? (int)o.concurrency : 1;
	while (w.nheap && client_in_flight(client) < most) {
		struct item *it = w.heap[0];
		double t = now();
		if (it->ready_at > t)
			return it->ready_at;
		double wait = ft_bucket_wait(&rpm_bucket, 1, t);
		double wt = ft_bucket_wait(&tpm_bucket, it->est_tokens, t);
		if (wt > wait)
			wait = wt;
		if (wait > 0)
			return t + wait;
		heap_pop();
		ft_bucket_take(&rpm_bucket, 1, t);
		ft_bucket_take(&tpm_bucket, it->est_tokens, t);
		struct ft_err err = { 0 };
		if (client_start(client, it, it->body, it->body_len, &err))
			ft_die(1, "%s", err.msg);
		it->state = ITEM_SENT;
		it->attempts++;
		st.requests++;
	}
	return 0;
}

/* Adapt the buckets to a reply's rate-limit headers. Every reply teaches
 * the limits (they only ever tighten a bucket); only a 429 also brings the
 * bucket down to the server's count (remaining, reset). A successful
 * reply's count is stale by the time it arrives (the requests sent since,
 * the window moved on), and taking it at its word on every reply would
 * throttle a client that sends at exactly the limit far below it. */
static void observe(const struct client_result *r, bool refused)
{
	double t = now();
	ft_ratelimit_observe(&rpm_bucket, r->limit_requests, refused ? r->remaining_requests : -1,
			     refused ? r->reset_requests : NAN, t);
	ft_ratelimit_observe(&tpm_bucket, r->limit_tokens, refused ? r->remaining_tokens : -1,
			     refused ? r->reset_tokens : NAN, t);
}

static void on_result(struct client_result *r)
{
	struct item *it = r->user;
	char why[512];
	if (r->transport_error) {
		/* a name that never resolved is a wrong --base-url, not a fault
		 * worth retrying every record for */
		if (r->unresolved && !st.replies_ok)
			ft_die(1, "%s: %s", url_shown, r->error);
		retry_or_reject(it, r->error, -1);
		return;
	}
	long status = r->status;
	st.http_replies++;
	observe(r, status == 429);
	if (status >= 200 && status < 300) {
		struct ft_chat_reply rep = { 0 };
		int rc = accept_reply(it, r->body.data ? r->body.data : "", r->body.len, why,
				      sizeof why, &rep);
		count_usage(&rep, false);
		if (rep.prompt_tokens >= 0 && rep.completion_tokens >= 0)
			ft_bucket_adjust(&tpm_bucket,
					 (double)(rep.prompt_tokens + rep.completion_tokens) -
						 it->est_tokens);
		ft_chat_reply_release(&rep);
		if (rc) {
			retry_or_reject(it, why, -1);
			return;
		}
		st.replies_ok++;
		if (cache_on) {
			struct ft_err err = { 0 };
			if (ft_cache_put(&cache, it->key, r->body.data, r->body.len, &err))
				ft_die(1, "cache: %s", err.msg);
		}
		settle(it, ITEM_OK);
		return;
	}
	char excerpt[EXCERPT];
	ft_chat_error_excerpt(r->body.data ? r->body.data : "", r->body.len, excerpt,
			      sizeof excerpt);
	scrub(excerpt);
	snprintf(why, sizeof why, "HTTP %ld%s%s", status, excerpt[0] ? ": " : "", excerpt);
	if (status == 401 || status == 403 || status == 404 || status == 407)
		ft_die(1, "%s: %s", url_shown, why);
	if (status == 408 || status == 409 || status == 425 || status == 429 || status >= 500)
		retry_or_reject(it, why, r->retry_after);
	else
		reject(it, "%s", why);
}

static void run(struct input *in)
{
	for (;;) {
		if (interrupted)
			ft_die(130, "interrupted");
		fill(in);
		flush_done();
		progress(false);
		if (in->done && !w.count)
			break;
		double next = client ? launch() : 0;
		if (!client || (!client_in_flight(client) && !w.nheap)) {
			if (w.count && !in->done)
				continue;
			if (w.count)
				ft_die(1, "internal error: %zu records wait for nothing", w.count);
			continue;
		}
		int ms = 250;
		if (next > 0) {
			double d = (next - now()) * 1000;
			ms = d < 0 ? 0 : d < 250 ? (int)ceil(d) : 250;
		}
		struct ft_err err = { 0 };
		if (client_poll(client, ms, &err))
			ft_die(1, "%s", err.msg);
		struct client_result *r;
		while (client_next(client, &r))
			on_result(r);
	}
}

/* ---- setup ---- */

static char *read_key_file(const char *path)
{
	struct ft_buf b;
	ft_buf_init(&b, 1 << 16);
	struct ft_err err = { 0 };
	if (ft_buf_read_file(&b, path, &err))
		ft_usage_error("--api-key-file: %s", err.msg);
	size_t n = strcspn(b.data ? b.data : "", "\r\n");
	char *k = ft_xstrndup(b.data ? b.data : "", n);
	memset(b.data ? b.data : k, 0, b.data ? b.len : 0);
	ft_buf_release(&b);
	return k;
}

static char *trim_key(char *k)
{
	size_t n = strlen(k);
	while (n && isspace((unsigned char)k[n - 1]))
		k[--n] = 0;
	char *s = k;
	while (isspace((unsigned char)*s))
		s++;
	memmove(k, s, strlen(s) + 1);
	for (char *p = k; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			ft_usage_error("the API key holds a control character");
	return k;
}

/* The endpoint as shown in messages: no user:password@, no query. */
static char *shown_url(const char *u)
{
	const char *scheme = strstr(u, "://");
	const char *host = scheme ? scheme + 3 : u;
	const char *at = strchr(host, '@'), *slash = strchr(host, '/');
	if (at && (!slash || at < slash))
		host = at + 1;
	size_t n = strcspn(host, "?#");
	struct ft_buf b;
	ft_buf_init(&b, 0);
	int rc = scheme ? ft_buf_append(&b, u, (size_t)(scheme + 3 - u)) : 0;
	rc |= ft_buf_append(&b, host, n);
	oom_check(rc ? FT_E_NOMEM : 0);
	return ft_buf_detach(&b, &n);
}

static void compile_template(struct ft_tpl **t, const char *name, const char *src, size_t len)
{
	struct ft_err err = { 0 };
	if (ft_tpl_compile(t, name, src, len, &err)) {
		oom_check(err.code);
		ft_die(1, "%s:%ld:%ld: %s", name, err.line, err.col, err.msg);
	}
}

static void setup_templates(void)
{
	vars = ft_tpl_vars_new();
	if (!vars)
		ft_die(1, "out of memory");
	ft_render_init(&render);
	if (o.select) {
		struct ft_buf src;
		ft_buf_init(&src, 0);
		oom_check(ft_buf_printf(&src, "{%% if %s %%}1{%% endif %%}", o.select));
		struct ft_err err = { 0 };
		if (ft_tpl_compile(&select_tpl, "--select", src.data, src.len, &err)) {
			oom_check(err.code);
			ft_usage_error("--select: %s", err.msg);
		}
		ft_buf_release(&src);
	}
	if (o.prompt) {
		struct ft_buf src;
		ft_buf_init(&src, PROMPT_MAX);
		struct ft_err err = { 0 };
		if (ft_buf_read_file(&src, o.prompt, &err))
			ft_die(1, "%s", err.msg);
		compile_template(&prompt_tpl, o.prompt, src.data ? src.data : "", src.len);
		ft_buf_release(&src);
	}
}

static void setup_cache(void)
{
	if (o.no_cache || o.dry_run || o.lexicon_backend)
		return;
	struct ft_buf dir;
	ft_buf_init(&dir, 0);
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int rc;
	if (o.cache_dir)
		rc = ft_buf_puts(&dir, o.cache_dir);
	else if (xdg && *xdg == '/')
		rc = ft_buf_printf(&dir, "%s/ft/augment", xdg);
	else if (home && *home)
		rc = ft_buf_printf(&dir, "%s/.cache/ft/augment", home);
	else
		ft_usage_error("no cache directory: set --cache, XDG_CACHE_HOME or HOME, or "
			       "give --no-cache");
	oom_check(rc);
	struct ft_err err = { 0 };
	if (ft_cache_open(&cache, dir.data, &err))
		ft_die(1, "cache: %s", err.msg);
	cache_on = true;
	ft_buf_release(&dir);
}

static void setup_api(void)
{
	const char *base = o.base_url ? o.base_url : getenv("OPENAI_BASE_URL");
	if (!base || !*base)
		base = "https://api.openai.com/v1";
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	struct ft_buf b;
	ft_buf_init(&b, 0);
	oom_check(ft_buf_append(&b, base, n) | ft_buf_puts(&b, "/chat/completions"));
	url = ft_buf_detach(&b, &n);
	url_shown = shown_url(url);
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		ft_usage_error("--base-url: '%s' is not an http:// or https:// URL", url_shown);
	if (o.key_file)
		api_key = trim_key(read_key_file(o.key_file));
	else if (getenv("OPENAI_API_KEY") && *getenv("OPENAI_API_KEY"))
		api_key = trim_key(ft_xstrndup(getenv("OPENAI_API_KEY"), strlen(getenv("OPENAI_API_KEY"))));
	if (api_key && !*api_key) {
		free(api_key);
		api_key = NULL;
	}
	if (o.dry_run)
		return;
	struct ft_err err = { 0 };
	if (client_open(&client, url, api_key, (int)o.concurrency, o.timeout, &err))
		ft_die(1, "%s", err.msg);
	double t = now();
	/* start with one request's worth, not a full burst: a server that
	 * counts over a sliding window would refuse the burst on top of a full
	 * window's steady rate */
	ft_bucket_init(&rpm_bucket, o.rpm, 0, t);
	ft_bucket_init(&tpm_bucket, o.tpm, 0, t);
	ft_bucket_adjust(&rpm_bucket, rpm_bucket.capacity - 1);
	ft_bucket_adjust(&tpm_bucket, tpm_bucket.capacity - 1);
	backoff_rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

static void on_signal(int sig)
{
	if (interrupted)
		_exit(128 + sig);   /* a second one: now */
	interrupted = sig;
}

static void summary(void)
{
	if (o.quiet)
		return;
	ft_warn("%llu records, %llu augmented, %llu variants written, %llu rejected%s", st.records,
		st.selected, st.variants_out, st.rejected,
		st.rejected && o.rejects ? " (see --rejects)" : "");
	if (st.bad || st.skipped || st.unchanged)
		ft_warn("%llu bad records skipped, %llu variants skipped by the prompt, "
			"%llu unchanged by the lexicon",
			st.bad, st.skipped, st.unchanged);
	if (o.lexicon_backend || o.dry_run)
		return;
	ft_warn("%llu requests (%llu retries), %llu replies from the cache; tokens: %lld prompt "
		"+ %lld completion (cached: %lld + %lld)",
		st.requests, st.retries, st.cache_hits, st.prompt_tokens, st.completion_tokens,
		st.cached_prompt_tokens, st.cached_completion_tokens);
	if (o.priced)
		ft_warn("cost: $%.4f (cache saved $%.4f)",
			((double)st.prompt_tokens * o.price_in +
			 (double)st.completion_tokens * o.price_out) / 1e6,
			((double)st.cached_prompt_tokens * o.price_in +
			 (double)st.cached_completion_tokens * o.price_out) / 1e6);
}

int main(int argc, char **argv)
{
	ft_cli_init("ft-augment");
	o.variants = 1;
	o.prob = 1;
	o.concurrency = 8;
	o.retries = 5;
	o.backoff = 1;
	o.timeout = 120;
	o.window = 1024;
	o.lexicon_prob = 0.5;
	o.tag = "aug";
	const char *backend = "api";
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":n:s:p:m:c:o:qh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'n': o.variants = ft_opt_long("--variants", optarg, 1, MAX_VARIANTS); break;
		case OPT_PROB: o.prob = ft_opt_double("--prob", optarg, 0, 1); break;
		case OPT_SELECT: o.select = optarg; break;
		case 's': o.seed = ft_opt_u64("--seed", optarg); break;
		case 'p': o.prompt = optarg; break;
		case OPT_SYSTEM: o.system = optarg; break;
		case 'm': o.model = optarg; break;
		case OPT_BASE_URL: o.base_url = optarg; break;
		case OPT_KEY_FILE: o.key_file = optarg; break;
		case OPT_TEMPERATURE:
			o.params.temperature = ft_opt_double("--temperature", optarg, 0, 2);
			o.params.has_temperature = true;
			break;
		case OPT_TOP_P:
			o.params.top_p = ft_opt_double("--top-p", optarg, 0, 1);
			o.params.has_top_p = true;
			break;
		case OPT_MAX_TOKENS:
			o.params.max_tokens = ft_opt_long("--max-tokens", optarg, 1, 100000000);
			o.params.has_max_tokens = true;
			break;
		case OPT_API_SEED:
			o.api_seed = ft_opt_long("--api-seed", optarg, -(1L << 53), 1L << 53);
			o.api_seed_given = true;
			break;
		case OPT_JSON_MODE: o.params.json_mode = true; break;
		case OPT_DRY_RUN: o.dry_run = true; break;
		case OPT_INTO: o.into_text = optarg; break;
		case OPT_APPEND: o.append = true; break;
		case OPT_JSON: o.json = true; break;
		case OPT_REQUIRE:
			if (o.nrequire == MAX_REQUIRE)
				ft_usage_error("--require: at most %d", MAX_REQUIRE);
			o.require_text[o.nrequire++] = optarg;
			break;
		case OPT_DROP: o.drop_original = true; break;
		case OPT_TAG:
			o.tag = optarg;
			for (const char *t = optarg; *t; t++)
				if (!isalnum((unsigned char)*t) && *t != '_' && *t != '-')
					ft_usage_error("--tag: '%s': use letters, digits, _ and -",
						       optarg);
			if (!*optarg || strlen(optarg) > 32)
				ft_usage_error("--tag: 1 to 32 characters");
			break;
		case 'c': o.concurrency = ft_opt_long("--concurrency", optarg, 1, 4096); break;
		case OPT_RPM: o.rpm = ft_opt_double("--rpm", optarg, 0, 1e9); break;
		case OPT_TPM: o.tpm = ft_opt_double("--tpm", optarg, 0, 1e12); break;
		case OPT_RETRIES: o.retries = ft_opt_long("--retries", optarg, 0, 1000); break;
		case OPT_BACKOFF: o.backoff = ft_opt_double("--backoff", optarg, 0, 3600); break;
		case OPT_TIMEOUT: o.timeout = ft_opt_double("--timeout", optarg, 0.001, 86400); break;
		case OPT_WINDOW: o.window = ft_opt_long("--window", optarg, 1, 100000000); break;
		case OPT_REJECTS: o.rejects = optarg; break;
		case OPT_CACHE: o.cache_dir = optarg; break;
		case OPT_NO_CACHE: o.no_cache = true; break;
		case OPT_BACKEND: backend = optarg; break;
		case OPT_LEXICON: o.lexicon = optarg; break;
		case OPT_LEXICON_PROB:
			o.lexicon_prob = ft_opt_double("--lexicon-prob", optarg, 0, 1);
			break;
		case 'o': o.output = optarg; break;
		case OPT_PRICE_IN:
			o.price_in = ft_opt_double("--price-in", optarg, 0, 1e6);
			o.priced = true;
			break;
		case OPT_PRICE_OUT:
			o.price_out = ft_opt_double("--price-out", optarg, 0, 1e6);
			o.priced = true;
			break;
		case OPT_SKIP_BAD: o.skip_bad = true; break;
		case OPT_MAX_LINE: o.max_line = ft_opt_size("--max-line", optarg); break;
		case OPT_PROGRESS: o.progress = true; break;
		case 'q': o.quiet = true; break;
		case 'h': fputs(usage_text, stdout); ft_close_stdout(); return 0;
		case OPT_VERSION: printf("ft-augment %s\n", FT_VERSION); ft_close_stdout(); return 0;
		case ':': ft_usage_error("option '%s' needs a value", ft_opt_name(argv[optind - 1]));
		default: ft_usage_error("unknown option '%s'", ft_opt_name(argv[optind - 1]));
		}
	}
	if (!strcmp(backend, "lexicon"))
		o.lexicon_backend = true;
	else if (strcmp(backend, "api"))
		ft_usage_error("--backend: '%s' is not api or lexicon", backend);
	if (!o.into_text)
		ft_usage_error("--into PATH is required: where the reply goes in a variant");
	path_parse(&o.into, "--into", o.into_text, o.lexicon_backend);
	for (int i = 0; i < o.nrequire; i++)
		path_parse(&o.require[i], "--require", o.require_text[i], false);
	if (o.lexicon_backend) {
		if (!o.lexicon)
			ft_usage_error("--backend=lexicon needs --lexicon FILE.tsv");
		if (o.prompt || o.model || o.dry_run || o.json || o.append || o.nrequire)
			ft_usage_error("--backend=lexicon takes no --prompt, --model, --dry-run, "
				       "--json, --append or --require");
	} else {
		if (o.lexicon)
			ft_usage_error("--lexicon is for --backend=lexicon");
		if (!o.prompt)
			ft_usage_error("--prompt FILE is required (or --backend=lexicon)");
		if (!o.model || !*o.model)
			ft_usage_error("--model NAME is required");
	}
	if (o.nrequire && !o.json)
		ft_usage_error("--require needs --json");
	if (o.window < o.concurrency)
		o.window = o.concurrency;
	o.params.model = o.model;

	setup_templates();
	if (o.lexicon_backend) {
		struct ft_err err = { 0 };
		if (ft_lexicon_load(&lexicon, o.lexicon, &err)) {
			ft_report(&err, NULL);
			return FT_EXIT_DATA;
		}
	} else {
		setup_api();
	}
	setup_cache();

	struct ft_err err = { 0 };
	if (ft_out_open(&out, o.output, &err)) {
		ft_report(&err, NULL);
		return FT_EXIT_DATA;
	}
	if (o.rejects && ft_out_open(&rejects_out, o.rejects, &err)) {
		ft_report(&err, NULL);
		ft_out_abort_all();
		return FT_EXIT_DATA;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
		ft_die(1, "sigaction: %s", strerror(errno));

	int nstdin = 0;
	for (int i = optind; i < argc; i++)
		nstdin += !strcmp(argv[i], "-");
	if (nstdin > 1)
		ft_usage_error("standard input given more than once");
	char *stdin_only[] = { "-" };
	struct input in = { .files = optind < argc ? argv + optind : stdin_only,
			    .nfiles = optind < argc ? argc - optind : 1 };
	prog.on = o.progress || isatty(STDERR_FILENO);
	prog.start = now();
	if (prog.on)
		prog.total = count_lines(in.files, in.nfiles);
	w.cap = (size_t)o.window;
	w.ring = calloc(w.cap, sizeof *w.ring);
	if (!w.ring)
		ft_die(1, "out of memory");
	ft_buf_init(&obuf, 0);

	run(&in);
	progress(true);

	if (rejects_out && ft_out_commit(rejects_out, &err)) {
		ft_report(&err, NULL);
		ft_out_abort_all();
		return FT_EXIT_DATA;
	}
	if (ft_out_commit(out, &err)) {
		ft_report(&err, NULL);
		return FT_EXIT_DATA;
	}
	summary();
	client_close(client);
	if (api_key) {
		memset(api_key, 0, strlen(api_key));
		free(api_key);
	}
	ft_tpl_free(prompt_tpl);
	ft_tpl_free(select_tpl);
	ft_tpl_vars_free(vars);
	ft_render_release(&render);
	ft_lexicon_free(lexicon);
	if (cache_on)
		ft_cache_close(&cache);
	ft_buf_release(&obuf);
	free(w.ring);
	free(w.heap);
	free(url);
	free(url_shown);
	for (int i = 0; i < o.into.n; i++)
		free(o.into.part[i]);
	for (int q = 0; q < o.nrequire; q++)
		for (int i = 0; i < o.require[q].n; i++)
			free(o.require[q].part[i]);
	return st.rejected ? 3 : st.bad && !o.skip_bad ? FT_EXIT_DATA : FT_EXIT_OK;
}
