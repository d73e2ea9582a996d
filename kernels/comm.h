/* comm.h: collectives between CUDA ranks over NCCL, for data-parallel
 * ft-train (tools/train/dist.c decides when). NCCL is loaded when the first
 * communicator opens (dlopen of libnccl.so.2, found the way the dynamic
 * linker finds libraries), so a CUDA build runs on one GPU without it.
 *
 * Every collective is queued on the CUDA ops' stream (after what the ops
 * queued before) and waited for under a watchdog: the call returns an error
 * when NCCL reports one (a peer's connection lost) or when it has not
 * finished within the communicator's timeout (a peer that died or hangs),
 * instead of waiting forever. Pointers may be host or device memory: host
 * data goes through the CUDA ops' scratch buffer. Counts are elements of the type. */
#ifndef FT_COMM_H
#define FT_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "ft.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { FT_COMM_ID_BYTES = 128 };   /* NCCL's unique id */

enum ft_comm_type { FT_COMM_F32, FT_COMM_F64, FT_COMM_I64, FT_COMM_U8 };

struct ft_comm;

/* CUDA devices visible to this process (0 without a driver or a CUDA build). */
int ft_cuda_device_count(void);

/* A fresh id for a new communicator: made by one rank, shared with the
 * others by the caller (over MPI or the TCP rendezvous). */
int ft_comm_unique_id(unsigned char id[FT_COMM_ID_BYTES], struct ft_err *err);

/* Join the communicator of `world` ranks as `rank`, on the device the CUDA
 * ops opened (open them first). Waits at most timeout_s for the others. */
struct ft_comm *ft_comm_open(const unsigned char id[FT_COMM_ID_BYTES], int rank, int world,
			     double timeout_s, struct ft_err *err);

/* Element-wise sum over the ranks, in place, on every rank. */
int ft_comm_sum(struct ft_comm *c, void *x, size_t n, enum ft_comm_type t, struct ft_err *err);
/* Rank root's bytes to every rank. */
int ft_comm_bcast(struct ft_comm *c, void *x, size_t bytes, int root, struct ft_err *err);
/* Rank r's counts[r] floats at x + displs[r] to every rank, in place.
 * queue (x in device memory only): return once it is queued, and let
 * ft_comm_wait wait for it and what else was queued. */
int ft_comm_allgather(struct ft_comm *c, float *x, const size_t *counts, const size_t *displs,
		      bool queue, struct ft_err *err);
/* Wait, under the watchdog, for the collectives queued so far. */
int ft_comm_wait(struct ft_comm *c, struct ft_err *err);
/* Rank r's counts[r] floats at mine to all + displs[r] on root (all is
 * only used there, and is host memory: a checkpoint's whole moments). */
int ft_comm_gather(struct ft_comm *c, float *all, const float *mine, const size_t *counts,
		   const size_t *displs, int root, struct ft_err *err);

/* Leave cleanly (every rank, after the last collective), or at once on an
 * error (pending collectives are dropped). Both free c. */
int ft_comm_close(struct ft_comm *c, struct ft_err *err);
void ft_comm_abort(struct ft_comm *c);

#ifdef __cplusplus
}
#endif

#endif
