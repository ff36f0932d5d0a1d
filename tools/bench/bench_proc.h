/* gos-bench's child processes (servers it starts and measures) and clocks,
 * shared by the fanout and relay benchmarks. */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

struct server {
	pid_t pid;
	int port;
	int out_fd;
	pthread_t drain;
	bool drain_started;
};

/* CLOCK_REALTIME seconds (what producers stamp tokens with). */
double bench_wall(void);

/* Starts argv with stdout+stderr on a pipe and waits (15 s) for a line
 * holding `marker` followed by the port number, then drains the pipe.
 * no_vulkan: the child sees no Vulkan driver. */
bool bench_server_start(struct server *s, char *const argv[], const char *marker, bool no_vulkan);

/* SIGTERM, then SIGKILL after 4 s; joins the drain. */
void bench_server_stop(struct server *s);

/* utime + stime of a process, in seconds (NAN: gone). */
double bench_cpu_seconds(pid_t pid);

#endif
