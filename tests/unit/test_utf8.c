/* Unit tests for lib/utf8.c: validation, coding, NFC, Python case mapping.
 * Expected strings come from CPython 3.11 (str.upper() etc.). */
#include <string.h>

#include "utf8.h"
#include "testhelp.h"

static bool valid(const char *s, size_t len, size_t want_bad)
{
	size_t bad = (size_t)-1;
	bool ok = ft_utf8_valid(s, len, &bad);
	return want_bad == (size_t)-1 ? ok : !ok && bad == want_bad;
}

#define OK_UTF8(s) valid(s, sizeof(s) - 1, (size_t)-1)
#define BAD_UTF8(s, at) valid(s, sizeof(s) - 1, at)

static bool mapped(int (*fn)(const char *, size_t, struct ft_buf *), const char *in,
		   const char *want)
{
	struct ft_buf b;
	ft_buf_init(&b, 0);
	int rc = fn(in, strlen(in), &b);
	bool ok = rc == 0 && b.len == strlen(want) && memcmp(b.data, want, b.len) == 0;
	if (!ok)
		printf("  got '%.*s' for '%s', want '%s'\n", (int)b.len, b.data ? b.data : "", in,
		       want);
	ft_buf_release(&b);
	return ok;
}

static bool nfc_is(const char *in, const char *want)
{
	return mapped(ft_utf8_nfc, in, want);
}

static void test_valid(void)
{
	test_cond("empty is valid", OK_UTF8(""));
	test_cond("ascii", OK_UTF8("hello, world, a longer run of ascii text"));
	test_cond("two/three/four bytes", OK_UTF8("\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"));
	test_cond("U+10FFFF", OK_UTF8("\xF4\x8F\xBF\xBF"));
	test_cond("U+FFFF and U+E000", OK_UTF8("\xEF\xBF\xBF\xEE\x80\x80"));
	test_cond("stray continuation", BAD_UTF8("ab\x80", 2));
	test_cond("overlong 2-byte", BAD_UTF8("\xC0\x80", 0));
	test_cond("overlong C1", BAD_UTF8("x\xC1\xBF", 1));
	test_cond("overlong 3-byte", BAD_UTF8("\xE0\x80\x80", 0));
	test_cond("overlong 4-byte", BAD_UTF8("\xF0\x8F\xBF\xBF", 0));
	test_cond("surrogate", BAD_UTF8("ok \xED\xA0\x80", 3));
	test_cond("above U+10FFFF", BAD_UTF8("\xF4\x90\x80\x80", 0));
	test_cond("F5 lead", BAD_UTF8("\xF5\x80\x80\x80", 0));
	test_cond("truncated at end", BAD_UTF8("abc\xE4\xB8", 3));
	test_cond("bad second continuation", BAD_UTF8("\xE4\xB8\x41", 0));
	test_cond("offset after a long ascii run",
		  BAD_UTF8("0123456789abcdef0123456789\xFF", 26));
	test_cond("offset after cjk", BAD_UTF8("\xE4\xB8\xAD\xE6\x96\x87\xFE", 6));
}

static void test_coding(void)
{
	int32_t cps[] = { 0, 0x41, 0x7F, 0x80, 0x7FF, 0x800, 0x4E2D, 0xFFFF, 0x10000, 0x1F600,
			  0x10FFFF };
	bool ok = true;
	for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
		char enc[4];
		int n = ft_utf8_encode(cps[i], enc);
		int32_t back;
		int m = ft_utf8_decode(enc, (size_t)n, &back);
		if (n != m || back != cps[i] || !ft_utf8_valid(enc, (size_t)n, NULL))
			ok = false;
	}
	test_cond("encode/decode round trip", ok);
	char enc[4];
	test_cond("a surrogate encodes as U+FFFD",
		  ft_utf8_encode(0xD800, enc) == 3 && memcmp(enc, "\xEF\xBF\xBD", 3) == 0);
	const char *s = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80z";
	size_t len = strlen(s);
	test_cond("count", ft_utf8_count(s, len) == 5);
	test_cond("offset 0", ft_utf8_offset(s, len, 0) == 0);
	test_cond("offset 2", ft_utf8_offset(s, len, 2) == 3);
	test_cond("offset 4", ft_utf8_offset(s, len, 4) == 10);
	test_cond("offset past the end clamps", ft_utf8_offset(s, len, 9) == len);
}

static void test_nfc(void)
{
	test_cond("ascii is NFC", ft_utf8_is_nfc("plain text", 10));
	test_cond("cjk is NFC", ft_utf8_is_nfc("\xE4\xB8\xAD\xE6\x96\x87", 6));
	test_cond("precomposed e-acute is NFC", ft_utf8_is_nfc("caf\xC3\xA9", 5));
	test_cond("e + combining acute is not NFC", !ft_utf8_is_nfc("cafe\xCC\x81", 6));
	test_cond("angstrom sign is not NFC", !ft_utf8_is_nfc("\xE2\x84\xAB", 3));
	test_cond("conjoining jamo are not NFC", !ft_utf8_is_nfc("\xE1\x84\x80\xE1\x85\xA1", 6));
	test_cond("kana + voiced mark is not NFC", !ft_utf8_is_nfc("\xE3\x81\x8B\xE3\x82\x99", 6));
	test_cond("nfc composes e + acute", nfc_is("cafe\xCC\x81", "caf\xC3\xA9"));
	test_cond("nfc maps angstrom sign to A-ring", nfc_is("\xE2\x84\xAB", "\xC3\x85"));
	test_cond("nfc composes hangul jamo", nfc_is("\xE1\x84\x80\xE1\x85\xA1", "\xEA\xB0\x80"));
	test_cond("nfc reorders marks", nfc_is("a\xCC\x81\xCC\xA3", "\xE1\xBA\xA1\xCC\x81"));
	test_cond("nfc keeps compatibility characters", nfc_is("\xEF\xAC\x81", "\xEF\xAC\x81"));
	test_cond("nfc of ascii", nfc_is("abc", "abc"));
}

static void test_case(void)
{
	test_cond("upper ascii", mapped(ft_utf8_upper, "hello wORLD 1", "HELLO WORLD 1"));
	test_cond("upper sharp s", mapped(ft_utf8_upper, "stra\xC3\x9F" "e", "STRASSE"));
	test_cond("upper fi ligature", mapped(ft_utf8_upper, "\xEF\xAC\x81x", "FIX"));
	test_cond("upper n-apostrophe", mapped(ft_utf8_upper, "\xC5\x89", "\xCA\xBCN"));
	test_cond("upper leaves cjk", mapped(ft_utf8_upper, "\xE4\xB8\xAD", "\xE4\xB8\xAD"));
	test_cond("lower ascii", mapped(ft_utf8_lower, "Hello WORLD", "hello world"));
	test_cond("lower dotted I", mapped(ft_utf8_lower, "\xC4\xB0stanbul", "i\xCC\x87stanbul"));
	test_cond("lower final sigma", mapped(ft_utf8_lower, "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3",
					      "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82"));
	test_cond("lower lone sigma", mapped(ft_utf8_lower, "\xCE\xA3", "\xCF\x83"));
	test_cond("lower sigma before a space", mapped(ft_utf8_lower, "\xCE\x91\xCE\xA3 \xCE\x92",
						       "\xCE\xB1\xCF\x82 \xCE\xB2"));
	test_cond("lower sigma after a combining mark",
		  mapped(ft_utf8_lower, "a\xCC\x81\xCE\xA3", "a\xCC\x81\xCF\x82"));
	test_cond("lower titlecase digraph", mapped(ft_utf8_lower, "\xC7\x85" "emal",
						    "\xC7\x86" "emal"));
	test_cond("title words", mapped(ft_utf8_title, "hELLO wORLD", "Hello World"));
	test_cond("title after apostrophe", mapped(ft_utf8_title, "they're", "They'Re"));
	test_cond("title sharp s", mapped(ft_utf8_title, "\xC3\x9F" "a", "Ssa"));
	test_cond("title digraph", mapped(ft_utf8_title, "\xC7\x86" "emal", "\xC7\x85" "emal"));
	test_cond("title final sigma", mapped(ft_utf8_title, "\xCE\x91\xCE\xA3 \xCE\x92",
					      "\xCE\x91\xCF\x82 \xCE\x92"));
	test_cond("capitalize", mapped(ft_utf8_capitalize, "hELLO wORLD", "Hello world"));
	test_cond("capitalize sharp s", mapped(ft_utf8_capitalize, "\xC3\x9F" "A", "Ssa"));
	test_cond("capitalize empty", mapped(ft_utf8_capitalize, "", ""));
}

static void test_space(void)
{
	int32_t yes[] = { ' ', '\t', '\n', '\v', '\f', '\r', 0x1C, 0x1F, 0x85, 0xA0, 0x1680,
			  0x2000, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 };
	int32_t no[] = { 'a', 0, 0x08, 0x200B, 0x180E, 0xFEFF, 0x4E2D };
	bool ok = true;
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		ok &= ft_utf8_isspace(yes[i]);
	test_cond("python whitespace", ok);
	ok = true;
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		ok &= !ft_utf8_isspace(no[i]);
	test_cond("not python whitespace", ok);
}

int main(void)
{
	test_valid();
	test_coding();
	test_nfc();
	test_case();
	test_space();
	return test_report();
}
