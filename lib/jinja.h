/* jinja.h: the Jinja2 subset that Hugging Face chat templates use, rendering
 * byte-identical text to Python's jinja2 with trim_blocks and lstrip_blocks
 * (as transformers' apply_chat_template sets it up), plus provenance: every
 * byte of the output is known to come either from template text or from data
 * (a variable bound with ft_tpl_vars_json / FT_TPL_DATA), and to lie inside or
 * outside a {% generation %} block.
 *
 * Memory: a compiled template owns its AST; variables borrow the cJSON trees
 * and strings given to them (keep them alive until the render is done); a
 * render result owns its text and spans. Errors: compile and render return 0
 * or a negative FT_E_* code, with err->line/err->col pointing into the
 * template and err->msg the reason (for raise_exception: its message). */
#ifndef FT_JINJA_H
#define FT_JINJA_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "ft.h"

struct ft_tpl;
struct ft_tpl_vars;

/* Compile src[0..len) (CRLF/CR normalised, one trailing newline dropped, as
 * jinja2 does). name is used in messages only. */
int ft_tpl_compile(struct ft_tpl **tpl, const char *name, const char *src, size_t len,
		   struct ft_err *err);
void ft_tpl_free(struct ft_tpl *tpl);
/* true if the template marks trained text with {% generation %} */
bool ft_tpl_has_generation(const struct ft_tpl *tpl);
/* true if the template reads the variable name anywhere */
bool ft_tpl_uses(const struct ft_tpl *tpl, const char *name);

/* Variables for one render. */
struct ft_tpl_vars *ft_tpl_vars_new(void);
void ft_tpl_vars_free(struct ft_tpl_vars *vars);
void ft_tpl_vars_clear(struct ft_tpl_vars *vars);
enum { FT_TPL_LITERAL = 0, FT_TPL_DATA = 1 };
/* Bind name to a JSON value (borrowed; strings in it are data, each with the
 * cJSON node it came from as origin). */
int ft_tpl_vars_json(struct ft_tpl_vars *vars, const char *name, const cJSON *value);
/* Bind name to a string (borrowed); FT_TPL_LITERAL strings count as template
 * text (e.g. bos_token), FT_TPL_DATA strings as data with origin s. */
int ft_tpl_vars_str(struct ft_tpl_vars *vars, const char *name, const char *s, int provenance);
int ft_tpl_vars_bool(struct ft_tpl_vars *vars, const char *name, bool b);
int ft_tpl_vars_none(struct ft_tpl_vars *vars, const char *name);

/* A run of output bytes that is not plain template text outside generation. */
enum ft_span_flags {
	FT_SPAN_DATA = 1 << 0,   /* came from data: never a special token */
	FT_SPAN_TRAIN = 1 << 1,  /* inside {% generation %} */
};
struct ft_span {
	size_t off, len;
	const void *origin;      /* cJSON node (or string) the data came from, or NULL */
	unsigned flags;
};

struct ft_render {
	struct ft_buf text;
	struct ft_span *spans;   /* sorted, non-overlapping, merged when adjacent and equal */
	size_t nspans, cap;
};

void ft_render_init(struct ft_render *r);
void ft_render_reset(struct ft_render *r);
void ft_render_release(struct ft_render *r);

/* Render tpl with vars into out (appends; call ft_render_reset first to reuse). */
int ft_tpl_render(const struct ft_tpl *tpl, struct ft_tpl_vars *vars, struct ft_render *out,
		  struct ft_err *err);

#endif
