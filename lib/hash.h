/* hash.h: SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input
 * PRF", 2012), a keyed 64-bit hash: stable across machines and runs, and
 * with a secret or chosen key its outputs behave as independent uniform
 * values, which is what seeded splitting and sampling need. Pure functions,
 * no allocation, no errors. */
#ifndef FT_HASH_H
#define FT_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of p[0..len) under the 128-bit key (k0, k1), where k0 and k1
 * are the key's two halves read as little-endian 64-bit words. */
uint64_t ft_hash_siphash(const void *p, size_t len, uint64_t k0, uint64_t k1);

/* splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
 * generators", 2014): advances the state by one step and returns a
 * well-mixed 64-bit value; any seed, period 2^64. The small seeded
 * generator of everything that must be reproducible (dropout masks, row
 * orders, lexicon choices, backoff jitter). */
static inline uint64_t ft_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A uniform double in [0, 1) from the top 53 bits of h. */
static inline double ft_hash_unit(uint64_t h)
{
	return (double)(h >> 11) * 0x1p-53;
}

#endif
