#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ft_arena_chunk {
	struct ft_arena_chunk *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

#define ARENA_MIN_CHUNK ((size_t)64 << 10)

void ft_arena_init(struct ft_arena *a, size_t limit)
{
	a->head = NULL;
	a->total = 0;
	a->limit = limit;
}

void *ft_arena_alloc(struct ft_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	if (a->limit && (n > a->limit || a->total > a->limit - n))
		return NULL;
	struct ft_arena_chunk *c = a->head;
	if (!c || c->size - c->used < n) {
		size_t size = ARENA_MIN_CHUNK;
		if (c && c->size * 2 > size)
			size = c->size * 2 < ((size_t)64 << 20) ? c->size * 2 : c->size;
		if (size < n)
			size = n;
		c = malloc(sizeof *c + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	a->total += n;
	memset(p, 0, n);
	return p;
}

char *ft_arena_strndup(struct ft_arena *a, const char *s, size_t n)
{
	char *p = ft_arena_alloc(a, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = 0;
	}
	return p;
}

void ft_arena_reset(struct ft_arena *a)
{
	/* keep the biggest chunk (the newest), free the rest */
	struct ft_arena_chunk *keep = a->head;
	if (keep) {
		struct ft_arena_chunk *c = keep->next;
		while (c) {
			struct ft_arena_chunk *next = c->next;
			free(c);
			c = next;
		}
		keep->next = NULL;
		keep->used = 0;
	}
	a->total = 0;
}

void ft_arena_release(struct ft_arena *a)
{
	struct ft_arena_chunk *c = a->head;
	while (c) {
		struct ft_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->total = 0;
}

bool ft_arena_owns(const struct ft_arena *a, const void *p)
{
	const unsigned char *q = p;
	for (const struct ft_arena_chunk *c = a->head; c; c = c->next)
		if (q >= c->data && q < c->data + c->size)
			return true;
	return false;
}
