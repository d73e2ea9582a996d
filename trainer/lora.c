/* lora.c: LoRA adapter layout and init (contract in lora.h). */
#include "lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	if (!lo->weights || ft_lora_point(lo, lo->weights, &lo->w)) {
		ft_lora_release(lo);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	return FT_OK;
}

int ft_lora_point(const struct ft_lora *lo, float *block, struct ft_lora_weights *w)
{
	w->layers = calloc((size_t)lo->num_layers, sizeof *w->layers);
	if (!w->layers)
		return FT_E_NOMEM;
	size_t i = 0;
	for (int l = 0; l < lo->num_layers; l++)
		for (int m = 0; m < FT_MOD_COUNT; m++) {
			if (!(lo->cfg.targets & (1u << m)))
				continue;
			w->layers[l].A[m] = block + lo->params[i++].offset;
			w->layers[l].B[m] = block + lo->params[i++].offset;
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
