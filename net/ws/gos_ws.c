/* gos WebSocket + HTTP server on libwebsockets 4.1 (see gos_ws.h).
 *
 * Everything below the public functions runs on the service thread, which
 * owns the lws context, the viewers and their queues. Publishers append to
 * the inbox under a mutex and wake the thread with lws_cancel_service(). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <linux/sockios.h>
#include <linux/tcp.h>

#include <libwebsockets.h>

#include "gos_host.h"
#include "gos_metrics.h"
#include "gos_time.h"
#include "gos_viewer_proto.h"
#include "gos_ws.h"

#ifndef GOS_ASSETS_DIR
#define GOS_ASSETS_DIR "assets/web"
#endif
#ifndef GOS_VERSION
#define GOS_VERSION "0"
#endif

#define INBOX_MAX        4096              /* publisher -> service thread items */
#define WS_CHUNK         (64 * 1024)       /* larger messages go out in fragments of this */
#define WRITE_BUDGET     (512 * 1024)      /* bytes per writeable callback per viewer */
#define HTTP_CHUNK       (16 * 1024)       /* file bytes read per writeable callback */
#define MAX_TOKEN        1024
#define RATE_CLOSE_AFTER 1000              /* limited messages or frames in a row: close */
#define CTL_MIN_FRAME    6                 /* the smallest client frame: 2 + 4 (mask) */
#define CTL_SLACK        (2 * 4096 + 64)   /* frame bytes lws may hold before we see them */
#define CTL_CHECK_MS     20                /* looks at a viewer's byte count at most this often */
/* Every viewer's byte count is looked at this often even when lws calls us
 * for nothing (a flood of empty pings: lws answers none and tells us
 * nothing), so a flood is stopped within about this long. Two cheap
 * syscalls per viewer per scan. */
#define CTL_SCAN_MS      100
#define CLOSE_TRY_AGAIN  1013              /* RFC 6455 "Try Again Later" */
#define ACCEPT_BATCH     64                /* connections accepted per wake-up */
#define ACCEPT_RETRY_MS  100               /* out of descriptors: look again after */
#define EPISODE_END_MS   5000              /* a limit not hit for this long: episode over */

struct gos_ws_msg {
	_Atomic uint32_t refs;
	size_t len;
	unsigned char *data;           /* LWS_PRE bytes of headroom before it */
	unsigned char buf[];
};

enum item_kind { ITEM_DELTA, ITEM_SNAPSHOT, ITEM_SNAPSHOT_ALL };

struct inbox_item {
	enum item_kind kind;
	struct gos_ws_msg *msg;
};

enum viewer_state { V_WAITING, V_LIVE };

struct viewer {
	struct viewer *prev, *next;
	struct lws *wsi;
	bool counted;                  /* holds a viewer slot (not refused) */
	enum viewer_state state;
	bool requested;                /* asked for a snapshot since it began waiting */
	struct gos_ws_msg **q;         /* ring of queued messages; q[head] is in flight */
	uint32_t q_head, q_len, q_cap;
	size_t off;                    /* bytes of q[head] already written */
	bool ping_due;
	uint64_t alive_ms;             /* last pong or message from the viewer */
	double bucket;                 /* inbound rate limit tokens */
	uint64_t bucket_ms;
	uint32_t limited_in_row;
	bool write_asked;              /* we asked lws for a writeable callback */
	int fd;                        /* the socket: how many bytes came in (TCP_INFO) */
	uint64_t wire_base;            /* bytes taken from the socket before the upgrade */
	uint64_t data_wire;            /* bytes of the data frames (and pongs) we were given */
	uint64_t frame_len;            /* payload of the data frame in progress */
	uint64_t ctl_charged;          /* bytes charged to the bucket as control frames */
	uint64_t wire_ms;              /* last look at the byte count */
	unsigned char *rx;             /* the inbound message being assembled */
	size_t rx_len;
	int close_code;                /* nonzero: close on the next writeable */
	char close_reason[96];
	struct gos_ws_msg *reply;      /* a per-viewer reply (pong), sent before the queue */
	struct gos_viewer_viewport viewport;  /* the last one the viewer sent */
};

/* One HTTP response in flight: an answer built in memory (small: text,
 * /metrics, /health), or a file streamed from its descriptor one chunk per
 * writeable callback, so that a client that does not read holds at most a
 * chunk here (and lws at most one unsent chunk), never the file. */
struct http_sess {
	char *body;
	size_t len, off;
	bool file;                     /* fd is open (lws zeroes this struct: fd 0 is valid) */
	int fd;
	uint64_t left;                 /* file bytes still to send */
};

/* Every accepted connection, tied to its wsi as lws's opaque user data
 * (which stays through the upgrade to WebSocket): the budget it counts in.
 * A connection is HTTP until it becomes a counted viewer. */
enum conn_kind { CONN_HTTP, CONN_VIEWER };

struct conn {
	struct conn *prev, *next;      /* HTTP connections, least recently active first */
	struct lws *wsi;
	enum conn_kind kind;
	bool busy;                     /* a request being answered or upgraded */
	bool adopting, dead;           /* lws may destroy it inside the adoption call */
};

/* A limit being hit: logged when it starts and, with counts, when it ends. */
struct episode {
	bool on;
	uint64_t since_ms, last_ms, n1, n2;
};

struct stats {
	_Atomic uint64_t viewers, viewers_total, refused[GOS_WS_REFUSED_COUNT_], messages_sent, bytes_sent,
		drops, resyncs, snapshots_sent, published, inbound, inbound_ignored,
		inbound_limited, closed_oversize, closed_stale, http_requests, queued,
		max_queue_seen, http_conns, http_evicted, accept_no_fd, inbound_control, closed_rate;
};

struct gos_ws {
	struct gos_ws_opts opts;
	char host[256];
	char iface[INET6_ADDRSTRLEN];
	int port;
	char assets_real[PATH_MAX];
	int assets_fd;                 /* the folder (O_PATH), -1: none */
	bool no_openat2;               /* the kernel (or a seccomp filter) lacks openat2 */
	char token[MAX_TOKEN + 1];
	size_t token_len;
	char *origins;                 /* the allow list, copied */
	struct gos_host_allow *hosts;  /* the names we answer to (service thread) */
	uint64_t start_ms;

	struct lws_context *ctx;
	struct lws_vhost *vhost;       /* HTTP and WebSocket connections */
	int listen_fd;                 /* ours until lws adopts it (then lws closes it) */
	bool listen_adopted;
	pthread_t thread;
	bool thread_started;
	_Atomic bool stop;

	pthread_mutex_t lock;          /* guards the inbox */
	struct inbox_item *inbox;
	size_t inbox_len, inbox_cap;
	bool inbox_overflow;

	_Atomic uint64_t snapshot_requests;
	struct stats st;

	/* Service thread only. */
	struct viewer *viewers;
	struct gos_ws_msg *hello, *resync;
	lws_sorted_usec_list_t sul_ping, sul_accept, sul_tick;
	struct lws *listen_wsi;
	bool accept_paused;
	struct conn *http_head, *http_tail;
	uint32_t n_http;
	struct episode no_fd;          /* n1: failed accepts */
	struct episode http_full;      /* n1: idle connections closed, n2: refused */
	struct episode viewers_full;   /* n1: refused */
	unsigned char scratch[LWS_PRE + WS_CHUNK];
};

static void st_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t st_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- messages ---------------------------------------------------------- */

struct gos_ws_msg *gos_ws_msg_create(const char *bytes, size_t len)
{
	struct gos_ws_msg *m = malloc(sizeof(*m) + LWS_PRE + len + 1);
	if (!m)
		abort();
	atomic_init(&m->refs, 1);
	m->len = len;
	m->data = m->buf + LWS_PRE;
	memcpy(m->data, bytes, len);
	m->data[len] = '\0';
	return m;
}

static struct gos_ws_msg *msg_ref(struct gos_ws_msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void gos_ws_msg_unref(struct gos_ws_msg *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

/* ---- viewer queues (service thread) ------------------------------------- */

static struct gos_ws_msg *q_at(struct viewer *v, uint32_t i)
{
	return v->q[(v->q_head + i) % v->q_cap];
}

static bool q_push(struct gos_ws *ws, struct viewer *v, struct gos_ws_msg *m)
{
	uint32_t max = ws->opts.max_queued;
	if (v->q_len == v->q_cap) {
		if (v->q_cap >= max)
			return false;
		uint32_t cap = v->q_cap ? v->q_cap * 2 : 8;
		if (cap > max)
			cap = max;
		struct gos_ws_msg **q = malloc(cap * sizeof(*q));
		if (!q)
			abort();
		for (uint32_t i = 0; i < v->q_len; i++)
			q[i] = q_at(v, i);
		free(v->q);
		v->q = q;
		v->q_cap = cap;
		v->q_head = 0;
	}
	v->q[(v->q_head + v->q_len) % v->q_cap] = msg_ref(m);
	v->q_len++;
	st_add(&ws->st.queued, 1);
	if (v->q_len > st_get(&ws->st.max_queue_seen))
		atomic_store_explicit(&ws->st.max_queue_seen, v->q_len, memory_order_relaxed);
	return true;
}

static void q_pop(struct gos_ws *ws, struct viewer *v)
{
	gos_ws_msg_unref(v->q[v->q_head]);
	v->q_head = (v->q_head + 1) % v->q_cap;
	v->q_len--;
	v->off = 0;
	atomic_fetch_sub_explicit(&ws->st.queued, 1, memory_order_relaxed);
}

/* Drops every queued message except one already partly written (a frame
 * cannot be abandoned halfway). Returns how many were dropped. */
static uint32_t q_drop_backlog(struct gos_ws *ws, struct viewer *v)
{
	uint32_t keep = v->off > 0 ? 1 : 0, dropped = 0;
	while (v->q_len > keep) {
		uint32_t last = (v->q_head + v->q_len - 1) % v->q_cap;
		gos_ws_msg_unref(v->q[last]);
		v->q_len--;
		dropped++;
	}
	atomic_fetch_sub_explicit(&ws->st.queued, dropped, memory_order_relaxed);
	return dropped;
}

static void q_free(struct gos_ws *ws, struct viewer *v)
{
	while (v->q_len)
		q_pop(ws, v);
	free(v->q);
	v->q = NULL;
	v->q_cap = 0;
}

static void viewer_want_write(struct viewer *v)
{
	v->write_asked = true;
	lws_callback_on_writable(v->wsi);
}

/* The viewer fell behind (or the publisher lost track): drop its backlog,
 * tell it, and wait for a snapshot. */
static void viewer_resync(struct gos_ws *ws, struct viewer *v, uint32_t extra_dropped)
{
	st_add(&ws->st.drops, q_drop_backlog(ws, v) + extra_dropped);
	st_add(&ws->st.resyncs, 1);
	q_push(ws, v, ws->resync);
	v->state = V_WAITING;
	v->requested = false;
	viewer_want_write(v);
}

static void viewer_close(struct viewer *v, int code, const char *reason)
{
	if (v->close_code)
		return;
	v->close_code = code;
	snprintf(v->close_reason, sizeof(v->close_reason), "%s", reason);
	viewer_want_write(v);
}

/* A waiting viewer whose queue drained asks for a snapshot. */
static void viewer_maybe_request(struct gos_ws *ws, struct viewer *v)
{
	if (v->state == V_WAITING && !v->requested && v->q_len == 0 && !v->close_code) {
		v->requested = true;
		atomic_fetch_add_explicit(&ws->snapshot_requests, 1, memory_order_release);
	}
}

/* ---- inbox (service thread side) ---------------------------------------- */

static void deliver(struct gos_ws *ws, const struct inbox_item *it)
{
	for (struct viewer *v = ws->viewers; v; v = v->next) {
		if (!v->counted || v->close_code)
			continue;
		switch (it->kind) {
		case ITEM_DELTA:
			if (v->state != V_LIVE)
				break;
			if (v->q_len + 1 > ws->opts.backpressure || !q_push(ws, v, it->msg)) {
				viewer_resync(ws, v, 1);
				break;
			}
			viewer_want_write(v);
			break;
		case ITEM_SNAPSHOT:
			if (v->state != V_WAITING || !v->requested)
				break;
			q_push(ws, v, it->msg);
			v->state = V_LIVE;
			v->requested = false;
			st_add(&ws->st.snapshots_sent, 1);
			viewer_want_write(v);
			break;
		case ITEM_SNAPSHOT_ALL:
			if (v->state == V_LIVE || v->q_len > 0) {
				st_add(&ws->st.drops, q_drop_backlog(ws, v));
				st_add(&ws->st.resyncs, 1);
				q_push(ws, v, ws->resync);
			}
			q_push(ws, v, it->msg);
			v->state = V_LIVE;
			v->requested = false;
			st_add(&ws->st.snapshots_sent, 1);
			viewer_want_write(v);
			break;
		}
	}
}

static void drain_inbox(struct gos_ws *ws)
{
	pthread_mutex_lock(&ws->lock);
	struct inbox_item *items = ws->inbox;
	size_t n = ws->inbox_len;
	bool overflow = ws->inbox_overflow;
	ws->inbox = NULL;
	ws->inbox_len = ws->inbox_cap = 0;
	ws->inbox_overflow = false;
	pthread_mutex_unlock(&ws->lock);

	for (size_t i = 0; i < n; i++) {
		deliver(ws, &items[i]);
		gos_ws_msg_unref(items[i].msg);
	}
	free(items);
	if (overflow) {
		/* Deltas were lost between publisher and us: every live viewer's
		 * picture is suspect, so all of them start over. */
		for (struct viewer *v = ws->viewers; v; v = v->next)
			if (v->counted && !v->close_code && v->state == V_LIVE)
				viewer_resync(ws, v, 0);
	}
}

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
static void conn_busy(struct gos_ws *ws, struct lws *wsi, bool busy)
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
static void conn_gone(struct gos_ws *ws, struct lws *wsi)
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

static void episode_start(struct episode *e)
{
	if (!e->on)
		*e = (struct episode){.on = true, .since_ms = gos_now_ms()};
	e->last_ms = gos_now_ms();
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
			fprintf(stderr, "gos-ws: %u HTTP connections, the most allowed: closing the "
			        "oldest idle ones, answering 503 when none is idle\n", ws->opts.max_http);
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
			fprintf(stderr, "gos-ws: %u HTTP connections, the most allowed, all busy: "
			        "answering 503\n", ws->opts.max_http);
		ws->http_full.n2++;
		st_add(&ws->st.refused[GOS_WS_REFUSED_HTTP_FULL], 1);
		send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);  /* best effort */
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
	ad.type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP;
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
		fprintf(stderr, "gos-ws: cannot accept connections: %s (%u HTTP connections and "
		        "%llu viewers open here); trying again every %d ms\n", strerror(err),
		        ws->n_http, (unsigned long long)st_get(&ws->st.viewers), ACCEPT_RETRY_MS);
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
			fprintf(stderr, "gos-ws: accepting connections again after %.1f s (%llu accepts "
			        "failed)\n", (double)(gos_now_ms() - ws->no_fd.since_ms) / 1000.0,
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

/* ---- auth, origin, paths ------------------------------------------------ */

static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	/* Constant time in the secret's length: every byte of b is compared. */
	volatile unsigned char diff = (unsigned char)(alen != blen);
	for (size_t i = 0; i < blen; i++) {
		unsigned char x = i < alen ? (unsigned char)a[i] : 0;
		diff |= x ^ (unsigned char)b[i];
	}
	return diff == 0;
}

static int hdr(struct lws *wsi, enum lws_token_indexes h, char *buf, int len)
{
	buf[0] = '\0';
	if (lws_hdr_total_length(wsi, h) <= 0 || lws_hdr_total_length(wsi, h) >= len)
		return -1;
	return lws_hdr_copy(wsi, buf, len, h);
}

static bool token_ok(struct gos_ws *ws, const char *cand, size_t len)
{
	return ct_equal(cand, len, ws->token, ws->token_len);
}

/* Where the request carried the token: 0 nowhere/wrong, 1 header or cookie,
 * 2 the ?token= argument. */
static int authorized(struct gos_ws *ws, struct lws *wsi)
{
	char buf[MAX_TOKEN + 64];
	if (!ws->token_len)
		return 1;
	if (hdr(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, buf, sizeof(buf)) > 0 &&
	    !strncasecmp(buf, "Bearer ", 7)) {
		const char *t = buf + 7;
		while (*t == ' ')
			t++;
		if (token_ok(ws, t, strlen(t)))
			return 1;
	}
	const char *arg = lws_get_urlarg_by_name(wsi, "token=", buf, (int)sizeof(buf));
	if (arg && token_ok(ws, arg, strlen(arg)))
		return 2;
	if (hdr(wsi, WSI_TOKEN_HTTP_COOKIE, buf, sizeof(buf)) > 0) {
		for (char *p = buf; (p = strstr(p, "gos_token=")) != NULL; p += 10) {
			if (p != buf && p[-1] != ' ' && p[-1] != ';')
				continue;
			const char *v = p + 10;
			size_t n = strcspn(v, ";");
			if (token_ok(ws, v, n))
				return 1;
		}
	}
	return 0;
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
	if (s->file)
		close(s->fd);
	s->file = false;
}

/* ---- HTTP --------------------------------------------------------------- */

/* The answer is out: the connection is idle again (keep-alive). */
static int http_complete(struct lws *wsi, struct http_sess *s)
{
	http_sess_clear(s);
	conn_busy(lws_context_user(lws_get_context(wsi)), wsi, false);
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Writes the status and headers of a response of len bytes; then either
 * completes the transaction (len 0) or asks for writeable callbacks. */
static int http_head(struct lws *wsi, struct http_sess *s, unsigned int code,
                     const char *mime, uint64_t len, const char *cookie)
{
	unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
		*end = buf + sizeof(buf) - 1;
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
static int refuse_and_close(struct lws *wsi, unsigned int code, const char *status,
                            const char *text)
{
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

static void ws_metrics(struct gos_ws *ws, struct gos_buf *t)
{
	static const struct { const char *name, *type, *help; size_t off; } m[] = {
#define M(n, ty, h, f) {n, ty, h, offsetof(struct stats, f)}
		M("gos_ws_viewers", "gauge", "Browser viewers connected now.", viewers),
		M("gos_ws_viewers_accepted_total", "counter", "Viewers accepted since start.", viewers_total),
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
	gos_metrics_family(t, "gos_uptime_seconds", "gauge", "Seconds since the server started.");
	gos_metrics_sample(t, "gos_uptime_seconds", NULL, (double)(gos_now_ms() - ws->start_ms) / 1000.0);
}

static int http_request(struct gos_ws *ws, struct lws *wsi, struct http_sess *s,
                        const char *uri)
{
	st_add(&ws->st.http_requests, 1);
	conn_busy(ws, wsi, true);
	const char *bad = framing_error(wsi);
	if (bad) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_BAD_REQUEST], 1);
		return refuse_and_close(wsi, 400, "Bad Request", bad);
	}
	if (!host_ok(ws, wsi)) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_HOST], 1);
		return http_text(wsi, s, 403, HOST_REFUSED);
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return refuse_and_close(wsi, 405, "Method Not Allowed", "gos: only GET is served here");

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

	int auth = authorized(ws, wsi);
	if (!auth) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_AUTH], 1);
		return http_text(wsi, s, 401, "gos: this server needs its token "
		                 "(Authorization: Bearer TOKEN, or ?token=TOKEN)");
	}

	if (!strcmp(uri, "/metrics")) {
		struct gos_buf t = {0};
		if (ws->opts.metrics)
			ws->opts.metrics(ws->opts.cb_ctx, &t);
		ws_metrics(ws, &t);
		return http_respond(wsi, s, 200, "text/plain; version=0.0.4; charset=utf-8",
		                    t.data, t.len, NULL);
	}
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
	if (auth == 2)
		snprintf(cookie, sizeof(cookie), "gos_token=%s; Path=/; HttpOnly; SameSite=Strict",
		         ws->token);
	return http_file(wsi, s, mime, fd, (uint64_t)sb.st_size, auth == 2 ? cookie : NULL);
}

/* One chunk per call, and only when lws has sent everything before it: lws
 * copies aside what the socket does not take, so that copy stays under one
 * chunk (tx_packet_size) per connection. */
static int http_writeable(struct lws *wsi, struct http_sess *s)
{
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
	if (!last) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	return http_complete(wsi, s);
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user,
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
		 * would bind the upgrade here, past every check of ws_filter. */
		st_add(&ws->st.refused[GOS_WS_REFUSED_PATH], 1);
		return refuse_and_close(wsi, 404, "Not Found", "gos: the WebSocket endpoint is /ws, "
		                        "subprotocol " GOS_WS_PROTOCOL);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (s)
			http_sess_clear(s);
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		conn_gone(ws, wsi);
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- WebSocket ---------------------------------------------------------- */

/* Before the upgrade: path, token and Origin. */
static int ws_filter(struct gos_ws *ws, struct lws *wsi)
{
	char uri[256];
	conn_busy(ws, wsi, true);
	const char *bad = framing_error(wsi);
	if (bad) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_BAD_REQUEST], 1);
		return refuse_and_close(wsi, 400, "Bad Request", bad);
	}
	if (!host_ok(ws, wsi)) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_HOST], 1);
		return refuse_and_close(wsi, 403, "Forbidden", HOST_REFUSED);
	}
	if (hdr(wsi, WSI_TOKEN_GET_URI, uri, sizeof(uri)) < 0 || strcmp(uri, "/ws")) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_PATH], 1);
		return refuse_and_close(wsi, 404, "Not Found", "gos: the WebSocket endpoint is /ws");
	}
	if (!authorized(ws, wsi)) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_AUTH], 1);
		return refuse_and_close(wsi, 401, "Unauthorized", "gos: this server needs its token "
		                      "(Authorization: Bearer TOKEN, or ?token=TOKEN)");
	}
	if (!origin_ok(ws, wsi)) {
		st_add(&ws->st.refused[GOS_WS_REFUSED_ORIGIN], 1);
		return refuse_and_close(wsi, 403, "Forbidden",
		                      "gos: this Origin is not allowed (see --allow-origin)");
	}
	return 0;
}

/* Takes n tokens from the viewer's inbound bucket (rx_rate a second,
 * rx_burst deep): whole messages, further fragments of a message and
 * control frames all pay. Returns how many were over the limit; after
 * RATE_CLOSE_AFTER over in a row the viewer is closed (1008) and no longer
 * read, so that a flood costs nothing while the close goes out. */
static uint64_t rx_charge(struct gos_ws *ws, struct viewer *v, uint64_t n)
{
	uint64_t now = gos_now_ms();
	double rate = ws->opts.rx_rate, burst = ws->opts.rx_burst;
	v->bucket += (double)(now - v->bucket_ms) * rate / 1000.0;
	if (v->bucket > burst)
		v->bucket = burst;
	v->bucket_ms = now;
	uint64_t ok = v->bucket >= (double)n ? n : (uint64_t)v->bucket;
	v->bucket -= (double)ok;
	uint64_t over = n - ok;
	if (!over) {
		v->limited_in_row = 0;
		return 0;
	}
	st_add(&ws->st.inbound_limited, over);
	v->limited_in_row = over >= RATE_CLOSE_AFTER ? RATE_CLOSE_AFTER
	                                             : v->limited_in_row + (uint32_t)over;
	if (v->limited_in_row >= RATE_CLOSE_AFTER && !v->close_code) {
		st_add(&ws->st.closed_rate, 1);
		viewer_close(v, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit exceeded");
		lws_rx_flow_control(v->wsi, 0);
		lws_set_timeout(v->wsi, PENDING_TIMEOUT_CLOSE_SEND, 1);
	}
	return over;
}

/* Bytes the peer sent that have left the socket for lws (Linux 4.1+). */
static bool wire_bytes(int fd, uint64_t *out)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int inq = 0;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received) ||
	    ioctl(fd, SIOCINQ, &inq) || inq < 0 || (uint64_t)inq > ti.tcpi_bytes_received)
		return false;
	*out = ti.tcpi_bytes_received - (uint64_t)inq;
	return true;
}

/* The wire size of a client's data frame with this payload. */
static uint64_t frame_wire(uint64_t payload)
{
	return payload + 2 + 4 + (payload >= 65536 ? 8 : payload >= 126 ? 2 : 0);
}

/* Control frames. lws answers pings (and swallows empty pongs and the
 * close handshake) inside its parser and tells us nothing, so a ping flood
 * would cost no token. But every byte the viewer sent reaches us as data
 * frames or pongs except those: the socket's byte count (TCP_INFO) minus
 * what we were given is control frames, at least CTL_MIN_FRAME bytes each.
 * That many frames (an upper bound) are charged to the bucket, once past
 * CTL_SLACK, the bytes lws may hold of a frame not yet handed to us. */
static void viewer_check_control(struct gos_ws *ws, struct viewer *v)
{
	uint64_t now = gos_now_ms(), wire;
	if (now - v->wire_ms < CTL_CHECK_MS || v->close_code || v->fd < 0)
		return;
	v->wire_ms = now;
	if (!wire_bytes(v->fd, &wire) || wire < v->wire_base)
		return;
	uint64_t got = wire - v->wire_base, known = v->data_wire + CTL_SLACK + v->ctl_charged;
	if (got < known + CTL_MIN_FRAME)
		return;
	uint64_t frames = (got - known) / CTL_MIN_FRAME;
	v->ctl_charged += frames * CTL_MIN_FRAME;
	st_add(&ws->st.inbound_control, frames);
	rx_charge(ws, v, frames);
}

static void viewer_handle(struct gos_ws *ws, struct viewer *v, const char *msg, size_t len)
{
	if (rx_charge(ws, v, 1))
		return;  /* over the limit: dropped */

	struct gos_viewer_in in;
	switch (gos_viewer_parse(msg, len, &in)) {
	case GOS_VIEWER_IN_VIEWPORT:
		gos_viewer_viewport_update(&v->viewport, &in);
		break;
	case GOS_VIEWER_IN_PING: {
		/* Lets a viewer measure its round trip: the reply echoes `t`. */
		struct gos_buf out = {0};
		gos_viewer_pong(&out, in.ping_t);
		gos_ws_msg_unref(v->reply);
		v->reply = gos_ws_msg_create(out.data, out.len);
		gos_buf_finish(&out);
		viewer_want_write(v);
		break;
	}
	case GOS_VIEWER_IN_IGNORED:
		st_add(&ws->st.inbound_ignored, 1);
		break;
	}
}

static int viewer_receive(struct gos_ws *ws, struct viewer *v, struct lws *wsi,
                          const void *in, size_t len)
{
	v->alive_ms = gos_now_ms();
	v->frame_len += len;
	bool frame_done = !lws_remaining_packet_payload(wsi);
	if (frame_done) {
		v->data_wire += frame_wire(v->frame_len);
		v->frame_len = 0;
	}
	if (v->close_code)
		return 0;
	if (v->rx_len + len > GOS_WS_MAX_INBOUND) {
		st_add(&ws->st.closed_oversize, 1);
		free(v->rx);
		v->rx = NULL;
		v->rx_len = 0;
		static const char r[] = "message over 64 KiB";
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
		                 (unsigned char *)r, sizeof(r) - 1);
		return -1;
	}
	if (!v->rx) {
		v->rx = malloc(GOS_WS_MAX_INBOUND);
		if (!v->rx)
			abort();
	}
	memcpy(v->rx + v->rx_len, in, len);
	v->rx_len += len;
	viewer_check_control(ws, v);
	if (!frame_done)
		return 0;
	if (!lws_is_final_fragment(wsi)) {
		rx_charge(ws, v, 1);  /* a fragment is a frame to pay for too */
		return 0;
	}
	st_add(&ws->st.inbound, 1);
	viewer_handle(ws, v, (const char *)v->rx, v->rx_len);
	v->rx_len = 0;
	return 0;
}

static int viewer_writeable(struct gos_ws *ws, struct viewer *v, struct lws *wsi)
{
	/* Unasked, lws calls here after it sent a pong of its own: look at
	 * what the viewer sends. */
	if (!v->write_asked)
		viewer_check_control(ws, v);
	v->write_asked = false;
	if (v->close_code) {
		lws_close_reason(wsi, (enum lws_close_status)v->close_code,
		                 (unsigned char *)v->close_reason, strlen(v->close_reason));
		return -1;
	}
	size_t budget = WRITE_BUDGET;
	if (v->reply && v->off == 0 && !lws_partial_buffered(wsi)) {
		struct gos_ws_msg *m = v->reply;
		if (lws_write(wsi, m->data, m->len, LWS_WRITE_TEXT) < (int)m->len)
			return -1;
		v->reply = NULL;
		gos_ws_msg_unref(m);
	}
	/* lws only calls us once what it buffered is out; after a write it
	 * could not finish, stop (lws_partial_buffered costs no syscall, unlike
	 * lws_send_pipe_choked). */
	while (v->q_len && budget && !lws_partial_buffered(wsi)) {
		struct gos_ws_msg *m = v->q[v->q_head];
		if (v->off == 0 && m->len <= WS_CHUNK) {
			/* Whole message in one frame, straight from the shared bytes:
			 * lws writes the frame header into the headroom, identical for
			 * every viewer, and copies aside what the socket does not take. */
			if (lws_write(wsi, m->data, m->len, LWS_WRITE_TEXT) < (int)m->len)
				return -1;
			v->off = m->len;
		} else {
			size_t n = m->len - v->off;
			if (n > WS_CHUNK)
				n = WS_CHUNK;
			memcpy(ws->scratch + LWS_PRE, m->data + v->off, n);
			int flags = lws_write_ws_flags(LWS_WRITE_TEXT, v->off == 0,
			                               v->off + n == m->len);
			if (lws_write(wsi, ws->scratch + LWS_PRE, n, (enum lws_write_protocol)flags) < (int)n)
				return -1;
			v->off += n;
		}
		budget = budget > WS_CHUNK ? budget - WS_CHUNK : 0;
		if (v->off == m->len) {
			st_add(&ws->st.messages_sent, 1);
			st_add(&ws->st.bytes_sent, m->len);
			q_pop(ws, v);
		}
	}
	if (v->ping_due && v->off == 0 && !lws_partial_buffered(wsi)) {
		/* lws swallows empty pongs without telling us: the ping carries
		 * a payload, which the pong echoes. */
		unsigned char ping[LWS_PRE + 8];
		memcpy(ping + LWS_PRE, "gos-ping", 8);
		if (lws_write(wsi, ping + LWS_PRE, 8, LWS_WRITE_PING) < 8)
			return -1;
		v->ping_due = false;
	}
	viewer_maybe_request(ws, v);
	if (v->q_len || v->ping_due || v->reply)
		viewer_want_write(v);
	return 0;
}

static void ping_pass(lws_sorted_usec_list_t *sul)
{
	struct gos_ws *ws = lws_container_of(sul, struct gos_ws, sul_ping);
	uint64_t now = gos_now_ms();
	for (struct viewer *v = ws->viewers; v; v = v->next) {
		if (v->close_code)
			continue;
		if (now - v->alive_ms > ws->opts.stale_timeout_ms) {
			st_add(&ws->st.closed_stale, 1);
			viewer_close(v, LWS_CLOSE_STATUS_GOINGAWAY, "stale: no pong");
			/* A viewer that reads nothing never becomes writeable, so the
			 * close cannot wait for it: a timeout of 1 s hangs it up. */
			lws_set_timeout(v->wsi, PENDING_TIMEOUT_CLOSE_SEND, 1);
			continue;
		}
		v->ping_due = true;
		viewer_want_write(v);
	}
	lws_sul_schedule(ws->ctx, 0, &ws->sul_ping, ping_pass,
	                 (lws_usec_t)ws->opts.ping_interval_ms * LWS_US_PER_MS);
}

static int cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                 void *in, size_t len)
{
	struct gos_ws *ws = lws_context_user(lws_get_context(wsi));
	struct viewer *v = user;
	switch (reason) {
	case LWS_CALLBACK_PROTOCOL_INIT:
		lws_sul_schedule(lws_get_context(wsi), 0, &ws->sul_ping, ping_pass,
		                 (lws_usec_t)ws->opts.ping_interval_ms * LWS_US_PER_MS);
		break;
	case LWS_CALLBACK_PROTOCOL_DESTROY:
		lws_sul_cancel(&ws->sul_ping);
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		drain_inbox(ws);
		break;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return ws_filter(ws, wsi);
	case LWS_CALLBACK_ESTABLISHED:
		memset(v, 0, sizeof(*v));
		v->wsi = wsi;
		v->fd = lws_get_socket_fd(wsi);
		if (v->fd < 0 || !wire_bytes(v->fd, &v->wire_base))
			v->fd = -1;  /* no byte counts here: messages are limited all the same */
		v->alive_ms = v->bucket_ms = gos_now_ms();
		v->bucket = ws->opts.rx_burst;
		v->next = ws->viewers;
		if (ws->viewers)
			ws->viewers->prev = v;
		ws->viewers = v;
		if (st_get(&ws->st.viewers) >= ws->opts.max_viewers) {
			char r[96];
			snprintf(r, sizeof(r), "too many viewers (max %u)", ws->opts.max_viewers);
			st_add(&ws->st.refused[GOS_WS_REFUSED_FULL], 1);
			if (!ws->viewers_full.on)
				fprintf(stderr, "gos-ws: %u viewers, the most allowed: refusing new ones "
				        "(close 1013)\n", ws->opts.max_viewers);
			episode_start(&ws->viewers_full);
			ws->viewers_full.n1++;
			viewer_close(v, CLOSE_TRY_AGAIN, r);
			break;
		}
		v->counted = true;
		st_add(&ws->st.viewers, 1);
		struct conn *c = lws_get_opaque_user_data(wsi);
		if (c && c->kind == CONN_HTTP) {
			http_uncount(ws, c);  /* from the HTTP budget to the viewers' */
			c->kind = CONN_VIEWER;
		}
		st_add(&ws->st.viewers_total, 1);
		v->state = V_WAITING;
		q_push(ws, v, ws->hello);
		viewer_want_write(v);
		break;
	case LWS_CALLBACK_RECEIVE:
		return viewer_receive(ws, v, wsi, in, len);
	case LWS_CALLBACK_RECEIVE_PONG:
		v->alive_ms = gos_now_ms();
		v->data_wire += CTL_MIN_FRAME + len;  /* seen: not charged twice */
		rx_charge(ws, v, 1);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return viewer_writeable(ws, v, wsi);
	case LWS_CALLBACK_CLOSED:
		if (!v || !v->wsi)
			break;
		if (v->prev)
			v->prev->next = v->next;
		else
			ws->viewers = v->next;
		if (v->next)
			v->next->prev = v->prev;
		if (v->counted)
			atomic_fetch_sub_explicit(&ws->st.viewers, 1, memory_order_relaxed);
		q_free(ws, v);
		free(v->rx);
		gos_ws_msg_unref(v->reply);
		v->wsi = NULL;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	/* tx_packet_size: lws sends at most this per send() and copies aside the
	 * rest (with 0 it would be the rx buffer size: 4 KiB at a time). */
	{"http", cb_http, sizeof(struct http_sess), 0, 0, NULL, HTTP_CHUNK + 1024},
	{GOS_WS_PROTOCOL, cb_ws, sizeof(struct viewer), 4096, 0, NULL, WS_CHUNK + 64},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The listening socket, adopted as a raw descriptor on a vhost of its own
 * (so that no client can name its protocol as a WebSocket subprotocol). */
static int cb_listen(struct lws *wsi, enum lws_callback_reasons reason, void *user,
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

static const struct lws_protocols listen_protocols[] = {
	{"gos-listen", cb_listen, 0, 0, 0, NULL, 0},
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
	while (!atomic_load(&ws->stop))
		if (lws_service(ws->ctx, 0) < 0)
			break;
	return NULL;
}

/* lws's log lines, collapsed: a line that comes again (numbers aside)
 * within a minute is counted, not printed; the count is printed when
 * another line comes or (tick) when the run has stopped for a second. A
 * failure that repeats thousands of times a second costs two lines. */
static struct {
	pthread_mutex_t lock;
	char last[256];                /* the line without its digits */
	uint64_t repeats, first_ms, last_ms;
} lwslog = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void lwslog_flush(void)
{
	if (lwslog.repeats)
		fprintf(stderr, "gos-ws (libwebsockets): the line above came %llu more times in "
		        "%.1f s\n", (unsigned long long)lwslog.repeats,
		        (double)(lwslog.last_ms - lwslog.first_ms) / 1000.0);
	lwslog.repeats = 0;
}

static void lws_log(int level, const char *line)
{
	char norm[sizeof(lwslog.last)];
	size_t n = 0;
	(void)level;
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
		fprintf(stderr, "gos-ws (libwebsockets): %s", line);
		memcpy(lwslog.last, norm, n + 1);
		lwslog.first_ms = lwslog.last_ms = now;
	}
	pthread_mutex_unlock(&lwslog.lock);
}

/* Every CTL_SCAN_MS: viewers that sent only control frames since the last
 * look, and the ends of log runs and of limit episodes. */
static void tick(lws_sorted_usec_list_t *sul)
{
	struct gos_ws *ws = lws_container_of(sul, struct gos_ws, sul_tick);
	uint64_t now = gos_now_ms();
	pthread_mutex_lock(&lwslog.lock);
	if (lwslog.repeats && now - lwslog.last_ms >= 1000)
		lwslog_flush();
	pthread_mutex_unlock(&lwslog.lock);
	/* Viewers that sent only control frames since the last look. */
	for (struct viewer *v = ws->viewers; v; v = v->next)
		if (now - v->wire_ms >= CTL_SCAN_MS)
			viewer_check_control(ws, v);
	if (ws->http_full.on && now - ws->http_full.last_ms >= EPISODE_END_MS) {
		fprintf(stderr, "gos-ws: HTTP connections were at the limit (%u) for %.1f s: %llu idle "
		        "ones closed, %llu refused with 503\n", ws->opts.max_http,
		        (double)(ws->http_full.last_ms - ws->http_full.since_ms) / 1000.0,
		        (unsigned long long)ws->http_full.n1, (unsigned long long)ws->http_full.n2);
		ws->http_full.on = false;
	}
	if (ws->viewers_full.on && now - ws->viewers_full.last_ms >= EPISODE_END_MS) {
		fprintf(stderr, "gos-ws: viewers were at the limit (%u) for %.1f s: %llu refused\n",
		        ws->opts.max_viewers,
		        (double)(ws->viewers_full.last_ms - ws->viewers_full.since_ms) / 1000.0,
		        (unsigned long long)ws->viewers_full.n1);
		ws->viewers_full.on = false;
	}
	lws_sul_schedule(ws->ctx, 0, &ws->sul_tick, tick, CTL_SCAN_MS * LWS_US_PER_MS);
}

static bool parse_listen(struct gos_ws *ws, const char *spec, char *err, size_t errlen)
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
	o->allow_origins = NULL;
	o->allow_hosts = NULL;
	pthread_mutex_init(&ws->lock, NULL);
	ws->start_ms = gos_now_ms();

	if (!parse_listen(ws, opts->listen ? opts->listen : GOS_WS_DEFAULT_LISTEN, err, errlen))
		goto error;
	if (opts->auth_token_file && !read_token_file(ws, opts->auth_token_file, err, errlen))
		goto error;
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
		fprintf(stderr, "gos-ws: web viewer folder %s not found (%s); / will answer 404\n",
		        assets, strerror(errno));
		ws->assets_real[0] = '\0';
	} else {
		ws->assets_fd = open(ws->assets_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}

	struct gos_buf text = {0};
	gos_viewer_hello(&text);
	ws->hello = gos_ws_msg_create(text.data, text.len);
	gos_buf_clear(&text);
	gos_viewer_resync(&text);
	ws->resync = gos_ws_msg_create(text.data, text.len);
	gos_buf_finish(&text);

	lws_set_log_level(LLL_ERR, lws_log);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.user = ws;
	info.timeout_secs = 30;
	ws->ctx = lws_create_context(&info);
	if (ws->ctx) {
		info.port = CONTEXT_PORT_NO_LISTEN_SERVER;  /* connections come from accept_ready */
		info.protocols = protocols;
		info.pvo = &pvo;
		info.vhost_name = "gos";
		ws->vhost = lws_create_vhost(ws->ctx, &info);
		info.port = CONTEXT_PORT_NO_LISTEN;
		info.protocols = listen_protocols;
		info.pvo = NULL;
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
	lws_sul_schedule(ws->ctx, 0, &ws->sul_tick, tick, CTL_SCAN_MS * LWS_US_PER_MS);
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
	gos_ws_msg_unref(ws->resync);
	free(ws->origins);
	gos_host_allow_destroy(ws->hosts);
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

static void inbox_put(struct gos_ws *ws, enum item_kind kind, struct gos_ws_msg *msg)
{
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
	ws->inbox[ws->inbox_len++] = (struct inbox_item){kind, msg};
	pthread_mutex_unlock(&ws->lock);
	lws_cancel_service(ws->ctx);
}

void gos_ws_publish(struct gos_ws *ws, struct gos_ws_msg *msg)
{
	st_add(&ws->st.published, 1);
	inbox_put(ws, ITEM_DELTA, msg);
}

void gos_ws_publish_snapshot(struct gos_ws *ws, struct gos_ws_msg *msg, bool all)
{
	inbox_put(ws, all ? ITEM_SNAPSHOT_ALL : ITEM_SNAPSHOT, msg);
}

uint64_t gos_ws_snapshot_requests(const struct gos_ws *ws)
{
	return atomic_load_explicit(&ws->snapshot_requests, memory_order_acquire);
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
	static char installed[PATH_MAX + 32];
	struct stat sb;
	if (!stat(GOS_ASSETS_DIR, &sb) && S_ISDIR(sb.st_mode))
		return GOS_ASSETS_DIR;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);  /* Linux */
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(installed, sizeof(installed), "%s/../share/gos/web", exe);
			if (!stat(installed, &sb) && S_ISDIR(sb.st_mode))
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
	case GOS_WS_REFUSED_COUNT_: break;
	}
	return "unknown";
}
