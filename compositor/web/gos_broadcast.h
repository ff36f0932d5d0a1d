/* gos broadcaster: the tick thread between the map state and the WebSocket
 * server. Every tick it copies what changed in the map since the last tick
 * (gos_map_read_since, bounded per tick), serializes it once as the gos.v1
 * delta messages (neural_state, token_visualization) and publishes the bytes
 * to gos_ws; when viewers wait for a snapshot it serializes ONE snapshot for
 * all of them, exact at the seq the next delta continues from.
 *
 * Threads: create/destroy on the owning thread; the thread it starts is the
 * only one that reads the map for viewers; the stats/metrics calls may come
 * from any thread. The map and server must outlive the broadcaster. */
#ifndef GOS_BROADCAST_H
#define GOS_BROADCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_map.h"
#include "gos_metrics.h"
#include "gos_ws.h"

#define GOS_BROADCAST_TICK_MS 33

/* Zero means default for every field. */
struct gos_broadcast_opts {
	uint32_t tick_ms;         /* 0: GOS_BROADCAST_TICK_MS */
	uint32_t max_per_tick;    /* changed tokens copied per tick; 0: 65536 */
	uint32_t page;            /* tokens per snapshot page (one map lock); 0: 16384 */
};

struct gos_broadcast_stats {
	uint64_t ticks;
	uint64_t deltas;           /* delta messages published */
	uint64_t delta_tokens;     /* tokens (and removals) in them */
	uint64_t snapshots;        /* snapshots built */
	uint64_t snapshot_tokens;  /* tokens in them */
	uint64_t fallbacks;        /* the change log had moved past us: full copy to all */
	uint64_t seq;              /* the seq viewers are brought up to */
};

/* Creates the broadcaster (no thread yet, so that /metrics can name it
 * before the server exists). */
struct gos_broadcast *gos_broadcast_create(struct gos_map *map,
                                           const struct gos_broadcast_opts *opts);
/* Starts the tick thread publishing to ws. false (err filled) if the thread
 * cannot start. */
bool gos_broadcast_start(struct gos_broadcast *b, struct gos_ws *ws, char *err, size_t errlen);
/* Stops the tick thread (within one tick): nothing is published after it
 * returns; the stats stay readable. Idempotent; accepts NULL. */
void gos_broadcast_stop(struct gos_broadcast *b);
/* Stops (gos_broadcast_stop) and frees. Accepts NULL. */
void gos_broadcast_destroy(struct gos_broadcast *b);

/* ---- private maps (the seek worker's) ---- */

/* Receives each serialized message of a private broadcaster (the reference
 * is the receiver's); snapshot: it is a snapshot. */
typedef void (*gos_broadcast_emit_fn)(void *ctx, struct gos_ws_msg *msg, bool snapshot);

/* A broadcaster without a thread for a map that no other thread changes
 * (the seek worker's private copy): the same serializer, so the same bytes
 * as the live snapshots and deltas, handed to emit instead of the server.
 * Destroy with gos_broadcast_destroy. Thread: the map's owner only. */
struct gos_broadcast *gos_broadcast_create_private(struct gos_map *map,
                                                   gos_broadcast_emit_fn emit, void *ctx);
/* The map's owner: a snapshot of the whole map labelled `seq` (the map's own
 * seq may be lower: the map after every event up to seq), with "mode" and,
 * when has_time, "time" (NAN: null). */
void gos_broadcast_private_snapshot(struct gos_broadcast *b, uint64_t seq, const char *mode,
                                    bool has_time, double time);
/* The map's owner: what changed since the last snapshot or delta, as
 * neural_state + token_visualization chained from the seq the viewer holds
 * (nothing when nothing changed); *seq: the seq the viewer then holds. False
 * when the map's change log no longer reaches back (nothing emitted). */
bool gos_broadcast_private_delta(struct gos_broadcast *b, uint64_t *seq);

/* Any thread (gos_ws's viewport callback, see gos_ws_viewport_fn): a gos.v2
 * viewer's viewport, answered with region messages between ticks. Ignored
 * before gos_broadcast_start. */
void gos_broadcast_viewport(struct gos_broadcast *b, uint64_t viewer, uint64_t view_gen,
                            const struct gos_viewer_viewport *vp, int reset_ov);

/* Any thread. */
void gos_broadcast_stats(struct gos_broadcast *b, struct gos_broadcast_stats *out);

/* Any thread: appends the broadcaster's Prometheus families (tick duration
 * histogram, deltas, snapshots). */
void gos_broadcast_metrics(struct gos_broadcast *b, struct gos_buf *out);

#endif
