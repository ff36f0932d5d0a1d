/* gos-compositor: wires ingest -> core -> map state (-> renderer, broadcaster). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "gos_client.h"
#include "gos_compute_ref.h"
#include "gos_core.h"
#include "gos_demo.h"
#include "gos_ingest.h"
#include "gos_log.h"
#include "gos_map.h"
#include "gos_queue.h"
#include "gos_state.h"
#include "gos_export.h"
#include "gos_buf.h"
#include "gos_metrics.h"
#include "gos_cluster.h"
#include "gos_nats.h"
#include "gos_search.h"
#include "gos_web.h"
#include "gos_ws.h"
#include "gos_window.h"

/* Exit codes (documented in --help and README). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_DEPOSED = 3 };

#define MAX_PRODUCERS 1024   /* --max-producers default */
/* Descriptors kept out of every connection budget: stdio, epoll and event
 * fds, the listening sockets, Vulkan/GLFW, screenshots being written. */
#define FD_RESERVE 64

struct options {
	char socket_path[256];
	bool headless;
	bool no_render;
	bool demo;
	uint32_t max_producers;
	int producer_timeout_ms;
	const char *socket_group;     /* --socket-group: 0660 and this group's */
	const char *nats_url;         /* --nats: also consume producer events from JetStream */
	const char *cluster;          /* --cluster (docs/scale-out.md) */
	unsigned lease_ms;            /* --lease-ms */
	double checkpoint_s;          /* --nats-checkpoint-s (0: default, < 0: never) */
	int frame_timeout_ms;
	enum gos_framing framing;
	uint64_t max_tokens;
	enum gos_layout_kind layout;
	double log_interval;
	enum gos_log_level log_level;    /* --log-level */
	enum gos_log_format log_format;  /* --log-format */
	struct gos_web_opts web;   /* --listen, --tick-ms, ... (gos_web.h) */
	struct gos_state_opts state;  /* --state-dir, --no-journal, ... (gos_state.h) */
	/* the window or offscreen target */
	struct gos_window_opts win;
};

/* ---- command line ---- */

static void usage(FILE *f)
{
	char def[256];
	gos_default_socket_path(def, sizeof(def));
	fprintf(f,
	        "usage: gos-compositor [OPTIONS]\n"
	        "\n"
	        "Takes LLM token events on a Unix socket (JSON lines or length-prefixed\n"
	        "frames, Geometry OS's messages too), keeps them on an infinite 2-D map,\n"
	        "and shows the map.\n"
	        "\n"
	        "options:\n"
	        "  --socket PATH        Unix socket to listen on (default %s)\n"
	        "  --socket-group GROUP the socket is 0660 and GROUP's (a name or number), so\n"
	        "                       that group's users may produce (default: 0600)\n"
	        "  --nats URL           join a cluster on NATS JetStream (docs/scale-out.md): a\n"
	        "                       standby following the change log CLUSTER_LOG until it\n"
	        "                       takes the leader lease, then the leader: producer events\n"
	        "                       from CLUSTER_INGEST (subjects CLUSTER.ingest.<stream>,\n"
	        "                       durable consumer 'leader') and this host's socket, what\n"
	        "                       it applies published to the log. The map is the log's:\n"
	        "                       each start keeps the state dir's last session aside\n"
	        "  --cluster NAME       the JetStream names' prefix (default gos)\n"
	        "  --lease-ms N         the leader lease's TTL in ms (default 3000): a dead\n"
	        "                       leader is replaced after about this long\n"
	        "  --nats-checkpoint-s S  the leader publishes a checkpoint of the map every S\n"
	        "                       seconds (default 60; 0: never): a standby or relay\n"
	        "                       starts from the newest, then the log after it\n"
	        "  --headless           no window: render the same passes offscreen (also what\n"
	        "                       happens when no display is available)\n"
	        "  --no-render          draw nothing (no window, no Vulkan): keep the map, serve\n"
	        "                       viewers, /metrics and /health (a server without a GPU)\n"
	        "  --fullscreen         fullscreen window (F11 toggles)\n"
	        "  --monitor N          fullscreen on monitor N (0: primary)\n"
	        "  --size WxH           window size (default 1280x720; headless: the offscreen size)\n"
	        "  --max-fps N          cap the frame rate (default: vsync; headless 10)\n"
	        "  --no-vsync           present without waiting for vertical blank\n"
	        "  --palette NAME       confidence colors: viridis (default), red-green\n"
	        "  --color MODE         what the window colors tokens by: confidence (default),\n"
	        "                       logprob, rank, entropy, latency, agreement (C cycles)\n"
	        "  --gpu NAME|INDEX     Vulkan device by index or name substring (also GOS_GPU;\n"
	        "                       default: discrete, integrated, virtual, then CPU)\n"
	        "  --cpu-compute        project, color and cull the tokens on the CPU (the\n"
	        "                       reference implementation) instead of the GPU compute\n"
	        "                       shader; also used, with a log line, when the GPU token\n"
	        "                       pipeline fails at start-up\n"
	        "  --frames N           quit after N frames (tests, benchmarks)\n"
	        "  --exercise           with --frames: resize twice and toggle fullscreen (window test)\n"
	        "  --demo               feed a built-in synthetic stream while no producer is connected\n"
	        "  --max-producers N    producer connections at most (default %d); more are\n"
	        "                       answered with an error line and closed\n"
	        "  --producer-timeout SEC  a producer that stops sending inside a line or frame\n"
	        "                       for SEC seconds gets an error line and is closed (default\n"
	        "                       10; idle between lines is fine)\n"
	        "  --framing auto|lines|le|be  how producers frame messages: guessed from the\n"
	        "                       first bytes (default), JSON lines, or a u32 little- or\n"
	        "                       big-endian length before each (Geometry OS: docs/geometry-os.md)\n"
	        "  --frame-timeout SEC  a length-prefixed frame not complete SEC seconds after its\n"
	        "                       first byte gets an error and is closed (default 10)\n"
	        "  --max-tokens N       keep at most N tokens; the oldest are evicted (default 10000000)\n"
	        "  --layout flow|hilbert  where tokens without a position go: flowing like text per\n"
	        "                       stream in pages, the pages tiled to stay near 16:9 (default),\n"
	        "                       or by a hash of the text on a Hilbert curve\n"
	        "  --log-interval SEC   print counts every SEC seconds (default 2; 0: never)\n"
	        "  --log-level LEVEL    error, warn, info (default) or debug: the lines written\n"
	        "  --log-format FORMAT  text (default: 'gos [SUBSYSTEM] message') or json (one\n"
	        "                       object a line: time, level, subsystem, msg); a line that\n"
	        "                       repeats within 5 s is counted (... repeated N times)\n",
	        def, MAX_PRODUCERS);
	gos_web_usage(f);
	gos_state_usage(f);
	fprintf(f,
	        "  --help, --version\n"
	        "\n"
	        "keys: drag pans, wheel zooms about the cursor, arrows and +/- too, Home fits\n"
	        "      all tokens, F toggles following the newest token of the active stream\n"
	        "      (on at start; moving the camera turns it off), Tab cycles\n"
	        "      streams, S writes a screenshot (gos-DATE.png), E exports the tokens as CSV\n"
	        "      (gos-DATE.csv, as GET /export?format=csv), F11 fullscreen, Esc/Q quits\n"
	        "      (gos-shot --socket PATH --out FILE asks a running compositor for a picture)\n"
	        "time travel (with the journal): [ and ] step back/forward 1%% of the session,\n"
	        "      Space replays from there (from the start when live) or pauses, , and .\n"
	        "      halve/double the replay speed (0.5x-16x), L goes live, Ctrl+S saves the\n"
	        "      session as a recording (gos-DATE.ndjson, for --open and gos-feed)\n"
	        "\n"
	        "exit codes: 0 clean shutdown (SIGINT/SIGTERM), 1 start-up failure (socket busy,\n"
	        "            no permission, ...), 2 bad command line, 3 no longer the cluster's\n"
	        "            leader (--nats: lease lost or publish fenced; start it again)\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return false;
	*out = v;
	return true;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	enum { OPT_SOCKET = 256, OPT_SOCKET_GROUP, OPT_NATS, OPT_CLUSTER, OPT_LEASE_MS, OPT_NATS_CHECKPOINT, OPT_HEADLESS, OPT_NO_RENDER, OPT_DEMO, OPT_MAX_PRODUCERS, OPT_PRODUCER_TIMEOUT, OPT_MAX_TOKENS, OPT_LAYOUT,
	       OPT_FRAMING, OPT_FRAME_TIMEOUT,
	       OPT_LOG_INTERVAL, OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_HELP, OPT_VERSION,
	       /* the window or offscreen target */
	       OPT_FULLSCREEN, OPT_MONITOR, OPT_SIZE, OPT_MAX_FPS, OPT_NO_VSYNC, OPT_PALETTE, OPT_COLOR, OPT_GPU,
	       OPT_FRAMES, OPT_EXERCISE, OPT_CPU_COMPUTE };
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"headless", no_argument, NULL, OPT_HEADLESS},
		{"no-render", no_argument, NULL, OPT_NO_RENDER},
		{"demo", no_argument, NULL, OPT_DEMO},
		{"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
		{"max-producers", required_argument, NULL, OPT_MAX_PRODUCERS},
		{"nats", required_argument, NULL, OPT_NATS},
		{"lease-ms", required_argument, NULL, OPT_LEASE_MS},
		{"nats-checkpoint-s", required_argument, NULL, OPT_NATS_CHECKPOINT},
		{"socket-group", required_argument, NULL, OPT_SOCKET_GROUP},
		{"cluster", required_argument, NULL, OPT_CLUSTER},
		{"producer-timeout", required_argument, NULL, OPT_PRODUCER_TIMEOUT},
		{"framing", required_argument, NULL, OPT_FRAMING},
		{"frame-timeout", required_argument, NULL, OPT_FRAME_TIMEOUT},
		{"layout", required_argument, NULL, OPT_LAYOUT},
		{"log-interval", required_argument, NULL, OPT_LOG_INTERVAL},
		{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
		{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
		{"help", no_argument, NULL, OPT_HELP},
		{"version", no_argument, NULL, OPT_VERSION},
		GOS_WEB_LONGOPTS,
		GOS_STATE_LONGOPTS,
		/* the window or offscreen target */
		{"fullscreen", no_argument, NULL, OPT_FULLSCREEN},
		{"monitor", required_argument, NULL, OPT_MONITOR},
		{"size", required_argument, NULL, OPT_SIZE},
		{"max-fps", required_argument, NULL, OPT_MAX_FPS},
		{"no-vsync", no_argument, NULL, OPT_NO_VSYNC},
		{"palette", required_argument, NULL, OPT_PALETTE},
		{"color", required_argument, NULL, OPT_COLOR},
		{"gpu", required_argument, NULL, OPT_GPU},
		{"frames", required_argument, NULL, OPT_FRAMES},
		{"exercise", no_argument, NULL, OPT_EXERCISE},
		{"cpu-compute", no_argument, NULL, OPT_CPU_COMPUTE},
		{0},
	};
	gos_default_socket_path(o->socket_path, sizeof(o->socket_path));
	o->log_interval = 2;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (gos_web_is_opt(c)) {
			char err[256];
			if (!gos_web_parse_opt(&o->web, c, optarg, err, sizeof(err))) {
				fprintf(stderr, "gos-compositor: %s\n", err);
				return EXIT_USAGE;
			}
			continue;
		}
		if (gos_state_is_opt(c)) {
			char err[256];
			if (!gos_state_parse_opt(&o->state, c, optarg, err, sizeof(err))) {
				fprintf(stderr, "gos-compositor: %s\n", err);
				return EXIT_USAGE;
			}
			continue;
		}
		switch (c) {
		case OPT_SOCKET:
			if (strlen(optarg) >= sizeof(o->socket_path)) {
				fprintf(stderr, "gos-compositor: --socket path is too long\n");
				return EXIT_USAGE;
			}
			snprintf(o->socket_path, sizeof(o->socket_path), "%s", optarg);
			break;
		case OPT_HEADLESS: o->headless = true; break;
		case OPT_NO_RENDER: o->no_render = true; break;
		case OPT_DEMO: o->demo = true; break;
		case OPT_NATS:
			o->nats_url = optarg;
			break;
		case OPT_NATS_CHECKPOINT: {
			char *end;
			errno = 0;
			double v = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(v >= 0 && v <= 86400)) {
				fprintf(stderr, "gos-compositor: --nats-checkpoint-s wants 0 to 86400 seconds, "
				        "not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->checkpoint_s = v > 0 ? v : -1;
			break;
		}
		case OPT_LEASE_MS: {
			uint64_t v;
			if (!parse_u64(optarg, &v) || v < 300 || v > 600000) {
				fprintf(stderr, "gos-compositor: --lease-ms wants 300 to 600000, not '%s'\n",
				        optarg);
				return EXIT_USAGE;
			}
			o->lease_ms = (unsigned)v;
			break;
		}
		case OPT_SOCKET_GROUP:
			o->socket_group = optarg;
			break;
		case OPT_CLUSTER: {
			char why[200];
			if (!gos_nats_check_cluster(optarg, why, sizeof(why))) {
				fprintf(stderr, "gos-compositor: --cluster: %s\n", why);
				return EXIT_USAGE;
			}
			o->cluster = optarg;
			break;
		}
		case OPT_MAX_PRODUCERS: {
			uint64_t v;
			if (!parse_u64(optarg, &v) || v == 0 || v > 1000000) {
				fprintf(stderr, "gos-compositor: --max-producers wants a whole number "
				        "from 1 to 1000000, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->max_producers = (uint32_t)v;
			break;
		}
		case OPT_PRODUCER_TIMEOUT:
		case OPT_FRAME_TIMEOUT: {
			char *end;
			errno = 0;
			double v = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(v >= 0.1 && v <= 86400)) {
				fprintf(stderr, "gos-compositor: --%s wants seconds from 0.1 to 86400, not '%s'\n",
				        c == OPT_FRAME_TIMEOUT ? "frame-timeout" : "producer-timeout", optarg);
				return EXIT_USAGE;
			}
			*(c == OPT_FRAME_TIMEOUT ? &o->frame_timeout_ms : &o->producer_timeout_ms) =
				(int)(v * 1000.0 + 0.5);
			break;
		}
		case OPT_FRAMING:
			if (!gos_framing_parse(optarg, &o->framing)) {
				fprintf(stderr, "gos-compositor: --framing wants auto, lines, le or be, not '%s'\n",
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_MAX_TOKENS:
			if (!parse_u64(optarg, &o->max_tokens) || o->max_tokens == 0 ||
			    o->max_tokens > 4000000000ull) {
				fprintf(stderr, "gos-compositor: --max-tokens wants a whole number "
				        "from 1 to 4000000000, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_LAYOUT:
			if (!strcmp(optarg, "flow")) {
				o->layout = GOS_LAYOUT_FLOW;
			} else if (!strcmp(optarg, "hilbert")) {
				o->layout = GOS_LAYOUT_HILBERT;
			} else {
				fprintf(stderr, "gos-compositor: --layout is 'flow' or 'hilbert', not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_LOG_INTERVAL: {
			char *end;
			o->log_interval = strtod(optarg, &end);
			if (end == optarg || *end || !(o->log_interval >= 0) || o->log_interval > 86400) {
				fprintf(stderr, "gos-compositor: --log-interval wants seconds (0 to 86400), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case OPT_LOG_LEVEL:
			if (!gos_log_level_parse(optarg, &o->log_level)) {
				fprintf(stderr, "gos-compositor: --log-level is error, warn, info or debug, "
				        "not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_LOG_FORMAT:
			if (!gos_log_format_parse(optarg, &o->log_format)) {
				fprintf(stderr, "gos-compositor: --log-format is text or json, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		/* the window or offscreen target */
		case OPT_FULLSCREEN: o->win.fullscreen = true; break;
		case OPT_NO_VSYNC: o->win.no_vsync = true; break;
		case OPT_EXERCISE: o->win.exercise = true; break;
		case OPT_MONITOR: {
			uint64_t v;
			if (!parse_u64(optarg, &v) || v > 63) {
				fprintf(stderr, "gos-compositor: --monitor wants a monitor number from 0 to 63, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->win.monitor = (int)v;
			break;
		}
		case OPT_SIZE: {
			char *end;
			unsigned long w = strtoul(optarg, &end, 10), h = 0;
			if (end != optarg && (*end == 'x' || *end == 'X')) {
				const char *p = end + 1;
				h = strtoul(p, &end, 10);
				if (end == p)
					h = 0;
			}
			if (*end || w < 64 || h < 64 || w > 16384 || h > 16384 || optarg[0] == '-') {
				fprintf(stderr, "gos-compositor: --size wants WxH, 64 to 16384 each, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->win.width = (uint32_t)w;
			o->win.height = (uint32_t)h;
			break;
		}
		case OPT_MAX_FPS: {
			char *end;
			o->win.max_fps = strtod(optarg, &end);
			if (end == optarg || *end || !(o->win.max_fps >= 1) || o->win.max_fps > 1000) {
				fprintf(stderr, "gos-compositor: --max-fps wants 1 to 1000, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case OPT_GPU:
			o->win.gpu = optarg;
			break;
		case OPT_PALETTE:
			if (!gos_compute_ref_palette_parse(optarg, &o->win.palette)) {
				fprintf(stderr, "gos-compositor: unknown --palette '%s' (viridis, red-green)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_COLOR:
			if (!gos_compute_ref_mode_parse(optarg, &o->win.color_mode)) {
				fprintf(stderr, "gos-compositor: unknown --color '%s' (confidence, logprob, "
				        "rank, entropy, latency, agreement)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_FRAMES:
			if (!parse_u64(optarg, &o->win.frames) || o->win.frames == 0) {
				fprintf(stderr, "gos-compositor: --frames wants a whole number > 0, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_CPU_COMPUTE: o->win.cpu_compute = true; break;
		case OPT_HELP: usage(stdout); exit(EXIT_OK);
		case OPT_VERSION: printf("gos-compositor %s\n", GOS_VERSION); exit(EXIT_OK);
		default:
			fprintf(stderr, "gos-compositor: unknown or incomplete option '%s'\n",
			        argv[optind - 1]);
			fprintf(stderr, "try 'gos-compositor --help'\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "gos-compositor: unexpected argument '%s' (try --help)\n", argv[optind]);
		return EXIT_USAGE;
	}
	return -1;
}

/* ---- barriers answered from other threads: sync and screenshot ---- */

/* Screenshot requests on their way from the core thread to the render loop:
 * a bounded mailbox (the core never waits on it); beyond SHOT_PENDING_MAX a
 * request is answered with an error at once. Once rendering is known to be
 * off (or the loop has ended) requests are answered with an error at once. */
#define SHOT_PENDING_MAX 16

struct shot_req {
	uint64_t conn;
	char *path;
	bool fit;
};

struct shot_box {
	pthread_mutex_t lock;           /* guards everything below */
	struct shot_req q[SHOT_PENDING_MAX];
	size_t head, n;
	bool closed;                    /* no render loop to take requests */
	const char *closed_reason;
};

struct app {
	struct options opt;
	struct shot_box shots;
	struct gos_queue *queue;
	struct gos_map *map;
	struct gos_state *state;         /* the state dir: lock, journal */
	struct gos_journal *journal;     /* NULL with --no-journal */
	struct gos_core *core;
	struct gos_ingest *ingest;
	struct gos_cluster *cluster;     /* --nats, else NULL */
	struct gos_queue *hold;          /* --nats: this host's producers, until leading */
	atomic_bool deposed;
	struct gos_demo *demo;
	struct gos_web *web;
	struct timespec last_frame;      /* web: frame times for /metrics */
	/* the render loop's per-frame tick (main thread) */
	sigset_t sigs;
	struct timespec last_log, last_rate;
	uint64_t last_events, rate_events;
	double events_per_s;
	int exit_signal;
};

static void on_sync(void *ctx, const struct gos_sync_ev *s, uint64_t tokens)
{
	struct app *a = ctx;
	if (s->conn & GOS_NATS_CONN_BIT) {
		if (a->cluster)
			gos_cluster_applied(a->cluster, s->conn, tokens);
	} else if (a->ingest) {
		gos_ingest_sync_done(a->ingest, s->conn, s->applied, s->rejected, tokens);
	}
}

/* --nats: /health's role, "nats", "lag" and "lease" (any thread). */
static const char *cluster_role(void *ctx)
{
	return gos_cluster_role(((struct app *)ctx)->cluster);
}

static bool cluster_health(void *ctx, struct gos_buf *t)
{
	return gos_cluster_health(((struct app *)ctx)->cluster, t);
}

static void cluster_metrics(void *ctx, struct gos_buf *t)
{
	gos_cluster_metrics(((struct app *)ctx)->cluster, t);
}

/* --nats: each applied batch goes to the change log (core thread). */
static void on_applied(void *ctx, const struct gos_batch *b, uint64_t seq_start)
{
	gos_cluster_publish(((struct app *)ctx)->cluster, b, seq_start);
}

/* --nats: no longer the leader (any thread): the main thread stops. */
static void on_deposed(void *ctx, const char *why)
{
	(void)why;
	struct app *a = ctx;
	atomic_store(&a->deposed, true);
	kill(getpid(), SIGTERM);
}

static void shot_reply_error(struct app *a, uint64_t conn, const char *path, const char *reason)
{
	char *line = gos_protocol_screenshot_reply(path, false, 0, 0, 0, reason);
	if (!line)
		abort();
	gos_ingest_reply(a->ingest, conn, line);
	free(line);
}

/* Core thread: hand the request to the render loop, or refuse it now. */
static void on_screenshot(void *ctx, const struct gos_screenshot_ev *shot, uint64_t tokens)
{
	(void)tokens;
	struct app *a = ctx;
	if (!a->ingest)
		return;
	struct shot_box *b = &a->shots;
	const char *refuse = NULL;
	char *path = strdup(shot->path);
	if (!path)
		abort();
	pthread_mutex_lock(&b->lock);
	if (b->closed)
		refuse = b->closed_reason;
	else if (b->n == SHOT_PENDING_MAX)
		refuse = "too many screenshot requests pending (limit 16); try again";
	else
		b->q[(b->head + b->n++) % SHOT_PENDING_MAX] =
			(struct shot_req){.conn = shot->conn, .path = path, .fit = shot->fit};
	pthread_mutex_unlock(&b->lock);
	if (refuse) {
		shot_reply_error(a, shot->conn, path, refuse);
		free(path);
	}
}

/* Main thread (render loop): the oldest pending request. */
static bool shot_take(void *ctx, struct gos_window_shot *out)
{
	struct app *a = ctx;
	struct shot_box *b = &a->shots;
	pthread_mutex_lock(&b->lock);
	bool have = b->n > 0;
	if (have) {
		struct shot_req *r = &b->q[b->head];
		*out = (struct gos_window_shot){.path = r->path, .fit = r->fit, .tag = r->conn};
		b->head = (b->head + 1) % SHOT_PENDING_MAX;
		b->n--;
	}
	pthread_mutex_unlock(&b->lock);
	return have;
}

static void shot_done(void *ctx, const struct gos_window_shot *shot,
                      const struct gos_window_shot_result *res)
{
	struct app *a = ctx;
	char *line = gos_protocol_screenshot_reply(shot->path, res->ok, res->width, res->height,
	                                           res->tokens, res->reason);
	if (!line)
		abort();
	gos_ingest_reply(a->ingest, shot->tag, line);
	free(line);
	free((char *)shot->path);   /* strdup'd by on_screenshot */
}

/* Main thread: no render loop will take requests from now on; answers what
 * is pending and every later one with `reason`. */
static void shots_close(struct app *a, const char *reason)
{
	struct shot_box *b = &a->shots;
	struct shot_req left[SHOT_PENDING_MAX];
	size_t n = 0;
	pthread_mutex_lock(&b->lock);
	b->closed = true;
	b->closed_reason = reason;
	while (b->n) {
		left[n++] = b->q[b->head];
		b->head = (b->head + 1) % SHOT_PENDING_MAX;
		b->n--;
	}
	pthread_mutex_unlock(&b->lock);
	for (size_t i = 0; i < n; i++) {
		shot_reply_error(a, left[i].conn, left[i].path, reason);
		free(left[i].path);
	}
}

/* ---- counts, descriptor budget, shutdown ---- */

static bool producers_connected(void *ctx)
{
	struct app *a = ctx;
	struct gos_ingest_stats st;
	gos_ingest_stats(a->ingest, &st);
	return st.connections > 0;
}

static void log_counts(struct app *a, double dt, uint64_t *last_events)
{
	struct gos_map_stats ms;
	struct gos_ingest_stats is;
	struct gos_core_stats cs;
	gos_map_stats(a->map, &ms);
	gos_ingest_stats(a->ingest, &is);
	gos_core_stats(a->core, &cs);
	uint64_t rejected = 0;
	for (int i = 0; i < GOS_REJECT_COUNT_; i++)
		rejected += is.rejected[i];
	gos_log_always(GOS_LOG_INFO, "main", "tokens=%llu streams=%llu events/s=%.0f applied=%llu "
	               "rejected=%llu evicted=%llu producers=%llu",
	               (unsigned long long)ms.live_tokens, (unsigned long long)ms.streams,
	               dt > 0 ? (double)(cs.events - *last_events) / dt : 0.0,
	               (unsigned long long)cs.events, (unsigned long long)rejected,
	               (unsigned long long)ms.evicted, (unsigned long long)is.connections);
	*last_events = cs.events;
}

/* Every kind of connection has a budget under the descriptor limit, so that
 * no accept ever meets EMFILE by design: the soft limit is raised to the
 * hard one, and producers, viewers and HTTP connections (gos_web_fds) must
 * fit in it with FD_RESERVE to spare. What does not fit is scaled down
 * evenly, with one line that says so. */
static void fd_budget(struct options *o)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!o->max_producers)
		o->max_producers = MAX_PRODUCERS;
	uint64_t web = gos_web_fds(&o->web);
	uint64_t need = o->max_producers + web + FD_RESERVE;
	if (rl.rlim_cur == RLIM_INFINITY || need <= rl.rlim_cur)
		return;
	uint64_t room = rl.rlim_cur > FD_RESERVE + 16 ? rl.rlim_cur - FD_RESERVE - 16 : 0;
	uint32_t viewers = o->web.max_viewers ? o->web.max_viewers : GOS_WS_MAX_VIEWERS;
	uint32_t http = o->web.max_http ? o->web.max_http : GOS_WS_MAX_HTTP;
	/* Each counts as the descriptors it may hold: a viewer 1, an HTTP
	 * connection 2 (the file it sends), a producer 1. */
	double units = (double)o->max_producers + (o->web.no_listen ? 0.0 : viewers + 2.0 * http);
	double f = units > 0 ? (double)room / units : 0;
	uint32_t p = (uint32_t)((double)o->max_producers * f), v = (uint32_t)(viewers * f),
		h = (uint32_t)(http * f);
	o->max_producers = p ? p : 1;
	if (!o->web.no_listen) {
		o->web.max_viewers = v ? v : 1;
		o->web.max_http = h ? h : 1;
	}
	char lim[96] = "";
	if (!o->web.no_listen)
		snprintf(lim, sizeof(lim), ", %u viewers, %u HTTP connections", o->web.max_viewers,
		         o->web.max_http);
	gos_log_warn("main", "file descriptor limit %llu is below the %llu the connection limits "
	             "need: now at most %u producers%s (raise the hard limit: ulimit -Hn, "
	             "LimitNOFILE=)", (unsigned long long)rl.rlim_cur, (unsigned long long)need,
	             o->max_producers, lim);
}

static void app_finish(struct app *a)
{
	if (a->ingest)
		shots_close(a, "the compositor is shutting down");
	gos_web_destroy(a->web);       /* stops reading the map first */
	gos_demo_destroy(a->demo);
	gos_cluster_stop_hold(a->cluster);   /* this host's last batches to the core, if leading */
	/* The core before the ingest: it answers barriers through the ingest
	 * (on_sync, on_screenshot) while it drains the queue. Closing the queue
	 * also stops the ingest thread's pushes. */
	gos_core_destroy(a->core);       /* applies what is still queued */
	/* The journal after the core (which hands it the last batches) and
	 * before the ingest (through which it answers their barriers). */
	gos_state_close(a->state);
	gos_cluster_destroy(a->cluster);   /* what it did not ack, JetStream delivers again */
	gos_ingest_destroy(a->ingest);   /* removes the socket file */
	gos_map_destroy(a->map);
	gos_queue_destroy(a->queue);
	gos_queue_destroy(a->hold);
	pthread_mutex_destroy(&a->shots.lock);
}

/* ---- the render loop (main thread) ----
 * A window when a display is available, else offscreen; --no-render draws
 * nothing. Each frame's tick takes pending signals without blocking and
 * prints the counts every --log-interval. When no renderer can start at all
 * (no Vulkan device), the compositor keeps taking events and only logs
 * counts. */
static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) * 1e-9;
}

static bool render_tick(void *ctx)
{
	struct app *a = ctx;
	struct timespec zero = {0}, now;
	int sig = sigtimedwait(&a->sigs, NULL, &zero);
	if (sig == SIGINT || sig == SIGTERM) {
		a->exit_signal = sig;
		return false;
	}
	if (sig == SIGHUP)
		gos_web_reload(a->web);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (a->last_frame.tv_sec)   /* web: frame time histogram and render liveness */
		gos_web_frame(a->web, since(&a->last_frame, &now));
	a->last_frame = now;
	double dr = since(&a->last_rate, &now);
	if (dr >= 0.5) {
		struct gos_core_stats cs;
		gos_core_stats(a->core, &cs);
		a->events_per_s = (double)(cs.events - a->rate_events) / dr;
		a->rate_events = cs.events;
		a->last_rate = now;
	}
	double dl = since(&a->last_log, &now);
	if (a->opt.log_interval > 0 && dl >= a->opt.log_interval) {
		log_counts(a, dl, &a->last_events);
		a->last_log = now;
	}
	return true;
}

static double render_events_per_s(void *ctx)
{
	return ((struct app *)ctx)->events_per_s;
}

/* The window's E key: the map as CSV, as GET /export gives it. */
static bool window_export(void *ctx, const char *dir, char *msg, size_t msglen)
{
	struct app *a = ctx;
	return gos_export_save(a->map, "csv", dir, msg, msglen);
}

/* The window's / key: the live map's text searched (gos_search, the same
 * index that answers viewers), the first WINDOW_SEARCH_MATCHES matches'
 * positions and every slot they cover, in arrays the window frees. */
#define WINDOW_SEARCH_MATCHES 1000
static bool window_search(void *ctx, const char *q, struct gos_window_search_result *out,
                          char *msg, size_t msglen)
{
	struct app *a = ctx;
	struct gos_search *s = gos_web_search(a->web);
	if (!s) {
		snprintf(msg, msglen, "search is not available in this compositor");
		return false;
	}
	struct gos_search_result r = {0};
	if (!gos_search_run(s, &(struct gos_search_query){.q = q, .limit = WINDOW_SEARCH_MATCHES},
	                    &r, msg, msglen)) {
		gos_search_result_finish(&r);
		return false;
	}
	*out = (struct gos_window_search_result){
		.count = r.count, .n = r.n_matches, .n_slots = r.n_tokens,
		.x = malloc((r.n_matches ? r.n_matches : 1) * sizeof(double)),
		.y = malloc((r.n_matches ? r.n_matches : 1) * sizeof(double)),
		.slots = malloc((r.n_tokens ? r.n_tokens : 1) * sizeof(uint32_t)),
	};
	if (!out->x || !out->y || !out->slots)
		abort();
	for (size_t i = 0; i < r.n_matches; i++) {
		out->x[i] = r.matches[i].x;
		out->y[i] = r.matches[i].y;
	}
	if (r.n_tokens)
		memcpy(out->slots, r.slots, r.n_tokens * sizeof(uint32_t));
	gos_search_result_finish(&r);
	return true;
}

static int64_t render_viewers(void *ctx)
{
	return gos_web_viewers(((struct app *)ctx)->web);
}

/* Only logs counts until a signal: the loop when nothing can be rendered. */
static void wait_for_signals(struct app *a)
{
	for (;;) {
		double iv = a->opt.log_interval > 0 ? a->opt.log_interval : 3600;
		struct timespec to = {.tv_sec = (time_t)iv,
		                      .tv_nsec = (long)((iv - (double)(time_t)iv) * 1e9)};
		int sig = sigtimedwait(&a->sigs, NULL, &to);
		if (sig == SIGINT || sig == SIGTERM) {
			a->exit_signal = sig;
			return;
		}
		if (sig == SIGHUP) {
			gos_web_reload(a->web);
			continue;  /* not yet time for the counts */
		}
		if (a->opt.log_interval > 0) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			log_counts(a, since(&a->last_log, &now), &a->last_events);
			a->last_log = now;
		}
	}
}

static int run_renderer(struct app *a)
{
	clock_gettime(CLOCK_MONOTONIC, &a->last_log);
	a->last_rate = a->last_log;
	if (a->opt.no_render) {
		gos_log_info("main", "--no-render: drawing nothing; taking events (Ctrl-C quits)");
		shots_close(a, "this compositor runs with --no-render, so it cannot take a picture");
		wait_for_signals(a);
		if (a->exit_signal)
			gos_log_info("main", "%s, shutting down",
			             a->exit_signal == SIGINT ? "SIGINT" : "SIGTERM");
		return EXIT_OK;
	}
	char why[256];
	struct gos_window_opts wo = a->opt.win;
	wo.headless = a->opt.headless;
	if (!wo.headless && !gos_window_display_available(why, sizeof(why))) {
		gos_log_info("main", "%s: rendering headless (the map is also in the web viewer)", why);
		wo.headless = true;
	} else if (wo.headless) {
		gos_log_info("main", "headless: rendering offscreen");
	}
	/* Time travel in the window: [ ] Space , . L keys and Ctrl+S (journal only). */
	struct gos_travel *tr = a->journal ? gos_travel_create(gos_state_dir(a->state), a->journal,
	                        &(struct gos_map_opts){.max_tokens = a->opt.max_tokens,
	                                               .layout = a->opt.layout}) : NULL;
	struct gos_window_travel travel = {
		.span = gos_travel_span, .at = gos_travel_at, .release = gos_travel_release,
		.save = gos_travel_save, .ctx = tr,
	};
	struct gos_window_deps deps = {
		.map = a->map, .tick = render_tick, .events_per_s = render_events_per_s,
		.viewers = render_viewers, .shot_take = shot_take, .shot_done = shot_done,
		.export_csv = window_export, .search = window_search,
		.travel = tr ? &travel : NULL, .ctx = a,
	};
	struct gos_window_result res;
	bool ok = gos_window_run(&wo, &deps, &res);
	gos_travel_destroy(tr);
	shots_close(a, ok ? "the compositor is shutting down"
	                  : "rendering is off in this compositor (no usable Vulkan device or "
	                    "renderer; see its log), so it cannot take a picture");
	if (ok)
		gos_log_info("main", "%llu frames in %.1f s (%.1f fps)", (unsigned long long)res.frames,
		             res.seconds, res.seconds > 0 ? (double)res.frames / res.seconds : 0.0);
	if (res.validation_errors) {
		gos_log_error("main", "Vulkan validation reported %u errors", res.validation_errors);
		return EXIT_RUNTIME;
	}
	if (!ok) {
		if (wo.frames)
			return EXIT_RUNTIME;
		gos_log_info("main", "rendering is off; still taking events (Ctrl-C quits)");
		wait_for_signals(a);
	}
	if (a->exit_signal)
		gos_log_info("main", "%s, shutting down", a->exit_signal == SIGINT ? "SIGINT" : "SIGTERM");
	return EXIT_OK;
}
int main(int argc, char **argv)
{
	struct app a = {0};
	int rc = parse_args(argc, argv, &a.opt);
	if (rc >= 0)
		return rc;
	gos_log_setup(a.opt.log_level, a.opt.log_format);

	/* Signals are taken synchronously by the main thread only. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);   /* --users-file, --access-log: read again */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	char err[512] = "";
	if (a.opt.state.list_sessions) {
		if (!a.opt.state.dir[0])
			gos_state_default_dir(a.opt.state.dir, sizeof(a.opt.state.dir));
		gos_state_print_sessions(a.opt.state.dir, stdout);
		return EXIT_OK;
	}
	pthread_mutex_init(&a.shots.lock, NULL);
	if (a.opt.cluster && !a.opt.nats_url) {
		fprintf(stderr, "gos-compositor: --cluster applies only with --nats\n");
		return EXIT_USAGE;
	}
	if ((a.opt.lease_ms || a.opt.checkpoint_s) && !a.opt.nats_url) {
		fprintf(stderr, "gos-compositor: --lease-ms and --nats-checkpoint-s apply only with --nats\n");
		return EXIT_USAGE;
	}
	if (a.opt.nats_url && a.opt.state.open_path) {
		fprintf(stderr, "gos-compositor: --open cannot join a cluster (--nats): replay the "
		        "recording into it with gos-feed --nats instead\n");
		return EXIT_USAGE;
	}
	/* In a cluster the map is the change log's: the last local session is
	 * kept aside, and the map is built again from the log. */
	if (a.opt.nats_url)
		a.opt.state.fresh = true;
	/* The state dir first: its lock refuses a second compositor before
	 * anything else starts, and the map comes back from its journal. */
	a.state = gos_state_open(&a.opt.state, &(struct gos_map_opts){
		.max_tokens = a.opt.max_tokens, .layout = a.opt.layout}, &a.map, err, sizeof(err));
	if (!a.state) {
		gos_log_error("main", "%s", err);
		app_finish(&a);
		return EXIT_RUNTIME;
	}
	a.queue = gos_queue_create(64);
	if (!a.queue || !gos_state_start(a.state, a.map, a.queue, on_sync, &a, &a.journal,
	                                 err, sizeof(err))) {
		gos_log_error("main", "%s", a.queue ? err : "out of memory");
		app_finish(&a);
		return EXIT_RUNTIME;
	}
	if (a.opt.nats_url) {
		a.hold = gos_queue_create(64);
		a.cluster = a.hold ? gos_cluster_create(&(struct gos_cluster_opts){
			.url = a.opt.nats_url, .cluster = a.opt.cluster, .lease_ms = a.opt.lease_ms,
			.queue = a.queue, .hold = a.hold, .map = a.map,
			.map_opts = {.max_tokens = a.opt.max_tokens, .layout = a.opt.layout},
			.checkpoint_s = a.opt.checkpoint_s, .on_deposed = on_deposed, .ctx = &a},
			err, sizeof(err)) : NULL;
		if (!a.cluster) {
			gos_log_error("main", "--nats: %s", a.hold ? err : "out of memory");
			app_finish(&a);
			return EXIT_RUNTIME;
		}
	}
	/* the cluster starts first: the core publishes every batch it applies
	 * as the leader to the change log from the first one on */
	a.core = gos_core_create(&(struct gos_core_opts){
		.queue = a.queue, .map = a.map, .on_sync = on_sync,
		.on_screenshot = on_screenshot, .on_applied = a.cluster ? on_applied : NULL,
		.journal = a.journal, .ctx = &a});
	if (!a.core) {
		gos_log_error("main", "cannot start the core (out of memory or threads)");
		app_finish(&a);
		return EXIT_RUNTIME;
	}
	if (a.opt.state.open_path) {
		uint64_t n = 0;
		if (!gos_state_load_recording(a.opt.state.open_path, a.queue, &n, err, sizeof(err))) {
			gos_log_error("main", "--open: %s", err);
			app_finish(&a);
			return EXIT_RUNTIME;
		}
		gos_log_info("main", "opened %s: %" PRIu64 " events", a.opt.state.open_path, n);
	}
	fd_budget(&a.opt);
	a.ingest = gos_ingest_create(&(struct gos_ingest_opts){
		.socket_path = a.opt.socket_path, .socket_group = a.opt.socket_group,
		.queue = a.hold ? a.hold : a.queue,
		.max_connections = (int)a.opt.max_producers,
		.progress_timeout_ms = a.opt.producer_timeout_ms,
		.frame_timeout_ms = a.opt.frame_timeout_ms, .framing = a.opt.framing}, err, sizeof(err));
	if (!a.ingest) {
		gos_log_error("main", "%s", err);
		app_finish(&a);
		return EXIT_RUNTIME;
	}
	gos_log_info("main", "listening for producers on %s", a.opt.socket_path);

	a.web = gos_web_create(&a.opt.web, &(struct gos_web_sources){
		.map = a.map, .ingest = a.ingest, .core = a.core, .journal = a.journal,
		.state_dir = gos_state_dir(a.state),
		.map_opts = {.max_tokens = a.opt.max_tokens, .layout = a.opt.layout},
		.role_of = a.cluster ? cluster_role : NULL,
		.health_extra = a.cluster ? cluster_health : NULL,
		.metrics_extra = a.cluster ? cluster_metrics : NULL,
		.health_ctx = &a},
		err, sizeof(err));
	if (!a.web) {
		gos_log_error("main", "%s", err);
		app_finish(&a);
		return EXIT_RUNTIME;
	}
	if (a.opt.demo) {
		a.demo = gos_demo_create(&(struct gos_demo_opts){
			.queue = a.hold ? a.hold : a.queue, .busy = producers_connected, .ctx = &a});
		if (!a.demo) {
			gos_log_error("main", "cannot start the demo stream");
			app_finish(&a);
			return EXIT_RUNTIME;
		}
		gos_log_info("main", "demo stream on (pauses while a producer is connected)");
	}

	/* The render loop runs on the main thread (GLFW needs it). */
	a.sigs = sigs;
	rc = run_renderer(&a);
	app_finish(&a);
	gos_log_flush();
	return atomic_load(&a.deposed) ? EXIT_DEPOSED : rc;
}
