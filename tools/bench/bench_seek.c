/* gos-bench seek: how long the seek worker takes to build the map as it
 * was at a seq of an N-token session (default 1M), through the worker's own
 * gos_jseek (compositor/journal/journal_seek.c): cold (nearest checkpoint,
 * then the journal from the index entry there) at random seqs, and warm
 * (scrubbing forward by 1% from the map built last, which the worker
 * caches), each plus one full read of the map (what a snapshot serializes
 * from). p50 and p99. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_bench.h"
#include "gos_journal.h"
#include "gos_time.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Builds the map at seq (cached for the next call when keep), reads it
 * whole: seconds, or -1. */
static double seek_once(struct gos_jseek *js, const char *dir, uint64_t seq, bool keep,
                        uint64_t *tokens)
{
	double t0 = gos_now_s(), t;
	char err[300];
	struct gos_jreader *rd = gos_jreader_create(dir);
	struct gos_map *m = gos_jseek_build(js, seq, rd, &t, err, sizeof(err));
	gos_jreader_destroy(rd);
	if (!m) {
		fprintf(stderr, "gos-bench seek: %s\n", err);
		return -1;
	}
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	*tokens = v.n_tokens;
	gos_map_view_finish(&v);
	double dt = gos_now_s() - t0;
	if (keep)
		gos_jseek_keep(js, m, seq);
	else
		gos_map_destroy(m);
	return dt;
}

static void report(const char *what, double *t, int n, double tokens)
{
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	printf("%-34s %10.0f %10.0f %10.0f %14.0f\n", what, t[n / 2] * 1e3,
	       t[(int)((n - 1) * 0.99)] * 1e3, t[n - 1] * 1e3, tokens);
}

int gos_bench_seek(int argc, char **argv)
{
	const char *base = "/var/tmp";
	uint64_t n = 1000000;
	int seeks = 30;
	static const struct option longopts[] = {
		{"tokens", required_argument, NULL, 't'},
		{"seeks", required_argument, NULL, 'k'},
		{"state-dir", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 't' || c == 'k') {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end || v < (c == 't' ? 1000u : 2u) || v > 100000000) {
				fprintf(stderr, "gos-bench seek: --%s wants a number (tokens >= 1000, seeks >= 2)\n",
				        c == 't' ? "tokens" : "seeks");
				return 2;
			}
			if (c == 't')
				n = v;
			else
				seeks = (int)v;
		} else if (c == 's') {
			base = optarg;
		} else if (c == 'h') {
			printf("usage: gos-bench seek [--tokens N] [--seeks K] [--state-dir DIR]\n"
			       "p50/p99 of the seek worker building the map at a seq of an N-token\n"
			       "session (default 1000000, 30 seeks each), plus one full read: cold at\n"
			       "random seqs (nearest checkpoint + journal replay) and warm, scrubbing\n"
			       "forward 1%% at a time from the map built last. The session is made in a\n"
			       "fresh dir under DIR (default /var/tmp) and removed.\n");
			return 0;
		} else {
			return 2;
		}
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/gos-bench-seek-XXXXXX", base);
	if (!mkdtemp(dir)) {
		fprintf(stderr, "gos-bench seek: cannot create a dir in %s: %s\n", base, strerror(errno));
		return 1;
	}
	uint64_t ckpt, segs;
	if (!gos_bench_make_session(dir, n, &ckpt, &segs))
		return 1;
	struct gos_jseek *js = gos_jseek_create(dir, &(struct gos_map_opts){.max_tokens = n});
	double t0 = gos_now_s();
	gos_jseek_refresh(js, UINT64_MAX);   /* the session is closed: all of it is durable */
	double index_s = gos_now_s() - t0;
	struct gos_jseek_range g;
	gos_jseek_range(js, &g);
	uint64_t last = g.last_event_seq;
	double *cold = calloc((size_t)seeks, sizeof(*cold));
	double *warm = calloc((size_t)seeks, sizeof(*warm));
	if (!cold || !warm)
		abort();
	srand(11);
	uint64_t cold_tok = 0, warm_tok = 0, tokens;
	for (int i = 0; i < seeks; i++) {
		uint64_t s = 1 + (uint64_t)(((double)rand() / RAND_MAX) * (double)(last - 1));
		if ((cold[i] = seek_once(js, dir, s, false, &tokens)) < 0)
			return 1;
		cold_tok += tokens;
	}
	uint64_t step = last / 100 ? last / 100 : 1, s = last / 4;
	if (seek_once(js, dir, s, true, &tokens) < 0)   /* the scrub's starting point */
		return 1;
	for (int i = 0; i < seeks; i++) {
		s = s + step <= last ? s + step : last;
		if ((warm[i] = seek_once(js, dir, s, true, &tokens)) < 0)
			return 1;
		warm_tok += tokens;
	}
	gos_jseek_destroy(js);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "gos-bench seek: could not remove %s\n", dir);
	printf("gos-bench seek: %" PRIu64 "-token session (last seq %" PRIu64 "), %d seeks each; "
	       "indexing the journal once took %.0f ms\n", n, last, seeks, index_s * 1e3);
	printf("%-34s %10s %10s %10s %14s\n", "", "p50 ms", "p99 ms", "max ms", "tokens/seek");
	report("cold (random seq)", cold, seeks, (double)cold_tok / seeks);
	report("warm (scrub forward 1%)", warm, seeks, (double)warm_tok / seeks);
	free(cold);
	free(warm);
	return 0;
}
