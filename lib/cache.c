/* cache.c: the content-addressed reply cache (contract in cache.h).
 * Durability follows the usual sequence: write a temporary file in the
 * entry's own directory (rename is atomic only within one file system),
 * fsync it, rename it over the entry, fsync the directory so the rename
 * itself survives a power loss. A new fan-out directory is fsynced into
 * its parent the same way. Readers open the entry once and read that inode
 * to the end: a concurrent put renames a new inode over the name and never
 * touches the one being read, so no locks are needed. */
#include "cache.h"
#include "dirs.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_PATH 4096
/* what an entry path adds to the directory: "/ab/." KEY ".tmp-XXXXXX" */
#define CACHE_PATH_EXTRA (sizeof "/ab/." - 1 + 64 + sizeof ".tmp-XXXXXX")
/* "ft-cache 1 " KEY " " up to 20 digits " " SHA "\n", rounded up */
#define CACHE_HEAD_MAX 192

int ft_cache_key_valid(const char *key)
{
	if (!key)
		return 0;
	for (int i = 0; i < 64; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f')))
			return 0;   /* also stops at a NUL before 64 */
	return key[64] == 0;
}

void ft_cache_key(const void *data, size_t len, char hex[65])
{
	uint8_t digest[32];
	ft_sha256(data, len, digest);
	ft_sha256_hex(digest, hex);
}

int ft_cache_open(struct ft_cache *c, const char *dir, struct ft_err *err)
{
	c->dir = NULL;
	size_t n = dir ? strlen(dir) : 0;
	if (n == 0)
		return ft_err_set(err, FT_E_INVAL, "empty cache directory name");
	if (n >= CACHE_PATH - CACHE_PATH_EXTRA)
		return ft_err_set(err, FT_E_INVAL, "cache directory name too long: '%.64s...'", dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	c->dir = strndup(dir, n);
	if (!c->dir)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	int rc = ft_dir_make(c->dir, err);
	if (rc) {
		free(c->dir);
		c->dir = NULL;
	}
	return rc;
}

void ft_cache_close(struct ft_cache *c)
{
	free(c->dir);
	c->dir = NULL;
}

/* DIR/ab, DIR/ab/KEY and the temporary-name template DIR/ab/.KEY.tmp-XXXXXX.
 * open() checked the length, so the checks here only keep it honest. */
static int entry_paths(const struct ft_cache *c, const char *key, char fan[CACHE_PATH],
		       char path[CACHE_PATH], char tmp[CACHE_PATH], struct ft_err *err)
{
	int n1 = snprintf(fan, CACHE_PATH, "%s/%.2s", c->dir, key);
	int n2 = snprintf(path, CACHE_PATH, "%s/%.2s/%s", c->dir, key, key);
	int n3 = snprintf(tmp, CACHE_PATH, "%s/%.2s/.%s.tmp-XXXXXX", c->dir, key, key);
	if (n1 < 0 || n2 < 0 || n3 < 0 || n3 >= CACHE_PATH)
		return ft_err_set(err, FT_E_INVAL, "cache path too long under '%s'", c->dir);
	return FT_OK;
}

static int bad_key(const char *key, struct ft_err *err)
{
	return ft_err_set(err, FT_E_INVAL, "bad cache key '%.80s': want 64 lowercase hex digits",
			  key ? key : "(null)");
}

/* pread(2) up to n bytes at off, through EINTR and short reads; the count
 * read (less than n only at end of file) or -1 with errno set. */
static ssize_t read_at(int fd, void *p, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)p + got, n - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *q = p;
	while (n > 0) {
		ssize_t w = write(fd, q, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

static int is_lower_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

/* Parse the header in head[0..n): on success the payload length, its hex
 * digest and the header's length (payload offset). NULL, or the reason the
 * header is bad. */
static const char *parse_head(const char *head, size_t n, const char *key, uint64_t *len,
			      char sha[65], size_t *hlen)
{
	const size_t m = sizeof FT_CACHE_MAGIC - 1;
	size_t i = 0;
	if (n < m + 1 || memcmp(head, FT_CACHE_MAGIC " ", m + 1) != 0)
		return "bad header";
	i = m + 1;
	if (n - i < 65 || !is_lower_hex(head + i, 64) || head[i + 64] != ' ')
		return "bad header";
	if (memcmp(head + i, key, 64) != 0)
		return "it holds another key";
	i += 65;
	size_t digits = 0;
	uint64_t v = 0;
	while (i < n && head[i] >= '0' && head[i] <= '9') {
		unsigned d = (unsigned)(head[i] - '0');
		if (v > (UINT64_MAX - d) / 10 || (digits == 1 && v == 0))
			return "bad header";   /* overflow, or a leading zero */
		v = v * 10 + d;
		digits++;
		i++;
	}
	if (digits == 0 || i >= n || head[i] != ' ')
		return "bad header";
	i++;
	if (n - i < 65 || !is_lower_hex(head + i, 64) || head[i + 64] != '\n')
		return "bad header";
	memcpy(sha, head + i, 64);
	sha[64] = 0;
	*len = v;
	*hlen = i + 65;
	return NULL;
}

int ft_cache_get(struct ft_cache *c, const char *key, struct ft_buf *out, struct ft_err *err)
{
	ft_err_clear(err);
	if (!ft_cache_key_valid(key))
		return bad_key(key, err);
	char fan[CACHE_PATH], path[CACHE_PATH], tmp[CACHE_PATH];
	int rc = entry_paths(c, key, fan, path, tmp, err);
	if (rc)
		return rc;

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return ft_err_set(err, FT_E_IO, "cannot open '%s': %s", path, strerror(errno));
	}
	const char *why = NULL;
	struct stat st;
	char head[CACHE_HEAD_MAX];
	ssize_t n;
	uint64_t len = 0;
	size_t hlen = 0;
	char want[65], got[65];
	if (fstat(fd, &st) != 0) {
		rc = ft_err_set(err, FT_E_IO, "cannot stat '%s': %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		why = "not a regular file";
		goto done;
	}
	if ((n = read_at(fd, head, sizeof head, 0)) < 0) {
		rc = ft_err_set(err, FT_E_IO, "cannot read '%s': %s", path, strerror(errno));
		goto done;
	}
	if ((why = parse_head(head, (size_t)n, key, &len, want, &hlen)))
		goto done;
	if ((uint64_t)st.st_size < hlen || (uint64_t)st.st_size - hlen != len) {
		why = "wrong length";
		goto done;
	}
	if (len > SIZE_MAX / 2 || (rc = ft_buf_reserve(out, (size_t)len))) {
		if (rc == FT_E_NOMEM)
			rc = ft_err_set(err, rc, "out of memory");
		else
			rc = ft_err_set(err, FT_E_TOOBIG, "'%s': the reply of %" PRIu64 " bytes is "
					"larger than %zu bytes", path, len, out->max);
		goto done;
	}
	/* read into the spare room and only count it once it checks out, so
	 * out is unchanged on every path but success */
	n = read_at(fd, out->data + out->len, (size_t)len, (off_t)hlen);
	if (n < 0) {
		rc = ft_err_set(err, FT_E_IO, "cannot read '%s': %s", path, strerror(errno));
		goto done;
	}
	if ((uint64_t)n != len) {
		why = "wrong length";
		goto done;
	}
	ft_cache_key(out->data + out->len, (size_t)len, got);
	if (memcmp(got, want, 64) != 0) {
		why = "checksum mismatch";
		goto done;
	}
	out->len += (size_t)len;
	out->data[out->len] = 0;
	rc = 1;
done:
	close(fd);
	if (rc != 1 && out->data)
		out->data[out->len] = 0;   /* the payload read may have overwritten it */
	if (why) {
		ft_err_set(err, FT_E_DATA, "'%s': damaged cache entry (%s)", path, why);
		return 0;
	}
	return rc;
}

int ft_cache_put(struct ft_cache *c, const char *key, const void *data, size_t len,
		 struct ft_err *err)
{
	if (!ft_cache_key_valid(key))
		return bad_key(key, err);
	char fan[CACHE_PATH], path[CACHE_PATH], tmp[CACHE_PATH];
	int rc = entry_paths(c, key, fan, path, tmp, err);
	if (rc)
		return rc;

	if (mkdir(fan, 0777) == 0) {
		if ((rc = ft_fsync_path(c->dir, err)))
			return rc;
	} else if (errno != EEXIST) {
		return ft_err_set(err, FT_E_IO, "cannot create '%s': %s", fan, strerror(errno));
	}

	char sha[65], head[CACHE_HEAD_MAX];
	ft_cache_key(data, len, sha);
	int hn = snprintf(head, sizeof head, "%s %s %zu %s\n", FT_CACHE_MAGIC, key, len, sha);
	if (hn < 0 || hn >= (int)sizeof head)
		return ft_err_set(err, FT_E_INVAL, "cannot format a cache header");

	/* mkostemp's 0600 is kept on purpose: replies echo users' prompts */
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return ft_err_set(err, FT_E_IO, "cannot create a file in '%s': %s", fan,
				  strerror(errno));
	if (write_all(fd, head, (size_t)hn) != 0 || (len && write_all(fd, data, len) != 0) ||
	    fsync(fd) != 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return ft_err_set(err, FT_E_IO, "cannot write '%s': %s", tmp, strerror(e));
	}
	if (close(fd) != 0) {
		int e = errno;
		unlink(tmp);
		return ft_err_set(err, FT_E_IO, "cannot write '%s': %s", tmp, strerror(e));
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return ft_err_set(err, FT_E_IO, "cannot rename '%s' to '%s': %s", tmp, path,
				  strerror(e));
	}
	return ft_fsync_path(fan, err);
}
