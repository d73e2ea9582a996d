/* dirs.c: atomic directories (contract in dirs.h). */
#include "dirs.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ft_dir_make(const char *path, struct ft_err *err)
{
	char buf[4096];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return ft_err_set(err, FT_E_IO, "path too long: '%s'", path);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(buf, 0777) != 0 && errno != EEXIST)
			return ft_err_set(err, FT_E_IO, "cannot create '%s': %s", buf,
					  strerror(errno));
		*p = c;
		if (!c)
			break;
	}
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return ft_err_set(err, FT_E_IO, "'%s' is not a directory", path);
	return FT_OK;
}

/* dirname / basename of path into dir and base (no allocation) */
static int split(const char *path, char *dir, size_t dsize, const char **base)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		*base = path;
		return snprintf(dir, dsize, ".") >= (int)dsize ? -1 : 0;
	}
	*base = slash + 1;
	size_t n = (size_t)(slash - path);
	if (n == 0)
		n = 1;   /* "/name" */
	if (n >= dsize)
		return -1;
	memcpy(dir, path, n);
	dir[n] = 0;
	return 0;
}

int ft_dir_tmp(const char *final, char *tmp, size_t tmpsize, struct ft_err *err)
{
	char dir[4096];
	const char *base;
	if (split(final, dir, sizeof dir, &base) ||
	    snprintf(tmp, tmpsize, "%s/.%s.tmp-XXXXXX", dir, base) >= (int)tmpsize)
		return ft_err_set(err, FT_E_IO, "path too long: '%s'", final);
	if (!mkdtemp(tmp))
		return ft_err_set(err, FT_E_IO, "cannot create a directory next to '%s': %s", final,
				  strerror(errno));
	/* mkdtemp makes it private; give it the permissions mkdir would */
	mode_t mask = umask(0);
	umask(mask);
	if (chmod(tmp, 0777 & ~mask) != 0)
		return ft_err_set(err, FT_E_IO, "cannot chmod '%s': %s", tmp, strerror(errno));
	return FT_OK;
}

int ft_fsync_path(const char *path, struct ft_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ft_err_set(err, FT_E_IO, "cannot open '%s': %s", path, strerror(errno));
	int rc = fsync(fd);
	int e = errno;
	if (close(fd) != 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	/* some filesystems refuse fsync on directories; that is not a failure */
	if (rc != 0 && e != EINVAL && e != EBADF)
		return ft_err_set(err, FT_E_IO, "cannot sync '%s': %s", path, strerror(e));
	return FT_OK;
}

int ft_dir_commit(const char *tmp, const char *final, struct ft_err *err)
{
	int rc = ft_fsync_path(tmp, err);
	if (rc)
		return rc;
	char old[4096];
	bool had_old = false;
	struct stat st;
	if (lstat(final, &st) == 0) {
		if (ft_dir_tmp(final, old, sizeof old, err))
			return FT_E_IO;
		/* rename over the fresh empty directory: POSIX allows replacing an
		 * empty directory */
		if (rename(final, old) != 0)
			return ft_err_set(err, FT_E_IO, "cannot move '%s' aside: %s", final,
					  strerror(errno));
		had_old = true;
	}
	if (rename(tmp, final) != 0) {
		int e = errno;
		if (had_old && rename(old, final) != 0)
			return ft_err_set(err, FT_E_IO, "cannot rename '%s' to '%s' (%s); the old "
					  "one is at '%s'", tmp, final, strerror(e), old);
		return ft_err_set(err, FT_E_IO, "cannot rename '%s' to '%s': %s", tmp, final,
				  strerror(e));
	}
	char dir[4096];
	const char *base;
	if (split(final, dir, sizeof dir, &base) == 0 && (rc = ft_fsync_path(dir, err)))
		return rc;
	return had_old ? ft_dir_remove(old, err) : FT_OK;
}

int ft_dir_remove(const char *path, struct ft_err *err)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? FT_OK
				       : ft_err_set(err, FT_E_IO, "cannot stat '%s': %s", path,
						    strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (!d)
			return ft_err_set(err, FT_E_IO, "cannot open '%s': %s", path, strerror(errno));
		struct dirent *e;
		int rc = FT_OK;
		while (!rc && (e = readdir(d))) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char sub[4096];
			if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
				rc = ft_err_set(err, FT_E_IO, "path too long under '%s'", path);
			else
				rc = ft_dir_remove(sub, err);
		}
		closedir(d);
		if (rc)
			return rc;
		if (rmdir(path) != 0)
			return ft_err_set(err, FT_E_IO, "cannot remove '%s': %s", path,
					  strerror(errno));
		return FT_OK;
	}
	if (unlink(path) != 0)
		return ft_err_set(err, FT_E_IO, "cannot remove '%s': %s", path, strerror(errno));
	return FT_OK;
}
