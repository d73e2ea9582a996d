/* cli.c: diagnostics, exits, option values and progress for the tools. */
#include "cli.h"
#include "out.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *ft_progname = "ft";

/* width of the progress line now on the terminal, 0 if none */
static int progress_width;

static void clear_progress(void)
{
	if (progress_width > 0) {
		fprintf(stderr, "\r%*s\r", progress_width, "");
		progress_width = 0;
	}
}

/* A termination signal must not leave temporary files behind: remove them,
 * then die of the same signal so the parent sees what happened. */
static void on_signal(int sig)
{
	ft_out_abort_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

void ft_cli_init(const char *progname)
{
	const char *slash = progname ? strrchr(progname, '/') : NULL;
	if (progname)
		ft_progname = slash ? slash + 1 : progname;
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct sigaction sa, old;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		/* keep a signal the parent chose to ignore (nohup) ignored */
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
}

static void vwarn(const char *fmt, va_list ap)
{
	clear_progress();
	fflush(stdout);
	fprintf(stderr, "%s: ", ft_progname);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void ft_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
}

_Noreturn void ft_die(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	ft_out_abort_all();
	exit(status);
}

_Noreturn void ft_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", ft_progname);
	ft_out_abort_all();
	exit(FT_EXIT_USAGE);
}

void ft_report(const struct ft_err *err, const char *prefix)
{
	clear_progress();
	fflush(stdout);
	fprintf(stderr, "%s: ", ft_progname);
	if (err->file) {
		const char *name = strcmp(err->file, "-") == 0 ? "<stdin>" : err->file;
		if (err->line > 0)
			fprintf(stderr, "%s:%ld: ", name, err->line);
		else
			fprintf(stderr, "%s: ", name);
	}
	fprintf(stderr, "%s%s\n", prefix ? prefix : "", err->msg[0] ? err->msg : "unknown error");
}

long ft_opt_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		ft_usage_error("invalid value '%s' for %s: expected an integer from %ld to %ld",
			       s, opt, min, max);
	return v;
}

void *ft_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		ft_die(FT_EXIT_DATA, "out of memory");
	return p;
}

void *ft_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		ft_die(FT_EXIT_DATA, "out of memory");
	return p;
}

char *ft_xstrndup(const char *s, size_t n)
{
	char *p = ft_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *ft_xstrdup(const char *s)
{
	return ft_xstrndup(s, strlen(s));
}

uint64_t ft_opt_u64(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *s == '+' || *s == ' ')
		ft_usage_error("invalid value '%s' for %s: expected an integer from 0 to "
			       "18446744073709551615", s, opt);
	return (uint64_t)v;
}

const char *ft_opt_name(const char *arg)
{
	static char name[64];
	if (strncmp(arg, "--", 2) == 0) {
		size_t n = strcspn(arg, "=");
		snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), arg);
	} else {
		snprintf(name, sizeof name, "-%c", optopt ? optopt : '?');
	}
	return name;
}

double ft_opt_double(const char *opt, const char *s, double min, double max)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
		ft_usage_error("invalid value '%s' for %s: expected a number from %g to %g",
			       s, opt, min, max);
	return v;
}

size_t ft_opt_size(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;
	bool ok = !errno && end != s && *s != '-' && *s != '+';
	if (ok && *end) {
		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: ok = false; break;
		}
		end++;
		/* 64M, 64MB and 64MiB all mean 64 << 20 */
		if (ok && *end && strcmp(end, "B") != 0 && strcmp(end, "iB") != 0)
			ok = false;
	}
	if (ok && (v > (SIZE_MAX >> shift)))
		ok = false;
	if (!ok)
		ft_usage_error("invalid size '%s' for %s: expected a number with an optional "
			       "K, M or G suffix", s, opt);
	return (size_t)v << shift;
}

void ft_close_stdout(void)
{
	/* a full disk or a closed pipe shows up here at the latest */
	bool bad = fflush(stdout) != 0 || ferror(stdout);
	int e = errno;
	if (fclose(stdout) != 0 && !bad && errno != EBADF) {
		bad = true;
		e = errno;
	}
	if (bad)
		ft_die(FT_EXIT_DATA, "write error on standard output: %s", strerror(e));
}

static double now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ft_fmt_duration(double seconds, char *out, size_t size)
{
	long t = (long)(seconds + 0.5);
	if (t >= 3600)
		snprintf(out, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
	else if (t >= 60)
		snprintf(out, size, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(out, size, "%lds", t);
}

void ft_progress_init(struct ft_progress *p, bool force)
{
	p->enabled = force || isatty(STDERR_FILENO);
	p->start = p->last = now();
	p->records = p->bytes = 0;
}

static void draw(struct ft_progress *p, double t)
{
	double mb = (double)p->bytes / 1e6;
	double dt = t - p->start;
	char line[160];
	int n = snprintf(line, sizeof line, "%s: %llu records, %.1f MB, %.1f MB/s",
			 ft_progname, p->records, mb, dt > 0 ? mb / dt : 0.0);
	if (n < 0)
		return;
	if (n >= (int)sizeof line)
		n = (int)sizeof line - 1;
	/* pad with spaces over a longer previous line */
	fprintf(stderr, "\r%s%*s", line, progress_width > n ? progress_width - n : 0, "");
	fflush(stderr);
	if (n > progress_width)
		progress_width = n;
}

void ft_progress_update(struct ft_progress *p, unsigned long long records,
			unsigned long long bytes)
{
	p->records = records;
	p->bytes = bytes;
	if (!p->enabled)
		return;
	double t = now();
	if (t - p->last < 0.1)
		return;
	p->last = t;
	draw(p, t);
}

void ft_progress_done(struct ft_progress *p)
{
	if (p->enabled)
		clear_progress();
}
