/* spm.h: a C interface over SentencePiece (Debian's libsentencepiece), the
 * only C++ in the project (spm.cc). A loaded model is immutable and its
 * encode/decode functions are safe to call from many threads at once.
 * Results go into caller-owned growable arrays (struct ft_spm_tokens,
 * struct ft_buf); functions return 0 or a negative FT_E_* code with a
 * message in err. Byte offsets always refer to the caller's input bytes
 * (SentencePiece maps them back through normalisation). */
#ifndef FT_SPM_H
#define FT_SPM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ft.h"

struct ft_spm;

/* Piece types, as SentencePiece's model proto numbers them. */
enum ft_spm_type {
	FT_SPM_NORMAL = 1,
	FT_SPM_UNKNOWN = 2,
	FT_SPM_CONTROL = 3,
	FT_SPM_USER_DEFINED = 4,
	FT_SPM_UNUSED = 5,
	FT_SPM_BYTE = 6,
};

/* Tokens of one encode: ids[i] covers input bytes [begin[i], end[i]).
 * Byte-fallback pieces of one character share its span: all but the last
 * have begin == end == the character's first byte. */
struct ft_spm_tokens {
	int32_t *ids;
	uint32_t *begin, *end;
	size_t n, cap;
};

void ft_spm_tokens_init(struct ft_spm_tokens *t);
void ft_spm_tokens_release(struct ft_spm_tokens *t);
/* Append one token (a special the caller found itself); 0 or FT_E_NOMEM. */
int ft_spm_tokens_add(struct ft_spm_tokens *t, int32_t id, uint32_t begin, uint32_t end);

/* Load a .model file, as it is or changed in memory (the file is never
 * touched): FT_SPM_PLAIN_USER loads user-defined pieces as unused, so text
 * that spells them is encoded as plain text; FT_SPM_NO_DUMMY_PREFIX turns
 * off the "▁" the model puts before every sentence (for text that follows
 * a special token, as Hugging Face's non-legacy Llama tokenizer encodes it).
 * The fingerprint is always the file's. */
enum { FT_SPM_PLAIN_USER = 1 << 0, FT_SPM_NO_DUMMY_PREFIX = 1 << 1 };
int ft_spm_load(struct ft_spm **out, const char *path, int flags, struct ft_err *err);
void ft_spm_free(struct ft_spm *m);

int ft_spm_vocab_size(const struct ft_spm *m);
/* -1 when the model has none */
int ft_spm_bos_id(const struct ft_spm *m);
int ft_spm_eos_id(const struct ft_spm *m);
int ft_spm_pad_id(const struct ft_spm *m);
int ft_spm_unk_id(const struct ft_spm *m);
/* SHA-256 of the model file's bytes: `sha256sum tokenizer.model` */
const uint8_t *ft_spm_fingerprint(const struct ft_spm *m);  /* 32 bytes */

enum ft_spm_type ft_spm_type(const struct ft_spm *m, int id);
/* The piece's text (NUL-terminated, owned by the model); NULL if id is out
 * of range. */
const char *ft_spm_piece(const struct ft_spm *m, int id, size_t *len);
/* The id of a piece spelled exactly p[0..len), or -1 (never unk). */
int ft_spm_piece_id(const struct ft_spm *m, const char *p, size_t len);

/* Append the tokens of text[0..len) to out (offsets relative to text, plus
 * base). Text is encoded as one sentence, with the model's normalisation
 * and dummy prefix, exactly as spm_encode and Python's encode() do. */
int ft_spm_encode(const struct ft_spm *m, const char *text, size_t len, uint32_t base,
		  struct ft_spm_tokens *out, struct ft_err *err);

/* Append the decoded text of ids[0..n) to out, as DecodeIds does for one
 * sentence. When starts is not NULL, starts[i] receives the offset in out
 * where token i's text begins (tokens that print nothing get the offset of
 * the next text). Control ids print nothing; callers that want them shown
 * decode the runs between them separately. */
int ft_spm_decode(const struct ft_spm *m, const int32_t *ids, size_t n, struct ft_buf *out,
		  size_t *starts, struct ft_err *err);

/* The model file's protobuf, walked in C (spmproto.c): bounded, exposed
 * for tests and fuzzing. SentencePiece's C++ API does not tell
 * user-defined pieces from normal ones, so the types come from here.
 * ft_spm_proto_types: *types (malloc'd, one enum ft_spm_type per piece,
 * caller frees) and *npieces. ft_spm_proto_rewrite: the model changed as
 * the FT_SPM_* load flags say, into out; *changed: how many fields. */
int ft_spm_proto_types(const uint8_t *p, size_t n, uint8_t **types, size_t *npieces,
		       struct ft_err *err);
int ft_spm_proto_rewrite(const uint8_t *p, size_t n, int flags, struct ft_buf *out, int *changed,
			 struct ft_err *err);

#endif
