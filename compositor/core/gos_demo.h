/* The built-in demo stream: several concurrent synthetic "generations" with
 * realistic token texts, confidences and top alternatives, fed into the same
 * queue as the socket, while no producer is connected. */
#ifndef GOS_DEMO_H
#define GOS_DEMO_H

#include <stdbool.h>
#include <stdint.h>

#include "gos_queue.h"

/* Returns true while a real producer is connected (the demo then pauses). */
typedef bool (*gos_demo_busy_fn)(void *ctx);

/* Zero means default. */
struct gos_demo_opts {
	struct gos_queue *queue;     /* required */
	uint32_t streams;            /* concurrent generations (0: 4) */
	double tokens_per_s;         /* per stream (0: 24) */
	uint32_t seed;               /* 0: time-based */
	gos_demo_busy_fn busy;       /* may be NULL */
	void *ctx;
};

/* Fills `b` with the next `n` events of a deterministic demo sequence
 * (tokens and neural_state changes), as the demo thread does. For tests and
 * gos-bench; `state` starts zeroed and is reused between calls. */
struct gos_demo_state;
struct gos_demo_state *gos_demo_state_create(uint32_t streams, uint32_t seed);
void gos_demo_state_destroy(struct gos_demo_state *s);
void gos_demo_generate(struct gos_demo_state *s, struct gos_batch *b, uint32_t n, double now);

/* Starts the demo thread. NULL on failure. */
struct gos_demo *gos_demo_create(const struct gos_demo_opts *opts);
void gos_demo_destroy(struct gos_demo *d);   /* accepts NULL */

#endif
