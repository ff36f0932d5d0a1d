/* The broadcaster's tick thread (see gos_broadcast.h).
 *
 * Consistency: live viewers hold the map as of `last_seq`. A tick copies
 * the changes after last_seq (as they are now) and publishes them as one
 * delta that brings viewers to the read's seq S. A snapshot is built in the
 * same tick from a paged full copy taken BEFORE that delta read, overlaid
 * with the delta (which covers every change since the pages began): the
 * result is the map exactly at S, so the snapshot's viewers continue with
 * the next delta, whose `since` is S.
 *
 * The bytes are gos_viewer_proto's: this file only maps the map's tokens
 * and streams to that module's plain structs. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broadcast_v2.h"
#include "gos_broadcast.h"
#include "gos_heartbeat.h"
#include "gos_pipeline.h"
#include "gos_time.h"
#include "gos_viewer_proto.h"


struct gos_broadcast {
	struct gos_map *map;
	struct gos_ws *ws;
	struct gos_broadcast_opts opts;

	pthread_t thread;
	bool started;
	pthread_mutex_t lock;          /* guards stop + the wake-up */
	pthread_cond_t cond;
	bool stop;

	/* Tick thread only. */
	uint64_t last_seq;
	uint64_t served_req, served_req_v2;
	struct bv2 *v2;                /* the gos.v2 half (live broadcaster only) */
	bool v2_idle;                  /* the index was dropped with nobody watching */
	struct gos_map_view delta;
	struct gos_map_view *pages;
	size_t n_pages, cap_pages;
	char **stream_names;           /* by stream index: a cache of the map's names */
	size_t n_names;
	uint32_t *set;                 /* open-addressed delta id set: index + 1 */
	size_t set_cap;
	struct gos_buf text;

	/* A private broadcaster (gos_broadcast_create_private) emits here. */
	gos_broadcast_emit_fn emit;
	void *emit_ctx;
	const char *mode;              /* snapshots' "mode" */
	bool has_time;
	double time;
	uint64_t label;                /* private: the seq the viewer holds */

	struct gos_hist tick_hist;
	_Atomic uint64_t ticks, deltas, delta_tokens, snapshots, snapshot_tokens,
		fallbacks, seq;
};

static void add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- stream names ------------------------------------------------------- */

static void learn_streams(struct gos_broadcast *b, const struct gos_map_view *v)
{
	for (size_t i = 0; i < v->n_streams; i++) {
		const struct gos_stream *s = &v->streams[i];
		if (s->index >= b->n_names) {
			size_t n = b->n_names ? b->n_names : 8;
			while (n <= s->index)
				n *= 2;
			char **names = realloc(b->stream_names, n * sizeof(*names));
			if (!names)
				abort();
			memset(names + b->n_names, 0, (n - b->n_names) * sizeof(*names));
			b->stream_names = names;
			b->n_names = n;
		}
		if (!b->stream_names[s->index]) {
			b->stream_names[s->index] = strdup(s->name ? s->name : "");
			if (!b->stream_names[s->index])
				abort();
		}
	}
}

static const char *stream_name(const struct gos_broadcast *b, uint32_t index)
{
	return index < b->n_names && b->stream_names[index] ? b->stream_names[index] : "";
}

/* ---- serialization (gos_viewer_proto writes the bytes) ------------------- */

/* The map's token as the protocol takes it (pointers into the view). */
static void put_token(const struct gos_broadcast *b, struct gos_viewer_writer *w,
                      const struct gos_token *tk)
{
	gos_viewer_put_token(w, &(struct gos_viewer_token){
		.id = tk->id,
		.removed = tk->removed,
		.text = tk->text,
		.x = tk->x,
		.y = tk->y,
		.w = tk->w,
		.confidence = tk->confidence,
		.stream = stream_name(b, tk->stream),
		.timestamp = tk->timestamp,
		.logprob = tk->logprob,
		.n_alts = tk->n_alts,
		.alts = tk->alts,
		.index = tk->index,
		.rank = tk->rank,
		.gap_ms = tk->gap_ms,
		.entropy = tk->entropy,
		.agree = tk->agree,
		.diverges = tk->diverges,
	});
}

static void put_stream(const struct gos_broadcast *b, struct gos_viewer_writer *w,
                       const struct gos_stream *s)
{
	gos_viewer_put_stream(w, &(struct gos_viewer_stream){
		.name = s->name,
		.state = s->state,
		.tokens_processed = s->tokens_processed,
		.total_tokens = s->total_tokens,
		.elapsed_ms = s->elapsed_ms,
		.tokens = s->n_tokens,
		.ttft_ms = s->ttft_ms,
		.finish_reason = s->finish_reason,
		.message = s->message,
		.model = s->model,
		.stats = &s->stats,
		/* a group's first stream came before it, so its name is known */
		.group = s->group == s->index ? s->name : stream_name(b, s->group),
		.group_index = s->group,
		.diverge_at = s->diverge_at,
	});
}

static void hand_over(struct gos_broadcast *b, struct gos_ws_msg *m, bool snapshot, bool all)
{
	if (b->emit) {
		b->emit(b->emit_ctx, m, snapshot);
		return;
	}
	/* the live map's changes up to delta.seq: its first write to a viewer
	 * is their pipeline stage "sent" (gos_web.c) */
	gos_ws_msg_mark(m, b->delta.seq);
	if (snapshot)
		gos_ws_publish_snapshot(b->ws, m, all);
	else
		gos_ws_publish(b->ws, m);
}

static void publish_text(struct gos_broadcast *b, bool snapshot, bool all)
{
	hand_over(b, gos_ws_msg_create(b->text.data, b->text.len), snapshot, all);
}

/* The delta of one tick: neural_state (when streams changed), then
 * token_visualization (always, so that `since` chains). Both are serialized
 * before either is handed over, so that the server finds them together and
 * writes them to each viewer at once (one send, not two). */
static void publish_delta(struct gos_broadcast *b, uint64_t since)
{
	const struct gos_map_view *d = &b->delta;
	struct gos_buf *t = &b->text;
	struct gos_viewer_writer w;
	struct gos_ws_msg *streams = NULL;
	if (d->n_streams) {
		gos_buf_clear(t);
		gos_viewer_neural_state_begin(&w, t, since, d->seq);
		for (size_t i = 0; i < d->n_streams; i++)
			put_stream(b, &w, &d->streams[i]);
		gos_viewer_end(&w);
		streams = gos_ws_msg_create(t->data, t->len);
	}
	gos_buf_clear(t);
	gos_viewer_token_visualization_begin(&w, t, since, d->seq, d->live_tokens, d->n_tokens);
	for (size_t i = 0; i < d->n_tokens; i++)
		put_token(b, &w, &d->tokens[i]);
	gos_viewer_end(&w);
	if (streams) {
		hand_over(b, streams, false, false);
		add(&b->deltas, 1);
	}
	publish_text(b, false, false);
	add(&b->deltas, 1);
	add(&b->delta_tokens, d->n_tokens);
}

/* ---- the delta's id set (to overlay it on the pages) -------------------- */

static void set_build(struct gos_broadcast *b)
{
	size_t need = 16;
	while (need < b->delta.n_tokens * 2)
		need *= 2;
	if (need > b->set_cap) {
		free(b->set);
		b->set = malloc(need * sizeof(*b->set));
		if (!b->set)
			abort();
		b->set_cap = need;
	}
	memset(b->set, 0, b->set_cap * sizeof(*b->set));
	for (size_t i = 0; i < b->delta.n_tokens; i++) {
		const char *id = b->delta.tokens[i].id;
		size_t h = gos_hash32(id, strlen(id)) & (b->set_cap - 1);
		while (b->set[h])
			h = (h + 1) & (b->set_cap - 1);
		b->set[h] = (uint32_t)i + 1;
	}
}

static bool set_has(const struct gos_broadcast *b, const char *id)
{
	size_t h = gos_hash32(id, strlen(id)) & (b->set_cap - 1);
	while (b->set[h]) {
		if (!strcmp(b->delta.tokens[b->set[h] - 1].id, id))
			return true;
		h = (h + 1) & (b->set_cap - 1);
	}
	return false;
}

/* ---- snapshots ---------------------------------------------------------- */

static void pages_free(struct gos_broadcast *b)
{
	for (size_t i = 0; i < b->cap_pages; i++)
		gos_map_view_finish(&b->pages[i]);
	free(b->pages);
	b->pages = NULL;
	b->n_pages = b->cap_pages = 0;
}

/* A full copy of the map in pages (each one short map lock). Returns the
 * seq the copy began at. */
static uint64_t pages_read(struct gos_broadcast *b)
{
	uint32_t start = 0;
	b->n_pages = 0;
	for (;;) {
		if (b->n_pages == b->cap_pages) {
			size_t cap = b->cap_pages ? b->cap_pages * 2 : 8;
			struct gos_map_view *p = realloc(b->pages, cap * sizeof(*p));
			if (!p)
				abort();
			memset(p + b->cap_pages, 0, (cap - b->cap_pages) * sizeof(*p));
			b->pages = p;
			b->cap_pages = cap;
		}
		struct gos_map_view *v = &b->pages[b->n_pages++];
		gos_map_read_all(b->map, start, b->opts.page, v);
		learn_streams(b, v);
		if (!v->more)
			break;
		start = v->next_slot;
	}
	return b->pages[0].seq;
}

/* The snapshot: the pages overlaid with the delta read after them, i.e. the
 * map exactly at the delta's seq. */
static void publish_snapshot(struct gos_broadcast *b, bool all)
{
	const struct gos_map_view *d = &b->delta;
	struct gos_buf *t = &b->text;
	struct gos_viewer_writer w;
	set_build(b);
	gos_buf_clear(t);
	gos_viewer_snapshot_begin_mode(&w, t, d->seq, b->mode, b->has_time, b->time);
	for (size_t p = 0; p < b->n_pages; p++) {
		const struct gos_map_view *v = &b->pages[p];
		for (size_t i = 0; i < v->n_tokens; i++)
			if (!v->tokens[i].removed && !set_has(b, v->tokens[i].id))
				put_token(b, &w, &v->tokens[i]);
	}
	for (size_t i = 0; i < d->n_tokens; i++)
		if (!d->tokens[i].removed)
			put_token(b, &w, &d->tokens[i]);
	/* Streams: every stream from the last page, newer states from the delta. */
	const struct gos_map_view *last = &b->pages[b->n_pages - 1];
	for (size_t i = 0; i < last->n_streams; i++) {
		const struct gos_stream *s = &last->streams[i];
		for (size_t j = 0; j < d->n_streams; j++)
			if (d->streams[j].index == s->index)
				s = &d->streams[j];
		put_stream(b, &w, s);
	}
	for (size_t j = 0; j < d->n_streams; j++) {
		bool known = false;
		for (size_t i = 0; i < last->n_streams && !known; i++)
			known = last->streams[i].index == d->streams[j].index;
		if (!known)
			put_stream(b, &w, &d->streams[j]);
	}
	uint64_t n = gos_viewer_end(&w);
	publish_text(b, true, all);
	add(&b->snapshots, 1);
	add(&b->snapshot_tokens, n);
}

/* ---- the tick ----------------------------------------------------------- */

static void tick(struct gos_broadcast *b)
{
	uint64_t req = gos_ws_snapshot_requests(b->ws), req2 = gos_ws_snapshot_requests_v2(b->ws);
	bool want = req != b->served_req, want2 = req2 != b->served_req_v2;
	uint32_t viewers = gos_ws_viewer_count(b->ws), v2 = gos_ws_viewer_count_v2(b->ws);
	/* The gos.v2 index is kept from the start, viewers or not, so that a
	 * gos.v2 viewer's first picture waits for no rebuild. Only when the
	 * broadcaster falls behind the change log with nobody watching is it
	 * dropped (v2_idle), to be rebuilt for the next gos.v2 viewer. */
	if (v2 || want2)
		b->v2_idle = false;
	bool keep = !b->v2_idle;
	if (!want && !want2 && viewers == 0 && !keep) {
		/* Nobody to tell: skip the work. Whoever connects gets a snapshot,
		 * taken after this point. */
		struct gos_map_stats ms;
		gos_map_stats(b->map, &ms);
		b->last_seq = ms.seq;
		atomic_store_explicit(&b->seq, b->last_seq, memory_order_relaxed);
		gos_pipeline_published(b->last_seq, false);
		return;
	}
	bool index = v2 || want2 || keep, rebuild = index && !bv2_valid(b->v2);
	/* gos.v1 deltas only when a gos.v1 viewer may take them: one that
	 * connects later starts from a snapshot anyway */
	bool v1_deltas = viewers > v2;
	uint64_t since = b->last_seq;
	if (want)
		pages_read(b);
	if (rebuild)
		bv2_rebuild(b->v2);   /* before the delta read, as the pages */
	if (!gos_map_read_since(b->map, since, b->opts.max_per_tick, &b->delta)) {
		/* We fell further behind than the change log holds: no delta can be
		 * made, so every viewer gets resync + a fresh snapshot. */
		add(&b->fallbacks, 1);
		if (!viewers && !want && !want2) {
			/* only the index was following: it rests until a viewer comes */
			bv2_invalidate(b->v2);
			b->v2_idle = true;
			b->last_seq = gos_map_seq(b->map);
			goto out;
		}
		since = pages_read(b);
		if (gos_map_read_since(b->map, since, b->opts.max_per_tick, &b->delta) &&
		    !b->delta.more) {
			learn_streams(b, &b->delta);
			publish_snapshot(b, true);
			if (index) {
				bv2_rebuild(b->v2);  /* a little after the pages: the delta overwrites */
				bv2_delta(b->v2, &b->delta, since, false);
				bv2_snapshot(b->v2, b->delta.seq, true);
				b->served_req_v2 = req2;
			}
			b->last_seq = b->delta.seq;
			b->served_req = req;
		} else {
			bv2_invalidate(b->v2);
		}
		pages_free(b);
		goto out;
	}
	learn_streams(b, &b->delta);
	if (b->delta.seq != since && v1_deltas)
		publish_delta(b, since);
	if (index)
		bv2_delta(b->v2, &b->delta, since, !rebuild && v2);
	b->last_seq = b->delta.seq;
	if (want && !b->delta.more) {
		publish_snapshot(b, false);
		b->served_req = req;
	}
	if (rebuild && b->delta.more) {
		bv2_invalidate(b->v2);  /* pages newer than the delta: again next tick */
	} else if ((want2 || rebuild) && !b->delta.more) {
		/* after a rebuild every gos.v2 viewer starts over: it missed ticks */
		bv2_snapshot(b->v2, b->delta.seq, rebuild);
		b->served_req_v2 = req2;
	}
	if (index && bv2_valid(b->v2))
		bv2_regions(b->v2, b->delta.seq);
	if (want)
		pages_free(b);
out:
	atomic_store_explicit(&b->seq, b->last_seq, memory_order_relaxed);
	/* what viewers now hold went to the web service this tick */
	gos_pipeline_published(b->last_seq, viewers > 0);
}

static void *tick_main(void *arg)
{
	struct gos_broadcast *b = arg;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	/* it waits a tick between beats (up to 10 s with --tick-ms) */
	gos_hb_start(GOS_HB_BROADCAST, GOS_HB_BOUND_S + b->opts.tick_ms / 1000.0);
	pthread_mutex_lock(&b->lock);
	while (!b->stop) {
		next.tv_nsec += (long)b->opts.tick_ms * 1000000L;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (!b->stop && pthread_cond_timedwait(&b->cond, &b->lock, &next) == 0)
			;
		if (b->stop)
			break;
		pthread_mutex_unlock(&b->lock);
		gos_hb_beat(GOS_HB_BROADCAST);
		double t0 = gos_now_s();
		tick(b);
		double t1 = gos_now_s();
		gos_hist_observe(&b->tick_hist, t1 - t0);
		add(&b->ticks, 1);
		/* A tick that overran does not cause a burst of catch-up ticks. */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
			next = now;
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	gos_hb_stop(GOS_HB_BROADCAST);
	return NULL;
}

struct gos_broadcast *gos_broadcast_create(struct gos_map *map,
                                           const struct gos_broadcast_opts *opts)
{
	static const double tick_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	                                     0.01, 0.025, 0.05, 0.1, 0.25, 1.0};
	struct gos_broadcast *b = calloc(1, sizeof(*b));
	if (!b)
		abort();
	b->map = map;
	if (opts)
		b->opts = *opts;
	if (!b->opts.tick_ms)
		b->opts.tick_ms = GOS_BROADCAST_TICK_MS;
	if (!b->opts.max_per_tick)
		b->opts.max_per_tick = 65536;
	if (!b->opts.page)
		b->opts.page = 16384;
	b->mode = "live";
	b->v2 = bv2_create(map, NULL);
	gos_hist_init(&b->tick_hist, tick_bounds, sizeof(tick_bounds) / sizeof(tick_bounds[0]));
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
	return b;
}

bool gos_broadcast_start(struct gos_broadcast *b, struct gos_ws *ws, char *err, size_t errlen)
{
	struct gos_map_stats ms;
	gos_map_stats(b->map, &ms);
	b->ws = ws;
	b->last_seq = ms.seq;
	b->served_req = 0;  /* requests made before the start are served by the first tick */
	b->served_req_v2 = 0;
	bv2_set_ws(b->v2, ws);
	if (pthread_create(&b->thread, NULL, tick_main, b)) {
		snprintf(err, errlen, "cannot start the broadcast thread");
		return false;
	}
	b->started = true;
	return true;
}

void gos_broadcast_stop(struct gos_broadcast *b)
{
	if (!b || !b->started)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	b->started = false;
}

void gos_broadcast_destroy(struct gos_broadcast *b)
{
	if (!b)
		return;
	gos_broadcast_stop(b);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	gos_map_view_finish(&b->delta);
	pages_free(b);
	bv2_destroy(b->v2);
	for (size_t i = 0; i < b->n_names; i++)
		free(b->stream_names[i]);
	free(b->stream_names);
	free(b->set);
	gos_buf_finish(&b->text);
	free(b);
}

struct gos_broadcast *gos_broadcast_create_private(struct gos_map *map,
                                                   gos_broadcast_emit_fn emit, void *ctx)
{
	struct gos_broadcast *b = gos_broadcast_create(map, &(struct gos_broadcast_opts){.page = 0});
	b->emit = emit;
	b->emit_ctx = ctx;
	return b;
}

void gos_broadcast_private_snapshot(struct gos_broadcast *b, uint64_t seq, const char *mode,
                                    bool has_time, double time)
{
	pages_read(b);
	/* Nobody else changes the map: the pages are exact, the delta empty. */
	b->last_seq = b->pages[0].seq;
	b->delta.n_tokens = b->delta.n_streams = 0;
	b->delta.seq = seq;
	b->mode = mode;
	b->has_time = has_time;
	b->time = time;
	publish_snapshot(b, false);
	pages_free(b);
	b->label = seq;
}

bool gos_broadcast_private_delta(struct gos_broadcast *b, uint64_t *seq)
{
	if (!gos_map_read_since(b->map, b->last_seq, 0, &b->delta))
		return false;
	learn_streams(b, &b->delta);
	if (b->delta.seq != b->last_seq && b->delta.seq > b->label) {
		publish_delta(b, b->label);
		b->label = b->delta.seq;
	}
	b->last_seq = b->delta.seq;
	*seq = b->label;
	return true;
}

void gos_broadcast_viewport(struct gos_broadcast *b, uint64_t viewer, uint64_t view_gen,
                            const struct gos_viewer_viewport *vp, int reset_ov)
{
	if (b->v2)
		bv2_viewport(b->v2, viewer, view_gen, vp, reset_ov);
}

void gos_broadcast_stats(struct gos_broadcast *b, struct gos_broadcast_stats *out)
{
	*out = (struct gos_broadcast_stats){
		.ticks = atomic_load_explicit(&b->ticks, memory_order_relaxed),
		.deltas = atomic_load_explicit(&b->deltas, memory_order_relaxed),
		.delta_tokens = atomic_load_explicit(&b->delta_tokens, memory_order_relaxed),
		.snapshots = atomic_load_explicit(&b->snapshots, memory_order_relaxed),
		.snapshot_tokens = atomic_load_explicit(&b->snapshot_tokens, memory_order_relaxed),
		.fallbacks = atomic_load_explicit(&b->fallbacks, memory_order_relaxed),
		.seq = atomic_load_explicit(&b->seq, memory_order_relaxed),
	};
}

void gos_broadcast_metrics(struct gos_broadcast *b, struct gos_buf *out)
{
	struct gos_broadcast_stats s;
	gos_broadcast_stats(b, &s);
	gos_metrics_hist(out, "gos_broadcast_tick_duration_seconds",
	                 "Time the broadcaster spent per tick (map reads, serialization).",
	                 &b->tick_hist);
	static const char *const fam[][3] = {
		{"gos_broadcast_deltas_total", "counter", "Delta messages serialized (each once, shared by all viewers)."},
		{"gos_broadcast_delta_tokens_total", "counter", "Token changes carried by delta messages."},
		{"gos_broadcast_snapshots_total", "counter", "Snapshots serialized (one per request wave)."},
		{"gos_broadcast_snapshot_tokens_total", "counter", "Tokens carried by snapshots."},
		{"gos_broadcast_fallbacks_total", "counter", "Times the change log had moved past the broadcaster (every viewer resynced)."},
		{"gos_broadcast_seq", "gauge", "Map sequence number viewers are brought up to."},
	};
	const uint64_t val[] = {s.deltas, s.delta_tokens, s.snapshots, s.snapshot_tokens,
	                        s.fallbacks, s.seq};
	for (size_t i = 0; i < sizeof(val) / sizeof(val[0]); i++) {
		gos_metrics_family(out, fam[i][0], fam[i][1], fam[i][2]);
		gos_metrics_sample_u64(out, fam[i][0], NULL, val[i]);
	}
}
