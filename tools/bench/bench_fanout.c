/* gos-bench fanout: browser-viewer fan-out. A producer writes a steady
 * stream of token events (10k/s by default) into the Unix socket of a real
 * gos-compositor; 1, 100 and 1000 viewers (libwebsockets clients in this
 * process, on loopback) receive the broadcast. Measured per run: token
 * deliveries/s summed over viewers, latency from the producer's write to a
 * viewer's receipt (p50/p99, on up to 10 sampled viewers), and the server's
 * CPU seconds and RSS. The same stream then goes through the peer a user
 * would otherwise write: a minimal Node `ws` broadcast server with the same
 * batching (tests/browser/fanout_peer.js); both are printed with the ratio.
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

#include <libwebsockets.h>

#include "gos_bench.h"
#include "gos_buf.h"
#include "gos_time.h"

#ifndef GOS_SOURCE_DIR
#define GOS_SOURCE_DIR "."
#endif

#define MAX_SAMPLED 10

struct viewer;

struct run {
	/* Client side: main thread only. */
	struct viewer *viewers;
	int n;
	int connected, ready, failed, closed;
	bool measuring;
	uint64_t deliveries, messages, resyncs;
	double *lat;
	size_t n_lat, cap_lat;
};

struct viewer {
	struct run *run;
	struct lws *wsi;
	bool got_first, mid, tv, sample;
	struct gos_buf msg;
};

struct server {
	pid_t pid;
	int port;
	int out_fd;
	pthread_t drain;
	bool drain_started;
};

struct feeder {
	const char *sock;
	double rate;
	_Atomic bool stop;
	_Atomic uint64_t sent;
	bool ok;
	char err[256];
};

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- server processes ---------------------------------------------------- */

static void *drain_main(void *arg)
{
	struct server *s = arg;
	char buf[4096];
	while (read(s->out_fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

/* Starts argv with stdout+stderr on a pipe and waits for a line holding
 * `marker` followed by the port number. */
static bool server_start(struct server *s, char *const argv[], const char *marker,
                         bool no_vulkan)
{
	int fds[2];
	memset(s, 0, sizeof(*s));
	if (pipe(fds))
		return false;
	s->pid = fork();
	if (s->pid < 0)
		return false;
	if (s->pid == 0) {
		if (no_vulkan)
			setenv("VK_ICD_FILENAMES", "/dev/null", 1);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	s->out_fd = fds[0];
	char line[4096];
	size_t len = 0;
	double deadline = gos_now_s() + 15;
	while (gos_now_s() < deadline) {
		ssize_t r = read(s->out_fd, line + len, sizeof(line) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		line[len] = '\0';
		char *m = strstr(line, marker);
		if (m && strchr(m, '\n')) {
			s->port = atoi(m + strlen(marker));
			break;
		}
		if (len == sizeof(line) - 1)
			len = 0;
	}
	if (s->port <= 0) {
		fprintf(stderr, "gos-bench: %s did not start: %s\n", argv[0], line);
		return false;
	}
	s->drain_started = !pthread_create(&s->drain, NULL, drain_main, s);
	return true;
}

static void server_stop(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		int st;
		for (int i = 0; i < 200 && waitpid(s->pid, &st, WNOHANG) == 0; i++)
			usleep(20000);
		if (waitpid(s->pid, &st, WNOHANG) == 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
		}
	}
	if (s->drain_started)
		pthread_join(s->drain, NULL);
	if (s->out_fd > 0)
		close(s->out_fd);
	s->pid = 0;
}

/* utime + stime of a process, in seconds. */
static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return NAN;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return NAN;
	unsigned long ut = 0, st = 0;
	/* after ")": state(3) ... utime is field 14, stime 15 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* This process (viewers and producer): are the clients the bottleneck? */
static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

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

/* ---- the producer ------------------------------------------------------- */

static void *feeder_main(void *arg)
{
	struct feeder *f = arg;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		snprintf(f->err, sizeof(f->err), "cannot connect to %s: %s", f->sock, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	f->ok = true;
	struct gos_buf t = {0};
	double t0 = gos_now_s();
	uint64_t sent = 0;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&f->stop)) {
		/* Wake every millisecond and write what the rate owes by now. */
		next.tv_nsec += 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		uint64_t due = (uint64_t)((gos_now_s() - t0) * f->rate);
		gos_buf_clear(&t);
		double ts = wall();
		for (; sent < due; sent++)
			gos_buf_printf(&t, "{\"type\":\"token_activation\",\"token_id\":\"b%llu\","
			                "\"token_text\":\" tok\",\"timestamp\":%.6f,\"position\":[%llu,%llu],"
			                "\"confidence\":0.5}\n", (unsigned long long)sent, ts,
			                (unsigned long long)(sent % 100) * 40, (unsigned long long)(sent / 100) * 22);
		for (size_t off = 0; off < t.len;) {
			ssize_t w = send(fd, t.data + off, t.len - off, MSG_NOSIGNAL);
			if (w <= 0) {
				snprintf(f->err, sizeof(f->err), "write to the server failed: %s", strerror(errno));
				atomic_store(&f->stop, true);
				break;
			}
			off += (size_t)w;
		}
		atomic_store(&f->sent, sent);
	}
	gos_buf_finish(&t);
	close(fd);
	return NULL;
}

/* ---- viewers (lws client) ------------------------------------------------ */

static void on_message_end(struct run *r, struct viewer *v)
{
	if (!v->sample || !v->tv || !r->measuring)
		return;
	double now = wall();
	const char *p = v->msg.data, *end = v->msg.data + v->msg.len;
	while ((p = memmem(p, (size_t)(end - p), "\"timestamp\":", 12)) != NULL) {
		p += 12;
		double ts = strtod(p, NULL);
		if (r->n_lat == r->cap_lat) {
			r->cap_lat = r->cap_lat ? r->cap_lat * 2 : 65536;
			r->lat = realloc(r->lat, r->cap_lat * sizeof(*r->lat));
			if (!r->lat)
				abort();
		}
		r->lat[r->n_lat++] = now - ts;
	}
}

static int cb_client(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                     void *in, size_t len)
{
	struct viewer *v = user;
	(void)wsi;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		v->run->connected++;
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		v->run->failed++;
		v->wsi = NULL;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE: {
		struct run *r = v->run;
		bool first = !v->mid;
		bool last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
		v->mid = !last;
		if (first) {
			const char *s = in;
			size_t head = len < 200 ? len : 200;
			v->tv = len > 30 && !memcmp(s, "{\"type\":\"token_visualization\"", 29);
			if (!v->got_first) {
				v->got_first = true;
				r->ready++;
			}
			if (memmem(s, head, "\"type\":\"resync\"", 15))
				r->resyncs++;
			if (v->tv && r->measuring) {
				const char *n = memmem(s, head, "\"n\":", 4);
				if (n)
					r->deliveries += strtoull(n + 4, NULL, 10);
				r->messages++;
			}
			gos_buf_clear(&v->msg);
		}
		if (v->sample && v->tv)
			gos_buf_append(&v->msg, in, len);
		if (last)
			on_message_end(r, v);
		break;
	}
	case LWS_CALLBACK_CLIENT_CLOSED:
		v->run->closed++;
		v->wsi = NULL;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols client_protocols[] = {
	{"bench", cb_client, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void quiet_log(int level, const char *line)
{
	(void)level;
	(void)line;
}

struct result {
	const char *server;
	int viewers;
	double deliveries_s, expected_s, p50_ms, p99_ms, cpu_s, rss_mib, hwm_mib, client_cpu_s;
	uint64_t resyncs;
	int connected;
	bool ok;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void service_for(struct lws_context *ctx, double seconds)
{
	double end = gos_now_s() + seconds;
	while (gos_now_s() < end)
		lws_service(ctx, 0);
}

static bool one_run(const char *kind, char *const argv[], const char *marker, const char *sock,
                    int viewers, double rate, double warmup, double seconds, bool render,
                    struct result *res)
{
	memset(res, 0, sizeof(*res));
	res->server = kind;
	res->viewers = viewers;
	res->expected_s = rate * viewers;
	struct server srv;
	if (!server_start(&srv, argv, marker, !render)) {
		server_stop(&srv);
		return false;
	}

	struct run r = {.n = viewers};
	r.viewers = calloc((size_t)viewers, sizeof(*r.viewers));
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = client_protocols;
	info.timeout_secs = 30;
	struct lws_context *ctx = lws_create_context(&info);
	if (!ctx || !r.viewers) {
		fprintf(stderr, "gos-bench: cannot create the client context\n");
		server_stop(&srv);
		free(r.viewers);
		return false;
	}
	int stride = viewers > MAX_SAMPLED ? viewers / MAX_SAMPLED : 1;
	for (int i = 0; i < viewers; i++) {
		struct viewer *v = &r.viewers[i];
		v->run = &r;
		v->sample = i % stride == 0;
		struct lws_client_connect_info ci;
		memset(&ci, 0, sizeof(ci));
		ci.context = ctx;
		ci.address = "127.0.0.1";
		ci.port = srv.port;
		ci.path = "/ws";
		ci.host = "127.0.0.1";
		ci.local_protocol_name = "bench";
		ci.userdata = v;
		ci.pwsi = &v->wsi;
		lws_client_connect_via_info(&ci);
		if (i % 50 == 49)
			service_for(ctx, 0.005);
	}
	double deadline = gos_now_s() + 20;
	while (r.ready + r.failed < viewers && gos_now_s() < deadline)
		lws_service(ctx, 0);
	res->connected = r.ready;

	struct feeder f = {.sock = sock, .rate = rate};
	pthread_t ft;
	bool feeding = !pthread_create(&ft, NULL, feeder_main, &f);
	service_for(ctx, warmup);
	double c0 = cpu_seconds(srv.pid), t0 = gos_now_s(), k0 = self_cpu();
	r.measuring = true;
	service_for(ctx, seconds);
	r.measuring = false;
	double t1 = gos_now_s(), c1 = cpu_seconds(srv.pid);
	res->client_cpu_s = self_cpu() - k0;
	res->rss_mib = rss_mib(srv.pid, "VmRSS:");
	res->hwm_mib = rss_mib(srv.pid, "VmHWM:");
	if (feeding) {
		atomic_store(&f.stop, true);
		pthread_join(ft, NULL);
	}
	if (!f.ok || f.err[0])
		fprintf(stderr, "gos-bench: producer: %s\n", f.err[0] ? f.err : "did not start");

	res->deliveries_s = (double)r.deliveries / (t1 - t0);
	res->cpu_s = c1 - c0;
	res->resyncs = r.resyncs;
	if (r.n_lat) {
		qsort(r.lat, r.n_lat, sizeof(*r.lat), cmp_double);
		res->p50_ms = r.lat[r.n_lat / 2] * 1e3;
		res->p99_ms = r.lat[(size_t)((double)r.n_lat * 0.99)] * 1e3;
	} else {
		res->p50_ms = res->p99_ms = NAN;
	}
	res->ok = f.ok && r.ready == viewers;

	lws_context_destroy(ctx);
	for (int i = 0; i < viewers; i++)
		gos_buf_finish(&r.viewers[i].msg);
	free(r.viewers);
	free(r.lat);
	server_stop(&srv);
	unlink(sock);
	return true;
}

static void print_row(const struct result *r)
{
	printf("%-8s %7d %13.0f %12.0f %8.1f %8.1f %7.2f %8.1f %8.1f %8llu %10.2f%s\n", r->server,
	       r->viewers, r->deliveries_s, r->expected_s, r->p50_ms, r->p99_ms, r->cpu_s, r->rss_mib,
	       r->hwm_mib, (unsigned long long)r->resyncs, r->client_cpu_s,
	       r->ok ? "" : "  (some viewers did not connect)");
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: gos-bench fanout [--viewers 1,100,1000] [--rate 10000] [--seconds 4]\n"
	        "                        [--warmup 1] [--compositor PATH] [--node PATH] [--peer PATH]\n"
	        "                        [--no-peer] [--render]\n"
	        "\n"
	        "Streams token events into gos-compositor and measures what its browser viewers\n"
	        "receive (loopback), then the same through a minimal Node `ws` broadcast server.\n"
	        "Prints deliveries/s, latency from the producer's write to receipt (p50/p99),\n"
	        "the server's CPU seconds (during the measured window) and RSS.\n"
	        "\n"
	        "gos-compositor runs without a Vulkan device (its renderer off), so that both\n"
	        "servers do the same work: ingest, state, broadcast. --render keeps the renderer\n"
	        "(headless, 1 fps; on a CPU Vulkan driver it competes with the viewers for CPU).\n");
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
		{"no-peer", no_argument, NULL, 'x'},
		{"render", no_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	char viewers_list[256] = "1,100,1000";
	double rate = 10000, seconds = 4, warmup = 1;
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
		case 'x': with_peer = false; break;
		case 'R': render = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!(rate > 0 && rate <= 1e6) || !(seconds > 0 && seconds <= 600) || !(warmup >= 0)) {
		fprintf(stderr, "gos-bench fanout: --rate wants 1..1000000 events/s, --seconds 0..600\n");
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
	lws_set_log_level(LLL_ERR, quiet_log);

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
	printf("%-8s %7s %13s %12s %8s %8s %7s %8s %8s %8s %10s\n", "server", "viewers", "deliveries/s",
	       "expected/s", "p50 ms", "p99 ms", "cpu s", "rss MiB", "peak MiB", "resyncs",
	       "client cpu");
	struct result gos_res[16], node_res[16];
	bool have_node[16] = {0};
	for (int i = 0; i < n_counts; i++) {
		char maxv[16];
		snprintf(maxv, sizeof(maxv), "%d", counts[i] + 16);
		char *gargv[] = {compositor, "--headless", "--max-fps", "1", "--socket", sock,
		                 "--listen", "127.0.0.1:0", "--log-interval", "0", "--max-viewers", maxv,
		                 NULL};
		if (!one_run("gos", gargv, "web viewer at http://127.0.0.1:", sock, counts[i], rate,
		             warmup, seconds, render, &gos_res[i]))
			return 1;
		print_row(&gos_res[i]);
		fflush(stdout);
		if (with_peer) {
			char *nargv[] = {(char *)node, peer, "--socket", sock, "--port", "0", NULL};
			have_node[i] = one_run("node-ws", nargv, "listening ", sock, counts[i], rate, warmup,
			                       seconds, true, &node_res[i]);
			if (have_node[i])
				print_row(&node_res[i]);
			fflush(stdout);
		}
	}
	if (with_peer) {
		printf("\nratio gos / node-ws (deliveries: higher is better; p99, cpu, rss: lower is better)\n");
		printf("%7s %11s %9s %9s %9s\n", "viewers", "deliveries", "p99", "cpu", "rss");
		for (int i = 0; i < n_counts; i++) {
			if (!have_node[i])
				continue;
			const struct result *g = &gos_res[i], *nd = &node_res[i];
			printf("%7d %10.2fx %8.2fx %8.2fx %8.2fx\n", counts[i],
			       g->deliveries_s / nd->deliveries_s, g->p99_ms / nd->p99_ms,
			       g->cpu_s / nd->cpu_s, g->rss_mib / nd->rss_mib);
		}
	}
	rmdir(tmpl);
	return 0;
}
