/* rdzv.c: the rendezvous of rdzv.h. On the wire (integers are big-endian
 * uint32):
 *   hello, rank > 0 to rank 0, 20 bytes: magic, version, rank, world, len
 *   reply, rank 0 to rank > 0, 24 bytes: magic, version, status, world, len,
 *     msglen; then len bytes of blob when status is RDZV_OK, else msglen
 *     bytes of rank 0's reason (no NUL)
 * Rank 0 answers only once every rank has said hello, so no rank goes on to
 * NCCL while another is still missing; on a failure it sends every
 * connected rank its reason instead, so they fail with it rather than wait
 * for their own timeout. Every socket is non-blocking and every wait is a
 * poll() on the time left to one deadline. */
#include "rdzv.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RDZV_MAGIC 0x4654525au    /* "FTRZ" */
#define RDZV_VERSION 1u
#define RDZV_HELLO 20
#define RDZV_REPLY 24
#define RDZV_MAX_MSG 1024         /* longest reason rank 0 sends */

enum { RDZV_OK = 0, RDZV_REFUSED = 1, RDZV_ABORTED = 2 };

/* Connections rank 0 holds before their hello is complete, beyond the
 * world-1 expected: room for stray or restarted ones without letting a
 * flood use up the fds. */
#define RDZV_MAX_PENDING 64
/* One connect() gets at most this long, so an address that drops SYNs
 * does not keep a rank from trying the host's other addresses. */
#define RDZV_CONNECT_S 3.0
/* Pause between tries while rank 0 is not there yet: doubling from
 * 10 ms to 0.5 s, so a late rank 0 is found quickly without a busy loop. */
#define RDZV_RETRY_MIN_S 0.01
#define RDZV_RETRY_MAX_S 0.5
/* "[v6 address]:port" */
#define RDZV_ADDR (INET6_ADDRSTRLEN + 8)
/* Ranks named in a timeout message before "and N more" */
#define RDZV_NAME_MISSING 16

/* recv_full() results besides 0 and -1 */
#define RDZV_EOF 1
#define RDZV_LATE 2

static double now_s(void)
{
	struct timespec ts;
	int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
	assert(rc == 0);   /* fails only for a bad clock id or pointer */
	(void)rc;
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Milliseconds to the deadline for poll(): -1 for none (INFINITY), 0 once
 * it has passed, rounded up so that a wait does not end just short of it. */
static int ms_left(double deadline)
{
	if (isinf(deadline))
		return -1;
	double ms = (deadline - now_s()) * 1000;
	if (ms <= 0)
		return 0;
	if (ms >= INT_MAX)
		return INT_MAX;
	return (int)ceil(ms);
}

/* Sockets only: close(2) reports nothing we could act on, and Linux frees
 * the descriptor even when it says EINTR, so it is never retried. */
static void close_fd(int fd)
{
	if (fd >= 0)
		(void)close(fd);
}

/* 1 when fd is ready for events (or has an error or hangup for the next
 * call to report), 0 at the deadline, -1 with errno. */
static int wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, ms_left(deadline));
		if (n > 0)
			return 1;
		if (n == 0 && ms_left(deadline) == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* All of buf, or -1 with errno (ETIMEDOUT at the deadline). */
static int send_full(int fd, const void *buf, size_t size, double deadline)
{
	const unsigned char *p = buf;
	while (size > 0) {
		ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			size -= (size_t)n;
			continue;
		}
		if (n == 0) {   /* not for a stream socket with size > 0 */
			errno = EIO;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		int w = wait_fd(fd, POLLOUT, deadline);
		if (w <= 0) {
			if (w == 0)
				errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

/* Exactly size bytes into buf: 0, RDZV_EOF when the peer closed first,
 * RDZV_LATE at the deadline, -1 with errno. *got counts what arrived. */
static int recv_full(int fd, void *buf, size_t size, size_t *got, double deadline)
{
	unsigned char *p = buf;
	*got = 0;
	while (*got < size) {
		ssize_t n = recv(fd, p + *got, size - *got, 0);
		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n == 0)
			return RDZV_EOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		int w = wait_fd(fd, POLLIN, deadline);
		if (w < 0)
			return -1;
		if (w == 0)
			return RDZV_LATE;
	}
	return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* "1.2.3.4:5" or "[::1]:5"; an IPv4 peer on rank 0's dual-stack socket
 * shows as IPv4, not as ::ffff:1.2.3.4. */
static void fmt_addr(const struct sockaddr *sa, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		if (inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip)) {
			snprintf(out, size, "%s:%u", ip, ntohs(in->sin_port));
			return;
		}
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		bool mapped = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
		if (mapped && inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, sizeof ip)) {
			snprintf(out, size, "%s:%u", ip, ntohs(in6->sin6_port));
			return;
		}
		if (!mapped && inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip)) {
			snprintf(out, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
			return;
		}
	}
	snprintf(out, size, "an unknown address");
}

static bool same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
	}
	return false;
}

/* A connect to a local port nobody listens on can pick that same port as
 * its own and connect to itself (TCP simultaneous open); the rank would
 * then read its own hello as rank 0's reply. Such a socket is treated as
 * refused. */
static bool self_connected(int fd)
{
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof me, pl = sizeof peer;
	if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &pl) != 0)
		return false;   /* a real failure shows in the next send or recv */
	return same_endpoint(&me, &peer);
}

/* A connected socket to ai by the deadline, or -1 with errno (ETIMEDOUT
 * at the deadline). */
static int connect_by(const struct addrinfo *ai, double deadline)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0)
		return -1;
	/* EINTR leaves a non-blocking connect going on, like EINPROGRESS */
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		int w;
		if (errno != EINPROGRESS && errno != EINTR)
			goto bad;
		w = wait_fd(fd, POLLOUT, deadline);
		if (w == 0)
			errno = ETIMEDOUT;
		if (w <= 0)
			goto bad;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			goto bad;
		if (soerr) {
			errno = soerr;
			goto bad;
		}
	}
	if (self_connected(fd)) {
		errno = ECONNREFUSED;
		goto bad;
	}
	return fd;
bad:;
	int e = errno;
	close_fd(fd);
	errno = e;
	return -1;
}

/* A listening socket on every local address of family, or -1 with errno. */
static int listen_family(int family, int port)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int on = 1, off = 0;
	int rc;
	/* a restarted job finds its port free at once, TIME_WAIT or not */
	rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	if (rc == 0 && family == AF_INET6) {
		/* IPv4 too, as v4-mapped addresses, whatever bindv6only says */
		rc = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
					  .sin6_addr = IN6ADDR_ANY_INIT };
		if (rc == 0)
			rc = bind(fd, (struct sockaddr *)&a, sizeof a);
	} else if (rc == 0) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_ANY) };
		rc = bind(fd, (struct sockaddr *)&a, sizeof a);
	}
	if (rc == 0)
		rc = listen(fd, SOMAXCONN);
	if (rc != 0) {
		int e = errno;
		close_fd(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Writes the reason into why (FT_ERR_MSG bytes) and returns code. */
static int fail(char *why, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, FT_ERR_MSG, fmt, ap);
	va_end(ap);
	return code;
}

/* ---- rank 0 ---- */

struct rdzv_conn {
	int fd;
	int rank;                       /* -1 until its hello passed */
	size_t got;                     /* hello bytes so far */
	short revents;                  /* from the last poll */
	unsigned char hello[RDZV_HELLO];
	char addr[RDZV_ADDR];
};

/* Best effort: a reply without blob to a rank that will not get one. It
 * goes into an empty socket buffer, so one non-blocking send suffices; if
 * it does not, that rank sees the connection close and times out instead. */
static void send_reason(int fd, uint32_t status, int world, size_t len, const char *why)
{
	unsigned char msg[RDZV_REPLY + RDZV_MAX_MSG];
	size_t n = strnlen(why, RDZV_MAX_MSG);
	put32(msg, RDZV_MAGIC);
	put32(msg + 4, RDZV_VERSION);
	put32(msg + 8, status);
	put32(msg + 12, (uint32_t)world);
	put32(msg + 16, (uint32_t)len);
	put32(msg + 20, (uint32_t)n);
	memcpy(msg + RDZV_REPLY, why, n);
	ssize_t sent = send(fd, msg, RDZV_REPLY + n, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)sent;   /* nothing more to do for a rank that is going away */
}

/* Closes c; a rank that had passed is missing again. */
static void gone(struct rdzv_conn *c, unsigned char *present, int *have)
{
	if (c->rank >= 0) {
		present[c->rank] = 0;
		(*have)--;
	}
	close_fd(c->fd);
	c->fd = -1;
	c->rank = -1;
}

/* Removes the closed connections, keeping the order of the others. */
static void compact(struct rdzv_conn *c, size_t *n)
{
	size_t kept = 0;
	for (size_t i = 0; i < *n; i++)
		if (c[i].fd >= 0)
			c[kept++] = c[i];
	*n = kept;
}

/* A rank that passed says nothing more: readable means it went away (it
 * may come back) or sent garbage. */
static int check_passed(struct rdzv_conn *k, unsigned char *present, int *have, int world,
			size_t len, char *why)
{
	unsigned char extra;
	ssize_t got = recv(k->fd, &extra, 1, 0);
	if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return FT_OK;
	if (got > 0) {
		int rc = fail(why, FT_E_PARSE, "rank %d (from %s) sent more than a hello",
			      k->rank, k->addr);
		send_reason(k->fd, RDZV_REFUSED, world, len, why);
		gone(k, present, have);
		return rc;
	}
	gone(k, present, have);
	return FT_OK;
}

/* Whether the connection of a rank that passed is still open; the hello of
 * its successor can come before its end is seen. */
static bool still_there(int fd)
{
	unsigned char b;
	ssize_t got = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return got > 0 || (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

/* Reads more of the hello of c[i] and checks it once complete: the same
 * version, world and len, a rank in 1..world-1 not already here. FT_OK, or
 * a failure with the reason in why. */
static int read_hello(struct rdzv_conn *c, size_t n, size_t i, unsigned char *present, int *have,
		      int world, size_t len, char *why)
{
	struct rdzv_conn *k = &c[i];
	ssize_t got = recv(k->fd, k->hello + k->got, RDZV_HELLO - k->got, 0);
	if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return FT_OK;
	if (got <= 0) {
		/* closed or reset before its hello: nothing to check; a real
		 * rank tries again */
		gone(k, present, have);
		return FT_OK;
	}
	k->got += (size_t)got;
	if (k->got < RDZV_HELLO)
		return FT_OK;

	uint32_t magic = get32(k->hello), version = get32(k->hello + 4);
	uint32_t rank = get32(k->hello + 8), their_world = get32(k->hello + 12);
	uint32_t their_len = get32(k->hello + 16);
	int rc = FT_OK;
	if (magic != RDZV_MAGIC) {
		/* not one of ours: it would not understand a reply */
		rc = fail(why, FT_E_PARSE, "connection from %s is not a rank of this rendezvous "
			  "(another program using the port?)", k->addr);
		gone(k, present, have);
		return rc;
	}
	if (version != RDZV_VERSION)
		rc = fail(why, FT_E_DATA, "rank %u (from %s) speaks rendezvous version %u, "
			  "rank 0 version %u", rank, k->addr, version, RDZV_VERSION);
	else if (their_world != (uint32_t)world)
		rc = fail(why, FT_E_DATA, "rank %u (from %s) has world size %u, rank 0 has %d",
			  rank, k->addr, their_world, world);
	else if (rank < 1 || rank >= (uint32_t)world)
		rc = fail(why, FT_E_DATA, "connection from %s says it is rank %u, not in 1..%d",
			  k->addr, rank, world - 1);
	else if (their_len != len)
		rc = fail(why, FT_E_DATA, "rank %u (from %s) expects %u bytes, rank 0 shares %zu",
			  rank, k->addr, their_len, len);
	for (size_t j = 0; rc == FT_OK && present[rank] && j < n; j++) {
		if (c[j].rank != (int)rank)
			continue;
		if (still_there(c[j].fd))
			rc = fail(why, FT_E_DATA, "rank %u connected twice: from %s and from %s",
				  rank, c[j].addr, k->addr);
		else
			gone(&c[j], present, have);
	}
	if (rc != FT_OK) {
		send_reason(k->fd, RDZV_REFUSED, world, len, why);
		gone(k, present, have);
		return rc;
	}
	assert(!present[rank]);
	k->rank = (int)rank;
	present[rank] = 1;
	(*have)++;
	return FT_OK;
}

/* "ranks 3, 5" or "rank 3" or "ranks 1, 2, ... and 40 more" */
static void fmt_missing(char *out, size_t size, const unsigned char *present, int world)
{
	int missing = 0, named = 0;
	size_t at = 0;
	for (int r = 1; r < world; r++)
		missing += !present[r];
	at += (size_t)snprintf(out, size, "rank%s", missing > 1 ? "s" : "");
	for (int r = 1; r < world && named < RDZV_NAME_MISSING; r++) {
		if (present[r] || at >= size)
			continue;
		at += (size_t)snprintf(out + at, size - at, "%s %d", named ? "," : "", r);
		named++;
	}
	if (missing > named && at < size)
		snprintf(out + at, size - at, " and %d more", missing - named);
}

static int serve(int port, int world, const void *blob, size_t len, double timeout_s,
		 double deadline, char *why)
{
	size_t cap = (size_t)world - 1 + RDZV_MAX_PENDING;
	struct rdzv_conn *c = calloc(cap, sizeof *c);
	struct pollfd *pfd = calloc(cap + 1, sizeof *pfd);
	unsigned char *present = calloc((size_t)world, 1);
	unsigned char *reply = malloc(RDZV_REPLY + len);
	size_t n = 0;           /* connections in c */
	int have = 0;           /* ranks whose hello passed */
	int lfd = -1;
	int rc = FT_OK;

	if (!c || !pfd || !present || !reply) {
		rc = fail(why, FT_E_NOMEM, "out of memory for %d ranks", world);
		goto out;
	}
	/* one dual-stack socket takes IPv4 and IPv6; 0.0.0.0 where the kernel
	 * has no IPv6 */
	lfd = listen_family(AF_INET6, port);
	if (lfd < 0 && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT || errno == EADDRNOTAVAIL))
		lfd = listen_family(AF_INET, port);
	if (lfd < 0) {
		rc = fail(why, FT_E_IO, "cannot listen on port %d: %s", port, strerror(errno));
		goto out;
	}

	while (have < world - 1) {
		/* checked before each poll, not after a quiet one: a stream of
		 * stray connections must not keep rank 0 past its deadline */
		int ms = ms_left(deadline);
		if (ms == 0) {
			char missing[512];
			size_t partial = 0;
			for (size_t i = 0; i < n; i++)
				partial += c[i].rank < 0;
			fmt_missing(missing, sizeof missing, present, world);
			rc = fail(why, FT_E_IO, "timed out after %g s waiting for %s%s", timeout_s,
				  missing, partial ? " (a connection sent no complete hello)" : "");
			goto out;
		}
		pfd[0].fd = n < cap ? lfd : -1;   /* full: accept nothing until one goes */
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		for (size_t i = 0; i < n; i++)
			pfd[i + 1] = (struct pollfd){ .fd = c[i].fd, .events = POLLIN };
		int ready = poll(pfd, n + 1, ms);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0) {
			rc = fail(why, FT_E_IO, "poll: %s", strerror(errno));
			goto out;
		}
		if (ready == 0)
			continue;

		for (size_t i = 0; i < n; i++)
			c[i].revents = pfd[i + 1].revents;

		/* ranks that passed first, so that one which went away and came
		 * back in the same round is not taken for a second rank */
		for (size_t i = 0; i < n; i++) {
			if (c[i].rank < 0 || !c[i].revents)
				continue;
			rc = check_passed(&c[i], present, &have, world, len, why);
			if (rc != FT_OK)
				goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (c[i].rank >= 0 || c[i].fd < 0 || !c[i].revents)
				continue;
			rc = read_hello(c, n, i, present, &have, world, len, why);
			if (rc != FT_OK)
				goto out;
		}
		compact(c, &n);

		/* new connections last: they were not polled */
		while (pfd[0].revents && n < cap) {
			struct sockaddr_storage sa;
			socklen_t sl = sizeof sa;
			int fd = accept4(lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				/* the connection's own trouble (accept(2): Linux passes
				 * pending network errors to accept): skip it */
				if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO ||
				    errno == ENETDOWN || errno == ENOPROTOOPT || errno == EHOSTDOWN ||
				    errno == ENONET || errno == EHOSTUNREACH || errno == EOPNOTSUPP ||
				    errno == ENETUNREACH)
					continue;
				if (errno == EMFILE || errno == ENFILE)
					rc = fail(why, FT_E_IO, "accept: %s (rank 0 holds one socket "
						  "per rank: %d; raise ulimit -n)", strerror(errno),
						  world - 1);
				else
					rc = fail(why, FT_E_IO, "accept: %s", strerror(errno));
				goto out;
			}
			c[n] = (struct rdzv_conn){ .fd = fd, .rank = -1 };
			fmt_addr((struct sockaddr *)&sa, c[n].addr, sizeof c[n].addr);
			n++;
		}
	}

	/* every rank is here: connections that sent no hello are strays */
	for (size_t i = 0; i < n; i++)
		if (c[i].rank < 0)
			gone(&c[i], present, &have);
	compact(c, &n);
	put32(reply, RDZV_MAGIC);
	put32(reply + 4, RDZV_VERSION);
	put32(reply + 8, RDZV_OK);
	put32(reply + 12, (uint32_t)world);
	put32(reply + 16, (uint32_t)len);
	put32(reply + 20, 0);
	if (len)
		memcpy(reply + RDZV_REPLY, blob, len);
	while (n > 0) {
		struct rdzv_conn *k = &c[n - 1];
		if (send_full(k->fd, reply, RDZV_REPLY + len, deadline) != 0) {
			if (errno == ETIMEDOUT)
				rc = fail(why, FT_E_IO, "timed out after %g s sending to rank %d (%s)",
					  timeout_s, k->rank, k->addr);
			else
				rc = fail(why, FT_E_IO, "rank %d (%s) went away before it got the "
					  "data: %s", k->rank, k->addr, strerror(errno));
			gone(k, present, &have);
			n--;
			goto out;
		}
		gone(k, present, &have);
		n--;
	}
out:
	/* the ranks still connected learn why rank 0 gave up */
	for (size_t i = 0; i < n; i++) {
		if (c[i].fd < 0)
			continue;
		send_reason(c[i].fd, RDZV_ABORTED, world, len, why);
		close_fd(c[i].fd);
	}
	close_fd(lfd);
	free(reply);
	free(present);
	free(pfd);
	free(c);
	return rc;
}

/* ---- ranks > 0 ---- */

#define RDZV_RETRY 1   /* try_rank0(): not there (yet); the reason is in last */

/* Reads the reason that follows a refusing reply header into out, made
 * printable: it came over the network. */
static void read_reason(int fd, const unsigned char *hdr, double deadline, char *out, size_t size)
{
	char msg[RDZV_MAX_MSG + 1];
	size_t want = get32(hdr + 20), got = 0;
	if (want > RDZV_MAX_MSG)
		want = RDZV_MAX_MSG;
	if (recv_full(fd, msg, want, &got, deadline) != 0 || got == 0) {
		snprintf(out, size, "no reason received");
		return;
	}
	msg[got] = 0;
	for (size_t i = 0; i < got; i++)
		if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] == 0x7f)
			msg[i] = '?';
	snprintf(out, size, "%s", msg);
}

/* One try at rank 0 through one of its addresses. */
static int try_rank0(const struct addrinfo *ai, const unsigned char *hello, int rank, int world,
		     void *blob, size_t len, double timeout_s, double deadline, char *last,
		     size_t last_size, char *why)
{
	char addr[RDZV_ADDR];
	fmt_addr(ai->ai_addr, addr, sizeof addr);
	int fd = connect_by(ai, fmin(deadline, now_s() + RDZV_CONNECT_S));
	if (fd < 0) {
		snprintf(last, last_size, "%s: %s", addr, strerror(errno));
		return RDZV_RETRY;
	}
	if (send_full(fd, hello, RDZV_HELLO, deadline) != 0) {
		snprintf(last, last_size, "%s: %s", addr, strerror(errno));
		close_fd(fd);
		return RDZV_RETRY;
	}

	unsigned char hdr[RDZV_REPLY];
	unsigned char data[FT_RDZV_MAX_LEN];
	size_t got;
	int rc;
	int r = recv_full(fd, hdr, sizeof hdr, &got, deadline);
	if (r == RDZV_LATE) {
		rc = fail(why, FT_E_IO, "timed out after %g s waiting for rank 0 (%s) to hear "
			  "from every rank", timeout_s, addr);
		goto out;
	}
	if (r != 0) {
		/* closed or reset before a reply: rank 0 went away; a new one may
		 * come */
		snprintf(last, last_size, "%s: %s", addr, r == RDZV_EOF ?
			 "connection closed before rank 0 answered" : strerror(errno));
		close_fd(fd);
		return RDZV_RETRY;
	}
	if (get32(hdr) != RDZV_MAGIC) {
		rc = fail(why, FT_E_PARSE, "%s does not answer as rank 0 of this rendezvous "
			  "(another program using the port?)", addr);
		goto out;
	}
	if (get32(hdr + 4) != RDZV_VERSION) {
		rc = fail(why, FT_E_DATA, "rank 0 (%s) speaks rendezvous version %u, rank %d "
			  "version %u", addr, get32(hdr + 4), rank, RDZV_VERSION);
		goto out;
	}
	uint32_t status = get32(hdr + 8);
	if (status == RDZV_REFUSED || status == RDZV_ABORTED) {
		char reason[RDZV_MAX_MSG + 1];
		read_reason(fd, hdr, deadline, reason, sizeof reason);
		rc = fail(why, status == RDZV_REFUSED ? FT_E_DATA : FT_E_IO, "rank 0 (%s) %s: %s",
			  addr, status == RDZV_REFUSED ? "refused this rank" : "gave up", reason);
		goto out;
	}
	if (status != RDZV_OK) {
		rc = fail(why, FT_E_PARSE, "rank 0 (%s) sent unknown status %u", addr, status);
		goto out;
	}
	/* rank 0 checked both; a disagreement here is a broken rank 0 */
	if (get32(hdr + 12) != (uint32_t)world || get32(hdr + 16) != len) {
		rc = fail(why, FT_E_DATA, "rank 0 (%s) answers for world size %u and %u bytes, "
			  "rank %d has %d and %zu", addr, get32(hdr + 12), get32(hdr + 16), rank,
			  world, len);
		goto out;
	}
	r = recv_full(fd, data, len, &got, deadline);
	if (r == RDZV_LATE)
		rc = fail(why, FT_E_IO, "timed out after %g s reading from rank 0 (%s)",
			  timeout_s, addr);
	else if (r == RDZV_EOF)
		rc = fail(why, FT_E_IO, "rank 0 (%s) closed the connection after %zu of %zu "
			  "bytes", addr, got, len);
	else if (r != 0)
		rc = fail(why, FT_E_IO, "reading from rank 0 (%s): %s", addr, strerror(errno));
	else
		rc = FT_OK;
	if (rc == FT_OK && len)
		memcpy(blob, data, len);
out:
	close_fd(fd);
	return rc;
}

/* Sleep before the next try while rank 0 is not there yet: *pause, at most
 * to the deadline, then doubled up to RDZV_RETRY_MAX_S. 1 at the deadline
 * (the caller says what it waited for), else FT_OK or an error. */
static int pause_retry(double *pause, double deadline, char *why)
{
	int ms = ms_left(deadline);
	if (ms == 0)
		return 1;
	int nap = (int)ceil(*pause * 1000);
	if (ms > 0 && ms < nap)
		nap = ms;
	/* a sleep: EINTR only makes it shorter */
	if (poll(NULL, 0, nap) < 0 && errno != EINTR)
		return fail(why, FT_E_IO, "poll: %s", strerror(errno));
	*pause = fmin(2 * *pause, RDZV_RETRY_MAX_S);
	return FT_OK;
}

static int join(const char *host, int port, int rank, int world, void *blob, size_t len,
		double timeout_s, double deadline, char *why)
{
	char service[8];
	char last[RDZV_ADDR + 256] = "no try finished";
	double pause = RDZV_RETRY_MIN_S;
	unsigned char hello[RDZV_HELLO];

	snprintf(service, sizeof service, "%d", port);
	put32(hello, RDZV_MAGIC);
	put32(hello + 4, RDZV_VERSION);
	put32(hello + 8, (uint32_t)rank);
	put32(hello + 12, (uint32_t)world);
	put32(hello + 16, (uint32_t)len);

	for (;;) {
		struct addrinfo hints = {
			.ai_family = AF_UNSPEC,
			.ai_socktype = SOCK_STREAM,
			.ai_flags = AI_NUMERICSERV,
		};
		struct addrinfo *res = NULL;
		int g = getaddrinfo(host, service, &hints, &res);
		if (g == 0) {
			for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
				int rc = try_rank0(ai, hello, rank, world, blob, len, timeout_s,
						   deadline, last, sizeof last, why);
				if (rc != RDZV_RETRY) {
					freeaddrinfo(res);
					return rc;
				}
			}
			freeaddrinfo(res);
		} else if (g == EAI_AGAIN || g == EAI_NONAME || g == EAI_FAIL
#ifdef EAI_NODATA
			   || g == EAI_NODATA
#endif
			  ) {
			/* a cluster's DNS may learn rank 0's name only once it
			 * runs */
			snprintf(last, sizeof last, "cannot resolve '%s': %s", host, gai_strerror(g));
		} else {
			return fail(why, FT_E_IO, "cannot resolve '%s': %s", host,
				    g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		}

		int rc = pause_retry(&pause, deadline, why);
		if (rc == 1)
			return fail(why, FT_E_IO, "timed out after %g s connecting to rank 0 "
				    "(last try: %s)", timeout_s, last);
		if (rc)
			return rc;
	}
}

/* The arguments both rendezvous take. */
static int check_args(int rank, int world, const void *blob, size_t len, double timeout_s,
		      struct ft_err *err)
{
	if (world < 1 || world > FT_RDZV_MAX_WORLD)
		return ft_err_set(err, FT_E_INVAL, "rendezvous: world size %d is not in 1..%d",
				  world, FT_RDZV_MAX_WORLD);
	if (rank < 0 || rank >= world)
		return ft_err_set(err, FT_E_INVAL, "rendezvous: rank %d is not in 0..%d", rank,
				  world - 1);
	if (len > FT_RDZV_MAX_LEN)
		return ft_err_set(err, FT_E_INVAL, "rendezvous: %zu bytes to share, at most %d",
				  len, FT_RDZV_MAX_LEN);
	if (!blob && len)
		return ft_err_set(err, FT_E_INVAL, "rendezvous: no buffer for %zu bytes", len);
	if (!(timeout_s > 0))
		return ft_err_set(err, FT_E_INVAL, "rendezvous: timeout %g s is not positive",
				  timeout_s);
	return FT_OK;
}

int ft_rdzv_share(const char *host, int port, int rank, int world,
		  void *blob, size_t len, double timeout_s, struct ft_err *err)
{
	if (port < 1 || port > 65535)
		return ft_err_set(err, FT_E_INVAL, "rendezvous: port %d is not in 1..65535", port);
	int bad = check_args(rank, world, blob, len, timeout_s, err);
	if (bad)
		return bad;
	if (!host || !*host)
		return ft_err_set(err, FT_E_INVAL, "rendezvous: no host for rank 0");
	if (world == 1)
		return FT_OK;

	char why[FT_ERR_MSG];
	double deadline = now_s() + timeout_s;
	int rc = rank == 0 ? serve(port, world, blob, len, timeout_s, deadline, why)
			   : join(host, port, rank, world, blob, len, timeout_s, deadline, why);
	if (rc == FT_OK)
		return FT_OK;
	return ft_err_set(err, rc, "rendezvous %s%s%s:%d: rank %d: %s", strchr(host, ':') ? "[" : "",
			  host, strchr(host, ':') ? "]" : "", port, rank, why);
}

/* ---- through a shared file ---- */

/* The file: magic, version, world, len (big-endian uint32), then blob. */
#define RDZV_FILE_HDR 16

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int file_serve(const char *path, int world, const void *blob, size_t len, char *why)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
		return fail(why, FT_E_INVAL, "the path is too long");
	unsigned char buf[RDZV_FILE_HDR + FT_RDZV_MAX_LEN];
	put32(buf, RDZV_MAGIC);
	put32(buf + 4, RDZV_VERSION);
	put32(buf + 8, (uint32_t)world);
	put32(buf + 12, (uint32_t)len);
	if (len)
		memcpy(buf + RDZV_FILE_HDR, blob, len);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(why, FT_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
	int bad = write_all(fd, buf, RDZV_FILE_HDR + len) || fsync(fd);
	int e = errno;
	if (close(fd) != 0 && !bad) {
		bad = 1;
		e = errno;
	}
	/* link, unlike rename, does not replace: an existing path is refused */
	if (!bad && link(tmp, path) != 0) {
		e = errno;
		(void)unlink(tmp);
		if (e == EEXIST)
			return fail(why, FT_E_DATA, "it exists already (an earlier job's?): remove "
				    "it, or name a new file for each job");
		return fail(why, FT_E_IO, "cannot create it: %s", strerror(e));
	}
	if (bad) {
		(void)unlink(tmp);
		return fail(why, FT_E_IO, "cannot write '%s': %s", tmp, strerror(e));
	}
	if (unlink(tmp) != 0)
		return fail(why, FT_E_IO, "cannot remove '%s': %s", tmp, strerror(errno));
	return FT_OK;
}

/* 1 when path is not there yet, else FT_OK or an error. */
static int file_read(const char *path, int world, void *blob, size_t len, char *why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0)
		return fail(why, FT_E_IO, "cannot open it: %s", strerror(errno));
	unsigned char buf[RDZV_FILE_HDR + FT_RDZV_MAX_LEN + 1];
	size_t got = 0;
	while (got < sizeof buf) {
		ssize_t r = read(fd, buf + got, sizeof buf - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			(void)close(fd);
			return fail(why, FT_E_IO, "cannot read it: %s", strerror(e));
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	(void)close(fd);   /* read only: nothing to lose */
	if (got < RDZV_FILE_HDR || get32(buf) != RDZV_MAGIC)
		return fail(why, FT_E_PARSE, "it is not a rendezvous file");
	if (get32(buf + 4) != RDZV_VERSION)
		return fail(why, FT_E_DATA, "rank 0 wrote version %u of it, this rank reads %u",
			    (unsigned)get32(buf + 4), RDZV_VERSION);
	if (get32(buf + 8) != (uint32_t)world)
		return fail(why, FT_E_DATA, "rank 0 has world size %u, this rank %d",
			    (unsigned)get32(buf + 8), world);
	if (get32(buf + 12) != (uint32_t)len || got != RDZV_FILE_HDR + len)
		return fail(why, FT_E_DATA, "rank 0 shares %u bytes, this rank expects %zu",
			    (unsigned)get32(buf + 12), len);
	if (len)
		memcpy(blob, buf + RDZV_FILE_HDR, len);
	return FT_OK;
}

static int file_join(const char *path, int world, void *blob, size_t len, double timeout_s,
		     double deadline, char *why)
{
	double pause = RDZV_RETRY_MIN_S;
	for (;;) {
		int rc = file_read(path, world, blob, len, why);
		if (rc <= 0)
			return rc;
		rc = pause_retry(&pause, deadline, why);
		if (rc == 1)
			return fail(why, FT_E_IO, "timed out after %g s waiting for rank 0 to write "
				    "it", timeout_s);
		if (rc)
			return rc;
	}
}

int ft_rdzv_share_file(const char *path, int rank, int world, void *blob, size_t len,
		       double timeout_s, struct ft_err *err)
{
	int bad = check_args(rank, world, blob, len, timeout_s, err);
	if (bad)
		return bad;
	if (!path || !*path)
		return ft_err_set(err, FT_E_INVAL, "rendezvous: no file");
	if (world == 1)
		return FT_OK;
	char why[FT_ERR_MSG];
	int rc = rank == 0 ? file_serve(path, world, blob, len, why)
			   : file_join(path, world, blob, len, timeout_s, now_s() + timeout_s, why);
	if (rc == FT_OK)
		return FT_OK;
	return ft_err_set(err, rc, "rendezvous file '%s': rank %d: %s", path, rank, why);
}

int ft_rdzv_remove(const char *path, struct ft_err *err)
{
	if (unlink(path) != 0 && errno != ENOENT)
		return ft_err_set(err, FT_E_IO, "rendezvous file '%s': cannot remove it: %s", path,
				  strerror(errno));
	return FT_OK;
}
