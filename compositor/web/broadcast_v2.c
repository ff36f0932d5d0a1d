/* The broadcaster's gos.v2 half (see broadcast_v2.h).
 *
 * Consistency: the index follows the deltas the tick thread reads, so after
 * a tick it is the map at that tick's seq S. A region answer built after
 * the tick reads its tokens from the map a little later (S' >= S), its
 * tiles from the index at S; both are absolute values, and the next tick's
 * messages (changes after S, as they are then) overwrite whatever moved in
 * between, so a viewer that applies them in order is exact again at the
 * next tick's seq (docs/protocol-v2.md). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "broadcast_v2.h"
#include "gos_tiles.h"
#include "gos_viewer_v2.h"

#define MAX_PENDING  65536        /* queued viewports, at most (more are dropped) */
#define REGION_BUDGET 131072      /* token reads per tick for region answers */
#define LINE_H       22.0         /* world units (docs/protocol.md) */
#define CELL_MSGS    16           /* a tick touching more cells groups them in blocks */
#define BLOCK        8            /* of BLOCK x BLOCK cells */

struct pending {
	uint64_t viewer, view_gen;
	struct gos_viewer_viewport vp;
	int reset_ov;
	bool forget;
};

/* What one gos.v2 viewer holds, as far as our answers went. */
struct vstate {
	uint64_t viewer;               /* 0: free */
	struct gos_ws_region held;
	bool known;                    /* held is valid (a reset or an answer came) */
};

struct bv2 {
	struct gos_map *map;
	struct gos_ws *ws;
	struct gos_tiles *tiles;
	bool valid;

	pthread_mutex_t lock;          /* guards pending */
	struct pending *pending;
	size_t n_pending, cap_pending;
	uint64_t dropped;

	struct vstate *vs;             /* open addressing by viewer id */
	size_t vs_cap, vs_used;
	uint32_t level_refs[GOS_V2_LEVELS];  /* known viewers holding each level */

	struct gos_v2_writer w;
	struct gos_buf out;
	uint64_t mark;                 /* the seq of the message being written (head) */
	struct gos_map_view view;
	uint32_t *slots;
	size_t cap_slots;
	struct cellref { uint64_t key; uint32_t i; } *cref;
	size_t cap_cref;
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

struct bv2 *bv2_create(struct gos_map *map, struct gos_ws *ws)
{
	struct bv2 *s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	s->map = map;
	s->ws = ws;
	s->tiles = gos_tiles_create();
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void bv2_set_ws(struct bv2 *s, struct gos_ws *ws)
{
	s->ws = ws;
}

void bv2_destroy(struct bv2 *s)
{
	if (!s)
		return;
	gos_tiles_destroy(s->tiles);
	pthread_mutex_destroy(&s->lock);
	free(s->pending);
	free(s->vs);
	gos_v2_writer_finish(&s->w);
	gos_buf_finish(&s->out);
	gos_map_view_finish(&s->view);
	free(s->slots);
	free(s->cref);
	free(s);
}

void bv2_viewport(struct bv2 *s, uint64_t viewer, uint64_t view_gen,
                  const struct gos_viewer_viewport *vp, int reset_ov)
{
	pthread_mutex_lock(&s->lock);
	if (s->n_pending >= MAX_PENDING) {
		s->dropped++;  /* the next viewport of that viewer answers it */
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (s->n_pending == s->cap_pending) {
		s->cap_pending = s->cap_pending ? s->cap_pending * 2 : 64;
		s->pending = xrealloc(s->pending, s->cap_pending * sizeof(*s->pending));
	}
	s->pending[s->n_pending++] = (struct pending){
		.viewer = viewer, .view_gen = view_gen, .vp = vp ? *vp : (struct gos_viewer_viewport){0},
		.reset_ov = reset_ov, .forget = !vp};
	pthread_mutex_unlock(&s->lock);
}

bool bv2_valid(const struct bv2 *s)
{
	return s->valid;
}

void bv2_invalidate(struct bv2 *s)
{
	if (!s->valid)
		return;
	gos_tiles_clear(s->tiles);
	s->valid = false;
}

void bv2_rebuild(struct bv2 *s)
{
	enum { CHUNK = 65536 };
	struct gos_place *pl = xrealloc(NULL, CHUNK * sizeof(*pl));
	gos_tiles_clear(s->tiles);
	gos_tiles_track(s->tiles, false);
	for (uint32_t at = 0; at != UINT32_MAX;) {
		size_t n = gos_map_read_places(s->map, at, pl, CHUNK, &at);
		for (size_t i = 0; i < n; i++)
			gos_tiles_put(s->tiles, pl[i].slot, pl[i].x, pl[i].y, pl[i].confidence);
	}
	free(pl);
	gos_tiles_track(s->tiles, true);
	s->valid = true;
}

/* ---- writing ------------------------------------------------------------ */

static struct gos_v2_head head(struct bv2 *s, enum gos_v2_kind kind, uint64_t seq)
{
	struct gos_v2_head h = {.kind = kind, .seq = seq, .view_level = -1,
	                        .cells = GOS_V2_RECT_NONE, .tiles = GOS_V2_RECT_NONE};
	gos_tiles_bounds(s->tiles, h.bounds);
	h.overview_level = gos_v2_overview_level(h.bounds);
	h.live_tokens = (uint32_t)gos_tiles_tokens(s->tiles);
	s->mark = seq;
	return h;
}

static struct gos_ws_msg *finish(struct bv2 *s)
{
	gos_v2_finish(&s->w, &s->out);
	struct gos_ws_msg *m = gos_ws_msg_create_binary(s->out.data, s->out.len);
	gos_ws_msg_mark(m, s->mark);   /* pipeline stage "sent" (gos_web.c) */
	return m;
}

static void put_stream(struct gos_v2_writer *w, const struct gos_stream *st)
{
	gos_v2_stream(w, st->index, &(struct gos_viewer_stream){
		.name = st->name, .state = st->state, .tokens_processed = st->tokens_processed,
		.total_tokens = st->total_tokens, .elapsed_ms = st->elapsed_ms, .tokens = st->n_tokens,
		.ttft_ms = st->ttft_ms, .finish_reason = st->finish_reason, .message = st->message,
		.model = st->model, .stats = &st->stats, .group_index = st->group,
		.diverge_at = st->diverge_at});
}

static void put_token(struct gos_v2_writer *w, const struct gos_token *t)
{
	gos_v2_token(w, &(struct gos_v2_token){
		.slot = t->slot, .stream = t->stream, .x = t->x, .y = t->y, .w = t->w,
		.confidence = t->confidence, .logprob = t->logprob, .timestamp = t->timestamp,
		.id = t->id, .text = t->text, .n_alts = t->n_alts, .alts = t->alts,
		.index = t->index, .rank = t->rank, .gap_ms = t->gap_ms, .entropy = t->entropy,
		.agree = t->agree, .diverges = t->diverges});
}

/* A tile into the writer, at the level the writer's ctx says. */
struct tile_to {
	struct gos_v2_writer *w;
	uint32_t level;
	const struct gos_v2_rect *skip;   /* tiles the viewer holds already; NULL: none */
};

static void tile_to(void *ctx, int32_t tx, int32_t ty, uint32_t count, float conf)
{
	struct tile_to *t = ctx;
	if (t->skip && gos_v2_rect_has(t->skip, tx, ty))
		return;
	gos_v2_tile(t->w, t->level, tx, ty, count, conf);
}

static const struct gos_v2_rect every_tile = {INT32_MIN, INT32_MIN, INT32_MAX, INT32_MAX};

/* ---- ticks -------------------------------------------------------------- */

static int cmp_cref(const void *a, const void *b)
{
	const struct cellref *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

static int32_t floor_div(int32_t a, int32_t b)
{
	return a >= 0 ? a / b : (int32_t)-((-(int64_t)a + b - 1) / b);
}

static uint64_t cell_key_of(float x, float y)
{
	return (uint64_t)(uint32_t)gos_v2_tile_of(x, GOS_V2_CELL_LEVEL) << 32 |
	       (uint32_t)gos_v2_tile_of(y, GOS_V2_CELL_LEVEL);
}

void bv2_delta(struct bv2 *s, const struct gos_map_view *d, uint64_t since, bool publish)
{
	size_t n_up = 0;
	if (d->n_tokens > s->cap_cref) {
		s->cap_cref = d->n_tokens;
		s->cref = xrealloc(s->cref, s->cap_cref * sizeof(*s->cref));
	}
	for (size_t i = 0; i < d->n_tokens; i++) {
		const struct gos_token *t = &d->tokens[i];
		if (t->removed) {
			gos_tiles_remove(s->tiles, t->slot);
			continue;
		}
		gos_tiles_put(s->tiles, t->slot, t->x, t->y, t->confidence);
		s->cref[n_up++] = (struct cellref){cell_key_of(t->x, t->y), (uint32_t)i};
	}
	if (!publish || d->seq == since) {
		gos_tiles_tick_reset(s->tiles);
		return;
	}
	/* the tick: chain, streams, removals */
	struct gos_v2_head h = head(s, GOS_V2_TICK, d->seq);
	h.since = since;
	h.live_tokens = (uint32_t)d->live_tokens;
	/* where the newest token is, for viewers that follow it (a viewer far
	 * out holds no detail: it learns the place from here) */
	h.newest[0] = h.newest[1] = NAN;
	if (n_up) {
		const struct gos_token *t = &d->tokens[s->cref[n_up - 1].i];
		h.newest[0] = t->x;
		h.newest[1] = t->y;
	}
	gos_v2_begin(&s->w, &h);
	for (size_t i = 0; i < d->n_streams; i++)
		put_stream(&s->w, &d->streams[i]);
	size_t n_rm;
	const uint32_t *rm = gos_tiles_removed(s->tiles, &n_rm);
	for (size_t i = 0; i < n_rm; i++)
		gos_v2_removed(&s->w, rm[i]);
	gos_ws_publish_v2(s->ws, finish(s), GOS_WS_V2_ALL, 0, NULL);
	/* the tiles that changed, a message per level some viewer holds (the
	 * overview level always: viewers fresh from a snapshot hold it) */
	for (int k = 0; k < GOS_V2_LEVELS; k++) {
		if (!s->level_refs[k] && k != h.overview_level)
			continue;
		struct gos_v2_head th = h;
		th.kind = GOS_V2_TILES;
		th.since = 0;
		th.level = (uint32_t)k;
		th.newest[0] = th.newest[1] = 0.0f;
		gos_v2_begin(&s->w, &th);
		struct tile_to to = {&s->w, (uint32_t)k, NULL};
		if (gos_tiles_changed(s->tiles, k, tile_to, &to))
			gos_ws_publish_v2(s->ws, finish(s), GOS_WS_V2_LEVEL, k, NULL);
	}
	/* the tokens, a message per cell, or per block of cells when the tick
	 * touched many (a viewer's queue holds a bounded number of messages) */
	qsort(s->cref, n_up, sizeof(*s->cref), cmp_cref);
	size_t cells = 0;
	for (size_t i = 0; i < n_up; i++)
		cells += !i || s->cref[i].key != s->cref[i - 1].key;
	int32_t group = cells > CELL_MSGS ? BLOCK : 1;
	if (group > 1) {
		for (size_t i = 0; i < n_up; i++) {
			int32_t cx = (int32_t)(uint32_t)(s->cref[i].key >> 32);
			int32_t cy = (int32_t)(uint32_t)s->cref[i].key;
			s->cref[i].key = (uint64_t)(uint32_t)floor_div(cx, group) << 32 |
			                 (uint32_t)floor_div(cy, group);
		}
		qsort(s->cref, n_up, sizeof(*s->cref), cmp_cref);
	}
	for (size_t i = 0; i < n_up;) {
		uint64_t key = s->cref[i].key;
		int32_t gx = (int32_t)(uint32_t)(key >> 32), gy = (int32_t)(uint32_t)key;
		struct gos_v2_rect r = {gx * group, gy * group, gx * group + group - 1,
		                        gy * group + group - 1};
		struct gos_v2_head ch = h;
		ch.kind = GOS_V2_CELL_MSG;
		ch.since = 0;
		ch.cells = r;
		gos_v2_begin(&s->w, &ch);
		for (; i < n_up && s->cref[i].key == key; i++)
			put_token(&s->w, &d->tokens[s->cref[i].i]);
		gos_ws_publish_v2(s->ws, finish(s), GOS_WS_V2_CELLS, 0, &r);
	}
	gos_tiles_tick_reset(s->tiles);
}

void bv2_snapshot(struct bv2 *s, uint64_t seq, bool all)
{
	struct gos_v2_head h = head(s, GOS_V2_SNAPSHOT, seq);
	gos_v2_begin(&s->w, &h);
	gos_map_read_streams(s->map, &s->view);
	for (size_t i = 0; i < s->view.n_streams; i++)
		put_stream(&s->w, &s->view.streams[i]);
	struct tile_to to = {&s->w, (uint32_t)h.overview_level, NULL};
	gos_tiles_each(s->tiles, h.overview_level, &every_tile, tile_to, &to);
	gos_ws_publish_snapshot_v2(s->ws, finish(s), all, h.overview_level);
}

/* ---- viewers' state ----------------------------------------------------- */

static size_t vs_hash(uint64_t id, size_t cap)
{
	id *= 0x9e3779b97f4a7c15ull;
	return (size_t)(id >> 17) & (cap - 1);
}

static struct vstate *vs_find(struct bv2 *s, uint64_t viewer, bool add)
{
	if (add && (s->vs_used + 1) * 2 > s->vs_cap) {
		size_t cap = s->vs_cap ? s->vs_cap * 2 : 64;
		struct vstate *n = calloc(cap, sizeof(*n));
		if (!n)
			abort();
		for (size_t i = 0; i < s->vs_cap; i++) {
			if (!s->vs[i].viewer)
				continue;
			size_t h = vs_hash(s->vs[i].viewer, cap);
			while (n[h].viewer)
				h = (h + 1) & (cap - 1);
			n[h] = s->vs[i];
		}
		free(s->vs);
		s->vs = n;
		s->vs_cap = cap;
	}
	if (!s->vs_cap)
		return NULL;
	size_t h = vs_hash(viewer, s->vs_cap);
	while (s->vs[h].viewer) {
		if (s->vs[h].viewer == viewer)
			return &s->vs[h];
		h = (h + 1) & (s->vs_cap - 1);
	}
	if (!add)
		return NULL;
	s->vs[h] = (struct vstate){.viewer = viewer};
	s->vs_used++;
	return &s->vs[h];
}

/* Removes a viewer (backward shift, as in gos_tiles). */
static void vs_forget(struct bv2 *s, uint64_t viewer)
{
	struct vstate *e = vs_find(s, viewer, false);
	if (!e)
		return;
	size_t mask = s->vs_cap - 1, i = (size_t)(e - s->vs), j = i;
	s->vs[i].viewer = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (!s->vs[j].viewer)
			break;
		size_t home = vs_hash(s->vs[j].viewer, s->vs_cap);
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			s->vs[i] = s->vs[j];
			s->vs[j].viewer = 0;
			i = j;
		}
	}
	s->vs_used--;
}

/* What a known viewer holds changes: the level counts follow. */
static void level_ref(struct bv2 *s, const struct gos_ws_region *r, int d)
{
	if (r->overview_level >= 0 && r->overview_level < GOS_V2_LEVELS)
		s->level_refs[r->overview_level] += (uint32_t)d;
	if (r->view_level >= 0 && r->view_level < GOS_V2_LEVELS && r->view_level != r->overview_level)
		s->level_refs[r->view_level] += (uint32_t)d;
}

static void hold(struct bv2 *s, struct vstate *vs, const struct gos_ws_region *r)
{
	if (vs->known)
		level_ref(s, &vs->held, -1);
	vs->held = *r;
	vs->known = true;
	level_ref(s, &vs->held, 1);
}

static bool rect_eq(const struct gos_v2_rect *a, const struct gos_v2_rect *b)
{
	if (gos_v2_rect_empty(a) || gos_v2_rect_empty(b))
		return gos_v2_rect_empty(a) == gos_v2_rect_empty(b);
	return !memcmp(a, b, sizeof(*a));
}

/* ---- regions ------------------------------------------------------------ */

/* What a viewport should hold (docs/protocol-v2.md, "Geometry"). */
static struct gos_ws_region want_of(struct bv2 *s, const struct gos_viewer_viewport *vp,
                                    uint64_t view_gen)
{
	float b[4];
	gos_tiles_bounds(s->tiles, b);
	struct gos_ws_region r = {.view_gen = view_gen, .overview_level = gos_v2_overview_level(b)};
	r.view_level = gos_v2_view_level(vp->zoom);
	r.tiles = gos_v2_view_rect(vp, r.view_level);
	r.cells = GOS_V2_RECT_NONE;
	if (vp->zoom * LINE_H >= GOS_V2_DETAIL_LINE_PX) {
		r.cells = gos_v2_view_rect(vp, GOS_V2_CELL_LEVEL);
		if (!gos_v2_rect_empty(&r.cells) && gos_tiles_count(s->tiles, &r.cells) > GOS_V2_DETAIL_MAX)
			r.cells = GOS_V2_RECT_NONE;
	}
	return r;
}

/* Sends the region message being written and starts the next page. */
static void region_flush(struct bv2 *s, uint64_t viewer, const struct gos_ws_region *r,
                         const struct gos_v2_head *h)
{
	gos_ws_region_send(s->ws, viewer, r, finish(s));
	gos_v2_begin(&s->w, h);
}

/* The tokens of one cell into the region being written (paged). */
static void region_cell(struct bv2 *s, uint64_t viewer, const struct gos_ws_region *r,
                        const struct gos_v2_head *h, int32_t cx, int32_t cy, size_t *reads)
{
	size_t n;
	const uint32_t *slots = gos_tiles_cell(s->tiles, cx, cy, &n);
	if (!n)
		return;
	if (n > s->cap_slots) {
		s->cap_slots = n;
		s->slots = xrealloc(s->slots, n * sizeof(*s->slots));
	}
	memcpy(s->slots, slots, n * sizeof(*slots));  /* the read may not move them, but be safe */
	*reads += n;
	for (size_t at = 0; at < n; at += GOS_V2_REGION_PAGE) {
		size_t k = n - at < GOS_V2_REGION_PAGE ? n - at : GOS_V2_REGION_PAGE;
		gos_map_read_slots(s->map, s->slots + at, k, &s->view);
		for (size_t i = 0; i < s->view.n_tokens; i++) {
			if (s->w.n_tokens >= GOS_V2_REGION_PAGE)
				region_flush(s, viewer, r, h);
			put_token(&s->w, &s->view.tokens[i]);
		}
	}
}

static void answer(struct bv2 *s, struct vstate *vs, const struct gos_viewer_viewport *vp,
                   uint64_t seq, size_t *reads)
{
	struct gos_ws_region want = want_of(s, vp, vs->held.view_gen);
	const struct gos_ws_region *old = &vs->held;
	if (want.overview_level == old->overview_level && want.view_level == old->view_level &&
	    rect_eq(&want.cells, &old->cells) && rect_eq(&want.tiles, &old->tiles))
		return;
	struct gos_v2_head h = head(s, GOS_V2_REGION, seq);
	h.overview_level = want.overview_level;
	h.view_level = want.view_level;
	h.cells = want.cells;
	h.tiles = want.tiles;
	gos_v2_begin(&s->w, &h);
	struct tile_to to = {&s->w, (uint32_t)want.view_level,
	                     want.view_level == old->view_level ? &old->tiles : NULL};
	gos_tiles_each(s->tiles, want.view_level, &want.tiles, tile_to, &to);
	if (want.overview_level != old->overview_level) {
		to = (struct tile_to){&s->w, (uint32_t)want.overview_level, NULL};
		gos_tiles_each(s->tiles, want.overview_level, &every_tile, tile_to, &to);
	}
	/* the header (rects) is the same in every page; tiles only in the first */
	struct gos_v2_head page = h;
	if (!gos_v2_rect_empty(&want.cells))
		for (int64_t cy = want.cells.y0; cy <= want.cells.y1; cy++)
			for (int64_t cx = want.cells.x0; cx <= want.cells.x1; cx++)
				if (!gos_v2_rect_has(&old->cells, (int32_t)cx, (int32_t)cy))
					region_cell(s, vs->viewer, &want, &page, (int32_t)cx, (int32_t)cy, reads);
	gos_ws_region_send(s->ws, vs->viewer, &want, finish(s));
	hold(s, vs, &want);
}

void bv2_regions(struct bv2 *s, uint64_t seq)
{
	pthread_mutex_lock(&s->lock);
	struct pending *p = s->pending;
	size_t n = s->n_pending;
	s->pending = NULL;
	s->n_pending = s->cap_pending = 0;
	pthread_mutex_unlock(&s->lock);
	size_t reads = 0, i = 0;
	for (; i < n; i++) {
		if (reads >= REGION_BUDGET)
			break;  /* the rest wait for the next tick: others' deltas go first */
		const struct pending *q = &p[i];
		if (q->forget) {
			struct vstate *gone = vs_find(s, q->viewer, false);
			if (gone && gone->known)
				level_ref(s, &gone->held, -1);
			vs_forget(s, q->viewer);
			continue;
		}
		struct vstate *vs = vs_find(s, q->viewer, true);
		if (q->reset_ov >= 0) {
			/* a fresh snapshot: the viewer holds its overview tiles only */
			hold(s, vs, &(struct gos_ws_region){.view_gen = q->view_gen,
			                                    .overview_level = q->reset_ov, .view_level = -1,
			                                    .cells = GOS_V2_RECT_NONE,
			                                    .tiles = GOS_V2_RECT_NONE});
		} else if (!vs->known || vs->held.view_gen != q->view_gen) {
			continue;  /* from before the viewer's latest snapshot */
		}
		answer(s, vs, &q->vp, seq, &reads);
	}
	if (i < n) {
		/* put back what is left, ahead of what came meanwhile */
		pthread_mutex_lock(&s->lock);
		size_t left = n - i, total = left + s->n_pending;
		struct pending *all = xrealloc(NULL, total * sizeof(*all));
		memcpy(all, p + i, left * sizeof(*all));
		if (s->n_pending)
			memcpy(all + left, s->pending, s->n_pending * sizeof(*all));
		free(s->pending);
		s->pending = all;
		s->n_pending = s->cap_pending = total;
		pthread_mutex_unlock(&s->lock);
	}
	free(p);
}
