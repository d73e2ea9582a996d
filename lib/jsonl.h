/* jsonl.h: a JSON Lines reader that knows where it is.
 * Reads a file or stdin ("-" or NULL), gzip transparently (by content, not
 * name), one record per line. Each line is checked for NUL bytes and valid
 * UTF-8, a UTF-8 BOM is accepted at the start of the input only, CRLF line
 * ends are accepted, blank lines are skipped (they are not records). Every
 * error carries file and line in struct ft_err. After a record-level error
 * (FT_E_PARSE, FT_E_UTF8, FT_E_TOOBIG for one line) the reader can go on with
 * the next line; after FT_E_IO (including a truncated gzip stream) it cannot.
 * The reader owns the line buffer; the caller owns each returned cJSON tree. */
#ifndef FT_JSONL_H
#define FT_JSONL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "ft.h"

struct ft_jsonl_reader;

enum ft_jsonl_flags {
	FT_JSONL_NFC = 1 << 0,   /* NFC-normalise every string and key */
};

#define FT_JSONL_MAX_LINE_DEFAULT ((size_t)1 << 30)  /* 1 GiB */

/* Open path ("-" or NULL = stdin). max_line: longest accepted line in bytes
 * (0 = FT_JSONL_MAX_LINE_DEFAULT). err->file points to the caller's path
 * string, so it must outlive the reader. */
int ft_jsonl_open(struct ft_jsonl_reader **r, const char *path, unsigned flags,
		  size_t max_line, struct ft_err *err);
/* Read an open descriptor from its current offset; name is used in errors
 * ("-" for stdin). The descriptor stays the caller's (not closed). */
int ft_jsonl_open_fd(struct ft_jsonl_reader **r, int fd, const char *name, unsigned flags,
		     size_t max_line, struct ft_err *err);

/* Next record: returns 1 and sets *rec, 0 at end of input, or a negative
 * FT_E_* code with err->file/err->line set. */
int ft_jsonl_next(struct ft_jsonl_reader *r, cJSON **rec, struct ft_err *err);

/* Parse the line last returned by ft_jsonl_next_line() as ft_jsonl_next()
 * would (same checks, same errors); for callers that try a faster path
 * first. Returns 1 and sets *rec, or an FT_E_* code. */
int ft_jsonl_parse_line(struct ft_jsonl_reader *r, cJSON **rec, struct ft_err *err);
/* The same checks on a line handed over (e.g. to a worker thread): returns 1
 * and sets *rec, or an error with err->col set (col_offset added, for a BOM
 * stripped from the line) but not err->file/line. */
int ft_jsonl_parse(const char *line, size_t len, unsigned flags, long col_offset, cJSON **rec,
		   struct ft_err *err);

/* Next raw line without parsing (UTF-8/NUL checks still apply): returns 1 and
 * sets *line and *len (valid until the next call), 0 at end, or an error. */
int ft_jsonl_next_line(struct ft_jsonl_reader *r, const char **line, size_t *len,
		       struct ft_err *err);

const char *ft_jsonl_name(const struct ft_jsonl_reader *r);  /* "<stdin>" for stdin */
long ft_jsonl_lineno(const struct ft_jsonl_reader *r);       /* line of the last record */
/* Bytes stripped from the front of the last line (a BOM), for columns. */
long ft_jsonl_col_offset(const struct ft_jsonl_reader *r);
/* The raw text of the last line returned (without line end). */
const char *ft_jsonl_line(const struct ft_jsonl_reader *r, size_t *len);
/* Compressed or plain bytes consumed so far (for progress). */
unsigned long long ft_jsonl_bytes(const struct ft_jsonl_reader *r);
void ft_jsonl_close(struct ft_jsonl_reader *r);

#endif
