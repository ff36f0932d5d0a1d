/* The window's color modes, filters and search. See window_style.h. */
#include "window_style.h"

#include <GLFW/glfw3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* R cycles these probability ranges. */
static const struct {
	float lo, hi;
	const char *name;
} ranges[] = {
	{0.0f, 1.0f, "all tokens"},
	{0.0f, 0.1f, "probability below 0.1"},
	{0.0f, 0.5f, "probability below 0.5"},
	{0.5f, 1.0f, "probability 0.5 and above"},
	{0.9f, 1.0f, "probability 0.9 and above"},
};
enum { N_RANGES = sizeof(ranges) / sizeof(ranges[0]) };

static const char *const mode_help[GOS_COLOR_MODE_COUNT] = {
	[GOS_COLOR_CONFIDENCE] = "probability of each token",
	[GOS_COLOR_LOGPROB] = "log-probability, 1 to 1e-6",
	[GOS_COLOR_RANK] = "rank among top_logprobs: first choice, top 10, top 100, beyond",
	[GOS_COLOR_ENTROPY] = "entropy of top_logprobs: sure to spread",
	[GOS_COLOR_LATENCY] = "gap to the previous token: 1 ms to 1 s",
	[GOS_COLOR_AGREEMENT] = "agreement with the other generations of the prompt; "
	                        "first divergences highlighted",
};

static void result_free(struct gos_window_search_result *r)
{
	free(r->x);
	free(r->y);
	free(r->slots);
	*r = (struct gos_window_search_result){0};
}

void window_style_init(struct window_style *ws, uint32_t mode)
{
	*ws = (struct window_style){.solo = -1, .dirty = true};
	ws->st.mode = mode < GOS_COLOR_MODE_COUNT ? mode : GOS_COLOR_CONFIDENCE;
	ws->mask = calloc(GOS_FILTER_MASK_WORDS, sizeof(*ws->mask));
	if (!ws->mask)
		abort();
	memset(ws->mask, 0xff, GOS_FILTER_MASK_WORDS * sizeof(*ws->mask));
}

void window_style_finish(struct window_style *ws)
{
	free(ws->mask);
	result_free(&ws->res);
}

void window_style_char(struct window_style *ws, uint32_t cp)
{
	if (!ws->typing || cp < 0x20 || cp == 0x7f || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
		return;
	char u[4];
	size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	if (n == 1) {
		u[0] = (char)cp;
	} else {
		for (size_t i = n - 1; i > 0; i--, cp >>= 6)
			u[i] = (char)(0x80 | (cp & 0x3f));
		u[0] = (char)((n == 2 ? 0xC0 : n == 3 ? 0xE0 : 0xF0) | cp);
	}
	size_t len = strlen(ws->query);
	if (len + n > WINDOW_QUERY_MAX)
		return;
	memcpy(ws->query + len, u, n);
	ws->query[len + n] = '\0';
}

/* The stream filter from the mask and the solo: no filter bit when every
 * stream shows. */
static void filter_streams(struct window_style *ws, size_t n_streams)
{
	size_t words = (n_streams + 31) / 32;
	if (words > GOS_FILTER_MASK_WORDS)
		words = GOS_FILTER_MASK_WORDS;
	bool all = ws->solo < 0;
	for (size_t i = 0; all && i < n_streams && i < (size_t)GOS_FILTER_MASK_WORDS * 32; i++)
		all = (ws->mask[i / 32] >> (i % 32)) & 1;
	ws->st.filter &= ~(GOS_FILTER_STREAMS | GOS_FILTER_BEYOND);
	ws->st.mask = NULL;
	ws->st.mask_words = 0;
	if (!all) {
		static uint32_t solo_mask[GOS_FILTER_MASK_WORDS];
		if (ws->solo >= 0) {
			memset(solo_mask, 0, sizeof(solo_mask));
			if ((uint32_t)ws->solo < GOS_FILTER_MASK_WORDS * 32)
				solo_mask[ws->solo / 32] = 1u << (ws->solo % 32);
			ws->st.mask = solo_mask;
		} else {
			ws->st.mask = ws->mask;
		}
		ws->st.mask_words = (uint32_t)(words ? words : 1);
		/* new streams show, unless one is shown alone */
		ws->st.filter |= GOS_FILTER_STREAMS | (ws->solo < 0 ? GOS_FILTER_BEYOND : 0);
	}
	ws->dirty = true;
}

static void jump_to(struct window_style *ws, size_t i, double *jx, double *jy, char *msg,
                    size_t msglen)
{
	ws->at = i;
	*jx = ws->res.x[i];
	*jy = ws->res.y[i];
	snprintf(msg, msglen, "search \"%s\": match %zu of %zu%s", ws->query, i + 1, ws->res.count,
	         ws->res.n < ws->res.count ? " (n / N go through the first ones)" : "");
}

static bool run_search(struct window_style *ws, const struct gos_window_deps *deps, char *msg,
                       size_t msglen, double *jx, double *jy)
{
	ws->typing = false;
	result_free(&ws->res);
	ws->matches_dirty = true;
	ws->st.filter &= ~GOS_FILTER_SEARCH;
	ws->dirty = true;
	if (!ws->query[0])
		return false;
	if (!deps->search) {
		snprintf(msg, msglen, "search is not available here");
		return false;
	}
	char why[300] = "";
	if (!deps->search(deps->ctx, ws->query, &ws->res, why, sizeof(why))) {
		result_free(&ws->res);
		snprintf(msg, msglen, "search \"%s\": %s", ws->query, why);
		return false;
	}
	ws->st.filter |= GOS_FILTER_SEARCH;
	if (!ws->res.n) {
		snprintf(msg, msglen, "search \"%s\": no match", ws->query);
		return false;
	}
	jump_to(ws, 0, jx, jy, msg, msglen);
	return true;
}

bool window_style_keys(struct window_style *ws, bool *keys, bool ctrl, bool shift,
                       int32_t active_stream, size_t n_streams,
                       const struct gos_window_deps *deps, char *msg, size_t msglen,
                       double *jx, double *jy)
{
	msg[0] = '\0';
	bool jump = false;
	if (ws->typing) {
		if (keys[GLFW_KEY_BACKSPACE]) {
			size_t len = strlen(ws->query);
			while (len && ((unsigned char)ws->query[len - 1] & 0xC0) == 0x80)
				len--;
			ws->query[len ? len - 1 : 0] = '\0';
		}
		if (keys[GLFW_KEY_ENTER] || keys[GLFW_KEY_KP_ENTER])
			jump = run_search(ws, deps, msg, msglen, jx, jy);
		else if (keys[GLFW_KEY_ESCAPE])
			ws->typing = false;
		memset(keys, 0, (GLFW_KEY_LAST + 1) * sizeof(*keys));
		return jump;
	}
	if (keys[GLFW_KEY_SLASH] || (ctrl && keys[GLFW_KEY_F])) {
		ws->typing = true;
		ws->query[0] = '\0';
		keys[GLFW_KEY_SLASH] = keys[GLFW_KEY_F] = false;
		return false;
	}
	if (ws->st.filter & GOS_FILTER_SEARCH) {
		if ((keys[GLFW_KEY_N] || keys[GLFW_KEY_ENTER]) && ws->res.n) {
			bool back = shift;
			size_t i = back ? (ws->at + ws->res.n - 1) % ws->res.n : (ws->at + 1) % ws->res.n;
			jump_to(ws, i, jx, jy, msg, msglen);
			jump = true;
		}
		if (keys[GLFW_KEY_ESCAPE]) {
			/* Esc ends the search (and only a second one quits) */
			ws->st.filter &= ~GOS_FILTER_SEARCH;
			result_free(&ws->res);
			ws->matches_dirty = true;
			ws->dirty = true;
			keys[GLFW_KEY_ESCAPE] = false;
			snprintf(msg, msglen, "search off");
		}
		keys[GLFW_KEY_N] = keys[GLFW_KEY_ENTER] = false;
	}
	if (keys[GLFW_KEY_C]) {
		ws->st.mode = (ws->st.mode + (shift ? GOS_COLOR_MODE_COUNT - 1 : 1)) %
		              GOS_COLOR_MODE_COUNT;
		ws->dirty = true;
		snprintf(msg, msglen, "color: %s (%s)", gos_compute_ref_mode_name(ws->st.mode),
		         mode_help[ws->st.mode]);
	}
	if (keys[GLFW_KEY_R]) {
		ws->range = (ws->range + 1) % N_RANGES;
		ws->st.p_min = ranges[ws->range].lo;
		ws->st.p_max = ranges[ws->range].hi;
		if (ws->range)
			ws->st.filter |= GOS_FILTER_RANGE;
		else
			ws->st.filter &= ~GOS_FILTER_RANGE;
		ws->dirty = true;
		snprintf(msg, msglen, "showing %s", ranges[ws->range].name);
	}
	if ((keys[GLFW_KEY_V] || keys[GLFW_KEY_O]) && active_stream < 0)
		snprintf(msg, msglen, "Tab picks a stream first");
	if (keys[GLFW_KEY_V] && active_stream >= 0 &&
	    (uint32_t)active_stream < GOS_FILTER_MASK_WORDS * 32) {
		ws->solo = -1;
		ws->mask[active_stream / 32] ^= 1u << (active_stream % 32);
		bool shown = (ws->mask[active_stream / 32] >> (active_stream % 32)) & 1;
		filter_streams(ws, n_streams);
		snprintf(msg, msglen, "stream %d %s", active_stream, shown ? "shown" : "hidden");
	}
	if (keys[GLFW_KEY_O] && active_stream >= 0) {
		ws->solo = ws->solo == active_stream ? -1 : active_stream;
		filter_streams(ws, n_streams);
		snprintf(msg, msglen, ws->solo >= 0 ? "stream %d alone" : "stream %d: solo off",
		         active_stream);
	}
	if (keys[GLFW_KEY_A]) {
		ws->solo = -1;
		memset(ws->mask, 0xff, GOS_FILTER_MASK_WORDS * sizeof(*ws->mask));
		ws->range = 0;
		ws->st.filter &= ~GOS_FILTER_RANGE;
		filter_streams(ws, n_streams);
		snprintf(msg, msglen, "every stream and probability shown");
	}
	return jump;
}

const char *window_style_line(const struct window_style *ws, char *buf, size_t len)
{
	if (ws->typing) {
		snprintf(buf, len, "search: %s_   (Enter search, Esc cancel)", ws->query);
		return buf;
	}
	if (ws->st.filter & GOS_FILTER_SEARCH) {
		snprintf(buf, len, "search \"%s\": %zu match%s   n / N next, previous   Esc off",
		         ws->query, ws->res.count, ws->res.count == 1 ? "" : "es");
		return buf;
	}
	return NULL;
}
