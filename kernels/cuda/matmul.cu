/* matmul.cu: the linear layers through cuBLASLt, bf16 inputs with fp32
 * accumulation (CUBLAS_COMPUTE_32F).
 *
 * The tensors are row-major; cuBLAS is column-major, and a row-major
 * X[a][b] is the column-major X^T (b x a, leading dimension b). So, with
 * I = inp [N][IC], W = weight [OC][IC], O = out [N][OC]:
 *   forward   O^T (OC x N)  = W (OCxIC) . I^T        A = W  (op T), B = I^T
 *   dinp      dI^T (IC x N) = W^T . dO^T             A = W  (op N), B = dO^T
 *   dweight   dW^T (IC x OC) = I^T . dO              A = I^T,       B = dO^T (op T)
 * The forward bias rides in the epilogue (D = scale AB + beta C + bias, the
 * bias unscaled as the op table says); "accumulate" and the backward's +=
 * are beta = 1 with C = D. Weight gradients are fp32 (C, D in CUDA_R_32F),
 * everything else bf16. dbias is a column sum of dout in a small kernel
 * (one thread per column, rows in order: deterministic).
 *
 * A heuristic query costs more than a small GEMM, so the chosen algorithm
 * is cached per shape, transposes, types, epilogue, beta and the pointers'
 * alignment (cuBLASLt assumes 256-byte alignment unless told otherwise,
 * and a row offset into an activation can break that). The alignment asked
 * for is capped at 16 bytes, what the tensor-core kernels need: the same
 * shapes then get the same algorithm, and the same bits, wherever their
 * rows sit in memory, which ft-generate's batch invariance relies on (a
 * prompt's rows are at another offset when it is batched). */
#include <cublasLt.h>
#include <stdio.h>
#include <string.h>

#include "cuda.cuh"

static cublasLtHandle_t lt;
static void *workspace;
static const size_t workspace_bytes = 32u << 20;

#define LT_CHECK(call)                                                                    \
	do {                                                                              \
		cublasStatus_t s_ = (call);                                               \
		if (s_ != CUBLAS_STATUS_SUCCESS)                                          \
			ft_cuda_fail(#call, __FILE__, __LINE__, cublasLtGetStatusString(s_));  \
	} while (0)

struct gemm_key {
	int m, n, k;
	int transa, transb;
	int ctype;            /* cudaDataType of C and D */
	int bias;             /* bias epilogue */
	int beta1;            /* beta == 1 */
	int align;            /* smallest alignment of A, B, C, bias (bytes) */
};

struct gemm_plan {
	struct gemm_key key;
	cublasLtMatmulAlgo_t algo;
	int valid;
};

enum { PLANS = 256 };
static struct gemm_plan plans[PLANS];

void ft_cuda_matmul_init(void)
{
	LT_CHECK(cublasLtCreate(&lt));
	CUDA_CHECK(cudaMalloc(&workspace, workspace_bytes));
	memset(plans, 0, sizeof plans);
}

void ft_cuda_matmul_release(void)
{
	if (workspace)
		ft_cuda_warn(cudaFree(workspace), "cudaFree(workspace)");
	workspace = NULL;
	if (lt && cublasLtDestroy(lt) != CUBLAS_STATUS_SUCCESS)
		ft_cuda_warn(cudaErrorUnknown, "cublasLtDestroy");
	lt = NULL;
}

static int alignment(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	int al = 16;
	while (al > 1 && a % (uintptr_t)al)
		al /= 2;
	return al;
}

static uint64_t key_hash(const struct gemm_key *k)
{
	uint64_t h = 1469598103934665603ull;
	const unsigned char *p = (const unsigned char *)k;
	for (size_t i = 0; i < sizeof *k; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* D = alpha op(A) op(B) + beta C (+ bias), C = D; column-major, m x n
 * result, A is bf16 (lda), B bf16 (ldb), C/D ctype (ldc). */
static void gemm(int m, int n, int k, const void *A, int lda, int transa, const void *B, int ldb,
		 int transb, void *C, int ldc, cudaDataType_t ctype, float alpha, float beta,
		 const void *bias)
{
	if (m == 0 || n == 0)
		return;
	cublasOperation_t opa = transa ? CUBLAS_OP_T : CUBLAS_OP_N;
	cublasOperation_t opb = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
	cublasLtMatmulDesc_t desc;
	LT_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
	LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
	if (bias) {
		cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
		cudaDataType_t bt = CUDA_R_16BF;
		LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
							sizeof epi));
		LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
							sizeof bias));
		LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
							sizeof bt));
	}
	cublasLtMatrixLayout_t la, lb, lc;
	LT_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, transa ? k : m, transa ? m : k, lda));
	LT_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, transb ? n : k, transb ? k : n, ldb));
	LT_CHECK(cublasLtMatrixLayoutCreate(&lc, ctype, m, n, ldc));

	struct gemm_key key;
	memset(&key, 0, sizeof key);   /* padding too: the key is hashed bytewise */
	key.m = m;
	key.n = n;
	key.k = k;
	key.transa = transa;
	key.transb = transb;
	key.ctype = (int)ctype;
	key.bias = bias != NULL;
	key.beta1 = beta != 0.0f;
	key.align = alignment(A);
	if (alignment(B) < key.align)
		key.align = alignment(B);
	if (alignment(C) < key.align)
		key.align = alignment(C);
	if (bias && alignment(bias) < key.align)
		key.align = alignment(bias);
	struct gemm_plan *plan = &plans[key_hash(&key) % PLANS];
	if (!plan->valid || memcmp(&plan->key, &key, sizeof key)) {
		cublasLtMatmulPreference_t pref;
		LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
		LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
			pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
			sizeof workspace_bytes));
		uint32_t al = (uint32_t)key.align;
		const cublasLtMatmulPreferenceAttributes_t aligns[] = {
			CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
			CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
		};
		for (size_t i = 0; i < sizeof aligns / sizeof *aligns; i++)
			LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, aligns[i], &al, sizeof al));
		cublasLtMatmulHeuristicResult_t result;
		int found = 0;
		LT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 1, &result,
							&found));
		LT_CHECK(cublasLtMatmulPreferenceDestroy(pref));
		if (found < 1) {
			char what[160];
			snprintf(what, sizeof what, "no cuBLASLt algorithm for %d x %d x %d (op %c%c)", m,
				 n, k, transa ? 'T' : 'N', transb ? 'T' : 'N');
			ft_cuda_fail(what, __FILE__, __LINE__, "cublasLtMatmulAlgoGetHeuristic");
		}
		plan->key = key;
		plan->algo = result.algo;
		plan->valid = 1;
	}
	LT_CHECK(cublasLtMatmul(lt, desc, &alpha, A, la, B, lb, &beta, C, lc, C, lc, &plan->algo,
				workspace, workspace_bytes, ft_cuda_stream));
	LT_CHECK(cublasLtMatrixLayoutDestroy(la));
	LT_CHECK(cublasLtMatrixLayoutDestroy(lb));
	LT_CHECK(cublasLtMatrixLayoutDestroy(lc));
	LT_CHECK(cublasLtMatmulDescDestroy(desc));
}

void ft_cuda_matmul_forward(void *out, const void *inp, const void *weight, const void *bias,
			    int N, int IC, int OC, float scale, int accumulate)
{
	gemm(OC, N, IC, weight, IC, 1, inp, IC, 0, out, OC, CUDA_R_16BF, scale,
	     accumulate ? 1.0f : 0.0f, bias);
}

/* dbias[oc] += sum over rows of dout[n][oc], rows in order */
__global__ static void bias_grad(float *dbias, const bf16 *dout, int N, int OC)
{
	int oc = blockIdx.x * blockDim.x + threadIdx.x;
	if (oc >= OC)
		return;
	float s = 0.0f;
	for (int n = 0; n < N; n++)
		s += __bfloat162float(dout[(size_t)n * OC + oc]);
	dbias[oc] += s;
}

void ft_cuda_matmul_backward(void *dinp, float *dweight, float *dbias, const void *dout,
			     const void *inp, const void *weight, int N, int IC, int OC,
			     float scale)
{
	if (dinp)
		gemm(IC, N, OC, weight, IC, 0, dout, OC, 0, dinp, IC, CUDA_R_16BF, scale, 1.0f,
		     NULL);
	if (dweight)
		gemm(IC, OC, N, inp, IC, 0, dout, OC, 1, dweight, IC, CUDA_R_32F, scale, 1.0f, NULL);
	if (dbias) {
		bias_grad<<<(OC + 255) / 256, 256, 0, ft_cuda_stream>>>(dbias, (const bf16 *)dout, N,
									OC);
		LAUNCH_CHECK();
	}
}
