/* gos-bench render: frame times of the renderer, headless (offscreen target,
 * the same passes as the window: uploads, compute project/color/cull, grid,
 * token quads from the indirect draw, HUD), for maps of 10k, 100k and 1M
 * tokens, and while a writer thread applies 100k events/s to the map (the
 * core thread's role) and the render loop takes the changes each frame.
 * The frame info names the offscreen image, as gos-shot and the compositor
 * do, so the background is computed and copied (--fullscreen-pass: the
 * fallback fragment pass). Static views reuse what the GPU computed for the
 * last frame (projection, splats, background); the pan row (3 px a frame,
 * whole pixels) reuses the last splats and background shifted, far out.
 * A frame's time is from recording to the GPU finishing it (each frame is
 * waited for: no overlap hides cost). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_bench.h"
#include "gos_map.h"
#include "gos_protocol.h"
#include "gos_render.h"
#include "gos_vk.h"
#include "gos_time.h"

static const char *const WORDS[] = {" the", " map", " token", " of", " a", " infinite",
	" compute", " shader", ",", " and", " light", " to", "ken", " vis", " is", "."};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Applies tokens [first, first + n) of the synthetic session to the map. */
static void feed(struct gos_map *map, uint64_t first, uint64_t n, uint32_t streams)
{
	struct gos_arena arena = {0};
	struct gos_event ev[1024];
	char names[64][16];
	for (uint32_t s = 0; s < streams && s < 64; s++)
		snprintf(names[s], sizeof(names[s]), "gen-%u", s);
	for (uint64_t i = 0; i < n;) {
		size_t k = 0;
		for (; k < 1024 && i < n; k++, i++) {
			uint64_t id = first + i;
			char idbuf[32];
			int len = snprintf(idbuf, sizeof(idbuf), "t%llu", (unsigned long long)id);
			ev[k] = (struct gos_event){.type = GOS_EV_TOKEN};
			ev[k].token.id = gos_arena_strndup(&arena, idbuf, (size_t)len);
			ev[k].token.text = WORDS[(id * 2654435761u >> 7) % 16];
			ev[k].token.stream = names[id % streams];
			ev[k].token.timestamp = (double)id * 0.001;
			ev[k].token.confidence = (float)((id * 40503u) % 1000) / 999.0f;
			ev[k].token.logprob = NAN;
		}
		gos_map_apply(map, ev, k);
		gos_arena_reset(&arena);
	}
	gos_arena_finish(&arena);
}

struct flood {
	struct gos_map *map;
	double rate;
	uint64_t first;
	atomic_bool stop;
	atomic_uint_fast64_t applied;
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	double t0 = gos_now_s();
	uint64_t done = 0;
	while (!atomic_load(&f->stop)) {
		uint64_t due = (uint64_t)((gos_now_s() - t0) * f->rate);
		if (due > done) {
			uint64_t n = due - done > 5000 ? 5000 : due - done;
			feed(f->map, f->first + done, n, 64);
			done += n;
			atomic_store(&f->applied, done);
		} else {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

struct result {
	double median_ms, p99_ms, max_ms;
	uint32_t drawn;
};

static bool g_fullscreen_pass;   /* --fullscreen-pass: no background copy */
static bool g_cpu_compute;       /* --cpu-compute: projection on the CPU */

/* Frames of `view`; pan: the view moves 3 px right each frame (far out the
 * renderer shifts the last frame's splats and background and redoes the
 * exposed 3 px strip; closer in it projects again). */
static bool measure(struct gos_render *r, struct gos_offscreen *off, struct gos_map *map,
                    const struct gos_view *view, int frames, bool sync_each, bool pan,
                    struct result *res)
{
	double *t = calloc((size_t)frames, sizeof(double));
	if (!t)
		return false;
	struct gos_frame_info fi = {.view = *view, .hud = GOS_HUD_ALL, .viewers = -1,
	                            .active_stream = -1, .no_fade = true,
	                            .image = g_fullscreen_pass ? VK_NULL_HANDLE : gos_offscreen_image(off)};
	for (int i = -3; i < frames; i++) {
		if (pan)
			fi.view.cx = view->cx + (i + 3) * 3.0 / view->zoom;
		double a = gos_now_s();
		if (sync_each)
			gos_render_sync(r, map);
		fi.now = gos_render_now(r);
		if (!gos_render_frame(r, gos_offscreen_framebuffer(off), gos_offscreen_extent(off), &fi,
		                      VK_NULL_HANDLE, VK_NULL_HANDLE) || !gos_render_wait(r)) {
			free(t);
			return false;
		}
		if (i >= 0)
			t[i] = (gos_now_s() - a) * 1000;
	}
	gos_render_drawn(r, &res->drawn);
	qsort(t, (size_t)frames, sizeof(double), cmp_double);
	res->median_ms = t[frames / 2];
	res->p99_ms = t[(int)ceil(frames * 0.99) - 1];
	res->max_ms = t[frames - 1];
	free(t);
	return true;
}

/* --frames N and --size WxH, shared by render and style: 1 taken (i moved
 * past its value), 0 not one of them, -1 a bad value (said on stderr). */
static int frame_opt(const char *cmd, int argc, char **argv, int *i, int *frames, uint32_t *w,
                     uint32_t *h)
{
	if (!strcmp(argv[*i], "--frames") && *i + 1 < argc) {
		*frames = atoi(argv[++*i]);
		if (*frames < 5 || *frames > 100000) {
			fprintf(stderr, "gos-bench %s: --frames wants 5 to 100000\n", cmd);
			return -1;
		}
		return 1;
	}
	if (!strcmp(argv[*i], "--size") && *i + 1 < argc) {
		if (sscanf(argv[++*i], "%ux%u", w, h) != 2 || *w < 16 || *h < 16 || *w > 16384 ||
		    *h > 16384) {
			fprintf(stderr, "gos-bench %s: --size wants WxH\n", cmd);
			return -1;
		}
		return 1;
	}
	return 0;
}

int gos_bench_render(int argc, char **argv)
{
	uint32_t w = 1920, h = 1080;
	int frames = 60;
	uint64_t sizes[3] = {10000, 100000, 1000000};
	double rate = 100000;
	int taken;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help")) {
			printf("usage: gos-bench render [--frames N] [--size WxH] [--max-tokens N] [--tokens N]\n"
			       "                        [--rate EPS] [--fullscreen-pass] [--cpu-compute]\n"
			       "Median/p99 frame time headless for 10k, 100k and 1M tokens (fit-all view:\n"
			       "every token on screen, as points; and zoom 1: text legible, most culled),\n"
			       "then with EPS (default 100000) events/s arriving on a 100k-token map.\n"
			       "Pan: the fit-all view moving 3 px a frame (nothing cached can be reused).\n"
			       "--tokens N measures one map of N tokens only (no flood).\n"
			       "--fullscreen-pass draws the background with a fragment pass (the path\n"
			       "for targets that cannot be copied into) instead of compute + copy.\n"
			       "--cpu-compute projects, colors and culls the tokens with the CPU reference\n"
			       "(the fallback path) instead of the compute shader.\n");
			return 0;
		} else if ((taken = frame_opt("render", argc, argv, &i, &frames, &w, &h)) != 0) {
			if (taken < 0)
				return 2;
		} else if (!strcmp(argv[i], "--max-tokens") && i + 1 < argc) {
			uint64_t m = strtoull(argv[++i], NULL, 10);
			for (int k = 0; k < 3; k++)
				if (sizes[k] > m)
					sizes[k] = m;
		} else if (!strcmp(argv[i], "--fullscreen-pass")) {
			g_fullscreen_pass = true;
		} else if (!strcmp(argv[i], "--cpu-compute")) {
			g_cpu_compute = true;
		} else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
			uint64_t m = strtoull(argv[++i], NULL, 10);
			if (m < 1 || m > 10000000) {
				fprintf(stderr, "gos-bench render: --tokens wants 1 to 10000000\n");
				return 2;
			}
			sizes[0] = sizes[1] = sizes[2] = m;
		} else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
			rate = atof(argv[++i]);
			if (!(rate > 0)) {
				fprintf(stderr, "gos-bench render: --rate wants events/s > 0\n");
				return 2;
			}
		} else {
			fprintf(stderr, "gos-bench render: unknown option '%s' (try --help)\n", argv[i]);
			return 2;
		}
	}
	struct gos_vk *vk = gos_vk_create(&(struct gos_vk_opts){.want_graphics = true,
	                                  .app_name = "gos-bench"});
	if (!vk) {
		fprintf(stderr, "gos-bench render: no usable Vulkan device\n");
		return 1;
	}
	int rc = 1;
	printf("render: %ux%u headless on %s (%s), %d frames each\n", w, h, vk->device_name,
	       vk->driver_info, frames);
	printf("%-10s %-8s %10s %10s %10s %10s %8s\n", "tokens", "view", "median ms", "p99 ms",
	       "max ms", "drawn", "fps");
	for (int k = 0; k < 3; k++) {
		if (k > 0 && sizes[k] == sizes[k - 1])
			continue;
		char err[256];
		struct gos_map *map = gos_map_create(&(struct gos_map_opts){0});
		/* The compositor's per-frame bound on map changes (65536). */
		struct gos_render *r = gos_render_create(vk, &(struct gos_render_opts){
		                                         .cpu_compute = g_cpu_compute}, err, sizeof(err));
		struct gos_offscreen *off = r ? gos_offscreen_create(r, w, h) : NULL;
		if (!map || !r || !off) {
			fprintf(stderr, "gos-bench render: %s\n", r ? "no offscreen image" : err);
			gos_offscreen_destroy(r, off);
			gos_render_destroy(r);
			gos_map_destroy(map);
			goto out;
		}
		feed(map, 0, sizes[k], 64);
		while (gos_render_sync(r, map) > 0 || gos_render_behind(r))
			;
		struct gos_view fit = gos_render_fit(r, w, h);
		struct gos_view one = fit;
		one.zoom = 1;
		struct result a, b, p;
		bool ok = measure(r, off, map, &fit, frames, false, false, &a) &&
		          measure(r, off, map, &one, frames, false, false, &b) &&
		          measure(r, off, map, &fit, frames, false, true, &p);
		if (ok) {
			printf("%-10llu %-8s %10.2f %10.2f %10.2f %10u %8.1f\n", (unsigned long long)sizes[k],
			       "fit-all", a.median_ms, a.p99_ms, a.max_ms, a.drawn, 1000 / a.median_ms);
			printf("%-10llu %-8s %10.2f %10.2f %10.2f %10u %8.1f\n", (unsigned long long)sizes[k],
			       "zoom 1", b.median_ms, b.p99_ms, b.max_ms, b.drawn, 1000 / b.median_ms);
			printf("%-10llu %-8s %10.2f %10.2f %10.2f %10u %8.1f\n", (unsigned long long)sizes[k],
			       "pan", p.median_ms, p.p99_ms, p.max_ms, p.drawn, 1000 / p.median_ms);
		}
		if (ok && k == 1) {
			/* Flood: a writer applies `rate` events/s while frames sync + draw. */
			struct flood f = {.map = map, .rate = rate, .first = sizes[k]};
			pthread_t th;
			pthread_create(&th, NULL, flood_main, &f);
			struct result c;
			double t0 = gos_now_s();
			ok = measure(r, off, map, &fit, frames, true, false, &c);
			double dt = gos_now_s() - t0;
			atomic_store(&f.stop, true);
			pthread_join(th, NULL);
			if (ok)
				printf("%-10s %-8s %10.2f %10.2f %10.2f %10u %8.1f   (%.0f events/s applied "
				       "while rendering)\n", "100k+flood", "fit-all", c.median_ms, c.p99_ms,
				       c.max_ms, c.drawn, 1000 / c.median_ms,
				       (double)atomic_load(&f.applied) / dt);
		}
		fflush(stdout);
		gos_offscreen_destroy(r, off);
		gos_render_destroy(r);
		gos_map_destroy(map);
		if (!ok)
			goto out;
	}
	rc = 0;
out:
	if (gos_vk_validation_errors(vk)) {
		fprintf(stderr, "gos-bench render: %u validation errors\n", gos_vk_validation_errors(vk));
		rc = 1;
	}
	gos_vk_destroy(vk);
	return rc;
}

/* ---- gos-bench style: color mode, filter and search changes ---- */

/* Frames that each switch the style: frame i draws style `a` on even i and
 * `b` on odd i (the renderer projects or splats again every frame, nothing
 * cached is reused); frames is even, so the last (whose survivors
 * res->drawn counts) draws `b`. matches: slots highlighted while a style
 * searches. */
static bool measure_styles(struct gos_render *r, struct gos_offscreen *off, struct gos_map *map,
                           const struct gos_view *view, int frames,
                           const struct gos_compute_style *a, const struct gos_compute_style *b,
                           const uint32_t *matches, size_t n_matches, struct result *res)
{
	double *t = calloc((size_t)frames, sizeof(double));
	if (!t)
		return false;
	struct gos_frame_info fi = {.view = *view, .hud = GOS_HUD_ALL, .viewers = -1,
	                            .active_stream = -1, .no_fade = true,
	                            .image = g_fullscreen_pass ? VK_NULL_HANDLE : gos_offscreen_image(off)};
	bool ok = true;
	for (int i = -3; i < frames && ok; i++) {
		const struct gos_compute_style *st = (i & 1) ? b : a;
		double t0 = gos_now_s();
		ok = gos_render_set_style(r, st) &&
		     (!n_matches || gos_render_set_matches(r, map, (st->filter & GOS_FILTER_SEARCH)
		                                           ? matches : NULL,
		                                           (st->filter & GOS_FILTER_SEARCH)
		                                           ? n_matches : 0));
		fi.now = gos_render_now(r);
		ok = ok && gos_render_frame(r, gos_offscreen_framebuffer(off), gos_offscreen_extent(off),
		                            &fi, VK_NULL_HANDLE, VK_NULL_HANDLE) && gos_render_wait(r);
		if (i >= 0)
			t[i] = (gos_now_s() - t0) * 1000;
	}
	if (ok) {
		gos_render_drawn(r, &res->drawn);
		qsort(t, (size_t)frames, sizeof(double), cmp_double);
		res->median_ms = t[frames / 2];
		res->p99_ms = t[(int)ceil(frames * 0.99) - 1];
		res->max_ms = t[frames - 1];
	}
	free(t);
	return ok;
}

int gos_bench_style(int argc, char **argv)
{
	uint32_t w = 1920, h = 1080;
	int frames = 40;
	uint64_t tokens = 1000000;
	int taken;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help")) {
			printf("usage: gos-bench style [--tokens N] [--frames N] [--size WxH] [--cpu-compute]\n"
			       "Frame times headless while the color mode, the filters or the search\n"
			       "highlight change every frame, on a map of N tokens (default 1M, 64 streams):\n"
			       "fit-all (every token on screen, splatted) and zoom 1 (token quads). The\n"
			       "baseline switches between two unfiltered confidence styles, so it redraws\n"
			       "every frame too; each row gives its median and its worst frame over the\n"
			       "baseline's median.\n");
			return 0;
		} else if ((taken = frame_opt("style", argc, argv, &i, &frames, &w, &h)) != 0) {
			if (taken < 0)
				return 2;
		} else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
			tokens = strtoull(argv[++i], NULL, 10);
			if (tokens < 1 || tokens > 10000000) {
				fprintf(stderr, "gos-bench style: --tokens wants 1 to 10000000\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "--cpu-compute")) {
			g_cpu_compute = true;
		} else {
			fprintf(stderr, "gos-bench style: unknown option '%s' (try --help)\n", argv[i]);
			return 2;
		}
	}
	struct gos_vk *vk = gos_vk_create(&(struct gos_vk_opts){.want_graphics = true,
	                                  .app_name = "gos-bench"});
	if (!vk) {
		fprintf(stderr, "gos-bench style: no usable Vulkan device\n");
		return 1;
	}
	char err[256];
	int rc = 1;
	struct gos_map *map = gos_map_create(&(struct gos_map_opts){0});
	struct gos_render *r = gos_render_create(vk, &(struct gos_render_opts){
	                                         .cpu_compute = g_cpu_compute}, err, sizeof(err));
	struct gos_offscreen *off = r ? gos_offscreen_create(r, w, h) : NULL;
	uint32_t *matches = malloc(1000 * sizeof(*matches));
	if (!map || !r || !off || !matches) {
		fprintf(stderr, "gos-bench style: %s\n", r ? "no offscreen image" : err);
		goto out;
	}
	frames += frames & 1;
	feed(map, 0, tokens, 64);
	while (gos_render_sync(r, map) > 0 || gos_render_behind(r))
		;
	for (uint32_t i = 0; i < 1000; i++)   /* a search's 1000 matches, spread over the map */
		matches[i] = (uint32_t)((uint64_t)i * tokens / 1000);
	printf("style: %ux%u headless on %s (%s), %llu tokens in 64 streams, %d frames each\n", w, h,
	       vk->device_name, vk->driver_info, (unsigned long long)tokens, frames);
	static uint32_t half[2] = {0xFFFFFFFFu, 0};   /* streams 0..31 of 64 */
	const struct {
		const char *name;
		struct gos_compute_style st;
	} rows[] = {
		{"baseline", {.mode = GOS_COLOR_CONFIDENCE}},
		{"logprob", {.mode = GOS_COLOR_LOGPROB}},
		{"rank", {.mode = GOS_COLOR_RANK}},
		{"entropy", {.mode = GOS_COLOR_ENTROPY}},
		{"latency", {.mode = GOS_COLOR_LATENCY}},
		{"agreement", {.mode = GOS_COLOR_AGREEMENT}},
		{"streams 1/2", {.filter = GOS_FILTER_STREAMS, .mask = half, .mask_words = 2}},
		{"p < 0.1", {.filter = GOS_FILTER_RANGE, .p_min = 0.0f, .p_max = 0.1f}},
		{"search 1000", {.filter = GOS_FILTER_SEARCH}},
	};
	struct gos_view fit = gos_render_fit(r, w, h), one = fit;
	one.zoom = 1;
	const struct gos_view *views[2] = {&fit, &one};
	const char *view_names[2] = {"fit-all", "zoom 1"};
	printf("%-8s %-12s %10s %10s %10s %10s %12s\n", "view", "style", "median ms", "p99 ms",
	       "max ms", "drawn", "max/base");
	bool ok = true;
	for (int v = 0; v < 2 && ok; v++) {
		struct gos_compute_style plain = {0};
		struct result base = {0};
		for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]) && ok; k++) {
			struct result res;
			bool search = rows[k].st.filter & GOS_FILTER_SEARCH;
			ok = measure_styles(r, off, map, views[v], frames, &plain, &rows[k].st,
			                     search ? matches : NULL, search ? 1000 : 0, &res);
			if (!ok)
				break;
			if (k == 0)
				base = res;
			printf("%-8s %-12s %10.2f %10.2f %10.2f %10u %11.2fx\n", view_names[v], rows[k].name,
			       res.median_ms, res.p99_ms, res.max_ms, res.drawn, res.max_ms / base.median_ms);
			fflush(stdout);
		}
	}
	if (ok)
		rc = 0;
out:
	free(matches);
	gos_offscreen_destroy(r, off);
	gos_render_destroy(r);
	gos_map_destroy(map);
	if (gos_vk_validation_errors(vk)) {
		fprintf(stderr, "gos-bench style: %u validation errors\n", gos_vk_validation_errors(vk));
		rc = 1;
	}
	gos_vk_destroy(vk);
	return rc;
}
