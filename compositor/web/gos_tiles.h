/* gos_tiles: the broadcaster's spatial index of the map for gos.v2 viewers
 * (docs/protocol-v2.md): where each slot's token is (its cell and tiles),
 * the density tiles of every level (count, confidence mean) and each detail
 * cell's slots, kept up to date from the broadcaster's deltas, plus what
 * changed since the last tick (removed slots, touched tiles).
 *
 * Thread: the broadcaster's only (no locking). */
#ifndef GOS_TILES_H
#define GOS_TILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_viewer_v2.h"

struct gos_tiles;

struct gos_tiles *gos_tiles_create(void);
void gos_tiles_destroy(struct gos_tiles *t);   /* accepts NULL */
/* Empty, bounds unset, nothing changed (memory kept). */
void gos_tiles_clear(struct gos_tiles *t);

/* The token at slot is now at (x, y) with confidence conf (NAN: unknown):
 * added, changed or moved. A move to another cell lists the slot among the
 * removed (the viewers holding the old cell drop it). */
void gos_tiles_put(struct gos_tiles *t, uint32_t slot, float x, float y, float conf);
/* The slot's token left the map (nothing when it holds none). */
void gos_tiles_remove(struct gos_tiles *t, uint32_t slot);

/* Whether puts and removes are remembered as the tick's changes (on by
 * default; off while building from a full copy, which nobody is sent). */
void gos_tiles_track(struct gos_tiles *t, bool on);

/* Tokens indexed now. */
uint64_t gos_tiles_tokens(const struct gos_tiles *t);
/* A box holding every centre seen since the last clear (grows only); NAN x4
 * when none. */
void gos_tiles_bounds(const struct gos_tiles *t, float out[4]);

/* ---- what changed since gos_tiles_tick_reset ---- */

/* Slots removed (or moved to another cell), in order (a slot may repeat). */
const uint32_t *gos_tiles_removed(const struct gos_tiles *t, size_t *n);
/* Calls fn for each tile of level that changed (sorted, each once), as it is
 * now (count 0: empty). Returns how many. */
size_t gos_tiles_changed(struct gos_tiles *t, int level,
                         void (*fn)(void *ctx, int32_t tx, int32_t ty, uint32_t count, float conf),
                         void *ctx);
void gos_tiles_tick_reset(struct gos_tiles *t);

/* ---- queries ---- */

/* Calls fn for each non-empty tile of level inside rect. Returns how many. */
size_t gos_tiles_each(const struct gos_tiles *t, int level, const struct gos_v2_rect *rect,
                      void (*fn)(void *ctx, int32_t tx, int32_t ty, uint32_t count, float conf),
                      void *ctx);
/* Tokens in the cells of rect (from the level-3 tiles). */
uint64_t gos_tiles_count(const struct gos_tiles *t, const struct gos_v2_rect *cells);
/* The slots in cell (cx, cy); *n = 0 when none. Valid until the next put or
 * remove. */
const uint32_t *gos_tiles_cell(const struct gos_tiles *t, int32_t cx, int32_t cy, size_t *n);

#endif
