/* gos_ws: HTTP (ws_internal.h). Requests for files, /metrics and /health,
 * checked for Host (DNS rebinding), token and request smuggling; files
 * streamed from their descriptor one chunk per writeable callback; the
 * refusals; and the same checks (plus path and Origin) before a WebSocket
 * upgrade. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <libwebsockets.h>

#include "gos_host.h"
#include "gos_metrics.h"
#include "gos_time.h"
#include "ws_internal.h"

#ifndef GOS_VERSION
#define GOS_VERSION "0"
#endif

/* ---- auth, origin, paths ------------------------------------------------ */

static int hdr(struct lws *wsi, enum lws_token_indexes h, char *buf, int len)
{
	buf[0] = '\0';
	if (lws_hdr_total_length(wsi, h) <= 0 || lws_hdr_total_length(wsi, h) >= len)
		return -1;
	return lws_hdr_copy(wsi, buf, len, h);
}

static struct ws_account *token_user(struct gos_ws *ws, const char *cand, size_t len)
{
	const struct gos_user *u = gos_users_match(ws->users, cand, len);
	return u ? ws->acct[u - ws->users->user] : NULL;
}

/* Who sent the request: the user whose token it carries, or NULL (none or
 * a wrong one; always NULL without auth). *via: where the token came,
 * 1 header or cookie, 2 the ?token= argument. Every token is tried the same
 * way whether or not one matched already (gos_users_match). */
static struct ws_account *identify(struct gos_ws *ws, struct lws *wsi, int *via)
{
	char buf[MAX_TOKEN + 64];
	*via = 0;
	if (!ws->auth)
		return NULL;
	if (hdr(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, buf, sizeof(buf)) > 0 &&
	    !strncasecmp(buf, "Bearer ", 7)) {
		const char *t = buf + 7;
		while (*t == ' ')
			t++;
		struct ws_account *a = token_user(ws, t, strlen(t));
		if (a) {
			*via = 1;
			return a;
		}
	}
	const char *arg = lws_get_urlarg_by_name(wsi, "token=", buf, (int)sizeof(buf));
	if (arg) {
		struct ws_account *a = token_user(ws, arg, strlen(arg));
		if (a) {
			*via = 2;
			return a;
		}
	}
	if (hdr(wsi, WSI_TOKEN_HTTP_COOKIE, buf, sizeof(buf)) > 0) {
		for (char *p = buf; (p = strstr(p, "gos_token=")) != NULL; p += 10) {
			if (p != buf && p[-1] != ' ' && p[-1] != ';')
				continue;
			const char *v = p + 10;
			struct ws_account *a = token_user(ws, v, strcspn(v, ";"));
			if (a) {
				*via = 1;
				return a;
			}
		}
	}
	return NULL;
}

/* The role a path needs. */
static enum gos_role role_for(const char *uri)
{
	if (!strcmp(uri, "/metrics"))
		return GOS_ROLE_ADMIN;
	if (!strcmp(uri, "/recording") || !strcmp(uri, "/export"))
		return GOS_ROLE_EXPORT;
	return GOS_ROLE_VIEW;
}

/* 0: a may have uri; else the status to refuse with (401, 403), counted. */
static unsigned access_check(struct gos_ws *ws, struct ws_account *a, const char *uri)
{
	if (!ws->auth)
		return 0;
	if (!a) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_AUTH], 1);
		return 401;
	}
	a->requests++;
	if (a->role < role_for(uri)) {
		a->forbidden++;
		st_add(&ws->st.refused[GOS_WS_REFUSED_ROLE], 1);
		return 403;
	}
	return 0;
}

#define AUTH_REFUSED "gos: this server needs a token (Authorization: Bearer TOKEN, or " \
	"?token=TOKEN)"
#define ROLE_REFUSED "gos: your user's role may not have this path (view: the viewer; " \
	"export: also /recording and /export; admin: also /metrics)"

/* The request's path for the access log: printable ASCII, the rest '?'. */
static void log_path(char *out, size_t cap, const char *uri)
{
	size_t n = 0;
	for (; uri[n] && n + 1 < cap; n++) {
		unsigned char c = (unsigned char)uri[n];
		out[n] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	out[n] = '\0';
}

static bool origin_ok(struct gos_ws *ws, struct lws *wsi)
{
	char origin[512], host[300], self[320];
	if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
		return true;  /* not a browser: nothing to protect against */
	if (hdr(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin)) < 0)
		return false;
	size_t olen = strlen(origin);
	while (olen && origin[olen - 1] == '/')
		origin[--olen] = '\0';
	if (hdr(wsi, WSI_TOKEN_HOST, host, sizeof(host)) > 0) {
		snprintf(self, sizeof(self), "http://%s", host);
		if (!strcasecmp(origin, self))
			return true;
		snprintf(self, sizeof(self), "https://%s", host);
		if (!strcasecmp(origin, self))
			return true;
	}
	if (!ws->origins)
		return false;
	const char *p = ws->origins;
	while (*p) {
		size_t n = strcspn(p, ",");
		size_t s = 0;
		while (s < n && p[s] == ' ')
			s++;
		size_t e = n;
		while (e > s && (p[e - 1] == ' ' || p[e - 1] == '/'))
			e--;
		if ((e - s == 1 && p[s] == '*') ||
		    (e - s == olen && !strncasecmp(p + s, origin, olen)))
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

/* The Host header names this server (gos_host.h); no Host is fine. */
static bool host_ok(struct gos_ws *ws, struct lws *wsi)
{
	char host[300];
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HOST) <= 0)
		return gos_host_check(ws->hosts, NULL);
	if (hdr(wsi, WSI_TOKEN_HOST, host, sizeof(host)) < 0)
		return false;
	return gos_host_check(ws->hosts, host);
}

#define HOST_REFUSED "gos: this server does not answer to that Host name (DNS rebinding " \
	"defence; see --allow-host)"

static const char *mime_of(const char *path)
{
	static const struct { const char *ext, *mime; } m[] = {
		{".html", "text/html; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".json", "application/json"},
		{".svg", "image/svg+xml"},
		{".png", "image/png"},
		{".ico", "image/x-icon"},
		{".woff2", "font/woff2"},
		{".txt", "text/plain; charset=utf-8"},
	};
	const char *dot = strrchr(path, '.');
	if (dot)
		for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
			if (!strcasecmp(dot, m[i].ext))
				return m[i].mime;
	return "application/octet-stream";
}

/* The fallback without openat2: resolve every link, demand the result be
 * inside the folder, then open that path without following a last link
 * (what a link swapped in since could point to). */
static int asset_open_realpath(struct gos_ws *ws, const char *rel, int flags)
{
	char full[PATH_MAX], real[PATH_MAX];
	if (snprintf(full, sizeof(full), "%s/%s", ws->assets_real, rel) >= (int)sizeof(full) ||
	    !realpath(full, real))
		return -1;
	size_t alen = strlen(ws->assets_real);
	if (strncmp(real, ws->assets_real, alen) || real[alen] != '/')
		return -1;
	return open(real, flags | O_NOFOLLOW);
}

/* Opens a request path as a regular file beneath the assets folder, or
 * returns -1. Links are followed only while they stay beneath the folder
 * (openat2 RESOLVE_BENEATH: no "..", absolute or /proc links out), and the
 * open never blocks: O_NONBLOCK makes a FIFO (or a device) open at once,
 * and then fstat refuses anything but a regular file. */
static int asset_open(struct gos_ws *ws, const char *uri, struct stat *sb, const char **mime)
{
	char rel[PATH_MAX];
	if (ws->assets_fd < 0 || uri[0] != '/')
		return -1;
	if (!strcmp(uri, "/"))
		uri = "/index.html";
	/* lws has already percent-decoded the path; whatever still looks like a
	 * parent reference, a backslash or an encoded byte is refused outright. */
	if (strstr(uri, "..") || strchr(uri, '\\') || strchr(uri, '%') || strstr(uri, "//"))
		return -1;
	if (snprintf(rel, sizeof(rel), "%s", uri + 1) >= (int)sizeof(rel))
		return -1;
	int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	int fd = -1;
	if (!ws->no_openat2) {
		struct open_how how = {.flags = (uint64_t)flags,
		                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
		fd = (int)syscall(SYS_openat2, ws->assets_fd, rel, &how, sizeof(how));
		if (fd < 0 && (errno == ENOSYS || errno == EPERM))
			ws->no_openat2 = true;  /* Linux < 5.6, or a filter that forbids it */
	}
	if (ws->no_openat2)
		fd = asset_open_realpath(ws, rel, flags);
	if (fd < 0)
		return -1;
	if (fstat(fd, sb) || !S_ISREG(sb->st_mode)) {
		close(fd);
		return -1;
	}
	*mime = mime_of(rel);
	return fd;
}

static void http_sess_clear(struct http_sess *s)
{
	free(s->body);
	s->body = NULL;
	if (s->stream) {
		s->st->close(s->stream);
		s->stream = NULL;
	}
	free(s->sbuf);
	s->sbuf = NULL;
	if (s->file)
		close(s->fd);
	s->file = false;
}

/* ---- HTTP --------------------------------------------------------------- */

/* The request's access-log line, once. */
static void http_logged(struct gos_ws *ws, struct http_sess *s)
{
	if (!s->logging)
		return;
	s->logging = false;
	ws_access_log(ws, s->start_wall, s->account, s->addr, s->path, 0, s->status, 0, s->bytes,
	              -1, gos_now_ms() - s->start_ms);
}

/* The answer is out: the connection is idle again (keep-alive). */
static int http_complete(struct lws *wsi, struct http_sess *s)
{
	http_logged(lws_context_user(lws_get_context(wsi)), s);
	http_sess_clear(s);
	ws_conn_busy(lws_context_user(lws_get_context(wsi)), wsi, false);
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Writes the status and headers of a response of len bytes; then either
 * completes the transaction (len 0) or asks for writeable callbacks. */
static int http_head(struct lws *wsi, struct http_sess *s, unsigned int code,
                     const char *mime, uint64_t len, const char *cookie)
{
	unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
		*end = buf + sizeof(buf) - 1;
	s->status = code;
	if (lws_add_http_common_headers(wsi, code, mime, (lws_filepos_t)len, &p, end))
		return 1;
	static const char *const extra[][2] = {
		{"cache-control:", "no-store"},
		{"x-content-type-options:", "nosniff"},
		{"referrer-policy:", "no-referrer"},
	};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)extra[i][0],
		                                (const unsigned char *)extra[i][1],
		                                (int)strlen(extra[i][1]), &p, end))
			return 1;
	if (code == 401 &&
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
	                                (const unsigned char *)"Bearer realm=\"gos\"", 18,
	                                &p, end))
		return 1;
	if (cookie && lws_add_http_header_by_name(wsi, (const unsigned char *)"set-cookie:",
	                                          (const unsigned char *)cookie,
	                                          (int)strlen(cookie), &p, end))
		return 1;
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return 1;
	if (len == 0)
		return http_complete(wsi, s);
	lws_callback_on_writable(wsi);
	return 0;
}

/* Answers with body (malloc'd, taken over). */
static int http_respond(struct lws *wsi, struct http_sess *s, unsigned int code,
                        const char *mime, char *body, size_t len, const char *cookie)
{
	http_sess_clear(s);
	s->body = body;
	s->len = len;
	s->off = 0;
	return http_head(wsi, s, code, mime, len, cookie);
}

/* Answers with the file open on fd (taken over), size bytes. */
static int http_file(struct lws *wsi, struct http_sess *s, const char *mime, int fd,
                     uint64_t size, const char *cookie)
{
	http_sess_clear(s);
	s->file = true;
	s->fd = fd;
	s->left = size;
	return http_head(wsi, s, 200, mime, size, cookie);
}

/* GET /recording, /export: the body comes from a gos_ws_stream in pieces
 * of at most STREAM_CHUNK per writeable callback; its length is not known
 * ahead, so the connection closes after it (HTTP/1.1 close-delimited). */
#define STREAM_CHUNK (256 * 1024)
#define STREAM_ARGS  16          /* query arguments handed to open, at most */
#define STREAM_ARG   1024        /* bytes of one */

static int http_stream(struct lws *wsi, struct http_sess *s, const struct gos_ws_stream *st);

static int http_text(struct lws *wsi, struct http_sess *s, unsigned int code,
                     const char *msg)
{
	size_t n = strlen(msg);
	char *b = malloc(n + 2);
	if (!b)
		abort();
	memcpy(b, msg, n);
	b[n] = '\n';
	return http_respond(wsi, s, code, "text/plain; charset=utf-8", b, n + 1, NULL);
}

/* A refusal written raw in one piece, after which the connection closes.
 * Used where lws cannot be trusted to come back for a body: before an
 * upgrade lws has not settled the HTTP version (its own status helper
 * answers HTTP/1.0, which strict WebSocket clients reject), and a request
 * with a body would have lws read the body, not call us writeable. What
 * follows on the connection is never read as a request. */
static int refuse_and_close(struct lws *wsi, struct http_sess *s, unsigned int code,
                            const char *status, const char *text)
{
	if (s)
		s->status = code;
	unsigned char buf[LWS_PRE + 640];
	size_t tlen = strlen(text);
	int n = snprintf((char *)buf + LWS_PRE, sizeof(buf) - LWS_PRE,
	                 "HTTP/1.1 %u %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
	                 "content-length: %zu\r\ncache-control: no-store\r\n"
	                 "x-content-type-options: nosniff\r\nconnection: close\r\n%s\r\n%s\n",
	                 code, status, tlen + 1,
	                 code == 401 ? "www-authenticate: Bearer realm=\"gos\"\r\n" : "", text);
	if (n > 0 && (size_t)n < sizeof(buf) - LWS_PRE)
		lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
	return -1;
}

/* How many times header h came (lws keeps a repeat as another fragment). */
static int hdr_count(struct lws *wsi, enum lws_token_indexes h)
{
	int n = 0;
	while (n < 16 && lws_hdr_fragment_length(wsi, h, n) > 0)
		n++;
	return n;
}

/* Request smuggling: we serve GET only, without a body. A body announced
 * any way (Content-Length other than one "0", Transfer-Encoding), or a
 * Content-Length given twice, would let lws and a proxy in front disagree
 * on where the next request starts: refuse and hang up. */
static const char *framing_error(struct lws *wsi)
{
	char cl[32];
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
		return "gos: Transfer-Encoding is not accepted (GET only, no body)";
	int n = hdr_count(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
	if (n > 1)
		return "gos: more than one Content-Length";
	if (n == 1) {
		if (hdr(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof(cl)) < 0)
			return "gos: bad Content-Length";
		const char *p = cl;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '0' || p[1 + strspn(p + 1, " \t")] != '\0')
			return "gos: a request body is not accepted (GET only)";
	}
	return NULL;
}

static void server_metrics(struct gos_ws *ws, struct gos_buf *t)
{
	static const struct { const char *name, *type, *help; size_t off; } m[] = {
#define M(n, ty, h, f) {n, ty, h, offsetof(struct stats, f)}
		M("gos_ws_viewers", "gauge", "Browser viewers connected now.", viewers),
		M("gos_ws_viewers_accepted_total", "counter", "Viewers accepted since start.", viewers_total),
		M("gos_ws_viewers_v2", "gauge", "Viewers connected now speaking gos.v2 (binary, viewport-scoped).", viewers_v2),
		M("gos_ws_viewers_deflate", "gauge", "Viewers connected now with permessage-deflate on.", viewers_deflate),
		M("gos_ws_messages_sent_total", "counter", "WebSocket messages written to viewers.", messages_sent),
		M("gos_ws_sent_bytes_total", "counter", "Payload bytes written to viewers.", bytes_sent),
		M("gos_ws_drops_total", "counter", "Messages dropped from the backlogs of viewers that fell behind.", drops),
		M("gos_ws_resyncs_total", "counter", "Resyncs (backlog replaced by a fresh snapshot).", resyncs),
		M("gos_ws_snapshots_sent_total", "counter", "Snapshots handed to viewers.", snapshots_sent),
		M("gos_ws_deltas_published_total", "counter", "Delta messages handed to the server by the broadcaster.", published),
		M("gos_ws_inbound_messages_total", "counter", "Messages received from viewers.", inbound),
		M("gos_ws_inbound_ignored_total", "counter", "Viewer messages ignored (unknown type or not JSON).", inbound_ignored),
		M("gos_ws_inbound_rate_limited_total", "counter", "Viewer messages and frames over the per-viewer rate limit (messages dropped).", inbound_limited),
		M("gos_ws_inbound_control_frames_total", "counter", "Control frames (pings, pongs, closes) viewers sent, counted from their bytes (at most).", inbound_control),
		M("gos_ws_closed_rate_total", "counter", "Viewers closed (1008) for staying over the inbound rate limit.", closed_rate),
		M("gos_ws_closed_unmasked_total", "counter", "Viewers closed (1002) for a frame without the mask bit (RFC 6455 5.1).", closed_unmasked),
		M("gos_ws_closed_oversize_total", "counter", "Viewers closed for sending a message over 64 KiB.", closed_oversize),
		M("gos_ws_closed_stale_total", "counter", "Viewers closed for not answering pings.", closed_stale),
		M("gos_http_requests_total", "counter", "HTTP requests served (files, /metrics, /health).", http_requests),
		M("gos_http_connections", "gauge", "HTTP connections open now (not yet viewers; at most --max-http).", http_conns),
		M("gos_http_evicted_total", "counter", "Idle HTTP connections closed to make room for new ones.", http_evicted),
		M("gos_ws_accept_no_fd_total", "counter", "Accepts that failed for lack of file descriptors (accepting paused, not spinning).", accept_no_fd),
		M("gos_ws_queued_messages", "gauge", "Messages waiting in viewer queues now.", queued),
		M("gos_ws_queue_max_messages", "gauge", "Longest viewer queue seen since start.", max_queue_seen),
#undef M
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		gos_metrics_family(t, m[i].name, m[i].type, m[i].help);
		gos_metrics_sample_u64(t, m[i].name, NULL,
		                       st_get((const _Atomic uint64_t *)((const char *)&ws->st + m[i].off)));
	}
	gos_metrics_family(t, "gos_ws_refused_total", "counter",
	                   "Requests or viewers refused, by reason.");
	for (int r = 0; r < GOS_WS_REFUSED_COUNT_; r++) {
		char lab[64];
		snprintf(lab, sizeof(lab), "reason=\"%s\"", gos_ws_refusal_name((enum gos_ws_refusal)r));
		gos_metrics_sample_u64(t, "gos_ws_refused_total", lab, st_get(&ws->st.refused[r]));
	}
	gos_metrics_family(t, "gos_ws_snapshot_requests_total", "counter",
	                   "Snapshot requests by viewers (connects and resyncs).");
	gos_metrics_sample_u64(t, "gos_ws_snapshot_requests_total", NULL,
	                       atomic_load(&ws->snapshot_requests));
	ws_users_metrics(ws, t);
	gos_metrics_family(t, "gos_uptime_seconds", "gauge", "Seconds since the server started.");
	gos_metrics_sample(t, "gos_uptime_seconds", NULL, (double)(gos_now_ms() - ws->start_ms) / 1000.0);
}

static int http_request(struct gos_ws *ws, struct lws *wsi, struct http_sess *s,
                        const char *uri)
{
	st_add(&ws->st.http_requests, 1);
	ws_conn_busy(ws, wsi, true);
	int via;
	struct ws_account *who = identify(ws, wsi, &via);
	http_sess_clear(s);
	s->logging = ws->alog != NULL;
	if (s->logging) {
		s->status = 0;
		s->bytes = 0;
		s->start_ms = gos_now_ms();
		s->start_wall = gos_now_realtime_s();
		s->account = who;
		log_path(s->path, sizeof(s->path), uri);
		lws_get_peer_simple(wsi, s->addr, sizeof(s->addr));
	}
	const char *bad = framing_error(wsi);
	if (bad) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_BAD_REQUEST], 1);
		return refuse_and_close(wsi, s, 400, "Bad Request", bad);
	}
	if (!host_ok(ws, wsi)) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_HOST], 1);
		return http_text(wsi, s, 403, HOST_REFUSED);
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return refuse_and_close(wsi, s, 405, "Method Not Allowed", "gos: only GET is served here");

	if (!strcmp(uri, "/health")) {
		struct gos_buf t = {0};
		bool ok = true;
		gos_buf_putc(&t, '{');
		if (ws->opts.health)
			ok = ws->opts.health(ws->opts.cb_ctx, &t);
		else
			gos_buf_puts(&t, "\"status\":\"ok\"");
		if (t.len > 1)
			gos_buf_putc(&t, ',');
		gos_buf_printf(&t, "\"uptime_s\":%.3f,\"viewers\":%llu,\"max_viewers\":%u,"
		                "\"http_connections\":%u,\"max_http\":%u,"
		                "\"protocol\":\"" GOS_WS_PROTOCOL "\",\"version\":\"" GOS_VERSION "\"}",
		                (double)(gos_now_ms() - ws->start_ms) / 1000.0,
		                (unsigned long long)st_get(&ws->st.viewers), ws->opts.max_viewers,
		                ws->n_http, ws->opts.max_http);
		return http_respond(wsi, s, ok ? 200 : 503, "application/json", t.data, t.len, NULL);
	}

	unsigned refuse = access_check(ws, who, uri);
	if (refuse)
		return http_text(wsi, s, refuse, refuse == 401 ? AUTH_REFUSED : ROLE_REFUSED);

	if (!strcmp(uri, "/metrics")) {
		struct gos_buf t = {0};
		if (ws->opts.metrics)
			ws->opts.metrics(ws->opts.cb_ctx, &t);
		server_metrics(ws, &t);
		return http_respond(wsi, s, 200, "text/plain; version=0.0.4; charset=utf-8",
		                    t.data, t.len, NULL);
	}
	if (!strcmp(uri, "/recording"))
		return http_stream(wsi, s, ws->opts.recording);
	if (!strcmp(uri, "/export"))
		return http_stream(wsi, s, ws->opts.export_);
	if (!strcmp(uri, "/ws"))
		return http_text(wsi, s, 426, "gos: /ws is a WebSocket endpoint (protocol " GOS_WS_PROTOCOL ")");

	struct stat sb;
	const char *mime;
	int fd = asset_open(ws, uri, &sb, &mime);
	if (fd < 0) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_PATH], 1);
		return http_text(wsi, s, 404, "gos: no such file");
	}
	/* A browser that authenticated with ?token= keeps a cookie, so that the
	 * page's scripts and styles load without the token in their URLs. */
	char cookie[MAX_TOKEN + 80];
	if (via == 2)
		snprintf(cookie, sizeof(cookie), "gos_token=%s; Path=/; HttpOnly; SameSite=Strict",
		         who->token);
	return http_file(wsi, s, mime, fd, (uint64_t)sb.st_size, via == 2 ? cookie : NULL);
}

static int http_stream(struct lws *wsi, struct http_sess *s, const struct gos_ws_stream *st)
{
	struct gos_ws_download d = {.filename = "gos.ndjson"};
	char err[256] = "gos: nothing to download here";
	http_sess_clear(s);
	static char args[STREAM_ARGS][STREAM_ARG];   /* service thread only */
	const char *argv[STREAM_ARGS];
	int n_args = 0;
	while (n_args < STREAM_ARGS &&
	       lws_hdr_copy_fragment(wsi, args[n_args], STREAM_ARG, WSI_TOKEN_HTTP_URI_ARGS,
	                             n_args) > 0) {
		argv[n_args] = args[n_args];
		n_args++;
	}
	void *h = st ? st->open(st->ctx, argv, n_args, &d, err, sizeof(err)) : NULL;
	if (!h)
		return http_text(wsi, s, d.status ? (unsigned int)d.status : 404, err);
	s->status = 200;
	s->stream = h;
	s->st = st;
	s->sbuf = malloc(LWS_PRE + STREAM_CHUNK);
	if (!s->sbuf)
		abort();
	unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
		*end = buf + sizeof(buf) - 1;
	char disp[200];
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", d.filename);
	static const char *const extra[][2] = {
		{"cache-control:", "no-store"},
		{"x-content-type-options:", "nosniff"},
		{"connection:", "close"},
	};
	if (lws_add_http_common_headers(wsi, 200, d.mime ? d.mime : "application/x-ndjson",
	                                LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end))
		return -1;
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)extra[i][0],
		                                (const unsigned char *)extra[i][1],
		                                (int)strlen(extra[i][1]), &p, end))
			return -1;
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"content-disposition:",
	                                (const unsigned char *)disp, (int)strlen(disp), &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int stream_writeable(struct lws *wsi, struct http_sess *s)
{
	unsigned char *out = s->sbuf + LWS_PRE;
	long n = s->st->read(s->stream, out, STREAM_CHUNK);
	if (n < 0)
		return -1;
	if (n == 0) {
		/* the end: an empty final write, then close (no length was sent) */
		lws_write(wsi, out, 0, LWS_WRITE_HTTP_FINAL);
		return -1;
	}
	if (lws_write(wsi, out, (size_t)n, LWS_WRITE_HTTP) < (int)n)
		return -1;
	s->bytes += (uint64_t)n;
	lws_callback_on_writable(wsi);
	return 0;
}

/* One chunk per call, and only when lws has sent everything before it: lws
 * copies aside what the socket does not take, so that copy stays under one
 * chunk (tx_packet_size) per connection. */
static int http_writeable(struct lws *wsi, struct http_sess *s)
{
	if (s->stream)
		return stream_writeable(wsi, s);
	unsigned char buf[LWS_PRE + HTTP_CHUNK];
	size_t n;
	bool last;
	if (s->file) {
		n = s->left > HTTP_CHUNK ? HTTP_CHUNK : (size_t)s->left;
		ssize_t r = read(s->fd, buf + LWS_PRE, n);
		if (r <= 0)
			return -1;  /* the file shrank: the promised length cannot be kept */
		n = (size_t)r;
		last = n == s->left;
		s->left -= n;
	} else if (s->body) {
		n = s->len - s->off;
		if (n > HTTP_CHUNK)
			n = HTTP_CHUNK;
		memcpy(buf + LWS_PRE, s->body + s->off, n);
		s->off += n;
		last = s->off == s->len;
	} else {
		return 0;
	}
	if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
		return -1;
	s->bytes += n;
	if (!last) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	return http_complete(wsi, s);
}

int ws_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                     void *in, size_t len)
{
	struct gos_ws *ws = lws_context_user(lws_get_context(wsi));
	struct http_sess *s = user;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return http_request(ws, wsi, s, in ? (const char *)in : "/");
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writeable(wsi, s);
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* A client asked for "http" as its WebSocket subprotocol: lws
		 * would bind the upgrade here, past every check of
		 * ws_upgrade_filter. */
		st_add(&ws->st.refused[GOS_WS_REFUSED_PATH], 1);
		return refuse_and_close(wsi, NULL, 404, "Not Found", "gos: the WebSocket endpoint is /ws, "
		                        "subprotocol " GOS_WS_PROTOCOL);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (s) {
			http_logged(ws, s);  /* cut short, or refused and closed */
			http_sess_clear(s);
		}
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		ws_conn_gone(ws, wsi);
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- WebSocket upgrades ------------------------------------------------- */

/* An upgrade refused before it became a viewer: its access-log line. */
static int upgrade_refused(struct gos_ws *ws, struct lws *wsi, struct ws_account *who,
                           unsigned code, const char *status, const char *text)
{
	if (ws->alog) {
		char addr[64] = "";
		lws_get_peer_simple(wsi, addr, sizeof(addr));
		ws_access_log(ws, gos_now_realtime_s(), who, addr, "/ws", 0, code, 0, 0, -1, 0);
	}
	return refuse_and_close(wsi, NULL, code, status, text);
}

/* Before the upgrade: path, token and role, Origin. */
int ws_upgrade_filter(struct gos_ws *ws, struct lws *wsi)
{
	char uri[256];
	ws_conn_busy(ws, wsi, true);
	int via;
	struct ws_account *who = identify(ws, wsi, &via);
	const char *bad = framing_error(wsi);
	if (bad) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_BAD_REQUEST], 1);
		return upgrade_refused(ws, wsi, who, 400, "Bad Request", bad);
	}
	if (!host_ok(ws, wsi)) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_HOST], 1);
		return upgrade_refused(ws, wsi, who, 403, "Forbidden", HOST_REFUSED);
	}
	if (hdr(wsi, WSI_TOKEN_GET_URI, uri, sizeof(uri)) < 0 || strcmp(uri, "/ws")) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_PATH], 1);
		return upgrade_refused(ws, wsi, who, 404, "Not Found", "gos: the WebSocket endpoint is /ws");
	}
	unsigned refuse = access_check(ws, who, "/ws");
	if (refuse)
		return upgrade_refused(ws, wsi, who, refuse, refuse == 401 ? "Unauthorized" : "Forbidden",
		                       refuse == 401 ? AUTH_REFUSED : ROLE_REFUSED);
	if (!origin_ok(ws, wsi)) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_ORIGIN], 1);
		return upgrade_refused(ws, wsi, who, 403, "Forbidden",
		                       "gos: this Origin is not allowed (see --allow-origin)");
	}
	struct conn *c = lws_get_opaque_user_data(wsi);
	if (c)
		c->account = who;
	return 0;
}
