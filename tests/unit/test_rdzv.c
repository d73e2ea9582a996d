/* Unit tests for lib/rdzv.c: ranks are forked processes on the loopback
 * interface, each reporting its result, message and blob through a pipe.
 * The id reaches every rank (rank 0 started last, so the others retry;
 * by 127.0.0.1, by "localhost", by ::1 where there is IPv6); a world or
 * len mismatch, a rank twice and a stranger on either side fail on every
 * rank with a message naming it; a missing rank 0 or missing ranks time
 * out naming them; world 1 returns at once; bad arguments are FT_E_INVAL.
 * The same through a shared file: every rank gets the id, rank 0 refuses
 * an existing file, mismatches, a missing rank 0 and a stranger's file
 * fail with messages naming them.
 * Successful exchanges get a 20 s timeout so a loaded machine does not
 * fail them; only the timeout tests use short ones. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ft.h"
#include "rdzv.h"
#include "testhelp.h"

#define ID_LEN 128      /* ncclUniqueId */
#define MAX_RANKS 8

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void nap(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A port nobody uses now: bind port 0 the way rank 0 will listen, read it
 * back, close. */
static int free_port(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0), off = 0, port = -1;
	if (fd >= 0) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
		socklen_t al = sizeof a;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0 &&
		    bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
		    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
			port = ntohs(a.sin6_port);
		close(fd);
		if (port > 0)
			return port;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	socklen_t al = sizeof a;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool have_ipv6_loopback(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

/* rank r's own bytes before the exchange */
static void pattern(unsigned char *b, size_t len, int r)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (unsigned char)(r * 37 + i * 11 + 5);
}

/* Open descriptors, or -1 without /proc */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int leaky_ranks;   /* ranks that returned with more descriptors open */

struct outcome {
	int rc;
	bool leaked;    /* more descriptors open after the call than before */
	double secs;
	unsigned char blob[FT_RDZV_MAX_LEN];
	char msg[FT_ERR_MSG];
};

struct party {
	pid_t pid;
	int fd;         /* read end of its pipe */
	struct outcome out;
};

/* Forks one rank: it waits delay_s, calls ft_rdzv_share on a blob of its
 * own pattern (ft_rdzv_share_file for a host "file:PATH") and writes its
 * outcome to a pipe. */
static void spawn(struct party *p, const char *host, int port, int rank, int world, size_t len,
		  double timeout_s, double delay_s)
{
	int fds[2];
	memset(p, 0, sizeof *p);
	p->pid = -1;
	p->fd = -1;
	if (pipe(fds) != 0)
		return;
	fflush(stdout);
	p->pid = fork();
	if (p->pid == 0) {
		struct outcome o = { 0 };
		struct ft_err err = { 0 };
		close(fds[0]);
		nap(delay_s);
		pattern(o.blob, len, rank);
		int open_before = count_fds();
		double t0 = now_s();
		o.rc = strncmp(host, "file:", 5) == 0
			? ft_rdzv_share_file(host + 5, rank, world, o.blob, len, timeout_s, &err)
			: ft_rdzv_share(host, port, rank, world, o.blob, len, timeout_s, &err);
		o.secs = now_s() - t0;
		o.leaked = count_fds() != open_before;
		memcpy(o.msg, err.msg, sizeof o.msg);
		const char *at = (const char *)&o;
		size_t left = sizeof o;
		while (left > 0) {
			ssize_t n = write(fds[1], at, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				exit(2);
			at += n;
			left -= (size_t)n;
		}
		/* exit, not _exit: stdout was flushed before the fork, and
		 * LeakSanitizer then checks the rank too */
		exit(0);
	}
	close(fds[1]);
	if (p->pid < 0)
		close(fds[0]);
	else
		p->fd = fds[0];
}

/* Waits for a rank; a rank that did not report has rc 1 and says why. */
static void collect(struct party *p)
{
	char *at = (char *)&p->out;
	size_t got = 0;
	while (p->fd >= 0 && got < sizeof p->out) {
		ssize_t n = read(p->fd, at + got, sizeof p->out - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	int st = 0;
	if (p->pid > 0)
		while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
			;
	if (p->fd >= 0)
		close(p->fd);
	if (got < sizeof p->out || p->pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		p->out.rc = 1;
		snprintf(p->out.msg, sizeof p->out.msg, "rank process did not report (status %d)", st);
	}
	leaky_ranks += p->out.leaked;
}

static bool says(const struct party *p, const char *what)
{
	if (strstr(p->out.msg, what))
		return true;
	printf("  message '%s' lacks '%s'\n", p->out.msg, what);
	return false;
}

/* world ranks by host, rank 0 last: every rank ends with rank 0's id */
static void test_share(const char *host, int world)
{
	struct party p[MAX_RANKS];
	unsigned char want[ID_LEN];
	int port = free_port();
	char what[160];

	pattern(want, ID_LEN, 0);
	for (int r = world - 1; r >= 0; r--)
		spawn(&p[r], host, port, r, world, ID_LEN, 20, r == 0 ? 0.3 : 0);
	for (int r = 0; r < world; r++) {
		collect(&p[r]);
		snprintf(what, sizeof what, "%s, world %d: rank %d succeeds", host, world, r);
		test_cond(what, p[r].out.rc == FT_OK);
		if (p[r].out.rc != FT_OK)
			printf("  rank %d: %d %s\n", r, p[r].out.rc, p[r].out.msg);
		snprintf(what, sizeof what, "%s, world %d: rank %d has rank 0's id", host, world, r);
		test_cond(what, memcmp(p[r].out.blob, want, ID_LEN) == 0);
	}
}

static void test_len0(void)
{
	struct party p[2];
	int port = free_port();
	for (int r = 1; r >= 0; r--)
		spawn(&p[r], "127.0.0.1", port, r, 2, 0, 20, 0);
	collect(&p[0]);
	collect(&p[1]);
	test_cond("len 0 is a barrier", p[0].out.rc == FT_OK && p[1].out.rc == FT_OK);
}

static void test_world_mismatch(void)
{
	struct party p[2];
	int port = free_port();
	spawn(&p[0], "127.0.0.1", port, 0, 2, ID_LEN, 20, 0);
	spawn(&p[1], "127.0.0.1", port, 1, 3, ID_LEN, 20, 0);
	collect(&p[0]);
	collect(&p[1]);
	test_cond("world mismatch fails rank 0", p[0].out.rc == FT_E_DATA &&
		  says(&p[0], "rank 1 (from 127.0.0.1:") && says(&p[0], "has world size 3, rank 0 has 2"));
	test_cond("... and rank 1, with rank 0's reason", p[1].out.rc == FT_E_DATA &&
		  says(&p[1], "refused this rank") && says(&p[1], "world size 3, rank 0 has 2"));
	test_cond("... at once", p[0].out.secs < 10 && p[1].out.secs < 10);
	test_cond("a failed rank keeps its blob", p[1].out.blob[0] != p[0].out.blob[0]);
}

static void test_len_mismatch(void)
{
	struct party p[2];
	int port = free_port();
	spawn(&p[0], "127.0.0.1", port, 0, 2, ID_LEN, 20, 0);
	spawn(&p[1], "127.0.0.1", port, 1, 2, 64, 20, 0);
	collect(&p[0]);
	collect(&p[1]);
	test_cond("len mismatch fails both", p[0].out.rc == FT_E_DATA && p[1].out.rc == FT_E_DATA &&
		  says(&p[0], "expects 64 bytes, rank 0 shares 128") &&
		  says(&p[1], "expects 64 bytes, rank 0 shares 128"));
}

static void test_duplicate(void)
{
	struct party p[3];
	int port = free_port();
	spawn(&p[0], "127.0.0.1", port, 0, 3, ID_LEN, 20, 0);
	spawn(&p[1], "127.0.0.1", port, 1, 3, ID_LEN, 20, 0);
	spawn(&p[2], "127.0.0.1", port, 1, 3, ID_LEN, 20, 0);
	for (int i = 0; i < 3; i++)
		collect(&p[i]);
	test_cond("a rank twice fails rank 0", p[0].out.rc == FT_E_DATA &&
		  says(&p[0], "rank 1 connected twice: from 127.0.0.1:"));
	/* one of them was refused, the other told that rank 0 gave up */
	bool refused = (strstr(p[1].out.msg, "refused") && strstr(p[2].out.msg, "gave up")) ||
		       (strstr(p[2].out.msg, "refused") && strstr(p[1].out.msg, "gave up"));
	test_cond("... and both rank 1s, naming it", p[1].out.rc < 0 && p[2].out.rc < 0 &&
		  refused && says(&p[1], "connected twice") && says(&p[2], "connected twice"));
	test_cond("... at once", p[0].out.secs < 10 && p[1].out.secs < 10 && p[2].out.secs < 10);
}

static void test_no_rank0(void)
{
	unsigned char blob[ID_LEN], before[ID_LEN];
	struct ft_err err = { 0 };
	pattern(blob, ID_LEN, 1);
	memcpy(before, blob, ID_LEN);
	int fds = count_fds();
	double t0 = now_s();
	int rc = ft_rdzv_share("127.0.0.1", free_port(), 1, 2, blob, ID_LEN, 0.5, &err);
	double secs = now_s() - t0;
	leaky_ranks += count_fds() != fds;
	test_cond("no rank 0: times out", rc == FT_E_IO &&
		  strstr(err.msg, "rank 1: timed out after 0.5 s connecting to rank 0"));
	test_cond("... saying what the last try got", strstr(err.msg, "Connection refused") != NULL);
	test_cond("... within the timeout", secs >= 0.5 && secs < 3);
	test_cond("... blob untouched", memcmp(blob, before, ID_LEN) == 0);
	if (rc != FT_E_IO || secs >= 3)
		printf("  %d after %.3f s: %s\n", rc, secs, err.msg);
}

/* world 6 without ranks 3 and 5: rank 0 names them and tells the others */
static void test_missing(void)
{
	struct party p[6];
	static const int run[] = { 1, 2, 4, 0 };
	int port = free_port();
	for (int i = 0; i < 4; i++)
		spawn(&p[run[i]], "127.0.0.1", port, run[i], 6, ID_LEN, run[i] ? 20 : 1, 0);
	for (int i = 0; i < 4; i++)
		collect(&p[run[i]]);
	test_cond("missing ranks: rank 0 times out naming them", p[0].out.rc == FT_E_IO &&
		  says(&p[0], "rank 0: timed out after 1 s waiting for ranks 3, 5"));
	test_cond("... within the timeout", p[0].out.secs >= 1 && p[0].out.secs < 5);
	for (int i = 0; i < 3; i++) {
		char what[80];
		snprintf(what, sizeof what, "... rank %d learns it from rank 0", run[i]);
		test_cond(what, p[run[i]].out.rc == FT_E_IO && says(&p[run[i]], "gave up") &&
			  says(&p[run[i]], "waiting for ranks 3, 5") && p[run[i]].out.secs < 10);
	}
}

/* a connected socket to 127.0.0.1:port, retried while rank 0 starts */
static int raw_connect(int port)
{
	for (int tries = 0; tries < 400; tries++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
			return fd;
		close(fd);
		nap(0.05);
	}
	return -1;
}

static void test_strangers(void)
{
	/* something else connects to rank 0 */
	struct party p;
	int port = free_port();
	spawn(&p, "127.0.0.1", port, 0, 2, ID_LEN, 20, 0);
	int fd = raw_connect(port);
	if (fd >= 0) {
		char junk[64];
		memset(junk, 'x', sizeof junk);
		ssize_t n = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
		(void)n;
		while (read(fd, junk, sizeof junk) > 0)
			;
		close(fd);
	}
	collect(&p);
	test_cond("a stranger at rank 0 fails it", fd >= 0 && p.out.rc == FT_E_PARSE &&
		  says(&p, "is not a rank of this rendezvous"));

	/* rank 1 reaches something else than rank 0 */
	port = free_port();
	int lfd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bool ok = lfd >= 0 && setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
		  bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 4) == 0;
	spawn(&p, "127.0.0.1", port, 1, 2, ID_LEN, 20, 0);
	fd = ok ? accept(lfd, NULL, NULL) : -1;
	if (fd >= 0) {
		char hello[20], junk[64];
		memset(junk, 'y', sizeof junk);
		ssize_t n = read(fd, hello, sizeof hello);
		n = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
		(void)n;
	}
	collect(&p);
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	if (p.out.rc != FT_E_PARSE)
		printf("  ok %d, rank 1: %d %s\n", ok, p.out.rc, p.out.msg);
	test_cond("rank 1 at a stranger fails", ok && p.out.rc == FT_E_PARSE &&
		  says(&p, "does not answer as rank 0 of this rendezvous"));
}

static void test_port_taken(void)
{
	int port = free_port(), on = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_ANY) };
	bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
		  bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0;
	struct ft_err err = { 0 };
	unsigned char blob[ID_LEN];
	int fds = count_fds();
	int rc = ft_rdzv_share("master", port, 0, 2, blob, ID_LEN, 20, &err);
	leaky_ranks += count_fds() != fds;
	char want[80];
	snprintf(want, sizeof want, "rank 0: cannot listen on port %d: ", port);
	test_cond("a port in use fails rank 0 at once", ok && rc == FT_E_IO &&
		  strstr(err.msg, want) && strstr(err.msg, "rendezvous master:"));
	if (fd >= 0)
		close(fd);
}

static void test_world1(void)
{
	unsigned char blob[ID_LEN], before[ID_LEN];
	struct ft_err err = { 0 };
	pattern(blob, ID_LEN, 3);
	memcpy(before, blob, ID_LEN);
	double t0 = now_s();
	/* a port nobody listens on and a tiny timeout: nothing is tried */
	int rc = ft_rdzv_share("127.0.0.1", free_port(), 0, 1, blob, ID_LEN, 1e-3, &err);
	test_cond("world 1 is immediate", rc == FT_OK && now_s() - t0 < 0.5 &&
		  memcmp(blob, before, ID_LEN) == 0);
}

static void test_args(void)
{
	unsigned char blob[ID_LEN];
	static const struct {
		const char *host; int port, rank, world; size_t len; double timeout; bool blob;
		const char *says;
	} bad[] = {
		{ "h", 0, 1, 2, ID_LEN, 1, true, "port 0 is not in 1..65535" },
		{ "h", 65536, 1, 2, ID_LEN, 1, true, "port 65536" },
		{ "h", -1, 1, 2, ID_LEN, 1, true, "port -1" },
		{ "h", 80, -1, 2, ID_LEN, 1, true, "rank -1 is not in 0..1" },
		{ "h", 80, 2, 2, ID_LEN, 1, true, "rank 2 is not in 0..1" },
		{ "h", 80, 0, 0, ID_LEN, 1, true, "world size 0" },
		{ "h", 80, 0, 65537, ID_LEN, 1, true, "world size 65537" },
		{ "h", 80, 0, 1, 4097, 1, true, "4097 bytes" },
		{ NULL, 80, 1, 2, ID_LEN, 1, true, "no host" },
		{ "", 80, 1, 2, ID_LEN, 1, true, "no host" },
		{ "h", 80, 1, 2, ID_LEN, 1, false, "no buffer" },
		{ "h", 80, 1, 2, ID_LEN, 0, true, "timeout 0 s" },
		{ "h", 80, 1, 2, ID_LEN, -1, true, "timeout -1 s" },
		{ "h", 80, 1, 2, ID_LEN, NAN, true, "timeout" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ft_err err = { 0 };
		char what[120];
		int rc = ft_rdzv_share(bad[i].host, bad[i].port, bad[i].rank, bad[i].world,
				       bad[i].blob ? blob : NULL, bad[i].len, bad[i].timeout, &err);
		snprintf(what, sizeof what, "bad argument %zu: FT_E_INVAL, '%s'", i, bad[i].says);
		test_cond(what, rc == FT_E_INVAL && err.code == FT_E_INVAL &&
			  strstr(err.msg, bad[i].says));
	}
	test_cond("NULL err is fine", ft_rdzv_share("h", 0, 0, 1, blob, 1, 1, NULL) == FT_E_INVAL);
	test_cond("ports 1 and 65535 and an infinite timeout are valid",
		  ft_rdzv_share("h", 1, 0, 1, blob, 0, INFINITY, NULL) == FT_OK &&
		  ft_rdzv_share("h", 65535, 0, 1, blob, 0, 1, NULL) == FT_OK);
}

/* ---- through a shared file ---- */

static char dir[] = "/tmp/test_rdzv.XXXXXX";

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* Names in d besides . and .. */
static int entries(const char *d)
{
	DIR *o = opendir(d);
	int n = 0;
	if (!o)
		return -1;
	for (struct dirent *e; (e = readdir(o));)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(o);
	return n;
}

static void test_file(void)
{
	struct party p[MAX_RANKS];
	unsigned char want[ID_LEN];
	char host[300], path[280], what[120];
	struct ft_err err = { 0 };

	snprintf(path, sizeof path, "%s/id", dir);
	snprintf(host, sizeof host, "file:%s", path);
	pattern(want, ID_LEN, 0);
	/* rank 0 last: the others wait for the file */
	for (int r = 3; r >= 0; r--)
		spawn(&p[r], host, 0, r, 4, ID_LEN, 20, r == 0 ? 0.3 : 0);
	for (int r = 0; r < 4; r++) {
		collect(&p[r]);
		snprintf(what, sizeof what, "file: rank %d has rank 0's id", r);
		test_cond(what, p[r].out.rc == FT_OK && memcmp(p[r].out.blob, want, ID_LEN) == 0);
		if (p[r].out.rc != FT_OK)
			printf("  rank %d: %d %s\n", r, p[r].out.rc, p[r].out.msg);
	}
	test_cond("file: rank 0 leaves the file and no temporary one",
		  exists(path) && entries(dir) == 1);

	/* the file of an earlier job: rank 0 refuses it, a reader with another
	 * world says so */
	spawn(&p[0], host, 0, 0, 4, ID_LEN, 20, 0);
	collect(&p[0]);
	test_cond("file: rank 0 refuses an existing file", p[0].out.rc == FT_E_DATA &&
		  says(&p[0], "exists already") && says(&p[0], path));
	spawn(&p[1], host, 0, 1, 2, ID_LEN, 20, 0);
	collect(&p[1]);
	test_cond("file: a world mismatch names both", p[1].out.rc == FT_E_DATA &&
		  says(&p[1], "rank 0 has world size 4, this rank 2"));
	spawn(&p[1], host, 0, 1, 4, 64, 20, 0);
	collect(&p[1]);
	test_cond("file: a len mismatch too", p[1].out.rc == FT_E_DATA &&
		  says(&p[1], "rank 0 shares 128 bytes, this rank expects 64"));

	test_cond("file: rank 0 removes it", ft_rdzv_remove(path, &err) == FT_OK && !exists(path));
	test_cond("file: removing it twice is fine", ft_rdzv_remove(path, &err) == FT_OK);

	/* no rank 0: a timeout */
	double t0 = now_s();
	unsigned char blob[ID_LEN];
	pattern(blob, ID_LEN, 1);
	int rc = ft_rdzv_share_file(path, 1, 2, blob, ID_LEN, 0.3, &err);
	test_cond("file: without rank 0, a timeout", rc == FT_E_IO && strstr(err.msg, "timed out") &&
		  now_s() - t0 < 10);

	/* something else at path */
	FILE *f = fopen(path, "w");
	if (f) {
		fputs("not an id\n", f);
		fclose(f);
	}
	rc = ft_rdzv_share_file(path, 1, 2, blob, ID_LEN, 5, &err);
	test_cond("file: a stranger's file is FT_E_PARSE", rc == FT_E_PARSE &&
		  strstr(err.msg, "not a rendezvous file"));
	unlink(path);
	snprintf(path, sizeof path, "%s/no/such/dir/id", dir);
	rc = ft_rdzv_share_file(path, 0, 2, blob, ID_LEN, 5, &err);
	test_cond("file: an unwritable place is FT_E_IO", rc == FT_E_IO &&
		  strstr(err.msg, "cannot create"));
	test_cond("file: no path is FT_E_INVAL",
		  ft_rdzv_share_file("", 0, 2, blob, ID_LEN, 5, &err) == FT_E_INVAL &&
		  ft_rdzv_share_file(NULL, 0, 2, blob, ID_LEN, 5, &err) == FT_E_INVAL);
	test_cond("file: world 1 writes nothing",
		  ft_rdzv_share_file(path, 0, 1, blob, ID_LEN, 5, &err) == FT_OK && !exists(path));
}

int main(void)
{
	/* SIGPIPE stays fatal: the ranks must not raise it (MSG_NOSIGNAL) */
	test_args();
	test_world1();
	test_share("127.0.0.1", 4);
	test_share("localhost", 4);
	if (have_ipv6_loopback())
		test_share("::1", 3);
	else
		printf("no IPv6 loopback: ::1 not tried\n");
	test_share("127.0.0.1", 2);
	test_len0();
	test_world_mismatch();
	test_len_mismatch();
	test_duplicate();
	test_no_rank0();
	test_missing();
	test_strangers();
	test_port_taken();
	if (mkdtemp(dir)) {
		test_file();
		rmdir(dir);
	} else {
		test_cond("a temporary directory", false);
	}
	test_cond("every rank closed all its sockets", leaky_ranks == 0);
	return test_report();
}
