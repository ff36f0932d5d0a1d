/* gos-relay: serves viewers from a replica of a compositor's map, built and
 * kept live from the cluster's change log on NATS JetStream
 * (docs/scale-out.md): the same web viewer, both viewer protocols,
 * /metrics and /health as the compositor. Start as many as viewers need. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "gos_buf.h"
#include "gos_log.h"
#include "gos_map.h"
#include "gos_metrics.h"
#include "gos_nats.h"
#include "gos_web.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

struct relay {
	struct gos_map *map;
	struct gos_nats_follow *follow;
	struct gos_map_opts map_opts;
	atomic_uint_fast64_t gaps;      /* records whose seqs did not continue the map's */
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: gos-relay --nats URL [--cluster NAME] [--layout flow|hilbert]\n"
	        "                 [--max-tokens N] [web options]\n"
	        "\n"
	        "Serves gos's web viewer from a replica of the map that a gos-compositor\n"
	        "started with --nats URL builds: the cluster's newest checkpoint (stream\n"
	        "CLUSTER_CKPT), then its change log (CLUSTER_LOG) after it, followed live\n"
	        "whichever compositor leads. Viewers see what the compositor's see; run as\n"
	        "many relays as viewers need.\n"
	        "\n"
	        "  --nats URL           the NATS server(s) of the cluster, comma-separated\n"
	        "                       (required)\n"
	        "  --cluster NAME       the JetStream names' prefix (default gos)\n"
	        "  --layout KIND        the compositor's --layout (default flow)\n"
	        "  --max-tokens N       the compositor's --max-tokens (default 10000000)\n"
	        "  --log-level LEVEL    error, warn, info (default) or debug: the lines written\n"
	        "  --log-format FORMAT  text (default: 'gos [SUBSYSTEM] message') or json (one\n"
	        "                       object a line: time, level, subsystem, msg)\n");
	gos_web_usage(f);
	fprintf(f,
	        "  --help, --version\n"
	        "\n"
	        "/health says \"role\":\"relay\" and the change log's lag. Exit codes: 0 on\n"
	        "SIGINT/SIGTERM, 1 start-up failure, 2 bad command line.\n");
}

/* The newest checkpoint, on the follower's thread (the map's one writer),
 * before any record: the replica starts from it. */
static bool on_checkpoint(void *ctx, int fd, uint64_t seq)
{
	struct relay *r = ctx;
	char err[256];
	struct gos_map *m = gos_map_image_read(fd, &r->map_opts, err, sizeof(err));
	if (!m) {
		gos_log_warn("relay", "the checkpoint at seq %llu: %s", (unsigned long long)seq, err);
		return false;
	}
	gos_map_adopt(r->map, m);
	return true;
}

/* A change-log record, on the follower's thread (the map's one writer). */
static void on_record(void *ctx, const struct gos_event *ev, uint64_t first, uint64_t last)
{
	struct relay *r = ctx;
	uint64_t now = gos_map_seq(r->map);
	if (first && first - 1 > now)
		gos_map_advance_seq(r->map, first - 1);   /* the leader's seq jumped (restart) */
	else if (first && first - 1 < now)
		atomic_fetch_add(&r->gaps, 1);
	gos_map_apply(r->map, ev, 1);
	if (last >= first && gos_map_seq(r->map) != last)
		atomic_fetch_add(&r->gaps, 1);
}

static bool health_extra(void *ctx, struct gos_buf *t)
{
	struct relay *r = ctx;
	struct gos_nats_follow_stats st;
	gos_nats_follow_stats(r->follow, &st);
	gos_buf_printf(t, ",\"checkpoint\":{\"started_from_seq\":%llu}",
	               (unsigned long long)st.checkpoint_seq);
	gos_buf_printf(t, ",\"nats\":{\"connected\":%s,\"reconnects\":%llu},"
	               "\"lag\":{\"records\":%llu,\"seconds\":%.3f},"
	               "\"replica\":{\"records\":%llu,\"mismatched\":%llu}",
	               st.connected ? "true" : "false", (unsigned long long)st.reconnects,
	               (unsigned long long)st.lag_records, st.lag_s,
	               (unsigned long long)st.records, (unsigned long long)atomic_load(&r->gaps));
	return st.connected;
}


static void metrics_extra(void *ctx, struct gos_buf *t)
{
	struct relay *r = ctx;
	struct gos_nats_follow_stats st;
	gos_nats_follow_stats(r->follow, &st);
	gos_metrics_one(t, "gos_nats_connected", "gauge", "1 while connected to NATS.", st.connected);
	gos_metrics_one(t, "gos_nats_reconnects_total", "counter", "Reconnections to NATS.",
	                st.reconnects);
	gos_metrics_one(t, "gos_replica_records_total", "counter", "Change-log records applied.",
	        st.records);
	gos_metrics_one(t, "gos_replica_lag_records", "gauge", "Change-log records not applied yet.",
	        st.lag_records);
	gos_metrics_family(t, "gos_replica_lag_seconds", "gauge",
	                   "Age of the last record applied while more wait (0: caught up).");
	gos_metrics_sample(t, "gos_replica_lag_seconds", NULL, st.lag_s);
	gos_metrics_one(t, "gos_replica_mismatched_total", "counter",
	        "Records whose seqs did not continue the replica's map.",
	        atomic_load(&r->gaps));
}

int main(int argc, char **argv)
{
	enum { O_NATS = 256, O_CLUSTER, O_LAYOUT, O_MAX_TOKENS, O_HELP, O_VERSION, O_LOG_LEVEL,
	       O_LOG_FORMAT };
	static const struct option longopts[] = {
		{"nats", required_argument, NULL, O_NATS},
		{"cluster", required_argument, NULL, O_CLUSTER},
		{"layout", required_argument, NULL, O_LAYOUT},
		{"max-tokens", required_argument, NULL, O_MAX_TOKENS},
		{"help", no_argument, NULL, O_HELP},
		{"version", no_argument, NULL, O_VERSION},
		{"log-level", required_argument, NULL, O_LOG_LEVEL},
		{"log-format", required_argument, NULL, O_LOG_FORMAT},
		GOS_WEB_LONGOPTS,
		{0},
	};
	const char *url = NULL, *cluster = NULL;
	struct gos_map_opts mo = {0};
	struct gos_web_opts wo = {0};
	enum gos_log_level log_level = GOS_LOG_DEFAULT;
	enum gos_log_format log_format = GOS_LOG_TEXT;
	char err[512];
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (gos_web_is_opt(c)) {
			if (!gos_web_parse_opt(&wo, c, optarg, err, sizeof(err))) {
				fprintf(stderr, "gos-relay: %s\n", err);
				return EXIT_USAGE;
			}
			continue;
		}
		switch (c) {
		case O_NATS: url = optarg; break;
		case O_CLUSTER:
			if (!gos_nats_check_cluster(optarg, err, sizeof(err))) {
				fprintf(stderr, "gos-relay: --cluster: %s\n", err);
				return EXIT_USAGE;
			}
			cluster = optarg;
			break;
		case O_LAYOUT:
			if (!strcmp(optarg, "flow")) {
				mo.layout = GOS_LAYOUT_FLOW;
			} else if (!strcmp(optarg, "hilbert")) {
				mo.layout = GOS_LAYOUT_HILBERT;
			} else {
				fprintf(stderr, "gos-relay: --layout is flow or hilbert, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_MAX_TOKENS: {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > 100000000ull) {
				fprintf(stderr, "gos-relay: --max-tokens wants 1 to 100000000, not '%s'\n",
				        optarg);
				return EXIT_USAGE;
			}
			mo.max_tokens = v;
			break;
		}
		case O_LOG_LEVEL:
			if (!gos_log_level_parse(optarg, &log_level)) {
				fprintf(stderr, "gos-relay: --log-level is error, warn, info or debug, not '%s'\n",
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case O_LOG_FORMAT:
			if (!gos_log_format_parse(optarg, &log_format)) {
				fprintf(stderr, "gos-relay: --log-format is text or json, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_HELP: usage(stdout); return EXIT_OK;
		case O_VERSION: printf("gos-relay %s\n", GOS_VERSION); return EXIT_OK;
		default:
			fprintf(stderr, "gos-relay: unknown or incomplete option '%s' (try --help)\n",
			        argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "gos-relay: unexpected argument '%s' (try --help)\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!url) {
		fprintf(stderr, "gos-relay: --nats URL is required (try --help)\n");
		return EXIT_USAGE;
	}
	gos_log_setup(log_level, log_format);
	/* room for every viewer's descriptor */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);                  /* --users-file, --access-log: read again */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);   /* every thread; taken below */
	signal(SIGPIPE, SIG_IGN);

	struct relay r = {.map = gos_map_create(&mo), .map_opts = mo};
	r.follow = gos_nats_follow_create(&(struct gos_nats_follow_opts){
		.url = url, .cluster = cluster, .on_record = on_record,
		.on_checkpoint = on_checkpoint, .ctx = &r}, err, sizeof(err));
	if (!r.follow) {
		gos_log_error("relay", "%s", err);
		gos_map_destroy(r.map);
		return EXIT_RUNTIME;
	}
	struct gos_web *web = gos_web_create(&wo, &(struct gos_web_sources){
		.map = r.map, .map_opts = mo, .role = "relay", .health_extra = health_extra,
		.metrics_extra = metrics_extra,
		.health_ctx = &r}, err, sizeof(err));
	if (!web) {
		gos_log_error("relay", "%s", err);
		gos_nats_follow_destroy(r.follow);
		gos_map_destroy(r.map);
		return EXIT_RUNTIME;
	}
	int sig = 0;
	while (!sigwait(&sigs, &sig) && sig == SIGHUP)
		gos_web_reload(web);
	gos_log_info("relay", "%s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	gos_web_destroy(web);
	gos_nats_follow_destroy(r.follow);
	gos_map_destroy(r.map);
	gos_log_flush();
	return EXIT_OK;
}
