/* safetensors.c: the safetensors reader and writer (format described in
 * safetensors.h and https://huggingface.co/docs/safetensors). Every number
 * taken from a file is checked before it is used in arithmetic: shapes are
 * multiplied with overflow checks, offsets compared against the data length,
 * and the tensors sorted by offset must cover the data exactly. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"
#include "out.h"

#define INDEX_MAX ((size_t)64 << 20)   /* model.safetensors.index.json */

static const struct {
	const char *name;
	size_t size;
} dtypes[FT_DT_COUNT] = {
	[FT_DT_F32] = { "F32", 4 },   [FT_DT_F16] = { "F16", 2 },
	[FT_DT_BF16] = { "BF16", 2 }, [FT_DT_F64] = { "F64", 8 },
	[FT_DT_I64] = { "I64", 8 },   [FT_DT_I32] = { "I32", 4 },
	[FT_DT_I16] = { "I16", 2 },   [FT_DT_I8] = { "I8", 1 },
	[FT_DT_U8] = { "U8", 1 },     [FT_DT_BOOL] = { "BOOL", 1 },
	[FT_DT_F8_E4M3] = { "F8_E4M3", 1 }, [FT_DT_F8_E5M2] = { "F8_E5M2", 1 },
	[FT_DT_U16] = { "U16", 2 },   [FT_DT_U32] = { "U32", 4 },
	[FT_DT_U64] = { "U64", 8 },
};

const char *ft_dtype_name(enum ft_dtype dt)
{
	return (unsigned)dt < FT_DT_COUNT ? dtypes[dt].name : "?";
}

size_t ft_dtype_size(enum ft_dtype dt)
{
	return (unsigned)dt < FT_DT_COUNT ? dtypes[dt].size : 0;
}

/* ---- fp16 / bf16 ------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

float ft_bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t ft_f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);
	if ((u & 0x7fffffffu) > 0x7f800000u)         /* NaN: keep it quiet and NaN */
		return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1);              /* round to nearest even */
	return (uint16_t)(u >> 16);
}

float ft_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	if (exp == 0x1f)                              /* inf, NaN */
		return bits_f32(sign | 0x7f800000u | (man << 13));
	if (exp == 0) {                               /* zero, subnormal: man * 2^-24 */
		float v = (float)man * 0x1p-24f;
		return sign ? -v : v;
	}
	return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ft_f32_to_f16(float f)
{
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
	uint32_t a = u & 0x7fffffffu;
	if (a > 0x7f800000u)
		return sign | 0x7e00;
	if (a >= 0x477ff000u)                        /* rounds to >= 65520: inf */
		return sign | 0x7c00;
	if (a < 0x38800000u) {                       /* below 2^-14: subnormal or 0 */
		/* a float in [0, 2^-14): value/2^-24 rounded to nearest even */
		float v = bits_f32(a) * 0x1p24f;
		return sign | (uint16_t)lrintf(v);       /* default rounding: even */
	}
	uint32_t r = a + 0xfffu + ((a >> 13) & 1);   /* round mantissa to 10 bits */
	return sign | (uint16_t)((r - (112u << 23)) >> 13);
}

/* ---- reader ------------------------------------------------------------ */

/* Prefix err's message (the copy avoids vsnprintf from and into msg). */
static int err_prefix(struct ft_err *err, int code, const char *prefix)
{
	char msg[FT_ERR_MSG];
	snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
	return ft_err_set(err, code, "%s%s", prefix, msg);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct ft_st_tensor *)a)->name,
		      ((const struct ft_st_tensor *)b)->name);
}

struct span {
	uint64_t begin, end;
	size_t idx;
};

static int by_begin(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

static void free_tables(struct ft_st_file *f)
{
	for (size_t i = 0; i < f->ntensors; i++)
		free(f->tensors[i].name);
	free(f->tensors);
	for (size_t i = 0; i < 2 * f->nmeta; i++)
		free(f->meta[i]);
	free(f->meta);
	f->tensors = NULL;
	f->meta = NULL;
	f->ntensors = f->nmeta = 0;
}

/* A non-negative JSON integer, at most max; -1 if not one. */
static int64_t json_uint(const cJSON *n, int64_t max)
{
	if (!ft_json_is_int(n))
		return -1;
	int64_t v = ft_json_int(n);
	return v < 0 || v > max ? -1 : v;
}

static int parse_meta(struct ft_st_file *f, const cJSON *meta, struct ft_err *err)
{
	if (!cJSON_IsObject(meta))
		return ft_err_set(err, FT_E_PARSE, "'__metadata__' is not an object");
	size_t n = (size_t)cJSON_GetArraySize(meta);
	f->meta = calloc(2 * n + 1, sizeof *f->meta);
	if (!f->meta)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	for (const cJSON *m = meta->child; m; m = m->next) {
		if (!cJSON_IsString(m))
			return ft_err_set(err, FT_E_PARSE, "metadata '%s' is not a string",
					  m->string);
		char *k = strdup(m->string), *v = strdup(m->valuestring);
		f->meta[2 * f->nmeta] = k;
		f->meta[2 * f->nmeta + 1] = v;
		f->nmeta++;
		if (!k || !v)
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	return FT_OK;
}

static int parse_tensor(struct ft_st_tensor *t, const cJSON *j, size_t data_len,
			uint64_t *begin, uint64_t *end, struct ft_err *err)
{
	const char *name = t->name;
	if (!cJSON_IsObject(j))
		return ft_err_set(err, FT_E_PARSE, "tensor '%s': entry is not an object", name);
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
	if (!cJSON_IsString(dt))
		return ft_err_set(err, FT_E_PARSE, "tensor '%s': missing or bad 'dtype'", name);
	int d;
	for (d = 0; d < FT_DT_COUNT; d++)
		if (strcmp(dt->valuestring, dtypes[d].name) == 0)
			break;
	if (d == FT_DT_COUNT)
		return ft_err_set(err, FT_E_PARSE, "tensor '%s': unknown dtype '%.32s'", name,
				  dt->valuestring);
	t->dtype = (enum ft_dtype)d;
	if (!cJSON_IsArray(sh))
		return ft_err_set(err, FT_E_PARSE, "tensor '%s': missing or bad 'shape'", name);
	int ndim = cJSON_GetArraySize(sh);
	if (ndim > FT_ST_MAX_DIMS)
		return ft_err_set(err, FT_E_DATA, "tensor '%s': %d dimensions, at most %d", name,
				  ndim, FT_ST_MAX_DIMS);
	t->ndim = ndim;
	size_t numel = 1;
	int k = 0;
	for (const cJSON *e = sh->child; e; e = e->next, k++) {
		int64_t v = json_uint(e, INT64_MAX);
		if (v < 0)
			return ft_err_set(err, FT_E_PARSE, "tensor '%s': bad dimension %d", name, k);
		t->shape[k] = v;
		if (v != 0 && numel > SIZE_MAX / (uint64_t)v)
			return ft_err_set(err, FT_E_DATA, "tensor '%s': shape overflows", name);
		numel *= (size_t)v;
	}
	size_t esz = dtypes[d].size;
	if (numel > SIZE_MAX / esz)
		return ft_err_set(err, FT_E_DATA, "tensor '%s': shape overflows", name);
	t->numel = numel;
	t->nbytes = numel * esz;
	if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
		return ft_err_set(err, FT_E_PARSE, "tensor '%s': missing or bad 'data_offsets'",
				  name);
	int64_t b = json_uint(off->child, INT64_MAX), e = json_uint(off->child->next, INT64_MAX);
	if (b < 0 || e < 0)
		return ft_err_set(err, FT_E_PARSE, "tensor '%s': bad 'data_offsets'", name);
	if (b > e || (uint64_t)e > data_len)
		return ft_err_set(err, FT_E_DATA,
				  "tensor '%s': data_offsets [%lld, %lld] outside the %zu data bytes",
				  name, (long long)b, (long long)e, data_len);
	if ((uint64_t)(e - b) != t->nbytes)
		return ft_err_set(err, FT_E_DATA,
				  "tensor '%s': %lld data bytes for %zu elements of %s", name,
				  (long long)(e - b), numel, dtypes[d].name);
	*begin = (uint64_t)b;
	*end = (uint64_t)e;
	return FT_OK;
}

static int parse_header(struct ft_st_file *f, const unsigned char *p, size_t len,
			struct ft_err *err)
{
	if (len < 8)
		return ft_err_set(err, FT_E_PARSE, "file of %zu bytes is too short", len);
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | p[i];
	if (hlen > FT_ST_HEADER_MAX)
		return ft_err_set(err, FT_E_TOOBIG, "header length %llu above the %llu limit",
				  (unsigned long long)hlen, (unsigned long long)FT_ST_HEADER_MAX);
	if (hlen > len - 8)
		return ft_err_set(err, FT_E_PARSE, "header length %llu beyond the end of the file",
				  (unsigned long long)hlen);
	if (hlen < 2 || p[8] != '{')
		return ft_err_set(err, FT_E_PARSE, "header is not a JSON object");
	const unsigned char *data = p + 8 + hlen;
	size_t data_len = len - 8 - (size_t)hlen;

	cJSON *root = NULL;
	int rc = ft_json_parse((const char *)p + 8, (size_t)hlen, &root, err);
	if (rc)
		return err_prefix(err, FT_E_PARSE, "header: ");
	struct span *spans = NULL;
	if (!cJSON_IsObject(root)) {
		rc = ft_err_set(err, FT_E_PARSE, "header is not a JSON object");
		goto out;
	}
	size_t n = (size_t)cJSON_GetArraySize(root);
	f->tensors = calloc(n + 1, sizeof *f->tensors);
	spans = calloc(n + 1, sizeof *spans);
	if (!f->tensors || !spans) {
		rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
		goto out;
	}
	for (const cJSON *j = root->child; j; j = j->next) {
		if (strcmp(j->string, "__metadata__") == 0) {
			if (f->meta) {
				rc = ft_err_set(err, FT_E_PARSE, "two '__metadata__' entries");
				goto out;
			}
			if ((rc = parse_meta(f, j, err)))
				goto out;
			continue;
		}
		if (strlen(j->string) == 0 || strlen(j->string) > FT_ST_NAME_MAX) {
			rc = ft_err_set(err, FT_E_PARSE, "tensor name empty or too long");
			goto out;
		}
		struct ft_st_tensor *t = &f->tensors[f->ntensors];
		if (!(t->name = strdup(j->string))) {
			rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
			goto out;
		}
		f->ntensors++;
		struct span *s = &spans[f->ntensors - 1];
		if ((rc = parse_tensor(t, j, data_len, &s->begin, &s->end, err)))
			goto out;
		s->idx = f->ntensors - 1;
		t->data = data + s->begin;
	}
	/* The tensors must tile the data: sorted by offset, each begins where the
	 * previous ended, the last ends at the end of the file. */
	qsort(spans, f->ntensors, sizeof *spans, by_begin);
	uint64_t at = 0;
	for (size_t i = 0; i < f->ntensors; i++) {
		const char *name = f->tensors[spans[i].idx].name;
		if (spans[i].begin < at) {
			rc = ft_err_set(err, FT_E_DATA, "tensor '%s': data overlaps another tensor",
					name);
			goto out;
		}
		if (spans[i].begin > at) {
			rc = ft_err_set(err, FT_E_DATA, "tensor '%s': hole in the data before it",
					name);
			goto out;
		}
		at = spans[i].end;
	}
	if (at != data_len) {
		rc = ft_err_set(err, FT_E_DATA, "%llu data bytes after the last tensor",
				(unsigned long long)(data_len - at));
		goto out;
	}
	qsort(f->tensors, f->ntensors, sizeof *f->tensors, by_name);
	for (size_t i = 1; i < f->ntensors; i++)
		if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
			rc = ft_err_set(err, FT_E_PARSE, "tensor '%s' appears twice",
					f->tensors[i].name);
			goto out;
		}
	rc = FT_OK;
out:
	free(spans);
	cJSON_Delete(root);
	if (rc)
		free_tables(f);
	return rc;
}

int ft_st_open_mem(struct ft_st_file *f, const void *data, size_t len, struct ft_err *err)
{
	memset(f, 0, sizeof *f);
	return parse_header(f, data, len, err);
}

int ft_st_open(struct ft_st_file *f, const char *path, struct ft_err *err)
{
	memset(f, 0, sizeof *f);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ft_err_set(err, FT_E_IO, "cannot open '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return ft_err_set(err, FT_E_IO, "cannot stat '%s': %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return ft_err_set(err, FT_E_IO, "'%s' is not a regular file", path);
	}
	if (st.st_size < 8) {
		close(fd);
		return ft_err_set(err, FT_E_PARSE, "'%s': file of %lld bytes is too short", path,
				  (long long)st.st_size);
	}
	if ((unsigned long long)st.st_size > SIZE_MAX) {
		close(fd);
		return ft_err_set(err, FT_E_TOOBIG, "'%s' is too large to map", path);
	}
	size_t len = (size_t)st.st_size;
	void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (map == MAP_FAILED)
		return ft_err_set(err, FT_E_IO, "cannot map '%s': %s", path, strerror(e));
	int rc = parse_header(f, map, len, err);
	if (rc) {
		munmap(map, len);
		char prefix[4200];
		snprintf(prefix, sizeof prefix, "'%s': ", path);
		return err_prefix(err, rc, prefix);
	}
	f->map = map;
	f->map_len = len;
	if (!(f->path = strdup(path))) {
		ft_st_close(f);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	return FT_OK;
}

void ft_st_close(struct ft_st_file *f)
{
	if (!f)
		return;
	free_tables(f);
	if (f->map)
		munmap(f->map, f->map_len);
	free(f->path);
	memset(f, 0, sizeof *f);
}

const struct ft_st_tensor *ft_st_find(const struct ft_st_file *f, const char *name)
{
	struct ft_st_tensor key = { .name = (char *)name };
	if (!f->ntensors)
		return NULL;
	return bsearch(&key, f->tensors, f->ntensors, sizeof key, by_name);
}

const char *ft_st_meta(const struct ft_st_file *f, const char *key)
{
	for (size_t i = 0; i < f->nmeta; i++)
		if (strcmp(f->meta[2 * i], key) == 0)
			return f->meta[2 * i + 1];
	return NULL;
}

int ft_st_to_f32(const struct ft_st_tensor *t, float *dst, size_t n, struct ft_err *err)
{
	if (n != t->numel)
		return ft_err_set(err, FT_E_INVAL, "tensor '%s': %zu elements, %zu expected",
				  t->name, t->numel, n);
	const unsigned char *p = t->data;
	switch (t->dtype) {
	case FT_DT_F32:
		if (n)
			memcpy(dst, p, n * 4);  /* little-endian host, as the format */
		return FT_OK;
	case FT_DT_BF16:
		for (size_t i = 0; i < n; i++)
			dst[i] = ft_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
		return FT_OK;
	case FT_DT_F16:
		for (size_t i = 0; i < n; i++)
			dst[i] = ft_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
		return FT_OK;
	default:
		return ft_err_set(err, FT_E_DATA,
				  "tensor '%s' has dtype %s; only F32, F16 and BF16 are supported",
				  t->name, ft_dtype_name(t->dtype));
	}
}

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors is little-endian");

/* ---- sharded models ---------------------------------------------------- */

static bool plain_name(const char *s)
{
	return *s && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/') &&
	       strlen(s) < 256;
}

static int model_open_index(struct ft_st_model *m, const char *dir, const char *ipath,
			    struct ft_err *err)
{
	struct ft_buf text;
	ft_buf_init(&text, INDEX_MAX);
	int rc = ft_buf_read_file(&text, ipath, err);
	if (rc) {
		ft_buf_release(&text);
		return rc;
	}
	cJSON *root = NULL;
	char path[4096];
	rc = ft_json_parse(text.data ? text.data : "", text.len, &root, err);
	ft_buf_release(&text);
	if (rc) {
		char prefix[4200];
		snprintf(prefix, sizeof prefix, "'%s': ", ipath);
		return err_prefix(err, rc, prefix);
	}
	const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	if (!cJSON_IsObject(wm) || !wm->child) {
		rc = ft_err_set(err, FT_E_DATA, "'%s': missing or empty 'weight_map'", ipath);
		goto out;
	}
	size_t n = (size_t)cJSON_GetArraySize(wm);
	m->files = calloc(n, sizeof *m->files);
	if (!m->files) {
		rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
		goto out;
	}
	size_t listed = 0;
	for (const cJSON *e = wm->child; e; e = e->next) {
		if (!cJSON_IsString(e) || !plain_name(e->valuestring)) {
			rc = ft_err_set(err, FT_E_DATA, "'%s': bad shard name for '%s'", ipath,
					e->string);
			goto out;
		}
		size_t i;
		for (i = 0; i < m->nfiles; i++) {
			const char *base = strrchr(m->files[i].path, '/') + 1;
			if (strcmp(base, e->valuestring) == 0)
				break;
		}
		if (i == m->nfiles) {
			if (snprintf(path, sizeof path, "%s/%s", dir, e->valuestring) >=
			    (int)sizeof path) {
				rc = ft_err_set(err, FT_E_INVAL, "path too long");
				goto out;
			}
			if ((rc = ft_st_open(&m->files[m->nfiles], path, err)))
				goto out;
			m->nfiles++;
		}
		const struct ft_st_tensor *t = ft_st_find(&m->files[i], e->string);
		if (!t) {
			rc = ft_err_set(err, FT_E_DATA, "'%s': tensor '%s' is not in '%s'", ipath,
					e->string, e->valuestring);
			goto out;
		}
		listed++;
	}
	size_t held = 0;
	for (size_t i = 0; i < m->nfiles; i++)
		held += m->files[i].ntensors;
	if (held != listed) {
		/* a shard holds tensors the index does not list, or a name twice */
		rc = ft_err_set(err, FT_E_DATA,
				"'%s': the shards hold %zu tensors, the index lists %zu", ipath,
				held, listed);
		goto out;
	}
	rc = FT_OK;
out:
	cJSON_Delete(root);
	return rc;
}

int ft_st_model_open(struct ft_st_model *m, const char *dir, struct ft_err *err)
{
	memset(m, 0, sizeof *m);
	char path[4096];
	if (snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir) >=
	    (int)sizeof path)
		return ft_err_set(err, FT_E_INVAL, "path too long");
	int rc;
	if (access(path, F_OK) == 0) {
		rc = model_open_index(m, dir, path, err);
	} else {
		snprintf(path, sizeof path, "%s/model.safetensors", dir);
		m->files = calloc(1, sizeof *m->files);
		if (!m->files)
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
		rc = ft_st_open(&m->files[0], path, err);
		if (!rc)
			m->nfiles = 1;
	}
	if (rc)
		ft_st_model_close(m);
	return rc;
}

void ft_st_model_close(struct ft_st_model *m)
{
	for (size_t i = 0; i < m->nfiles; i++)
		ft_st_close(&m->files[i]);
	free(m->files);
	memset(m, 0, sizeof *m);
}

const struct ft_st_tensor *ft_st_model_find(const struct ft_st_model *m, const char *name)
{
	for (size_t i = 0; i < m->nfiles; i++) {
		const struct ft_st_tensor *t = ft_st_find(&m->files[i], name);
		if (t)
			return t;
	}
	return NULL;
}

/* ---- writer ------------------------------------------------------------ */

void ft_st_writer_init(struct ft_st_writer *w)
{
	memset(w, 0, sizeof *w);
}

void ft_st_writer_release(struct ft_st_writer *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->tensors[i].name);
	free(w->tensors);
	for (size_t i = 0; i < 2 * w->nmeta; i++)
		free(w->meta[i]);
	free(w->meta);
	memset(w, 0, sizeof *w);
}

int ft_st_writer_add(struct ft_st_writer *w, const char *name, enum ft_dtype dtype,
		     const int64_t *shape, int ndim, const float *data, struct ft_err *err)
{
	if (dtype != FT_DT_F32 && dtype != FT_DT_F16 && dtype != FT_DT_BF16)
		return ft_err_set(err, FT_E_INVAL, "tensor '%s': cannot write dtype %s", name,
				  ft_dtype_name(dtype));
	if (ndim < 0 || ndim > FT_ST_MAX_DIMS || !*name || strcmp(name, "__metadata__") == 0)
		return ft_err_set(err, FT_E_INVAL, "tensor '%s': bad name or rank", name);
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->tensors[i].name, name) == 0)
			return ft_err_set(err, FT_E_INVAL, "tensor '%s' added twice", name);
	size_t numel = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0 || (shape[i] && numel > SIZE_MAX / 8 / (uint64_t)shape[i]))
			return ft_err_set(err, FT_E_INVAL, "tensor '%s': bad shape", name);
		numel *= (size_t)shape[i];
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		void *p = realloc(w->tensors, cap * sizeof *w->tensors);
		if (!p)
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
		w->tensors = p;
		w->cap = cap;
	}
	struct ft_st_wtensor *t = &w->tensors[w->n];
	memset(t, 0, sizeof *t);
	if (!(t->name = strdup(name)))
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	t->dtype = dtype;
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->shape[i] = shape[i];
	t->numel = numel;
	t->data = data;
	w->n++;
	return FT_OK;
}

int ft_st_writer_meta(struct ft_st_writer *w, const char *key, const char *value,
		      struct ft_err *err)
{
	void *p = realloc(w->meta, (2 * w->nmeta + 2) * sizeof *w->meta);
	if (!p)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	w->meta = p;
	char *k = strdup(key), *v = strdup(value);
	if (!k || !v) {
		free(k);
		free(v);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	w->meta[2 * w->nmeta] = k;
	w->meta[2 * w->nmeta + 1] = v;
	w->nmeta++;
	return FT_OK;
}

static int write_header(const struct ft_st_writer *w, struct ft_buf *h)
{
	int rc = ft_buf_putc(h, '{');
	if (!rc && w->nmeta) {
		rc = ft_buf_puts(h, "\"__metadata__\":{");
		for (size_t i = 0; !rc && i < w->nmeta; i++) {
			if (i)
				rc = ft_buf_putc(h, ',');
			if (!rc)
				rc = ft_json_write_string(h, w->meta[2 * i], strlen(w->meta[2 * i]));
			if (!rc)
				rc = ft_buf_putc(h, ':');
			if (!rc)
				rc = ft_json_write_string(h, w->meta[2 * i + 1],
							  strlen(w->meta[2 * i + 1]));
		}
		if (!rc)
			rc = ft_buf_putc(h, '}');
	}
	uint64_t off = 0;
	for (size_t i = 0; !rc && i < w->n; i++) {
		const struct ft_st_wtensor *t = &w->tensors[i];
		if (i || w->nmeta)
			rc = ft_buf_putc(h, ',');
		if (!rc)
			rc = ft_json_write_string(h, t->name, strlen(t->name));
		if (!rc)
			rc = ft_buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[",
					   ft_dtype_name(t->dtype));
		for (int k = 0; !rc && k < t->ndim; k++)
			rc = ft_buf_printf(h, "%s%lld", k ? "," : "", (long long)t->shape[k]);
		uint64_t nb = (uint64_t)t->numel * ft_dtype_size(t->dtype);
		if (!rc)
			rc = ft_buf_printf(h, "],\"data_offsets\":[%llu,%llu]}",
					   (unsigned long long)off, (unsigned long long)(off + nb));
		off += nb;
	}
	if (!rc)
		rc = ft_buf_putc(h, '}');
	while (!rc && h->len % 8)  /* pad so the data starts 8-aligned */
		rc = ft_buf_putc(h, ' ');
	return rc;
}

int ft_st_writer_commit(struct ft_st_writer *w, const char *path, struct ft_err *err)
{
	struct ft_buf h;
	ft_buf_init(&h, FT_ST_HEADER_MAX);
	int rc = write_header(w, &h);
	if (rc) {
		ft_buf_release(&h);
		return ft_err_set(err, rc, "safetensors header too large");
	}
	struct ft_out *o;
	if ((rc = ft_out_open(&o, path, err))) {
		ft_buf_release(&h);
		return rc;
	}
	unsigned char len8[8];
	for (int i = 0; i < 8; i++)
		len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
	ft_out_write(o, len8, 8);
	ft_out_write(o, h.data, h.len);
	ft_buf_release(&h);
	enum { CHUNK = 4096 };
	unsigned char buf[CHUNK * 4];
	for (size_t i = 0; i < w->n; i++) {
		const struct ft_st_wtensor *t = &w->tensors[i];
		if (t->dtype == FT_DT_F32) {
			if (t->numel)
				ft_out_write(o, t->data, t->numel * 4);
			continue;
		}
		for (size_t at = 0; at < t->numel; at += CHUNK) {
			size_t m = t->numel - at < CHUNK ? t->numel - at : CHUNK;
			for (size_t j = 0; j < m; j++) {
				uint16_t v = t->dtype == FT_DT_BF16 ? ft_f32_to_bf16(t->data[at + j])
								    : ft_f32_to_f16(t->data[at + j]);
				buf[2 * j] = (unsigned char)v;
				buf[2 * j + 1] = (unsigned char)(v >> 8);
			}
			ft_out_write(o, buf, 2 * m);
		}
	}
	return ft_out_commit(o, err);
}
