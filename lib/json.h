/* json.h: JSON values on cJSON, with the number details cJSON drops.
 * ft_json_parse() parses one complete JSON text (trailing garbage, NUL bytes
 * and nesting deeper than cJSON's limit are errors) and marks each number node
 * whose literal had no fraction or exponent (ft_json_is_int()); integers too
 * large for a double keep their literal digits in valuestring, so they are
 * written back exactly. The caller owns the tree (cJSON_Delete).
 * Writers append to an ft_buf and return 0 or FT_E_NOMEM/FT_E_TOOBIG. */
#ifndef FT_JSON_H
#define FT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "ft.h"

/* type bit set on number nodes written without '.', 'e' or 'E' */
#define FT_JSON_INTLIT (1 << 12)

/* Parse text[0..len). On error returns FT_E_PARSE with err->col set to the
 * 1-based byte column and a reason. */
int ft_json_parse(const char *text, size_t len, cJSON **out, struct ft_err *err);

static inline bool ft_json_is_int(const cJSON *n)
{
	return n && (n->type & 0xFF) == cJSON_Number && (n->type & FT_JSON_INTLIT);
}

/* Integer value of an integer-literal number node (saturating). */
int64_t ft_json_int(const cJSON *n);

/* Compact JSON (no spaces), non-ASCII kept, numbers as written in the input
 * (integers exact, floats in shortest round-trip form). */
int ft_json_write(struct ft_buf *b, const cJSON *v);
/* A JSON string literal with quotes; s need not be NUL-terminated. */
int ft_json_write_string(struct ft_buf *b, const char *s, size_t len);

/* Python json.dumps(v, ensure_ascii=False, indent=indent) with the default
 * separators (", " / ": " without indent, "," / ": " with it); indent < 0
 * means None. This is what Hugging Face's tojson filter produces. */
int ft_json_write_py(struct ft_buf *b, const cJSON *v, int indent);
/* The same, for a value nested depth levels deep in an outer dump. */
int ft_json_write_py_depth(struct ft_buf *b, const cJSON *v, int indent, int depth);

/* Python repr() of a float: shortest round-trip digits, "1.0", "1e-05",
 * "1e+16", "inf", "nan". Returns the length written to out (< 32). */
int ft_fmt_pyfloat(double d, char out[32]);
/* json.dumps of a float: like repr but Infinity/-Infinity/NaN. */
int ft_fmt_jsonfloat(double d, char out[32]);

/* Record arenas: while an arena is set on a thread, cJSON trees made on that
 * thread (ft_json_parse, cJSON_Create*) are carved from it and cJSON_Delete
 * frees nothing of them; reset the arena after the record. Set NULL to go
 * back to malloc. Trees made from an arena must be deleted (or dropped)
 * while that arena is still set. */
struct ft_arena;
void ft_json_use_arena(struct ft_arena *arena);

/* Dotted path lookup ("a.b.0.c"; numeric parts index arrays). NULL if absent. */
const cJSON *ft_json_path(const cJSON *root, const char *path);

#endif
