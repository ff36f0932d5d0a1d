/* compute_ref: the CPU reference of the token pipeline on its own (no GPU,
 * runs under ASan/UBSan too): record layouts, palettes, the projection and
 * its y-down convention, inclusive culling exactly at the boundary, unknown
 * confidence, empty slots, the update/set_all store, and bad input rejected
 * with nothing changed. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_compute_ref.h"

static int failures;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++; \
		} \
	} while (0)

static bool near(float a, float b, float tol)
{
	return fabsf(a - b) <= tol;
}

static void test_layout(void)
{
	/* std430 offsets of Token and ProcessedToken (design.md's contract). */
	CHECK(offsetof(struct gos_gpu_token, id) == 0);
	CHECK(offsetof(struct gos_gpu_token, x) == 8);
	CHECK(offsetof(struct gos_gpu_token, confidence) == 16);
	CHECK(sizeof(struct gos_gpu_token) == 24);
	CHECK(offsetof(struct gos_processed, id) == 0);
	CHECK(offsetof(struct gos_processed, x) == 8);
	CHECK(offsetof(struct gos_processed, r) == 16);
	CHECK(sizeof(struct gos_processed) == 32);
}

static void test_palettes(void)
{
	uint32_t p = 99;
	CHECK(gos_compute_ref_palette_parse("viridis", &p) && p == GOS_PALETTE_VIRIDIS);
	CHECK(gos_compute_ref_palette_parse("red-green", &p) && p == GOS_PALETTE_RED_GREEN);
	p = 7;
	CHECK(!gos_compute_ref_palette_parse("jet", &p) && p == 7);
	CHECK(!gos_compute_ref_palette_parse(NULL, &p));
	CHECK(!strcmp(gos_compute_ref_palette_name(GOS_PALETTE_RED_GREEN), "red-green"));
	CHECK(gos_compute_ref_palette_name(GOS_PALETTE_COUNT) == NULL);

	float c[4];
	/* viridis ends: matplotlib's first and last entries. */
	gos_compute_ref_color(0.0f, GOS_PALETTE_VIRIDIS, c);
	CHECK(near(c[0], 0.267004f, 1e-6f) && near(c[1], 0.004874f, 1e-6f) &&
	      near(c[2], 0.329415f, 1e-6f) && near(c[3], 0.35f, 1e-6f));
	gos_compute_ref_color(1.0f, GOS_PALETTE_VIRIDIS, c);
	CHECK(near(c[0], 0.993248f, 1e-6f) && near(c[1], 0.906157f, 1e-6f) &&
	      near(c[2], 0.143936f, 1e-6f) && near(c[3], 1.0f, 1e-6f));
	/* Halfway: between matplotlib's entries 125 and 130 (t = 0.5 is 127.5). */
	gos_compute_ref_color(0.5f, GOS_PALETTE_VIRIDIS, c);
	CHECK(near(c[0], 0.128f, 0.01f) && near(c[1], 0.567f, 0.01f) && near(c[2], 0.551f, 0.01f));

	/* Perceptual: viridis' luma grows steadily with confidence. */
	float prev = -1.0f;
	bool rising = true;
	for (int i = 0; i <= 200; i++) {
		gos_compute_ref_color((float)i / 200.0f, GOS_PALETTE_VIRIDIS, c);
		float luma = 0.2126f * c[0] + 0.7152f * c[1] + 0.0722f * c[2];
		rising &= luma > prev;
		prev = luma;
	}
	CHECK(rising);

	/* red-green: red at 0, green at 1, amber in between, alpha ramp. */
	gos_compute_ref_color(0.0f, GOS_PALETTE_RED_GREEN, c);
	CHECK(c[0] > 0.8f && c[1] < 0.2f && c[2] < 0.2f);
	gos_compute_ref_color(1.0f, GOS_PALETTE_RED_GREEN, c);
	CHECK(c[1] > 0.55f && c[0] < 0.15f && near(c[3], 1.0f, 1e-6f));
	gos_compute_ref_color(0.5f, GOS_PALETTE_RED_GREEN, c);
	CHECK(c[0] > 0.9f && c[1] > 0.7f && near(c[3], 0.675f, 1e-6f));

	/* Every color of every palette is a valid sRGB value. */
	bool in_range = true;
	for (uint32_t pal = 0; pal < GOS_PALETTE_COUNT; pal++)
		for (int i = 0; i <= 1000; i++) {
			gos_compute_ref_color((float)i / 1000.0f, pal, c);
			for (int k = 0; k < 4; k++)
				in_range &= c[k] >= 0.0f && c[k] <= 1.0f;
		}
	CHECK(in_range);

	/* Unknown confidence: neutral gray, in every palette. */
	for (uint32_t pal = 0; pal < GOS_PALETTE_COUNT; pal++) {
		gos_compute_ref_color(GOS_CONFIDENCE_UNKNOWN, pal, c);
		CHECK(c[0] == c[1] && c[1] == c[2] && near(c[0], 0.6f, 1e-6f) && near(c[3], 0.6f, 1e-6f));
	}
}

static struct gos_gpu_token tok(uint32_t id, float x, float y, float conf)
{
	return (struct gos_gpu_token){.id = id, .x = x, .y = y, .confidence = conf};
}

static void test_projection_and_cull(void)
{
	/* zoom 2, center (100, 50), 800x600, margin 16: exact arithmetic, so the
	 * boundary tokens land exactly on -16 and 816 / 616. */
	struct gos_camera cam = {.center_x = 100, .center_y = 50, .zoom = 2,
	                         .viewport_w = 800, .viewport_h = 600, .margin = 16};
	struct gos_processed o;
	CHECK(gos_compute_ref_token(&(struct gos_gpu_token){.id = 7, .x = 100, .y = 50, .confidence = 1},
	                            &cam, GOS_PALETTE_VIRIDIS, &o));
	CHECK(o.id == 7 && o.pad0 == 0 && o.x == 400.0f && o.y == 300.0f);

	/* y down: a larger world y is lower on the screen. */
	struct gos_gpu_token below = tok(8, 100, 60, 0.5f);
	CHECK(gos_compute_ref_token(&below, &cam, GOS_PALETTE_VIRIDIS, &o) && o.y == 320.0f);

	/* Boundary table: center (0, 0) keeps every step exact (a power-of-two
	 * zoom, then adding 400/300), so these land exactly on -16 and 816/616,
	 * or 1/16 px beyond or inside. Ulp-level cases are in the GPU test. */
	struct gos_camera c0 = cam;
	c0.center_x = 0;
	c0.center_y = 0;
	const float left = -208.0f, right = 208.0f, top = -158.0f, bottom = 158.0f, d = 1.0f / 32;
	struct { float x, y; bool kept; float sx, sy; } cases[] = {
		{left, 0, true, -16, 300},
		{right, 0, true, 816, 300},
		{0, top, true, 400, -16},
		{0, bottom, true, 400, 616},
		{left, top, true, -16, -16},
		{right, bottom, true, 816, 616},
		{left, bottom, true, -16, 616},
		{left - d, 0, false, 0, 0},
		{right + d, 0, false, 0, 0},
		{0, top - d, false, 0, 0},
		{0, bottom + d, false, 0, 0},
		{right + d, bottom + d, false, 0, 0},
		{left + d, bottom - d, true, -15.9375f, 615.9375f},
		{1e30f, 0, false, 0, 0},
		{-1e30f, -1e30f, false, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gos_gpu_token t = tok((uint32_t)i, cases[i].x, cases[i].y, 0.25f);
		bool kept = gos_compute_ref_token(&t, &c0, GOS_PALETTE_RED_GREEN, &o);
		if (kept != cases[i].kept)
			fprintf(stderr, "boundary case %zu: kept %d, expected %d\n", i, kept, cases[i].kept);
		CHECK(kept == cases[i].kept);
		if (kept && cases[i].kept)
			CHECK(o.x == cases[i].sx && o.y == cases[i].sy);
	}
	/* margin 0 keeps the viewport edges themselves. */
	cam.margin = 0;
	struct gos_gpu_token edge = tok(1, -100, -100, 1);  /* screen (0, 0) */
	CHECK(gos_compute_ref_token(&edge, &cam, 0, &o) && o.x == 0.0f && o.y == 0.0f);
	edge = tok(2, 300, 200, 1);                          /* screen (800, 600) */
	CHECK(gos_compute_ref_token(&edge, &cam, 0, &o) && o.x == 800.0f && o.y == 600.0f);

	/* Empty slots are skipped wherever they are. */
	struct gos_gpu_token empty = tok(GOS_SLOT_EMPTY, 100, 50, 1);
	CHECK(!gos_compute_ref_token(&empty, &cam, 0, &o));

	/* The whole pass: survivors in slot order, colors from the palette. */
	struct gos_gpu_token in[4] = {tok(0, 100, 50, 0), tok(1, 1e6f, 0, 1), tok(2, 100, 50, 1),
	                              tok(GOS_SLOT_EMPTY, 100, 50, 1)};
	struct gos_processed out[4];
	CHECK(gos_compute_ref_project(in, 4, &cam, GOS_PALETTE_VIRIDIS, out) == 2);
	CHECK(out[0].id == 0 && out[1].id == 2);
	CHECK(near(out[0].r, 0.267004f, 1e-6f) && near(out[1].r, 0.993248f, 1e-6f));
}

static void test_checks(void)
{
	char err[256];
	struct gos_camera ok = {.zoom = 1, .viewport_w = 10, .viewport_h = 10};
	CHECK(gos_compute_ref_check_camera(&ok, err, sizeof(err)));
	struct gos_camera bad = ok;
	bad.zoom = 0;
	CHECK(!gos_compute_ref_check_camera(&bad, err, sizeof(err)) && strstr(err, "zoom"));
	bad = ok;
	bad.viewport_h = -1;
	CHECK(!gos_compute_ref_check_camera(&bad, err, sizeof(err)) && strstr(err, "viewport"));
	bad = ok;
	bad.center_x = NAN;
	CHECK(!gos_compute_ref_check_camera(&bad, err, sizeof(err)) && strstr(err, "center"));
	bad = ok;
	bad.margin = -2;
	CHECK(!gos_compute_ref_check_camera(&bad, err, sizeof(err)) && strstr(err, "margin"));
	CHECK(!gos_compute_ref_check_camera(NULL, err, sizeof(err)));

	struct gos_token_update u[3] = {
		{.slot = 0, .x = 1, .y = 2, .confidence = 0.5f},
		{.slot = 1, .x = 1, .y = 2, .confidence = NAN},
		{.slot = 2, .x = NAN, .y = 2, .confidence = 2.0f, .removed = true},
	};
	CHECK(gos_compute_ref_check_updates(u, 3, 100, err, sizeof(err)));
	u[1].x = INFINITY;
	CHECK(!gos_compute_ref_check_updates(u, 3, 100, err, sizeof(err)));
	CHECK(strstr(err, "update 1: slot 1 has a non-finite position") != NULL);
	u[1].x = 1;
	u[0].confidence = 1.5f;
	CHECK(!gos_compute_ref_check_updates(u, 3, 100, err, sizeof(err)) &&
	      strstr(err, "confidence 1.5 outside [0, 1]"));
	u[0].confidence = -0.25f;
	CHECK(!gos_compute_ref_check_updates(u, 3, 100, err, sizeof(err)));
	u[0].confidence = 0;
	u[2].slot = 100;
	CHECK(!gos_compute_ref_check_updates(u, 3, 100, err, sizeof(err)) &&
	      strstr(err, "slot 100 is out of range"));

	struct gos_gpu_token t = gos_compute_ref_pack(&u[1]);
	CHECK(t.id == 1 && t.confidence == GOS_CONFIDENCE_UNKNOWN && t.attrs == 0 && t.values == 0);
	t = gos_compute_ref_pack(&u[2]);
	CHECK(t.id == GOS_SLOT_EMPTY);
}

static void test_store(void)
{
	struct gos_compute_ref *a = gos_compute_ref_create();
	struct gos_compute_ref *b = gos_compute_ref_create();
	CHECK(a && b);
	struct gos_camera all = {.zoom = 1e-3f, .viewport_w = 100, .viewport_h = 100, .margin = 1e6f};
	uint32_t n, count;

	/* Appends with a gap, growth past the first 4096 slots. */
	struct gos_token_update u[3] = {
		{.slot = 0, .x = 1, .y = 1, .confidence = 0.1f},
		{.slot = 5000, .x = 2, .y = 2, .confidence = NAN},
		{.slot = 3, .x = 3, .y = 3, .confidence = 0.9f},
	};
	CHECK(gos_compute_ref_update(a, u, 3));
	gos_compute_ref_tokens(a, &n);
	CHECK(n == 5001);
	CHECK(gos_compute_ref_dispatch(a, &all, 0, &count) && count == 3);
	const struct gos_processed *o = gos_compute_ref_output(a);
	CHECK(o[0].id == 0 && o[1].id == 3 && o[2].id == 5000 && near(o[2].a, 0.6f, 1e-6f));

	/* Remove one, update one twice in a batch (the last wins). */
	struct gos_token_update v[3] = {
		{.slot = 3, .removed = true},
		{.slot = 0, .x = 5, .y = 5, .confidence = 0.2f},
		{.slot = 0, .x = 6, .y = 6, .confidence = 0.3f},
	};
	CHECK(gos_compute_ref_update(a, v, 3));
	CHECK(gos_compute_ref_dispatch(a, &all, 0, &count) && count == 2);
	o = gos_compute_ref_output(a);
	CHECK(o[0].id == 0 && o[1].id == 5000);

	/* set_all with the same live tokens gives the same result. */
	struct gos_token_update live[2] = {
		{.slot = 5000, .x = 2, .y = 2, .confidence = NAN},
		{.slot = 0, .x = 6, .y = 6, .confidence = 0.3f},
	};
	CHECK(gos_compute_ref_set_all(b, live, 2));
	uint32_t count_b;
	CHECK(gos_compute_ref_dispatch(b, &all, 0, &count_b) && count_b == count);
	CHECK(!memcmp(gos_compute_ref_output(b), gos_compute_ref_output(a), count * sizeof(*o)));

	/* set_all shrinking: everything else is gone. */
	CHECK(gos_compute_ref_set_all(b, &live[1], 1));
	CHECK(gos_compute_ref_dispatch(b, &all, 0, &count_b) && count_b == 1);

	/* Bad input: rejected, nothing changed. */
	uint32_t n_before;
	const struct gos_gpu_token *tk = gos_compute_ref_tokens(a, &n_before);
	struct gos_gpu_token *copy = malloc(n_before * sizeof(*copy));
	memcpy(copy, tk, n_before * sizeof(*copy));
	struct gos_token_update bad[2] = {
		{.slot = 9000, .x = 1, .y = 1, .confidence = 0.5f},
		{.slot = 1, .x = 1, .y = NAN, .confidence = 0.5f},
	};
	CHECK(!gos_compute_ref_update(a, bad, 2));
	CHECK(!gos_compute_ref_set_all(a, bad, 2));
	tk = gos_compute_ref_tokens(a, &n);
	CHECK(n == n_before && !memcmp(tk, copy, n * sizeof(*copy)));
	free(copy);
	struct gos_camera badcam = all;
	badcam.zoom = -1;
	count = 1234;
	CHECK(!gos_compute_ref_dispatch(a, &badcam, 0, &count) && count == 1234);
	CHECK(!gos_compute_ref_dispatch(a, &all, GOS_PALETTE_COUNT, &count));

	gos_compute_ref_destroy(a);
	gos_compute_ref_destroy(b);
	gos_compute_ref_destroy(NULL);
}

/* Color modes: a token's facts to bytes (gos_palette.h's mappings), bytes
 * to colors, and the filters and the search's accents. */
static void test_modes(void)
{
	struct gos_token_update u = {.slot = 3, .confidence = NAN};
	gos_compute_ref_facts(&u, 0.0f, 1, 0.0f, 1.0f, 1.0f);
	CHECK(u.q[0] == 255 && u.q[1] == 255 && u.q[2] == 255 && u.q[3] == 255 && u.rank == 1);
	gos_compute_ref_facts(&u, logf(1e-3f), 7, logf(20.0f), 1000.0f, 0.5f);
	CHECK(u.q[0] == 128 && u.q[1] == 1 && u.q[2] == 1 && u.q[3] == 128 && u.rank == 2);
	u.confidence = 0.01f;   /* no logprob: ln(confidence) stands in */
	gos_compute_ref_facts(&u, NAN, 50, NAN, NAN, NAN);
	CHECK(u.q[0] == 170 && u.q[1] == 0 && u.q[2] == 0 && u.q[3] == 0 && u.rank == 3);
	gos_compute_ref_facts(&u, NAN, UINT32_MAX, 1e9f, 0.5f, 0.0f);
	CHECK(u.rank == 4 && u.q[1] == 1 && u.q[2] == 255 && u.q[3] == 1);
	gos_compute_ref_facts(&u, NAN, 0, NAN, NAN, NAN);
	CHECK(u.rank == 0);
	u.confidence = NAN;
	gos_compute_ref_facts(&u, NAN, 0, NAN, NAN, NAN);
	CHECK(u.q[0] == 0);

	/* rank buckets are the palette's ends and thirds; unknown is gray */
	struct gos_camera cam = {.zoom = 1, .viewport_w = 100, .viewport_h = 100};
	struct gos_compute_style st = {.mode = GOS_COLOR_RANK};
	struct gos_processed o;
	float top[4], low[4];
	gos_compute_ref_color(1.0f, GOS_PALETTE_VIRIDIS, top);
	gos_compute_ref_color(0.0f, GOS_PALETTE_VIRIDIS, low);
	struct gos_token_update t = {.slot = 1, .confidence = 0.5f, .rank = 1};
	struct gos_gpu_token g = gos_compute_ref_pack(&t);
	CHECK(gos_compute_ref_token_styled(&g, &cam, 0, &st, &o) && o.r == top[0] && o.a == top[3]);
	t.rank = 4;
	g = gos_compute_ref_pack(&t);
	CHECK(gos_compute_ref_token_styled(&g, &cam, 0, &st, &o) && o.r == low[0] && o.a == low[3]);
	t.rank = 0;
	g = gos_compute_ref_pack(&t);
	CHECK(gos_compute_ref_token_styled(&g, &cam, 0, &st, &o) && o.r == GOS_UNKNOWN_R &&
	      o.a == GOS_UNKNOWN_A);
	/* the other modes read their byte; confidence mode ignores them */
	t = (struct gos_token_update){.slot = 1, .confidence = 0.0f, .q = {0, 0, 255, 0}};
	g = gos_compute_ref_pack(&t);
	st.mode = GOS_COLOR_LATENCY;
	CHECK(gos_compute_ref_token_styled(&g, &cam, 0, &st, &o) && o.r == top[0]);
	st.mode = GOS_COLOR_ENTROPY;
	CHECK(gos_compute_ref_token_styled(&g, &cam, 0, &st, &o) && o.r == GOS_UNKNOWN_R);
	st.mode = GOS_COLOR_CONFIDENCE;
	CHECK(gos_compute_ref_token_styled(&g, &cam, 0, &st, &o) && o.r == low[0]);
	/* agreement mode marks a first divergence; a search marks matches and
	 * dims the rest */
	t.flags = GOS_TOKEN_DIVERGES;
	g = gos_compute_ref_pack(&t);
	st.mode = GOS_COLOR_AGREEMENT;
	CHECK(gos_compute_ref_token_styled(&g, &cam, 0, &st, &o) && o.r == GOS_HIGHLIGHT_R &&
	      o.g == GOS_HIGHLIGHT_G && o.b == GOS_HIGHLIGHT_B);
	st = (struct gos_compute_style){.filter = GOS_FILTER_SEARCH};
	CHECK(gos_compute_ref_token_styled(&g, &cam, 0, &st, &o) && o.r == low[0] &&
	      o.a == low[3] * GOS_DIM_ALPHA);
	t.flags = GOS_TOKEN_MATCH;
	g = gos_compute_ref_pack(&t);
	CHECK(gos_compute_ref_token_styled(&g, &cam, 0, &st, &o) && o.g == GOS_HIGHLIGHT_G);

	/* filters: the stream mask (and past it), the probability range */
	uint32_t mask[1] = {1u << 5};
	t = (struct gos_token_update){.slot = 1, .confidence = 0.3f, .stream = 5};
	g = gos_compute_ref_pack(&t);
	st = (struct gos_compute_style){.filter = GOS_FILTER_STREAMS, .mask = mask, .mask_words = 1};
	CHECK(gos_compute_ref_shown(&g, &st));
	t.stream = 6;
	g = gos_compute_ref_pack(&t);
	CHECK(!gos_compute_ref_shown(&g, &st) && !gos_compute_ref_token_styled(&g, &cam, 0, &st, &o));
	t.stream = 40;
	g = gos_compute_ref_pack(&t);
	CHECK(!gos_compute_ref_shown(&g, &st));
	st.filter |= GOS_FILTER_BEYOND;
	CHECK(gos_compute_ref_shown(&g, &st));
	t.stream = 1u << 30;   /* past the packed field: the last index */
	g = gos_compute_ref_pack(&t);
	CHECK((g.attrs & GOS_TOKEN_STREAM_MASK) == GOS_TOKEN_STREAM_MAX);
	st = (struct gos_compute_style){.filter = GOS_FILTER_RANGE, .p_min = 0.3f, .p_max = 0.3f};
	CHECK(gos_compute_ref_shown(&g, &st));
	st.p_min = 0.31f;
	st.p_max = 1.0f;
	CHECK(!gos_compute_ref_shown(&g, &st));
	t.confidence = NAN;
	g = gos_compute_ref_pack(&t);
	st.p_min = 0.0f;
	CHECK(!gos_compute_ref_shown(&g, &st));   /* unknown hides under a range */
	char err[128];
	st.p_max = 1.5f;
	CHECK(!gos_compute_ref_check_style(&st, err, sizeof(err)) && strstr(err, "p_min"));
	st = (struct gos_compute_style){.filter = 64};
	CHECK(!gos_compute_ref_check_style(&st, err, sizeof(err)));
	st = (struct gos_compute_style){.mask_words = 3};
	CHECK(!gos_compute_ref_check_style(&st, err, sizeof(err)));
	CHECK(!strcmp(gos_compute_ref_mode_name(GOS_COLOR_LATENCY), "latency") &&
	      !gos_compute_ref_mode_name(GOS_COLOR_MODE_COUNT));
}

int main(void)
{
	test_layout();
	test_palettes();
	test_projection_and_cull();
	test_checks();
	test_store();
	test_modes();
	if (failures) {
		fprintf(stderr, "compute_ref: %d check(s) failed\n", failures);
		return 1;
	}
	printf("compute_ref: all checks passed\n");
	return 0;
}
