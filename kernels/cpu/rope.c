/* rope.c: rotary position embedding (Su et al. 2021, RoFormer) in the
 * Hugging Face layout: dimension i pairs with i + D/2 (rotate_half), angle
 * pos * inv_freq[i]; the llama3 frequency scaling as transformers'
 * _compute_llama3_parameters. Positions come per token, so packed rows
 * restart at 0 for each document. The backward is the inverse rotation. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

int ft_rope_init(struct ft_rope *r, int head_dim, const struct ft_rope_params *p)
{
	r->head_dim = head_dim;
	r->inv_freq = NULL;
	if (head_dim <= 0 || head_dim % 2)
		return FT_E_INVAL;
	int half = head_dim / 2;
	r->inv_freq = malloc((size_t)half * sizeof *r->inv_freq);
	if (!r->inv_freq)
		return FT_E_NOMEM;
	for (int i = 0; i < half; i++) {
		double f = 1.0 / pow(p->theta, (double)(2 * i) / head_dim);
		if (p->type == FT_ROPE_LLAMA3) {
			double old = p->original_max_position_embeddings;
			double low_wavelen = old / p->low_freq_factor;
			double high_wavelen = old / p->high_freq_factor;
			double wavelen = 2.0 * M_PI / f;
			if (wavelen > low_wavelen) {
				f = f / p->factor;
			} else if (wavelen >= high_wavelen) {
				double smooth = (old / wavelen - p->low_freq_factor) /
						(p->high_freq_factor - p->low_freq_factor);
				f = (1.0 - smooth) * f / p->factor + smooth * f;
			}
		}
		r->inv_freq[i] = (float)f;
	}
	return FT_OK;
}

void ft_rope_release(struct ft_rope *r)
{
	free(r->inv_freq);
	r->inv_freq = NULL;
}

/* Rotate every head of token n by +angle (dir = 1) or -angle (dir = -1). */
static void rope_apply(float *x, const int32_t *pos, const float *inv_freq, int N, int H, int D,
		       float dir)
{
	int half = D / 2;
#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++) {
		for (int i = 0; i < half; i++) {
			float angle = (float)pos[n] * inv_freq[i];  /* fp32, as HF */
			float c = cosf(angle), s = dir * sinf(angle);
			for (int h = 0; h < H; h++) {
				float *v = x + ((size_t)n * H + h) * D;
				float a = v[i], b = v[i + half];
				v[i] = a * c - b * s;
				v[i + half] = b * c + a * s;
			}
		}
	}
}

void ft_cpu_rope_forward(float *x, const int32_t *pos, const float *inv_freq, int N, int H,
			 int D)
{
	rope_apply(x, pos, inv_freq, N, H, D, 1.0f);
}

void ft_cpu_rope_backward(float *x, const int32_t *pos, const float *inv_freq, int N, int H,
			  int D)
{
	rope_apply(x, pos, inv_freq, N, H, D, -1.0f);
}
