/* gos.v2 binary messages (docs/protocol-v2.md): a 112-byte header, then
 * columnar sections (tokens, removed slots, streams, tiles, alternatives,
 * strings), each array 8-byte aligned, so a browser decodes them with
 * typed-array views. This module only writes bytes from plain structs: who
 * gets which message is gos_ws's business, what goes in it the
 * broadcaster's.
 *
 * Threads: any; a message being built belongs to one thread. */
#ifndef GOS_VIEWER_V2_H
#define GOS_VIEWER_V2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_buf.h"
#include "gos_viewer_proto.h"

#define GOS_V2_PROTOCOL     "gos.v2"
#define GOS_V2_HEADER       112
#define GOS_V2_FLAG_ANALYTICS 1u       /* header flags: streams carry the analytics columns */
#define GOS_V2_FLAG_DETAIL    2u       /* header flags: tokens carry index, rank, gap, entropy,
                                        * agreement and flags; streams group and diverge_at */
#define GOS_V2_RANK_BEYOND    UINT32_MAX  /* the rank column: not among its top_logprobs */
#define GOS_V2_TFLAG_DIVERGES 1u       /* the tflags column: its stream's first divergence */
#define GOS_V2_LEVELS       21         /* tile levels 0..20 */
#define GOS_V2_TILE0        128.0      /* level-0 tile side, world units */
#define GOS_V2_CELL         1024.0     /* detail cell side (= level 3 tiles) */
#define GOS_V2_CELL_LEVEL   3
#define GOS_V2_TILE_PX      8.0        /* view level: tiles at least this many px */
#define GOS_V2_OVERVIEW     64         /* overview: the bounds in at most this many tiles each way */
#define GOS_V2_DETAIL_MAX   131072     /* tokens in a cell rect, at most */
#define GOS_V2_DETAIL_LINE_PX 4.0      /* detail once a line (22 units) is this tall */
#define GOS_V2_REGION_PAGE  16384      /* tokens per region message, at most */

enum gos_v2_kind {
	GOS_V2_SNAPSHOT = 1,
	GOS_V2_TICK = 2,
	GOS_V2_TILES = 3,
	GOS_V2_CELL_MSG = 4,
	GOS_V2_REGION = 5,
};

/* An inclusive rectangle of tiles or cells; empty when x1 < x0. */
struct gos_v2_rect {
	int32_t x0, y0, x1, y1;
};

static inline bool gos_v2_rect_empty(const struct gos_v2_rect *r)
{
	return r->x1 < r->x0 || r->y1 < r->y0;
}

static inline bool gos_v2_rect_has(const struct gos_v2_rect *r, int32_t x, int32_t y)
{
	return x >= r->x0 && x <= r->x1 && y >= r->y0 && y <= r->y1;
}

#define GOS_V2_RECT_NONE ((struct gos_v2_rect){0, 0, -1, -1})

/* The header's fields (everything but the counts, which the writer keeps). */
struct gos_v2_head {
	enum gos_v2_kind kind;
	uint64_t seq, since;
	uint32_t live_tokens;
	float bounds[4];               /* x0 y0 x1 y1; NAN: nothing seen */
	int32_t overview_level;
	int32_t view_level;            /* -1: none */
	struct gos_v2_rect cells;      /* detail cell rect; kind 4: the one cell */
	struct gos_v2_rect tiles;      /* view tile rect at view_level */
	uint32_t level;                /* kind 3: the tiles' level */
	float newest[2];               /* kind 2: the tick's newest token (NAN: none) */
};

/* One token record. Strings need not outlive the call. */
struct gos_v2_token {
	uint32_t slot, stream;
	float x, y, w, confidence, logprob;  /* NAN: unknown / none */
	double timestamp;
	const char *id, *text;
	uint32_t n_alts;
	const struct gos_alt *alts;
	uint32_t index;                /* in its stream */
	uint32_t rank;                 /* 0 unknown, GOS_V2_RANK_BEYOND beyond */
	float gap_ms, entropy, agree;  /* NAN: unknown */
	bool diverges;
};

/* A message being built: each column staged in its own buffer, joined by
 * gos_v2_finish. Zero-initialized is valid; reuse with gos_v2_begin. */
struct gos_v2_writer {
	struct gos_v2_head h;
	uint32_t n_tokens, n_removed, n_streams, n_tiles, n_alts;
	struct gos_buf col[56];
	struct gos_buf str;
};

/* {"type":"hello","protocol":"gos.v2","protocol_version":2,...} (text). */
void gos_v2_hello(struct gos_buf *out);

/* Starts a message (the header's fields as given; counts at zero). */
void gos_v2_begin(struct gos_v2_writer *w, const struct gos_v2_head *h);
void gos_v2_token(struct gos_v2_writer *w, const struct gos_v2_token *t);
void gos_v2_removed(struct gos_v2_writer *w, uint32_t slot);
/* A stream: its map index and the fields gos.v1 sends (group: s->group_index). */
void gos_v2_stream(struct gos_v2_writer *w, uint32_t index, const struct gos_viewer_stream *s);
/* A tile; confidence NAN when none of its tokens has one. */
void gos_v2_tile(struct gos_v2_writer *w, uint32_t level, int32_t tx, int32_t ty, uint32_t count,
                 float confidence);
/* The whole message into out (cleared first). */
void gos_v2_finish(struct gos_v2_writer *w, struct gos_buf *out);
void gos_v2_writer_finish(struct gos_v2_writer *w);  /* frees the staging buffers */

/* ---- geometry (docs/protocol-v2.md, "Geometry") ---- */

double gos_v2_tile_size(int level);
/* The tile of a world coordinate at a level: floor(v / (128 * 2^level)),
 * computed as the level-0 tile (gos_v2_tile0, clamped to +-1e15) shifted
 * right by the level, then clamped to int32. */
int32_t gos_v2_tile_of(double v, int level);
int64_t gos_v2_tile0(double v);
/* The smallest level whose tiles are at least GOS_V2_TILE_PX at zoom. */
int gos_v2_view_level(double zoom);
/* The smallest level at which bounds span at most GOS_V2_OVERVIEW tiles each
 * way (0 for NAN bounds). */
int gos_v2_overview_level(const float bounds[4]);
/* The rect of level tiles meeting the viewport grown by half its size each
 * side (empty for a viewport that is not finite). */
struct gos_v2_rect gos_v2_view_rect(const struct gos_viewer_viewport *vp, int level);

#endif
