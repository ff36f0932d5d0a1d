/* The ingest's connections (gos_ingest_internal.h): accepting producers
 * within max_connections and without spinning when out of file descriptors;
 * reading each through its framer into lines, parsed into the batch or
 * answered with an error line; the input budget that bounds what incomplete
 * lines hold; the progress timeout; closing. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gos_ingest_internal.h"
#include "gos_log.h"
#include "gos_time.h"

#define READ_BUDGET        (1u << 20)       /* bytes per connection per wakeup */
#define OUT_HIGH_WATER     (1u << 20)       /* stop reading while replies pile up */
#define BATCH_ARENA_LIMIT  (8u << 20)
#define ACCEPT_BACKOFF_NS  (100 * 1000000LL)

/* ---- logging ---- */

/* Counts one more in e; true when this one starts the episode (log it). */
static bool episode_count(struct episode *e)
{
	bool start = !e->active;
	if (start) {
		e->active = true;
		e->count = 0;
	}
	e->count++;
	return start;
}

/* Ends e; true when it was on (log its end with *count). */
static bool episode_end(struct episode *e, unsigned long long *count)
{
	if (!e->active)
		return false;
	e->active = false;
	*count = (unsigned long long)e->count;
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
	/* In the shape the producer speaks, once it has said which. */
	char *line = c->dialect ? gos_geo_error(c->dialect, c->sequence, c->line_no, e, ingest_now_ms())
	                        : gos_protocol_error_line(c->line_no, e);
	if (!line)
		abort();
	ingest_out_append(c, line, strlen(line));
	free(line);
}

/* Parses a line as gos's own message or Geometry OS's (gm->dialect set):
 * a producer that spoke Geometry OS's shape is read that way first. */
static bool parse_line(struct conn *c, const char *p, size_t n, struct gos_event *ev,
                       struct gos_arena *arena, struct gos_geo_msg *gm, struct gos_parse_error *err)
{
	if (c->dialect) {
		bool ok = gos_geo_parse(p, n, &c->geo, ev, arena, gm, err);
		return gm->dialect ? ok : gos_protocol_parse(p, n, ev, arena, err);
	}
	if (gos_protocol_parse(p, n, ev, arena, err)) {
		gm->dialect = GOS_GEO_NONE;
		return true;
	}
	if (err->reason != GOS_REJECT_UNKNOWN_TYPE)
		return false;
	struct gos_parse_error e2 = {0};
	bool ok = gos_geo_parse(p, n, &c->geo, ev, arena, gm, &e2);
	if (gm->dialect)
		*err = e2;
	return gm->dialect ? ok : false;
}

/* A Geometry OS message that is no map event: answered or counted. */
static void geo_other(struct conn *c, const struct gos_geo_msg *gm)
{
	if (gm->action == GOS_GEO_ACK) {
		char *t = gos_geo_ack(gm->dialect, gm->sequence, gm->type,
		                      gm->kind == GOS_GEO_K_HEARTBEAT ? "alive" : "unsupported",
		                      ingest_now_ms());
		ingest_out_append(c, t, strlen(t));
		free(t);
	} else {
		c->ignored++;
	}
}

static bool handle_line(struct gos_ingest *in, struct conn *c, const char *p, size_t n)
{
	c->line_no++;
	in->local.lines++;
	if (blank(p, n))
		return true;
	struct gos_batch *b = in->batch;
	struct gos_event *ev = gos_batch_push(b);
	if (b->n == 1)
		b->t_in_ns = gos_now_ns();   /* the batch's arrival (gos_pipeline) */
	struct gos_parse_error err = {0};
	struct gos_geo_msg gm = {0};
	bool ok = parse_line(c, p, n, ev, &b->arena, &gm, &err);
	if (gm.dialect) {
		c->dialect = gm.dialect;
		c->sequence = gm.sequence;
	}
	if (!ok) {
		b->n--;
		reject(in, c, &err);
		return true;
	}
	if (gm.dialect) {
		in->local.geo[gm.kind]++;
		if (gm.action == GOS_GEO_ACK || gm.action == GOS_GEO_IGNORED) {
			b->n--;
			geo_other(c, &gm);
			return true;
		}
	}
	in->local.accepted[ev->type]++;
	if (ev->type == GOS_EV_SYNC) {
		struct pending_sync *ps = calloc(1, sizeof(*ps));
		if (!ps)
			abort();
		ps->dialect = gm.dialect;
		ps->sequence = gm.sequence;
		ps->ignored = c->ignored;
		*c->syncs_tail = ps;
		c->syncs_tail = &ps->next;
		ev->sync.conn = c->id;
		ev->sync.applied = c->accepted;
		ev->sync.rejected = c->rejected;
		c->pending_replies++;
		return ingest_flush_batch(in);
	}
	if (ev->type == GOS_EV_SCREENSHOT) {
		/* Not counted in `accepted` (that counts map events, as for sync). */
		ev->shot.conn = c->id;
		c->pending_replies++;
		return ingest_flush_batch(in);
	}
	c->accepted++;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	while (n && (p[0] == ' ' || p[0] == '\t'))
		p++, n--;
	/* Geometry OS's messages go to the journal as the gos events they became. */
	if (!gm.dialect) {
		ev->raw = gos_arena_strndup(&b->arena, p, n);
		ev->raw_len = (uint32_t)n;
	}
	if (b->n >= in->batch_events || b->arena.used_total >= BATCH_ARENA_LIMIT)
		return ingest_flush_batch(in);
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
	return !(c->peek && ingest_out_pending(c) >= OUT_HIGH_WATER);
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
	if (episode_count(&in->ep_budget))
		gos_log_warn("ingest", "input buffers full (%.3g MiB held for incomplete lines); "
		             "producers with long lines wait", (double)in->held / (1 << 20));
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
	if (!node_empty(&in->parked) && pool_free(in) >= INGEST_READ_CHUNK) {
		while (!node_empty(&in->parked))
			unpark(in, CONN_OF(in->parked.next, park));
	}
	if (node_empty(&in->parked) && in->ep_budget.active && !in->budget_quiet_since)
		in->budget_quiet_since = (int64_t)gos_now_ns();
}

/* The budget episode ends after a quiet second, so that a busy budget logs
 * one pair of lines rather than one per line that waited. */
void ingest_budget_episode_check(struct gos_ingest *in, int64_t now)
{
	if (!in->budget_quiet_since)
		return;
	if (!node_empty(&in->parked)) {
		in->budget_quiet_since = 0;
		return;
	}
	if (now - in->budget_quiet_since < INGEST_BUDGET_QUIET_NS)
		return;
	in->budget_quiet_since = 0;
	unsigned long long n;
	if (episode_end(&in->ep_budget, &n))
		gos_log_info("ingest", "input buffers available again; %llu waits meanwhile", n);
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

/* After the framer took `used` bytes of c (or saw its end); units: lines,
 * frames and errors it had delivered before. */
static void after_feed(struct gos_ingest *in, struct conn *c, size_t used, uint64_t units)
{
	account(in, c);
	if (!c->fr || gos_frame_idle(c->fr)) {
		node_remove(&c->partial);
		node_remove(&c->framed);
		return;
	}
	c->framing = gos_frame_framing(c->fr);
	if (!gos_frame_is_framed(c->fr)) {
		node_remove(&c->framed);
	} else if (!c->framed.next || c->line_no != units) {
		/* A frame began during this read: its deadline runs from now. */
		c->frame_ns = (int64_t)gos_now_ns();
		node_remove(&c->framed);
		node_append(&in->framed, &c->framed);
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
	if (!c->eof && !c->parked && ingest_out_pending(c) < OUT_HIGH_WATER)
		want |= EPOLLIN | EPOLLRDHUP;
	if (ingest_out_pending(c))
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

void ingest_conn_free(struct conn *c)
{
	while (c->syncs) {
		struct pending_sync *p = c->syncs;
		c->syncs = p->next;
		free(p);
	}
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
	node_remove(&c->framed);
	node_remove(&c->park);
	c->parked = false;
	if (in->lane == c)
		in->lane = NULL;
	gos_frame_destroy(c->fr);
	c->fr = NULL;
	account(in, c);
	ingest_conn_free(c);
}

/* Marks a connection that has nothing left to do; the sweep at the end of
 * the loop round closes it (later events of the round may still name it). */
void ingest_maybe_close(struct gos_ingest *in, struct conn *c)
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

void ingest_sweep(struct gos_ingest *in)
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

static void log_out_of_fds(int err)
{
	gos_log_warn("ingest", "out of file descriptors (accept: %s); refusing new producers "
	             "until some leave", strerror(err));
}

/* accept failed for want of descriptors or kernel memory: refuse on the
 * spare descriptor if possible, else stop listening for a moment. Either
 * way the listen fd (level-triggered) no longer wakes us in a loop.
 * Returns true when the caller may go on accepting. */
static bool accept_failed(struct gos_ingest *in, int err, int64_t now)
{
	if ((err == EMFILE || err == ENFILE) && in->reserve_fd >= 0) {
		close(in->reserve_fd);
		int fd = accept4(in->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int e = errno;
		if (fd >= 0) {
			refuse(fd, "the compositor is out of file descriptors; try again later");
			in->local.refused_no_fd++;
			if (episode_count(&in->ep_fd))
				log_out_of_fds(err);
		}
		in->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			return true;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return false;
	}
	/* Producers wait in the backlog meanwhile; none is lost. */
	if (!in->ep_fd.active) {
		log_out_of_fds(err);
		in->ep_fd.active = true;
		in->ep_fd.count = 0;
	}
	epoll_ctl(in->epoll_fd, EPOLL_CTL_DEL, in->listen_fd, NULL);
	in->accept_paused = true;
	in->accept_resume_ns = now + ACCEPT_BACKOFF_NS;
	return false;
}

void ingest_accept_resume(struct gos_ingest *in)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &in->listen_fd};
	epoll_ctl(in->epoll_fd, EPOLL_CTL_ADD, in->listen_fd, &ev);
	in->accept_paused = false;
	if (in->reserve_fd < 0)
		in->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Who connected (SO_PEERCRED): logged, and counted by uid. */
static void peer_cred(struct gos_ingest *in, const struct conn *c)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return;
	gos_log_always(GOS_LOG_INFO, "ingest", "producer %llu connected: uid %u, pid %d",
	               (unsigned long long)c->id, (unsigned)cr.uid, (int)cr.pid);
	struct gos_ingest_stats *st = &in->local;
	for (uint32_t k = 0; k < st->n_uids; k++) {
		if (st->by_uid[k].uid == (uint32_t)cr.uid) {
			st->by_uid[k].connections++;
			return;
		}
	}
	if (st->n_uids < GOS_INGEST_UIDS) {
		st->by_uid[st->n_uids].uid = (uint32_t)cr.uid;
		st->by_uid[st->n_uids++].connections = 1;
	} else {
		st->other_uids++;
	}
}

void ingest_accept_all(struct gos_ingest *in, int64_t now)
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
		unsigned long long n;
		if (episode_end(&in->ep_fd, &n))
			gos_log_info("ingest", "file descriptors available again; %llu producers were "
			             "refused", n);
		if (in->n_conns >= in->max_conns) {
			char reason[96];
			snprintf(reason, sizeof(reason), "too many producers connected (limit %d)", in->max_conns);
			refuse(fd, reason);
			in->local.refused_limit++;
			if (episode_count(&in->ep_limit))
				gos_log_warn("ingest", "%d producers connected, the limit; refusing more",
				             in->max_conns);
			continue;
		}
		if (episode_end(&in->ep_limit, &n))
			gos_log_info("ingest", "below the producer limit again; %llu producers were "
			             "refused", n);
		struct conn *c = calloc(1, sizeof(*c));
		if (!c)
			abort();
		c->in = in;
		c->id = ++in->next_id;
		c->fd = fd;
		c->geo.conn = c->id;
		c->syncs_tail = &c->syncs;
		c->fr = gos_frame_create(&(struct gos_frame_opts){.framing = in->framing},
		                         &(struct gos_frame_callbacks){
			.on_line = on_frame_line, .on_error = on_frame_error, .ctx = c});
		c->framing = gos_frame_framing(c->fr);
		c->interest = EPOLLIN | EPOLLRDHUP;
		struct epoll_event ev = {.events = c->interest, .data.ptr = c};
		if (epoll_ctl(in->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			ingest_conn_free(c);
			continue;
		}
		c->next = in->conns;
		in->conns = c;
		in->n_conns++;
		if (in->n_conns > in->burst_conns)
			in->burst_conns = in->n_conns;
		in->local.connections_total++;
		peer_cred(in, c);
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
bool ingest_conn_read(struct gos_ingest *in, struct conn *c)
{
	size_t budget = READ_BUDGET;
	while (budget && !c->eof && !c->parked) {
		if (ingest_out_pending(c))
			ingest_out_flush(c);
		if (ingest_out_pending(c) >= OUT_HIGH_WATER || c->eof)
			break;
		size_t max_held = allowance(in, c);
		c->peek = max_held != SIZE_MAX || ingest_out_pending(c) || c->rejected;
		ssize_t r = recv(c->fd, in->scratch, INGEST_READ_CHUNK,
		                 MSG_DONTWAIT | (c->peek ? MSG_PEEK : 0));
		if (r > 0) {
			uint64_t units = c->line_no;
			size_t used = gos_frame_feed(c->fr, in->scratch, (size_t)r, max_held);
			if (c->peek)
				consume(in, c, used);
			in->local.bytes_in += used;
			budget -= used < budget ? used : budget;
			after_feed(in, c, used, units);
			if (in->stopping)
				return false;
			if (used == (size_t)r || c->eof || ingest_out_pending(c) >= OUT_HIGH_WATER)
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
		after_feed(in, c, 0, c->line_no);
		if (in->stopping)
			return false;
	}
	return true;
}

/* Closes, with an error reply, a connection that got no byte inside a line
 * or frame for timeout_ms, or whose frame did not complete within
 * frame_timeout_ms (deadline). Its earlier lines stay applied. */
static void time_out(struct gos_ingest *in, struct conn *c, bool deadline)
{
	char where[64];
	gos_frame_where(c->fr, where, sizeof(where));
	double s = (deadline ? in->frame_timeout_ms : in->timeout_ms) / 1000.0;
	struct gos_parse_error e = {.reason = GOS_REJECT_TIMEOUT};
	if (deadline)
		snprintf(e.message, sizeof(e.message), "frame not complete %.3g s after it began (%s)%s",
		         s, where, c->parked ? " while waiting for input buffer space"
		                   : ingest_out_pending(c) >= OUT_HIGH_WATER ? ": replies are not being read" : "");
	else if (c->parked)
		snprintf(e.message, sizeof(e.message),
		         "waited %.3g s for buffer space %s (input budget %.3g MiB for all producers)",
		         s, where, (double)in->budget / (1 << 20));
	else if (ingest_out_pending(c) >= OUT_HIGH_WATER)
		snprintf(e.message, sizeof(e.message), "no progress for %.3g s %s: replies are not being read",
		         s, where);
	else
		snprintf(e.message, sizeof(e.message), "no data for %.3g s %s", s, where);
	c->line_no++;
	in->local.lines++;
	if (deadline)
		in->local.frame_timeouts++;
	c->framing = gos_frame_framing(c->fr);
	reject(in, c, &e);
	node_remove(&c->partial);
	node_remove(&c->framed);
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
	ingest_out_flush(c);
	ingest_maybe_close(in, c);
}

/* True when c has bytes (or its EOF) waiting that this thread has not got
 * to yet: not a stall of the producer's. */
static bool has_input(struct conn *c)
{
	char b;
	ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return r >= 0;
}

void ingest_expire_stalled(struct gos_ingest *in, int64_t now)
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
		time_out(in, c, false);
	}
	limit = (int64_t)in->frame_timeout_ms * 1000000;
	n = in->framed.next;
	while (n != &in->framed) {
		struct conn *c = CONN_OF(n, framed);
		n = n->next;
		if (now - c->frame_ns < limit)
			break;   /* the rest began later */
		if (c->closing || !c->fr)
			continue;
		if ((c->interest & EPOLLIN) && has_input(c))
			continue;   /* bytes we have not read yet: not the producer's delay */
		time_out(in, c, true);
	}
}
