/* pool.h: an ordered parallel map over batches. One thread (the caller)
 * fills batches and consumes results; worker threads process submitted
 * batches in any order; ft_pool_next_done() hands them back in submission
 * order, so output never depends on the thread count. Batches are the
 * caller's opaque objects, owned by the caller; the pool only moves
 * pointers. With threads <= 1 work runs inline in ft_pool_submit(). */
#ifndef FT_POOL_H
#define FT_POOL_H

#include <stdbool.h>

#include "ft.h"

struct ft_pool;

/* work(batch, worker, ctx): process one batch on worker number worker (in
 * [0, threads), 0 when inline). nbatch batches (at least 1) circulate. */
typedef void (*ft_pool_work_fn)(void *batch, int worker, void *ctx);
int ft_pool_start(struct ft_pool **p, int threads, void **batches, int nbatch,
		  ft_pool_work_fn work, void *ctx, struct ft_err *err);
int ft_pool_threads(const struct ft_pool *p);
/* A free batch to fill, or NULL when every batch is submitted or waiting
 * to be consumed (the caller then consumes with ft_pool_next_done). */
void *ft_pool_acquire(struct ft_pool *p);
void ft_pool_submit(struct ft_pool *p, void *batch);
/* The oldest submitted batch once it is processed: waits for it when wait
 * is true, else returns NULL if it is not ready. NULL when none is pending.
 * The caller consumes it and gives it back with ft_pool_release(). */
void *ft_pool_next_done(struct ft_pool *p, bool wait);
void ft_pool_release(struct ft_pool *p, void *batch);
/* Stop and join the workers (pending batches are processed first). */
void ft_pool_free(struct ft_pool *p);

#endif
