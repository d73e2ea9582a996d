#include "buf.h"
#include "ft.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ft_buf_init(struct ft_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : SIZE_MAX / 2;
}

void ft_buf_release(struct ft_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int ft_buf_reserve(struct ft_buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return FT_E_TOOBIG;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return FT_OK;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 4 ? need : cap * 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return FT_E_NOMEM;
	b->data = p;
	b->cap = cap;
	return FT_OK;
}

int ft_buf_append(struct ft_buf *b, const void *p, size_t n)
{
	int rc = ft_buf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return FT_OK;
}

int ft_buf_puts(struct ft_buf *b, const char *s)
{
	return ft_buf_append(b, s, strlen(s));
}

int ft_buf_putc(struct ft_buf *b, char c)
{
	if (b->len + 1 < b->cap) {
		b->data[b->len++] = c;
		b->data[b->len] = 0;
		return FT_OK;
	}
	return ft_buf_append(b, &c, 1);
}

int ft_buf_vprintf(struct ft_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	char small[256];
	int n = vsnprintf(small, sizeof small, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return FT_E_INVAL;
	if ((size_t)n < sizeof small)
		return ft_buf_append(b, small, (size_t)n);
	int rc = ft_buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return FT_OK;
}

int ft_buf_printf(struct ft_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = ft_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *ft_buf_detach(struct ft_buf *b, size_t *len)
{
	char *p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

int ft_buf_read_file(struct ft_buf *b, const char *path, struct ft_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return ft_err_set(err, FT_E_IO, "cannot open '%s': %s", path, strerror(errno));
	char chunk[65536];
	size_t n;
	int rc = FT_OK;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if ((rc = ft_buf_append(b, chunk, n)))
			break;
	if (!rc && ferror(f))
		rc = ft_err_set(err, FT_E_IO, "cannot read '%s': %s", path, strerror(errno));
	else if (rc == FT_E_TOOBIG)
		ft_err_set(err, rc, "'%s' is larger than %zu bytes", path, b->max);
	else if (rc)
		ft_err_set(err, rc, "out of memory");
	fclose(f);
	return rc;
}
