/* Bounded batch queue: one mutex, two condition variables. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_queue.h"

struct gos_queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct gos_batch **ring;
	size_t cap, head, count;
	bool closed;
	struct gos_batch **pool;
	size_t pool_n, pool_cap;
};

struct gos_event *gos_batch_push(struct gos_batch *b)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 256;
		b->ev = realloc(b->ev, b->cap * sizeof(*b->ev));
		if (!b->ev)
			abort();
	}
	struct gos_event *e = &b->ev[b->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

void gos_batch_clear(struct gos_batch *b)
{
	b->n = 0;
	b->seq_floor = 0;
	b->replayed = false;
	b->adopt = NULL;
	b->adopt_seq = false;
	b->t_in_ns = 0;
	gos_arena_reset(&b->arena);
}

uint64_t *gos_batch_seq_end(struct gos_batch *b)
{
	if (b->seq_cap < b->n) {
		b->seq_cap = b->cap > b->n ? b->cap : b->n;
		b->seq_end = realloc(b->seq_end, b->seq_cap * sizeof(*b->seq_end));
		if (!b->seq_end)
			abort();
	}
	return b->seq_end;
}

static void batch_free(struct gos_batch *b)
{
	if (!b)
		return;
	free(b->seq_end);
	free(b->ev);
	gos_arena_finish(&b->arena);
	free(b);
}

struct gos_queue *gos_queue_create(size_t capacity)
{
	struct gos_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->cap = capacity ? capacity : 64;
	q->ring = calloc(q->cap, sizeof(*q->ring));
	if (!q->ring) {
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	return q;
}

void gos_queue_destroy(struct gos_queue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->count; i++)
		batch_free(q->ring[(q->head + i) % q->cap]);
	for (size_t i = 0; i < q->pool_n; i++)
		batch_free(q->pool[i]);
	free(q->pool);
	free(q->ring);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->not_empty);
	pthread_cond_destroy(&q->not_full);
	free(q);
}

struct gos_batch *gos_queue_get_batch(struct gos_queue *q)
{
	struct gos_batch *b = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->pool_n)
		b = q->pool[--q->pool_n];
	pthread_mutex_unlock(&q->lock);
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			abort();
	}
	return b;
}

void gos_queue_put_batch(struct gos_queue *q, struct gos_batch *b)
{
	if (!b)
		return;
	gos_batch_clear(b);
	pthread_mutex_lock(&q->lock);
	/* Keep at most as many spares as can be in flight. */
	if (q->pool_n < q->cap + 4) {
		if (q->pool_n == q->pool_cap) {
			q->pool_cap = q->pool_cap ? q->pool_cap * 2 : 16;
			q->pool = realloc(q->pool, q->pool_cap * sizeof(*q->pool));
			if (!q->pool)
				abort();
		}
		q->pool[q->pool_n++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	batch_free(b);
}

bool gos_queue_push(struct gos_queue *q, struct gos_batch *b)
{
	pthread_mutex_lock(&q->lock);
	while (q->count == q->cap && !q->closed)
		pthread_cond_wait(&q->not_full, &q->lock);
	if (q->closed) {
		pthread_mutex_unlock(&q->lock);
		return false;
	}
	q->ring[(q->head + q->count) % q->cap] = b;
	q->count++;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
	return true;
}

bool gos_queue_full(struct gos_queue *q)
{
	pthread_mutex_lock(&q->lock);
	bool full = q->count == q->cap;
	pthread_mutex_unlock(&q->lock);
	return full;
}

struct gos_batch *gos_queue_pop(struct gos_queue *q, int timeout_ms)
{
	struct timespec deadline;
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&q->lock);
	while (q->count == 0 && !q->closed) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&q->not_empty, &q->lock);
		} else if (pthread_cond_timedwait(&q->not_empty, &q->lock, &deadline) == ETIMEDOUT) {
			break;
		}
	}
	struct gos_batch *b = NULL;
	if (q->count) {
		b = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->count--;
		pthread_cond_signal(&q->not_full);
	}
	pthread_mutex_unlock(&q->lock);
	return b;
}

void gos_queue_close(struct gos_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
}

size_t gos_queue_depth(struct gos_queue *q)
{
	pthread_mutex_lock(&q->lock);
	size_t n = q->count;
	pthread_mutex_unlock(&q->lock);
	return n;
}

bool gos_queue_closed(struct gos_queue *q)
{
	pthread_mutex_lock(&q->lock);
	bool closed = q->closed;
	pthread_mutex_unlock(&q->lock);
	return closed;
}
