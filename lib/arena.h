/* arena.h: chunked bump allocation, freed all at once.
 * Allocations are zeroed and 16-byte aligned; a limit (bytes, 0 = none)
 * bounds the total so hostile input cannot exhaust memory. ft_arena_reset
 * keeps the largest chunk for reuse, so a per-record arena stops calling
 * malloc once warm. */
#ifndef FT_ARENA_H
#define FT_ARENA_H

#include <stdbool.h>
#include <stddef.h>

struct ft_arena_chunk;
struct ft_arena {
	struct ft_arena_chunk *head;
	size_t total;   /* bytes handed out since the last reset */
	size_t limit;
};

void ft_arena_init(struct ft_arena *a, size_t limit);
void *ft_arena_alloc(struct ft_arena *a, size_t n);   /* NULL when out of memory or over limit */
char *ft_arena_strndup(struct ft_arena *a, const char *s, size_t n);
void ft_arena_reset(struct ft_arena *a);
/* true if p points into memory handed out by a */
bool ft_arena_owns(const struct ft_arena *a, const void *p);
void ft_arena_release(struct ft_arena *a);

#endif
