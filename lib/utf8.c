/* utf8.c: UTF-8 validation and coding by hand (it is on every hot path),
 * normalisation and case mapping on utf8proc, with the full (SpecialCasing)
 * mappings and the Cased property that Python's str methods use taken from
 * the generated utf8tab.h. */
#include "utf8.h"
#include "ft.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "utf8tab.h"

#define ASCII_MASK 0x8080808080808080ULL

/* Length of the run of ASCII bytes at the start of p[0..n). */
static size_t ascii_prefix(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (n - i >= 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w & ASCII_MASK)
			break;
		i += 8;
	}
	while (i < n && p[i] < 0x80)
		i++;
	return i;
}

/* Length of the valid multi-byte sequence at p (p[0] >= 0x80), or 0.
 * The ranges are those of RFC 3629's UTF8-2/3/4 rules, which exclude
 * overlongs, surrogates and code points above U+10FFFF. */
static size_t valid_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	unsigned lo = 0x80, hi = 0xBF;
	size_t len;

	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

bool ft_utf8_valid(const char *s, size_t len, size_t *bad)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i];
		if (c < 0x80) {
			i += ascii_prefix(p + i, len - i);
			continue;
		}
		/* three-byte sequences (most of CJK) inline: they dominate such text */
		if ((c & 0xF0) == 0xE0 && len - i >= 3 && c != 0xE0 && c != 0xED &&
		    (p[i + 1] & 0xC0) == 0x80 && (p[i + 2] & 0xC0) == 0x80) {
			i += 3;
			continue;
		}
		size_t n = valid_seq(p + i, len - i);
		if (!n) {
			if (bad)
				*bad = i;
			return false;
		}
		i += n;
	}
	return true;
}

int ft_utf8_decode(const char *s, size_t len, int32_t *cp)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned c = p[0];

	if (c < 0x80) {
		*cp = (int32_t)c;
		return 1;
	}
	size_t n = valid_seq(p, len);
	switch (n) {
	case 2:
		*cp = (int32_t)((c & 0x1F) << 6 | (p[1] & 0x3F));
		return 2;
	case 3:
		*cp = (int32_t)((c & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F));
		return 3;
	case 4:
		*cp = (int32_t)((c & 0x07) << 18 | (p[1] & 0x3F) << 12 |
				(p[2] & 0x3F) << 6 | (p[3] & 0x3F));
		return 4;
	default:
		/* not valid after all: consume one byte so callers always advance */
		*cp = 0xFFFD;
		return 1;
	}
}

int ft_utf8_encode(int32_t cp, char out[4])
{
	unsigned char *o = (unsigned char *)out;
	uint32_t c = (uint32_t)cp;

	if (c < 0x80) {
		o[0] = (unsigned char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (unsigned char)(0xC0 | c >> 6);
		o[1] = (unsigned char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		c = 0xFFFD;
	if (c < 0x10000) {
		o[0] = (unsigned char)(0xE0 | c >> 12);
		o[1] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
		o[2] = (unsigned char)(0x80 | (c & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | c >> 18);
	o[1] = (unsigned char)(0x80 | (c >> 12 & 0x3F));
	o[2] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
	o[3] = (unsigned char)(0x80 | (c & 0x3F));
	return 4;
}

size_t ft_utf8_count(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

size_t ft_utf8_offset(const char *s, size_t len, size_t cp_index)
{
	size_t i = 0;
	while (i < len) {
		if (((unsigned char)s[i] & 0xC0) != 0x80) {
			if (cp_index == 0)
				return i;
			cp_index--;
		}
		i++;
	}
	return len;
}

/* A code point that can neither change under NFC nor combine with its
 * neighbours: combining class 0, no canonical decomposition, never the second
 * half of a composition, not a conjoining Hangul jamo. Conservative: a false
 * "no" only sends the string to the full normaliser. */
static bool nfc_inert(int32_t cp)
{
	if (cp < 0x300)
		return true;
	if (cp >= 0x1100 && cp <= 0x11FF)
		return false;
	const utf8proc_property_t *p = utf8proc_get_property(cp);
	if (p->combining_class != 0)
		return false;
	if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0)
		return false;
	/* utf8proc marks code points that compose with a preceding starter
	 * with comb_index >= 0x8000 (0xFFFF = takes part in none) */
	if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000)
		return false;
	return true;
}

bool ft_utf8_is_nfc(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	bool inert = true;

	while (i < len) {
		if (p[i] < 0x80) {
			i += ascii_prefix(p + i, len - i);
			continue;
		}
		int32_t cp;
		i += (size_t)ft_utf8_decode(s + i, len - i, &cp);
		if (!nfc_inert(cp)) {
			inert = false;
			break;
		}
	}
	if (inert)
		return true;

	utf8proc_uint8_t *dst = NULL;
	utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len,
					  &dst, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	bool same = n >= 0 && (size_t)n == len && memcmp(dst, s, len) == 0;
	free(dst);
	return same;
}

int ft_utf8_nfc(const char *s, size_t len, struct ft_buf *out)
{
	utf8proc_uint8_t *dst = NULL;
	utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len,
					  &dst, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (n < 0) {
		free(dst);
		return n == UTF8PROC_ERROR_NOMEM ? FT_E_NOMEM : FT_E_UTF8;
	}
	int rc = ft_buf_append(out, dst, (size_t)n);
	free(dst);
	return rc;
}

/* ---- case mapping ------------------------------------------------------ */

static const struct ft_utf8_special *find_special(const struct ft_utf8_special *t,
						  size_t n, int32_t cp)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t[mid].cp == cp)
			return &t[mid];
		if (t[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool is_cased(int32_t cp)
{
	size_t lo = 0, hi = sizeof ft_utf8_cased / sizeof ft_utf8_cased[0];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < ft_utf8_cased[mid].lo)
			hi = mid;
		else if (cp > ft_utf8_cased[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* Unicode's Case_Ignorable, approximated by its definition: Mn, Me, Cf, Lm,
 * Sk, and the word-break MidLetter/MidNumLet/Single_Quote characters. Only
 * used for the Final_Sigma context. */
static bool is_case_ignorable(int32_t cp)
{
	switch (cp) {
	case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x5F4:
	case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13:
	case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
		return true;
	}
	switch (utf8proc_category(cp)) {
	case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
	case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
		return true;
	default:
		return false;
	}
}

/* Final_Sigma (Unicode 3.13, what CPython's lower() implements): the capital
 * sigma at i is preceded by a cased letter and not followed by one, ignoring
 * case-ignorable code points in between. */
static bool final_sigma(const char *s, size_t len, size_t i, size_t n)
{
	size_t j = i;
	bool before = false;
	while (j > 0) {
		size_t k = j - 1;
		while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
			k--;
		int32_t cp;
		ft_utf8_decode(s + k, len - k, &cp);
		j = k;
		if (is_case_ignorable(cp))
			continue;
		before = is_cased(cp);
		break;
	}
	if (!before)
		return false;
	for (j = i + n; j < len;) {
		int32_t cp;
		j += (size_t)ft_utf8_decode(s + j, len - j, &cp);
		if (is_case_ignorable(cp))
			continue;
		return !is_cased(cp);
	}
	return true;
}

enum casing { CASE_UPPER, CASE_LOWER, CASE_TITLE };

/* Append the full mapping of the code point at s+i (n bytes long). */
static int put_mapped(struct ft_buf *out, const char *s, size_t len, size_t i, size_t n,
		      int32_t cp, enum casing how)
{
	const struct ft_utf8_special *sp = NULL;
	int32_t m;

	switch (how) {
	case CASE_UPPER:
		sp = find_special(ft_utf8_special_upper, sizeof ft_utf8_special_upper /
				  sizeof ft_utf8_special_upper[0], cp);
		m = utf8proc_toupper(cp);
		break;
	case CASE_LOWER:
		if (cp == 0x3A3 && final_sigma(s, len, i, n))
			return ft_buf_append(out, "\xCF\x82", 2);
		sp = find_special(ft_utf8_special_lower, sizeof ft_utf8_special_lower /
				  sizeof ft_utf8_special_lower[0], cp);
		m = utf8proc_tolower(cp);
		break;
	default:
		sp = find_special(ft_utf8_special_title, sizeof ft_utf8_special_title /
				  sizeof ft_utf8_special_title[0], cp);
		m = utf8proc_totitle(cp);
		break;
	}
	char enc[12];
	int k = 0;
	if (sp) {
		for (int j = 0; j < 3 && sp->map[j]; j++)
			k += ft_utf8_encode(sp->map[j], enc + k);
	} else if (m == cp) {
		return ft_buf_append(out, s + i, n);
	} else {
		k = ft_utf8_encode(m, enc);
	}
	return ft_buf_append(out, enc, (size_t)k);
}

/* The one loop behind upper/lower/title/capitalize. first: mapping of a
 * word's first cased letter (title) or of the string's first code point
 * (capitalize); rest: of the others. */
static int map_case(const char *s, size_t len, struct ft_buf *out, enum casing first,
		    enum casing rest, bool words)
{
	int rc = ft_buf_reserve(out, len);
	if (rc)
		return rc;
	bool prev_cased = false;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		int32_t cp;
		size_t n;
		if (c < 0x80) {
			cp = c;
			n = 1;
		} else {
			n = (size_t)ft_utf8_decode(s + i, len - i, &cp);
		}
		enum casing how = words ? (prev_cased ? rest : first) : (i == 0 ? first : rest);
		if (cp < 0x80) {
			char m = (char)c;
			if (how == CASE_LOWER && c >= 'A' && c <= 'Z')
				m = (char)(c + 32);
			else if (how != CASE_LOWER && c >= 'a' && c <= 'z')
				m = (char)(c - 32);
			rc = ft_buf_putc(out, m);
		} else {
			rc = put_mapped(out, s, len, i, n, cp, how);
		}
		if (rc)
			return rc;
		if (words)
			prev_cased = cp < 0x80 ? ((c | 32) >= 'a' && (c | 32) <= 'z') : is_cased(cp);
		i += n;
	}
	return FT_OK;
}

int ft_utf8_upper(const char *s, size_t len, struct ft_buf *out)
{
	return map_case(s, len, out, CASE_UPPER, CASE_UPPER, false);
}

int ft_utf8_lower(const char *s, size_t len, struct ft_buf *out)
{
	return map_case(s, len, out, CASE_LOWER, CASE_LOWER, false);
}

int ft_utf8_title(const char *s, size_t len, struct ft_buf *out)
{
	return map_case(s, len, out, CASE_TITLE, CASE_LOWER, true);
}

int ft_utf8_capitalize(const char *s, size_t len, struct ft_buf *out)
{
	return map_case(s, len, out, CASE_TITLE, CASE_LOWER, false);
}

bool ft_utf8_isspace(int32_t cp)
{
	/* Python: bidirectional class WS, B or S, or category Zs */
	switch (cp) {
	case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D:
	case 0x1C: case 0x1D: case 0x1E: case 0x1F: case 0x20:
	case 0x85: case 0xA0: case 0x1680:
	case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
		return true;
	default:
		return cp >= 0x2000 && cp <= 0x200A;
	}
}
