/* The window's color modes, filters and search (issue 13; the keys are in
 * gos_window.h): what the tokens are colored by, which are shown, what the
 * search found and where n / N jump. Main thread only; used by
 * gos_window.c, which hands the style to the renderer. */
#ifndef GOS_WINDOW_STYLE_H
#define GOS_WINDOW_STYLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_compute_ref.h"
#include "gos_window.h"

#define WINDOW_QUERY_MAX 256     /* bytes of UTF-8 a search may type */

struct window_style {
	struct gos_compute_style st;
	uint32_t *mask;              /* GOS_FILTER_MASK_WORDS words: shown streams */
	int32_t solo;                /* stream shown alone, -1: none */
	int range;                   /* probability range preset (0: all) */
	bool dirty;                  /* st changed since the renderer took it */
	/* search */
	bool typing;                 /* the search box takes the keys */
	char query[WINDOW_QUERY_MAX + 1];
	struct gos_window_search_result res;   /* the last search's (owned) */
	bool matches_dirty;          /* res.slots changed since the renderer took them */
	size_t at;                   /* the match n / N went to last */
};

void window_style_init(struct window_style *ws, uint32_t mode);
void window_style_finish(struct window_style *ws);

/* A character typed (GLFW's char callback): appended to the query while
 * typing; ignored otherwise. */
void window_style_char(struct window_style *ws, uint32_t codepoint);

/* The frame's keys (pressed this frame; ctrl, shift: held). Takes the keys
 * it uses and, while typing, every key (cleared in keys so that nothing
 * else acts on them). active_stream: the Tab-selected stream (-1 none);
 * n_streams: streams known. search: the deps' search (NULL: none). A
 * message for the banner in msg ("" when none); *jump set and true
 * returned when the camera should go to (*jx, *jy). */
bool window_style_keys(struct window_style *ws, bool *keys, bool ctrl, bool shift,
                       int32_t active_stream, size_t n_streams,
                       const struct gos_window_deps *deps, char *msg, size_t msglen,
                       double *jx, double *jy);

/* The line the HUD shows while typing or while a search is on, or NULL. */
const char *window_style_line(const struct window_style *ws, char *buf, size_t len);

#endif
