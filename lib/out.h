/* out.h: buffered output files written atomically.
 * A named output goes to a temporary file in the same directory
 * (".NAME.tmp-XXXXXX") and only becomes NAME on ft_out_commit(), after fsync
 * and rename, so a failed run never leaves a file that looks complete. "-" or
 * NULL writes to stdout (committed = flushed and checked). ft_out_abort()
 * removes the temporary file; ft_out_abort_all() does it for every open output
 * (tools call it before exiting on error). Write errors are sticky and
 * reported at commit. */
#ifndef FT_OUT_H
#define FT_OUT_H

#include <stddef.h>

#include "ft.h"

struct ft_out;

int ft_out_open(struct ft_out **o, const char *path, struct ft_err *err);
int ft_out_write(struct ft_out *o, const void *p, size_t n);
int ft_out_puts(struct ft_out *o, const char *s);
/* Flush and fsync without committing, to check for write errors before any
 * of several outputs is renamed into place; the output stays open. */
int ft_out_sync(struct ft_out *o, struct ft_err *err);
/* Flush, fsync, rename into place; frees o. */
int ft_out_commit(struct ft_out *o, struct ft_err *err);
/* Drop the output (temporary file removed); frees o. */
void ft_out_abort(struct ft_out *o);
void ft_out_abort_all(void);
const char *ft_out_name(const struct ft_out *o);  /* "<stdout>" for stdout */
/* Write p[0..n) at byte offset off of a named output, after flushing what is
 * buffered (a header patched in before commit); the append position is not
 * moved. Fails on stdout and on outputs that cannot seek (a fifo). */
int ft_out_pwrite(struct ft_out *o, const void *p, size_t n, unsigned long long off,
		  struct ft_err *err);

#endif
