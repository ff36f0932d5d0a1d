/* gos WebSocket + HTTP server on libwebsockets 4.1 (see gos_ws.h): create,
 * stop and destroy, the service thread, lws's protocol tables, the shared
 * messages, the inbox publishers hand them to, and the stats. Accepting is
 * in ws_accept.c, HTTP in ws_http.c, viewers in ws_viewer.c
 * (ws_internal.h).
 *
 * Everything but the public calls runs on the service thread, which owns
 * the lws context, the viewers and their queues. Publishers append to the
 * inbox under a mutex and wake the thread with lws_cancel_service(). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "gos_heartbeat.h"
#include "gos_log.h"
#include "gos_time.h"
#include "gos_viewer_proto.h"
#include "gos_ws.h"
#include "ws_internal.h"

#ifndef GOS_ASSETS_DIR
#define GOS_ASSETS_DIR "assets/web"
#endif

#define INBOX_MAX        4096              /* publisher -> service thread items */

/* ---- messages ----------------------------------------------------------- */

struct gos_ws_msg *gos_ws_msg_create(const char *bytes, size_t len)
{
	struct gos_ws_msg *m = malloc(sizeof(*m) + LWS_PRE + len + 1);
	if (!m)
		abort();
	atomic_init(&m->refs, 1);
	atomic_init(&m->written, false);
	m->binary = false;
	m->mark = 0;
	m->len = len;
	m->data = m->buf + LWS_PRE;
	memcpy(m->data, bytes, len);
	m->data[len] = '\0';
	return m;
}

struct gos_ws_msg *gos_ws_msg_create_binary(const char *bytes, size_t len)
{
	struct gos_ws_msg *m = gos_ws_msg_create(bytes, len);
	m->binary = true;
	return m;
}

void gos_ws_msg_mark(struct gos_ws_msg *m, uint64_t mark)
{
	m->mark = mark;
}

struct gos_ws_msg *ws_msg_ref(struct gos_ws_msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void gos_ws_msg_unref(struct gos_ws_msg *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

/* ---- inbox (service thread side) ---------------------------------------- */

void ws_take_reload(struct gos_ws *ws)
{
	pthread_mutex_lock(&ws->lock);
	bool pending = ws->pending;
	struct gos_users *u = ws->pending_users;
	FILE *alog = ws->pending_alog;
	ws->pending = false;
	ws->pending_users = NULL;
	ws->pending_alog = NULL;
	pthread_mutex_unlock(&ws->lock);
	if (!pending)
		return;
	if (alog) {
		if (ws->alog)
			fclose(ws->alog);
		ws->alog = alog;
	}
	if (u) {
		ws_users_install(ws, u);
		ws_viewer_revoke(ws);
	}
}

void ws_drain_inbox(struct gos_ws *ws)
{
	ws_take_reload(ws);
	pthread_mutex_lock(&ws->lock);
	struct inbox_item *items = ws->inbox;
	size_t n = ws->inbox_len;
	bool overflow = ws->inbox_overflow;
	ws->inbox = NULL;
	ws->inbox_len = ws->inbox_cap = 0;
	ws->inbox_overflow = false;
	pthread_mutex_unlock(&ws->lock);

	/* What the items give a viewer is written once they all are delivered:
	 * a tick's messages go out to each viewer in one send. */
	ws->delivering = true;
	for (size_t i = 0; i < n; i++) {
		ws_viewer_deliver(ws, &items[i]);
		gos_ws_msg_unref(items[i].msg);
	}
	free(items);
	if (overflow) {
		/* Deltas were lost between publisher and us: every live viewer's
		 * picture is suspect, so all of them start over. */
		ws_viewer_resync_live(ws);
	}
	ws->delivering = false;
	ws_viewer_flush(ws);
}

/* ---- permessage-deflate ------------------------------------------------- */

/* RFC 7692 through lws 4.1's own extension, on the viewers' vhost (every
 * WebSocket protocol there gets it). Its server side needs three things
 * done around it:
 * - It answers only options without a value: an offer with
 *   server_max_window_bits=N would be accepted without echoing N, which
 *   the client must treat as a failed handshake; and it applies
 *   server_no_context_takeover to its inflater rather than to its
 *   deflater, which corrupts every message after the first. So an offer
 *   is taken only when its options are client_max_window_bits (with or
 *   without a value; lws leaves the client its 15-bit window) and
 *   client_no_context_takeover (lws then resets its own deflater after
 *   each message: needless but harmless); anything else is declined (RFC
 *   7692 lets the server do that) and that client gets plain frames.
 * - Its defaults cost 262 KiB of zlib state per deflater (a 32 KiB window
 *   at memLevel 8): the deflater is bounded here (GOS_WS_DEFLATE_* in
 *   gos_ws.h). lws picks the deflater's window from the
 *   client_max_window_bits slot on a vhost without a listening port,
 *   which ours is; the inflater keeps 15 bits, as it must.
 * - When one lws_write() compresses to more than its output buffer, lws
 *   keeps the rest and makes the connection's next write of any kind (a
 *   ping, the next message) part of the unfinished message; if that write
 *   brings input while zlib still holds some, Debian's lws aborts the
 *   process (an assert). ws_viewer.c never lets that happen: it hands the
 *   compressor at most WS_DEFLATE_CHUNK bytes per write, which compress to
 *   less than the buffer whatever the data (test_ws sends both kinds). */

static bool deflate_param_ok(const char *p, size_t n)
{
	static const char cmwb[] = "client_max_window_bits", cnct[] = "client_no_context_takeover";
	if (n == sizeof(cnct) - 1 && !strncmp(p, cnct, n))
		return true;
	if (n < sizeof(cmwb) - 1 || strncmp(p, cmwb, sizeof(cmwb) - 1))
		return false;
	p += sizeof(cmwb) - 1;
	n -= sizeof(cmwb) - 1;
	while (n && *p == ' ')
		p++, n--;
	if (!n)
		return true;  /* no value */
	if (*p != '=')
		return false;
	p++, n--;
	while (n && *p == ' ')
		p++, n--;
	if (n >= 2 && p[0] == '"' && p[n - 1] == '"')
		p++, n -= 2;  /* a quoted-string value */
	if (n < 1 || n > 2 || !isdigit((unsigned char)p[0]) || (n == 2 && !isdigit((unsigned char)p[1])))
		return false;
	int bits = n == 1 ? p[0] - '0' : (p[0] - '0') * 10 + p[1] - '0';
	return bits >= 8 && bits <= 15 && p[0] != '0';
}

/* The next item of h[*i..n) up to a separator in seps (consumed), without
 * surrounding blanks: its start, its length in *len. */
static const char *next_item(const char *h, size_t n, size_t *i, const char *seps, size_t *len)
{
	size_t b = *i, e;
	while (b < n && (h[b] == ' ' || h[b] == '\t'))
		b++;
	for (e = b; e < n && !strchr(seps, h[e]); e++)
		;
	*i = e < n ? e + 1 : n;
	while (e > b && (h[e - 1] == ' ' || h[e - 1] == '\t'))
		e--;
	*len = e - b;
	return h + b;
}

/* Whether the client's first permessage-deflate offer (the one lws takes)
 * has only options we can honour. */
static bool deflate_offer_ok(struct lws *wsi)
{
	static const char name[] = "permessage-deflate";
	char h[512];
	int got = lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_EXTENSIONS);
	size_t n = got > 0 ? (size_t)got : 0, i = 0;
	while (i < n) {
		/* one offer: NAME *( ";" PARAM ) up to "," */
		size_t len, end = i;
		while (end < n && h[end] != ',')
			end++;
		const char *e = next_item(h, end, &i, ";", &len);
		bool ours = len == sizeof(name) - 1 && !strncmp(e, name, len);
		while (ours && i < end) {
			const char *p = next_item(h, end, &i, ";", &len);
			if (!deflate_param_ok(p, len))
				return false;
		}
		if (ours)
			return true;
		i = end + 1;
	}
	return false;
}

static void deflate_set(struct lws_context *ctx, const struct lws_extension *ext, struct lws *wsi,
                        void *priv, const char *name, int value)
{
	char v[8];
	snprintf(v, sizeof(v), "%d", value);
	struct lws_ext_option_arg oa = {.option_name = name, .start = v, .len = (int)strlen(v)};
	lws_extension_callback_pm_deflate(ctx, ext, wsi, LWS_EXT_CB_NAMED_OPTION_SET, priv, &oa, 0);
}

static int deflate_callback(struct lws_context *ctx, const struct lws_extension *ext,
                            struct lws *wsi, enum lws_extension_callback_reasons reason,
                            void *user, void *in, size_t len)
{
	if (reason == LWS_EXT_CB_CONSTRUCT && !deflate_offer_ok(wsi))
		return -1;  /* declined: no Sec-WebSocket-Extensions in the answer */
	int r = lws_extension_callback_pm_deflate(ctx, ext, wsi, reason, user, in, len);
	if (reason == LWS_EXT_CB_CONSTRUCT && !r) {
		/* Before the first message: zlib's state is made on first use. */
		void *priv = *(void **)user;
		deflate_set(ctx, ext, wsi, priv, "client_max_window_bits", GOS_WS_DEFLATE_WINDOW_BITS);
		deflate_set(ctx, ext, wsi, priv, "mem_level", GOS_WS_DEFLATE_MEM_LEVEL);
		deflate_set(ctx, ext, wsi, priv, "tx_buf_size", WS_DEFLATE_OUT_BITS);
	}
	return r;
}

/* ws_internal.h, WS_DEFLATE_CHUNK: the most one write can compress to. */
_Static_assert((WS_DEFLATE_CHUNK * 1034 + 799) / 800 +
               (1 << (GOS_WS_DEFLATE_MEM_LEVEL + 6)) * 31 / 8 + 16 < (1 << WS_DEFLATE_OUT_BITS),
               "a WS_DEFLATE_CHUNK must compress within lws's output buffer");

static const struct lws_extension extensions[] = {
	{"permessage-deflate", deflate_callback, "permessage-deflate"},
	{NULL, NULL, NULL},
};

bool ws_deflate_active(struct lws *wsi)
{
	/* lws has no query for it; setting an option to its default tells. */
	return !lws_set_extension_option(wsi, "permessage-deflate", "compression_level", "1");
}

/* ---- lws protocols ------------------------------------------------------ */

static const struct lws_protocols protocols[] = {
	/* tx_packet_size: lws sends at most this per send() and copies aside the
	 * rest (with 0 it would be the rx buffer size: 4 KiB at a time). */
	{"http", ws_http_callback, sizeof(struct http_sess), 0, 0, NULL, HTTP_CHUNK + 1024},
	{GOS_WS_PROTOCOL, ws_viewer_callback, sizeof(struct viewer), WS_RX_BUF, 0, NULL, WS_CHUNK + 64},
	{GOS_WS_PROTOCOL_V2, ws_viewer_callback, sizeof(struct viewer), WS_RX_BUF, 1, NULL, WS_CHUNK + 64},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The listening socket is adopted as a raw descriptor on a vhost of its
 * own, so that no client can name this protocol as a WebSocket subprotocol. */
static const struct lws_protocols listen_protocols[] = {
	{"gos-listen", ws_listen_callback, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* A client that names no subprotocol still gets gos.v1. */
static const struct lws_protocol_vhost_options pvo_default = {
	NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo = {
	NULL, &pvo_default, GOS_WS_PROTOCOL, ""};

/* ---- lifecycle ---------------------------------------------------------- */

static void *service_main(void *arg)
{
	struct gos_ws *ws = arg;
	/* lws_service returns at least every CTL_SCAN_MS (ws_tick) */
	gos_hb_start(GOS_HB_WEB, 0);
	while (!atomic_load(&ws->stop)) {
		gos_hb_beat(GOS_HB_WEB);
		if (lws_service(ws->ctx, 0) < 0)
			break;
	}
	gos_hb_stop(GOS_HB_WEB);
	return NULL;
}

static bool read_token_file(struct gos_ws *ws, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read --auth-token-file %s: %s", path, strerror(errno));
		return false;
	}
	size_t n = fread(ws->token, 1, MAX_TOKEN, f);
	bool too_long = n == MAX_TOKEN && fgetc(f) != EOF;
	fclose(f);
	while (n && isspace((unsigned char)ws->token[n - 1]))
		n--;
	ws->token[n] = '\0';
	if (too_long || n == 0 || strlen(ws->token) != n || strpbrk(ws->token, " \t\r\n;,\"")) {
		snprintf(err, errlen, "--auth-token-file %s must hold one token of 1-%d "
		         "characters without spaces, quotes, ';' or ','", path, MAX_TOKEN);
		return false;
	}
	ws->token_len = n;
	return true;
}

/* The users in force after a (re)load: the users file's, plus the token
 * file's user; NULL with err on failure. */
static struct gos_users *users_read(struct gos_ws *ws, char *err, size_t errlen)
{
	struct gos_users *u = ws->users_path ? gos_users_load(ws->users_path, err, errlen)
	                                     : calloc(1, sizeof(*u));
	if (!u) {
		if (!ws->users_path)
			abort();
		return NULL;
	}
	if (ws->token_len && !gos_users_add(u, GOS_USERS_ANONYMOUS, ws->token, GOS_ROLE_ADMIN,
	                                    err, errlen)) {
		snprintf(err, errlen, "--users-file %s gives a user the token of --auth-token-file",
		         ws->users_path);
		gos_users_destroy(u);
		return NULL;
	}
	return u;
}

static FILE *alog_open(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "ae");
	if (!f) {
		snprintf(err, errlen, "cannot open --access-log %s: %s", path, strerror(errno));
		return NULL;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 16);  /* a line goes out in one write (fflush) */
	return f;
}

bool gos_ws_reload(struct gos_ws *ws, int *n_users, char *err, size_t errlen)
{
	*n_users = -1;
	if (!ws || (!ws->users_path && !ws->alog_path))
		return true;
	struct gos_users *u = NULL;
	FILE *alog = NULL;
	if (ws->users_path) {
		u = users_read(ws, err, errlen);
		if (!u)
			return false;
		*n_users = (int)u->n - (ws->token_len ? 1 : 0);
	}
	if (ws->alog_path && !(alog = alog_open(ws->alog_path, err, errlen))) {
		gos_users_destroy(u);
		return false;
	}
	pthread_mutex_lock(&ws->lock);
	if (u) {
		gos_users_destroy(ws->pending_users);  /* a reload not yet taken: this one wins */
		ws->pending_users = u;
	}
	if (alog) {
		if (ws->pending_alog)
			fclose(ws->pending_alog);
		ws->pending_alog = alog;
	}
	ws->pending = true;
	pthread_mutex_unlock(&ws->lock);
	lws_cancel_service(ws->ctx);
	return true;
}

struct gos_ws *gos_ws_create(const struct gos_ws_opts *opts, char *err, size_t errlen)
{
	struct gos_ws *ws = calloc(1, sizeof(*ws));
	if (!ws)
		abort();
	ws->opts = *opts;
	ws->assets_fd = -1;
	ws->listen_fd = -1;
	struct gos_ws_opts *o = &ws->opts;
	if (!o->listen)
		o->listen = GOS_WS_DEFAULT_LISTEN;
	if (!o->max_viewers)
		o->max_viewers = GOS_WS_MAX_VIEWERS;
	if (!o->max_http)
		o->max_http = GOS_WS_MAX_HTTP;
	if (!o->max_queued)
		o->max_queued = GOS_WS_MAX_QUEUED;
	if (!o->backpressure)
		o->backpressure = GOS_WS_BACKPRESSURE_THRESHOLD;
	if (!o->ping_interval_ms)
		o->ping_interval_ms = 30000;
	if (!o->stale_timeout_ms)
		o->stale_timeout_ms = 300000;
	if (!o->rx_rate)
		o->rx_rate = 20;
	if (!o->rx_burst)
		o->rx_burst = 40;
	o->listen = NULL;  /* not kept: the caller's string */
	o->assets_dir = NULL;
	o->auth_token_file = NULL;
	o->users_file = NULL;
	o->access_log = NULL;
	o->tls_cert = NULL;
	o->tls_key = NULL;
	o->allow_origins = NULL;
	o->allow_hosts = NULL;
	pthread_mutex_init(&ws->lock, NULL);
	ws->start_ms = gos_now_ms();

	if (!ws_listen_open(ws, opts->listen ? opts->listen : GOS_WS_DEFAULT_LISTEN, err, errlen))
		goto error;
	if (opts->auth_token_file && !read_token_file(ws, opts->auth_token_file, err, errlen))
		goto error;
	if (opts->users_file && !(ws->users_path = strdup(opts->users_file)))
		abort();
	if (opts->access_log && !(ws->alog_path = strdup(opts->access_log)))
		abort();
	ws->auth = ws->token_len || ws->users_path;
	if (ws->auth) {
		struct gos_users *u = users_read(ws, err, errlen);
		if (!u)
			goto error;
		ws_users_install(ws, u);
	}
	if (ws->alog_path && !(ws->alog = alog_open(ws->alog_path, err, errlen)))
		goto error;
	if (!opts->tls_cert != !opts->tls_key) {
		snprintf(err, errlen, "--tls-cert and --tls-key go together (a certificate and "
		         "its private key)");
		goto error;
	}
	if (opts->tls_cert && !ws_tls_check(opts->tls_cert, opts->tls_key, err, errlen))
		goto error;
	ws->tls = opts->tls_cert != NULL;
	if (opts->allow_origins && opts->allow_origins[0]) {
		ws->origins = strdup(opts->allow_origins);
		if (!ws->origins)
			abort();
	}
	const char *assets = opts->assets_dir ? opts->assets_dir : gos_ws_default_assets_dir();
	struct stat sb;
	if (opts->assets_dir && (!realpath(assets, ws->assets_real) || stat(ws->assets_real, &sb) ||
	                         !S_ISDIR(sb.st_mode))) {
		snprintf(err, errlen, "the web viewer folder %s is not a readable folder", assets);
		goto error;
	}
	if (!realpath(assets, ws->assets_real)) {
		/* The server still runs (/ws, /metrics, /health); / answers 404. */
		gos_log_warn("ws", "web viewer folder %s not found (%s); / will answer 404",
		             assets, strerror(errno));
		ws->assets_real[0] = '\0';
	} else {
		ws->assets_fd = open(ws->assets_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}

	struct gos_buf text = {0};
	gos_viewer_hello(&text);
	ws->hello = gos_ws_msg_create(text.data, text.len);
	gos_buf_clear(&text);
	gos_v2_hello(&text);
	ws->hello_v2 = gos_ws_msg_create(text.data, text.len);
	gos_buf_clear(&text);
	gos_viewer_resync(&text);
	ws->resync = gos_ws_msg_create(text.data, text.len);
	gos_buf_finish(&text);

	lws_set_log_level(LLL_ERR, ws_lws_log);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if (ws->tls)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.user = ws;
	info.timeout_secs = 30;
	ws->ctx = lws_create_context(&info);
	if (ws->ctx) {
		info.port = CONTEXT_PORT_NO_LISTEN_SERVER;  /* connections come from ws_accept.c */
		info.protocols = protocols;
		info.pvo = &pvo;
		info.extensions = extensions;
		info.vhost_name = "gos";
		info.ssl_cert_filepath = opts->tls_cert;  /* NULL: plain */
		info.ssl_private_key_filepath = opts->tls_key;
		/* HTTP/1.1 only: budgets, refusals and viewers are per connection,
		 * and lws 4.1's HTTP/2 fails browsers' WebSockets over it (RFC 8441). */
		info.alpn = "http/1.1";
		ws->vhost = lws_create_vhost(ws->ctx, &info);
		info.alpn = NULL;
		info.ssl_cert_filepath = NULL;
		info.ssl_private_key_filepath = NULL;
		info.port = CONTEXT_PORT_NO_LISTEN;
		info.protocols = listen_protocols;
		info.pvo = NULL;
		info.extensions = NULL;
		info.vhost_name = "gos-listen";
		struct lws_vhost *lvh = lws_create_vhost(ws->ctx, &info);
		if (ws->vhost && lvh) {
			lws_sock_file_fd_type lfd = {.filefd = ws->listen_fd};
			ws->listen_wsi = lws_adopt_descriptor_vhost(lvh, LWS_ADOPT_RAW_FILE_DESC, lfd,
			                                            "gos-listen", NULL);
			ws->listen_adopted = ws->listen_wsi != NULL;
		}
	}
	if (!ws->listen_adopted) {
		snprintf(err, errlen, "cannot start the web server on %s:%d (libwebsockets failed)",
		         ws->host, ws->port);
		goto error;
	}
	lws_sul_schedule(ws->ctx, 0, &ws->sul_tick, ws_tick, CTL_SCAN_MS * LWS_US_PER_MS);
	ws->hosts = gos_host_allow_create(ws->host, ws->iface, ws->port, opts->allow_hosts,
	                                  err, errlen);
	if (!ws->hosts)
		goto error;
	if (pthread_create(&ws->thread, NULL, service_main, ws)) {
		snprintf(err, errlen, "cannot start the web server thread");
		goto error;
	}
	ws->thread_started = true;
	return ws;
error:;
	int e = errno;
	gos_ws_destroy(ws);
	errno = e;
	return NULL;
}

void gos_ws_stop(struct gos_ws *ws)
{
	if (!ws || !ws->thread_started)
		return;
	atomic_store(&ws->stop, true);
	/* Stop accepting first: new connections are refused from here on. */
	shutdown(ws->listen_fd, SHUT_RDWR);
	lws_cancel_service(ws->ctx);
	pthread_join(ws->thread, NULL);
	ws->thread_started = false;
}

void gos_ws_destroy(struct gos_ws *ws)
{
	if (!ws)
		return;
	gos_ws_stop(ws);
	if (ws->ctx) {
		lws_sul_cancel(&ws->sul_tick);
		lws_sul_cancel(&ws->sul_accept);
		lws_context_destroy(ws->ctx);
	}
	if (ws->listen_fd >= 0 && !ws->listen_adopted)
		close(ws->listen_fd);
	for (size_t i = 0; i < ws->inbox_len; i++)
		gos_ws_msg_unref(ws->inbox[i].msg);
	free(ws->inbox);
	gos_ws_msg_unref(ws->hello);
	gos_ws_msg_unref(ws->hello_v2);
	gos_ws_msg_unref(ws->resync);
	gos_ws_msg_unref(ws->timeline);
	free(ws->origins);
	gos_host_allow_destroy(ws->hosts);
	ws_users_free(ws);
	gos_users_destroy(ws->pending_users);
	if (ws->pending_alog)
		fclose(ws->pending_alog);
	if (ws->alog)
		fclose(ws->alog);
	free(ws->users_path);
	free(ws->alog_path);
	memset(ws->token, 0, sizeof(ws->token));
	if (ws->assets_fd >= 0)
		close(ws->assets_fd);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}

int gos_ws_port(const struct gos_ws *ws)
{
	return ws->port;
}

const char *gos_ws_host(const struct gos_ws *ws)
{
	return ws->host;
}

bool gos_ws_tls(const struct gos_ws *ws)
{
	return ws->tls;
}

bool gos_ws_loopback(const struct gos_ws *ws)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, ws->iface, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, ws->iface, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;  /* "": every interface */
}

static void inbox_put(struct gos_ws *ws, const struct inbox_item *it)
{
	struct gos_ws_msg *msg = it->msg;
	pthread_mutex_lock(&ws->lock);
	if (ws->inbox_overflow || ws->inbox_len >= INBOX_MAX) {
		ws->inbox_overflow = true;
		pthread_mutex_unlock(&ws->lock);
		gos_ws_msg_unref(msg);
		st_add(&ws->st.drops, 1);
		lws_cancel_service(ws->ctx);
		return;
	}
	if (ws->inbox_len == ws->inbox_cap) {
		size_t cap = ws->inbox_cap ? ws->inbox_cap * 2 : 16;
		struct inbox_item *n = realloc(ws->inbox, cap * sizeof(*n));
		if (!n)
			abort();
		ws->inbox = n;
		ws->inbox_cap = cap;
	}
	ws->inbox[ws->inbox_len++] = *it;
	pthread_mutex_unlock(&ws->lock);
	lws_cancel_service(ws->ctx);
}

void gos_ws_viewer_send(struct gos_ws *ws, uint64_t viewer, uint64_t gen,
                        enum gos_ws_send kind, struct gos_ws_msg *msg)
{
	inbox_put(ws, &(struct inbox_item){.kind = ITEM_VIEWER, .msg = msg, .viewer = viewer,
	                                   .gen = gen, .send = kind});
}

void gos_ws_publish_timeline(struct gos_ws *ws, struct gos_ws_msg *msg)
{
	inbox_put(ws, &(struct inbox_item){.kind = ITEM_TIMELINE, .msg = msg});
}

void gos_ws_publish(struct gos_ws *ws, struct gos_ws_msg *msg)
{
	st_add(&ws->st.published, 1);
	inbox_put(ws, &(struct inbox_item){.kind = ITEM_DELTA, .msg = msg});
}

void gos_ws_publish_snapshot(struct gos_ws *ws, struct gos_ws_msg *msg, bool all)
{
	inbox_put(ws, &(struct inbox_item){.kind = all ? ITEM_SNAPSHOT_ALL : ITEM_SNAPSHOT,
	                                   .msg = msg});
}

uint64_t gos_ws_snapshot_requests(const struct gos_ws *ws)
{
	return atomic_load_explicit(&ws->snapshot_requests, memory_order_acquire);
}

void gos_ws_publish_v2(struct gos_ws *ws, struct gos_ws_msg *msg, enum gos_ws_v2_route route,
                       int32_t level, const struct gos_v2_rect *rect)
{
	st_add(&ws->st.published, 1);
	inbox_put(ws, &(struct inbox_item){.kind = ITEM_V2, .msg = msg, .route = route,
	                                   .a = level, .rect = rect ? *rect : GOS_V2_RECT_NONE});
}

void gos_ws_publish_snapshot_v2(struct gos_ws *ws, struct gos_ws_msg *msg, bool all,
                                int32_t overview_level)
{
	inbox_put(ws, &(struct inbox_item){.kind = all ? ITEM_SNAPSHOT_ALL_V2 : ITEM_SNAPSHOT_V2,
	                                   .msg = msg, .a = overview_level});
}

uint64_t gos_ws_snapshot_requests_v2(const struct gos_ws *ws)
{
	return atomic_load_explicit(&ws->snapshot_requests_v2, memory_order_acquire);
}

uint32_t gos_ws_viewer_count_v2(const struct gos_ws *ws)
{
	return (uint32_t)st_get(&ws->st.viewers_v2);
}

void gos_ws_region_send(struct gos_ws *ws, uint64_t viewer, const struct gos_ws_region *r,
                        struct gos_ws_msg *msg)
{
	inbox_put(ws, &(struct inbox_item){.kind = ITEM_REGION, .msg = msg, .viewer = viewer,
	                                   .region = *r});
}

uint32_t gos_ws_viewer_count(const struct gos_ws *ws)
{
	return (uint32_t)st_get(&ws->st.viewers);
}

void gos_ws_stats(const struct gos_ws *ws, struct gos_ws_stats *out)
{
	const struct stats *s = &ws->st;
	*out = (struct gos_ws_stats){
		.viewers = st_get(&s->viewers),
		.viewers_total = st_get(&s->viewers_total),
		.messages_sent = st_get(&s->messages_sent),
		.bytes_sent = st_get(&s->bytes_sent),
		.drops = st_get(&s->drops),
		.resyncs = st_get(&s->resyncs),
		.snapshots_sent = st_get(&s->snapshots_sent),
		.published = st_get(&s->published),
		.inbound = st_get(&s->inbound),
		.inbound_ignored = st_get(&s->inbound_ignored),
		.inbound_limited = st_get(&s->inbound_limited),
		.inbound_control = st_get(&s->inbound_control),
		.closed_rate = st_get(&s->closed_rate),
		.closed_unmasked = st_get(&s->closed_unmasked),
		.closed_oversize = st_get(&s->closed_oversize),
		.closed_stale = st_get(&s->closed_stale),
		.http_requests = st_get(&s->http_requests),
		.http_connections = st_get(&s->http_conns),
		.http_evicted = st_get(&s->http_evicted),
		.accept_no_fd = st_get(&s->accept_no_fd),
		.queued_messages = st_get(&s->queued),
		.max_queue_seen = st_get(&s->max_queue_seen),
	};
	for (int i = 0; i < GOS_WS_REFUSED_COUNT_; i++)
		out->refused_total[i] = st_get(&s->refused[i]);
}

const char *gos_ws_default_assets_dir(void)
{
	/* An installed program serves its own viewer, wherever the source tree
	 * is (or whether it still exists); a program in the build tree has no
	 * ../share/gos/web beside it and serves the source tree's. */
	static char installed[PATH_MAX];
	char exe[PATH_MAX], web[PATH_MAX + 32], real[PATH_MAX];
	struct stat sb;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);  /* Linux */
	char *slash = n > 0 ? memrchr(exe, '/', (size_t)n) : NULL;
	if (slash) {
		*slash = '\0';
		snprintf(web, sizeof(web), "%s/../share/gos/web", exe);
		if (realpath(web, real) && !stat(real, &sb) && S_ISDIR(sb.st_mode)) {
			memcpy(installed, real, sizeof(installed));
			return installed;
		}
	}
	return GOS_ASSETS_DIR;
}

const char *gos_ws_refusal_name(enum gos_ws_refusal r)
{
	switch (r) {
	case GOS_WS_REFUSED_AUTH: return "auth";
	case GOS_WS_REFUSED_ORIGIN: return "origin";
	case GOS_WS_REFUSED_FULL: return "max_viewers";
	case GOS_WS_REFUSED_PATH: return "path";
	case GOS_WS_REFUSED_HOST: return "host";
	case GOS_WS_REFUSED_BAD_REQUEST: return "bad_request";
	case GOS_WS_REFUSED_HTTP_FULL: return "http_full";
	case GOS_WS_REFUSED_ROLE: return "role";
	case GOS_WS_REFUSED_COUNT_: break;
	}
	return "unknown";
}
