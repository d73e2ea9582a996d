/* tokenize.h: samples' segments to token ids, as ft-tokenize encodes them
 * and ft-generate encodes its prompts (docs/formats.md, "Token shards").
 * Special tokens are the model's CONTROL and USER_DEFINED pieces (and a
 * tokenizer_config.json's added special tokens that are pieces), recognised
 * only in template text, longest first; each run of text between them is
 * encoded whole, a run that spells a user-defined piece with the model that
 * knows none. A loaded vocab is immutable: encode from many threads at once.
 * Memory: the vocab owns its models and tables; tokens go into the caller's
 * struct ft_spm_tokens. Errors: 0 or FT_E_* with err set. */
#ifndef FT_TOKENIZE_H
#define FT_TOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "ft.h"
#include "sample.h"
#include "spm.h"

struct ft_special {
	const char *text;   /* the piece, owned by the model */
	size_t len;
	int id;
};

struct ft_vocab {
	struct ft_spm *spm;
	/* the model as loaded with FT_SPM_* flags (0: spm), those in use */
	struct ft_spm *variant[4];
	struct ft_special *specials;   /* longest first */
	int nspecial;
	uint8_t first_byte[256];       /* 1 if some special starts with this byte */
	struct ft_special *user;       /* the user-defined ones (for data runs) */
	int nuser;
	bool *ends_turn;               /* per id: EOS or an added end-of-turn piece */
	int bos, eos, vocab_size;
};

/* Load the SentencePiece model at model_path. config (may be NULL) is a
 * parsed tokenizer_config.json named config_name in messages: its added
 * special tokens join the specials; one that is not a piece of the model
 * stays text and gets a line in warnings (may be NULL). prefix_first: the
 * dummy prefix only at a sample's start (Hugging Face legacy=false). */
int ft_vocab_load(struct ft_vocab *v, const char *model_path, const cJSON *config,
		  const char *config_name, bool prefix_first, struct ft_buf *warnings,
		  struct ft_err *err);
void ft_vocab_release(struct ft_vocab *v);
/* Mark piece as ending a turn; FT_E_INVAL if it is not a piece of the model. */
int ft_vocab_add_eot(struct ft_vocab *v, const char *piece);

/* What one encode met. */
struct ft_encode_stats {
	uint32_t specials;     /* special tokens taken from template text */
	uint32_t plain_user;   /* data runs that spelled a user-defined piece */
};

/* Tokens of text[0..len), cut into segs (ft_sample_read), into toks (reset
 * first), with byte offsets into text. st may be NULL. No BOS or EOS is
 * added. */
int ft_vocab_encode(const struct ft_vocab *v, const char *text, size_t len,
		    const struct ft_segments *segs, struct ft_spm_tokens *toks,
		    struct ft_encode_stats *st, struct ft_err *err);

#endif
