/* The window's time travel (gos_window_travel keys): which map the window
 * shows, the bar the HUD draws, and the keys. Main thread only; used by
 * gos_window.c. */
#ifndef GOS_WINDOW_TRAVEL_H
#define GOS_WINDOW_TRAVEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gos_render.h"
#include "gos_window.h"

struct window_travel {
	const struct gos_window_travel *cb;   /* NULL: none */
	bool in_past;                         /* the user looks at the past */
	struct gos_map *past;                 /* built for it, or NULL: not yet */
	struct gos_map *shown;                /* the map shown last frame */
	double t;                             /* the moment wanted */
	double built_t;                       /* the moment past was built at */
	uint64_t seq;
	double at;
	bool playing;
	double speed;
	double t0, t1;                        /* the session's span */
	bool has_span;
	double next_span;                     /* when to ask for the span again */
	char label[160];
	struct gos_timeline_hud hud;
};

void window_travel_init(struct window_travel *tv, const struct gos_window_travel *cb);

/* The frame's keys (pressed this frame; ctrl: a Control key held). A
 * message for the banner in msg ("" when none). */
void window_travel_keys(struct window_travel *tv, const bool *keys, bool ctrl, double now,
                        const char *shot_dir, char *msg, size_t msglen);

/* The map to show this frame, advancing a play by dt; *resync when it is
 * not the one shown last frame (the renderer must take a full copy). */
struct gos_map *window_travel_map(struct window_travel *tv, struct gos_map *live, double dt,
                                  double now, bool *resync, char *msg, size_t msglen);

/* The bar for gos_frame_info.timeline, or NULL (no journal, nothing yet). */
const struct gos_timeline_hud *window_travel_hud(struct window_travel *tv);

/* Gives a past map back (at the end of the loop). */
void window_travel_finish(struct window_travel *tv);

#endif
