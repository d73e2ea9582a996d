/* data.h: training rows from ft shards, in batches the decoder takes.
 * Rows are visited epoch by epoch in a seeded order (a permutation that
 * depends only on seed and epoch, so a resumed run sees the same rows);
 * a batch holds the given rows cut to the longest of them (the last
 * document's end), with every stretch of padding made its own untrained
 * document. Memory: struct ft_data owns the open shards, the order of one
 * epoch and the buffers of one batch. Errors: 0 or FT_E_* with err set. */
#ifndef FT_DATA_H
#define FT_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "decoder.h"
#include "shard.h"

struct ft_data {
	struct ft_shard_set set;
	uint32_t seq_len;
	uint64_t n_rows;
	int max_rows;              /* rows per batch at most */
	bool all_tokens;           /* every document token trained (the shard's mask ignored) */
	uint64_t *order;           /* n_rows: the current epoch's order */
	long order_epoch;          /* -1: none yet */
	int32_t *tokens;           /* max_rows * seq_len */
	uint8_t *mask;
	int32_t *doc_offsets;      /* max_rows + 1 */
	int32_t *doc_starts;       /* max_rows * seq_len at most */
};

/* Open path (a shard or an index; sections verified) for batches of up to
 * max_rows rows; vocab is the model's, which every shard must fit. */
int ft_data_open(struct ft_data *d, const char *path, int max_rows, int vocab,
		 struct ft_err *err);
void ft_data_release(struct ft_data *d);
/* The rows of epoch e in visiting order: 0..n-1, or shuffled from seed. */
const uint64_t *ft_data_order(struct ft_data *d, long epoch, bool shuffle, uint64_t seed);
/* Batch b from n global rows (n <= max_rows); b points into d's buffers
 * until the next call. */
int ft_data_batch(struct ft_data *d, const uint64_t *rows, int n, struct ft_batch *b,
		  struct ft_err *err);

#endif
