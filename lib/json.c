/* json.c: cJSON parsing with number-literal annotation, and JSON writers
 * (compact, and Python json.dumps-compatible for the tojson filter). */
#include "json.h"

#include "arena.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- record arenas ---- */

static _Thread_local struct ft_arena *record_arena;

static void *hook_malloc(size_t n)
{
	if (record_arena)
		return ft_arena_alloc(record_arena, n);
	return malloc(n);
}

static void hook_free(void *p)
{
	if (record_arena && ft_arena_owns(record_arena, p))
		return;
	free(p);
}

void ft_json_use_arena(struct ft_arena *arena)
{
	static bool hooked;
	if (!hooked) {
		cJSON_Hooks hooks = { hook_malloc, hook_free };
		cJSON_InitHooks(&hooks);
		hooked = true;
	}
	record_arena = arena;
}

/* Number literals in document order: cJSON keeps object members and array
 * items in input order, so a scan of the text and a walk of the tree meet the
 * same numbers in the same order. */
struct numlits {
	const char *text;
	size_t len, pos;
};

static int next_numlit(struct numlits *nl, const char **start, size_t *n)
{
	const char *t = nl->text;
	size_t i = nl->pos, len = nl->len;
	while (i < len) {
		unsigned char c = (unsigned char)t[i];
		if (c == '"') {
			/* jump to the closing quote: one not preceded by an odd run of
			 * backslashes */
			for (;;) {
				const char *q = memchr(t + i + 1, '"', len - i - 1);
				if (!q) {
					i = len;
					break;
				}
				i = (size_t)(q - t);
				size_t bs = 0;
				while (q - bs > t && q[-1 - (long)bs] == '\\')
					bs++;
				if (!(bs & 1))
					break;
			}
			i++;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t s = i;
			while (i < len && ((t[i] >= '0' && t[i] <= '9') || t[i] == '.' || t[i] == 'e' ||
					   t[i] == 'E' || t[i] == '+' || t[i] == '-'))
				i++;
			*start = t + s;
			*n = i - s;
			nl->pos = i;
			return 1;
		} else {
			i++;
		}
	}
	nl->pos = i;
	return 0;
}

static int annotate(cJSON *node, struct numlits *nl, struct ft_err *err)
{
	for (; node; node = node->next) {
		int type = node->type & 0xFF;
		if (type == cJSON_Number) {
			const char *s;
			size_t n;
			if (!next_numlit(nl, &s, &n))
				return ft_err_set(err, FT_E_PARSE, "number literals out of step");
			if (!memchr(s, '.', n) && !memchr(s, 'e', n) && !memchr(s, 'E', n)) {
				node->type |= FT_JSON_INTLIT;
				size_t digits = n - (s[0] == '-');
				if (digits > 15) {  /* may not fit a double exactly: keep the text */
					node->valuestring = hook_malloc(n + 1);
					if (!node->valuestring)
						return ft_err_set(err, FT_E_NOMEM, "out of memory");
					memcpy(node->valuestring, s, n);
					node->valuestring[n] = 0;
				}
			}
		} else if (type == cJSON_Array || type == cJSON_Object) {
			int rc = annotate(node->child, nl, err);
			if (rc)
				return rc;
		}
	}
	return FT_OK;
}

int ft_json_parse(const char *text, size_t len, cJSON **out, struct ft_err *err)
{
	*out = NULL;
	const char *nul = memchr(text, 0, len);
	if (nul) {
		if (err)
			err->col = nul - text + 1;
		return ft_err_set(err, FT_E_PARSE, "NUL byte");
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
		if (err)
			err->col = (long)off + 1;
		if (off >= len)
			return ft_err_set(err, FT_E_PARSE, "unexpected end of JSON");
		return ft_err_set(err, FT_E_PARSE, "unexpected '%c'",
				  (unsigned char)text[off] >= 32 ? text[off] : '?');
	}
	size_t off = (size_t)(end - text);
	while (off < len && (text[off] == ' ' || text[off] == '\t' || text[off] == '\n' ||
			     text[off] == '\r'))
		off++;
	if (off < len) {
		cJSON_Delete(root);
		if (err)
			err->col = (long)off + 1;
		return ft_err_set(err, FT_E_PARSE, "trailing data after JSON value");
	}
	struct numlits nl = { text, len, 0 };
	int rc = annotate(root, &nl, err);
	if (rc) {
		cJSON_Delete(root);
		return rc;
	}
	*out = root;
	return FT_OK;
}

int64_t ft_json_int(const cJSON *n)
{
	if (n->valuestring) {
		long long v = strtoll(n->valuestring, NULL, 10);
		return (int64_t)v;  /* strtoll saturates on overflow */
	}
	double d = n->valuedouble;
	if (d >= 9223372036854775807.0)
		return INT64_MAX;
	if (d <= -9223372036854775808.0)
		return INT64_MIN;
	return (int64_t)d;
}

/* ---- float formatting (Python repr) ---- */

static int fmt_digits(char *out, int neg, const char *digits, int nd, int decpt)
{
	/* digits: significant digits without trailing zeros; value =
	 * 0.d1d2... * 10^decpt. Python's repr switches to exponent form when
	 * decpt <= -4 or decpt > 16. */
	char *p = out;
	if (neg)
		*p++ = '-';
	if (decpt > -4 && decpt <= 16) {
		if (decpt <= 0) {
			*p++ = '0';
			*p++ = '.';
			for (int i = 0; i < -decpt; i++)
				*p++ = '0';
			memcpy(p, digits, nd);
			p += nd;
		} else if (decpt >= nd) {
			memcpy(p, digits, nd);
			p += nd;
			for (int i = nd; i < decpt; i++)
				*p++ = '0';
			*p++ = '.';
			*p++ = '0';
		} else {
			memcpy(p, digits, decpt);
			p += decpt;
			*p++ = '.';
			memcpy(p, digits + decpt, nd - decpt);
			p += nd - decpt;
		}
	} else {
		*p++ = digits[0];
		if (nd > 1) {
			*p++ = '.';
			memcpy(p, digits + 1, nd - 1);
			p += nd - 1;
		}
		int e = decpt - 1;
		p += sprintf(p, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
	}
	*p = 0;
	return (int)(p - out);
}

int ft_fmt_pyfloat(double d, char out[32])
{
	if (isnan(d))
		return sprintf(out, "nan");
	if (isinf(d))
		return sprintf(out, d < 0 ? "-inf" : "inf");
	int neg = signbit(d) != 0;
	double a = fabs(d);
	if (a == 0)
		return sprintf(out, neg ? "-0.0" : "0.0");
	/* Fast path: a value with at most 3 decimals below 1e12, where the
	 * spacing of doubles is far finer than 0.001, so the one k-decimal
	 * string that round-trips is the shortest repr. */
	if (a < 1e12 && a >= 1e-3) {
		static const double p10[] = { 1, 10, 100, 1000 };
		for (int k = 0; k <= 3; k++) {
			double scaled = a * p10[k];
			double r = nearbyint(scaled);
			if (fabs(scaled - r) > 0.25)
				continue;
			if (r / p10[k] != a)
				continue;
			uint64_t v = (uint64_t)r;
			char digits[24];
			int nd = sprintf(digits, "%" PRIu64, v);
			int decpt = nd - k;
			while (nd > 1 && digits[nd - 1] == '0')
				nd--;
			if (decpt <= -4 || decpt > 16)
				break;
			return fmt_digits(out, neg, digits, nd, decpt);
		}
	}
	char tmp[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, a);
		if (strtod(tmp, NULL) == a || prec == 17)
			break;
	}
	/* tmp = "d.ddde[+-]XX" */
	char digits[24];
	int nd = 0;
	char *e = strchr(tmp, 'e');
	for (char *q = tmp; q < e; q++)
		if (*q != '.')
			digits[nd++] = *q;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	int exp10 = atoi(e + 1);
	return fmt_digits(out, neg, digits, nd, exp10 + 1);
}

int ft_fmt_jsonfloat(double d, char out[32])
{
	if (isnan(d))
		return sprintf(out, "NaN");
	if (isinf(d))
		return sprintf(out, d < 0 ? "-Infinity" : "Infinity");
	return ft_fmt_pyfloat(d, out);
}

/* ---- writers ---- */

int ft_json_write_string(struct ft_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	/* worst case: every byte becomes \u00XX */
	if (len > (SIZE_MAX - 3) / 6)
		return FT_E_TOOBIG;
	int rc = ft_buf_reserve(b, len * 6 + 2);
	if (rc)
		return rc;
	char *o = b->data + b->len;
	*o++ = '"';
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		const unsigned char *run = p;
		while (p < end && *p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		memcpy(o, run, (size_t)(p - run));
		o += p - run;
		if (p == end)
			break;
		unsigned char c = *p++;
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->data);
	b->data[b->len] = 0;
	return FT_OK;
}

static int write_number(struct ft_buf *b, const cJSON *v, int py)
{
	char tmp[32];
	int n;
	if (v->type & FT_JSON_INTLIT) {
		if (v->valuestring) {
			const char *s = v->valuestring;
			/* Python normalises "-0" and leading zeros cannot occur in JSON */
			return ft_buf_puts(b, strcmp(s, "-0") ? s : "0");
		}
		n = sprintf(tmp, "%" PRId64, ft_json_int(v));
	} else if (isinf(v->valuedouble) && !py) {
		n = sprintf(tmp, v->valuedouble < 0 ? "-1e999" : "1e999");
	} else {
		n = ft_fmt_jsonfloat(v->valuedouble, tmp);
	}
	return ft_buf_append(b, tmp, (size_t)n);
}

static int newline_indent(struct ft_buf *b, int indent, int depth)
{
	int rc = ft_buf_putc(b, '\n');
	size_t n = (size_t)indent * (size_t)depth;
	if (rc || !n)
		return rc;
	if ((rc = ft_buf_reserve(b, n)))
		return rc;
	memset(b->data + b->len, ' ', n);
	b->len += n;
	b->data[b->len] = 0;
	return FT_OK;
}

static int write_value(struct ft_buf *b, const cJSON *v, int py, int indent, int depth)
{
	int rc;
	switch (v->type & 0xFF) {
	case cJSON_NULL: return ft_buf_append(b, "null", 4);
	case cJSON_True: return ft_buf_append(b, "true", 4);
	case cJSON_False: return ft_buf_append(b, "false", 5);
	case cJSON_Number: return write_number(b, v, py);
	case cJSON_String:
		return ft_json_write_string(b, v->valuestring, strlen(v->valuestring));
	case cJSON_Raw: return ft_buf_puts(b, v->valuestring ? v->valuestring : "null");
	case cJSON_Array:
	case cJSON_Object: {
		int obj = (v->type & 0xFF) == cJSON_Object;
		if ((rc = ft_buf_putc(b, obj ? '{' : '[')))
			return rc;
		const cJSON *c = v->child;
		if (!c)
			return ft_buf_putc(b, obj ? '}' : ']');
		for (; c; c = c->next) {
			if (py && indent >= 0) {
				if ((rc = newline_indent(b, indent, depth + 1)))
					return rc;
			}
			if (obj) {
				const char *k = c->string ? c->string : "";
				if ((rc = ft_json_write_string(b, k, strlen(k))))
					return rc;
				if ((rc = py ? ft_buf_append(b, ": ", 2) : ft_buf_putc(b, ':')))
					return rc;
			}
			if ((rc = write_value(b, c, py, indent, depth + 1)))
				return rc;
			if (c->next) {
				if (py && indent < 0)
					rc = ft_buf_append(b, ", ", 2);
				else
					rc = ft_buf_putc(b, ',');
				if (rc)
					return rc;
			}
		}
		if (py && indent >= 0 && (rc = newline_indent(b, indent, depth)))
			return rc;
		return ft_buf_putc(b, obj ? '}' : ']');
	}
	default:
		return ft_buf_append(b, "null", 4);
	}
}

int ft_json_write(struct ft_buf *b, const cJSON *v)
{
	return write_value(b, v, 0, -1, 0);
}

int ft_json_write_py(struct ft_buf *b, const cJSON *v, int indent)
{
	return write_value(b, v, 1, indent, 0);
}

int ft_json_write_py_depth(struct ft_buf *b, const cJSON *v, int indent, int depth)
{
	return write_value(b, v, 1, indent, depth);
}

const cJSON *ft_json_path(const cJSON *root, const char *path)
{
	const cJSON *cur = root;
	const char *p = path;
	while (cur && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		const cJSON *next = NULL;
		if (cJSON_IsObject(cur)) {
			for (const cJSON *c = cur->child; c; c = c->next)
				if (c->string && strlen(c->string) == n && !memcmp(c->string, p, n)) {
					next = c;
					break;
				}
		} else if (cJSON_IsArray(cur) && n > 0 && n < 10 && strspn(p, "0123456789") >= n) {
			next = cJSON_GetArrayItem(cur, atoi(p));
		}
		cur = next;
		p = dot ? dot + 1 : p + n;
		if (dot && !*p)
			return NULL;
	}
	return cur;
}
