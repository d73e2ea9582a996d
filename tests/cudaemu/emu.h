/* emu.h: a CPU emulator for the subset of CUDA that kernels/cuda uses, so
 * that the kernels' own source, rewritten by tests/cudaemu/prep.py (launches
 * and __shared__ declarations only), runs on the host against the CPU
 * reference (kernels/cpu) without a GPU or nvcc. Test code only.
 *
 * What it emulates:
 *  - a launch runs every block of a 1-, 2- or 3-D grid; each block is a
 *    group of blockDim real threads (a pool made per launch and reused from
 *    block to block); one group per CPU (at most 4) runs blocks side by
 *    side, as a GPU does, so a race between blocks can show up (under
 *    ThreadSanitizer, or as a result that changes from run to run);
 *  - __syncthreads is a block barrier; a thread that returns drops out of
 *    its block's and its warp's barriers (as exited threads do on sm_70+);
 *    threads of one block meeting different __syncthreads (a divergent
 *    barrier) stop the program, and so does a barrier stuck for two
 *    minutes (a deadlock);
 *  - __shfl_xor_sync on any type of at most 8 bytes (float, double, int)
 *    through a per-warp exchange and barrier; a shuffle while a lane of the
 *    warp has exited, or with a mask other than the whole warp, stops the
 *    program;
 *  - shared memory: dynamic (extern __shared__) and static (__shared__
 *    arrays and scalars, also inside __device__ functions, one per
 *    declaration and template instantiation), fresh for every block and
 *    filled with NaN bits (0x7fc0 in every 16 bits: NaN as bf16, float and
 *    double), so a value read before it is written shows up; the 48 KB
 *    limit and cudaFuncSetAttribute's opt-in (to sm_80's 163 KB) are
 *    enforced;
 *  - bf16 storage with round-to-nearest-even conversions (NaN becomes the
 *    canonical 0x7fff, as cvt.rn.bf16.f32 does), the _rn arithmetic
 *    intrinsics, __ldg with its alignment requirement (a misaligned __ldg
 *    stops the program), vector types;
 *  - the runtime calls the kernels make (cudaMalloc, cudaFree,
 *    cudaMemcpyAsync, cudaMemsetAsync, cudaStreamSynchronize,
 *    cudaFuncSetAttribute, cudaGetLastError...) on host memory; an invalid
 *    launch configuration (empty grid, too many threads or too much shared
 *    memory) is reported through cudaGetLastError, the kernel not run.
 * Cost: a barrier is one context switch per thread (a few microseconds in
 * a virtual machine), so the shapes tested are small.
 *
 * What it cannot:
 *  - timing, occupancy, bank conflicts, coalescing: nothing about speed;
 *  - the GPU's math library: expf, exp2f, log2f, sinf... are the host
 *    libm's, which differ from CUDA's by an ulp or two;
 *  - fused multiply-add contraction: nvcc contracts a * b + c into one
 *    fma by default, the host build (-ffp-contract=off) never does; fmaf
 *    itself is exact on both;
 *  - misaligned-load faults other than __ldg's: a plain dereference of a
 *    misaligned vector pointer works here and faults on the GPU;
 *  - the memory model beyond barriers: shared and global memory are host
 *    memory, coherent and strongly ordered on x86, so a missing fence or
 *    volatile goes unnoticed, and a missing __syncthreads shows only when
 *    the threads' timing exposes it (or under ThreadSanitizer); warps do
 *    not run in lockstep, as on sm_70+ without __syncwarp, but a shuffle
 *    here is a full barrier of its warp, ordering memory too, which
 *    __shfl_xor_sync does not promise (a barrier missing where a shuffle
 *    of the same warp stands in for it goes unnoticed);
 *  - streams: every call completes before it returns.
 * Only the constructs listed in prep.py's SUPPORTED are provided; prep.py
 * rejects a kernel using anything else, rather than test less. */
#ifndef FT_CUDAEMU_H
#define FT_CUDAEMU_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#ifdef __linux__
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

/* ---- qualifiers ----------------------------------------------------------- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

/* ---- vector types --------------------------------------------------------- */

struct dim3 {
	unsigned x, y, z;
	dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;
struct float2 { float x, y; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
static inline float2 make_float2(float x, float y) { return {x, y}; }

enum { warpSize = 32 };

/* CUDA's min and max overloads (an enum constant and an int mix here) */
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }

/* ---- bf16 ----------------------------------------------------------------- */

struct __nv_bfloat16 { uint16_t bits; };
struct alignas(4) __nv_bfloat162 { __nv_bfloat16 x, y; };

static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }

static inline float __bfloat162float(__nv_bfloat16 b)
{
	return __uint_as_float((unsigned)b.bits << 16);
}

/* round to nearest, ties to even; overflow goes to infinity, denormals stay */
static inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
	unsigned u = __float_as_uint(f);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return {0x7fff};
	u += 0x7fffu + ((u >> 16) & 1);
	return {(uint16_t)(u >> 16)};
}

static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b)
{
	return {__float2bfloat16_rn(a), __float2bfloat16_rn(b)};
}

static inline float2 __bfloat1622float2(__nv_bfloat162 p)
{
	return {__bfloat162float(p.x), __bfloat162float(p.y)};
}

/* ---- arithmetic intrinsics ------------------------------------------------ */

/* One IEEE operation each, rounded to nearest: what the host does anyway
 * (the kernels are compiled with -ffp-contract=off). */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __frcp_rn(float a) { return 1.0f / a; }

/* ---- runtime API ---------------------------------------------------------- */

typedef enum cudaError {
	cudaSuccess = 0,
	cudaErrorInvalidValue = 1,
	cudaErrorMemoryAllocation = 2,
	cudaErrorInvalidConfiguration = 9,
} cudaError_t;
typedef struct emu_stream *cudaStream_t;
enum cudaMemcpyKind {
	cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
	cudaMemcpyDeviceToDevice, cudaMemcpyDefault,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
/* only named by the cuBLASLt calls, which are not emulated */
typedef enum cudaDataType_t { CUDA_R_16BF = 14, CUDA_R_32F = 0 } cudaDataType_t;

enum {
	EMU_SMEM_DEFAULT = 48 * 1024,   /* without cudaFuncSetAttribute */
	EMU_SMEM_MAX = 163 * 1024,      /* opt-in limit of sm_80, the oldest target */
	EMU_THREADS_MAX = 1024,
};

/* Counters for the tests (relaxed atomics: threads of a launch add to them). */
struct emu_stats {
	std::atomic<long long> launches, blocks, barriers, shuffles, ldg_loads;
};
inline emu_stats emu_stat;

/* The sticky error cudaGetLastError returns and clears, and its reason. */
inline cudaError_t emu_last_error = cudaSuccess;
inline char emu_error_reason[256];

/* ft_cuda_blocks' grid cap (65535 * 16 in cuda.cuh; prep.py makes it this
 * variable): tests lower it to run the grid-stride loops more than once. */
inline unsigned emu_max_blocks = 65535u * 16u;

/* Opted-in dynamic shared memory per kernel (cudaFuncSetAttribute). */
inline std::mutex emu_attr_mu;
inline std::map<const void *, size_t> emu_smem_optin;

static inline const char *cudaGetErrorString(cudaError_t e)
{
	switch (e) {
	case cudaSuccess: return "no error";
	case cudaErrorInvalidValue: return "invalid argument";
	case cudaErrorMemoryAllocation: return "out of memory";
	case cudaErrorInvalidConfiguration: return emu_error_reason;
	}
	return "unknown error";
}

static inline cudaError_t cudaGetLastError(void)
{
	cudaError_t e = emu_last_error;
	emu_last_error = cudaSuccess;
	return e;
}
static inline cudaError_t cudaPeekAtLastError(void) { return emu_last_error; }

/* "Device" memory is host memory; fresh allocations hold garbage on a GPU,
 * here 0xa5 bytes. */
static inline cudaError_t cudaMalloc(void **p, size_t bytes)
{
	*p = malloc(bytes ? bytes : 1);
	if (!*p)
		return cudaErrorMemoryAllocation;
	memset(*p, 0xa5, bytes);
	return cudaSuccess;
}
static inline cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
static inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind)
{
	memmove(dst, src, n);
	return cudaSuccess;
}
static inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k,
					  cudaStream_t = 0)
{
	return cudaMemcpy(dst, src, n, k);
}
static inline cudaError_t cudaMemset(void *p, int v, size_t n) { memset(p, v, n); return cudaSuccess; }
static inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t = 0)
{
	return cudaMemset(p, v, n);
}
static inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
static inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

template <typename K> cudaError_t cudaFuncSetAttribute(K *kernel, cudaFuncAttribute attr, int value)
{
	if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
	    (size_t)value > EMU_SMEM_MAX)
		return cudaErrorInvalidValue;
	std::lock_guard<std::mutex> g(emu_attr_mu);
	emu_smem_optin[(const void *)kernel] = (size_t)value;
	return cudaSuccess;
}

/* ---- barriers ------------------------------------------------------------- */

/* Called once before the emulator stops the program (a test prints its
 * summary there). */
inline void (*emu_on_die)(void);

/* A kernel did what a GPU would not run (or would hang on): say where, stop. */
[[noreturn]] static inline void emu_die(const char *what, const char *file, int line)
{
	static std::mutex once;
	once.lock();   /* held until the end: one message */
	fflush(stdout);
	printf("FAIL %s:%d: cuda emulator: %s\n", file, line, what);
	if (emu_on_die)
		emu_on_die();
	fflush(stdout);
	abort();
}

enum { EMU_DEADLOCK_S = 120 };   /* a barrier waiting this long is stuck */

/* A barrier for a changing number of threads: arrive_and_drop leaves it
 * for good (an exited thread). Each arrival names its call site; the
 * threads of one phase must all come from the same one. Sleeping is a
 * futex on the phase counter (no spinning: there are far more threads than
 * cores). */
class emu_barrier {
public:
	void reset(int n) { expected_ = n; arrived_ = 0; }
	/* on_last runs in the last thread to arrive, before any is released */
	template <typename F> void arrive_and_wait(const char *file, int line, F on_last)
	{
		std::unique_lock<std::mutex> lk(mu_);
		uint32_t p = phase_.load(std::memory_order_relaxed);
		if (arrived_ == 0) {
			file_ = file;
			line_ = line;
		} else if (line != line_ || (file != file_ && strcmp(file, file_))) {
			char msg[400];
			snprintf(msg, sizeof msg, "threads of one block or warp wait at different "
				 "barriers (here and at %s:%d)", file_, line_);
			emu_die(msg, file, line);
		}
		if (++arrived_ == expected_) {
			on_last();
			release(lk, p);
			return;
		}
		lk.unlock();
		for (int waited = 0; phase_.load(std::memory_order_acquire) == p; waited++) {
			if (waited >= EMU_DEADLOCK_S)
				emu_die("deadlock: threads wait at a barrier or shuffle others "
					"never reach", file, line);
			wait(p);
		}
	}
	void arrive_and_wait(const char *file, int line) { arrive_and_wait(file, line, [] {}); }
	/* threads that arrived in the phase that released the caller (stable
	 * until the caller arrives again) */
	int last_arrivals() const { return last_arrivals_; }
	void arrive_and_drop()
	{
		std::unique_lock<std::mutex> lk(mu_);
		expected_--;
		if (arrived_ > 0 && arrived_ == expected_)
			release(lk, phase_.load(std::memory_order_relaxed));
	}

private:
	std::mutex mu_;
	int expected_ = 0, arrived_ = 0;
	const char *file_ = "";
	int line_ = 0, last_arrivals_ = 0;
	std::atomic<uint32_t> phase_{0};

	void release(std::unique_lock<std::mutex> &lk, uint32_t p)
	{
		last_arrivals_ = arrived_;
		arrived_ = 0;
		phase_.store(p + 1, std::memory_order_release);
		lk.unlock();
#ifdef __linux__
		syscall(SYS_futex, &phase_, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
#endif
	}
	void wait(uint32_t p)   /* until woken, or for about a second */
	{
#ifdef __linux__
		struct timespec second = {1, 0};
		syscall(SYS_futex, &phase_, FUTEX_WAIT_PRIVATE, p, &second, NULL, 0);
#else
		std::this_thread::sleep_for(std::chrono::microseconds(50));
#endif
	}
};

/* ---- blocks and threads --------------------------------------------------- */

/* One block in flight: its barriers and shared memory. */
struct emu_block {
	emu_barrier bar;
	std::vector<std::unique_ptr<emu_barrier>> warp_bar;
	std::vector<int> warp_size;
	std::vector<uint64_t> shfl;                      /* [warp][2][32] exchange slots */
	std::vector<uint32_t> mma;                       /* [warp][2][32][6] mma fragments */
	std::vector<uint4> dyn;                          /* dynamic shared memory */
	size_t dyn_bytes = 0, smem_limit = 0;            /* static + dynamic at most */
	std::mutex mu;                                   /* static shared memory: */
	std::map<const void *, std::vector<uint4>> stat; /*   one per declaration */
	size_t stat_bytes = 0;
};

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
inline thread_local emu_block *emu_cur;
inline thread_local unsigned emu_tid;       /* linear thread index in the block */
inline thread_local unsigned emu_shfl_n;    /* this thread's shuffles (double buffering) */
inline thread_local unsigned emu_mma_n;     /* this thread's mma (double buffering) */

static const uint32_t EMU_NAN_FILL = 0x7fc07fc0u;

static inline void emu_nan_fill(std::vector<uint4> &v, size_t bytes)
{
	v.assign((bytes + 15) / 16, uint4{EMU_NAN_FILL, EMU_NAN_FILL, EMU_NAN_FILL, EMU_NAN_FILL});
}

#define __syncthreads() emu_syncthreads(__FILE__, __LINE__)
static inline void emu_syncthreads(const char *file, int line)
{
	emu_stat.barriers.fetch_add(1, std::memory_order_relaxed);
	emu_cur->bar.arrive_and_wait(file, line);
}

/* Lane l gets the value of lane l ^ mask (within segments of width). The
 * slots are double-buffered: a lane cannot write a slot again before every
 * lane has passed the next shuffle's barrier, and so has read it. */
#define __shfl_xor_sync(...) emu_shfl_xor(__FILE__, __LINE__, __VA_ARGS__)
template <typename T>
static inline T emu_shfl_xor(const char *file, int line, unsigned mask, T v, int lane_mask,
			     int width = 32)
{
	static_assert(sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
	emu_block *b = emu_cur;
	unsigned warp = emu_tid / 32, lane = emu_tid % 32;
	int size = b->warp_size[warp];
	unsigned full = size == 32 ? 0xffffffffu : (1u << size) - 1;
	if (mask != full)
		emu_die("__shfl_xor_sync: the mask is not the whole warp", file, line);
	emu_stat.shuffles.fetch_add(1, std::memory_order_relaxed);
	uint64_t *slot = &b->shfl[(warp * 2 + (emu_shfl_n++ & 1)) * 32];
	uint64_t bits = 0;
	memcpy(&bits, &v, sizeof v);
	slot[lane] = bits;
	b->warp_bar[warp]->arrive_and_wait(file, line);
	if (b->warp_bar[warp]->last_arrivals() != size)
		emu_die("__shfl_xor_sync: a lane of the warp has exited", file, line);
	unsigned src = lane ^ (unsigned)lane_mask;
	if (src / (unsigned)width != lane / (unsigned)width || (int)src >= size)
		src = lane;
	T r;
	memcpy(&r, &slot[src], sizeof r);
	return r;
}

/* kernels/cuda/mma.cuh's ft_mma_bf16 (mma.sync m16n8k16, bf16 in, fp32
 * accumulate; the fragment layout is in mma.cuh): the warp's lanes put their
 * fragments in an exchange, meet at the warp's barrier, and each computes
 * its own four outputs. The products of bf16 values are exact in double and
 * so is their sum of 16; C is added and the result rounded to float once,
 * where the tensor cores may truncate on the way: a bf16-level tolerance
 * covers both. Every lane of a full warp must take part. */
#define ft_mma_bf16(...) emu_mma_bf16(__FILE__, __LINE__, __VA_ARGS__)
static inline float emu_bf16_half(uint32_t w, int hi)
{
	uint32_t bits = (hi ? w >> 16 : w & 0xffffu) << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static inline void emu_mma_bf16(const char *file, int line, float (&c)[4], const uint32_t (&a)[4],
				const uint32_t (&b)[2])
{
	emu_block *blk = emu_cur;
	unsigned warp = emu_tid / 32, lane = emu_tid % 32;
	if (blk->warp_size[warp] != 32)
		emu_die("mma: the warp is not full", file, line);
	emu_stat.shuffles.fetch_add(1, std::memory_order_relaxed);
	uint32_t *slot = &blk->mma[(warp * 2 + (emu_mma_n++ & 1)) * 32 * 6];
	memcpy(&slot[lane * 6], a, 16);
	memcpy(&slot[lane * 6 + 4], b, 8);
	blk->warp_bar[warp]->arrive_and_wait(file, line);
	if (blk->warp_bar[warp]->last_arrivals() != 32)
		emu_die("mma: a lane of the warp has exited", file, line);
	/* A[r][k] is in lane 4 (r % 8) + (k % 8) / 2, register (r >= 8) + 2 (k >= 8);
	 * B[k][n] in lane 4 n + (k % 8) / 2, register 4 + (k >= 8); half k % 2 */
	const unsigned g = lane / 4, t = lane % 4;
	for (int i = 0; i < 4; i++) {
		const unsigned r = g + 8 * (i / 2), n = 2 * t + i % 2;
		double sum = 0.0;
		for (unsigned k = 0; k < 16; k++) {
			const uint32_t *la = &slot[(4 * (r % 8) + (k % 8) / 2) * 6];
			const uint32_t *lb = &slot[(4 * n + (k % 8) / 2) * 6];
			sum += (double)emu_bf16_half(la[(r >= 8) + 2 * (k >= 8)], k % 2) *
			       (double)emu_bf16_half(lb[4 + (k >= 8)], k % 2);
		}
		c[i] = (float)(sum + (double)c[i]);
	}
}

/* extern __shared__ T name[]: the block's dynamic shared memory */
static inline void *emu_dynamic_shared(void) { return emu_cur->dyn.data(); }

/* __shared__ T name[...]: storage for one declaration (key: a static local
 * of the declaring function, so one per template instantiation too), made
 * and NaN-filled when the block first reaches it. */
template <typename T> static inline T &emu_static_shared(const void *key, const char *file, int line)
{
	emu_block *b = emu_cur;
	std::lock_guard<std::mutex> g(b->mu);
	auto it = b->stat.find(key);
	if (it == b->stat.end()) {
		b->stat_bytes += sizeof(T);
		if (b->stat_bytes > EMU_SMEM_DEFAULT || b->stat_bytes + b->dyn_bytes > b->smem_limit)
			emu_die("too much shared memory (static and dynamic together)", file, line);
		it = b->stat.emplace(key, std::vector<uint4>()).first;
		emu_nan_fill(it->second, sizeof(T));
	}
	return *(T *)it->second.data();
}

/* a read-only load; misaligned, it faults on the GPU */
#define __ldg(p) emu_ldg(p, __FILE__, __LINE__)
template <typename T> static inline T emu_ldg(const T *p, const char *file, int line)
{
	if ((uintptr_t)p % alignof(T))
		emu_die("misaligned __ldg", file, line);
	emu_stat.ldg_loads.fetch_add(1, std::memory_order_relaxed);
	return *p;
}

/* ---- launches ------------------------------------------------------------- */

/* <<<grid, block, smem, stream>>>, as prep.py rewrites it */
struct emu_config {
	dim3 grid, block;
	size_t smem;
	emu_config(dim3 g, dim3 b, size_t s = 0, cudaStream_t = 0) : grid(g), block(b), smem(s) {}
};

/* Blocks run side by side: this many groups of blockDim threads, one per
 * CPU (at most 4; 0 until the first launch). */
inline unsigned emu_groups = 0;

/* Pin the calling thread to the k-th allowed CPU (round robin). A launch
 * puts warp w of group g on CPU g + w: a warp's shuffles then wake threads
 * on its own CPU only, which costs a tenth of a wake-up across CPUs in a
 * virtual machine, and one block still runs on every CPU. */
static inline void emu_pin(unsigned k)
{
#ifdef __linux__
	cpu_set_t allowed, one;
	if (sched_getaffinity(0, sizeof allowed, &allowed))
		return;
	int n = CPU_COUNT(&allowed), left = (int)(k % (unsigned)n);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &allowed) && left-- == 0) {
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			sched_setaffinity(0, sizeof one, &one);
			return;
		}
#endif
}

static inline bool emu_bad_launch(const char *why)
{
	snprintf(emu_error_reason, sizeof emu_error_reason, "invalid launch: %s", why);
	emu_last_error = cudaErrorInvalidConfiguration;
	return true;
}

/* 0 and the shared memory the block may use, or an error (the kernel is
 * not run, cudaGetLastError reports it) */
static inline bool emu_check_launch(const emu_config &c, const void *kernel, size_t *smem_limit)
{
	unsigned long long nt = (unsigned long long)c.block.x * c.block.y * c.block.z;
	if (!c.grid.x || !c.grid.y || !c.grid.z || !nt)
		return emu_bad_launch("empty grid or block");
	if (c.grid.x > 0x7fffffffu || c.grid.y > 65535 || c.grid.z > 65535)
		return emu_bad_launch("grid too large");
	if (nt > EMU_THREADS_MAX || c.block.z > 64)
		return emu_bad_launch("too many threads per block");
	/* 48 KB for static and dynamic together, unless the kernel opted in to
	 * more dynamic memory (then up to the device's limit in all) */
	size_t dyn_limit = EMU_SMEM_DEFAULT;
	*smem_limit = EMU_SMEM_DEFAULT;
	{
		std::lock_guard<std::mutex> g(emu_attr_mu);
		auto it = emu_smem_optin.find(kernel);
		if (it != emu_smem_optin.end() && it->second > dyn_limit) {
			dyn_limit = it->second;
			*smem_limit = EMU_SMEM_MAX;
		}
	}
	if (c.smem > dyn_limit)
		return emu_bad_launch("dynamic shared memory over the limit (cudaFuncSetAttribute?)");
	return false;
}

/* Run kernel(args) on every thread of every block. The arguments are
 * converted to the kernel's parameter types once, as a launch copies them. */
template <typename... P, typename... A>
static void emu_launch(const emu_config &c, void (*kernel)(P...), A &&...args)
{
	size_t smem_limit;
	if (emu_check_launch(c, (const void *)kernel, &smem_limit))
		return;
	emu_stat.launches++;
	const std::tuple<P...> params(std::forward<A>(args)...);
	const unsigned nt = c.block.x * c.block.y * c.block.z;
	const unsigned long long nblocks = (unsigned long long)c.grid.x * c.grid.y * c.grid.z;
	const unsigned nwarps = (nt + 31) / 32;
	if (!emu_groups) {
		unsigned cpus = std::thread::hardware_concurrency();
#ifdef __linux__
		cpu_set_t allowed;
		if (!sched_getaffinity(0, sizeof allowed, &allowed))
			cpus = (unsigned)CPU_COUNT(&allowed);
#endif
		emu_groups = cpus < 1 ? 1 : cpus > 4 ? 4 : cpus;
	}
	const unsigned ngroups = nblocks < emu_groups ? (unsigned)nblocks : emu_groups;
	std::atomic<unsigned long long> next{0};

	struct group {
		emu_barrier start;   /* the group's threads between two blocks */
		emu_block block;
		unsigned long long index;
	};
	std::vector<std::unique_ptr<group>> groups;
	for (unsigned g = 0; g < ngroups; g++) {
		groups.emplace_back(new group);
		group &gr = *groups.back();
		gr.start.reset((int)nt);
		for (unsigned w = 0; w < nwarps; w++) {
			gr.block.warp_bar.emplace_back(new emu_barrier);
			gr.block.warp_size.push_back((int)(nt - w * 32 < 32 ? nt - w * 32 : 32));
		}
		gr.block.shfl.assign((size_t)nwarps * 64, 0);
		gr.block.mma.assign((size_t)nwarps * 64 * 6, 0);
		gr.block.dyn_bytes = c.smem;
		gr.block.smem_limit = smem_limit;
	}
	/* a group's next block, set up by the last of its threads to finish the
	 * previous one (or here, for the first) */
	auto setup = [&](group &gr) {
		gr.index = next.fetch_add(1);
		if (gr.index >= nblocks)
			return;
		emu_stat.blocks++;
		emu_block &b = gr.block;
		b.bar.reset((int)nt);
		for (unsigned w = 0; w < nwarps; w++)
			b.warp_bar[w]->reset(b.warp_size[w]);
		emu_nan_fill(b.dyn, c.smem);
		b.stat.clear();
		b.stat_bytes = 0;
	};
	std::vector<std::thread> threads;
	for (unsigned g = 0; g < ngroups; g++) {
		group &gr = *groups[g];
		setup(gr);
		for (unsigned t = 0; t < nt; t++)
			threads.emplace_back([&, g, t] {
				emu_pin(g + t / 32);
				emu_tid = t;
				threadIdx = dim3(t % c.block.x, t / c.block.x % c.block.y,
						 t / (c.block.x * c.block.y));
				blockDim = c.block;
				gridDim = c.grid;
				emu_cur = &gr.block;
				unsigned warp = t / 32;
				while (gr.index < nblocks) {
					unsigned long long i = gr.index;
					blockIdx = dim3((unsigned)(i % c.grid.x),
							(unsigned)(i / c.grid.x % c.grid.y),
							(unsigned)(i / ((unsigned long long)c.grid.x * c.grid.y)));
					emu_shfl_n = 0;
					emu_mma_n = 0;
					std::apply(kernel, params);
					gr.block.warp_bar[warp]->arrive_and_drop();
					gr.block.bar.arrive_and_drop();
					gr.start.arrive_and_wait(__FILE__, __LINE__, [&] { setup(gr); });
				}
			});
	}
	for (auto &th : threads)
		th.join();
}

#endif
