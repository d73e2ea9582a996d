/* utf8.h: UTF-8 checks and the few Unicode operations the tools need (on
 * utf8proc). Functions that produce text append to a caller's ft_buf. */
#ifndef FT_UTF8_H
#define FT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Returns true if s[0..len) is valid UTF-8 (no overlongs, no surrogates, no
 * code points above U+10FFFF); else false and *bad = offset of the first bad
 * byte. */
bool ft_utf8_valid(const char *s, size_t len, size_t *bad);

/* Decode one code point at s (len > 0, valid UTF-8 assumed); returns its
 * byte length and sets *cp. */
int ft_utf8_decode(const char *s, size_t len, int32_t *cp);
/* Encode cp into out (4 bytes room); returns the byte length. */
int ft_utf8_encode(int32_t cp, char out[4]);
/* Number of code points in valid UTF-8 text. */
size_t ft_utf8_count(const char *s, size_t len);
/* Byte offset of the code point with index cp_index (clamped to len). */
size_t ft_utf8_offset(const char *s, size_t len, size_t cp_index);

/* true if s is already in NFC (fast for ASCII). */
bool ft_utf8_is_nfc(const char *s, size_t len);
/* Append the NFC form of s to out. */
int ft_utf8_nfc(const char *s, size_t len, struct ft_buf *out);

/* Python str.upper()/lower()/title()/capitalize() on valid UTF-8. */
int ft_utf8_upper(const char *s, size_t len, struct ft_buf *out);
int ft_utf8_lower(const char *s, size_t len, struct ft_buf *out);
int ft_utf8_title(const char *s, size_t len, struct ft_buf *out);
int ft_utf8_capitalize(const char *s, size_t len, struct ft_buf *out);
/* true for the code points Python's str.isspace() accepts. */
bool ft_utf8_isspace(int32_t cp);

#endif
