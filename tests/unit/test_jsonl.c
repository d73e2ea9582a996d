/* Unit tests for lib/jsonl.c: plain and gzip input, line ends, BOM, blank
 * lines, bad bytes, JSON errors with their locations, long lines, NFC. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "jsonl.h"
#include "testhelp.h"

static char dir[256];

static char *path_in(const char *name)
{
	static char p[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
	return p[k];
}

static void write_file(const char *name, const void *data, size_t len)
{
	FILE *f = fopen(path_in(name), "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		printf("cannot write %s\n", name);
}

/* gzip data[0..len) into a malloc'd buffer. */
static unsigned char *gzip_bytes(const void *data, size_t len, size_t *out_len)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	size_t cap = deflateBound(&z, (uLong)len) + 64;
	unsigned char *out = malloc(cap);
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	*out_len = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

static void write_gz(const char *name, const void *data, size_t len)
{
	size_t n;
	unsigned char *gz = gzip_bytes(data, len, &n);
	write_file(name, gz, n);
	free(gz);
}

static int last_code;  /* the last error read_all() met */

/* Read every record of path; returns the number of records, with the line
 * numbers in lines[] and the first error (if any) in *err / *code. */
static int read_all(const char *path, unsigned flags, size_t max_line, long *lines, int max,
		    struct ft_err *first, int *code)
{
	struct ft_jsonl_reader *r;
	struct ft_err err = { 0 };
	*code = 0;
	if (ft_jsonl_open(&r, path, flags, max_line, &err)) {
		*first = err;
		*code = err.code;
		return -1;
	}
	int n = 0;
	for (int guard = 0; guard < 100000; guard++) {
		cJSON *rec;
		int rc = ft_jsonl_next(r, &rec, &err);
		if (rc == 0)
			break;
		if (rc < 0) {
			last_code = rc;
			if (!*code) {
				*first = err;
				*code = rc;
			}
			if (rc == FT_E_IO)
				break;
			continue;
		}
		if (n < max)
			lines[n] = ft_jsonl_lineno(r);
		n++;
		cJSON_Delete(rec);
	}
	ft_jsonl_close(r);
	return n;
}

static void test_lines(void)
{
	const char text[] = "{\"a\":1}\n\n   \n{\"b\":2}\r\n\t \r\n{\"c\":3}";
	write_file("lines.jsonl", text, sizeof text - 1);
	write_gz("lines.jsonl.gz", text, sizeof text - 1);
	const char *names[] = { "lines.jsonl", "lines.jsonl.gz" };
	for (int k = 0; k < 2; k++) {
		long lines[8];
		struct ft_err err;
		int code;
		int n = read_all(path_in(names[k]), 0, 0, lines, 8, &err, &code);
		test_cond(k ? "gz: three records" : "three records", n == 3 && code == 0);
		test_cond(k ? "gz: line numbers count blank lines" :
			  "line numbers count blank lines",
			  n == 3 && lines[0] == 1 && lines[1] == 4 && lines[2] == 6);
	}

	struct ft_jsonl_reader *r;
	struct ft_err err = { 0 };
	const char *line;
	size_t len;
	ft_jsonl_open(&r, path_in("lines.jsonl"), 0, 0, &err);
	test_cond("name", strcmp(ft_jsonl_name(r), path_in("lines.jsonl")) == 0);
	ft_jsonl_next_line(r, &line, &len, &err);
	ft_jsonl_next_line(r, &line, &len, &err);
	test_cond("CR stripped", len == 7 && memcmp(line, "{\"b\":2}", 7) == 0);
	size_t rawlen;
	const char *raw = ft_jsonl_line(r, &rawlen);
	test_cond("ft_jsonl_line is the same text", raw == line && rawlen == len);
	test_cond("last line without newline", ft_jsonl_next_line(r, &line, &len, &err) == 1 &&
		  len == 7 && ft_jsonl_lineno(r) == 6);
	test_cond("end", ft_jsonl_next_line(r, &line, &len, &err) == 0);
	test_cond("end again", ft_jsonl_next_line(r, &line, &len, &err) == 0);
	test_cond("bytes counted", ft_jsonl_bytes(r) == sizeof text - 1);
	ft_jsonl_close(r);

	write_file("empty.jsonl", "", 0);
	write_file("blank.jsonl", "\n \n\t\r\n", 6);
	long lines[2];
	int code;
	test_cond("empty file", read_all(path_in("empty.jsonl"), 0, 0, lines, 2, &err, &code) == 0 &&
		  code == 0);
	test_cond("blank file", read_all(path_in("blank.jsonl"), 0, 0, lines, 2, &err, &code) == 0 &&
		  code == 0);
}

/* Open text as a file, expect one error of code on line want_line with
 * message want_msg, and the records around it still read. */
static void expect_error(const char *what, const char *text, size_t len, int want_code,
			 long want_line, const char *want_msg, int want_records)
{
	write_file("err.jsonl", text, len);
	long lines[16];
	struct ft_err err = { 0 };
	int code;
	int n = read_all(path_in("err.jsonl"), 0, 0, lines, 16, &err, &code);
	bool ok = code == want_code && n == want_records;
	if (want_code)
		ok = ok && err.line == want_line && strcmp(err.msg, want_msg) == 0 && err.file &&
		     strcmp(err.file, path_in("err.jsonl")) == 0;
	if (!ok)
		printf("  %s: code %d line %ld records %d msg '%s'\n", what, code, err.line, n,
		       err.msg);
	test_cond(what, ok);
}

#define EXPECT(what, text, code, line, msg, n) \
	expect_error(what, text, sizeof(text) - 1, code, line, msg, n)

static void test_errors(void)
{
	EXPECT("BOM on line 1 is accepted", "\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}\n", 0, 0, "", 2);
	EXPECT("BOM on a blank line 1", "\xEF\xBB\xBF\n{\"b\":2}\n", 0, 0, "", 1);
	EXPECT("BOM on line 2 is invalid JSON", "{\"a\":1}\n\xEF\xBB\xBF{\"b\":2}\n{}\n", FT_E_PARSE,
	       2, "invalid JSON at column 1: unexpected byte order mark", 2);
	EXPECT("a second BOM on line 1", "\xEF\xBB\xBF\xEF\xBB\xBF{}\n", FT_E_PARSE,
	       1, "invalid JSON at column 4: unexpected byte order mark", 0);
	EXPECT("NUL byte", "{\"a\":\"x\0y\"}\n{\"b\":1}\n", FT_E_PARSE, 1, "NUL byte at column 8", 1);
	EXPECT("NUL byte column counts the BOM", "\xEF\xBB\xBF{\"a\":\0}\n", FT_E_PARSE, 1,
	       "NUL byte at column 9", 0);
	EXPECT("invalid UTF-8", "{}\n{\"a\":\"\xFF\"}\n{}\n", FT_E_UTF8, 2,
	       "invalid UTF-8 at column 7", 2);
	EXPECT("surrogate in UTF-8", "{\"a\":\"\xED\xA0\x80\"}\n", FT_E_UTF8, 1,
	       "invalid UTF-8 at column 7", 0);
	EXPECT("invalid JSON", "{\"a\":1}\n\n{\"a\":}\n{}\n", FT_E_PARSE, 3,
	       "invalid JSON at column 6: unexpected '}'", 2);
	EXPECT("trailing data", "{\"a\":1} x\n", FT_E_PARSE, 1,
	       "invalid JSON at column 9: trailing data after JSON value", 0);
	EXPECT("array record", "[1,2]\n{}\n", FT_E_DATA, 1, "not a JSON object", 1);
	EXPECT("number record", "{}\n42\n", FT_E_DATA, 2, "not a JSON object", 1);
	EXPECT("string record", "\"s\"\r\n", FT_E_DATA, 1, "not a JSON object", 0);

	struct ft_err err = { 0 };
	long lines[1];
	int code;
	test_cond("missing file", read_all(path_in("nope.jsonl"), 0, 0, lines, 1, &err, &code) == -1 &&
		  code == FT_E_IO && err.file && strcmp(err.file, path_in("nope.jsonl")) == 0 &&
		  strcmp(err.msg, "No such file or directory") == 0);
	test_cond("directory", read_all(dir, 0, 0, lines, 1, &err, &code) == 0 &&
		  code == FT_E_IO && strcmp(err.msg, "read error: Is a directory") == 0);
}

static void test_gzip(void)
{
	/* 2000 records, about 100 KB */
	size_t cap = 1 << 20, len = 0;
	char *text = malloc(cap);
	for (int i = 0; i < 2000; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"{\"id\":%d,\"text\":\"record %d, some words to compress\"}\n",
					i, i * 7919 % 10007);
	size_t gzlen;
	unsigned char *gz = gzip_bytes(text, len, &gzlen);
	long lines[1];
	struct ft_err err = { 0 };
	int code;

	write_file("whole.jsonl.gz", gz, gzlen);
	test_cond("gzip: all records", read_all(path_in("whole.jsonl.gz"), 0, 0, lines, 1, &err,
						&code) == 2000 && code == 0);

	/* cut in the middle: whatever precedes the cut is read, then an error */
	write_file("cut.jsonl.gz", gz, gzlen / 2);
	int n = read_all(path_in("cut.jsonl.gz"), 0, 0, lines, 1, &err, &code);
	test_cond("truncated gzip: an I/O error", code == FT_E_IO &&
		  strcmp(err.msg, "truncated gzip stream") == 0);
	test_cond("truncated gzip: complete records before it", n > 0 && n < 2000);
	test_cond("truncated gzip: located on the line being read", err.line == n + 1);

	write_file("cut2.jsonl.gz", gz, gzlen - 4);  /* only the trailer's size field lost */
	n = read_all(path_in("cut2.jsonl.gz"), 0, 0, lines, 1, &err, &code);
	test_cond("gzip without its last bytes", code == FT_E_IO &&
		  strcmp(err.msg, "truncated gzip stream") == 0);
	write_file("cut3.jsonl.gz", gz, 10);  /* header only */
	n = read_all(path_in("cut3.jsonl.gz"), 0, 0, lines, 1, &err, &code);
	test_cond("gzip header only", n == 0 && code == FT_E_IO);

	/* two members, as `cat a.gz b.gz` makes */
	unsigned char *two = malloc(2 * gzlen);
	memcpy(two, gz, gzlen);
	memcpy(two + gzlen, gz, gzlen);
	write_file("two.jsonl.gz", two, 2 * gzlen);
	test_cond("concatenated members", read_all(path_in("two.jsonl.gz"), 0, 0, lines, 1, &err,
						   &code) == 4000 && code == 0);
	memcpy(two + gzlen, "garbage!", 8);
	write_file("junk.jsonl.gz", two, gzlen + 8);
	n = read_all(path_in("junk.jsonl.gz"), 0, 0, lines, 1, &err, &code);
	test_cond("trailing garbage is an error after the data", n == 2000 && code == FT_E_IO &&
		  strcmp(err.msg, "trailing garbage after gzip data") == 0);
	gz[gzlen / 2] ^= 0x55;
	write_file("bad.jsonl.gz", gz, gzlen);
	n = read_all(path_in("bad.jsonl.gz"), 0, 0, lines, 1, &err, &code);
	test_cond("corrupt gzip ends in an I/O error", n < 2000 && last_code == FT_E_IO);
	free(two);
	free(gz);
	free(text);
}

static void test_long_lines(void)
{
	/* a 64 MiB line is a record like any other by default */
	size_t big = (size_t)64 << 20;
	size_t len = big + 64;
	char *text = malloc(len);
	size_t k = (size_t)sprintf(text, "{\"t\":\"");
	memset(text + k, 'a', big);
	k += big;
	k += (size_t)sprintf(text + k, "\"}\n{\"u\":1}\n");
	write_file("big.jsonl", text, k);
	struct ft_jsonl_reader *r;
	struct ft_err err = { 0 };
	ft_jsonl_open(&r, path_in("big.jsonl"), 0, 0, &err);
	cJSON *rec = NULL;
	int rc = ft_jsonl_next(r, &rec, &err);
	const cJSON *t = rc == 1 ? cJSON_GetObjectItem(rec, "t") : NULL;
	test_cond("64 MiB line read", rc == 1 && t && strlen(t->valuestring) == big);
	cJSON_Delete(rec);
	rc = ft_jsonl_next(r, &rec, &err);
	test_cond("and the line after it", rc == 1 && ft_jsonl_lineno(r) == 2);
	cJSON_Delete(rec);
	ft_jsonl_close(r);

	/* with a cap, a long line is an error and the reader goes on */
	ft_jsonl_open(&r, path_in("big.jsonl"), 0, (size_t)1 << 20, &err);
	rc = ft_jsonl_next(r, &rec, &err);
	test_cond("over the cap: TOOBIG", rc == FT_E_TOOBIG && err.line == 1 &&
		  strcmp(err.msg, "line longer than 1048576 bytes") == 0);
	rc = ft_jsonl_next(r, &rec, &err);
	test_cond("the next line after a skipped one", rc == 1 && ft_jsonl_lineno(r) == 2);
	cJSON_Delete(rec);
	ft_jsonl_close(r);
	free(text);

	/* small lines against a small cap: exactly max_line passes, CR aside */
	const char small[] = "{\"a\":\"0123\"}\n{\"a\":\"01234\"}\r\n{\"a\":\"012345\"}\n{}\n"
			     "{\"a\":\"0123456789\"}";
	write_file("small.jsonl", small, sizeof small - 1);
	ft_jsonl_open(&r, path_in("small.jsonl"), 0, 13, &err);
	int got[6], n = 0;
	long at[6];
	for (; n < 6; n++) {
		got[n] = ft_jsonl_next(r, &rec, &err);
		at[n] = got[n] < 0 ? err.line : ft_jsonl_lineno(r);
		cJSON_Delete(rec);
		if (got[n] == 0)
			break;
	}
	ft_jsonl_close(r);
	test_cond("cap: 12 and 13 bytes pass", got[0] == 1 && got[1] == 1 && at[1] == 2);
	test_cond("cap: 14 bytes fail", got[2] == FT_E_TOOBIG && at[2] == 3);
	test_cond("cap: next read", got[3] == 1 && at[3] == 4);
	test_cond("cap: last line without newline", got[4] == FT_E_TOOBIG && at[4] == 5);
	test_cond("cap: then the end", got[5] == 0);
}

static void test_nfc(void)
{
	const char text[] = "{\"cafe\\u0301\":\"e\xCC\x81t\xC3\xA9\",\"n\":[\"\xE2\x84\xAB\",1]}\n";
	write_file("nfc.jsonl", text, sizeof text - 1);
	struct ft_jsonl_reader *r;
	struct ft_err err = { 0 };
	cJSON *rec;

	ft_jsonl_open(&r, path_in("nfc.jsonl"), FT_JSONL_NFC, 0, &err);
	test_cond("nfc: read", ft_jsonl_next(r, &rec, &err) == 1);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "caf\xC3\xA9");
	test_cond("nfc: key composed", v != NULL);
	test_cond("nfc: value composed", v && strcmp(v->valuestring, "\xC3\xA9t\xC3\xA9") == 0);
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(rec, "n");
	test_cond("nfc: array string", n && strcmp(n->child->valuestring, "\xC3\x85") == 0);
	size_t len;
	const char *raw = ft_jsonl_line(r, &len);
	test_cond("nfc: raw line untouched", len == sizeof text - 2 && memcmp(raw, text, len) == 0);
	cJSON_Delete(rec);
	ft_jsonl_close(r);

	ft_jsonl_open(&r, path_in("nfc.jsonl"), 0, 0, &err);
	ft_jsonl_next(r, &rec, &err);
	test_cond("without the flag: as written",
		  cJSON_GetObjectItemCaseSensitive(rec, "cafe\xCC\x81") != NULL);
	cJSON_Delete(rec);
	ft_jsonl_close(r);
}

static void test_fd(void)
{
	int p[2];
	if (pipe(p) != 0)
		return;
	const char text[] = "{\"a\":1}\nnot json\n";
	if (write(p[1], text, sizeof text - 1) != (ssize_t)(sizeof text - 1))
		return;
	close(p[1]);
	struct ft_jsonl_reader *r;
	struct ft_err err = { 0 };
	cJSON *rec;
	ft_jsonl_open_fd(&r, p[0], "-", 0, 0, &err);
	test_cond("fd: name is <stdin>", strcmp(ft_jsonl_name(r), "<stdin>") == 0);
	test_cond("fd: record", ft_jsonl_next(r, &rec, &err) == 1);
	cJSON_Delete(rec);
	test_cond("fd: error names '-'", ft_jsonl_next(r, &rec, &err) == FT_E_PARSE &&
		  strcmp(err.file, "-") == 0 && err.line == 2 && err.col == 1);
	test_cond("fd: parse_line of raw lines", ft_jsonl_next(r, &rec, &err) == 0);
	ft_jsonl_close(r);
	close(p[0]);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/ft-test-jsonl.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_lines();
	test_errors();
	test_gzip();
	test_long_lines();
	test_nfc();
	test_fd();

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("cannot remove %s\n", dir);
	return test_report();
}
