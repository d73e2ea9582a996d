/* bleu.c: NLTK's sentence BLEU-4 with smoothing method 3, bit for bit.
 * N-grams are counted by sorting: each n-gram is copied into a fixed
 * 4-token key, the keys of hypothesis and reference are sorted, and equal
 * runs are matched in one merge (O(L log L), no hashing). */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bleu.h"
#include "ft.h"

struct gram {
	int32_t tok[BLEU_N];          /* unused positions are 0 for every key of one n */
};

static int gram_cmp(const void *a, const void *b)
{
	const struct gram *x = a, *y = b;
	for (int i = 0; i < BLEU_N; i++)
		if (x->tok[i] != y->tok[i])
			return x->tok[i] < y->tok[i] ? -1 : 1;
	return 0;
}

/* The n-grams of text[0..len), sorted, into out; returns their number. */
static size_t sorted_grams(const int32_t *text, size_t len, size_t n, struct gram *out)
{
	if (len < n)
		return 0;
	size_t count = len - n + 1;
	for (size_t i = 0; i < count; i++) {
		memset(&out[i], 0, sizeof out[i]);
		memcpy(out[i].tok, text + i, n * sizeof *text);
	}
	qsort(out, count, sizeof *out, gram_cmp);
	return count;
}

/* Length of the run of keys equal to g[i], from i. */
static size_t run_length(const struct gram *g, size_t n, size_t i)
{
	size_t j = i + 1;
	while (j < n && gram_cmp(&g[i], &g[j]) == 0)
		j++;
	return j - i;
}

/* Sum over distinct hypothesis n-grams of min(count in hyp, count in ref):
 * NLTK's clipped counts with a single reference. */
static uint64_t clipped_matches(const struct gram *h, size_t nh, const struct gram *r, size_t nr)
{
	uint64_t matches = 0;
	size_t j = 0;
	for (size_t i = 0; i < nh;) {
		size_t run = run_length(h, nh, i);
		while (j < nr && gram_cmp(&r[j], &h[i]) < 0)
			j++;
		size_t ref_run = j < nr && gram_cmp(&r[j], &h[i]) == 0 ? run_length(r, nr, j) : 0;
		matches += run < ref_run ? run : ref_run;
		i += run;
		j += ref_run;
	}
	return matches;
}

int bleu_count(const int32_t *hyp, size_t nhyp, const int32_t *ref, size_t nref,
	       struct bleu_counts *c)
{
	memset(c, 0, sizeof *c);
	c->hyp_len = nhyp;
	c->ref_len = nref;
	struct gram *hg = malloc((nhyp ? nhyp : 1) * sizeof *hg);
	struct gram *rg = malloc((nref ? nref : 1) * sizeof *rg);
	if (!hg || !rg) {
		free(hg);
		free(rg);
		return FT_E_NOMEM;
	}
	for (size_t n = 1; n <= BLEU_N; n++) {
		size_t nh = sorted_grams(hyp, nhyp, n, hg);
		size_t nr = sorted_grams(ref, nref, n, rg);
		c->matches[n - 1] = clipped_matches(hg, nh, rg, nr);
		c->total[n - 1] = nh ? nh : 1;   /* NLTK: max(1, count) */
	}
	free(hg);
	free(rg);
	return FT_OK;
}

double bleu_fsum(const double *x, size_t n)
{
	double p[16];
	size_t np = 0;
	assert(n <= 16);
	for (size_t k = 0; k < n; k++) {
		double v = x[k];
		size_t i = 0;
		for (size_t j = 0; j < np; j++) {
			double y = p[j];
			if (fabs(v) < fabs(y)) {
				double t = v;
				v = y;
				y = t;
			}
			double hi = v + y;
			double lo = y - (hi - v);
			if (lo != 0.0)
				p[i++] = lo;
			v = hi;
		}
		np = i;
		if (v != 0.0)
			p[np++] = v;
	}
	double hi = 0.0, lo = 0.0;
	if (np == 0)
		return hi;
	hi = p[--np];
	while (np > 0) {
		double v = hi, y = p[--np];
		hi = v + y;
		lo = y - (hi - v);
		if (lo != 0.0)
			break;
	}
	/* half-even rounding across partials (CPython's math_fsum) */
	if (np > 0 && ((lo < 0.0 && p[np - 1] < 0.0) || (lo > 0.0 && p[np - 1] > 0.0))) {
		double y = lo * 2.0;
		double v = hi + y;
		if (y == v - hi)
			hi = v;
	}
	return hi;
}

/* NLTK's brevity_penalty(closest_ref_len, hyp_len). */
static double brevity_penalty(uint64_t ref_len, uint64_t hyp_len)
{
	if (hyp_len > ref_len)
		return 1.0;
	if (hyp_len == 0)
		return 0.0;
	return exp(1.0 - (double)ref_len / (double)hyp_len);
}

double bleu_score(const struct bleu_counts *c)
{
	if (c->matches[0] == 0)
		return 0.0;
	double terms[BLEU_N];
	uint64_t k = 1;   /* mteval-v13a's "k": 1 for the first n without a match */
	for (int n = 0; n < BLEU_N; n++) {
		double p;
		if (c->matches[n])
			p = (double)c->matches[n] / (double)c->total[n];
		else
			p = 1.0 / (double)((c->total[n]) << k++);
		terms[n] = 0.25 * log(p);
	}
	return brevity_penalty(c->ref_len, c->hyp_len) * exp(bleu_fsum(terms, BLEU_N));
}
