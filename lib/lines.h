/* lines.h: a batch of input lines as the parallel JSONL tools (ft-template,
 * ft-tokenize) hand them to their workers: the lines' bytes in one buffer,
 * where each came from, and the read errors met between them, kept in
 * input order so a worker reports them where they stand. A batch is
 * reused: reset, refill. Errors: 0 or FT_E_NOMEM. */
#ifndef FT_LINES_H
#define FT_LINES_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "ft.h"

struct ft_line {
	size_t off, len;            /* the line in text */
	const char *file;
	long lineno, col_offset;
	unsigned long long recno;   /* 1-based, across files */
	int err;                    /* index into errs for a read error, else -1 */
};

struct ft_lines {
	struct ft_buf text;
	struct ft_line *e;
	int n, cap;
	struct ft_err *errs;
	int nerrs;
	bool fatal_at_end;          /* the last entry is an unrecoverable read error */
};

void ft_lines_init(struct ft_lines *l);
void ft_lines_release(struct ft_lines *l);
void ft_lines_reset(struct ft_lines *l);
int ft_lines_add(struct ft_lines *l, const char *line, size_t len, const char *file,
		 long lineno, long col_offset, unsigned long long recno);
/* A read error in place of record recno; fatal: nothing follows it. */
int ft_lines_add_error(struct ft_lines *l, const struct ft_err *err, unsigned long long recno,
		       bool fatal);
static inline bool ft_lines_full(const struct ft_lines *l, int max_lines, size_t max_bytes)
{
	return l->n >= max_lines || l->text.len >= max_bytes;
}

#endif
