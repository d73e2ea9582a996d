/* The parts of SentencePiece's ModelProto (sentencepiece_model.proto) that
 * ft needs, read straight from the protobuf wire format: field 1 of the
 * model is a repeated SentencePiece message whose field 3 is its type
 * (varint, NORMAL when absent). Every length is checked against what is
 * left, so a hostile file is an error, never an overread. */
#include <stdlib.h>
#include <string.h>

#include "spm.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct cursor {
	const uint8_t *p, *end;
};

static int varint(struct cursor *c, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (c->p == c->end)
			return -1;
		uint8_t b = *c->p++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

/* One field: its number, wire type and the bytes of its value (for LEN, the
 * payload; for others, the encoded value). */
struct field {
	uint64_t num;
	int wt;
	const uint8_t *start;  /* first byte of the tag */
	const uint8_t *val, *val_end;
	uint64_t ival;
};

static int next_field(struct cursor *c, struct field *f)
{
	uint64_t tag;
	f->start = c->p;
	if (varint(c, &tag) || (tag >> 3) == 0)
		return -1;
	f->num = tag >> 3;
	f->wt = (int)(tag & 7);
	f->val = c->p;
	switch (f->wt) {
	case WT_VARINT:
		if (varint(c, &f->ival))
			return -1;
		break;
	case WT_I64:
	case WT_I32: {
		size_t k = f->wt == WT_I64 ? 8 : 4;
		if ((size_t)(c->end - c->p) < k)
			return -1;
		c->p += k;
		break;
	}
	case WT_LEN: {
		uint64_t len;
		if (varint(c, &len) || len > (uint64_t)(c->end - c->p))
			return -1;
		f->val = c->p;
		c->p += len;
		break;
	}
	default:
		return -1;  /* groups (3, 4) are not used by this proto */
	}
	f->val_end = c->p;
	return 0;
}

/* The type of one SentencePiece message, or -1 if it is malformed. */
static int piece_type(const uint8_t *p, const uint8_t *end)
{
	struct cursor c = { p, end };
	int type = FT_SPM_NORMAL;
	struct field f;
	while (c.p < c.end) {
		if (next_field(&c, &f))
			return -1;
		if (f.num == 3) {
			if (f.wt != WT_VARINT || f.ival < FT_SPM_NORMAL || f.ival > FT_SPM_BYTE)
				return -1;
			type = (int)f.ival;
		}
	}
	return type;
}

#define MAX_PIECES (1u << 24)

int ft_spm_proto_types(const uint8_t *p, size_t n, uint8_t **types, size_t *npieces,
		       struct ft_err *err)
{
	struct cursor c = { p, p + n };
	struct field f;
	size_t cap = 0, count = 0;
	uint8_t *t = NULL;
	*types = NULL;
	*npieces = 0;
	while (c.p < c.end) {
		if (next_field(&c, &f))
			goto bad;
		if (f.num != 1)
			continue;
		int type = f.wt == WT_LEN ? piece_type(f.val, f.val_end) : -1;
		if (type < 0)
			goto bad;
		if (count == MAX_PIECES) {
			free(t);
			return ft_err_set(err, FT_E_TOOBIG, "tokenizer model has more than %u pieces",
					  MAX_PIECES);
		}
		if (count == cap) {
			cap = cap ? 2 * cap : 1024;
			uint8_t *nt = realloc(t, cap);
			if (!nt) {
				free(t);
				return ft_err_set(err, FT_E_NOMEM, "out of memory");
			}
			t = nt;
		}
		t[count++] = (uint8_t)type;
	}
	if (!count) {
		free(t);
		return ft_err_set(err, FT_E_PARSE, "not a SentencePiece model (no pieces)");
	}
	*types = t;
	*npieces = count;
	return 0;
bad:
	free(t);
	return ft_err_set(err, FT_E_PARSE, "not a SentencePiece model (bad protobuf at byte %zu)",
			  (size_t)(f.start - p));
}

static int put_varint(struct ft_buf *b, uint64_t v)
{
	uint8_t tmp[10];
	int k = 0;
	do {
		tmp[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return ft_buf_append(b, tmp, (size_t)k);
}

/* NormalizerSpec (field 3 of the model) with add_dummy_prefix (its field
 * 3) set to false. */
static int normalizer_no_prefix(const struct field *f, struct ft_buf *out)
{
	struct ft_buf spec;
	struct cursor c = { f->val, f->val_end };
	struct field nf;
	int rc = 0;
	ft_buf_init(&spec, 0);
	while (c.p < c.end && !rc) {
		if (next_field(&c, &nf))
			rc = FT_E_PARSE;
		else if (nf.num != 3 && ft_buf_append(&spec, nf.start, (size_t)(nf.val_end - nf.start)))
			rc = FT_E_NOMEM;
	}
	if (!rc && (put_varint(&spec, 3 << 3 | WT_VARINT) || put_varint(&spec, 0) ||
		    put_varint(out, 3 << 3 | WT_LEN) || put_varint(out, spec.len) ||
		    ft_buf_append(out, spec.data, spec.len)))
		rc = FT_E_NOMEM;
	ft_buf_release(&spec);
	return rc;
}

int ft_spm_proto_rewrite(const uint8_t *p, size_t n, int flags, struct ft_buf *out, int *changed,
			 struct ft_err *err)
{
	struct cursor c = { p, p + n };
	struct field f;
	struct ft_buf piece;
	int rc = 0;
	*changed = 0;
	ft_buf_init(&piece, 0);
	while (c.p < c.end) {
		if (next_field(&c, &f)) {
			rc = ft_err_set(err, FT_E_PARSE, "not a SentencePiece model (bad protobuf at byte %zu)",
					(size_t)(f.start - p));
			break;
		}
		if (f.num == 3 && f.wt == WT_LEN && (flags & FT_SPM_NO_DUMMY_PREFIX)) {
			int nrc = normalizer_no_prefix(&f, out);
			if (nrc == FT_E_NOMEM)
				goto nomem;
			if (nrc) {
				rc = ft_err_set(err, FT_E_PARSE, "not a SentencePiece model (bad normalizer spec)");
				break;
			}
			(*changed)++;
			continue;
		}
		int type = f.num == 1 && f.wt == WT_LEN ? piece_type(f.val, f.val_end) : 0;
		if (type < 0) {
			rc = ft_err_set(err, FT_E_PARSE, "not a SentencePiece model (bad piece at byte %zu)",
					(size_t)(f.start - p));
			break;
		}
		if (type != FT_SPM_USER_DEFINED || !(flags & FT_SPM_PLAIN_USER)) {
			if (ft_buf_append(out, f.start, (size_t)(f.val_end - f.start)))
				goto nomem;
			continue;
		}
		/* the piece without its type fields, then type = UNUSED */
		ft_buf_reset(&piece);
		struct cursor pc = { f.val, f.val_end };
		struct field pf;
		while (pc.p < pc.end) {
			next_field(&pc, &pf);  /* checked by piece_type */
			if (pf.num != 3 && ft_buf_append(&piece, pf.start, (size_t)(pf.val_end - pf.start)))
				goto nomem;
		}
		if (put_varint(&piece, 3 << 3 | WT_VARINT) || put_varint(&piece, FT_SPM_UNUSED) ||
		    put_varint(out, 1 << 3 | WT_LEN) || put_varint(out, piece.len) ||
		    ft_buf_append(out, piece.data, piece.len))
			goto nomem;
		(*changed)++;
	}
	ft_buf_release(&piece);
	return rc;
nomem:
	ft_buf_release(&piece);
	return ft_err_set(err, FT_E_NOMEM, "out of memory");
}
