/* data.c: batches from shards (contract in data.h). */
#include "data.h"

#include <stdlib.h>
#include <string.h>

#include "rng.h"

int ft_data_open(struct ft_data *d, const char *path, int max_rows, int vocab,
		 struct ft_err *err)
{
	memset(d, 0, sizeof *d);
	d->order_epoch = -1;
	int rc = ft_shard_set_open(&d->set, path, FT_SHARD_VERIFY, err);
	if (rc)
		return rc;
	if (d->set.n_rows == 0) {
		ft_shard_set_release(&d->set);
		return ft_err_set(err, FT_E_DATA, "'%s': no rows", path);
	}
	const struct ft_shard_header *h = &d->set.shards[0]->h;
	if (h->vocab_size > (uint32_t)vocab) {
		rc = ft_err_set(err, FT_E_DATA,
				"'%s': the tokenizer's vocabulary (%u) is larger than the model's (%d)",
				path, h->vocab_size, vocab);
		ft_shard_set_release(&d->set);
		return rc;
	}
	d->seq_len = h->seq_len;
	d->n_rows = d->set.n_rows;
	d->max_rows = max_rows;
	size_t cells = (size_t)max_rows * h->seq_len;
	d->order = malloc(d->n_rows * sizeof *d->order);
	d->tokens = malloc(cells * sizeof *d->tokens);
	d->mask = malloc(cells);
	d->doc_offsets = malloc(((size_t)max_rows + 1) * sizeof *d->doc_offsets);
	d->doc_starts = malloc(cells * sizeof *d->doc_starts);
	if (!d->order || !d->tokens || !d->mask || !d->doc_offsets || !d->doc_starts) {
		ft_data_release(d);
		return ft_err_set(err, FT_E_NOMEM, "out of memory for batches of %d x %u", max_rows,
				  h->seq_len);
	}
	return FT_OK;
}

void ft_data_release(struct ft_data *d)
{
	ft_shard_set_release(&d->set);
	free(d->order);
	free(d->tokens);
	free(d->mask);
	free(d->doc_offsets);
	free(d->doc_starts);
	memset(d, 0, sizeof *d);
}

const uint64_t *ft_data_order(struct ft_data *d, long epoch, bool shuffle, uint64_t seed)
{
	if (d->order_epoch == epoch)
		return d->order;
	for (uint64_t i = 0; i < d->n_rows; i++)
		d->order[i] = i;
	if (shuffle) {
		/* Fisher-Yates from a generator of (seed, epoch) alone */
		struct ft_rng rng;
		uint64_t s = seed;
		ft_rng_seed(&rng, ft_splitmix64(&s) ^ (uint64_t)epoch * 0x9e3779b97f4a7c15ull);
		for (uint64_t i = d->n_rows - 1; i > 0; i--) {
			uint64_t j = ft_rng_next(&rng) % (i + 1);
			uint64_t t = d->order[i];
			d->order[i] = d->order[j];
			d->order[j] = t;
		}
	}
	d->order_epoch = epoch;
	return d->order;
}

/* The end of row r's last document. */
static uint32_t row_end(const struct ft_shard *s, uint64_t r)
{
	uint64_t a = s->rows[r], b = s->rows[r + 1];
	return b > a ? s->docs[b - 1].start + s->docs[b - 1].len : 0;
}

int ft_data_batch(struct ft_data *d, const uint64_t *rows, int n, struct ft_batch *b,
		  struct ft_err *err)
{
	if (n < 1 || n > d->max_rows)
		return ft_err_set(err, FT_E_INVAL, "batch of %d rows (at most %d)", n, d->max_rows);
	uint32_t T = 1;
	for (int i = 0; i < n; i++) {
		uint64_t local;
		const struct ft_shard *s = ft_shard_set_row(&d->set, rows[i], &local);
		uint32_t e = row_end(s, local);
		if (e > T)
			T = e;
	}
	int nstarts = 0;
	for (int i = 0; i < n; i++) {
		uint64_t local;
		const struct ft_shard *s = ft_shard_set_row(&d->set, rows[i], &local);
		int32_t *tok = d->tokens + (size_t)i * T;
		uint8_t *msk = d->mask + (size_t)i * T;
		memset(tok, 0, T * sizeof *tok);
		memset(msk, 0, T);
		d->doc_offsets[i] = nstarts;
		uint32_t at = 0;
		for (uint64_t k = s->rows[local]; k < s->rows[local + 1]; k++) {
			const struct ft_shard_doc *doc = &s->docs[k];
			if (doc->start > at)
				d->doc_starts[nstarts++] = (int32_t)at;   /* padding before it */
			d->doc_starts[nstarts++] = (int32_t)doc->start;
			for (uint32_t t = doc->start; t < doc->start + doc->len; t++) {
				tok[t] = (int32_t)ft_shard_token(s, local, t);
				msk[t] = d->all_tokens ? 1 : s->mask[local * s->h.seq_len + t];
			}
			at = doc->start + doc->len;
		}
		if (at < T || nstarts == d->doc_offsets[i])
			d->doc_starts[nstarts++] = (int32_t)at;       /* padding after them */
	}
	d->doc_offsets[n] = nstarts;
	b->B = n;
	b->T = (int)T;
	b->tokens = d->tokens;
	b->mask = d->mask;
	b->doc_offsets = d->doc_offsets;
	b->doc_starts = d->doc_starts;
	return FT_OK;
}
