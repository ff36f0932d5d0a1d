/* The broadcaster's gos.v2 index (compositor/web/gos_tiles.c) against a
 * brute force: random puts (new tokens, changes, moves across cells and
 * tiles), removals and clears; after each round every level's tiles (count,
 * confidence mean), every cell's slots, the token count, the bounds and
 * the tick's changed tiles and removed slots equal what the brute force
 * computes from the same tokens. Also the gos.v2 geometry helpers and the
 * message writer's layout (header fields, 8-byte aligned sections). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_test.h"
#include "gos_tiles.h"
#include "gos_viewer_v2.h"

#define SLOTS 600

struct tok {
	bool on;
	float x, y, conf;
};

static struct tok toks[SLOTS];

static float rnd_pos(void)
{
	/* a few cells and tiles, edges included, both signs */
	return (float)((rand() % 20000) - 10000) + (rand() % 4 ? 0.5f : 0.0f);
}

struct tile_sum {
	uint32_t count, known;
	double sum;
};

static struct tile_sum brute_tile(int level, int32_t tx, int32_t ty)
{
	struct tile_sum s = {0};
	for (int i = 0; i < SLOTS; i++)
		if (toks[i].on && gos_v2_tile_of(toks[i].x, level) == tx &&
		    gos_v2_tile_of(toks[i].y, level) == ty) {
			s.count++;
			if (!isnan(toks[i].conf)) {
				s.known++;
				s.sum += toks[i].conf;
			}
		}
	return s;
}

struct seen {
	int level;
	size_t n, bad;
};

static void check_tile(void *ctx, int32_t tx, int32_t ty, uint32_t count, float conf)
{
	struct seen *s = ctx;
	struct tile_sum b = brute_tile(s->level, tx, ty);
	float want = b.known ? (float)(b.sum / b.known) : NAN;
	bool same = b.count == count && ((isnan(want) && isnan(conf)) || fabsf(want - conf) < 1e-5f);
	if (!same && s->bad++ < 3)
		fprintf(stderr, "level %d tile (%d,%d): %u/%g, brute %u/%g\n", s->level, tx, ty, count,
		        (double)conf, b.count, (double)want);
	s->n++;
}

static void check_all(struct gos_tiles *t, const char *when)
{
	const struct gos_v2_rect all = {INT32_MIN, INT32_MIN, INT32_MAX, INT32_MAX};
	for (int k = 0; k < GOS_V2_LEVELS; k++) {
		struct seen s = {k, 0, 0};
		gos_tiles_each(t, k, &all, check_tile, &s);
		/* and no tile is missing: the counts add up to the tokens */
		size_t on = 0;
		for (int i = 0; i < SLOTS; i++)
			on += toks[i].on;
		uint64_t total = 0;
		CHECK(s.bad == 0, "%s: level %d tiles equal the brute force", when, k);
		if (k == GOS_V2_CELL_LEVEL) {
			total = gos_tiles_count(t, &all);
			CHECK(total == on, "%s: cell tiles count %llu tokens, brute %zu", when,
			      (unsigned long long)total, on);
		}
	}
	size_t on = 0, in_cells = 0, bad_cells = 0;
	for (int i = 0; i < SLOTS; i++) {
		if (!toks[i].on)
			continue;
		on++;
		int32_t cx = gos_v2_tile_of(toks[i].x, GOS_V2_CELL_LEVEL);
		int32_t cy = gos_v2_tile_of(toks[i].y, GOS_V2_CELL_LEVEL);
		size_t n;
		const uint32_t *slots = gos_tiles_cell(t, cx, cy, &n);
		bool found = false;
		for (size_t k = 0; k < n; k++)
			found |= slots[k] == (uint32_t)i;
		bad_cells += !found;
		in_cells++;
	}
	CHECK(bad_cells == 0, "%s: every token is in its cell's slot list (%zu)", when, in_cells);
	CHECK(gos_tiles_tokens(t) == on, "%s: %llu tokens indexed, brute %zu", when,
	      (unsigned long long)gos_tiles_tokens(t), on);
}

struct changed {
	struct gos_tiles *t;
	int level;
	size_t bad;
};

static void check_changed(void *ctx, int32_t tx, int32_t ty, uint32_t count, float conf)
{
	struct changed *c = ctx;
	struct seen s = {c->level, 0, 0};
	check_tile(&s, tx, ty, count, conf);
	c->bad += s.bad;
}

static void test_random(void)
{
	struct gos_tiles *t = gos_tiles_create();
	float b[4];
	gos_tiles_bounds(t, b);
	CHECK(isnan(b[0]), "an empty index has no bounds");
	srand(7);
	for (int round = 0; round < 40; round++) {
		bool moved_out = false;
		for (int op = 0; op < 300; op++) {
			int i = rand() % SLOTS;
			int what = rand() % 10;
			if (what < 6 || !toks[i].on) {
				float conf = rand() % 5 ? (float)(rand() % 1000) / 999.0f : NAN;
				float x = rnd_pos(), y = rnd_pos();
				if (toks[i].on && what == 5) {
					x = toks[i].x;  /* a change in place (confidence only) */
					y = toks[i].y;
				}
				if (toks[i].on &&
				    (gos_v2_tile_of(toks[i].x, GOS_V2_CELL_LEVEL) != gos_v2_tile_of(x, GOS_V2_CELL_LEVEL) ||
				     gos_v2_tile_of(toks[i].y, GOS_V2_CELL_LEVEL) != gos_v2_tile_of(y, GOS_V2_CELL_LEVEL)))
					moved_out = true;
				gos_tiles_put(t, (uint32_t)i, x, y, conf);
				toks[i] = (struct tok){true, x, y, conf};
			} else {
				gos_tiles_remove(t, (uint32_t)i);
				toks[i].on = false;
				moved_out = true;
			}
		}
		size_t n_rm;
		gos_tiles_removed(t, &n_rm);
		CHECK(!moved_out || n_rm > 0, "round %d: removals and moves are listed", round);
		for (int k = 0; k < GOS_V2_LEVELS; k++) {
			struct changed c = {t, k, 0};
			gos_tiles_changed(t, k, check_changed, &c);
			CHECK(c.bad == 0, "round %d: level %d changed tiles are as they are now", round, k);
		}
		gos_tiles_tick_reset(t);
		gos_tiles_removed(t, &n_rm);
		CHECK(n_rm == 0, "a tick reset empties the removed list");
		char when[32];
		snprintf(when, sizeof(when), "round %d", round);
		check_all(t, when);
		if (round == 25) {
			gos_tiles_clear(t);
			memset(toks, 0, sizeof(toks));
			check_all(t, "after clear");
		}
	}
	gos_tiles_bounds(t, b);
	bool inside = true;
	for (int i = 0; i < SLOTS; i++)
		if (toks[i].on)
			inside &= toks[i].x >= b[0] && toks[i].x <= b[2] && toks[i].y >= b[1] && toks[i].y <= b[3];
	CHECK(inside, "every token lies inside the bounds");
	gos_tiles_destroy(t);
}

static void test_geometry(void)
{
	CHECK(gos_v2_tile_of(-0.5, 0) == -1 && gos_v2_tile_of(127.9, 0) == 0 &&
	      gos_v2_tile_of(128.0, 0) == 1 && gos_v2_tile_of(1024.0, 3) == 1,
	      "tiles are floor(v / (128 * 2^level))");
	CHECK(gos_v2_view_level(1.0) == 0 && gos_v2_view_level(0.0625) == 0 &&
	      gos_v2_view_level(0.01) == 3, "the view level: tiles of at least 8 px");
	float b[4] = {0, 0, 8191, 100};
	CHECK(gos_v2_overview_level(b) == 0, "64 tiles of 128 span 8191 units");
	float b2[4] = {0, 0, 8192, 100};
	CHECK(gos_v2_overview_level(b2) == 1, "one more unit: the next level");
	struct gos_viewer_viewport vp = {.x = 0, .y = 0, .w = 1024, .h = 512, .zoom = 1};
	struct gos_v2_rect r = gos_v2_view_rect(&vp, 3);
	CHECK(r.x0 == -1 && r.x1 == 1 && r.y0 == -1 && r.y1 == 0,
	      "the view rect grows the viewport by half each side (%d,%d)-(%d,%d)", r.x0, r.y0, r.x1, r.y1);
}

static void test_writer(void)
{
	struct gos_v2_writer w = {0};
	struct gos_buf out = {0};
	struct gos_v2_head h = {.kind = GOS_V2_CELL_MSG, .seq = 77, .since = 0, .live_tokens = 2,
	                        .bounds = {1, 2, 3, 4}, .overview_level = 5, .view_level = 2,
	                        .cells = {1, 2, 3, 4}, .tiles = GOS_V2_RECT_NONE};
	gos_v2_begin(&w, &h);
	struct gos_alt alts[2] = {{"a", -0.5f}, {"bb", -2.0f}};
	gos_v2_token(&w, &(struct gos_v2_token){.slot = 9, .stream = 1, .x = 10, .y = 20, .w = 27,
	                                         .confidence = 0.5f, .logprob = NAN, .timestamp = 1.5,
	                                         .id = "t9", .text = "héllo", .n_alts = 2, .alts = alts});
	gos_v2_removed(&w, 4);
	gos_v2_tile(&w, 3, -1, 2, 7, 0.25f);
	gos_v2_finish(&w, &out);
	const unsigned char *p = (const unsigned char *)out.data;
	uint32_t n_tok, n_alt, str_bytes;
	uint64_t seq;
	memcpy(&n_tok, p + 4, 4);
	memcpy(&seq, p + 8, 8);
	memcpy(&n_alt, p + 36, 4);
	memcpy(&str_bytes, p + 40, 4);
	CHECK(p[0] == GOS_V2_CELL_MSG && p[1] == 2 && n_tok == 1 && seq == 77 && n_alt == 2,
	      "the header carries kind, version, counts and seq");
	CHECK(p[2] == (GOS_V2_FLAG_ANALYTICS | GOS_V2_FLAG_DETAIL) && p[3] == 0,
	      "flags: the streams' analytics and the tokens' detail columns (%u)", p[2]);
	CHECK(out.len % 8 == 0, "a message is a whole number of 8-byte words (%zu)", out.len);
	/* tokens: ts (8), then 13 columns of 4 bytes, each padded to 8 */
	double ts;
	memcpy(&ts, p + GOS_V2_HEADER, 8);
	uint32_t slot;
	memcpy(&slot, p + GOS_V2_HEADER + 8, 4);
	CHECK(ts == 1.5 && slot == 9, "the token columns start after the header, 8-aligned");
	CHECK(str_bytes == strlen("t9") + strlen("héllo") + 3, "the strings: id, text, alts (%u)",
	      str_bytes);
	CHECK(memmem(out.data, out.len, "t9h\xc3\xa9lloabb", str_bytes) != NULL,
	      "strings are stored back to back in the table");
	gos_v2_writer_finish(&w);
	gos_buf_finish(&out);
}

int main(void)
{
	test_geometry();
	test_writer();
	test_random();
	return gos_test_report("test_tiles");
}
