/* jsonscan.h: check JSON without building it, and find a few values.
 * For tools that need one field of each record (ft-split's group key), a
 * full cJSON tree costs most of the run; this scanner validates strict
 * RFC 8259 JSON at several times the speed and returns where the values at
 * the given dotted paths are in the text. It is only a fast path: when it
 * says no, the caller parses with ft_json_parse(), which decides (and words
 * the error). It never accepts what ft_json_parse rejects; it may reject what
 * ft_json_parse accepts (cJSON allows "01", raw control characters in
 * strings, very deep nesting). No allocation; spans point into text. */
#ifndef FT_JSONSCAN_H
#define FT_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define FT_JSONSCAN_MAX_PATHS 8

struct ft_jsonscan_span {
	const char *p;   /* first byte of the value's text, NULL if not found */
	size_t len;
};

/* Validate text[0..len) as one JSON value and, for each of npaths dotted
 * paths (as ft_json_path() reads them), set found[i] to the text of its
 * value. Returns 0 if valid, FT_E_PARSE if not (or too deep to scan). */
int ft_jsonscan(const char *text, size_t len, const char *const *paths, size_t npaths,
		struct ft_jsonscan_span *found);

/* Decode a string span (with its quotes) that ft_jsonscan() accepted and
 * append it to out as cJSON's valuestring reads: up to a \u0000 if any. */
int ft_jsonscan_string(const struct ft_jsonscan_span *s, struct ft_buf *out);

#endif
