/* model.c: config.json, the parameter layout, loading, init and saving of a
 * Llama-family decoder (contract in model.h). */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "rng.h"

#define CONFIG_MAX ((size_t)1 << 20)
#define DIM_MAX (1 << 20)
#define VOCAB_MAX (1 << 24)
#define LAYERS_MAX 1024

const char *const ft_module_names[FT_MOD_COUNT] = {
	"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
};
const char *const ft_module_paths[FT_MOD_COUNT] = {
	"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
	"mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

static const struct {
	const char *arch, *model_type;
} archs[] = {
	[FT_ARCH_LLAMA] = { "LlamaForCausalLM", "llama" },
	[FT_ARCH_MISTRAL] = { "MistralForCausalLM", "mistral" },
	[FT_ARCH_QWEN2] = { "Qwen2ForCausalLM", "qwen2" },
};

/* ---- config.json ------------------------------------------------------- */

static const cJSON *field(const cJSON *o, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
	return f && !cJSON_IsNull(f) ? f : NULL;
}

/* An integer field in [lo, hi]; def when absent (def < lo: required). */
static int get_int(const cJSON *o, const char *name, long lo, long hi, long def, int *out,
		   struct ft_err *err)
{
	const cJSON *f = field(o, name);
	if (!f) {
		if (def < lo)
			return ft_err_set(err, FT_E_DATA, "missing '%s'", name);
		*out = (int)def;
		return FT_OK;
	}
	if (!ft_json_is_int(f) || ft_json_int(f) < lo || ft_json_int(f) > hi)
		return ft_err_set(err, FT_E_DATA, "'%s' must be an integer in [%ld, %ld]",
				  name, lo, hi);
	*out = (int)ft_json_int(f);
	return FT_OK;
}

static int get_num(const cJSON *o, const char *name, double lo, double hi, double def,
		   double *out, struct ft_err *err)
{
	const cJSON *f = field(o, name);
	if (!f) {
		if (isnan(def))
			return ft_err_set(err, FT_E_DATA, "missing '%s'", name);
		*out = def;
		return FT_OK;
	}
	if (!cJSON_IsNumber(f) || !(f->valuedouble >= lo && f->valuedouble <= hi))
		return ft_err_set(err, FT_E_DATA, "'%s' must be a number in [%g, %g]", name,
				  lo, hi);
	*out = f->valuedouble;
	return FT_OK;
}

static int get_bool(const cJSON *o, const char *name, bool def, bool *out, struct ft_err *err)
{
	const cJSON *f = field(o, name);
	if (!f) {
		*out = def;
		return FT_OK;
	}
	if (!cJSON_IsBool(f))
		return ft_err_set(err, FT_E_DATA, "'%s' must be true or false", name);
	*out = cJSON_IsTrue(f);
	return FT_OK;
}

/* A special token id, informational only: -1 when absent or odd; a list
 * (several end-of-sequence ids) gives its first. */
static int token_id(const cJSON *f)
{
	if (cJSON_IsArray(f))
		f = f->child;
	return ft_json_is_int(f) && ft_json_int(f) >= 0 && ft_json_int(f) < VOCAB_MAX ?
		       (int)ft_json_int(f) : -1;
}

/* rope_scaling (transformers 4) or rope_parameters (5): default or llama3. */
static int parse_rope(struct ft_model_config *c, const cJSON *root, struct ft_err *err)
{
	int rc = get_num(root, "rope_theta", 1.0, 1e12, 10000.0, &c->rope.theta, err);
	if (rc)
		return rc;
	const cJSON *rs = field(root, "rope_parameters");
	const char *key = "rope_parameters";
	if (!rs) {
		rs = field(root, "rope_scaling");
		key = "rope_scaling";
	}
	c->rope.type = FT_ROPE_DEFAULT;
	if (!rs)
		return FT_OK;
	if (!cJSON_IsObject(rs))
		return ft_err_set(err, FT_E_DATA, "'%s' must be an object", key);
	if (field(rs, "rope_theta") &&
	    (rc = get_num(rs, "rope_theta", 1.0, 1e12, NAN, &c->rope.theta, err)))
		return rc;
	const cJSON *t = field(rs, "rope_type");
	if (!t)
		t = field(rs, "type");
	const char *type = cJSON_IsString(t) ? t->valuestring : t ? "?" : "default";
	if (strcmp(type, "default") == 0)
		return FT_OK;
	if (strcmp(type, "llama3") != 0)
		return ft_err_set(err, FT_E_DATA,
				  "unsupported rope type '%s' (supported: default, llama3)",
				  type);
	c->rope.type = FT_ROPE_LLAMA3;
	if ((rc = get_num(rs, "factor", 1e-6, 1e6, NAN, &c->rope.factor, err)) ||
	    (rc = get_num(rs, "low_freq_factor", 1e-6, 1e6, NAN, &c->rope.low_freq_factor, err)) ||
	    (rc = get_num(rs, "high_freq_factor", 1e-6, 1e6, NAN, &c->rope.high_freq_factor,
			  err)) ||
	    (rc = get_num(rs, "original_max_position_embeddings", 1, 1e9, NAN,
			  &c->rope.original_max_position_embeddings, err)))
		return rc;
	if (!(c->rope.high_freq_factor > c->rope.low_freq_factor))
		return ft_err_set(err, FT_E_DATA,
				  "llama3 rope needs high_freq_factor > low_freq_factor");
	return FT_OK;
}

int ft_model_config_parse(struct ft_model_config *c, const char *json, size_t len,
			  struct ft_err *err)
{
	memset(c, 0, sizeof *c);
	cJSON *root = NULL;
	int rc = ft_json_parse(json, len, &root, err);
	if (rc) {
		char msg[FT_ERR_MSG];
		snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
		return ft_err_set(err, rc, "bad JSON at byte %ld: %s", err ? err->col : 0L, msg);
	}
	if (!cJSON_IsObject(root)) {
		rc = ft_err_set(err, FT_E_DATA, "not a JSON object");
		goto out;
	}
	const cJSON *ar = field(root, "architectures");
	const char *arch = cJSON_IsArray(ar) && cJSON_GetArraySize(ar) == 1 &&
				   cJSON_IsString(ar->child) ? ar->child->valuestring : NULL;
	if (!arch) {
		rc = ft_err_set(err, FT_E_DATA, "'architectures' must list one architecture");
		goto out;
	}
	size_t a;
	for (a = 0; a < sizeof archs / sizeof *archs; a++)
		if (strcmp(arch, archs[a].arch) == 0)
			break;
	if (a == sizeof archs / sizeof *archs) {
		rc = ft_err_set(err, FT_E_DATA,
				"unsupported architecture '%s' (supported: LlamaForCausalLM, "
				"MistralForCausalLM, Qwen2ForCausalLM)", arch);
		goto out;
	}
	c->arch = (enum ft_arch)a;
	if ((rc = get_int(root, "hidden_size", 1, DIM_MAX, -1, &c->hidden_size, err)) ||
	    (rc = get_int(root, "intermediate_size", 1, DIM_MAX, -1, &c->intermediate_size,
			  err)) ||
	    (rc = get_int(root, "num_hidden_layers", 1, LAYERS_MAX, -1, &c->num_layers, err)) ||
	    (rc = get_int(root, "num_attention_heads", 1, DIM_MAX, -1, &c->num_heads, err)) ||
	    (rc = get_int(root, "num_key_value_heads", 1, DIM_MAX, c->num_heads,
			  &c->num_kv_heads, err)) ||
	    (rc = get_int(root, "vocab_size", 1, VOCAB_MAX, -1, &c->vocab_size, err)) ||
	    (rc = get_int(root, "max_position_embeddings", 1, 1 << 30, 2048,
			  &c->max_position_embeddings, err)) ||
	    (rc = get_num(root, "rms_norm_eps", 0.0, 1.0, 1e-6, &c->rms_norm_eps, err)) ||
	    (rc = get_num(root, "initializer_range", 0.0, 10.0, 0.02, &c->initializer_range,
			  err)) ||
	    (rc = get_bool(root, "tie_word_embeddings", false, &c->tie_word_embeddings, err)) ||
	    (rc = parse_rope(c, root, err)))
		goto out;
	c->bos_token_id = token_id(field(root, "bos_token_id"));
	c->eos_token_id = token_id(field(root, "eos_token_id"));
	if (c->num_heads % c->num_kv_heads) {
		rc = ft_err_set(err, FT_E_DATA,
				"num_attention_heads %d is not a multiple of "
				"num_key_value_heads %d", c->num_heads, c->num_kv_heads);
		goto out;
	}
	if (field(root, "head_dim")) {
		if ((rc = get_int(root, "head_dim", 2, 1024, -1, &c->head_dim, err)))
			goto out;
	} else {
		if (c->hidden_size % c->num_heads) {
			rc = ft_err_set(err, FT_E_DATA,
					"hidden_size %d is not a multiple of "
					"num_attention_heads %d", c->hidden_size, c->num_heads);
			goto out;
		}
		c->head_dim = c->hidden_size / c->num_heads;
	}
	if (c->head_dim % 2 || c->head_dim > 1024) {
		rc = ft_err_set(err, FT_E_DATA, "head_dim %d must be even and at most 1024",
				c->head_dim);
		goto out;
	}
	if ((long)c->head_dim * c->num_heads > DIM_MAX) {
		rc = ft_err_set(err, FT_E_DATA, "attention too wide");
		goto out;
	}
	const cJSON *act = field(root, "hidden_act");
	if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0)) {
		rc = ft_err_set(err, FT_E_DATA, "unsupported hidden_act (only 'silu')");
		goto out;
	}
	bool b;
	if ((rc = get_bool(root, "mlp_bias", false, &b, err)))
		goto out;
	if (b) {
		rc = ft_err_set(err, FT_E_DATA, "mlp_bias is not supported");
		goto out;
	}
	if ((rc = get_bool(root, "attention_bias", false, &b, err)))
		goto out;
	if (c->arch == FT_ARCH_QWEN2) {
		c->qkv_bias = true;          /* Qwen2Attention: q/k/v bias, o without */
	} else if (c->arch == FT_ARCH_LLAMA) {
		c->qkv_bias = c->o_bias = b;
	} else if (b) {
		rc = ft_err_set(err, FT_E_DATA, "attention_bias is not supported for %s",
				arch);
		goto out;
	}
	const cJSON *sw = field(root, "sliding_window");
	bool use_sw = c->arch == FT_ARCH_MISTRAL;
	if (c->arch == FT_ARCH_QWEN2 && (rc = get_bool(root, "use_sliding_window", false,
						       &use_sw, err)))
		goto out;
	if (sw && use_sw)
		snprintf(c->warning, sizeof c->warning,
			 "sliding_window ignored: attention spans each whole document");
	rc = FT_OK;
out:
	cJSON_Delete(root);
	return rc;
}

int ft_model_config_load(struct ft_model_config *c, const char *path, struct ft_err *err)
{
	char full[4096];
	size_t pl = strlen(path);
	if (snprintf(full, sizeof full, pl > 5 && strcmp(path + pl - 5, ".json") == 0 ? "%s" :
					"%s/config.json", path) >= (int)sizeof full)
		return ft_err_set(err, FT_E_INVAL, "path too long");
	struct ft_buf text;
	ft_buf_init(&text, CONFIG_MAX);
	int rc = ft_buf_read_file(&text, full, err);
	if (!rc)
		rc = ft_model_config_parse(c, text.data ? text.data : "", text.len, err);
	ft_buf_release(&text);
	if (rc && err && rc != FT_E_IO && rc != FT_E_TOOBIG) {
		char msg[FT_ERR_MSG];
		snprintf(msg, sizeof msg, "%s", err->msg);
		ft_err_set(err, rc, "'%s': %s", full, msg);
	}
	return rc;
}

int ft_model_config_preset(struct ft_model_config *c, const char *name, struct ft_err *err)
{
	memset(c, 0, sizeof *c);
	c->arch = FT_ARCH_LLAMA;
	c->vocab_size = 32000;
	c->max_position_embeddings = 4096;
	c->rms_norm_eps = 1e-5;
	c->initializer_range = 0.02;
	c->rope.type = FT_ROPE_DEFAULT;
	c->rope.theta = 10000.0;
	c->bos_token_id = 1;
	c->eos_token_id = 2;
	if (strcmp(name, "tiny") == 0) {
		c->hidden_size = 128;
		c->intermediate_size = 352;
		c->num_layers = 2;
		c->num_heads = 4;
		c->num_kv_heads = 2;
	} else if (strcmp(name, "small") == 0) {
		c->hidden_size = 512;
		c->intermediate_size = 1408;
		c->num_layers = 8;
		c->num_heads = 8;
		c->num_kv_heads = 4;
	} else {
		return ft_err_set(err, FT_E_INVAL, "unknown preset '%s' (tiny, small)", name);
	}
	c->head_dim = c->hidden_size / c->num_heads;
	return FT_OK;
}

static int put_num(struct ft_buf *b, const char *key, double v)
{
	char num[32];
	ft_fmt_jsonfloat(v, num);
	return ft_buf_printf(b, "  \"%s\": %s,\n", key, num);
}

int ft_model_config_write(const struct ft_model_config *c, struct ft_buf *b)
{
	int rc = 0;
	rc |= ft_buf_printf(b, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
			    archs[c->arch].arch, archs[c->arch].model_type);
	if (c->arch == FT_ARCH_LLAMA)
		rc |= ft_buf_printf(b, "  \"attention_bias\": %s,\n  \"mlp_bias\": false,\n",
				    c->qkv_bias ? "true" : "false");
	if (c->bos_token_id >= 0)
		rc |= ft_buf_printf(b, "  \"bos_token_id\": %d,\n", c->bos_token_id);
	if (c->eos_token_id >= 0)
		rc |= ft_buf_printf(b, "  \"eos_token_id\": %d,\n", c->eos_token_id);
	rc |= ft_buf_printf(b, "  \"head_dim\": %d,\n  \"hidden_act\": \"silu\",\n"
			    "  \"hidden_size\": %d,\n", c->head_dim, c->hidden_size);
	rc |= put_num(b, "initializer_range", c->initializer_range);
	rc |= ft_buf_printf(b, "  \"intermediate_size\": %d,\n"
			    "  \"max_position_embeddings\": %d,\n"
			    "  \"num_attention_heads\": %d,\n  \"num_hidden_layers\": %d,\n"
			    "  \"num_key_value_heads\": %d,\n",
			    c->intermediate_size, c->max_position_embeddings, c->num_heads,
			    c->num_layers, c->num_kv_heads);
	rc |= put_num(b, "rms_norm_eps", c->rms_norm_eps);
	rc |= put_num(b, "rope_theta", c->rope.theta);
	if (c->rope.type == FT_ROPE_LLAMA3) {
		char f[4][32];
		ft_fmt_jsonfloat(c->rope.factor, f[0]);
		ft_fmt_jsonfloat(c->rope.low_freq_factor, f[1]);
		ft_fmt_jsonfloat(c->rope.high_freq_factor, f[2]);
		rc |= ft_buf_printf(b, "  \"rope_scaling\": {\"factor\": %s, \"low_freq_factor\": %s, "
				    "\"high_freq_factor\": %s, \"original_max_position_embeddings\": "
				    "%.0f, \"rope_type\": \"llama3\"},\n", f[0], f[1], f[2],
				    c->rope.original_max_position_embeddings);
	} else {
		rc |= ft_buf_puts(b, "  \"rope_scaling\": null,\n");
	}
	if (c->arch == FT_ARCH_MISTRAL)
		rc |= ft_buf_puts(b, "  \"sliding_window\": null,\n");
	rc |= ft_buf_printf(b, "  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"float32\",\n"
			    "  \"use_cache\": true,\n  \"vocab_size\": %d\n}\n",
			    c->tie_word_embeddings ? "true" : "false", c->vocab_size);
	return rc ? FT_E_NOMEM : FT_OK;
}

/* ---- layout ------------------------------------------------------------ */

void ft_module_dims(const struct ft_model_config *c, enum ft_module m, int *in, int *out)
{
	int q = c->num_heads * c->head_dim, kv = c->num_kv_heads * c->head_dim;
	switch (m) {
	case FT_MOD_Q: *in = c->hidden_size; *out = q; break;
	case FT_MOD_K:
	case FT_MOD_V: *in = c->hidden_size; *out = kv; break;
	case FT_MOD_O: *in = q; *out = c->hidden_size; break;
	case FT_MOD_GATE:
	case FT_MOD_UP: *in = c->hidden_size; *out = c->intermediate_size; break;
	default: *in = c->intermediate_size; *out = c->hidden_size; break;
	}
}

static int add_param(struct ft_model *m, size_t cap, const char *name, int64_t d0, int64_t d1,
		     bool decay)
{
	if (m->nparams == cap)
		return FT_E_INVAL;
	struct ft_param *p = &m->params[m->nparams++];
	snprintf(p->name, sizeof p->name, "%s", name);
	p->ndim = d1 ? 2 : 1;
	p->shape[0] = d0;
	p->shape[1] = d1;
	p->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
	p->offset = m->nfloats;
	p->decay = decay;
	m->nfloats += p->numel;
	return FT_OK;
}

static bool has_bias(const struct ft_model_config *c, enum ft_module mod)
{
	return (mod <= FT_MOD_V && c->qkv_bias) || (mod == FT_MOD_O && c->o_bias);
}

int ft_model_init(struct ft_model *m, const struct ft_model_config *cfg, struct ft_err *err)
{
	memset(m, 0, sizeof *m);
	m->cfg = *cfg;
	const struct ft_model_config *c = cfg;
	size_t cap = 3 + (size_t)c->num_layers * (2 + 2 * FT_MOD_COUNT);
	m->params = calloc(cap, sizeof *m->params);
	if (!m->params)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	char name[96];
	add_param(m, cap, "model.embed_tokens.weight", c->vocab_size, c->hidden_size, true);
	for (int l = 0; l < c->num_layers; l++) {
		snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
		add_param(m, cap, name, c->hidden_size, 0, false);
		for (int mod = 0; mod < FT_MOD_COUNT; mod++) {
			int in, out;
			ft_module_dims(c, mod, &in, &out);
			snprintf(name, sizeof name, "model.layers.%d.%s.weight", l,
				 ft_module_paths[mod]);
			add_param(m, cap, name, out, in, true);
			if (has_bias(c, mod)) {
				snprintf(name, sizeof name, "model.layers.%d.%s.bias", l,
					 ft_module_paths[mod]);
				add_param(m, cap, name, out, 0, false);
			}
		}
		snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
		add_param(m, cap, name, c->hidden_size, 0, false);
	}
	add_param(m, cap, "model.norm.weight", c->hidden_size, 0, false);
	if (!c->tie_word_embeddings)
		add_param(m, cap, "lm_head.weight", c->vocab_size, c->hidden_size, true);
	if (m->nfloats > SIZE_MAX / 4 / sizeof(float)) {
		ft_model_release(m);
		return ft_err_set(err, FT_E_TOOBIG, "model too large");
	}
	m->weights = calloc(m->nfloats, sizeof *m->weights);
	if (!m->weights) {
		ft_model_release(m);
		return ft_err_set(err, FT_E_NOMEM, "out of memory for %zu weights", m->nfloats);
	}
	int rc = ft_model_point(m, m->weights, sizeof(float), &m->w);
	if (!rc)
		rc = ft_rope_init(&m->rope, c->head_dim, &c->rope);
	if (rc) {
		ft_model_release(m);
		return ft_err_set(err, rc, "out of memory");
	}
	return FT_OK;
}

int ft_model_point(const struct ft_model *m, void *block, size_t esize, struct ft_weights *w)
{
	char *base = block;
	const struct ft_model_config *c = &m->cfg;
	memset(w, 0, sizeof *w);
	w->layers = calloc((size_t)c->num_layers, sizeof *w->layers);
	if (!w->layers)
		return FT_E_NOMEM;
	size_t i = 0;
	w->embed = base + m->params[i++].offset * esize;
	for (int l = 0; l < c->num_layers; l++) {
		struct ft_layer_weights *L = &w->layers[l];
		L->input_layernorm = base + m->params[i++].offset * esize;
		for (int mod = 0; mod < FT_MOD_COUNT; mod++) {
			L->w[mod] = base + m->params[i++].offset * esize;
			if (has_bias(c, mod))
				L->b[mod] = base + m->params[i++].offset * esize;
		}
		L->post_attention_layernorm = base + m->params[i++].offset * esize;
	}
	w->norm = base + m->params[i++].offset * esize;
	w->lm_head = c->tie_word_embeddings ? w->embed : base + m->params[i++].offset * esize;
	return FT_OK;
}

void ft_weights_release(struct ft_weights *w)
{
	free(w->layers);
	w->layers = NULL;
}

void ft_model_release(struct ft_model *m)
{
	ft_weights_release(&m->w);
	ft_rope_release(&m->rope);
	free(m->weights);
	free(m->params);
	memset(m, 0, sizeof *m);
}

int ft_model_load(struct ft_model *m, const char *dir, struct ft_err *err)
{
	struct ft_model_config cfg;
	int rc = ft_model_config_load(&cfg, dir, err);
	if (rc)
		return rc;
	if ((rc = ft_model_init(m, &cfg, err)))
		return rc;
	struct ft_st_model st;
	if ((rc = ft_st_model_open(&st, dir, err))) {
		ft_model_release(m);
		return rc;
	}
	size_t used = 0;
	for (size_t i = 0; i < m->nparams; i++) {
		const struct ft_param *p = &m->params[i];
		const struct ft_st_tensor *t = ft_st_model_find(&st, p->name);
		if (!t) {
			rc = ft_err_set(err, FT_E_DATA, "'%s': missing weight '%s'", dir, p->name);
			goto out;
		}
		if (t->ndim != p->ndim || t->shape[0] != p->shape[0] ||
		    (p->ndim == 2 && t->shape[1] != p->shape[1])) {
			rc = ft_err_set(err, FT_E_DATA, "'%s': weight '%s' has the wrong shape", dir,
					p->name);
			goto out;
		}
		if ((rc = ft_st_to_f32(t, m->weights + p->offset, p->numel, err)))
			goto out;
		used++;
	}
	size_t held = 0;
	for (size_t f = 0; f < st.nfiles; f++)
		held += st.files[f].ntensors;
	if (cfg.tie_word_embeddings && ft_st_model_find(&st, "lm_head.weight"))
		used++;   /* some tied checkpoints still store it; the embedding wins */
	if (held != used) {
		for (size_t f = 0; f < st.nfiles; f++)
			for (size_t k = 0; k < st.files[f].ntensors; k++) {
				const char *name = st.files[f].tensors[k].name;
				size_t i;
				for (i = 0; i < m->nparams; i++)
					if (strcmp(m->params[i].name, name) == 0)
						break;
				/* old Llama checkpoints store the rope buffer */
				if (i == m->nparams && strcmp(name, "lm_head.weight") != 0 &&
				    !strstr(name, "rotary_emb.inv_freq")) {
					rc = ft_err_set(err, FT_E_DATA,
							"'%s': unexpected weight '%s'", dir, name);
					goto out;
				}
			}
	}
	rc = FT_OK;
out:
	ft_st_model_close(&st);
	if (rc)
		ft_model_release(m);
	return rc;
}

void ft_model_init_random(struct ft_model *m, uint64_t seed)
{
	struct ft_rng rng;
	ft_rng_seed(&rng, seed);
	for (size_t i = 0; i < m->nparams; i++) {
		const struct ft_param *p = &m->params[i];
		float *x = m->weights + p->offset;
		bool norm = strstr(p->name, "norm.weight") != NULL;
		for (size_t k = 0; k < p->numel; k++)
			x[k] = p->ndim == 2 ? (float)(m->cfg.initializer_range * ft_rng_normal(&rng)) :
			       norm ? 1.0f : 0.0f;
	}
}

int ft_params_add(struct ft_st_writer *w, const struct ft_param *p, size_t n,
		  const float *block, const char *prefix, enum ft_dtype dtype, struct ft_err *err)
{
	char name[256];
	for (size_t i = 0; i < n; i++) {
		if (snprintf(name, sizeof name, "%s%s", prefix, p[i].name) >= (int)sizeof name)
			return ft_err_set(err, FT_E_INVAL, "tensor name too long");
		int rc = ft_st_writer_add(w, name, dtype, p[i].shape, p[i].ndim,
					  block + p[i].offset, err);
		if (rc)
			return rc;
	}
	return FT_OK;
}

int ft_params_read(const struct ft_st_file *f, const struct ft_param *p, size_t n, float *block,
		   const char *prefix, struct ft_err *err)
{
	char name[256];
	for (size_t i = 0; i < n; i++) {
		if (snprintf(name, sizeof name, "%s%s", prefix, p[i].name) >= (int)sizeof name)
			return ft_err_set(err, FT_E_INVAL, "tensor name too long");
		const struct ft_st_tensor *t = ft_st_find(f, name);
		if (!t)
			return ft_err_set(err, FT_E_DATA, "'%s': missing tensor '%s'", f->path, name);
		if (t->ndim != p[i].ndim || t->shape[0] != p[i].shape[0] ||
		    (p[i].ndim == 2 && t->shape[1] != p[i].shape[1]))
			return ft_err_set(err, FT_E_DATA, "'%s': tensor '%s' has the wrong shape",
					  f->path, name);
		int rc = ft_st_to_f32(t, block + p[i].offset, p[i].numel, err);
		if (rc)
			return rc;
	}
	return FT_OK;
}

int ft_params_save(const char *path, const struct ft_param *p, size_t n, const float *block,
		   enum ft_dtype dtype, struct ft_err *err)
{
	struct ft_st_writer w;
	ft_st_writer_init(&w);
	int rc = ft_st_writer_meta(&w, "format", "pt", err);
	if (!rc)
		rc = ft_params_add(&w, p, n, block, "", dtype, err);
	if (!rc)
		rc = ft_st_writer_commit(&w, path, err);
	ft_st_writer_release(&w);
	return rc;
}

int ft_model_save_weights(const struct ft_model *m, const char *path, enum ft_dtype dtype,
			  struct ft_err *err)
{
	return ft_params_save(path, m->params, m->nparams, m->weights, dtype, err);
}
