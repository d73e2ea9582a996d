/* comm.cu: NCCL communicators for data-parallel CUDA ranks (contract in
 * kernels/comm.h). NCCL comes from dlopen, not the link line: one GPU needs
 * no NCCL. Communicators are non-blocking (ncclConfig_t.blocking = 0): every
 * NCCL call returns at once, possibly ncclInProgress, and we poll
 * ncclCommGetAsyncError, then the stream, against a deadline. That poll is
 * the watchdog: a peer that died leaves the others with an error, not a
 * hang. */
#include <dlfcn.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"
#include "cuda.cuh"

static_assert(sizeof(ncclUniqueId) == FT_COMM_ID_BYTES, "NCCL's id size changed");
static_assert(sizeof(long) == 8, "FT_COMM_I64 carries long");

/* The NCCL entry points we use, looked up once. */
static struct {
	void *lib;
	decltype(&ncclGetVersion) GetVersion;
	decltype(&ncclGetUniqueId) GetUniqueId;
	decltype(&ncclCommInitRankConfig) CommInitRankConfig;
	decltype(&ncclCommGetAsyncError) CommGetAsyncError;
	decltype(&ncclCommFinalize) CommFinalize;
	decltype(&ncclCommDestroy) CommDestroy;
	decltype(&ncclCommAbort) CommAbort;
	decltype(&ncclGetErrorString) GetErrorString;
	decltype(&ncclGetLastError) GetLastError;
	decltype(&ncclAllReduce) AllReduce;
	decltype(&ncclBroadcast) Broadcast;
	decltype(&ncclSend) Send;
	decltype(&ncclRecv) Recv;
	decltype(&ncclGroupStart) GroupStart;
	decltype(&ncclGroupEnd) GroupEnd;
} nccl;

/* Non-blocking communicators came with NCCL 2.14; ncclCommFinalize too. */
enum { MIN_VERSION = NCCL_VERSION(2, 14, 0) };

static int load_nccl(struct ft_err *err)
{
	if (nccl.lib)
		return FT_OK;
	void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return ft_err_set(err, FT_E_INVAL, "nccl: cannot load libnccl.so.2 (%s): install "
				  "NCCL (Debian: libnccl2) or put its directory in LD_LIBRARY_PATH",
				  dlerror());
#define SYM(name)                                                                             \
	do {                                                                                  \
		*(void **)&nccl.name = dlsym(lib, "nccl" #name);                              \
		if (!nccl.name) {                                                             \
			dlclose(lib);                                                         \
			return ft_err_set(err, FT_E_INVAL, "nccl: libnccl.so.2 lacks nccl%s", \
					  #name);                                             \
		}                                                                             \
	} while (0)
	SYM(GetVersion);
	SYM(GetUniqueId);
	SYM(CommInitRankConfig);
	SYM(CommGetAsyncError);
	SYM(CommFinalize);
	SYM(CommDestroy);
	SYM(CommAbort);
	SYM(GetErrorString);
	SYM(GetLastError);
	SYM(AllReduce);
	SYM(Broadcast);
	SYM(Send);
	SYM(Recv);
	SYM(GroupStart);
	SYM(GroupEnd);
#undef SYM
	int v = 0;
	if (nccl.GetVersion(&v) != ncclSuccess || v < MIN_VERSION) {
		dlclose(lib);
		return ft_err_set(err, FT_E_INVAL, "nccl: libnccl.so.2 is version %d; 2.14 or newer "
				  "is needed", v);
	}
	nccl.lib = lib;
	return FT_OK;
}

struct ft_comm {
	ncclComm_t comm;
	int rank, world;
	double timeout_s;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Short spins first (a collective usually ends in microseconds), then
 * sleeps that grow to a millisecond. */
static void backoff(int *round)
{
	if (*round < 64) {
		(*round)++;
		return;
	}
	long ns = 1000L << (*round - 64 < 10 ? *round - 64 : 10);
	struct timespec t = { 0, ns };
	nanosleep(&t, NULL);
	(*round)++;
}

static int nccl_error(struct ft_comm *c, ncclResult_t rc, const char *what, struct ft_err *err)
{
	const char *last = c && c->comm ? nccl.GetLastError(c->comm) : NULL;
	return ft_err_set(err, FT_E_DATA, "nccl: %s: %s%s%s", what, nccl.GetErrorString(rc),
			  last && *last ? ": " : "", last && *last ? last : "");
}

static int timed_out(const struct ft_comm *c, const char *what, struct ft_err *err)
{
	return ft_err_set(err, FT_E_DATA, "nccl: %s: not finished after %.0f s: another rank "
			  "died, hangs or did not start (FT_DIST_TIMEOUT sets the limit)", what,
			  c->timeout_s);
}

/* After an NCCL call: wait while the communicator is in progress. */
static int settle(struct ft_comm *c, ncclResult_t rc, const char *what, double deadline,
		  struct ft_err *err)
{
	int round = 0;
	while (rc == ncclInProgress) {
		if (now_s() > deadline)
			return timed_out(c, what, err);
		backoff(&round);
		if (nccl.CommGetAsyncError(c->comm, &rc) != ncclSuccess)
			return nccl_error(c, ncclInternalError, what, err);
	}
	return rc == ncclSuccess ? FT_OK : nccl_error(c, rc, what, err);
}

/* Wait for the stream (the collective and what came before it), watching
 * for an asynchronous NCCL error and the deadline. */
static int finish(struct ft_comm *c, const char *what, double deadline, struct ft_err *err)
{
	int round = 0;
	for (;;) {
		cudaError_t e = cudaStreamQuery(ft_cuda_stream);
		if (e == cudaSuccess)
			return FT_OK;
		if (e != cudaErrorNotReady)
			ft_cuda_fail("cudaStreamQuery", __FILE__, __LINE__, cudaGetErrorString(e));
		ncclResult_t rc;
		if (nccl.CommGetAsyncError(c->comm, &rc) != ncclSuccess)
			rc = ncclInternalError;
		if (rc != ncclSuccess && rc != ncclInProgress)
			return nccl_error(c, rc, what, err);
		if (now_s() > deadline)
			return timed_out(c, what, err);
		backoff(&round);
	}
}

static bool on_device(const void *p)
{
	cudaPointerAttributes a;
	if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
		(void)cudaGetLastError();   /* an unknown host pointer, on old drivers */
		return false;
	}
	return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

static size_t type_size(enum ft_comm_type t)
{
	return t == FT_COMM_U8 ? 1 : t == FT_COMM_F32 ? 4 : 8;
}

static ncclDataType_t nccl_type(enum ft_comm_type t)
{
	switch (t) {
	case FT_COMM_F32: return ncclFloat32;
	case FT_COMM_F64: return ncclFloat64;
	case FT_COMM_I64: return ncclInt64;
	case FT_COMM_U8: break;
	}
	return ncclUint8;
}

extern "C" int ft_cuda_device_count(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		(void)cudaGetLastError();
		return 0;
	}
	return n;
}

extern "C" int ft_comm_unique_id(unsigned char id[FT_COMM_ID_BYTES], struct ft_err *err)
{
	if (load_nccl(err))
		return err->code;
	ncclUniqueId u;
	ncclResult_t rc = nccl.GetUniqueId(&u);
	if (rc != ncclSuccess)
		return nccl_error(NULL, rc, "cannot make a communicator id", err);
	memcpy(id, u.internal, FT_COMM_ID_BYTES);
	return FT_OK;
}

extern "C" struct ft_comm *ft_comm_open(const unsigned char id[FT_COMM_ID_BYTES], int rank,
					int world, double timeout_s, struct ft_err *err)
{
	if (load_nccl(err))
		return NULL;
	struct ft_comm *c = (struct ft_comm *)calloc(1, sizeof *c);
	if (!c) {
		ft_err_set(err, FT_E_NOMEM, "nccl: out of memory");
		return NULL;
	}
	c->rank = rank;
	c->world = world;
	c->timeout_s = timeout_s;
	ncclUniqueId u;
	memcpy(u.internal, id, FT_COMM_ID_BYTES);
	ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
	config.blocking = 0;
	char what[96];
	snprintf(what, sizeof what, "joining the communicator as rank %d of %d", rank, world);
	ncclResult_t rc = nccl.CommInitRankConfig(&c->comm, world, u, rank, &config);
	if (rc != ncclSuccess && rc != ncclInProgress) {
		nccl_error(c, rc, what, err);
		if (c->comm)
			nccl.CommAbort(c->comm);
		free(c);
		return NULL;
	}
	if (settle(c, rc, what, now_s() + timeout_s, err)) {
		nccl.CommAbort(c->comm);
		free(c);
		return NULL;
	}
	return c;
}

/* Run one collective (queue calls group, between ncclGroupStart/End) and
 * wait for it, or with wait false only until NCCL has queued it. */
template <typename F>
static int collective(struct ft_comm *c, const char *what, struct ft_err *err, F queue,
		      bool wait = true)
{
	double deadline = now_s() + c->timeout_s;
	ncclResult_t rc = nccl.GroupStart();
	if (rc != ncclSuccess)
		return nccl_error(c, rc, what, err);
	rc = queue();
	ncclResult_t end = nccl.GroupEnd();
	if (rc != ncclSuccess && rc != ncclInProgress)
		return nccl_error(c, rc, what, err);
	if (settle(c, end, what, deadline, err))
		return err->code;
	return wait ? finish(c, what, deadline, err) : FT_OK;
}

extern "C" int ft_comm_wait(struct ft_comm *c, struct ft_err *err)
{
	return finish(c, "collectives", now_s() + c->timeout_s, err);
}

/* An in-place collective on x's bytes: queue(d) queues it on device memory
 * d, which is x, or for host memory a copy of it in the ops' scratch,
 * copied back after. queue = false: return once it is queued (device
 * memory only). */
template <typename F>
static int in_place(struct ft_comm *c, void *x, size_t bytes, const char *what, bool wait,
		    struct ft_err *err, F queue)
{
	if (!bytes)
		return FT_OK;
	bool host = !on_device(x);
	if (host && !wait)
		return ft_err_set(err, FT_E_INVAL, "nccl: %s: a queued one wants device memory",
				  what);
	void *d = host ? ft_cuda_scratch(bytes) : x;
	if (host)
		CUDA_CHECK(cudaMemcpyAsync(d, x, bytes, cudaMemcpyHostToDevice, ft_cuda_stream));
	if (collective(c, what, err, [&] { return queue(d); }, wait))
		return err->code;
	if (host) {
		CUDA_CHECK(cudaMemcpyAsync(x, d, bytes, cudaMemcpyDeviceToHost, ft_cuda_stream));
		CUDA_CHECK(cudaStreamSynchronize(ft_cuda_stream));
	}
	return FT_OK;
}

extern "C" int ft_comm_sum(struct ft_comm *c, void *x, size_t n, enum ft_comm_type t,
			   struct ft_err *err)
{
	return in_place(c, x, n * type_size(t), "all-reduce", true, err, [&](void *d) {
		return nccl.AllReduce(d, d, n, nccl_type(t), ncclSum, c->comm, ft_cuda_stream);
	});
}

extern "C" int ft_comm_bcast(struct ft_comm *c, void *x, size_t bytes, int root,
			     struct ft_err *err)
{
	return in_place(c, x, bytes, "broadcast", true, err, [&](void *d) {
		return nccl.Broadcast(d, d, bytes, ncclUint8, root, c->comm, ft_cuda_stream);
	});
}

extern "C" int ft_comm_allgather(struct ft_comm *c, float *x, const size_t *counts,
				 const size_t *displs, bool queue, struct ft_err *err)
{
	size_t end = 0;
	for (int r = 0; r < c->world; r++)
		if (counts[r] && displs[r] + counts[r] > end)
			end = displs[r] + counts[r];
	/* one broadcast per rank, grouped: NCCL's all-gather wants equal parts */
	return in_place(c, x, end * sizeof *x, "all-gather", !queue, err, [&](void *dv) {
		float *d = (float *)dv;
		for (int r = 0; r < c->world; r++) {
			if (!counts[r])
				continue;
			ncclResult_t rc = nccl.Broadcast(d + displs[r], d + displs[r], counts[r],
							 ncclFloat32, r, c->comm, ft_cuda_stream);
			if (rc != ncclSuccess && rc != ncclInProgress)
				return rc;
		}
		return ncclSuccess;
	});
}

/* Gathered in pieces of at most GATHER_CHUNK floats through the ops'
 * scratch: the whole (all of a model's moments, at a checkpoint) never
 * needs device memory. The lead takes rank after rank, piece after piece;
 * each rank sends its pieces in the same order. */
static const size_t GATHER_CHUNK = (size_t)1 << 24;

extern "C" int ft_comm_gather(struct ft_comm *c, float *all, const float *mine,
			      const size_t *counts, const size_t *displs, int root,
			      struct ft_err *err)
{
	bool lead = c->rank == root;
	bool mine_dev = counts[c->rank] && on_device(mine);
	if (lead && counts[root])
		CUDA_CHECK(cudaMemcpyAsync(all + displs[root], mine, counts[root] * sizeof *mine,
					   mine_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost,
					   ft_cuda_stream));
	for (int r = 0; r < c->world; r++) {
		if (r == root || (!lead && r != c->rank))
			continue;
		for (size_t i = 0; i < counts[r]; i += GATHER_CHUNK) {
			size_t n = counts[r] - i < GATHER_CHUNK ? counts[r] - i : GATHER_CHUNK;
			float *d = lead || !mine_dev ? (float *)ft_cuda_scratch(n * sizeof *d)
						     : (float *)mine + i;
			if (!lead && !mine_dev)
				CUDA_CHECK(cudaMemcpyAsync(d, mine + i, n * sizeof *d,
							   cudaMemcpyHostToDevice, ft_cuda_stream));
			if (collective(c, "gather", err, [&] {
				    return lead ? nccl.Recv(d, n, ncclFloat32, r, c->comm, ft_cuda_stream)
						: nccl.Send(d, n, ncclFloat32, root, c->comm,
							    ft_cuda_stream);
			    }))
				return err->code;
			if (lead)
				CUDA_CHECK(cudaMemcpyAsync(all + displs[r] + i, d, n * sizeof *d,
							   cudaMemcpyDeviceToHost, ft_cuda_stream));
		}
	}
	CUDA_CHECK(cudaStreamSynchronize(ft_cuda_stream));
	return FT_OK;
}

extern "C" int ft_comm_close(struct ft_comm *c, struct ft_err *err)
{
	if (!c)
		return FT_OK;
	double deadline = now_s() + c->timeout_s;
	int rc = settle(c, nccl.CommFinalize(c->comm), "leaving the communicator", deadline, err);
	if (rc) {
		nccl.CommAbort(c->comm);
	} else {
		ncclResult_t d = nccl.CommDestroy(c->comm);
		if (d != ncclSuccess)
			rc = nccl_error(c, d, "leaving the communicator", err);
	}
	free(c);
	return rc;
}

extern "C" void ft_comm_abort(struct ft_comm *c)
{
	if (!c)
		return;
	nccl.CommAbort(c->comm);
	free(c);
}
