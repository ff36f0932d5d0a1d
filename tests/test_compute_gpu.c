/* compute_gpu: the token compute pipeline on the real device (lavapipe in
 * CI), validation and synchronization validation on, held to the CPU
 * reference:
 *   - fresh random batches of 0, 1, 63, 64, 65, 4096 and 1,000,000 tokens,
 *     random cameras, both palettes, tokens on and a few ulps around the cull
 *     boundary: same survivors (ids exact), same positions and colors;
 *   - the output buffer poisoned before each dispatch: all `count` records
 *     overwritten, none past them touched;
 *   - exact-arithmetic boundary cases kept/culled as the convention says;
 *   - incremental uploads (updates, removals, appends with gaps, duplicates,
 *     buffer growth) give the same GPU state as a full re-upload;
 *   - renderer-style recording with two frames in flight;
 *   - bad input rejected with nothing changed;
 *   - zero validation errors.
 *
 * Tolerance: |gpu - ref| <= 1e-5 * max(1, |ref|): relative 1e-5 for values
 * above 1 (pixel positions), absolute 1e-5 below (colors in [0, 1], where a
 * relative bound would be meaningless near 0; 1e-5 is far below one 8-bit
 * step, 1/255). Both sides do the same IEEE single-precision operations
 * (`precise` in GLSL, -ffp-contract=off in C), so on a conformant device the
 * results are in fact bit-identical; the test reports how many are. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#include "gos_compute.h"
#include "gos_test_gpu.h"

static int failures;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++; \
		} \
	} while (0)

static const uint32_t POISON = 0xDEADBEEFu;

/* ---- random data ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

static float frand(void)   /* [0, 1) */
{
	return (float)(rnd() >> 40) / 16777216.0f;
}

static float frange(float a, float b)
{
	return a + (b - a) * frand();
}

static struct gos_camera random_camera(void)
{
	struct gos_camera c = {
		.center_x = frange(-5000, 5000),
		.center_y = frange(-5000, 5000),
		.zoom = expf(frange(logf(0.01f), logf(50.0f))),
		.viewport_w = frange(1, 4096),
		.viewport_h = frange(1, 4096),
		.margin = rnd() % 4 == 0 ? 0.0f : frange(0, 256),
	};
	if (rnd() % 2) {   /* integer viewports, like real windows */
		c.viewport_w = floorf(c.viewport_w);
		c.viewport_h = floorf(c.viewport_h);
	}
	return c;
}

static float nudge(float v, int ulps)
{
	for (; ulps > 0; ulps--)
		v = nextafterf(v, INFINITY);
	for (; ulps < 0; ulps++)
		v = nextafterf(v, -INFINITY);
	return v;
}

/* World coordinate whose screen position is (about) `edge` on one axis, a few
 * ulps either way: the cull decision there depends on the last bit. */
static float near_edge(float center, float zoom, float viewport, float edge)
{
	float w = center + (edge - viewport * 0.5f) / zoom;
	return nudge(w, (int)(rnd() % 5) - 2);
}

static float random_confidence(void)
{
	uint64_t r = rnd() % 20;
	if (r < 2)
		return NAN;
	if (r == 2)
		return 0.0f;
	if (r == 3)
		return 1.0f;
	return frand();
}

/* A live token placed for `cam`: about a quarter on screen, some on the
 * boundary, a few far away. */
static struct gos_token_update random_token(uint32_t slot, const struct gos_camera *cam)
{
	float hw = (cam->viewport_w * 0.5f + cam->margin) / cam->zoom;
	float hh = (cam->viewport_h * 0.5f + cam->margin) / cam->zoom;
	struct gos_token_update u = {
		.slot = slot,
		.x = cam->center_x + frange(-2, 2) * hw,
		.y = cam->center_y + frange(-2, 2) * hh,
		.confidence = random_confidence(),
	};
	uint64_t r = rnd() % 100;
	if (r < 8)
		u.x = near_edge(cam->center_x, cam->zoom, cam->viewport_w,
		                rnd() % 2 ? -cam->margin : cam->viewport_w + cam->margin);
	else if (r < 16)
		u.y = near_edge(cam->center_y, cam->zoom, cam->viewport_h,
		                rnd() % 2 ? -cam->margin : cam->viewport_h + cam->margin);
	else if (r < 18)
		u.x = rnd() % 2 ? 1e20f : -3e25f;
	return u;
}

/* ---- comparing ---- */

struct stats {
	size_t records, bit_exact;
	double max_err;
};

static struct stats totals;

static bool close_enough(float gpu, float ref, double *max_err)
{
	double err = fabs((double)gpu - (double)ref) / fmax(1.0, fabs((double)ref));
	if (err > *max_err)
		*max_err = err;
	return fabsf(gpu - ref) <= 1e-5f * fmaxf(1.0f, fabsf(ref));
}

static int by_id(const void *a, const void *b)
{
	uint32_t x = ((const struct gos_processed *)a)->id, y = ((const struct gos_processed *)b)->id;
	return (x > y) - (x < y);
}

/* gpu: n_gpu records in any order (sorted here); ref: slot order. */
static bool same_survivors(const char *what, struct gos_processed *gpu, uint32_t n_gpu,
                           const struct gos_processed *ref, uint32_t n_ref)
{
	if (n_gpu != n_ref) {
		fprintf(stderr, "%s: GPU kept %u tokens, the reference %u\n", what, n_gpu, n_ref);
		return false;
	}
	qsort(gpu, n_gpu, sizeof(*gpu), by_id);
	for (uint32_t i = 0; i < n_gpu; i++) {
		const struct gos_processed *g = &gpu[i], *r = &ref[i];
		double e = 0;
		bool ok = g->id == r->id && g->pad0 == 0 &&
		          close_enough(g->x, r->x, &e) && close_enough(g->y, r->y, &e) &&
		          close_enough(g->r, r->r, &e) && close_enough(g->g, r->g, &e) &&
		          close_enough(g->b, r->b, &e) && close_enough(g->a, r->a, &e);
		if (e > totals.max_err)
			totals.max_err = e;
		totals.records++;
		totals.bit_exact += !memcmp(g, r, sizeof(*g));
		if (!ok) {
			fprintf(stderr, "%s: record %u differs:\n  gpu id %u pad %u (%.9g, %.9g) rgba (%.9g %.9g %.9g %.9g)\n"
			        "  ref id %u pad %u (%.9g, %.9g) rgba (%.9g %.9g %.9g %.9g)\n", what, i,
			        g->id, g->pad0, (double)g->x, (double)g->y, (double)g->r, (double)g->g,
			        (double)g->b, (double)g->a, r->id, r->pad0, (double)r->x, (double)r->y,
			        (double)r->r, (double)r->g, (double)r->b, (double)r->a);
			return false;
		}
	}
	return true;
}

/* Poisons the output, dispatches, and checks the GPU against the reference:
 * every survivor record written, nothing past them touched, same set. */
static bool check_dispatch(const char *what, struct gos_compute *c, struct gos_compute_ref *r,
                           const struct gos_camera *cam, uint32_t palette)
{
	struct gos_compute_buffers b;
	gos_compute_buffers(c, &b);
	uint32_t count = UINT32_MAX, n_ref = 0;
	bool ok = gos_compute_fill_output(c, POISON) &&
	          gos_compute_dispatch(c, cam, palette, &count) &&
	          gos_compute_ref_dispatch(r, cam, palette, &n_ref);
	CHECK(ok);
	if (!ok)
		return false;
	struct gos_processed *all = malloc((size_t)b.capacity * sizeof(*all));
	ok = gos_compute_read_range(c, 0, b.capacity, all);
	CHECK(ok);
	if (ok) {
		size_t poisoned_inside = 0, touched_outside = 0;
		for (uint32_t i = 0; i < b.capacity; i++) {
			const uint32_t *w = (const uint32_t *)&all[i];
			size_t p = 0;
			for (int k = 0; k < 8; k++)
				p += w[k] == POISON;
			if (i < count)
				poisoned_inside += p > 0;
			else
				touched_outside += p != 8;
		}
		if (poisoned_inside || touched_outside)
			fprintf(stderr, "%s: %zu survivor records still hold poison, %zu records past "
			        "the %u survivors were touched\n", what, poisoned_inside,
			        touched_outside, count);
		CHECK(poisoned_inside == 0);
		CHECK(touched_outside == 0);
		bool same = same_survivors(what, all, count, gos_compute_ref_output(r), n_ref);
		CHECK(same);
		ok = same && !poisoned_inside && !touched_outside;
	}
	/* gos_compute_read gives the same count, and stops at the cap. */
	uint32_t count2 = 0;
	struct gos_processed two[2];
	CHECK(gos_compute_read(c, two, 2, &count2) && count2 == count);
	free(all);
	return ok;
}

/* ---- fresh batches ---- */

static void test_batches(struct gos_vk *vk)
{
	static const uint32_t sizes[] = {0, 1, 63, 64, 65, 4096, 1000000};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint32_t n = sizes[s];
		struct gos_compute *c = gos_compute_create(vk, NULL);
		struct gos_compute_ref *r = gos_compute_ref_create();
		CHECK(c && r);
		if (!c || !r) {
			gos_compute_destroy(c);
			gos_compute_ref_destroy(r);
			continue;
		}
		struct gos_camera place = random_camera();
		struct gos_token_update *u = malloc(((size_t)n + 1) * sizeof(*u));
		for (uint32_t i = 0; i < n; i++) {
			u[i] = random_token(i, &place);
			u[i].removed = rnd() % 50 == 0;
		}
		double t0 = now();
		CHECK(gos_compute_update(c, u, n));
		CHECK(gos_compute_ref_update(r, u, n));
		int cameras = n >= 1000000 ? 2 : 4;
		for (int k = 0; k < cameras; k++) {
			/* The camera the tokens were placed for (boundary tokens
			 * included), then others. */
			struct gos_camera cam = k == 0 ? place : random_camera();
			if (k == 1 && n) {   /* centered on a token, so some survive */
				cam.center_x = u[n / 2].x;
				cam.center_y = u[n / 2].y;
			}
			char what[64];
			snprintf(what, sizeof(what), "batch of %u, camera %d", n, k);
			check_dispatch(what, c, r, &cam, (uint32_t)k % GOS_PALETTE_COUNT);
		}
		printf("batch %7u: %d cameras compared in %.2f s\n", n, cameras, now() - t0);
		free(u);
		gos_compute_destroy(c);
		gos_compute_ref_destroy(r);
	}
}

/* ---- color modes and filters ---- */

/* Every color mode and filter (a stream mask with and without its beyond
 * bit, a probability range, a search's highlight and dimming) on the GPU
 * equals the reference, and the filters drop exactly what they name. */
static void test_styles(struct gos_vk *vk)
{
	enum { N = 20000, STREAMS = 70 };
	struct gos_compute *c = gos_compute_create(vk, NULL);
	struct gos_compute_ref *r = gos_compute_ref_create();
	CHECK(c && r);
	if (!c || !r) {
		gos_compute_destroy(c);
		gos_compute_ref_destroy(r);
		return;
	}
	struct gos_camera cam = random_camera();
	struct gos_token_update *u = malloc(N * sizeof(*u));
	for (uint32_t i = 0; i < N; i++) {
		u[i] = random_token(i, &cam);
		u[i].stream = (uint32_t)(rnd() % STREAMS);
		u[i].rank = (uint8_t)(rnd() % 5);
		for (int k = 0; k < 4; k++)
			u[i].q[k] = rnd() % 6 == 0 ? 0 : (uint8_t)(1 + rnd() % 255);
		u[i].flags = (uint8_t)(rnd() % 4);
	}
	CHECK(gos_compute_update(c, u, N) && gos_compute_ref_update(r, u, N));
	uint32_t mask[3] = {0x0F0F0F0Fu, 0x00000001u, 0x80000000u};   /* streams 0..95 */
	uint32_t unfiltered = 0;
	CHECK(gos_compute_dispatch(c, &cam, 0, &unfiltered));
	for (uint32_t mode = 0; mode < GOS_COLOR_MODE_COUNT; mode++) {
		for (int f = 0; f < 5; f++) {
			struct gos_compute_style st = {.mode = mode};
			if (f == 1)
				st = (struct gos_compute_style){.mode = mode, .filter = GOS_FILTER_STREAMS,
				                                .mask = mask, .mask_words = 2};
			if (f == 2)
				st = (struct gos_compute_style){.mode = mode,
				                                .filter = GOS_FILTER_STREAMS | GOS_FILTER_BEYOND,
				                                .mask = mask, .mask_words = 2};
			if (f == 3)
				st = (struct gos_compute_style){.mode = mode, .filter = GOS_FILTER_RANGE,
				                                .p_min = 0.25f, .p_max = 0.5f};
			if (f == 4)
				st = (struct gos_compute_style){.mode = mode, .filter = GOS_FILTER_SEARCH |
				                                GOS_FILTER_RANGE, .p_min = 0.0f, .p_max = 1.0f};
			CHECK(gos_compute_set_style(c, &st) && gos_compute_ref_set_style(r, &st));
			char what[64];
			snprintf(what, sizeof(what), "mode %s, filter %d", gos_compute_ref_mode_name(mode), f);
			check_dispatch(what, c, r, &cam, mode % GOS_PALETTE_COUNT);
			/* what the filter keeps, counted here from the updates */
			uint32_t want = 0, got = 0;
			const struct gos_processed *out = gos_compute_ref_output(r);
			uint32_t n_ref = 0;
			CHECK(gos_compute_ref_dispatch(r, &cam, 0, &n_ref));
			for (uint32_t i = 0; i < n_ref; i++) {
				const struct gos_token_update *t = &u[out[i].id];
				bool shown = true;
				if (f == 1 || f == 2)
					shown = t->stream < 64 ? (mask[t->stream / 32] >> (t->stream % 32)) & 1
					                       : f == 2;
				if (f == 3)
					shown = !isnan(t->confidence) && t->confidence >= 0.25f &&
					        t->confidence <= 0.5f;
				if (f == 4)
					shown = !isnan(t->confidence);
				want += shown;
				got++;
				if (f == 4 && (t->flags & GOS_TOKEN_MATCH))
					CHECK(out[i].r == GOS_HIGHLIGHT_R && out[i].a == GOS_HIGHLIGHT_A);
			}
			CHECK(want == got);
			CHECK(f == 0 ? n_ref == unfiltered : n_ref < unfiltered);
		}
	}
	struct gos_compute_style bad = {.mode = GOS_COLOR_MODE_COUNT};
	CHECK(!gos_compute_set_style(c, &bad));
	bad = (struct gos_compute_style){.filter = GOS_FILTER_RANGE, .p_min = 0.6f, .p_max = 0.5f};
	CHECK(!gos_compute_set_style(c, &bad));
	free(u);
	gos_compute_destroy(c);
	gos_compute_ref_destroy(r);
	printf("styles: %d modes x 5 filters compared\n", GOS_COLOR_MODE_COUNT);
}

/* ---- exact boundaries ---- */

static void test_exact_boundary(struct gos_vk *vk)
{
	/* Same table as the reference test: every step exact. */
	struct gos_camera cam = {.zoom = 2, .viewport_w = 800, .viewport_h = 600, .margin = 16};
	const float left = -208, right = 208, top = -158, bottom = 158, d = 1.0f / 32;
	struct { float x, y; bool kept; } cases[] = {
		{left, 0, true}, {right, 0, true}, {0, top, true}, {0, bottom, true},
		{left, top, true}, {right, bottom, true}, {left, bottom, true}, {right, top, true},
		{left - d, 0, false}, {right + d, 0, false}, {0, top - d, false},
		{0, bottom + d, false}, {left + d, bottom - d, true}, {1e30f, 0, false},
	};
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	struct gos_token_update u[N];
	uint32_t expect = 0;
	for (uint32_t i = 0; i < N; i++) {
		u[i] = (struct gos_token_update){.slot = i, .x = cases[i].x, .y = cases[i].y,
		                                 .confidence = 0.5f};
		expect += cases[i].kept;
	}
	struct gos_compute *c = gos_compute_create(vk, NULL);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK(gos_compute_update(c, u, N));
	uint32_t count = 0;
	struct gos_processed out[N];
	CHECK(gos_compute_dispatch(c, &cam, GOS_PALETTE_VIRIDIS, &count) && count == expect);
	CHECK(gos_compute_read(c, out, N, &count) && count == expect);
	bool seen[N] = {0};
	for (uint32_t i = 0; i < count && i < N; i++)
		if (out[i].id < N)
			seen[out[i].id] = true;
	for (uint32_t i = 0; i < N; i++) {
		if (seen[i] != cases[i].kept)
			fprintf(stderr, "exact boundary case %u: GPU kept %d, expected %d\n", i, seen[i],
			        cases[i].kept);
		CHECK(seen[i] == cases[i].kept);
	}
	/* Screen positions exactly on the edges. */
	qsort(out, count, sizeof(*out), by_id);
	CHECK(count >= 2 && out[0].x == -16.0f && out[0].y == 300.0f && out[1].x == 816.0f);
	gos_compute_destroy(c);
}

/* ---- incremental vs full ---- */

struct world {
	struct gos_compute_ref *truth;
	bool *live;
	uint32_t next_slot, cap;
};

static void mark(struct world *w, const struct gos_token_update *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w->live[u[i].slot] = !u[i].removed;
}

static uint32_t random_live(const struct world *w)
{
	for (int tries = 0; tries < 64 && w->next_slot; tries++) {
		uint32_t s = (uint32_t)(rnd() % w->next_slot);
		if (w->live[s])
			return s;
	}
	return UINT32_MAX;
}

/* The live tokens of the truth as a set_all() list. */
static size_t live_list(const struct world *w, struct gos_token_update *out)
{
	uint32_t n;
	const struct gos_gpu_token *t = gos_compute_ref_tokens(w->truth, &n);
	size_t k = 0;
	for (uint32_t s = 0; s < n; s++) {
		if (t[s].id == GOS_SLOT_EMPTY)
			continue;
		out[k++] = (struct gos_token_update){
			.slot = s, .x = t[s].x, .y = t[s].y,
			.confidence = t[s].confidence < 0 ? NAN : t[s].confidence,
		};
	}
	return k;
}

static const char *const upload_names[] = {"auto", "copy", "scatter"};

static void test_incremental(struct gos_vk *vk, enum gos_compute_upload upload, int rounds)
{
	struct gos_compute_opts small = {.initial_capacity = 64, .upload = upload};
	struct gos_compute *inc = gos_compute_create(vk, &small);
	struct gos_compute *full = gos_compute_create(vk, NULL);
	struct world w = {.truth = gos_compute_ref_create(), .cap = 1 << 18};
	w.live = calloc(w.cap, sizeof(bool));
	struct gos_token_update *batch = malloc(20000 * sizeof(*batch));
	struct gos_token_update *all = malloc(w.cap * sizeof(*all));
	CHECK(inc && full && w.truth);
	if (!inc || !full || !w.truth)
		goto out;
	struct gos_camera see_all = {.zoom = 1e-3f, .viewport_w = 1000, .viewport_h = 1000,
	                             .margin = 1e6f};
	struct gos_camera place = {.zoom = 1, .viewport_w = 1920, .viewport_h = 1080, .margin = 32};
	uint32_t grown_from = 64;
	for (int round = 0; round < rounds; round++) {
		size_t n = 0;
		uint32_t appends = 16u << round, mods = 20 + 50 * (uint32_t)round,
		         removals = 5 + 5 * (uint32_t)round;
		for (uint32_t i = 0; i < appends; i++) {
			w.next_slot += rnd() % 8 == 0 ? (uint32_t)(rnd() % 100) : 0;   /* gaps */
			batch[n++] = random_token(w.next_slot++, &place);
		}
		for (uint32_t i = 0; i < mods; i++) {
			uint32_t s = random_live(&w);
			if (s != UINT32_MAX)
				batch[n++] = random_token(s, &place);
		}
		for (uint32_t i = 0; i < removals; i++) {
			uint32_t s = random_live(&w);
			if (s != UINT32_MAX)
				batch[n++] = (struct gos_token_update){.slot = s, .removed = true};
		}
		for (uint32_t i = 0; i < 10 && w.next_slot; i++) {   /* revive or rewrite */
			uint32_t s = (uint32_t)(rnd() % w.next_slot);
			batch[n++] = random_token(s, &place);
		}
		/* Shuffle: slots arrive in any order, the same slot possibly twice. */
		for (size_t i = n; i > 1; i--) {
			size_t j = rnd() % i;
			struct gos_token_update t = batch[i - 1];
			batch[i - 1] = batch[j];
			batch[j] = t;
		}
		if (round == 5) {
			/* A full replace followed by more changes before the dispatch. */
			size_t k = live_list(&w, all);
			CHECK(gos_compute_set_all(inc, all, k));
			CHECK(gos_compute_ref_set_all(w.truth, all, k));
		}
		/* In up to three calls: later calls override earlier ones. */
		size_t parts = 1 + rnd() % 3, done = 0;
		for (size_t p = 0; p < parts; p++) {
			size_t len = p + 1 == parts ? n - done : (n - done) / 2;
			CHECK(gos_compute_update(inc, batch + done, len));
			CHECK(gos_compute_ref_update(w.truth, batch + done, len));
			mark(&w, batch + done, len);
			done += len;
		}
		size_t k = live_list(&w, all);
		CHECK(gos_compute_set_all(full, all, k));

		struct gos_camera cam = round % 2 ? see_all : random_camera();
		if (round % 2 == 0) {
			cam.center_x = place.center_x;
			cam.center_y = place.center_y;
		}
		uint32_t palette = (uint32_t)round % GOS_PALETTE_COUNT;
		char what[64];
		snprintf(what, sizeof(what), "incremental (%s) round %d", upload_names[upload], round);
		check_dispatch(what, inc, w.truth, &cam, palette);
		snprintf(what, sizeof(what), "full re-upload round %d", round);
		check_dispatch(what, full, w.truth, &cam, palette);

		/* Incremental and full GPU states give bit-identical results. */
		uint32_t ci = 0, cf = 0;
		struct gos_compute_buffers bi, bf;
		gos_compute_buffers(inc, &bi);
		gos_compute_buffers(full, &bf);
		struct gos_processed *oi = malloc(bi.capacity * sizeof(*oi));
		struct gos_processed *of = malloc(bf.capacity * sizeof(*of));
		CHECK(gos_compute_read(inc, oi, bi.capacity, &ci) && gos_compute_read(full, of, bf.capacity, &cf));
		CHECK(ci == cf);
		if (ci == cf) {
			qsort(oi, ci, sizeof(*oi), by_id);
			qsort(of, cf, sizeof(*of), by_id);
			CHECK(!memcmp(oi, of, ci * sizeof(*oi)));
		}
		if (round % 2) {
			/* The see-all camera keeps every live token but the far-away
			 * ones (random_token puts a few at 1e20). */
			size_t near_ones = 0;
			for (size_t i = 0; i < k; i++)
				near_ones += fabsf(all[i].x) < 1e8f && fabsf(all[i].y) < 1e8f;
			CHECK(ci == near_ones);
		}
		free(oi);
		free(of);
		if (bi.capacity > grown_from)
			grown_from = bi.capacity;
		printf("%s round %d: %zu updates, %zu live, %u slots, capacity %u, %u on screen\n",
		       upload_names[upload], round, n, k, bi.slots, bi.capacity, ci);
	}
	CHECK(grown_from >= 64u << rounds);   /* started at 64: grew many times */
	/* The upload paths the mode promises were the ones taken. */
	struct gos_compute_stats st;
	gos_compute_stats(inc, &st);
	printf("%s uploads: %llu by copy (%llu regions), %llu by scatter, %llu records\n",
	       upload_names[upload], (unsigned long long)st.copy_uploads,
	       (unsigned long long)st.copy_regions, (unsigned long long)st.scatter_uploads,
	       (unsigned long long)st.records_uploaded);
	CHECK(upload != GOS_COMPUTE_UPLOAD_COPY || (st.copy_uploads > 0 && st.scatter_uploads == 0));
	CHECK(upload != GOS_COMPUTE_UPLOAD_SCATTER || (st.scatter_uploads > 0 && st.copy_uploads == 0));
	CHECK(upload != GOS_COMPUTE_UPLOAD_AUTO || (st.scatter_uploads > 0 && st.copy_uploads > 0));

	/* Bad input: rejected, nothing changed (same results as before). */
	struct gos_token_update bad[3] = {
		{.slot = 0, .x = 1, .y = 1, .confidence = 0.5f},
		{.slot = 1, .x = NAN, .y = 1, .confidence = 0.5f},
		{.slot = 2, .x = 1, .y = 1, .confidence = 1.5f},
	};
	CHECK(!gos_compute_update(inc, bad, 2));
	CHECK(!gos_compute_update(inc, bad + 2, 1));
	struct gos_token_update huge = {.slot = gos_compute_max_slots(inc), .x = 1, .y = 1};
	CHECK(!gos_compute_update(inc, &huge, 1));
	CHECK(!gos_compute_set_all(inc, bad, 3));
	struct gos_camera badcam = see_all;
	badcam.zoom = 0;
	uint32_t count = 77;
	CHECK(!gos_compute_dispatch(inc, &badcam, 0, &count) && count == 77);
	CHECK(!gos_compute_dispatch(inc, &see_all, GOS_PALETTE_COUNT, &count) && count == 77);
	check_dispatch("after rejected input", inc, w.truth, &see_all, 0);
out:
	free(all);
	free(batch);
	free(w.live);
	gos_compute_ref_destroy(w.truth);
	gos_compute_destroy(full);
	gos_compute_destroy(inc);
}

/* ---- renderer-style: own command buffers, two frames in flight ---- */

static void test_frames_in_flight(struct gos_vk *vk)
{
	enum { FRAMES = 2, LOOPS = 12 };
	struct gos_compute_opts opts = {.initial_capacity = 256, .frames_in_flight = FRAMES};
	struct gos_compute *c = gos_compute_create(vk, &opts);
	struct gos_compute_ref *r = gos_compute_ref_create();
	VkCommandPool pool = VK_NULL_HANDLE;
	VkCommandBuffer cmd[FRAMES] = {0};
	VkFence fence[FRAMES] = {0};
	struct gos_vk_buffer *rb[FRAMES] = {0};
	uint32_t expect[LOOPS];
	CHECK(c && r);
	if (!c || !r)
		goto out;
	VkCommandPoolCreateInfo pi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
		.queueFamilyIndex = vk->queue_family,
	};
	CHECK(vkCreateCommandPool(vk->device, &pi, NULL, &pool) == VK_SUCCESS);
	VkCommandBufferAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
		.commandPool = pool,
		.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
		.commandBufferCount = FRAMES,
	};
	CHECK(vkAllocateCommandBuffers(vk->device, &ai, cmd) == VK_SUCCESS);
	for (int f = 0; f < FRAMES; f++) {
		VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO,
		                        .flags = VK_FENCE_CREATE_SIGNALED_BIT};
		CHECK(vkCreateFence(vk->device, &fi, NULL, &fence[f]) == VK_SUCCESS);
		rb[f] = gos_vk_buffer_create(vk, sizeof(VkDrawIndirectCommand),
		                             VK_BUFFER_USAGE_TRANSFER_DST_BIT, GOS_VK_MEM_READBACK,
		                             "test frame readback");
		CHECK(rb[f] != NULL);
	}
	struct gos_camera cam = {.zoom = 1, .viewport_w = 1280, .viewport_h = 720, .margin = 8};
	uint32_t next = 0;
	struct gos_token_update u[600];
	for (int frame = 0; frame < LOOPS; frame++) {
		int f = frame % FRAMES;
		CHECK(vkWaitForFences(vk->device, 1, &fence[f], VK_TRUE, UINT64_MAX) == VK_SUCCESS);
		if (frame >= FRAMES) {   /* the count that frame's draw would have used */
			gos_vk_buffer_invalidate(vk, rb[f]);
			uint32_t got = ((const VkDrawIndirectCommand *)rb[f]->mapped)->instanceCount;
			uint32_t vc = ((const VkDrawIndirectCommand *)rb[f]->mapped)->vertexCount;
			CHECK(got == expect[frame - FRAMES] && vc == 6);
		}
		CHECK(vkResetFences(vk->device, 1, &fence[f]) == VK_SUCCESS);
		/* This frame's changes: new tokens (growing past 256) and moves. */
		size_t n = 0;
		for (int i = 0; i < 300; i++)
			u[n++] = random_token(next++, &cam);
		for (int i = 0; i < 200; i++)
			u[n++] = random_token((uint32_t)(rnd() % next), &cam);
		CHECK(gos_compute_update(c, u, n));
		CHECK(gos_compute_ref_update(r, u, n));
		cam.center_x += 3;   /* panning */
		CHECK(gos_compute_ref_dispatch(r, &cam, 1, &expect[frame]));

		VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
		                               .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
		CHECK(vkBeginCommandBuffer(cmd[f], &bi) == VK_SUCCESS);
		CHECK(gos_compute_record(c, cmd[f], &cam, 1));
		/* The consumer: reads the indirect command right after, relying on
		 * the barrier contract (sync validation would flag a hazard). */
		struct gos_compute_buffers b;
		gos_compute_buffers(c, &b);
		VkBufferCopy region = {.size = sizeof(VkDrawIndirectCommand)};
		vkCmdCopyBuffer(cmd[f], b.indirect, rb[f]->buffer, 1, &region);
		VkMemoryBarrier host = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		                        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		                        .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
		vkCmdPipelineBarrier(cmd[f], VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT,
		                     0, 1, &host, 0, NULL, 0, NULL);
		CHECK(vkEndCommandBuffer(cmd[f]) == VK_SUCCESS);
		VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
		                   .pCommandBuffers = &cmd[f]};
		CHECK(vkQueueSubmit(vk->queue, 1, &si, fence[f]) == VK_SUCCESS);
	}
	CHECK(vkWaitForFences(vk->device, FRAMES, fence, VK_TRUE, UINT64_MAX) == VK_SUCCESS);
	for (int frame = LOOPS - FRAMES; frame < LOOPS; frame++) {
		int f = frame % FRAMES;
		gos_vk_buffer_invalidate(vk, rb[f]);
		CHECK(((const VkDrawIndirectCommand *)rb[f]->mapped)->instanceCount == expect[frame]);
	}
	/* The last frame's output equals the reference's. */
	uint32_t count = 0, n_ref = 0;
	struct gos_compute_buffers b;
	gos_compute_buffers(c, &b);
	struct gos_processed *out = malloc(b.capacity * sizeof(*out));
	CHECK(gos_compute_read(c, out, b.capacity, &count));
	CHECK(gos_compute_ref_dispatch(r, &cam, 1, &n_ref));
	CHECK(same_survivors("frames in flight", out, count, gos_compute_ref_output(r), n_ref));
	printf("frames in flight: %d frames, %u slots, capacity %u, last frame kept %u\n", LOOPS,
	       b.slots, b.capacity, count);
	free(out);
out:
	for (int f = 0; f < FRAMES; f++) {
		if (fence[f])
			vkDestroyFence(vk->device, fence[f], NULL);
		gos_vk_buffer_destroy(vk, rb[f]);
	}
	if (pool)
		vkDestroyCommandPool(vk->device, pool, NULL);
	gos_compute_ref_destroy(r);
	gos_compute_destroy(c);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!gos_vk_available()) {
		return gos_test_no_gpu("test_compute_gpu");
	}
	struct gos_vk *vk = gos_vk_create(NULL);
	CHECK(vk != NULL);
	if (!vk)
		return 1;
	test_exact_boundary(vk);
	test_styles(vk);
	test_batches(vk);
	test_incremental(vk, GOS_COMPUTE_UPLOAD_AUTO, 10);
	test_incremental(vk, GOS_COMPUTE_UPLOAD_SCATTER, 9);
	/* Copy regions cost the validation layer superlinear time: fewer rounds. */
	test_incremental(vk, GOS_COMPUTE_UPLOAD_COPY, 7);
	test_frames_in_flight(vk);
	uint32_t errors = gos_vk_validation_errors(vk);
	printf("compared %zu records: %zu bit-identical, largest error %.3g (tolerance 1e-5); "
	       "validation %s, %u error(s)\n", totals.records, totals.bit_exact, totals.max_err,
	       vk->validation ? "on" : "OFF", errors);
	CHECK(errors == 0);
	CHECK(totals.records > 100000);   /* the comparisons were not vacuous */
	gos_vk_destroy(vk);
	if (failures) {
		fprintf(stderr, "compute_gpu: %d check(s) failed\n", failures);
		return 1;
	}
	printf("compute_gpu: all checks passed\n");
	return 0;
}
