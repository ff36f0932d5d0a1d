/* gos_ws's internals, shared by the files of the module (see gos_ws.h for
 * what it does; nothing here is public):
 *   gos_ws.c     create/stop/destroy, the service thread, messages, the
 *                publishers' inbox, stats, lws's protocol tables
 *   ws_accept.c  the listening socket, accepting and adopting connections
 *                into their budgets, limit episodes, lws's log collapsed,
 *                the service thread's periodic tick
 *   ws_http.c    HTTP: Host, token and Origin checks, request-smuggling
 *                refusals, files, /metrics and /health, the checks before
 *                a WebSocket upgrade
 *   ws_viewer.c  viewers: queues and backpressure, writing, receiving,
 *                inbound rate limits (control frames too), the ping pass
 *   ws_users.c   named users: the table in force, the accounts that keep
 *                their counters across reloads, /metrics by user, the
 *                access log's lines
 *
 * Threads: everything declared here is for the service thread only, which
 * owns the lws context, the connections and the viewers, except where a
 * declaration says otherwise; struct gos_ws says which fields other
 * threads touch (the inbox under its lock, the atomics). */
#ifndef GOS_WS_INTERNAL_H
#define GOS_WS_INTERNAL_H

#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libwebsockets.h>

#include "gos_host.h"
#include "gos_users.h"
#include "gos_viewer_proto.h"
#include "gos_ws.h"

#define WS_CHUNK         (64 * 1024)       /* larger messages go out in fragments of this */
#define WS_RX_BUF        4096              /* lws's receive buffer per viewer (rx_buffer_size) */
/* With permessage-deflate, messages go to the compressor in pieces of at
 * most WS_DEFLATE_CHUNK bytes, and each lws_write() must compress to less
 * than lws's output buffer (2^WS_DEFLATE_OUT_BITS bytes), or lws would
 * make the next write part of the same message, or abort (gos_ws.c). zlib's output
 * for one call is at most the input's fixed-Huffman size (10.34 bits per
 * byte) plus the symbols it held back, at most 2^(memLevel+6) of 31 bits
 * each, plus a flush: 2646 + 3968 + 10 bytes, under 8192. */
#define WS_DEFLATE_CHUNK    2048
#define WS_DEFLATE_OUT_BITS 13
#define HTTP_CHUNK       (16 * 1024)       /* file bytes read per writeable callback */
#define MAX_TOKEN        1024
/* Every viewer's byte count is looked at this often even when lws calls us
 * for nothing (a flood of empty pings: lws answers none and tells us
 * nothing), so a flood is stopped within about this long; a viewer that
 * sent nothing at its last looks is looked at less often, down to every
 * CTL_SCAN_MAX_MS (idle viewers are most of them: two syscalls each per
 * look). */
#define CTL_SCAN_MS      100
#define CTL_SCAN_MAX_MS  1000              /* a quiet viewer: looked at this often */

/* Immutable once published, shared by every viewer queue holding it, but
 * for written: set by the first viewer write (ws_msg_written). */
struct gos_ws_msg {
	_Atomic uint32_t refs;
	atomic_bool written;
	bool binary;                   /* a binary frame (gos.v2), else text */
	uint64_t mark;                 /* gos_ws_msg_mark; 0: none */
	size_t len;
	unsigned char *data;           /* LWS_PRE bytes of headroom before it */
	unsigned char buf[];
};

/* What a publisher handed over, waiting for the service thread. */
enum item_kind {
	ITEM_DELTA, ITEM_SNAPSHOT, ITEM_SNAPSHOT_ALL,
	ITEM_TIMELINE,                 /* every viewer, and kept for new ones */
	ITEM_VIEWER,                   /* one viewer (gos_ws_viewer_send) */
	ITEM_V2,                       /* a gos.v2 tick message, routed */
	ITEM_SNAPSHOT_V2, ITEM_SNAPSHOT_ALL_V2,
	ITEM_REGION,                   /* one gos.v2 viewer's region answer */
};

struct inbox_item {
	enum item_kind kind;
	struct gos_ws_msg *msg;
	uint64_t viewer, gen;          /* ITEM_VIEWER */
	enum gos_ws_send send;         /* ITEM_VIEWER */
	enum gos_ws_v2_route route;    /* ITEM_V2, with a (a level) or rect */
	int32_t a;                     /* ITEM_SNAPSHOT*_V2: the overview level */
	struct gos_v2_rect rect;
	struct gos_ws_region region;   /* ITEM_REGION */
};

/* V_PRIVATE: seeking or playing, takes only what is sent to it alone. */
enum viewer_state { V_WAITING, V_LIVE, V_PRIVATE };

/* A user as the service thread counts it: made when a users table first
 * names it, kept (with its counters) until the server is freed, so that
 * connections may point at it across reloads. present: the table in force
 * names it (role, rate and token are its line's there). */
struct ws_account {
	struct ws_account *next;
	char name[GOS_USER_NAME_MAX + 1];
	char token[GOS_USER_TOKEN_MAX + 1];   /* for the cookie after ?token= */
	enum gos_role role;
	bool present;
	uint32_t rate, burst;          /* all its viewers' messages together; 0: no limit */
	double bucket;
	uint64_t bucket_ms;
	uint64_t requests, viewers, inbound, limited, forbidden, bytes_sent;
};

/* A viewer: lws's per-connection data of the gos.v1 protocol (ws_viewer.c),
 * linked in ws->viewers. */
struct viewer {
	struct viewer *prev, *next;
	struct lws *wsi;
	bool counted;                  /* holds a viewer slot (not refused) */
	uint64_t id;                   /* for gos_ws_viewer_send */
	uint64_t gen;                  /* grows each time it goes back to live */
	bool had_snapshot;             /* the timeline follows its first one */
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
	bool plain;                    /* no extension offered, no TLS: frames are written
	                                * straight to the socket (viewer_send) */
	struct viewer *flush_next;     /* in ws->flush while listed */
	bool flush_listed;
	uint32_t wire_every_ms;        /* how often the scan looks at the byte count */
	uint64_t wire_seen;            /* data_wire + ctl_charged after the last scan */
	int fd;                        /* the socket: how many bytes came in (TCP_INFO) */
	int sock;                      /* the socket, watched by ws_rxguard (-1: not) */
	uint64_t wire_base;            /* bytes taken from the socket before the upgrade */
	uint64_t data_wire;            /* bytes of the data frames (and pongs) we were given */
	uint64_t frame_len;            /* payload of the data frame in progress (with
	                                * deflate: of the message, inflated) */
	bool deflate;                  /* permessage-deflate is on */
	bool in_msg;                   /* with deflate: inside a message */
	uint64_t msg_wire_max;         /* with deflate: most wire bytes its payload can have */
	uint64_t ctl_charged;          /* bytes charged to the bucket as control frames */
	uint64_t wire_ms;              /* last look at the byte count */
	unsigned char *rx;             /* the inbound message being assembled */
	size_t rx_len;
	int close_code;                /* nonzero: close on the next writeable */
	char close_reason[96];
	struct gos_ws_msg *reply;      /* a per-viewer reply (pong), sent before the queue */
	struct gos_viewer_viewport viewport;  /* the last one the viewer sent */
	bool v2;                       /* speaks gos.v2 (binary, viewport-scoped) */
	unsigned vp_bits;              /* GOS_VIEWER_VP_* fields ever sent */
	bool has_viewport;             /* v2: a whole viewport arrived */
	uint64_t view_gen;             /* v2: grows with each live snapshot */
	uint64_t told_gen;             /* v2: the view_gen the broadcaster last heard of */
	struct gos_ws_region held;     /* v2: what it holds (routing) */
	struct ws_account *account;    /* who it is (NULL: no auth) */
	uint64_t limited_ms;           /* last error for its user's rate limit */
	uint64_t start_ms;             /* the access log's duration */
	double start_wall;             /* ... and time */
	uint64_t bytes_out, bytes_in;  /* payload bytes, for the access log */
	char addr[64];                 /* the peer's address */
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
	void *stream;                  /* a gos_ws_stream handle (GET /recording, /export) */
	const struct gos_ws_stream *st;  /* whose handle it is */
	unsigned char *sbuf;           /* its chunk buffer */
	/* The request in flight, for the access log. */
	bool logging;                  /* a request started and is not yet logged */
	unsigned status;
	uint64_t bytes, start_ms;
	double start_wall;
	struct ws_account *account;
	char path[256], addr[64];
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
	struct ws_account *account;    /* who asked for the upgrade (ws_upgrade_filter) */
};

/* A limit being hit: logged when it starts and, with counts, when it ends. */
struct episode {
	bool on;
	uint64_t since_ms, last_ms, n1, n2;
};

/* Counters: written on the service thread (published and drops also by
 * publishers), read from any thread; relaxed atomics. */
struct stats {
	_Atomic uint64_t viewers, viewers_total, refused[GOS_WS_REFUSED_COUNT_], messages_sent, bytes_sent,
		drops, resyncs, snapshots_sent, published, inbound, inbound_ignored,
		inbound_limited, closed_oversize, closed_stale, http_requests, queued,
		max_queue_seen, http_conns, http_evicted, accept_no_fd, inbound_control, closed_rate,
		closed_unmasked, viewers_v2,
		viewers_deflate;
};

/* The server. gos_ws_create sets up the first block on the owning thread
 * before the service thread starts; after that it is read-only, except
 * no_openat2 and the hosts' address cache (service thread). */
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
	bool tls;                      /* the port speaks https:// and wss:// */
	bool auth;                     /* a token file or a users file: every path
	                                * but /health needs a user */
	char *users_path, *alog_path;  /* copied */

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
	/* gos_ws_reload's hand-over, under lock: taken as a whole. */
	struct gos_users *pending_users;
	FILE *pending_alog;
	bool pending;

	_Atomic uint64_t snapshot_requests;
	_Atomic uint64_t snapshot_requests_v2;
	struct stats st;

	/* Service thread only. */
	struct viewer *viewers;
	uint64_t next_viewer_id;
	struct gos_ws_msg *timeline;   /* the latest, for new viewers */
	struct gos_ws_msg *hello, *hello_v2, *resync;
	lws_sorted_usec_list_t sul_ping, sul_accept, sul_tick;
	struct lws *listen_wsi;
	bool accept_paused;
	struct conn *http_head, *http_tail;
	uint32_t n_http;
	struct episode no_fd;          /* n1: failed accepts */
	struct episode http_full;      /* n1: idle connections closed, n2: refused */
	struct episode viewers_full;   /* n1: refused */
	bool delivering;               /* ws_drain_inbox is handing items to viewers */
	struct viewer *flush;          /* viewers given something meanwhile (plain ones) */
	struct gos_users *users;       /* in force (NULL: no auth) */
	struct ws_account **acct;      /* users->user[i]'s account */
	struct ws_account *accounts;   /* every user ever named, newest first */
	FILE *alog;                    /* the access log, NULL: none */
	unsigned char scratch[LWS_PRE + WS_CHUNK];
};

static inline void st_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t st_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- gos_ws.c ---- */

/* Any thread: one more reference to m. */
struct gos_ws_msg *ws_msg_ref(struct gos_ws_msg *m);
/* Service thread: the first bytes of m went to a viewer's socket. The
 * first such write of a marked message calls opts.first_write; the rest
 * pay one relaxed load. */
static inline void ws_msg_written(struct gos_ws *ws, struct gos_ws_msg *m)
{
	if (m->mark && !atomic_load_explicit(&m->written, memory_order_relaxed) &&
	    !atomic_exchange_explicit(&m->written, true, memory_order_relaxed) && ws->opts.first_write)
		ws->opts.first_write(ws->opts.cb_ctx, m->mark);
}
/* Hands what publishers put in the inbox to the viewers (lws_cancel_service
 * woke the service thread). */
void ws_drain_inbox(struct gos_ws *ws);

/* Whether permessage-deflate is on for this WebSocket connection. */
bool ws_deflate_active(struct lws *wsi);

/* Takes what gos_ws_reload handed over, if anything (under the lock). */
void ws_take_reload(struct gos_ws *ws);

/* ---- ws_users.c ---- */

/* Makes u the users in force (taking it over; NULL: no auth) and frees the
 * table before; accounts carry over by name. */
void ws_users_install(struct gos_ws *ws, struct gos_users *u);
/* Frees the table and every account. */
void ws_users_free(struct gos_ws *ws);
/* Takes one token from the account's bucket: false when it is over its
 * rate (counted). An account without a rate always passes. */
bool ws_account_charge(struct ws_account *a, uint64_t now_ms);
/* The gos_user_* families (with auth on). */
void ws_users_metrics(struct gos_ws *ws, struct gos_buf *t);
/* One access-log line: {"time","user","address","path",["session"],
 * "status",["close"],"bytes",["bytes_in"],"duration_ms"}. session 0 and
 * close 0: left out. A no-op without --access-log. */
void ws_access_log(struct gos_ws *ws, double start_wall, const struct ws_account *a,
                   const char *addr, const char *path, uint64_t session, unsigned status,
                   int close, uint64_t bytes, int64_t bytes_in, uint64_t duration_ms);

/* ---- ws_tls.c ---- */

/* Owning thread: whether cert holds a PEM certificate and key (readable,
 * unencrypted) its private key; false with one sentence in err that names
 * the file at fault. */
bool ws_tls_check(const char *cert, const char *key, char *err, size_t errlen);

/* ---- ws_accept.c ---- */

/* Owning thread, from gos_ws_create: resolves "HOST:PORT" and listens
 * (ws->host, iface, port, listen_fd); false with one sentence in err. */
bool ws_listen_open(struct gos_ws *ws, const char *spec, char *err, size_t errlen);
/* The listening socket's lws callback: accepts what is waiting. */
int ws_listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                       void *in, size_t len);
/* A request on an HTTP connection starts (busy) or its answer is out. */
void ws_conn_busy(struct gos_ws *ws, struct lws *wsi, bool busy);
/* The connection became a viewer: it leaves the HTTP budget. */
void ws_conn_upgraded(struct gos_ws *ws, struct lws *wsi);
/* lws is freeing the connection's wsi: it leaves its budget. */
void ws_conn_gone(struct gos_ws *ws, struct lws *wsi);
/* A viewer was refused for max_viewers: logged once per episode. */
void ws_viewers_full(struct gos_ws *ws);
/* Any thread (lws logs from whichever calls it; own lock): lws's log
 * emitter, collapsing repeated lines. */
void ws_lws_log(int level, const char *line);
/* Every CTL_SCAN_MS (ws->sul_tick): viewers' control frames, the ends of
 * log runs and of limit episodes. */
void ws_tick(lws_sorted_usec_list_t *sul);

/* ---- ws_http.c ---- */

/* lws callback of the "http" protocol: requests and their answers. */
int ws_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                     void *in, size_t len);
/* Before an upgrade to a viewer: framing, Host, path, token, Origin. 0 to
 * let it through; otherwise the refusal is written and lws must close. */
int ws_upgrade_filter(struct gos_ws *ws, struct lws *wsi);

/* ---- ws_rxguard.c (RFC 6455 §5.1: clients' frames must be masked) ---- */

/* Service thread. Starts (again) tracking the frames read from fd: at a
 * frame boundary (right after the upgrade). false: fd is beyond what the
 * guard tracks (the process's descriptor limit when first called). */
bool ws_rxguard_watch(int fd);
/* Service thread, before lws closes fd. */
void ws_rxguard_unwatch(int fd);
/* Whether a frame without the mask bit was read from fd. */
bool ws_rxguard_unmasked(int fd);

/* ---- ws_viewer.c ---- */

/* Closes (1008) the viewers whose user the table in force no longer names. */
void ws_viewer_revoke(struct gos_ws *ws);

/* lws callback of the gos.v1 protocol: the viewers. */
int ws_viewer_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                       void *in, size_t len);
/* One inbox item to every viewer it is for. */
void ws_viewer_deliver(struct gos_ws *ws, const struct inbox_item *it);
/* Deltas were lost before the service thread: every live viewer resyncs. */
void ws_viewer_resync_live(struct gos_ws *ws);
/* After delivering: writes to the viewers that were given something, each
 * in one send; only those the socket did not take all of wait for lws's
 * writeable callback. */
void ws_viewer_flush(struct gos_ws *ws);
/* Looks at the byte counts of viewers due for a look: every CTL_SCAN_MS
 * while a viewer sends anything, backing off to CTL_SCAN_MAX_MS while it
 * is quiet. */
void ws_viewer_scan(struct gos_ws *ws, uint64_t now_ms);

#endif
