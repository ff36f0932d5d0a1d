/* gos-bench relay: producer -> viewer latency through NATS JetStream and
 * gos-relay (issue 15), beside the same through the compositor's socket and
 * through NATS into the compositor alone, in one run: a real nats-server
 * (JetStream, a temporary store), a real gos-compositor, real relays, and
 * gos-bench fanout's WebSocket load client reading back each token's
 * producer timestamp. With several relays the viewers are spread over them
 * (how the viewers held scale with relays). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench_proc.h"
#include "fanout_load.h"
#include "gos_bench.h"
#include "gos_buf.h"
#include "gos_nats.h"
#include "gos_time.h"

#define MAX_RELAYS 8

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct row {
	double deliveries_s, p50_ms, p99_ms, cpu_s;
	int ready, viewers;
	uint64_t resyncs;
};

/* Viewers on ports (spread evenly), the feed running, measured for seconds;
 * cpu: of the processes pids. */
static bool measure(const int *ports, int n_ports, int viewers, struct bench_feed *f, double warmup,
                    double seconds, const pid_t *pids, int n_pids, struct row *out)
{
	memset(out, 0, sizeof(*out));
	out->viewers = viewers;
	struct fanout_load *load[MAX_RELAYS] = {0};
	char err[256];
	for (int i = 0; i < n_ports; i++) {
		int v = viewers / n_ports + (i < viewers % n_ports);
		load[i] = fanout_load_start(&(struct fanout_load_opts){.port = ports[i], .viewers = v,
		                                                       .sampled = 10},
		                            err, sizeof(err));
		if (!load[i]) {
			fprintf(stderr, "gos-bench relay: %s\n", err);
			for (int k = 0; k < i; k++)
				fanout_load_destroy(load[k]);
			return false;
		}
	}
	for (int i = 0; i < n_ports; i++)
		out->ready += fanout_load_wait_ready(load[i], 20);
	pthread_t th;
	bool feeding = !pthread_create(&th, NULL, bench_feed_main, f);
	usleep((useconds_t)(warmup * 1e6));
	for (int i = 0; i < n_ports; i++)
		fanout_load_measure(load[i], true);
	double c0 = 0, c1 = 0;
	for (int i = 0; i < n_pids; i++)
		c0 += bench_cpu_seconds(pids[i]);
	double t0 = gos_now_s();
	usleep((useconds_t)(seconds * 1e6));
	double dt = gos_now_s() - t0;
	for (int i = 0; i < n_pids; i++)
		c1 += bench_cpu_seconds(pids[i]);
	for (int i = 0; i < n_ports; i++)
		fanout_load_measure(load[i], false);
	if (feeding) {
		atomic_store(&f->stop, true);
		pthread_join(th, NULL);
	}
	if (!f->ok || f->err[0])
		fprintf(stderr, "gos-bench relay: producer: %s\n", f->err[0] ? f->err : "did not start");
	double *lat = NULL;
	size_t n_lat = 0;
	uint64_t deliveries = 0;
	for (int i = 0; i < n_ports; i++) {
		struct fanout_load_result r;
		fanout_load_collect(load[i], &r);
		fanout_load_destroy(load[i]);
		deliveries += r.deliveries;
		out->resyncs += r.resyncs;
		double *nl = realloc(lat, (n_lat + r.n_lat + 1) * sizeof(*nl));
		if (!nl)
			abort();
		lat = nl;
		memcpy(lat + n_lat, r.lat, r.n_lat * sizeof(*lat));
		n_lat += r.n_lat;
		free(r.lat);
	}
	qsort(lat, n_lat, sizeof(*lat), cmp_double);
	out->deliveries_s = (double)deliveries / dt;
	out->p50_ms = n_lat ? lat[n_lat / 2] * 1e3 : NAN;
	out->p99_ms = n_lat ? lat[(size_t)((double)n_lat * 0.99)] * 1e3 : NAN;
	out->cpu_s = c1 - c0;
	free(lat);
	return f->ok && !f->err[0];
}

static void print_row(const char *path, const struct row *r, double expected)
{
	printf("%-28s %7d %6d %10.0f %10.0f %8.1f %8.1f %7.2f %7llu\n", path, r->viewers, r->ready,
	       r->deliveries_s, expected, r->p50_ms, r->p99_ms, r->cpu_s,
	       (unsigned long long)r->resyncs);
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: gos-bench relay [--rate 10000] [--viewers 100] [--relays 1,2,4] [--seconds 4]\n"
	        "                       [--warmup 1] [--compositor PATH] [--relay PATH]\n"
	        "Producer -> viewer latency (p50/p99 of each token's producer timestamp to its\n"
	        "arrival at a viewer) at --rate events/s: through the compositor's socket,\n"
	        "through NATS JetStream into the compositor, and through NATS, the compositor's\n"
	        "change log and 1, 2, 4 gos-relays (the viewers spread over them). Needs\n"
	        "nats-server. cpu s: the servers' CPU in the window (nats-server included).\n");
}

int gos_bench_relay(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"rate", required_argument, NULL, 'r'},
		{"viewers", required_argument, NULL, 'v'},
		{"relays", required_argument, NULL, 'R'},
		{"seconds", required_argument, NULL, 's'},
		{"warmup", required_argument, NULL, 'w'},
		{"compositor", required_argument, NULL, 'c'},
		{"relay", required_argument, NULL, 'y'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	double rate = 10000, seconds = 4, warmup = 1;
	int viewers = 100;
	char relays_list[64] = "1,2,4";
	char compositor[PATH_MAX + 64], relay[PATH_MAX + 64];
	bench_default_paths(compositor, sizeof(compositor), relay, sizeof(relay));
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': rate = atof(optarg); break;
		case 'v': viewers = atoi(optarg); break;
		case 'R': snprintf(relays_list, sizeof(relays_list), "%s", optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'c': snprintf(compositor, sizeof(compositor), "%s", optarg); break;
		case 'y': snprintf(relay, sizeof(relay), "%s", optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!(rate > 0 && rate <= 1e6) || viewers < 1 || viewers > 10000 ||
	    !(seconds > 0 && seconds <= 600) || !(warmup >= 0 && warmup <= 600)) {
		fprintf(stderr, "gos-bench relay: --rate 1..1000000, --viewers 1..10000, --seconds and "
		        "--warmup 0..600\n");
		return 2;
	}
	int counts[MAX_RELAYS], n_counts = 0;
	for (char *p = relays_list; *p && n_counts < MAX_RELAYS;) {
		counts[n_counts] = atoi(p);
		if (counts[n_counts] < 1 || counts[n_counts] > MAX_RELAYS) {
			fprintf(stderr, "gos-bench relay: --relays wants numbers from 1 to %d\n", MAX_RELAYS);
			return 2;
		}
		n_counts++;
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	bench_raise_limits();
	char tmpl[] = "/tmp/gos-relay-bench-XXXXXX";
	if (!mkdtemp(tmpl)) {
		fprintf(stderr, "gos-bench relay: cannot make a temporary folder: %s\n", strerror(errno));
		return 1;
	}
	char sock[PATH_MAX], url[64];
	snprintf(sock, sizeof(sock), "%s/s.sock", tmpl);
	struct server nats;
	if (!bench_nats_start(&nats, tmpl, url, sizeof(url))) {
		fprintf(stderr, "gos-bench relay: nats-server did not start (tools/setup.sh installs it)\n");
		return 1;
	}
	char maxv[16];
	snprintf(maxv, sizeof(maxv), "%d", viewers + 16);
	printf("gos-bench relay: %.0f events/s, %d viewers, %.1f s per row (after %.1f s), loopback; "
	       "%ld CPUs\n", rate, viewers, seconds, warmup, sysconf(_SC_NPROCESSORS_ONLN));
	printf("%-28s %7s %6s %10s %10s %8s %8s %7s %7s\n", "path", "viewers", "ready", "tokens/s",
	       "expected", "p50 ms", "p99 ms", "cpu s", "resyncs");
	int rc = 0;
	const char *marker = "web viewer at http://127.0.0.1:";
	for (int mode = 0; mode < 2 + n_counts && !rc; mode++) {
		/* 0: socket -> compositor; 1: NATS -> compositor; 2..: NATS -> relays */
		bool via_nats = mode > 0;
		char cluster[16];   /* each row its own JetStream streams: nothing left over */
		snprintf(cluster, sizeof(cluster), "bench%d", mode);
		char *gargv[] = {compositor, "--no-render", "--socket", sock, "--listen", "127.0.0.1:0",
		                 "--log-interval", "0", "--max-viewers", maxv, "--no-journal",
		                 via_nats ? "--nats" : NULL, url, "--cluster", cluster, NULL};
		struct server comp;
		if (!bench_server_start(&comp, gargv, marker, true)) {
			bench_server_stop(&comp);
			rc = 1;
			break;
		}
		struct server rel[MAX_RELAYS];
		int n_rel = mode >= 2 ? counts[mode - 2] : 0, ports[MAX_RELAYS];
		pid_t pids[MAX_RELAYS + 2] = {comp.pid, nats.pid};
		int n_pids = 2;
		for (int i = 0; i < n_rel; i++) {
			char *rargv[] = {relay, "--nats", url, "--cluster", cluster, "--listen", "127.0.0.1:0",
			                 "--max-viewers", maxv, NULL};
			if (!bench_server_start(&rel[i], rargv, marker, true)) {
				n_rel = i;
				rc = 1;
				break;
			}
			ports[i] = rel[i].port;
			pids[n_pids++] = rel[i].pid;
		}
		if (!n_rel)
			ports[0] = comp.port;
		struct bench_feed f = {.sock = via_nats ? NULL : sock, .url = url, .cluster = cluster,
		                 .rate = rate};
		struct row r;
		char path[64];
		if (mode == 0)
			snprintf(path, sizeof(path), "socket -> compositor");
		else if (mode == 1)
			snprintf(path, sizeof(path), "NATS -> compositor");
		else
			snprintf(path, sizeof(path), "NATS -> log -> %d relay%s", n_rel, n_rel == 1 ? "" : "s");
		if (!rc && measure(ports, n_rel ? n_rel : 1, viewers, &f, warmup, seconds, pids, n_pids, &r))
			print_row(path, &r, rate * viewers);
		else if (!rc)
			printf("%-28s (failed)\n", path);
		for (int i = 0; i < n_rel; i++)
			bench_server_stop(&rel[i]);
		bench_server_stop(&comp);
		unlink(sock);
	}
	bench_server_stop(&nats);
	bench_remove_dir(tmpl);
	return rc;
}
