/* Thread heartbeats: one atomic timestamp per long-lived thread of
 * gos-compositor in a small process-wide table, so that /health can tell a
 * thread that is alive from one that is stuck (in a lock, a system call, an
 * endless loop). Each thread beats at least every GOS_HB_WAIT_MS while it
 * waits for work (its waits are timed) and once per round of work; /health
 * reports one as stalled when its last beat is older than its bound.
 *
 * Test hook (tests only, documented in docs/runbook.md): with the
 * environment variable GOS_TEST_STALL=NAME:FILE, the thread NAME (see
 * gos_hb_name) stops in its next beat, without beating, for as long as FILE
 * exists, and goes on once it is removed.
 *
 * Threads: every call from any thread; a slot is beaten by its own thread. */
#ifndef GOS_HEARTBEAT_H
#define GOS_HEARTBEAT_H

#include <stdbool.h>

enum gos_hb {
	GOS_HB_INGEST = 0,    /* the producers' socket (net/ingest) */
	GOS_HB_CORE,          /* applies batches to the map */
	GOS_HB_BROADCAST,     /* builds viewers' deltas every tick */
	GOS_HB_WEB,           /* the WebSocket/HTTP service thread */
	GOS_HB_JOURNAL,       /* the journal writer */
	GOS_HB_RENDER,        /* the render loop (window or offscreen) */
	GOS_HB_COUNT_
};

/* The longest a thread may block waiting for work between two beats. */
#define GOS_HB_WAIT_MS 1000
/* The default bound: a beat older than this is a stalled thread. */
#define GOS_HB_BOUND_S 5.0

/* The calling thread starts as t (counted: two instances may overlap):
 * beats, and bound_s (0: GOS_HB_BOUND_S) is its bound from now on. */
void gos_hb_start(enum gos_hb t, double bound_s);
/* The thread is alive now. Cheap (one clock read and a store). */
void gos_hb_beat(enum gos_hb t);
/* The thread ends: once every instance has ended it leaves the table. */
void gos_hb_stop(enum gos_hb t);

/* "ingest", "core", "broadcast", "web", "journal", "render". */
const char *gos_hb_name(enum gos_hb t);

struct gos_hb_state {
	bool running;         /* started and not stopped */
	double age_s;         /* since the last beat */
	double bound_s;
	bool stalled;         /* running and age_s > bound_s */
};
void gos_hb_read(enum gos_hb t, struct gos_hb_state *out);

#endif
