/* out.c: atomic output files. Data is buffered and written with write(2);
 * a named output lives in ".NAME.tmp-XXXXXX" beside NAME until commit, which
 * does fsync(file), rename, fsync(directory), the sequence that makes the new
 * name durable and never half-written. Open outputs are kept in a list so
 * ft_out_abort_all() can remove their temporary files, also from a signal
 * handler: the list is only changed with the termination signals blocked,
 * and ft_out_abort_all() itself uses nothing but unlink(2) and close(2). */
#include "out.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUT_BUF_SIZE ((size_t)1 << 20)

struct ft_out {
	int fd;
	bool is_stdout;
	bool direct;      /* an existing device or fifo (/dev/null), written in place */
	bool dead;        /* removed by ft_out_abort_all() */
	int werr;         /* errno of the first failed write: sticky */
	char *path;       /* final name */
	char *tmp;        /* temporary name, NULL unless atomic */
	char *buf;
	size_t len, cap;
	struct ft_out *prev, *next;
};

static struct ft_out *outs;  /* open outputs with a temporary file */

static void block_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	sigaddset(&set, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

static void restore_signals(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static void list_add(struct ft_out *o)
{
	sigset_t old;
	block_signals(&old);
	o->prev = NULL;
	o->next = outs;
	if (outs)
		outs->prev = o;
	outs = o;
	restore_signals(&old);
}

/* callers block signals */
static void list_del(struct ft_out *o)
{
	if (o->prev)
		o->prev->next = o->next;
	else if (outs == o)
		outs = o->next;
	if (o->next)
		o->next->prev = o->prev;
	o->prev = o->next = NULL;
}

static void out_free(struct ft_out *o)
{
	free(o->path);
	free(o->tmp);
	free(o->buf);
	free(o);
}

/* The permissions open(2) would give a new file: 0666 less the umask. */
static mode_t file_mode(void)
{
	static mode_t mode;
	static bool known;
	if (!known) {
		mode_t mask = umask(022);
		umask(mask);
		mode = 0666 & ~mask;
		known = true;
	}
	return mode;
}

int ft_out_open(struct ft_out **op, const char *path, struct ft_err *err)
{
	*op = NULL;
	struct ft_out *o = calloc(1, sizeof *o);
	if (!o)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	o->fd = -1;
	o->cap = OUT_BUF_SIZE;
	o->buf = malloc(o->cap);
	if (!o->buf) {
		free(o);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	if (!path || strcmp(path, "-") == 0) {
		o->is_stdout = true;
		o->fd = STDOUT_FILENO;
		*op = o;
		return FT_OK;
	}
	o->path = strdup(path);
	if (!o->path)
		goto nomem;

	/* renaming over /dev/null or a fifo would replace it: write in place */
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode)) {
			ft_err_set(err, FT_E_IO, "cannot write '%s': %s", path, strerror(EISDIR));
			goto fail;
		}
		o->direct = true;
		o->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (o->fd < 0) {
			ft_err_set(err, FT_E_IO, "cannot open '%s': %s", path, strerror(errno));
			goto fail;
		}
		*op = o;
		return FT_OK;
	}

	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	const char *base = path + dirlen;
	if (!*base) {
		ft_err_set(err, FT_E_IO, "cannot write '%s': %s", path, strerror(EISDIR));
		goto fail;
	}
	size_t n = dirlen + strlen(base) + sizeof "..tmp-XXXXXX";
	o->tmp = malloc(n);
	if (!o->tmp)
		goto nomem;
	memcpy(o->tmp, path, dirlen);
	snprintf(o->tmp + dirlen, n - dirlen, ".%s.tmp-XXXXXX", base);

	/* register before the file exists, so no signal can leave it behind */
	sigset_t old;
	block_signals(&old);
	o->fd = mkostemp(o->tmp, O_CLOEXEC);
	int e = errno;
	if (o->fd >= 0)
		list_add(o);
	restore_signals(&old);
	if (o->fd < 0) {
		ft_err_set(err, FT_E_IO, "cannot create '%s': %s", path, strerror(e));
		goto fail;
	}
	if (fchmod(o->fd, file_mode()) != 0) {
		ft_err_set(err, FT_E_IO, "cannot create '%s': %s", path, strerror(errno));
		ft_out_abort(o);
		return FT_E_IO;
	}
	*op = o;
	return FT_OK;
nomem:
	ft_err_set(err, FT_E_NOMEM, "out of memory");
fail:
	if (o->fd >= 0 && !o->tmp)
		close(o->fd);
	out_free(o);
	return err ? err->code : FT_E_IO;
}

/* write(2) all of p, through EINTR and short writes. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (w == 0)
			return EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int flush(struct ft_out *o)
{
	if (o->werr)
		return FT_E_IO;
	if (o->dead) {
		o->werr = ECANCELED;
		return FT_E_IO;
	}
	if (o->len) {
		o->werr = write_all(o->fd, o->buf, o->len);
		o->len = 0;
	}
	return o->werr ? FT_E_IO : FT_OK;
}

int ft_out_write(struct ft_out *o, const void *p, size_t n)
{
	if (o->werr)
		return FT_E_IO;
	if (n <= o->cap - o->len) {
		memcpy(o->buf + o->len, p, n);
		o->len += n;
		return FT_OK;
	}
	if (flush(o))
		return FT_E_IO;
	if (n >= o->cap) {
		if (o->dead)
			o->werr = ECANCELED;
		else
			o->werr = write_all(o->fd, p, n);
		return o->werr ? FT_E_IO : FT_OK;
	}
	memcpy(o->buf, p, n);
	o->len = n;
	return FT_OK;
}

int ft_out_puts(struct ft_out *o, const char *s)
{
	return ft_out_write(o, s, strlen(s));
}

/* fsync the directory holding path so the rename itself is durable. File
 * systems that cannot sync directories say EINVAL; that is not an error. */
static int sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup(".");
	if (!dir)
		return ENOMEM;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return errno == EACCES ? 0 : errno;
	int e = 0;
	if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
		e = errno;
	close(fd);
	return e;
}

int ft_out_sync(struct ft_out *o, struct ft_err *err)
{
	flush(o);
	if (!o->werr && !o->is_stdout && !o->direct && fsync(o->fd) != 0)
		o->werr = errno;
	if (o->werr)
		return ft_err_set(err, FT_E_IO, "cannot write '%s': %s", ft_out_name(o),
				  strerror(o->werr));
	return FT_OK;
}

int ft_out_commit(struct ft_out *o, struct ft_err *err)
{
	const char *name = ft_out_name(o);
	int e;

	flush(o);
	e = o->werr;
	if (o->is_stdout) {
		out_free(o);
		if (e)
			return ft_err_set(err, FT_E_IO, "cannot write '%s': %s", name, strerror(e));
		return FT_OK;
	}
	if (!e && !o->direct && fsync(o->fd) != 0)
		e = errno;
	if (o->fd >= 0 && close(o->fd) != 0 && !e)
		e = errno;
	o->fd = -1;
	if (e) {
		ft_err_set(err, FT_E_IO, "cannot write '%s': %s", name, strerror(e));
		ft_out_abort(o);
		return FT_E_IO;
	}
	if (o->direct) {
		out_free(o);
		return FT_OK;
	}

	sigset_t old;
	block_signals(&old);
	if (rename(o->tmp, o->path) != 0) {
		e = errno;
		restore_signals(&old);
		ft_err_set(err, FT_E_IO, "cannot rename '%s' to '%s': %s", o->tmp, name,
			   strerror(e));
		ft_out_abort(o);
		return FT_E_IO;
	}
	list_del(o);
	restore_signals(&old);
	e = sync_dir(o->path);
	if (e)
		ft_err_set(err, FT_E_IO, "cannot sync the directory of '%s': %s", name, strerror(e));
	out_free(o);
	return e ? FT_E_IO : FT_OK;
}

void ft_out_abort(struct ft_out *o)
{
	if (!o)
		return;
	if (o->tmp && !o->dead) {
		sigset_t old;
		block_signals(&old);
		unlink(o->tmp);
		list_del(o);
		restore_signals(&old);
	}
	if (!o->is_stdout && o->fd >= 0)
		close(o->fd);
	out_free(o);
}

/* Async-signal-safe: unlink and close only. The objects stay allocated
 * (marked dead) so that a later ft_out_abort() can still free them. */
void ft_out_abort_all(void)
{
	sigset_t old;
	block_signals(&old);
	while (outs) {
		struct ft_out *o = outs;
		unlink(o->tmp);
		if (o->fd >= 0)
			close(o->fd);
		o->fd = -1;
		o->dead = true;
		list_del(o);
	}
	restore_signals(&old);
}

const char *ft_out_name(const struct ft_out *o)
{
	return o->is_stdout ? "<stdout>" : o->path;
}

int ft_out_pwrite(struct ft_out *o, const void *p, size_t n, unsigned long long off,
		  struct ft_err *err)
{
	const char *name = ft_out_name(o);
	if (o->is_stdout)
		return ft_err_set(err, FT_E_INVAL, "cannot seek in '%s'", name);
	if (flush(o))
		return ft_err_set(err, FT_E_IO, "cannot write '%s': %s", name, strerror(o->werr));
	const char *q = p;
	while (n > 0) {
		ssize_t w = pwrite(o->fd, q, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			o->werr = w < 0 ? errno : EIO;
			return ft_err_set(err, FT_E_IO, "cannot write '%s': %s", name,
					  strerror(o->werr));
		}
		q += w;
		n -= (size_t)w;
		off += (unsigned long long)w;
	}
	return FT_OK;
}
