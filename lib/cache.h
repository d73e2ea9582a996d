/* cache.h: a content-addressed on-disk cache of completed API replies, so a
 * rerun never pays twice for the same completion. An entry lives at
 * DIR/ab/abcd...(the 64-hex key) and is written to a temporary file beside
 * it, fsynced, renamed into place and the directory fsynced: after a crash
 * (kill -9, power loss) an entry is either complete or absent, and since
 * entries are never changed in place, processes sharing DIR cannot corrupt
 * each other (the last rename of a key wins). A struct ft_cache is used by
 * one thread at a time. Errors: 0 (or 1) or a negative FT_E_* with err set.
 *
 * The cache never stores secrets: the caller builds the key material from
 * what decides the reply (endpoint, model, messages, parameters, variant
 * index), never from the API key, and only the reply is stored. */
#ifndef FT_CACHE_H
#define FT_CACHE_H

#include <stddef.h>

#include "buf.h"
#include "ft.h"

/* First line of an entry: magic and version, then key, payload length and
 * the payload's SHA-256, then '\n' and the payload bytes:
 * "ft-cache 1 <key> <len> <sha256>\n<payload>" */
#define FT_CACHE_MAGIC "ft-cache 1"

struct ft_cache {
	char *dir;      /* owned; without trailing slashes */
};

/* Open the cache in dir, creating it (mkdir -p) if missing. FT_E_INVAL for
 * an empty or overlong dir, FT_E_IO when it cannot be made. */
int ft_cache_open(struct ft_cache *c, const char *dir, struct ft_err *err);
void ft_cache_close(struct ft_cache *c);

/* The key of data[0..len): its SHA-256 as 64 lowercase hex digits and a NUL
 * into hex. data is the canonical request the caller builds. */
void ft_cache_key(const void *data, size_t len, char hex[65]);

/* Look up key. 1: the stored payload is appended to out (NUL-terminated).
 * 0: absent, out unchanged; err->code is 0, or FT_E_DATA with a message
 * naming the file when the entry is damaged (bad header, wrong length,
 * checksum mismatch, another key inside) and so treated as absent: the
 * caller may warn, fetch again and put, which replaces it. Negative:
 * FT_E_INVAL for a malformed key, FT_E_IO for a read error other than
 * "not found", FT_E_TOOBIG when the payload exceeds out's max, FT_E_NOMEM. */
int ft_cache_get(struct ft_cache *c, const char *key, struct ft_buf *out, struct ft_err *err);

/* Store data[0..len) under key, replacing any entry, durably: when this
 * returns 0 the entry survives a crash. FT_E_INVAL for a malformed key (it
 * must be 64 lowercase hex digits, so it can never name another path), or
 * FT_E_IO. A put killed midway may leave a temporary ".KEY.tmp-XXXXXX" in
 * the fan-out directory; get never reads those, and they are not swept
 * here because another process may still be writing one. */
int ft_cache_put(struct ft_cache *c, const char *key, const void *data, size_t len,
		 struct ft_err *err);

/* 1 when key is exactly 64 lowercase hex digits, else 0. */
int ft_cache_key_valid(const char *key);

#endif
