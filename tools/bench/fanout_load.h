/* gos-bench fanout's load client: n WebSocket viewers on loopback, spread
 * over several processes (fork) so that the client is not what limits a
 * run, and each process's CPU is reported so that a saturated one shows.
 *
 * Each process runs one epoll loop over non-blocking sockets with a minimal
 * WebSocket client of its own (RFC 6455): the opening handshake (101 and
 * the Sec-WebSocket-Accept checked), frames parsed as they stream in
 * (extended lengths, fragmented messages, control frames between
 * fragments); pings are answered with masked pongs and a close with a
 * masked close, the only frames it sends. It keeps no message, only its
 * first bytes (type, "n"), except on the sampled viewers, which read every
 * "timestamp" of each token_visualization for the latency.
 *
 * Threads: one owner thread calls everything; the processes talk to it
 * through a socketpair each and shared memory. */
#ifndef FANOUT_LOAD_H
#define FANOUT_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FANOUT_LOAD_MAX_PROCS 32

/* Zero means default. */
struct fanout_load_opts {
	int port;                      /* the server, on 127.0.0.1 */
	const char *path;              /* NULL: "/ws" */
	int viewers;
	int procs;                     /* 0: one per 250 viewers, 1..8 */
	int sampled;                   /* viewers that measure latency; 0: 10 */
	int inflight;                  /* handshakes in progress at once, over all
	                                * processes; 0: 128 (gos counts each in its
	                                * HTTP budget, 256 by default, until upgraded) */
};

/* What the processes saw; counts are of the measured window, the viewer
 * states of the end. */
struct fanout_load_result {
	int procs;
	int ready;                     /* viewers that got a first message */
	int failed;                    /* could not connect or were refused */
	int closed;                    /* connected, then closed or broken */
	uint64_t messages;             /* token_visualization messages received */
	uint64_t deliveries;           /* tokens in them (their "n") */
	uint64_t data_messages;        /* every data message received */
	uint64_t bytes;                /* payload bytes received */
	uint64_t resyncs;
	double cpu_s[FANOUT_LOAD_MAX_PROCS];  /* per process, in the window */
	double cpu_max_s, cpu_sum_s;
	double *lat;                   /* latencies in seconds, sorted (owned) */
	size_t n_lat;
};

struct fanout_load;

/* Forks the processes, which start connecting at once. NULL with one
 * sentence in err when a process cannot be started. */
struct fanout_load *fanout_load_start(const struct fanout_load_opts *opts, char *err,
                                      size_t errlen);
/* Waits until every viewer got its first message or failed, or timeout_s
 * passed; returns how many are ready. */
int fanout_load_wait_ready(struct fanout_load *l, double timeout_s);
/* Starts (on) or ends the measured window in every process; returns once
 * each process has acknowledged. */
void fanout_load_measure(struct fanout_load *l, bool on);
/* After the window: gathers what the processes counted (res->lat is the
 * caller's to free), then ends them. */
void fanout_load_collect(struct fanout_load *l, struct fanout_load_result *res);
/* Ends the processes if still running and frees. Accepts NULL. */
void fanout_load_destroy(struct fanout_load *l);

#endif
