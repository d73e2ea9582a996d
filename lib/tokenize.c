/* tokenize.c: sample segments to token ids (contract in tokenize.h; moved
 * here from ft-tokenize so ft-generate encodes prompts the same way). */
#include "tokenize.h"

#include <stdlib.h>
#include <string.h>

static int cmp_special(const void *a, const void *b)
{
	const struct ft_special *x = a, *y = b;
	if (x->len != y->len)
		return x->len < y->len ? 1 : -1;
	return x->id - y->id;
}

/* The config's added special tokens are specials too (e.g. "<unk>"); one
 * the model has no piece for cannot be produced, which is worth a warning. */
static void config_specials(struct ft_vocab *v, const cJSON *c, const char *name,
			    struct ft_buf *warnings)
{
	const cJSON *added = cJSON_GetObjectItemCaseSensitive(c, "added_tokens_decoder");
	const cJSON *t;
	cJSON_ArrayForEach(t, added) {
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(t, "content");
		const cJSON *special = cJSON_GetObjectItemCaseSensitive(t, "special");
		if (!cJSON_IsString(content) || !content->valuestring[0] || cJSON_IsFalse(special))
			continue;
		size_t len = strlen(content->valuestring);
		int id = ft_spm_piece_id(v->spm, content->valuestring, len);
		if (id < 0) {
			if (warnings)
				ft_buf_printf(warnings,
					      "%s: added token '%s' is not a piece of the model: it stays text\n",
					      name, content->valuestring);
			continue;
		}
		bool known = false;
		for (int i = 0; i < v->nspecial; i++)
			known |= v->specials[i].id == id;
		if (known)
			continue;
		const char *p = ft_spm_piece(v->spm, id, NULL);
		v->specials[v->nspecial++] = (struct ft_special){ p, len, id };
		v->first_byte[(unsigned char)p[0]] = 1;
	}
}

int ft_vocab_load(struct ft_vocab *v, const char *model_path, const cJSON *config,
		  const char *config_name, bool prefix_first, struct ft_buf *warnings,
		  struct ft_err *err)
{
	memset(v, 0, sizeof *v);
	int rc = ft_spm_load(&v->spm, model_path, 0, err);
	if (rc)
		return rc;
	v->vocab_size = ft_spm_vocab_size(v->spm);
	v->bos = ft_spm_bos_id(v->spm);
	v->eos = ft_spm_eos_id(v->spm);
	v->variant[0] = v->spm;
	v->ends_turn = calloc((size_t)v->vocab_size, sizeof *v->ends_turn);
	v->specials = calloc((size_t)v->vocab_size, sizeof *v->specials);
	v->user = calloc((size_t)v->vocab_size, sizeof *v->user);
	if (!v->ends_turn || !v->specials || !v->user) {
		ft_vocab_release(v);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	for (int id = 0; id < v->vocab_size; id++) {
		enum ft_spm_type t = ft_spm_type(v->spm, id);
		if (t != FT_SPM_CONTROL && t != FT_SPM_USER_DEFINED)
			continue;
		size_t len;
		const char *p = ft_spm_piece(v->spm, id, &len);
		if (!len)
			continue;
		struct ft_special sp = { p, len, id };
		v->specials[v->nspecial++] = sp;
		v->first_byte[(unsigned char)p[0]] = 1;
		if (t == FT_SPM_USER_DEFINED)
			v->user[v->nuser++] = sp;
	}
	if (config)
		config_specials(v, config, config_name, warnings);
	qsort(v->specials, (size_t)v->nspecial, sizeof *v->specials, cmp_special);
	for (int f = 1; f < 4; f++) {
		if (((f & FT_SPM_PLAIN_USER) && !v->nuser) ||
		    ((f & FT_SPM_NO_DUMMY_PREFIX) && !prefix_first))
			continue;
		if ((rc = ft_spm_load(&v->variant[f], model_path, f, err))) {
			ft_vocab_release(v);
			return rc;
		}
	}
	if (v->eos >= 0)
		v->ends_turn[v->eos] = true;
	return FT_OK;
}

void ft_vocab_release(struct ft_vocab *v)
{
	for (int f = 0; f < 4; f++)
		ft_spm_free(v->variant[f]);
	free(v->specials);
	free(v->user);
	free(v->ends_turn);
	memset(v, 0, sizeof *v);
}

int ft_vocab_add_eot(struct ft_vocab *v, const char *piece)
{
	int id = ft_spm_piece_id(v->spm, piece, strlen(piece));
	if (id < 0)
		return FT_E_INVAL;
	v->ends_turn[id] = true;
	return FT_OK;
}

/* The special token spelled at text[pos..end), longest first, or NULL. */
static const struct ft_special *special_at(const struct ft_vocab *v, const char *text,
					   size_t pos, size_t end)
{
	if (!v->first_byte[(unsigned char)text[pos]])
		return NULL;
	for (int i = 0; i < v->nspecial; i++) {
		const struct ft_special *s = &v->specials[i];
		if (s->len <= end - pos && !memcmp(text + pos, s->text, s->len))
			return s;
	}
	return NULL;
}

static bool spells_user_piece(const struct ft_vocab *v, const char *p, size_t n)
{
	for (int i = 0; i < v->nuser; i++)
		if (memmem(p, n, v->user[i].text, v->user[i].len))
			return true;
	return false;
}

/* Encode text[from..to), a run of plain text, appending to toks. A run
 * that spells a user-defined piece (possible only in data) is encoded with
 * the model that knows no user-defined pieces; with the dummy prefix at the
 * start only, a run after the sample's start without it. */
static int encode_run(const struct ft_vocab *v, const char *text, size_t from, size_t to,
		      struct ft_spm_tokens *toks, struct ft_encode_stats *st, struct ft_err *err)
{
	if (to <= from)
		return 0;
	int f = 0;
	if (v->nuser && spells_user_piece(v, text + from, to - from)) {
		f |= FT_SPM_PLAIN_USER;
		st->plain_user++;
	}
	if (v->variant[FT_SPM_NO_DUMMY_PREFIX] && from > 0)
		f |= FT_SPM_NO_DUMMY_PREFIX;
	return ft_spm_encode(v->variant[f], text + from, to - from, (uint32_t)from, toks, err);
}

int ft_vocab_encode(const struct ft_vocab *v, const char *text, size_t len,
		    const struct ft_segments *segs, struct ft_spm_tokens *toks,
		    struct ft_encode_stats *st, struct ft_err *err)
{
	struct ft_encode_stats dummy;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof *st);
	if (!text)
		text = "";
	if (len > UINT32_MAX / 2)
		return ft_err_set(err, FT_E_TOOBIG, "sample text of %zu bytes is too long", len);
	toks->n = 0;
	size_t run = 0;  /* start of the current run of plain text */
	for (size_t si = 0; si < segs->n; si++) {
		if (segs->v[si].data)
			continue;
		/* a stretch of template text: neighbouring template segments join */
		size_t start = segs->v[si].off, end = start + segs->v[si].len;
		while (si + 1 < segs->n && !segs->v[si + 1].data) {
			si++;
			end = segs->v[si].off + segs->v[si].len;
		}
		for (size_t pos = start; pos < end;) {
			const struct ft_special *s = special_at(v, text, pos, end);
			if (!s) {
				pos++;
				continue;
			}
			int rc = encode_run(v, text, run, pos, toks, st, err);
			if (rc)
				return rc;
			if (ft_spm_tokens_add(toks, s->id, (uint32_t)pos, (uint32_t)(pos + s->len)))
				return ft_err_set(err, FT_E_NOMEM, "out of memory");
			st->specials++;
			pos += s->len;
			run = pos;
		}
	}
	return encode_run(v, text, run, len, toks, st, err);
}
