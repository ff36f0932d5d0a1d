/* Unix-socket ingest thread: epoll over every producer, framing by
 * gos_frame, per-connection replies, batches into the core's queue.
 * What producers can hold is bounded: incomplete lines share one memory
 * budget, a connection that stalls inside a line is timed out, and running
 * out of file descriptors refuses producers instead of spinning. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gos_frame.h"
#include "gos_ingest.h"
#include "gos_time.h"

#define READ_CHUNK         (64u * 1024u)
#define READ_BUDGET        (1u << 20)       /* bytes per connection per wakeup */
#define OUT_HIGH_WATER     (1u << 20)       /* stop reading while replies pile up */
#define OUT_KEEP           4096u            /* reply buffer kept once flushed */
#define BATCH_ARENA_LIMIT  (8u << 20)
#define MAX_EVENTS         64
#define DEFAULT_BUDGET     ((size_t)64 << 20)
#define DEFAULT_TIMEOUT_MS 10000
#define ACCEPT_BACKOFF_NS  (100 * 1000000LL)
#define BUDGET_QUIET_NS    (1000 * 1000000LL)
#define TRIM_BYTES         ((size_t)4 << 20)  /* a burst worth giving back to the system */
#define TRIM_CONNS         256

/* A circular list with a sentinel; unlinked nodes have NULL links. */
struct node {
	struct node *prev, *next;
};

struct conn {
	struct gos_ingest *in;
	uint64_t id;
	int fd;
	struct gos_frame *fr;     /* NULL once reading is over for good */
	size_t held;              /* gos_frame_held(fr), as counted in in->held */
	uint64_t line_no, accepted, rejected;
	char *out;
	size_t out_len, out_off, out_cap;
	uint32_t pending_replies;  /* sync/screenshot barriers not answered yet */
	bool eof;                 /* reading is over: EOF, bad framing or a timeout */
	bool parked;              /* waits for input buffer space */
	bool peek;                /* this read consumes only what the framer took */
	uint32_t interest;        /* current epoll mask; 0: not registered */
	bool closing;             /* closed at the end of this loop round */
	int64_t progress_ns;      /* last byte taken inside a line or frame */
	struct node partial;      /* in in->partial while inside a line or frame */
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

struct reply {
	uint64_t conn;
	char *text;
	struct reply *next;
};

struct gos_ingest {
	char *path;
	int listen_fd, epoll_fd, wake_fd;
	int reserve_fd;           /* /dev/null, given up to refuse a producer at EMFILE */
	struct gos_queue *queue;
	size_t batch_events;
	int max_conns;
	int timeout_ms;
	size_t budget;
	pthread_t thread;
	bool thread_started;

	/* ingest thread only */
	struct conn *conns;
	int n_conns;
	uint64_t next_id;
	struct gos_batch *batch;
	struct gos_ingest_stats local;
	char *scratch;            /* READ_CHUNK bytes: every read lands here first */
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

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b ? b : "");
}

static void node_init(struct node *s)
{
	s->prev = s->next = s;
}

static bool node_empty(const struct node *s)
{
	return s->next == s;
}

static void node_append(struct node *s, struct node *n)
{
	n->prev = s->prev;
	n->next = s;
	s->prev->next = n;
	s->prev = n;
}

static void node_remove(struct node *n)
{
	if (!n->next)
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

/* ---- output ---- */

static void out_append(struct conn *c, const char *s, size_t n)
{
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n + 1 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : OUT_KEEP;
		while (cap < c->out_len + n + 1)
			cap *= 2;
		c->out = realloc(c->out, cap);
		if (!c->out)
			abort();
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
	c->out[c->out_len++] = '\n';
}

static size_t out_pending(const struct conn *c)
{
	return c->out_len - c->out_off;
}

static void out_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			c->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* The peer is gone: nothing more can be said to it. */
		c->out_off = c->out_len = 0;
		c->eof = true;
		break;
	}
	c->out_off = c->out_len = 0;
	if (c->out_cap > OUT_KEEP) {
		/* A burst of replies is over: give its memory back. */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
}

/* ---- logging ---- */

static void episode_count(struct episode *e, const char *start_line)
{
	if (!e->active) {
		e->active = true;
		e->count = 0;
		fputs(start_line, stderr);
	}
	e->count++;
}

static void episode_end(struct episode *e, const char *fmt)
{
	if (!e->active)
		return;
	e->active = false;
	fprintf(stderr, fmt, (unsigned long long)e->count);
}

/* ---- batches ---- */

static bool flush_batch(struct gos_ingest *in)
{
	if (!in->batch->n)
		return true;
	if (gos_queue_full(in->queue))
		in->local.queue_full_waits++;
	if (!gos_queue_push(in->queue, in->batch))
		return false;
	in->batch = gos_queue_get_batch(in->queue);
	return true;
}

/* ---- lines ---- */

static bool blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

static void reject(struct gos_ingest *in, struct conn *c, const struct gos_parse_error *e)
{
	c->rejected++;
	in->local.rejected[e->reason]++;
	char *line = gos_protocol_error_line(c->line_no, e);
	if (!line)
		abort();
	out_append(c, line, strlen(line));
	free(line);
}

static bool handle_line(struct gos_ingest *in, struct conn *c, const char *p, size_t n)
{
	c->line_no++;
	in->local.lines++;
	if (blank(p, n))
		return true;
	struct gos_batch *b = in->batch;
	struct gos_event *ev = gos_batch_push(b);
	struct gos_parse_error err = {0};
	if (!gos_protocol_parse(p, n, ev, &b->arena, &err)) {
		b->n--;
		reject(in, c, &err);
		return true;
	}
	in->local.accepted[ev->type]++;
	if (ev->type == GOS_EV_SYNC) {
		ev->sync.conn = c->id;
		ev->sync.applied = c->accepted;
		ev->sync.rejected = c->rejected;
		c->pending_replies++;
		return flush_batch(in);
	}
	if (ev->type == GOS_EV_SCREENSHOT) {
		/* Not counted in `accepted` (that counts map events, as for sync). */
		ev->shot.conn = c->id;
		c->pending_replies++;
		return flush_batch(in);
	}
	c->accepted++;
	if (b->n >= in->batch_events || b->arena.used_total >= BATCH_ARENA_LIMIT)
		return flush_batch(in);
	return true;
}

static bool on_frame_line(void *ctx, const char *p, size_t n)
{
	struct conn *c = ctx;
	if (!handle_line(c->in, c, p, n)) {
		c->in->stopping = true;
		return false;
	}
	/* Only a peeking read can leave the rest in the socket for later. */
	return !(c->peek && out_pending(c) >= OUT_HIGH_WATER);
}

/* Reading is over for good: further bytes are not looked at, and the
 * peer's sends fail at once rather than fill the socket. The connection
 * closes once its replies are out and its barriers answered. */
static void stop_reading(struct conn *c)
{
	c->eof = true;
	shutdown(c->fd, SHUT_RD);
}

static void on_frame_error(void *ctx, const struct gos_parse_error *e, bool fatal)
{
	struct conn *c = ctx;
	c->line_no++;
	c->in->local.lines++;
	reject(c->in, c, e);
	if (fatal)
		stop_reading(c);
}

/* ---- the input budget ---- */

static void update_interest(struct gos_ingest *in, struct conn *c);

static size_t pool_free(const struct gos_ingest *in)
{
	size_t lane_room = in->lane ? in->lane_cap - in->lane->held : in->lane_cap;
	size_t used = in->held + lane_room;
	return in->budget > used ? in->budget - used : 0;
}

/* The most connection c may hold after its next read (SIZE_MAX: no cap
 * needed, as no read can take it past the budget). */
static size_t allowance(const struct gos_ingest *in, const struct conn *c)
{
	if (c == in->lane)
		return SIZE_MAX;   /* the framer never holds more than lane_cap */
	size_t free_now = pool_free(in);
	return free_now >= in->lane_cap ? SIZE_MAX : c->held + free_now;
}

static void unpark(struct gos_ingest *in, struct conn *c)
{
	c->parked = false;
	node_remove(&c->park);
	update_interest(in, c);
}

static void park(struct gos_ingest *in, struct conn *c)
{
	c->parked = true;
	node_append(&in->parked, &c->park);
	in->local.buffer_waits++;
	in->budget_quiet_since = 0;
	char line[160];
	snprintf(line, sizeof(line),
	         "gos: ingest: input buffers full (%.3g MiB held for incomplete lines); "
	         "producers with long lines wait\n", (double)in->held / (1 << 20));
	episode_count(&in->ep_budget, line);
	update_interest(in, c);
}

/* After anything that changed what is held or who holds the lane: give a
 * free lane to the first waiter, wake every waiter when there is room. */
static void budget_update(struct gos_ingest *in)
{
	if (!in->lane && !node_empty(&in->parked)) {
		struct conn *c = CONN_OF(in->parked.next, park);
		unpark(in, c);
		in->lane = c;
	}
	if (!node_empty(&in->parked) && pool_free(in) >= READ_CHUNK) {
		while (!node_empty(&in->parked))
			unpark(in, CONN_OF(in->parked.next, park));
	}
	if (node_empty(&in->parked) && in->ep_budget.active && !in->budget_quiet_since)
		in->budget_quiet_since = (int64_t)gos_now_ns();
}

/* The budget episode ends after a quiet second, so that a busy budget logs
 * one pair of lines rather than one per line that waited. */
static void budget_episode_check(struct gos_ingest *in, int64_t now)
{
	if (!in->budget_quiet_since)
		return;
	if (!node_empty(&in->parked)) {
		in->budget_quiet_since = 0;
		return;
	}
	if (now - in->budget_quiet_since < BUDGET_QUIET_NS)
		return;
	in->budget_quiet_since = 0;
	episode_end(&in->ep_budget, "gos: ingest: input buffers available again; %llu waits meanwhile\n");
}

static void account(struct gos_ingest *in, struct conn *c)
{
	size_t h = c->fr ? gos_frame_held(c->fr) : 0;
	if (h != c->held) {
		in->held = in->held - c->held + h;
		c->held = h;
		if (in->held > in->local.buffered_peak)
			in->local.buffered_peak = in->held;
		if (in->held > in->burst_bytes)
			in->burst_bytes = in->held;
	}
	/* The lane's holder gives it back once it has read and what it holds
	 * is nothing, or fits the shared part. Not before it has read: a waiter
	 * just given the lane holds what already fitted. */
	if (c == in->lane && (c->held == 0 || in->held + in->lane_cap <= in->budget))
		in->lane = NULL;
	budget_update(in);
}

/* After the framer took `used` bytes of c (or saw its end). */
static void after_feed(struct gos_ingest *in, struct conn *c, size_t used)
{
	account(in, c);
	if (!c->fr || gos_frame_idle(c->fr)) {
		node_remove(&c->partial);
		return;
	}
	if (used || !c->partial.next) {
		c->progress_ns = (int64_t)gos_now_ns();
		node_remove(&c->partial);
		node_append(&in->partial, &c->partial);
	}
}

/* ---- connections ---- */

static void update_interest(struct gos_ingest *in, struct conn *c)
{
	if (c->closing)
		return;
	uint32_t want = 0;
	if (!c->eof && !c->parked && out_pending(c) < OUT_HIGH_WATER)
		want |= EPOLLIN | EPOLLRDHUP;
	if (out_pending(c))
		want |= EPOLLOUT;
	if (want == c->interest)
		return;
	/* An EOF'd connection waiting only for a sync reply leaves epoll, so a
	 * hung-up peer does not wake us in a loop; the reply path re-adds it. */
	struct epoll_event ev = {.events = want, .data.ptr = c};
	if (!want)
		epoll_ctl(in->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	else
		epoll_ctl(in->epoll_fd, c->interest ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
	c->interest = want;
}

static void conn_free(struct conn *c)
{
	gos_frame_destroy(c->fr);
	close(c->fd);
	free(c->out);
	free(c);
}

static void conn_close(struct gos_ingest *in, struct conn *c)
{
	if (c->interest)
		epoll_ctl(in->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	for (struct conn **pp = &in->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	in->n_conns--;
	node_remove(&c->partial);
	node_remove(&c->park);
	c->parked = false;
	if (in->lane == c)
		in->lane = NULL;
	gos_frame_destroy(c->fr);
	c->fr = NULL;
	account(in, c);
	conn_free(c);
}

/* Marks a connection that has nothing left to do; the sweep at the end of
 * the loop round closes it (later events of the round may still name it). */
static void maybe_close(struct gos_ingest *in, struct conn *c)
{
	if (c->eof && c->out_len == c->out_off && c->pending_replies == 0) {
		if (c->interest) {
			epoll_ctl(in->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
			c->interest = 0;
		}
		c->closing = true;
		return;
	}
	update_interest(in, c);
}

static void sweep(struct gos_ingest *in)
{
	struct conn *c = in->conns;
	while (c) {
		struct conn *next = c->next;
		if (c->closing)
			conn_close(in, c);
		c = next;
	}
}

/* Writes the refusal and closes fd. */
static void refuse(int fd, const char *reason)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg),
	                 "{\"type\":\"error\",\"line\":0,\"code\":\"too_many_producers\","
	                 "\"reason\":\"%s\"}\n", reason);
	if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* nothing more to tell it */
	}
	close(fd);
}

/* accept failed for want of descriptors or kernel memory: refuse on the
 * spare descriptor if possible, else stop listening for a moment. Either
 * way the listen fd (level-triggered) no longer wakes us in a loop.
 * Returns true when the caller may go on accepting. */
static bool accept_failed(struct gos_ingest *in, int err, int64_t now)
{
	char line[200];
	snprintf(line, sizeof(line),
	         "gos: ingest: out of file descriptors (accept: %s); refusing new producers "
	         "until some leave\n", strerror(err));
	if ((err == EMFILE || err == ENFILE) && in->reserve_fd >= 0) {
		close(in->reserve_fd);
		int fd = accept4(in->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int e = errno;
		if (fd >= 0) {
			refuse(fd, "the compositor is out of file descriptors; try again later");
			in->local.refused_no_fd++;
			episode_count(&in->ep_fd, line);
		}
		in->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			return true;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return false;
	}
	/* Producers wait in the backlog meanwhile; none is lost. */
	if (!in->ep_fd.active) {
		fputs(line, stderr);
		in->ep_fd.active = true;
		in->ep_fd.count = 0;
	}
	epoll_ctl(in->epoll_fd, EPOLL_CTL_DEL, in->listen_fd, NULL);
	in->accept_paused = true;
	in->accept_resume_ns = now + ACCEPT_BACKOFF_NS;
	return false;
}

static void accept_resume(struct gos_ingest *in)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &in->listen_fd};
	epoll_ctl(in->epoll_fd, EPOLL_CTL_ADD, in->listen_fd, &ev);
	in->accept_paused = false;
	if (in->reserve_fd < 0)
		in->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_all(struct gos_ingest *in, int64_t now)
{
	for (;;) {
		int fd = accept4(in->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			if (e == EINTR || e == ECONNABORTED || e == EPROTO)
				continue;
			if (e == EAGAIN || e == EWOULDBLOCK)
				return;
			if (!accept_failed(in, e, now))
				return;
			continue;
		}
		episode_end(&in->ep_fd,
		            "gos: ingest: file descriptors available again; %llu producers were refused\n");
		if (in->n_conns >= in->max_conns) {
			char reason[96];
			snprintf(reason, sizeof(reason), "too many producers connected (limit %d)", in->max_conns);
			refuse(fd, reason);
			in->local.refused_limit++;
			char line[160];
			snprintf(line, sizeof(line),
			         "gos: ingest: %d producers connected, the limit; refusing more\n", in->max_conns);
			episode_count(&in->ep_limit, line);
			continue;
		}
		episode_end(&in->ep_limit,
		            "gos: ingest: below the producer limit again; %llu producers were refused\n");
		struct conn *c = calloc(1, sizeof(*c));
		if (!c)
			abort();
		c->in = in;
		c->id = ++in->next_id;
		c->fd = fd;
		c->fr = gos_frame_create(NULL, &(struct gos_frame_callbacks){
			.on_line = on_frame_line, .on_error = on_frame_error, .ctx = c});
		c->interest = EPOLLIN | EPOLLRDHUP;
		struct epoll_event ev = {.events = c->interest, .data.ptr = c};
		if (epoll_ctl(in->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			conn_free(c);
			continue;
		}
		c->next = in->conns;
		in->conns = c;
		in->n_conns++;
		if (in->n_conns > in->burst_conns)
			in->burst_conns = in->n_conns;
		in->local.connections_total++;
	}
}

/* Drops n bytes already seen by a peeking read. */
static void consume(struct gos_ingest *in, struct conn *c, size_t n)
{
	while (n) {
		ssize_t r = recv(c->fd, in->scratch, n, MSG_DONTWAIT);
		if (r > 0)
			n -= (size_t)r;
		else if (!(r < 0 && errno == EINTR))
			return;
	}
}

/* Reads what c has sent, up to READ_BUDGET bytes. Normally recv() takes a
 * chunk and the framer all of it. When the framer may not take everything
 * (the budget is short, or replies are waiting, or the producer sent bad
 * lines before, so that error replies may pile up and pause it), the read
 * peeks and then consumes only what the framer took: the rest stays in the
 * socket, where the kernel holds it and pushes back on the producer.
 * Returns false when the queue was closed. */
static bool conn_read(struct gos_ingest *in, struct conn *c)
{
	size_t budget = READ_BUDGET;
	while (budget && !c->eof && !c->parked) {
		if (out_pending(c))
			out_flush(c);
		if (out_pending(c) >= OUT_HIGH_WATER || c->eof)
			break;
		size_t max_held = allowance(in, c);
		c->peek = max_held != SIZE_MAX || out_pending(c) || c->rejected;
		ssize_t r = recv(c->fd, in->scratch, READ_CHUNK, MSG_DONTWAIT | (c->peek ? MSG_PEEK : 0));
		if (r > 0) {
			size_t used = gos_frame_feed(c->fr, in->scratch, (size_t)r, max_held);
			if (c->peek)
				consume(in, c, used);
			in->local.bytes_in += used;
			budget -= used < budget ? used : budget;
			after_feed(in, c, used);
			if (in->stopping)
				return false;
			if (used == (size_t)r || c->eof || out_pending(c) >= OUT_HIGH_WATER)
				continue;
			/* The budget is short: take the lane if it is free, else wait. */
			if (!in->lane) {
				in->lane = c;
				continue;
			}
			park(in, c);
			break;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		c->eof = true;
		gos_frame_end(c->fr);
		after_feed(in, c, 0);
		if (in->stopping)
			return false;
	}
	return true;
}

/* Closes, with an error reply, a connection that got no byte inside a line
 * or frame for timeout_ms. Its earlier lines stay applied. */
static void time_out(struct gos_ingest *in, struct conn *c)
{
	char where[64];
	gos_frame_where(c->fr, where, sizeof(where));
	double s = in->timeout_ms / 1000.0;
	struct gos_parse_error e = {.reason = GOS_REJECT_TIMEOUT};
	if (c->parked)
		snprintf(e.message, sizeof(e.message),
		         "waited %.3g s for buffer space %s (input budget %.3g MiB for all producers)",
		         s, where, (double)in->budget / (1 << 20));
	else if (out_pending(c) >= OUT_HIGH_WATER)
		snprintf(e.message, sizeof(e.message), "no progress for %.3g s %s: replies are not being read",
		         s, where);
	else
		snprintf(e.message, sizeof(e.message), "no data for %.3g s %s", s, where);
	c->line_no++;
	in->local.lines++;
	reject(in, c, &e);
	node_remove(&c->partial);
	if (c->parked) {
		c->parked = false;
		node_remove(&c->park);
	}
	if (in->lane == c)
		in->lane = NULL;
	gos_frame_destroy(c->fr);
	c->fr = NULL;
	stop_reading(c);
	account(in, c);
	out_flush(c);
	maybe_close(in, c);
}

/* True when c has bytes (or its EOF) waiting that this thread has not got
 * to yet: not a stall of the producer's. */
static bool has_input(struct conn *c)
{
	char b;
	ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return r >= 0;
}

static void expire_stalled(struct gos_ingest *in, int64_t now)
{
	int64_t limit = (int64_t)in->timeout_ms * 1000000;
	struct node *n = in->partial.next;
	while (n != &in->partial) {
		struct conn *c = CONN_OF(n, partial);
		n = n->next;
		if (now - c->progress_ns < limit)
			break;   /* the rest made progress later */
		if (c->closing)
			continue;
		if ((c->interest & EPOLLIN) && has_input(c))
			continue;
		time_out(in, c);
	}
}

/* epoll_wait's timeout: until the earliest progress deadline or the end of
 * an accept pause; -1 (wait for events alone) when there is neither. */
static int wait_ms(struct gos_ingest *in, int64_t now)
{
	if (in->batch->n)
		return 0;
	int64_t due = INT64_MAX;
	if (!node_empty(&in->partial))
		due = CONN_OF(in->partial.next, partial)->progress_ns + (int64_t)in->timeout_ms * 1000000;
	if (in->accept_paused && in->accept_resume_ns < due)
		due = in->accept_resume_ns;
	if (in->budget_quiet_since && in->budget_quiet_since + BUDGET_QUIET_NS < due)
		due = in->budget_quiet_since + BUDGET_QUIET_NS;
	if (due == INT64_MAX)
		return -1;
	if (due <= now)
		return 0;
	int64_t ms = (due - now + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* glibc keeps freed heap memory, and after freeing large blocks it serves
 * more from the heap too (its mmap threshold rises). The framer mmaps its
 * large buffers, but connection structs and medium buffers come from the
 * heap: once a burst is over, give what it left back to the system. */
static void trim_after_burst(struct gos_ingest *in)
{
	if (in->held)
		return;
	if (in->burst_bytes < TRIM_BYTES && in->burst_conns < in->n_conns + TRIM_CONNS)
		return;
	malloc_trim(0);
	in->burst_bytes = 0;
	in->burst_conns = in->n_conns;
}

static void drain_replies(struct gos_ingest *in)
{
	pthread_mutex_lock(&in->lock);
	struct reply *r = in->replies;
	in->replies = NULL;
	in->replies_tail = &in->replies;
	pthread_mutex_unlock(&in->lock);
	while (r) {
		struct reply *next = r->next;
		for (struct conn *c = in->conns; c; c = c->next) {
			if (c->id == r->conn && !c->closing) {
				out_append(c, r->text, strlen(r->text));
				if (c->pending_replies)
					c->pending_replies--;
				out_flush(c);
				maybe_close(in, c);
				break;
			}
		}
		free(r->text);
		free(r);
		r = next;
	}
}

static void publish_stats(struct gos_ingest *in)
{
	in->local.connections = (uint64_t)in->n_conns;
	in->local.buffered_bytes = in->held;
	pthread_mutex_lock(&in->lock);
	in->published = in->local;
	pthread_mutex_unlock(&in->lock);
}

static void *ingest_main(void *arg)
{
	struct gos_ingest *in = arg;
	struct epoll_event evs[MAX_EVENTS];
	for (;;) {
		pthread_mutex_lock(&in->lock);
		bool stop = in->stop;
		pthread_mutex_unlock(&in->lock);
		if (stop)
			break;
		int n = epoll_wait(in->epoll_fd, evs, MAX_EVENTS, wait_ms(in, (int64_t)gos_now_ns()));
		if (n < 0 && errno != EINTR)
			break;
		int64_t now = (int64_t)gos_now_ns();
		for (int i = 0; i < n; i++) {
			void *ptr = evs[i].data.ptr;
			if (ptr == &in->listen_fd) {
				accept_all(in, now);
				continue;
			}
			if (ptr == &in->wake_fd) {
				uint64_t v;
				if (read(in->wake_fd, &v, sizeof(v)) < 0) {
					/* counter already drained */
				}
				drain_replies(in);
				continue;
			}
			struct conn *c = ptr;
			if (c->closing)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
				if (!conn_read(in, c))
					goto out;
			if (out_pending(c))
				out_flush(c);
			maybe_close(in, c);
		}
		now = (int64_t)gos_now_ns();
		if (in->accept_paused && now >= in->accept_resume_ns)
			accept_resume(in);
		expire_stalled(in, now);
		budget_episode_check(in, now);
		sweep(in);
		/* Hand over what this round parsed, so the core sees it promptly. */
		if (!flush_batch(in))
			break;
		trim_after_burst(in);
		publish_stats(in);
	}
out:
	publish_stats(in);
	return NULL;
}

/* ---- create / destroy ---- */

static int bind_socket(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path)) {
		set_err(err, errlen, "socket path is too long (at most 107 bytes): %s%s", path, NULL);
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);

	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			set_err(err, errlen, "%s exists and is not a socket; refusing to replace it%s", path, NULL);
			return -1;
		}
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
			close(probe);
			set_err(err, errlen, "another gos-compositor is already listening on %s%s", path, NULL);
			return -1;
		}
		int e = errno;
		if (probe >= 0)
			close(probe);
		if (e != ECONNREFUSED && e != ENOENT) {
			set_err(err, errlen, "cannot check the existing socket %s: %s", path, strerror(e));
			return -1;
		}
		unlink(path);  /* stale: its process is gone */
	}

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_err(err, errlen, "cannot create a Unix socket: %s%s", strerror(errno), NULL);
		return -1;
	}
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	int e = errno;
	umask(old);
	if (rc < 0) {
		set_err(err, errlen, "cannot bind %s: %s", path, strerror(e));
		close(fd);
		return -1;
	}
	chmod(path, 0600);
	if (listen(fd, 256) < 0) {
		set_err(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

struct gos_ingest *gos_ingest_create(const struct gos_ingest_opts *opts, char *err, size_t errlen)
{
	struct gos_ingest *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->listen_fd = in->epoll_fd = in->wake_fd = -1;
	pthread_mutex_init(&in->lock, NULL);
	in->replies_tail = &in->replies;
	node_init(&in->partial);
	node_init(&in->parked);
	in->queue = opts->queue;
	in->batch_events = opts->batch_events ? opts->batch_events : 4096;
	in->max_conns = opts->max_connections ? opts->max_connections : 1024;
	in->timeout_ms = opts->progress_timeout_ms > 0 ? opts->progress_timeout_ms : DEFAULT_TIMEOUT_MS;
	in->lane_cap = gos_frame_max_held(NULL);
	in->budget = opts->input_budget ? opts->input_budget : DEFAULT_BUDGET;
	if (in->budget < 2 * in->lane_cap)
		in->budget = 2 * in->lane_cap;
	/* Spare descriptor for refusing producers at EMFILE (see accept_failed). */
	in->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	in->scratch = malloc(READ_CHUNK);
	in->path = strdup(opts->socket_path);
	if (!in->path || !in->scratch)
		goto error;

	in->listen_fd = bind_socket(in->path, err, errlen);
	if (in->listen_fd < 0) {
		free(in->path);
		in->path = NULL;  /* not ours: don't unlink it on destroy */
		goto error;
	}
	in->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	in->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (in->epoll_fd < 0 || in->wake_fd < 0) {
		set_err(err, errlen, "cannot create epoll/eventfd: %s%s", strerror(errno), NULL);
		goto error;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &in->listen_fd};
	epoll_ctl(in->epoll_fd, EPOLL_CTL_ADD, in->listen_fd, &ev);
	ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &in->wake_fd};
	epoll_ctl(in->epoll_fd, EPOLL_CTL_ADD, in->wake_fd, &ev);
	in->batch = gos_queue_get_batch(in->queue);
	if (pthread_create(&in->thread, NULL, ingest_main, in) != 0) {
		set_err(err, errlen, "cannot start the ingest thread%s%s", "", NULL);
		goto error;
	}
	in->thread_started = true;
	/* Named here rather than by the thread, so it has its name from the
	 * start (top, perf, the tests' /proc/self/task lookups). */
	pthread_setname_np(in->thread, "gos-ingest");
	return in;
error:
	gos_ingest_destroy(in);
	return NULL;
}

static void wake(struct gos_ingest *in)
{
	uint64_t one = 1;
	if (write(in->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the thread is awake anyway */
	}
}

void gos_ingest_destroy(struct gos_ingest *in)
{
	if (!in)
		return;
	if (in->thread_started) {
		pthread_mutex_lock(&in->lock);
		in->stop = true;
		pthread_mutex_unlock(&in->lock);
		wake(in);
		pthread_join(in->thread, NULL);
	}
	while (in->conns) {
		struct conn *c = in->conns;
		in->conns = c->next;
		conn_free(c);
	}
	if (in->batch)
		gos_queue_put_batch(in->queue, in->batch);
	struct reply *r = in->replies;
	while (r) {
		struct reply *next = r->next;
		free(r->text);
		free(r);
		r = next;
	}
	if (in->listen_fd >= 0)
		close(in->listen_fd);
	if (in->path)
		unlink(in->path);
	if (in->epoll_fd >= 0)
		close(in->epoll_fd);
	if (in->wake_fd >= 0)
		close(in->wake_fd);
	if (in->reserve_fd >= 0)
		close(in->reserve_fd);
	pthread_mutex_destroy(&in->lock);
	free(in->scratch);
	free(in->path);
	free(in);
}

void gos_ingest_sync_done(struct gos_ingest *in, uint64_t conn, uint64_t applied,
                          uint64_t rejected, uint64_t tokens)
{
	char *text = gos_protocol_sync_reply(applied, rejected, tokens);
	if (!text)
		abort();
	gos_ingest_reply(in, conn, text);
	free(text);
}

void gos_ingest_reply(struct gos_ingest *in, uint64_t conn, const char *json_line)
{
	struct reply *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->conn = conn;
	size_t n = strlen(json_line);
	while (n && (json_line[n - 1] == '\n' || json_line[n - 1] == '\r'))
		n--;   /* out_append adds the one newline */
	r->text = malloc(n + 1);
	if (!r->text)
		abort();
	memcpy(r->text, json_line, n);
	r->text[n] = '\0';
	pthread_mutex_lock(&in->lock);
	*in->replies_tail = r;
	in->replies_tail = &r->next;
	pthread_mutex_unlock(&in->lock);
	wake(in);
}

void gos_ingest_stats(struct gos_ingest *in, struct gos_ingest_stats *out)
{
	pthread_mutex_lock(&in->lock);
	*out = in->published;
	pthread_mutex_unlock(&in->lock);
}
