/* gos WebSocket + HTTP server: remote browser viewers (protocol gos.v1 at
 * /ws), the web viewer's files at /, /metrics (Prometheus) and /health (JSON),
 * all on one port, served by libwebsockets 4.1 on one service thread that
 * this module owns.
 *
 * Connections: the server listens and accepts itself and hands each
 * connection to lws counted in a budget: max_http plain HTTP connections
 * (a viewer counts there until its upgrade), max_viewers viewers. See
 * GOS_WS_FDS for the descriptors that bounds.
 *
 * The module knows nothing of the map: another thread (the broadcaster)
 * publishes already-serialized messages. A message is serialized once and
 * shared by reference count among every viewer it goes to.
 *
 * Per viewer: hello, then (when the broadcaster answers the viewer's snapshot
 * request) a snapshot, then every delta published after that snapshot, in
 * order. A viewer more than `backpressure` messages behind loses its backlog
 * (counted as drops), is sent {"type":"resync"} and waits for a fresh
 * snapshot; a viewer that reads nothing therefore holds a bounded number of
 * messages.
 *
 * Compression: a viewer that offers permessage-deflate (RFC 7692: browsers,
 * python websockets, npm ws do by default) gets every message compressed,
 * each by its own compressor (the shared bytes are compressed per viewer,
 * at zlib level 1); one that does not gets the same plain frames as ever.
 * Memory per compressing viewer is bounded: the deflater has a
 * 2^GOS_WS_DEFLATE_WINDOW_BITS window at GOS_WS_DEFLATE_MEM_LEVEL (30528
 * bytes of zlib state with zlib 1.2.13) plus an 8 KiB output buffer; a
 * viewer that also compresses what it sends adds an inflater with the
 * 32 KiB window RFC 7692 lets it use (39928 bytes) plus a 1 KiB buffer:
 * about 80 KiB in all, made on first use and kept while connected
 * (libwebsockets' defaults would take 310 KiB). Offers with options the
 * server cannot honour are declined (docs/protocol.md, Compression).
 *
 * Files from the assets folder are streamed from their descriptor, one
 * 16 KiB chunk per writeable callback: a client that does not read costs
 * the server at most one unsent chunk (held by lws), never the whole file,
 * so files in flight hold at most max_http x 16 KiB in all.
 * Only regular files beneath the folder are served (links are followed
 * only while they stay beneath it), and opening one never blocks.
 *
 * Threads: gos_ws_create()/gos_ws_destroy() on the owning thread; the
 * publish/request/stats calls from any thread; the callbacks in the options
 * run on the service thread. */
#ifndef GOS_WS_H
#define GOS_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_buf.h"
#include "gos_viewer_v2.h"

#define GOS_WS_PROTOCOL               "gos.v1"
#define GOS_WS_PROTOCOL_V2            GOS_V2_PROTOCOL
#define GOS_WS_DEFAULT_LISTEN         "127.0.0.1:7680"
#define GOS_WS_MAX_QUEUED             1000   /* messages queued per viewer, at most */
#define GOS_WS_BACKPRESSURE_THRESHOLD 100    /* behind by more: resync */
#define GOS_WS_MAX_INBOUND            (64 * 1024)  /* larger client messages close */
#define GOS_WS_MAX_VIEWERS            1000
#define GOS_WS_MAX_HTTP               256    /* plain HTTP connections (not yet viewers) */
#define GOS_WS_DEFLATE_WINDOW_BITS    12     /* permessage-deflate: the server's window, 4 KiB */
#define GOS_WS_DEFLATE_MEM_LEVEL      4      /* ... and zlib memLevel (2 x 4 KiB of tables) */

/* File descriptors a server may hold at most: one per viewer, one per HTTP
 * connection plus the file it may be sending, and a few of its own (the
 * listening socket, lws's wake-up pipe, the assets folder, one just
 * accepted). The owner raises RLIMIT_NOFILE to hold this beside its other
 * descriptors, before gos_ws_create (lws sizes its tables by the soft limit
 * then, and refuses descriptors numbered above it later); gos_ws never
 * changes the limit, and when the process runs out all the same it pauses
 * accepting (no spinning, one log line per episode). */
#define GOS_WS_FDS(max_viewers, max_http) ((uint64_t)(max_viewers) + 2u * (max_http) + 8u)

/* Appends Prometheus text (the caller's families) to out. */
typedef void (*gos_ws_metrics_fn)(void *ctx, struct gos_buf *out);
/* Appends JSON object members (`"status":"ok","tokens":3`, no braces) to
 * out; returns false when the program is unhealthy (/health answers 503). */
typedef bool (*gos_ws_health_fn)(void *ctx, struct gos_buf *out);
/* A marked message's (gos_ws_msg_mark) first byte went to a viewer's socket
 * just now: once per message. Service thread: must not block. */
typedef void (*gos_ws_written_fn)(void *ctx, uint64_t mark);

struct gos_viewer_in;

/* A viewer's request: time travel (seek, play, pause, live; the server has
 * already switched a `live` viewer back to live deltas) or a search, or
 * with in NULL: the viewer went away. viewer: its id; gen: its generation, to pass back
 * to gos_ws_viewer_send. Service thread: must not block. */
typedef void (*gos_ws_request_fn)(void *ctx, uint64_t viewer, uint64_t gen,
                                  const struct gos_viewer_in *in);

/* gos.v2: a live viewer's viewport (docs/protocol-v2.md), for the
 * broadcaster to answer with gos_ws_region_send. view_gen names the
 * snapshot the viewer builds on; reset_ov >= 0: the viewer has just had that
 * snapshot and holds only its overview tiles (at level reset_ov), nothing
 * else; -1: it holds what the region answers before said. vp NULL: the
 * viewer went away or left live (forget it). Service thread: must not
 * block. */
typedef void (*gos_ws_viewport_fn)(void *ctx, uint64_t viewer, uint64_t view_gen,
                                   const struct gos_viewer_viewport *vp, int reset_ov);

/* What a download's open says of it. */
struct gos_ws_download {
	char filename[128];            /* the attachment's name */
	const char *mime;              /* NULL: application/x-ndjson */
	int status;                    /* open failed: the HTTP status (0: 404) */
};

/* A body streamed on the service thread (GET /recording, GET /export):
 * open gets the request's query arguments ("key=value", URL-decoded, the
 * token's among them) and gives a handle, or NULL with the status and one
 * sentence in err; read fills at most cap bytes (0: the end, -1: an error,
 * the connection is cut) and must return quickly; close frees. */
struct gos_ws_stream {
	void *(*open)(void *ctx, const char *const *args, int n_args, struct gos_ws_download *d,
	              char *err, size_t errlen);
	long (*read)(void *handle, void *buf, size_t cap);
	void (*close)(void *handle);
	void *ctx;
};

/* Zero means default for every field. */
struct gos_ws_opts {
	const char *listen;           /* "HOST:PORT" or "[V6]:PORT"; NULL: GOS_WS_DEFAULT_LISTEN;
	                               * port 0 picks a free port (see gos_ws_port) */
	const char *assets_dir;       /* the web viewer's folder (must exist); NULL:
	                               * gos_ws_default_assets_dir(), 404 on / if absent */
	const char *auth_token_file;  /* NULL: no auth; else /, /ws, /metrics need its token
	                               * (with users_file: the user "anonymous", role admin) */
	const char *users_file;       /* named users (gos_users.h): every path but /health
	                               * needs a user's token, and the user's role for it
	                               * (401 without, 403 with too small a role) */
	const char *access_log;       /* JSON lines, one per request and per viewer session,
	                               * appended here (reopened by gos_ws_reload) */
	const char *tls_cert;         /* PEM certificate (chain) file: the port speaks only
	                               * https:// and wss:// (both or neither of these two);
	                               * a client speaking plain HTTP there is closed */
	const char *tls_key;          /* PEM private key file for tls_cert, unencrypted */
	const char *allow_origins;    /* comma-separated Origins allowed on /ws besides the
	                               * server's own; "*": any. Requests without Origin
	                               * (non-browser clients) are always allowed. */
	const char *allow_hosts;      /* Host names allowed besides the server's own
	                               * (gos_host.h: loopback names and addresses, the
	                               * listen address, with a wildcard listen the
	                               * machine's addresses and name); comma-separated,
	                               * "*": any. Every request (/health too) whose Host
	                               * is none of them gets 403: DNS rebinding. */
	uint32_t max_viewers;         /* 0: GOS_WS_MAX_VIEWERS; beyond: closed with 1013 */
	uint32_t max_http;            /* HTTP connections (files, /metrics, /health, and
	                               * each viewer until its upgrade); 0: GOS_WS_MAX_HTTP.
	                               * Full: the oldest idle one is closed for the new
	                               * one, or with none idle the new one gets 503. */
	uint32_t max_queued;          /* 0: GOS_WS_MAX_QUEUED */
	uint32_t backpressure;        /* 0: GOS_WS_BACKPRESSURE_THRESHOLD */
	uint32_t ping_interval_ms;    /* stale-viewer pass and ping; 0: 30000 */
	uint32_t stale_timeout_ms;    /* no pong (or message) for this long: close; 0: 300000 */
	uint32_t rx_rate;             /* inbound messages per second per viewer; 0: 20.
	                               * Further fragments of a message and control
	                               * frames (pings, pongs) pay too; 1000 over in a
	                               * row close the viewer (1008) */
	uint32_t rx_burst;            /* token-bucket depth; 0: 40 */
	gos_ws_metrics_fn metrics;    /* NULL: only the server's own metrics */
	gos_ws_health_fn health;      /* NULL: {"status":"ok"} plus the server's fields */
	gos_ws_written_fn first_write;  /* NULL: marks are ignored */
	gos_ws_request_fn request;    /* NULL: seek/play/pause/live/search are ignored */
	gos_ws_viewport_fn viewport;  /* gos.v2 viewports; NULL: gos.v2 viewers get
	                               * snapshots and ticks, never detail */
	const struct gos_ws_stream *recording;  /* GET /recording; NULL: 404 */
	const struct gos_ws_stream *export_;    /* GET /export; NULL: 404 */
	void *cb_ctx;
};

enum gos_ws_refusal {
	GOS_WS_REFUSED_AUTH = 0,       /* missing or wrong token */
	GOS_WS_REFUSED_ORIGIN,         /* Origin not allowed */
	GOS_WS_REFUSED_FULL,           /* --max-viewers reached */
	GOS_WS_REFUSED_PATH,           /* a file path outside the assets, or absent */
	GOS_WS_REFUSED_HOST,           /* Host is not one of the server's names (403) */
	GOS_WS_REFUSED_BAD_REQUEST,    /* a body, Transfer-Encoding or two Content-Lengths (400) */
	GOS_WS_REFUSED_HTTP_FULL,      /* max_http busy connections: 503 */
	GOS_WS_REFUSED_ROLE,           /* a user whose role may not have that path (403) */
	GOS_WS_REFUSED_COUNT_
};

/* Counters since create (any thread, relaxed reads). */
struct gos_ws_stats {
	uint64_t viewers;              /* connected now */
	uint64_t viewers_total;        /* accepted, ever */
	uint64_t refused_total[GOS_WS_REFUSED_COUNT_];  /* by enum gos_ws_refusal */
	uint64_t messages_sent;        /* whole messages written to viewers */
	uint64_t bytes_sent;           /* their payload bytes */
	uint64_t drops;                /* messages dropped from backlogs */
	uint64_t resyncs;              /* resyncs sent */
	uint64_t snapshots_sent;
	uint64_t published;            /* deltas handed over by publishers */
	uint64_t inbound;              /* client messages received */
	uint64_t inbound_ignored;      /* unknown or malformed client messages */
	uint64_t inbound_limited;      /* messages and frames over the rate limit */
	uint64_t inbound_control;      /* control frames received (an upper bound) */
	uint64_t closed_rate;          /* viewers closed (1008) for the rate limit */
	uint64_t closed_unmasked;      /* viewers closed (1002) for an unmasked frame */
	uint64_t closed_oversize;      /* connections closed for a frame > 64 KiB */
	uint64_t closed_stale;         /* connections closed by the stale pass */
	uint64_t http_requests;
	uint64_t http_connections;     /* HTTP connections open now (not viewers) */
	uint64_t http_evicted;         /* idle HTTP connections closed to make room */
	uint64_t accept_no_fd;         /* accepts that failed for lack of descriptors */
	uint64_t queued_messages;      /* sum of viewer queue lengths now */
	uint64_t max_queue_seen;       /* longest viewer queue seen, ever */
};


/* An immutable, reference-counted message (one text frame). */
struct gos_ws_msg;

/* Any thread. Copies len bytes into a new message with one reference. */
struct gos_ws_msg *gos_ws_msg_create(const char *bytes, size_t len);
/* The same for a binary frame (gos.v2). */
struct gos_ws_msg *gos_ws_msg_create_binary(const char *bytes, size_t len);
/* Any thread. */
void gos_ws_msg_unref(struct gos_ws_msg *msg);  /* accepts NULL */
/* Any thread, before msg is handed over: gives it a nonzero mark, passed to
 * gos_ws_opts.first_write when the first byte of msg is written to a
 * viewer's socket (the first viewer's write; later viewers' cost one
 * atomic load). */
void gos_ws_msg_mark(struct gos_ws_msg *msg, uint64_t mark);

/* Starts the server (binds, then runs its service thread). On failure returns
 * NULL and writes one sentence into err; errno is EADDRINUSE when the port
 * is taken. */
struct gos_ws *gos_ws_create(const struct gos_ws_opts *opts, char *err, size_t errlen);
/* Owning thread. Stops serving: when it returns the service thread has
 * ended, so no callback of the options (metrics, health) runs any more and
 * whatever they read may be freed. Publishing stays allowed (nobody gets
 * it). Idempotent; accepts NULL. */
void gos_ws_stop(struct gos_ws *ws);
/* Stops (gos_ws_stop), closes every connection, frees. Accepts NULL. */
void gos_ws_destroy(struct gos_ws *ws);

/* Owning thread (SIGHUP): reads users_file again and reopens access_log;
 * the service thread takes both at its next wake-up, as a whole. A file
 * that does not parse changes nothing: false with one sentence in err that
 * names its line (the old users stay). Viewers of a user no longer in the
 * file are closed (1008); every other viewer stays. *n_users: the users now
 * (-1 without users_file). */
bool gos_ws_reload(struct gos_ws *ws, int *n_users, char *err, size_t errlen);

/* The port actually bound (useful with port 0) and the host as given. */
int gos_ws_port(const struct gos_ws *ws);
const char *gos_ws_host(const struct gos_ws *ws);
/* Whether the port speaks TLS (https://, wss://). */
bool gos_ws_tls(const struct gos_ws *ws);
/* Whether the listening socket is bound to a loopback address only
 * (127.0.0.0/8, ::1): nobody on another machine can reach it. */
bool gos_ws_loopback(const struct gos_ws *ws);

/* Any thread. Hands a delta to every viewer that has had its snapshot (in
 * publish order, interleaved correctly with snapshots). Takes over the
 * caller's reference. */
void gos_ws_publish(struct gos_ws *ws, struct gos_ws_msg *msg);

/* Any thread. Hands a snapshot to every viewer waiting for one when the
 * service thread takes it; those viewers then receive every delta published
 * after it. all: every viewer gets it (after {"type":"resync"}), e.g. when
 * the publisher could not produce a delta. Takes over the reference. */
void gos_ws_publish_snapshot(struct gos_ws *ws, struct gos_ws_msg *msg, bool all);

/* Any thread. Grows by one whenever a viewer starts waiting for a snapshot
 * (connected, or resynced and drained its queue). The publisher builds one
 * snapshot when this moved since its last one. */
uint64_t gos_ws_snapshot_requests(const struct gos_ws *ws);

/* What gos_ws_viewer_send hands to one viewer. */
enum gos_ws_send {
	GOS_WS_SEND_MESSAGE = 0,  /* queued as it is (error, paused, a play delta) */
	GOS_WS_SEND_SNAPSHOT,     /* a seek/play snapshot: from here on the viewer gets
	                           * no live deltas, only what is sent to it */
	GOS_WS_SEND_LIVE,         /* msg NULL: back to live (a live snapshot, then deltas) */
	GOS_WS_SEND_ANSWER,       /* as MESSAGE, whatever the viewer's generation: an answer
	                           * that does not depend on where it is in time (search) */
};

/* Any thread. One message for one viewer (by id), dropped when the viewer
 * is gone or its generation moved past gen (it went live since). A viewer
 * too far behind (backpressure) goes back to live, and request hears of it
 * as a `live`. Takes over the reference. */
void gos_ws_viewer_send(struct gos_ws *ws, uint64_t viewer, uint64_t gen,
                        enum gos_ws_send kind, struct gos_ws_msg *msg);

/* Any thread. The timeline: sent now to every viewer that has had a
 * snapshot, and kept for each new viewer right after its first snapshot.
 * Takes over the reference. */
void gos_ws_publish_timeline(struct gos_ws *ws, struct gos_ws_msg *msg);

/* ---- gos.v2 (docs/protocol-v2.md) ----
 * gos.v2 viewers get none of the gos.v1 deltas and snapshots above, only
 * these (and the timeline, and what gos_ws_viewer_send sends them). */

/* Which gos.v2 viewers a tick's message is for. */
enum gos_ws_v2_route {
	GOS_WS_V2_ALL = 0,   /* the tick: every live gos.v2 viewer */
	GOS_WS_V2_LEVEL,     /* tiles of level a: viewers holding that level */
	GOS_WS_V2_CELLS,     /* tokens of the cells in rect: viewers whose cell rect meets it */
};

/* Any thread. One of a tick's shared gos.v2 messages, in publish order with
 * everything else; level for GOS_WS_V2_LEVEL, rect for GOS_WS_V2_CELLS.
 * Takes over the reference. */
void gos_ws_publish_v2(struct gos_ws *ws, struct gos_ws_msg *msg, enum gos_ws_v2_route route,
                       int32_t level, const struct gos_v2_rect *rect);
/* Any thread. A gos.v2 snapshot (overview tiles at overview_level) for the
 * gos.v2 viewers waiting for one, or with all for every one (after resync),
 * as gos_ws_publish_snapshot does for gos.v1. Takes over the reference. */
void gos_ws_publish_snapshot_v2(struct gos_ws *ws, struct gos_ws_msg *msg, bool all,
                                int32_t overview_level);
/* Any thread. As gos_ws_snapshot_requests, for gos.v2 viewers. */
uint64_t gos_ws_snapshot_requests_v2(const struct gos_ws *ws);
/* Any thread. gos.v2 viewers connected now. */
uint32_t gos_ws_viewer_count_v2(const struct gos_ws *ws);

/* What a region answer makes a gos.v2 viewer hold from then on. */
struct gos_ws_region {
	uint64_t view_gen;             /* as the viewport callback gave it */
	int32_t overview_level, view_level;
	struct gos_v2_rect cells, tiles;
};

/* Any thread. A region message for one gos.v2 viewer; from it on the viewer
 * is routed by r's rects and levels. Dropped when the viewer is gone, not
 * live, or on another view_gen. Takes over the reference. */
void gos_ws_region_send(struct gos_ws *ws, uint64_t viewer, const struct gos_ws_region *r,
                        struct gos_ws_msg *msg);

/* Any thread. Viewers connected now (cheap). */
uint32_t gos_ws_viewer_count(const struct gos_ws *ws);

void gos_ws_stats(const struct gos_ws *ws, struct gos_ws_stats *out);

/* Where the web viewer's files are when no assets_dir is given:
 * ../share/gos/web beside the executable (an installed layout, e.g.
 * /usr/bin -> /usr/share/gos/web) if it exists, else the source tree's
 * assets/web (GOS_ASSETS_DIR, set by the build). Start-up only: the answer
 * lives in a static buffer that each call rewrites. */
const char *gos_ws_default_assets_dir(void);

/* Stable snake_case name of a refusal reason, for /metrics labels. */
const char *gos_ws_refusal_name(enum gos_ws_refusal r);

#endif
