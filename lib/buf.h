/* buf.h: a growable byte buffer with a hard maximum (after curl's dynbuf).
 * The buffer owns data; data is always NUL-terminated after a successful
 * append so it can be used as a C string. Appending past max fails with
 * FT_E_TOOBIG and leaves the buffer unchanged. */
#ifndef FT_BUF_H
#define FT_BUF_H

#include <stddef.h>
#include <stdarg.h>

struct ft_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;   /* hard limit on len, 0 = SIZE_MAX/2 */
};

void ft_buf_init(struct ft_buf *b, size_t max);
void ft_buf_release(struct ft_buf *b);          /* free data, back to empty */
static inline void ft_buf_reset(struct ft_buf *b) { b->len = 0; if (b->data) b->data[0] = 0; }
int ft_buf_reserve(struct ft_buf *b, size_t extra); /* room for len+extra+1 */
int ft_buf_append(struct ft_buf *b, const void *p, size_t n);
int ft_buf_puts(struct ft_buf *b, const char *s);
int ft_buf_putc(struct ft_buf *b, char c);
int ft_buf_printf(struct ft_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ft_buf_vprintf(struct ft_buf *b, const char *fmt, va_list ap);
/* Append the whole file at path (up to the buffer's max): 0, or FT_E_IO
 * ("cannot open/read 'path': reason"), FT_E_TOOBIG ("'path' is larger than
 * N bytes") or FT_E_NOMEM with a message in err. */
struct ft_err;
int ft_buf_read_file(struct ft_buf *b, const char *path, struct ft_err *err);
/* Take ownership of the data (NUL-terminated, possibly NULL when empty). */
char *ft_buf_detach(struct ft_buf *b, size_t *len);

#endif
