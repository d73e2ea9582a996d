/* lora.c: LoRA adapter layout and init (contract in lora.h). */
#include "lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "out.h"
#include "rng.h"

int ft_lora_parse_targets(const char *s, unsigned *targets, struct ft_err *err)
{
	*targets = 0;
	if (strcmp(s, "all") == 0) {
		*targets = (1u << FT_MOD_COUNT) - 1;
		return FT_OK;
	}
	const char *p = s;
	while (*p) {
		size_t n = strcspn(p, ",");
		int m;
		for (m = 0; m < FT_MOD_COUNT; m++) {
			size_t short_len = strlen(ft_module_names[m]) - 5;  /* without _proj */
			if ((n == short_len || n == short_len + 5) &&
			    strncmp(p, ft_module_names[m], n) == 0)
				break;
		}
		if (m == FT_MOD_COUNT)
			return ft_err_set(err, FT_E_INVAL,
					  "unknown LoRA target '%.*s' (q, k, v, o, gate, up, down)",
					  (int)n, p);
		*targets |= 1u << m;
		p += n;
		if (*p == ',')
			p++;
	}
	if (!*targets)
		return ft_err_set(err, FT_E_INVAL, "no LoRA targets");
	return FT_OK;
}

int ft_lora_init(struct ft_lora *lo, const struct ft_model_config *mc,
		 const struct ft_lora_config *cfg, struct ft_err *err)
{
	memset(lo, 0, sizeof *lo);
	if (cfg->rank < 1 || cfg->rank > 4096)
		return ft_err_set(err, FT_E_INVAL, "LoRA rank %d outside [1, 4096]", cfg->rank);
	if (!(cfg->dropout >= 0.0 && cfg->dropout < 1.0))
		return ft_err_set(err, FT_E_INVAL, "LoRA dropout must be in [0, 1)");
	if (!cfg->targets || cfg->targets >> FT_MOD_COUNT)
		return ft_err_set(err, FT_E_INVAL, "bad LoRA targets");
	lo->cfg = *cfg;
	lo->num_layers = mc->num_layers;
	lo->scaling = (float)(cfg->rslora ? cfg->alpha / sqrt(cfg->rank) : cfg->alpha / cfg->rank);
	size_t cap = (size_t)mc->num_layers * FT_MOD_COUNT * 2;
	lo->params = calloc(cap, sizeof *lo->params);
	if (!lo->params)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	for (int l = 0; l < mc->num_layers; l++)
		for (int m = 0; m < FT_MOD_COUNT; m++) {
			if (!(cfg->targets & (1u << m)))
				continue;
			int in, out;
			ft_module_dims(mc, m, &in, &out);
			for (int ab = 0; ab < 2; ab++) {
				struct ft_param *p = &lo->params[lo->nparams++];
				snprintf(p->name, sizeof p->name,
					 "base_model.model.model.layers.%d.%s.lora_%c.weight", l,
					 ft_module_paths[m], ab ? 'B' : 'A');
				p->ndim = 2;
				p->shape[0] = ab ? out : cfg->rank;
				p->shape[1] = ab ? cfg->rank : in;
				p->numel = (size_t)p->shape[0] * (size_t)p->shape[1];
				p->offset = lo->nfloats;
				p->decay = true;
				lo->nfloats += p->numel;
			}
		}
	lo->weights = calloc(lo->nfloats, sizeof *lo->weights);
	if (!lo->weights || ft_lora_point(lo, lo->weights, sizeof(float), &lo->w)) {
		ft_lora_release(lo);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	return FT_OK;
}

int ft_lora_point(const struct ft_lora *lo, void *block, size_t esize,
		  struct ft_lora_weights *w)
{
	char *base = block;
	w->layers = calloc((size_t)lo->num_layers, sizeof *w->layers);
	if (!w->layers)
		return FT_E_NOMEM;
	size_t i = 0;
	for (int l = 0; l < lo->num_layers; l++)
		for (int m = 0; m < FT_MOD_COUNT; m++) {
			if (!(lo->cfg.targets & (1u << m)))
				continue;
			w->layers[l].A[m] = base + lo->params[i++].offset * esize;
			w->layers[l].B[m] = base + lo->params[i++].offset * esize;
		}
	return FT_OK;
}

void ft_lora_weights_release(struct ft_lora_weights *w)
{
	free(w->layers);
	w->layers = NULL;
}

void ft_lora_release(struct ft_lora *lo)
{
	ft_lora_weights_release(&lo->w);
	free(lo->weights);
	free(lo->params);
	memset(lo, 0, sizeof *lo);
}

void ft_lora_init_random(struct ft_lora *lo, uint64_t seed)
{
	struct ft_rng rng;
	ft_rng_seed(&rng, seed);
	for (size_t i = 0; i < lo->nparams; i++) {
		const struct ft_param *p = &lo->params[i];
		float *x = lo->weights + p->offset;
		bool is_a = i % 2 == 0;
		/* kaiming_uniform_(a=sqrt(5)): bound = sqrt(6 / ((1 + 5) * fan_in)) */
		double bound = 1.0 / sqrt((double)p->shape[1]);
		for (size_t k = 0; k < p->numel; k++)
			x[k] = is_a ? (float)((2.0 * ft_rng_uniform(&rng) - 1.0) * bound) : 0.0f;
	}
}

/* ---- PEFT files --------------------------------------------------------- */

int ft_lora_config_json(const struct ft_lora *lo, const char *base_model, struct ft_buf *out)
{
	char num[32];
	int rc = ft_buf_puts(out, "{\n  \"base_model_name_or_path\": ");
	rc |= ft_json_write_string(out, base_model ? base_model : "",
				   base_model ? strlen(base_model) : 0);
	rc |= ft_buf_puts(out, ",\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n"
			       "  \"inference_mode\": true,\n  \"init_lora_weights\": true,\n"
			       "  \"layers_pattern\": null,\n  \"layers_to_transform\": null,\n");
	ft_fmt_jsonfloat(lo->cfg.alpha, num);
	rc |= ft_buf_printf(out, "  \"lora_alpha\": %s,\n", num);
	ft_fmt_jsonfloat(lo->cfg.dropout, num);
	rc |= ft_buf_printf(out, "  \"lora_dropout\": %s,\n", num);
	rc |= ft_buf_printf(out, "  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n"
				 "  \"r\": %d,\n  \"rank_pattern\": {},\n  \"alpha_pattern\": {},\n"
				 "  \"revision\": null,\n  \"target_modules\": [",
			    lo->cfg.rank);
	bool first = true;
	for (int m = 0; m < FT_MOD_COUNT; m++)
		if (lo->cfg.targets & (1u << m)) {
			rc |= ft_buf_printf(out, "%s\"%s\"", first ? "" : ", ", ft_module_names[m]);
			first = false;
		}
	rc |= ft_buf_printf(out, "],\n  \"task_type\": \"CAUSAL_LM\",\n  \"use_dora\": false,\n"
				 "  \"use_rslora\": %s\n}\n",
			    lo->cfg.rslora ? "true" : "false");
	return rc ? FT_E_NOMEM : FT_OK;
}

int ft_lora_save(const struct ft_lora *lo, const char *dir, const char *base_model,
		 struct ft_err *err)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir) >= (int)sizeof path)
		return ft_err_set(err, FT_E_INVAL, "path too long");
	int rc = ft_params_save(path, lo->params, lo->nparams, lo->weights, FT_DT_F32, err);
	if (rc)
		return rc;
	struct ft_buf text;
	ft_buf_init(&text, 1 << 20);
	if (ft_lora_config_json(lo, base_model, &text)) {
		ft_buf_release(&text);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	struct ft_out *o;
	if (!(rc = ft_out_open(&o, path, err))) {
		ft_out_write(o, text.data, text.len);
		rc = ft_out_commit(o, err);
	}
	ft_buf_release(&text);
	return rc;
}

/* What adapter_config.json may say that this trainer cannot reproduce. */
static int check_unsupported(const cJSON *root, const char *path, struct ft_err *err)
{
	static const char *const must_be_empty[] = {
		"layers_to_transform", "layers_pattern", "modules_to_save", "rank_pattern",
		"alpha_pattern", "layer_replication", "trainable_token_indices",
	};
	for (size_t i = 0; i < sizeof must_be_empty / sizeof *must_be_empty; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, must_be_empty[i]);
		if (v && !cJSON_IsNull(v) && !((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child))
			return ft_err_set(err, FT_E_DATA, "'%s': %s is not supported", path,
					  must_be_empty[i]);
	}
	static const char *const must_be_false[] = { "use_dora", "fan_in_fan_out", "lora_bias" };
	for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++)
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, must_be_false[i])))
			return ft_err_set(err, FT_E_DATA, "'%s': %s is not supported", path,
					  must_be_false[i]);
	const cJSON *bias = cJSON_GetObjectItemCaseSensitive(root, "bias");
	if (bias && !(cJSON_IsString(bias) && strcmp(bias->valuestring, "none") == 0))
		return ft_err_set(err, FT_E_DATA, "'%s': bias \"none\" is the only one supported",
				  path);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "peft_type");
	if (!cJSON_IsString(type) || strcmp(type->valuestring, "LORA") != 0)
		return ft_err_set(err, FT_E_DATA, "'%s': peft_type is not \"LORA\"", path);
	return FT_OK;
}

/* target_modules: a list of names, or "all-linear" */
static int parse_target_modules(const cJSON *t, unsigned *targets, const char *path,
				struct ft_err *err)
{
	*targets = 0;
	if (cJSON_IsString(t) && strcmp(t->valuestring, "all-linear") == 0) {
		*targets = (1u << FT_MOD_COUNT) - 1;
		return FT_OK;
	}
	if (!cJSON_IsArray(t) || !t->child)
		return ft_err_set(err, FT_E_DATA, "'%s': target_modules is not a list of names",
				  path);
	for (const cJSON *e = t->child; e; e = e->next) {
		unsigned one;
		if (!cJSON_IsString(e) || ft_lora_parse_targets(e->valuestring, &one, NULL))
			return ft_err_set(err, FT_E_DATA, "'%s': unsupported target module %s", path,
					  cJSON_IsString(e) ? e->valuestring : "(not a string)");
		*targets |= one;
	}
	return FT_OK;
}

int ft_lora_load(struct ft_lora *lo, const struct ft_model_config *mc, const char *dir,
		 struct ft_err *err)
{
	memset(lo, 0, sizeof *lo);
	char path[4096];
	if (snprintf(path, sizeof path, "%s/adapter_config.json", dir) >= (int)sizeof path)
		return ft_err_set(err, FT_E_INVAL, "path too long");
	struct ft_buf text;
	ft_buf_init(&text, 1 << 20);
	cJSON *root = NULL;
	struct ft_err perr = { 0 };
	int rc = ft_buf_read_file(&text, path, err);
	if (!rc && (rc = ft_json_parse(text.data ? text.data : "", text.len, &root, &perr)))
		ft_err_set(err, rc, "'%s': %s", path, perr.msg);
	ft_buf_release(&text);
	if (rc)
		return rc;
	struct ft_lora_config cfg = { 0 };
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "r");
	const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
	const cJSON *drop = cJSON_GetObjectItemCaseSensitive(root, "lora_dropout");
	if (!cJSON_IsObject(root))
		rc = ft_err_set(err, FT_E_DATA, "'%s': not a JSON object", path);
	else if (!(rc = check_unsupported(root, path, err)) &&
		 !(rc = parse_target_modules(cJSON_GetObjectItemCaseSensitive(root,
									       "target_modules"),
					     &cfg.targets, path, err))) {
		if (!ft_json_is_int(r) || r->valuedouble < 1 || r->valuedouble > 4096)
			rc = ft_err_set(err, FT_E_DATA, "'%s': r is not a rank in [1, 4096]", path);
		else if (alpha && !(cJSON_IsNumber(alpha) && alpha->valuedouble > 0))
			rc = ft_err_set(err, FT_E_DATA, "'%s': bad lora_alpha", path);
		else if (drop && !(cJSON_IsNumber(drop) && drop->valuedouble >= 0 &&
				   drop->valuedouble < 1))
			rc = ft_err_set(err, FT_E_DATA, "'%s': bad lora_dropout", path);
		else {
			cfg.rank = (int)r->valuedouble;
			cfg.alpha = alpha ? alpha->valuedouble : 8.0;   /* PEFT's default */
			cfg.dropout = drop ? drop->valuedouble : 0.0;
			cfg.rslora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_rslora"));
		}
	}
	cJSON_Delete(root);
	if (rc || (rc = ft_lora_init(lo, mc, &cfg, err)))
		return rc;
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	struct ft_st_file f;
	if (!(rc = ft_st_open(&f, path, err))) {
		rc = ft_params_read(&f, lo->params, lo->nparams, lo->weights, "", err);
		if (!rc && f.ntensors != lo->nparams)
			rc = ft_err_set(err, FT_E_DATA, "'%s': %zu tensors where %zu were expected",
					path, f.ntensors, lo->nparams);
		ft_st_close(&f);
	}
	if (rc)
		ft_lora_release(lo);
	return rc;
}

void ft_lora_merge(const struct ft_lora *lo, struct ft_model *m)
{
	int r = lo->cfg.rank;
	for (int l = 0; l < lo->num_layers; l++)
		for (int mod = 0; mod < FT_MOD_COUNT; mod++) {
			const float *A = lo->w.layers[l].A[mod], *B = lo->w.layers[l].B[mod];
			if (!A)
				continue;
			int in, out;
			ft_module_dims(&m->cfg, mod, &in, &out);
			float *W = m->w.layers[l].w[mod];
#pragma omp parallel for schedule(static)
			for (int o = 0; o < out; o++)
				for (int i = 0; i < in; i++) {
					float s = 0.0f;
					for (int k = 0; k < r; k++)
						s += B[(size_t)o * r + k] * A[(size_t)k * in + i];
					W[(size_t)o * in + i] += lo->scaling * s;
				}
		}
}
