/* dist.c: ranks over MPI or NCCL, or one rank (contract in dist.h). MPI
 * takes int counts: every MPI call goes in chunks of at most CHUNK
 * elements. */
#include "dist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "comm.h"
#include "rdzv.h"

static int joined, rank, size = 1;
static bool mpi;                /* in an MPI job */
static bool from_env;           /* started from RANK / WORLD_SIZE */
static struct ft_comm *comm;    /* CUDA ranks: every collective goes here */
static const char *rdzv_file;   /* rank 0: the id's file, until all have read it */

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

/* An integer environment variable in [lo, hi]; dflt when unset (or, with
 * dflt < lo, required). */
static long env_long(const char *name, long lo, long hi, long dflt)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		if (dflt < lo)
			ft_die(FT_EXIT_USAGE, "started from the environment (WORLD_SIZE is set), "
			       "but %s is not set", name);
		return dflt;
	}
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || *end || n < lo || n > hi)
		ft_die(FT_EXIT_USAGE, "%s='%s': want a whole number from %ld to %ld", name, v, lo, hi);
	return n;
}

/* Seconds a collective, the rendezvous or joining NCCL may take before the
 * others count as dead: FT_DIST_TIMEOUT, default 600 (torch's default too). */
static double timeout_s(void)
{
	const char *v = getenv("FT_DIST_TIMEOUT");
	if (!v || !*v)
		return 600.0;
	char *end;
	double t = strtod(v, &end);
	if (*end || !(t > 0.0) || t > 1e7)
		ft_die(FT_EXIT_USAGE, "FT_DIST_TIMEOUT='%s': want seconds, more than 0", v);
	return t;
}

int ft_dist_local_rank(void)
{
	static const char *const vars[] = { "LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
					    "MPI_LOCALRANKID", "SLURM_LOCALID" };
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
		if (getenv(vars[i]) && *getenv(vars[i]))
			return (int)env_long(vars[i], 0, 1 << 20, 0);
	return 0;
}

int ft_dist_rank(void) { return rank; }
int ft_dist_size(void) { return size; }
bool ft_dist_nccl(void) { return comm != NULL; }

static void comm_check(int rc, const struct ft_err *err)
{
	if (rc)
		ft_die(FT_EXIT_DATA, "%s", err->msg);
}

#ifdef FT_MPI

#include <mpi.h>

enum { CHUNK = 1 << 28 };

static void check(int rc, const char *what)
{
	if (rc == MPI_SUCCESS)
		return;
	char msg[MPI_MAX_ERROR_STRING];
	int len = 0;
	MPI_Error_string(rc, msg, &len);
	ft_die(FT_EXIT_DATA, "%s: %s", what, msg);
}

static void mpi_join(void)
{
	int provided;
	if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
		ft_die(FT_EXIT_DATA, "cannot join the MPI job");
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	mpi = true;
}

/* At exit: a failure takes the job down, a success leaves it. */
static void mpi_leave(int status)
{
	int init = 0, fin = 0;
	MPI_Initialized(&init);
	MPI_Finalized(&fin);
	if (!init || fin)
		return;
	if (status != 0)
		MPI_Abort(MPI_COMM_WORLD, status);
	else
		MPI_Finalize();
}

static void mpi_sum(void *x, size_t n, enum ft_comm_type t)
{
	MPI_Datatype type = t == FT_COMM_F32 ? MPI_FLOAT : t == FT_COMM_F64 ? MPI_DOUBLE
			  : t == FT_COMM_I64 ? MPI_LONG : MPI_BYTE;
	size_t elem = t == FT_COMM_F32 ? 4 : t == FT_COMM_U8 ? 1 : 8;
	for (size_t i = 0; i < n; i += CHUNK) {
		int c = (int)(n - i < CHUNK ? n - i : CHUNK);
		check(MPI_Allreduce(MPI_IN_PLACE, (char *)x + i * elem, c, type, MPI_SUM,
				    MPI_COMM_WORLD), "all-reduce");
	}
}

static void mpi_bcast(void *x, size_t n, int root)
{
	for (size_t i = 0; i < n; i += CHUNK) {
		int c = (int)(n - i < CHUNK ? n - i : CHUNK);
		check(MPI_Bcast((char *)x + i, c, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
	}
}

static void mpi_gather(float *all, const float *mine, const size_t *counts, int root,
		       const size_t *displs)
{
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

static void mpi_barrier(void)
{
	check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

#else /* no MPI: a launcher's job cannot be joined; mpi stays false */

static void mpi_join(void)
{
	ft_die(FT_EXIT_USAGE, "started by an MPI launcher, but this ft-train was built "
	       "without MPI (install libopenmpi-dev and rebuild)");
}
static void mpi_leave(int status) { (void)status; }
static void mpi_sum(void *x, size_t n, enum ft_comm_type t) { (void)x; (void)n; (void)t; }
static void mpi_bcast(void *x, size_t n, int root) { (void)x; (void)n; (void)root; }
static void mpi_gather(float *all, const float *mine, const size_t *counts, int root,
		       const size_t *displs)
{
	(void)all; (void)mine; (void)counts; (void)root; (void)displs;
}
static void mpi_barrier(void) {}

#endif

static void on_exit_leave(int status, void *arg)
{
	(void)arg;
	if (rdzv_file) {   /* a failed start: the next job must not find the file */
		struct ft_err err = { 0 };
		if (ft_rdzv_remove(rdzv_file, &err))
			ft_warn("%s", err.msg);
	}
	if (comm && status != 0) {
		ft_comm_abort(comm);   /* the peers' collectives fail instead of hanging */
		comm = NULL;
	}
	mpi_leave(status);
}

void ft_dist_init(int device)
{
	if (joined)
		return;
	joined = 1;
	int n = launcher_size();
	if (n != 1) {
		mpi_join();
	} else if (getenv("WORLD_SIZE") && *getenv("WORLD_SIZE")) {
		size = (int)env_long("WORLD_SIZE", 1, 65536, 0);
		rank = (int)env_long("RANK", 0, size - 1, -1);
		if (device < 0) {
			if (size > 1)
				ft_die(FT_EXIT_USAGE, "started as rank %d of %d from the environment "
				       "(RANK, WORLD_SIZE), on the CPU: CPU ranks need an MPI launcher "
				       "(mpirun, srun --mpi=pmix); only CUDA ranks (over NCCL) start "
				       "from the environment", rank, size);
			rank = 0;   /* one CPU rank: a plain run */
			return;
		}
		from_env = true;
	} else {
		return;   /* a plain run: no MPI at all (singleton start-up costs time) */
	}
	on_exit(on_exit_leave, NULL);
}

/* Where rank 0 hands out NCCL's id: FT_RDZV_PORT, else MASTER_PORT; under
 * torchrun (TORCHELASTIC_RUN_ID) its agent's store holds MASTER_PORT on
 * rank 0's host, so MASTER_PORT + 1. */
static int rdzv_port(void)
{
	if (getenv("FT_RDZV_PORT") && *getenv("FT_RDZV_PORT"))
		return (int)env_long("FT_RDZV_PORT", 1, 65535, 0);
	bool torchrun = getenv("TORCHELASTIC_RUN_ID") != NULL;
	return (int)env_long("MASTER_PORT", 1, torchrun ? 65534 : 65535, -1) + torchrun;
}

void ft_dist_use_nccl(void)
{
	if ((!mpi && !from_env) || comm)
		return;
	struct ft_err err = { 0 };
	double t = timeout_s();
	unsigned char id[FT_COMM_ID_BYTES] = { 0 };
	if (rank == 0)
		comm_check(ft_comm_unique_id(id, &err), &err);
	if (mpi) {
		if (size > 1)
			mpi_bcast(id, sizeof id, 0);
	} else if (size > 1 && getenv("FT_RDZV_FILE") && *getenv("FT_RDZV_FILE")) {
		const char *file = getenv("FT_RDZV_FILE");
		comm_check(ft_rdzv_share_file(file, rank, size, id, sizeof id, t, &err), &err);
		if (rank == 0)
			rdzv_file = file;
	} else if (size > 1) {
		const char *host = getenv("MASTER_ADDR");
		if (!host || !*host)
			ft_die(FT_EXIT_USAGE, "started from the environment with WORLD_SIZE=%d, but "
			       "neither MASTER_ADDR (rank 0's host) nor FT_RDZV_FILE is set", size);
		comm_check(ft_rdzv_share(host, rdzv_port(), rank, size, id, sizeof id, t, &err),
			   &err);
	}
	comm = ft_comm_open(id, rank, size, t, &err);
	if (!comm)
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	/* every rank has joined, so every rank has read the file */
	if (rdzv_file) {
		const char *file = rdzv_file;
		rdzv_file = NULL;
		comm_check(ft_rdzv_remove(file, &err), &err);
	}
}

/* With NCCL every call runs, even for one rank: that is the path a
 * one-GPU job tests. */
static void sum(void *x, size_t n, enum ft_comm_type t)
{
	struct ft_err err = { 0 };
	if (comm)
		comm_check(ft_comm_sum(comm, x, n, t, &err), &err);
	else if (size > 1)
		mpi_sum(x, n, t);
}

void ft_dist_sum_float(float *x, size_t n) { sum(x, n, FT_COMM_F32); }
void ft_dist_sum_double(double *x, size_t n) { sum(x, n, FT_COMM_F64); }
void ft_dist_sum_long(long *x, size_t n) { sum(x, n, FT_COMM_I64); }

void ft_dist_bcast(void *x, size_t n, int root)
{
	struct ft_err err = { 0 };
	if (comm)
		comm_check(ft_comm_bcast(comm, x, n, root, &err), &err);
	else if (size > 1)
		mpi_bcast(x, n, root);
}

void ft_dist_gather_float(float *all, const float *mine, const size_t *counts,
			  const size_t *displs, int root)
{
	struct ft_err err = { 0 };
	if (comm) {
		comm_check(ft_comm_gather(comm, all, mine, counts, displs, root, &err), &err);
		return;
	}
	if (rank == root && counts[rank])
		memcpy(all + displs[rank], mine, counts[rank] * sizeof *mine);
	if (size > 1)
		mpi_gather(all, mine, counts, root, displs);
}

static void allgather(float *x, const size_t *counts, const size_t *displs, bool queue)
{
	struct ft_err err = { 0 };
	if (comm) {
		comm_check(ft_comm_allgather(comm, x, counts, displs, queue, &err), &err);
		return;
	}
	for (int r = 0; size > 1 && r < size; r++)
		mpi_bcast(x + displs[r], counts[r] * sizeof *x, r);
}

void ft_dist_allgather_float(float *x, const size_t *counts, const size_t *displs)
{
	allgather(x, counts, displs, false);
}

/* One wait for a series: each all-gather of ZeRO-1's step is a tensor, and
 * a host wait after each would leave the GPU idle between them. */
void ft_dist_allgather_float_queued(float *x, const size_t *counts, const size_t *displs)
{
	allgather(x, counts, displs, comm != NULL);
}

void ft_dist_wait(void)
{
	struct ft_err err = { 0 };
	if (comm)
		comm_check(ft_comm_wait(comm, &err), &err);
}

void ft_dist_barrier(void)
{
	long one = 1;
	if (comm)
		ft_dist_sum_long(&one, 1);
	else if (size > 1)
		mpi_barrier();
}

void ft_dist_finalize(void)
{
	if (comm) {
		struct ft_err err = { 0 };
		struct ft_comm *c = comm;
		comm = NULL;
		comm_check(ft_comm_close(c, &err), &err);
	}
	mpi_leave(0);
}
