/* The remote-viewer part of gos-compositor: its command-line flags, and the
 * WebSocket/HTTP server (net/gos_ws), the broadcaster (gos_broadcast), the
 * seek and search workers (gos_seek, gos_search) and the content of
 * /metrics and /health wired together.
 *
 * Threads: everything here on main's thread, except gos_web_frame() (the
 * render thread), gos_web_viewers() and gos_web_search() (any thread) and
 * the /metrics and /health callbacks (the server's thread). Every source in gos_web_sources must outlive the gos_web. */
#ifndef GOS_WEB_H
#define GOS_WEB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gos_core.h"
#include "gos_ingest.h"
#include "gos_map.h"

/* Flags; zero means default. */
struct gos_web_opts {
	const char *listen;           /* --listen HOST:PORT (default 127.0.0.1:7680) */
	bool no_listen;               /* --no-listen: no server at all */
	uint32_t tick_ms;             /* --tick-ms (default 33) */
	uint32_t max_viewers;         /* --max-viewers (default 1000) */
	uint32_t max_http;            /* --max-http (default 256) */
	const char *auth_token_file;  /* --auth-token-file */
	const char *users_file;       /* --users-file: named users and roles (gos_users.h) */
	const char *access_log;       /* --access-log: JSON lines, one per request */
	const char *tls_cert;         /* --tls-cert: https:// and wss:// (with tls_key) */
	const char *tls_key;          /* --tls-key */
	char allow_origin[1024];      /* --allow-origin, repeatable: comma-joined */
	char allow_host[1024];        /* --allow-host, repeatable: comma-joined */
	const char *web_dir;          /* --web-dir (default: the source tree's assets/web) */
};

/* getopt_long entries; option values start at GOS_WEB_OPT_BASE. */
enum {
	GOS_WEB_OPT_BASE = 0x1000,
	GOS_WEB_OPT_LISTEN = GOS_WEB_OPT_BASE, GOS_WEB_OPT_NO_LISTEN, GOS_WEB_OPT_TICK_MS,
	GOS_WEB_OPT_MAX_VIEWERS, GOS_WEB_OPT_AUTH_TOKEN_FILE, GOS_WEB_OPT_ALLOW_ORIGIN,
	GOS_WEB_OPT_WEB_DIR, GOS_WEB_OPT_ALLOW_HOST, GOS_WEB_OPT_MAX_HTTP, GOS_WEB_OPT_TLS_CERT,
	GOS_WEB_OPT_TLS_KEY, GOS_WEB_OPT_USERS_FILE, GOS_WEB_OPT_ACCESS_LOG, GOS_WEB_OPT_END_,
};
#define GOS_WEB_LONGOPTS                                                              \
	{"listen", required_argument, NULL, GOS_WEB_OPT_LISTEN},                      \
	{"no-listen", no_argument, NULL, GOS_WEB_OPT_NO_LISTEN},                      \
	{"tick-ms", required_argument, NULL, GOS_WEB_OPT_TICK_MS},                    \
	{"max-viewers", required_argument, NULL, GOS_WEB_OPT_MAX_VIEWERS},            \
	{"auth-token-file", required_argument, NULL, GOS_WEB_OPT_AUTH_TOKEN_FILE},    \
	{"allow-origin", required_argument, NULL, GOS_WEB_OPT_ALLOW_ORIGIN},          \
	{"web-dir", required_argument, NULL, GOS_WEB_OPT_WEB_DIR},                    \
	{"allow-host", required_argument, NULL, GOS_WEB_OPT_ALLOW_HOST},              \
	{"max-http", required_argument, NULL, GOS_WEB_OPT_MAX_HTTP},                  \
	{"tls-cert", required_argument, NULL, GOS_WEB_OPT_TLS_CERT},                  \
	{"tls-key", required_argument, NULL, GOS_WEB_OPT_TLS_KEY},                    \
	{"users-file", required_argument, NULL, GOS_WEB_OPT_USERS_FILE},              \
	{"access-log", required_argument, NULL, GOS_WEB_OPT_ACCESS_LOG}

/* True when getopt_long's value c is one of ours. */
static inline bool gos_web_is_opt(int c)
{
	return c >= GOS_WEB_OPT_BASE && c < GOS_WEB_OPT_END_;
}

/* Takes one of our flags. false: a bad value, with one sentence in err. */
bool gos_web_parse_opt(struct gos_web_opts *o, int c, const char *arg, char *err, size_t errlen);

/* The flags' lines for --help. */
void gos_web_usage(FILE *f);

/* File descriptors the web server may hold at most with these flags (0
 * with --no-listen): every viewer, every HTTP connection and the file it
 * may be sending, and a few of its own (GOS_WS_FDS). main raises
 * RLIMIT_NOFILE before gos_web_create to hold this beside its other
 * descriptors. */
uint64_t gos_web_fds(const struct gos_web_opts *opts);

struct gos_web_sources {
	struct gos_map *map;          /* required */
	struct gos_ingest *ingest;    /* NULL: not reported */
	struct gos_core *core;        /* NULL: not reported */
	struct gos_journal *journal;  /* NULL: memory only ("journal":null); seek,
	                               * play and GET /recording answer that there
	                               * is no journal */
	const char *state_dir;        /* the journal's state dir (with journal) */
	struct gos_map_opts map_opts; /* the live map's: private maps are built alike */
	const char *role;             /* /health's "role": "single" (NULL), "leader", "relay" */
	const char *(*role_of)(void *ctx);   /* else this, when set (any thread; health_ctx) */
	/* May be NULL. Appends more /health fields (",\"nats\":{...}"); false
	 * makes the status degraded (503). Any thread. */
	bool (*health_extra)(void *ctx, struct gos_buf *out);
	/* May be NULL. Appends more /metrics families (any thread). */
	void (*metrics_extra)(void *ctx, struct gos_buf *out);
	void *health_ctx;             /* both callbacks' ctx */
};

/* Starts the server and the broadcaster and prints the viewer's URL to
 * stderr, and a warning when the server is reachable from other machines
 * in clear text without a token. With --no-listen, or when no --listen was given and the default
 * port is taken (a warning says so), returns a gos_web that serves nothing.
 * NULL on failure (the --listen port busy, bad token file...) with one
 * sentence in err. */
struct gos_web *gos_web_create(const struct gos_web_opts *opts,
                               const struct gos_web_sources *src, char *err, size_t errlen);
/* Stops the server's thread (no more /health, /metrics), then the
 * broadcaster, then closes every viewer and frees both. Accepts NULL. */
void gos_web_destroy(struct gos_web *web);

/* Render thread, once per presented frame: its duration in seconds (feeds
 * gos_frame_duration_seconds and the render liveness in /health). NULL: no-op. */
void gos_web_frame(struct gos_web *web, double seconds);

/* Any thread: viewers connected now; -1 with --no-listen (for the HUD). */
int64_t gos_web_viewers(const struct gos_web *web);

struct gos_search;

/* Any thread: the search index (gos_search.h: gos_search_run, whose result
 * holds the matched slots), kept with or without a server (with one, its
 * worker also answers viewers' searches); the native window searches
 * through it. Valid until gos_web_destroy; NULL for a NULL web. */
struct gos_search *gos_web_search(struct gos_web *web);

/* Main thread, on SIGHUP: reads --users-file again and reopens
 * --access-log (gos_ws_reload), logging what came of it: a file that does
 * not parse is one error line naming its line, and the users before stay.
 * Nothing without those flags or a server. NULL: no-op. */
void gos_web_reload(struct gos_web *web);

/* The port the server listens on (0 with --no-listen). */
int gos_web_port(const struct gos_web *web);

#endif
