/* lexicon.h: offline paraphrase by phrase substitution, ft-augment's
 * network-free backend. A lexicon is a TSV file: each line a group of
 * interchangeable phrases ("国际长途电话<TAB>能打国际长途"); '#' starts a
 * comment line; blank lines are skipped. Paraphrasing scans the text left to
 * right, takes the longest phrase that matches at each character, and with
 * probability p replaces it by another phrase of its group, chosen by a
 * seeded generator: the same text, lexicon and seed give the same result on
 * every machine. Errors: 0 or FT_E_* with err set (err->file, err->line for
 * the lexicon). */
#ifndef FT_LEXICON_H
#define FT_LEXICON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ft.h"

struct ft_lexicon;

int ft_lexicon_load(struct ft_lexicon **lx, const char *path, struct ft_err *err);
/* The same from text in memory (path names it in messages). */
int ft_lexicon_parse(struct ft_lexicon **lx, const char *text, size_t len, const char *path,
		     struct ft_err *err);
void ft_lexicon_free(struct ft_lexicon *lx);
size_t ft_lexicon_phrases(const struct ft_lexicon *lx);

/* Append the paraphrase of text[0..len) (valid UTF-8) to out; the number of
 * substitutions made goes to *nsub. 0 or FT_E_NOMEM. */
int ft_lexicon_paraphrase(const struct ft_lexicon *lx, const char *text, size_t len,
			  uint64_t seed, double p, struct ft_buf *out, long *nsub);

#endif
