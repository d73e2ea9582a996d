/* dist.h: data-parallel ranks for ft-train, over MPI when built with
 * FT_MPI (the Makefile's choice when libmpi is there), otherwise one rank.
 * ft_dist_init joins the job only when a launcher started the process
 * (mpirun, mpiexec, srun with PMI/PMIx); a plain `ft-train train` is rank 0
 * of 1 and every call is the identity. Errors: a failed collective, and any
 * exit with a non-zero status once initialised (ft_die, usage errors), end
 * the whole job with MPI_Abort, so no rank waits forever on a dead one. */
#ifndef FT_DIST_H
#define FT_DIST_H

#include <stddef.h>

/* Join the job (idempotent); dies when a launcher started several ranks but
 * this build has no MPI. */
void ft_dist_init(void);
int ft_dist_rank(void);
int ft_dist_size(void);
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
/* All-gather: every rank's counts[r] floats at x + displs[r], in place. */
void ft_dist_allgather_float(float *x, const size_t *counts, const size_t *displs);
void ft_dist_barrier(void);
/* Leave the job cleanly (MPI_Finalize); call once, at a successful end. */
void ft_dist_finalize(void);

#endif
