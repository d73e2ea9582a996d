/* dist.h: data-parallel ranks for ft-train. A job is started by an MPI
 * launcher (mpirun, mpiexec, srun with PMI/PMIx; needs a build with FT_MPI,
 * the Makefile's choice when libmpi is there) or torchrun-style from the
 * environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
 * A plain `ft-train train` is rank 0 of 1 and every call is the identity.
 *
 * Transports: CPU ranks talk over MPI. CUDA ranks open an NCCL communicator
 * (ft_dist_use_nccl, once the CUDA ops are open) and from then on every
 * collective goes over it, on host or device memory alike, even for a job
 * of one rank; NCCL's id reaches the ranks over MPI, or for an environment
 * start over TCP from rank 0 at MASTER_ADDR:MASTER_PORT or through the
 * shared file FT_RDZV_FILE (lib/rdzv.h). Errors: a failed
 * collective (a dead or hung peer, within FT_DIST_TIMEOUT seconds) stops
 * the rank with a message, and any exit with a non-zero status once in a
 * job (ft_die, usage errors) ends the whole job (MPI_Abort; NCCL's
 * communicator is aborted, which the peers see as an error), so no rank
 * waits forever on a dead one. */
#ifndef FT_DIST_H
#define FT_DIST_H

#include <stdbool.h>
#include <stddef.h>

/* Join the job (idempotent). device: the run's device (-1: the CPU), since
 * an environment start has no CPU transport. Dies on a job this build or
 * this device cannot join. */
void ft_dist_init(int device);
int ft_dist_rank(void);
int ft_dist_size(void);
/* This rank's index among the ranks of its machine (the launcher's
 * LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, ...), 0 if none. */
int ft_dist_local_rank(void);
/* For a job's CUDA ranks (no-op outside a job): open the NCCL communicator
 * on the device the CUDA ops opened; every collective goes over it after. */
void ft_dist_use_nccl(void);
/* Whether collectives go over NCCL. */
bool ft_dist_nccl(void);
/* The collectives. Buffers are host memory; with NCCL they may also be
 * device memory (the gradients, masters and moments of a CUDA run). */
/* Element-wise sums over all ranks, in place; every rank gets the result. */
void ft_dist_sum_float(float *x, size_t n);
void ft_dist_sum_double(double *x, size_t n);
void ft_dist_sum_long(long *x, size_t n);
/* Rank root's n bytes to every rank. */
void ft_dist_bcast(void *x, size_t n, int root);
/* Gather: rank r's counts[r] floats from mine to all + displs[r] on root
 * (all is only used there). counts and displs are the same on every rank. */
void ft_dist_gather_float(float *all, const float *mine, const size_t *counts,
			  const size_t *displs, int root);
/* All-gather: every rank's counts[r] floats at x + displs[r], in place.
 * The _queued form may return before it ends (NCCL, device memory): call
 * ft_dist_wait after the last of a series, before reading x. */
void ft_dist_allgather_float(float *x, const size_t *counts, const size_t *displs);
void ft_dist_allgather_float_queued(float *x, const size_t *counts, const size_t *displs);
void ft_dist_wait(void);
void ft_dist_barrier(void);
/* Leave the job cleanly; call once, at a successful end. */
void ft_dist_finalize(void);

#endif
