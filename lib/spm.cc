// spm.cc: the C interface of spm.h over SentencePiece's C++ API. The only
// C++ file in ft; it catches every exception at the boundary.
#include <sentencepiece_processor.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

extern "C" {
#include "sha256.h"
#include "spm.h"
}

struct ft_spm {
	sentencepiece::SentencePieceProcessor sp;
	std::vector<uint8_t> types;
	uint8_t fingerprint[32];
	int vocab;
};

static const size_t MAX_MODEL_BYTES = (size_t)1 << 30;

static int read_file(const char *path, std::string *out, struct ft_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return ft_err_set(err, FT_E_IO, "%s: %s", path, strerror(errno));
	char chunk[1 << 16];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (out->size() + n > MAX_MODEL_BYTES) {
			fclose(f);
			return ft_err_set(err, FT_E_TOOBIG, "%s: larger than %zu bytes", path, MAX_MODEL_BYTES);
		}
		out->append(chunk, n);
	}
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return ft_err_set(err, FT_E_IO, "%s: read error", path);
	return 0;
}

extern "C" {

void ft_spm_tokens_init(struct ft_spm_tokens *t)
{
	memset(t, 0, sizeof *t);
}

void ft_spm_tokens_release(struct ft_spm_tokens *t)
{
	free(t->ids);
	free(t->begin);
	free(t->end);
	ft_spm_tokens_init(t);
}

static int tokens_reserve(struct ft_spm_tokens *t, size_t extra)
{
	if (t->n + extra <= t->cap)
		return 0;
	size_t cap = t->cap ? t->cap : 256;
	while (cap < t->n + extra)
		cap *= 2;
	int32_t *ids = (int32_t *)realloc(t->ids, cap * sizeof *ids);
	if (ids)
		t->ids = ids;
	uint32_t *b = (uint32_t *)realloc(t->begin, cap * sizeof *b);
	if (b)
		t->begin = b;
	uint32_t *e = (uint32_t *)realloc(t->end, cap * sizeof *e);
	if (e)
		t->end = e;
	if (!ids || !b || !e)
		return FT_E_NOMEM;
	t->cap = cap;
	return 0;
}

int ft_spm_tokens_add(struct ft_spm_tokens *t, int32_t id, uint32_t begin, uint32_t end)
{
	if (tokens_reserve(t, 1))
		return FT_E_NOMEM;
	t->ids[t->n] = id;
	t->begin[t->n] = begin;
	t->end[t->n] = end;
	t->n++;
	return 0;
}

int ft_spm_load(struct ft_spm **out, const char *path, int flags, struct ft_err *err)
{
	*out = nullptr;
	std::string bytes;
	int rc = read_file(path, &bytes, err);
	if (rc)
		return rc;
	ft_spm *m = new (std::nothrow) ft_spm;
	if (!m)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	try {
		ft_sha256(bytes.data(), bytes.size(), m->fingerprint);
		uint8_t *types;
		size_t ntypes;
		struct ft_err perr;
		ft_err_clear(&perr);
		rc = ft_spm_proto_types((const uint8_t *)bytes.data(), bytes.size(), &types, &ntypes, &perr);
		if (rc) {
			delete m;
			return ft_err_set(err, rc, "%s: %s", path, perr.msg);
		}
		m->types.assign(types, types + ntypes);
		free(types);
		std::string model = bytes;
		if (flags) {
			struct ft_buf b;
			int changed;
			ft_buf_init(&b, 0);
			rc = ft_spm_proto_rewrite((const uint8_t *)bytes.data(), bytes.size(), flags, &b,
						  &changed, err);
			if (!rc)
				model.assign(b.data ? b.data : "", b.len);
			ft_buf_release(&b);
			if (rc) {
				delete m;
				return rc;
			}
		}
		auto st = m->sp.LoadFromSerializedProto(model);
		if (!st.ok()) {
			ft_err_set(err, FT_E_PARSE, "%s: not a SentencePiece model: %s", path, st.message());
			delete m;
			return FT_E_PARSE;
		}
		m->vocab = m->sp.GetPieceSize();
		if ((size_t)m->vocab != m->types.size()) {
			delete m;
			return ft_err_set(err, FT_E_PARSE, "%s: piece count disagrees with the model", path);
		}
	} catch (const std::bad_alloc &) {
		delete m;
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	} catch (...) {
		delete m;
		return ft_err_set(err, FT_E_PARSE, "%s: cannot load SentencePiece model", path);
	}
	*out = m;
	return 0;
}

void ft_spm_free(struct ft_spm *m)
{
	delete m;
}

int ft_spm_vocab_size(const struct ft_spm *m) { return m->vocab; }
int ft_spm_bos_id(const struct ft_spm *m) { return m->sp.bos_id(); }
int ft_spm_eos_id(const struct ft_spm *m) { return m->sp.eos_id(); }
int ft_spm_pad_id(const struct ft_spm *m) { return m->sp.pad_id(); }
int ft_spm_unk_id(const struct ft_spm *m) { return m->sp.unk_id(); }
const uint8_t *ft_spm_fingerprint(const struct ft_spm *m) { return m->fingerprint; }

enum ft_spm_type ft_spm_type(const struct ft_spm *m, int id)
{
	if (id < 0 || id >= m->vocab)
		return (enum ft_spm_type)0;
	return (enum ft_spm_type)m->types[(size_t)id];
}

const char *ft_spm_piece(const struct ft_spm *m, int id, size_t *len)
{
	if (id < 0 || id >= m->vocab)
		return nullptr;
	const std::string &s = m->sp.IdToPiece(id);
	if (len)
		*len = s.size();
	return s.c_str();
}

int ft_spm_piece_id(const struct ft_spm *m, const char *p, size_t len)
{
	try {
		std::string_view v(p, len);
		int id = m->sp.PieceToId(v);
		if (id < 0 || id >= m->vocab || m->sp.IdToPiece(id) != v)
			return -1;
		return id;
	} catch (...) {
		return -1;
	}
}

int ft_spm_encode(const struct ft_spm *m, const char *text, size_t len, uint32_t base,
		  struct ft_spm_tokens *out, struct ft_err *err)
{
	if (len > UINT32_MAX - base)
		return ft_err_set(err, FT_E_TOOBIG, "text of %zu bytes is too long to tokenize", len);
	try {
		sentencepiece::ImmutableSentencePieceText spt;
		auto st = m->sp.Encode(std::string_view(text, len), spt.mutable_proto());
		if (!st.ok())
			return ft_err_set(err, FT_E_DATA, "tokenizer: %s", st.message());
		size_t n = spt.pieces_size();
		if (tokens_reserve(out, n))
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
		for (size_t i = 0; i < n; i++) {
			auto piece = spt.pieces((int)i);
			uint32_t b = piece.begin(), e = piece.end();
			if (b > e || e > len)
				return ft_err_set(err, FT_E_DATA, "tokenizer returned a bad span");
			out->ids[out->n] = (int32_t)piece.id();
			out->begin[out->n] = base + b;
			out->end[out->n] = base + e;
			out->n++;
		}
		return 0;
	} catch (const std::bad_alloc &) {
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	} catch (...) {
		return ft_err_set(err, FT_E_DATA, "tokenizer failed");
	}
}

int ft_spm_decode(const struct ft_spm *m, const int32_t *ids, size_t n, struct ft_buf *out,
		  size_t *starts, struct ft_err *err)
{
	try {
		std::vector<int> v(ids, ids + n);
		for (int id : v)
			if (id < 0 || id >= m->vocab)
				return ft_err_set(err, FT_E_DATA, "token id %d is outside the vocabulary (%d)",
						  id, m->vocab);
		sentencepiece::ImmutableSentencePieceText spt;
		auto st = m->sp.Decode(v, spt.mutable_proto());
		if (!st.ok())
			return ft_err_set(err, FT_E_DATA, "tokenizer: %s", st.message());
		const std::string &text = spt.text();
		size_t base = out->len;
		if (ft_buf_append(out, text.data(), text.size()))
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
		if (starts) {
			size_t np = spt.pieces_size();
			if (np != n)
				return ft_err_set(err, FT_E_DATA, "tokenizer decoded %zu pieces for %zu ids", np, n);
			/* a piece that prints nothing starts where the next text does */
			size_t next = text.size();
			for (size_t i = n; i-- > 0;) {
				auto piece = spt.pieces((int)i);
				size_t b = piece.begin(), e = piece.end();
				if (b > e || e > text.size())
					return ft_err_set(err, FT_E_DATA, "tokenizer returned a bad span");
				if (e > b)
					next = b;
				starts[i] = base + next;
			}
		}
		return 0;
	} catch (const std::bad_alloc &) {
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	} catch (...) {
		return ft_err_set(err, FT_E_DATA, "tokenizer failed");
	}
}

}  // extern "C"
