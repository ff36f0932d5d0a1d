/* gos-bench fanout: browser-viewer fan-out. A producer writes a steady
 * stream of token events (1000/s by default) into the Unix socket of a real
 * gos-compositor, which batches them into a delta per 33 ms tick; 1, 100,
 * 1000 and 10,000 viewers on loopback receive the broadcast. The viewers are
 * fanout_load.c's: a minimal WebSocket client of its own in several
 * processes, each reporting its CPU, so that the client is not what limits
 * a run (and when it is, the output says so).
 *
 * Measured per run, during the measured window: messages and token
 * deliveries/s summed over viewers; the server's CPU seconds, also per
 * million delivered messages; latency from the producer's write to a
 * viewer's receipt (p50/p99, on 10 sampled viewers); the server's RSS. The
 * same stream then goes through the peer a user would otherwise write: a
 * minimal Node `ws` broadcast server with the same batching
 * (tests/browser/fanout_peer.js); both are printed with the ratios.
 *
 * The producer stamps each event with CLOCK_REALTIME at write time; viewers
 * read that timestamp back from the delivered tokens. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_proc.h"
#include "fanout_load.h"
#include "gos_bench.h"
#include "gos_buf.h"
#include "gos_time.h"

#ifndef GOS_SOURCE_DIR
#define GOS_SOURCE_DIR "."
#endif


static double rss_mib(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	double v = NAN;
	if (!f)
		return v;
	size_t flen = strlen(field);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, flen))
			v = atof(line + flen + 1) / 1024.0;
	fclose(f);
	return v;
}

struct result {
	const char *server;
	int viewers, procs;
	double msgs_s, deliveries_s, expected_s, p50_ms, p99_ms, cpu_s, cpu_per_m, rss_mib,
		hwm_mib, client_max, window_s;
	uint64_t resyncs;
	int ready;
	const char *note;              /* what went wrong, or "" */
};

static bool one_run(const char *kind, char *const argv[], const char *marker, const char *sock,
                    int viewers, int procs, double rate, double warmup, double seconds,
                    bool render, struct result *res)
{
	memset(res, 0, sizeof(*res));
	res->server = kind;
	res->viewers = viewers;
	res->expected_s = rate * viewers;
	struct server srv;
	if (!bench_server_start(&srv, argv, marker, !render)) {
		bench_server_stop(&srv);
		return false;
	}
	char err[256];
	struct fanout_load *load = fanout_load_start(
		&(struct fanout_load_opts){.port = srv.port, .viewers = viewers, .procs = procs},
		err, sizeof(err));
	if (!load) {
		fprintf(stderr, "gos-bench fanout: %s\n", err);
		bench_server_stop(&srv);
		return false;
	}
	res->ready = fanout_load_wait_ready(load, 20 + viewers / 500.0);

	struct bench_feed f = {.sock = sock, .rate = rate};
	pthread_t ft;
	bool feeding = !pthread_create(&ft, NULL, bench_feed_main, &f);
	usleep((useconds_t)(warmup * 1e6));
	fanout_load_measure(load, true);
	double c0 = bench_cpu_seconds(srv.pid), t0 = gos_now_s();
	usleep((useconds_t)(seconds * 1e6));
	double t1 = gos_now_s(), c1 = bench_cpu_seconds(srv.pid);
	fanout_load_measure(load, false);
	res->rss_mib = rss_mib(srv.pid, "VmRSS:");
	res->hwm_mib = rss_mib(srv.pid, "VmHWM:");
	if (feeding) {
		atomic_store(&f.stop, true);
		pthread_join(ft, NULL);
	}
	if (!f.ok || f.err[0])
		fprintf(stderr, "gos-bench: producer: %s\n", f.err[0] ? f.err : "did not start");

	struct fanout_load_result lr;
	fanout_load_collect(load, &lr);
	fanout_load_destroy(load);
	res->window_s = t1 - t0;
	res->procs = lr.procs;
	res->msgs_s = (double)lr.messages / res->window_s;
	res->deliveries_s = (double)lr.deliveries / res->window_s;
	res->cpu_s = c1 - c0;
	res->cpu_per_m = lr.messages ? res->cpu_s / ((double)lr.messages * 1e-6) : NAN;
	res->client_max = lr.cpu_max_s / res->window_s;
	res->resyncs = lr.resyncs;
	if (lr.n_lat) {
		res->p50_ms = lr.lat[lr.n_lat / 2] * 1e3;
		res->p99_ms = lr.lat[(size_t)((double)lr.n_lat * 0.99)] * 1e3;
	} else {
		res->p50_ms = res->p99_ms = NAN;
	}
	free(lr.lat);
	res->note = !f.ok || f.err[0]      ? "  (the producer failed)"
	            : res->ready < viewers ? "  (some viewers did not connect)"
	            : lr.closed            ? "  (viewers were closed)"
	            : !lr.messages         ? "  (nothing received)"
	                                   : "";
	bench_server_stop(&srv);
	unlink(sock);
	return true;
}

static void print_row(const struct result *r)
{
	printf("%-8s %7d %9.0f %10.0f %10.0f %7.1f %7.1f %6.2f %8.2f %8.1f %8.1f %7llu %5.0f%% x%d%s%s\n",
	       r->server, r->viewers, r->msgs_s, r->deliveries_s, r->expected_s, r->p50_ms, r->p99_ms,
	       r->cpu_s, r->cpu_per_m, r->rss_mib, r->hwm_mib, (unsigned long long)r->resyncs,
	       r->client_max * 100, r->procs,
	       r->client_max > 0.9 ? "  (a load client process was saturated)" : "",
	       r->note);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: gos-bench fanout [--viewers 1,100,1000,10000] [--rate 1000] [--seconds 4]\n"
	        "                        [--warmup 1] [--procs N] [--compositor PATH] [--node PATH]\n"
	        "                        [--peer PATH] [--no-peer] [--render]\n"
	        "\n"
	        "Streams token events (--rate a second) into gos-compositor, which sends viewers a\n"
	        "delta per 33 ms tick, and measures what its browser viewers receive (loopback),\n"
	        "then the same through a minimal Node `ws` broadcast server. Per run, during the\n"
	        "measured window: messages and token deliveries/s over all viewers, latency from\n"
	        "the producer's write to receipt (p50/p99, 10 sampled viewers), the server's CPU\n"
	        "seconds and CPU seconds per million delivered messages, its RSS and peak RSS,\n"
	        "resyncs, and the busiest load-client process's CPU (a %% of one core, and how\n"
	        "many processes); ratios gos / node-ws follow.\n"
	        "\n"
	        "The viewers are a WebSocket client of the bench's own (epoll, non-blocking), in\n"
	        "--procs processes (default: one per 250 viewers, at most 8). Both sides get the\n"
	        "descriptor limit raised to its hard limit; gos-compositor runs with --max-viewers\n"
	        "above the count.\n"
	        "\n"
	        "gos-compositor runs without a Vulkan device (its renderer off) and without its\n"
	        "journal, so that both servers do the same work: ingest, state, broadcast.\n"
	        "--render keeps the renderer (headless, 1 fps; on a CPU Vulkan driver it competes\n"
	        "with the viewers for CPU).\n");
}

static void self_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
}

int gos_bench_fanout(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"viewers", required_argument, NULL, 'v'},
		{"rate", required_argument, NULL, 'r'},
		{"seconds", required_argument, NULL, 's'},
		{"warmup", required_argument, NULL, 'w'},
		{"compositor", required_argument, NULL, 'c'},
		{"node", required_argument, NULL, 'n'},
		{"peer", required_argument, NULL, 'p'},
		{"procs", required_argument, NULL, 'P'},
		{"no-peer", no_argument, NULL, 'x'},
		{"render", no_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	char viewers_list[256] = "1,100,1000,10000";
	double rate = 1000, seconds = 4, warmup = 1;
	int procs = 0;
	char dir[PATH_MAX], compositor[PATH_MAX + 64], peer[PATH_MAX + 64];
	const char *node = "node";
	bool with_peer = true, render = false;
	self_dir(dir, sizeof(dir));
	snprintf(compositor, sizeof(compositor), "%s/../compositor/gos-compositor", dir);
	snprintf(peer, sizeof(peer), "%s/tests/browser/fanout_peer.js", GOS_SOURCE_DIR);
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'v': snprintf(viewers_list, sizeof(viewers_list), "%s", optarg); break;
		case 'r': rate = atof(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'c': snprintf(compositor, sizeof(compositor), "%s", optarg); break;
		case 'n': node = optarg; break;
		case 'p': snprintf(peer, sizeof(peer), "%s", optarg); break;
		case 'P': procs = atoi(optarg); break;
		case 'x': with_peer = false; break;
		case 'R': render = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!(rate > 0 && rate <= 1e6) || !(seconds > 0 && seconds <= 600) || !(warmup >= 0 && warmup <= 600) ||
	    procs < 0 || procs > FANOUT_LOAD_MAX_PROCS) {
		fprintf(stderr, "gos-bench fanout: --rate wants 1..1000000 events/s, --seconds and "
		        "--warmup 0..600, --procs 1..%d\n", FANOUT_LOAD_MAX_PROCS);
		return 2;
	}
	if (access(compositor, X_OK)) {
		fprintf(stderr, "gos-bench fanout: no gos-compositor at %s (use --compositor)\n", compositor);
		return 2;
	}
	if (with_peer && access(peer, R_OK)) {
		fprintf(stderr, "gos-bench fanout: no peer script at %s (use --peer, or --no-peer)\n", peer);
		return 2;
	}

	int counts[16], n_counts = 0, max_viewers = 1;
	for (char *p = viewers_list; *p && n_counts < 16;) {
		counts[n_counts] = atoi(p);
		if (counts[n_counts] < 1 || counts[n_counts] > 20000) {
			fprintf(stderr, "gos-bench fanout: --viewers wants numbers from 1 to 20000\n");
			return 2;
		}
		if (counts[n_counts] > max_viewers)
			max_viewers = counts[n_counts];
		n_counts++;
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	/* Both sides need a descriptor per viewer (children inherit this). */
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)max_viewers + 64)
			fprintf(stderr, "gos-bench fanout: descriptor limit %llu is below %d viewers\n",
			        (unsigned long long)rl.rlim_cur, max_viewers);
	}
	signal(SIGPIPE, SIG_IGN);

	char tmpl[] = "/tmp/gos-fanout-XXXXXX";
	if (!mkdtemp(tmpl)) {
		fprintf(stderr, "gos-bench fanout: cannot make a temporary folder: %s\n", strerror(errno));
		return 1;
	}
	char sock[PATH_MAX];
	snprintf(sock, sizeof(sock), "%s/s.sock", tmpl);

	double load[3] = {0};
	getloadavg(load, 3);
	printf("gos-bench fanout: %.0f events/s for %.1f s per run (after %.1f s warm-up), loopback, "
	       "tick 33 ms; %ld CPUs, load average %.1f\n", rate, seconds, warmup,
	       sysconf(_SC_NPROCESSORS_ONLN), load[0]);
	printf("%-8s %7s %9s %10s %10s %7s %7s %6s %8s %8s %8s %7s %10s\n", "server", "viewers",
	       "msgs/s", "tokens/s", "expected", "p50 ms", "p99 ms", "cpu s", "s/M msg", "rss MiB",
	       "peak MiB", "resyncs", "client cpu");
	struct result gos_res[16], node_res[16];
	bool have_node[16] = {0};
	for (int i = 0; i < n_counts; i++) {
		char maxv[16];
		snprintf(maxv, sizeof(maxv), "%d", counts[i] + 16);
		char *gargv[] = {compositor, "--headless", "--max-fps", "1", "--socket", sock,
		                 "--listen", "127.0.0.1:0", "--log-interval", "0", "--max-viewers", maxv,
		                 "--no-journal", NULL};
		if (!one_run("gos", gargv, "web viewer at http://127.0.0.1:", sock, counts[i], procs,
		             rate, warmup, seconds, render, &gos_res[i]))
			return 1;
		print_row(&gos_res[i]);
		fflush(stdout);
		if (with_peer) {
			char *nargv[] = {(char *)node, peer, "--socket", sock, "--port", "0", NULL};
			have_node[i] = one_run("node-ws", nargv, "listening ", sock, counts[i], procs, rate,
			                       warmup, seconds, true, &node_res[i]);
			if (have_node[i])
				print_row(&node_res[i]);
			fflush(stdout);
		}
	}
	if (with_peer) {
		printf("\nratio gos / node-ws (deliveries: higher is better; cpu per message, p99, "
		       "rss: lower is better)\n");
		printf("%7s %11s %11s %9s %9s\n", "viewers", "deliveries", "cpu/msg", "p99", "rss");
		for (int i = 0; i < n_counts; i++) {
			if (!have_node[i])
				continue;
			const struct result *g = &gos_res[i], *nd = &node_res[i];
			printf("%7d %10.2fx %10.2fx %8.2fx %8.2fx\n", counts[i],
			       g->deliveries_s / nd->deliveries_s, g->cpu_per_m / nd->cpu_per_m,
			       g->p99_ms / nd->p99_ms, g->rss_mib / nd->rss_mib);
		}
	}
	rmdir(tmpl);
	return 0;
}
