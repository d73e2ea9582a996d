/* model.h: a Llama-family decoder's configuration and weights, read from
 * and written to Hugging Face model directories (config.json +
 * model.safetensors or its shards). Architectures: LlamaForCausalLM,
 * MistralForCausalLM, Qwen2ForCausalLM (q/k/v bias), with GQA, explicit
 * head_dim, tied embeddings, rope_theta and llama3 rope scaling; config.json
 * in the transformers 4 (rope_theta, rope_scaling) and 5 (rope_parameters)
 * spellings. Anything the trainer cannot reproduce is an error, except a
 * sliding window, which is ignored with a warning (config.warning).
 * Memory: all weights live in one fp32 block (model.weights) carved into
 * named parameters (model.params, HF names and shapes); struct ft_weights
 * points into any block with that layout, so gradients, AdamW moments and
 * master copies share it (after llm.c). Errors: 0 or FT_E_* with err set. */
#ifndef FT_MODEL_H
#define FT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ft.h"
#include "ops.h"
#include "safetensors.h"

enum ft_arch { FT_ARCH_LLAMA, FT_ARCH_MISTRAL, FT_ARCH_QWEN2 };

struct ft_model_config {
	enum ft_arch arch;
	int vocab_size;
	int hidden_size;
	int intermediate_size;
	int num_layers;
	int num_heads;
	int num_kv_heads;
	int head_dim;
	int max_position_embeddings;
	double rms_norm_eps;
	double initializer_range;
	struct ft_rope_params rope;
	bool tie_word_embeddings;
	bool qkv_bias;              /* Qwen2, or Llama attention_bias */
	bool o_bias;                /* Llama attention_bias */
	int bos_token_id, eos_token_id;   /* -1 when absent */
	char warning[256];          /* something ignored, for the tool to show */
};

/* Parse config.json text. */
int ft_model_config_parse(struct ft_model_config *c, const char *json, size_t len,
			  struct ft_err *err);
/* Read DIR/config.json, or a path ending in .json. */
int ft_model_config_load(struct ft_model_config *c, const char *path, struct ft_err *err);
/* A config.json for c (LlamaForCausalLM or Qwen2ForCausalLM/Mistral as c
 * says), readable by transformers 4 and 5. */
int ft_model_config_write(const struct ft_model_config *c, struct ft_buf *out);
/* Presets for `ft-train init --preset`: "tiny", "small". */
int ft_model_config_preset(struct ft_model_config *c, const char *name, struct ft_err *err);

/* The seven projections a layer has; LoRA targets are a bit set of them. */
enum ft_module {
	FT_MOD_Q, FT_MOD_K, FT_MOD_V, FT_MOD_O, FT_MOD_GATE, FT_MOD_UP, FT_MOD_DOWN,
	FT_MOD_COUNT
};
extern const char *const ft_module_names[FT_MOD_COUNT];   /* "q_proj", ... */
/* Hugging Face path of a module inside a layer: "self_attn.q_proj", ... */
extern const char *const ft_module_paths[FT_MOD_COUNT];

/* Pointers into a block of one element type: fp32 (the model, gradients,
 * moments) or a backend's storage type (the weights the forward pass reads;
 * kernels/ops.h), hence void. */
struct ft_layer_weights {
	void *input_layernorm;            /* [C] */
	void *w[FT_MOD_COUNT];            /* [out][in] */
	void *b[FT_MOD_COUNT];            /* bias [out] or NULL */
	void *post_attention_layernorm;   /* [C] */
};

struct ft_weights {
	void *embed;           /* [V][C] */
	void *norm;            /* [C] */
	void *lm_head;         /* [V][C]; == embed when tied */
	struct ft_layer_weights *layers;   /* num_layers, owned by the struct */
};

struct ft_param {
	char name[96];
	int ndim;
	int64_t shape[2];
	size_t offset, numel;  /* in floats, into the block */
	bool decay;            /* weight decay applies (matrices, not norms/biases) */
};

struct ft_model {
	struct ft_model_config cfg;
	struct ft_param *params;
	size_t nparams;
	size_t nfloats;        /* size of a block */
	float *weights;        /* the model's block, owned */
	struct ft_weights w;   /* into weights */
	struct ft_rope rope;
};

/* Module input / output sizes for cfg. */
void ft_module_dims(const struct ft_model_config *c, enum ft_module m, int *in, int *out);

/* Lay out the parameters of cfg and allocate a zeroed block. */
int ft_model_init(struct ft_model *m, const struct ft_model_config *cfg, struct ft_err *err);
void ft_model_release(struct ft_model *m);
/* Point w at block: m->nfloats elements of esize bytes in m's layout. */
int ft_model_point(const struct ft_model *m, void *block, size_t esize, struct ft_weights *w);
void ft_weights_release(struct ft_weights *w);
/* Load DIR: config.json then every weight by its HF name (converted to fp32;
 * shapes must match; missing or unexpected weights are errors; a tied
 * model's lm_head.weight, if present, is ignored). */
int ft_model_load(struct ft_model *m, const char *dir, struct ft_err *err);
/* HF-style random init: matrices and embeddings normal(0, initializer_range),
 * biases 0, norms 1; seeded, reproducible. */
void ft_model_init_random(struct ft_model *m, uint64_t seed);
/* Add n parameters of a block (in the layout of table p, such as
 * model.params) to a safetensors writer, each named prefix + its name. */
int ft_params_add(struct ft_st_writer *w, const struct ft_param *p, size_t n,
		  const float *block, const char *prefix, enum ft_dtype dtype, struct ft_err *err);
/* Read them back from f into block: every one must be there with its shape
 * (any stored dtype, converted to fp32). */
int ft_params_read(const struct ft_st_file *f, const struct ft_param *p, size_t n, float *block,
		   const char *prefix, struct ft_err *err);
/* Write a block's parameters to path as a safetensors file with metadata
 * format "pt" (as transformers and PEFT write), atomically. */
int ft_params_save(const char *path, const struct ft_param *p, size_t n, const float *block,
		   enum ft_dtype dtype, struct ft_err *err);
/* Write the weights to path (model.safetensors) in dtype (F32, BF16, F16). */
int ft_model_save_weights(const struct ft_model *m, const char *path, enum ft_dtype dtype,
			  struct ft_err *err);

#endif
