/* gos-bench subcommands: each file tools/bench_NAME.c provides one. */
#ifndef GOS_BENCH_H
#define GOS_BENCH_H

int gos_bench_ingest(int argc, char **argv);
int gos_bench_render(int argc, char **argv);
int gos_bench_style(int argc, char **argv);
int gos_bench_compute(int argc, char **argv);
int gos_bench_bridge(int argc, char **argv);
int gos_bench_fanout(int argc, char **argv);
int gos_bench_relay(int argc, char **argv);
int gos_bench_failover(int argc, char **argv);
int gos_bench_restore(int argc, char **argv);
int gos_bench_seek(int argc, char **argv);
int gos_bench_search(int argc, char **argv);
int gos_bench_viewer(int argc, char **argv);

#include <stdbool.h>
#include <stdint.h>
/* bench_restore.c: a session of n token events journaled in dir (core +
 * journal threads, default checkpoints); the newest checkpoint's and all
 * segments' bytes. */
bool gos_bench_make_session(const char *dir, uint64_t n, uint64_t *ckpt_bytes, uint64_t *seg_bytes);

#endif
