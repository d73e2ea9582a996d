#include "ft.h"

#include <stdarg.h>
#include <stdio.h>

int ft_err_set(struct ft_err *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return code;
}

void ft_err_clear(struct ft_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->file = NULL;
	err->line = 0;
	err->col = 0;
	err->msg[0] = 0;
}
