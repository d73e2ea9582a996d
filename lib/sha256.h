/* sha256.h: SHA-256 (FIPS 180-4), for fingerprints users can check with
 * sha256sum. Streaming: init, update any number of times, final. No
 * allocation, no errors. */
#ifndef FT_SHA256_H
#define FT_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct ft_sha256 {
	uint32_t h[8];
	uint64_t len;        /* bytes hashed so far */
	uint8_t block[64];
	size_t fill;
};

void ft_sha256_init(struct ft_sha256 *s);
void ft_sha256_update(struct ft_sha256 *s, const void *p, size_t n);
void ft_sha256_final(struct ft_sha256 *s, uint8_t digest[32]);
/* digest of p[0..n) in one call */
void ft_sha256(const void *p, size_t n, uint8_t digest[32]);
/* 64 lowercase hex digits and a NUL into hex[65] */
void ft_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
