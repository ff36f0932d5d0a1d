/* gos-bench failover: kill -9 of the cluster's leader under load, round
 * after round (issue 15): a real nats-server, two gos-compositor --nats (a
 * leader and a standby), two gos-relay with viewers (gos-bench fanout's
 * load client), two producers publishing over NATS. Each round kills the
 * leader, times the standby's takeover (kill to its /health saying
 * "leader"), and starts the killed one again as the next standby. At the
 * end both producers sync (exit means applied) and the leader's map is
 * counted: acknowledged events lost (must be 0), events applied twice
 * (gos_tokens_updated_total, must be 0), and whether the relays, which
 * only follow the change log, end with the leader's /export (no gap in the
 * seq chain) and their records out of the chain. */
#include <cjson/cJSON.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_proc.h"
#include "fanout_load.h"
#include "gos_bench.h"
#include "gos_time.h"

#define HEALTH_MAX (64 * 1024)

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* /health's role and seq, or false when it does not answer. */
static bool health(int port, char *role, size_t rolelen, uint64_t *seq, uint64_t *tokens,
                   uint64_t *mismatched)
{
	static char body[HEALTH_MAX];
	if (!bench_http_get(port, "/health", body, sizeof(body)))
		return false;
	cJSON *j = cJSON_Parse(body);
	if (!j)
		return false;
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "role");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "seq");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tokens");
	const cJSON *rep = cJSON_GetObjectItemCaseSensitive(j, "replica");
	const cJSON *mm = rep ? cJSON_GetObjectItemCaseSensitive(rep, "mismatched") : NULL;
	if (role)
		snprintf(role, rolelen, "%s", cJSON_IsString(r) ? r->valuestring : "");
	if (seq)
		*seq = cJSON_IsNumber(s) ? (uint64_t)s->valuedouble : 0;
	if (tokens)
		*tokens = cJSON_IsNumber(t) ? (uint64_t)t->valuedouble : 0;
	if (mismatched)
		*mismatched = cJSON_IsNumber(mm) ? (uint64_t)mm->valuedouble : 0;
	cJSON_Delete(j);
	return true;
}

static bool is_role(int port, const char *want)
{
	char role[32];
	return health(port, role, sizeof(role), NULL, NULL, NULL) && !strcmp(role, want);
}

/* The value of one metric sample (no labels), or NAN. */
static double metric(int port, const char *name)
{
	static char body[1 << 20];
	if (!bench_http_get(port, "/metrics", body, sizeof(body)))
		return NAN;
	size_t n = strlen(name);
	for (char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, name, n) && p[n] == ' ')
			return atof(p + n + 1);
	return NAN;
}

static bool same_export(int a, int b)
{
	static char x[64 << 20], y[64 << 20];
	return bench_http_get(a, "/export?format=csv", x, sizeof(x)) &&
	       bench_http_get(b, "/export?format=csv", y, sizeof(y)) && !strcmp(x, y);
}

static bool wait_until(bool (*pred)(void *), void *ctx, double timeout_s)
{
	double end = gos_now_s() + timeout_s;
	while (gos_now_s() < end) {
		if (pred(ctx))
			return true;
		usleep(10 * 1000);
	}
	return false;
}

struct node {
	struct server srv;
	char name[8];
	char *argv[24];
};

static bool start_node(struct node *n)
{
	return bench_server_start(&n->srv, n->argv, "web viewer at http://127.0.0.1:", true);
}

struct caught_up { int standby, leader; };

static bool standby_caught_up(void *ctx)
{
	struct caught_up *c = ctx;
	uint64_t s1 = 0, s2 = 0;
	return is_role(c->standby, "standby") &&
	       health(c->standby, NULL, 0, &s1, NULL, NULL) &&
	       health(c->leader, NULL, 0, &s2, NULL, NULL) && s2 > 0 && s1 + 2000 >= s2;
}

static bool leads(void *ctx)
{
	return is_role(*(int *)ctx, "leader");
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: gos-bench failover [--rounds 10] [--rate 10000] [--viewers 20]\n"
	        "                          [--lease-ms 1000] [--compositor PATH] [--relay PATH]\n"
	        "kill -9 of the leader of two gos-compositor --nats, --rounds times, under --rate\n"
	        "events/s from two producers over NATS and --viewers viewers on each of two\n"
	        "gos-relays: the takeover time (kill to the standby's /health saying leader)\n"
	        "p50/p99, acknowledged events lost, events applied twice, and whether the\n"
	        "relays end with the leader's map (their seq chain unbroken). Needs nats-server.\n");
}

int gos_bench_failover(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"rounds", required_argument, NULL, 'n'},
		{"rate", required_argument, NULL, 'r'},
		{"viewers", required_argument, NULL, 'v'},
		{"lease-ms", required_argument, NULL, 'l'},
		{"compositor", required_argument, NULL, 'c'},
		{"relay", required_argument, NULL, 'y'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int rounds = 10, viewers = 20, lease_ms = 1000;
	double rate = 10000;
	char compositor[PATH_MAX + 64], relay[PATH_MAX + 64];
	bench_default_paths(compositor, sizeof(compositor), relay, sizeof(relay));
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': rounds = atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'v': viewers = atoi(optarg); break;
		case 'l': lease_ms = atoi(optarg); break;
		case 'c': snprintf(compositor, sizeof(compositor), "%s", optarg); break;
		case 'y': snprintf(relay, sizeof(relay), "%s", optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (rounds < 1 || rounds > 1000 || !(rate > 0 && rate <= 1e6) || viewers < 0 ||
	    viewers > 5000 || lease_ms < 300 || lease_ms > 600000) {
		fprintf(stderr, "gos-bench failover: --rounds 1..1000, --rate 1..1000000, --viewers "
		        "0..5000, --lease-ms 300..600000\n");
		return 2;
	}
	bench_raise_limits();
	char tmpl[] = "/tmp/gos-failover-bench-XXXXXX";
	if (!mkdtemp(tmpl)) {
		fprintf(stderr, "gos-bench failover: cannot make a temporary folder: %s\n",
		        strerror(errno));
		return 1;
	}
	char url[64], lease[16], maxv[16];
	snprintf(lease, sizeof(lease), "%d", lease_ms);
	snprintf(maxv, sizeof(maxv), "%d", viewers + 16);
	struct server nats;
	if (!bench_nats_start(&nats, tmpl, url, sizeof(url))) {
		fprintf(stderr, "gos-bench failover: nats-server did not start (tools/setup.sh "
		        "installs it)\n");
		return 1;
	}
	struct node nodes[2];
	char socks[2][PATH_MAX];
	for (int i = 0; i < 2; i++) {
		struct node *nd = &nodes[i];
		memset(nd, 0, sizeof(*nd));
		snprintf(nd->name, sizeof(nd->name), "%c", 'a' + i);
		snprintf(socks[i], sizeof(socks[i]), "%s/%s.sock", tmpl, nd->name);
		char *args[] = {compositor, "--no-render", "--no-journal", "--socket", socks[i],
		                "--listen", "127.0.0.1:0", "--log-interval", "0", "--nats", url,
		                "--cluster", "failover", "--lease-ms", lease, NULL};
		memcpy(nd->argv, args, sizeof(args));
	}
	struct server rel[2];
	bool ok = start_node(&nodes[0]);
	int rc = 0;
	if (ok)
		ok = wait_until(leads, &nodes[0].srv.port, 30);
	if (ok)
		ok = start_node(&nodes[1]);
	for (int i = 0; ok && i < 2; i++) {
		char *rargv[] = {relay, "--nats", url, "--cluster", "failover", "--listen",
		                 "127.0.0.1:0", "--max-viewers", maxv, NULL};
		ok = bench_server_start(&rel[i], rargv, "web viewer at http://127.0.0.1:", true);
		if (!ok)
			bench_server_stop(&rel[i]);
	}
	if (!ok) {
		fprintf(stderr, "gos-bench failover: a compositor or relay did not start\n");
		for (int i = 0; i < 2; i++)
			bench_server_stop(&nodes[i].srv);
		bench_server_stop(&nats);
		return 1;
	}
	printf("gos-bench failover: %d rounds of kill -9 of the leader, %.0f events/s from 2 "
	       "producers over NATS, %d viewers on each of 2 relays, lease %d ms; %ld CPUs\n",
	       rounds, rate, viewers, lease_ms, sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
	struct fanout_load *load[2] = {0};
	char err[256];
	for (int i = 0; i < 2 && viewers > 0; i++) {
		load[i] = fanout_load_start(&(struct fanout_load_opts){.port = rel[i].port,
		                                                       .viewers = viewers, .sampled = 5},
		                            err, sizeof(err));
		if (load[i])
			fanout_load_wait_ready(load[i], 20);
		else
			fprintf(stderr, "gos-bench failover: viewers: %s\n", err);
	}
	for (int i = 0; i < 2; i++)
		if (load[i])
			fanout_load_measure(load[i], true);
	struct bench_feed feeds[2] = {
		{.url = url, .cluster = "failover", .rate = rate / 2, .prefix = "p", .sync = true},
		{.url = url, .cluster = "failover", .rate = rate / 2, .prefix = "q", .sync = true},
	};
	pthread_t feed_th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&feed_th[i], NULL, bench_feed_main, &feeds[i]);
	double *took = calloc((size_t)rounds, sizeof(*took));
	if (!took)
		abort();
	int leader = 0, done = 0;
	for (int r = 0; r < rounds; r++) {
		int standby = 1 - leader;
		struct caught_up cu = {nodes[standby].srv.port, nodes[leader].srv.port};
		if (!wait_until(standby_caught_up, &cu, 60)) {
			fprintf(stderr, "gos-bench failover: round %d: the standby did not catch up\n", r + 1);
			rc = 1;
			break;
		}
		usleep(500 * 1000);   /* under load a while */
		double t0 = gos_now_s();
		kill(nodes[leader].srv.pid, SIGKILL);
		if (!wait_until(leads, &nodes[standby].srv.port, 30)) {
			fprintf(stderr, "gos-bench failover: round %d: no takeover in 30 s\n", r + 1);
			rc = 1;
			break;
		}
		took[done++] = gos_now_s() - t0;
		printf("round %2d: takeover in %6.3f s\n", r + 1, took[done - 1]);
		fflush(stdout);
		bench_server_stop(&nodes[leader].srv);   /* reaps it */
		if (!start_node(&nodes[leader])) {
			fprintf(stderr, "gos-bench failover: round %d: the killed one did not start again\n",
			        r + 1);
			rc = 1;
			break;
		}
		leader = standby;
	}
	for (int i = 0; i < 2; i++) {
		atomic_store(&feeds[i].stop, true);
		pthread_join(feed_th[i], NULL);
	}
	uint64_t resyncs = 0;
	for (int i = 0; i < 2; i++) {
		if (!load[i])
			continue;
		fanout_load_measure(load[i], false);
		struct fanout_load_result res;
		fanout_load_collect(load[i], &res);
		fanout_load_destroy(load[i]);
		resyncs += res.resyncs;
		free(res.lat);
	}
	uint64_t sent = atomic_load(&feeds[0].sent) + atomic_load(&feeds[1].sent), tokens = 0;
	bool synced = feeds[0].synced && feeds[1].synced;
	health(nodes[leader].srv.port, NULL, 0, NULL, &tokens, NULL);
	double twice = metric(nodes[leader].srv.port, "gos_tokens_updated_total");
	bool relays_equal = true;
	uint64_t mismatched = 0;
	for (int i = 0; i < 2; i++) {
		double end = gos_now_s() + 30;
		while (!same_export(rel[i].port, nodes[leader].srv.port) && gos_now_s() < end)
			usleep(200 * 1000);
		relays_equal &= same_export(rel[i].port, nodes[leader].srv.port);
		uint64_t mm = 0;
		health(rel[i].port, NULL, 0, NULL, NULL, &mm);
		mismatched += mm;
	}
	qsort(took, (size_t)done, sizeof(*took), cmp_double);
	printf("\n%-36s %s\n", "takeovers", done ? "" : "none");
	if (done)
		printf("  p50 %.3f s, p99 %.3f s, max %.3f s over %d rounds (lease %d ms)\n",
		       took[done / 2], took[(size_t)((double)done * 0.99)], took[done - 1], done, lease_ms);
	printf("%-36s %llu sent, producers' syncs %s\n", "events", (unsigned long long)sent,
	       synced ? "confirmed (all applied)" : "NOT confirmed");
	printf("%-36s %lld\n", "acknowledged events lost",
	       synced ? (long long)sent - (long long)tokens : -1LL);
	printf("%-36s %.0f\n", "events applied twice", twice);
	printf("%-36s %s, %llu records out of their seq chain, %llu viewer resyncs\n",
	       "relays end with the leader's map", relays_equal ? "yes" : "NO",
	       (unsigned long long)mismatched, (unsigned long long)resyncs);
	for (int i = 0; i < 2; i++)
		if (feeds[i].err[0])
			fprintf(stderr, "gos-bench failover: producer %d: %s\n", i + 1, feeds[i].err);
	if (!synced || tokens != sent || twice != 0 || !relays_equal)
		rc = 1;
	free(took);
	for (int i = 0; i < 2; i++) {
		bench_server_stop(&rel[i]);
		bench_server_stop(&nodes[i].srv);
	}
	bench_server_stop(&nats);
	bench_remove_dir(tmpl);
	return rc;
}
