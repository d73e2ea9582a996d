/* ft.h: error codes and the error carrier shared by every lib module.
 * Library functions return 0 (or a count) on success and a negative FT_E_*
 * code on failure; when given a struct ft_err they fill its message with a
 * lowercase reason (no tool name, no location) and, where they know one, the
 * input location. The library never prints and never exits. */
#ifndef FT_H
#define FT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ft_status {
	FT_OK = 0,
	FT_E_NOMEM = -1,   /* allocation failed */
	FT_E_IO = -2,      /* read/write/open failed (errno kept in the message) */
	FT_E_PARSE = -3,   /* malformed input (JSON, template, ...) */
	FT_E_UTF8 = -4,    /* invalid UTF-8 */
	FT_E_TOOBIG = -5,  /* a hard size limit was hit */
	FT_E_DATA = -6,    /* well-formed input with a bad value (missing field, wrong type) */
	FT_E_RENDER = -7,  /* template evaluation error (raise_exception, type error) */
	FT_E_INVAL = -8,   /* bad argument from the caller */
};

#define FT_ERR_MSG 1024

struct ft_err {
	int code;          /* last FT_E_* code, 0 if none */
	const char *file;  /* input name as given ("-" shown as "<stdin>"), or NULL */
	long line;         /* 1-based input line, 0 if unknown */
	long col;          /* 1-based column (bytes), 0 if unknown */
	char msg[FT_ERR_MSG];
};

/* Fill err (if not NULL) with code and a printf-style reason; returns code so
 * callers can write `return ft_err_set(err, FT_E_DATA, "...")`. */
int ft_err_set(struct ft_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ft_err_clear(struct ft_err *err);

#ifdef __cplusplus
}
#endif

#endif
