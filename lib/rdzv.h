/* rdzv.h: a one-shot TCP rendezvous that hands rank 0's small blob (NCCL's
 * 128-byte unique id) to every other rank when ranks are started
 * torchrun-style (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) without an
 * MPI launcher. The caller owns blob; it is overwritten on ranks > 0 only
 * when the exchange succeeds. Errors are FT_E_* codes with a message in err;
 * no global state, no signals (sends use MSG_NOSIGNAL), and every socket is
 * closed on every path. */
#ifndef FT_RDZV_H
#define FT_RDZV_H

#include <stddef.h>

#include "ft.h"

#define FT_RDZV_MAX_LEN 4096    /* largest blob */
#define FT_RDZV_MAX_WORLD 65536

/* Rank 0 listens on port `port` (all interfaces, IPv6 and IPv4, SO_REUSEADDR)
 * and waits for the world-1 other ranks; each other rank resolves host
 * (getaddrinfo: IPv4, IPv6, numeric or a name) and connects to host:port,
 * retrying until the deadline, since rank 0 may start later or its name may
 * not resolve yet; then it sends a hello {magic, version, rank, world, len}.
 * Rank 0 checks every hello (same version, world and len, rank in
 * 1..world-1, no rank twice) and then sends its `len` bytes of `blob` to
 * every rank, which overwrite their `blob`. A bad hello fails the whole
 * rendezvous: rank 0 tells that rank what mismatched and the others that it
 * gave up, so every rank returns an error naming the problem.
 *
 * timeout_s (> 0; INFINITY waits forever) bounds the whole exchange on
 * every rank: sockets are non-blocking and every wait is a poll() on the
 * time left. The one exception is name lookup, which getaddrinfo(3) does
 * without a timeout (numeric addresses and /etc/hosts return at once; DNS
 * is bounded by resolv.conf's own timeout); the deadline is checked after.
 * world == 1 returns FT_OK at once. Returns FT_OK; FT_E_INVAL for a bad
 * argument (port not 1..65535, not 0 <= rank < world <= FT_RDZV_MAX_WORLD,
 * len > FT_RDZV_MAX_LEN, NULL host or blob, timeout_s not > 0); FT_E_IO for
 * a socket error or the timeout ("timed out after 20 s waiting for ranks 3,
 * 5"); FT_E_DATA when the ranks disagree (world, len, version, duplicate
 * rank); FT_E_PARSE when something that is not this rendezvous answers on
 * the port; FT_E_NOMEM. */
int ft_rdzv_share(const char *host, int port, int rank, int world,
		  void *blob, size_t len, double timeout_s, struct ft_err *err);

/* The same through a file every rank sees (a shared file system), for
 * where rank 0's port cannot be reached or chosen. Rank 0 writes the header
 * {magic, version, world, len} and blob to a temporary file, syncs it and
 * links it to path, which fails if path exists: a file left by an earlier
 * job would hand out its stale blob, so each job names a new one (with the
 * job's id in it). The other ranks poll for path until the deadline and
 * read it, checking magic, version, world and len. Rank 0 removes path
 * once every rank has read it (for NCCL: once the communicator is up), with
 * ft_rdzv_remove. Errors as ft_rdzv_share's: FT_E_INVAL for arguments
 * (path NULL or empty), FT_E_IO for file errors and the timeout, FT_E_DATA
 * for an existing path on rank 0 or a world or len that differ, FT_E_PARSE
 * for a file that is not this rendezvous's. */
int ft_rdzv_share_file(const char *path, int rank, int world, void *blob, size_t len,
		       double timeout_s, struct ft_err *err);
int ft_rdzv_remove(const char *path, struct ft_err *err);

#endif
