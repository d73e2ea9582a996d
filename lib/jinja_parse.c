/* jinja_parse.c: lexer and parser for the Jinja2 subset of chat templates.
 *
 * The lexer follows jinja2's (3.1) lexer.py with trim_blocks and
 * lstrip_blocks on: a block or comment tag removes one newline after it; the
 * whitespace (Python's \s) between the start of a line and a block or
 * comment tag is removed; '-' in a tag strips all whitespace on that side,
 * '+' turns the implicit stripping off; {% raw %} keeps the newline after it.
 * The source has CRLF and CR turned into LF and one trailing newline dropped
 * first, as jinja2 does. Literals follow jinja2 too (0x/0o/0b and '_' in
 * numbers, unicode-escape in strings, unicode identifiers).
 *
 * Errors longjmp to ft_tpl_compile. Nesting is bounded (MAX_NEST) so deep
 * input is an error, not a stack overflow. Unknown filters and tests fail
 * at compile time except inside if statements and inline ifs, where jinja2
 * defers them to run time (check_names). */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "jinja_impl.h"
#include "utf8.h"

enum tok_type {
	TK_EOF, TK_DATA, TK_VAR_BEGIN, TK_VAR_END, TK_BLOCK_BEGIN, TK_BLOCK_END,
	TK_NAME, TK_STRING, TK_INT, TK_FLOAT, TK_OP,
};

struct tok {
	int type;
	size_t off;        /* offset in the normalised source */
	const char *p;     /* NAME/OP/DATA: text; STRING: decoded text */
	size_t len;
	int64_t i;
	double f;
};

struct parser {
	struct ft_tpl *t;
	const char *src;
	size_t len;
	size_t *line_starts;
	int nlines;
	struct tok *toks;
	int ntok, cap, pos;
	struct ft_err *err;
	jmp_buf fail;
	int loop_depth;
	int depth;         /* nesting: recursion plus chain links, see nest() */
};

/* How deep the AST may grow. The parser recurses into parentheses, unary
 * operators and blocks, and the evaluator recurses along every chain of
 * binary operators, filters and attribute lookups, so both count here; the
 * stack stays small and hostile templates get an error, not a crash.
 * jinja2 itself gives up far earlier (Python's recursion limit). */
#define MAX_NEST 400

/* ---- errors and positions ---- */

static void position(struct parser *ps, size_t off, int *line, int *col)
{
	int lo = 0, hi = ps->nlines - 1;
	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;
		if (ps->line_starts[mid] <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	*line = lo + 1;
	/* column in code points, 1-based */
	size_t start = ps->line_starts[lo];
	*col = (int)ft_utf8_count(ps->src + start, off - start) + 1;
}

static _Noreturn __attribute__((format(printf, 3, 4)))
void fail_at(struct parser *ps, size_t off, const char *fmt, ...)
{
	if (ps->err) {
		int line, col;
		position(ps, off > ps->len ? ps->len : off, &line, &col);
		ps->err->line = line;
		ps->err->col = col;
		ps->err->code = FT_E_PARSE;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
		va_end(ap);
	}
	longjmp(ps->fail, 1);
}

static void *alloc(struct parser *ps, size_t n)
{
	void *p = ft_arena_alloc(&ps->t->arena, n);
	if (!p) {
		if (ps->err)
			ft_err_set(ps->err, FT_E_NOMEM, "out of memory");
		longjmp(ps->fail, 2);
	}
	return p;
}

/* ---- lexer ---- */

static void push_tok(struct parser *ps, struct tok tk)
{
	if (ps->ntok == ps->cap) {
		int cap = ps->cap ? ps->cap * 2 : 256;
		struct tok *n = realloc(ps->toks, (size_t)cap * sizeof *n);
		if (!n) {
			if (ps->err)
				ft_err_set(ps->err, FT_E_NOMEM, "out of memory");
			longjmp(ps->fail, 2);
		}
		ps->toks = n;
		ps->cap = cap;
	}
	ps->toks[ps->ntok++] = tk;
}

/* Python's \s and str.isspace(): the whitespace jinja2's lexer strips. */
static size_t ws_at(const char *s, size_t n, size_t i)
{
	unsigned char c = (unsigned char)s[i];
	if (c < 0x80)
		return (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F)) ? 1 : 0;
	int32_t cp;
	int k = ft_utf8_decode(s + i, n - i, &cp);
	return ft_utf8_isspace(cp) ? (size_t)k : 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	size_t k;
	while (i < n && (k = ws_at(s, n, i)))
		i += k;
	return i;
}

/* Start of the whitespace run that ends at end (not before lo). */
static size_t rstrip_ws(const char *s, size_t lo, size_t end)
{
	while (end > lo) {
		size_t q = end - 1;
		while (q > lo && ((unsigned char)s[q] & 0xC0) == 0x80)
			q--;
		if (ws_at(s, end, q) != end - q)
			break;
		end = q;
	}
	return end;
}

/* lstrip_blocks on the data [lo, end) before a block or comment tag: the
 * whitespace between the last newline (or the start of a line) and the tag
 * goes. Returns the new end. */
static size_t lstrip_block(const char *s, size_t lo, size_t end, int line_starting)
{
	size_t l = end;
	while (l > lo && s[l - 1] != '\n')
		l--;
	if (l == lo && !line_starting)
		return end;
	return l < end && rstrip_ws(s, l, end) == l ? l : end;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode a string literal body as jinja2 does: Python's unicode-escape on
 * the text with non-ASCII characters first turned into backslash escapes. */
static void decode_string(struct parser *ps, size_t off, const char *s, size_t n, struct tok *tk)
{
	char *out = alloc(ps, 2 * n + 1);  /* "\é" becomes "\xe9": at most twice */
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\' || i + 1 >= n) {
			out[o++] = s[i];
			continue;
		}
		char c = s[++i];
		int32_t cp = -1;
		switch (c) {
		case '\n': continue;
		case '\\': out[o++] = '\\'; continue;
		case '\'': out[o++] = '\''; continue;
		case '"': out[o++] = '"'; continue;
		case 'a': out[o++] = '\a'; continue;
		case 'b': out[o++] = '\b'; continue;
		case 'f': out[o++] = '\f'; continue;
		case 'n': out[o++] = '\n'; continue;
		case 'r': out[o++] = '\r'; continue;
		case 't': out[o++] = '\t'; continue;
		case 'v': out[o++] = '\v'; continue;
		case 'N':
			fail_at(ps, off + i, "\\N{...} escapes are not supported");
		case 'x': case 'u': case 'U': {
			int digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
			cp = 0;
			for (int k = 0; k < digits; k++) {
				int h = i + 1 + (size_t)k < n ? hexval(s[i + 1 + k]) : -1;
				if (h < 0)
					fail_at(ps, off + i, "truncated \\%c escape in string", c);
				cp = cp * 16 + h;
			}
			i += (size_t)digits;
			break;
		}
		default:
			if (c >= '0' && c <= '7') {
				cp = 0;
				int k = 0;
				while (k < 3 && i < n && s[i] >= '0' && s[i] <= '7') {
					cp = cp * 8 + (s[i] - '0');
					i++;
					k++;
				}
				i--;
			} else if ((unsigned char)c >= 0x80) {
				/* the backslash stays; the character became \xNN, \uNNNN
				 * or \UNNNNNNNN, which the decoder then leaves alone */
				int32_t ch;
				int k = ft_utf8_decode(s + i, n - i, &ch);
				o += (size_t)sprintf(out + o, ch < 0x100 ? "\\x%02x" : ch < 0x10000 ? "\\u%04x" :
						     "\\U%08x", (unsigned)ch);
				i += (size_t)k - 1;
				continue;
			} else {
				out[o++] = '\\';
				out[o++] = c;
				continue;
			}
		}
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			fail_at(ps, off + i, "invalid code point in string escape");
		char enc[4];
		int k = ft_utf8_encode(cp, enc);
		memcpy(out + o, enc, (size_t)k);
		o += (size_t)k;
	}
	out[o] = 0;
	tk->p = out;
	tk->len = o;
}

/* A number literal at s[pos] as jinja2's float_re / integer_re read it:
 * digits with single '_' between them, 0b/0o/0x prefixes. */
static size_t lex_number(struct parser *ps, size_t pos, struct tok *tk)
{
	const char *s = ps->src;
	size_t n = ps->len, b = pos;
	int after_dot = pos > 0 && s[pos - 1] == '.';  /* float_re's (?<!\.): x.1.5 is x[1][5] */
#define DIGITS(ok) do { \
		while (pos < n && (ok(s[pos]) || (s[pos] == '_' && pos + 1 < n && ok(s[pos + 1])))) \
			pos++; \
	} while (0)
#define IS_DEC(c) ((c) >= '0' && (c) <= '9')
#define IS_BIN(c) ((c) == '0' || (c) == '1')
#define IS_OCT(c) ((c) >= '0' && (c) <= '7')
#define IS_HEX(c) (hexval(c) >= 0)
	int base = 10;
	if (s[pos] == '0' && pos + 2 < n) {
		char p = (char)(s[pos + 1] | 0x20), d = s[pos + 2] == '_' && pos + 3 < n ? s[pos + 3] : s[pos + 2];
		if ((p == 'b' && IS_BIN(d)) || (p == 'o' && IS_OCT(d)) || (p == 'x' && IS_HEX(d)))
			base = p == 'b' ? 2 : p == 'o' ? 8 : 16;
	}
	int is_float = 0;
	if (base != 10) {
		pos += 2;
		if (s[pos] == '_')
			pos++;
		if (base == 2)
			DIGITS(IS_BIN);
		else if (base == 8)
			DIGITS(IS_OCT);
		else
			DIGITS(IS_HEX);
	} else {
		DIGITS(IS_DEC);
		if (after_dot) {
			/* an integer only */
		} else if (pos + 1 < n && s[pos] == '.' && IS_DEC(s[pos + 1])) {
			is_float = 1;
			pos++;
			DIGITS(IS_DEC);
		}
		if (!after_dot && pos < n && (s[pos] == 'e' || s[pos] == 'E')) {
			size_t q = pos + 1;
			if (q < n && (s[q] == '+' || s[q] == '-'))
				q++;
			if (q < n && IS_DEC(s[q])) {
				is_float = 1;
				pos = q;
				DIGITS(IS_DEC);
			}
		}
	}
#undef DIGITS
	char num[80];
	size_t k = 0;
	for (size_t q = b + (base != 10 ? 2 : 0); q < pos; q++) {
		if (s[q] == '_')
			continue;
		if (k == sizeof num - 1)
			fail_at(ps, b, "number literal too long");
		num[k++] = s[q];
	}
	num[k] = 0;
	errno = 0;
	if (is_float) {
		tk->type = TK_FLOAT;
		tk->f = strtod(num, NULL);
	} else {
		/* a decimal literal may not have leading zeros, except zero itself */
		if (base == 10 && num[0] == '0')
			for (size_t q = 1; q < k; q++)
				if (num[q] != '0')
					fail_at(ps, b, "leading zeros in a decimal integer literal");
		tk->type = TK_INT;
		unsigned long long u = strtoull(num, NULL, base);
		if (errno == ERANGE || u > INT64_MAX)
			fail_at(ps, b, "integer literal too large");
		tk->i = (int64_t)u;
	}
	return pos;
#undef IS_DEC
#undef IS_BIN
#undef IS_OCT
#undef IS_HEX
}

static const char *const ops2[] = { "//", "**", "==", "!=", "<=", ">=" };

/* Byte length of an identifier character at s[i] (0 if none): Python's
 * identifiers, XID_Start / XID_Continue approximated by category. */
static size_t ident_len(const char *s, size_t n, size_t i, bool start)
{
	unsigned char c = (unsigned char)s[i];
	if (c < 0x80)
		return (isalpha(c) || c == '_' || (!start && isdigit(c))) ? 1 : 0;
	int32_t cp;
	int k = ft_utf8_decode(s + i, n - i, &cp);
	switch (utf8proc_category(cp)) {
	case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
		return (size_t)k;
	case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_PC:
		return start ? 0 : (size_t)k;
	default:
		return 0;
	}
}

/* Lex the inside of a tag from pos until its closer; returns the position
 * after the closer and its strip sign in *sign ('-', '+' or 0). */
static size_t lex_tag(struct parser *ps, size_t pos, int kind, int *sign)
{
	const char *s = ps->src;
	size_t n = ps->len;
	const char *closer = kind == TK_VAR_BEGIN ? "}}" : "%}";
	int end_type = kind == TK_VAR_BEGIN ? TK_VAR_END : TK_BLOCK_END;
	int depth = 0;  /* brackets: "}}" inside a dict literal is not the closer */
	for (;;) {
		pos = skip_ws(s, n, pos);
		if (pos >= n)
			fail_at(ps, pos, "unexpected end of template, expected '%s'", closer);
		char c = s[pos];
		/* "-%}" and "+%}" end a block, only "-}}" a print statement */
		if (depth == 0 && (c == '-' || (c == '+' && kind != TK_VAR_BEGIN)) && pos + 3 <= n &&
		    !strncmp(s + pos + 1, closer, 2)) {
			*sign = c;
			push_tok(ps, (struct tok){ .type = end_type, .off = pos });
			return pos + 3;
		}
		if (depth == 0 && pos + 2 <= n && !strncmp(s + pos, closer, 2)) {
			*sign = 0;
			push_tok(ps, (struct tok){ .type = end_type, .off = pos });
			return pos + 2;
		}
		struct tok tk = { .off = pos };
		if (ident_len(s, n, pos, true)) {
			size_t b = pos, k;
			while (pos < n && (k = ident_len(s, n, pos, false)))
				pos += k;
			tk.type = TK_NAME;
			tk.p = s + b;
			tk.len = pos - b;
		} else if (isdigit((unsigned char)c)) {
			pos = lex_number(ps, pos, &tk);
		} else if (c == '\'' || c == '"') {
			size_t b = ++pos;
			while (pos < n && s[pos] != c) {
				if (s[pos] == '\\')
					pos++;
				pos++;
			}
			if (pos >= n)
				fail_at(ps, b - 1, "unterminated string");
			tk.type = TK_STRING;
			decode_string(ps, b, s + b, pos - b, &tk);
			pos++;
		} else {
			tk.type = TK_OP;
			tk.p = s + pos;
			tk.len = 1;
			for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
				if (pos + 1 < n && !strncmp(s + pos, ops2[k], 2))
					tk.len = 2;
			if (!c || !strchr("+-*/%~()[]{},.:|=<>!", c) || (c == '!' && tk.len == 1)) {
				if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7F)
					fail_at(ps, pos, "unexpected character");
				fail_at(ps, pos, "unexpected character '%c'", c);
			}
			if (c == '(' || c == '[' || c == '{') {
				depth++;
			} else if (c == ')' || c == ']' || c == '}') {
				if (!depth)
					fail_at(ps, pos, "unexpected '%c'", c);
				depth--;
			}
			pos += tk.len;
		}
		push_tok(ps, tk);
	}
}

/* Is the tag at pos "{% <sign>? endraw <sign>? %}"? Returns its end or 0. */
static size_t match_endraw(const char *s, size_t n, size_t pos, int *lsign, int *rsign)
{
	if (pos + 2 > n || strncmp(s + pos, "{%", 2))
		return 0;
	size_t q = pos + 2;
	*lsign = (q < n && (s[q] == '-' || s[q] == '+')) ? s[q++] : 0;
	q = skip_ws(s, n, q);
	if (q + 6 > n || strncmp(s + q, "endraw", 6))
		return 0;
	q = skip_ws(s, n, q + 6);
	*rsign = 0;
	if (q < n && (s[q] == '-' || s[q] == '+'))
		*rsign = s[q++];
	if (q + 2 > n || strncmp(s + q, "%}", 2))
		return 0;
	return q + 2;
}

/* After a tag that ended at pos with this sign: where the next data starts
 * ('-' strips all whitespace, a block or comment end eats one newline). */
static size_t after_tag(const char *s, size_t n, size_t pos, int sign, int trims)
{
	if (sign == '-')
		return skip_ws(s, n, pos);
	if (trims && sign != '+' && pos < n && s[pos] == '\n')
		return pos + 1;
	return pos;
}

/* Split the source into data and tag tokens with jinja2's whitespace rules
 * (lexer.py: OptionalLStrip, block_suffix_re, the raw state). line_starting
 * is jinja2's: the text consumed last ended with a newline. */
static void lex(struct parser *ps)
{
	const char *s = ps->src;
	size_t n = ps->len, pos = 0;
	int line_starting = 1;
	for (;;) {
		/* the data up to the next tag opener */
		size_t q = pos;
		const char *open = NULL;
		while (q < n && (open = memchr(s + q, '{', n - q)) != NULL) {
			char c2 = open + 1 < s + n ? open[1] : 0;
			if (c2 == '{' || c2 == '%' || c2 == '#')
				break;
			q = (size_t)(open - s) + 1;
			open = NULL;
		}
		size_t data_end = open ? (size_t)(open - s) : n;
		int kind = 0, sign = 0;
		if (open) {
			char c2 = open[1];
			kind = c2 == '{' ? TK_VAR_BEGIN : c2 == '%' ? TK_BLOCK_BEGIN : TK_DATA /* comment */;
			if (open + 2 < s + n && (open[2] == '-' || open[2] == '+'))
				sign = open[2];
			if (sign == '-')
				data_end = rstrip_ws(s, pos, data_end);
			else if (kind != TK_VAR_BEGIN && sign != '+')
				data_end = lstrip_block(s, pos, data_end, line_starting);
		}
		if (data_end > pos)
			push_tok(ps, (struct tok){ .type = TK_DATA, .off = pos, .p = s + pos,
						   .len = data_end - pos });
		if (!open)
			break;
		size_t tag = (size_t)(open - s);
		size_t after = tag + 2 + (sign ? 1 : 0);
		int endsign = 0;
		size_t end;
		if (kind == TK_DATA) {  /* comment */
			const char *close = NULL;
			for (size_t k = after; k + 1 < n; k++)
				if (s[k] == '#' && s[k + 1] == '}') {
					close = s + k;
					break;
				}
			if (!close && after >= n)
				break;  /* "{#" ends the template: jinja2 lets it be */
			if (!close)
				fail_at(ps, tag, "missing end of comment tag");
			if (close > s + after && (close[-1] == '-' || close[-1] == '+'))
				endsign = close[-1];
			end = (size_t)(close - s) + 2;
			pos = after_tag(s, n, end, endsign, 1);
		} else {
			push_tok(ps, (struct tok){ .type = kind, .off = tag });
			int first = ps->ntok;
			end = lex_tag(ps, after, kind, &endsign);
			pos = after_tag(s, n, end, endsign, kind == TK_BLOCK_BEGIN);
			/* {% raw %}: everything up to {% endraw %} is data; no newline
			 * is eaten after "%}" here (jinja2's raw_begin rule) */
			if (kind == TK_BLOCK_BEGIN && ps->ntok == first + 2 && endsign != '+' &&
			    ps->toks[first].type == TK_NAME && ps->toks[first].len == 3 &&
			    !memcmp(ps->toks[first].p, "raw", 3)) {
				ps->ntok = first - 1;  /* drop "{% raw %}" */
				size_t body = endsign == '-' ? pos : end;
				line_starting = body > tag && s[body - 1] == '\n';
				size_t k = body, raw_end = 0;
				int ls = 0, rs = 0;
				for (; k < n; k++)
					if (s[k] == '{' && (raw_end = match_endraw(s, n, k, &ls, &rs)))
						break;
				if (!raw_end && body >= n)
					break;  /* "{% raw %}" ends the template: jinja2 lets it be */
				if (!raw_end)
					fail_at(ps, tag, "missing end of raw directive");
				size_t body_end = k;
				if (ls == '-')
					body_end = rstrip_ws(s, body, body_end);
				else if (ls != '+')
					body_end = lstrip_block(s, body, body_end, line_starting);
				if (body_end > body)
					push_tok(ps, (struct tok){ .type = TK_DATA, .off = body,
								   .p = s + body, .len = body_end - body });
				end = raw_end;
				endsign = rs;
				pos = after_tag(s, n, end, endsign, 1);
			}
		}
		line_starting = pos > end ? s[pos - 1] == '\n' : 0;
	}
	push_tok(ps, (struct tok){ .type = TK_EOF, .off = n });
}

/* ---- parser helpers ---- */

static void nest(struct parser *ps, size_t off)
{
	if (++ps->depth > MAX_NEST)
		fail_at(ps, off, "template nested too deeply (more than %d levels)", MAX_NEST);
}

static struct tok *cur(struct parser *ps) { return &ps->toks[ps->pos]; }
static struct tok *peek(struct parser *ps, int k)
{
	int i = ps->pos + k;
	return &ps->toks[i < ps->ntok ? i : ps->ntok - 1];
}

static int is_name(const struct tok *t, const char *name)
{
	return t->type == TK_NAME && t->len == strlen(name) && !memcmp(t->p, name, t->len);
}

static int is_op(const struct tok *t, const char *op)
{
	return t->type == TK_OP && t->len == strlen(op) && !memcmp(t->p, op, t->len);
}

static const char *tok_desc(const struct tok *t)
{
	switch (t->type) {
	case TK_EOF: return "end of template";
	case TK_BLOCK_END: return "end of statement block";
	case TK_VAR_END: return "end of print statement";
	case TK_STRING: return "string";
	case TK_INT: case TK_FLOAT: return "number";
	default: return "token";
	}
}

static _Noreturn void fail_tok(struct parser *ps, const char *expected)
{
	struct tok *t = cur(ps);
	if (t->type == TK_NAME || t->type == TK_OP)
		fail_at(ps, t->off, "expected %s, got '%.*s'", expected, (int)t->len, t->p);
	fail_at(ps, t->off, "expected %s, got %s", expected, tok_desc(t));
}

static void expect_op(struct parser *ps, const char *op)
{
	if (!is_op(cur(ps), op)) {
		char what[16];
		snprintf(what, sizeof what, "'%s'", op);
		fail_tok(ps, what);
	}
	ps->pos++;
}

static struct tok *expect_name(struct parser *ps)
{
	if (cur(ps)->type != TK_NAME)
		fail_tok(ps, "a name");
	return &ps->toks[ps->pos++];
}

static struct node *mknode(struct parser *ps, int kind, size_t off)
{
	struct node *nd = alloc(ps, sizeof *nd);
	nd->kind = (uint8_t)kind;
	position(ps, off, &nd->line, &nd->col);
	return nd;
}

static const char *dupname(struct parser *ps, const struct tok *t)
{
	char *p = alloc(ps, t->len + 1);
	memcpy(p, t->p, t->len);
	return p;
}

/* growable node-pointer list in the template arena */
struct nlist {
	struct node **v;
	int n, cap;
};

static void nl_push(struct parser *ps, struct nlist *l, struct node *nd)
{
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 4;
		struct node **v = alloc(ps, (size_t)cap * sizeof *v);
		if (l->n)
			memcpy(v, l->v, (size_t)l->n * sizeof *v);
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = nd;
}

static void note_used(struct parser *ps, const char *name)
{
	struct ft_tpl *t = ps->t;
	for (int i = 0; i < t->nused; i++)
		if (!strcmp(t->used_names[i], name))
			return;
	if (t->nused == t->capused) {
		int cap = t->capused ? t->capused * 2 : 16;
		const char **v = alloc(ps, (size_t)cap * sizeof *v);
		if (t->nused)
			memcpy(v, t->used_names, (size_t)t->nused * sizeof *v);
		t->used_names = v;
		t->capused = cap;
	}
	t->used_names[t->nused++] = name;
}

/* ---- expressions ---- */

static struct node *parse_expression(struct parser *ps, int with_condexpr);
static struct node *parse_or(struct parser *ps);
static struct node *parse_unary(struct parser *ps, int with_filter);
static struct node *parse_primary(struct parser *ps);
static struct node *parse_postfix(struct parser *ps, struct node *nd);

static void parse_call_args(struct parser *ps, struct node *call)
{
	struct nlist args = { 0 }, kwv = { 0 };
	const char *names[64];
	int nkw = 0;
	expect_op(ps, "(");
	while (!is_op(cur(ps), ")")) {
		if (args.n || nkw)
			expect_op(ps, ",");
		if (is_op(cur(ps), ")"))
			break;  /* trailing comma */
		if (is_op(cur(ps), "*") || is_op(cur(ps), "**"))
			fail_at(ps, cur(ps)->off, "*args and **kwargs are not supported");
		if (cur(ps)->type == TK_NAME && is_op(peek(ps, 1), "=")) {
			if (nkw == 64)
				fail_at(ps, cur(ps)->off, "too many keyword arguments");
			names[nkw++] = dupname(ps, cur(ps));
			ps->pos += 2;
			nl_push(ps, &kwv, parse_expression(ps, 1));
		} else {
			if (nkw)
				fail_at(ps, cur(ps)->off, "positional argument after keyword argument");
			nl_push(ps, &args, parse_expression(ps, 1));
		}
	}
	ps->pos++;
	call->list = args.v;
	call->n = args.n;
	call->kwvals = kwv.v;
	call->nkw = nkw;
	if (nkw) {
		call->kwnames = alloc(ps, (size_t)nkw * sizeof *call->kwnames);
		memcpy(call->kwnames, names, (size_t)nkw * sizeof *names);
	}
}

static struct node *parse_filter(struct parser *ps, struct node *nd)
{
	/* at '|' */
	ps->pos++;
	struct tok *nt = expect_name(ps);
	struct node *f = mknode(ps, E_FILTER, nt->off);  /* messages point at the name */
	f->name = dupname(ps, nt);
	f->namelen = nt->len;
	f->id = jinja_filter_id(nt->p, nt->len);
	/* an unknown name is checked once the whole template is parsed
	 * (check_names): inside if and inline-if it fails at run time only */
	f->a = nd;
	if (is_op(cur(ps), "("))
		parse_call_args(ps, f);
	return f;
}

static struct node *parse_test(struct parser *ps, struct node *nd)
{
	/* at 'is' */
	size_t off = cur(ps)->off;
	ps->pos++;
	struct node *t = mknode(ps, E_TEST, off);
	if (is_name(cur(ps), "not")) {
		t->flag = 1;
		ps->pos++;
	}
	struct tok *nt = expect_name(ps);
	t->name = dupname(ps, nt);
	t->namelen = nt->len;
	t->id = jinja_test_id(nt->p, nt->len);

	t->a = nd;
	struct tok *c = cur(ps);
	if (is_op(c, "(")) {
		parse_call_args(ps, t);
	} else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT ||
		    c->type == TK_FLOAT || is_op(c, "[") || is_op(c, "{")) &&
		   !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
		if (is_name(c, "is"))
			fail_at(ps, c->off, "cannot chain multiple tests with 'is'");
		struct node *arg = parse_postfix(ps, parse_primary(ps));
		t->list = alloc(ps, sizeof *t->list);
		t->list[0] = arg;
		t->n = 1;
	}
	return t;
}

static struct node *parse_filter_expr(struct parser *ps, struct node *nd)
{
	int links = 0;
	for (;; links++) {
		struct tok *c = cur(ps);
		if (is_op(c, "|") || is_name(c, "is") || is_op(c, "("))
			nest(ps, c->off);
		if (is_op(c, "|")) {
			nd = parse_filter(ps, nd);
		} else if (is_name(c, "is")) {
			nd = parse_test(ps, nd);
		} else if (is_op(c, "(")) {
			struct node *call = mknode(ps, E_CALL, c->off);
			call->a = nd;
			parse_call_args(ps, call);
			nd = call;
		} else {
			ps->depth -= links;
			return nd;
		}
	}
}

static struct node *parse_subscript(struct parser *ps, struct node *obj, size_t off)
{
	/* after '[' */
	struct node *parts[3] = { NULL, NULL, NULL };
	int colons = 0;
	if (!is_op(cur(ps), ":"))
		parts[0] = parse_expression(ps, 1);
	if (is_op(cur(ps), ":")) {
		while (is_op(cur(ps), ":") && colons < 2) {
			ps->pos++;
			colons++;
			if (!is_op(cur(ps), ":") && !is_op(cur(ps), "]"))
				parts[colons] = parse_expression(ps, 1);
		}
	}
	expect_op(ps, "]");
	if (!colons) {
		if (!parts[0])
			fail_at(ps, off, "empty subscript");
		struct node *it = mknode(ps, E_ITEM, off);
		it->a = obj;
		it->b = parts[0];
		return it;
	}
	struct node *sl = mknode(ps, E_SLICE, off);
	sl->a = obj;
	sl->b = parts[0];
	sl->c = parts[1];
	sl->d = parts[2];
	return sl;
}

static struct node *parse_postfix(struct parser *ps, struct node *nd)
{
	int links = 0;
	for (;; links++) {
		struct tok *c = cur(ps);
		if (is_op(c, ".") || is_op(c, "[") || is_op(c, "("))
			nest(ps, c->off);
		if (is_op(c, ".")) {
			ps->pos++;
			struct tok *a = cur(ps);
			if (a->type == TK_NAME) {
				struct node *at = mknode(ps, E_ATTR, c->off);
				at->a = nd;
				at->name = dupname(ps, a);
				at->namelen = a->len;
				ps->pos++;
				nd = at;
			} else if (a->type == TK_INT) {
				struct node *it = mknode(ps, E_ITEM, c->off);
				struct node *k = mknode(ps, E_CONST, a->off);
				k->cval.kind = V_INT;
				k->cval.i = a->i;
				it->a = nd;
				it->b = k;
				ps->pos++;
				nd = it;
			} else {
				fail_tok(ps, "an attribute name");
			}
		} else if (is_op(c, "[")) {
			ps->pos++;
			nd = parse_subscript(ps, nd, c->off);
		} else if (is_op(c, "(")) {
			struct node *call = mknode(ps, E_CALL, c->off);
			call->a = nd;
			parse_call_args(ps, call);
			nd = call;
		} else {
			ps->depth -= links;
			return nd;
		}
	}
}

static struct node *make_const_str(struct parser *ps, size_t off, const char *p, size_t len)
{
	struct node *k = mknode(ps, E_CONST, off);
	struct jstr *s = alloc(ps, sizeof *s);
	s->p = p;
	s->len = len;
	k->cval.kind = V_STR;
	k->cval.s = s;
	return k;
}

static struct node *parse_tuple(struct parser *ps, int with_condexpr, int explicit_parens);
static struct node *parse_bracketed(struct parser *ps, struct tok *t);

static struct node *parse_primary(struct parser *ps)
{
	struct tok *t = cur(ps);
	struct node *nd;
	if (is_op(t, "(") || is_op(t, "[") || is_op(t, "{")) {
		nest(ps, t->off);
		nd = parse_bracketed(ps, t);
		ps->depth--;
		return nd;
	}
	switch (t->type) {
	case TK_NAME:
		ps->pos++;
		nd = mknode(ps, E_CONST, t->off);
		if (is_name(t, "true") || is_name(t, "True")) {
			nd->cval.kind = V_BOOL;
			nd->cval.b = true;
		} else if (is_name(t, "false") || is_name(t, "False")) {
			nd->cval.kind = V_BOOL;
			nd->cval.b = false;
		} else if (is_name(t, "none") || is_name(t, "None")) {
			nd->cval.kind = V_NONE;
		} else {
			nd->kind = E_NAME;
			nd->name = dupname(ps, t);
			nd->namelen = t->len;
			note_used(ps, nd->name);
		}
		return nd;
	case TK_STRING: {
		/* adjacent string literals concatenate */
		size_t total = 0;
		int k = ps->pos;
		while (ps->toks[k].type == TK_STRING)
			total += ps->toks[k++].len;
		char *p = alloc(ps, total + 1);
		size_t o = 0;
		while (cur(ps)->type == TK_STRING) {
			memcpy(p + o, cur(ps)->p, cur(ps)->len);
			o += cur(ps)->len;
			ps->pos++;
		}
		return make_const_str(ps, t->off, p, total);
	}
	case TK_INT:
		ps->pos++;
		nd = mknode(ps, E_CONST, t->off);
		nd->cval.kind = V_INT;
		nd->cval.i = t->i;
		return nd;
	case TK_FLOAT:
		ps->pos++;
		nd = mknode(ps, E_CONST, t->off);
		nd->cval.kind = V_FLOAT;
		nd->cval.f = t->f;
		return nd;
	default:
		break;
	}
	fail_tok(ps, "an expression");
}

/* ( tuple ), [ list ], { dict } */
static struct node *parse_bracketed(struct parser *ps, struct tok *t)
{
	struct node *nd;
	{
		if (is_op(t, "(")) {
			ps->pos++;
			nd = parse_tuple(ps, 1, 1);
			expect_op(ps, ")");
			return nd;
		}
		if (is_op(t, "[")) {
			ps->pos++;
			struct nlist items = { 0 };
			while (!is_op(cur(ps), "]")) {
				if (items.n)
					expect_op(ps, ",");
				if (is_op(cur(ps), "]"))
					break;
				nl_push(ps, &items, parse_expression(ps, 1));
			}
			ps->pos++;
			nd = mknode(ps, E_LIST, t->off);
			nd->list = items.v;
			nd->n = items.n;
			return nd;
		}
		if (is_op(t, "{")) {
			ps->pos++;
			struct nlist kv = { 0 };
			while (!is_op(cur(ps), "}")) {
				if (kv.n)
					expect_op(ps, ",");
				if (is_op(cur(ps), "}"))
					break;
				nl_push(ps, &kv, parse_expression(ps, 1));
				expect_op(ps, ":");
				nl_push(ps, &kv, parse_expression(ps, 1));
			}
			ps->pos++;
			nd = mknode(ps, E_DICT, t->off);
			nd->list = kv.v;
			nd->n = kv.n;
			return nd;
		}
	}
	fail_tok(ps, "an expression");
}

static struct node *parse_unary(struct parser *ps, int with_filter)
{
	struct tok *t = cur(ps);
	struct node *nd;
	if (is_op(t, "-") || is_op(t, "+")) {
		nest(ps, t->off);
		ps->pos++;
		nd = mknode(ps, is_op(t, "-") ? E_NEG : E_POS, t->off);
		nd->a = parse_unary(ps, 0);
		ps->depth--;
	} else {
		nd = parse_primary(ps);
	}
	nd = parse_postfix(ps, nd);
	if (with_filter)
		nd = parse_filter_expr(ps, nd);
	return nd;
}

static struct node *binop(struct parser *ps, int op, struct node *l, struct node *r, size_t off)
{
	struct node *nd = mknode(ps, E_BINOP, off);
	nd->op = (uint8_t)op;
	nd->a = l;
	nd->b = r;
	return nd;
}

static struct node *parse_pow(struct parser *ps)
{
	struct node *l = parse_unary(ps, 1);
	int links = 0;
	for (; is_op(cur(ps), "**"); links++) {
		size_t off = cur(ps)->off;
		nest(ps, off);
		ps->pos++;
		l = binop(ps, OP_POW, l, parse_unary(ps, 1), off);
	}
	ps->depth -= links;
	return l;
}

static struct node *parse_math2(struct parser *ps)
{
	struct node *l = parse_pow(ps);
	for (int links = 0;; links++) {
		struct tok *t = cur(ps);
		int op = is_op(t, "*") ? OP_MUL : is_op(t, "/") ? OP_DIV :
			 is_op(t, "//") ? OP_FLOORDIV : is_op(t, "%") ? OP_MOD : -1;
		if (op < 0) {
			ps->depth -= links;
			return l;
		}
		nest(ps, t->off);
		ps->pos++;
		l = binop(ps, op, l, parse_pow(ps), t->off);
	}
}

/* a ~ b ~ c is one flat node, as in jinja2 (no depth to recurse along) */
static struct node *parse_concat(struct parser *ps)
{
	struct node *l = parse_math2(ps);
	if (!is_op(cur(ps), "~"))
		return l;
	struct node *nd = mknode(ps, E_CONCAT, cur(ps)->off);
	struct nlist items = { 0 };
	nl_push(ps, &items, l);
	while (is_op(cur(ps), "~")) {
		ps->pos++;
		nl_push(ps, &items, parse_math2(ps));
	}
	nd->list = items.v;
	nd->n = items.n;
	return nd;
}

static struct node *parse_math1(struct parser *ps)
{
	struct node *l = parse_concat(ps);
	for (int links = 0;; links++) {
		struct tok *t = cur(ps);
		int op = is_op(t, "+") ? OP_ADD : is_op(t, "-") ? OP_SUB : -1;
		if (op < 0) {
			ps->depth -= links;
			return l;
		}
		nest(ps, t->off);
		ps->pos++;
		l = binop(ps, op, l, parse_concat(ps), t->off);
	}
}

static struct node *parse_compare(struct parser *ps)
{
	struct node *first = parse_math1(ps);
	struct nlist operands = { 0 };
	uint8_t ops[32];
	int nops = 0;
	size_t off = cur(ps)->off;
	for (;;) {
		struct tok *t = cur(ps);
		int op;
		if (is_op(t, "=="))
			op = CMP_EQ;
		else if (is_op(t, "!="))
			op = CMP_NE;
		else if (is_op(t, "<"))
			op = CMP_LT;
		else if (is_op(t, "<="))
			op = CMP_LE;
		else if (is_op(t, ">"))
			op = CMP_GT;
		else if (is_op(t, ">="))
			op = CMP_GE;
		else if (is_name(t, "in"))
			op = CMP_IN;
		else if (is_name(t, "not") && is_name(peek(ps, 1), "in")) {
			op = CMP_NOTIN;
			ps->pos++;
		} else
			break;
		ps->pos++;
		if (nops == 32)
			fail_at(ps, t->off, "comparison chain too long");
		nest(ps, t->off);
		ops[nops++] = (uint8_t)op;
		nl_push(ps, &operands, parse_math1(ps));
	}
	ps->depth -= nops;
	if (!nops)
		return first;
	struct node *nd = mknode(ps, E_COMPARE, off);
	nd->a = first;
	nd->list = operands.v;
	nd->n = nops;
	/* the ops ride in kwnames' slot as bytes */
	uint8_t *o = alloc(ps, (size_t)nops);
	memcpy(o, ops, (size_t)nops);
	nd->name = (const char *)o;
	return nd;
}

static struct node *parse_not(struct parser *ps)
{
	if (is_name(cur(ps), "not")) {
		nest(ps, cur(ps)->off);
		struct node *nd = mknode(ps, E_NOT, cur(ps)->off);
		ps->pos++;
		nd->a = parse_not(ps);
		ps->depth--;
		return nd;
	}
	return parse_compare(ps);
}

static struct node *parse_and(struct parser *ps)
{
	struct node *l = parse_not(ps);
	int links = 0;
	for (; is_name(cur(ps), "and"); links++) {
		nest(ps, cur(ps)->off);
		struct node *nd = mknode(ps, E_AND, cur(ps)->off);
		ps->pos++;
		nd->a = l;
		nd->b = parse_not(ps);
		l = nd;
	}
	ps->depth -= links;
	return l;
}

static struct node *parse_or(struct parser *ps)
{
	struct node *l = parse_and(ps);
	int links = 0;
	for (; is_name(cur(ps), "or"); links++) {
		nest(ps, cur(ps)->off);
		struct node *nd = mknode(ps, E_OR, cur(ps)->off);
		ps->pos++;
		nd->a = l;
		nd->b = parse_and(ps);
		l = nd;
	}
	ps->depth -= links;
	return l;
}

static struct node *parse_condexpr(struct parser *ps)
{
	size_t start = cur(ps)->off;
	struct node *e = parse_or(ps);
	int links = 0;
	for (; is_name(cur(ps), "if"); links++) {
		nest(ps, cur(ps)->off);
		struct node *nd = mknode(ps, E_COND, cur(ps)->off);
		/* what the value is when the condition is false and there is no
		 * else, as jinja2 words it */
		int line, col;
		position(ps, start, &line, &col);
		char hint[160];
		int hn = snprintf(hint, sizeof hint, "the inline if-expression on line %d evaluated "
				  "to false and no else section was defined.", line);
		char *h = alloc(ps, (size_t)hn + 1);
		memcpy(h, hint, (size_t)hn + 1);
		nd->name = h;
		ps->pos++;
		nd->b = e;
		nd->a = parse_or(ps);
		if (is_name(cur(ps), "else")) {
			ps->pos++;
			nd->c = parse_condexpr(ps);
		}
		e = nd;
		start = cur(ps)->off;
	}
	ps->depth -= links;
	return e;
}

static struct node *parse_expression(struct parser *ps, int with_condexpr)
{
	return with_condexpr ? parse_condexpr(ps) : parse_or(ps);
}

static int ends_tuple(struct parser *ps)
{
	struct tok *t = cur(ps);
	return t->type == TK_VAR_END || t->type == TK_BLOCK_END || t->type == TK_EOF ||
	       is_op(t, ")") || is_op(t, "]") || is_op(t, "}") || is_op(t, "=") ||
	       is_name(t, "in") || is_name(t, "recursive") || is_name(t, "if");
}

static struct node *parse_tuple(struct parser *ps, int with_condexpr, int explicit_parens)
{
	size_t off = cur(ps)->off;
	struct nlist items = { 0 };
	int comma = 0;
	for (;;) {
		if (items.n) {
			if (!is_op(cur(ps), ","))
				break;
			ps->pos++;
			comma = 1;
		}
		if (ends_tuple(ps) && (items.n || explicit_parens)) {
			if (!items.n && is_name(cur(ps), "if"))
				break;
			break;
		}
		nl_push(ps, &items, parse_expression(ps, with_condexpr));
	}
	if (!comma && items.n == 1)
		return items.v[0];
	if (!items.n && !explicit_parens)
		fail_tok(ps, "an expression");
	struct node *nd = mknode(ps, E_TUPLE, off);
	nd->list = items.v;
	nd->n = items.n;
	return nd;
}

/* ---- statements ---- */

static struct node *parse_body(struct parser *ps, const char *const *ends, int nends,
			       const char **stopped);

static void expect_block_end(struct parser *ps)
{
	if (cur(ps)->type != TK_BLOCK_END)
		fail_tok(ps, "end of statement block");
	ps->pos++;
}

/* targets of for/set: name or name, name, ... (optionally in parentheses) */
static void parse_targets(struct parser *ps, struct node *nd)
{
	const char *names[16];
	int n = 0, paren = 0;
	if (is_op(cur(ps), "(")) {
		paren = 1;
		ps->pos++;
	}
	for (;;) {
		struct tok *t = expect_name(ps);
		if (n == 16)
			fail_at(ps, t->off, "too many targets");
		names[n++] = dupname(ps, t);
		if (!is_op(cur(ps), ","))
			break;
		ps->pos++;
	}
	if (paren)
		expect_op(ps, ")");
	nd->names = alloc(ps, (size_t)n * sizeof *names);
	memcpy(nd->names, names, (size_t)n * sizeof *names);
	nd->nnames = n;
}

static struct node *parse_for(struct parser *ps, size_t off)
{
	struct node *nd = mknode(ps, N_FOR, off);
	parse_targets(ps, nd);
	if (!is_name(cur(ps), "in"))
		fail_tok(ps, "'in'");
	ps->pos++;
	nd->a = parse_tuple(ps, 0, 0);
	if (is_name(cur(ps), "if")) {
		ps->pos++;
		nd->flag = 1;
		nd->b = parse_expression(ps, 1);
	}
	if (is_name(cur(ps), "recursive"))
		fail_at(ps, cur(ps)->off, "recursive loops are not supported");
	expect_block_end(ps);
	static const char *const ends[] = { "endfor", "else" };
	const char *stopped;
	ps->loop_depth++;
	nd->c = parse_body(ps, ends, 2, &stopped);
	ps->loop_depth--;
	if (!strcmp(stopped, "else")) {
		static const char *const ends2[] = { "endfor" };
		nd->d = parse_body(ps, ends2, 1, &stopped);
	}
	return nd;
}

static struct node *parse_if(struct parser *ps, size_t off)
{
	struct node *nd = mknode(ps, N_IF, off);
	nd->a = parse_tuple(ps, 1, 0);
	expect_block_end(ps);
	static const char *const ends[] = { "elif", "else", "endif" };
	const char *stopped;
	nd->b = parse_body(ps, ends, 3, &stopped);
	if (!strcmp(stopped, "elif")) {
		nest(ps, ps->toks[ps->pos - 1].off);
		nd->c = parse_if(ps, ps->toks[ps->pos - 1].off);
		ps->depth--;
	} else if (!strcmp(stopped, "else")) {
		static const char *const ends2[] = { "endif" };
		nd->c = parse_body(ps, ends2, 1, &stopped);
	}
	return nd;
}

static struct node *parse_set(struct parser *ps, size_t off)
{
	struct node *nd = mknode(ps, N_SET, off);
	if (cur(ps)->type == TK_NAME && is_op(peek(ps, 1), ".")) {
		/* namespace attribute: {% set ns.attr = value %} */
		struct tok *obj = expect_name(ps);
		ps->pos++;
		struct tok *attr = expect_name(ps);
		nd->flag = 1;
		nd->name = dupname(ps, obj);
		note_used(ps, nd->name);
		nd->names = alloc(ps, sizeof *nd->names);
		nd->names[0] = dupname(ps, attr);
		nd->nnames = 1;
	} else {
		parse_targets(ps, nd);
	}
	if (is_op(cur(ps), "=")) {
		ps->pos++;
		nd->a = parse_tuple(ps, 1, 0);
		expect_block_end(ps);
		return nd;
	}
	/* block set: {% set name [| filter] %}...{% endset %} */
	if (nd->flag || nd->nnames != 1)
		fail_tok(ps, "'='");
	nd->kind = N_SETBLOCK;
	if (is_op(cur(ps), "|")) {
		struct node *f = parse_filter(ps, NULL);
		while (is_op(cur(ps), "|"))
			f = parse_filter(ps, f);
		nd->b = f;
	}
	expect_block_end(ps);
	static const char *const ends[] = { "endset" };
	const char *stopped;
	nd->a = parse_body(ps, ends, 1, &stopped);
	return nd;
}

/* Does the subtree read the variable name? (depth bounded by MAX_NEST) */
static bool reads_name(const struct node *nd, const char *name)
{
	if (!nd)
		return false;
	if (nd->kind == E_NAME && !strcmp(nd->name, name))
		return true;
	if (reads_name(nd->a, name) || reads_name(nd->b, name) || reads_name(nd->c, name) ||
	    reads_name(nd->d, name))
		return true;
	for (int i = 0; i < nd->n; i++)
		if (reads_name(nd->list[i], name))
			return true;
	for (int i = 0; i < nd->nkw; i++)
		if (reads_name(nd->kwvals[i], name))
			return true;
	if (nd->kind == N_MACRO)
		for (int i = 0; i < nd->nnames; i++)
			if (reads_name(nd->kwvals[i], name))
				return true;
	return false;
}

static struct node *parse_macro(struct parser *ps, size_t off)
{
	struct node *nd = mknode(ps, N_MACRO, off);
	struct tok *name = expect_name(ps);
	nd->name = dupname(ps, name);
	nd->namelen = name->len;
	expect_op(ps, "(");
	const char *params[32];
	struct node *defaults[32];
	int n = 0;
	while (!is_op(cur(ps), ")")) {
		if (n)
			expect_op(ps, ",");
		if (is_op(cur(ps), ")"))
			break;
		struct tok *p = expect_name(ps);
		if (n == 32)
			fail_at(ps, p->off, "too many macro parameters");
		params[n] = dupname(ps, p);
		defaults[n] = NULL;
		if (is_op(cur(ps), "=")) {
			ps->pos++;
			defaults[n] = parse_expression(ps, 1);
		} else if (n && defaults[n - 1]) {
			fail_at(ps, p->off, "non-default argument follows default argument");
		}
		n++;
	}
	ps->pos++;
	expect_block_end(ps);
	nd->names = alloc(ps, (size_t)(n ? n : 1) * sizeof *nd->names);
	nd->kwvals = alloc(ps, (size_t)(n ? n : 1) * sizeof *nd->kwvals);
	memcpy(nd->names, params, (size_t)n * sizeof *params);
	memcpy(nd->kwvals, defaults, (size_t)n * sizeof *defaults);
	nd->nnames = n;
	static const char *const ends[] = { "endmacro" };
	const char *stopped;
	int saved = ps->loop_depth;
	ps->loop_depth = 0;
	nd->a = parse_body(ps, ends, 1, &stopped);
	ps->loop_depth = saved;
	nd->op = (uint8_t)((reads_name(nd->a, "varargs") ? MACRO_VARARGS : 0) |
			   (reads_name(nd->a, "kwargs") ? MACRO_KWARGS : 0));
	return nd;
}

static struct node *parse_statement_kind(struct parser *ps, struct tok *t, size_t off);

/* {% with a = x, b = y %}...{% endwith %}: the values are evaluated
 * outside, the names live inside only */
static struct node *parse_with(struct parser *ps, size_t off)
{
	struct node *nd = mknode(ps, N_WITH, off);
	struct nlist vals = { 0 };
	const char *names[64];
	int n = 0;
	while (cur(ps)->type != TK_BLOCK_END) {
		if (n)
			expect_op(ps, ",");
		struct tok *t = expect_name(ps);
		if (n == 64)
			fail_at(ps, t->off, "too many targets");
		names[n++] = dupname(ps, t);
		expect_op(ps, "=");
		nl_push(ps, &vals, parse_expression(ps, 1));
	}
	expect_block_end(ps);
	nd->names = alloc(ps, (size_t)(n ? n : 1) * sizeof *nd->names);
	memcpy(nd->names, names, (size_t)n * sizeof *names);
	nd->nnames = n;
	nd->list = vals.v;
	nd->n = vals.n;
	static const char *const ends[] = { "endwith" };
	const char *stopped;
	nd->a = parse_body(ps, ends, 1, &stopped);
	return nd;
}

static struct node *parse_statement(struct parser *ps)
{
	/* at the name after {% */
	struct tok *t = cur(ps);
	if (t->type != TK_NAME)
		fail_tok(ps, "a statement name");
	size_t off = t->off;
	ps->pos++;
	nest(ps, off);
	struct node *nd = parse_statement_kind(ps, t, off);
	ps->depth--;
	return nd;
}

static struct node *parse_statement_kind(struct parser *ps, struct tok *t, size_t off)
{
	if (is_name(t, "if"))
		return parse_if(ps, off);
	if (is_name(t, "for"))
		return parse_for(ps, off);
	if (is_name(t, "set"))
		return parse_set(ps, off);
	if (is_name(t, "macro"))
		return parse_macro(ps, off);
	if (is_name(t, "with"))
		return parse_with(ps, off);
	if (is_name(t, "generation")) {
		struct node *nd = mknode(ps, N_GENERATION, off);
		expect_block_end(ps);
		static const char *const ends[] = { "endgeneration" };
		const char *stopped;
		/* its body is a function in jinja2 (transformers' call block):
		 * a loop around it cannot be left from inside */
		int saved = ps->loop_depth;
		ps->loop_depth = 0;
		nd->a = parse_body(ps, ends, 1, &stopped);
		ps->loop_depth = saved;
		ps->t->has_generation = true;
		return nd;
	}
	if (is_name(t, "filter")) {
		struct node *nd = mknode(ps, N_FILTERBLOCK, off);
		ps->pos--;
		/* reuse the filter parser: pretend the name follows a '|' */
		struct tok *nt = &ps->toks[ps->pos + 1];
		ps->pos++;
		struct node *f = mknode(ps, E_FILTER, nt->off);
		struct tok *fname = expect_name(ps);
		f->name = dupname(ps, fname);
		f->namelen = fname->len;
		f->id = jinja_filter_id(fname->p, fname->len);

		if (is_op(cur(ps), "("))
			parse_call_args(ps, f);
		while (is_op(cur(ps), "|"))
			f = parse_filter(ps, f);
		nd->b = f;
		expect_block_end(ps);
		static const char *const ends[] = { "endfilter" };
		const char *stopped;
		nd->a = parse_body(ps, ends, 1, &stopped);
		return nd;
	}
	if (is_name(t, "break") || is_name(t, "continue")) {
		if (!ps->loop_depth)
			fail_at(ps, off, "'%.*s' outside of a loop", (int)t->len, t->p);
		struct node *nd = mknode(ps, is_name(t, "break") ? N_BREAK : N_CONTINUE, off);
		expect_block_end(ps);
		return nd;
	}
	fail_at(ps, off, "unknown tag '%.*s'", (int)t->len, t->p);
}

/* Parse statements until a block tag named in ends (consumed, with its block
 * end; *stopped = its name) or, with nends == 0, the end of the template. */
static struct node *parse_body(struct parser *ps, const char *const *ends, int nends,
			       const char **stopped)
{
	struct node *body = mknode(ps, N_BODY, cur(ps)->off);
	struct nlist items = { 0 };
	for (;;) {
		struct tok *t = cur(ps);
		if (t->type == TK_EOF) {
			if (nends)
				fail_at(ps, t->off, "unexpected end of template, expected '%s'",
					ends[nends - 1]);
			break;
		}
		if (t->type == TK_DATA) {
			struct node *d = mknode(ps, N_DATA, t->off);
			d->text.p = t->p;
			d->text.len = t->len;
			nl_push(ps, &items, d);
			ps->pos++;
		} else if (t->type == TK_VAR_BEGIN) {
			ps->pos++;
			struct node *o = mknode(ps, N_OUTPUT, t->off);
			o->a = parse_tuple(ps, 1, 0);
			if (cur(ps)->type != TK_VAR_END)
				fail_tok(ps, "end of print statement");
			ps->pos++;
			nl_push(ps, &items, o);
		} else if (t->type == TK_BLOCK_BEGIN) {
			struct tok *nt = peek(ps, 1);
			for (int i = 0; i < nends; i++)
				if (is_name(nt, ends[i])) {
					*stopped = ends[i];
					ps->pos += 2;
					if (strcmp(ends[i], "elif"))
						expect_block_end(ps);
					goto done;
				}
			if (nt->type == TK_NAME &&
			    (is_name(nt, "endif") || is_name(nt, "endfor") || is_name(nt, "else") ||
			     is_name(nt, "elif") || is_name(nt, "endset") || is_name(nt, "endmacro") ||
			     is_name(nt, "endgeneration") || is_name(nt, "endfilter") ||
			     is_name(nt, "endwith")))
				fail_at(ps, nt->off, "unexpected '%.*s'", (int)nt->len, nt->p);
			ps->pos++;
			nl_push(ps, &items, parse_statement(ps));
		} else {
			fail_tok(ps, "template data or a tag");
		}
	}
done:
	body->list = items.v;
	body->n = items.n;
	return body;
}

/* Unknown filters and tests: jinja2 (3.x) rejects them when compiling,
 * except inside an if statement or an inline if (a "soft frame"), where
 * the error waits until they are used. Loop, macro, block-set, filter and
 * call-block bodies are frames of their own, not soft. */
static void check_names(struct parser *ps, const struct node *nd, bool soft)
{
	if (!nd)
		return;
	if ((nd->kind == E_FILTER || nd->kind == E_TEST) && nd->id < 0 && !soft) {
		ps->err->line = nd->line;
		ps->err->col = nd->col;
		ps->err->code = FT_E_PARSE;
		snprintf(ps->err->msg, sizeof ps->err->msg, "no %s named '%s'",
			 nd->kind == E_FILTER ? "filter" : "test", nd->name);
		longjmp(ps->fail, 1);
	}
	bool inner = soft;  /* what the statement bodies get */
	switch (nd->kind) {
	case N_IF: case E_COND:
		soft = inner = true;
		break;
	case N_FOR:
		check_names(ps, nd->a, soft);
		check_names(ps, nd->b, false);
		check_names(ps, nd->c, false);
		check_names(ps, nd->d, soft);
		return;
	case N_MACRO:
		for (int i = 0; i < nd->nnames; i++)
			check_names(ps, nd->kwvals[i], false);
		soft = inner = false;
		break;
	case N_SETBLOCK: case N_FILTERBLOCK: case N_GENERATION: case N_WITH:
		inner = false;  /* the body; N_WITH's values stay in this frame */
		break;
	default:
		break;
	}
	check_names(ps, nd->a, inner);
	check_names(ps, nd->b, inner);
	check_names(ps, nd->c, inner);
	check_names(ps, nd->d, inner);
	for (int i = 0; i < nd->n; i++)
		check_names(ps, nd->list[i], soft);
	for (int i = 0; i < nd->nkw; i++)
		check_names(ps, nd->kwvals[i], soft);
}

int ft_tpl_compile(struct ft_tpl **out, const char *name, const char *src, size_t len,
		   struct ft_err *err)
{
	*out = NULL;
	struct ft_tpl *t = calloc(1, sizeof *t);
	if (!t)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	ft_arena_init(&t->arena, 0);
	struct parser ps = { .t = t, .err = err };
	char *norm = NULL;
	if (setjmp(ps.fail)) {
		free(ps.toks);
		free(ps.line_starts);
		ft_tpl_free(t);
		return err && err->code ? err->code : FT_E_PARSE;
	}
	size_t bad;
	if (!ft_utf8_valid(src, len, &bad)) {
		ps.src = src;
		ps.len = bad;
		ps.line_starts = malloc(sizeof *ps.line_starts);
		ps.line_starts[0] = 0;
		ps.nlines = 1;
		for (size_t i = 0; i < bad; i++)
			if (src[i] == '\n') {
				size_t *ls = realloc(ps.line_starts, (size_t)(ps.nlines + 1) * sizeof *ls);
				if (!ls)
					break;
				ps.line_starts = ls;
				ps.line_starts[ps.nlines++] = i + 1;
			}
		fail_at(&ps, bad, "invalid UTF-8 in template");
	}
	/* newline normalisation, as jinja2's lexer does before tokenising */
	norm = alloc(&ps, len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r') {
			norm[n++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			norm[n++] = src[i];
		}
	}
	if (n && norm[n - 1] == '\n')
		n--;  /* keep_trailing_newline=False */
	norm[n] = 0;
	ps.src = norm;
	ps.len = n;
	size_t nl = 1;
	for (size_t i = 0; i < n; i++)
		nl += norm[i] == '\n';
	ps.line_starts = malloc(nl * sizeof *ps.line_starts);
	if (!ps.line_starts) {
		ft_err_set(err, FT_E_NOMEM, "out of memory");
		longjmp(ps.fail, 2);
	}
	ps.line_starts[0] = 0;
	ps.nlines = 1;
	for (size_t i = 0; i < n; i++)
		if (norm[i] == '\n')
			ps.line_starts[ps.nlines++] = i + 1;
	t->name = ft_arena_strndup(&t->arena, name ? name : "template", strlen(name ? name : "template"));
	lex(&ps);
	const char *stopped = NULL;
	t->root = parse_body(&ps, NULL, 0, &stopped);
	struct ft_err scratch;
	if (!ps.err)
		ps.err = &scratch;
	check_names(&ps, t->root, false);
	free(ps.toks);
	free(ps.line_starts);
	*out = t;
	return FT_OK;
}

void ft_tpl_free(struct ft_tpl *t)
{
	if (!t)
		return;
	ft_arena_release(&t->arena);
	free(t);
}

bool ft_tpl_has_generation(const struct ft_tpl *t)
{
	return t->has_generation;
}

bool ft_tpl_uses(const struct ft_tpl *t, const char *name)
{
	for (int i = 0; i < t->nused; i++)
		if (!strcmp(t->used_names[i], name))
			return true;
	return false;
}
