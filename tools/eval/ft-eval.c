/* ft-eval: slot P/R/F1, character BLEU-4 and exact match of predictions
 * against references (the CrossWOZ recipe's evaluation, DESIGN.md section 3).
 *
 * Each record holds a prediction and a reference. The reference says what
 * kind of turn it is: "search:" + JSON (a structured query: slot counts),
 * "assistant:" + text (a reply: BLEU-4 over code points, as NLTK's
 * sentence_bleu with smoothing method 3) or anything else (exact match
 * only). Scores are summed per kind and per value of each --by field, in one
 * pass; only the sums are kept. */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bleu.h"
#include "buf.h"
#include "cli.h"
#include "json.h"
#include "jsonl.h"
#include "out.h"
#include "report.h"
#include "slots.h"
#include "utf8.h"

#define MAX_BY 16
#define BAD_SHOWN 100                     /* skipped records reported one by one */

static const char usage_text[] =
"Usage: ft-eval [OPTION]... [FILE]...\n"
"Score predictions against references: slot precision, recall and F1 of\n"
"search turns, character BLEU-4 of assistant turns, exact match of all.\n"
"Each record is a JSON object with a prediction and a reference (as\n"
"ft-generate writes them). With no FILE, or when FILE is -, read standard\n"
"input; .gz input is read transparently.\n"
"\n"
"      --pred=FIELD      the prediction's field, a dotted path (default\n"
"                        prediction)\n"
"      --ref=FIELD       the reference's field (default reference)\n"
"  -b, --by=FIELD        also report per value of FIELD (repeatable)\n"
"      --json            print the report as one JSON object\n"
"  -o, --output=FILE     write the report to FILE (default standard output)\n"
"      --per-turn=FILE   write each record's scores to FILE as JSON Lines\n"
"      --skip-bad        skip bad records with a warning, count them, go on\n"
"      --max-line=SIZE   longest accepted line, K/M/G suffix (default 1G)\n"
"  -q, --quiet           no summary of skipped records on stderr\n"
"  -h, --help            show this help and exit\n"
"      --version         show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input or write error, 2 usage error.\n";

enum { OPT_PRED = 256, OPT_REF, OPT_JSON, OPT_PER_TURN, OPT_SKIP_BAD, OPT_MAX_LINE,
       OPT_VERSION };

static const struct option long_opts[] = {
	{ "pred", required_argument, NULL, OPT_PRED },
	{ "ref", required_argument, NULL, OPT_REF },
	{ "by", required_argument, NULL, 'b' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "output", required_argument, NULL, 'o' },
	{ "per-turn", required_argument, NULL, OPT_PER_TURN },
	{ "skip-bad", no_argument, NULL, OPT_SKIP_BAD },
	{ "max-line", required_argument, NULL, OPT_MAX_LINE },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* A code point sequence, reused from turn to turn. */
struct codepoints {
	int32_t *cp;
	size_t len, cap;
};

static struct {
	const char *pred_field, *ref_field;
	const char *output, *per_turn_path;
	bool json, skip_bad, quiet;
	size_t max_line;
	struct report report;
	struct breakdown by[MAX_BY];
	struct ft_out *per_turn;
	struct ft_buf line;
	struct codepoints hyp, ref;
} g;

/* ---- errors ------------------------------------------------------------ */

static _Noreturn void fail(const struct ft_err *err)
{
	ft_report(err, NULL);
	ft_out_abort_all();
	exit(FT_EXIT_DATA);
}

/* A record-level error: fatal, or with --skip-bad counted and reported
 * (the first BAD_SHOWN of them). */
static void bad_record(const struct ft_err *err, int rc)
{
	if (!g.skip_bad || rc == FT_E_IO || rc == FT_E_NOMEM)
		fail(err);
	g.report.bad++;
	if (g.report.bad <= BAD_SHOWN)
		ft_report(err, "skipped: ");
	else if (g.report.bad == BAD_SHOWN + 1)
		ft_warn("more bad records: skipped without a message, counted");
}

/* ---- text -------------------------------------------------------------- */

/* Start of the code point that ends at s + len (len > 0). */
static size_t last_cp_start(const char *s, size_t len)
{
	size_t i = len - 1;
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	return i;
}

/* Python's str.strip(): *s and *len narrowed to the text without the
 * whitespace at either end. */
static void strip(const char **s, size_t *len)
{
	int32_t cp;
	while (*len > 0) {
		int n = ft_utf8_decode(*s, *len, &cp);
		if (!ft_utf8_isspace(cp))
			break;
		*s += n;
		*len -= (size_t)n;
	}
	while (*len > 0) {
		size_t at = last_cp_start(*s, *len);
		ft_utf8_decode(*s + at, *len - at, &cp);
		if (!ft_utf8_isspace(cp))
			break;
		*len = at;
	}
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(s, prefix, n) == 0;
}

/* The code points of s[0..len) into cps (Python's list(text)). */
static int decode(const char *s, size_t len, struct codepoints *cps)
{
	if (len > cps->cap) {
		int32_t *cp = realloc(cps->cp, len * sizeof *cp);
		if (!cp)
			return FT_E_NOMEM;
		cps->cp = cp;
		cps->cap = len;
	}
	cps->len = 0;
	for (size_t i = 0; i < len;)
		i += (size_t)ft_utf8_decode(s + i, len - i, &cps->cp[cps->len++]);
	return FT_OK;
}

/* ---- scoring one turn -------------------------------------------------- */

/* The kind of turn the (stripped) reference is. */
static enum turn_kind turn_kind(const char *ref, size_t len)
{
	if (has_prefix(ref, len, "search:"))
		return KIND_SEARCH;
	if (has_prefix(ref, len, "assistant:"))
		return KIND_ASSISTANT;
	return KIND_OTHER;
}

static int score_search(const char *pred, size_t plen, const char *ref, size_t rlen,
			struct turn *t, struct ft_err *err)
{
	cJSON *label, *guess;
	if (slots_parse(ref, rlen, &label))
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	if (!label)
		return ft_err_set(err, FT_E_DATA, "reference of a search turn has no valid JSON object");
	if (slots_parse(pred, plen, &guess)) {
		cJSON_Delete(label);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	t->parsed = guess != NULL;
	slots_count(guess, label, &t->slots);
	cJSON_Delete(guess);
	cJSON_Delete(label);
	return FT_OK;
}

/* BLEU-4 of the texts after "assistant:", stripped; 0 when the prediction
 * is no assistant reply. */
static int score_assistant(const char *pred, size_t plen, const char *ref, size_t rlen,
			   struct turn *t, struct ft_err *err)
{
	static const char prefix[] = "assistant:";
	const size_t n = sizeof prefix - 1;
	t->reply = has_prefix(pred, plen, prefix);
	t->bleu = 0.0;
	if (!t->reply)
		return FT_OK;
	pred += n;
	plen -= n;
	ref += n;
	rlen -= n;
	strip(&pred, &plen);
	strip(&ref, &rlen);
	struct bleu_counts c;
	if (decode(pred, plen, &g.hyp) || decode(ref, rlen, &g.ref) ||
	    bleu_count(g.hyp.cp, g.hyp.len, g.ref.cp, g.ref.len, &c))
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	t->bleu = bleu_score(&c);
	return FT_OK;
}

/* The string at a field of rec, stripped, or an error. */
static int text_field(const cJSON *rec, const char *field, const char **s, size_t *len,
		      struct ft_err *err)
{
	const cJSON *v = ft_json_path(rec, field);
	if (!v)
		return ft_err_set(err, FT_E_DATA, "missing field '%s'", field);
	if (!cJSON_IsString(v))
		return ft_err_set(err, FT_E_DATA, "field '%s' is not a string", field);
	*s = v->valuestring;
	*len = strlen(*s);
	strip(s, len);
	return FT_OK;
}

static int score_turn(const cJSON *rec, struct turn *t, struct ft_err *err)
{
	const char *pred, *ref;
	size_t plen, rlen;
	int rc = text_field(rec, g.pred_field, &pred, &plen, err);
	rc = rc ? rc : text_field(rec, g.ref_field, &ref, &rlen, err);
	if (rc)
		return rc;
	memset(t, 0, sizeof *t);
	t->kind = turn_kind(ref, rlen);
	t->exact = plen == rlen && memcmp(pred, ref, plen) == 0;
	if (t->kind == KIND_SEARCH)
		return score_search(pred, plen, ref, rlen, t, err);
	if (t->kind == KIND_ASSISTANT)
		return score_assistant(pred, plen, ref, rlen, t, err);
	return FT_OK;
}

/* ---- the records ------------------------------------------------------- */

static void write_per_turn(const cJSON *rec, const struct turn *t)
{
	ft_buf_reset(&g.line);
	if (report_write_turn(&g.line, cJSON_GetObjectItemCaseSensitive(rec, "id"), t) ||
	    ft_buf_putc(&g.line, '\n'))
		ft_die(FT_EXIT_DATA, "out of memory");
	ft_out_write(g.per_turn, g.line.data, g.line.len);  /* errors are sticky: seen at commit */
}

static void add_turn(const cJSON *rec, const struct turn *t)
{
	struct report *r = &g.report;
	stats_add(&r->total, t);
	stats_add(&r->kinds[t->kind], t);
	for (size_t i = 0; i < r->nby; i++)
		if (breakdown_add(&r->by[i], rec, t))
			ft_die(FT_EXIT_DATA, "out of memory");
	if (g.per_turn)
		write_per_turn(rec, t);
}

static void run_input(const char *path)
{
	struct ft_jsonl_reader *r;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_jsonl_open(&r, path, 0, g.max_line, &err))
		fail(&err);
	for (;;) {
		cJSON *rec;
		ft_err_clear(&err);
		int rc = ft_jsonl_next(r, &rec, &err);
		if (rc == 0)
			break;
		if (rc < 0) {
			bad_record(&err, rc);
			continue;
		}
		struct turn t;
		rc = score_turn(rec, &t, &err);
		if (rc) {
			err.file = path;
			err.line = ft_jsonl_lineno(r);
			bad_record(&err, rc);
		} else {
			add_turn(rec, &t);
		}
		cJSON_Delete(rec);
	}
	ft_jsonl_close(r);
}

/* ---- output ------------------------------------------------------------ */

static void commit(struct ft_out *o)
{
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_out_commit(o, &err))
		fail(&err);
}

static void write_report(struct ft_out *out)
{
	struct ft_buf text;
	ft_buf_init(&text, 0);
	for (size_t i = 0; i < g.report.nby; i++)
		breakdown_sort(&g.report.by[i]);
	int rc = g.json ? report_write_json(&text, &g.report)
			: report_write_table(&text, &g.report);
	if (rc)
		ft_die(FT_EXIT_DATA, "out of memory");
	ft_out_write(out, text.data, text.len);  /* a write error is sticky: seen at commit */
	ft_buf_release(&text);
}

static bool is_stdout(const char *path)
{
	return !path || strcmp(path, "-") == 0;
}

static void add_by(const char *field)
{
	struct report *r = &g.report;
	if (!*field)
		ft_usage_error("empty field for --by");
	for (size_t i = 0; i < r->nby; i++)
		if (strcmp(r->by[i].field, field) == 0)
			ft_usage_error("--by '%s' given twice", field);
	if (r->nby == MAX_BY)
		ft_usage_error("more than %d --by fields", MAX_BY);
	breakdown_init(&g.by[r->nby++], field);
}

static void parse_options(int argc, char **argv)
{
	g.pred_field = "prediction";
	g.ref_field = "reference";
	g.report.by = g.by;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":b:o:qh", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_PRED: g.pred_field = optarg; break;
		case OPT_REF: g.ref_field = optarg; break;
		case 'b': add_by(optarg); break;
		case OPT_JSON: g.json = true; break;
		case 'o': g.output = optarg; break;
		case OPT_PER_TURN: g.per_turn_path = optarg; break;
		case OPT_SKIP_BAD: g.skip_bad = true; break;
		case OPT_MAX_LINE:
			g.max_line = ft_opt_size("--max-line", optarg);
			if (!g.max_line)
				ft_usage_error("invalid size '0' for --max-line");
			break;
		case 'q': g.quiet = true; break;
		case 'h':
			fputs(usage_text, stdout);
			ft_close_stdout();
			exit(FT_EXIT_OK);
		case OPT_VERSION:
			printf("ft-eval %s\n", FT_VERSION);
			ft_close_stdout();
			exit(FT_EXIT_OK);
		case ':':
			ft_usage_error("option '%s' needs a value", ft_opt_name(argv[optind - 1]));
		default:
			ft_usage_error("unknown option '%s'", ft_opt_name(argv[optind - 1]));
		}
	}
	if (!*g.pred_field || !*g.ref_field)
		ft_usage_error("empty field for --%s", *g.pred_field ? "ref" : "pred");
	if (g.per_turn_path && is_stdout(g.per_turn_path) && is_stdout(g.output))
		ft_usage_error("--per-turn and the report both on standard output: use -o FILE");
	if (g.per_turn_path && g.output && strcmp(g.per_turn_path, g.output) == 0)
		ft_usage_error("output '%s' given twice", g.output);
}

int main(int argc, char **argv)
{
	ft_cli_init(argv[0]);
	parse_options(argc, argv);
	const char **inputs = (const char **)argv + optind;
	size_t ninputs = (size_t)(argc - optind);
	static const char *stdin_only[] = { "-" };
	if (ninputs == 0) {
		inputs = stdin_only;
		ninputs = 1;
	}
	size_t nstdin = 0;
	for (size_t i = 0; i < ninputs; i++)
		nstdin += strcmp(inputs[i], "-") == 0;
	if (nstdin > 1)
		ft_usage_error("standard input given more than once");

	struct ft_out *out;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_out_open(&out, g.output, &err) ||
	    (g.per_turn_path && ft_out_open(&g.per_turn, g.per_turn_path, &err)))
		fail(&err);
	ft_buf_init(&g.line, 0);

	for (size_t i = 0; i < ninputs; i++)
		run_input(inputs[i]);

	write_report(out);
	if (g.per_turn)
		commit(g.per_turn);
	commit(out);
	if (g.skip_bad && !g.quiet)
		ft_warn("%llu bad record%s skipped", g.report.bad, g.report.bad == 1 ? "" : "s");

	for (size_t i = 0; i < g.report.nby; i++)
		breakdown_release(&g.report.by[i]);
	ft_buf_release(&g.line);
	free(g.hyp.cp);
	free(g.ref.cp);
	ft_close_stdout();
	return FT_EXIT_OK;
}
