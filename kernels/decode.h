/* decode.h: the ops that decoding with a KV cache adds to the op table
 * (kernels/ops.h), for trainer/generate.c. Same conventions as ops.h: fp32,
 * row-major, caller-owned buffers, deterministic, cannot fail. One
 * implementation per backend: ft_decode_ops_cpu (kernels/cpu/decode.c);
 * a GPU backend adds its own table beside its ft_ops. */
#ifndef FT_DECODE_H
#define FT_DECODE_H

#include <stdint.h>

#define FT_DECODE_MAX_HEAD_DIM 1024

struct ft_decode_ops {
	const char *name;
	/* out[N][OC] = inp[N][IC] @ weight[OC][IC]^T (+ bias[OC]), like
	 * matmul_forward, but each row's result is the same whatever N is
	 * (bit for bit): the decode rows of a batch of sequences go through
	 * it, so a sequence's tokens do not depend on what it is batched with. */
	void (*matmul_rows)(float *out, const float *inp, const float *weight,
			    const float *bias, int N, int IC, int OC);
	/* Causal attention of N new tokens over their sequences' caches,
	 * grouped-query: token n's query q[n][H][D] (rotary applied) attends
	 * to the keys k[n][0..pos[n]] and values v[n][0..pos[n]], where k[n]
	 * and v[n] point at the first row of its sequence's cache for this
	 * layer (rows of KVH*D floats; its own key and value already stored
	 * at row pos[n]); out[N][H][D]. Query head h reads kv head h/(H/KVH).
	 * Each token's result depends on its own inputs only, not on N. */
	void (*attention_cached)(float *out, const float *q, const float *const *k,
				 const float *const *v, const int32_t *pos, int N, int H,
				 int KVH, int D);
};

extern const struct ft_decode_ops ft_decode_ops_cpu;

#endif
