/* ft-template: render records into training samples through a chat template.
 *
 * Each input record (OpenAI messages, ShareGPT conversations, Alpaca, or any
 * fields a custom template reads) is rendered with a Jinja chat template; the
 * output sample keeps, for every byte, whether it is trained and whether it
 * came from template text (which alone may hold special tokens) or from data.
 * Trained text is what the template marks with {% generation %}; a template
 * without such marks (most Hugging Face ones) trains the content of assistant
 * messages plus the end-of-turn token that follows it. */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "cli.h"
#include "jinja.h"
#include "json.h"
#include "jsonl.h"
#include "lines.h"
#include "out.h"
#include "pool.h"
#include "sample.h"

static const char usage_text[] =
	"Usage: ft-template [OPTIONS] [FILE...]\n"
	"Render JSONL records into training samples through a chat template.\n"
	"\n"
	"Template (one of):\n"
	"  -t, --template FILE     a Jinja template file, or a Hugging Face\n"
	"                          tokenizer_config.json (its chat_template)\n"
	"  -c, --chat NAME         a built-in template: chatml, llama2, llama3, qwen2,\n"
	"                          chatglm3, alpaca, qa (--list shows them)\n"
	"\n"
	"Options:\n"
	"  -m, --mode MODE         train (default): one sample per record;\n"
	"                          prompt: one prompt sample per trained span, with\n"
	"                          the span's text as 'reference'\n"
	"  -o, --output FILE       write here instead of stdout (atomically)\n"
	"  -j, --jobs N            render with N threads (default: the CPUs, at most 8);\n"
	"                          the output is the same for any N\n"
	"      --bos TOKEN         bos_token for the template\n"
	"      --eos TOKEN         eos_token for the template\n"
	"      --eot TOKEN         an end-of-turn token trained after assistant text\n"
	"                          when the template has no {% generation %} (repeatable)\n"
	"      --var NAME=JSON     bind a template variable (repeatable)\n"
	"      --role NAME         accept this message role too (repeatable)\n"
	"      --keep FIELD        copy this record field into the sample (repeatable)\n"
	"      --id-field PATH     field holding the record id (default: id)\n"
	"      --group-field PATH  field holding the split group (default: group, else the id)\n"
	"      --nfc               NFC-normalise all input text\n"
	"      --skip-bad          skip bad records, count them, and go on\n"
	"      --max-line SIZE     longest input line accepted (default 1G)\n"
	"      --list              list the built-in templates and exit\n"
	"  -q, --quiet             no summary on stderr\n"
	"      --progress          show progress even when stderr is not a terminal\n"
	"  -h, --help              show this help and exit\n"
	"      --version           show the version and exit\n"
	"\n"
	"With no FILE, or when FILE is -, read standard input. .gz is read transparently.\n"
	"Exit status: 0 success, 1 bad data, 2 usage error.\n";

enum mode { MODE_TRAIN, MODE_PROMPT };

struct kv {
	char *name;
	cJSON *value;
};

struct opts {
	const char *template_file, *chat_name, *output;
	enum mode mode;
	const char *bos, *eos;
	const char **eot;
	int neot;
	struct kv *vars;
	int nvars;
	const char **roles;
	int nroles;
	const char **keep;
	int nkeep;
	const char *id_field, *group_field;
	bool nfc, skip_bad, quiet, progress;
	size_t max_line;
	int jobs;
};

struct tmpl {
	struct ft_tpl *tpl;
	char *name;       /* for messages */
	char *bos, *eos;  /* NULL when the template has none */
	char **eot;
	int neot;
	bool generation;
	cJSON *config;    /* tokenizer_config.json, when given one */
};

struct stats {
	unsigned long long records, samples, skipped, trained_bytes, bytes;
};

/* set once by whichever thread first meets a template without end-of-turn */
static atomic_bool warned_no_eot;

static const char *const builtin_roles[] = { "system", "user", "assistant", "tool", "ipython",
					      "function" };

/* End-of-turn tokens used by well-known chat formats; what follows trained
 * assistant text up to one of these is trained too. */
static const char *const known_eot[] = { "<|im_end|>", "<|eot_id|>", "<|eom_id|>",
					 "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>" };

/* ---- small helpers ---- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct ft_buf b;
	ft_buf_init(&b, (size_t)64 << 20);
	char chunk[65536];
	size_t n;
	int rc = 0;
	while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		rc = ft_buf_append(&b, chunk, n);
	int bad = ferror(f) || rc;
	fclose(f);
	if (bad) {
		ft_buf_release(&b);
		errno = rc == FT_E_TOOBIG ? EFBIG : EIO;
		return NULL;
	}
	if (!b.data && ft_buf_append(&b, "", 0))
		return NULL;
	return ft_buf_detach(&b, len);
}

/* A special token in tokenizer_config.json: a string or {"content": ...}. */
static char *config_token(const cJSON *cfg, const char *key)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, key);
	if (cJSON_IsObject(t))
		t = cJSON_GetObjectItemCaseSensitive(t, "content");
	return cJSON_IsString(t) ? ft_xstrdup(t->valuestring) : NULL;
}

/* Directories holding the built-in templates, most specific first. */
static int template_dirs(char dirs[][PATH_MAX], int max)
{
	int n = 0;
	const char *env = getenv("FT_TEMPLATES");
	if (env && *env && n < max && snprintf(dirs[n], PATH_MAX, "%s", env) < PATH_MAX)
		n++;
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (k > 0) {
		exe[k] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			if (n < max && snprintf(dirs[n], PATH_MAX, "%s/../share/ft/templates", exe) < PATH_MAX)
				n++;
			if (n < max && snprintf(dirs[n], PATH_MAX, "%s/../templates", exe) < PATH_MAX)
				n++;
		}
	}
	return n;
}

/* dir/name.jinja into path; false if it does not fit */
static bool template_path(char *path, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(path, cap, "%s/%s.jinja", dir, name);
	return n > 0 && (size_t)n < cap;
}

static const char *const builtin_names[] = { "chatml", "llama2", "llama3", "qwen2", "chatglm3",
					     "alpaca", "qa" };

static void list_builtins(void)
{
	char dirs[4][PATH_MAX];
	int nd = template_dirs(dirs, 4);
	for (size_t i = 0; i < sizeof builtin_names / sizeof *builtin_names; i++) {
		const char *where = NULL;
		char path[PATH_MAX + 64];
		for (int d = 0; d < nd && !where; d++) {
			if (template_path(path, sizeof path, dirs[d], builtin_names[i]) &&
			    access(path, R_OK) == 0)
				where = path;
		}
		printf("%-10s %s\n", builtin_names[i], where ? where : "(not installed)");
	}
}

/* Parse the optional first-line header of a template file:
 * {#- ft: {"bos_token": "<s>", "eos_token": "</s>", "eot": ["..."]} -#} */
static void template_header(struct tmpl *t, const char *src, size_t len)
{
	if (len < 8 || strncmp(src, "{#", 2))
		return;
	const char *p = src + 2;
	if (*p == '-' || *p == '+')
		p++;
	while (*p == ' ')
		p++;
	if (strncmp(p, "ft:", 3))
		return;
	p += 3;
	const char *end = strstr(p, "#}");
	if (!end)
		return;
	while (end > p && (end[-1] == '-' || end[-1] == '+' || end[-1] == ' '))
		end--;
	cJSON *h = NULL;
	if (ft_json_parse(p, (size_t)(end - p), &h, NULL) || !cJSON_IsObject(h)) {
		cJSON_Delete(h);
		ft_die(FT_EXIT_USAGE, "%s: bad 'ft:' header: expected a JSON object", t->name);
	}
	char *bos = config_token(h, "bos_token"), *eos = config_token(h, "eos_token");
	if (bos) {
		free(t->bos);
		t->bos = bos;
	}
	if (eos) {
		free(t->eos);
		t->eos = eos;
	}
	const cJSON *eot = cJSON_GetObjectItemCaseSensitive(h, "eot");
	const cJSON *e;
	cJSON_ArrayForEach(e, eot) {
		if (cJSON_IsString(e)) {
			t->eot = ft_xrealloc(t->eot, (size_t)(t->neot + 1) * sizeof *t->eot);
			t->eot[t->neot++] = ft_xstrdup(e->valuestring);
		}
	}
	cJSON_Delete(h);
}

static void compile_template(struct tmpl *t, const char *src, size_t len)
{
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_tpl_compile(&t->tpl, t->name, src, len, &err))
		ft_die(FT_EXIT_USAGE, "%s:%ld:%ld: %s", t->name, err.line, err.col, err.msg);
	t->generation = ft_tpl_has_generation(t->tpl);
}

static void load_template(struct tmpl *t, const struct opts *o)
{
	memset(t, 0, sizeof *t);
	size_t len = 0;
	char *src = NULL;
	if (o->chat_name) {
		char dirs[4][PATH_MAX];
		int nd = template_dirs(dirs, 4);
		char path[PATH_MAX + 64];
		for (int d = 0; d < nd && !src; d++) {
			if (template_path(path, sizeof path, dirs[d], o->chat_name))
				src = read_file(path, &len);
		}
		if (!src)
			ft_usage_error("unknown built-in template '%s' (see --list)", o->chat_name);
		t->name = ft_xstrdup(o->chat_name);
		template_header(t, src, len);
		compile_template(t, src, len);
		free(src);
		return;
	}
	src = read_file(o->template_file, &len);
	if (!src)
		ft_die(FT_EXIT_USAGE, "%s: %s", o->template_file, strerror(errno));
	t->name = ft_xstrdup(o->template_file);
	/* a tokenizer_config.json holds the template as "chat_template" */
	cJSON *cfg = NULL;
	size_t skip = 0;
	while (skip < len && (src[skip] == ' ' || src[skip] == '\n' || src[skip] == '\t' || src[skip] == '\r'))
		skip++;
	if (skip < len && src[skip] == '{' && !ft_json_parse(src, len, &cfg, NULL) &&
	    cJSON_IsObject(cfg)) {
		const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
		if (cJSON_IsArray(ct)) {
			/* [{"name": "default", "template": "..."}, ...] */
			const cJSON *e, *pick = NULL;
			cJSON_ArrayForEach(e, ct) {
				const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
				if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default"))
					pick = cJSON_GetObjectItemCaseSensitive(e, "template");
			}
			ct = pick;
		}
		if (!cJSON_IsString(ct))
			ft_die(FT_EXIT_USAGE, "%s: no 'chat_template' string in this tokenizer config",
			       o->template_file);
		t->config = cfg;
		t->bos = config_token(cfg, "bos_token");
		t->eos = config_token(cfg, "eos_token");
		compile_template(t, ct->valuestring, strlen(ct->valuestring));
	} else {
		cJSON_Delete(cfg);
		template_header(t, src, len);
		compile_template(t, src, len);
	}
	free(src);
}

/* ---- record normalisation ---- */

struct record_ctx {
	cJSON *rec;
	cJSON *messages;        /* normalised messages (owned when built here) */
	bool messages_owned;
	const char *id_text;    /* for messages */
	char id_buf[64];
	const cJSON *id;        /* id value to write (NULL: use id_buf as a string) */
	const cJSON *group;
};

static int bad(struct ft_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct ft_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->code = FT_E_DATA;
	return FT_E_DATA;
}

static bool role_ok(const struct opts *o, const char *role)
{
	for (size_t i = 0; i < sizeof builtin_roles / sizeof *builtin_roles; i++)
		if (!strcmp(role, builtin_roles[i]))
			return true;
	for (int i = 0; i < o->nroles; i++)
		if (!strcmp(role, o->roles[i]))
			return true;
	return false;
}

static int check_messages(const struct opts *o, const cJSON *msgs, const char *field,
			  struct ft_err *err)
{
	if (!cJSON_IsArray(msgs))
		return bad(err, "'%s' is not an array", field);
	if (!msgs->child)
		return bad(err, "'%s' is empty", field);
	int i = 0;
	const cJSON *m;
	cJSON_ArrayForEach(m, msgs) {
		if (!cJSON_IsObject(m))
			return bad(err, "%s[%d] is not an object", field, i);
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
		if (!role)
			return bad(err, "%s[%d]: missing 'role'", field, i);
		if (!cJSON_IsString(role))
			return bad(err, "%s[%d]: 'role' is not a string", field, i);
		if (!role_ok(o, role->valuestring))
			return bad(err, "%s[%d]: unknown role '%s'", field, i, role->valuestring);
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
		bool is_assistant = !strcmp(role->valuestring, "assistant");
		bool has_calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls") ||
				 cJSON_GetObjectItemCaseSensitive(m, "function_call");
		if (!content && !has_calls)
			return bad(err, "%s[%d]: missing 'content'", field, i);
		if (content && !cJSON_IsString(content) && !(cJSON_IsNull(content) && has_calls))
			return bad(err, "%s[%d]: 'content' is not a string", field, i);
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(m, "weight");
		if (w) {
			if (!ft_json_is_int(w) || (w->valuedouble != 0 && w->valuedouble != 1))
				return bad(err, "%s[%d]: 'weight' must be 0 or 1", field, i);
			if (!is_assistant)
				return bad(err, "%s[%d]: 'weight' is only allowed on assistant messages",
					   field, i);
		}
		i++;
	}
	return FT_OK;
}

static cJSON *new_message(const char *role, cJSON *content_ref)
{
	cJSON *m = cJSON_CreateObject();
	if (!m || !cJSON_AddStringToObject(m, "role", role) ||
	    !cJSON_AddItemToObject(m, "content", content_ref))
		ft_die(FT_EXIT_DATA, "out of memory");
	return m;
}

/* ShareGPT: {"conversations": [{"from": "human", "value": ...}, ...]} */
static int from_sharegpt(const struct opts *o, struct record_ctx *rc, const cJSON *conv,
			 struct ft_err *err)
{
	if (!cJSON_IsArray(conv))
		return bad(err, "'conversations' is not an array");
	if (!conv->child)
		return bad(err, "'conversations' is empty");
	static const char *const map[][2] = {
		{ "human", "user" }, { "user", "user" }, { "gpt", "assistant" },
		{ "assistant", "assistant" }, { "system", "system" }, { "function_call", "assistant" },
		{ "observation", "tool" }, { "tool", "tool" }, { "function", "tool" },
	};
	cJSON *msgs = cJSON_CreateArray();
	if (!msgs)
		ft_die(FT_EXIT_DATA, "out of memory");
	int i = 0;
	const cJSON *t;
	cJSON_ArrayForEach(t, conv) {
		const cJSON *from = cJSON_GetObjectItemCaseSensitive(t, "from");
		const cJSON *value = cJSON_GetObjectItemCaseSensitive(t, "value");
		const char *role = NULL;
		if (!cJSON_IsObject(t)) {
			cJSON_Delete(msgs);
			return bad(err, "conversations[%d] is not an object", i);
		}
		if (!cJSON_IsString(from)) {
			cJSON_Delete(msgs);
			return bad(err, "conversations[%d]: %s 'from'", i, from ? "non-string" : "missing");
		}
		for (size_t k = 0; k < sizeof map / sizeof *map && !role; k++)
			if (!strcmp(from->valuestring, map[k][0]))
				role = map[k][1];
		if (!role && role_ok(o, from->valuestring))
			role = from->valuestring;
		if (!role) {
			cJSON_Delete(msgs);
			return bad(err, "conversations[%d]: unknown role '%s'", i, from->valuestring);
		}
		if (!cJSON_IsString(value)) {
			cJSON_Delete(msgs);
			return bad(err, "conversations[%d]: %s 'value'", i, value ? "non-string" : "missing");
		}
		cJSON *m = new_message(role, cJSON_CreateStringReference(value->valuestring));
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(t, "weight");
		if (w)
			cJSON_AddItemToObject(m, "weight", cJSON_Duplicate(w, 0));
		cJSON_AddItemToArray(msgs, m);
		i++;
	}
	rc->messages = msgs;
	rc->messages_owned = true;
	return check_messages(o, msgs, "conversations", err);
}

/* Alpaca: {"instruction", "input", "output", "system"?, "history"?} */
static int from_alpaca(struct record_ctx *rc, struct ft_err *err)
{
	const cJSON *ins = cJSON_GetObjectItemCaseSensitive(rc->rec, "instruction");
	const cJSON *inp = cJSON_GetObjectItemCaseSensitive(rc->rec, "input");
	const cJSON *out = cJSON_GetObjectItemCaseSensitive(rc->rec, "output");
	const cJSON *sys = cJSON_GetObjectItemCaseSensitive(rc->rec, "system");
	const cJSON *hist = cJSON_GetObjectItemCaseSensitive(rc->rec, "history");
	if (!cJSON_IsString(ins))
		return bad(err, "'instruction' is not a string");
	if (!out)
		return bad(err, "missing 'output'");
	if (!cJSON_IsString(out))
		return bad(err, "'output' is not a string");
	if (inp && !cJSON_IsString(inp) && !cJSON_IsNull(inp))
		return bad(err, "'input' is not a string");
	if (sys && !cJSON_IsString(sys) && !cJSON_IsNull(sys))
		return bad(err, "'system' is not a string");
	cJSON *msgs = cJSON_CreateArray();
	if (!msgs)
		ft_die(FT_EXIT_DATA, "out of memory");
	rc->messages = msgs;
	rc->messages_owned = true;
	if (cJSON_IsString(sys) && *sys->valuestring)
		cJSON_AddItemToArray(msgs, new_message("system", cJSON_CreateStringReference(sys->valuestring)));
	if (hist && !cJSON_IsNull(hist)) {
		if (!cJSON_IsArray(hist))
			return bad(err, "'history' is not an array");
		int i = 0;
		const cJSON *pair;
		cJSON_ArrayForEach(pair, hist) {
			const cJSON *q = cJSON_GetArrayItem(pair, 0), *a = cJSON_GetArrayItem(pair, 1);
			if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsString(q) ||
			    !cJSON_IsString(a))
				return bad(err, "history[%d] is not a [query, response] pair of strings", i);
			cJSON_AddItemToArray(msgs, new_message("user", cJSON_CreateStringReference(q->valuestring)));
			cJSON_AddItemToArray(msgs, new_message("assistant", cJSON_CreateStringReference(a->valuestring)));
			i++;
		}
	}
	/* instruction and input joined by a newline, as LLaMA-Factory does */
	cJSON *user;
	if (cJSON_IsString(inp) && *inp->valuestring) {
		size_t a = strlen(ins->valuestring), b = strlen(inp->valuestring);
		char *joined = malloc(a + b + 2);
		if (!joined)
			ft_die(FT_EXIT_DATA, "out of memory");
		memcpy(joined, ins->valuestring, a);
		joined[a] = '\n';
		memcpy(joined + a + 1, inp->valuestring, b + 1);
		user = cJSON_CreateString(joined);
		free(joined);
	} else {
		user = cJSON_CreateStringReference(ins->valuestring);
	}
	cJSON_AddItemToArray(msgs, new_message("user", user));
	cJSON_AddItemToArray(msgs, new_message("assistant", cJSON_CreateStringReference(out->valuestring)));
	return FT_OK;
}

static int normalise(const struct opts *o, const struct tmpl *t, struct record_ctx *rc,
		     struct ft_err *err)
{
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(rc->rec, "messages");
	const cJSON *conv = cJSON_GetObjectItemCaseSensitive(rc->rec, "conversations");
	if (msgs) {
		rc->messages = (cJSON *)msgs;
		return check_messages(o, msgs, "messages", err);
	}
	if (conv)
		return from_sharegpt(o, rc, conv, err);
	if (cJSON_GetObjectItemCaseSensitive(rc->rec, "instruction") ||
	    cJSON_GetObjectItemCaseSensitive(rc->rec, "output"))
		return from_alpaca(rc, err);
	if (ft_tpl_uses(t->tpl, "messages"))
		return bad(err, "missing 'messages' (or 'conversations', or 'instruction' and 'output')");
	return FT_OK;
}

/* ---- trained spans without {% generation %} ---- */

struct ptrset {
	const void **v;
	size_t n, cap;
};

static void ptrset_add(struct ptrset *s, const void *p)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = ft_xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = p;
}

static void ptrset_add_tree(struct ptrset *s, const cJSON *n)
{
	for (; n; n = n->next) {
		ptrset_add(s, n);
		if (n->child)
			ptrset_add_tree(s, n->child);
	}
}

static bool ptrset_has(const struct ptrset *s, const void *p)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == p)
			return true;
	return false;
}

/* The role strings of validated messages. */
static void role_nodes(const cJSON *msgs, struct ptrset *s)
{
	s->n = 0;
	const cJSON *m;
	cJSON_ArrayForEach(m, msgs) {
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
		if (cJSON_IsString(role))
			ptrset_add(s, role);
	}
}

/* The nodes whose text is trained: content and tool calls of assistant
 * messages whose weight is not 0. */
static void trainable_nodes(const cJSON *msgs, struct ptrset *s)
{
	s->n = 0;
	const cJSON *m;
	cJSON_ArrayForEach(m, msgs) {
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(m, "weight");
		if (!cJSON_IsString(role) || strcmp(role->valuestring, "assistant") ||
		    (w && cJSON_IsNumber(w) && w->valuedouble == 0))
			continue;
		for (const cJSON *f = m->child; f; f = f->next) {
			if (!f->string)
				continue;
			if (!strcmp(f->string, "content") || !strcmp(f->string, "tool_calls") ||
			    !strcmp(f->string, "function_call")) {
				ptrset_add(s, f);
				if (f->child)
					ptrset_add_tree(s, f->child);
			}
		}
	}
}

/* The end-of-turn strings to look for: the template's eos and eot, the
 * --eot options, and the well-known ones (always, or only when no --eot was
 * given). Returns how many went into out. */
static int eot_candidates(const struct tmpl *t, const struct opts *o, bool always_known,
			  const char *out[64])
{
	int nc = 0;
	if (t->eos)
		out[nc++] = t->eos;
	for (int k = 0; k < t->neot && nc < 60; k++)
		out[nc++] = t->eot[k];
	for (int k = 0; k < o->neot && nc < 60; k++)
		out[nc++] = o->eot[k];
	if (always_known || !o->neot)
		for (size_t k = 0; k < sizeof known_eot / sizeof *known_eot && nc < 64; k++)
			out[nc++] = known_eot[k];
	return nc;
}

/* Mark trained: data from trainable nodes, then the template text after it up
 * to and including the first end-of-turn token before the next data. Returns
 * false when some trained text had no end-of-turn token after it. */
static bool auto_train(struct ft_segments *segs, const char *text, const struct ptrset *nodes,
		       const struct tmpl *t, const struct opts *o)
{
	bool all_stopped = true;
	const char *cands[64];
	int nc = eot_candidates(t, o, false, cands);
	for (size_t i = 0; i < segs->n; i++) {
		struct ft_segment *s = &segs->v[i];
		s->train = s->data && s->origin && ptrset_has(nodes, s->origin);
	}
	for (size_t i = 0; i < segs->n; i++) {
		if (!segs->v[i].train || !segs->v[i].data)
			continue;
		if (i + 1 < segs->n && segs->v[i + 1].train)
			continue;  /* not the end of this trained run */
		/* template text right after: find the earliest end-of-turn token */
		size_t j = i + 1;
		if (j >= segs->n || segs->v[j].data) {
			all_stopped = false;
			continue;
		}
		struct ft_segment *lit = &segs->v[j];
		const char *p = text + lit->off;
		size_t best = SIZE_MAX, best_len = 0;
		for (int k = 0; k < nc; k++) {
			size_t n = strlen(cands[k]);
			if (!n)
				continue;
			const char *hit = memmem(p, lit->len, cands[k], n);
			if (hit && (size_t)(hit - p) < best) {
				best = (size_t)(hit - p);
				best_len = n;
			}
		}
		if (best == SIZE_MAX) {
			all_stopped = false;
			continue;
		}
		size_t cut = best + best_len;
		if (cut < lit->len) {
			/* split the template segment: trained head, untrained tail */
			if (segs->n == segs->cap) {
				segs->cap = segs->cap ? segs->cap * 2 : 16;
				segs->v = ft_xrealloc(segs->v, segs->cap * sizeof *segs->v);
				lit = &segs->v[j];
			}
			memmove(&segs->v[j + 2], &segs->v[j + 1], (segs->n - j - 1) * sizeof *segs->v);
			segs->n++;
			segs->v[j + 1] = segs->v[j];
			segs->v[j + 1].off += cut;
			segs->v[j + 1].len -= cut;
			segs->v[j + 1].train = false;
			segs->v[j].len = cut;
		}
		segs->v[j].train = true;
		i = j;
	}
	return all_stopped;
}

/* ---- output ---- */

static int write_id(struct ft_buf *b, const struct record_ctx *rc)
{
	if (rc->id)
		return ft_json_write(b, rc->id);
	return ft_json_write_string(b, rc->id_buf, strlen(rc->id_buf));
}

static int write_common(struct ft_buf *b, const struct record_ctx *rc, const struct opts *o)
{
	int err = ft_buf_puts(b, ",\"group\":");
	if (!err)
		err = rc->group ? ft_json_write(b, rc->group) : write_id(b, rc);
	for (int i = 0; i < o->nkeep && !err; i++) {
		const cJSON *v = ft_json_path(rc->rec, o->keep[i]);
		if (!v || !strcmp(o->keep[i], "id") || !strcmp(o->keep[i], "group"))
			continue;  /* absent, or written already */
		if (!(err = ft_buf_putc(b, ',')))
			err = ft_json_write_string(b, o->keep[i], strlen(o->keep[i]));
		if (!err && !(err = ft_buf_putc(b, ':')))
			err = ft_json_write(b, v);
	}
	return err;
}

/* Length of a trailing end-of-turn token in template text at the end of a span. */
static size_t trailing_eot(const char *text, const struct ft_segment *segs, size_t from, size_t to,
			   const struct tmpl *t, const struct opts *o)
{
	if (to <= from || segs[to - 1].data)
		return 0;
	const struct ft_segment *last = &segs[to - 1];
	const char *cands[64];
	int nc = eot_candidates(t, o, true, cands);
	/* strip trailing whitespace after the token too (e.g. "<|im_end|>\n") */
	size_t e = last->len;
	while (e > 0 && (text[last->off + e - 1] == '\n' || text[last->off + e - 1] == ' '))
		e--;
	for (int k = 0; k < nc; k++) {
		size_t n = strlen(cands[k]);
		if (n && n <= e && !memcmp(text + last->off + e - n, cands[k], n))
			return last->len - (e - n);
	}
	return 0;
}

static int emit_samples(struct ft_buf *dst, struct ft_buf *b, const struct record_ctx *rc,
			const struct ft_render *r, const struct ft_segments *segs,
			const struct tmpl *t, const struct opts *o, struct stats *st)
{
	const char *text = r->text.data ? r->text.data : "";
	int err = 0;
	if (o->mode == MODE_TRAIN) {
		ft_buf_reset(b);
		err = ft_buf_puts(b, "{\"id\":");
		err = err ? err : write_id(b, rc);
		err = err ? err : write_common(b, rc, o);
		err = err ? err : ft_buf_putc(b, ',');
		err = err ? err : ft_sample_write_segments(b, text, segs->v, 0, segs->n, false);
		err = err ? err : ft_buf_puts(b, "}\n");
		if (err)
			return err;
		st->samples++;
		return ft_buf_append(dst, b->data, b->len);
	}
	/* prompt mode: one sample per trained span */
	int k = 0;
	for (size_t i = 0; i < segs->n; i++) {
		if (!segs->v[i].train || (i > 0 && segs->v[i - 1].train))
			continue;
		size_t j = i;
		while (j < segs->n && segs->v[j].train)
			j++;
		ft_buf_reset(b);
		err = ft_buf_puts(b, "{\"id\":");
		/* "<id>#<k>" */
		struct ft_buf idb;
		ft_buf_init(&idb, 0);
		if (rc->id && cJSON_IsString(rc->id))
			err = err ? err : ft_buf_puts(&idb, rc->id->valuestring);
		else if (rc->id)
			err = err ? err : ft_json_write(&idb, rc->id);
		else
			err = err ? err : ft_buf_puts(&idb, rc->id_buf);
		err = err ? err : ft_buf_printf(&idb, "#%d", k);
		err = err ? err : ft_json_write_string(b, idb.data, idb.len);
		ft_buf_release(&idb);
		err = err ? err : ft_buf_puts(b, ",\"source_id\":");
		err = err ? err : write_id(b, rc);
		err = err ? err : ft_buf_printf(b, ",\"turn\":%d", k);
		err = err ? err : write_common(b, rc, o);
		err = err ? err : ft_buf_putc(b, ',');
		err = err ? err : ft_sample_write_segments(b, text, segs->v, 0, i, true);
		/* the reference: the span's text without its end-of-turn token */
		size_t span_off = segs->v[i].off;
		size_t span_end = segs->v[j - 1].off + segs->v[j - 1].len;
		size_t cut = trailing_eot(text, segs->v, i, j, t, o);
		err = err ? err : ft_buf_puts(b, ",\"reference\":");
		err = err ? err : ft_json_write_string(b, text + span_off, span_end - span_off - cut);
		err = err ? err : ft_buf_puts(b, "}\n");
		if (err)
			return err;
		err = ft_buf_append(dst, b->data, b->len);
		if (err)
			return err;
		st->samples++;
		k++;
		i = j - 1;
	}
	return FT_OK;
}

/* ---- main loop ---- */

static int bind_vars(struct ft_tpl_vars *vars, const struct record_ctx *rc, const struct tmpl *t,
		     const struct opts *o)
{
	int err = 0;
	ft_tpl_vars_clear(vars);
	if (t->config) {
		/* the tokenizer's other special tokens, as transformers passes them */
		static const char *const extra[] = { "unk_token", "pad_token", "sep_token",
						     "cls_token", "mask_token" };
		for (size_t i = 0; i < sizeof extra / sizeof *extra && !err; i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(t->config, extra[i]);
			if (cJSON_IsObject(v))
				v = cJSON_GetObjectItemCaseSensitive(v, "content");
			if (cJSON_IsString(v))
				err = ft_tpl_vars_str(vars, extra[i], v->valuestring, FT_TPL_LITERAL);
		}
	}
	for (const cJSON *f = rc->rec->child; f && !err; f = f->next)
		if (f->string)
			err = ft_tpl_vars_json(vars, f->string, f);
	if (!err)
		err = ft_tpl_vars_json(vars, "record", rc->rec);
	if (!err && rc->messages)
		err = ft_tpl_vars_json(vars, "messages", rc->messages);
	for (int i = 0; i < o->nvars && !err; i++)
		err = ft_tpl_vars_json(vars, o->vars[i].name, o->vars[i].value);
	if (!err)
		err = t->bos ? ft_tpl_vars_str(vars, "bos_token", t->bos, FT_TPL_LITERAL)
			     : ft_tpl_vars_str(vars, "bos_token", "", FT_TPL_LITERAL);
	if (!err)
		err = t->eos ? ft_tpl_vars_str(vars, "eos_token", t->eos, FT_TPL_LITERAL)
			     : ft_tpl_vars_str(vars, "eos_token", "", FT_TPL_LITERAL);
	if (!err)
		err = ft_tpl_vars_bool(vars, "add_generation_prompt", false);
	return err;
}

static void set_ids(struct record_ctx *rc, const struct opts *o, unsigned long long recno)
{
	rc->id = ft_json_path(rc->rec, o->id_field);
	if (rc->id && !cJSON_IsString(rc->id) && !cJSON_IsNumber(rc->id))
		rc->id = NULL;
	snprintf(rc->id_buf, sizeof rc->id_buf, "%llu", recno);
	rc->id_text = rc->id && cJSON_IsString(rc->id) ? rc->id->valuestring : rc->id_buf;
	if (rc->id && cJSON_IsNumber(rc->id)) {
		struct ft_buf b;
		ft_buf_init(&b, 0);
		if (!ft_json_write(&b, rc->id) && b.len < sizeof rc->id_buf)
			memcpy(rc->id_buf, b.data, b.len + 1);
		ft_buf_release(&b);
		rc->id_text = rc->id_buf;
	}
	rc->group = ft_json_path(rc->rec, o->group_field);
	if (rc->group && !cJSON_IsString(rc->group) && !cJSON_IsNumber(rc->group))
		rc->group = NULL;
}

/* Returns 0, or a data error already described in err. */
static int process(struct record_ctx *rc, const struct tmpl *t, const struct opts *o,
		   struct ft_tpl_vars *vars, struct ft_render *r, struct ft_segments *segs,
		   struct ptrset *nodes, struct ft_buf *dst, struct ft_buf *b, struct stats *st,
		   struct ft_err *err)
{
	int e = normalise(o, t, rc, err);
	if (e)
		return e;
	if ((e = bind_vars(vars, rc, t, o)))
		return bad(err, "out of memory");
	ft_render_reset(r);
	struct ft_err rerr;
	ft_err_clear(&rerr);
	if (ft_tpl_render(t->tpl, vars, r, &rerr)) {
		if (rerr.line)
			return bad(err, "%s:%ld:%ld: %s", t->name, rerr.line, rerr.col, rerr.msg);
		return bad(err, "%s: %s", t->name, rerr.msg);
	}
	if ((e = ft_segments_from_render(segs, r)))
		return bad(err, "out of memory");
	if (rc->messages) {
		/* Roles are checked against a fixed list, so they are structure,
		 * not free text: templates build special tokens from them
		 * (ChatGLM3's "<|" + role + "|>"). */
		role_nodes(rc->messages, nodes);
		for (size_t i = 0; i < segs->n; i++)
			if (segs->v[i].data && ptrset_has(nodes, segs->v[i].origin))
				segs->v[i].data = false;
	}
	if (!t->generation) {
		if (!rc->messages)
			return bad(err, "template has no {%% generation %%} block and the record has no messages: nothing to train");
		trainable_nodes(rc->messages, nodes);
		if (!auto_train(segs, r->text.data ? r->text.data : "", nodes, t, o) &&
		    !atomic_exchange(&warned_no_eot, true))
			ft_warn("warning: %s: no end-of-turn token follows trained assistant text, so the "
				"model will not learn to stop; name it with --eot TOKEN", t->name);
	}
	ft_segments_merge(segs);
	unsigned long long trained = 0;
	for (size_t i = 0; i < segs->n; i++)
		if (segs->v[i].train)
			trained += segs->v[i].len;
	if (!trained)
		return bad(err, "no trained turn");
	if ((e = emit_samples(dst, b, rc, r, segs, t, o, st)))
		return bad(err, e == FT_E_NOMEM ? "out of memory" : "sample too large");
	st->trained_bytes += trained;
	st->bytes += r->text.len;
	return FT_OK;
}

/* ---- batches and workers ----
 * The main thread reads lines into batches; the pool (pool.h) renders whole
 * batches on its workers into each batch's own output buffer and hands them
 * back in input order, in which the main thread writes them, so the output
 * is the same for any number of workers, and the first error reported is
 * the first in the input. */

#define BATCH_LINES 512
#define BATCH_BYTES ((size_t)4 << 20)

struct batch {
	struct ft_lines in;
	struct ft_buf out;
	struct stats st;
	bool failed;
	struct ft_err fail;    /* the first error, when not skipping */
	char fail_prefix[200];
};

/* Rendering state, one per pool worker: a worker runs one batch at a time. */
struct worker {
	struct ft_tpl_vars *vars;
	struct ft_render r;
	struct ft_segments segs;
	struct ptrset nodes;
	struct ft_buf b;
	struct ft_arena arena;
};

struct ctx {
	const struct tmpl *t;
	const struct opts *o;
	struct worker *workers;
};

/* The main thread's side: the pool, its batches, and what was written. */
struct run {
	struct ctx cx;
	struct ft_pool *pool;
	struct batch *batches;
	int nbatch;
	struct ft_out *out;
	bool failed;
	struct stats st;
	struct ft_progress prog;
};

static void worker_init(struct worker *w)
{
	memset(w, 0, sizeof *w);
	w->vars = ft_tpl_vars_new();
	if (!w->vars)
		ft_die(FT_EXIT_DATA, "out of memory");
	ft_render_init(&w->r);
	ft_segments_init(&w->segs);
	ft_buf_init(&w->b, 0);
	ft_arena_init(&w->arena, 0);
}

static void worker_release(struct worker *w)
{
	ft_buf_release(&w->b);
	free(w->nodes.v);
	ft_segments_release(&w->segs);
	ft_render_release(&w->r);
	ft_tpl_vars_free(w->vars);
	ft_arena_release(&w->arena);
}

/* Render one batch on worker wi (the pool's work function). */
static void work(void *batch, int wi, void *arg)
{
	struct batch *bt = batch;
	const struct ctx *c = arg;
	const struct opts *o = c->o;
	struct worker *w = &c->workers[wi];
	ft_buf_reset(&bt->out);
	memset(&bt->st, 0, sizeof bt->st);
	bt->failed = false;
	ft_json_use_arena(&w->arena);
	for (int i = 0; i < bt->in.n; i++) {
		struct ft_line *en = &bt->in.e[i];
		bt->st.records++;
		struct ft_err err;
		ft_err_clear(&err);
		const char *prefix = "";
		char pbuf[200];
		cJSON *rec = NULL;
		int bad_rec = 0;
		if (en->err >= 0) {
			err = bt->in.errs[en->err];
			bad_rec = 1;
		} else if (ft_jsonl_parse(bt->in.text.data + en->off, en->len, o->nfc ? FT_JSONL_NFC : 0,
					  en->col_offset, &rec, &err) < 0) {
			bad_rec = 1;
		} else {
			struct record_ctx rctx = { .rec = rec };
			set_ids(&rctx, o, en->recno);
			if (process(&rctx, c->t, o, w->vars, &w->r, &w->segs, &w->nodes, &bt->out,
				    &w->b, &bt->st, &err)) {
				bad_rec = 1;
				snprintf(pbuf, sizeof pbuf, "record '%.150s': ", rctx.id_text);
				prefix = pbuf;
			}
			if (rctx.messages_owned)
				cJSON_Delete(rctx.messages);
			cJSON_Delete(rec);
		}
		ft_arena_reset(&w->arena);
		if (!bad_rec)
			continue;
		err.file = en->file;
		err.line = en->lineno;
		bool fatal = bt->in.fatal_at_end && i == bt->in.n - 1;
		if (o->skip_bad && !fatal && err.code != FT_E_NOMEM) {
			bt->st.skipped++;
			continue;
		}
		bt->failed = true;
		bt->fail = err;
		snprintf(bt->fail_prefix, sizeof bt->fail_prefix, "%s", prefix);
		break;
	}
	ft_json_use_arena(NULL);
}

static void run_start(struct run *rn, const struct tmpl *t, const struct opts *o,
		      struct ft_out *out)
{
	memset(rn, 0, sizeof *rn);
	rn->cx = (struct ctx){ .t = t, .o = o };
	rn->out = out;
	/* a few batches per worker keep them busy while the oldest is written,
	 * and bound memory */
	rn->nbatch = o->jobs > 1 ? 2 * o->jobs + 2 : 1;
	rn->batches = calloc((size_t)rn->nbatch, sizeof *rn->batches);
	void **bp = calloc((size_t)rn->nbatch, sizeof *bp);
	rn->cx.workers = calloc((size_t)o->jobs, sizeof *rn->cx.workers);
	if (!rn->batches || !bp || !rn->cx.workers)
		ft_die(FT_EXIT_DATA, "out of memory");
	for (int i = 0; i < rn->nbatch; i++) {
		ft_lines_init(&rn->batches[i].in);
		ft_buf_init(&rn->batches[i].out, 0);
		bp[i] = &rn->batches[i];
	}
	for (int i = 0; i < o->jobs; i++)
		worker_init(&rn->cx.workers[i]);
	ft_progress_init(&rn->prog, o->progress);
	ft_json_use_arena(NULL);  /* install cJSON's hooks before any thread runs */
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_pool_start(&rn->pool, o->jobs, bp, rn->nbatch, work, &rn->cx, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	free(bp);  /* the pool keeps its own copy of the pointers */
}

/* Write out a finished batch (in order) and give it back to the pool. */
static void write_batch(struct run *rn, struct batch *bt)
{
	if (!rn->failed) {
		if (bt->out.len && ft_out_write(rn->out, bt->out.data, bt->out.len))
			ft_die(FT_EXIT_DATA, "%s: write error: %s", ft_out_name(rn->out), strerror(errno));
		rn->st.records += bt->st.records;
		rn->st.samples += bt->st.samples;
		rn->st.skipped += bt->st.skipped;
		rn->st.trained_bytes += bt->st.trained_bytes;
		rn->st.bytes += bt->st.bytes;
		if (bt->failed) {
			ft_progress_done(&rn->prog);
			ft_report(&bt->fail, bt->fail_prefix[0] ? bt->fail_prefix : NULL);
			rn->failed = true;
		}
	}
	ft_pool_release(rn->pool, bt);
}

/* Write the finished batches that are next in order; with wait, every
 * pending batch. */
static void drain(struct run *rn, bool wait)
{
	struct batch *bt;
	while ((bt = ft_pool_next_done(rn->pool, wait)))
		write_batch(rn, bt);
}

/* An empty batch to fill. Finished batches are written first, so output
 * and a first error come out as early as they can; when every batch is
 * busy, wait for the oldest. */
static struct batch *next_batch(struct run *rn)
{
	struct batch *bt;
	drain(rn, false);
	while (!(bt = ft_pool_acquire(rn->pool)))
		write_batch(rn, ft_pool_next_done(rn->pool, true));
	ft_lines_reset(&bt->in);
	return bt;
}

/* Wait for every batch, write them, stop the workers. */
static void run_finish(struct run *rn)
{
	drain(rn, true);
	ft_pool_free(rn->pool);
	rn->pool = NULL;
	ft_progress_done(&rn->prog);
}

static void run_release(struct run *rn)
{
	for (int i = 0; i < rn->cx.o->jobs; i++)
		worker_release(&rn->cx.workers[i]);
	for (int i = 0; i < rn->nbatch; i++) {
		ft_lines_release(&rn->batches[i].in);
		ft_buf_release(&rn->batches[i].out);
	}
	free(rn->batches);
	free(rn->cx.workers);
}

static void add_str(const char ***v, int *n, const char *s)
{
	*v = ft_xrealloc(*v, (size_t)(*n + 1) * sizeof **v);
	(*v)[(*n)++] = s;
}

int main(int argc, char **argv)
{
	ft_cli_init("ft-template");
	struct opts o = { .mode = MODE_TRAIN, .id_field = "id", .group_field = "group", .jobs = 0 };
	enum { O_BOS = 256, O_EOS, O_EOT, O_VAR, O_ROLE, O_KEEP, O_IDF, O_GRPF, O_NFC, O_SKIP,
	       O_MAXLINE, O_LIST, O_PROGRESS, O_VERSION };
	static const struct option longopts[] = {
		{ "template", required_argument, NULL, 't' },
		{ "chat", required_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' },
		{ "output", required_argument, NULL, 'o' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "bos", required_argument, NULL, O_BOS },
		{ "eos", required_argument, NULL, O_EOS },
		{ "eot", required_argument, NULL, O_EOT },
		{ "var", required_argument, NULL, O_VAR },
		{ "role", required_argument, NULL, O_ROLE },
		{ "keep", required_argument, NULL, O_KEEP },
		{ "id-field", required_argument, NULL, O_IDF },
		{ "group-field", required_argument, NULL, O_GRPF },
		{ "nfc", no_argument, NULL, O_NFC },
		{ "skip-bad", no_argument, NULL, O_SKIP },
		{ "max-line", required_argument, NULL, O_MAXLINE },
		{ "list", no_argument, NULL, O_LIST },
		{ "quiet", no_argument, NULL, 'q' },
		{ "progress", no_argument, NULL, O_PROGRESS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	opterr = 0;  /* our own message for unknown options */
	while ((c = getopt_long(argc, argv, ":t:c:m:o:j:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 't': o.template_file = optarg; break;
		case 'c': o.chat_name = optarg; break;
		case 'm':
			if (!strcmp(optarg, "train"))
				o.mode = MODE_TRAIN;
			else if (!strcmp(optarg, "prompt"))
				o.mode = MODE_PROMPT;
			else
				ft_usage_error("invalid mode '%s': expected 'train' or 'prompt'", optarg);
			break;
		case 'o': o.output = optarg; break;
		case 'j': o.jobs = (int)ft_opt_long("-j", optarg, 1, 256); break;
		case O_BOS: o.bos = optarg; break;
		case O_EOS: o.eos = optarg; break;
		case O_EOT: add_str(&o.eot, &o.neot, optarg); break;
		case O_VAR: {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg)
				ft_usage_error("invalid --var '%s': expected NAME=JSON", optarg);
			cJSON *v = NULL;
			if (ft_json_parse(eq + 1, strlen(eq + 1), &v, NULL))
				ft_usage_error("invalid --var '%s': the value is not JSON", optarg);
			o.vars = ft_xrealloc(o.vars, (size_t)(o.nvars + 1) * sizeof *o.vars);
			o.vars[o.nvars].name = strndup(optarg, (size_t)(eq - optarg));
			o.vars[o.nvars++].value = v;
			break;
		}
		case O_ROLE: add_str(&o.roles, &o.nroles, optarg); break;
		case O_KEEP: add_str(&o.keep, &o.nkeep, optarg); break;
		case O_IDF: o.id_field = optarg; break;
		case O_GRPF: o.group_field = optarg; break;
		case O_NFC: o.nfc = true; break;
		case O_SKIP: o.skip_bad = true; break;
		case O_MAXLINE: o.max_line = ft_opt_size("--max-line", optarg); break;
		case O_LIST: list_builtins(); ft_close_stdout(); return 0;
		case 'q': o.quiet = true; break;
		case O_PROGRESS: o.progress = true; break;
		case 'h': fputs(usage_text, stdout); ft_close_stdout(); return 0;
		case O_VERSION: printf("ft-template %s\n", FT_VERSION); ft_close_stdout(); return 0;
		case ':': ft_usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt)
				ft_usage_error("unknown option '-%c'", optopt);
			ft_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!o.template_file == !o.chat_name)
		ft_usage_error("give exactly one of -t FILE or -c NAME");
	if (!o.jobs) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o.jobs = n < 1 ? 1 : n > 8 ? 8 : (int)n;
	}

	struct tmpl t;
	load_template(&t, &o);
	if (o.bos) {
		free(t.bos);
		t.bos = ft_xstrdup(o.bos);
	}
	if (o.eos) {
		free(t.eos);
		t.eos = ft_xstrdup(o.eos);
	}

	struct ft_err err;
	ft_err_clear(&err);
	struct ft_out *out;
	if (ft_out_open(&out, o.output, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);

	struct run rn;
	run_start(&rn, &t, &o, out);

	int status = FT_EXIT_OK;
	unsigned long long recno = 0, done_bytes = 0;
	int nfiles = argc - optind;
	for (int fi = 0; fi < (nfiles ? nfiles : 1) && !rn.failed; fi++) {
		const char *path = nfiles ? argv[optind + fi] : "-";
		struct ft_jsonl_reader *rd;
		ft_err_clear(&err);
		if (ft_jsonl_open(&rd, path, o.nfc ? FT_JSONL_NFC : 0, o.max_line, &err)) {
			ft_report(&err, NULL);
			status = FT_EXIT_DATA;
			continue;
		}
		struct batch *bt = next_batch(&rn);
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
			if (rc < 0 ? ft_lines_add_error(&bt->in, &err, recno, broken)
				   : ft_lines_add(&bt->in, line, len, ft_jsonl_name(rd),
						  ft_jsonl_lineno(rd), ft_jsonl_col_offset(rd), recno))
				ft_die(FT_EXIT_DATA, "out of memory");
			if (broken)
				break;
			if (ft_lines_full(&bt->in, BATCH_LINES, BATCH_BYTES)) {
				ft_pool_submit(rn.pool, bt);
				bt = next_batch(&rn);
			}
			ft_progress_update(&rn.prog, recno, done_bytes + ft_jsonl_bytes(rd));
		}
		ft_pool_submit(rn.pool, bt);
		done_bytes += ft_jsonl_bytes(rd);
		ft_jsonl_close(rd);
	}
	run_finish(&rn);
	if (rn.failed)
		status = FT_EXIT_DATA;
	if (status) {
		ft_out_abort(out);
	} else if (ft_out_commit(out, &err)) {
		ft_warn("%s", err.msg);
		status = FT_EXIT_DATA;
	}
	struct stats st = rn.st;
	if (!o.quiet && !status) {
		fprintf(stderr, "ft-template: %llu records, %llu samples", st.records, st.samples);
		if (st.skipped)
			fprintf(stderr, ", %llu skipped", st.skipped);
		if (st.bytes)
			fprintf(stderr, ", %.1f%% of text trained", 100.0 * (double)st.trained_bytes / (double)st.bytes);
		fputc('\n', stderr);
	}
	run_release(&rn);
	ft_tpl_free(t.tpl);
	cJSON_Delete(t.config);
	free(t.bos);
	free(t.eos);
	for (int i = 0; i < t.neot; i++)
		free(t.eot[i]);
	free(t.eot);
	free(t.name);
	for (int i = 0; i < o.nvars; i++) {
		free(o.vars[i].name);
		cJSON_Delete(o.vars[i].value);
	}
	free(o.vars);
	free(o.eot);
	free(o.roles);
	free(o.keep);
	return status;
}
