/* Internals of the ingest (gos_ingest.h) shared by its files:
 *   gos_ingest.c    create/destroy, the thread's loop, batches, stats
 *   ingest_conn.c   connections: accept (limits, EMFILE), reading through
 *                   the framer into lines, the input budget, progress
 *                   timeouts, close
 *   ingest_reply.c  what goes back: each connection's output buffer, and the
 *                   inbox of replies that other threads hand in
 * Everything here belongs to the ingest thread, and its functions run on
 * it, except the fields gos_ingest.lock guards and ingest_wake(). */
#ifndef GOS_INGEST_INTERNAL_H
#define GOS_INGEST_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_frame.h"
#include "gos_ingest.h"

#define INGEST_READ_CHUNK      (64u * 1024u)       /* bytes per recv() */
#define INGEST_BUDGET_QUIET_NS (1000 * 1000000LL)  /* ends an input-budget episode */

/* A circular list with a sentinel; unlinked nodes have NULL links. */
struct node {
	struct node *prev, *next;
};

static inline void node_init(struct node *s)
{
	s->prev = s->next = s;
}

static inline bool node_empty(const struct node *s)
{
	return s->next == s;
}

static inline void node_append(struct node *s, struct node *n)
{
	n->prev = s->prev;
	n->next = s;
	s->prev->next = n;
	s->prev = n;
}

static inline void node_remove(struct node *n)
{
	if (!n->next)
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

/* A barrier's reply shape, answered in order (sync replies). */
struct pending_sync {
	enum gos_geo_dialect dialect;   /* GOS_GEO_NONE: gos's own sync line */
	uint64_t sequence, ignored;
	struct pending_sync *next;
};

/* One producer connection. */
struct conn {
	struct gos_ingest *in;
	uint64_t id;
	int fd;
	struct gos_frame *fr;     /* NULL once reading is over for good */
	size_t held;              /* gos_frame_held(fr), as counted in in->held */
	uint64_t line_no, accepted, rejected;
	enum gos_framing framing;  /* replies' framing: the framer's, kept after it is gone */
	enum gos_geo_dialect dialect;  /* Geometry OS shape it speaks (replies), once seen */
	uint64_t sequence;        /* the Python side's last sequence (its error replies) */
	uint64_t ignored;         /* Geometry OS messages counted and left alone */
	struct gos_geo_conn geo;
	struct pending_sync *syncs, **syncs_tail;  /* sync barriers not answered, in order */
	char *out;
	size_t out_len, out_off, out_cap;
	uint32_t pending_replies;  /* sync/screenshot barriers not answered yet */
	bool eof;                 /* reading is over: EOF, bad framing or a timeout */
	bool parked;              /* waits for input buffer space */
	bool peek;                /* this read consumes only what the framer took */
	uint32_t interest;        /* current epoll mask; 0: not registered */
	bool closing;             /* closed at the end of this loop round */
	int64_t progress_ns;      /* last byte taken inside a line or frame */
	int64_t frame_ns;         /* when the frame it is inside began */
	struct node partial;      /* in in->partial while inside a line or frame */
	struct node framed;       /* in in->framed while inside a length-prefixed frame */
	struct node park;         /* in in->parked while parked */
	struct conn *next;
};

#define CONN_OF(n, member) ((struct conn *)(void *)((char *)(n) - offsetof(struct conn, member)))

/* One stretch of refusals (or waits), logged when it starts and ends rather
 * than once per producer. */
struct episode {
	bool active;
	uint64_t count;
};

struct reply;  /* ingest_reply.c */

struct gos_ingest {
	char *path;
	int listen_fd, epoll_fd, wake_fd;
	int reserve_fd;           /* /dev/null, given up to refuse a producer at EMFILE */
	struct gos_queue *queue;
	size_t batch_events;
	int max_conns;
	int timeout_ms;
	int frame_timeout_ms;
	enum gos_framing framing;
	size_t budget;
	pthread_t thread;
	bool thread_started;

	/* ingest thread only */
	struct conn *conns;
	int n_conns;
	uint64_t next_id;
	struct gos_batch *batch;
	struct gos_ingest_stats local;
	char *scratch;            /* INGEST_READ_CHUNK bytes: every read lands here first */
	bool stopping;            /* the queue closed under a line */
	/* Input budget: every connection's gos_frame_held() adds up in `held`.
	 * One connection at a time, the lane, may grow to lane_cap whatever the
	 * others hold; the rest share what is left of the budget after keeping
	 * the lane's room free, so held never exceeds the budget and a line in
	 * the lane can always complete (no deadlock when the budget is full). */
	size_t held, lane_cap;
	struct conn *lane;
	struct node parked;       /* FIFO of connections waiting for space */
	struct node partial;      /* connections inside a line, oldest progress first */
	struct node framed;       /* connections inside a frame, oldest frame first */
	size_t burst_bytes;       /* most held since the last malloc_trim */
	int burst_conns;          /* most connections since the last malloc_trim */
	bool accept_paused;       /* listen fd out of epoll until accept_resume_ns */
	int64_t accept_resume_ns;
	struct episode ep_fd, ep_limit, ep_budget;
	int64_t budget_quiet_since;  /* nobody has waited since (0: someone waits) */

	pthread_mutex_t lock;     /* guards: stop, replies, published */
	bool stop;
	struct reply *replies, **replies_tail;
	struct gos_ingest_stats published;
};

/* ---- gos_ingest.c ---- */

/* Hands the current batch to the queue (waiting while it is full) and takes
 * a fresh one. False when the queue was closed. */
bool ingest_flush_batch(struct gos_ingest *in);

/* ---- ingest_conn.c ---- */

/* Accepts every waiting producer, refusing those past max_connections or
 * out of file descriptors (then the listen fd pauses until accept_resume_ns). */
void ingest_accept_all(struct gos_ingest *in, int64_t now);

/* Puts the listen fd back into epoll after an accept pause. */
void ingest_accept_resume(struct gos_ingest *in);

/* Reads what c has sent, within the input budget. False when the queue was
 * closed (the thread stops). */
bool ingest_conn_read(struct gos_ingest *in, struct conn *c);

/* Closes c (marks it closing, for ingest_sweep()) once it has nothing left
 * to do; otherwise updates what epoll watches for it. */
void ingest_maybe_close(struct gos_ingest *in, struct conn *c);

/* Closes every connection marked closing: the end of a loop round. */
void ingest_sweep(struct gos_ingest *in);

/* Frees c (fd, framer, buffers) without any bookkeeping: for destroy. */
void ingest_conn_free(struct conn *c);

/* Times out the connections stalled inside a line or frame. */
void ingest_expire_stalled(struct gos_ingest *in, int64_t now);

/* Ends the input-budget log episode after a quiet INGEST_BUDGET_QUIET_NS. */
void ingest_budget_episode_check(struct gos_ingest *in, int64_t now);

/* ---- ingest_reply.c ---- */

/* Appends one reply (a JSON object) to c's output buffer, framed as c's
 * input is: a newline after it, or a 4-byte length before it. */
void ingest_out_append(struct conn *c, const char *s, size_t n);

/* The wall clock in milliseconds (Geometry OS replies' timestamp). */
uint64_t ingest_now_ms(void);

/* Sends what c's output buffer holds, as far as the socket takes it; a
 * peer that has gone marks c eof. */
void ingest_out_flush(struct conn *c);

/* Bytes in c's output buffer not sent yet. */
static inline size_t ingest_out_pending(const struct conn *c)
{
	return c->out_len - c->out_off;
}

/* Moves the replies other threads handed in to their connections. */
void ingest_drain_replies(struct gos_ingest *in);

/* Frees the replies nobody took: for destroy. */
void ingest_free_replies(struct gos_ingest *in);

/* Any thread: wakes the ingest thread (wake_fd). */
void ingest_wake(struct gos_ingest *in);

#endif
