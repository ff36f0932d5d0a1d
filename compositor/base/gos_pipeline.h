/* How long events take through gos-compositor, process-wide (like
 * gos_heartbeat): two Prometheus histograms, observed per event but paid
 * per batch (and per tick).
 *
 * gos_pipeline_latency_seconds{stage}: on the compositor's own monotonic
 * clock, from an event's arrival (the ingest read the batch's first line,
 * gos_batch.t_in_ns) to
 *   stage="applied"    the core applied it to the map;
 *   stage="published"  the broadcaster handed the delta carrying it to the
 *                      web service (serialized once, shared by every viewer:
 *                      the socket writes follow on the service thread),
 *                      counted only while viewers are connected;
 *   stage="sent"       the first byte of a message carrying it (a delta, a
 *                      snapshot, a gos.v2 tick) was written to a viewer's
 *                      socket (the first viewer's write), never sooner than
 *                      "published". Events published to viewers that then
 *                      wrote none of it (they left, or were all seeking)
 *                      are counted when a later message is first written.
 * Batches without an arrival time (journal restore, --open recordings) are
 * not counted.
 *
 * gos_producer_latency_seconds: from a token's own "timestamp" (the
 * producer's wall clock) to the core applying it (the compositor's wall
 * clock). Clocks of two hosts differ: a timestamp up to
 * GOS_PIPELINE_AHEAD_S in the future counts as 0 s; one further ahead, or
 * older than GOS_PIPELINE_BEHIND_S (replays, relative or synthetic
 * timestamps), is not a clock reading at all and is only counted in
 * gos_producer_timestamps_skipped_total.
 *
 * Threads: gos_pipeline_applied on the core thread; gos_pipeline_published
 * on the live broadcaster's; gos_pipeline_sent on the web service's;
 * gos_pipeline_metrics from any thread. */
#ifndef GOS_PIPELINE_H
#define GOS_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "gos_buf.h"
#include "gos_queue.h"

#define GOS_PIPELINE_AHEAD_S  60.0
#define GOS_PIPELINE_BEHIND_S 3600.0

/* The core applied b (its events took the map from seq_start to seq_end):
 * observes its events' "applied" stage and its tokens' producer latency,
 * and keeps (seq_end, arrival) for gos_pipeline_published. A few atomics
 * and one short lock per batch, one comparison loop over its events. */
void gos_pipeline_applied(const struct gos_batch *b, uint64_t seq_start, uint64_t seq_end);

/* Every change up to seq has been handed to the viewers (viewers: somebody
 * was connected to get it; false just forgets those batches). */
void gos_pipeline_published(uint64_t seq, bool viewers);

/* The first byte of a message carrying every change up to seq went to a
 * viewer's socket just now: observes "sent" for the batches up to seq (and
 * "published" for those the broadcaster has not yet marked) and forgets
 * them. One short lock. */
void gos_pipeline_sent(uint64_t seq);

/* Appends the families above (every stage, also with no observations). */
void gos_pipeline_metrics(struct gos_buf *out);

/* Tests: forget every observation and remembered batch. */
void gos_pipeline_reset(void);

#endif
