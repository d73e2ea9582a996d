/* Unit tests for lib/jsonscan.c. The scanner is a fast path in front of
 * ft_json_parse(), so the property that matters is agreement: whatever it
 * accepts, ft_json_parse() accepts, and the values it finds are the ones
 * ft_json_path() finds. Checked on hand-picked cases and on random
 * mutations of valid records. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonscan.h"
#include "testhelp.h"

static const char *const paths[] = { "group", "id", "meta.user", "a.1.b", "", "x.", "0" };
#define NPATHS (sizeof paths / sizeof paths[0])

static int scan(const char *s, struct ft_jsonscan_span *found)
{
	return ft_jsonscan(s, strlen(s), paths, NPATHS, found);
}

/* Compact JSON of a value, or "" */
static void compact(const cJSON *v, struct ft_buf *b)
{
	ft_buf_reset(b);
	if (v)
		ft_json_write(b, v);
}

/* If the scanner accepts s, the parser must, and every path must agree.
 * Returns false (and says why) on a disagreement. */
static bool agrees(const char *s, size_t len)
{
	struct ft_jsonscan_span found[NPATHS];
	if (ft_jsonscan(s, len, paths, NPATHS, found) != 0)
		return true;  /* rejected: the parser decides, nothing to compare */
	cJSON *tree;
	if (ft_json_parse(s, len, &tree, NULL) != 0) {
		printf("  scanner accepts what the parser rejects: %.*s\n", (int)len, s);
		return false;
	}
	bool ok = true;
	struct ft_buf want, got;
	ft_buf_init(&want, 0);
	ft_buf_init(&got, 0);
	for (size_t p = 0; p < NPATHS; p++) {
		const cJSON *v = ft_json_path(tree, paths[p]);
		compact(v, &want);
		cJSON *sv = NULL;
		if (found[p].p && ft_json_parse(found[p].p, found[p].len, &sv, NULL) != 0) {
			printf("  span of '%s' does not parse: %.*s\n", paths[p], (int)found[p].len,
			       found[p].p);
			ok = false;
			continue;
		}
		compact(sv, &got);
		if ((v == NULL) != (found[p].p == NULL) || strcmp(want.data ? want.data : "",
								  got.data ? got.data : "")) {
			printf("  path '%s' of %.*s: parser '%s', scanner '%s'\n", paths[p], (int)len, s,
			       want.data ? want.data : "(none)", got.data ? got.data : "(none)");
			ok = false;
		}
		if (v && cJSON_IsString(v) && found[p].p) {
			ft_buf_reset(&got);
			ft_jsonscan_string(&found[p], &got);
			if (strcmp(got.data ? got.data : "", v->valuestring)) {
				printf("  string of '%s' decodes to '%s', want '%s'\n", paths[p],
				       got.data, v->valuestring);
				ok = false;
			}
		}
		cJSON_Delete(sv);
	}
	ft_buf_release(&want);
	ft_buf_release(&got);
	cJSON_Delete(tree);
	return ok;
}

static const char *const valid[] = {
	"{}", "[]", " {\"a\" : 1 } ", "{\"group\":\"g1\",\"id\":7}", "{\"id\":-1.5e+3}",
	"{\"group\":null,\"id\":\"x\"}", "{\"group\":\"caf\\u00e9\",\"id\":\"\\ud83d\\ude00\"}",
	"{\"gr\\u006fup\":\"escaped key\"}", "{\"group\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}",
	"{\"group\":1,\"group\":2}", "{\"meta\":{\"user\":\"u\",\"user\":\"v\"}}",
	"{\"meta\":{\"user\":[1,{\"x\":2}]}}", "{\"a\":[{\"b\":0},{\"b\":\"one\"}]}",
	"{\"a\":{\"1\":{\"b\":\"obj\"}}}", "{\"x\":{\"\":1}}", "{\"0\":\"zero\"}",
	"[\"a\",\"b\"]", "\"top\"", "-0", "0.5", "1E-7", "true", "false", "null",
	"{\"group\":\"\xE4\xB8\xAD\xE6\x96\x87 long enough to take the fast word loop\"}",
	"{\"group\":\"a\\u0000b\"}", "{\"gro\\u0000up\":1}", "{\"id\":12345678901234567890}",
	"{\"a\":[[],[{}],[[[]]]],\"b\":{\"c\":{\"d\":[true,false,null]}}}",
};

static const char *const invalid[] = {
	"", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[,1]", "{\"a\" 1}",
	"{a:1}", "{'a':1}", "01", "1.", ".5", "+1", "-", "1e", "1e+", "0x10", "tru", "nul",
	"\"unterminated", "\"tab\there\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"",
	"\"\\udc00\"", "\"\\ud800\\u0041\"", "{}{}", "[] x", "NaN", "Infinity", "[1 2]",
	"\"\xEF\xBB\xBF\"x", "\xEF\xBB\xBF{}",
};

static void test_cases(void)
{
	bool ok = true;
	struct ft_jsonscan_span found[NPATHS];
	for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
		if (scan(valid[i], found) != 0) {
			printf("  rejected: %s\n", valid[i]);
			ok = false;
		}
		ok &= agrees(valid[i], strlen(valid[i]));
	}
	test_cond("valid JSON accepted, paths agree with ft_json_path", ok);
	ok = true;
	for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
		if (scan(invalid[i], found) == 0) {
			printf("  accepted: %s\n", invalid[i]);
			ok = false;
		}
	}
	test_cond("invalid or lenient JSON left to the parser", ok);

	scan("{\"group\":\"g\",\"id\":3}", found);
	test_cond("span of a string", found[0].p && found[0].len == 3 && !memcmp(found[0].p, "\"g\"", 3));
	test_cond("span of a number", found[1].p && found[1].len == 1 && found[1].p[0] == '3');
	test_cond("trailing-dot path finds nothing", found[5].p == NULL);
	test_cond("empty path is the whole value", found[4].p && found[4].len == 20);

	/* nesting: deep input goes to the parser */
	size_t depth = 600;
	char *deep = malloc(2 * depth + 1);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[2 * depth] = 0;
	test_cond("very deep nesting is left to the parser", scan(deep, found) != 0);
	deep[0] = ' ';
	deep[2 * depth - 1] = ' ';
	test_cond("moderate nesting", ft_jsonscan(deep + 500, 2 * depth - 1000, paths, NPATHS,
						  found) == 0);
	free(deep);
}

/* xorshift64*: a fixed sequence, so failures reproduce */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static void test_mutations(void)
{
	static const char alphabet[] = "{}[]\":,\\ 0123456789.eE+-tfnulrsabu\t\n\x01\xC3\xA9";
	char buf[512];
	bool ok = true;
	long accepted = 0;
	for (int round = 0; round < 200000 && ok; round++) {
		const char *seed = valid[rng() % (sizeof valid / sizeof valid[0])];
		size_t len = strlen(seed);
		memcpy(buf, seed, len);
		int edits = 1 + (int)(rng() % 3);
		for (int e = 0; e < edits; e++) {
			size_t at = len ? (size_t)(rng() % len) : 0;
			char c = alphabet[rng() % (sizeof alphabet - 1)];
			switch (rng() % 3) {
			case 0:
				if (len)
					buf[at] = c;
				break;
			case 1:
				if (len < sizeof buf - 1) {
					memmove(buf + at + 1, buf + at, len - at);
					buf[at] = c;
					len++;
				}
				break;
			default:
				if (len) {
					memmove(buf + at, buf + at + 1, len - at - 1);
					len--;
				}
				break;
			}
		}
		buf[len] = 0;
		struct ft_jsonscan_span found[NPATHS];
		if (!memchr(buf, 0, len) &&
		    ft_jsonscan(buf, len, paths, NPATHS, found) == 0) {
			accepted++;
			ok = agrees(buf, len);
		}
	}
	test_cond("random mutations: scanner never more lenient than the parser", ok);
	test_cond("random mutations: some still valid", accepted > 1000);
}

int main(void)
{
	test_cases();
	test_mutations();
	return test_report();
}
