/* safetensors.h: read and write Hugging Face safetensors files.
 * Format: an 8-byte little-endian header length N, N bytes of JSON mapping
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data that follows the header; an optional "__metadata__"
 * object of strings), then the data. The reader maps the file read-only and
 * trusts nothing: N is bounded (FT_ST_HEADER_MAX) and inside the file, the
 * JSON must parse, every dtype be known, shapes overflow-free, offsets in
 * bounds, size == numel * dtype size, and the tensors must tile the data
 * exactly (no overlaps, no holes: the spec forbids both). A hostile file is
 * FT_E_PARSE/FT_E_DATA/FT_E_TOOBIG, never an out-of-bounds access.
 * Memory: struct ft_st_file owns the mapping and the tensor table; tensor
 * data pointers stay valid until ft_st_close(). Conversion to fp32 is
 * supported for F32, F16 and BF16; other known dtypes open but refuse to
 * convert. The writer keeps pointers to the caller's fp32 data until
 * ft_st_writer_commit() and writes atomically (lib/out.h). */
#ifndef FT_SAFETENSORS_H
#define FT_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ft.h"

#define FT_ST_HEADER_MAX ((uint64_t)100 << 20)  /* as the reference reader */
#define FT_ST_MAX_DIMS 8
#define FT_ST_NAME_MAX 512

enum ft_dtype {
	FT_DT_F32,
	FT_DT_F16,
	FT_DT_BF16,
	/* known to the format, opened and bounds-checked but not convertible */
	FT_DT_F64,
	FT_DT_I64,
	FT_DT_I32,
	FT_DT_I16,
	FT_DT_I8,
	FT_DT_U8,
	FT_DT_BOOL,
	FT_DT_F8_E4M3,
	FT_DT_F8_E5M2,
	FT_DT_U16,
	FT_DT_U32,
	FT_DT_U64,
	FT_DT_COUNT
};

const char *ft_dtype_name(enum ft_dtype dt);   /* "F32", "BF16", ... */
size_t ft_dtype_size(enum ft_dtype dt);        /* bytes per element */

struct ft_st_tensor {
	char *name;
	enum ft_dtype dtype;
	int ndim;
	int64_t shape[FT_ST_MAX_DIMS];
	size_t numel;
	const void *data;     /* into the mapping; not necessarily aligned */
	size_t nbytes;
};

struct ft_st_file {
	char *path;
	void *map;
	size_t map_len;
	struct ft_st_tensor *tensors;  /* sorted by name, names unique */
	size_t ntensors;
	char **meta;                   /* __metadata__ as key, value pairs */
	size_t nmeta;
};

/* Map and validate path. On error f is left closed (ft_st_close is a no-op). */
int ft_st_open(struct ft_st_file *f, const char *path, struct ft_err *err);
/* Validate an in-memory image (the same checks; data must outlive f; the
 * mapping is not freed by ft_st_close). Used by tests and fuzzers. */
int ft_st_open_mem(struct ft_st_file *f, const void *data, size_t len, struct ft_err *err);
void ft_st_close(struct ft_st_file *f);
const struct ft_st_tensor *ft_st_find(const struct ft_st_file *f, const char *name);
const char *ft_st_meta(const struct ft_st_file *f, const char *key);

/* Convert t to fp32 into dst[0..n); n must equal t->numel. */
int ft_st_to_f32(const struct ft_st_tensor *t, float *dst, size_t n, struct ft_err *err);

/* fp16/bf16 <-> fp32 (round to nearest even, NaN kept NaN). */
float ft_bf16_to_f32(uint16_t h);
uint16_t ft_f32_to_bf16(float f);
float ft_f16_to_f32(uint16_t h);
uint16_t ft_f32_to_f16(float f);

/* A model's weights: model.safetensors, or the shards that
 * model.safetensors.index.json names (its weight_map must match what the
 * shards hold: every tensor in the file the index says, shard names plain
 * file names in the directory). Names are unique across shards. */
struct ft_st_model {
	struct ft_st_file *files;
	size_t nfiles;
};

int ft_st_model_open(struct ft_st_model *m, const char *dir, struct ft_err *err);
void ft_st_model_close(struct ft_st_model *m);
const struct ft_st_tensor *ft_st_model_find(const struct ft_st_model *m, const char *name);

/* Writer. Tensors are written in the order added; the header is padded
 * with spaces to a multiple of 8 bytes, as the reference writer does. */
struct ft_st_wtensor {
	char *name;
	enum ft_dtype dtype;        /* F32, F16 or BF16 */
	int ndim;
	int64_t shape[FT_ST_MAX_DIMS];
	size_t numel;
	const float *data;          /* caller's, fp32 */
};

struct ft_st_writer {
	struct ft_st_wtensor *tensors;
	size_t n, cap;
	char **meta;
	size_t nmeta;
};

void ft_st_writer_init(struct ft_st_writer *w);
void ft_st_writer_release(struct ft_st_writer *w);
/* Add a tensor from fp32 data, stored as dtype; data must stay valid until
 * commit. Duplicate names are FT_E_INVAL. */
int ft_st_writer_add(struct ft_st_writer *w, const char *name, enum ft_dtype dtype,
		     const int64_t *shape, int ndim, const float *data, struct ft_err *err);
int ft_st_writer_meta(struct ft_st_writer *w, const char *key, const char *value,
		      struct ft_err *err);
/* Write everything to path atomically. */
int ft_st_writer_commit(struct ft_st_writer *w, const char *path, struct ft_err *err);

#endif
