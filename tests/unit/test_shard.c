/* Unit tests for lib/shard.c: random rows survive a write/read round trip
 * (2- and 4-byte ids) and land at the documented byte offsets; the writer
 * rejects bad rows and leaves no file on abort; every truncation, every
 * flipped bit and a catalogue of hostile headers are rejected; indexes are
 * checked against their shards. */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "shard.h"
#include "testhelp.h"

static char dir[256];
static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint32_t below(uint32_t n)
{
	return (uint32_t)(next() % n);
}

static char *path_in(const char *name)
{
	static char p[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
	return p[k];
}

static int count_entries(void)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return NULL;
	}
	uint8_t *p = malloc((size_t)st.st_size + 1);
	ssize_t r = p ? read(fd, p, (size_t)st.st_size) : -1;
	close(fd);
	if (r != st.st_size) {
		free(p);
		return NULL;
	}
	*len = (size_t)st.st_size;
	return p;
}

static bool spit(const char *path, const uint8_t *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return false;
	bool ok = write(fd, p, len) == (ssize_t)len;
	return close(fd) == 0 && ok;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_header_crc(uint8_t *p)
{
	wr32(p + 252, (uint32_t)crc32(0, p, 252));
}

/* ---- a model of a shard: the rows as the test made them ---------------------- */

struct model {
	struct ft_shard_meta meta;
	uint32_t nrows;
	int32_t *tokens;            /* nrows * seq_len */
	uint8_t *mask;
	struct ft_shard_doc *docs;  /* all docs, row set */
	uint64_t *rows;             /* nrows + 1 */
	uint64_t ndocs, trained, pad;
};

static void model_free(struct model *m)
{
	free(m->tokens);
	free(m->mask);
	free(m->docs);
	free(m->rows);
	memset(m, 0, sizeof *m);
}

/* Random rows: documents of random length at random gaps, masks random
 * inside documents, padding elsewhere. */
static void model_random(struct model *m, uint32_t vocab, uint32_t seq_len, uint32_t nrows)
{
	memset(m, 0, sizeof *m);
	m->meta.vocab_size = vocab;
	m->meta.seq_len = seq_len;
	m->meta.flags = FT_SHARD_PACKED;
	m->meta.pad_id = (int32_t)below(vocab);
	m->meta.bos_id = 1;
	m->meta.eos_id = -1;
	for (int i = 0; i < 32; i++)
		m->meta.tokenizer[i] = (uint8_t)next();
	m->nrows = nrows;
	size_t n = (size_t)nrows * seq_len;
	m->tokens = malloc(n * sizeof *m->tokens);
	m->mask = malloc(n ? n : 1);
	m->docs = malloc(((size_t)n + 1) * sizeof *m->docs);
	m->rows = malloc(((size_t)nrows + 1) * sizeof *m->rows);
	m->rows[0] = 0;
	for (uint32_t r = 0; r < nrows; r++) {
		int32_t *t = m->tokens + (size_t)r * seq_len;
		uint8_t *k = m->mask + (size_t)r * seq_len;
		for (uint32_t p = 0; p < seq_len; p++) {
			t[p] = m->meta.pad_id;
			k[p] = 0;
		}
		uint32_t at = below(2) ? below(seq_len) : 0;  /* a doc starts at 0 or later */
		bool first = true;
		while (at < seq_len && (first || below(4))) {
			uint32_t len = 1 + below(seq_len - at);
			if (below(3) == 0)
				len = 1 + below(len);
			struct ft_shard_doc d = { next() % 1000000, r, at, len,
						  below(8) & (FT_DOC_TRUNCATED | FT_DOC_SPLIT) };
			for (uint32_t p = at; p < at + len; p++) {
				/* ids at the top of the range too */
				t[p] = below(4) == 0 ? (int32_t)(vocab - 1 - below(vocab < 16 ? vocab : 16))
						     : (int32_t)below(vocab);
				k[p] = (uint8_t)below(2);
				m->trained += k[p];
			}
			m->pad += 0;
			m->docs[m->ndocs++] = d;
			at += len + (below(3) == 0 ? below(4) : 0);
			first = false;
		}
		m->rows[r + 1] = m->ndocs;
	}
	uint64_t doc_tokens = 0;
	for (uint64_t i = 0; i < m->ndocs; i++)
		doc_tokens += m->docs[i].len;
	m->pad = n - doc_tokens;
}

static int model_write(const struct model *m, const char *path, struct ft_shard_header *h,
		       struct ft_err *err)
{
	struct ft_shard_writer *w;
	int rc = ft_shard_writer_open(&w, path, &m->meta, err);
	if (rc)
		return rc;
	for (uint32_t r = 0; r < m->nrows; r++) {
		size_t o = (size_t)r * m->meta.seq_len;
		rc = ft_shard_writer_add_row(w, m->tokens + o, m->mask + o, m->docs + m->rows[r],
					     (size_t)(m->rows[r + 1] - m->rows[r]), err);
		if (rc) {
			ft_shard_writer_abort(w);
			return rc;
		}
	}
	return ft_shard_writer_commit(w, h, err);
}

/* Does the open shard hold exactly the model's rows? */
static bool model_matches(const struct model *m, const struct ft_shard *s)
{
	const struct ft_shard_header *h = &s->h;
	if (h->n_rows != m->nrows || h->n_docs != m->ndocs || h->n_trained != m->trained ||
	    h->n_pad != m->pad || h->seq_len != m->meta.seq_len ||
	    h->vocab_size != m->meta.vocab_size || h->pad_id != m->meta.pad_id ||
	    h->bos_id != m->meta.bos_id || h->eos_id != m->meta.eos_id ||
	    h->flags != m->meta.flags || memcmp(h->tokenizer, m->meta.tokenizer, 32) != 0 ||
	    h->token_bytes != (m->meta.vocab_size <= 65536 ? 2u : 4u))
		return false;
	for (uint32_t r = 0; r < m->nrows; r++)
		for (uint32_t p = 0; p < h->seq_len; p++) {
			size_t i = (size_t)r * h->seq_len + p;
			if (ft_shard_token(s, r, p) != (uint32_t)m->tokens[i] || s->mask[i] != m->mask[i])
				return false;
		}
	for (uint32_t r = 0; r <= m->nrows; r++)
		if (s->rows[r] != m->rows[r])
			return false;
	for (uint64_t i = 0; i < m->ndocs; i++) {
		const struct ft_shard_doc *a = &s->docs[i], *b = &m->docs[i];
		if (a->sample != b->sample || a->row != b->row || a->start != b->start ||
		    a->len != b->len || a->flags != b->flags)
			return false;
	}
	return true;
}

/* The bytes on disk, read with nothing but the documented layout. */
static bool layout_matches(const struct model *m, const char *path)
{
	size_t len;
	uint8_t *p = slurp(path, &len);
	if (!p)
		return false;
	uint32_t tb = m->meta.vocab_size <= 65536 ? 2 : 4;
	uint64_t L = m->meta.seq_len;
	bool ok = len >= 256 && memcmp(p, "FTSHARD\0", 8) == 0 && rd32(p + 8) == 1 &&
		  rd32(p + 12) == 256 && rd32(p + 16) == m->meta.vocab_size &&
		  rd32(p + 20) == tb && rd32(p + 24) == L && rd32(p + 28) == m->meta.flags &&
		  rd64(p + 32) == m->nrows && rd64(p + 40) == m->ndocs &&
		  rd64(p + 48) == m->trained && rd64(p + 56) == m->pad &&
		  (int32_t)rd32(p + 64) == m->meta.pad_id && (int32_t)rd32(p + 68) == m->meta.bos_id &&
		  (int32_t)rd32(p + 72) == m->meta.eos_id && rd32(p + 76) == 0 &&
		  memcmp(p + 80, m->meta.tokenizer, 32) == 0 &&
		  rd32(p + 252) == (uint32_t)crc32(0, p, 252);
	for (int i = 208; ok && i < 252; i++)
		ok = p[i] == 0;
	uint64_t want[4] = { m->nrows * L * tb, m->nrows * L, m->ndocs * 24, (m->nrows + 1) * 8 };
	uint64_t end = 256;
	for (int s = 0; ok && s < 4; s++) {
		const uint8_t *e = p + 112 + 24 * s;
		uint64_t off = rd64(e), size = rd64(e + 8);
		ok = off % 64 == 0 && off >= end && off - end < 64 && size == want[s] &&
		     off + size <= len && rd32(e + 16) == (uint32_t)crc32(0, p + off, (uInt)size) &&
		     rd32(e + 20) == 0;
		end = off + size;
		if (!ok)
			break;
		for (uint64_t k = 0; ok && s == 0 && k < m->nrows * L; k++) {
			uint32_t t = tb == 2 ? (uint32_t)(p[off + 2 * k] | p[off + 2 * k + 1] << 8)
					     : rd32(p + off + 4 * k);
			ok = t == (uint32_t)m->tokens[k];
		}
		for (uint64_t k = 0; ok && s == 1 && k < m->nrows * L; k++)
			ok = p[off + k] == m->mask[k];
		for (uint64_t k = 0; ok && s == 2 && k < m->ndocs; k++) {
			const uint8_t *d = p + off + 24 * k;
			ok = rd64(d) == m->docs[k].sample && rd32(d + 8) == m->docs[k].row &&
			     rd32(d + 12) == m->docs[k].start && rd32(d + 16) == m->docs[k].len &&
			     rd32(d + 20) == m->docs[k].flags;
		}
		for (uint64_t k = 0; ok && s == 3 && k <= m->nrows; k++)
			ok = rd64(p + off + 8 * k) == m->rows[k];
	}
	ok = ok && end == len;
	free(p);
	return ok;
}

static void test_round_trip(void)
{
	static const struct { uint32_t vocab, seq_len, rows; } cases[] = {
		{ 1000, 1, 5 }, { 32000, 17, 40 }, { 65536, 64, 30 }, { 65537, 33, 30 },
		{ 151936, 128, 25 }, { 2, 9, 12 }, { 50, 100, 0 },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct model m;
		model_random(&m, cases[c].vocab, cases[c].seq_len, cases[c].rows);
		struct ft_err err;
		ft_err_clear(&err);
		struct ft_shard_header h;
		const char *path = path_in("rt.bin");
		int rc = model_write(&m, path, &h, &err);
		test_cond("round trip: write", rc == 0);
		if (rc) {
			printf("  %s\n", err.msg);
			model_free(&m);
			continue;
		}
		test_cond("round trip: only the shard is left", count_entries() == 1);
		test_cond("round trip: bytes at the documented offsets", layout_matches(&m, path));
		struct ft_shard *s;
		rc = ft_shard_open(&s, path, FT_SHARD_VERIFY, &err);
		test_cond("round trip: open with verify", rc == 0);
		if (!rc) {
			test_cond("round trip: same rows, docs, header", model_matches(&m, s));
			test_cond("round trip: commit's header is the file's",
				  memcmp(&h, &s->h, sizeof h) == 0);
			ft_shard_close(s);
		} else {
			printf("  %s\n", err.msg);
		}
		unlink(path);
		model_free(&m);
	}
}

static void test_writer_rules(void)
{
	struct model m;
	model_random(&m, 100, 8, 1);
	m.meta.pad_id = 0;
	struct ft_err err;
	const char *path = path_in("rules.bin");
	struct ft_shard_writer *w;
	test_cond("writer: open", ft_shard_writer_open(&w, path, &m.meta, &err) == 0);
	test_cond("writer: nothing at the path before commit", access(path, F_OK) != 0);
	int32_t t[8] = { 5, 6, 7, 8, 0, 0, 0, 0 };
	uint8_t k[8] = { 0, 1, 1, 0, 0, 0, 0, 0 };
	struct ft_shard_doc d[2] = { { 7, 0, 0, 4, 0 }, { 8, 0, 4, 2, 0 } };
	int32_t tb[8];
	uint8_t kb[8];
	struct ft_shard_doc db[2];
#define BAD(what, stmt, nd) do { \
		memcpy(tb, t, sizeof t); memcpy(kb, k, sizeof k); memcpy(db, d, sizeof d); \
		stmt; \
		test_cond("writer rejects " what, \
			  ft_shard_writer_add_row(w, tb, kb, db, nd, &err) == FT_E_DATA); \
	} while (0)
	BAD("an id at vocab_size", tb[1] = 100, 1);
	BAD("a negative id", tb[1] = -1, 1);
	BAD("mask value 2", kb[2] = 2, 1);
	BAD("a padding id that is not pad_id", tb[5] = 3, 1);
	BAD("mask 1 on padding", kb[6] = 1, 1);
	BAD("an empty document", db[0].len = 0, 1);
	BAD("a document past seq_len", db[1].len = 5, 2);
	BAD("a document start past seq_len", (db[1].start = 9, db[1].len = 1), 2);
	BAD("a start + len overflow", (db[1].start = 6, db[1].len = UINT32_MAX), 2);
	BAD("overlapping documents", db[1].start = 3, 2);
	BAD("documents out of order", (db[0].start = 4, db[1].start = 0), 2);
	BAD("no documents", (void)0, 0);
	BAD("unknown document flags", db[0].flags = 1u << 7, 1);
	test_cond("writer: bad rows not counted", ft_shard_writer_rows(w) == 0);
	test_cond("writer: a good row after bad ones",
		  ft_shard_writer_add_row(w, t, k, d, 2, &err) == 0 && ft_shard_writer_rows(w) == 1);
	/* the writer sets each doc's row itself */
	d[0].row = d[1].row = 77;
	test_cond("writer: row field ignored", ft_shard_writer_add_row(w, t, k, d, 2, &err) == 0);
	test_cond("writer: still nothing at the path", access(path, F_OK) != 0);
	ft_shard_writer_abort(w);
	test_cond("writer: abort leaves no file at all", count_entries() == 0);

	struct ft_shard_meta bad = m.meta;
	bad.vocab_size = 0;
	test_cond("writer: vocab_size 0 refused", ft_shard_writer_open(&w, path, &bad, &err) != 0);
	bad = m.meta;
	bad.seq_len = 0;
	test_cond("writer: seq_len 0 refused", ft_shard_writer_open(&w, path, &bad, &err) != 0);
	bad = m.meta;
	bad.pad_id = 100;
	test_cond("writer: pad_id >= vocab refused", ft_shard_writer_open(&w, path, &bad, &err) != 0);
	test_cond("writer: stdout refused", ft_shard_writer_open(&w, "-", &m.meta, &err) != 0);
	test_cond("writer: a missing directory refused",
		  ft_shard_writer_open(&w, path_in("nodir/x.bin"), &m.meta, &err) != 0);
	bad = m.meta;
	bad.pad_id = -1;
	test_cond("writer: open without pad id", ft_shard_writer_open(&w, path, &bad, &err) == 0);
	test_cond("writer: padding refused without a pad id",
		  ft_shard_writer_add_row(w, t, k, d, 2, &err) == FT_E_DATA);
	struct ft_shard_doc full = { 0, 0, 0, 8, 0 };
	test_cond("writer: a full row needs no pad id",
		  ft_shard_writer_add_row(w, t, k, &full, 1, &err) == 0);
	test_cond("writer: commit", ft_shard_writer_commit(w, NULL, &err) == 0);
	struct ft_shard *s;
	test_cond("writer: the result verifies",
		  ft_shard_open(&s, path, FT_SHARD_VERIFY, &err) == 0 && s->h.n_pad == 0 &&
		  s->h.n_trained == 2);
	ft_shard_close(s);
	unlink(path);
	test_cond("writer: directory clean", count_entries() == 0);
	model_free(&m);
}

/* A small valid shard's bytes, for the damage tests. */
static uint8_t *small_shard(size_t *len, struct model *m)
{
	model_random(m, 70000, 6, 4);
	struct ft_err err;
	const char *path = path_in("small.bin");
	if (model_write(m, path, NULL, &err))
		return NULL;
	uint8_t *p = slurp(path, len);
	unlink(path);
	return p;
}

static int open_bytes(const uint8_t *p, size_t len, int flags, struct ft_err *err)
{
	const char *path = path_in("damaged.bin");
	if (!spit(path, p, len))
		return 1;
	struct ft_shard *s;
	ft_err_clear(err);
	int rc = ft_shard_open(&s, path, flags, err);
	ft_shard_close(s);
	unlink(path);
	return rc;
}

static void test_truncation(void)
{
	struct model m;
	size_t len;
	uint8_t *p = small_shard(&len, &m);
	test_cond("truncation: made a shard", p != NULL);
	if (!p)
		return;
	struct ft_err err;
	int accepted = 0, verified = 0;
	for (size_t n = 0; n < len; n++) {
		accepted += open_bytes(p, n, 0, &err) == 0;
		verified += open_bytes(p, n, FT_SHARD_VERIFY, &err) == 0;
	}
	test_cond("truncation: every shorter file rejected on open", accepted == 0);
	test_cond("truncation: every shorter file rejected by verify", verified == 0);
	test_cond("truncation: the whole file opens", open_bytes(p, len, FT_SHARD_VERIFY, &err) == 0);
	open_bytes(p, len - 1, 0, &err);
	test_cond("truncation: says so", strstr(err.msg, "truncated") != NULL);
	/* and a file with something after the last section */
	uint8_t *q = malloc(len + 1);
	memcpy(q, p, len);
	q[len] = 0;
	test_cond("trailing bytes rejected", open_bytes(q, len + 1, 0, &err) != 0);
	free(q);
	free(p);
	model_free(&m);
}

static void test_bit_flips(void)
{
	struct model m;
	size_t len;
	uint8_t *p = small_shard(&len, &m);
	if (!p)
		return;
	uint64_t off[4], size[4];
	for (int s = 0; s < 4; s++) {
		off[s] = rd64(p + 112 + 24 * s);
		size[s] = rd64(p + 112 + 24 * s + 8);
	}
	struct ft_err err;
	int missed = 0, header_missed = 0, named[4] = { 0 }, flips[4] = { 0 };
	for (size_t i = 0; i < len; i++) {
		uint8_t bit = (uint8_t)(1u << (i % 8));
		p[i] ^= bit;
		int rc = open_bytes(p, len, FT_SHARD_VERIFY, &err);
		missed += rc == 0;
		if (i < 256)
			header_missed += open_bytes(p, len, 0, &err) == 0;
		for (int s = 0; s < 4; s++)
			if (i >= off[s] && i < off[s] + size[s]) {
				char want[64];
				snprintf(want, sizeof want, "section '%s'", ft_shard_section_name(s));
				flips[s]++;
				/* a flip in docs or rows may break the structure first */
				named[s] += strstr(err.msg, want) != NULL ||
					    ((s == 2 || s == 3) && rc != 0);
			}
		p[i] ^= bit;
	}
	test_cond("bit flips: every flipped bit caught by verify", missed == 0);
	test_cond("bit flips: every header flip caught without verify", header_missed == 0);
	test_cond("bit flips: tokens flips name the section", named[0] == flips[0] && flips[0] > 0);
	test_cond("bit flips: mask flips name the section", named[1] == flips[1] && flips[1] > 0);
	test_cond("bit flips: docs flips caught", named[2] == flips[2] && flips[2] > 0);
	test_cond("bit flips: rows flips caught", named[3] == flips[3] && flips[3] > 0);
	p[off[1]] ^= 1;
	open_bytes(p, len, FT_SHARD_VERIFY, &err);
	test_cond("bit flips: the message", strcmp(err.msg, "section 'mask': crc32 mismatch "
						  "(file is corrupt)") == 0 &&
		  err.file && strstr(err.file, "damaged.bin"));
	test_cond("bit flips: without verify the mask flip is not looked for",
		  open_bytes(p, len, 0, &err) == 0);
	p[off[1]] ^= 1;
	free(p);
	model_free(&m);
}

/* Change the header of a valid shard, re-sign it, and expect rejection
 * with msg containing want. */
static void hostile(const char *what, void (*edit)(uint8_t *p, size_t len), const char *want,
		    bool resign)
{
	struct model m;
	size_t len;
	uint8_t *p = small_shard(&len, &m);
	if (!p)
		return;
	edit(p, len);
	if (resign)
		fix_header_crc(p);
	struct ft_err err;
	int rc = open_bytes(p, len, 0, &err);
	char d[160];
	snprintf(d, sizeof d, "hostile header rejected: %s", what);
	test_cond(d, rc != 0);
	snprintf(d, sizeof d, "hostile header message: %s", what);
	test_cond(d, strstr(err.msg, want) != NULL);
	if (!strstr(err.msg, want))
		printf("  got: %s\n", err.msg);
	free(p);
	model_free(&m);
}

static void e_nrows_huge(uint8_t *p, size_t len) { wr64(p + 32, (uint64_t)1 << 62); }
static void e_nrows_wrap(uint8_t *p, size_t len) { wr64(p + 32, UINT64_MAX); }
static void e_nrows_plus(uint8_t *p, size_t len) { wr64(p + 32, rd64(p + 32) + 1); }
static void e_overflow(uint8_t *p, size_t len)
{
	wr64(p + 32, (uint64_t)1 << 32);
	wr32(p + 24, UINT32_MAX);
}
static void e_ndocs_huge(uint8_t *p, size_t len) { wr64(p + 40, (uint64_t)1 << 61); }
static void e_seqlen_max(uint8_t *p, size_t len) { wr32(p + 24, UINT32_MAX); }
static void e_seqlen_0(uint8_t *p, size_t len) { wr32(p + 24, 0); }
static void e_beyond_eof(uint8_t *p, size_t len) { wr64(p + 112 + 72, len + 64 - len % 64); }
static void e_offset_wrap(uint8_t *p, size_t len) { wr64(p + 112 + 72, UINT64_MAX - 63); }
static void e_overlap(uint8_t *p, size_t len) { wr64(p + 112 + 24, rd64(p + 112)); }
static void e_misaligned(uint8_t *p, size_t len) { wr64(p + 112 + 48, rd64(p + 112 + 48) + 8); }
static void e_into_header(uint8_t *p, size_t len) { wr64(p + 112, 192); }
static void e_size(uint8_t *p, size_t len) { wr64(p + 112 + 8, rd64(p + 112 + 8) - 4); }
static void e_crc(uint8_t *p, size_t len) { p[20] ^= 4; }
static void e_width(uint8_t *p, size_t len) { wr32(p + 20, 2); }
static void e_version(uint8_t *p, size_t len) { wr32(p + 8, 2); }
static void e_hsize(uint8_t *p, size_t len) { wr32(p + 12, 512); }
static void e_magic(uint8_t *p, size_t len) { p[0] = 'X'; }
static void e_vocab0(uint8_t *p, size_t len) { wr32(p + 16, 0); }
static void e_padid(uint8_t *p, size_t len) { wr32(p + 64, 70000); }
static void e_npad(uint8_t *p, size_t len) { wr64(p + 56, rd64(p + 56) + 1); }
static void e_trained(uint8_t *p, size_t len) { wr64(p + 48, rd64(p + 32) * 6 + 1); }
/* the sections' own contents (not covered by the header crc) */
static void e_rows_last(uint8_t *p, size_t len)
{
	uint64_t off = rd64(p + 112 + 72), n = rd64(p + 32);
	wr64(p + off + 8 * n, rd64(p + off + 8 * n) + 1);
}
static void e_rows_order(uint8_t *p, size_t len)
{
	uint64_t off = rd64(p + 112 + 72);
	wr64(p + off + 8, UINT64_MAX);
}
static void e_doc_row(uint8_t *p, size_t len)
{
	uint64_t off = rd64(p + 112 + 48);
	wr32(p + off + 8, 3);
}
static void e_doc_len(uint8_t *p, size_t len)
{
	uint64_t off = rd64(p + 112 + 48);
	wr32(p + off + 12, UINT32_MAX);
}

static void test_hostile(void)
{
	hostile("huge n_rows", e_nrows_huge, "rows (at most", true);
	hostile("n_rows * seq_len * 4 overflows", e_overflow, "too large", true);
	hostile("n_rows 2^64-1", e_nrows_wrap, "rows", true);
	hostile("n_rows one more", e_nrows_plus, "size", true);
	hostile("huge n_docs", e_ndocs_huge, "documents", true);
	hostile("seq_len 2^32-1", e_seqlen_max, "size", true);
	hostile("seq_len 0", e_seqlen_0, "seq_len", true);
	hostile("section beyond the end", e_beyond_eof, "beyond the end", true);
	hostile("offset + size wraps", e_offset_wrap, "beyond the end", true);
	hostile("overlapping sections", e_overlap, "overlaps", true);
	hostile("misaligned section", e_misaligned, "aligned", true);
	hostile("section inside the header", e_into_header, "overlaps the header", true);
	hostile("wrong section size", e_size, "size", true);
	hostile("wrong header crc", e_crc, "header crc32 mismatch", false);
	hostile("token_bytes against vocab", e_width, "token_bytes", true);
	hostile("version 2", e_version, "version 2", true);
	hostile("header size", e_hsize, "header size", true);
	hostile("magic", e_magic, "not an ft shard", true);
	hostile("vocab_size 0", e_vocab0, "vocab_size", true);
	hostile("pad_id outside the vocabulary", e_padid, "pad", true);
	hostile("n_pad disagrees with the documents", e_npad, "padding", true);
	hostile("n_trained above the positions", e_trained, "trained", true);
	hostile("rows[n_rows] != n_docs", e_rows_last, "rows", false);
	hostile("rows out of order", e_rows_order, "rows", false);
	hostile("a doc in the wrong row", e_doc_row, "row", false);
	hostile("a doc past seq_len", e_doc_len, "does not fit", false);
}

static void test_index(void)
{
	struct model a, b, c;
	model_random(&a, 32000, 16, 7);
	model_random(&b, 32000, 16, 0);
	model_random(&c, 32000, 16, 5);
	memcpy(b.meta.tokenizer, a.meta.tokenizer, 32);
	memcpy(c.meta.tokenizer, a.meta.tokenizer, 32);
	struct ft_err err;
	ft_err_clear(&err);
	mkdir(path_in("sub"), 0755);
	test_cond("index: shards written",
		  model_write(&a, path_in("sub/a.bin"), NULL, &err) == 0 &&
		  model_write(&b, path_in("sub/b.bin"), NULL, &err) == 0 &&
		  model_write(&c, path_in("c.bin"), NULL, &err) == 0);
	const char *list[] = { "sub/a.bin", "sub/b.bin", "c.bin" };
	test_cond("index: written", ft_shard_index_write(path_in("idx.json"), list, 3, &err) == 0);
	struct ft_shard_set set;
	int rc = ft_shard_set_open(&set, path_in("idx.json"), FT_SHARD_VERIFY, &err);
	test_cond("index: opens", rc == 0);
	if (!rc) {
		test_cond("index: three shards", set.n == 3);
		test_cond("index: totals", set.n_rows == 12 && set.n_docs == a.ndocs + c.ndocs &&
			  set.n_trained == a.trained + c.trained && set.n_pad == a.pad + c.pad);
		bool ok = true;
		for (uint64_t r = 0; r < 12; r++) {
			uint64_t local;
			const struct ft_shard *s = ft_shard_set_row(&set, r, &local);
			ok = ok && s == (r < 7 ? set.shards[0] : set.shards[2]) &&
			     local == (r < 7 ? r : r - 7) &&
			     ft_shard_token(s, local, 3) ==
				     (uint32_t)(r < 7 ? a.tokens[r * 16 + 3] : c.tokens[(r - 7) * 16 + 3]);
		}
		test_cond("index: rows map to shards across an empty one", ok);
		uint64_t local;
		test_cond("index: a row past the end", ft_shard_set_row(&set, 12, &local) == NULL);
		/* a set filled by hand, without first_row */
		uint64_t *fr = set.first_row;
		set.first_row = NULL;
		const struct ft_shard *s = ft_shard_set_row(&set, 9, &local);
		test_cond("index: linear lookup", s == set.shards[2] && local == 2);
		set.first_row = fr;
		ft_shard_set_release(&set);
	}
	rc = ft_shard_set_open(&set, path_in("c.bin"), 0, &err);
	test_cond("set: a single shard", rc == 0 && set.n == 1 && set.n_rows == 5);
	if (!rc)
		ft_shard_set_release(&set);

	size_t len;
	uint8_t *text = slurp(path_in("idx.json"), &len);
	test_cond("index: read back", text != NULL);
	if (!text)
		return;
	text[len] = 0;
	test_cond("index: relative paths as given", strstr((char *)text, "\"path\":\"sub/a.bin\""));
	/* edited copies of the index must be refused */
	static const struct { const char *from, *to, *what; } edits[] = {
		{ "\"rows\":7,", "\"rows\":8,", "index rows disagree with the shard" },
		{ "\"rows\":12,", "\"rows\":13,", "index total rows wrong" },
		{ "\"format\":\"ft-shard-index\"", "\"format\":\"other\"", "wrong format" },
		{ "\"version\":1", "\"version\":2", "wrong version" },
		{ "\"seq_len\":16", "\"seq_len\":17", "seq_len disagrees" },
		{ "sub/a.bin", "sub/zz.bin", "a missing shard" },
		{ "\"bytes\":", "\"bytes\":1", "shard bytes disagree" },
		{ "\"header_crc32\":", "\"header_crc32\":1", "header crc disagrees" },
		{ "\"tokenizer\":\"", "\"tokenizer\":\"0", "malformed tokenizer" },
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		char *at = strstr((char *)text, edits[i].from);
		if (!at) {
			test_cond(edits[i].what, false);
			continue;
		}
		FILE *f = fopen(path_in("edit.json"), "w");
		fprintf(f, "%.*s%s%s", (int)(at - (char *)text), (char *)text, edits[i].to,
			at + strlen(edits[i].from));
		fclose(f);
		char d[160];
		snprintf(d, sizeof d, "index refused: %s", edits[i].what);
		rc = ft_shard_set_open(&set, path_in("edit.json"), 0, &err);
		test_cond(d, rc != 0 && err.file && strstr(err.file, "edit.json"));
		if (!rc)
			ft_shard_set_release(&set);
	}
	free(text);
	test_cond("index: empty list refused",
		  ft_shard_index_write(path_in("e.json"), list, 0, &err) != 0);
	spit(path_in("e.json"), (const uint8_t *)"{\"format\":\"ft-shard-index\"}", 26);
	test_cond("index: fields required", ft_shard_set_open(&set, path_in("e.json"), 0, &err) != 0);
	spit(path_in("e.json"), (const uint8_t *)"hello", 5);
	test_cond("set: neither shard nor index",
		  ft_shard_set_open(&set, path_in("e.json"), 0, &err) != 0 &&
		  strstr(err.msg, "neither a shard nor"));
	unlink(path_in("e.json"));
	unlink(path_in("edit.json"));

	/* a shard rewritten after the index was made */
	model_free(&c);
	model_random(&c, 32000, 16, 5);
	memcpy(c.meta.tokenizer, a.meta.tokenizer, 32);
	model_write(&c, path_in("c.bin"), NULL, &err);
	rc = ft_shard_set_open(&set, path_in("idx.json"), 0, &err);
	test_cond("index: a rewritten shard is refused", rc != 0 && strstr(err.msg, "c.bin"));
	if (!rc)
		ft_shard_set_release(&set);

	/* shards that do not agree */
	struct model d;
	model_random(&d, 32000, 16, 2);  /* another tokenizer */
	model_write(&d, path_in("d.bin"), NULL, &err);
	const char *mixed[] = { "c.bin", "d.bin" };
	test_cond("index: another tokenizer refused",
		  ft_shard_index_write(path_in("m.json"), mixed, 2, &err) != 0 &&
		  strstr(err.msg, "tokenizer") && access(path_in("m.json"), F_OK) != 0);
	model_free(&d);
	model_random(&d, 32000, 8, 2);
	memcpy(d.meta.tokenizer, a.meta.tokenizer, 32);
	model_write(&d, path_in("d.bin"), NULL, &err);
	test_cond("index: another seq_len refused",
		  ft_shard_index_write(path_in("m.json"), mixed, 2, &err) != 0 &&
		  strstr(err.msg, "seq_len"));
	model_free(&d);
	model_random(&d, 70000, 16, 2);
	memcpy(d.meta.tokenizer, a.meta.tokenizer, 32);
	model_write(&d, path_in("d.bin"), NULL, &err);
	test_cond("index: another vocab refused",
		  ft_shard_index_write(path_in("m.json"), mixed, 2, &err) != 0 &&
		  strstr(err.msg, "vocab_size"));
	/* an index listing shards that disagree, written by hand */
	const char *ok2[] = { "c.bin" };
	ft_shard_index_write(path_in("m.json"), ok2, 1, &err);
	text = slurp(path_in("m.json"), &len);
	if (text) {
		text[len] = 0;
		char *end = strstr((char *)text, "\n]}");
		FILE *f = fopen(path_in("m2.json"), "w");
		struct ft_shard *sd;
		ft_shard_open(&sd, path_in("d.bin"), 0, &err);
		fprintf(f, "%.*s,\n{\"path\":\"d.bin\",\"rows\":2,\"docs\":%llu,\"trained\":%llu,"
			"\"bytes\":%zu,\"header_crc32\":%u}%s", (int)(end - (char *)text),
			(char *)text, (unsigned long long)sd->h.n_docs,
			(unsigned long long)sd->h.n_trained, sd->map_len, ft_shard_header_crc(sd), end);
		ft_shard_close(sd);
		fclose(f);
		rc = ft_shard_set_open(&set, path_in("m2.json"), 0, &err);
		test_cond("index: disagreeing shards in an index refused",
			  rc != 0 && strstr(err.msg, "different"));
		if (!rc)
			ft_shard_set_release(&set);
		free(text);
	}
	model_free(&a);
	model_free(&b);
	model_free(&c);
	model_free(&d);
	const char *rm[] = { "sub/a.bin", "sub/b.bin", "c.bin", "d.bin", "idx.json", "m.json",
			     "m2.json" };
	for (size_t i = 0; i < sizeof rm / sizeof rm[0]; i++)
		unlink(path_in(rm[i]));
	rmdir(path_in("sub"));
	test_cond("index: directory clean", count_entries() == 0);
}

int main(void)
{
	snprintf(dir, sizeof dir, "%s/ft-test-shard.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_round_trip();
	test_writer_rules();
	test_truncation();
	test_bit_flips();
	test_hostile();
	test_index();
	rmdir(dir);
	return test_report();
}
