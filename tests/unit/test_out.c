/* Unit tests for lib/out.c: a named output exists only as its temporary file
 * until commit, abort removes it, write errors stick and surface at commit,
 * stdout mode writes through. */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "out.h"
#include "testhelp.h"

static char dir[256];

static char *path_in(const char *name)
{
	static char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return p;
}

/* Number of entries in dir whose name starts with prefix. */
static int count_prefixed(const char *prefix)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

static bool exists(const char *name)
{
	struct stat st;
	return stat(path_in(name), &st) == 0;
}

/* Whole content of a file, in a static buffer (NULL if unreadable). */
static char *slurp(const char *path, size_t *len)
{
	static char *buf;
	free(buf);
	buf = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	buf = malloc(cap);
	for (;;) {
		if (n == cap)
			buf = realloc(buf, cap *= 2);
		size_t got = fread(buf + n, 1, cap - n, f);
		if (!got)
			break;
		n += got;
	}
	fclose(f);
	*len = n;
	return buf;
}

static void test_commit(void)
{
	struct ft_out *o;
	struct ft_err err = { 0 };
	test_cond("open", ft_out_open(&o, path_in("a.jsonl"), &err) == 0);
	test_cond("name is the final path", strcmp(ft_out_name(o), path_in("a.jsonl")) == 0);
	test_cond("write", ft_out_write(o, "{\"a\":1}\n", 8) == 0);
	test_cond("puts", ft_out_puts(o, "{\"a\":2}\n") == 0);
	test_cond("temporary file exists while writing", count_prefixed(".a.jsonl.tmp-") == 1);
	test_cond("final file absent before commit", !exists("a.jsonl"));
	test_cond("commit", ft_out_commit(o, &err) == 0);
	test_cond("final file present after commit", exists("a.jsonl"));
	test_cond("no temporary file after commit", count_prefixed(".a.jsonl.tmp-") == 0);
	size_t len;
	char *data = slurp(path_in("a.jsonl"), &len);
	test_cond("content", data && len == 16 && memcmp(data, "{\"a\":1}\n{\"a\":2}\n", 16) == 0);

	struct stat st;
	mode_t mask = umask(0);
	umask(mask);
	test_cond("mode is 0666 less umask", stat(path_in("a.jsonl"), &st) == 0 &&
		  (st.st_mode & 0777) == (0666 & ~mask));
}

static void test_replace(void)
{
	FILE *f = fopen(path_in("b.jsonl"), "w");
	fputs("old\n", f);
	fclose(f);
	struct ft_out *o;
	struct ft_err err = { 0 };
	ft_out_open(&o, path_in("b.jsonl"), &err);
	ft_out_puts(o, "new\n");
	size_t len;
	char *data = slurp(path_in("b.jsonl"), &len);
	test_cond("old content kept until commit", data && len == 4 && !memcmp(data, "old\n", 4));
	ft_out_commit(o, &err);
	data = slurp(path_in("b.jsonl"), &len);
	test_cond("new content after commit", data && len == 4 && !memcmp(data, "new\n", 4));
}

static void test_abort(void)
{
	struct ft_out *o;
	struct ft_err err = { 0 };
	ft_out_open(&o, path_in("c.jsonl"), &err);
	ft_out_puts(o, "partial\n");
	test_cond("temporary file before abort", count_prefixed(".c.jsonl.tmp-") == 1);
	ft_out_abort(o);
	test_cond("no temporary file after abort", count_prefixed(".c.jsonl.tmp-") == 0);
	test_cond("no final file after abort", !exists("c.jsonl"));

	struct ft_out *o1, *o2;
	ft_out_open(&o1, path_in("d1.jsonl"), &err);
	ft_out_open(&o2, path_in("d2.jsonl"), &err);
	ft_out_puts(o1, "x\n");
	ft_out_puts(o2, "y\n");
	test_cond("two temporary files", count_prefixed(".d") == 2);
	ft_out_abort_all();
	test_cond("abort_all removes every temporary file", count_prefixed(".d") == 0);
	test_cond("commit after abort_all fails", ft_out_commit(o1, &err) == FT_E_IO);
	test_cond("and leaves no file", !exists("d1.jsonl"));
	ft_out_abort(o2);  /* frees what abort_all left */
	test_cond("nothing left", !exists("d2.jsonl") && count_prefixed(".d") == 0);
}

static void test_big(void)
{
	/* larger than the buffer, written in odd pieces and one big block */
	size_t n = 3u << 20;
	char *src = malloc(n);
	for (size_t i = 0; i < n; i++)
		src[i] = (char)('a' + i % 26);
	struct ft_out *o;
	struct ft_err err = { 0 };
	ft_out_open(&o, path_in("big"), &err);
	size_t off = 0;
	while (off < n / 2) {
		size_t k = 7777 < n / 2 - off ? 7777 : n / 2 - off;
		ft_out_write(o, src + off, k);
		off += k;
	}
	ft_out_write(o, src + off, n - off);
	test_cond("big commit", ft_out_commit(o, &err) == 0);
	size_t len;
	char *data = slurp(path_in("big"), &len);
	test_cond("big content", data && len == n && memcmp(data, src, n) == 0);
	free(src);
}

static void test_errors(void)
{
	struct ft_out *o;
	struct ft_err err = { 0 };
	test_cond("missing directory fails", ft_out_open(&o, path_in("nodir/x"), &err) == FT_E_IO);
	test_cond("message names the output", strstr(err.msg, "nodir/x") != NULL);
	test_cond("a directory is not an output", ft_out_open(&o, dir, &err) == FT_E_IO);

	/* /dev/full: a device is written in place, and every write fails */
	if (access("/dev/full", W_OK) == 0) {
		test_cond("open /dev/full", ft_out_open(&o, "/dev/full", &err) == 0);
		char block[4096] = { 0 };
		int rc = 0;
		for (int i = 0; i < 600 && !rc; i++)
			rc = ft_out_write(o, block, sizeof block);
		test_cond("write error shows once the buffer flushes", rc == FT_E_IO);
		test_cond("and sticks", ft_out_puts(o, "more") == FT_E_IO);
		ft_err_clear(&err);
		test_cond("commit reports it", ft_out_commit(o, &err) == FT_E_IO);
		test_cond("with the cause", strstr(err.msg, "/dev/full") &&
			  strstr(err.msg, "No space left"));
	}
	/* sync checks the same before anything is renamed */
	if (access("/dev/full", W_OK) == 0) {
		ft_out_open(&o, "/dev/full", &err);
		ft_out_puts(o, "x");
		test_cond("sync reports a write error", ft_out_sync(o, &err) == FT_E_IO);
		ft_out_abort(o);
	}
}

static void test_stdout(void)
{
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	int fd = open(path_in("stdout.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	struct ft_out *o;
	struct ft_err err = { 0 };
	int rc = ft_out_open(&o, "-", &err);
	bool named = strcmp(ft_out_name(o), "<stdout>") == 0;
	ft_out_puts(o, "to stdout\n");
	int crc = ft_out_commit(o, &err);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	test_cond("stdout open", rc == 0 && named);
	test_cond("stdout commit", crc == 0);
	size_t len;
	char *data = slurp(path_in("stdout.txt"), &len);
	test_cond("stdout content", data && len == 10 && !memcmp(data, "to stdout\n", 10));
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/ft-test-out.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_commit();
	test_replace();
	test_abort();
	test_big();
	test_errors();
	test_stdout();

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("cannot remove %s\n", dir);
	return test_report();
}
