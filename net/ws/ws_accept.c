/* gos_ws: connections (ws_internal.h). The listening socket is ours, and
 * every accepted connection is counted in a budget (HTTP or viewers) before
 * lws adopts it; limits being hit are logged once per episode; lws's own
 * log lines are collapsed; and the service thread's periodic tick. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "gos_log.h"
#include "gos_time.h"
#include "ws_internal.h"

#define ACCEPT_BATCH     64                /* connections accepted per wake-up */
#define ACCEPT_RETRY_MS  100               /* out of descriptors: look again after */
#define EPISODE_END_MS   5000              /* a limit not hit for this long: episode over */

/* ---- connections: budgets and accept (service thread) ------------------ */

/* We own the listening socket (lws adopts each accepted descriptor) rather
 * than let lws listen: lws 4.1 answers a failed accept (EMFILE) by logging
 * and returning to poll(), which reports the socket readable again at
 * once, so at the descriptor limit it spins a core and floods the log. Its
 * own remedy, accept modulation at fd_limit_per_thread, only covers the
 * descriptors lws counts itself. Here every connection is counted in a
 * budget (HTTP: max_http, viewers: max_viewers) before lws sees it; a full
 * HTTP budget closes the oldest idle connection or answers 503; and an
 * accept that fails for lack of descriptors, whoever holds them, pauses
 * accepting for ACCEPT_RETRY_MS instead of spinning, logged once per
 * episode with counts. */

static void http_link(struct gos_ws *ws, struct conn *c)
{
	c->prev = ws->http_tail;
	c->next = NULL;
	if (ws->http_tail)
		ws->http_tail->next = c;
	else
		ws->http_head = c;
	ws->http_tail = c;
}

static void http_unlink(struct gos_ws *ws, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		ws->http_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		ws->http_tail = c->prev;
	c->prev = c->next = NULL;
}

/* An HTTP connection stops counting (closed, or now a viewer). */
static void http_uncount(struct gos_ws *ws, struct conn *c)
{
	http_unlink(ws, c);
	ws->n_http--;
	atomic_fetch_sub_explicit(&ws->st.http_conns, 1, memory_order_relaxed);
}

/* A request starts (busy) or its answer is out (idle again, and the most
 * recently active: the last to be closed for room). */
void ws_conn_busy(struct gos_ws *ws, struct lws *wsi, bool busy)
{
	struct conn *c = lws_get_opaque_user_data(wsi);
	if (!c || c->kind != CONN_HTTP)
		return;
	c->busy = busy;
	if (!busy && c != ws->http_tail) {
		http_unlink(ws, c);
		http_link(ws, c);
	}
}

/* lws is freeing the connection's wsi. */
void ws_conn_gone(struct gos_ws *ws, struct lws *wsi)
{
	struct conn *c = lws_get_opaque_user_data(wsi);
	if (!c)
		return;
	lws_set_opaque_user_data(wsi, NULL);
	if (c->kind == CONN_HTTP)
		http_uncount(ws, c);
	c->wsi = NULL;
	if (c->adopting)
		c->dead = true;  /* conn_admit frees it */
	else
		free(c);
}

void ws_conn_upgraded(struct gos_ws *ws, struct lws *wsi)
{
	struct conn *c = lws_get_opaque_user_data(wsi);
	if (c && c->kind == CONN_HTTP) {
		http_uncount(ws, c);  /* from the HTTP budget to the viewers' */
		c->kind = CONN_VIEWER;
	}
}

static void episode_start(struct episode *e)
{
	if (!e->on)
		*e = (struct episode){.on = true, .since_ms = gos_now_ms()};
	e->last_ms = gos_now_ms();
}

void ws_viewers_full(struct gos_ws *ws)
{
	if (!ws->viewers_full.on)
		gos_log_always(GOS_LOG_WARN, "ws", "%u viewers, the most allowed: refusing new "
		               "ones (close 1013)", ws->opts.max_viewers);
	episode_start(&ws->viewers_full);
	ws->viewers_full.n1++;
}

/* The HTTP budget is full: close the oldest idle connection (no request in
 * flight, nothing left unsent), if there is one. */
static bool http_make_room(struct gos_ws *ws)
{
	for (struct conn *c = ws->http_head; c; c = c->next) {
		if (c->busy || !c->wsi || lws_partial_buffered(c->wsi))
			continue;
		bool first = !ws->http_full.on;
		episode_start(&ws->http_full);
		if (first)
			gos_log_always(GOS_LOG_WARN, "ws", "%u HTTP connections, the most allowed: "
			               "closing the oldest idle ones, answering 503 when none is "
			               "idle", ws->opts.max_http);
		ws->http_full.n1++;
		st_add(&ws->st.http_evicted, 1);
		/* Synchronous: its descriptor is free before the new one is adopted. */
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
		return ws->n_http < ws->opts.max_http;
	}
	return false;
}

static void conn_admit(struct gos_ws *ws, int fd)
{
	if (ws->n_http >= ws->opts.max_http && !http_make_room(ws)) {
		static const char busy[] =
			"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
			"content-length: 40\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
			"gos: too many connections, retry later\n";
		bool first = !ws->http_full.on;
		episode_start(&ws->http_full);
		if (first)
			gos_log_always(GOS_LOG_WARN, "ws", "%u HTTP connections, the most allowed, all "
			               "busy: answering 503", ws->opts.max_http);
		ws->http_full.n2++;
		st_add(&ws->st.refused[GOS_WS_REFUSED_HTTP_FULL], 1);
		if (!ws->tls)  /* best effort; a TLS client could not read it */
			send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->kind = CONN_HTTP;
	c->adopting = true;
	http_link(ws, c);
	ws->n_http++;
	st_add(&ws->st.http_conns, 1);
	lws_adopt_desc_t ad;
	memset(&ad, 0, sizeof(ad));
	ad.vh = ws->vhost;
	ad.type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | (ws->tls ? LWS_ADOPT_ALLOW_SSL : 0);
	ad.fd.sockfd = fd;
	ad.opaque = c;
	struct lws *wsi = lws_adopt_descriptor_vhost_via_info(&ad);  /* closes fd on failure */
	c->adopting = false;
	if (!wsi || c->dead) {
		if (!c->dead)
			http_uncount(ws, c);
		free(c);
		return;
	}
	c->wsi = wsi;
}

static void accept_retry(lws_sorted_usec_list_t *sul);

/* Out of descriptors (or another accept failure): stop polling the
 * listening socket for a while; the connections wait in its backlog. */
static void accept_pause(struct gos_ws *ws, int err)
{
	st_add(&ws->st.accept_no_fd, 1);
	if (!ws->no_fd.on)
		gos_log_always(GOS_LOG_WARN, "ws", "cannot accept connections: %s (%u HTTP "
		               "connections and %llu viewers open here); trying again every %d ms",
		               strerror(err), ws->n_http, (unsigned long long)st_get(&ws->st.viewers),
		               ACCEPT_RETRY_MS);
	episode_start(&ws->no_fd);
	ws->no_fd.n1++;
	ws->accept_paused = true;
	lws_rx_flow_control(ws->listen_wsi, 0);
	lws_sul_schedule(ws->ctx, 0, &ws->sul_accept, accept_retry,
	                 (lws_usec_t)ACCEPT_RETRY_MS * LWS_US_PER_MS);
}

static void accept_ready(struct gos_ws *ws)
{
	for (int i = 0; i < ACCEPT_BATCH && !ws->accept_paused; i++) {
		if (atomic_load(&ws->stop) || !ws->listen_wsi)
			return;
		int fd = accept4(ws->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			if (e == EINTR || e == ECONNABORTED)
				continue;
			if (e == EAGAIN || e == EWOULDBLOCK)
				return;
			accept_pause(ws, e);
			return;
		}
		if (ws->no_fd.on) {
			gos_log_always(GOS_LOG_INFO, "ws", "accepting connections again after %.1f s "
			               "(%llu accepts failed)",
			               (double)(gos_now_ms() - ws->no_fd.since_ms) / 1000.0,
			               (unsigned long long)ws->no_fd.n1);
			ws->no_fd.on = false;
		}
		conn_admit(ws, fd);
	}
}

static void accept_retry(lws_sorted_usec_list_t *sul)
{
	struct gos_ws *ws = lws_container_of(sul, struct gos_ws, sul_accept);
	ws->accept_paused = false;
	if (!ws->listen_wsi || atomic_load(&ws->stop))
		return;
	lws_rx_flow_control(ws->listen_wsi, 1);
	accept_ready(ws);
}

/* The listening socket, adopted as a raw descriptor on a vhost of its own
 * (so that no client can name its protocol as a WebSocket subprotocol). */
int ws_listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                       void *in, size_t len)
{
	struct gos_ws *ws = lws_context_user(lws_get_context(wsi));
	(void)user;
	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		accept_ready(ws);
		break;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		ws->listen_wsi = NULL;
		lws_sul_cancel(&ws->sul_accept);
		break;
	default:
		break;
	}
	return 0;
}

/* ---- listening ---------------------------------------------------------- */

bool ws_listen_open(struct gos_ws *ws, const char *spec, char *err, size_t errlen)
{
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hlen;
	if (!colon) {
		snprintf(err, errlen, "--listen '%s' is not HOST:PORT", spec);
		return false;
	}
	hlen = (size_t)(colon - spec);
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen >= sizeof(ws->host)) {
		snprintf(err, errlen, "--listen '%s': host name too long", spec);
		return false;
	}
	memcpy(ws->host, h, hlen);
	ws->host[hlen] = '\0';
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535) {
		snprintf(err, errlen, "--listen '%s': the port must be a number 0-65535", spec);
		return false;
	}
	ws->port = (int)port;

	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(ws->host[0] ? ws->host : NULL, "0", &hints, &ai);
	if (rc || !ai) {
		snprintf(err, errlen, "--listen '%s': cannot resolve host '%s' (%s)", spec,
		         ws->host, gai_strerror(rc));
		return false;
	}
	/* Every interface: IPv6 and IPv4 on one socket where the host has IPv6. */
	bool dual = !ws->host[0];
	struct sockaddr_storage sa;
	memset(&sa, 0, sizeof(sa));
	socklen_t salen = ai->ai_addrlen;
	int family = dual ? AF_INET6 : ai->ai_family;
	if (dual) {
		((struct sockaddr_in6 *)&sa)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&sa)->sin6_addr = in6addr_any;
		salen = sizeof(struct sockaddr_in6);
	} else {
		memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
	}
	freeaddrinfo(ai);
	for (;;) {
		if (family == AF_INET) {
			((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)ws->port);
			inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ws->iface,
			          sizeof(ws->iface));
		} else {
			((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)ws->port);
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ws->iface,
			          sizeof(ws->iface));
		}
		ws->listen_fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (ws->listen_fd >= 0 || !dual || errno != EAFNOSUPPORT)
			break;
		dual = false;  /* no IPv6 here: 0.0.0.0 */
		family = AF_INET;
		memset(&sa, 0, sizeof(sa));
		((struct sockaddr_in *)&sa)->sin_family = AF_INET;
		((struct sockaddr_in *)&sa)->sin_addr.s_addr = htonl(INADDR_ANY);
		salen = sizeof(struct sockaddr_in);
	}
	int one = 1, zero = 0;
	if (ws->listen_fd < 0 ||
	    setsockopt(ws->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (dual && setsockopt(ws->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero))) ||
	    bind(ws->listen_fd, (struct sockaddr *)&sa, salen) ||
	    listen(ws->listen_fd, SOMAXCONN)) {
		int e = errno;
		snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(e));
		errno = e;
		return false;
	}
	salen = sizeof(sa);
	if (ws->port == 0 && !getsockname(ws->listen_fd, (struct sockaddr *)&sa, &salen))
		ws->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
		                                   : ((struct sockaddr_in6 *)&sa)->sin6_port);
	if (!ws->host[0])
		ws->iface[0] = '\0';  /* every interface */
	return true;
}

/* ---- log lines and the tick --------------------------------------------- */

/* lws's log lines, collapsed: a line that comes again (numbers aside)
 * within a minute is counted, not printed; the count is printed when
 * another line comes or (ws_tick) when the run has stopped for a second. A
 * failure that repeats thousands of times a second costs two lines. */
static struct {
	pthread_mutex_t lock;
	char last[256];                /* the line without its digits */
	uint64_t repeats, first_ms, last_ms;
} lwslog = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void lwslog_flush(void)
{
	if (lwslog.repeats)
		gos_log_always(GOS_LOG_WARN, "ws", "libwebsockets: the line above came %llu more "
		               "times in %.1f s", (unsigned long long)lwslog.repeats,
		               (double)(lwslog.last_ms - lwslog.first_ms) / 1000.0);
	lwslog.repeats = 0;
}

void ws_lws_log(int level, const char *line)
{
	char norm[sizeof(lwslog.last)];
	size_t n = 0;
	for (const char *p = line; *p && n + 1 < sizeof(norm); p++)
		if (!isdigit((unsigned char)*p))
			norm[n++] = *p;
	norm[n] = '\0';
	uint64_t now = gos_now_ms();
	pthread_mutex_lock(&lwslog.lock);
	if (!strcmp(norm, lwslog.last) && now - lwslog.first_ms < 60000) {
		lwslog.repeats++;
		lwslog.last_ms = now;
	} else {
		lwslog_flush();
		/* lws ends its lines with a newline; the log module adds its own */
		int len = (int)strcspn(line, "\n");
		gos_log_always(level == LLL_ERR ? GOS_LOG_ERROR : GOS_LOG_WARN, "ws",
		               "libwebsockets: %.*s", len, line);
		memcpy(lwslog.last, norm, n + 1);
		lwslog.first_ms = lwslog.last_ms = now;
	}
	pthread_mutex_unlock(&lwslog.lock);
}

/* Every CTL_SCAN_MS: viewers that sent only control frames since the last
 * look, and the ends of log runs and of limit episodes. */
void ws_tick(lws_sorted_usec_list_t *sul)
{
	struct gos_ws *ws = lws_container_of(sul, struct gos_ws, sul_tick);
	uint64_t now = gos_now_ms();
	pthread_mutex_lock(&lwslog.lock);
	if (lwslog.repeats && now - lwslog.last_ms >= 1000)
		lwslog_flush();
	pthread_mutex_unlock(&lwslog.lock);
	ws_viewer_scan(ws, now);
	if (ws->http_full.on && now - ws->http_full.last_ms >= EPISODE_END_MS) {
		gos_log_always(GOS_LOG_INFO, "ws", "HTTP connections were at the limit (%u) for "
		               "%.1f s: %llu idle ones closed, %llu refused with 503",
		               ws->opts.max_http,
		               (double)(ws->http_full.last_ms - ws->http_full.since_ms) / 1000.0,
		               (unsigned long long)ws->http_full.n1,
		               (unsigned long long)ws->http_full.n2);
		ws->http_full.on = false;
	}
	if (ws->viewers_full.on && now - ws->viewers_full.last_ms >= EPISODE_END_MS) {
		gos_log_always(GOS_LOG_INFO, "ws", "viewers were at the limit (%u) for %.1f s: "
		               "%llu refused", ws->opts.max_viewers,
		               (double)(ws->viewers_full.last_ms - ws->viewers_full.since_ms) / 1000.0,
		               (unsigned long long)ws->viewers_full.n1);
		ws->viewers_full.on = false;
	}
	lws_sul_schedule(ws->ctx, 0, &ws->sul_tick, ws_tick, CTL_SCAN_MS * LWS_US_PER_MS);
}
