/* ft-split: split JSON Lines into outputs (train/val/test) by group.
 *
 * A record's group key (field 'group', else 'id', or -k PATH) is hashed with
 * SipHash-2-4 keyed by (seed, 0); the hash read as a uniform number in [0,1)
 * picks the output whose slice of the cumulative ratios contains it. So one
 * pass, constant memory, and every record of a group lands in one output
 * whatever the order of the input. --exact instead counts the distinct
 * groups first and gives each output its share by largest remainder, the
 * groups taken in order of (hash, key): the same random assignment, made
 * exact. Records are copied byte for byte (without CR or BOM). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "cli.h"
#include "hash.h"
#include "json.h"
#include "jsonl.h"
#include "jsonscan.h"
#include "out.h"

#define MAX_PARTS 1000
#define RATIO_SCALE 1000000000ULL         /* ratio parts are kept in 1e-9 units */
#define RATIO_MAX_INT 1000000000ULL
#define BAD_SHOWN 100                     /* skipped records reported one by one */
#define EXACT_GROUPS_MAX ((size_t)1 << 20) /* streaming: groups counted exactly */
#define HLL_BITS 12                       /* beyond that, a HyperLogLog estimate */

static const char usage_text[] =
"Usage: ft-split [OPTION]... -o FILE [-o FILE]... [FILE]...\n"
"Split JSON Lines records into output files by group, in the given ratios.\n"
"All records of a group go to the same output; each output keeps the input\n"
"order and the records' bytes. With no FILE, or when FILE is -, read\n"
"standard input; .gz input is read transparently.\n"
"\n"
"  -r, --ratio=R:R...    output ratios in -o order, e.g. 8:1:1 or 0.8:0.1:0.1\n"
"                        (default 8:1:1)\n"
"  -o, --output=FILE     an output, once per ratio part (- for stdout)\n"
"  -k, --key=PATH        group key field, a dotted path like meta.user\n"
"                        (default: 'group', else 'id')\n"
"  -s, --seed=N          hash seed, 0 to 18446744073709551615 (default 0)\n"
"      --exact           exact group counts per ratio; reads the input twice\n"
"                        (standard input is spooled to a temporary file)\n"
"      --skip-bad        skip bad records with a warning, count them, go on\n"
"      --max-line=SIZE   longest accepted line, K/M/G suffix (default 1G)\n"
"      --progress        show progress even if stderr is not a terminal\n"
"  -q, --quiet           no summary on stderr\n"
"  -h, --help            show this help and exit\n"
"      --version         show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input or write error, 2 usage error.\n";

enum { OPT_EXACT = 256, OPT_SKIP_BAD, OPT_MAX_LINE, OPT_PROGRESS, OPT_VERSION };

static const struct option long_opts[] = {
	{ "ratio", required_argument, NULL, 'r' },
	{ "output", required_argument, NULL, 'o' },
	{ "key", required_argument, NULL, 'k' },
	{ "seed", required_argument, NULL, 's' },
	{ "exact", no_argument, NULL, OPT_EXACT },
	{ "skip-bad", no_argument, NULL, OPT_SKIP_BAD },
	{ "max-line", required_argument, NULL, OPT_MAX_LINE },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

struct split {
	const char *path;
	struct ft_out *out;
	uint64_t weight;              /* ratio part in 1e-9 units */
	double upto;                  /* cumulative share: the hash slice ends here */
	unsigned long long records, groups;
	uint8_t hll[1 << HLL_BITS];
};

/* A distinct group seen by --exact. */
struct group {
	uint64_t hash;
	const char *key;
	size_t len;
	unsigned split;
};

/* The groups in one dense array (sorted in place for the assignment) and an
 * open-addressing index of 32-bit positions into it, 0 for an empty slot:
 * small and contiguous, since millions of groups are random lookups. */
struct groups {
	struct group *items;
	size_t count, cap;
	uint32_t *index;
	size_t nslots;
	struct ft_arena keys;
};

/* Streaming: group hashes seen, to count groups until there are too many. */
struct hashset {
	uint64_t *slots;              /* 0 marks an empty slot */
	size_t cap, count;
	bool given_up;
};

static struct {
	struct split *splits;
	size_t nsplits;
	const char *key;              /* -k, or NULL for group/id */
	uint64_t seed;
	bool exact, skip_bad, quiet, progress;
	size_t max_line;
	unsigned long long bad;
	unsigned long long bytes_done; /* input bytes of finished readers */
	struct ft_progress prog;
	unsigned long long records_seen;
	struct ft_buf keytext;
	const char **outs;            /* -o arguments */
	const char *scan_paths[2];    /* -k PATH, or group and id */
	size_t nscan_paths;
	struct groups groups;
	struct hashset seen;
} g;

/* ---- options ----------------------------------------------------------- */

/* "8:1:1", "0.8:0.1:0.1": plain decimals with at most 9 fraction digits,
 * kept as integers so shares (and --exact counts) are computed exactly. */
static void parse_ratio(const char *s, uint64_t *w, size_t *n)
{
	size_t k = 0;
	const char *p = s;
	for (;;) {
		uint64_t ip = 0, frac = 0, scale = RATIO_SCALE;
		bool digits = false;
		while (*p >= '0' && *p <= '9') {
			ip = ip * 10 + (uint64_t)(*p++ - '0');
			digits = true;
			if (ip > RATIO_MAX_INT)
				ft_usage_error("invalid ratio '%s': parts must be at most %llu", s,
					       (unsigned long long)RATIO_MAX_INT);
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				if (scale == 1)
					ft_usage_error("invalid ratio '%s': at most 9 decimals", s);
				scale /= 10;
				frac += (uint64_t)(*p++ - '0') * scale;
				digits = true;
			}
		}
		if (!digits || (*p && *p != ':'))
			ft_usage_error("invalid ratio '%s': expected numbers separated by ':'", s);
		if (k == MAX_PARTS)
			ft_usage_error("invalid ratio '%s': more than %d parts", s, MAX_PARTS);
		w[k++] = ip * RATIO_SCALE + frac;
		if (!*p)
			break;
		p++;
	}
	uint64_t any = 0;
	for (size_t i = 0; i < k; i++)
		any |= w[i];
	if (!any)
		ft_usage_error("invalid ratio '%s': all parts are zero", s);
	*n = k;
}

/* ---- errors ------------------------------------------------------------ */

/* A record-level error: fatal, or with --skip-bad counted and reported
 * (the first BAD_SHOWN of them). report: false in --exact's second pass,
 * which meets again the records the first pass already counted. */
static void bad_record(const struct ft_err *err, int rc, bool report)
{
	if (!g.skip_bad || rc == FT_E_IO || rc == FT_E_NOMEM) {
		ft_report(err, NULL);
		ft_out_abort_all();
		exit(FT_EXIT_DATA);
	}
	if (!report)
		return;
	g.bad++;
	if (g.bad <= BAD_SHOWN)
		ft_report(err, "skipped: ");
	else if (g.bad == BAD_SHOWN + 1)
		ft_warn("more bad records: skipped without a message, counted");
}

/* ---- group keys -------------------------------------------------------- */

/* The text hashed for a record's group: a string's bytes or a number's
 * compact JSON, in g.keytext. Two ways to the same result: from a parsed
 * tree (group_key), or from the scanner's spans (span_key), the fast path. */
static int group_key(const cJSON *rec, struct ft_err *err)
{
	const cJSON *v;
	const char *name = g.key;

	if (name) {
		v = ft_json_path(rec, name);
		if (!v)
			return ft_err_set(err, FT_E_DATA, "missing group key '%s'", name);
	} else {
		/* 'group', else 'id'; a null group counts as absent */
		name = "group";
		v = cJSON_GetObjectItemCaseSensitive(rec, "group");
		if (!v || cJSON_IsNull(v)) {
			name = "id";
			v = cJSON_GetObjectItemCaseSensitive(rec, "id");
		}
		if (!v)
			return ft_err_set(err, FT_E_DATA, "missing group key: no 'group' or 'id' field");
	}
	ft_buf_reset(&g.keytext);
	int rc;
	if (cJSON_IsString(v))
		rc = ft_buf_puts(&g.keytext, v->valuestring);
	else if (cJSON_IsNumber(v))
		rc = ft_json_write(&g.keytext, v);
	else
		return ft_err_set(err, FT_E_DATA, "group key '%s' is not a string or number", name);
	if (rc)
		return ft_err_set(err, rc, "out of memory");
	return FT_OK;
}

static bool span_is(const struct ft_jsonscan_span *sp, const char *word)
{
	size_t n = strlen(word);
	return sp->p && sp->len == n && memcmp(sp->p, word, n) == 0;
}

/* found: the spans of paths g.scan_paths */
static int span_key(const struct ft_jsonscan_span *found, struct ft_err *err)
{
	const struct ft_jsonscan_span *sp = &found[0];
	const char *name = g.key;
	if (name) {
		if (!sp->p)
			return ft_err_set(err, FT_E_DATA, "missing group key '%s'", name);
	} else {
		name = "group";
		if (!sp->p || span_is(sp, "null")) {
			name = "id";
			sp = &found[1];
		}
		if (!sp->p)
			return ft_err_set(err, FT_E_DATA, "missing group key: no 'group' or 'id' field");
	}
	ft_buf_reset(&g.keytext);
	int rc;
	char c = sp->p[0];
	if (c == '"') {
		rc = ft_jsonscan_string(sp, &g.keytext);
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		/* numbers are rare keys: let the JSON module write them */
		cJSON *v;
		rc = ft_json_parse(sp->p, sp->len, &v, NULL);
		if (!rc) {
			rc = ft_json_write(&g.keytext, v);
			cJSON_Delete(v);
		}
	} else {
		return ft_err_set(err, FT_E_DATA, "group key '%s' is not a string or number", name);
	}
	if (rc)
		return ft_err_set(err, rc, "out of memory");
	return FT_OK;
}

static uint64_t key_hash(void)
{
	return ft_hash_siphash(g.keytext.data ? g.keytext.data : "", g.keytext.len, g.seed, 0);
}

/* The split whose slice of [0,1) holds the hash. Zero parts have empty
 * slices; the last non-zero part ends at exactly 1. */
static size_t pick_split(uint64_t h)
{
	double u = ft_hash_unit(h);
	for (size_t i = 0; i < g.nsplits; i++)
		if (u < g.splits[i].upto)
			return i;
	return g.nsplits - 1;  /* not reached */
}

/* ---- counting groups while streaming ----------------------------------- */

/* a bijective mixer (MurmurHash3's fmix64), so the HyperLogLog sees bits
 * independent of the ones that chose the split */
static uint64_t fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static void hll_add(uint8_t *reg, uint64_t h)
{
	h = fmix64(h);
	size_t idx = (size_t)(h >> (64 - HLL_BITS));
	uint64_t rest = h << HLL_BITS | (1ULL << (HLL_BITS - 1));
	uint8_t rank = (uint8_t)(__builtin_clzll(rest) + 1);
	if (rank > reg[idx])
		reg[idx] = rank;
}

/* HyperLogLog estimate (Flajolet et al. 2007) with linear counting for
 * small cardinalities. */
static double hll_estimate(const uint8_t *reg)
{
	const double m = (double)(1 << HLL_BITS);
	double sum = 0;
	size_t zeros = 0;
	for (size_t i = 0; i < (1u << HLL_BITS); i++) {
		sum += 1.0 / (double)(1ULL << reg[i]);
		zeros += reg[i] == 0;
	}
	double e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
	if (e <= 2.5 * m && zeros)
		e = m * log(m / (double)zeros);
	return e;
}

/* Returns true if h was not in the set (a new group). */
static bool seen_add(uint64_t h)
{
	struct hashset *s = &g.seen;
	if (s->given_up)
		return false;
	if (!h)
		h = 1;
	if (2 * (s->count + 1) > s->cap) {
		if (s->count >= EXACT_GROUPS_MAX) {
			/* constant memory: from here on only estimates */
			free(s->slots);
			s->slots = NULL;
			s->given_up = true;
			return false;
		}
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *slots = calloc(cap, sizeof *slots);
		if (!slots)
			ft_die(FT_EXIT_DATA, "out of memory");
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slots[i])
				continue;
			size_t j = (size_t)s->slots[i] & (cap - 1);
			while (slots[j])
				j = (j + 1) & (cap - 1);
			slots[j] = s->slots[i];
		}
		free(s->slots);
		s->slots = slots;
		s->cap = cap;
	}
	size_t j = (size_t)h & (s->cap - 1);
	while (s->slots[j]) {
		if (s->slots[j] == h)
			return false;
		j = (j + 1) & (s->cap - 1);
	}
	s->slots[j] = h;
	s->count++;
	return true;
}

/* ---- --exact: the table of groups -------------------------------------- */

static void groups_reindex(struct groups *t, size_t nslots)
{
	uint32_t *index = calloc(nslots, sizeof *index);
	if (!index)
		ft_die(FT_EXIT_DATA, "out of memory");
	for (size_t i = 0; i < t->count; i++) {
		size_t j = (size_t)t->items[i].hash & (nslots - 1);
		while (index[j])
			j = (j + 1) & (nslots - 1);
		index[j] = (uint32_t)(i + 1);
	}
	free(t->index);
	t->index = index;
	t->nslots = nslots;
}

static struct group *groups_find(uint64_t h, const char *key, size_t len, bool add)
{
	struct groups *t = &g.groups;
	if (add && 2 * (t->count + 1) > t->nslots) {
		if (t->count >= UINT32_MAX - 1)
			ft_die(FT_EXIT_DATA, "more than %u groups", UINT32_MAX - 1);
		groups_reindex(t, t->nslots ? t->nslots * 2 : 1024);
	}
	if (!t->nslots)
		return NULL;
	size_t j = (size_t)h & (t->nslots - 1);
	for (; t->index[j]; j = (j + 1) & (t->nslots - 1)) {
		struct group *gr = &t->items[t->index[j] - 1];
		if (gr->hash == h && gr->len == len && memcmp(gr->key, key, len) == 0)
			return gr;
	}
	if (!add)
		return NULL;
	if (t->count == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct group *items = realloc(t->items, cap * sizeof *items);
		if (!items)
			ft_die(FT_EXIT_DATA, "out of memory");
		t->items = items;
		t->cap = cap;
	}
	struct group *gr = &t->items[t->count];
	gr->key = ft_arena_strndup(&t->keys, key, len);
	if (!gr->key)
		ft_die(FT_EXIT_DATA, "out of memory");
	gr->hash = h;
	gr->len = len;
	gr->split = 0;
	t->index[j] = (uint32_t)++t->count;
	return gr;
}

static int group_order(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->key, y->key, n);
	if (c)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

/* Give split i round(G * w_i / W) groups by largest remainder (ties to the
 * earlier split), then deal the groups out in (hash, key) order. */
static void assign_groups(void)
{
	struct groups *t = &g.groups;
	size_t G = t->count;
	if (G > 1)
		qsort(t->items, G, sizeof *t->items, group_order);
	if (t->nslots)
		groups_reindex(t, t->nslots);  /* the items moved */

	/* exact integer arithmetic: G * w fits 128 bits (w < 2^60) */
	unsigned __int128 W = 0;
	for (size_t i = 0; i < g.nsplits; i++)
		W += g.splits[i].weight;
	size_t *quota = calloc(g.nsplits, sizeof *quota);
	unsigned __int128 *rem = calloc(g.nsplits, sizeof *rem);
	bool *extra = calloc(g.nsplits, sizeof *extra);
	if (!quota || !rem || !extra)
		ft_die(FT_EXIT_DATA, "out of memory");
	size_t given = 0;
	for (size_t i = 0; i < g.nsplits; i++) {
		unsigned __int128 num = (unsigned __int128)G * g.splits[i].weight;
		quota[i] = (size_t)(num / W);
		rem[i] = num % W;
		given += quota[i];
	}
	for (; given < G; given++) {
		size_t best = SIZE_MAX;
		for (size_t i = 0; i < g.nsplits; i++)
			if (!extra[i] && (best == SIZE_MAX || rem[i] > rem[best]))
				best = i;
		extra[best] = true;
		quota[best]++;
	}
	size_t s = 0;
	for (size_t i = 0; i < G; i++) {
		while (quota[s] == 0)
			s++;
		quota[s]--;
		t->items[i].split = (unsigned)s;
		g.splits[s].groups++;
	}
	free(quota);
	free(rem);
	free(extra);
}

/* ---- the passes -------------------------------------------------------- */

static void write_record(struct split *sp, struct ft_jsonl_reader *r)
{
	size_t len;
	const char *line = ft_jsonl_line(r, &len);
	if (ft_out_write(sp->out, line, len) || ft_out_write(sp->out, "\n", 1)) {
		/* the write error is sticky: commit reports it with its cause */
		struct ft_err err;
		ft_err_clear(&err);
		struct ft_out *o = sp->out;
		sp->out = NULL;
		ft_out_commit(o, &err);
		ft_report(&err, NULL);
		ft_out_abort_all();
		exit(FT_EXIT_DATA);
	}
	sp->records++;
}

enum pass { PASS_STREAM, PASS_COUNT, PASS_WRITE };

/* Read one input. fd >= 0: a spooled standard input. */
static void run_input(const char *path, int fd, enum pass pass)
{
	struct ft_jsonl_reader *r;
	struct ft_err err;
	ft_err_clear(&err);
	int rc = fd >= 0 ? ft_jsonl_open_fd(&r, fd, "-", 0, g.max_line, &err)
			 : ft_jsonl_open(&r, path, 0, g.max_line, &err);
	if (rc)
		bad_record(&err, FT_E_IO, true);

	for (;;) {
		const char *line;
		size_t len;
		ft_err_clear(&err);
		rc = ft_jsonl_next_line(r, &line, &len, &err);
		if (rc == 0)
			break;
		if (rc < 0) {
			bad_record(&err, rc, pass != PASS_WRITE);
			continue;
		}
		struct ft_jsonscan_span found[2];
		size_t ws = 0;
		while (ws < len && (line[ws] == ' ' || line[ws] == '\t' || line[ws] == '\r'))
			ws++;
		if (ws < len && line[ws] == '{' &&
		    ft_jsonscan(line, len, g.scan_paths, g.nscan_paths, found) == FT_OK) {
			rc = span_key(found, &err);
		} else {
			/* invalid, or valid in a way the scanner leaves to the parser */
			cJSON *rec;
			rc = ft_jsonl_parse_line(r, &rec, &err);
			if (rc < 0) {
				bad_record(&err, rc, pass != PASS_WRITE);
				continue;
			}
			rc = group_key(rec, &err);
			cJSON_Delete(rec);
		}
		if (rc) {
			err.file = path ? path : "-";
			err.line = ft_jsonl_lineno(r);
			bad_record(&err, rc, pass != PASS_WRITE);
			continue;
		}
		uint64_t h = key_hash();
		if (pass == PASS_STREAM) {
			size_t s = pick_split(h);
			write_record(&g.splits[s], r);
			hll_add(g.splits[s].hll, h);
			if (seen_add(h))
				g.splits[s].groups++;
		} else {
			struct group *gr = groups_find(h, g.keytext.data ? g.keytext.data : "",
						       g.keytext.len, pass == PASS_COUNT);
			if (!gr) {
				err.file = path ? path : "-";
				err.line = ft_jsonl_lineno(r);
				ft_err_set(&err, FT_E_IO, "input changed between the two passes");
				bad_record(&err, FT_E_IO, true);  /* exits */
				continue;
			}
			if (pass == PASS_WRITE)
				write_record(&g.splits[gr->split], r);
		}
		g.records_seen++;
		if (g.prog.enabled)
			ft_progress_update(&g.prog, g.records_seen, g.bytes_done + ft_jsonl_bytes(r));
	}
	g.bytes_done += ft_jsonl_bytes(r);
	ft_jsonl_close(r);
}

/* Copy standard input to an unnamed temporary file, for --exact's two
 * passes. Returns its descriptor, at offset 0. */
static int spool_stdin(void)
{
	const char *dir = getenv("TMPDIR");
	struct ft_buf path;
	ft_buf_init(&path, 0);
	if (ft_buf_printf(&path, "%s/ft-split.XXXXXX", dir && *dir ? dir : "/tmp"))
		ft_die(FT_EXIT_DATA, "out of memory");
	int fd = mkostemp(path.data, O_CLOEXEC);
	if (fd < 0)
		ft_die(FT_EXIT_DATA, "cannot create a temporary file in '%s': %s",
		       dir && *dir ? dir : "/tmp", strerror(errno));
	unlink(path.data);  /* gone with the descriptor, whatever happens */
	ft_buf_release(&path);

	size_t cap = (size_t)1 << 20;
	char *buf = malloc(cap);
	if (!buf)
		ft_die(FT_EXIT_DATA, "out of memory");
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ft_die(FT_EXIT_DATA, "<stdin>: read error: %s", strerror(errno));
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				ft_die(FT_EXIT_DATA, "cannot spool standard input: %s",
				       w < 0 ? strerror(errno) : "short write");
			off += w;
		}
	}
	free(buf);
	if (lseek(fd, 0, SEEK_SET) != 0)
		ft_die(FT_EXIT_DATA, "cannot spool standard input: %s", strerror(errno));
	return fd;
}

static bool is_device(const char *path)
{
	struct stat st;
	return strcmp(path, "-") != 0 && stat(path, &st) == 0 && !S_ISREG(st.st_mode) &&
	       !S_ISDIR(st.st_mode);
}

static bool is_stdin(const char *path)
{
	return strcmp(path, "-") == 0;
}

static void summary(void)
{
	for (size_t i = 0; i < g.nsplits; i++) {
		const struct split *sp = &g.splits[i];
		const char *name = strcmp(sp->path, "-") == 0 ? "<stdout>" : sp->path;
		const char *rs = sp->records == 1 ? "" : "s";
		if (g.seen.given_up)
			ft_warn("%s: %llu record%s, ~%.0f groups (estimated)", name, sp->records, rs,
				hll_estimate(sp->hll));
		else
			ft_warn("%s: %llu record%s, %llu group%s", name, sp->records, rs, sp->groups,
				sp->groups == 1 ? "" : "s");
	}
	if (g.skip_bad)
		ft_warn("%llu bad record%s skipped", g.bad, g.bad == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
	ft_cli_init(argv[0]);
	const char *ratio = "8:1:1";
	/* in g, not on main's stack, so early returns do not leak it */
	const char **outs = g.outs = calloc((size_t)argc + 1, sizeof *outs);
	size_t nouts = 0;
	if (!outs)
		ft_die(FT_EXIT_DATA, "out of memory");

	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":r:o:k:s:qh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'r': ratio = optarg; break;
		case 'o': outs[nouts++] = optarg; break;
		case 'k':
			if (!*optarg)
				ft_usage_error("empty key for -k");
			g.key = optarg;
			break;
		case 's': g.seed = ft_opt_u64("--seed", optarg); break;
		case 'q': g.quiet = true; break;
		case OPT_EXACT: g.exact = true; break;
		case OPT_SKIP_BAD: g.skip_bad = true; break;
		case OPT_MAX_LINE:
			g.max_line = ft_opt_size("--max-line", optarg);
			if (!g.max_line)
				ft_usage_error("invalid size '0' for --max-line");
			break;
		case OPT_PROGRESS: g.progress = true; break;
		case 'h':
			fputs(usage_text, stdout);
			ft_close_stdout();
			return FT_EXIT_OK;
		case OPT_VERSION:
			printf("ft-split %s\n", FT_VERSION);
			ft_close_stdout();
			return FT_EXIT_OK;
		case ':':
			ft_usage_error("option '%s' needs a value", ft_opt_name(argv[optind - 1]));
		default:
			ft_usage_error("unknown option '%s'", ft_opt_name(argv[optind - 1]));
		}
	}

	static uint64_t weights[MAX_PARTS];
	size_t nparts;
	parse_ratio(ratio, weights, &nparts);
	if (nouts == 0)
		ft_usage_error("no output given: use -o FILE once per ratio part");
	if (nouts != nparts)
		ft_usage_error("ratio '%s' has %zu part%s but %zu output%s given", ratio, nparts,
			       nparts == 1 ? "" : "s", nouts, nouts == 1 ? " is" : "s are");
	/* two atomic outputs of one name would replace each other; a device
	 * such as /dev/null may well take two */
	for (size_t i = 0; i < nouts; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(outs[i], outs[j]) == 0 && !is_device(outs[i]))
				ft_usage_error("output '%s' given twice", outs[i]);
	const char **inputs = (const char **)argv + optind;
	size_t ninputs = (size_t)(argc - optind);
	static const char *stdin_only[] = { "-" };
	if (ninputs == 0) {
		inputs = stdin_only;
		ninputs = 1;
	}
	size_t nstdin = 0;
	for (size_t i = 0; i < ninputs; i++)
		nstdin += is_stdin(inputs[i]);
	if (nstdin > 1)
		ft_usage_error("standard input given more than once");

	g.nsplits = nparts;
	g.splits = calloc(nparts, sizeof *g.splits);
	if (!g.splits)
		ft_die(FT_EXIT_DATA, "out of memory");
	/* each split's slice of [0,1) ends at its cumulative share; the sums
	 * are exact in 128 bits (parts < 2^60, at most MAX_PARTS of them) */
	unsigned __int128 W = 0, C = 0;
	for (size_t i = 0; i < nparts; i++)
		W += weights[i];
	for (size_t i = 0; i < nparts; i++) {
		struct split *sp = &g.splits[i];
		sp->path = outs[i];
		sp->weight = weights[i];
		C += weights[i];
		sp->upto = (double)C / (double)W;
	}
	ft_buf_init(&g.keytext, 0);
	g.scan_paths[0] = g.key ? g.key : "group";
	g.scan_paths[1] = "id";
	g.nscan_paths = g.key ? 1 : 2;
	ft_arena_init(&g.groups.keys, 0);

	for (size_t i = 0; i < nparts; i++) {
		struct ft_err err;
		ft_err_clear(&err);
		if (ft_out_open(&g.splits[i].out, outs[i], &err)) {
			ft_report(&err, NULL);
			ft_out_abort_all();
			return FT_EXIT_DATA;
		}
	}

	ft_progress_init(&g.prog, g.progress);
	if (!g.exact) {
		for (size_t i = 0; i < ninputs; i++)
			run_input(inputs[i], -1, PASS_STREAM);
	} else {
		int spool = nstdin ? spool_stdin() : -1;
		for (size_t i = 0; i < ninputs; i++)
			run_input(inputs[i], is_stdin(inputs[i]) ? spool : -1, PASS_COUNT);
		assign_groups();
		for (size_t i = 0; i < ninputs; i++) {
			if (is_stdin(inputs[i]) && lseek(spool, 0, SEEK_SET) != 0)
				ft_die(FT_EXIT_DATA, "cannot reread standard input: %s",
				       strerror(errno));
			run_input(inputs[i], is_stdin(inputs[i]) ? spool : -1, PASS_WRITE);
		}
		if (spool >= 0)
			close(spool);
	}
	ft_progress_done(&g.prog);

	/* all data on disk before the first rename, so a full disk cannot
	 * leave a new train.jsonl beside an old val.jsonl */
	for (size_t i = 0; i < nparts; i++) {
		struct ft_err err;
		ft_err_clear(&err);
		if (ft_out_sync(g.splits[i].out, &err)) {
			ft_report(&err, NULL);
			ft_out_abort_all();
			return FT_EXIT_DATA;
		}
	}
	for (size_t i = 0; i < nparts; i++) {
		struct ft_err err;
		ft_err_clear(&err);
		struct ft_out *o = g.splits[i].out;
		g.splits[i].out = NULL;
		if (ft_out_commit(o, &err)) {
			ft_report(&err, NULL);
			ft_out_abort_all();
			return FT_EXIT_DATA;
		}
	}
	if (!g.quiet)
		summary();

	free(g.splits);
	free(g.groups.items);
	free(g.groups.index);
	free(g.seen.slots);
	ft_arena_release(&g.groups.keys);
	ft_buf_release(&g.keytext);
	free(g.outs);
	ft_close_stdout();
	return FT_EXIT_OK;
}
