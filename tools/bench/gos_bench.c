/* gos-bench: the one benchmark program; one subcommand per area. */
#include <stdio.h>
#include <string.h>

#include "gos_bench.h"

struct bench_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *what;
};

static const struct bench_cmd cmds[] = {
	{"ingest", gos_bench_ingest, "events/s from producer processes through the socket into the map state"},
	{"render", gos_bench_render, "frame times headless for 10k/100k/1M tokens, and under a 100k events/s flood"},
	{"compute", gos_bench_compute, "tokens/s of the GPU token pipeline (upload, project, cull) and its CPU reference"},
	{"bridge", gos_bench_bridge, "SSE parser MB/s; tokens/s gos-bridge carries from a fake OpenAI server to the compositor"},
	{"fanout", gos_bench_fanout, "browser viewers (1 to 10,000) fed 1000 events/s, against a Node ws peer"},
	{"restore", gos_bench_restore, "restart time of a 1M- and 10M-token session (journal + checkpoint), bytes per token"},
	{"viewer", gos_bench_viewer, "a late joiner in headless chromium on a 1M-token map (gos.v1 and gos.v2), WebGL2 vs Canvas 2D frame time"},
	{"search", gos_bench_search, "the search index over a 1M-token map: build time, bytes/token, p50/p99 of searches"},
	{"style", gos_bench_style, "native frame times while color modes, filters and search highlights change on a 1M-token map"},
	{"failover", gos_bench_failover, "kill -9 of a NATS cluster's leader, round after round, under load: takeover time, events lost or applied twice"},
	{"relay", gos_bench_relay, "producer -> viewer latency through NATS and gos-relay (1, 2, 4), beside the socket and the compositor alone"},
	{"seek", gos_bench_seek, "p50/p99 of the seek worker building the map at a seq of a 1M-token session, cold and warm"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: gos-bench SUBCOMMAND [OPTIONS]   (gos-bench SUBCOMMAND --help)\n\nsubcommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].what);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "gos-bench: unknown subcommand '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
