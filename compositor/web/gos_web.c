/* gos-compositor's remote-viewer wiring (see gos_web.h). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_broadcast.h"
#include "gos_export.h"
#include "gos_heartbeat.h"
#include "gos_log.h"
#include "gos_host.h"
#include "gos_metrics.h"
#include "gos_pipeline.h"
#include "gos_search.h"
#include "gos_seek.h"
#include "gos_web.h"
#include "gos_buf.h"
#include "gos_ws.h"
#include "gos_time.h"

/* A renderer that presented nothing for this long is reported as stalled. */
#define RENDER_STALL_S 2.0

struct gos_web {
	struct gos_web_sources src;
	struct gos_broadcast *bc;
	struct gos_ws *ws;
	struct gos_seek *_Atomic seek;    /* set once the server runs; NULL: none (yet) */
	struct gos_search *_Atomic search; /* likewise */
	struct gos_ws_stream recording;
	struct gos_ws_stream export_;
	struct gos_hist frame_hist;
	_Atomic uint64_t frames;
	_Atomic uint64_t last_frame_ns;   /* CLOCK_MONOTONIC */
};

static const char *const event_names[GOS_EV_COUNT_] = {
	[GOS_EV_NONE] = "none", [GOS_EV_TOKEN] = "token_activation",
	[GOS_EV_STATE] = "neural_state", [GOS_EV_VIZ] = "token_visualization",
	[GOS_EV_SYNC] = "sync", [GOS_EV_SCREENSHOT] = "screenshot",
};

static void web_metrics(void *ctx, struct gos_buf *t);

/* The server's thread: gos.v2 viewports go to the broadcaster. */
static void web_viewport(void *ctx, uint64_t viewer, uint64_t view_gen,
                         const struct gos_viewer_viewport *vp, int reset_ov)
{
	struct gos_web *w = ctx;
	gos_broadcast_viewport(w->bc, viewer, view_gen, vp, reset_ov);
}
static bool web_health(void *ctx, struct gos_buf *t);
static void web_first_write(void *ctx, uint64_t seq);

/* The server's thread: searches go to the search worker, time travel to
 * the seek worker; a viewer that left, to both. */
static void web_request(void *ctx, uint64_t viewer, uint64_t gen, const struct gos_viewer_in *in)
{
	struct gos_web *w = ctx;
	struct gos_search *q = atomic_load(&w->search);
	if (!in || in->type == GOS_VIEWER_IN_SEARCH) {
		if (q)
			gos_search_request(q, viewer, gen, in);
		else if (in)
			gos_seek_send_error(w->ws, viewer, gen, "busy", "the search worker is starting");
		if (in)
			return;
	}
	struct gos_seek *s = atomic_load(&w->seek);
	if (s) {
		gos_seek_request(s, viewer, gen, in);
	} else if (in && in->type != GOS_VIEWER_IN_LIVE) {
		if (w->src.journal)
			gos_seek_send_error(w->ws, viewer, gen, "busy", "the seek worker is starting");
		else
			gos_seek_send_error(w->ws, viewer, gen, "no_journal", "this gos-compositor keeps "
			                    "no journal (--no-journal): there is no history to travel in");
	}
}

/* ---- GET /recording: the journal's events up to durable_seq, one a line
 * (gos_jrecording), on the server's thread. */

static void *recording_open(void *ctx, const char *const *args, int n_args,
                            struct gos_ws_download *d, char *err, size_t errlen)
{
	struct gos_web *w = ctx;
	(void)args;
	(void)n_args;
	if (!w->src.journal) {
		snprintf(err, errlen, "gos: no recording: this gos-compositor keeps no journal "
		         "(--no-journal)");
		return NULL;
	}
	struct gos_journal_stats js;
	gos_journal_stats(w->src.journal, &js);
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(d->filename, sizeof(d->filename), "gos-%Y%m%d-%H%M%S.ndjson", &tm);
	return gos_jrecording_open(w->src.state_dir, js.durable_seq);
}

static long recording_read(void *h, void *buf, size_t cap)
{
	return gos_jrecording_read(h, buf, cap);
}

static void recording_close(void *h)
{
	gos_jrecording_close(h);
}

static bool parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
		return false;
	*out = (uint32_t)v;
	return true;
}

bool gos_web_parse_opt(struct gos_web_opts *o, int c, const char *arg, char *err, size_t errlen)
{
	switch (c) {
	case GOS_WEB_OPT_LISTEN:
		if (!strchr(arg, ':')) {
			snprintf(err, errlen, "--listen wants HOST:PORT (e.g. 127.0.0.1:7680 or "
			         "0.0.0.0:7680), not '%s'", arg);
			return false;
		}
		o->listen = arg;
		o->no_listen = false;
		return true;
	case GOS_WEB_OPT_NO_LISTEN:
		o->no_listen = true;
		return true;
	case GOS_WEB_OPT_TICK_MS:
		if (!parse_u32(arg, 1, 10000, &o->tick_ms)) {
			snprintf(err, errlen, "--tick-ms wants milliseconds from 1 to 10000, not '%s'", arg);
			return false;
		}
		return true;
	case GOS_WEB_OPT_MAX_VIEWERS:
		if (!parse_u32(arg, 1, 100000, &o->max_viewers)) {
			snprintf(err, errlen, "--max-viewers wants a whole number from 1 to 100000, "
			         "not '%s'", arg);
			return false;
		}
		return true;
	case GOS_WEB_OPT_MAX_HTTP:
		if (!parse_u32(arg, 1, 100000, &o->max_http)) {
			snprintf(err, errlen, "--max-http wants a whole number from 1 to 100000, "
			         "not '%s'", arg);
			return false;
		}
		return true;
	case GOS_WEB_OPT_AUTH_TOKEN_FILE:
		o->auth_token_file = arg;
		return true;
	case GOS_WEB_OPT_USERS_FILE:
		o->users_file = arg;
		return true;
	case GOS_WEB_OPT_ACCESS_LOG:
		o->access_log = arg;
		return true;
	case GOS_WEB_OPT_TLS_CERT:
		o->tls_cert = arg;
		return true;
	case GOS_WEB_OPT_TLS_KEY:
		o->tls_key = arg;
		return true;
	case GOS_WEB_OPT_ALLOW_ORIGIN: {
		size_t n = strlen(o->allow_origin);
		if (n + strlen(arg) + 2 > sizeof(o->allow_origin)) {
			snprintf(err, errlen, "--allow-origin: too many origins (1 KiB in all)");
			return false;
		}
		snprintf(o->allow_origin + n, sizeof(o->allow_origin) - n, "%s%s", n ? "," : "", arg);
		return true;
	}
	case GOS_WEB_OPT_WEB_DIR:
		o->web_dir = arg;
		return true;
	case GOS_WEB_OPT_ALLOW_HOST: {
		/* Checked now, so that a typo is a usage error (exit 2). */
		struct gos_host_allow *check = gos_host_allow_create(NULL, "127.0.0.1", 1, arg, err,
		                                                     errlen);
		if (!check)
			return false;
		gos_host_allow_destroy(check);
		size_t n = strlen(o->allow_host);
		if (n + strlen(arg) + 2 > sizeof(o->allow_host)) {
			snprintf(err, errlen, "--allow-host: too many names (1 KiB in all)");
			return false;
		}
		snprintf(o->allow_host + n, sizeof(o->allow_host) - n, "%s%s", n ? "," : "", arg);
		return true;
	}
	}
	snprintf(err, errlen, "unknown web option");
	return false;
}

void gos_web_usage(FILE *f)
{
	fprintf(f,
	        "  --listen HOST:PORT   serve browser viewers, /metrics and /health here\n"
	        "                       (default " GOS_WS_DEFAULT_LISTEN "; port 0 picks a free one)\n"
	        "  --no-listen          no web server at all\n"
	        "  --tick-ms MS         viewers get at most one delta per MS (default %d)\n"
	        "  --max-viewers N      refuse viewers beyond N (default %d)\n"
	        "  --max-http N         plain HTTP connections (pages, /metrics, /health, viewers\n"
	        "                       before their upgrade) at most (default %d): beyond, the\n"
	        "                       oldest idle one is closed, or with none idle 503\n"
	        "  --auth-token-file F  /, /ws, /recording, /export and /metrics need the token\n"
	        "                       in F (Authorization: Bearer TOKEN, ?token=TOKEN in the\n"
	        "                       URL, or the gos_token cookie); with --users-file it is\n"
	        "                       the user 'anonymous', role admin\n"
	        "  --users-file F       named users, one a line: NAME TOKEN ROLE [rate=N]\n"
	        "                       [burst=M] ('#' comments); ROLE view (the viewer: /, /ws),\n"
	        "                       export (also /recording, /export) or admin (also\n"
	        "                       /metrics). No or a wrong token: 401; too small a role:\n"
	        "                       403. rate=N: messages a second from all the user's\n"
	        "                       viewers together (beyond: dropped, counted). SIGHUP\n"
	        "                       reads F again, all of it or (a bad line) none of it;\n"
	        "                       a removed user's viewers are closed, others stay\n"
	        "  --access-log FILE    append one JSON line per HTTP request and per viewer\n"
	        "                       session (time, user, address, path, session, status,\n"
	        "                       bytes, duration_ms); reopened on SIGHUP\n"
	        "  --tls-cert FILE      serve https:// and wss:// (only) with this PEM certificate\n"
	        "                       (chain); needs --tls-key. A file that cannot be read or a\n"
	        "                       key that is not the certificate's: exit 1\n"
	        "  --tls-key FILE       the certificate's PEM private key (unencrypted)\n"
	        "  --allow-origin LIST  browser Origins allowed to open /ws besides the server's own\n"
	        "                       (comma-separated, repeatable; '*' allows any)\n"
	        "  --allow-host LIST    Host names the server answers to besides its own (localhost,\n"
	        "                       *.localhost, 127.0.0.0/8, ::1, the --listen address; with\n"
	        "                       0.0.0.0 or :: also this machine's addresses and name):\n"
	        "                       NAME, NAME:PORT, *.SUFFIX, an address, '*' any; comma-\n"
	        "                       separated, repeatable. Other Hosts get 403 on every path\n"
	        "                       (a defence against DNS rebinding)\n"
	        "  --web-dir DIR        the web viewer's files (default %s)\n",
	        GOS_BROADCAST_TICK_MS, GOS_WS_MAX_VIEWERS, GOS_WS_MAX_HTTP,
	        gos_ws_default_assets_dir());
}

uint64_t gos_web_fds(const struct gos_web_opts *o)
{
	if (o->no_listen)
		return 0;
	return GOS_WS_FDS(o->max_viewers ? o->max_viewers : GOS_WS_MAX_VIEWERS,
	                  o->max_http ? o->max_http : GOS_WS_MAX_HTTP);
}

struct gos_web *gos_web_create(const struct gos_web_opts *opts,
                               const struct gos_web_sources *src, char *err, size_t errlen)
{
	static const double frame_bounds[] = {0.001, 0.002, 0.004, 0.008, 0.0167, 0.025,
	                                      0.0333, 0.05, 0.1, 0.25, 1.0};
	struct gos_web *w = calloc(1, sizeof(*w));
	if (!w)
		abort();
	w->src = *src;
	gos_hist_init(&w->frame_hist, frame_bounds, sizeof(frame_bounds) / sizeof(frame_bounds[0]));
	if (opts->no_listen) {
		/* no viewers, no worker: the index alone, for the native window */
		atomic_store(&w->search, gos_search_create(&(struct gos_search_opts){.map = src->map},
		                                           err, errlen));
		return w;
	}
	w->bc = gos_broadcast_create(src->map, &(struct gos_broadcast_opts){
		.tick_ms = opts->tick_ms});
	w->recording = (struct gos_ws_stream){recording_open, recording_read, recording_close, w};
	gos_export_stream(&w->export_, src->map);
	w->ws = gos_ws_create(&(struct gos_ws_opts){
		.listen = opts->listen,
		.assets_dir = opts->web_dir,
		.auth_token_file = opts->auth_token_file,
		.users_file = opts->users_file,
		.access_log = opts->access_log,
		.tls_cert = opts->tls_cert,
		.tls_key = opts->tls_key,
		.allow_origins = opts->allow_origin[0] ? opts->allow_origin : NULL,
		.allow_hosts = opts->allow_host[0] ? opts->allow_host : NULL,
		.max_viewers = opts->max_viewers,
		.max_http = opts->max_http,
		.metrics = web_metrics,
		.health = web_health,
		.first_write = web_first_write,
		.request = web_request,
		.viewport = web_viewport,
		.recording = &w->recording,
		.export_ = &w->export_,
		.cb_ctx = w,
	}, err, errlen);
	if (!w->ws && !opts->listen && errno == EADDRINUSE) {
		/* Only the default port, and it is taken (another gos-compositor?):
		 * carry on without viewers rather than refuse to start. */
		gos_log_warn("web", "web viewer off: %s; pass --listen HOST:PORT (port 0: any "
		             "free one) or --no-listen", err);
		gos_broadcast_destroy(w->bc);
		w->bc = NULL;
		atomic_store(&w->search, gos_search_create(&(struct gos_search_opts){.map = src->map},
		                                           err, errlen));
		return w;
	}
	if (!w->ws)
		goto error;
	if (!gos_broadcast_start(w->bc, w->ws, err, errlen))
		goto error;
	struct gos_search *q = gos_search_create(&(struct gos_search_opts){.map = src->map,
		.ws = w->ws}, err, errlen);
	if (!q)
		goto error;
	atomic_store(&w->search, q);
	if (src->journal) {
		struct gos_seek *s = gos_seek_create(&(struct gos_seek_opts){
			.dir = src->state_dir, .journal = src->journal, .map_opts = src->map_opts,
			.ws = w->ws, .tick_ms = opts->tick_ms}, err, errlen);
		if (!s)
			goto error;
		atomic_store(&w->seek, s);
	}
	const char *host = gos_ws_host(w->ws);
	bool v6 = strchr(host, ':') != NULL;
	bool tls = gos_ws_tls(w->ws);
	gos_log_info("web", "web viewer at %s://%s%s%s:%d/%s", tls ? "https" : "http",
	             v6 ? "[" : "", host[0] ? host : "0.0.0.0", v6 ? "]" : "", gos_ws_port(w->ws),
	             opts->users_file ? "?token=TOKEN (a user's token in --users-file)" :
	             opts->auth_token_file ? "?token=TOKEN (the token in --auth-token-file)" : "");
	if (!tls && !opts->auth_token_file && !opts->users_file && !gos_ws_loopback(w->ws))
		gos_log_warn("web", "port %d on %s is open to other machines in clear text and "
		             "without a token: anyone who reaches it can watch the map, download "
		             "every token (/recording, /export) and read /metrics (add "
		             "--auth-token-file, and --tls-cert/--tls-key)", gos_ws_port(w->ws),
		             host[0] ? host : "every interface");
	return w;
error:
	gos_web_destroy(w);
	return NULL;
}

void gos_web_reload(struct gos_web *w)
{
	if (!w || !w->ws)
		return;
	char err[512];
	int n = -1;
	if (!gos_ws_reload(w->ws, &n, err, sizeof(err)))
		gos_log_error("web", "SIGHUP: %s; nothing changed (the users before stay)", err);
	else if (n >= 0)
		gos_log_info("web", "SIGHUP: users file read again: %d users", n);
}

void gos_web_destroy(struct gos_web *w)
{
	if (!w)
		return;
	/* Stop every thread before freeing what it reads: the server's thread
	 * reads the broadcaster for /health and /metrics, the broadcaster
	 * publishes to the server. */
	gos_ws_stop(w->ws);
	gos_seek_destroy(atomic_load(&w->seek));  /* it sends to the server: stopped, not freed */
	gos_search_destroy(atomic_load(&w->search));  /* likewise */
	gos_broadcast_stop(w->bc);
	gos_broadcast_destroy(w->bc);
	gos_ws_destroy(w->ws);
	if (atomic_load(&w->frames))
		gos_hb_stop(GOS_HB_RENDER);
	free(w);
}

void gos_web_frame(struct gos_web *w, double seconds)
{
	if (!w)
		return;
	gos_hist_observe(&w->frame_hist, seconds);
	if (atomic_fetch_add_explicit(&w->frames, 1, memory_order_relaxed) == 0)
		gos_hb_start(GOS_HB_RENDER, RENDER_STALL_S);
	gos_hb_beat(GOS_HB_RENDER);
	atomic_store_explicit(&w->last_frame_ns, gos_now_ns(), memory_order_relaxed);
}

int64_t gos_web_viewers(const struct gos_web *w)
{
	return w && w->ws ? (int64_t)gos_ws_viewer_count(w->ws) : -1;
}

struct gos_search *gos_web_search(struct gos_web *w)
{
	return w ? atomic_load(&w->search) : NULL;
}

int gos_web_port(const struct gos_web *w)
{
	return w->ws ? gos_ws_port(w->ws) : 0;
}


static void web_metrics(void *ctx, struct gos_buf *t)
{
	struct gos_web *s = ctx;
	char lab[96];

	struct gos_map_stats ms;
	gos_map_stats(s->src.map, &ms);
	gos_metrics_one(t, "gos_tokens", "gauge", "Tokens on the map now.", ms.live_tokens);
	gos_metrics_one(t, "gos_streams", "gauge", "Streams (generations) known to the map.", ms.streams);
	gos_metrics_one(t, "gos_tokens_evicted_total", "counter", "Tokens evicted past --max-tokens.", ms.evicted);
	gos_metrics_one(t, "gos_tokens_added_total", "counter", "New tokens placed on the map.", ms.tokens_added);
	gos_metrics_one(t, "gos_tokens_updated_total", "counter", "Token updates (same token_id again).", ms.tokens_updated);
	gos_metrics_one(t, "gos_map_seq", "gauge", "The map's change sequence number.", ms.seq);

	/* Heartbeats (gos_heartbeat.h): the threads running now. A stuck web
	 * thread serves no /metrics at all (GosCompositorDown); the render
	 * loop has gos_frame_duration_seconds (GosRenderStalled). */
	struct gos_hb_state hb[GOS_HB_COUNT_];
	for (int i = 0; i < GOS_HB_COUNT_; i++)
		gos_hb_read((enum gos_hb)i, &hb[i]);
	gos_metrics_family(t, "gos_thread_heartbeat_age_seconds", "gauge",
	                   "Seconds since each thread's last heartbeat.");
	for (int i = 0; i < GOS_HB_COUNT_; i++)
		if (hb[i].running && i != GOS_HB_RENDER) {
			snprintf(lab, sizeof(lab), "thread=\"%s\"", gos_hb_name((enum gos_hb)i));
			gos_metrics_sample(t, "gos_thread_heartbeat_age_seconds", lab, hb[i].age_s);
		}
	gos_metrics_family(t, "gos_thread_stalled", "gauge",
	                   "1 while a thread's heartbeat is older than its bound (/health 503).");
	for (int i = 0; i < GOS_HB_COUNT_; i++)
		if (hb[i].running && i != GOS_HB_RENDER) {
			snprintf(lab, sizeof(lab), "thread=\"%s\"", gos_hb_name((enum gos_hb)i));
			gos_metrics_sample_u64(t, "gos_thread_stalled", lab, hb[i].stalled);
		}
	gos_metrics_family(t, "gos_events_applied_total", "counter",
	                   "Events applied to the map, by type.");
	for (int i = 1; i <= 3; i++) {
		snprintf(lab, sizeof(lab), "type=\"%s\"", event_names[i]);
		gos_metrics_sample_u64(t, "gos_events_applied_total", lab, ms.applied[i]);
	}

	if (s->src.ingest) {
		struct gos_ingest_stats is;
		gos_ingest_stats(s->src.ingest, &is);
		gos_metrics_family(t, "gos_events_total", "counter",
		                   "Events accepted from producers, by type.");
		for (int i = 1; i < GOS_EV_COUNT_; i++) {
			snprintf(lab, sizeof(lab), "type=\"%s\"", event_names[i]);
			gos_metrics_sample_u64(t, "gos_events_total", lab, is.accepted[i]);
		}
		gos_metrics_family(t, "gos_events_rejected_total", "counter",
		                   "Lines rejected (answered with an error line), by reason.");
		for (int r = 1; r < GOS_REJECT_COUNT_; r++) {
			snprintf(lab, sizeof(lab), "reason=\"%s\"", gos_reject_name((enum gos_reject)r));
			gos_metrics_sample_u64(t, "gos_events_rejected_total", lab, is.rejected[r]);
		}
		gos_metrics_one(t, "gos_ingest_connections", "gauge", "Producer connections open now.", is.connections);
		gos_metrics_one(t, "gos_ingest_connections_total", "counter", "Producer connections accepted.",
		    is.connections_total);
		gos_metrics_one(t, "gos_ingest_received_bytes_total", "counter", "Bytes read from producers.",
		    is.bytes_in);
		gos_metrics_one(t, "gos_ingest_lines_total", "counter", "Lines (or frames) read from producers.",
		    is.lines);
		gos_metrics_one(t, "gos_ingest_queue_full_waits_total", "counter",
		    "Times ingest stopped reading because the core's queue was full.",
		    is.queue_full_waits);
		gos_metrics_one(t, "gos_ingest_buffered_bytes", "gauge",
		    "Bytes held now for producers' incomplete lines (all connections).",
		    is.buffered_bytes);
		gos_metrics_one(t, "gos_ingest_buffered_peak_bytes", "gauge",
		    "The most bytes ever held at once for incomplete lines.", is.buffered_peak);
		gos_metrics_one(t, "gos_ingest_buffer_waits_total", "counter",
		    "Times a producer connection waited for input buffer space.", is.buffer_waits);
		gos_metrics_family(t, "gos_ingest_refused_total", "counter",
		                   "Producer connections refused, by reason.");
		gos_metrics_sample_u64(t, "gos_ingest_refused_total", "reason=\"max_connections\"",
		                       is.refused_limit);
		gos_metrics_sample_u64(t, "gos_ingest_refused_total", "reason=\"out_of_fds\"",
		                       is.refused_no_fd);
		gos_ingest_metrics(s->src.ingest, t);
	}
	if (s->src.core) {
		struct gos_core_stats cs;
		gos_core_stats(s->src.core, &cs);
		gos_metrics_one(t, "gos_core_batches_total", "counter", "Event batches applied by the core.",
		    cs.batches);
	}
	if (s->src.journal) {
		struct gos_journal_stats js;
		gos_journal_stats(s->src.journal, &js);
		gos_metrics_one(t, "gos_journal_records_total", "counter", "Events written to the journal.",
		    js.records);
		gos_metrics_one(t, "gos_journal_bytes_total", "counter", "Bytes written to the journal.", js.bytes);
		gos_metrics_one(t, "gos_journal_fsyncs_total", "counter",
		    "fdatasync calls (one per group of batches).", js.fsyncs);
		gos_metrics_one(t, "gos_journal_durable_seq", "gauge",
		    "Every change up to this seq is on disk.", js.durable_seq);
		gos_metrics_one(t, "gos_journal_stalled", "gauge",
		    "1 while the journal cannot write (disk full, I/O error): syncs wait.",
		    js.stalled);
		gos_metrics_one(t, "gos_journal_write_errors_total", "counter",
		    "Failed writes or syncs of the journal (each retried).", js.write_errors);
		gos_metrics_one(t, "gos_journal_queued_batches", "gauge",
		    "Applied batches waiting to be written.", js.queued);
		gos_metrics_one(t, "gos_journal_disk_bytes", "gauge", "Journal segments and checkpoints on disk.",
		    js.disk_bytes);
		gos_metrics_one(t, "gos_journal_checkpoints_total", "counter", "Checkpoints written.",
		    js.checkpoints);
		gos_metrics_one(t, "gos_journal_checkpoint_failures_total", "counter",
		    "Checkpoints that failed (the journal keeps everything).", js.checkpoint_failures);
		gos_metrics_one(t, "gos_journal_checkpoint_seq", "gauge", "The seq of the newest checkpoint.",
		    js.checkpoint_seq);
		gos_journal_metrics(s->src.journal, t);
	}
	gos_metrics_hist(t, "gos_frame_duration_seconds",
	                 "Time per presented frame (render thread).", &s->frame_hist);
	gos_pipeline_metrics(t);
	if (s->bc)
		gos_broadcast_metrics(s->bc, t);
	if (s->src.metrics_extra)
		s->src.metrics_extra(s->src.health_ctx, t);
}

/* The broadcaster marks its live messages with the seq they bring a viewer
 * to (gos_ws_msg_mark): the first byte of one on a socket ends the
 * pipeline's "sent" stage for every change up to it. */
static void web_first_write(void *ctx, uint64_t seq)
{
	(void)ctx;
	gos_pipeline_sent(seq);
}

static bool web_health(void *ctx, struct gos_buf *t)
{
	struct gos_web *s = ctx;
	struct gos_map_stats ms;
	gos_map_stats(s->src.map, &ms);
	uint64_t frames = atomic_load_explicit(&s->frames, memory_order_relaxed);
	double age = frames ? (double)(gos_now_ns() - atomic_load_explicit(&s->last_frame_ns,
	                                                                  memory_order_relaxed)) / 1e9
	                    : -1;
	/* No renderer yet (headless without frames) is not a failure; a renderer
	 * that presented frames and then stopped is. */
	bool render_ok = frames == 0 || age < RENDER_STALL_S;
	struct gos_journal_stats js = {0};
	if (s->src.journal)
		gos_journal_stats(s->src.journal, &js);
	struct gos_buf extra = {0};
	bool extra_ok = !s->src.health_extra || s->src.health_extra(s->src.health_ctx, &extra);
	/* Each thread's heartbeat; the renderer's is judged above (frames). */
	struct gos_hb_state hb[GOS_HB_COUNT_];
	bool threads_ok = true;
	for (int i = 0; i < GOS_HB_COUNT_; i++) {
		gos_hb_read((enum gos_hb)i, &hb[i]);
		threads_ok &= !hb[i].stalled || i == GOS_HB_RENDER;
	}
	bool ok = render_ok && !js.stalled && extra_ok && threads_ok;
	gos_buf_printf(t, "\"status\":\"%s\",\"tokens\":%llu,\"streams\":%llu,\"seq\":%llu",
	                ok ? "ok" : "degraded", (unsigned long long)ms.live_tokens,
	                (unsigned long long)ms.streams, (unsigned long long)ms.seq);
	/* What is wrong, by name: a stalled thread, the render loop or the
	 * journal writer that stopped. */
	int n = 0;
	for (int i = 0; i < GOS_HB_COUNT_; i++)
		if (hb[i].stalled || (i == GOS_HB_RENDER && !render_ok) ||
		    (i == GOS_HB_JOURNAL && js.stalled))
			gos_buf_printf(t, "%s\"%s\"", n++ ? "," : ",\"stalled\":[",
			               gos_hb_name((enum gos_hb)i));
	if (n)
		gos_buf_puts(t, "]");
	gos_buf_puts(t, ",\"threads\":{");
	n = 0;
	for (int i = 0; i < GOS_HB_COUNT_; i++)
		if (hb[i].running)
			gos_buf_printf(t, "%s\"%s\":{\"age_s\":%.3f,\"bound_s\":%g,\"ok\":%s}",
			               n++ ? "," : "", gos_hb_name((enum gos_hb)i), hb[i].age_s,
			               hb[i].bound_s, hb[i].stalled ? "false" : "true");
	gos_buf_puts(t, "}");
	if (s->src.ingest) {
		struct gos_ingest_stats is;
		gos_ingest_stats(s->src.ingest, &is);
		uint64_t accepted = 0;
		for (int i = 0; i < 5; i++)
			accepted += is.accepted[i];
		bool alive = hb[GOS_HB_INGEST].running && !hb[GOS_HB_INGEST].stalled;
		gos_buf_printf(t, ",\"ingest\":{\"alive\":%s,\"connections\":%llu,\"events\":%llu}",
		                alive ? "true" : "false", (unsigned long long)is.connections,
		                (unsigned long long)accepted);
	} else {
		gos_buf_puts(t, ",\"ingest\":{\"alive\":false}");
	}
	if (frames)
		gos_buf_printf(t, ",\"render\":{\"alive\":%s,\"frames\":%llu,\"last_frame_age_s\":%.3f}",
		                render_ok ? "true" : "false", (unsigned long long)frames, age);
	else
		gos_buf_puts(t, ",\"render\":{\"alive\":false,\"frames\":0,\"last_frame_age_s\":null}");
	if (s->src.journal) {
		gos_buf_printf(t, ",\"journal\":{\"ok\":%s,\"durable_seq\":%llu,\"queued\":%llu",
		               js.stalled ? "false" : "true", (unsigned long long)js.durable_seq,
		               (unsigned long long)js.queued);
		if (js.stalled) {
			gos_buf_puts(t, ",\"reason\":");
			gos_buf_json_str(t, js.reason);
		}
		gos_buf_puts(t, "}");
	} else {
		gos_buf_puts(t, ",\"journal\":null");
	}
	if (s->bc) {
		struct gos_broadcast_stats bs;
		gos_broadcast_stats(s->bc, &bs);
		gos_buf_printf(t, ",\"broadcast\":{\"seq\":%llu,\"ticks\":%llu}",
		                (unsigned long long)bs.seq, (unsigned long long)bs.ticks);
	}
	gos_buf_puts(t, ",\"role\":");
	gos_buf_json_str(t, s->src.role_of ? s->src.role_of(s->src.health_ctx)
	                    : s->src.role ? s->src.role : "single");
	if (extra.len)
		gos_buf_append(t, extra.data, extra.len);
	gos_buf_finish(&extra);
	return ok;
}
