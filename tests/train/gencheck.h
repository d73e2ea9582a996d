/* gencheck.h: a check of decoding with a KV cache shared by test_generate
 * (the CPU) and test_cuda (the GPU): batch invariance. Header-only, for
 * the tests that include testhelp.h. */
#ifndef FT_GENCHECK_H
#define FT_GENCHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "testhelp.h"

/* Sequences run alone, then together in one engine (prefills mixed with
 * decode steps): every logit bit-identical. On backend ops/dops, reading
 * the weights xw (NULL: the model's own). */
static void check_batch(const char *name, const struct ft_model *m, const struct ft_ops *ops,
			const struct ft_decode_ops *dops, const struct ft_weights *xw,
			const int32_t *seq, int T)
{
	struct ft_err err;
	int V = m->cfg.vocab_size, S = 3, steps = 6;
	int plen[3] = { 1, T / 2, T - steps };
	float *alone = calloc((size_t)S * steps * V, sizeof *alone);
	float *mixed = calloc((size_t)S * steps * V, sizeof *mixed);
	float *tmp = malloc((size_t)S * V * sizeof *tmp);
	struct ft_gen g;
	int rc = ft_gen_init(&g, ops, dops, m, S, &err);
	if (!rc && xw)
		g.xw = xw;
	/* alone: sequence s is seq[0..plen[s]) then steps tokens of seq */
	for (int s = 0; s < S && !rc; s++) {
		rc = ft_gen_reset(&g, 0, plen[s] + steps, &err);
		struct ft_gen_feed f = { 0, seq, plen[s] };
		for (int k = 0; k < steps && !rc; k++) {
			rc = ft_gen_forward(&g, &f, 1, alone + ((size_t)s * steps + k) * V, false, &err);
			f = (struct ft_gen_feed){ 0, seq + plen[s] + k, 1 };
		}
	}
	/* together: sequence s starts s passes late, so prefills meet steps */
	for (int s = 0; s < S && !rc; s++)
		rc = ft_gen_reset(&g, s, plen[s] + steps, &err);
	int done[3] = { 0 };
	for (int pass = 0; pass < steps + S && !rc; pass++) {
		struct ft_gen_feed f[3];
		int who[3], nf = 0;
		for (int s = 0; s < S; s++) {
			if (pass < s || done[s] == steps)
				continue;
			if (done[s] == 0)
				f[nf] = (struct ft_gen_feed){ s, seq, plen[s] };
			else
				f[nf] = (struct ft_gen_feed){ s, seq + plen[s] + done[s] - 1, 1 };
			who[nf++] = s;
		}
		if (!nf)
			continue;
		rc = ft_gen_forward(&g, f, nf, tmp, false, &err);
		for (int i = 0; i < nf && !rc; i++) {
			int s = who[i];
			memcpy(mixed + ((size_t)s * steps + done[s]) * V, tmp + (size_t)i * V,
			       (size_t)V * sizeof *tmp);
			done[s]++;
		}
	}
	if (rc)
		printf("%s\n", err.msg);
	test_cond("batched passes run", rc == 0);
	char descr[300];
	snprintf(descr, sizeof descr, "%s: logits alone and batched bit-identical", name);
	test_cond(descr, !memcmp(alone, mixed, (size_t)S * steps * V * sizeof *alone));
	ft_gen_release(&g);
	free(alone);
	free(mixed);
	free(tmp);
}

#endif
