/* Unit tests for lib/safetensors.c: hostile headers are errors, never
 * overflows (length beyond the file, overlapping or holed offsets, shapes
 * that overflow, bad dtypes, non-JSON); fp16/bf16 conversions exhaustively;
 * the writer round-trips and pads its header; sharded models via
 * model.safetensors.index.json; files written by Python's safetensors. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "testhelp.h"

static unsigned char img[1 << 16];

/* An in-memory file: header length hlen_field (or the real one if ~0), the
 * header text, then data_len zero bytes. Returns the total length. */
static size_t make(const char *header, size_t data_len, uint64_t hlen_field)
{
	size_t h = strlen(header);
	uint64_t v = hlen_field == ~(uint64_t)0 ? h : hlen_field;
	for (int i = 0; i < 8; i++)
		img[i] = (unsigned char)(v >> (8 * i));
	memcpy(img + 8, header, h);
	memset(img + 8 + h, 0, data_len);
	return 8 + h + data_len;
}

static int open_hdr(const char *header, size_t data_len, struct ft_err *err)
{
	struct ft_st_file f;
	size_t n = make(header, data_len, ~(uint64_t)0);
	int rc = ft_st_open_mem(&f, img, n, err);
	ft_st_close(&f);
	return rc;
}

static void test_hostile(void)
{
	struct ft_err err = { 0 };
	struct ft_st_file f;
	const char *ok = "{\"__metadata__\":{\"format\":\"pt\"},"
			 "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
			 "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]}}";
	size_t n = make(ok, 22, ~(uint64_t)0);
	test_cond("valid header opens", ft_st_open_mem(&f, img, n, &err) == 0);
	test_cond("two tensors", f.ntensors == 2);
	const struct ft_st_tensor *a = ft_st_find(&f, "a");
	test_cond("tensor found with shape", a && a->ndim == 2 && a->shape[1] == 2 && a->numel == 4);
	test_cond("data pointer", a && a->data == img + 8 + strlen(ok));
	test_cond("missing tensor", ft_st_find(&f, "c") == NULL);
	test_cond("metadata", ft_st_meta(&f, "format") && strcmp(ft_st_meta(&f, "format"), "pt") == 0);
	ft_st_close(&f);

	/* header length field lies */
	n = make(ok, 22, 5000);
	test_cond("header length beyond file", ft_st_open_mem(&f, img, n, &err) == FT_E_PARSE);
	test_cond("message says so", strstr(err.msg, "beyond the end") != NULL);
	n = make(ok, 22, (uint64_t)200 << 20);
	test_cond("header length above 100 MB", ft_st_open_mem(&f, img, n, &err) == FT_E_TOOBIG);
	n = make(ok, 22, ~(uint64_t)1);
	test_cond("header length 2^64-2", ft_st_open_mem(&f, img, n, &err) == FT_E_TOOBIG);
	test_cond("file shorter than 8 bytes", ft_st_open_mem(&f, img, 7, &err) == FT_E_PARSE);
	n = make("", 0, ~(uint64_t)0);
	test_cond("empty header", ft_st_open_mem(&f, img, n, &err) == FT_E_PARSE);

	/* not JSON, wrong JSON */
	test_cond("non-JSON", open_hdr("{not json at all}", 0, &err) == FT_E_PARSE);
	test_cond("array header", open_hdr("[1,2]", 0, &err) == FT_E_PARSE);
	test_cond("truncated JSON", open_hdr("{\"a\":{\"dtype\":\"F32\"", 0, &err) == FT_E_PARSE);
	test_cond("NUL in header", ft_st_open_mem(&f, (make("{\"a\":1}", 0, ~(uint64_t)0),
						      img[10] = 0, img), 15, &err) == FT_E_PARSE);
	test_cond("entry not an object", open_hdr("{\"a\":3}", 0, &err) == FT_E_PARSE);
	test_cond("metadata value not a string",
		  open_hdr("{\"__metadata__\":{\"k\":1}}", 0, &err) == FT_E_PARSE);
	test_cond("empty file of tensors is fine", open_hdr("{}", 0, &err) == 0);

	/* dtypes */
	test_cond("unknown dtype",
		  open_hdr("{\"a\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
			   &err) == FT_E_PARSE);
	test_cond("unknown dtype named", strstr(err.msg, "'Q9'") != NULL);
	test_cond("dtype not a string",
		  open_hdr("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &err) ==
			  FT_E_PARSE);
	n = make("{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
		 ~(uint64_t)0);
	test_cond("I64 opens", ft_st_open_mem(&f, img, n, &err) == 0);
	float out[2];
	test_cond("I64 refuses conversion",
		  ft_st_to_f32(ft_st_find(&f, "a"), out, 2, &err) == FT_E_DATA &&
			  strstr(err.msg, "I64") != NULL);
	ft_st_close(&f);

	/* shapes */
	test_cond("shape overflow",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
			   "\"data_offsets\":[0,4]}}", 4, &err) == FT_E_DATA);
	test_cond("shape times dtype size overflow",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2305843009213693952,4],"
			   "\"data_offsets\":[0,4]}}", 4, &err) == FT_E_DATA);
	test_cond("numel*size wraps to the data size",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387905],"
			   "\"data_offsets\":[0,4]}}", 4, &err) == FT_E_DATA);
	test_cond("negative dimension",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
			   &err) == FT_E_PARSE);
	test_cond("fractional dimension",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", 10,
			   &err) == FT_E_PARSE);
	test_cond("too many dimensions",
		  open_hdr("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
			   "\"data_offsets\":[0,1]}}", 1, &err) == FT_E_DATA);
	test_cond("shape not an array",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16,
			   &err) == FT_E_PARSE);
	test_cond("scalar and empty tensors",
		  open_hdr("{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
			   "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]}}", 4,
			   &err) == 0);

	/* offsets */
	test_cond("size mismatch",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", 8,
			   &err) == FT_E_DATA);
	test_cond("offsets beyond the data",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[250],\"data_offsets\":[0,1000]}}", 16,
			   &err) == FT_E_DATA);
	test_cond("offsets at 2^64-1",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
			   "\"data_offsets\":[18446744073709551612,18446744073709551615]}}", 4,
			   &err) != 0);
	test_cond("begin after end",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
			   &err) == FT_E_DATA);
	test_cond("three offsets",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
			   &err) == FT_E_PARSE);
	test_cond("missing offsets",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, &err) == FT_E_PARSE);
	test_cond("overlapping tensors",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
			   "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24,
			   &err) == FT_E_DATA);
	test_cond("overlap named", strstr(err.msg, "overlaps") != NULL);
	test_cond("same offsets twice",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
			   "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
			   &err) == FT_E_DATA);
	test_cond("hole between tensors",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", 24,
			   &err) == FT_E_DATA);
	test_cond("bytes after the last tensor",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
			   &err) == FT_E_DATA);
	test_cond("duplicate names",
		  open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
			   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
			   &err) == FT_E_PARSE);
	test_cond("two metadata objects",
		  open_hdr("{\"__metadata__\":{},\"__metadata__\":{}}", 0, &err) == FT_E_PARSE);

	/* every truncation of a valid file fails cleanly */
	n = make(ok, 22, ~(uint64_t)0);
	int bad = 0;
	for (size_t k = 0; k < n; k++)
		bad += ft_st_open_mem(&f, img, k, &err) == 0;
	test_cond("truncated files all rejected", bad == 0);
}

static void test_conversions(void)
{
	int bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = ft_f16_to_f32((uint16_t)h);
		uint16_t back = ft_f32_to_f16(f);
		if (isnan(f) ? !isnan(ft_f16_to_f32(back)) : back != h)
			bad++;
	}
	test_cond("every fp16 value round-trips", bad == 0);
	bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = ft_bf16_to_f32((uint16_t)h);
		uint16_t back = ft_f32_to_bf16(f);
		if (isnan(f) ? !isnan(ft_bf16_to_f32(back)) : back != h)
			bad++;
	}
	test_cond("every bf16 value round-trips", bad == 0);
	test_cond("f16 1.0", ft_f32_to_f16(1.0f) == 0x3c00);
	test_cond("f16 65504", ft_f32_to_f16(65504.0f) == 0x7bff);
	test_cond("f16 65519 rounds down", ft_f32_to_f16(65519.0f) == 0x7bff);
	test_cond("f16 65520 overflows", ft_f32_to_f16(65520.0f) == 0x7c00);
	test_cond("f16 smallest subnormal", ft_f32_to_f16(0x1p-24f) == 1);
	test_cond("f16 half of it ties to 0", ft_f32_to_f16(0x1p-25f) == 0);
	test_cond("f16 1.5 ulp ties to even", ft_f32_to_f16(3 * 0x1p-25f) == 2);
	test_cond("f16 -0", ft_f32_to_f16(-0.0f) == 0x8000);
	test_cond("f16 tie to even at 1", ft_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);
	test_cond("f16 tie up to even", ft_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);
	test_cond("f16 NaN", isnan(ft_f16_to_f32(ft_f32_to_f16(NAN))));
	test_cond("bf16 tie to even", ft_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);
	test_cond("bf16 above tie rounds up", ft_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);
	test_cond("bf16 NaN stays NaN", isnan(ft_bf16_to_f32(ft_f32_to_bf16(NAN))));
	test_cond("bf16 max rounds to inf", ft_f32_to_bf16(3.4028235e38f) == 0x7f80);
}

static char dir[256];

static void test_writer(void)
{
	struct ft_err err = { 0 };
	char path[512];
	snprintf(path, sizeof path, "%s/w.safetensors", dir);
	float a[6] = { 1, -2, 3.5f, 1e-3f, 65504, -0.0f };
	float b[3] = { 1.0f + 0x1p-8f, 3.14159f, -1e30f };
	int64_t sa[2] = { 2, 3 }, sb[1] = { 3 };
	struct ft_st_writer w;
	ft_st_writer_init(&w);
	test_cond("add f32", ft_st_writer_add(&w, "x.a", FT_DT_F32, sa, 2, a, &err) == 0);
	test_cond("add bf16", ft_st_writer_add(&w, "x.b", FT_DT_BF16, sb, 1, b, &err) == 0);
	test_cond("add f16", ft_st_writer_add(&w, "x.c", FT_DT_F16, sa, 2, a, &err) == 0);
	test_cond("duplicate refused", ft_st_writer_add(&w, "x.a", FT_DT_F32, sa, 2, a, &err) ==
					       FT_E_INVAL);
	test_cond("I32 refused", ft_st_writer_add(&w, "x.d", FT_DT_I32, sa, 2, a, &err) ==
					 FT_E_INVAL);
	test_cond("meta", ft_st_writer_meta(&w, "format", "pt", &err) == 0);
	test_cond("commit", ft_st_writer_commit(&w, path, &err) == 0);
	ft_st_writer_release(&w);

	struct ft_st_file f;
	test_cond("reopen", ft_st_open(&f, path, &err) == 0);
	test_cond("header padded to 8", f.map && (*(uint64_t *)f.map) % 8 == 0);
	float got[6];
	const struct ft_st_tensor *t = ft_st_find(&f, "x.a");
	test_cond("f32 back exactly", t && t->dtype == FT_DT_F32 && ft_st_to_f32(t, got, 6, &err) == 0 &&
					  memcmp(got, a, sizeof a) == 0);
	t = ft_st_find(&f, "x.b");
	test_cond("bf16 back rounded", t && t->dtype == FT_DT_BF16 && ft_st_to_f32(t, got, 3, &err) == 0 &&
					   got[0] == 1.0f && fabsf(got[1] - 3.140625f) < 1e-6f &&
					   got[2] == ft_bf16_to_f32(ft_f32_to_bf16(-1e30f)));
	t = ft_st_find(&f, "x.c");
	test_cond("f16 back", t && ft_st_to_f32(t, got, 6, &err) == 0 && got[4] == 65504.0f &&
				      fabsf(got[3] - 1e-3f) < 1e-6f && signbit(got[5]));
	test_cond("wrong count refused", t && ft_st_to_f32(t, got, 5, &err) == FT_E_INVAL);
	test_cond("meta back", ft_st_meta(&f, "format") && strcmp(ft_st_meta(&f, "format"), "pt") == 0);
	ft_st_close(&f);
	unlink(path);
}

static void write_file(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *fp = fopen(path, "w");
	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
}

static void test_sharded(void)
{
	struct ft_err err = { 0 };
	char path[512];
	float one[2] = { 1, 2 }, two[3] = { 3, 4, 5 };
	int64_t s2[1] = { 2 }, s3[1] = { 3 };
	struct ft_st_writer w;
	ft_st_writer_init(&w);
	ft_st_writer_add(&w, "w.one", FT_DT_F32, s2, 1, one, &err);
	snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
	test_cond("shard 1", ft_st_writer_commit(&w, path, &err) == 0);
	ft_st_writer_release(&w);
	ft_st_writer_init(&w);
	ft_st_writer_add(&w, "w.two", FT_DT_BF16, s3, 1, two, &err);
	snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
	test_cond("shard 2", ft_st_writer_commit(&w, path, &err) == 0);
	ft_st_writer_release(&w);

	struct ft_st_model m;
	test_cond("no model file", ft_st_model_open(&m, dir, &err) == FT_E_IO);
	write_file("model.safetensors.index.json",
		   "{\"metadata\":{\"total_size\":14},\"weight_map\":{"
		   "\"w.one\":\"model-00001-of-00002.safetensors\","
		   "\"w.two\":\"model-00002-of-00002.safetensors\"}}");
	test_cond("sharded model opens", ft_st_model_open(&m, dir, &err) == 0);
	test_cond("two shards", m.nfiles == 2);
	const struct ft_st_tensor *t = ft_st_model_find(&m, "w.two");
	float got[3];
	test_cond("tensor of shard 2", t && ft_st_to_f32(t, got, 3, &err) == 0 && got[2] == 5.0f);
	test_cond("tensor of shard 1", ft_st_model_find(&m, "w.one") != NULL);
	ft_st_model_close(&m);

	write_file("model.safetensors.index.json",
		   "{\"weight_map\":{\"w.one\":\"model-00002-of-00002.safetensors\","
		   "\"w.two\":\"model-00002-of-00002.safetensors\"}}");
	test_cond("index naming the wrong shard", ft_st_model_open(&m, dir, &err) == FT_E_DATA);
	write_file("model.safetensors.index.json",
		   "{\"weight_map\":{\"w.one\":\"../model-00001-of-00002.safetensors\"}}");
	test_cond("shard path with a slash", ft_st_model_open(&m, dir, &err) == FT_E_DATA);
	write_file("model.safetensors.index.json",
		   "{\"weight_map\":{\"w.one\":\"model-00001-of-00002.safetensors\"}}");
	test_cond("index listing one shard of two",
		  ft_st_model_open(&m, dir, &err) == 0);
	ft_st_model_close(&m);
	write_file("model.safetensors.index.json",
		   "{\"weight_map\":{\"w.one\":\"model-00001-of-00002.safetensors\","
		   "\"w.two\":\"model-00002-of-00002.safetensors\",\"w.x\":\"nope.safetensors\"}}");
	test_cond("index naming a missing shard", ft_st_model_open(&m, dir, &err) == FT_E_IO);
	write_file("model.safetensors.index.json", "{\"weight_map\":[]}");
	test_cond("bad weight_map", ft_st_model_open(&m, dir, &err) == FT_E_DATA);
	write_file("model.safetensors.index.json", "{nope");
	test_cond("index not JSON", ft_st_model_open(&m, dir, &err) == FT_E_PARSE);
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
	unlink(path);
}

/* A file written by Python's safetensors (the bf16 fixture model). */
static void test_python_file(void)
{
	struct ft_err err = { 0 };
	struct ft_st_model m;
	const char *d = getenv("TESTDATA");
	char path[512];
	snprintf(path, sizeof path, "%s/hf/qwen2", d ? d : "data");
	test_cond("python-written model opens", ft_st_model_open(&m, path, &err) == 0);
	const struct ft_st_tensor *t = ft_st_model_find(&m, "model.layers.0.self_attn.q_proj.bias");
	test_cond("bf16 bias", t && t->dtype == FT_DT_BF16 && t->ndim == 1 && t->shape[0] == 32);
	ft_st_model_close(&m);
	struct ft_st_file f;
	test_cond("missing file", ft_st_open(&f, "/nonexistent/x.safetensors", &err) == FT_E_IO);
	test_cond("directory", ft_st_open(&f, ".", &err) == FT_E_IO);
}

int main(void)
{
	snprintf(dir, sizeof dir, "%s/ft-st-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_hostile();
	test_conversions();
	test_writer();
	test_sharded();
	test_python_file();
	rmdir(dir);
	return test_report();
}
