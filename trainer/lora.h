/* lora.h: LoRA adapters (Hu et al. 2021) on a decoder's projections, laid
 * out and named as Hugging Face PEFT saves them
 * ("base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight").
 * For a targeted module W [out][in]: y = W x + scaling * B (A dropout(x)),
 * A [r][in] kaiming-uniform (PEFT's init: U(-1/sqrt(in), 1/sqrt(in))),
 * B [out][r] zero, scaling = alpha / r, or alpha / sqrt(r) with rsLoRA.
 * Memory: one fp32 block like struct ft_model's (lora.weights, owned);
 * struct ft_lora_weights points into any block of that layout (gradients,
 * moments). Errors: 0 or FT_E_* with err set. */
#ifndef FT_LORA_H
#define FT_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

struct ft_lora_config {
	int rank;
	double alpha;
	bool rslora;
	unsigned targets;   /* 1 << FT_MOD_* */
	double dropout;     /* probability in [0, 1) */
	uint64_t seed;      /* dropout masks */
};

/* fp32 or a backend's storage type, like struct ft_weights */
struct ft_lora_layer {
	void *A[FT_MOD_COUNT];    /* NULL where the module has no adapter */
	void *B[FT_MOD_COUNT];
};

struct ft_lora_weights {
	struct ft_lora_layer *layers;
};

struct ft_lora {
	struct ft_lora_config cfg;
	float scaling;
	int num_layers;
	struct ft_param *params;
	size_t nparams, nfloats;
	float *weights;
	struct ft_lora_weights w;
};

/* "q,k,v,o,gate,up,down" (with or without _proj), or "all"; 0 or FT_E_INVAL. */
int ft_lora_parse_targets(const char *s, unsigned *targets, struct ft_err *err);
/* Lay out adapters for model config mc, zeroed. */
int ft_lora_init(struct ft_lora *lo, const struct ft_model_config *mc,
		 const struct ft_lora_config *cfg, struct ft_err *err);
void ft_lora_release(struct ft_lora *lo);
/* A kaiming-uniform from seed, B zero (PEFT's default init). */
void ft_lora_init_random(struct ft_lora *lo, uint64_t seed);
/* Point w at block: lo->nfloats elements of esize bytes in lo's layout. */
int ft_lora_point(const struct ft_lora *lo, void *block, size_t esize,
		  struct ft_lora_weights *w);
void ft_lora_weights_release(struct ft_lora_weights *w);

/* Hugging Face PEFT files. ft_lora_save writes DIR/adapter_model.safetensors
 * (fp32) and DIR/adapter_config.json (base_model recorded as given), each
 * atomically; DIR must exist. ft_lora_load reads them back for the model
 * config mc; settings it cannot reproduce (DoRA, bias training, per-layer
 * patterns, modules_to_save) are errors. */
int ft_lora_config_json(const struct ft_lora *lo, const char *base_model, struct ft_buf *out);
int ft_lora_save(const struct ft_lora *lo, const char *dir, const char *base_model,
		 struct ft_err *err);
int ft_lora_load(struct ft_lora *lo, const struct ft_model_config *mc, const char *dir,
		 struct ft_err *err);
/* W += scaling * B A for every adapted projection of m. */
void ft_lora_merge(const struct ft_lora *lo, struct ft_model *m);

#endif
