/* ft-shard: inspect, check, decode and join token shards (lib/shard.h,
 * docs/shard-format.md).
 *
 * info and verify open each FILE as a shard set (a shard or an index);
 * verify adds the section checksums and a full content check. dump decodes
 * rows with the tokenizer the shard was made with, the way ft-tokenize
 * encoded them: the text between special tokens (control and user-defined
 * pieces) as one run, each special token as its piece. merge writes an
 * index over the shards of every FILE. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "json.h"
#include "sha256.h"
#include "shard.h"
#include "spm.h"
#include "utf8.h"

static const char usage_text[] =
"Usage: ft-shard info [--json] FILE...\n"
"  or:  ft-shard verify FILE...\n"
"  or:  ft-shard dump -m MODEL [--rows=A:B] [--format=FMT] [--force] FILE\n"
"  or:  ft-shard merge -o INDEX FILE...\n"
"Inspect, check, decode and join token shards written by ft-tokenize.\n"
"A FILE is a shard or a shard index (a JSON file listing shards).\n"
"\n"
"Commands:\n"
"  info      header fields and statistics of each FILE\n"
"  verify    check each FILE completely, section checksums included\n"
"  dump      decode rows back to text with the tokenizer they were made with\n"
"  merge     write an index listing the shards of every FILE\n"
"\n"
"Options:\n"
"      --json            info: one JSON object per FILE\n"
"  -m, --model=FILE      dump: the tokenizer model (SentencePiece .model)\n"
"      --rows=A:B        dump: rows A to B-1 (A or B may be left out)\n"
"      --format=FMT      dump: text (default) or jsonl\n"
"      --force           dump: decode even when the tokenizer differs\n"
"  -o, --output=FILE     merge: the index to write\n"
"  -h, --help            show this help and exit\n"
"      --version         show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad or unreadable input or write error,\n"
"2 usage error.\n";

enum { OPT_JSON = 256, OPT_ROWS, OPT_FORMAT, OPT_FORCE, OPT_VERSION };

static const struct option long_opts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "model", required_argument, NULL, 'm' },
	{ "rows", required_argument, NULL, OPT_ROWS },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "output", required_argument, NULL, 'o' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static struct {
	bool json, force, jsonl;
	const char *model, *output, *rows;
	uint64_t row_from, row_to;   /* --rows, [from, to); to = UINT64_MAX: to the end */
	struct ft_buf out;           /* one line or record of output */
} g;

static void oom(void)
{
	ft_die(FT_EXIT_DATA, "out of memory");
}

static void put(void)
{
	if (g.out.len && fwrite(g.out.data, 1, g.out.len, stdout) != g.out.len)
		ft_die(FT_EXIT_DATA, "cannot write to standard output: %s", strerror(errno));
	ft_buf_reset(&g.out);
}

static void outf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void outf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = ft_buf_vprintf(&g.out, fmt, ap);
	va_end(ap);
	if (rc)
		oom();
}

static void out_json_string(const char *s, size_t len)
{
	if (ft_json_write_string(&g.out, s, len))
		oom();
}

/* ---- statistics over a set ---------------------------------------------------- */

struct stats {
	uint64_t positions, doc_min, doc_max, doc_tokens;
	uint64_t truncated, split;
};

static void set_stats(const struct ft_shard_set *set, struct stats *st)
{
	memset(st, 0, sizeof *st);
	st->doc_min = UINT64_MAX;
	for (size_t i = 0; i < set->n; i++) {
		const struct ft_shard *s = set->shards[i];
		st->positions += s->h.n_rows * s->h.seq_len;
		for (uint64_t d = 0; d < s->h.n_docs; d++) {
			const struct ft_shard_doc *doc = &s->docs[d];
			st->doc_tokens += doc->len;
			if (doc->len < st->doc_min)
				st->doc_min = doc->len;
			if (doc->len > st->doc_max)
				st->doc_max = doc->len;
			st->truncated += (doc->flags & FT_DOC_TRUNCATED) != 0;
			st->split += (doc->flags & FT_DOC_SPLIT) != 0;
		}
	}
	if (st->doc_min == UINT64_MAX)
		st->doc_min = 0;
}

static double share(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0.0;
}

static bool is_index(const struct ft_shard_set *set, const char *path)
{
	return set->n != 1 || strcmp(set->shards[0]->path, path) != 0;
}

static void info_text(const struct ft_shard_set *set, const char *path)
{
	const struct ft_shard_header *h = &set->shards[0]->h;
	struct stats st;
	set_stats(set, &st);
	char hex[65];
	ft_sha256_hex(h->tokenizer, hex);
	if (is_index(set, path))
		outf("%s: shard index, %zu shard%s\n", path, set->n, set->n == 1 ? "" : "s");
	else
		outf("%s: shard, version %u\n", path, h->version);
	outf("  vocab_size    %u (%u-byte ids)\n", h->vocab_size, h->token_bytes);
	outf("  seq_len       %u\n", h->seq_len);
	if (!is_index(set, path))
		outf("  flags         %s\n", h->flags & FT_SHARD_PACKED ? "packed" : "none");
	outf("  pad/bos/eos   %d / %d / %d\n", h->pad_id, h->bos_id, h->eos_id);
	outf("  tokenizer     sha256 %s\n", hex);
	outf("  rows          %llu\n", (unsigned long long)set->n_rows);
	outf("  docs          %llu (%llu truncated, %llu split)\n",
	     (unsigned long long)set->n_docs, (unsigned long long)st.truncated,
	     (unsigned long long)st.split);
	outf("  tokens        %llu\n", (unsigned long long)st.positions);
	outf("  trained       %llu (%.2f%% of tokens)\n", (unsigned long long)set->n_trained,
	     share(set->n_trained, st.positions));
	outf("  pad           %llu (%.2f%% of tokens)\n", (unsigned long long)set->n_pad,
	     share(set->n_pad, st.positions));
	outf("  packing       %.2f%% (non-pad / all tokens)\n",
	     share(st.positions - set->n_pad, st.positions));
	outf("  doc length    min %llu, mean %.2f, max %llu\n", (unsigned long long)st.doc_min,
	     set->n_docs ? (double)st.doc_tokens / (double)set->n_docs : 0.0,
	     (unsigned long long)st.doc_max);
	for (size_t i = 0; i < set->n; i++) {
		const struct ft_shard *s = set->shards[i];
		if (is_index(set, path))
			outf("  shard %s: %llu rows, %llu docs, %llu trained, %zu bytes\n", s->path,
			     (unsigned long long)s->h.n_rows, (unsigned long long)s->h.n_docs,
			     (unsigned long long)s->h.n_trained, s->map_len);
		else
			for (int k = 0; k < FT_SHARD_NSECTIONS; k++)
				outf("  section %-6s offset %llu, %llu bytes, crc32 %08x\n",
				     ft_shard_section_name(k),
				     (unsigned long long)s->h.section[k].offset,
				     (unsigned long long)s->h.section[k].size, s->h.section[k].crc32);
	}
}

static void info_json(const struct ft_shard_set *set, const char *path)
{
	const struct ft_shard_header *h = &set->shards[0]->h;
	struct stats st;
	set_stats(set, &st);
	char hex[65];
	ft_sha256_hex(h->tokenizer, hex);
	outf("{\"file\":");
	out_json_string(path, strlen(path));
	outf(",\"kind\":\"%s\",\"vocab_size\":%u,\"token_bytes\":%u,\"seq_len\":%u,"
	     "\"pad_id\":%d,\"bos_id\":%d,\"eos_id\":%d,\"tokenizer\":\"%s\",\"rows\":%llu,"
	     "\"docs\":%llu,\"tokens\":%llu,\"trained\":%llu,\"pad\":%llu,"
	     "\"trained_share\":%.6f,\"packing_efficiency\":%.6f,\"doc_len_min\":%llu,"
	     "\"doc_len_mean\":%.6f,\"doc_len_max\":%llu,\"docs_truncated\":%llu,"
	     "\"docs_split\":%llu,\"shards\":[",
	     is_index(set, path) ? "index" : "shard", h->vocab_size, h->token_bytes, h->seq_len,
	     h->pad_id, h->bos_id, h->eos_id, hex, (unsigned long long)set->n_rows,
	     (unsigned long long)set->n_docs, (unsigned long long)st.positions,
	     (unsigned long long)set->n_trained, (unsigned long long)set->n_pad,
	     share(set->n_trained, st.positions) / 100,
	     share(st.positions - set->n_pad, st.positions) / 100,
	     (unsigned long long)st.doc_min,
	     set->n_docs ? (double)st.doc_tokens / (double)set->n_docs : 0.0,
	     (unsigned long long)st.doc_max, (unsigned long long)st.truncated,
	     (unsigned long long)st.split);
	for (size_t i = 0; i < set->n; i++) {
		const struct ft_shard *s = set->shards[i];
		outf("%s{\"path\":", i ? "," : "");
		out_json_string(s->path, strlen(s->path));
		outf(",\"version\":%u,\"flags\":%u,\"rows\":%llu,\"docs\":%llu,\"trained\":%llu,"
		     "\"pad\":%llu,\"bytes\":%zu,\"header_crc32\":%u,\"sections\":[", s->h.version,
		     s->h.flags, (unsigned long long)s->h.n_rows, (unsigned long long)s->h.n_docs,
		     (unsigned long long)s->h.n_trained, (unsigned long long)s->h.n_pad,
		     s->map_len, ft_shard_header_crc(s));
		for (int k = 0; k < FT_SHARD_NSECTIONS; k++)
			outf("%s{\"name\":\"%s\",\"offset\":%llu,\"size\":%llu,\"crc32\":%u}",
			     k ? "," : "", ft_shard_section_name(k),
			     (unsigned long long)s->h.section[k].offset,
			     (unsigned long long)s->h.section[k].size, s->h.section[k].crc32);
		outf("]}");
	}
	outf("]}\n");
}

static int cmd_info_verify(char **files, size_t n, bool verify)
{
	int status = FT_EXIT_OK;
	for (size_t i = 0; i < n; i++) {
		struct ft_shard_set set;
		struct ft_err err;
		ft_err_clear(&err);
		if (ft_shard_set_open(&set, files[i], verify ? FT_SHARD_VERIFY : 0, &err)) {
			ft_report(&err, NULL);
			status = FT_EXIT_DATA;
			continue;
		}
		if (verify) {
			uint64_t positions = 0;
			for (size_t k = 0; k < set.n; k++)
				positions += set.shards[k]->h.n_rows * set.shards[k]->h.seq_len;
			outf("%s: ok (", files[i]);
			if (is_index(&set, files[i]))
				outf("%zu shard%s, ", set.n, set.n == 1 ? "" : "s");
			outf("%llu rows, %llu docs, %llu tokens, %llu trained)\n",
			     (unsigned long long)set.n_rows, (unsigned long long)set.n_docs,
			     (unsigned long long)positions, (unsigned long long)set.n_trained);
		} else if (g.json) {
			info_json(&set, files[i]);
		} else {
			if (i > 0)
				outf("\n");
			info_text(&set, files[i]);
		}
		put();
		ft_shard_set_release(&set);
	}
	return status;
}

/* ---- dump ------------------------------------------------------------------------ */

/* The decoded text of one document as segments of equal train flag. */
struct segments {
	struct ft_buf text;
	size_t *ends;        /* segment k is text[ends[k-1], ends[k]) */
	bool *train;
	size_t n, cap;
};

static void seg_add(struct segments *sg, const char *p, size_t len, bool train)
{
	if (len == 0)
		return;
	if (ft_buf_append(&sg->text, p, len))
		oom();
	if (sg->n && sg->train[sg->n - 1] == train) {
		sg->ends[sg->n - 1] = sg->text.len;
		return;
	}
	if (sg->n == sg->cap) {
		size_t cap = sg->cap ? sg->cap * 2 : 16;
		size_t *ends = realloc(sg->ends, cap * sizeof *ends);
		if (!ends)
			oom();
		sg->ends = ends;
		bool *train_flags = realloc(sg->train, cap * sizeof *train_flags);
		if (!train_flags)
			oom();
		sg->train = train_flags;
		sg->cap = cap;
	}
	sg->ends[sg->n] = sg->text.len;
	sg->train[sg->n++] = train;
}

static bool is_special(const struct ft_spm *m, int32_t id)
{
	enum ft_spm_type t = ft_spm_type(m, id);
	return t == FT_SPM_CONTROL || t == FT_SPM_USER_DEFINED;
}

struct decoder {
	const struct ft_spm *m;
	int32_t *ids;
	size_t *starts;
	uint8_t *mask;
	struct ft_buf run;
	struct segments sg;
};

/* Decode ids[a, b) (no special tokens) as one run into segments. */
static int decode_run(struct decoder *d, size_t a, size_t b, struct ft_err *err)
{
	if (a == b)
		return FT_OK;
	ft_buf_reset(&d->run);
	int rc = ft_spm_decode(d->m, d->ids + a, b - a, &d->run, d->starts, err);
	if (rc)
		return rc;
	size_t at = 0;
	for (size_t k = a; k < b; k++) {
		size_t end = k + 1 < b ? d->starts[k + 1 - a] : d->run.len;
		if (end > d->run.len)
			end = d->run.len;
		if (end < at)
			end = at;
		seg_add(&d->sg, d->run.data + at, end - at, d->mask[k] != 0);
		at = end;
	}
	return FT_OK;
}

static int decode_doc(struct decoder *d, size_t len, struct ft_err *err)
{
	ft_buf_reset(&d->sg.text);
	d->sg.n = 0;
	size_t a = 0;
	for (size_t i = 0; i < len; i++) {
		if (!is_special(d->m, d->ids[i]))
			continue;
		int rc = decode_run(d, a, i, err);
		if (rc)
			return rc;
		size_t plen;
		const char *piece = ft_spm_piece(d->m, d->ids[i], &plen);
		if (piece)
			seg_add(&d->sg, piece, plen, d->mask[i] != 0);
		a = i + 1;
	}
	return decode_run(d, a, len, err);
}

/* text as a JSON string, invalid UTF-8 bytes replaced by U+FFFD */
static void out_json_text(const char *s, size_t len)
{
	size_t bad;
	if (ft_utf8_valid(s, len, &bad)) {
		out_json_string(s, len);
		return;
	}
	struct ft_buf clean;
	ft_buf_init(&clean, 0);
	while (len > 0) {
		if (ft_utf8_valid(s, len, &bad))
			bad = len;
		if (ft_buf_append(&clean, s, bad))
			oom();
		if (bad == len)
			break;
		if (ft_buf_puts(&clean, "\xEF\xBF\xBD"))
			oom();
		s += bad + 1;
		len -= bad + 1;
	}
	out_json_string(clean.data ? clean.data : "", clean.len);
	ft_buf_release(&clean);
}

static void doc_flags_text(uint32_t flags)
{
	if (flags & FT_DOC_TRUNCATED)
		outf(" truncated");
	if (flags & FT_DOC_SPLIT)
		outf(" split");
	if (flags & FT_DOC_CONTINUED)
		outf(" continued");
}

static int dump_row(struct decoder *d, const struct ft_shard *s, uint64_t local, uint64_t row,
		    struct ft_err *err)
{
	uint64_t a = s->rows[local], b = s->rows[local + 1];
	const uint8_t *mask = s->mask + local * s->h.seq_len;
	if (!g.jsonl) {
		uint64_t tokens = 0, trained = 0;
		for (uint64_t i = a; i < b; i++)
			tokens += s->docs[i].len;
		for (uint32_t p = 0; p < s->h.seq_len; p++)
			trained += mask[p];
		outf("== row %llu: %llu doc%s, %llu tokens, %llu trained\n",
		     (unsigned long long)row, (unsigned long long)(b - a), b - a == 1 ? "" : "s",
		     (unsigned long long)tokens, (unsigned long long)trained);
	}
	uint64_t used = 0;
	for (uint64_t i = a; i < b; i++) {
		const struct ft_shard_doc *doc = &s->docs[i];
		for (uint32_t k = 0; k < doc->len; k++) {
			d->ids[k] = (int32_t)ft_shard_token(s, local, doc->start + k);
			d->mask[k] = mask[doc->start + k];
		}
		used += doc->len;
		int rc = decode_doc(d, doc->len, err);
		if (rc)
			return rc;
		const struct segments *sg = &d->sg;
		if (g.jsonl) {
			outf("{\"row\":%llu,\"doc\":%llu,\"sample\":%llu,\"flags\":%u,\"start\":%u,"
			     "\"len\":%u,\"segments\":[", (unsigned long long)row,
			     (unsigned long long)(i - a), (unsigned long long)doc->sample, doc->flags,
			     doc->start, doc->len);
			for (size_t k = 0; k < sg->n; k++) {
				size_t from = k ? sg->ends[k - 1] : 0;
				outf("%s{\"text\":", k ? "," : "");
				out_json_text(sg->text.data + from, sg->ends[k] - from);
				outf(",\"train\":%s}", sg->train[k] ? "true" : "false");
			}
			outf("],\"ids\":[");
			for (uint32_t k = 0; k < doc->len; k++)
				outf("%s%d", k ? "," : "", d->ids[k]);
			outf("],\"mask\":[");
			for (uint32_t k = 0; k < doc->len; k++)
				outf("%s%u", k ? "," : "", d->mask[k]);
			outf("]}\n");
		} else {
			outf("-- doc sample=%llu len=%u", (unsigned long long)doc->sample, doc->len);
			doc_flags_text(doc->flags);
			outf("\n");
			for (size_t k = 0; k < sg->n; k++) {
				size_t from = k ? sg->ends[k - 1] : 0;
				if (sg->train[k])
					outf("⟦");
				if (ft_buf_append(&g.out, sg->text.data + from, sg->ends[k] - from))
					oom();
				if (sg->train[k])
					outf("⟧");
			}
			if (g.out.len == 0 || g.out.data[g.out.len - 1] != '\n')
				outf("\n");
		}
		put();
	}
	if (!g.jsonl && used < s->h.seq_len)
		outf("-- pad %llu\n", (unsigned long long)(s->h.seq_len - used));
	put();
	return FT_OK;
}

static int cmd_dump(const char *path)
{
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_spm *m;
	if (ft_spm_load(&m, g.model, 0, &err)) {
		ft_report(&err, NULL);
		return FT_EXIT_DATA;
	}
	struct ft_shard_set set;
	if (ft_shard_set_open(&set, path, 0, &err)) {
		ft_report(&err, NULL);
		ft_spm_free(m);
		return FT_EXIT_DATA;
	}
	const struct ft_shard_header *h = &set.shards[0]->h;
	int status = FT_EXIT_OK;
	if (memcmp(h->tokenizer, ft_spm_fingerprint(m), 32) != 0 && !g.force) {
		char a[65], b[65];
		ft_sha256_hex(h->tokenizer, a);
		ft_sha256_hex(ft_spm_fingerprint(m), b);
		ft_warn("%s: made with another tokenizer (sha256 %.16s...) than '%s' (sha256 "
			"%.16s...); --force decodes anyway", path, a, g.model, b);
		status = FT_EXIT_DATA;
		goto out;
	}
	if (g.row_from > set.n_rows) {
		ft_warn("%s: --rows %s: there are only %llu rows", path, g.rows,
			(unsigned long long)set.n_rows);
		status = FT_EXIT_DATA;
		goto out;
	}
	uint64_t to = g.row_to < set.n_rows ? g.row_to : set.n_rows;
	struct decoder d;
	memset(&d, 0, sizeof d);
	d.m = m;
	ft_buf_init(&d.run, 0);
	ft_buf_init(&d.sg.text, 0);
	d.ids = malloc(h->seq_len * sizeof *d.ids);
	d.starts = malloc(h->seq_len * sizeof *d.starts);
	d.mask = malloc(h->seq_len);
	if (!d.ids || !d.starts || !d.mask)
		oom();
	for (uint64_t r = g.row_from; r < to; r++) {
		uint64_t local;
		const struct ft_shard *s = ft_shard_set_row(&set, r, &local);
		if (dump_row(&d, s, local, r, &err)) {
			put();
			err.file = s->path;
			ft_report(&err, NULL);
			status = FT_EXIT_DATA;
			break;
		}
	}
	free(d.ids);
	free(d.starts);
	free(d.mask);
	free(d.sg.ends);
	free(d.sg.train);
	ft_buf_release(&d.run);
	ft_buf_release(&d.sg.text);
out:
	ft_shard_set_release(&set);
	ft_spm_free(m);
	return status;
}

static void parse_rows(const char *s)
{
	char *end;
	const char *colon = strchr(s, ':');
	g.row_from = 0;
	g.row_to = UINT64_MAX;
	bool ok = true;
	if (s[0] && s[0] != ':') {
		errno = 0;
		unsigned long long v = strtoull(s, &end, 10);
		ok = !errno && end != s && *s != '-' && *s != '+' && (end == colon || !*end);
		g.row_from = v;
		if (!colon && ok)
			g.row_to = v == UINT64_MAX ? v : v + 1;
	} else if (!colon) {
		ok = false;
	}
	if (ok && colon && colon[1]) {
		errno = 0;
		unsigned long long v = strtoull(colon + 1, &end, 10);
		ok = !errno && end != colon + 1 && colon[1] != '-' && colon[1] != '+' && !*end;
		g.row_to = v;
	}
	if (!ok)
		ft_usage_error("invalid value '%s' for --rows: expected A:B, A:, :B or A", s);
	if (g.row_to < g.row_from)
		ft_usage_error("invalid value '%s' for --rows: B is below A", s);
}

/* ---- merge ------------------------------------------------------------------------ */

/* The components of an absolute path, in place. */
static size_t split_path(char *p, char **parts, size_t max)
{
	size_t n = 0;
	for (char *t = strtok(p, "/"); t && n < max; t = strtok(NULL, "/"))
		parts[n++] = t;
	return n;
}

/* target (a file) relative to the directory dir, both made absolute. */
static char *relative_to(const char *dir, const char *target)
{
	char *d = realpath(dir, NULL), *t = realpath(target, NULL);
	if (!d || !t) {
		free(d);
		free(t);
		return NULL;
	}
	size_t maxparts = strlen(d) + strlen(t) + 2;
	char **dp = malloc(maxparts * sizeof *dp), **tp = malloc(maxparts * sizeof *tp);
	struct ft_buf b;
	ft_buf_init(&b, 0);
	if (!dp || !tp)
		oom();
	size_t nd = split_path(d, dp, maxparts), nt = split_path(t, tp, maxparts);
	size_t common = 0;
	while (common < nd && common + 1 < nt && strcmp(dp[common], tp[common]) == 0)
		common++;
	for (size_t i = common; i < nd; i++)
		if (ft_buf_puts(&b, "../"))
			oom();
	for (size_t i = common; i < nt; i++)
		if (ft_buf_puts(&b, tp[i]) || (i + 1 < nt && ft_buf_putc(&b, '/')))
			oom();
	free(dp);
	free(tp);
	free(d);
	free(t);
	return ft_buf_detach(&b, NULL);
}

static int cmd_merge(char **files, size_t nfiles)
{
	const char *slash = strrchr(g.output, '/');
	char *outdir = slash ? strndup(g.output, (size_t)(slash - g.output) + (slash == g.output))
			     : strdup(".");
	if (!outdir)
		oom();
	char **rel = NULL, **real = NULL;
	size_t n = 0;
	int status = FT_EXIT_OK;
	struct ft_shard_header first;
	bool have_first = false;
	char first_path[PATH_MAX];
	uint64_t rows = 0, docs = 0, trained = 0;
	for (size_t i = 0; i < nfiles && !status; i++) {
		struct ft_shard_set set;
		struct ft_err err;
		ft_err_clear(&err);
		if (ft_shard_set_open(&set, files[i], 0, &err)) {
			ft_report(&err, NULL);
			status = FT_EXIT_DATA;
			break;
		}
		for (size_t k = 0; k < set.n && !status; k++) {
			const struct ft_shard *s = set.shards[k];
			if (!have_first) {
				first = s->h;
				snprintf(first_path, sizeof first_path, "%s", s->path);
				have_first = true;
			}
			const char *what = NULL;
			if (memcmp(first.tokenizer, s->h.tokenizer, 32) != 0)
				what = "tokenizer";
			else if (first.vocab_size != s->h.vocab_size)
				what = "vocab_size";
			else if (first.seq_len != s->h.seq_len)
				what = "seq_len";
			if (what) {
				if (strcmp(files[i], s->path) == 0)
					ft_warn("%s: a different %s than '%s'", s->path, what,
						first_path);
				else
					ft_warn("%s: shard '%s' has a different %s than '%s'",
						files[i], s->path, what, first_path);
				status = FT_EXIT_DATA;
				break;
			}
			char *r = realpath(s->path, NULL);
			char *rp = r ? relative_to(outdir, s->path) : NULL;
			if (!r || !rp) {
				ft_warn("%s: cannot resolve '%s': %s", files[i], s->path,
					strerror(errno));
				free(r);
				status = FT_EXIT_DATA;
				break;
			}
			for (size_t j = 0; j < n; j++)
				if (strcmp(real[j], r) == 0) {
					if (strcmp(files[i], s->path) == 0)
						ft_warn("%s: shard listed twice", s->path);
					else
						ft_warn("%s: shard '%s' listed twice", files[i],
							s->path);
					status = FT_EXIT_DATA;
				}
			char **nrel = realloc(rel, (n + 1) * sizeof *rel);
			if (nrel)
				rel = nrel;
			char **nreal = realloc(real, (n + 1) * sizeof *real);
			if (nreal)
				real = nreal;
			if (!nrel || !nreal)
				oom();
			rel[n] = rp;
			real[n++] = r;
			rows += s->h.n_rows;
			docs += s->h.n_docs;
			trained += s->h.n_trained;
		}
		ft_shard_set_release(&set);
	}
	if (!status) {
		struct ft_err err;
		ft_err_clear(&err);
		if (ft_shard_index_write(g.output, (const char *const *)rel, n, &err)) {
			if (!err.file)
				err.file = g.output;
			ft_report(&err, NULL);
			status = FT_EXIT_DATA;
		} else {
			ft_warn("%s: %zu shard%s, %llu rows, %llu docs, %llu trained", g.output, n,
				n == 1 ? "" : "s", (unsigned long long)rows, (unsigned long long)docs,
				(unsigned long long)trained);
		}
	}
	for (size_t j = 0; j < n; j++) {
		free(rel[j]);
		free(real[j]);
	}
	free(rel);
	free(real);
	free(outdir);
	return status;
}

/* ---- main --------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	ft_cli_init(argv[0]);
	ft_buf_init(&g.out, 0);
	if (argc < 2)
		ft_usage_error("no command: expected info, verify, dump or merge");
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		fputs(usage_text, stdout);
		ft_close_stdout();
		return FT_EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("ft-shard %s\n", FT_VERSION);
		ft_close_stdout();
		return FT_EXIT_OK;
	}
	bool info = strcmp(cmd, "info") == 0, verify = strcmp(cmd, "verify") == 0;
	bool dump = strcmp(cmd, "dump") == 0, merge = strcmp(cmd, "merge") == 0;
	if (!info && !verify && !dump && !merge)
		ft_usage_error("unknown command '%s': expected info, verify, dump or merge", cmd);

	const char *format = NULL;
	opterr = 0;
	optind = 2;
	int c, li = -1;
	while ((c = getopt_long(argc, argv, ":m:o:h", long_opts, &li)) != -1) {
		const char *only = NULL;
		char name[64];
		if (li >= 0)
			snprintf(name, sizeof name, "--%s", long_opts[li].name);
		else
			snprintf(name, sizeof name, "-%c", c);
		li = -1;
		switch (c) {
		case OPT_JSON: g.json = true; only = info ? NULL : "info"; break;
		case 'm': g.model = optarg; only = dump ? NULL : "dump"; break;
		case OPT_ROWS: g.rows = optarg; only = dump ? NULL : "dump"; break;
		case OPT_FORMAT: format = optarg; only = dump ? NULL : "dump"; break;
		case OPT_FORCE: g.force = true; only = dump ? NULL : "dump"; break;
		case 'o': g.output = optarg; only = merge ? NULL : "merge"; break;
		case 'h':
			fputs(usage_text, stdout);
			ft_close_stdout();
			return FT_EXIT_OK;
		case OPT_VERSION:
			printf("ft-shard %s\n", FT_VERSION);
			ft_close_stdout();
			return FT_EXIT_OK;
		case ':':
			ft_usage_error("option '%s' needs a value", ft_opt_name(argv[optind - 1]));
		default:
			ft_usage_error("unknown option '%s'", ft_opt_name(argv[optind - 1]));
		}
		if (only)
			ft_usage_error("option '%s' is for '%s', not '%s'", name, only, cmd);
	}
	char **files = argv + optind;
	size_t nfiles = (size_t)(argc - optind);
	if (nfiles == 0)
		ft_usage_error("%s: no FILE given", cmd);
	int status;
	if (dump) {
		if (!g.model)
			ft_usage_error("dump needs the tokenizer model: -m MODEL");
		if (nfiles != 1)
			ft_usage_error("dump takes one FILE");
		if (format && strcmp(format, "text") != 0 && strcmp(format, "jsonl") != 0)
			ft_usage_error("invalid value '%s' for --format: expected text or jsonl",
				       format);
		g.jsonl = format && strcmp(format, "jsonl") == 0;
		if (g.rows)
			parse_rows(g.rows);
		else
			g.row_to = UINT64_MAX;
		status = cmd_dump(files[0]);
	} else if (merge) {
		if (!g.output)
			ft_usage_error("merge needs the index to write: -o FILE");
		status = cmd_merge(files, nfiles);
	} else {
		status = cmd_info_verify(files, nfiles, verify);
	}
	ft_buf_release(&g.out);
	ft_close_stdout();
	return status;
}
