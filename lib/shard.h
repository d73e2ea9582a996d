/* shard.h: ft's token shards, the one contract between ft-tokenize and the
 * trainer (byte layout in docs/shard-format.md). A shard holds n_rows rows
 * of seq_len token ids, a loss mask byte per position (1 = trained), and
 * the documents placed in each row, so a trainer resets positions and
 * blocks attention at document boundaries. Every section is 64-byte aligned
 * and CRC32-checked; the file is little-endian and written atomically.
 * Writers own their buffers; an open shard owns its read-only mapping.
 * Functions return 0 or a negative FT_E_* code with a message in err. */
#ifndef FT_SHARD_H
#define FT_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ft.h"

#define FT_SHARD_MAGIC "FTSHARD"   /* 8 bytes on disk, with the NUL */
#define FT_SHARD_VERSION 1
#define FT_SHARD_HEADER_SIZE 256
#define FT_SHARD_ALIGN 64

enum ft_shard_section {
	FT_SHARD_TOKENS,   /* n_rows * seq_len ids, uint16 or uint32 (token_bytes) */
	FT_SHARD_MASK,     /* n_rows * seq_len bytes, 1 = trained, 0 = not */
	FT_SHARD_DOCS,     /* n_docs struct ft_shard_doc, in row order, then start */
	FT_SHARD_ROWS,     /* n_rows + 1 uint64: docs of row r are [rows[r], rows[r+1]) */
	FT_SHARD_NSECTIONS
};

/* header flags */
enum {
	FT_SHARD_PACKED = 1 << 0,   /* rows may hold several documents (--pack) */
};

/* document flags */
enum {
	FT_DOC_TRUNCATED = 1 << 0,  /* tokens were cut to fit (--truncate) */
	FT_DOC_CONTINUED = 1 << 1,  /* a later piece of a --split-long sample */
	FT_DOC_SPLIT = 1 << 2,      /* any piece of a --split-long sample */
};

/* One document in a row (24 bytes on disk, this layout). Positions of a
 * row outside every document are padding: token pad_id, mask 0. */
struct ft_shard_doc {
	uint64_t sample;  /* 0-based index of the sample in the tokenizer's input */
	uint32_t row;     /* row within this shard */
	uint32_t start;   /* first position in the row */
	uint32_t len;     /* tokens, >= 1; start + len <= seq_len */
	uint32_t flags;   /* FT_DOC_* */
};

struct ft_shard_section_info {
	uint64_t offset, size;  /* bytes from the start of the file */
	uint32_t crc32;         /* zlib crc32 of the section's bytes */
};

struct ft_shard_header {
	uint32_t version;
	uint32_t vocab_size;
	uint32_t token_bytes;   /* 2 when vocab_size <= 65536, else 4 */
	uint32_t seq_len;
	uint32_t flags;         /* FT_SHARD_* */
	uint64_t n_rows, n_docs;
	uint64_t n_trained;     /* positions with mask 1 */
	uint64_t n_pad;         /* positions outside every document */
	int32_t pad_id, bos_id, eos_id;  /* -1 when the tokenizer has none */
	uint8_t tokenizer[32];  /* SHA-256 of the tokenizer model file */
	struct ft_shard_section_info section[FT_SHARD_NSECTIONS];
};

/* What a writer needs up front. */
struct ft_shard_meta {
	uint32_t vocab_size, seq_len, flags;
	int32_t pad_id, bos_id, eos_id;
	uint8_t tokenizer[32];
};

/* Writing: rows are streamed in; memory stays bounded (the token and mask
 * sections go to disk as rows arrive). Nothing is visible at path until
 * ft_shard_writer_commit() succeeds; abort (or a crash) leaves no file. */
struct ft_shard_writer;
int ft_shard_writer_open(struct ft_shard_writer **w, const char *path,
			 const struct ft_shard_meta *meta, struct ft_err *err);
/* Append one row: seq_len tokens and mask bytes, and its ndocs documents in
 * position order (their row field is set by the writer). Ids must be below
 * vocab_size; padding positions must hold pad_id and mask 0. */
int ft_shard_writer_add_row(struct ft_shard_writer *w, const int32_t *tokens,
			    const uint8_t *mask, const struct ft_shard_doc *docs, size_t ndocs,
			    struct ft_err *err);
uint64_t ft_shard_writer_rows(const struct ft_shard_writer *w);
/* Finish: header written, fsync, rename into place; frees w. The final
 * header is copied to hdr when not NULL. */
int ft_shard_writer_commit(struct ft_shard_writer *w, struct ft_shard_header *hdr,
			   struct ft_err *err);
void ft_shard_writer_abort(struct ft_shard_writer *w);

/* Reading: a shard mapped read-only. The header and the layout are always
 * checked (magic, version, sizes, offsets, header CRC, docs in bounds);
 * FT_SHARD_VERIFY also checks every section's CRC, which reads the file.
 * Errors about the file itself set err->file to the path given (the
 * caller's string; for a set, the index's path). */
enum { FT_SHARD_VERIFY = 1 << 0 };
struct ft_shard {
	struct ft_shard_header h;
	const uint8_t *map;
	size_t map_len;
	const uint8_t *tokens;   /* token_bytes per id, little-endian */
	const uint8_t *mask;
	const struct ft_shard_doc *docs;
	const uint64_t *rows;
	char *path;
};
int ft_shard_open(struct ft_shard **s, const char *path, int flags, struct ft_err *err);
void ft_shard_close(struct ft_shard *s);
/* The header's own crc32 (bytes 252..256), as an index records it. */
uint32_t ft_shard_header_crc(const struct ft_shard *s);
/* "tokens", "mask", "docs", "rows"; NULL out of range. */
const char *ft_shard_section_name(int section);
static inline uint32_t ft_shard_token(const struct ft_shard *s, uint64_t row, uint32_t pos)
{
	uint64_t i = row * s->h.seq_len + pos;
	const uint8_t *p = s->tokens + i * s->h.token_bytes;
	return s->h.token_bytes == 2 ? (uint32_t)(p[0] | p[1] << 8)
				     : (uint32_t)p[0] | (uint32_t)p[1] << 8 |
					       (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A set of shards: what ft-train and ft-shard open. path is either one
 * shard or a shard index (JSON, "format": "ft-shard-index"), whose shard
 * paths are relative to the index's directory. All shards must agree on
 * tokenizer, vocab_size, token_bytes and seq_len. Rows are numbered across
 * the set in index order. */
struct ft_shard_set {
	struct ft_shard **shards;
	size_t n;
	uint64_t n_rows, n_docs, n_trained, n_pad;
	uint64_t *first_row;  /* n + 1: global row of each shard's row 0, then n_rows
			       * (filled by ft_shard_set_open; may be NULL) */
};
int ft_shard_set_open(struct ft_shard_set *set, const char *path, int flags, struct ft_err *err);
void ft_shard_set_release(struct ft_shard_set *set);
/* The shard holding global row r, and r's row within it. */
const struct ft_shard *ft_shard_set_row(const struct ft_shard_set *set, uint64_t r,
					uint64_t *local);

/* Write an index listing shard files (paths as they should appear in the
 * index, relative to its directory), atomically. Each shard is opened and
 * its header checked; they must agree as in a set. */
int ft_shard_index_write(const char *path, const char *const *shards, size_t n,
			 struct ft_err *err);

#endif
