/* The ordered batch pool of pool.h: a small ring of slots under one mutex.
 * Batches are few (2 per thread and some), so linear scans are fine. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

enum slot_state { S_FREE, S_FILLING, S_QUEUED, S_RUNNING, S_DONE };

struct slot {
	void *batch;
	enum slot_state state;
	unsigned long long seq;
};

struct worker_arg {
	struct ft_pool *p;
	int index;
};

struct ft_pool {
	struct slot *slots;
	int nslot, nthread;
	pthread_t *threads;
	struct worker_arg *args;
	ft_pool_work_fn work;
	void *ctx;
	unsigned long long next_seq, next_out;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
};

static struct slot *find(struct ft_pool *p, void *batch)
{
	for (int i = 0; i < p->nslot; i++)
		if (p->slots[i].batch == batch)
			return &p->slots[i];
	abort();  /* not one of ours: a caller bug */
}

static void *worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	struct ft_pool *p = wa->p;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct slot *pick = NULL;
		for (int i = 0; i < p->nslot; i++)
			if (p->slots[i].state == S_QUEUED && (!pick || p->slots[i].seq < pick->seq))
				pick = &p->slots[i];
		if (pick) {
			pick->state = S_RUNNING;
			pthread_mutex_unlock(&p->mu);
			p->work(pick->batch, wa->index, p->ctx);
			pthread_mutex_lock(&p->mu);
			pick->state = S_DONE;
			pthread_cond_broadcast(&p->cv);
		} else if (p->stop) {
			break;
		} else {
			pthread_cond_wait(&p->cv, &p->mu);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int ft_pool_start(struct ft_pool **out, int threads, void **batches, int nbatch,
		  ft_pool_work_fn work, void *ctx, struct ft_err *err)
{
	*out = NULL;
	if (nbatch < 1)
		return ft_err_set(err, FT_E_INVAL, "a pool needs at least one batch");
	struct ft_pool *p = calloc(1, sizeof *p);
	if (!p)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	p->nthread = threads > 1 ? threads : 0;
	p->slots = calloc((size_t)nbatch, sizeof *p->slots);
	p->threads = calloc((size_t)(p->nthread + 1), sizeof *p->threads);
	p->args = calloc((size_t)(p->nthread + 1), sizeof *p->args);
	if (!p->slots || !p->threads || !p->args) {
		free(p->slots);
		free(p->threads);
		free(p->args);
		free(p);
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	p->nslot = nbatch;
	for (int i = 0; i < nbatch; i++)
		p->slots[i].batch = batches[i];
	p->work = work;
	p->ctx = ctx;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (int i = 0; i < p->nthread; i++) {
		p->args[i] = (struct worker_arg){ p, i };
		int e = pthread_create(&p->threads[i], NULL, worker_main, &p->args[i]);
		if (e) {
			p->nthread = i;
			ft_pool_free(p);
			return ft_err_set(err, FT_E_NOMEM, "cannot start a thread: %s", strerror(e));
		}
	}
	*out = p;
	return 0;
}

int ft_pool_threads(const struct ft_pool *p)
{
	return p->nthread ? p->nthread : 1;
}

void *ft_pool_acquire(struct ft_pool *p)
{
	void *b = NULL;
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < p->nslot; i++)
		if (p->slots[i].state == S_FREE) {
			p->slots[i].state = S_FILLING;
			b = p->slots[i].batch;
			break;
		}
	pthread_mutex_unlock(&p->mu);
	return b;
}

void ft_pool_submit(struct ft_pool *p, void *batch)
{
	pthread_mutex_lock(&p->mu);
	struct slot *s = find(p, batch);
	s->seq = p->next_seq++;
	if (!p->nthread) {
		s->state = S_RUNNING;
		pthread_mutex_unlock(&p->mu);
		p->work(batch, 0, p->ctx);
		pthread_mutex_lock(&p->mu);
		s->state = S_DONE;
	} else {
		s->state = S_QUEUED;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
}

void *ft_pool_next_done(struct ft_pool *p, bool wait)
{
	void *b = NULL;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct slot *next = NULL;
		for (int i = 0; i < p->nslot; i++) {
			struct slot *s = &p->slots[i];
			if (s->state >= S_QUEUED && s->seq == p->next_out)
				next = s;
		}
		if (!next)
			break;  /* nothing pending */
		if (next->state == S_DONE) {
			next->state = S_FILLING;  /* the caller's again until released */
			p->next_out++;
			b = next->batch;
			break;
		}
		if (!wait)
			break;
		pthread_cond_wait(&p->cv, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return b;
}

void ft_pool_release(struct ft_pool *p, void *batch)
{
	pthread_mutex_lock(&p->mu);
	find(p, batch)->state = S_FREE;
	pthread_mutex_unlock(&p->mu);
}

void ft_pool_free(struct ft_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthread; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->slots);
	free(p->threads);
	free(p->args);
	free(p);
}
