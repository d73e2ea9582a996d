/* shard.c: token shards (docs/shard-format.md). The writer streams the
 * token section straight into the atomic output (lib/out.c) behind a
 * zeroed header, and the mask, docs and rows sections into unlinked spill
 * files beside it; commit copies the spills in at their aligned offsets,
 * patches the header in at offset 0 and renames. The reader maps the file
 * and trusts nothing: every size is derived from the header with overflow
 * checks and compared with the file before any pointer is formed. */
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "buf.h"
#include "json.h"
#include "out.h"
#include "sha256.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ft shards are mapped in place: a little-endian host is required"
#endif

_Static_assert(sizeof(struct ft_shard_doc) == 24, "struct ft_shard_doc is the on-disk layout");

#define DOC_SIZE 24
#define SECTION_TABLE 112
#define HEADER_CRC_AT 252
#define SPILL_BUF ((size_t)1 << 18)
#define INDEX_MAX ((size_t)64 << 20)

static const char *const section_names[FT_SHARD_NSECTIONS] = { "tokens", "mask", "docs",
								"rows" };

const char *ft_shard_section_name(int section)
{
	return section >= 0 && section < FT_SHARD_NSECTIONS ? section_names[section] : NULL;
}

/* ---- little-endian fields ------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* zlib's crc32 takes uInt lengths: feed large sections in pieces. */
static uint32_t crc_update(uint32_t crc, const uint8_t *p, uint64_t n)
{
	while (n > 0) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
		crc = (uint32_t)crc32(crc, p, k);
		p += k;
		n -= k;
	}
	return crc;
}

static uint64_t align_up(uint64_t v)
{
	return (v + FT_SHARD_ALIGN - 1) / FT_SHARD_ALIGN * FT_SHARD_ALIGN;
}

static void header_encode(const struct ft_shard_header *h, uint8_t out[FT_SHARD_HEADER_SIZE])
{
	memset(out, 0, FT_SHARD_HEADER_SIZE);
	memcpy(out, FT_SHARD_MAGIC, 8);
	put32(out + 8, h->version);
	put32(out + 12, FT_SHARD_HEADER_SIZE);
	put32(out + 16, h->vocab_size);
	put32(out + 20, h->token_bytes);
	put32(out + 24, h->seq_len);
	put32(out + 28, h->flags);
	put64(out + 32, h->n_rows);
	put64(out + 40, h->n_docs);
	put64(out + 48, h->n_trained);
	put64(out + 56, h->n_pad);
	put32(out + 64, (uint32_t)h->pad_id);
	put32(out + 68, (uint32_t)h->bos_id);
	put32(out + 72, (uint32_t)h->eos_id);
	memcpy(out + 80, h->tokenizer, 32);
	for (int i = 0; i < FT_SHARD_NSECTIONS; i++) {
		uint8_t *e = out + SECTION_TABLE + 24 * i;
		put64(e, h->section[i].offset);
		put64(e + 8, h->section[i].size);
		put32(e + 16, h->section[i].crc32);
	}
	put32(out + HEADER_CRC_AT, (uint32_t)crc32(0, out, HEADER_CRC_AT));
}

static void header_decode(const uint8_t *p, struct ft_shard_header *h)
{
	memset(h, 0, sizeof *h);
	h->version = get32(p + 8);
	h->vocab_size = get32(p + 16);
	h->token_bytes = get32(p + 20);
	h->seq_len = get32(p + 24);
	h->flags = get32(p + 28);
	h->n_rows = get64(p + 32);
	h->n_docs = get64(p + 40);
	h->n_trained = get64(p + 48);
	h->n_pad = get64(p + 56);
	h->pad_id = (int32_t)get32(p + 64);
	h->bos_id = (int32_t)get32(p + 68);
	h->eos_id = (int32_t)get32(p + 72);
	memcpy(h->tokenizer, p + 80, 32);
	for (int i = 0; i < FT_SHARD_NSECTIONS; i++) {
		const uint8_t *e = p + SECTION_TABLE + 24 * i;
		h->section[i].offset = get64(e);
		h->section[i].size = get64(e + 8);
		h->section[i].crc32 = get32(e + 16);
	}
}

static uint32_t token_width(uint32_t vocab_size)
{
	return vocab_size <= 65536 ? 2 : 4;
}

/* ---- spill files ----------------------------------------------------------- */

/* A section written in order to an unlinked temporary file, with its crc
 * kept as it grows. */
struct spill {
	int fd;
	uint8_t *buf;
	size_t len;
	uint64_t bytes;
	uint32_t crc;
	int werr;
};

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* An anonymous file in dir (so it shares the output's file system and
 * leaves nothing behind even on a crash): O_TMPFILE, else mkstemp+unlink. */
static int spill_open(struct spill *s, const char *dir)
{
	memset(s, 0, sizeof *s);
	s->fd = -1;
	s->buf = malloc(SPILL_BUF);
	if (!s->buf)
		return ENOMEM;
#ifdef O_TMPFILE
	s->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
	if (s->fd < 0) {
		size_t n = strlen(dir) + sizeof "/.ft-shard-spill-XXXXXX";
		char *tmp = malloc(n);
		if (!tmp)
			return ENOMEM;
		snprintf(tmp, n, "%s/.ft-shard-spill-XXXXXX", dir);
		s->fd = mkostemp(tmp, O_CLOEXEC);
		int e = errno;
		if (s->fd >= 0)
			unlink(tmp);
		free(tmp);
		if (s->fd < 0)
			return e;
	}
	return 0;
}

static void spill_close(struct spill *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->buf);
	s->buf = NULL;
}

static int spill_flush(struct spill *s)
{
	if (!s->werr && s->len)
		s->werr = write_all(s->fd, s->buf, s->len);
	s->len = 0;
	return s->werr;
}

static int spill_write(struct spill *s, const void *p, size_t n)
{
	const uint8_t *q = p;
	s->crc = crc_update(s->crc, q, n);
	s->bytes += n;
	while (n > 0) {
		if (s->len == SPILL_BUF && spill_flush(s))
			return s->werr;
		size_t k = SPILL_BUF - s->len < n ? SPILL_BUF - s->len : n;
		memcpy(s->buf + s->len, q, k);
		s->len += k;
		q += k;
		n -= k;
	}
	return s->werr;
}

/* Append the spill's bytes to o. */
static int spill_copy(struct spill *s, struct ft_out *o)
{
	if (spill_flush(s))
		return s->werr;
	uint64_t off = 0;
	while (off < s->bytes) {
		size_t want = s->bytes - off < SPILL_BUF ? (size_t)(s->bytes - off) : SPILL_BUF;
		ssize_t r = pread(s->fd, s->buf, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? errno : EIO;
		if (ft_out_write(o, s->buf, (size_t)r))
			return EIO;
		off += (uint64_t)r;
	}
	return 0;
}

/* ---- writer ------------------------------------------------------------------ */

struct ft_shard_writer {
	struct ft_out *out;
	char *path;
	struct ft_shard_meta meta;
	uint32_t token_bytes;
	uint64_t n_rows, n_docs, n_trained, n_pad;
	uint64_t tokens_size;
	uint32_t tokens_crc;
	uint8_t *rowbuf;        /* one row of encoded tokens */
	struct spill mask, docs, rows;
	bool failed;            /* an I/O error: only abort is left */
};

static void writer_free(struct ft_shard_writer *w)
{
	spill_close(&w->mask);
	spill_close(&w->docs);
	spill_close(&w->rows);
	free(w->rowbuf);
	free(w->path);
	free(w);
}

static bool id_ok(int32_t id, uint32_t vocab)
{
	return id >= -1 && (id < 0 || (uint32_t)id < vocab);
}

int ft_shard_writer_open(struct ft_shard_writer **wp, const char *path,
			 const struct ft_shard_meta *meta, struct ft_err *err)
{
	*wp = NULL;
	if (!path || !*path || strcmp(path, "-") == 0)
		return ft_err_set(err, FT_E_INVAL, "a shard must be written to a named file");
	if (meta->vocab_size == 0)
		return ft_err_set(err, FT_E_INVAL, "vocab_size must be at least 1");
	if (meta->seq_len == 0)
		return ft_err_set(err, FT_E_INVAL, "seq_len must be at least 1");
	if (meta->flags & ~(uint32_t)FT_SHARD_PACKED)
		return ft_err_set(err, FT_E_INVAL, "unknown shard flags 0x%x", meta->flags);
	if (!id_ok(meta->pad_id, meta->vocab_size) || !id_ok(meta->bos_id, meta->vocab_size) ||
	    !id_ok(meta->eos_id, meta->vocab_size))
		return ft_err_set(err, FT_E_INVAL,
				  "pad, bos and eos ids must be -1 or below vocab_size %u",
				  meta->vocab_size);

	struct ft_shard_writer *w = calloc(1, sizeof *w);
	if (!w)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	w->mask.fd = w->docs.fd = w->rows.fd = -1;
	w->meta = *meta;
	w->token_bytes = token_width(meta->vocab_size);
	w->path = strdup(path);
	w->rowbuf = malloc((size_t)meta->seq_len * w->token_bytes);
	if (!w->path || !w->rowbuf) {
		writer_free(w);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
	if (!dir) {
		writer_free(w);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	int e = spill_open(&w->mask, dir);
	if (!e)
		e = spill_open(&w->docs, dir);
	if (!e)
		e = spill_open(&w->rows, dir);
	free(dir);
	if (e) {
		writer_free(w);
		return ft_err_set(err, e == ENOMEM ? FT_E_NOMEM : FT_E_IO,
				  "cannot create a temporary file for '%s': %s", path, strerror(e));
	}
	int rc = ft_out_open(&w->out, path, err);
	if (rc) {
		writer_free(w);
		return rc;
	}
	/* the header is patched in at commit; the tokens follow it directly */
	static const uint8_t zero[FT_SHARD_HEADER_SIZE];
	uint8_t first[8] = { 0 };
	if (ft_out_write(w->out, zero, sizeof zero) || spill_write(&w->rows, first, 8)) {
		ft_shard_writer_abort(w);
		return ft_err_set(err, FT_E_IO, "cannot write '%s': %s", path, strerror(errno));
	}
	*wp = w;
	return FT_OK;
}

/* Check one row against the shard's rules; counts its trained and padding
 * positions. */
static int row_check(const struct ft_shard_writer *w, const int32_t *tokens,
		     const uint8_t *mask, const struct ft_shard_doc *docs, size_t ndocs,
		     uint64_t *trained, uint64_t *pad, struct ft_err *err)
{
	uint32_t seq_len = w->meta.seq_len;
	if (ndocs == 0)
		return ft_err_set(err, FT_E_DATA, "row %llu has no documents",
				  (unsigned long long)w->n_rows);
	uint64_t end = 0;
	for (size_t i = 0; i < ndocs; i++) {
		const struct ft_shard_doc *d = &docs[i];
		if (d->len == 0)
			return ft_err_set(err, FT_E_DATA, "row %llu: document %zu is empty",
					  (unsigned long long)w->n_rows, i);
		if (d->start > seq_len || d->len > seq_len - d->start)
			return ft_err_set(err, FT_E_DATA,
					  "row %llu: document %zu (start %u, %u tokens) does not fit "
					  "in seq_len %u", (unsigned long long)w->n_rows, i, d->start,
					  d->len, seq_len);
		if (d->start < end)
			return ft_err_set(err, FT_E_DATA,
					  "row %llu: document %zu starts at %u, inside or before the "
					  "previous one", (unsigned long long)w->n_rows, i, d->start);
		if (d->flags & ~(uint32_t)(FT_DOC_TRUNCATED | FT_DOC_CONTINUED | FT_DOC_SPLIT))
			return ft_err_set(err, FT_E_DATA, "row %llu: document %zu: unknown flags 0x%x",
					  (unsigned long long)w->n_rows, i, d->flags);
		end = (uint64_t)d->start + d->len;
	}
	uint64_t ntrained = 0, npad = 0;
	size_t di = 0;
	for (uint32_t p = 0; p < seq_len; p++) {
		while (di < ndocs && (uint64_t)docs[di].start + docs[di].len <= p)
			di++;
		bool in_doc = di < ndocs && docs[di].start <= p;
		int32_t t = tokens[p];
		if (mask[p] > 1)
			return ft_err_set(err, FT_E_DATA, "row %llu, position %u: mask value %u is not "
					  "0 or 1", (unsigned long long)w->n_rows, p, mask[p]);
		if (t < 0 || (uint32_t)t >= w->meta.vocab_size)
			return ft_err_set(err, FT_E_DATA, "row %llu, position %u: token id %d is outside "
					  "the vocabulary (%u)", (unsigned long long)w->n_rows, p, t,
					  w->meta.vocab_size);
		if (!in_doc) {
			if (w->meta.pad_id < 0)
				return ft_err_set(err, FT_E_DATA, "row %llu, position %u: padding, but "
						  "the shard has no pad id", (unsigned long long)w->n_rows, p);
			if (t != w->meta.pad_id || mask[p])
				return ft_err_set(err, FT_E_DATA, "row %llu, position %u: padding must "
						  "hold pad id %d with mask 0 (has %d, mask %u)",
						  (unsigned long long)w->n_rows, p, w->meta.pad_id, t, mask[p]);
			npad++;
		}
		ntrained += mask[p];
	}
	*trained = ntrained;
	*pad = npad;
	return FT_OK;
}

int ft_shard_writer_add_row(struct ft_shard_writer *w, const int32_t *tokens,
			    const uint8_t *mask, const struct ft_shard_doc *docs, size_t ndocs,
			    struct ft_err *err)
{
	if (w->failed)
		return ft_err_set(err, FT_E_IO, "cannot write '%s': an earlier write failed", w->path);
	if (w->n_rows > UINT32_MAX)
		return ft_err_set(err, FT_E_TOOBIG, "'%s': a shard holds at most %llu rows", w->path,
				  (unsigned long long)UINT32_MAX + 1);
	uint64_t trained = 0, pad = 0;
	int rc = row_check(w, tokens, mask, docs, ndocs, &trained, &pad, err);
	if (rc)
		return rc;

	uint32_t seq_len = w->meta.seq_len;
	uint8_t *b = w->rowbuf;
	for (uint32_t p = 0; p < seq_len; p++) {
		uint32_t t = (uint32_t)tokens[p];
		if (w->token_bytes == 2) {
			b[2 * p] = (uint8_t)t;
			b[2 * p + 1] = (uint8_t)(t >> 8);
		} else {
			put32(b + 4 * (size_t)p, t);
		}
	}
	size_t rowbytes = (size_t)seq_len * w->token_bytes;
	int e = 0;
	if (ft_out_write(w->out, b, rowbytes))
		e = EIO;
	w->tokens_crc = crc_update(w->tokens_crc, b, rowbytes);
	w->tokens_size += rowbytes;
	if (!e)
		e = spill_write(&w->mask, mask, seq_len);
	for (size_t i = 0; i < ndocs && !e; i++) {
		uint8_t d[DOC_SIZE];
		put64(d, docs[i].sample);
		put32(d + 8, (uint32_t)w->n_rows);
		put32(d + 12, docs[i].start);
		put32(d + 16, docs[i].len);
		put32(d + 20, docs[i].flags);
		e = spill_write(&w->docs, d, sizeof d);
	}
	uint8_t r[8];
	put64(r, w->n_docs + ndocs);
	if (!e)
		e = spill_write(&w->rows, r, sizeof r);
	if (e) {
		w->failed = true;
		return ft_err_set(err, FT_E_IO, "cannot write '%s': %s", w->path,
				  strerror(e == EIO && errno ? errno : e));
	}
	w->n_rows++;
	w->n_docs += ndocs;
	w->n_trained += trained;
	w->n_pad += pad;
	return FT_OK;
}

uint64_t ft_shard_writer_rows(const struct ft_shard_writer *w)
{
	return w->n_rows;
}

static int pad_to(struct ft_out *o, uint64_t *at, uint64_t to)
{
	static const uint8_t zero[FT_SHARD_ALIGN];
	size_t n = (size_t)(to - *at);
	*at = to;
	return n ? ft_out_write(o, zero, n) : 0;
}

int ft_shard_writer_commit(struct ft_shard_writer *w, struct ft_shard_header *hdr,
			   struct ft_err *err)
{
	if (w->failed) {
		ft_err_set(err, FT_E_IO, "cannot write '%s': an earlier write failed", w->path);
		ft_shard_writer_abort(w);
		return FT_E_IO;
	}
	struct ft_shard_header h;
	memset(&h, 0, sizeof h);
	h.version = FT_SHARD_VERSION;
	h.vocab_size = w->meta.vocab_size;
	h.token_bytes = w->token_bytes;
	h.seq_len = w->meta.seq_len;
	h.flags = w->meta.flags;
	h.n_rows = w->n_rows;
	h.n_docs = w->n_docs;
	h.n_trained = w->n_trained;
	h.n_pad = w->n_pad;
	h.pad_id = w->meta.pad_id;
	h.bos_id = w->meta.bos_id;
	h.eos_id = w->meta.eos_id;
	memcpy(h.tokenizer, w->meta.tokenizer, 32);

	uint64_t at = FT_SHARD_HEADER_SIZE + w->tokens_size;
	h.section[FT_SHARD_TOKENS] = (struct ft_shard_section_info){ FT_SHARD_HEADER_SIZE,
								      w->tokens_size, w->tokens_crc };
	struct spill *spills[] = { &w->mask, &w->docs, &w->rows };
	int e = 0;
	for (int i = 0; i < 3 && !e; i++) {
		uint64_t off = align_up(at);
		if (pad_to(w->out, &at, off)) {
			e = EIO;
			break;
		}
		h.section[FT_SHARD_MASK + i] =
			(struct ft_shard_section_info){ off, spills[i]->bytes, spills[i]->crc };
		e = spill_copy(spills[i], w->out);
		at += spills[i]->bytes;
	}
	if (e) {
		ft_err_set(err, FT_E_IO, "cannot write '%s': %s", w->path,
			   strerror(e == EIO && errno ? errno : e));
		ft_shard_writer_abort(w);
		return FT_E_IO;
	}
	uint8_t raw[FT_SHARD_HEADER_SIZE];
	header_encode(&h, raw);
	int rc = ft_out_pwrite(w->out, raw, sizeof raw, 0, err);
	if (rc) {
		ft_shard_writer_abort(w);
		return rc;
	}
	rc = ft_out_commit(w->out, err);
	w->out = NULL;
	writer_free(w);
	if (rc)
		return rc;
	if (hdr)
		*hdr = h;
	return FT_OK;
}

void ft_shard_writer_abort(struct ft_shard_writer *w)
{
	if (!w)
		return;
	ft_out_abort(w->out);
	writer_free(w);
}

/* ---- reader ------------------------------------------------------------------ */

static int shard_fail(struct ft_err *err, const char *path, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* An error about the file at path: err->file points at the caller's path. */
static int shard_fail(struct ft_err *err, const char *path, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	err->code = code;
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->file = path;
	err->line = err->col = 0;
	return code;
}

/* a * b into *r, false on overflow */
static bool mul_ok(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_mul_overflow(a, b, r);
}

static int check_layout(struct ft_shard *s, const char *path, uint64_t fsize, struct ft_err *err)
{
	struct ft_shard_header *h = &s->h;
	const uint8_t *p = s->map;

	if (memcmp(p, FT_SHARD_MAGIC, 8) != 0)
		return shard_fail(err, path, FT_E_DATA, "not an ft shard (bad magic)");
	if (h->version != FT_SHARD_VERSION)
		return shard_fail(err, path, FT_E_DATA,
				  "unsupported shard version %u (this ft reads version %d)",
				  h->version, FT_SHARD_VERSION);
	if (get32(p + 12) != FT_SHARD_HEADER_SIZE)
		return shard_fail(err, path, FT_E_DATA, "bad header size %u (expected %d)",
				  get32(p + 12), FT_SHARD_HEADER_SIZE);
	if (get32(p + HEADER_CRC_AT) != (uint32_t)crc32(0, p, HEADER_CRC_AT))
		return shard_fail(err, path, FT_E_DATA, "header crc32 mismatch (file is corrupt)");
	if (h->vocab_size == 0)
		return shard_fail(err, path, FT_E_DATA, "bad header: vocab_size is 0");
	if (h->token_bytes != token_width(h->vocab_size))
		return shard_fail(err, path, FT_E_DATA,
				  "bad header: token_bytes %u does not match vocab_size %u",
				  h->token_bytes, h->vocab_size);
	if (h->seq_len == 0)
		return shard_fail(err, path, FT_E_DATA, "bad header: seq_len is 0");
	if (!id_ok(h->pad_id, h->vocab_size) || !id_ok(h->bos_id, h->vocab_size) ||
	    !id_ok(h->eos_id, h->vocab_size))
		return shard_fail(err, path, FT_E_DATA,
				  "bad header: pad, bos or eos id outside the vocabulary");
	if (h->n_rows > (uint64_t)UINT32_MAX + 1)
		return shard_fail(err, path, FT_E_DATA, "bad header: %llu rows (at most %llu)",
				  (unsigned long long)h->n_rows, (unsigned long long)UINT32_MAX + 1);

	uint64_t positions, expect[FT_SHARD_NSECTIONS];
	if (!mul_ok(h->n_rows, h->seq_len, &positions) ||
	    !mul_ok(positions, h->token_bytes, &expect[FT_SHARD_TOKENS]))
		return shard_fail(err, path, FT_E_DATA, "bad header: %llu rows of %u tokens is too "
				  "large", (unsigned long long)h->n_rows, h->seq_len);
	expect[FT_SHARD_MASK] = positions;
	if (!mul_ok(h->n_docs, DOC_SIZE, &expect[FT_SHARD_DOCS]))
		return shard_fail(err, path, FT_E_DATA, "bad header: %llu documents is too large",
				  (unsigned long long)h->n_docs);
	expect[FT_SHARD_ROWS] = (h->n_rows + 1) * 8;  /* n_rows <= 2^32 */
	if (h->n_trained > positions || h->n_pad > positions)
		return shard_fail(err, path, FT_E_DATA, "bad header: more trained or padding "
				  "positions than the %llu positions", (unsigned long long)positions);

	uint64_t end = FT_SHARD_HEADER_SIZE;
	const char *prev = "header";
	for (int i = 0; i < FT_SHARD_NSECTIONS; i++) {
		const struct ft_shard_section_info *sec = &h->section[i];
		const char *name = section_names[i];
		if (sec->size != expect[i])
			return shard_fail(err, path, FT_E_DATA,
					  "section '%s': size %llu, expected %llu from the header",
					  name, (unsigned long long)sec->size,
					  (unsigned long long)expect[i]);
		if (sec->offset % FT_SHARD_ALIGN)
			return shard_fail(err, path, FT_E_DATA,
					  "section '%s': offset %llu is not %d-byte aligned", name,
					  (unsigned long long)sec->offset, FT_SHARD_ALIGN);
		if (sec->offset < end)
			return shard_fail(err, path, FT_E_DATA,
					  "section '%s': offset %llu overlaps the %s%s", name,
					  (unsigned long long)sec->offset, i ? "section " : "", prev);
		if (sec->offset > fsize || sec->size > fsize - sec->offset)
			return shard_fail(err, path, FT_E_DATA,
					  "section '%s' (offset %llu, %llu bytes) extends beyond the end "
					  "of the file (%llu bytes): file truncated?", name,
					  (unsigned long long)sec->offset, (unsigned long long)sec->size,
					  (unsigned long long)fsize);
		end = sec->offset + sec->size;
		prev = name;
	}
	if (fsize != end)
		return shard_fail(err, path, FT_E_DATA, "%llu unexpected bytes after the last section",
				  (unsigned long long)(fsize - end));

	s->tokens = p + h->section[FT_SHARD_TOKENS].offset;
	s->mask = p + h->section[FT_SHARD_MASK].offset;
	s->docs = (const struct ft_shard_doc *)(const void *)(p + h->section[FT_SHARD_DOCS].offset);
	s->rows = (const uint64_t *)(const void *)(p + h->section[FT_SHARD_ROWS].offset);

	/* rows and docs: the structure a trainer relies on */
	if (s->rows[0] != 0)
		return shard_fail(err, path, FT_E_DATA, "section 'rows': rows[0] is %llu, not 0",
				  (unsigned long long)s->rows[0]);
	if (s->rows[h->n_rows] != h->n_docs)
		return shard_fail(err, path, FT_E_DATA, "section 'rows': rows[%llu] is %llu, not the "
				  "%llu documents", (unsigned long long)h->n_rows,
				  (unsigned long long)s->rows[h->n_rows], (unsigned long long)h->n_docs);
	uint64_t doc_tokens = 0;
	for (uint64_t r = 0; r < h->n_rows; r++) {
		uint64_t a = s->rows[r], b = s->rows[r + 1];
		if (b < a || b > h->n_docs)
			return shard_fail(err, path, FT_E_DATA, "section 'rows': row %llu has documents "
					  "[%llu, %llu) out of order or range", (unsigned long long)r,
					  (unsigned long long)a, (unsigned long long)b);
		uint64_t at = 0;
		for (uint64_t i = a; i < b; i++) {
			const struct ft_shard_doc *d = &s->docs[i];
			if (d->row != r)
				return shard_fail(err, path, FT_E_DATA, "section 'docs': document %llu "
						  "says row %u, the rows section row %llu",
						  (unsigned long long)i, d->row, (unsigned long long)r);
			if (d->len == 0 || d->start > h->seq_len || d->len > h->seq_len - d->start ||
			    d->start < at)
				return shard_fail(err, path, FT_E_DATA, "section 'docs': document %llu "
						  "(start %u, %u tokens) is empty, overlaps another or "
						  "does not fit in seq_len %u", (unsigned long long)i,
						  d->start, d->len, h->seq_len);
			at = (uint64_t)d->start + d->len;
			doc_tokens += d->len;
		}
	}
	if (positions - doc_tokens != h->n_pad)
		return shard_fail(err, path, FT_E_DATA, "bad header: %llu padding positions, the "
				  "documents leave %llu", (unsigned long long)h->n_pad,
				  (unsigned long long)(positions - doc_tokens));
	return FT_OK;
}

/* FT_SHARD_VERIFY: section crcs, then the contents: ids in the vocabulary,
 * mask bytes 0 or 1, padding as the header says. */
static int check_contents(const struct ft_shard *s, const char *path, struct ft_err *err)
{
	const struct ft_shard_header *h = &s->h;
	for (int i = 0; i < FT_SHARD_NSECTIONS; i++) {
		const struct ft_shard_section_info *sec = &h->section[i];
		if (crc_update(0, s->map + sec->offset, sec->size) != sec->crc32)
			return shard_fail(err, path, FT_E_DATA,
					  "section '%s': crc32 mismatch (file is corrupt)",
					  section_names[i]);
	}
	/* the bytes no crc covers: alignment padding between sections */
	uint64_t at = FT_SHARD_HEADER_SIZE;
	for (int i = 0; i < FT_SHARD_NSECTIONS; i++) {
		for (uint64_t k = at; k < h->section[i].offset; k++)
			if (s->map[k])
				return shard_fail(err, path, FT_E_DATA, "nonzero padding byte at offset "
						  "%llu before section '%s' (file is corrupt)",
						  (unsigned long long)k, section_names[i]);
		at = h->section[i].offset + h->section[i].size;
	}
	uint64_t trained = 0;
	for (uint64_t r = 0; r < h->n_rows; r++) {
		uint64_t di = s->rows[r], dend = s->rows[r + 1];
		const uint8_t *mask = s->mask + r * h->seq_len;
		for (uint32_t p = 0; p < h->seq_len; p++) {
			while (di < dend && (uint64_t)s->docs[di].start + s->docs[di].len <= p)
				di++;
			bool in_doc = di < dend && s->docs[di].start <= p;
			uint32_t t = ft_shard_token(s, r, p);
			if (t >= h->vocab_size)
				return shard_fail(err, path, FT_E_DATA, "row %llu, position %u: token id "
						  "%u is outside the vocabulary (%u)", (unsigned long long)r,
						  p, t, h->vocab_size);
			if (mask[p] > 1)
				return shard_fail(err, path, FT_E_DATA, "row %llu, position %u: mask value "
						  "%u is not 0 or 1", (unsigned long long)r, p, mask[p]);
			if (!in_doc && (mask[p] || (int64_t)t != h->pad_id))
				return shard_fail(err, path, FT_E_DATA, "row %llu, position %u: padding "
						  "holds token %u, mask %u (expected pad id %d, mask 0)",
						  (unsigned long long)r, p, t, mask[p], h->pad_id);
			trained += mask[p];
		}
	}
	if (trained != h->n_trained)
		return shard_fail(err, path, FT_E_DATA, "bad header: %llu trained positions, the mask "
				  "has %llu", (unsigned long long)h->n_trained,
				  (unsigned long long)trained);
	return FT_OK;
}

int ft_shard_open(struct ft_shard **sp, const char *path, int flags, struct ft_err *err)
{
	*sp = NULL;
	struct ft_shard *s = calloc(1, sizeof *s);
	if (!s)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	s->path = strdup(path);
	if (!s->path) {
		free(s);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	/* O_NONBLOCK: a fifo must not hang the open; it fails the S_ISREG test */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int rc = shard_fail(err, path, FT_E_IO, "%s", strerror(errno));
		ft_shard_close(s);
		return rc;
	}
	struct stat st;
	int rc = FT_OK;
	if (fstat(fd, &st) != 0)
		rc = shard_fail(err, path, FT_E_IO, "%s", strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = shard_fail(err, path, FT_E_IO, "not a regular file");
	else if ((uint64_t)st.st_size < FT_SHARD_HEADER_SIZE)
		rc = shard_fail(err, path, FT_E_DATA, "too short for a shard (%lld bytes)",
				(long long)st.st_size);
	else if ((uint64_t)st.st_size > SIZE_MAX)
		rc = shard_fail(err, path, FT_E_TOOBIG, "too large to map");
	if (!rc) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			rc = shard_fail(err, path, FT_E_IO, "cannot map: %s", strerror(errno));
		else {
			s->map = m;
			s->map_len = (size_t)st.st_size;
		}
	}
	close(fd);
	if (!rc) {
		header_decode(s->map, &s->h);
		rc = check_layout(s, path, s->map_len, err);
	}
	if (!rc && (flags & FT_SHARD_VERIFY))
		rc = check_contents(s, path, err);
	if (rc) {
		ft_shard_close(s);
		return rc;
	}
	*sp = s;
	return FT_OK;
}

void ft_shard_close(struct ft_shard *s)
{
	if (!s)
		return;
	if (s->map)
		munmap((void *)s->map, s->map_len);
	free(s->path);
	free(s);
}

uint32_t ft_shard_header_crc(const struct ft_shard *s)
{
	return get32(s->map + HEADER_CRC_AT);
}

/* ---- sets and indexes -------------------------------------------------------- */

/* path resolved against the directory of base (a file name): absolute
 * paths stay as they are. malloc'd, NULL when out of memory. */
static char *resolve(const char *base, const char *path)
{
	const char *slash = strrchr(base, '/');
	if (path[0] == '/' || !slash)
		return strdup(path);
	size_t dl = (size_t)(slash - base) + 1, pl = strlen(path);
	char *r = malloc(dl + pl + 1);
	if (!r)
		return NULL;
	memcpy(r, base, dl);
	memcpy(r + dl, path, pl + 1);
	return r;
}

/* Shards of one set must agree on what their ids mean and on row shape. */
static int agree(const struct ft_shard *a, const struct ft_shard *b, const char *where,
		 struct ft_err *err)
{
	const char *what = NULL;
	if (memcmp(a->h.tokenizer, b->h.tokenizer, 32) != 0)
		what = "tokenizer";
	else if (a->h.vocab_size != b->h.vocab_size)
		what = "vocab_size";
	else if (a->h.token_bytes != b->h.token_bytes)
		what = "token_bytes";
	else if (a->h.seq_len != b->h.seq_len)
		what = "seq_len";
	if (!what)
		return FT_OK;
	return shard_fail(err, where, FT_E_DATA, "shard '%s' has a different %s than shard '%s'",
			  b->path, what, a->path);
}

static int set_add(struct ft_shard_set *set, struct ft_shard *s)
{
	struct ft_shard **n = realloc(set->shards, (set->n + 1) * sizeof *n);
	if (!n)
		return FT_E_NOMEM;
	set->shards = n;
	set->shards[set->n++] = s;
	set->n_rows += s->h.n_rows;
	set->n_docs += s->h.n_docs;
	set->n_trained += s->h.n_trained;
	set->n_pad += s->h.n_pad;
	return FT_OK;
}

static bool json_u64(const cJSON *o, const char *key, uint64_t *v)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!ft_json_is_int(n) || ft_json_int(n) < 0)
		return false;
	*v = (uint64_t)ft_json_int(n);
	return true;
}

static int read_file(const char *path, struct ft_buf *b, struct ft_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return shard_fail(err, path, FT_E_IO, "%s", strerror(errno));
	for (;;) {
		if (ft_buf_reserve(b, 65536)) {
			close(fd);
			return shard_fail(err, path, FT_E_TOOBIG, "index larger than %zu bytes",
					  INDEX_MAX);
		}
		ssize_t r = read(fd, b->data + b->len, 65536);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return shard_fail(err, path, FT_E_IO, "read error: %s", strerror(e));
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
		b->data[b->len] = 0;
	}
	close(fd);
	return FT_OK;
}

static int parse_hex32(const char *s, uint8_t out[32])
{
	if (!s || strlen(s) != 64)
		return -1;
	for (int i = 0; i < 64; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

static int open_index(struct ft_shard_set *set, const char *path, int flags, struct ft_err *err)
{
	struct ft_buf text;
	ft_buf_init(&text, INDEX_MAX);
	cJSON *root = NULL;
	int rc = read_file(path, &text, err);
	if (rc)
		goto out;
	if (text.len == 0) {
		rc = shard_fail(err, path, FT_E_DATA, "empty file: neither a shard nor an index");
		goto out;
	}
	struct ft_err jerr;
	ft_err_clear(&jerr);
	if (ft_json_parse(text.data, text.len, &root, &jerr)) {
		rc = shard_fail(err, path, FT_E_DATA, "neither a shard nor a shard index (invalid "
				"JSON at column %ld: %s)", jerr.col, jerr.msg);
		goto out;
	}
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
	if (!cJSON_IsObject(root) || !cJSON_IsString(fmt) ||
	    strcmp(fmt->valuestring, "ft-shard-index") != 0) {
		rc = shard_fail(err, path, FT_E_DATA,
				"neither a shard nor a shard index (no \"format\": \"ft-shard-index\")");
		goto out;
	}
	uint64_t version, seq_len, vocab, tb, rows, docs, trained, pad;
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
	const cJSON *shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
	uint8_t tokenizer[32];
	if (!json_u64(root, "version", &version) || version != 1) {
		rc = shard_fail(err, path, FT_E_DATA, "unsupported index version (this ft reads "
				"version 1)");
		goto out;
	}
	if (!json_u64(root, "seq_len", &seq_len) || !json_u64(root, "vocab_size", &vocab) ||
	    !json_u64(root, "token_bytes", &tb) || !json_u64(root, "rows", &rows) ||
	    !json_u64(root, "docs", &docs) || !json_u64(root, "trained", &trained) ||
	    !json_u64(root, "pad", &pad) || !cJSON_IsString(tok) ||
	    parse_hex32(tok->valuestring, tokenizer) || !cJSON_IsArray(shards)) {
		rc = shard_fail(err, path, FT_E_DATA, "bad index: seq_len, vocab_size, token_bytes, "
				"tokenizer, rows, docs, trained, pad and shards are required");
		goto out;
	}
	if (cJSON_GetArraySize(shards) == 0) {
		rc = shard_fail(err, path, FT_E_DATA, "bad index: no shards");
		goto out;
	}
	const cJSON *e;
	size_t i = 0;
	cJSON_ArrayForEach(e, shards) {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");
		uint64_t srows, sdocs, strained, sbytes, scrc;
		if (!cJSON_IsString(p) || !*p->valuestring || !json_u64(e, "rows", &srows) ||
		    !json_u64(e, "docs", &sdocs) || !json_u64(e, "trained", &strained) ||
		    !json_u64(e, "bytes", &sbytes) || !json_u64(e, "header_crc32", &scrc)) {
			rc = shard_fail(err, path, FT_E_DATA, "bad index: shard %zu needs path, rows, "
					"docs, trained, bytes and header_crc32", i);
			goto out;
		}
		char *sp = resolve(path, p->valuestring);
		if (!sp) {
			rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
			goto out;
		}
		struct ft_shard *s;
		struct ft_err serr;
		ft_err_clear(&serr);
		rc = ft_shard_open(&s, sp, flags, &serr);
		if (rc) {
			rc = shard_fail(err, path, rc, "shard '%s': %s", sp, serr.msg);
			free(sp);
			goto out;
		}
		free(sp);
		if (set_add(set, s)) {
			ft_shard_close(s);
			rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
			goto out;
		}
		const char *what = NULL;
		uint64_t want = 0, have = 0;
		if (srows != s->h.n_rows)
			what = "rows", want = srows, have = s->h.n_rows;
		else if (sdocs != s->h.n_docs)
			what = "docs", want = sdocs, have = s->h.n_docs;
		else if (strained != s->h.n_trained)
			what = "trained", want = strained, have = s->h.n_trained;
		else if (sbytes != s->map_len)
			what = "bytes", want = sbytes, have = s->map_len;
		else if (scrc != ft_shard_header_crc(s))
			what = "header_crc32", want = scrc, have = ft_shard_header_crc(s);
		if (what) {
			rc = shard_fail(err, path, FT_E_DATA, "shard '%s': the index says %s %llu, the "
					"shard has %llu (the shard changed after the index was written)",
					s->path, what, (unsigned long long)want,
					(unsigned long long)have);
			goto out;
		}
		if (set->n > 1 && (rc = agree(set->shards[0], s, path, err)))
			goto out;
		i++;
	}
	const struct ft_shard *s0 = set->shards[0];
	if (memcmp(s0->h.tokenizer, tokenizer, 32) != 0 || s0->h.seq_len != seq_len ||
	    s0->h.vocab_size != vocab || s0->h.token_bytes != tb) {
		rc = shard_fail(err, path, FT_E_DATA, "the index's tokenizer, seq_len, vocab_size or "
				"token_bytes differ from its shards'");
		goto out;
	}
	if (rows != set->n_rows || docs != set->n_docs || trained != set->n_trained ||
	    pad != set->n_pad) {
		rc = shard_fail(err, path, FT_E_DATA, "the index's totals (rows, docs, trained, pad) "
				"differ from its shards'");
		goto out;
	}
	rc = FT_OK;
out:
	cJSON_Delete(root);
	ft_buf_release(&text);
	return rc;
}

int ft_shard_set_open(struct ft_shard_set *set, const char *path, int flags, struct ft_err *err)
{
	memset(set, 0, sizeof *set);
	uint8_t magic[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return shard_fail(err, path, FT_E_IO, "%s", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return shard_fail(err, path, FT_E_IO, "%s", strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return shard_fail(err, path, FT_E_IO, "%s",
				  S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file");
	}
	ssize_t n;
	do
		n = read(fd, magic, sizeof magic);
	while (n < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (n < 0)
		return shard_fail(err, path, FT_E_IO, "read error: %s", strerror(e));
	int rc;
	if (n == (ssize_t)sizeof magic && memcmp(magic, FT_SHARD_MAGIC, 8) == 0) {
		struct ft_shard *s;
		rc = ft_shard_open(&s, path, flags, err);
		if (!rc && set_add(set, s)) {
			ft_shard_close(s);
			rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
		}
	} else {
		rc = open_index(set, path, flags, err);
	}
	if (!rc) {
		set->first_row = malloc((set->n + 1) * sizeof *set->first_row);
		if (!set->first_row) {
			rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
		} else {
			uint64_t at = 0;
			for (size_t i = 0; i < set->n; i++) {
				set->first_row[i] = at;
				at += set->shards[i]->h.n_rows;
			}
			set->first_row[set->n] = at;
		}
	}
	if (rc)
		ft_shard_set_release(set);
	return rc;
}

void ft_shard_set_release(struct ft_shard_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		ft_shard_close(set->shards[i]);
	free(set->shards);
	free(set->first_row);
	memset(set, 0, sizeof *set);
}

const struct ft_shard *ft_shard_set_row(const struct ft_shard_set *set, uint64_t r,
					uint64_t *local)
{
	if (r >= set->n_rows || set->n == 0)
		return NULL;
	if (!set->first_row) {
		for (size_t i = 0; i < set->n; i++) {
			if (r < set->shards[i]->h.n_rows) {
				*local = r;
				return set->shards[i];
			}
			r -= set->shards[i]->h.n_rows;
		}
		return NULL;
	}
	/* the last shard whose first row is <= r (empty shards skipped) */
	size_t lo = 0, hi = set->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (set->first_row[mid] <= r)
			lo = mid;
		else
			hi = mid;
	}
	*local = r - set->first_row[lo];
	return set->shards[lo];
}

int ft_shard_index_write(const char *path, const char *const *shards, size_t n,
			 struct ft_err *err)
{
	if (n == 0)
		return ft_err_set(err, FT_E_INVAL, "an index needs at least one shard");
	struct ft_shard **open = calloc(n, sizeof *open);
	if (!open)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	struct ft_buf b;
	ft_buf_init(&b, 0);
	int rc = FT_OK;
	uint64_t rows = 0, docs = 0, trained = 0, pad = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		char *sp = resolve(path, shards[i]);
		if (!sp) {
			rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
			break;
		}
		struct ft_err serr;
		ft_err_clear(&serr);
		rc = ft_shard_open(&open[i], sp, 0, &serr);
		if (rc)
			shard_fail(err, path, rc, "shard '%s': %s", sp, serr.msg);
		else if (i > 0)
			rc = agree(open[0], open[i], path, err);
		free(sp);
		if (!rc) {
			rows += open[i]->h.n_rows;
			docs += open[i]->h.n_docs;
			trained += open[i]->h.n_trained;
			pad += open[i]->h.n_pad;
		}
	}
	if (!rc) {
		const struct ft_shard_header *h = &open[0]->h;
		char hex[65];
		ft_sha256_hex(h->tokenizer, hex);
		rc = ft_buf_printf(&b, "{\"format\":\"ft-shard-index\",\"version\":1,\"seq_len\":%u,"
				   "\"vocab_size\":%u,\"token_bytes\":%u,\"tokenizer\":\"%s\","
				   "\"rows\":%llu,\"docs\":%llu,\"trained\":%llu,\"pad\":%llu,"
				   "\"shards\":[", h->seq_len, h->vocab_size, h->token_bytes, hex,
				   (unsigned long long)rows, (unsigned long long)docs,
				   (unsigned long long)trained, (unsigned long long)pad);
		for (size_t i = 0; i < n && !rc; i++) {
			const struct ft_shard *s = open[i];
			rc = ft_buf_puts(&b, i ? ",\n{\"path\":" : "\n{\"path\":");
			if (!rc)
				rc = ft_json_write_string(&b, shards[i], strlen(shards[i]));
			if (!rc)
				rc = ft_buf_printf(&b, ",\"rows\":%llu,\"docs\":%llu,\"trained\":%llu,"
						   "\"bytes\":%llu,\"header_crc32\":%u}",
						   (unsigned long long)s->h.n_rows,
						   (unsigned long long)s->h.n_docs,
						   (unsigned long long)s->h.n_trained,
						   (unsigned long long)s->map_len, ft_shard_header_crc(s));
		}
		if (!rc)
			rc = ft_buf_puts(&b, "\n]}\n");
		if (rc)
			rc = ft_err_set(err, rc, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		ft_shard_close(open[i]);
	free(open);
	if (!rc) {
		struct ft_out *o;
		rc = ft_out_open(&o, path, err);
		if (!rc) {
			if (ft_out_write(o, b.data, b.len)) {
				/* the error is sticky: commit reports it */
			}
			rc = ft_out_commit(o, err);
		}
	}
	ft_buf_release(&b);
	return rc;
}
