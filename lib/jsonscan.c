/* jsonscan.c: a strict JSON validator (RFC 8259 grammar) by recursive
 * descent that notes where the values at some dotted paths are. Strings, the
 * bulk of most records, are skipped eight bytes at a time. */
#include "jsonscan.h"
#include "ft.h"
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 512       /* deeper input goes to the full parser */
#define MAX_COMPONENTS 32
#define KEY_DECODE_MAX 256  /* escaped keys longer than this go there too */

struct comp {
	const char *p;
	size_t len;
	long index;             /* the array index it names, or -1 */
};

struct scan {
	const unsigned char *s, *end;
	size_t npaths;
	int ncomp[FT_JSONSCAN_MAX_PATHS];     /* -1: can never match */
	struct comp comp[FT_JSONSCAN_MAX_PATHS][MAX_COMPONENTS];
	struct ft_jsonscan_span *found;
};

static inline void skip_ws(struct scan *sc)
{
	const unsigned char *s = sc->s, *end = sc->end;
	while (s < end && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
		s++;
	sc->s = s;
}

static int hex4(const unsigned char *s, const unsigned char *end, unsigned *v)
{
	if (end - s < 4)
		return -1;
	unsigned x = 0;
	for (int i = 0; i < 4; i++) {
		unsigned c = s[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 32) >= 'a' && (c | 32) <= 'f')
			d = (c | 32) - 'a' + 10;
		else
			return -1;
		x = x << 4 | d;
	}
	*v = x;
	return 0;
}

/* A string at sc->s (the opening quote). Sets *escaped if it holds a
 * backslash. cJSON rejects lone surrogates in \u escapes, so we do too. */
static int scan_string(struct scan *sc, bool *escaped)
{
	const unsigned char *s = sc->s + 1, *end = sc->end;
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	*escaped = false;
	for (;;) {
		/* skip words with no '"', no '\\' and no byte below 0x20 */
		while (end - s >= 8) {
			uint64_t w, q, b;
			memcpy(&w, s, 8);
			q = w ^ (ones * '"');
			b = w ^ (ones * '\\');
			if (((q - ones) & ~q & highs) | ((b - ones) & ~b & highs) |
			    ((w - ones * 0x20) & ~w & highs))
				break;
			s += 8;
		}
		if (s >= end)
			return FT_E_PARSE;
		unsigned c = *s;
		if (c == '"') {
			sc->s = s + 1;
			return FT_OK;
		}
		if (c < 0x20)
			return FT_E_PARSE;
		if (c != '\\') {
			s++;
			continue;
		}
		*escaped = true;
		if (end - s < 2)
			return FT_E_PARSE;
		switch (s[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			s += 2;
			break;
		case 'u': {
			unsigned u, lo;
			if (hex4(s + 2, end, &u))
				return FT_E_PARSE;
			s += 6;
			if (u >= 0xDC00 && u <= 0xDFFF)
				return FT_E_PARSE;
			if (u >= 0xD800 && u <= 0xDBFF) {
				if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, end, &lo) ||
				    lo < 0xDC00 || lo > 0xDFFF)
					return FT_E_PARSE;
				s += 6;
			}
			break;
		}
		default:
			return FT_E_PARSE;
		}
	}
}

static int scan_number(struct scan *sc)
{
	const unsigned char *s = sc->s, *end = sc->end;
	if (s < end && *s == '-')
		s++;
	if (s >= end)
		return FT_E_PARSE;
	if (*s == '0') {
		s++;
	} else if (*s >= '1' && *s <= '9') {
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	} else {
		return FT_E_PARSE;
	}
	if (s < end && *s == '.') {
		s++;
		if (s >= end || *s < '0' || *s > '9')
			return FT_E_PARSE;
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	}
	if (s < end && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < end && (*s == '+' || *s == '-'))
			s++;
		if (s >= end || *s < '0' || *s > '9')
			return FT_E_PARSE;
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	}
	sc->s = s;
	return FT_OK;
}

static int scan_literal(struct scan *sc, const char *word, size_t n)
{
	if ((size_t)(sc->end - sc->s) < n || memcmp(sc->s, word, n) != 0)
		return FT_E_PARSE;
	sc->s += n;
	return FT_OK;
}

/* Decode the JSON string body raw[0..n) into out (cap bytes); returns the
 * length up to the first NUL (where cJSON's C string ends), or -1 if it does
 * not fit. The body has been validated. */
static long decode(const unsigned char *raw, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		unsigned c = raw[i];
		char enc[4];
		size_t k = 1;
		if (c != '\\') {
			enc[0] = (char)c;
			i++;
		} else {
			unsigned e = raw[i + 1];
			i += 2;
			switch (e) {
			case 'b': enc[0] = '\b'; break;
			case 'f': enc[0] = '\f'; break;
			case 'n': enc[0] = '\n'; break;
			case 'r': enc[0] = '\r'; break;
			case 't': enc[0] = '\t'; break;
			case 'u': {
				unsigned u = 0, lo = 0xDC00;  /* validated: hex4 succeeds */
				hex4(raw + i, raw + n, &u);
				i += 4;
				if (u >= 0xD800 && u <= 0xDBFF) {
					hex4(raw + i + 2, raw + n, &lo);
					i += 6;
					u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
				}
				k = (size_t)ft_utf8_encode((int32_t)u, enc);
				break;
			}
			default: enc[0] = (char)e; break;
			}
		}
		if (k == 1 && enc[0] == 0)
			return (long)o;
		if (o + k > cap)
			return -1;
		memcpy(out + o, enc, k);
		o += k;
	}
	return (long)o;
}

static int scan_value(struct scan *sc, int depth, unsigned live);

/* Paths in live that go on below this object through member key raw[0..n). */
static int key_matches(struct scan *sc, int depth, unsigned live, unsigned *used,
		       const unsigned char *raw, size_t n, bool escaped, unsigned *child)
{
	char buf[KEY_DECODE_MAX];
	const char *key = (const char *)raw;
	*child = 0;
	if (escaped) {
		long k = decode(raw, n, buf, sizeof buf);
		if (k < 0)
			return FT_E_PARSE;
		key = buf;
		n = (size_t)k;
	}
	for (size_t p = 0; p < sc->npaths; p++) {
		unsigned bit = 1u << p;
		if (!(live & bit) || (*used & bit))
			continue;
		const struct comp *c = &sc->comp[p][depth];
		if (c->len == n && memcmp(c->p, key, n) == 0) {
			*used |= bit;   /* like cJSON lookups: the first such key only */
			*child |= bit;
		}
	}
	return FT_OK;
}

/* live: the paths whose first depth components lead here */
static unsigned deeper(const struct scan *sc, int depth, unsigned live)
{
	unsigned m = 0;
	for (size_t p = 0; p < sc->npaths; p++)
		if ((live & (1u << p)) && sc->ncomp[p] > depth)
			m |= 1u << p;
	return m;
}

static int scan_object(struct scan *sc, int depth, unsigned live)
{
	unsigned used = 0, below = deeper(sc, depth, live);
	sc->s++;
	skip_ws(sc);
	if (sc->s < sc->end && *sc->s == '}') {
		sc->s++;
		return FT_OK;
	}
	for (;;) {
		if (sc->s >= sc->end || *sc->s != '"')
			return FT_E_PARSE;
		const unsigned char *key = sc->s + 1;
		bool escaped;
		if (scan_string(sc, &escaped))
			return FT_E_PARSE;
		unsigned child = 0;
		if (below && key_matches(sc, depth, below, &used, key,
					 (size_t)(sc->s - 1 - key), escaped, &child))
			return FT_E_PARSE;
		skip_ws(sc);
		if (sc->s >= sc->end || *sc->s != ':')
			return FT_E_PARSE;
		sc->s++;
		skip_ws(sc);
		if (scan_value(sc, depth + 1, child))
			return FT_E_PARSE;
		skip_ws(sc);
		if (sc->s >= sc->end)
			return FT_E_PARSE;
		if (*sc->s == '}') {
			sc->s++;
			return FT_OK;
		}
		if (*sc->s != ',')
			return FT_E_PARSE;
		sc->s++;
		skip_ws(sc);
	}
}

static int scan_array(struct scan *sc, int depth, unsigned live)
{
	unsigned below = deeper(sc, depth, live);
	long index = 0;
	sc->s++;
	skip_ws(sc);
	if (sc->s < sc->end && *sc->s == ']') {
		sc->s++;
		return FT_OK;
	}
	for (;; index++) {
		unsigned child = 0;
		for (size_t p = 0; below && p < sc->npaths; p++)
			if ((below & (1u << p)) && sc->comp[p][depth].index == index)
				child |= 1u << p;
		if (scan_value(sc, depth + 1, child))
			return FT_E_PARSE;
		skip_ws(sc);
		if (sc->s >= sc->end)
			return FT_E_PARSE;
		if (*sc->s == ']') {
			sc->s++;
			return FT_OK;
		}
		if (*sc->s != ',')
			return FT_E_PARSE;
		sc->s++;
		skip_ws(sc);
	}
}

static int scan_value(struct scan *sc, int depth, unsigned live)
{
	if (depth > MAX_DEPTH || sc->s >= sc->end)
		return FT_E_PARSE;
	const unsigned char *start = sc->s;
	bool escaped;
	int rc;
	switch (*sc->s) {
	case '{': rc = scan_object(sc, depth, live); break;
	case '[': rc = scan_array(sc, depth, live); break;
	case '"': rc = scan_string(sc, &escaped); break;
	case 't': rc = scan_literal(sc, "true", 4); break;
	case 'f': rc = scan_literal(sc, "false", 5); break;
	case 'n': rc = scan_literal(sc, "null", 4); break;
	default: rc = scan_number(sc); break;
	}
	if (rc)
		return rc;
	for (size_t p = 0; live && p < sc->npaths; p++) {
		if ((live & (1u << p)) && sc->ncomp[p] == depth) {
			sc->found[p].p = (const char *)start;
			sc->found[p].len = (size_t)(sc->s - start);
		}
	}
	return FT_OK;
}

/* Split a dotted path the way ft_json_path() walks it: a trailing dot
 * matches nothing, a part of 1 to 9 digits also indexes arrays. */
static int split_path(struct scan *sc, size_t p, const char *path)
{
	size_t len = strlen(path);
	if (len && path[len - 1] == '.') {
		sc->ncomp[p] = -1;
		return FT_OK;
	}
	int n = 0;
	const char *s = path;
	while (*s) {
		if (n == MAX_COMPONENTS)
			return FT_E_PARSE;
		const char *dot = strchr(s, '.');
		size_t k = dot ? (size_t)(dot - s) : strlen(s);
		struct comp *c = &sc->comp[p][n++];
		c->p = s;
		c->len = k;
		c->index = -1;
		if (k > 0 && k < 10 && strspn(s, "0123456789") >= k) {
			long v = 0;
			for (size_t i = 0; i < k; i++)
				v = v * 10 + (s[i] - '0');
			c->index = v;
		}
		s = dot ? dot + 1 : s + k;
	}
	sc->ncomp[p] = n;
	return FT_OK;
}

int ft_jsonscan(const char *text, size_t len, const char *const *paths, size_t npaths,
		struct ft_jsonscan_span *found)
{
	struct scan sc;
	if (npaths > FT_JSONSCAN_MAX_PATHS)
		return FT_E_INVAL;
	sc.s = (const unsigned char *)text;
	sc.end = sc.s + len;
	sc.npaths = npaths;
	sc.found = found;
	unsigned live = 0;
	for (size_t p = 0; p < npaths; p++) {
		found[p].p = NULL;
		found[p].len = 0;
		if (split_path(&sc, p, paths[p]))
			return FT_E_PARSE;
		if (sc.ncomp[p] >= 0)
			live |= 1u << p;
	}
	skip_ws(&sc);
	if (scan_value(&sc, 0, live))
		return FT_E_PARSE;
	skip_ws(&sc);
	return sc.s == sc.end ? FT_OK : FT_E_PARSE;
}

int ft_jsonscan_string(const struct ft_jsonscan_span *s, struct ft_buf *out)
{
	const unsigned char *raw = (const unsigned char *)s->p + 1;
	size_t n = s->len - 2;
	if (!memchr(raw, '\\', n)) {
		const void *nul = memchr(raw, 0, n);
		return ft_buf_append(out, raw, nul ? (size_t)((const unsigned char *)nul - raw) : n);
	}
	/* decoding never grows the text */
	int rc = ft_buf_reserve(out, n);
	if (rc)
		return rc;
	long k = decode(raw, n, out->data + out->len, n);
	out->len += (size_t)k;
	out->data[out->len] = 0;
	return FT_OK;
}
