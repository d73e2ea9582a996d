/* decode.h: the ops that decoding with a KV cache adds to the op table
 * (kernels/ops.h), for trainer/generate.c. Same conventions as ops.h:
 * backend memory, x tensors (void *) in the backend's storage type, fp32
 * where it says float, row-major, caller-owned buffers, deterministic,
 * cannot fail. One implementation per backend: ft_decode_ops_cpu
 * (kernels/cpu/decode.c) and the CUDA one (kernels/cuda/decode.cu). */
#ifndef FT_DECODE_H
#define FT_DECODE_H

#include <stdint.h>

#define FT_DECODE_MAX_HEAD_DIM 1024

struct ft_decode_ops {
	const char *name;
	/* out[N][OC] = inp[N][IC] @ weight[OC][IC]^T (+ bias[OC]), like
	 * matmul_forward but into fp32, and each row's result is the same
	 * whatever N is (bit for bit): the decode rows of a batch of sequences
	 * go through it, so a sequence's tokens do not depend on what it is
	 * batched with. inp, weight and bias are x tensors. */
	void (*matmul_rows)(float *out, const void *inp, const void *weight, const void *bias,
			    int N, int IC, int OC);
	/* Causal attention of N new tokens over their sequences' caches,
	 * grouped-query: token n's query q[n][H][D] (rotary applied) attends
	 * to the keys k[n][0..pos[n]] and values v[n][0..pos[n]], where k[n]
	 * and v[n] point at the first row of its sequence's cache for this
	 * layer (rows of KVH*D floats; its own key and value already stored
	 * at row pos[n]); out[N][H][D]. Query head h reads kv head h/(H/KVH).
	 * Each token's result depends on its own inputs only, not on N. out,
	 * q and the caches are x tensors; k and v are arrays of N pointers,
	 * themselves in backend memory. */
	void (*attention_cached)(void *out, const void *q, const void *const *k,
				 const void *const *v, const int32_t *pos, int N, int H, int KVH,
				 int D);
};

extern const struct ft_decode_ops ft_decode_ops_cpu;
/* The CUDA decode ops, once ft_ops_cuda_open has succeeded; NULL in a
 * build without CUDA. */
const struct ft_decode_ops *ft_decode_ops_cuda(void);

#endif
