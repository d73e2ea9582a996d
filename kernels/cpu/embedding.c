/* embedding.c: token embedding lookup and its scatter-add backward. The
 * backward splits channels over threads and walks tokens in order, so a
 * token that occurs twice adds up in the same order every run. */
#include <assert.h>
#include <string.h>

#include "cpu.h"

void ft_cpu_embedding_forward(float *out, const int32_t *tokens, const float *table, int N,
			      int C)
{
#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++)
		memcpy(out + (size_t)n * C, table + (size_t)tokens[n] * C, (size_t)C * sizeof *out);
}

void ft_cpu_embedding_backward(float *dtable, const float *dout, const int32_t *tokens,
			       int N, int C, int V)
{
	enum { BLOCK = 16 };
	int nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static)
	for (int blk = 0; blk < nblocks; blk++) {
		int c0 = blk * BLOCK, c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
		for (int n = 0; n < N; n++) {
			assert(tokens[n] >= 0 && tokens[n] < V);
			float *row = dtable + (size_t)tokens[n] * C;
			const float *d = dout + (size_t)n * C;
			for (int c = c0; c < c1; c++)
				row[c] += d[c];
		}
	}
}
