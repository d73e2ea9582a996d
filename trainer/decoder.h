/* decoder.h: forward and backward of the decoder over a batch of packed
 * rows, written once against the op table (kernels/ops.h).
 *
 * A batch is B rows of T tokens. Each row holds one or more documents,
 * given by their start offsets (the first is 0): positions restart at 0 at
 * each start and attention is causal within the document only. The label of
 * position t is token t+1; it is trained when mask[t+1] is 1 and t+1 is in
 * the same document as t. The loss is the sum over trained labels of the
 * cross-entropy; the caller scales gradients by 1 / (trained labels of the
 * whole optimizer step) so micro-batches add up to the step's mean.
 *
 * Memory: struct ft_decoder owns the activations for batches of up to
 * B rows of T tokens, kept for the backward pass, and scratch, in the
 * backend's memory and storage type (kernels/ops.h). With recompute, only
 * each layer's input is kept: the backward pass runs each layer's forward
 * again before its backward (the same operations, so the same results),
 * and the other activations take one layer's room instead of all of them;
 * the LM head runs in
 * chunks of ops->lm_head_rows rows so the full logits never exist in
 * forward_backward. The model, LoRA adapters and gradient blocks stay the
 * caller's. The forward pass reads the weights xw and xlw point at: the
 * model's and the adapters' own fp32 blocks unless the caller points them
 * elsewhere (a GPU backend's bf16 copies); gradients are fp32 blocks in
 * the backend's memory.
 * Errors: 0 or FT_E_* with err set (bad batch contents, memory). */
#ifndef FT_DECODER_H
#define FT_DECODER_H

#include <stdbool.h>
#include <stdint.h>

#include "lora.h"
#include "model.h"
#include "ops.h"

/* A batch may be smaller than the decoder it runs on (B and T up to the
 * decoder's): the last micro-batch of an epoch, rows cut to their longest
 * document end. */
struct ft_batch {
	int B, T;
	const int32_t *tokens;       /* [B][T] */
	const uint8_t *mask;         /* [B][T], 1 = the token is a trained label; NULL: all */
	/* documents: row b's starts are doc_starts[doc_offsets[b] .. doc_offsets[b+1]),
	 * increasing, the first 0; NULL: one document per row */
	const int32_t *doc_offsets;  /* [B+1] */
	const int32_t *doc_starts;
};

/* Trained labels in b (what forward reports as trained), without running it:
 * the divisor of an optimizer step's loss is known before its first
 * micro-batch. */
long ft_batch_trained(const struct ft_batch *b);

struct ft_decoder_acts;

struct ft_decoder {
	const struct ft_ops *ops;
	const struct ft_model *model;
	const struct ft_lora *lora;  /* NULL: no adapters */
	/* the weights the forward pass reads, in the backend's storage type and
	 * memory: &model->w and &lora->w after init (right for the CPU) */
	const struct ft_weights *xw;
	const struct ft_lora_weights *xlw;
	int B, T;
	int head_rows;               /* rows of logits at a time */
	bool recompute;              /* activations recomputed layer by layer */
	uint64_t dropout_step;       /* advances per forward pass with dropout */
	struct ft_decoder_acts *a;
};

int ft_decoder_init(struct ft_decoder *d, const struct ft_ops *ops, const struct ft_model *m,
		    const struct ft_lora *lora, int B, int T, bool recompute, struct ft_err *err);
void ft_decoder_release(struct ft_decoder *d);

/* Forward only: logits [B*T][V] (host memory, fp32) when logits is not NULL; loss sum and
 * trained count (either may be NULL). LoRA dropout is not applied. */
int ft_decoder_forward(struct ft_decoder *d, const struct ft_batch *b, float *logits,
		       double *loss_sum, long *trained, struct ft_err *err);

/* Forward and backward: adds grad_scale * d(loss sum) to the gradients
 * grads points at (ft_model_point on a gradient block) and lora_grads
 * (ft_lora_point). A NULL pointer in either, or a NULL struct, freezes
 * that weight: its gradient is not computed, and the backward pass stops
 * at the lowest layer that still has something to train. */
int ft_decoder_forward_backward(struct ft_decoder *d, const struct ft_batch *b,
				float grad_scale, const struct ft_weights *grads,
				const struct ft_lora_weights *lora_grads, double *loss_sum,
				long *trained, struct ft_err *err);

#endif
