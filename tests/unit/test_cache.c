/* Unit tests for lib/cache.c: round trips (binary, empty, 1 MB), absent
 * keys, keys that are refused before they can name a path, damaged entries
 * (truncated, flipped byte, another key inside, bad header) read as absent
 * with FT_E_DATA, no temporary files left behind, the fan-out layout, and a
 * reopened cache seeing earlier entries. */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "dirs.h"
#include "testhelp.h"

static char root[512];   /* mkdtemp directory, removed at the end */
static char dir[600];    /* the cache, a level below so open() must create it */

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Entries in path whose name contains needle (-1 if path cannot be read). */
static int count_in(const char *path, const char *needle)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strstr(e->d_name, needle) != NULL;
	closedir(d);
	return n;
}

/* Temporary files anywhere in the cache (two levels). */
static int count_tmp(void)
{
	int n = count_in(dir, ".tmp-");
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char sub[1024];
		snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
		n += count_in(sub, ".tmp-");
	}
	if (d)
		closedir(d);
	return n;
}

static void entry_path(const char *key, char *path, size_t size)
{
	snprintf(path, size, "%s/%.2s/%s", dir, key, key);
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Overwrite the file at path with data[0..n). */
static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(data, 1, n, f);
		fclose(f);
	}
}

static char *read_whole(const char *path, size_t *n)
{
	struct ft_buf b;
	ft_buf_init(&b, 0);
	if (ft_buf_read_file(&b, path, NULL)) {
		ft_buf_release(&b);
		return NULL;
	}
	return ft_buf_detach(&b, n);
}

/* put then get: the bytes come back exactly. */
static bool round_trip(struct ft_cache *c, const void *data, size_t len)
{
	char key[65];
	struct ft_err err = { 0 };
	struct ft_buf out;
	ft_cache_key(data, len, key);
	if (ft_cache_put(c, key, data, len, &err) != 0)
		return false;
	ft_buf_init(&out, 0);
	int rc = ft_cache_get(c, key, &out, &err);
	bool ok = rc == 1 && err.code == 0 && out.len == len &&
		  (len == 0 || memcmp(out.data, data, len) == 0) && out.data[out.len] == 0;
	ft_buf_release(&out);
	return ok;
}

static void test_key(void)
{
	char hex[65];
	ft_cache_key("abc", 3, hex);
	test_cond("key is sha256 hex (FIPS 180-4 'abc' vector)",
		  strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
	test_cond("a key is valid", ft_cache_key_valid(hex));
	ft_cache_key("", 0, hex);
	test_cond("key of empty input",
		  strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
}

static void test_round_trips(struct ft_cache *c)
{
	unsigned char bin[256];
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	test_cond("binary payload with NULs and newlines", round_trip(c, bin, sizeof bin));
	test_cond("empty payload", round_trip(c, "", 0));
	test_cond("text payload", round_trip(c, "{\"choices\":[]}\n", 15));

	size_t big = (1u << 20) + 17;
	unsigned char *p = malloc(big);
	uint64_t x = 88172645463325252ULL;
	for (size_t i = 0; i < big; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (unsigned char)x;
	}
	test_cond("1 MB payload", round_trip(c, p, big));
	free(p);

	/* get appends to what out holds; a put replaces an entry */
	char key[65];
	struct ft_err err = { 0 };
	struct ft_buf out;
	ft_cache_key("k", 1, key);
	ft_cache_put(c, key, "first", 5, &err);
	test_cond("put replaces", ft_cache_put(c, key, "second", 6, &err) == 0);
	ft_buf_init(&out, 0);
	ft_buf_puts(&out, ">");
	test_cond("get after replace", ft_cache_get(c, key, &out, &err) == 1);
	test_cond("get appends to out", strcmp(out.data, ">second") == 0 && out.len == 7);

	/* a reply larger than out's cap is an error, out untouched */
	struct ft_buf small;
	ft_buf_init(&small, 3);
	test_cond("too big for out is FT_E_TOOBIG",
		  ft_cache_get(c, key, &small, &err) == FT_E_TOOBIG && small.len == 0);
	ft_buf_release(&small);
	ft_buf_release(&out);
	test_cond("no temporary files after puts", count_tmp() == 0);
}

static void test_absent_and_bad_keys(struct ft_cache *c)
{
	char key[65];
	struct ft_err err = { 0 };
	struct ft_buf out;
	ft_buf_init(&out, 0);
	ft_cache_key("never stored", 12, key);
	err.code = 99;
	test_cond("absent key is 0", ft_cache_get(c, key, &out, &err) == 0);
	test_cond("absent key clears err", err.code == 0 && out.len == 0);

	static const char *bad[] = {
		"",
		"abc",
		/* 63 and 65 digits */
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adx",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0",
		/* uppercase */
		"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015aD",
		/* path tricks of the right length */
		"../../../../../../../../../../../../../../../../../../../../etc/",
		"ba/816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"..7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2001 ad",
		"ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char what[160];
		snprintf(what, sizeof what, "bad key rejected: '%s'", bad[i]);
		test_cond(what, !ft_cache_key_valid(bad[i]) &&
			  ft_cache_put(c, bad[i], "x", 1, &err) == FT_E_INVAL &&
			  ft_cache_get(c, bad[i], &out, &err) == FT_E_INVAL);
	}
	test_cond("NULL key rejected", ft_cache_put(c, NULL, "x", 1, &err) == FT_E_INVAL);
	test_cond("bad key message", strstr(err.msg, "bad cache key") != NULL);
	test_cond("bad keys leave no files", count_tmp() == 0);
	ft_buf_release(&out);
}

/* Store payload under key, damage the entry with damage(), and expect get
 * to call it absent with FT_E_DATA naming the file and the reason. */
static void expect_damaged(struct ft_cache *c, const char *what, const char *reason,
			   void (*damage)(const char *path, const char *key))
{
	char key[65], path[1024];
	struct ft_err err = { 0 };
	struct ft_buf out;
	ft_cache_key(what, strlen(what), key);
	ft_cache_put(c, key, "the reply payload", 17, &err);
	entry_path(key, path, sizeof path);
	damage(path, key);
	ft_buf_init(&out, 0);
	ft_buf_puts(&out, "kept");
	int rc = ft_cache_get(c, key, &out, &err);
	char msg[300];
	snprintf(msg, sizeof msg, "%s: treated as absent with FT_E_DATA", what);
	test_cond(msg, rc == 0 && err.code == FT_E_DATA);
	snprintf(msg, sizeof msg, "%s: message names the file and '%s'", what, reason);
	test_cond(msg, strstr(err.msg, path) && strstr(err.msg, reason));
	snprintf(msg, sizeof msg, "%s: out unchanged", what);
	test_cond(msg, out.len == 4 && strcmp(out.data, "kept") == 0);
	/* a fresh put repairs it */
	ft_cache_put(c, key, "again", 5, &err);
	ft_buf_reset(&out);
	snprintf(msg, sizeof msg, "%s: put repairs the entry", what);
	test_cond(msg, ft_cache_get(c, key, &out, &err) == 1 && err.code == 0 &&
		  strcmp(out.data, "again") == 0);
	ft_buf_release(&out);
}

static void truncate_payload(const char *path, const char *key)
{
	if (truncate(path, file_size(path) - 1) != 0)
		perror(path);
}

static void truncate_header(const char *path, const char *key)
{
	if (truncate(path, 40) != 0)
		perror(path);
}

static void append_byte(const char *path, const char *key)
{
	FILE *f = fopen(path, "ab");
	if (f) {
		fputc('x', f);
		fclose(f);
	}
}

static void flip_payload_byte(const char *path, const char *key)
{
	size_t n;
	char *p = read_whole(path, &n);
	if (p) {
		p[n - 3] ^= 0x20;
		write_file(path, p, n);
	}
	free(p);
}

static void flip_header_byte(const char *path, const char *key)
{
	size_t n;
	char *p = read_whole(path, &n);
	if (p) {
		p[3] = 'X';   /* in the magic */
		write_file(path, p, n);
	}
	free(p);
}

/* the entry of another key copied over this one: intact but misplaced */
static void other_key(const char *path, const char *key)
{
	char other[65], opath[1024];
	struct ft_cache c2;
	ft_cache_open(&c2, dir, NULL);
	ft_cache_key("another request", 15, other);
	ft_cache_put(&c2, other, "the reply payload", 17, NULL);
	ft_cache_close(&c2);
	entry_path(other, opath, sizeof opath);
	size_t n;
	char *p = read_whole(opath, &n);
	if (p)
		write_file(path, p, n);
	free(p);
}

static void empty_file(const char *path, const char *key)
{
	write_file(path, "", 0);
}

static void huge_length(const char *path, const char *key)
{
	char head[300];
	int n = snprintf(head, sizeof head, "ft-cache 1 %s 99999999999999999999999 %064d\nx", key,
			 0);
	write_file(path, head, (size_t)n);
}

static void test_damage(struct ft_cache *c)
{
	expect_damaged(c, "truncated payload", "wrong length", truncate_payload);
	expect_damaged(c, "truncated header", "bad header", truncate_header);
	expect_damaged(c, "trailing byte", "wrong length", append_byte);
	expect_damaged(c, "flipped payload byte", "checksum mismatch", flip_payload_byte);
	expect_damaged(c, "flipped header byte", "bad header", flip_header_byte);
	expect_damaged(c, "another key inside", "another key", other_key);
	expect_damaged(c, "empty file", "bad header", empty_file);
	expect_damaged(c, "overflowing length", "bad header", huge_length);

	/* a directory where an entry belongs is damage too, but put cannot
	 * replace it: that is an I/O error for the caller to report */
	char key[65], path[1024];
	struct ft_err err = { 0 };
	struct ft_buf out;
	ft_buf_init(&out, 0);
	ft_cache_key("a directory", 11, key);
	ft_cache_put(c, key, "x", 1, &err);
	entry_path(key, path, sizeof path);
	unlink(path);
	mkdir(path, 0777);
	test_cond("directory as entry: absent with FT_E_DATA",
		  ft_cache_get(c, key, &out, &err) == 0 && err.code == FT_E_DATA &&
		  strstr(err.msg, "not a regular file"));
	test_cond("directory as entry: put fails with FT_E_IO",
		  ft_cache_put(c, key, "x", 1, &err) == FT_E_IO);
	rmdir(path);
	ft_buf_release(&out);
	test_cond("no temporary files after repairs", count_tmp() == 0);
}

static void test_layout(struct ft_cache *c)
{
	char key[65], path[1024], fan[700];
	struct ft_err err = { 0 };
	ft_cache_key("layout", 6, key);
	ft_cache_put(c, key, "payload", 7, &err);
	snprintf(fan, sizeof fan, "%s/%.2s", dir, key);
	entry_path(key, path, sizeof path);
	struct stat st;
	test_cond("fan-out directory DIR/ab", stat(fan, &st) == 0 && S_ISDIR(st.st_mode));
	test_cond("entry at DIR/ab/KEY", stat(path, &st) == 0 && S_ISREG(st.st_mode));
	test_cond("entry is private (0600)", (st.st_mode & 0777) == 0600);
	size_t n;
	char *p = read_whole(path, &n);
	char want[300];
	char sha[65];
	ft_cache_key("payload", 7, sha);
	int wn = snprintf(want, sizeof want, "ft-cache 1 %s 7 %s\npayload", key, sha);
	test_cond("entry format: header line then payload",
		  p && n == (size_t)wn && memcmp(p, want, n) == 0);
	free(p);
	/* every name in the fan-out directory is a key starting with its name */
	DIR *d = opendir(fan);
	struct dirent *e;
	bool only_keys = d != NULL;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			only_keys &= ft_cache_key_valid(e->d_name) &&
				     memcmp(e->d_name, key, 2) == 0;
	if (d)
		closedir(d);
	test_cond("only entries named by their key in the fan-out directory", only_keys);
}

static void test_reopen(void)
{
	struct ft_cache c;
	struct ft_err err = { 0 };
	char key[65];
	struct ft_buf out;
	char slashed[700];
	snprintf(slashed, sizeof slashed, "%s//", dir);
	test_cond("reopen (trailing slashes)", ft_cache_open(&c, slashed, &err) == 0);
	ft_cache_key("layout", 6, key);
	ft_buf_init(&out, 0);
	test_cond("reopened cache sees the entry", ft_cache_get(&c, key, &out, &err) == 1 &&
		  strcmp(out.data, "payload") == 0);
	ft_buf_release(&out);
	ft_cache_close(&c);

	test_cond("empty dir name is FT_E_INVAL", ft_cache_open(&c, "", &err) == FT_E_INVAL);
	char file[700];
	snprintf(file, sizeof file, "%s/plain-file", root);
	write_file(file, "x", 1);
	test_cond("a file as the directory is FT_E_IO", ft_cache_open(&c, file, &err) == FT_E_IO);
	char *lng = malloc(5000);
	memset(lng, 'a', 4999);
	lng[4999] = 0;
	test_cond("overlong dir is FT_E_INVAL", ft_cache_open(&c, lng, &err) == FT_E_INVAL);
	free(lng);
}

int main(void)
{
	const char *tmpdir = getenv("TMPDIR");
	snprintf(root, sizeof root, "%s/ft-cache-test-XXXXXX",
		 tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(root)) {
		perror(root);
		return 1;
	}
	snprintf(dir, sizeof dir, "%s/a/b/cache", root);

	struct ft_cache c;
	struct ft_err err = { 0 };
	test_cond("open creates the directory tree", ft_cache_open(&c, dir, &err) == 0 &&
		  exists(dir));
	test_key();
	test_round_trips(&c);
	test_absent_and_bad_keys(&c);
	test_damage(&c);
	test_layout(&c);
	ft_cache_close(&c);
	test_reopen();

	ft_dir_remove(root, NULL);
	test_cond("temporary directory removed", !exists(root));
	return test_report();
}
