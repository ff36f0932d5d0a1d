/* gos-bench's child processes (servers it starts and measures) and clocks,
 * shared by the fanout and relay benchmarks. */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <pthread.h>
#include <stdatomic.h>
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

/* A producer writing `rate` token events a second, each stamped with the
 * wall clock when written, to the compositor's socket (sock) or to NATS
 * JetStream (sock NULL: url, cluster), until stop; run bench_feed_main on a
 * thread. Tokens b0, b1, ... on a 100-wide grid. */
struct bench_feed {
	const char *sock;              /* the socket, or NULL: NATS */
	const char *url;
	const char *cluster;           /* NATS: each row its own streams */
	double rate;
	const char *prefix;            /* token ids' prefix (NULL: "b") */
	bool sync;                     /* NATS: after stop, wait until all is applied */
	_Atomic bool stop;
	bool ok;
	atomic_uint_fast64_t sent;     /* events sent */
	bool synced;                   /* sync: confirmed applied */
	char err[256];
};

/* The gos-compositor and gos-relay beside this gos-bench (build tree or
 * install: ../compositor/ from its folder), for --compositor and --relay. */
void bench_default_paths(char *compositor, size_t clen, char *relay, size_t rlen);

/* Room for many sockets (the soft descriptor limit up to the hard one);
 * SIGPIPE ignored. */
void bench_raise_limits(void);

/* nats-server -js on a free loopback port with its store in dir/js; url
 * receives nats://127.0.0.1:PORT. False (nats reaped) when it did not start. */
bool bench_nats_start(struct server *nats, const char *dir, char *url, size_t urllen);

/* rm -rf dir (a mkdtemp folder of the benchmark's). */
void bench_remove_dir(const char *dir);

/* GET path from 127.0.0.1:port; the body in out (NUL-terminated). False
 * when the server cannot be reached or answers no 200/503. */
bool bench_http_get(int port, const char *path, char *out, size_t outlen);

void *bench_feed_main(void *arg);

#endif
