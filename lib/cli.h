/* cli.h: what every ft tool shares on its command line. This module is the
 * tools' side of lib/: it is the only one that prints and exits.
 * Exit codes: 0 success, 1 data error, 2 usage error. Messages go to stderr
 * as "tool: reason" or "tool: file:line: reason". */
#ifndef FT_CLI_H
#define FT_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ft.h"

#define FT_VERSION "0.1.0"

enum { FT_EXIT_OK = 0, FT_EXIT_DATA = 1, FT_EXIT_USAGE = 2 };

extern const char *ft_progname;

void ft_cli_init(const char *progname);

/* "tool: reason\n" on stderr */
void ft_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ft_warn, remove uncommitted outputs, exit(status) */
_Noreturn void ft_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "tool: reason\nTry 'tool --help' for more information.\n", exit 2 */
_Noreturn void ft_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print an ft_err as "tool: file:line: reason" (location parts only if set),
 * with an optional prefix before the reason (e.g. "record 'x': "). */
void ft_report(const struct ft_err *err, const char *prefix);

/* Strict number parsing for option values; on failure: usage error naming opt. */
long ft_opt_long(const char *opt, const char *s, long min, long max);
double ft_opt_double(const char *opt, const char *s, double min, double max);
/* An unsigned 64-bit integer (seeds): digits only, 0 to 2^64-1. */
uint64_t ft_opt_u64(const char *opt, const char *s);
/* The option getopt_long just refused, for "unknown option '%s'" (with
 * opterr = 0): "--name" without its "=value", or "-c" for a short one.
 * arg is argv[optind - 1]; the result is a static buffer. */
const char *ft_opt_name(const char *arg);
/* Sizes with optional K/M/G suffix (powers of 1024). */
size_t ft_opt_size(const char *opt, const char *s);

/* Allocations that do not fail: out of memory is fatal (status 1). */
void *ft_xmalloc(size_t n);
void *ft_xrealloc(void *p, size_t n);
char *ft_xstrndup(const char *s, size_t n);   /* s[0..n) and a NUL */
char *ft_xstrdup(const char *s);

/* Flush and close stdout, dying with status 1 on a write error (full disk). */
void ft_close_stdout(void);

/* A duration for progress lines and ETAs, rounded to the second: "42s",
 * "3m07s", "2h05m". */
void ft_fmt_duration(double seconds, char *out, size_t size);

/* A progress line on stderr, redrawn at most ~10 times a second, only when
 * enabled (default: stderr is a terminal). */
struct ft_progress {
	bool enabled;
	double start, last;
	unsigned long long records, bytes;
};
void ft_progress_init(struct ft_progress *p, bool force);
void ft_progress_update(struct ft_progress *p, unsigned long long records,
			unsigned long long bytes);
void ft_progress_done(struct ft_progress *p);

#endif
