/* jsonl.c: JSON Lines reader. Input is read in 1 MiB chunks with read(2),
 * inflated with zlib when it starts with the gzip magic (RFC 1952; members
 * may be concatenated, as gzip itself allows), and cut into lines with
 * memchr in one growable buffer, so a line is handed out without copying
 * unless it straddles two chunks. */
#include "jsonl.h"
#include "buf.h"
#include "json.h"
#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#define CHUNK ((size_t)1 << 20)
#define MIN_READ ((size_t)64 << 10)

struct ft_jsonl_reader {
	int fd;
	bool own_fd;
	const char *path;      /* for err->file: the caller's string, "-" for stdin */
	const char *name;      /* for ft_jsonl_name(): "<stdin>" for stdin */
	unsigned flags;
	size_t max_line;

	/* decoded text: [start, end) is unconsumed, no '\n' in [start, scan) */
	char *buf;
	size_t cap, start, scan, end;
	bool eof;              /* no more decoded text will come */
	bool started;          /* the gzip check has been made */
	bool skipping;         /* inside a line longer than max_line */

	/* gzip */
	bool gz;
	bool z_live;           /* z is initialised */
	bool z_end;            /* the last member ended exactly at end of input */
	z_stream z;
	unsigned char *raw;
	bool raw_eof;
	unsigned long long bytes_in;

	long phys_line;        /* lines read so far */
	long lineno;           /* line of the last line returned */
	const char *line;      /* last line returned, without line end and BOM */
	size_t line_len;
	size_t bom;            /* 3 if the last line lost a BOM, for columns */

	int io_code;           /* sticky I/O failure */
	char io_msg[256];
	struct ft_buf nfc;
};

int ft_jsonl_open_fd(struct ft_jsonl_reader **rp, int fd, const char *name, unsigned flags,
		     size_t max_line, struct ft_err *err)
{
	*rp = NULL;
	struct ft_jsonl_reader *r = calloc(1, sizeof *r);
	if (!r)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	r->fd = fd;
	r->path = name ? name : "-";
	r->name = strcmp(r->path, "-") == 0 ? "<stdin>" : r->path;
	r->flags = flags;
	r->max_line = max_line ? max_line : FT_JSONL_MAX_LINE_DEFAULT;
	if (r->max_line > SIZE_MAX / 4)
		r->max_line = SIZE_MAX / 4;
	r->cap = CHUNK;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		if (err)
			err->file = name;
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	ft_buf_init(&r->nfc, 0);
	*rp = r;
	return FT_OK;
}

int ft_jsonl_open(struct ft_jsonl_reader **rp, const char *path, unsigned flags,
		  size_t max_line, struct ft_err *err)
{
	*rp = NULL;
	if (!path || strcmp(path, "-") == 0)
		return ft_jsonl_open_fd(rp, STDIN_FILENO, "-", flags, max_line, err);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (err) {
			err->file = path;
			err->line = 0;
			err->col = 0;
		}
		return ft_err_set(err, FT_E_IO, "%s", strerror(e));
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);  /* a hint: failure is fine */
	int rc = ft_jsonl_open_fd(rp, fd, path, flags, max_line, err);
	if (rc) {
		close(fd);
		return rc;
	}
	(*rp)->own_fd = true;
	return FT_OK;
}

void ft_jsonl_close(struct ft_jsonl_reader *r)
{
	if (!r)
		return;
	if (r->own_fd)
		close(r->fd);
	if (r->z_live)
		inflateEnd(&r->z);
	free(r->raw);
	free(r->buf);
	ft_buf_release(&r->nfc);
	free(r);
}

const char *ft_jsonl_name(const struct ft_jsonl_reader *r)
{
	return r->name;
}

long ft_jsonl_lineno(const struct ft_jsonl_reader *r)
{
	return r->lineno;
}

long ft_jsonl_col_offset(const struct ft_jsonl_reader *r)
{
	return (long)r->bom;
}

const char *ft_jsonl_line(const struct ft_jsonl_reader *r, size_t *len)
{
	if (len)
		*len = r->line_len;
	return r->line;
}

unsigned long long ft_jsonl_bytes(const struct ft_jsonl_reader *r)
{
	return r->bytes_in;
}

/* Set err's location to line (and col when > 0) of this input. */
static int fail(struct ft_jsonl_reader *r, struct ft_err *err, long line, long col, int code,
		const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int fail(struct ft_jsonl_reader *r, struct ft_err *err, long line, long col, int code,
		const char *fmt, ...)
{
	r->lineno = line;
	if (!err)
		return code;
	err->code = code;
	err->file = r->path;
	err->line = line;
	err->col = col;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return code;
}

/* A broken gzip stream breaks at the line being read; a failed read(2)
 * concerns the whole file. */
static long io_line(const struct ft_jsonl_reader *r)
{
	return r->gz ? r->phys_line + 1 : 0;
}

/* I/O failures end the input: remember the message for later calls. */
static void io_pending(struct ft_jsonl_reader *r, const char *msg)
{
	r->io_code = FT_E_IO;
	snprintf(r->io_msg, sizeof r->io_msg, "%s", msg);
}

static int io_fail(struct ft_jsonl_reader *r, struct ft_err *err, const char *msg)
{
	io_pending(r, msg);
	return fail(r, err, io_line(r), 0, FT_E_IO, "%s", msg);
}

/* An error after made > 0 new bytes: hand out the bytes first. */
static long io_fail_after(struct ft_jsonl_reader *r, struct ft_err *err, size_t made,
			  const char *msg)
{
	if (!made)
		return io_fail(r, err, msg);
	io_pending(r, msg);
	r->end += made;
	return (long)made;
}

/* read(2) up to n bytes, through EINTR. Returns bytes read, 0 at EOF, -errno. */
static ssize_t read_some(int fd, void *p, size_t n)
{
	for (;;) {
		ssize_t got = read(fd, p, n);
		if (got >= 0)
			return got;
		if (errno != EINTR)
			return -errno;
	}
}

/* Refill the raw (compressed) buffer behind whatever input zlib has not
 * consumed yet. Returns bytes added, 0 at EOF, or -errno. */
static ssize_t raw_refill(struct ft_jsonl_reader *r)
{
	if (r->z.avail_in && r->z.next_in != r->raw)
		memmove(r->raw, r->z.next_in, r->z.avail_in);
	r->z.next_in = r->raw;
	ssize_t got = read_some(r->fd, r->raw + r->z.avail_in, CHUNK - r->z.avail_in);
	if (got > 0) {
		r->z.avail_in += (uInt)got;
		r->bytes_in += (unsigned long long)got;
	} else if (got == 0) {
		r->raw_eof = true;
	}
	return got;
}

/* Inflate into buf[end..cap). Returns bytes produced, 0 at the end of the
 * input, or an FT_E_* code. */
static long inflate_some(struct ft_jsonl_reader *r, struct ft_err *err)
{
	char msg[160];
	for (;;) {
		if (r->z_end)
			return 0;
		if (r->z.avail_in == 0 && !r->raw_eof) {
			ssize_t got = raw_refill(r);
			if (got < 0) {
				snprintf(msg, sizeof msg, "read error: %s", strerror((int)-got));
				return io_fail(r, err, msg);
			}
		}
		r->z.next_out = (Bytef *)r->buf + r->end;
		r->z.avail_out = (uInt)(r->cap - r->end);
		int zrc = inflate(&r->z, Z_NO_FLUSH);
		size_t made = r->cap - r->end - r->z.avail_out;
		switch (zrc) {
		case Z_OK:
			break;
		case Z_STREAM_END:
			/* another member may follow; anything else is an error,
			 * not something to drop in silence */
			while (r->z.avail_in < 2 && !r->raw_eof) {
				ssize_t got = raw_refill(r);
				if (got < 0) {
					snprintf(msg, sizeof msg, "read error: %s", strerror((int)-got));
					return io_fail_after(r, err, made, msg);
				}
			}
			if (r->z.avail_in == 0) {
				r->z_end = true;
			} else if (r->z.avail_in >= 2 && r->z.next_in[0] == 0x1f &&
				   r->z.next_in[1] == 0x8b) {
				if (inflateReset(&r->z) != Z_OK)
					return io_fail_after(r, err, made, "cannot restart gzip stream");
			} else {
				return io_fail_after(r, err, made, "trailing garbage after gzip data");
			}
			break;
		case Z_BUF_ERROR:
			/* no progress: zlib wants input that will never come */
			if (r->z.avail_in == 0 && r->raw_eof)
				return io_fail(r, err, "truncated gzip stream");
			break;
		case Z_MEM_ERROR:
			return fail(r, err, r->phys_line + 1, 0, FT_E_NOMEM, "out of memory");
		default:
			snprintf(msg, sizeof msg, "invalid gzip data: %s",
				 r->z.msg ? r->z.msg : "unknown error");
			return io_fail_after(r, err, made, msg);
		}
		if (made) {
			r->end += made;
			return (long)made;
		}
		if (zrc == Z_OK && r->z.avail_in == 0 && r->raw_eof)
			return io_fail(r, err, "truncated gzip stream");
	}
}

/* Add decoded text at buf[end..cap). Returns bytes added, 0 at the end of
 * the input, or an FT_E_* code. */
static long fill(struct ft_jsonl_reader *r, struct ft_err *err)
{
	char msg[160];
	if (r->io_code)
		return fail(r, err, io_line(r), 0, r->io_code, "%s", r->io_msg);
	if (r->gz)
		return inflate_some(r, err);

	ssize_t got = read_some(r->fd, r->buf + r->end, r->cap - r->end);
	if (got < 0) {
		snprintf(msg, sizeof msg, "read error: %s", strerror((int)-got));
		return io_fail(r, err, msg);
	}
	r->bytes_in += (unsigned long long)got;
	if (!r->started) {
		/* the gzip magic needs two bytes: a read of one is possible on pipes */
		while (got == 1 && r->end == 0) {
			ssize_t more = read_some(r->fd, r->buf + 1, r->cap - 1);
			if (more < 0) {
				snprintf(msg, sizeof msg, "read error: %s", strerror((int)-more));
				return io_fail(r, err, msg);
			}
			if (more == 0)
				break;
			r->bytes_in += (unsigned long long)more;
			got += more;
		}
		r->started = true;
		if (got >= 2 && (unsigned char)r->buf[0] == 0x1f &&
		    (unsigned char)r->buf[1] == 0x8b) {
			/* what was read is compressed: hand it to zlib */
			r->raw = malloc(CHUNK);
			if (!r->raw)
				return fail(r, err, 1, 0, FT_E_NOMEM, "out of memory");
			memcpy(r->raw, r->buf, (size_t)got);
			memset(&r->z, 0, sizeof r->z);
			if (inflateInit2(&r->z, 16 + MAX_WBITS) != Z_OK)
				return fail(r, err, 1, 0, FT_E_NOMEM, "out of memory");
			r->z_live = true;
			r->gz = true;
			r->z.next_in = r->raw;
			r->z.avail_in = (uInt)got;
			return inflate_some(r, err);
		}
	}
	r->end += (size_t)got;
	return got;
}

/* Make room for at least MIN_READ more bytes after end, moving the
 * unconsumed part to the front and growing the buffer as a long line needs
 * (never past max_line plus slack). */
static int make_room(struct ft_jsonl_reader *r)
{
	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->scan -= r->start;
		r->start = 0;
	}
	if (r->cap - r->end >= MIN_READ)
		return FT_OK;
	size_t limit = r->max_line + 2 + MIN_READ;
	size_t cap = r->cap * 2;
	if (cap < r->cap || cap > limit)
		cap = limit;
	if (cap <= r->cap)
		return FT_OK;
	char *p = realloc(r->buf, cap);
	if (!p)
		return FT_E_NOMEM;
	r->buf = p;
	r->cap = cap;
	return FT_OK;
}

static int too_long(struct ft_jsonl_reader *r, struct ft_err *err)
{
	r->line = NULL;
	r->line_len = 0;
	return fail(r, err, r->phys_line, 0, FT_E_TOOBIG, "line longer than %zu bytes",
		    r->max_line);
}

/* The next physical line into r->line (CR stripped). Returns 1, 0 at end of
 * input, or an FT_E_* code (FT_E_TOOBIG after the whole long line has been
 * consumed, so the next call goes on with the line after it). */
static int read_line(struct ft_jsonl_reader *r, struct ft_err *err)
{
	for (;;) {
		char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
		if (nl || (r->eof && (r->start < r->end || r->skipping))) {
			size_t stop = nl ? (size_t)(nl - r->buf) : r->end;
			const char *p = r->buf + r->start;
			size_t len = stop - r->start;
			r->start = r->scan = nl ? stop + 1 : stop;
			r->phys_line++;
			if (len && p[len - 1] == '\r')
				len--;
			if (r->skipping || len > r->max_line) {
				r->skipping = false;
				return too_long(r, err);
			}
			r->line = p;
			r->line_len = len;
			return 1;
		}
		if (r->eof)
			return 0;
		r->scan = r->end;
		if (r->end - r->start > r->max_line + 1) {
			/* keep none of it: we only need to find where it ends */
			r->skipping = true;
			r->start = r->scan = r->end = 0;
		}
		if (make_room(r))
			return fail(r, err, r->phys_line + 1, 0, FT_E_NOMEM, "out of memory");
		long got = fill(r, err);
		if (got < 0)
			return (int)got;
		if (got == 0)
			r->eof = true;
	}
}

static bool blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

int ft_jsonl_next_line(struct ft_jsonl_reader *r, const char **line, size_t *len,
		       struct ft_err *err)
{
	for (;;) {
		int rc = read_line(r, err);
		if (rc <= 0)
			return rc;
		const char *p = r->line;
		size_t n = r->line_len;
		r->bom = 0;
		if (r->phys_line == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
			p += 3;
			n -= 3;
			r->bom = 3;
			r->line = p;
			r->line_len = n;
		}
		if (n == 0 || ((*p == ' ' || *p == '\t' || *p == '\r') && blank(p, n)))
			continue;
		const char *nul = memchr(p, 0, n);
		if (nul)
			return fail(r, err, r->phys_line, (long)(nul - p + 1 + r->bom), FT_E_PARSE,
				    "NUL byte at column %ld", (long)(nul - p + 1 + r->bom));
		size_t bad;
		if (!ft_utf8_valid(p, n, &bad))
			return fail(r, err, r->phys_line, (long)(bad + 1 + r->bom), FT_E_UTF8,
				    "invalid UTF-8 at column %ld", (long)(bad + 1 + r->bom));
		r->lineno = r->phys_line;
		*line = p;
		*len = n;
		return 1;
	}
}

/* Replace the cJSON string *s by its NFC form when that differs. */
static int nfc_string(struct ft_buf *tmp, char **s)
{
	size_t len = strlen(*s);
	if (ft_utf8_is_nfc(*s, len))
		return FT_OK;
	ft_buf_reset(tmp);
	int rc = ft_utf8_nfc(*s, len, tmp);
	if (rc)
		return rc;
	char *copy = cJSON_malloc(tmp->len + 1);
	if (!copy)
		return FT_E_NOMEM;
	memcpy(copy, tmp->data, tmp->len + 1);
	cJSON_free(*s);
	*s = copy;
	return FT_OK;
}

static int nfc_tree(struct ft_buf *tmp, cJSON *node)
{
	for (; node; node = node->next) {
		int rc = FT_OK;
		if (node->string && !(node->type & cJSON_StringIsConst))
			rc = nfc_string(tmp, &node->string);
		if (!rc && (node->type & 0xFF) == cJSON_String && node->valuestring)
			rc = nfc_string(tmp, &node->valuestring);
		if (!rc && node->child)
			rc = nfc_tree(tmp, node->child);
		if (rc)
			return rc;
	}
	return FT_OK;
}

int ft_jsonl_next(struct ft_jsonl_reader *r, cJSON **rec, struct ft_err *err)
{
	*rec = NULL;
	const char *p;
	size_t n;
	int rc = ft_jsonl_next_line(r, &p, &n, err);
	if (rc <= 0)
		return rc;
	return ft_jsonl_parse_line(r, rec, err);
}

int ft_jsonl_parse(const char *line, size_t len, unsigned flags, long col_offset, cJSON **rec,
		   struct ft_err *err)
{
	*rec = NULL;
	/* cJSON skips a BOM before the value; only the input's first may be */
	if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
		if (err)
			err->col = 1 + col_offset;
		return ft_err_set(err, FT_E_PARSE,
				  "invalid JSON at column %ld: unexpected byte order mark",
				  1 + col_offset);
	}
	cJSON *v;
	int rc = ft_json_parse(line, len, &v, err);
	if (rc) {
		if (rc != FT_E_PARSE)
			return rc;
		char reason[FT_ERR_MSG];
		snprintf(reason, sizeof reason, "%s", err ? err->msg : "unknown error");
		long col = (err && err->col > 0 ? err->col : 1) + col_offset;
		if (err)
			err->col = col;
		return ft_err_set(err, FT_E_PARSE, "invalid JSON at column %ld: %.900s", col, reason);
	}
	if (!cJSON_IsObject(v)) {
		cJSON_Delete(v);
		if (err)
			err->col = 1 + col_offset;
		return ft_err_set(err, FT_E_DATA, "not a JSON object");
	}
	if (flags & FT_JSONL_NFC) {
		struct ft_buf tmp;
		ft_buf_init(&tmp, 0);
		rc = nfc_tree(&tmp, v);
		ft_buf_release(&tmp);
		if (rc) {
			cJSON_Delete(v);
			return ft_err_set(err, rc, "%s", rc == FT_E_NOMEM ?
					  "out of memory" : "cannot normalise a string to NFC");
		}
	}
	*rec = v;
	return 1;
}

int ft_jsonl_parse_line(struct ft_jsonl_reader *r, cJSON **rec, struct ft_err *err)
{
	*rec = NULL;
	if (!r->line)
		return fail(r, err, r->lineno, 0, FT_E_INVAL, "no line to parse");
	int rc = ft_jsonl_parse(r->line, r->line_len, r->flags, (long)r->bom, rec, err);
	if (rc < 0 && err) {
		err->file = r->path;
		err->line = r->lineno;
	}
	return rc;
}
