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
 * request through deps->shot_take, gos-shot --socket); E exports CSV; F11
 * toggles fullscreen; Esc/Q quit. Hover shows a token's details.
 * Color and filters: C (Shift+C back) cycles the color mode (confidence,
 * logprob, rank, entropy, latency, agreement); V hides or shows the active
 * stream, O shows it alone (again: all), A shows everything again, R cycles
 * probability ranges (all, < 0.1, < 0.5, >= 0.5, >= 0.9). Search: / or
 * Ctrl+F opens the box, Enter searches (deps->search), n / Shift+N (or
 * Enter) jump to the next / previous match, Esc ends the search. */
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
	uint32_t color_mode;         /* GOS_COLOR_* the window starts with (C cycles) */
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

/* Time travel in the window (main thread callbacks; the owner builds maps
 * from its journal). Keys: [ and ] step back/forward 1% of the session,
 * Space plays from the shown moment (from the start when live) or pauses,
 * , and . halve/double the speed (0.5x..16x), L goes live, Ctrl+S saves the
 * session as a recording. */
struct gos_window_travel {
	/* The session's span (CLOCK_REALTIME seconds of its first and last
	 * durable events); false while nothing is recorded. */
	bool (*span)(void *ctx, double *t0, double *t1);
	/* The map as it was at time t (in the span): after its last event at or
	 * before t. prev: NULL or the map the last call returned, given back;
	 * the owner may carry it forward, and then returns the same pointer
	 * (changed only by later events, so the renderer's copy can follow its
	 * change log). *seq: the state's seq; *at: its last event's time. NULL
	 * with one sentence in err (prev is then given back too). */
	struct gos_map *(*at)(void *ctx, struct gos_map *prev, double t, uint64_t *seq,
	                      double *at, char *err, size_t errlen);
	/* Gives back the last map (the window shows the live one again). */
	void (*release)(void *ctx, struct gos_map *prev);
	/* Writes the session as a recording (docs/recording.md) into dir; the
	 * file's path, or why not, in msg. */
	bool (*save)(void *ctx, const char *dir, char *msg, size_t msglen);
	void *ctx;
};

/* What the loop asks its owner each frame (main thread callbacks). */
/* A search's answer for the window (deps.search): the matches' count, the
 * world position of each of the first n (their first token), and the slots
 * of every token they cover (to highlight). Arrays malloc'd, the window
 * frees them. */
struct gos_window_search_result {
	size_t count;                 /* matches in all (n <= count) */
	size_t n;
	double *x, *y;                /* [n] */
	uint32_t *slots;              /* [n_slots] */
	size_t n_slots;
};

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
	/* E: writes the map's tokens as CSV into dir (the screenshot folder);
	 * msg says where, or why not. NULL: the key says it is not there. */
	bool (*export_csv)(void *ctx, const char *dir, char *msg, size_t msglen);
	/* / or Ctrl+F, Enter: searches the live map's text for q (case-folded,
	 * across token boundaries); false with one sentence in msg when it
	 * cannot. NULL: the keys say search is not there. */
	bool (*search)(void *ctx, const char *q, struct gos_window_search_result *out, char *msg,
	               size_t msglen);
	/* NULL: no time travel (no journal); the keys then only say so. */
	const struct gos_window_travel *travel;
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
