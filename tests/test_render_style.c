/* Color modes, filters and search highlighting in pixels (issue 13): a real
 * renderer on lavapipe (validation on: any error fails), offscreen.
 *  - hiding a stream draws exactly what a map without that stream draws,
 *    near (token quads) and far out (splats), on the GPU and with the
 *    projection on the CPU (--cpu-compute);
 *  - a probability range draws what a map of only those tokens draws;
 *  - a search's matches take the highlight color, the rest dims;
 *  - rank mode draws a map of first choices in the palette's top color and
 *    one of "beyond" tokens in its bottom color.
 * Tokens carry explicit positions, so maps with fewer tokens keep the same
 * layout. Exit 77 when no Vulkan device exists. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_map.h"
#include "gos_png.h"
#include "gos_render.h"
#include "gos_test.h"
#include "gos_test_gpu.h"
#include "gos_vk.h"

enum { W = 480, H = 300, N = 600 };

/* which tokens go into a map: stream b (odd ids), confidences below 0.5 */
enum { ALL = 0, NO_B = 1, ONLY_HIGH = 2 };

static float conf_of(uint32_t i)
{
	/* each stream's first token (its index, its marker's color) and its
	 * newest (where the marker is) in every map */
	return i < 2 || i >= N - 2 ? 0.9f : (float)((i * 7919u) % 1000) / 999.0f;
}

static struct gos_map *make_map(int which, bool far_apart)
{
	struct gos_map *m = gos_map_create(NULL);
	/* one text everywhere (every map's glyph atlas alike); every third
	 * token was the model's second choice */
	static const struct gos_alt first[2] = {{" a", -0.1f}, {" b", -2.0f}};
	static const struct gos_alt second[2] = {{" b", -0.1f}, {" a", -2.0f}};
	for (uint32_t i = 0; i < N; i++) {
		bool b = i % 2;
		if ((which == NO_B && b) || (which == ONLY_HIGH && conf_of(i) < 0.5f))
			continue;
		char id[16];
		snprintf(id, sizeof(id), "t%u", i);
		struct gos_event e = {.type = GOS_EV_TOKEN, .token = {
			.id = id, .text = " a", .stream = b ? "b" : "a",
			.timestamp = i * 0.01, .has_position = true,
			.x = (float)((i / 2) % 20) * 40.0f + (b ? (far_apart ? 5000.0f : 840.0f) : 0.0f),
			.y = (float)((i / 2) / 20) * 24.0f,
			.confidence = conf_of(i), .logprob = NAN, .n_alts = 2,
			.alts = i % 3 ? first : second}};
		gos_map_apply(m, &e, 1);
	}
	return m;
}

static void sync_all(struct gos_render *r, struct gos_map *map)
{
	while (gos_render_sync(r, map) > 0 || gos_render_behind(r))
		;
}

/* A w x h picture of map in view with style (NULL: none) and matches. */
static bool picture(struct gos_vk *vk, struct gos_map *map, const struct gos_view *view,
                    const struct gos_compute_style *style, const uint32_t *matches, size_t n_m,
                    bool cpu, uint8_t *rgba)
{
	char err[256];
	struct gos_render *r = gos_render_create(vk, &(struct gos_render_opts){.cpu_compute = cpu},
	                                         err, sizeof(err));
	struct gos_offscreen *o = r ? gos_offscreen_create(r, W, H) : NULL;
	bool ok = r && o;
	if (ok) {
		sync_all(r, map);
		if (style)
			ok = gos_render_set_style(r, style);
		if (ok && n_m)
			ok = gos_render_set_matches(r, map, matches, n_m);
		struct gos_frame_info fi = {.view = *view, .no_fade = true, .viewers = -1,
		                            .active_stream = -1, .image = gos_offscreen_image(o)};
		fi.now = gos_render_now(r);
		ok = ok && gos_render_frame(r, gos_offscreen_framebuffer(o), gos_offscreen_extent(o),
		                            &fi, VK_NULL_HANDLE, VK_NULL_HANDLE) &&
		     gos_offscreen_read(r, o, rgba);
	}
	CHECK(ok, "a picture: %s", r ? "frame failed" : err);
	gos_offscreen_destroy(r, o);
	gos_render_destroy(r);
	return ok;
}

/* Pixels whose channels differ by more than 24 (a glyph's edge may differ
 * by a few levels between two maps: their atlases fill in another order). */
static size_t differ(const uint8_t *a, const uint8_t *b)
{
	size_t n = 0;
	for (size_t i = 0; i < (size_t)W * H; i++)
		for (int c = 0; c < 3; c++)
			if (abs(a[i * 4 + c] - b[i * 4 + c]) > 24) {
				n++;
				break;
			}
	return n;
}

/* Pixels near the highlight color. */
static size_t highlighted(const uint8_t *p)
{
	size_t n = 0;
	for (size_t i = 0; i < (size_t)W * H; i++)
		n += p[i * 4] > 150 && p[i * 4 + 2] > 120 && p[i * 4 + 1] * 2 < p[i * 4];
	return n;
}

static void test_filters(struct gos_vk *vk, bool cpu)
{
	uint8_t *a = malloc((size_t)W * H * 4), *b = malloc((size_t)W * H * 4),
	        *full = malloc((size_t)W * H * 4);
	const char *path = cpu ? "cpu" : "gpu";
	uint32_t only_a[1] = {1u};   /* stream a is index 0 */
	struct gos_compute_style hide_b = {.filter = GOS_FILTER_STREAMS, .mask = only_a,
	                                   .mask_words = 1};
	for (int far = 0; far < 2; far++) {
		/* near: quads at zoom 0.5; far: splats at zoom 0.05 */
		struct gos_view v = far ? (struct gos_view){2700, 150, 0.05}
		                        : (struct gos_view){820, 150, 0.5};
		struct gos_map *ab = make_map(ALL, far), *only = make_map(NO_B, far);
		bool ok = picture(vk, ab, &v, &hide_b, NULL, 0, cpu, a) &&
		          picture(vk, only, &v, NULL, NULL, 0, cpu, b) &&
		          picture(vk, ab, &v, NULL, NULL, 0, cpu, full);
		if (ok) {
			size_t d = differ(a, b), shown = differ(full, b);
			CHECK(d == 0, "%s %s: hiding stream b draws the map without it (%zu pixels differ)",
			      path, far ? "far" : "near", d);
			CHECK(shown > 500, "%s %s: stream b does show when not hidden (%zu pixels)", path,
			      far ? "far" : "near", shown);
		}
		gos_map_destroy(ab);
		gos_map_destroy(only);
	}
	struct gos_view v = {820, 150, 0.5};
	struct gos_map *ab = make_map(ALL, false), *high = make_map(ONLY_HIGH, false);
	struct gos_compute_style range = {.filter = GOS_FILTER_RANGE, .p_min = 0.5f, .p_max = 1.0f};
	if (picture(vk, ab, &v, &range, NULL, 0, cpu, a) && picture(vk, high, &v, NULL, NULL, 0, cpu, b)) {
		if (getenv("GOS_STYLE_PNG")) {
			gos_png_write("/tmp/style_range.png", a, W, H, NULL, 0);
			gos_png_write("/tmp/style_high.png", b, W, H, NULL, 0);
		}
		CHECK(differ(a, b) == 0, "%s: the range [0.5, 1] draws the map of only those (%zu)",
		      path, differ(a, b));
	}
	gos_map_destroy(high);
	gos_map_destroy(ab);
	free(a);
	free(b);
	free(full);
}

static void test_search_and_modes(struct gos_vk *vk)
{
	uint8_t *a = malloc((size_t)W * H * 4), *b = malloc((size_t)W * H * 4);
	struct gos_view v = {400, 140, 1.0};
	struct gos_map *m = make_map(ALL, false);
	/* tokens of stream a in the view: slots 0..; match ten of them */
	uint32_t slots[10];
	for (uint32_t i = 0; i < 10; i++)
		slots[i] = 4 * i;   /* even ids: stream a, every other one */
	struct gos_compute_style search = {.filter = GOS_FILTER_SEARCH};
	if (picture(vk, m, &v, NULL, NULL, 0, false, a) &&
	    picture(vk, m, &v, &search, slots, 10, false, b)) {
		if (getenv("GOS_STYLE_PNG")) {
			gos_png_write("/tmp/style_plain.png", a, W, H, NULL, 0);
			gos_png_write("/tmp/style_search.png", b, W, H, NULL, 0);
		}
		size_t before = highlighted(a), after = highlighted(b);
		CHECK(before == 0 && after > 10 * 40,
		      "ten matches take the highlight color (%zu pixels, none before: %zu)", after, before);
		/* the rest dims: the unmatched tokens' pixels are darker */
		double sum_a = 0, sum_b = 0;
		for (size_t i = 0; i < (size_t)W * H; i++) {
			bool hl = b[i * 4] > 150 && b[i * 4 + 2] > 120 && b[i * 4 + 1] * 2 < b[i * 4];
			if (hl)
				continue;
			sum_a += a[i * 4] + a[i * 4 + 1] + a[i * 4 + 2];
			sum_b += b[i * 4] + b[i * 4 + 1] + b[i * 4 + 2];
		}
		CHECK(sum_b < sum_a * 0.8, "the other tokens dim (%.0f vs %.0f)", sum_b, sum_a);
	}
	/* rank mode: first choices in the palette's top color (viridis
	 * yellow), second ones (<= 10) a third lower (green) */
	struct gos_compute_style rank = {.mode = GOS_COLOR_RANK};
	if (picture(vk, m, &v, &rank, NULL, 0, false, a)) {
		if (getenv("GOS_STYLE_PNG"))
			gos_png_write("/tmp/style_rank.png", a, W, H, NULL, 0);
		size_t yellow = 0, other = 0;
		for (size_t i = 0; i < (size_t)W * H; i++) {
			uint8_t *p = &a[i * 4];
			yellow += p[0] > 170 && p[1] > 150 && p[2] < 70;   /* viridis top, box alpha */
			other += p[1] > 90 && p[0] < 60 && p[2] > 60;     /* viridis green at 2/3 */
		}
		CHECK(yellow > 1000 && other > 300,
		      "rank mode: first choices in the top color (%zu px), second ones lower (%zu px)",
		      yellow, other);
	}
	gos_map_destroy(m);
	free(a);
	free(b);
}

int main(void)
{
	if (!gos_vk_available())
		return gos_test_no_gpu("test_render_style");
	struct gos_vk *vk = gos_vk_create(&(struct gos_vk_opts){.want_graphics = true,
	                                  .app_name = "test_render_style"});
	CHECK(vk != NULL, "no Vulkan context");
	if (!vk)
		return gos_test_report("test_render_style");
	test_filters(vk, false);
	test_filters(vk, true);
	test_search_and_modes(vk);
	uint32_t errors = gos_vk_validation_errors(vk);
	CHECK(errors == 0, "%u validation error(s)", errors);
	gos_vk_destroy(vk);
	return gos_test_report("test_render_style");
}
