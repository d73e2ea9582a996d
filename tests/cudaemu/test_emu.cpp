/* test_emu: the CUDA kernels, run on the CPU by the emulator (emu.h) after
 * prep.py's rewrite, against the CPU kernels (kernels/cpu, linked), so that
 * every `make test` checks the kernels' logic without a GPU: indexing,
 * masking, tiling, barriers, shared memory, reductions, rounding. Every op
 * of kernels/cuda/cuda.cuh but the cuBLASLt GEMMs and ops_cuda.cu's memory
 * functions, and the decode ops of decode.cu, each on several shapes.
 *
 * Inputs are random and rounded to bf16, so both sides see the same
 * values; CUDA outputs start as NaN and gradients as random values, so an
 * element a kernel forgets to write, or overwrites instead of adding to,
 * shows up. Where the CUDA kernel promises the CPU's arithmetic (the
 * elementwise ops, rmsnorm, rope, AdamW, dropout's mask) the results must
 * be the CPU's bit for bit, or within an ulp where the order of a double
 * sum may differ; elsewhere (attention, cross-entropy, the decode ops)
 * within tolerances set by bf16 (2^-8 relative) and fp32 sums. Batch
 * invariance and the equality of vector and scalar paths are bit for bit.
 *
 * One line per check ("ok   what" or "FAIL file:line: what"), then
 * "N passed, M failed". Usage: test_emu [small] [-v] [SECTION...]: small
 * runs smaller shapes (for the sanitizers), -v prints each section's time
 * on stderr, and SECTIONs (names as -v prints them) run only those. */
#include "emu.h"

#include <stdarg.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "cuda.cuh"
#include "emu_have.h"
extern "C" {
#include "cpu/cpu.h"
#include "decode.h"
}
#include "testhelp.h"

/* ---- what the kernels need from ops_cuda.cu ------------------------------- */

cudaStream_t ft_cuda_stream;
int ft_cuda_sm_count = 132;

void ft_cuda_fail(const char *what, const char *file, int line, const char *msg)
{
	printf("FAIL %s:%d: %s: %s\n", file, line, what, msg);
	test_failed++;
	test_report();
	exit(1);
}

/* "valid until the next call": a fresh buffer every call, 0xff bytes (NaN
 * as float and double), so a kernel reading what it did not write sees NaN */
static std::vector<unsigned char> scratch;
void *ft_cuda_scratch(size_t bytes)
{
	scratch.assign(bytes ? bytes : 1, 0xff);
	return scratch.data();
}

/* ---- checks and values ---------------------------------------------------- */

static bool SMALL;

static void check_at(const char *file, int line, bool ok, const std::string &what)
{
	if (ok) {
		test_passed++;
		printf("ok   %s\n", what.c_str());
	} else {
		test_failed++;
		printf("FAIL %s:%d: %s\n", file, line, what.c_str());
	}
	fflush(stdout);
}
#define check(ok, what) check_at(__FILE__, __LINE__, (ok), (what))

static std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static std::string fmt(const char *f, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, f);
	vsnprintf(b, sizeof b, f, ap);
	va_end(ap);
	return b;
}

typedef __nv_bfloat16 bf16;
static const bf16 BNAN = {0x7fc0};

static std::mt19937_64 rng(20240607);
static float urand(float a, float b) { return std::uniform_real_distribution<float>(a, b)(rng); }
static bf16 B(float x) { return __float2bfloat16_rn(x); }
static float F(bf16 b) { return __bfloat162float(b); }
static float bfr(float x) { return F(B(x)); }
static uint32_t fbits(float f) { return __float_as_uint(f); }

/* n values in [a, b), rounded to bf16 unless round is false */
static std::vector<float> rvec(size_t n, float a, float b, bool round = true)
{
	std::vector<float> v(n);
	for (auto &x : v)
		x = round ? bfr(urand(a, b)) : urand(a, b);
	return v;
}
static std::vector<bf16> tobf(const std::vector<float> &v)
{
	std::vector<bf16> o(v.size());
	for (size_t i = 0; i < v.size(); i++)
		o[i] = B(v[i]);
	return o;
}
static std::vector<float> fromb(const bf16 *p, size_t n)
{
	std::vector<float> o(n);
	for (size_t i = 0; i < n; i++)
		o[i] = F(p[i]);
	return o;
}
static bool same_bytes(const void *a, const void *b, size_t n) { return !memcmp(a, b, n); }

/* CUDA's bf16 (or fp32) results against the CPU's fp32 ones */
struct diff {
	size_t n = 0, mism = 0, nonfin = 0;
	double maxulp = 0, rel_l2 = 0;
	std::string str() const
	{
		return fmt("%zu/%zu differ, max %.3g bf16 ulp, nonfinite %zu, rel L2 %.2g", mism, n,
			   maxulp, nonfin, rel_l2);
	}
};
/* mism: got != bf16(ref); maxulp: |got - ref| in bf16 spacings at |ref| */
static diff cmp_bf(const bf16 *got, const float *ref, size_t n)
{
	diff r;
	r.n = n;
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		float g = F(got[i]);
		if (!std::isfinite(g) && std::isfinite(ref[i]))
			r.nonfin++;
		if (B(ref[i]).bits != got[i].bits)
			r.mism++;
		double d = (double)g - ref[i], a = fabs(ref[i]);
		num += d * d;
		den += a * a;
		int e;
		frexp(a, &e);
		double ulp = a > 0 ? ldexp(1.0, e - 8) : 0;
		r.maxulp = std::max(r.maxulp, ulp > 0 ? fabs(d) / ulp : d != 0 ? INFINITY : 0.0);
		if (std::isnan(g))
			r.maxulp = INFINITY;
	}
	r.rel_l2 = den > 0 ? sqrt(num / den) : sqrt(num);
	return r;
}
/* mism: bits differ */
static diff cmp_f(const float *got, const float *ref, size_t n)
{
	diff r;
	r.n = n;
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		if (!std::isfinite(got[i]) && std::isfinite(ref[i]))
			r.nonfin++;
		if (fbits(got[i]) != fbits(ref[i]))
			r.mism++;
		double d = (double)got[i] - ref[i];
		num += d * d;
		den += (double)ref[i] * ref[i];
	}
	r.rel_l2 = den > 0 ? sqrt(num / den) : sqrt(num);
	return r;
}

/* |got - ref| <= rtol |ref| + atol max|ref| everywhere: the worst ratio */
static double worst_ratio(const bf16 *got, const float *ref, size_t n, double rtol, double atol)
{
	double mx = 0, worst = 0;
	for (size_t i = 0; i < n; i++)
		mx = std::max(mx, (double)fabsf(ref[i]));
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)F(got[i]) - ref[i]);
		double tol = rtol * fabsf(ref[i]) + atol * mx + 1e-30;
		worst = std::max(worst, std::isnan(d) ? INFINITY : d / tol);
	}
	return worst;
}

/* ---- empty shapes ---------------------------------------------------------- */

static void test_empty()
{
	float f = 0;
	bf16 b = {0};
	int32_t i0 = 0;
	long long l0 = emu_stat.launches;
	ft_cuda_embedding_forward(&b, &i0, &b, 0, 4);
	ft_cuda_embedding_backward(&f, &b, &i0, 0, 4, 1);
	ft_cuda_rmsnorm_forward(&b, &f, &b, &b, 0, 4, 1e-5f);
	ft_cuda_rmsnorm_backward(&b, &f, &b, &b, &b, &f, 0, 4);
	ft_cuda_rope_forward(&b, &i0, &f, 0, 2, 8);
	ft_cuda_rope_backward(&b, &i0, &f, 0, 2, 8);
	ft_cuda_swiglu_forward(&b, &b, &b, 0);
	ft_cuda_swiglu_backward(&b, &b, &b, &b, &b, 0);
	ft_cuda_crossentropy_forward(&f, &b, &i0, 0, 5);
	ft_cuda_crossentropy_backward(&b, &b, &i0, 0, 5, 1);
	ft_cuda_add(&b, &b, &b, 0);
	ft_cuda_accumulate(&b, &b, 0);
	ft_cuda_dropout_forward(&b, &b, 0, 0.1, 1, 1);
	ft_cuda_dropout_backward(&b, &b, 0, 0.1, 1, 1);
	ft_cuda_to_x(&b, &f, 0);
	ft_cuda_from_x(&f, &b, 0);
	ft_cuda_adamw(&f, &f, &f, &f, 0, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 1, &b);
	ft_cuda_scale(&f, 0, 2);
	ft_cuda_attention_forward(&b, &f, &b, &b, &b, &i0, 0, 5, 2, 1, 8);
	ft_cuda_attention_backward(&b, &b, &b, &b, &b, &f, &b, &b, &b, &i0, 2, 0, 2, 1, 8);
	double s = ft_cuda_sumsq(&f, 0);
	int nf = ft_cuda_nonfinite(&f, 0);
#if EMU_HAVE_DECODE
	ft_decode_ops_cuda()->matmul_rows(&f, &b, &b, NULL, 0, 8, 1);
	ft_decode_ops_cuda()->attention_cached(&b, &b, NULL, NULL, &i0, 0, 2, 1, 8);
#endif
	check(s == 0 && nf == 0 && emu_stat.launches == l0 && f == 0 && b.bits == 0,
	      fmt("empty shapes (N = 0, n = 0, T = 0): no launch (%lld), nothing written, "
		  "sumsq 0, nonfinite 0", emu_stat.launches - l0));
}

/* ---- conversions ----------------------------------------------------------- */

static uint16_t ref_rne(float f)   /* round to nearest even, not for NaN */
{
	uint32_t u = fbits(f), lo = u & 0xffff, hi = u >> 16;
	if (lo > 0x8000 || (lo == 0x8000 && (hi & 1)))
		hi++;
	return (uint16_t)hi;
}

static void test_convert()
{
	/* every bf16 pattern with low halves below, at and above the tie */
	std::vector<float> src;
	for (uint32_t hi = 0; hi < 65536; hi += SMALL ? 31 : 3)
		for (uint32_t lo : {0u, 1u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu})
			src.push_back(__uint_as_float(hi << 16 | lo));
	size_t n = src.size(), bad = 0, nanbad = 0;
	std::vector<bf16> x(n, BNAN);
	ft_cuda_to_x(x.data(), src.data(), n);
	for (size_t i = 0; i < n; i++) {
		if (std::isnan(src[i]))
			nanbad += !std::isnan(F(x[i]));
		else
			bad += x[i].bits != ref_rne(src[i]);
	}
	check(bad == 0 && nanbad == 0,
	      fmt("to_x rounds to nearest even: ties, overflow to inf, denormals, NaN "
		  "(%zu values: %zu wrong, %zu NaN not NaN)", n, bad, nanbad));
	std::vector<float> ties = {__uint_as_float(0x3f808000u), __uint_as_float(0x3f818000u),
				   __uint_as_float(0xbf808000u), __uint_as_float(0xbf818000u)};
	std::vector<bf16> tx(4, BNAN);
	ft_cuda_to_x(tx.data(), ties.data(), 4);
	check(tx[0].bits == 0x3f80 && tx[1].bits == 0x3f82 && tx[2].bits == 0xbf80 &&
	      tx[3].bits == 0xbf82, "to_x ties go to even (1.00390625 -> 1, 1.01171875 -> 1.015625)");

	std::vector<bf16> all(65536 + 3);
	for (size_t i = 0; i < all.size(); i++)
		all[i].bits = (uint16_t)i;
	std::vector<float> back(all.size(), NAN);
	ft_cuda_from_x(back.data(), all.data(), all.size());
	size_t fb = 0;
	for (size_t i = 0; i < all.size(); i++)
		fb += fbits(back[i]) != (uint32_t)all[i].bits << 16;
	check(fb == 0, fmt("from_x exact for all 65536 bf16 patterns (%zu wrong)", fb));

	unsigned save = emu_max_blocks;
	emu_max_blocks = 3;
	std::vector<float> s2 = rvec(5000, -3, 3, false), b3(5000, NAN);
	std::vector<bf16> x2(5000, BNAN);
	ft_cuda_to_x(x2.data(), s2.data(), 5000);
	ft_cuda_from_x(b3.data(), x2.data(), 5000);
	emu_max_blocks = save;
	size_t gb = 0;
	for (size_t i = 0; i < 5000; i++)
		gb += x2[i].bits != ref_rne(s2[i]) || b3[i] != F(x2[i]);
	check(gb == 0, fmt("to_x, from_x with grid-stride loops (3 blocks, n = 5000): %zu wrong", gb));
}

/* ---- embedding ------------------------------------------------------------- */

static void test_embedding(int N, int C, int V)
{
	std::vector<float> table = rvec((size_t)V * C, -1, 1);
	std::vector<int32_t> tok(N);
	for (int n = 0; n < N; n++)   /* the first and last ids, and repeats */
		tok[n] = n == 0 ? V - 1 : n == 1 ? 0 : (int)(rng() % (n % 3 ? V : std::min(V, 3)));
	std::vector<float> out_c((size_t)N * C);
	ft_cpu_embedding_forward(out_c.data(), tok.data(), table.data(), N, C);
	std::vector<bf16> tb = tobf(table), out((size_t)N * C, BNAN);
	ft_cuda_embedding_forward(out.data(), tok.data(), tb.data(), N, C);
	diff r = cmp_bf(out.data(), out_c.data(), out.size());
	check(r.mism == 0, fmt("embedding_forward N=%d C=%d V=%d: %s", N, C, V, r.str().c_str()));

	std::vector<float> dout = rvec((size_t)N * C, -1, 1), dt0 = rvec((size_t)V * C, -1, 1, false);
	std::vector<float> dt_c = dt0, dt = dt0;
	ft_cpu_embedding_backward(dt_c.data(), dout.data(), tok.data(), N, C, V);
	std::vector<bf16> db = tobf(dout);
	ft_cuda_embedding_backward(dt.data(), db.data(), tok.data(), N, C, V);
	ft_cuda_embedding_backward(NULL, db.data(), tok.data(), N, C, V);
	diff r2 = cmp_f(dt.data(), dt_c.data(), dt.size());
	check(r2.mism == 0, fmt("embedding_backward N=%d C=%d V=%d (adds, repeated ids in order): "
				"%s", N, C, V, r2.str().c_str()));
}

/* ---- rmsnorm --------------------------------------------------------------- */

static void test_rmsnorm(int N, int C, float eps, float amp)
{
	std::vector<float> inp = rvec((size_t)N * C, -amp, amp), w = rvec(C, 0.5f, 1.5f);
	std::vector<float> out_c((size_t)N * C), rstd_c(N);
	ft_cpu_rmsnorm_forward(out_c.data(), rstd_c.data(), inp.data(), w.data(), N, C, eps);
	std::vector<bf16> ib = tobf(inp), wb = tobf(w), out((size_t)N * C, BNAN);
	std::vector<float> rstd(N, NAN);
	ft_cuda_rmsnorm_forward(out.data(), rstd.data(), ib.data(), wb.data(), N, C, eps);
	diff r = cmp_bf(out.data(), out_c.data(), out.size());
	diff rr = cmp_f(rstd.data(), rstd_c.data(), N);
	check(r.mism == 0 && rr.mism == 0, fmt("rmsnorm_forward N=%d C=%d: out %s; rstd %zu differ",
					     N, C, r.str().c_str(), rr.mism));

	/* backward from the CPU's rstd; dinp within an ulp (nvcc would fuse
	 * r*w*dy - k*x anyway), dweight within the order of a double sum */
	std::vector<float> dout = rvec((size_t)N * C, -1, 1), dx0 = rvec((size_t)N * C, -0.5, 0.5);
	std::vector<float> dw0 = rvec(C, -1, 1, false), dx_c = dx0, dw_c = dw0, dw = dw0;
	ft_cpu_rmsnorm_backward(dx_c.data(), dw_c.data(), dout.data(), inp.data(), w.data(),
				rstd_c.data(), N, C);
	std::vector<bf16> dob = tobf(dout), dx = tobf(dx0);
	ft_cuda_rmsnorm_backward(dx.data(), dw.data(), dob.data(), ib.data(), wb.data(),
				 rstd_c.data(), N, C);
	diff rx = cmp_bf(dx.data(), dx_c.data(), dx.size());
	diff rw = cmp_f(dw.data(), dw_c.data(), C);
	int rows = std::max(16, (N + 255) / 256);
	check(rx.maxulp <= 1 && rx.nonfin == 0 && rw.rel_l2 < 1e-6 && rw.nonfin == 0,
	      fmt("rmsnorm_backward N=%d C=%d (%d chunks of %d rows): dinp %s; dweight %s", N, C,
		  (N + rows - 1) / rows, rows, rx.str().c_str(), rw.str().c_str()));

	std::vector<float> dw2 = dw0;
	std::vector<bf16> dx2 = tobf(dx0);
	ft_cuda_rmsnorm_backward(NULL, dw2.data(), dob.data(), ib.data(), wb.data(), rstd_c.data(), N, C);
	ft_cuda_rmsnorm_backward(dx2.data(), NULL, dob.data(), ib.data(), wb.data(), rstd_c.data(), N, C);
	ft_cuda_rmsnorm_backward(NULL, NULL, dob.data(), ib.data(), wb.data(), rstd_c.data(), N, C);
	check(same_bytes(dw2.data(), dw.data(), C * 4) && same_bytes(dx2.data(), dx.data(), dx.size() * 2),
	      fmt("rmsnorm_backward N=%d C=%d: NULL dinp or dweight, the other the same bits", N, C));
}

/* dweight alone over many rows: chunks of more than DW_MIN_ROWS rows, the
 * last one partial */
static void test_rmsnorm_dweight(int N, int C)
{
	std::vector<float> inp = rvec((size_t)N * C, -2, 2), w = rvec(C, 0.5f, 1.5f);
	std::vector<float> rstd = rvec(N, 0.3f, 3, false), dout = rvec((size_t)N * C, -1, 1);
	std::vector<float> dw0 = rvec(C, -1, 1, false), dw_c = dw0, dw = dw0;
	ft_cpu_rmsnorm_backward(NULL, dw_c.data(), dout.data(), inp.data(), w.data(), rstd.data(), N, C);
	std::vector<bf16> ib = tobf(inp), wb = tobf(w), dob = tobf(dout);
	ft_cuda_rmsnorm_backward(NULL, dw.data(), dob.data(), ib.data(), wb.data(), rstd.data(), N, C);
	diff rw = cmp_f(dw.data(), dw_c.data(), C);
	int rows = std::max(16, (N + 255) / 256), chunks = (N + rows - 1) / rows;
	check(rw.rel_l2 < 1e-6 && rw.nonfin == 0,
	      fmt("rmsnorm_backward dweight N=%d C=%d (%d chunks of %d rows, the last %d): %s", N,
		  C, chunks, rows, N - (chunks - 1) * rows, rw.str().c_str()));
}

/* ---- rope ------------------------------------------------------------------ */

static void test_rope(int N, int H, int D, bool llama3)
{
	struct ft_rope rope;
	struct ft_rope_params p = {};
	p.type = llama3 ? FT_ROPE_LLAMA3 : FT_ROPE_DEFAULT;
	p.theta = llama3 ? 500000.0 : 10000.0;
	p.factor = 8;
	p.low_freq_factor = 1;
	p.high_freq_factor = 4;
	p.original_max_position_embeddings = 8192;
	if (ft_rope_init(&rope, D, &p)) {
		check(false, "ft_rope_init");
		return;
	}
	const int maxpos = 131071;
	std::vector<int32_t> pos(N);
	for (int n = 0; n < N; n++)
		pos[n] = n == 0 ? 0 : n == 1 ? maxpos : (int)(rng() % (maxpos + 1));
	std::vector<float> x = rvec((size_t)N * H * D, -2, 2), xc = x;
	ft_cpu_rope_forward(xc.data(), pos.data(), rope.inv_freq, N, H, D);
	std::vector<bf16> xb = tobf(x);
	ft_cuda_rope_forward(xb.data(), pos.data(), rope.inv_freq, N, H, D);
	diff r = cmp_bf(xb.data(), xc.data(), xb.size());
	std::vector<float> g = rvec((size_t)N * H * D, -1, 1), gc = g;
	ft_cpu_rope_backward(gc.data(), pos.data(), rope.inv_freq, N, H, D);
	std::vector<bf16> gb = tobf(g);
	ft_cuda_rope_backward(gb.data(), pos.data(), rope.inv_freq, N, H, D);
	diff r2 = cmp_bf(gb.data(), gc.data(), gb.size());
	check(r.mism == 0 && r2.mism == 0,
	      fmt("rope N=%d H=%d D=%d %s, positions up to %d: forward %s; backward %s", N, H, D,
		  llama3 ? "llama3" : "default", maxpos, r.str().c_str(), r2.str().c_str()));
	ft_rope_release(&rope);
}

/* ---- swiglu ---------------------------------------------------------------- */

static void test_swiglu(size_t n)
{
	std::vector<float> gate = rvec(n, -8, 8), up = rvec(n, -2, 2), out_c(n);
	if (n > 2) {
		gate[0] = -100;
		gate[1] = 100;
		gate[2] = 0;
	}
	ft_cpu_swiglu_forward(out_c.data(), gate.data(), up.data(), n);
	std::vector<bf16> gb = tobf(gate), ub = tobf(up), out(n, BNAN), inpl = gb;
	ft_cuda_swiglu_forward(out.data(), gb.data(), ub.data(), n);
	ft_cuda_swiglu_forward(inpl.data(), inpl.data(), ub.data(), n);   /* out == gate */
	diff r = cmp_bf(out.data(), out_c.data(), n);
	check(r.mism == 0 && same_bytes(inpl.data(), out.data(), n * 2),
	      fmt("swiglu_forward n=%zu: %s; in place the same", n, r.str().c_str()));

	std::vector<float> dout = rvec(n, -1, 1), dg0 = rvec(n, -1, 1), du0 = rvec(n, -1, 1);
	std::vector<float> dg_c = dg0, du_c = du0;
	ft_cpu_swiglu_backward(dg_c.data(), du_c.data(), dout.data(), gate.data(), up.data(), n);
	std::vector<bf16> db = tobf(dout), dg = tobf(dg0), du = tobf(du0);
	ft_cuda_swiglu_backward(dg.data(), du.data(), db.data(), gb.data(), ub.data(), n);
	diff rg = cmp_bf(dg.data(), dg_c.data(), n), ru = cmp_bf(du.data(), du_c.data(), n);
	std::vector<bf16> dg2 = tobf(dg0), du2 = tobf(du0);
	ft_cuda_swiglu_backward(dg2.data(), NULL, db.data(), gb.data(), ub.data(), n);
	ft_cuda_swiglu_backward(NULL, du2.data(), db.data(), gb.data(), ub.data(), n);
	ft_cuda_swiglu_backward(NULL, NULL, db.data(), gb.data(), ub.data(), n);
	bool nul = same_bytes(dg2.data(), dg.data(), n * 2) && same_bytes(du2.data(), du.data(), n * 2);
	check(rg.mism == 0 && ru.mism == 0 && nul,
	      fmt("swiglu_backward n=%zu: dgate %s; dup %s; NULL gradients skipped: %d", n,
		  rg.str().c_str(), ru.str().c_str(), nul));
}

/* ---- cross-entropy --------------------------------------------------------- */

static void test_crossentropy(int N, int V, float amp)
{
	std::vector<float> logits = rvec((size_t)N * V, -amp, amp);
	if (V > 5)
		logits[5] = 4 * amp;
	std::vector<int32_t> tg(N);   /* the last and first ids, untrained rows */
	for (int n = 0; n < N; n++)
		tg[n] = n % 4 == 0 ? V - 1 : n % 4 == 1 ? -1 : n % 4 == 2 ? 0 : (int)(rng() % V);
	std::vector<float> loss_c(N), loss(N, NAN);
	ft_cpu_crossentropy_forward(loss_c.data(), logits.data(), tg.data(), N, V);
	std::vector<bf16> lb = tobf(logits);
	ft_cuda_crossentropy_forward(loss.data(), lb.data(), tg.data(), N, V);
	double worst = 0;
	bool zero = true;
	for (int n = 0; n < N; n++) {
		if (tg[n] < 0)
			zero = zero && fbits(loss[n]) == 0;
		else
			worst = std::max(worst, std::isfinite(loss[n]) ?
				fabs((double)loss[n] - loss_c[n]) / std::max(1.0, fabs((double)loss_c[n])) : INFINITY);
	}
	check(worst < 1e-5 && zero, fmt("crossentropy_forward N=%d V=%d: rel err %.2g, untrained rows "
					"0: %d", N, V, worst, zero));

	/* in place (as the trainer calls it) and into another buffer, one
	 * element off alignment: rows of odd V alternate between the paired
	 * and the scalar loads */
	float scale = 1.0f / 7;
	std::vector<float> d_c((size_t)N * V);
	ft_cpu_crossentropy_backward(d_c.data(), logits.data(), tg.data(), N, V, scale);
	std::vector<bf16> ip = lb, sep((size_t)N * V + 1, BNAN);
	ft_cuda_crossentropy_backward(ip.data(), ip.data(), tg.data(), N, V, scale);
	ft_cuda_crossentropy_backward(sep.data() + 1, lb.data(), tg.data(), N, V, scale);
	diff r = cmp_bf(ip.data(), d_c.data(), ip.size());
	bool same = same_bytes(sep.data() + 1, ip.data(), ip.size() * 2);
	bool zrow = true;
	for (int n = 0; n < N; n++)
		for (int i = 0; i < V && tg[n] < 0; i++)
			zrow = zrow && ip[(size_t)n * V + i].bits == 0;
	check(r.maxulp <= 2 && r.nonfin == 0 && same && zrow,
	      fmt("crossentropy_backward N=%d V=%d in place: %s; misaligned copy the same: %d; "
		  "untrained rows 0: %d", N, V, r.str().c_str(), same, zrow));
}

/* ---- add, accumulate, dropout ---------------------------------------------- */

static void test_add(size_t n)
{
	std::vector<float> a = rvec(n, -4, 4), b = rvec(n, -4, 4), oc(n), ac = a;
	ft_ops_cpu.add(oc.data(), a.data(), b.data(), n);
	ft_ops_cpu.accumulate(ac.data(), b.data(), n);
	std::vector<bf16> ab = tobf(a), bb = tobf(b), o(n, BNAN), ip = ab, acb = ab;
	ft_cuda_add(o.data(), ab.data(), bb.data(), n);
	ft_cuda_add(ip.data(), ip.data(), bb.data(), n);
	ft_cuda_accumulate(acb.data(), bb.data(), n);
	diff r = cmp_bf(o.data(), oc.data(), n), r2 = cmp_bf(acb.data(), ac.data(), n);
	check(r.mism == 0 && r2.mism == 0 && same_bytes(ip.data(), o.data(), n * 2),
	      fmt("add, accumulate n=%zu: add %s (in place the same); accumulate %s", n,
		  r.str().c_str(), r2.str().c_str()));
}

static void test_dropout(size_t n, double p, uint64_t seed, uint64_t site)
{
	std::vector<float> x = rvec(n, 0.5f, 2), oc(n);   /* no zeros: 0 means dropped */
	for (size_t i = 0; i < n; i += 2)
		x[i] = -x[i];
	ft_ops_cpu.dropout_forward(oc.data(), x.data(), n, p, seed, site);
	std::vector<bf16> xb = tobf(x), o(n, BNAN);
	ft_cuda_dropout_forward(o.data(), xb.data(), n, p, seed, site);
	size_t maskbad = 0, dropped = 0;
	for (size_t i = 0; i < n; i++) {
		dropped += oc[i] == 0;
		maskbad += (oc[i] == 0) != (F(o[i]) == 0);
	}
	diff r = cmp_bf(o.data(), oc.data(), n);
	std::vector<float> dout = rvec(n, -1, 1), dx0 = rvec(n, -1, 1), dxc = dx0;
	ft_ops_cpu.dropout_backward(dxc.data(), dout.data(), n, p, seed, site);
	std::vector<bf16> db = tobf(dout), dx = tobf(dx0);
	ft_cuda_dropout_backward(dx.data(), db.data(), n, p, seed, site);
	ft_cuda_dropout_backward(NULL, db.data(), n, p, seed, site);
	diff r2 = cmp_bf(dx.data(), dxc.data(), n);
	check(maskbad == 0 && r.mism == 0 && r2.mism == 0,
	      fmt("dropout n=%zu p=%g seed=%llx site=%llu: %.3f dropped, mask equal to the CPU's "
		  "(%zu differ); forward %s; backward %s", n, p, (unsigned long long)seed,
		  (unsigned long long)site, (double)dropped / n, maskbad, r.str().c_str(),
		  r2.str().c_str()));
}

/* ---- optimizer ------------------------------------------------------------- */

static void test_adamw(size_t n, int steps, float wd, bool with_x)
{
	std::vector<float> p = rvec(n, -1, 1, false), m(n, 0), v(n, 0), pc = p, mc = m, vc = v;
	std::vector<bf16> xp(n, BNAN);
	std::string bad;
	for (int t = 1; t <= steps; t++) {
		std::vector<float> g = rvec(n, -0.1f, 0.1f, false);
		if (n > 4) {
			g[0] = 0;
			g[1] = 1e-30f;
			g[2] = 3e4f;
			g[3] = -1e-3f;
		}
		float lr = 1e-3f * t;
		ft_cpu_adamw(pc.data(), g.data(), mc.data(), vc.data(), n, lr, 0.9f, 0.999f, 1e-8f, wd, t);
		ft_cuda_adamw(p.data(), g.data(), m.data(), v.data(), n, lr, 0.9f, 0.999f, 1e-8f, wd, t,
			      with_x ? xp.data() : NULL);
		size_t xb = 0;
		for (size_t i = 0; with_x && i < n; i++)
			xb += xp[i].bits != B(pc[i]).bits;
		diff a = cmp_f(p.data(), pc.data(), n), b = cmp_f(m.data(), mc.data(), n);
		diff c = cmp_f(v.data(), vc.data(), n);
		if (a.mism || b.mism || c.mism || xb)
			bad += fmt(" step %d: param %zu, m %zu, v %zu, xparam %zu differ;", t, a.mism,
				   b.mism, c.mism, xb);
	}
	for (size_t i = 0; !with_x && i < n; i++)
		if (xp[i].bits != BNAN.bits) {
			bad += " xparam written";
			break;
		}
	check(bad.empty(), fmt("adamw n=%zu, %d steps, weight decay %g, xparam %s: bit for bit "
			       "ft_cpu_adamw%s", n, steps, wd, with_x ? "bf16 copy" : "NULL", bad.c_str()));
}

static void test_sumsq(size_t n)
{
	std::vector<float> x = rvec(n, -3, 3, false);
	for (size_t i = 0; i < n; i += 1001)
		x[i] *= 1e10f;
	double c = ft_ops_cpu.sumsq(x.data(), n);
	double g = ft_cuda_sumsq(x.data(), n), g2 = ft_cuda_sumsq(x.data(), n);
	double rel = fabs(g - c) / c;
	check(rel < 1e-12 && g == g2, fmt("sumsq n=%zu (grid of %u): rel diff to the CPU %.2g, "
					  "repeat the same bits: %d", n,
					  ft_cuda_blocks((n + 4095) / 4096, 1), rel, g == g2));
}

static void test_nonfinite(size_t n)
{
	std::vector<float> x = rvec(n, -1e30f, 1e30f, false);
	bool ok = ft_cuda_nonfinite(x.data(), n) == 0 && ft_ops_cpu.nonfinite(x.data(), n) == 0;
	std::string what;
	for (float bad : {INFINITY, -INFINITY, NAN})
		for (size_t at : {(size_t)0, n / 2, n - 1}) {
			float keep = x[at];
			x[at] = bad;
			int got = ft_cuda_nonfinite(x.data(), n);
			if (got != 1 || ft_ops_cpu.nonfinite(x.data(), n) != 1) {
				ok = false;
				what += fmt(" [%g at %zu: %d]", bad, at, got);
			}
			x[at] = keep;
		}
	x[n - 1] = 3.4028235e38f;
	if (ft_cuda_nonfinite(x.data(), n) != 0) {
		ok = false;
		what += " FLT_MAX flagged";
	}
	check(ok, fmt("nonfinite n=%zu: 0 when clean, 1 with inf, -inf or NaN first, middle or "
		      "last, 0 with FLT_MAX%s", n, what.c_str()));
}

static void test_scale(size_t n, float s)
{
	std::vector<float> x = rvec(n, -5, 5, false), xc = x;
	ft_ops_cpu.scale(xc.data(), n, s);
	ft_cuda_scale(x.data(), n, s);
	diff r = cmp_f(x.data(), xc.data(), n);
	check(r.mism == 0, fmt("scale n=%zu s=%g: %s", n, s, r.str().c_str()));
}

static void test_bias_grad(int N, int OC)
{
	std::vector<float> dout = rvec((size_t)N * OC, -1, 1), db0 = rvec(OC, -1, 1, false);
	std::vector<float> dbc = db0, db = db0;
	ft_cpu_matmul_backward(NULL, NULL, dbc.data(), dout.data(), NULL, NULL, N, 3, OC, 0.5f);
	std::vector<bf16> dob = tobf(dout);
	ft_cuda_matmul_backward(NULL, NULL, db.data(), dob.data(), NULL, NULL, N, 3, OC, 0.5f);
	diff r = cmp_f(db.data(), dbc.data(), OC);
	check(r.mism == 0, fmt("matmul_backward dbias (bias_grad) N=%d OC=%d: %s", N, OC, r.str().c_str()));
}

/* ---- attention ------------------------------------------------------------- */

/* Document starts of B rows of T tokens: docs 0 one document a row, 1 many
 * short ones, 2 breaks at fixed places, 3 one break in the middle. */
static std::vector<int32_t> doc_starts(int B, int T, int docs)
{
	std::vector<int32_t> ds((size_t)B * T);
	for (int b = 0; b < B; b++) {
		int s = 0;
		for (int t = 0; t < T; t++) {
			bool brk = docs == 1 ? rng() % 9 == 0 : docs == 2 ? t % 64 == 0 || t % 97 == 0 :
				   docs == 3 ? t == T / 2 + b : false;
			if (t > 0 && brk)
				s = t;
			ds[(size_t)b * T + t] = s;
		}
	}
	return ds;
}

static void test_attention(int B, int T, int H, int KVH, int D, int docs)
{
	int N = B * T;
	size_t nq = (size_t)N * H * D, nk = (size_t)N * KVH * D;
	std::vector<float> q = rvec(nq, -2, 2), k = rvec(nk, -2, 2), v = rvec(nk, -2, 2);
	std::vector<float> dout = rvec(nq, -2, 2);
	std::vector<int32_t> ds = doc_starts(B, T, docs);
	int ndocs = 0;
	for (int n = 0; n < N; n++)
		ndocs += ds[n] == n % T;
	std::string shape = fmt("B=%d T=%d H=%d KVH=%d D=%d, %d documents", B, T, H, KVH, D, ndocs);

	std::vector<float> out_c(nq), lse_c((size_t)B * H * T);
	ft_cpu_attention_forward(out_c.data(), lse_c.data(), q.data(), k.data(), v.data(), ds.data(),
				 B, T, H, KVH, D);
	std::vector<bf16> qb = tobf(q), kb = tobf(k), vb = tobf(v), gb = tobf(dout), out(nq, BNAN);
	std::vector<float> lse(lse_c.size(), NAN);
	ft_cuda_attention_forward(out.data(), lse.data(), qb.data(), kb.data(), vb.data(), ds.data(),
				  B, T, H, KVH, D);
	double wo = worst_ratio(out.data(), out_c.data(), nq, 1.0 / 256, 2e-3);
	double wl = 0;
	for (size_t i = 0; i < lse.size(); i++)
		wl = std::max(wl, std::isfinite(lse[i]) ? fabs(lse[i] - lse_c[i]) / (1e-5 * (1 + fabs(lse_c[i]))) : INFINITY);
	check(wo <= 1 && wl <= 1, fmt("attention_forward %s: out err/tol %.2f, lse err/tol %.2f",
				      shape.c_str(), wo, wl));

	/* backward from the same out (rounded) and lse, into random gradients */
	std::vector<float> outr = fromb(tobf(out_c).data(), nq);
	std::vector<float> dq_c = rvec(nq, -0.1f, 0.1f), dk_c = rvec(nk, -0.1f, 0.1f), dv_c = rvec(nk, -0.1f, 0.1f);
	std::vector<bf16> dq = tobf(dq_c), dk = tobf(dk_c), dv = tobf(dv_c), ob = tobf(outr);
	ft_cpu_attention_backward(dq_c.data(), dk_c.data(), dv_c.data(), dout.data(), outr.data(),
				  lse_c.data(), q.data(), k.data(), v.data(), ds.data(), B, T, H, KVH, D);
	ft_cuda_attention_backward(dq.data(), dk.data(), dv.data(), gb.data(), ob.data(), lse_c.data(),
				   qb.data(), kb.data(), vb.data(), ds.data(), B, T, H, KVH, D);
	/* P and dS enter the tensor cores rounded to bf16 (as FlashAttention-2
	 * does), one more rounding than the forward's outputs carry: twice its
	 * elementwise tolerance, and a relative L2 bound over the whole tensor */
	double wq = worst_ratio(dq.data(), dq_c.data(), nq, 1.0 / 64, 4e-3);
	double wk = worst_ratio(dk.data(), dk_c.data(), nk, 1.0 / 64, 4e-3);
	double wv = worst_ratio(dv.data(), dv_c.data(), nk, 1.0 / 64, 4e-3);
	double lq = cmp_bf(dq.data(), dq_c.data(), nq).rel_l2;
	double lk = cmp_bf(dk.data(), dk_c.data(), nk).rel_l2;
	double lv = cmp_bf(dv.data(), dv_c.data(), nk).rel_l2;
	check(wq <= 1 && wk <= 1 && wv <= 1 && std::max(lq, std::max(lk, lv)) <= 5e-3,
	      fmt("attention_backward %s: err/tol dq %.2f, dk %.2f, dv %.2f; rel L2 %.2g %.2g %.2g "
		  "(tol 5e-3)", shape.c_str(), wq, wk, wv, lq, lk, lv));
}

/* NULL gradients are skipped and leave the others as they are */
static void test_attention_nulls(int B, int T, int H, int KVH, int D)
{
	size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D;
	std::vector<bf16> q = tobf(rvec(nq, -2, 2)), k = tobf(rvec(nk, -2, 2)), v = tobf(rvec(nk, -2, 2));
	std::vector<bf16> g = tobf(rvec(nq, -2, 2)), out(nq, BNAN);
	std::vector<int32_t> ds = doc_starts(B, T, 1);
	std::vector<float> lse((size_t)B * H * T, NAN);
	ft_cuda_attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), ds.data(), B, T, H, KVH, D);
	std::vector<bf16> dq0 = tobf(rvec(nq, -1, 1)), dk0 = tobf(rvec(nk, -1, 1)), dv0 = tobf(rvec(nk, -1, 1));
	std::vector<bf16> dq = dq0, dk = dk0, dv = dv0, dq2 = dq0, dk2 = dk0, dv2 = dv0;
	ft_cuda_attention_backward(dq.data(), dk.data(), dv.data(), g.data(), out.data(), lse.data(),
				   q.data(), k.data(), v.data(), ds.data(), B, T, H, KVH, D);
	ft_cuda_attention_backward(dq2.data(), NULL, NULL, g.data(), out.data(), lse.data(), q.data(),
				   k.data(), v.data(), ds.data(), B, T, H, KVH, D);
	ft_cuda_attention_backward(NULL, dk2.data(), NULL, g.data(), out.data(), lse.data(), q.data(),
				   k.data(), v.data(), ds.data(), B, T, H, KVH, D);
	ft_cuda_attention_backward(NULL, NULL, dv2.data(), g.data(), out.data(), lse.data(), q.data(),
				   k.data(), v.data(), ds.data(), B, T, H, KVH, D);
	check(same_bytes(dq.data(), dq2.data(), nq * 2) && same_bytes(dk.data(), dk2.data(), nk * 2) &&
	      same_bytes(dv.data(), dv2.data(), nk * 2),
	      fmt("attention_backward B=%d T=%d H=%d KVH=%d D=%d: one gradient at a time, the same "
		  "bits as all three", B, T, H, KVH, D));
}

/* ---- decode ops ------------------------------------------------------------ */
#if EMU_HAVE_DECODE

static void test_matmul_rows(int N, int IC, int OC, bool has_bias, bool paths)
{
	const ft_decode_ops *ops = ft_decode_ops_cuda();
	std::vector<float> x = rvec((size_t)N * IC, -1, 1), w = rvec((size_t)OC * IC, -1, 1), b = rvec(OC, -1, 1);
	std::vector<bf16> xb = tobf(x), wb = tobf(w), bb = tobf(b);
	const bf16 *bias = has_bias ? bb.data() : NULL;
	std::vector<float> cpu((size_t)N * OC), got((size_t)N * OC, NAN);
	ft_decode_ops_cpu.matmul_rows(cpu.data(), x.data(), w.data(), has_bias ? b.data() : NULL, N, IC, OC);
	ft_cuda_sm_count = 1;   /* four outputs a warp from OC >= 64 */
	ops->matmul_rows(got.data(), xb.data(), wb.data(), bias, N, IC, OC);
	double worst = 0;   /* fp32 sums in two orders: 2e-6 of sum |x w| */
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double a = has_bias ? fabs(b[o]) : 0;
			for (int i = 0; i < IC; i++)
				a += fabs((double)x[(size_t)n * IC + i] * w[(size_t)o * IC + i]);
			double d = fabs((double)got[(size_t)n * OC + o] - cpu[(size_t)n * OC + o]);
			worst = std::max(worst, std::isnan(d) ? INFINITY : d / (2e-6 * a + 1e-30));
		}
	std::string shape = fmt("N=%d IC=%d OC=%d%s", N, IC, OC, has_bias ? " bias" : "");
	check(worst <= 1, fmt("matmul_rows %s: err/tol %.3f against the CPU", shape.c_str(), worst));
	if (!paths)
		return;
	bool alone = true;   /* each row alone */
	for (int n = 0; n < N; n++) {
		std::vector<float> o1(OC, NAN);
		ops->matmul_rows(o1.data(), xb.data() + (size_t)n * IC, wb.data(), bias, 1, IC, OC);
		alone = alone && same_bytes(o1.data(), &got[(size_t)n * OC], OC * 4);
	}
	std::vector<float> g1((size_t)N * OC, NAN), gm((size_t)N * OC, NAN);
	ft_cuda_sm_count = 1 << 20;   /* one output a warp */
	ops->matmul_rows(g1.data(), xb.data(), wb.data(), bias, N, IC, OC);
	ft_cuda_sm_count = 1;
	std::vector<bf16> xm((size_t)N * IC + 1), wm((size_t)OC * IC + 1);   /* misaligned: scalar */
	std::copy(xb.begin(), xb.end(), xm.begin() + 1);
	std::copy(wb.begin(), wb.end(), wm.begin() + 1);
	long long v0 = emu_stat.ldg_loads;
	ops->matmul_rows(gm.data(), xm.data() + 1, wm.data() + 1, bias, N, IC, OC);
	bool scalar = emu_stat.ldg_loads == v0;
	check(alone && same_bytes(g1.data(), got.data(), got.size() * 4) && scalar &&
	      same_bytes(gm.data(), got.data(), got.size() * 4),
	      fmt("matmul_rows %s: the same bits row by row, with one or four outputs a warp, with "
		  "scalar loads (misaligned)", shape.c_str()));
}

/* a row's result whatever the batch around it */
static void test_matmul_rows_batch(int IC, int OC)
{
	const ft_decode_ops *ops = ft_decode_ops_cuda();
	std::vector<bf16> row = tobf(rvec(IC, -1, 1)), wb = tobf(rvec((size_t)OC * IC, -1, 1));
	std::vector<bf16> bb = tobf(rvec(OC, -1, 1));
	std::vector<float> alone(OC, NAN);
	ops->matmul_rows(alone.data(), row.data(), wb.data(), bb.data(), 1, IC, OC);
	std::string bad;
	int cases = 0;
	for (int N : {5, 9, 17})
		for (int at : {0, N - 1}) {
			std::vector<bf16> xb = tobf(rvec((size_t)N * IC, -3, 3));
			std::copy(row.begin(), row.end(), xb.begin() + (size_t)at * IC);
			std::vector<float> out((size_t)N * OC, NAN);
			ops->matmul_rows(out.data(), xb.data(), wb.data(), bb.data(), N, IC, OC);
			cases++;
			if (!same_bytes(alone.data(), &out[(size_t)at * OC], OC * 4))
				bad += fmt(" N=%d at %d", N, at);
		}
	check(bad.empty(), fmt("matmul_rows IC=%d OC=%d batch invariance: a row in batches of 5, 9, "
			       "17 (first, last) gives its bits alone%s", IC, OC, bad.c_str()));
}

/* tokens of context lens[n] each over their own cache (longer than the
 * context; rows past it NaN, so reading them shows) */
static void test_attention_cached(const std::vector<int> &lens, int H, int KVH, int D,
				  bool misalign, bool alone_check)
{
	const ft_decode_ops *ops = ft_decode_ops_cuda();
	int N = (int)lens.size(), ld = KVH * D, off = misalign ? 1 : 0;
	std::vector<float> q = rvec((size_t)N * H * D, -2, 2);
	std::vector<std::vector<float>> kf(N), vf(N);
	std::vector<std::vector<bf16>> kb(N), vb(N);
	std::vector<const void *> kc(N), vc(N), kg(N), vg(N);
	std::vector<int32_t> pos(N);
	for (int n = 0; n < N; n++) {
		size_t rows = lens[n] + 3;
		pos[n] = lens[n] - 1;
		kf[n] = rvec(rows * ld, -2, 2);
		vf[n] = rvec(rows * ld, -1, 1);
		kb[n].assign(rows * ld + 1, BNAN);
		vb[n].assign(rows * ld + 1, BNAN);
		for (size_t i = 0; i < (size_t)lens[n] * ld; i++) {
			kb[n][i + off] = B(kf[n][i]);
			vb[n][i + off] = B(vf[n][i]);
		}
		kc[n] = kf[n].data();
		vc[n] = vf[n].data();
		kg[n] = kb[n].data() + off;
		vg[n] = vb[n].data() + off;
	}
	std::vector<bf16> qb = tobf(q), out((size_t)N * H * D, BNAN);
	std::vector<float> cpu((size_t)N * H * D);
	ft_decode_ops_cpu.attention_cached(cpu.data(), q.data(), kc.data(), vc.data(), pos.data(), N, H, KVH, D);
	long long v0 = emu_stat.ldg_loads;
	ops->attention_cached(out.data(), qb.data(), kg.data(), vg.data(), pos.data(), N, H, KVH, D);
	long long vec = emu_stat.ldg_loads - v0;
	/* bf16 rounding of the output, fp32 sums in other orders */
	double worst = 0;
	int group = H / KVH;
	for (int n = 0; n < N; n++)
		for (int h = 0; h < H; h++)
			for (int d = 0; d < D; d++) {
				size_t i = ((size_t)n * H + h) * D + d;
				double mx = 0;
				for (int j = 0; j < lens[n]; j++)
					mx = std::max(mx, (double)fabsf(vf[n][(size_t)j * ld + h / group * D + d]));
				double e = fabs((double)F(out[i]) - cpu[i]);
				double tol = fabs(cpu[i]) / 128 + 1e-3 * mx + 1e-4;
				worst = std::max(worst, std::isnan(e) ? INFINITY : e / tol);
			}
	std::string ls;
	for (size_t n = 0; n < lens.size(); n++)
		ls += fmt("%s%d", n ? "," : "", lens[n]);
	std::string shape = fmt("H=%d KVH=%d D=%d, contexts %s%s", H, KVH, D, ls.c_str(),
				misalign ? ", misaligned caches" : "");
	check(worst <= 1, fmt("attention_cached %s: err/tol %.2f against the CPU (%s loads)",
			      shape.c_str(), worst, vec ? "__ldg vector" : "scalar"));
	if (!alone_check)
		return;
	bool alone = true;
	for (int n = 0; n < N; n++) {
		std::vector<bf16> o1((size_t)H * D, BNAN);
		ops->attention_cached(o1.data(), qb.data() + (size_t)n * H * D, &kg[n], &vg[n], &pos[n],
				      1, H, KVH, D);
		alone = alone && same_bytes(o1.data(), &out[(size_t)n * H * D], (size_t)H * D * 2);
	}
	check(alone, fmt("attention_cached %s: each token alone gives its bits in the batch", shape.c_str()));
}

/* the same context through aligned (vector loads) and misaligned (scalar)
 * caches: the same bits */
static void test_attention_cached_paths(int len, int H, int KVH, int D)
{
	const ft_decode_ops *ops = ft_decode_ops_cuda();
	size_t n = (size_t)len * KVH * D;
	std::vector<bf16> q = tobf(rvec((size_t)H * D, -2, 2)), k = tobf(rvec(n, -2, 2)), v = tobf(rvec(n, -1, 1));
	std::vector<bf16> k2(n + 1), v2(n + 1), o1((size_t)H * D, BNAN), o2((size_t)H * D, BNAN);
	std::copy(k.begin(), k.end(), k2.begin() + 1);
	std::copy(v.begin(), v.end(), v2.begin() + 1);
	int32_t pos = len - 1;
	const void *ka = k.data(), *va = v.data(), *km = k2.data() + 1, *vm = v2.data() + 1;
	long long c0 = emu_stat.ldg_loads;
	ops->attention_cached(o1.data(), q.data(), &ka, &va, &pos, 1, H, KVH, D);
	long long c1 = emu_stat.ldg_loads;
	ops->attention_cached(o2.data(), q.data(), &km, &vm, &pos, 1, H, KVH, D);
	long long c2 = emu_stat.ldg_loads;
	check(c1 > c0 && c2 == c1 && same_bytes(o1.data(), o2.data(), o1.size() * 2),
	      fmt("attention_cached context %d H=%d KVH=%d D=%d: __ldg vector loads (%lld) and scalar "
		  "loads (misaligned) give the same bits", len, H, KVH, D, c1 - c0));
}
#endif

/* ---- main ------------------------------------------------------------------ */

static bool verbose;
static std::vector<std::string> only;

/* Start section name (NULL: the end); false when it is not to run. */
static bool section(const char *name)
{
	static auto t0 = std::chrono::steady_clock::now();
	static const char *last;
	auto t = std::chrono::steady_clock::now();
	if (verbose && last)
		fprintf(stderr, "  %-12s %.2f s\n", last, std::chrono::duration<double>(t - t0).count());
	t0 = t;
	last = NULL;
	if (!name)
		return false;
	bool want = only.empty();
	for (auto &o : only)
		want = want || o == name;
	if (want)
		last = name;
	return want;
}

static void die_report(void)
{
	test_failed++;
	test_report();
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "small"))
			SMALL = true;
		else if (!strcmp(argv[i], "-v"))
			verbose = true;
		else
			only.push_back(argv[i]);
	}
	emu_on_die = die_report;

	if (section("empty"))
		test_empty();
	if (section("convert"))
		test_convert();
	if (section("embedding")) {
		test_embedding(1, 1, 1);
		test_embedding(37, 257, 11);
		test_embedding(64, 300, 7);
	}
	if (section("rmsnorm")) {
		test_rmsnorm(1, 7, 1e-6f, 2);
		test_rmsnorm(3, 31, 1e-5f, 100);
		test_rmsnorm(17, 65, 1e-5f, 1e-3f);
		test_rmsnorm(40, 257, 1e-5f, 2);
		test_rmsnorm(2, 4099, 1e-5f, 2);
		test_rmsnorm_dweight(300, 96);
		test_rmsnorm_dweight(SMALL ? 400 : 4100, 67);
	}
	if (section("rope")) {
		test_rope(5, 3, 2, false);
		test_rope(5, 4, 8, false);
		test_rope(7, 4, 64, true);
		test_rope(5, 2, 128, true);
		test_rope(3, 40, 256, true);   /* H * D/2 > the block's threads */
	}
	if (section("swiglu")) {
		test_swiglu(1);
		test_swiglu(257);
		test_swiglu(SMALL ? 3001 : 30011);
	}
	if (section("crossent")) {
		test_crossentropy(1, 1, 3);
		test_crossentropy(4, 2, 3);
		test_crossentropy(3, 3, 3);
		test_crossentropy(4, 7, 5);
		test_crossentropy(3, 1025, 8);
		test_crossentropy(3, 1023, 8);
		test_crossentropy(4, 32001, 10);
		test_crossentropy(2, SMALL ? 5001 : 128257, 12);
	}
	if (section("add")) {
		test_add(1);
		test_add(257);
		test_add(SMALL ? 3001 : 30011);
	}
	unsigned cap = emu_max_blocks;   /* lowered to run grid-stride loops */
	if (section("dropout")) {
		test_dropout(SMALL ? 7001 : 70001, 0.1, 42, 7);
		test_dropout(20001, 0.5, 0xdeadbeefcafef00dull, 0);
		test_dropout(3001, 0.9, 1, 123456789);
		test_dropout(1000, 0.0, 3, 3);
		test_dropout(1, 0.3, 9, 9);
		emu_max_blocks = 5;
		test_dropout(12345, 0.25, 77, 5);
		emu_max_blocks = cap;
	}
	if (section("adamw")) {
		test_adamw(SMALL ? 3001 : 20011, 5, 0.01f, true);
		test_adamw(3001, 3, 0.0f, false);
		test_adamw(1, 2, 0.1f, true);
		emu_max_blocks = 2;
		test_adamw(5000, 2, 0.01f, true);
		emu_max_blocks = cap;
	}
	if (section("sumsq")) {
		for (size_t n : {1, 255, 4096, 4097, 16384 * 3 + 5, SMALL ? 70001 : 100003})
			test_sumsq(n);
		emu_max_blocks = 3;
		test_sumsq(50001);
		emu_max_blocks = cap;
	}
	if (section("nonfinite")) {
		test_nonfinite(1);
		test_nonfinite(257);
		test_nonfinite(SMALL ? 2001 : 5001);
	}
	if (section("scale")) {
		test_scale(1, 0.5f);
		test_scale(3001, 0.3f);
		test_scale(1000, 0.0f);
	}
	if (section("bias_grad")) {
		test_bias_grad(0, 5);
		test_bias_grad(1, 1);
		test_bias_grad(37, 300);
		test_bias_grad(50, 513);
	}
	if (section("attention")) {
		/* T against the tiles (64, or 32 for D > 128), documents, groups,
		 * head sizes from 8 to 256 in every bucket */
		test_attention(1, 1, 1, 1, 8, 0);
		test_attention(2, 37, 4, 2, 8, 1);
		test_attention(2, 70, 4, 1, 16, 1);
		test_attention(1, 130, 2, 2, 32, 2);
		test_attention(2, 100, 4, 2, 64, 3);
		test_attention(1, 65, 3, 1, 40, 0);
		test_attention(1, 80, 2, 1, 96, 1);
		test_attention(1, 97, 2, 1, 128, 3);
		test_attention(1, 66, 2, 2, 130, 1);
		test_attention(1, 97, 2, 1, 256, 2);
		if (!SMALL)
			test_attention(2, 129, 6, 2, 200, 2);
		test_attention_nulls(1, 70, 4, 2, 64);
	}
#if EMU_HAVE_DECODE
	if (section("matmul_rows")) {
		test_matmul_rows(1, 1, 1, true, false);
		test_matmul_rows(1, 7, 3, false, false);
		test_matmul_rows(3, 64, 37, true, true);
		test_matmul_rows(9, 96, 70, true, true);
		test_matmul_rows(2, 1000, 65, false, false);
		test_matmul_rows(13, 264, 20, true, false);
		test_matmul_rows_batch(75, 20);
	}
	if (section("attn_cached")) {
		test_attention_cached({1}, 2, 1, 8, false, false);
		test_attention_cached({1, 2, 31, 33, 100}, 4, 2, 64, false, true);
		test_attention_cached({70, 1}, 4, 2, 128, false, false);
		/* groups of 9 heads over 2 kv heads: blocks of 5 and 4 heads */
		test_attention_cached({40, 3}, 18, 2, 32, false, true);
		test_attention_cached({40, 9}, 3, 3, 256, false, false);
		test_attention_cached({129, 5}, 4, 2, 80, false, false);
		test_attention_cached({33}, 2, 1, 1, false, false);
		test_attention_cached({57, 7}, 2, 2, 130, false, false);
		test_attention_cached({100}, 4, 2, 64, true, false);
		/* 32 splits of 32 keys, and one key more: 17 splits of 64 */
		if (SMALL)
			test_attention_cached({300, 2}, 2, 1, 64, false, true);
		else
			test_attention_cached({1024, 1025}, 2, 1, 64, false, true);
		test_attention_cached_paths(70, 2, 1, 128);
		test_attention_cached_paths(40, 2, 1, 256);
	}
#endif
	section(NULL);
	return test_report();
}
