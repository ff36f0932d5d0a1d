/* The seek worker (see gos_seek.h). Everything below the request queue is
 * the worker thread's own: the journal's index and cached map (gos_jseek,
 * compositor/journal/journal_seek.c) and the plays. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gos_broadcast.h"
#include "gos_seek.h"
#include "gos_time.h"

#define PLAY_MAX_EVENTS 4096      /* events per play tick (a built map's change log holds 64Ki) */
#define TIMELINE_POINTS 200

struct req {
	uint64_t viewer, gen;
	struct gos_viewer_in in;
};

struct emit_to {
	struct gos_ws *ws;
	uint64_t viewer, gen;
};

struct play {
	bool on;
	struct emit_to to;
	struct gos_map *map;
	struct gos_broadcast *bc;
	struct gos_jreplay *rp;
	struct gos_jreader *rd;
	uint64_t held;            /* the seq the viewer holds */
	double rec_t0, wall_t0, speed;
};

struct gos_seek {
	struct gos_seek_opts o;
	char *dir;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;     /* guards the queue, the cancels and stop */
	pthread_cond_t wake;
	bool stop;
	struct req q[GOS_SEEK_QUEUE];
	size_t nq;
	uint64_t *cancel;         /* viewers whose play stops (live, gone) */
	size_t n_cancel, cap_cancel;

	/* worker thread only */
	struct gos_jseek *js;     /* index, files, cached map */
	struct play plays[GOS_SEEK_PLAYS];
	uint64_t tl_first, tl_last;
	struct gos_buf text;
};

/* ---- sending ------------------------------------------------------------ */

static void send_text(struct gos_ws *ws, uint64_t viewer, uint64_t gen, enum gos_ws_send kind,
                      const struct gos_buf *t)
{
	gos_ws_viewer_send(ws, viewer, gen, kind, gos_ws_msg_create(t->data, t->len));
}

void gos_seek_send_error(struct gos_ws *ws, uint64_t viewer, uint64_t gen, const char *code,
                         const char *message)
{
	struct gos_buf t = {0};
	gos_viewer_error(&t, code, message);
	send_text(ws, viewer, gen, GOS_WS_SEND_MESSAGE, &t);
	gos_buf_finish(&t);
}

static void emit(void *ctx, struct gos_ws_msg *msg, bool snapshot)
{
	struct emit_to *to = ctx;
	gos_ws_viewer_send(to->ws, to->viewer, to->gen,
	                   snapshot ? GOS_WS_SEND_SNAPSHOT : GOS_WS_SEND_MESSAGE, msg);
}

static uint64_t durable(struct gos_seek *s)
{
	struct gos_journal_stats js;
	gos_journal_stats(s->o.journal, &js);
	return js.durable_seq;
}

static void refresh(struct gos_seek *s, struct gos_jseek_range *range)
{
	gos_jseek_refresh(s->js, durable(s));
	gos_jseek_range(s->js, range);
}

/* ---- requests ----------------------------------------------------------- */

static struct play *play_of(struct gos_seek *s, uint64_t viewer)
{
	for (int i = 0; i < GOS_SEEK_PLAYS; i++)
		if (s->plays[i].on && s->plays[i].to.viewer == viewer)
			return &s->plays[i];
	return NULL;
}

/* Ends a play; its map becomes the cache when keep_map. */
static void play_stop(struct gos_seek *s, struct play *p, bool keep_map)
{
	gos_jreplay_destroy(p->rp);
	gos_jreader_destroy(p->rd);
	gos_broadcast_destroy(p->bc);
	if (keep_map)
		gos_jseek_keep(s->js, p->map, p->held);
	else
		gos_map_destroy(p->map);
	*p = (struct play){0};
}

/* The seq a seek or play names, checked against what the journal holds. */
static bool target(struct gos_seek *s, const struct req *r, struct gos_jreader *rd,
                   uint64_t *seq)
{
	struct gos_jseek_range g;
	refresh(s, &g);
	char msg[200];
	if (r->in.has_time) {
		if (gos_jseek_time_to_seq(s->js, rd, r->in.seek_time, seq))
			return true;
		snprintf(msg, sizeof(msg), "time %.3f is outside the journal (%.3f to %.3f)",
		         r->in.seek_time, isnan(g.first_t) ? 0.0 : g.first_t,
		         isnan(g.last_t) ? 0.0 : g.last_t);
		goto range;
	}
	*seq = r->in.seek_seq;
	if (*seq >= g.first && *seq <= g.last)
		return true;
	snprintf(msg, sizeof(msg), "seq %llu is outside the journal (%llu to %llu)",
	         (unsigned long long)*seq, (unsigned long long)g.first, (unsigned long long)g.last);
range:
	gos_buf_clear(&s->text);
	gos_viewer_error_range(&s->text, g.first, g.last, msg);
	send_text(s->o.ws, r->viewer, r->gen, GOS_WS_SEND_MESSAGE, &s->text);
	return false;
}

static void do_seek(struct gos_seek *s, const struct req *r)
{
	struct gos_jreader *rd = gos_jreader_create(s->dir);
	uint64_t seq;
	char err[300];
	double t;
	if (!target(s, r, rd, &seq))
		goto out;
	struct play *p = play_of(s, r->viewer);
	if (p)
		play_stop(s, p, true);
	struct gos_map *map = gos_jseek_build(s->js, seq, rd, &t, err, sizeof(err));
	if (!map) {
		gos_seek_send_error(s->o.ws, r->viewer, r->gen, "seek_failed", err);
		goto out;
	}
	struct emit_to to = {s->o.ws, r->viewer, r->gen};
	struct gos_broadcast *bc = gos_broadcast_create_private(map, emit, &to);
	gos_broadcast_private_snapshot(bc, seq, "seek", true, t);
	gos_broadcast_destroy(bc);
	gos_jseek_keep(s->js, map, seq);
out:
	gos_jreader_destroy(rd);
}

static void do_play(struct gos_seek *s, const struct req *r)
{
	struct gos_jreader *rd = gos_jreader_create(s->dir);
	uint64_t seq;
	char err[300];
	double t;
	if (!target(s, r, rd, &seq)) {
		gos_jreader_destroy(rd);
		return;
	}
	struct play *p = play_of(s, r->viewer);
	if (p)
		play_stop(s, p, true);
	for (int i = 0; i < GOS_SEEK_PLAYS && !p; i++)
		if (!s->plays[i].on)
			p = &s->plays[i];
	if (!p) {
		gos_seek_send_error(s->o.ws, r->viewer, r->gen, "busy",
		                    "too many viewers are playing; try again later");
		gos_jreader_destroy(rd);
		return;
	}
	struct gos_map *map = gos_jseek_build(s->js, seq, rd, &t, err, sizeof(err));
	if (!map) {
		gos_seek_send_error(s->o.ws, r->viewer, r->gen, "seek_failed", err);
		gos_jreader_destroy(rd);
		return;
	}
	*p = (struct play){.on = true, .to = {s->o.ws, r->viewer, r->gen}, .map = map, .rd = rd,
	                   .held = seq, .speed = r->in.speed, .wall_t0 = gos_now_s()};
	struct gos_jseek_range g;
	gos_jseek_range(s->js, &g);
	p->rec_t0 = isnan(t) ? (isnan(g.first_t) ? 0.0 : g.first_t) : t;
	p->bc = gos_broadcast_create_private(map, emit, &p->to);
	gos_broadcast_private_snapshot(p->bc, seq, "play", true, t);
	p->rp = gos_jreplay_create(map, seq, seq);
}

static void do_pause(struct gos_seek *s, const struct req *r)
{
	struct play *p = play_of(s, r->viewer);
	if (!p) {
		gos_seek_send_error(s->o.ws, r->viewer, r->gen, "not_playing",
		                    "pause: nothing is playing for this viewer");
		return;
	}
	uint64_t held = p->held;
	play_stop(s, p, true);
	gos_buf_clear(&s->text);
	gos_viewer_paused(&s->text, held);
	send_text(s->o.ws, r->viewer, r->gen, GOS_WS_SEND_MESSAGE, &s->text);
}

/* One tick of a play: the events whose time has come, as one delta. */
static void play_tick(struct gos_seek *s, struct play *p, uint64_t b)
{
	double now = p->rec_t0 + (gos_now_s() - p->wall_t0) * p->speed;
	gos_jreplay_set_limit(p->rp, b);
	bool end = false;
	size_t n = 0;
	struct gos_jrec rec;
	for (;;) {
		if (n >= PLAY_MAX_EVENTS)
			break;
		if (!gos_jreader_next(p->rd, &rec, NULL, 0)) {
			end = true;
			break;
		}
		if (rec.type != GOS_JREC_EVENT)
			continue;
		if (rec.seq_last > b) {
			gos_jreader_unread(p->rd);
			end = true;
			break;
		}
		if (rec.t > now) {
			gos_jreader_unread(p->rd);
			break;
		}
		if (!gos_jreplay_feed(p->rp, &rec)) {
			end = true;  /* unreadable: stop here, go live */
			break;
		}
		n++;
	}
	gos_jreplay_flush(p->rp);
	if (!gos_broadcast_private_delta(p->bc, &p->held))
		end = true;
	if (end) {
		gos_ws_viewer_send(s->o.ws, p->to.viewer, p->to.gen, GOS_WS_SEND_LIVE, NULL);
		play_stop(s, p, false);
	}
}

/* ---- the timeline ------------------------------------------------------- */

static void timeline(struct gos_seek *s)
{
	struct gos_jseek_range g;
	refresh(s, &g);
	if (isnan(g.first_t))
		return;
	if (g.last == s->tl_last && g.first == s->tl_first)
		return;
	double t[TIMELINE_POINTS];
	uint64_t q[TIMELINE_POINTS];
	size_t n = gos_jseek_points(s->js, t, q, TIMELINE_POINTS);
	gos_buf_clear(&s->text);
	gos_viewer_timeline(&s->text, g.first, g.last, g.first_t, g.last_t, t, q, n);
	gos_ws_publish_timeline(s->o.ws, gos_ws_msg_create(s->text.data, s->text.len));
	s->tl_first = g.first;
	s->tl_last = g.last;
}

/* ---- the thread --------------------------------------------------------- */

static bool any_play(const struct gos_seek *s)
{
	for (int i = 0; i < GOS_SEEK_PLAYS; i++)
		if (s->plays[i].on)
			return true;
	return false;
}

static void deadline(struct timespec *ts, double s_from_now)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	double ns = (double)ts->tv_nsec + s_from_now * 1e9;
	ts->tv_sec += (time_t)(ns / 1e9);
	ts->tv_nsec = (long)fmod(ns, 1e9);
}

static void *seek_main(void *arg)
{
	struct gos_seek *s = arg;
	double tick = s->o.tick_ms / 1000.0, next_tl = 0, next_tick = 0;
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		double now = gos_now_s();
		double until = next_tl;
		if (any_play(s) && next_tick < until)
			until = next_tick;
		if (!s->nq && !s->n_cancel && until > now) {
			struct timespec ts;
			deadline(&ts, until - now);
			pthread_cond_timedwait(&s->wake, &s->lock, &ts);
			continue;
		}
		uint64_t cancel[64];
		size_t nc = s->n_cancel < 64 ? s->n_cancel : 64;
		memcpy(cancel, s->cancel, nc * sizeof(*cancel));
		memmove(s->cancel, s->cancel + nc, (s->n_cancel - nc) * sizeof(*cancel));
		s->n_cancel -= nc;
		struct req r;
		bool have = !nc && s->nq;
		if (have) {
			r = s->q[0];
			memmove(s->q, s->q + 1, (s->nq - 1) * sizeof(*s->q));
			s->nq--;
		}
		pthread_mutex_unlock(&s->lock);

		for (size_t i = 0; i < nc; i++) {
			struct play *p = play_of(s, cancel[i]);
			if (p)
				play_stop(s, p, true);
		}
		if (have) {
			if (r.in.type == GOS_VIEWER_IN_SEEK)
				do_seek(s, &r);
			else if (r.in.type == GOS_VIEWER_IN_PLAY)
				do_play(s, &r);
			else if (r.in.type == GOS_VIEWER_IN_PAUSE)
				do_pause(s, &r);
		}
		now = gos_now_s();
		if (any_play(s) && now >= next_tick) {
			uint64_t b = durable(s);
			for (int i = 0; i < GOS_SEEK_PLAYS; i++)
				if (s->plays[i].on)
					play_tick(s, &s->plays[i], b);
			next_tick = now + tick;
		}
		if (now >= next_tl) {
			timeline(s);
			next_tl = now + 1.0;
		}
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct gos_seek *gos_seek_create(const struct gos_seek_opts *opts, char *err, size_t errlen)
{
	struct gos_seek *s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	s->o = *opts;
	if (!s->o.tick_ms)
		s->o.tick_ms = GOS_BROADCAST_TICK_MS;
	s->dir = strdup(opts->dir);
	if (!s->dir)
		abort();
	s->o.dir = s->dir;
	s->js = gos_jseek_create(s->dir, &s->o.map_opts);
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&s->thread, NULL, seek_main, s)) {
		snprintf(err, errlen, "cannot start the seek thread");
		gos_seek_destroy(s);
		return NULL;
	}
	s->started = true;
	return s;
}

void gos_seek_destroy(struct gos_seek *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	for (int i = 0; i < GOS_SEEK_PLAYS; i++)
		if (s->plays[i].on)
			play_stop(s, &s->plays[i], false);
	gos_jseek_destroy(s->js);
	free(s->cancel);
	gos_buf_finish(&s->text);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

void gos_seek_request(struct gos_seek *s, uint64_t viewer, uint64_t gen,
                      const struct gos_viewer_in *in)
{
	pthread_mutex_lock(&s->lock);
	if (!in || in->type == GOS_VIEWER_IN_LIVE) {
		size_t k = 0;
		for (size_t i = 0; i < s->nq; i++)
			if (s->q[i].viewer != viewer)
				s->q[k++] = s->q[i];
		s->nq = k;
		if (s->n_cancel == s->cap_cancel) {
			s->cap_cancel = s->cap_cancel ? s->cap_cancel * 2 : 16;
			s->cancel = realloc(s->cancel, s->cap_cancel * sizeof(*s->cancel));
			if (!s->cancel)
				abort();
		}
		s->cancel[s->n_cancel++] = viewer;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	struct req r = {.viewer = viewer, .gen = gen, .in = *in};
	for (size_t i = 0; i < s->nq; i++) {
		if (s->q[i].viewer == viewer) {
			s->q[i] = r;  /* the newer request replaces the older */
			pthread_mutex_unlock(&s->lock);
			return;
		}
	}
	bool full = s->nq == GOS_SEEK_QUEUE;
	if (!full) {
		s->q[s->nq++] = r;
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->lock);
	if (full)
		gos_seek_send_error(s->o.ws, viewer, gen, "busy",
		                    "the seek queue is full; try again in a moment");
}
