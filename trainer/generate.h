/* generate.h: decoding with a KV cache, over the op table (kernels/ops.h)
 * and the decode ops (kernels/decode.h), for ft-generate.
 *
 * A struct ft_gen holds a number of sequence slots, each with its own
 * cache of keys and values for every layer. One forward pass takes any
 * mix of slots and new tokens (a prompt's prefill, one token of a decode
 * step), appends their keys and values to the slots' caches and gives the
 * logits after each slot's last new token (or after every new token).
 * Every token's arithmetic depends only on its own sequence: the output of
 * one slot does not change, bit for bit, with what the other slots hold or
 * feed in the same pass, nor with the thread count.
 *
 * Memory: the struct owns the caches and its scratch, in the backend's
 * memory and storage type, grown as needed; the model stays the caller's.
 * The weights it reads are those xw points at: the model's own fp32 block
 * after ft_gen_init (right for the CPU), or a backend's copy (bf16 on a
 * GPU). Logits come back to the caller's host memory in fp32. Errors: 0
 * or FT_E_* with err set. */
#ifndef FT_GENERATE_H
#define FT_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "decode.h"
#include "model.h"
#include "ops.h"

struct ft_gen_slot {
	int len, cap;      /* tokens in the cache, room for */
	void *k, *v;       /* [num_layers][cap][num_kv_heads * head_dim], x tensors */
};

struct ft_gen_scratch;

struct ft_gen {
	const struct ft_ops *ops;
	const struct ft_decode_ops *dops;
	const struct ft_model *model;
	const struct ft_weights *xw;   /* the weights read: &model->w after init */
	float *inv_freq;               /* the rope frequencies, in backend memory */
	int nslots;
	struct ft_gen_slot *slots;
	struct ft_gen_scratch *s;
};

/* New tokens for one slot in a forward pass. */
struct ft_gen_feed {
	int slot;
	const int32_t *tokens;
	int n;
};

int ft_gen_init(struct ft_gen *g, const struct ft_ops *ops, const struct ft_decode_ops *dops,
		const struct ft_model *m, int nslots, struct ft_err *err);
void ft_gen_release(struct ft_gen *g);

/* Empty a slot for a new sequence of up to cap tokens. */
int ft_gen_reset(struct ft_gen *g, int slot, int cap, struct ft_err *err);

/* One forward pass over nfeeds feeds (distinct slots). logits receives
 * vocab_size floats per feed, after its last token, or, with every_token,
 * per new token (feeds in order). */
int ft_gen_forward(struct ft_gen *g, const struct ft_gen_feed *feeds, int nfeeds,
		   float *logits, bool every_token, struct ft_err *err);

/* Sampling, as transformers' generate applies it: logits divided by the
 * temperature, then top-k (ties with the k-th kept), then top-p (the
 * smallest set of most probable tokens whose probability reaches p).
 * temperature 0 is greedy: the first largest logit. */
struct ft_sampling {
	double temperature;   /* 0: greedy */
	int top_k;            /* 0: off */
	double top_p;         /* 1: off */
};

/* The next token from logits[V] (overwritten) and u, uniform in [0, 1).
 * order is scratch for V ints. */
int ft_gen_pick(float *logits, int V, const struct ft_sampling *s, double u, int32_t *order);

#endif
