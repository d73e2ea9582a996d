/* ops_cpu.c: the CPU op table (contract in kernels/ops.h): host memory, x
 * tensors stored in fp32, so the table's void pointers are float arrays and
 * each layer op forwards to its float implementation (one file per family).
 * The memory ops, the elementwise helpers too small for a file of their own
 * and the optimizer's reductions are here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "rng.h"

/* ---- memory: the host's -------------------------------------------------- */

static void *cpu_alloc(size_t bytes)
{
	return calloc(1, bytes ? bytes : 1);
}

static void cpu_release(void *p)
{
	free(p);
}

static void cpu_memzero(void *p, size_t bytes)
{
	memset(p, 0, bytes);
}

static void cpu_copy(void *dst, const void *src, size_t bytes)
{
	if (dst != src)
		memmove(dst, src, bytes);
}

static void cpu_to_x(void *dst, const float *src, size_t n)
{
	cpu_copy(dst, src, n * sizeof(float));
}

static void cpu_from_x(float *dst, const void *src, size_t n)
{
	cpu_copy(dst, src, n * sizeof(float));
}

static void cpu_sync(void)
{
}

/* ---- layer ops on fp32 storage ------------------------------------------- */

static void matmul_forward(void *out, const void *inp, const void *weight, const void *bias,
			   int N, int IC, int OC, float scale, int accumulate)
{
	ft_cpu_matmul_forward(out, inp, weight, bias, N, IC, OC, scale, accumulate);
}

static void matmul_backward(void *dinp, float *dweight, float *dbias, const void *dout,
			    const void *inp, const void *weight, int N, int IC, int OC, float scale)
{
	ft_cpu_matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, IC, OC, scale);
}

static void embedding_forward(void *out, const int32_t *tokens, const void *table, int N, int C)
{
	ft_cpu_embedding_forward(out, tokens, table, N, C);
}

static void embedding_backward(float *dtable, const void *dout, const int32_t *tokens, int N,
			       int C, int V)
{
	ft_cpu_embedding_backward(dtable, dout, tokens, N, C, V);
}

static void rmsnorm_forward(void *out, float *rstd, const void *inp, const void *weight, int N,
			    int C, float eps)
{
	ft_cpu_rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
}

static void rmsnorm_backward(void *dinp, float *dweight, const void *dout, const void *inp,
			     const void *weight, const float *rstd, int N, int C)
{
	ft_cpu_rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
}

static void rope_forward(void *x, const int32_t *pos, const float *inv_freq, int N, int H, int D)
{
	ft_cpu_rope_forward(x, pos, inv_freq, N, H, D);
}

static void rope_backward(void *x, const int32_t *pos, const float *inv_freq, int N, int H,
			  int D)
{
	ft_cpu_rope_backward(x, pos, inv_freq, N, H, D);
}

static void attention_forward(void *out, float *lse, const void *q, const void *k, const void *v,
			      const int32_t *doc_start, int B, int T, int H, int KVH, int D)
{
	ft_cpu_attention_forward(out, lse, q, k, v, doc_start, B, T, H, KVH, D);
}

static void attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *out,
			       const float *lse, const void *q, const void *k, const void *v,
			       const int32_t *doc_start, int B, int T, int H, int KVH, int D)
{
	ft_cpu_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, doc_start, B, T, H, KVH, D);
}

static void swiglu_forward(void *out, const void *gate, const void *up, size_t n)
{
	ft_cpu_swiglu_forward(out, gate, up, n);
}

static void swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
			    const void *up, size_t n)
{
	ft_cpu_swiglu_backward(dgate, dup, dout, gate, up, n);
}

static void crossentropy_forward(float *losses, const void *logits, const int32_t *targets,
				 int N, int V)
{
	ft_cpu_crossentropy_forward(losses, logits, targets, N, V);
}

static void crossentropy_backward(void *dlogits, const void *logits, const int32_t *targets,
				  int N, int V, float scale)
{
	ft_cpu_crossentropy_backward(dlogits, logits, targets, N, V, scale);
}

static void add(void *out_, const void *a_, const void *b_, size_t n)
{
	float *out = out_;
	const float *a = a_, *b = b_;
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

static void accumulate(void *dst_, const void *src_, size_t n)
{
	float *dst = dst_;
	const float *src = src_;
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		dst[i] += src[i];
}

static void dropout_forward(void *out_, const void *x_, size_t n, double p, uint64_t seed,
			    uint64_t site)
{
	float *out = out_, keep = (float)(1.0 / (1.0 - p));
	const float *x = x_;
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		out[i] = ft_rng_hash(seed, site, i) < p ? 0.0f : x[i] * keep;
}

static void dropout_backward(void *dx_, const void *dout_, size_t n, double p, uint64_t seed,
			     uint64_t site)
{
	float *dx = dx_, keep = (float)(1.0 / (1.0 - p));
	const float *dout = dout_;
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		if (ft_rng_hash(seed, site, i) >= p)
			dx[i] += dout[i] * keep;
}

/* ---- optimizer ----------------------------------------------------------- */

static void adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr,
		  float beta1, float beta2, float eps, float weight_decay, int t, void *xparam)
{
	ft_cpu_adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, t);
	if (xparam)
		cpu_copy(xparam, param, n * sizeof(float));
}

/* Sum of squares in fixed blocks, whatever the thread count. */
static double sumsq(const float *x, size_t n)
{
	enum { BLOCK = 1 << 14 };
	size_t nb = (n + BLOCK - 1) / BLOCK;
	double total = 0.0;
	double *part = malloc(nb * sizeof *part);
	if (!part) {
		for (size_t k = 0; k < n; k++)
			total += (double)x[k] * x[k];
		return total;
	}
#pragma omp parallel for schedule(static)
	for (size_t b = 0; b < nb; b++) {
		size_t end = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;
		double s = 0.0;
		for (size_t k = b * BLOCK; k < end; k++)
			s += (double)x[k] * x[k];
		part[b] = s;
	}
	for (size_t b = 0; b < nb; b++)
		total += part[b];
	free(part);
	return total;
}

static int nonfinite(const float *x, size_t n)
{
	int bad = 0;
#pragma omp parallel for reduction(| : bad) schedule(static)
	for (size_t k = 0; k < n; k++)
		bad |= !isfinite(x[k]);
	return bad;
}

static void scale(float *x, size_t n, float s)
{
#pragma omp parallel for schedule(static)
	for (size_t k = 0; k < n; k++)
		x[k] *= s;
}

const struct ft_ops ft_ops_cpu = {
	.name = "cpu",
	.xtype = FT_X_F32,
	.xsize = sizeof(float),
	.lm_head_rows = 64,
	.alloc = cpu_alloc,
	.release = cpu_release,
	.memzero = cpu_memzero,
	.upload = cpu_copy,
	.download = cpu_copy,
	.copy = cpu_copy,
	.to_x = cpu_to_x,
	.from_x = cpu_from_x,
	.sync = cpu_sync,
	.matmul_forward = matmul_forward,
	.matmul_backward = matmul_backward,
	.embedding_forward = embedding_forward,
	.embedding_backward = embedding_backward,
	.rmsnorm_forward = rmsnorm_forward,
	.rmsnorm_backward = rmsnorm_backward,
	.rope_forward = rope_forward,
	.rope_backward = rope_backward,
	.attention_forward = attention_forward,
	.attention_backward = attention_backward,
	.swiglu_forward = swiglu_forward,
	.swiglu_backward = swiglu_backward,
	.crossentropy_forward = crossentropy_forward,
	.crossentropy_backward = crossentropy_backward,
	.add = add,
	.accumulate = accumulate,
	.dropout_forward = dropout_forward,
	.dropout_backward = dropout_backward,
	.adamw = adamw,
	.sumsq = sumsq,
	.nonfinite = nonfinite,
	.scale = scale,
};
