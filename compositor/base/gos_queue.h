/* Batches of parsed events and the bounded queue that carries them from the
 * ingest side (socket, demo) to the core thread. Any thread may push or pop;
 * the receiver owns what it pops. */
#ifndef GOS_QUEUE_H
#define GOS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_arena.h"
#include "gos_event.h"

/* Events plus the arena their strings live in. The core fills seq_end
 * (gos_batch_seq_end) and t when it applies the batch, for the journal.
 * t_in_ns is the pusher's (the ingest, the demo): when its first event
 * arrived, for gos_pipeline's latency; 0 (restores, recordings): unknown. */
struct gos_map;

struct gos_batch {
	struct gos_event *ev;
	size_t n, cap;
	struct gos_arena arena;
	uint64_t *seq_end;      /* [i]: the map seq once ev[i] was applied */
	size_t seq_cap;
	double t;               /* CLOCK_REALTIME seconds when applied */
	/* Non-zero: the map's seq moves up to it (without a change) before the
	 * batch: a replica following a leader whose seq jumped (a restart). */
	uint64_t seq_floor;
	/* Events read back from the cluster's change log (a standby's replica):
	 * applied and journaled like any, never published to the log again. */
	bool replayed;
	/* Non-NULL: before the batch the core's map becomes this one (a
	 * replica's checkpoint, gos_map_adopt; the core destroys it). */
	struct gos_map *adopt;
	bool adopt_seq;         /* set by the core once it adopted: seq_floor is where */
	uint64_t t_in_ns;       /* gos_now_ns() when the first event arrived; 0: unknown */
};

/* seq_end with room for b->n entries. Never fails (aborts on OOM). */
uint64_t *gos_batch_seq_end(struct gos_batch *b);

/* Appends an event slot and returns it (zeroed). Never fails (aborts on OOM). */
struct gos_event *gos_batch_push(struct gos_batch *b);
void gos_batch_clear(struct gos_batch *b);   /* keeps memory for reuse; t_in_ns = 0 */

/* A bounded FIFO of batches, plus a pool of spare batches to recycle. */
struct gos_queue;

/* capacity: batches in flight (0: 64). */
struct gos_queue *gos_queue_create(size_t capacity);
void gos_queue_destroy(struct gos_queue *q);  /* frees queued and pooled batches */

/* A cleared batch from the pool, or a new one. Any thread. */
struct gos_batch *gos_queue_get_batch(struct gos_queue *q);
/* Returns a batch to the pool (cleared here). Any thread. */
void gos_queue_put_batch(struct gos_queue *q, struct gos_batch *b);

/* Blocks while the queue is full. Returns false (batch not taken) once the
 * queue is closed. */
bool gos_queue_push(struct gos_queue *q, struct gos_batch *b);
/* True when push would block right now (for stats). */
bool gos_queue_full(struct gos_queue *q);
/* Waits up to timeout_ms (<0: forever) for a batch; NULL on timeout or when
 * closed and drained. */
struct gos_batch *gos_queue_pop(struct gos_queue *q, int timeout_ms);
/* Wakes every waiter; later pushes fail, pops drain what is left. */
void gos_queue_close(struct gos_queue *q);
/* Whether gos_queue_close was called (any thread). */
bool gos_queue_closed(struct gos_queue *q);
/* Batches waiting right now. */
size_t gos_queue_depth(struct gos_queue *q);

#endif
