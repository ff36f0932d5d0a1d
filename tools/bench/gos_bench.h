/* gos-bench subcommands: each file tools/bench_NAME.c provides one. */
#ifndef GOS_BENCH_H
#define GOS_BENCH_H

int gos_bench_ingest(int argc, char **argv);
int gos_bench_render(int argc, char **argv);
int gos_bench_compute(int argc, char **argv);
int gos_bench_bridge(int argc, char **argv);
int gos_bench_fanout(int argc, char **argv);
int gos_bench_restore(int argc, char **argv);

#endif
