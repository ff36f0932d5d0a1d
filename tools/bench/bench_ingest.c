/* gos-bench ingest: events/s from producer processes through the Unix socket
 * into the map state (ingest thread parse + core thread apply), the same
 * pieces gos-compositor runs. Producers are forked processes that pre-build
 * their lines, then send them as fast as the socket takes them and end with
 * a sync barrier: the clock stops when every producer's barrier is answered,
 * i.e. when every event is on the map. Also reported: events per CPU-second
 * of the compositor side alone (ingest + core threads), the "on one core"
 * figure. Each case runs twice in the same run: memory only (--no-journal)
 * and durable (the journal in a fresh state dir, every event fdatasync'd
 * before the final sync is answered), side by side. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gos_bench.h"
#include "gos_client.h"
#include "gos_core.h"
#include "gos_ingest.h"
#include "gos_map.h"
#include "gos_state.h"
#include "gos_time.h"

/* Builds `count` token_activation lines of about `bytes` bytes each. */
static char *make_lines(uint64_t count, uint32_t bytes, uint32_t producer, size_t *len_out)
{
	size_t cap = count * (bytes + 64) + 1;
	char *buf = malloc(cap);
	if (!buf)
		abort();
	size_t len = 0;
	for (uint64_t i = 0; i < count; i++) {
		char *p = buf + len;
		int n = snprintf(p, cap - len,
		                 "{\"type\":\"token_activation\",\"token_id\":\"p%u-%llu\",\"token_text\":\" word\","
		                 "\"timestamp\":1707345600.5,\"confidence\":0.%03u,\"stream\":\"bench-%u\"",
		                 producer, (unsigned long long)i, (unsigned)(i % 1000), producer);
		int pad = (int)bytes - n - 11;
		if (pad > 0) {
			n += snprintf(p + n, cap - len - (size_t)n, ",\"pad\":\"");
			memset(p + n, 'x', (size_t)pad);
			n += pad;
			p[n++] = '"';
		}
		p[n++] = '}';
		p[n++] = '\n';
		len += (size_t)n;
	}
	*len_out = len;
	return buf;
}

/* Child: say ready, wait for the go byte on `go_fd`, connect, send, sync. */
static int producer(const char *path, const char *lines, size_t len, int ready_fd, int go_fd,
                    uint64_t expect)
{
	char go;
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1)
		return 1;
	char err[256];
	struct gos_client *c = gos_client_connect(path, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "gos-bench: %s\n", err);
		return 1;
	}
	const size_t chunk = 256 * 1024;
	for (size_t off = 0; off < len;) {
		size_t n = len - off < chunk ? len - off : chunk;
		/* cut at a line end so gos_client_send adds nothing */
		while (n < len - off && lines[off + n - 1] != '\n')
			n--;
		if (!gos_client_send(c, lines + off, n))
			return 1;
		off += n;
	}
	struct gos_sync_result r;
	if (!gos_client_sync(c, 600000, &r) || r.applied != expect || r.rejected) {
		fprintf(stderr, "gos-bench: producer saw applied=%llu rejected=%llu, expected %llu\n",
		        (unsigned long long)r.applied, (unsigned long long)r.rejected,
		        (unsigned long long)expect);
		return 1;
	}
	gos_client_close(c);
	return 0;
}

struct rig {
	struct gos_queue *queue;
	struct gos_map *map;
	struct gos_state *state;
	struct gos_journal *journal;
	struct gos_core *core;
	struct gos_ingest *ingest;
};

static void on_sync(void *ctx, const struct gos_sync_ev *s, uint64_t tokens)
{
	struct rig *r = ctx;
	gos_ingest_sync_done(r->ingest, s->conn, s->applied, s->rejected, tokens);
}

static double cpu_self(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* rate: events/s of wall time; per_cpu: events per CPU-second spent by the
 * compositor side (ingest + core threads; producers are other processes). */
/* state_dir NULL: memory only; else the journal in that (empty) dir, and
 * *disk the bytes it wrote. */
static int run_case(uint32_t bytes, uint32_t producers, uint64_t per_producer,
                    const char *state_dir, double *rate, double *per_cpu, uint64_t *disk)
{
	char path[128];
	snprintf(path, sizeof(path), "/tmp/gos-bench-%d.sock", (int)getpid());
	/* Producers fork before the rig exists, so the rig's memory is not
	 * shared copy-on-write with them (that would bill page faults to it). */
	int go[2], ready[2];
	if (pipe(go) < 0 || pipe(ready) < 0)
		return 1;
	pid_t pids[64];
	for (uint32_t p = 0; p < producers; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			close(go[1]);
			close(ready[0]);
			size_t len;
			char *lines = make_lines(per_producer, bytes, p, &len);
			_exit(producer(path, lines, len, ready[1], go[0], per_producer));
		}
	}
	close(go[0]);
	close(ready[1]);
	for (uint32_t p = 0; p < producers; p++) {
		char r;
		if (read(ready[0], &r, 1) != 1)
			return 1;
	}
	close(ready[0]);
	struct rig r = {0};
	char err[512];
	struct gos_state_opts so = {.no_journal = state_dir == NULL};
	if (state_dir)
		snprintf(so.dir, sizeof(so.dir), "%s", state_dir);
	r.state = gos_state_open(&so, &(struct gos_map_opts){0}, &r.map, err, sizeof(err));
	r.queue = gos_queue_create(64);
	if (!r.state || !gos_state_start(r.state, r.map, r.queue, on_sync, &r, &r.journal,
	                                 err, sizeof(err))) {
		fprintf(stderr, "gos-bench: %s\n", err);
		return 1;
	}
	r.core = gos_core_create(&(struct gos_core_opts){
		.queue = r.queue, .map = r.map, .on_sync = on_sync, .journal = r.journal, .ctx = &r});
	r.ingest = gos_ingest_create(&(struct gos_ingest_opts){
		.socket_path = path, .queue = r.queue}, err, sizeof(err));
	if (!r.ingest) {
		fprintf(stderr, "gos-bench: %s\n", err);
		return 1;
	}
	double t0 = gos_now_s(), c0 = cpu_self();
	for (uint32_t p = 0; p < producers; p++)
		if (write(go[1], "g", 1) != 1)
			return 1;
	int failed = 0;
	for (uint32_t p = 0; p < producers; p++) {
		int st;
		waitpid(pids[p], &st, 0);
		failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	double dt = gos_now_s() - t0, dc = cpu_self() - c0;
	close(go[1]);
	struct gos_map_stats ms;
	gos_map_stats(r.map, &ms);
	*disk = 0;
	if (r.journal) {
		struct gos_journal_stats js;
		gos_journal_stats(r.journal, &js);
		*disk = js.bytes;
	}
	gos_core_destroy(r.core);
	gos_state_close(r.state);
	gos_ingest_destroy(r.ingest);
	gos_map_destroy(r.map);
	gos_queue_destroy(r.queue);
	if (failed || ms.live_tokens != (uint64_t)producers * per_producer) {
		fprintf(stderr, "gos-bench: lost events: %llu on the map, %llu sent\n",
		        (unsigned long long)ms.live_tokens,
		        (unsigned long long)producers * per_producer);
		return 1;
	}
	*rate = (double)producers * (double)per_producer / dt;
	*per_cpu = (double)producers * (double)per_producer / dc;
	return 0;
}

int gos_bench_ingest(int argc, char **argv)
{
	uint64_t total = 2000000;
	static const struct option longopts[] = {
		{"events", required_argument, NULL, 'n'},
		{"bytes", required_argument, NULL, 'b'},
		{"producers", required_argument, NULL, 'p'},
		{"state-dir", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	uint32_t only_bytes = 0, only_prods = 0;  /* 0: every case */
	const char *base = "/var/tmp";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'n') {
			total = strtoull(optarg, NULL, 10);
			if (total < 1000 || total > 100000000) {
				fprintf(stderr, "gos-bench ingest: --events wants 1000..100000000\n");
				return 2;
			}
		} else if (c == 'b' || c == 'p') {
			unsigned long v = strtoul(optarg, NULL, 10);
			if (c == 'b' && v != 120 && v != 400) {
				fprintf(stderr, "gos-bench ingest: --bytes wants 120 or 400\n");
				return 2;
			}
			if (c == 'p' && v != 1 && v != 4) {
				fprintf(stderr, "gos-bench ingest: --producers wants 1 or 4\n");
				return 2;
			}
			*(c == 'b' ? &only_bytes : &only_prods) = (uint32_t)v;
		} else if (c == 's') {
			base = optarg;
		} else if (c == 'h') {
			printf("usage: gos-bench ingest [--events N] [--bytes 120|400] [--producers 1|4]\n"
			       "                        [--state-dir DIR]\n"
			       "events/s through the Unix socket into the map state, for 120- and\n"
			       "400-byte token_activation events from 1 and 4 producer processes\n"
			       "(default: every case, 2000000 events each; --bytes/--producers\n"
			       "run only the matching cases, e.g. for a profiler). Each case runs\n"
			       "memory only and with the journal (a fresh dir under DIR, default\n"
			       "/var/tmp: put it on the disk to measure) side by side.\n");
			return 0;
		} else {
			return 2;
		}
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("gos-bench ingest: %llu events per case, %ld CPUs; ingest thread parses, core thread applies\n",
	       (unsigned long long)total, cpus);
	printf("%-12s %-10s %14s %14s %8s %12s %18s %18s\n", "event bytes", "producers",
	       "memory ev/s", "journal ev/s", "ratio", "disk B/ev", "memory ev/CPU-s",
	       "journal ev/CPU-s");
	static const uint32_t sizes[] = {120, 400};
	static const uint32_t prods[] = {1, 4};
	for (size_t i = 0; i < 2; i++) {
		for (size_t j = 0; j < 2; j++) {
			if ((only_bytes && sizes[i] != only_bytes) || (only_prods && prods[j] != only_prods))
				continue;
			char dir[4096];
			snprintf(dir, sizeof(dir), "%s/gos-bench-journal-XXXXXX", base);
			if (!mkdtemp(dir)) {
				fprintf(stderr, "gos-bench ingest: cannot create a dir in %s: %s\n", base,
				        strerror(errno));
				return 1;
			}
			double rate, per_cpu, jrate, jper_cpu;
			uint64_t disk = 0, unused;
			if (run_case(sizes[i], prods[j], total / prods[j], NULL, &rate, &per_cpu, &unused) ||
			    run_case(sizes[i], prods[j], total / prods[j], dir, &jrate, &jper_cpu, &disk))
				return 1;
			char cmd[4200];
			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
			if (system(cmd) != 0)
				fprintf(stderr, "gos-bench ingest: could not remove %s\n", dir);
			printf("%-12u %-10u %14.0f %14.0f %7.0f%% %12.1f %18.0f %18.0f\n", sizes[i], prods[j],
			       rate, jrate, 100.0 * jrate / rate, (double)disk / (double)(total / prods[j] * prods[j]),
			       per_cpu, jper_cpu);
			fflush(stdout);
		}
	}
	return 0;
}
