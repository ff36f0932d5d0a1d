/* The broadcaster's gos.v2 half (broadcast_v2.c; docs/protocol-v2.md): the
 * spatial index (gos_tiles) kept from the deltas while gos.v2 viewers are
 * connected, the tick's shared binary messages, snapshots, and the region
 * answers to viewports. Internal to compositor/web. Tick thread only,
 * except bv2_viewport (any thread). */
#ifndef BROADCAST_V2_H
#define BROADCAST_V2_H

#include <stdbool.h>
#include <stdint.h>

#include "gos_map.h"
#include "gos_ws.h"

struct bv2;

/* ws may come later (bv2_set_ws, before the tick thread starts). */
struct bv2 *bv2_create(struct gos_map *map, struct gos_ws *ws);
void bv2_set_ws(struct bv2 *s, struct gos_ws *ws);
void bv2_destroy(struct bv2 *s);   /* accepts NULL */

/* Any thread (gos_ws's viewport callback): queues the viewport (a later one
 * from the same viewer replaces it); vp NULL: forget the viewer. */
void bv2_viewport(struct bv2 *s, uint64_t viewer, uint64_t view_gen,
                  const struct gos_viewer_viewport *vp, int reset_ov);

/* Whether the index is kept now (false: rebuild it with bv2_rebuild). */
bool bv2_valid(const struct bv2 *s);
/* Drops the index (no gos.v2 viewer left). */
void bv2_invalidate(struct bv2 *s);
/* The index from the map as it is now (read in short locks, before the
 * delta that follows: the delta then brings it to one seq). */
void bv2_rebuild(struct bv2 *s);
/* One tick's delta into the index; publishes the tick's messages (tick,
 * tiles, cells) when publish and the delta moved seq since `since`. */
void bv2_delta(struct bv2 *s, const struct gos_map_view *d, uint64_t since, bool publish);
/* A snapshot at seq for the waiting gos.v2 viewers (every one when all). */
void bv2_snapshot(struct bv2 *s, uint64_t seq, bool all);
/* Answers queued viewports (a bounded number of token reads per call). */
void bv2_regions(struct bv2 *s, uint64_t seq);

#endif
