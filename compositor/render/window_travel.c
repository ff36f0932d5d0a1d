/* The window's time travel (window_travel.h). */
#include <math.h>
#include <stdio.h>
#include <time.h>

#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>

#include "gos_log.h"
#include "window_travel.h"

#define STEP       0.01     /* of the session, per [ or ] */
#define SPAN_EVERY 0.5      /* s between asking for the span */

void window_travel_init(struct window_travel *tv, const struct gos_window_travel *cb)
{
	*tv = (struct window_travel){.cb = cb, .speed = 1, .built_t = NAN};
}

static void refresh_span(struct window_travel *tv, double now, bool force)
{
	if (!force && now < tv->next_span)
		return;
	tv->next_span = now + SPAN_EVERY;
	tv->has_span = tv->cb->span(tv->cb->ctx, &tv->t0, &tv->t1);
}

static void go_live(struct window_travel *tv, const char *why)
{
	if (tv->past)
		tv->cb->release(tv->cb->ctx, tv->past);
	tv->past = NULL;
	tv->in_past = false;
	tv->playing = false;
	tv->built_t = NAN;
	gos_log_always(GOS_LOG_INFO, "render", "time travel: live (%s)", why);
}

static void clock_text(double t, char *out, size_t cap)
{
	time_t s = (time_t)t;
	struct tm tm;
	localtime_r(&s, &tm);
	strftime(out, cap, "%H:%M:%S", &tm);
}

void window_travel_keys(struct window_travel *tv, const bool *keys, bool ctrl, double now,
                        const char *shot_dir, char *msg, size_t msglen)
{
	msg[0] = '\0';
	bool save = ctrl && keys[GLFW_KEY_S];
	if (!save && !keys[GLFW_KEY_LEFT_BRACKET] && !keys[GLFW_KEY_RIGHT_BRACKET] &&
	    !keys[GLFW_KEY_SPACE] && !keys[GLFW_KEY_L] && !keys[GLFW_KEY_COMMA] &&
	    !keys[GLFW_KEY_PERIOD])
		return;
	if (!tv->cb) {
		snprintf(msg, msglen, "no time travel: this compositor keeps no journal (--no-journal)");
		return;
	}
	if (save) {
		tv->cb->save(tv->cb->ctx, shot_dir ? shot_dir : ".", msg, msglen);
		gos_log_always(GOS_LOG_INFO, "render", "%s", msg);
		return;
	}
	refresh_span(tv, now, true);
	if (!tv->has_span) {
		snprintf(msg, msglen, "nothing recorded yet");
		return;
	}
	double step = (tv->t1 - tv->t0) * STEP;
	if (keys[GLFW_KEY_COMMA] || keys[GLFW_KEY_PERIOD]) {
		double sp = keys[GLFW_KEY_PERIOD] ? tv->speed * 2 : tv->speed / 2;
		tv->speed = sp < 0.5 ? 0.5 : sp > 16 ? 16 : sp;
		snprintf(msg, msglen, "replay speed %gx", tv->speed);
	}
	if (keys[GLFW_KEY_L] && tv->in_past) {
		go_live(tv, "L");
		snprintf(msg, msglen, "live");
		return;
	}
	if (keys[GLFW_KEY_LEFT_BRACKET]) {
		tv->t = (tv->in_past ? tv->t : tv->t1) - step;
		if (tv->t < tv->t0)
			tv->t = tv->t0;
		tv->in_past = true;
		tv->playing = false;
	}
	if (keys[GLFW_KEY_RIGHT_BRACKET] && tv->in_past) {
		tv->t += step;
		tv->playing = false;
		if (tv->t > tv->t1) {
			go_live(tv, "] past the end");
			snprintf(msg, msglen, "live");
			return;
		}
	}
	if (keys[GLFW_KEY_SPACE]) {
		if (tv->playing) {
			tv->playing = false;
			snprintf(msg, msglen, "replay paused");
		} else {
			if (!tv->in_past)
				tv->t = tv->t0;   /* live: replay the session from its start */
			tv->in_past = true;
			tv->playing = true;
			snprintf(msg, msglen, "replaying at %gx", tv->speed);
		}
		gos_log_always(GOS_LOG_INFO, "render", "time travel: %s", msg);
	}
}

struct gos_map *window_travel_map(struct window_travel *tv, struct gos_map *live, double dt,
                                  double now, bool *resync, char *msg, size_t msglen)
{
	msg[0] = '\0';
	struct gos_map *show = live;
	if (tv->cb)
		refresh_span(tv, now, false);
	if (tv->cb && tv->in_past) {
		if (tv->playing) {
			tv->t += dt * tv->speed;
			if (tv->t >= tv->t1) {
				go_live(tv, "the replay reached the present");
				snprintf(msg, msglen, "live: the replay reached the present");
			}
		}
	}
	if (tv->cb && tv->in_past) {
		if (!tv->past || tv->t != tv->built_t) {
			char err[300];
			struct gos_map *m = tv->cb->at(tv->cb->ctx, tv->past, tv->t, &tv->seq, &tv->at,
			                               err, sizeof(err));
			tv->past = m;
			if (!m) {
				go_live(tv, err);
				snprintf(msg, msglen, "time travel failed: %s", err);
			} else {
				tv->built_t = tv->t;
				if (!tv->playing) {
					char c[16];
					clock_text(tv->at, c, sizeof(c));
					gos_log_always(GOS_LOG_INFO, "render", "time travel: the map as of %s (seq %llu)",
					               c, (unsigned long long)tv->seq);
				}
			}
		}
		if (tv->past)
			show = tv->past;
	}
	*resync = show != tv->shown;
	tv->shown = show;
	return show;
}

const struct gos_timeline_hud *window_travel_hud(struct window_travel *tv)
{
	if (!tv->cb || !tv->has_span)
		return NULL;
	double len = tv->t1 - tv->t0;
	tv->hud = (struct gos_timeline_hud){.live = !tv->in_past, .playing = tv->playing,
	                                    .label = tv->label};
	if (tv->in_past) {
		char c[16];
		clock_text(isnan(tv->at) ? tv->t : tv->at, c, sizeof(c));
		tv->hud.pos = len > 0 ? (tv->t - tv->t0) / len : 1;
		snprintf(tv->label, sizeof(tv->label), "%s  seq %llu  %s %gx", c,
		         (unsigned long long)tv->seq, tv->playing ? "playing" : "paused", tv->speed);
	} else {
		snprintf(tv->label, sizeof(tv->label), "LIVE");
	}
	return &tv->hud;
}

void window_travel_finish(struct window_travel *tv)
{
	if (tv->cb && tv->past)
		tv->cb->release(tv->cb->ctx, tv->past);
	tv->past = NULL;
}
