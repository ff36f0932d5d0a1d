/* gos_tiles (see gos_tiles.h): per level an open-addressed table of the
 * non-empty tiles (linear probing, deleted by shifting back, so a tile that
 * empties leaves no tombstone), per cell a list of its slots, per slot where
 * its token is. Tokens laid out side by side mostly fall in the tile the
 * previous one fell in: each level remembers its last tile. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gos_tiles.h"

#define NO_POS UINT32_MAX

struct tile {
	uint64_t key;
	uint32_t count, known;     /* tokens; of them with a confidence */
	double sum;                /* their confidences */
};

struct table {
	struct tile *t;            /* count 0: free */
	size_t cap, used;
	size_t last;               /* where the last lookup found its key; cap: none */
};

struct cell {
	uint64_t key;
	bool used;
	uint32_t *slots;
	uint32_t n, cap;
};

struct slot_rec {
	float x, y, conf;
	uint32_t pos;              /* index in its cell's list; NO_POS: empty slot */
};

struct dirty {
	uint64_t key;
	uint32_t level;
};

struct gos_tiles {
	struct table lv[GOS_V2_LEVELS];
	struct cell *cells;
	size_t cell_cap, cell_used;
	struct cell *last_cell;    /* cell_get's last answer (laid-out tokens repeat it) */
	struct slot_rec *slot;
	size_t n_slot;
	uint64_t tokens;
	float bounds[4];
	uint32_t *removed;
	size_t n_removed, cap_removed;
	struct dirty *dirty;
	size_t n_dirty, cap_dirty;
	bool dirty_sorted;
	bool untracked;
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

static uint64_t key_of(int32_t x, int32_t y)
{
	return (uint64_t)(uint32_t)x << 32 | (uint32_t)y;
}

static int32_t key_x(uint64_t k)
{
	return (int32_t)(uint32_t)(k >> 32);
}

static int32_t key_y(uint64_t k)
{
	return (int32_t)(uint32_t)k;
}

static size_t hash(uint64_t k, size_t cap)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return (size_t)k & (cap - 1);
}

/* ---- tile tables -------------------------------------------------------- */

static void table_grow(struct table *tb)
{
	size_t cap = tb->cap ? tb->cap * 2 : 256;
	struct tile *t = calloc(cap, sizeof(*t));
	if (!t)
		abort();
	for (size_t i = 0; i < tb->cap; i++) {
		if (!tb->t[i].count)
			continue;
		size_t h = hash(tb->t[i].key, cap);
		while (t[h].count)
			h = (h + 1) & (cap - 1);
		t[h] = tb->t[i];
	}
	free(tb->t);
	tb->t = t;
	tb->cap = cap;
	tb->last = cap;
}

/* The tile's index, or cap when absent. */
static size_t table_find(const struct table *tb, uint64_t key)
{
	if (!tb->cap)
		return 0;
	if (tb->last < tb->cap && tb->t[tb->last].count && tb->t[tb->last].key == key)
		return tb->last;
	size_t h = hash(key, tb->cap);
	while (tb->t[h].count) {
		if (tb->t[h].key == key)
			return h;
		h = (h + 1) & (tb->cap - 1);
	}
	return tb->cap;
}

/* Backward-shift deletion of slot i (linear probing). */
static void table_delete(struct table *tb, size_t i)
{
	size_t mask = tb->cap - 1, j = i;
	tb->t[i].count = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (!tb->t[j].count)
			break;
		size_t home = hash(tb->t[j].key, tb->cap);
		/* j's entry stays unless its home lies cyclically outside (i, j] */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			tb->t[i] = tb->t[j];
			tb->t[j].count = 0;
			i = j;
		}
	}
	tb->used--;
	tb->last = tb->cap;
}

static void dirty_add(struct gos_tiles *t, int level, uint64_t key)
{
	if (t->n_dirty == t->cap_dirty) {
		t->cap_dirty = t->cap_dirty ? t->cap_dirty * 2 : 256;
		t->dirty = xrealloc(t->dirty, t->cap_dirty * sizeof(*t->dirty));
	}
	t->dirty[t->n_dirty++] = (struct dirty){key, (uint32_t)level};
	t->dirty_sorted = false;
}

static int32_t clamp32(int64_t v)
{
	return v < -2147483647 ? -2147483647 : v > 2147483647 ? 2147483647 : (int32_t)v;
}

/* Adds (sign 1) or takes away (-1) one token at (x, y) in every level. */
static void tiles_add(struct gos_tiles *t, float x, float y, float conf, int sign)
{
	/* every level is a shift of level 0 (as gos_v2_tile_of computes it) */
	int64_t x0 = gos_v2_tile0(x), y0 = gos_v2_tile0(y);
	for (int k = 0; k < GOS_V2_LEVELS; k++) {
		struct table *tb = &t->lv[k];
		uint64_t key = key_of(clamp32(x0 >> k), clamp32(y0 >> k));
		size_t i = table_find(tb, key);
		if (i == tb->cap) {
			if (sign < 0)
				continue;  /* cannot happen: the token was counted */
			if ((tb->used + 1) * 4 > tb->cap * 3)
				table_grow(tb);
			i = hash(key, tb->cap);
			while (tb->t[i].count)
				i = (i + 1) & (tb->cap - 1);
			tb->t[i] = (struct tile){.key = key};
			tb->used++;
		}
		struct tile *e = &tb->t[i];
		bool known = !isnan(conf);
		if (sign > 0) {
			e->count++;
			e->known += known;
			e->sum += known ? conf : 0.0;
			tb->last = i;
		} else {
			e->known -= known;
			e->sum -= known ? conf : 0.0;
			if (--e->count == 0)
				table_delete(tb, i);
			else
				tb->last = i;
		}
		if (!t->untracked && (!t->n_dirty || t->dirty[t->n_dirty - 1].key != key ||
		                      t->dirty[t->n_dirty - 1].level != (uint32_t)k))
			dirty_add(t, k, key);
	}
}

static float tile_conf(const struct tile *e)
{
	return e->known ? (float)(e->sum / e->known) : NAN;
}

/* ---- cells -------------------------------------------------------------- */

static struct cell *cell_find(const struct gos_tiles *t, uint64_t key)
{
	if (!t->cell_cap)
		return NULL;
	size_t h = hash(key, t->cell_cap);
	while (t->cells[h].used) {
		if (t->cells[h].key == key)
			return &t->cells[h];
		h = (h + 1) & (t->cell_cap - 1);
	}
	return NULL;
}

static struct cell *cell_get(struct gos_tiles *t, uint64_t key)
{
	if (t->last_cell && t->last_cell->used && t->last_cell->key == key)
		return t->last_cell;
	struct cell *c = cell_find(t, key);
	if (c)
		return t->last_cell = c;
	if ((t->cell_used + 1) * 2 > t->cell_cap) {
		size_t cap = t->cell_cap ? t->cell_cap * 2 : 64;
		struct cell *n = calloc(cap, sizeof(*n));
		if (!n)
			abort();
		for (size_t i = 0; i < t->cell_cap; i++) {
			if (!t->cells[i].used)
				continue;
			size_t h = hash(t->cells[i].key, cap);
			while (n[h].used)
				h = (h + 1) & (cap - 1);
			n[h] = t->cells[i];
		}
		free(t->cells);
		t->cells = n;
		t->cell_cap = cap;
		t->last_cell = NULL;
	}
	size_t h = hash(key, t->cell_cap);
	while (t->cells[h].used)
		h = (h + 1) & (t->cell_cap - 1);
	t->cells[h] = (struct cell){.key = key, .used = true};
	t->cell_used++;
	return t->last_cell = &t->cells[h];
}

static uint64_t cell_key(float x, float y)
{
	return key_of(gos_v2_tile_of(x, GOS_V2_CELL_LEVEL), gos_v2_tile_of(y, GOS_V2_CELL_LEVEL));
}

static void cell_take(struct gos_tiles *t, uint32_t slot)
{
	struct slot_rec *r = &t->slot[slot];
	struct cell *c = cell_find(t, cell_key(r->x, r->y));
	if (!c || r->pos >= c->n)
		abort();  /* the index lost track: a programming error */
	uint32_t last = c->slots[--c->n];
	c->slots[r->pos] = last;
	t->slot[last].pos = r->pos;
	r->pos = NO_POS;
}

static void cell_put(struct gos_tiles *t, uint32_t slot)
{
	struct slot_rec *r = &t->slot[slot];
	struct cell *c = cell_get(t, cell_key(r->x, r->y));
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->slots = xrealloc(c->slots, c->cap * sizeof(*c->slots));
	}
	r->pos = c->n;
	c->slots[c->n++] = slot;
}

/* ---- public ------------------------------------------------------------- */

struct gos_tiles *gos_tiles_create(void)
{
	struct gos_tiles *t = calloc(1, sizeof(*t));
	if (!t)
		abort();
	for (int i = 0; i < 4; i++)
		t->bounds[i] = NAN;
	return t;
}

void gos_tiles_destroy(struct gos_tiles *t)
{
	if (!t)
		return;
	for (int k = 0; k < GOS_V2_LEVELS; k++)
		free(t->lv[k].t);
	for (size_t i = 0; i < t->cell_cap; i++)
		free(t->cells[i].slots);
	free(t->cells);
	free(t->slot);
	free(t->removed);
	free(t->dirty);
	free(t);
}

void gos_tiles_clear(struct gos_tiles *t)
{
	for (int k = 0; k < GOS_V2_LEVELS; k++) {
		struct table *tb = &t->lv[k];
		if (tb->cap)
			memset(tb->t, 0, tb->cap * sizeof(*tb->t));
		tb->used = 0;
		tb->last = tb->cap;
	}
	for (size_t i = 0; i < t->cell_cap; i++)
		free(t->cells[i].slots);
	if (t->cell_cap)
		memset(t->cells, 0, t->cell_cap * sizeof(*t->cells));
	t->cell_used = 0;
	for (size_t i = 0; i < t->n_slot; i++)
		t->slot[i].pos = NO_POS;
	t->tokens = 0;
	for (int i = 0; i < 4; i++)
		t->bounds[i] = NAN;
	gos_tiles_tick_reset(t);
}

void gos_tiles_put(struct gos_tiles *t, uint32_t slot, float x, float y, float conf)
{
	if (!isfinite(x) || !isfinite(y))
		return;  /* the map only holds finite positions; be safe all the same */
	if (slot >= t->n_slot) {
		size_t n = t->n_slot ? t->n_slot : 1024;
		while (n <= slot)
			n *= 2;
		t->slot = xrealloc(t->slot, n * sizeof(*t->slot));
		for (size_t i = t->n_slot; i < n; i++)
			t->slot[i].pos = NO_POS;
		t->n_slot = n;
	}
	struct slot_rec *r = &t->slot[slot];
	if (r->pos != NO_POS) {
		if (r->x == x && r->y == y && (r->conf == conf || (isnan(r->conf) && isnan(conf))))
			return;
		bool moved = cell_key(r->x, r->y) != cell_key(x, y);
		tiles_add(t, r->x, r->y, r->conf, -1);
		if (moved) {
			cell_take(t, slot);
			gos_tiles_remove(t, slot);  /* listed: its old cell's viewers drop it */
		}
		r->x = x;
		r->y = y;
		r->conf = conf;
		tiles_add(t, x, y, conf, 1);
		if (moved)
			cell_put(t, slot);
	} else {
		r->x = x;
		r->y = y;
		r->conf = conf;
		tiles_add(t, x, y, conf, 1);
		cell_put(t, slot);
		t->tokens++;
	}
	if (isnan(t->bounds[0])) {
		t->bounds[0] = t->bounds[2] = x;
		t->bounds[1] = t->bounds[3] = y;
	} else {
		t->bounds[0] = fminf(t->bounds[0], x);
		t->bounds[1] = fminf(t->bounds[1], y);
		t->bounds[2] = fmaxf(t->bounds[2], x);
		t->bounds[3] = fmaxf(t->bounds[3], y);
	}
}

void gos_tiles_remove(struct gos_tiles *t, uint32_t slot)
{
	if (slot >= t->n_slot)
		return;
	struct slot_rec *r = &t->slot[slot];
	if (r->pos != NO_POS) {
		tiles_add(t, r->x, r->y, r->conf, -1);
		cell_take(t, slot);
		t->tokens--;
	}
	if (t->untracked)
		return;
	if (t->n_removed == t->cap_removed) {
		t->cap_removed = t->cap_removed ? t->cap_removed * 2 : 256;
		t->removed = xrealloc(t->removed, t->cap_removed * sizeof(*t->removed));
	}
	t->removed[t->n_removed++] = slot;
}

void gos_tiles_track(struct gos_tiles *t, bool on)
{
	t->untracked = !on;
}

uint64_t gos_tiles_tokens(const struct gos_tiles *t)
{
	return t->tokens;
}

void gos_tiles_bounds(const struct gos_tiles *t, float out[4])
{
	memcpy(out, t->bounds, sizeof(t->bounds));
}

const uint32_t *gos_tiles_removed(const struct gos_tiles *t, size_t *n)
{
	*n = t->n_removed;
	return t->removed;
}

static int cmp_dirty(const void *a, const void *b)
{
	const struct dirty *x = a, *y = b;
	if (x->level != y->level)
		return x->level < y->level ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

size_t gos_tiles_changed(struct gos_tiles *t, int level,
                         void (*fn)(void *ctx, int32_t tx, int32_t ty, uint32_t count, float conf),
                         void *ctx)
{
	if (!t->dirty_sorted && t->n_dirty > 1)
		qsort(t->dirty, t->n_dirty, sizeof(*t->dirty), cmp_dirty);
	t->dirty_sorted = true;
	size_t n = 0;
	for (size_t i = 0; i < t->n_dirty; i++) {
		const struct dirty *d = &t->dirty[i];
		if (d->level != (uint32_t)level || (i && d->level == t->dirty[i - 1].level &&
		                                    d->key == t->dirty[i - 1].key))
			continue;
		const struct table *tb = &t->lv[level];
		size_t at = table_find(tb, d->key);
		if (at == tb->cap)
			fn(ctx, key_x(d->key), key_y(d->key), 0, NAN);
		else
			fn(ctx, key_x(d->key), key_y(d->key), tb->t[at].count, tile_conf(&tb->t[at]));
		n++;
	}
	return n;
}

void gos_tiles_tick_reset(struct gos_tiles *t)
{
	t->n_removed = 0;
	t->n_dirty = 0;
}

size_t gos_tiles_each(const struct gos_tiles *t, int level, const struct gos_v2_rect *rect,
                      void (*fn)(void *ctx, int32_t tx, int32_t ty, uint32_t count, float conf),
                      void *ctx)
{
	if (gos_v2_rect_empty(rect) || level < 0 || level >= GOS_V2_LEVELS)
		return 0;
	const struct table *tb = &t->lv[level];
	size_t n = 0;
	double area = ((double)rect->x1 - rect->x0 + 1) * ((double)rect->y1 - rect->y0 + 1);
	if (area > (double)tb->cap) {
		/* fewer tiles in the table than in the rect: walk the table (the
		 * order a receiver sees does not matter) */
		for (size_t i = 0; i < tb->cap; i++) {
			const struct tile *e = &tb->t[i];
			if (e->count && gos_v2_rect_has(rect, key_x(e->key), key_y(e->key))) {
				fn(ctx, key_x(e->key), key_y(e->key), e->count, tile_conf(e));
				n++;
			}
		}
		return n;
	}
	for (int64_t y = rect->y0; y <= rect->y1; y++)
		for (int64_t x = rect->x0; x <= rect->x1; x++) {
			size_t at = table_find(tb, key_of((int32_t)x, (int32_t)y));
			if (at == tb->cap)
				continue;
			fn(ctx, (int32_t)x, (int32_t)y, tb->t[at].count, tile_conf(&tb->t[at]));
			n++;
		}
	return n;
}

static void count_one(void *ctx, int32_t tx, int32_t ty, uint32_t count, float conf)
{
	(void)tx;
	(void)ty;
	(void)conf;
	*(uint64_t *)ctx += count;
}

uint64_t gos_tiles_count(const struct gos_tiles *t, const struct gos_v2_rect *cells)
{
	uint64_t n = 0;
	gos_tiles_each(t, GOS_V2_CELL_LEVEL, cells, count_one, &n);
	return n;
}

const uint32_t *gos_tiles_cell(const struct gos_tiles *t, int32_t cx, int32_t cy, size_t *n)
{
	const struct cell *c = cell_find(t, key_of(cx, cy));
	*n = c ? c->n : 0;
	return c ? c->slots : NULL;
}
