/* gos-bench seek: how long the seek worker's cold path takes to build the
 * map as it was at a random seq of an N-token session (default 1M): the
 * nearest checkpoint at or below it (gos_map_image_read), then the journal
 * up to it (gos_jreader + gos_jreplay, as compositor/web/gos_seek.c does),
 * plus one full read of the map (what a snapshot serializes from). p50 and
 * p99 over the seeks; the worker's cache (scrubbing forward from the last
 * map built) is faster and not measured here. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_bench.h"
#include "gos_journal.h"
#include "gos_time.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The map at seq s: seconds, or -1. */
static double seek_once(const char *dir, const struct gos_journal_files *f, uint64_t n,
                        uint64_t s, uint64_t *tokens)
{
	double t0 = gos_now_s();
	struct gos_map *m = NULL;
	uint64_t base = 0;
	for (size_t i = f->n_ckpt; i-- > 0 && !m;) {
		if (f->ckpt[i].seq > s)
			continue;
		int fd = open(f->ckpt[i].path, O_RDONLY | O_CLOEXEC);
		char err[256];
		m = fd >= 0 ? gos_map_image_read(fd, &(struct gos_map_opts){.max_tokens = n}, err,
		                                 sizeof(err)) : NULL;
		if (fd >= 0)
			close(fd);
		if (m)
			base = f->ckpt[i].seq;
	}
	if (!m)
		m = gos_map_create(&(struct gos_map_opts){.max_tokens = n});
	struct gos_jreplay *rp = gos_jreplay_create(m, base, s);
	struct gos_jreader *rd = gos_jreader_create(dir);
	gos_jreader_at(rd, NULL);
	struct gos_jrec rec;
	struct gos_jpos pos;
	while (gos_jreader_next(rd, &rec, &pos, 0) && gos_jreplay_feed(rp, &rec))
		;
	gos_jreplay_destroy(rp);
	gos_jreader_destroy(rd);
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	*tokens = v.n_tokens;
	gos_map_view_finish(&v);
	gos_map_destroy(m);
	return gos_now_s() - t0;
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
			       "p50/p99 of building the map at a random seq of an N-token session\n"
			       "(default 1000000, 30 seeks): nearest checkpoint + journal replay + one\n"
			       "full read, the seek worker's cold path. The session is made in a fresh\n"
			       "dir under DIR (default /var/tmp) and removed.\n");
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
	struct gos_journal_files f;
	char err[256];
	if (!gos_journal_list(dir, &f, err, sizeof(err)) || !f.n_seg) {
		fprintf(stderr, "gos-bench seek: %s\n", err);
		return 1;
	}
	/* the session's last seq: the newest checkpoint's, or about 2 per token */
	uint64_t last = 2 * n;
	double *t = calloc((size_t)seeks, sizeof(*t));
	srand(11);
	uint64_t tok_sum = 0;
	for (int i = 0; i < seeks; i++) {
		uint64_t s = 1 + (uint64_t)(((double)rand() / RAND_MAX) * (double)(last - 1));
		uint64_t tokens = 0;
		t[i] = seek_once(dir, &f, n, s, &tokens);
		tok_sum += tokens;
	}
	gos_journal_files_finish(&f);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "gos-bench seek: could not remove %s\n", dir);
	qsort(t, (size_t)seeks, sizeof(*t), cmp_double);
	double p50 = t[seeks / 2], p99 = t[(int)((seeks - 1) * 0.99)];
	printf("gos-bench seek: %" PRIu64 "-token session, %d seeks to random seqs (cold: checkpoint + "
	       "journal + full read)\n", n, seeks);
	printf("%-10s %-10s %-10s %-14s\n", "p50 ms", "p99 ms", "max ms", "tokens/seek");
	printf("%-10.0f %-10.0f %-10.0f %-14.0f\n", p50 * 1e3, p99 * 1e3, t[seeks - 1] * 1e3,
	       (double)tok_sum / seeks);
	free(t);
	return 0;
}
