/* shard-write: a test driver for lib/shard. Reads one JSON description
 * (file or -) and writes a shard with ft_shard_writer:
 *   {"vocab_size": N, "seq_len": L, "flags": F, "pad_id": P, "bos_id": B,
 *    "eos_id": E, "tokenizer": "<sha256 hex>" | "model": "x.model",
 *    "rows": [ROW, ...]}
 * A ROW is either raw, passed to the writer as it is:
 *   {"tokens": [...], "mask": [...], "docs": [[sample, start, len, flags], ...]}
 * or a list of documents placed one after another from position 0 (the
 * rest padded with pad_id, mask 0):
 *   {"docs": [{"sample": S, "flags": F, "tokens": [...], "mask": [...]}, ...]}
 *   {"docs": [{"sample": S, "parts": [{"text": "...", "train": bool},
 *                                     {"special": "<s>", "train": bool}]}]}
 * With "parts" (needs "model"), consecutive text parts are encoded as one
 * run, as ft-tokenize does; a token is trained when the part holding its
 * first byte is. With a model, vocab_size, bos_id and eos_id default to the
 * model's and pad_id to the model's, else 0. Errors: "shard-write: reason",
 * exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "shard.h"
#include "spm.h"

static struct ft_spm *model;

static void die(const char *msg)
{
	fprintf(stderr, "shard-write: %s\n", msg);
	exit(1);
}

static int64_t num(const cJSON *o, const char *key, int64_t dflt)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!n)
		return dflt;
	if (!ft_json_is_int(n))
		die("an integer field is not an integer");
	return ft_json_int(n);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* tokens of a document given as parts, appended at ids/mask[*n] */
static void encode_parts(const cJSON *parts, int32_t *ids, uint8_t *mask, size_t *n,
			 size_t cap)
{
	if (!model)
		die("\"parts\" needs \"model\"");
	struct ft_buf run;
	ft_buf_init(&run, 0);
	/* train flag of each byte of the run */
	uint8_t *flags = NULL;
	size_t nflags = 0;
	struct ft_spm_tokens t;
	ft_spm_tokens_init(&t);
	struct ft_err err;
	ft_err_clear(&err);
	const cJSON *p = parts ? parts->child : NULL;
	for (;;) {
		const cJSON *special = p ? cJSON_GetObjectItemCaseSensitive(p, "special") : NULL;
		if (!p || special) {
			/* flush the text run */
			if (run.len) {
				t.n = 0;
				if (ft_spm_encode(model, run.data, run.len, 0, &t, &err))
					die(err.msg);
				for (size_t i = 0; i < t.n; i++) {
					if (*n == cap)
						die("document longer than seq_len");
					ids[*n] = t.ids[i];
					size_t b = t.begin[i] < run.len ? t.begin[i] : run.len - 1;
					mask[(*n)++] = flags[b];
				}
				ft_buf_reset(&run);
				nflags = 0;
			}
			if (!p)
				break;
			if (!cJSON_IsString(special))
				die("\"special\" must be a string");
			int id = ft_spm_piece_id(model, special->valuestring,
						 strlen(special->valuestring));
			if (id < 0)
				die("unknown special piece");
			if (*n == cap)
				die("document longer than seq_len");
			ids[*n] = id;
			mask[(*n)++] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "train"));
		} else {
			const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
			if (!cJSON_IsString(text))
				die("a part needs \"text\" or \"special\"");
			size_t len = strlen(text->valuestring);
			if (ft_buf_append(&run, text->valuestring, len))
				die("out of memory");
			uint8_t *nf = realloc(flags, nflags + len + 1);
			if (!nf)
				die("out of memory");
			flags = nf;
			memset(flags + nflags,
			       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "train")), len);
			nflags += len;
		}
		p = p->next;
	}
	free(flags);
	ft_buf_release(&run);
	ft_spm_tokens_release(&t);
}

static void int_array(const cJSON *a, int32_t *out, size_t *n, size_t cap)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		if (*n == cap)
			die("array longer than seq_len");
		if (!ft_json_is_int(e))
			die("array element is not an integer");
		out[(*n)++] = (int32_t)ft_json_int(e);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: shard-write DESC.json OUT.bin\n");
		return 2;
	}
	struct ft_buf text;
	ft_buf_init(&text, 0);
	FILE *f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
	if (!f)
		die("cannot open the description");
	char chunk[65536];
	size_t r;
	while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (ft_buf_append(&text, chunk, r))
			die("out of memory");
	if (ferror(f))
		die("read error");
	if (f != stdin)
		fclose(f);
	cJSON *root;
	struct ft_err err;
	ft_err_clear(&err);
	if (!text.data || ft_json_parse(text.data, text.len, &root, &err))
		die("invalid JSON description");

	struct ft_shard_meta meta;
	memset(&meta, 0, sizeof meta);
	const cJSON *mpath = cJSON_GetObjectItemCaseSensitive(root, "model");
	if (cJSON_IsString(mpath)) {
		if (ft_spm_load(&model, mpath->valuestring, 0, &err))
			die(err.msg);
		memcpy(meta.tokenizer, ft_spm_fingerprint(model), 32);
	}
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
	if (cJSON_IsString(tok)) {
		if (strlen(tok->valuestring) != 64)
			die("tokenizer must be 64 hex digits");
		for (int i = 0; i < 32; i++) {
			int a = hexval(tok->valuestring[2 * i]), b = hexval(tok->valuestring[2 * i + 1]);
			if (a < 0 || b < 0)
				die("tokenizer must be 64 hex digits");
			meta.tokenizer[i] = (uint8_t)(a << 4 | b);
		}
	}
	int mpad = model ? ft_spm_pad_id(model) : -1;
	meta.vocab_size = (uint32_t)num(root, "vocab_size", model ? ft_spm_vocab_size(model) : 0);
	meta.seq_len = (uint32_t)num(root, "seq_len", 0);
	meta.flags = (uint32_t)num(root, "flags", 0);
	meta.pad_id = (int32_t)num(root, "pad_id", model ? (mpad >= 0 ? mpad : 0) : -1);
	meta.bos_id = (int32_t)num(root, "bos_id", model ? ft_spm_bos_id(model) : -1);
	meta.eos_id = (int32_t)num(root, "eos_id", model ? ft_spm_eos_id(model) : -1);

	struct ft_shard_writer *w;
	if (ft_shard_writer_open(&w, argv[2], &meta, &err))
		die(err.msg);
	size_t L = meta.seq_len;
	int32_t *ids = calloc(L, sizeof *ids);
	uint8_t *mask = calloc(L, 1);
	int32_t *tmp = calloc(L, sizeof *tmp);
	struct ft_shard_doc *docs = calloc(L + 1, sizeof *docs);
	if (!ids || !mask || !tmp || !docs)
		die("out of memory");
	const cJSON *row;
	cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(root, "rows")) {
		size_t ndocs = 0, n = 0;
		const cJSON *rt = cJSON_GetObjectItemCaseSensitive(row, "tokens");
		const cJSON *d;
		if (rt) {
			int_array(rt, ids, &n, L);
			size_t nm = 0;
			int_array(cJSON_GetObjectItemCaseSensitive(row, "mask"), tmp, &nm, L);
			if (n != L || nm != L)
				die("raw rows need seq_len tokens and mask values");
			for (size_t i = 0; i < L; i++)
				mask[i] = (uint8_t)tmp[i];
			cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(row, "docs")) {
				if (cJSON_GetArraySize(d) != 4 || ndocs == L + 1)
					die("a raw doc is [sample, start, len, flags]");
				docs[ndocs++] = (struct ft_shard_doc){
					(uint64_t)ft_json_int(cJSON_GetArrayItem(d, 0)), 0,
					(uint32_t)ft_json_int(cJSON_GetArrayItem(d, 1)),
					(uint32_t)ft_json_int(cJSON_GetArrayItem(d, 2)),
					(uint32_t)ft_json_int(cJSON_GetArrayItem(d, 3)) };
			}
		} else {
			cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(row, "docs")) {
				size_t start = n;
				const cJSON *parts = cJSON_GetObjectItemCaseSensitive(d, "parts");
				if (parts) {
					encode_parts(parts, ids, mask, &n, L);
				} else {
					int_array(cJSON_GetObjectItemCaseSensitive(d, "tokens"), ids, &n, L);
					size_t nm = 0;
					int_array(cJSON_GetObjectItemCaseSensitive(d, "mask"), tmp, &nm, L);
					if (nm != n - start)
						die("a doc needs as many mask values as tokens");
					for (size_t i = 0; i < nm; i++)
						mask[start + i] = (uint8_t)tmp[i];
				}
				docs[ndocs++] = (struct ft_shard_doc){
					(uint64_t)num(d, "sample", 0), 0, (uint32_t)start,
					(uint32_t)(n - start), (uint32_t)num(d, "flags", 0) };
			}
			for (size_t i = n; i < L; i++) {
				ids[i] = meta.pad_id;
				mask[i] = 0;
			}
		}
		if (ft_shard_writer_add_row(w, ids, mask, docs, ndocs, &err)) {
			ft_shard_writer_abort(w);
			die(err.msg);
		}
	}
	if (ft_shard_writer_commit(w, NULL, &err))
		die(err.msg);
	free(ids);
	free(mask);
	free(tmp);
	free(docs);
	cJSON_Delete(root);
	ft_buf_release(&text);
	ft_spm_free(model);
	return 0;
}
