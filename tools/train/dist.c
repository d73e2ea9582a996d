/* dist.c: ranks over MPI, or one rank (contract in dist.h). MPI takes int
 * counts: every call goes in chunks of at most CHUNK elements. */
#include "dist.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The rank count a launcher announced: OpenMPI's mpirun, or a PMI launcher
 * (MPICH's mpiexec, srun --mpi=pmi2/pmix); 0 for a launcher that does not
 * say, 1 when none started this process. */
static int launcher_size(void)
{
	static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE" };
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
		const char *v = getenv(vars[i]);
		if (v && atoi(v) > 0)
			return atoi(v);
	}
	return getenv("PMIX_RANK") || getenv("PMI_RANK") ? 0 : 1;   /* 0: some */
}

#ifdef FT_MPI

#include <limits.h>
#include <mpi.h>

enum { CHUNK = 1 << 28 };

static int joined, rank, size = 1;

/* Any exit with a failure status while in the job takes the job down:
 * ft_die and usage errors exit(1 or 2) on one rank, and the others would
 * otherwise wait in their next collective. */
static void on_exit_abort(int status, void *arg)
{
	int fin = 0;
	MPI_Finalized(&fin);
	if (fin)
		return;
	if (status != 0)
		MPI_Abort(MPI_COMM_WORLD, status);
	else
		MPI_Finalize();
}

static void check(int rc, const char *what)
{
	if (rc == MPI_SUCCESS)
		return;
	char msg[MPI_MAX_ERROR_STRING];
	int len = 0;
	MPI_Error_string(rc, msg, &len);
	ft_die(FT_EXIT_DATA, "%s: %s", what, msg);
}

void ft_dist_init(void)
{
	if (joined)
		return;
	joined = 1;
	if (launcher_size() == 1)
		return;   /* a plain run: no MPI at all (singleton start-up costs time) */
	int provided;
	if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
		ft_die(FT_EXIT_DATA, "cannot join the MPI job");
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	on_exit(on_exit_abort, NULL);
}

int ft_dist_rank(void) { return rank; }
int ft_dist_size(void) { return size; }

static void sum(void *x, size_t n, MPI_Datatype type, size_t elem)
{
	if (size == 1)
		return;
	for (size_t i = 0; i < n; i += CHUNK) {
		int c = (int)(n - i < CHUNK ? n - i : CHUNK);
		check(MPI_Allreduce(MPI_IN_PLACE, (char *)x + i * elem, c, type, MPI_SUM,
				    MPI_COMM_WORLD), "all-reduce");
	}
}

void ft_dist_sum_float(float *x, size_t n) { sum(x, n, MPI_FLOAT, sizeof *x); }
void ft_dist_sum_double(double *x, size_t n) { sum(x, n, MPI_DOUBLE, sizeof *x); }
void ft_dist_sum_long(long *x, size_t n) { sum(x, n, MPI_LONG, sizeof *x); }

void ft_dist_bcast(void *x, size_t n, int root)
{
	if (size == 1)
		return;
	for (size_t i = 0; i < n; i += CHUNK) {
		int c = (int)(n - i < CHUNK ? n - i : CHUNK);
		check(MPI_Bcast((char *)x + i, c, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
	}
}

void ft_dist_gather_float(float *all, const float *mine, const size_t *counts,
			  const size_t *displs, int root)
{
	if (rank == root && counts[rank])
		memcpy(all + displs[rank], mine, counts[rank] * sizeof *mine);
	for (int r = 0; r < size; r++) {
		if (r == root || (rank != root && rank != r))
			continue;
		for (size_t i = 0; i < counts[r]; i += CHUNK) {
			int c = (int)(counts[r] - i < CHUNK ? counts[r] - i : CHUNK);
			if (rank == root)
				check(MPI_Recv(all + displs[r] + i, c, MPI_FLOAT, r, 0, MPI_COMM_WORLD,
					       MPI_STATUS_IGNORE), "gather");
			else
				check(MPI_Send(mine + i, c, MPI_FLOAT, root, 0, MPI_COMM_WORLD),
				      "gather");
		}
	}
}

void ft_dist_allgather_float(float *x, const size_t *counts, const size_t *displs)
{
	if (size == 1)
		return;
	for (int r = 0; r < size; r++)
		ft_dist_bcast(x + displs[r], counts[r] * sizeof *x, r);
}

void ft_dist_barrier(void)
{
	if (size > 1)
		check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

void ft_dist_finalize(void)
{
	int init = 0, fin = 0;
	MPI_Initialized(&init);
	MPI_Finalized(&fin);
	if (init && !fin)
		MPI_Finalize();
}

#else /* one rank */

void ft_dist_init(void)
{
	int n = launcher_size();
	if (n > 1)
		ft_die(FT_EXIT_USAGE, "started as one of %d ranks, but this ft-train was built "
		       "without MPI (install libopenmpi-dev and rebuild)", n);
}

int ft_dist_rank(void) { return 0; }
int ft_dist_size(void) { return 1; }
void ft_dist_sum_float(float *x, size_t n) { (void)x; (void)n; }
void ft_dist_sum_double(double *x, size_t n) { (void)x; (void)n; }
void ft_dist_sum_long(long *x, size_t n) { (void)x; (void)n; }
void ft_dist_bcast(void *x, size_t n, int root) { (void)x; (void)n; (void)root; }
void ft_dist_gather_float(float *all, const float *mine, const size_t *counts,
			  const size_t *displs, int root)
{
	if (counts[0])
		memcpy(all + displs[0], mine, counts[0] * sizeof *mine);
	(void)root;
}
void ft_dist_allgather_float(float *x, const size_t *counts, const size_t *displs)
{
	(void)x; (void)counts; (void)displs;
}
void ft_dist_barrier(void) {}
void ft_dist_finalize(void) {}

#endif
