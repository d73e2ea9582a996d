/* lines.c: batches of input lines (contract in lines.h). */
#include "lines.h"

#include <stdlib.h>
#include <string.h>

void ft_lines_init(struct ft_lines *l)
{
	memset(l, 0, sizeof *l);
	ft_buf_init(&l->text, 0);
}

void ft_lines_release(struct ft_lines *l)
{
	ft_buf_release(&l->text);
	free(l->e);
	free(l->errs);
	memset(l, 0, sizeof *l);
}

void ft_lines_reset(struct ft_lines *l)
{
	l->n = 0;
	l->nerrs = 0;
	l->fatal_at_end = false;
	ft_buf_reset(&l->text);
}

static struct ft_line *new_entry(struct ft_lines *l)
{
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 256;
		void *p = realloc(l->e, (size_t)cap * sizeof *l->e);
		if (!p)
			return NULL;
		l->e = p;
		l->cap = cap;
	}
	struct ft_line *en = &l->e[l->n++];
	memset(en, 0, sizeof *en);
	en->err = -1;
	return en;
}

int ft_lines_add(struct ft_lines *l, const char *line, size_t len, const char *file,
		 long lineno, long col_offset, unsigned long long recno)
{
	size_t off = l->text.len;
	if (ft_buf_append(&l->text, line, len))
		return FT_E_NOMEM;
	struct ft_line *en = new_entry(l);
	if (!en)
		return FT_E_NOMEM;
	*en = (struct ft_line){ off, len, file, lineno, col_offset, recno, -1 };
	return FT_OK;
}

int ft_lines_add_error(struct ft_lines *l, const struct ft_err *err, unsigned long long recno,
		       bool fatal)
{
	void *p = realloc(l->errs, (size_t)(l->nerrs + 1) * sizeof *l->errs);
	if (!p)
		return FT_E_NOMEM;
	l->errs = p;
	struct ft_line *en = new_entry(l);
	if (!en)
		return FT_E_NOMEM;
	l->errs[l->nerrs] = *err;
	*en = (struct ft_line){ 0, 0, err->file, err->line, 0, recno, l->nerrs++ };
	l->fatal_at_end = fatal;
	return FT_OK;
}
