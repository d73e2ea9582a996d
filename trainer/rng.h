/* rng.h: small seeded random numbers for weight init and dropout.
 * xoshiro256** (Blackman & Vigna) seeded through splitmix64; a stateless
 * hash (ft_rng_hash) for dropout masks, so a mask is a function of (seed,
 * step, layer, module, element) and the backward pass recomputes it instead
 * of storing it. Header-only, no allocation, cannot fail. */
#ifndef FT_RNG_H
#define FT_RNG_H

#include <math.h>
#include <stdint.h>

#include "hash.h"   /* ft_splitmix64 */

struct ft_rng {
	uint64_t s[4];
};

static inline void ft_rng_seed(struct ft_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = ft_splitmix64(&seed);
}

static inline uint64_t ft_rng_next(struct ft_rng *r)
{
	uint64_t *s = r->s;
	uint64_t x = s[1] * 5;
	uint64_t out = ((x << 7) | (x >> 57)) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = (s[3] << 45) | (s[3] >> 19);
	return out;
}

/* uniform in [0, 1) with 53 random bits */
static inline double ft_rng_uniform(struct ft_rng *r)
{
	return (double)(ft_rng_next(r) >> 11) * 0x1p-53;
}

/* standard normal (Box-Muller; one of the pair is dropped for simplicity) */
static inline double ft_rng_normal(struct ft_rng *r)
{
	double u1 = ft_rng_uniform(r), u2 = ft_rng_uniform(r);
	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* A uniform [0, 1) value that depends only on its inputs. */
static inline double ft_rng_hash(uint64_t seed, uint64_t a, uint64_t b)
{
	uint64_t x = seed ^ (a * 0xd1342543de82ef95ull) ^ (b * 0x9e3779b97f4a7c15ull);
	uint64_t h = ft_splitmix64(&x);
	h = ft_splitmix64(&h);
	return (double)(h >> 11) * 0x1p-53;
}

#endif
