/* The core thread: pops event batches from the ingest queue, applies them to
 * the map state in order, and reports each sync barrier (and screenshot
 * request) once everything before it is applied. It owns no socket: replies
 * go through on_sync / on_screenshot. */
#ifndef GOS_CORE_H
#define GOS_CORE_H

#include <stdint.h>

#include "gos_journal.h"
#include "gos_map.h"
#include "gos_queue.h"

/* Called for each GOS_EV_SYNC once every event queued before it has been
 * applied (on the core thread), or, with a journal, once they are also on
 * disk (on the journal thread; pass the same function to the journal).
 * tokens is the live token count at the barrier. Must not block. */
typedef void (*gos_core_sync_fn)(void *ctx, const struct gos_sync_ev *sync, uint64_t tokens);

/* Called on the core thread for each GOS_EV_SCREENSHOT, after every event
 * queued before it has been applied. shot->path lives only for the call (copy
 * it). Must not block, and must see that the request is answered exactly once
 * (gos_ingest_reply), or the producer waits. */
typedef void (*gos_core_shot_fn)(void *ctx, const struct gos_screenshot_ev *shot, uint64_t tokens);

/* Called on the core thread after each batch is applied (before the
 * journal takes it): the events with b->seq_end (seq_start: the map's seq
 * before the batch). Must not block for long (the NATS change log publishes
 * asynchronously). */
typedef void (*gos_core_applied_fn)(void *ctx, const struct gos_batch *b, uint64_t seq_start);

struct gos_core_opts {
	struct gos_queue *queue;     /* required; popped by the core thread */
	struct gos_map *map;         /* required; written by the core thread only */
	gos_core_sync_fn on_sync;    /* may be NULL */
	gos_core_shot_fn on_screenshot;  /* may be NULL (requests are then dropped) */
	gos_core_applied_fn on_applied;  /* may be NULL */
	/* May be NULL (memory only). Else the core leases seqs from it, and
	 * hands it every applied batch, which it answers and recycles. */
	struct gos_journal *journal;
	void *ctx;
};

struct gos_core_stats {
	uint64_t batches;
	uint64_t events;             /* events applied (sync/screenshot markers excluded) */
};

/* Starts the core thread. NULL on failure (out of threads). */
struct gos_core *gos_core_create(const struct gos_core_opts *opts);

/* Closes the queue, applies what is still queued, joins. Accepts NULL. */
void gos_core_destroy(struct gos_core *core);

/* Any thread. */
void gos_core_stats(struct gos_core *core, struct gos_core_stats *out);

#endif
