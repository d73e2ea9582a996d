/* bleu.h: sentence-level BLEU-4 of one hypothesis against one reference, as
 * NLTK 3.8 computes sentence_bleu([ref], hyp, smoothing_function=
 * SmoothingFunction().method3) with the default weights (0.25 each), to the
 * last bit: the same integer counts, the same divisions, log, an exactly
 * rounded sum (Python's math.fsum) and exp. Tokens are whatever the caller
 * chose (ft-eval: Unicode code points, Python's list(text)); the caller owns
 * them. Returns 0, or FT_E_NOMEM. */
#ifndef FT_EVAL_BLEU_H
#define FT_EVAL_BLEU_H

#include <stddef.h>
#include <stdint.h>

#define BLEU_N 4

/* The n-gram statistics of one pair: clipped matches and hypothesis n-grams
 * (NLTK's modified_precision numerator and denominator, the denominator at
 * least 1) for n = 1..4, and the two lengths. */
struct bleu_counts {
	uint64_t matches[BLEU_N], total[BLEU_N];
	uint64_t hyp_len, ref_len;
};

/* Count the n-grams of hyp[0..nhyp) against ref[0..nref). */
int bleu_count(const int32_t *hyp, size_t nhyp, const int32_t *ref, size_t nref,
	       struct bleu_counts *c);

/* The score from the counts: 0 when no unigram matches (NLTK returns 0
 * before smoothing), else brevity penalty times the geometric mean of the
 * precisions, an n with no match taking 1/(2^k * total) for the k-th such n
 * (NIST geometric smoothing, Chen and Cherry 2014 method 3). */
double bleu_score(const struct bleu_counts *c);

/* Python's math.fsum of x[0..n): the correctly rounded sum (Shewchuk's
 * partials, CPython's final half-even correction). n at most 16. */
double bleu_fsum(const double *x, size_t n);

#endif
