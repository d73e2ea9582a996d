/* Unit tests for lib/hash.c: SipHash-2-4 against the reference test vectors
 * of the paper (key 00 01 .. 0f, message 00 01 .. n-1). */
#include "hash.h"
#include "testhelp.h"

int main(void)
{
	static const struct { size_t n; uint64_t want; } vec[] = {
		{ 0, 0x726fdb47dd0e0e31ULL }, { 1, 0x74f839c593dc67fdULL },
		{ 2, 0x0d6c8009d9a94f5aULL }, { 3, 0x85676696d7fb7e2dULL },
		{ 7, 0xab0200f58b01d137ULL }, { 8, 0x93f5f5799a932462ULL },
		{ 15, 0xa129ca6149be45e5ULL }, { 16, 0x3f2acc7f57c29bdbULL },
		{ 63, 0x958a324ceb064572ULL },
	};
	unsigned char msg[64];
	for (int i = 0; i < 64; i++)
		msg[i] = (unsigned char)i;
	const uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
	for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
		char what[64];
		snprintf(what, sizeof what, "siphash-2-4 vector of length %zu", vec[i].n);
		test_cond(what, ft_hash_siphash(msg, vec[i].n, k0, k1) == vec[i].want);
	}
	test_cond("the key matters", ft_hash_siphash("a", 1, 0, 0) != ft_hash_siphash("a", 1, 1, 0));
	test_cond("unit of 0 is 0", ft_hash_unit(0) == 0.0);
	test_cond("unit of max is below 1", ft_hash_unit(UINT64_MAX) < 1.0);
	return test_report();
}
