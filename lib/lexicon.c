/* lexicon.c: phrase substitution (contract in lexicon.h). Phrases are kept
 * sorted by first byte and then by length, longest first, with an index of
 * where each first byte's run starts: a match at a position tries only the
 * phrases that can start there, longest first. */
#include "lexicon.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "utf8.h"

#define MAX_PHRASE 1024          /* bytes */
#define MAX_PHRASES (1 << 22)

struct phrase {
	const char *s;
	size_t len;
	size_t group;                /* index into group_first */
	size_t index;                /* position in file order */
};

struct ft_lexicon {
	char *text;                  /* the file; phrases point into it */
	struct phrase *ph;           /* file order: group g is ph[group_first[g]..group_first[g+1]) */
	struct phrase *by_start;     /* sorted by first byte, then longest first */
	size_t n, ngroups;
	size_t *group_first;
	size_t start[257];           /* phrases with first byte c: by_start[start[c]..start[c+1]) */
};

static int cmp_phrase(const void *a, const void *b)
{
	const struct phrase *x = a, *y = b;
	unsigned char cx = (unsigned char)x->s[0], cy = (unsigned char)y->s[0];
	if (cx != cy)
		return cx < cy ? -1 : 1;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	/* equal phrases in two groups: the first group in the file wins */
	return (x->index > y->index) - (x->index < y->index);
}

void ft_lexicon_free(struct ft_lexicon *lx)
{
	if (!lx)
		return;
	free(lx->text);
	free(lx->ph);
	free(lx->by_start);
	free(lx->group_first);
	free(lx);
}

size_t ft_lexicon_phrases(const struct ft_lexicon *lx)
{
	return lx->n;
}

static int fail(struct ft_lexicon *lx, struct ft_err *err, const char *path, long line,
		const char *msg)
{
	ft_lexicon_free(lx);
	int rc = ft_err_set(err, FT_E_DATA, "%s", msg);
	if (err) {
		err->file = path;
		err->line = line;
	}
	return rc;
}

int ft_lexicon_parse(struct ft_lexicon **out, const char *text, size_t len, const char *path,
		     struct ft_err *err)
{
	*out = NULL;
	struct ft_lexicon *lx = calloc(1, sizeof *lx);
	if (!lx || !(lx->text = malloc(len + 1))) {
		free(lx);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	memcpy(lx->text, text, len);
	lx->text[len] = 0;
	/* upper bounds: every tab or newline ends a phrase, every newline a group */
	size_t cap = 1, gcap = 1;
	for (size_t i = 0; i < len; i++) {
		cap += text[i] == '\t' || text[i] == '\n';
		gcap += text[i] == '\n';
	}
	if (cap > MAX_PHRASES)
		return fail(lx, err, path, 0, "too many phrases");
	lx->ph = malloc(cap * sizeof *lx->ph);
	lx->by_start = malloc(cap * sizeof *lx->by_start);
	lx->group_first = malloc((gcap + 1) * sizeof *lx->group_first);
	if (!lx->ph || !lx->by_start || !lx->group_first) {
		ft_lexicon_free(lx);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	char *p = lx->text, *end = lx->text + len;
	long line = 0;
	while (p < end) {
		line++;
		char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		char *next = eol < end ? eol + 1 : end;
		if (eol > p && eol[-1] == '\r')
			eol--;
		*eol = 0;
		if (p == eol || *p == '#') {
			p = next;
			continue;
		}
		if (!ft_utf8_valid(p, (size_t)(eol - p), NULL))
			return fail(lx, err, path, line, "not valid UTF-8");
		size_t g = lx->ngroups, before = lx->n;
		lx->group_first[g] = lx->n;
		for (char *f = p;;) {
			char *tab = memchr(f, '\t', (size_t)(eol - f));
			char *fend = tab ? tab : eol;
			size_t flen = (size_t)(fend - f);
			if (flen == 0)
				return fail(lx, err, path, line,
					    "empty phrase (two tabs in a row, or a tab at an end)");
			if (flen > MAX_PHRASE)
				return fail(lx, err, path, line, "phrase longer than 1024 bytes");
			*fend = 0;
			lx->ph[lx->n] = (struct phrase){ f, flen, g, lx->n };
			lx->n++;
			if (!tab)
				break;
			f = tab + 1;
		}
		if (lx->n - before < 2)
			return fail(lx, err, path, line, "a group needs at least two phrases");
		lx->ngroups++;
		p = next;
	}
	lx->group_first[lx->ngroups] = lx->n;
	memcpy(lx->by_start, lx->ph, lx->n * sizeof *lx->ph);
	qsort(lx->by_start, lx->n, sizeof *lx->by_start, cmp_phrase);
	size_t c = 0;
	for (int b = 0; b < 256; b++) {
		lx->start[b] = c;
		while (c < lx->n && (unsigned char)lx->by_start[c].s[0] == b)
			c++;
	}
	lx->start[256] = lx->n;
	*out = lx;
	return FT_OK;
}

int ft_lexicon_load(struct ft_lexicon **lx, const char *path, struct ft_err *err)
{
	struct ft_buf b;
	ft_buf_init(&b, (size_t)1 << 30);
	int rc = ft_buf_read_file(&b, path, err);
	if (!rc)
		rc = ft_lexicon_parse(lx, b.data ? b.data : "", b.len, path, err);
	ft_buf_release(&b);
	return rc;
}

int ft_lexicon_paraphrase(const struct ft_lexicon *lx, const char *text, size_t len,
			  uint64_t seed, double p, struct ft_buf *out, long *nsub)
{
	uint64_t rng = seed;
	long subs = 0;
	size_t i = 0;
	int rc = 0;
	while (i < len && !rc) {
		unsigned char c = (unsigned char)text[i];
		const struct phrase *hit = NULL;
		for (size_t k = lx->start[c]; k < lx->start[c + 1]; k++) {
			const struct phrase *ph = &lx->by_start[k];
			if (ph->len <= len - i && memcmp(text + i, ph->s, ph->len) == 0) {
				hit = ph;
				break;
			}
		}
		if (!hit) {
			/* copy one whole UTF-8 character: matches start on characters */
			size_t n = 1;
			while (i + n < len && ((unsigned char)text[i + n] & 0xC0) == 0x80)
				n++;
			rc = ft_buf_append(out, text + i, n);
			i += n;
			continue;
		}
		size_t first = lx->group_first[hit->group];
		size_t k = lx->group_first[hit->group + 1] - first;
		if (ft_hash_unit(ft_splitmix64(&rng)) < p) {
			size_t r = (size_t)(ft_splitmix64(&rng) % (k - 1));
			if (first + r >= hit->index)
				r++;   /* any other member of the group */
			const struct phrase *to = &lx->ph[first + r];
			rc = ft_buf_append(out, to->s, to->len);
			subs++;
		} else {
			rc = ft_buf_append(out, hit->s, hit->len);
		}
		i += hit->len;
	}
	if (nsub)
		*nsub = subs;
	return rc ? FT_E_NOMEM : FT_OK;
}
