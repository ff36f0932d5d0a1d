/* gos_window: the compositor's render loop, on the thread that calls
 * gos_window_run() (GLFW wants the main thread): a GLFW window with a Vulkan
 * swapchain, or, headless, an offscreen image with the same passes. Each
 * frame takes the map's changes since the last frame (bounded, never waits
 * on ingest: gos_render_sync), handles input (pan, zoom about the cursor,
 * keys), and draws.
 *
 * Keys: drag pans; wheel zooms about the cursor; arrows pan; +/- zoom;
 * Home fits all tokens; F follows the newest token of the active stream;
 * Tab cycles the active stream; S writes a screenshot PNG (and so does a
 * request through deps->shot_take, gos-shot --socket); F11 toggles
 * fullscreen; Esc/Q quit. Hover shows a token's details. */
#ifndef GOS_WINDOW_H
#define GOS_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "gos_map.h"

/* Zero means default for every field. */
struct gos_window_opts {
	bool headless;           /* offscreen, no display needed */
	bool fullscreen;
	int monitor;             /* fullscreen on this monitor (0: primary) */
	uint32_t width, height;  /* window (or offscreen) size; 0: 1280x720 */
	bool no_vsync;           /* present without waiting for vblank */
	double max_fps;          /* 0: vsync only (window), 10 (headless) */
	uint64_t frames;         /* quit after this many frames; 0: never */
	bool exercise;           /* test hook: resize twice and toggle fullscreen
	                            during the first `frames` frames */
	uint32_t palette;
	const char *shot_dir;    /* where S writes screenshots; NULL: "." */
	const char *gpu;         /* Vulkan device override (gos_vk_opts.gpu) */
	bool cpu_compute;        /* token projection on the CPU (gos_render_opts) */
};

/* A picture asked for from outside (gos-shot --socket). The owner keeps
 * path alive until shot_done; tag is the owner's, passed back untouched. */
struct gos_window_shot {
	const char *path;
	bool fit;                /* frame every token instead of the current view */
	uint64_t tag;
};

/* How a requested picture went: ok with its size and the tokens it shows, or
 * not with one sentence in reason. */
struct gos_window_shot_result {
	bool ok;
	uint32_t width, height;
	uint64_t tokens;
	const char *reason;
};

/* What the loop asks its owner each frame (main thread callbacks). */
struct gos_window_deps {
	struct gos_map *map;                  /* required */
	/* Called once per frame; return false to quit (signals, ...). */
	bool (*tick)(void *ctx);
	double (*events_per_s)(void *ctx);    /* may be NULL */
	int64_t (*viewers)(void *ctx);        /* may be NULL: not shown */
	/* Requested pictures (may be NULL): polled once per drawn frame until it
	 * returns false. For each one taken, the loop brings its copy of the map
	 * fully up to date, renders the picture offscreen at the current size
	 * (the current view, or a fitted one for that picture only; the user's
	 * camera does not move), writes the PNG and calls shot_done once. */
	bool (*shot_take)(void *ctx, struct gos_window_shot *out);
	void (*shot_done)(void *ctx, const struct gos_window_shot *shot,
	                  const struct gos_window_shot_result *res);
	void *ctx;
};

struct gos_window_result {
	uint64_t frames;
	uint32_t validation_errors;
	double seconds;
};

/* True when a window can be opened (a display is set and GLFW initializes);
 * otherwise writes why to `why`. */
bool gos_window_display_available(char *why, size_t len);

/* Runs until Esc/Q, the window is closed, tick() returns false or `frames`
 * were drawn. Returns false when start-up failed (logged with a reason). */
bool gos_window_run(const struct gos_window_opts *opts, const struct gos_window_deps *deps,
                    struct gos_window_result *res);

#endif
