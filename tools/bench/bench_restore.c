/* gos-bench restore: how long a restart takes to bring back a session of N
 * tokens (the newest checkpoint, then the journal after it), and what the
 * session costs on disk: bytes per token in the journal and in a checkpoint.
 * The session is made the way gos-compositor makes one (core thread +
 * journal thread, default checkpoint interval); the clock runs only around
 * gos_journal_restore, as gos-compositor calls it at start. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_bench.h"
#include "gos_core.h"
#include "gos_state.h"
#include "gos_time.h"

static _Atomic int synced;

static void on_sync(void *ctx, const struct gos_sync_ev *s, uint64_t tokens)
{
	(void)ctx;
	(void)s;
	(void)tokens;
	atomic_store(&synced, 1);
}

/* Feeds n token_activation events (4 streams, laid out) through a core with
 * the journal in dir; returns false on a set-up error. */
bool gos_bench_make_session(const char *dir, uint64_t n, uint64_t *ckpt_bytes, uint64_t *seg_bytes)
{
	char err[512];
	struct gos_state_opts so = {0};
	snprintf(so.dir, sizeof(so.dir), "%s", dir);
	struct gos_map *map;
	struct gos_state *st = gos_state_open(&so, &(struct gos_map_opts){.max_tokens = n}, &map,
	                                      err, sizeof(err));
	struct gos_queue *q = gos_queue_create(64);
	struct gos_journal *j;
	if (!st || !gos_state_start(st, map, q, on_sync, NULL, &j, err, sizeof(err))) {
		fprintf(stderr, "gos-bench restore: %s\n", err);
		return false;
	}
	struct gos_core *core = gos_core_create(&(struct gos_core_opts){
		.queue = q, .map = map, .on_sync = on_sync, .journal = j});
	atomic_store(&synced, 0);
	for (uint64_t i = 0; i < n;) {
		struct gos_batch *b = gos_queue_get_batch(q);
		for (int k = 0; k < 4096 && i < n; k++, i++) {
			char id[32], text[32], stream[16];
			snprintf(id, sizeof(id), "t%" PRIu64, i);
			snprintf(text, sizeof(text), " w%" PRIu64, i % 1000);
			snprintf(stream, sizeof(stream), "gen-%" PRIu64, i % 4);
			struct gos_event *e = gos_batch_push(b);
			e->type = GOS_EV_TOKEN;
			e->token = (struct gos_token_ev){
				.id = gos_arena_strndup(&b->arena, id, strlen(id)),
				.text = gos_arena_strndup(&b->arena, text, strlen(text)),
				.stream = gos_arena_strndup(&b->arena, stream, strlen(stream)),
				.timestamp = 1707345600.0 + (double)i * 0.02,
				.confidence = (float)(i % 1000) / 1000.0f, .logprob = NAN,
			};
		}
		if (i == n)
			gos_batch_push(b)->type = GOS_EV_SYNC;
		gos_queue_push(q, b);
	}
	while (!atomic_load(&synced))
		usleep(10000);
	gos_core_destroy(core);
	gos_state_close(st);           /* waits for a checkpoint being written */
	gos_map_destroy(map);
	gos_queue_destroy(q);
	struct gos_journal_files f;
	if (!gos_journal_list(dir, &f, err, sizeof(err)))
		return false;
	*ckpt_bytes = f.n_ckpt ? f.ckpt[f.n_ckpt - 1].bytes : 0;
	*seg_bytes = 0;
	for (size_t i = 0; i < f.n_seg; i++)
		*seg_bytes += f.seg[i].bytes;
	gos_journal_files_finish(&f);
	return true;
}

static double timed_restore(const char *dir, uint64_t n, struct gos_journal_restore_info *info)
{
	char err[512];
	double t0 = gos_now_s();
	struct gos_map *m = gos_journal_restore(dir, &(struct gos_map_opts){.max_tokens = n}, info,
	                                        err, sizeof(err));
	double dt = gos_now_s() - t0;
	struct gos_map_stats st = {0};
	if (m)
		gos_map_stats(m, &st);
	gos_map_destroy(m);
	if (!m || st.live_tokens != n) {
		fprintf(stderr, "gos-bench restore: restored %" PRIu64 " tokens of %" PRIu64 " (%s)\n",
		        st.live_tokens, n, m ? "lost some" : err);
		return -1;
	}
	return dt;
}

int gos_bench_restore(int argc, char **argv)
{
	const char *base = "/var/tmp";
	uint64_t sizes[8] = {1000000, 10000000};
	size_t n_sizes = 2;
	static const struct option longopts[] = {
		{"tokens", required_argument, NULL, 't'},
		{"state-dir", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 't') {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end || v < 1000 || v > 100000000) {
				fprintf(stderr, "gos-bench restore: --tokens wants 1000..100000000\n");
				return 2;
			}
			sizes[0] = v;
			n_sizes = 1;
		} else if (c == 's') {
			base = optarg;
		} else if (c == 'h') {
			printf("usage: gos-bench restore [--tokens N] [--state-dir DIR]\n"
			       "restart time of a session of 1M and 10M tokens (or N): the newest\n"
			       "checkpoint plus the journal after it, and the journal alone; bytes per\n"
			       "token in the journal and in a checkpoint. Sessions are made in a fresh\n"
			       "dir under DIR (default /var/tmp) and removed.\n");
			return 0;
		} else {
			return 2;
		}
	}
	printf("gos-bench restore: sessions of token_activation events (4 streams, laid out)\n");
	printf("%-12s %16s %18s %14s %14s %12s %12s\n", "tokens", "restore (ckpt) s",
	       "restore (journal) s", "journal B/tok", "ckpt B/tok", "ckpt seq", "replayed");
	for (size_t i = 0; i < n_sizes; i++) {
		uint64_t n = sizes[i];
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/gos-bench-restore-XXXXXX", base);
		if (!mkdtemp(dir)) {
			fprintf(stderr, "gos-bench restore: cannot create a dir in %s: %s\n", base,
			        strerror(errno));
			return 1;
		}
		uint64_t ckpt = 0, segs = 0;
		if (!gos_bench_make_session(dir, n, &ckpt, &segs))
			return 1;
		struct gos_journal_restore_info info, info2;
		double with = timed_restore(dir, n, &info);
		/* the journal alone: checkpoints moved aside (only when the journal
		 * still holds the whole session) */
		double alone = -1;
		char cmd[12600];
		struct gos_journal_files f;
		char err[256];
		bool whole = gos_journal_list(dir, &f, err, sizeof(err)) && f.n_seg && f.seg[0].seq <= 1;
		gos_journal_files_finish(&f);
		if (whole) {
			snprintf(cmd, sizeof(cmd), "mv '%s/checkpoint' '%s/checkpoint.off' && mkdir '%s/checkpoint'",
			         dir, dir, dir);
			if (system(cmd) == 0)
				alone = timed_restore(dir, n, &info2);
		}
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "gos-bench restore: could not remove %s\n", dir);
		if (with < 0)
			return 1;
		char alone_s[32] = "(trimmed)";
		if (alone >= 0)
			snprintf(alone_s, sizeof(alone_s), "%.2f", alone);
		printf("%-12" PRIu64 " %16.2f %18s %14.1f %14.1f %12" PRIu64 " %12" PRIu64 "\n", n, with,
		       alone_s, (double)segs / (double)n, (double)ckpt / (double)n, info.checkpoint_seq,
		       info.events);
		fflush(stdout);
	}
	return 0;
}
