/* Unix-socket ingest thread: epoll over every producer, two framings,
 * per-connection replies, batches into the core's queue. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gos_ingest.h"

#define READ_CHUNK        (64u * 1024u)
#define READ_BUDGET       (1u << 20)       /* bytes per connection per wakeup */
#define OUT_HIGH_WATER    (1u << 20)       /* stop reading while replies pile up */
#define BATCH_ARENA_LIMIT (8u << 20)
#define MAX_EVENTS        64

enum framing { FRAME_UNKNOWN, FRAME_LINES, FRAME_LEN };

struct conn {
	uint64_t id;
	int fd;
	enum framing framing;
	char *buf;
	size_t len, cap;
	bool discarding;          /* LINES: skipping the rest of an over-long line */
	uint64_t skip;            /* LEN: bytes of an over-long frame left to skip */
	uint64_t line_no, accepted, rejected;
	char *out;
	size_t out_len, out_off, out_cap;
	uint32_t pending_replies;  /* sync/screenshot barriers not answered yet */
	bool eof;
	uint32_t interest;        /* current epoll mask; 0: not registered */
	bool closing;             /* closed at the end of this loop round */
	struct conn *next;
};

struct reply {
	uint64_t conn;
	char *text;
	struct reply *next;
};

struct gos_ingest {
	char *path;
	int listen_fd, epoll_fd, wake_fd;
	struct gos_queue *queue;
	size_t batch_events;
	int max_conns;
	pthread_t thread;
	bool thread_started;

	/* ingest thread only */
	struct conn *conns;
	int n_conns;
	uint64_t next_id;
	struct gos_batch *batch;
	struct gos_ingest_stats local;

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

/* ---- output ---- */

static void out_append(struct conn *c, const char *s, size_t n)
{
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n + 1 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
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
		return;
	}
	c->out_off = c->out_len = 0;
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

static void reject_long(struct gos_ingest *in, struct conn *c, uint64_t size)
{
	struct gos_parse_error e = {.reason = GOS_REJECT_LINE_TOO_LONG};
	snprintf(e.message, sizeof(e.message),
	         "line of %llu+ bytes is over the limit of %u bytes",
	         (unsigned long long)size, GOS_MAX_LINE);
	c->line_no++;
	in->local.lines++;
	reject(in, c, &e);
}

static bool handle_line(struct gos_ingest *in, struct conn *c, const char *p, size_t n)
{
	c->line_no++;
	in->local.lines++;
	if (n && p[n - 1] == '\r')
		n--;
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

static uint32_t le32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* Consumes every complete frame in c->buf; with `final` (EOF) also the
 * unterminated rest. Returns false when the queue was closed. */
static bool process(struct gos_ingest *in, struct conn *c, bool final)
{
	size_t pos = 0;
	bool ok = true;
	while (ok && pos < c->len) {
		char *p = c->buf + pos;
		size_t avail = c->len - pos;
		if (c->framing == FRAME_UNKNOWN) {
			/* A u32 little-endian length under 16 MiB has a zero high byte;
			 * JSON text never holds a NUL. */
			if (avail >= 4)
				c->framing = p[3] == 0 ? FRAME_LEN : FRAME_LINES;
			else if (memchr(p, '\n', avail) || final)
				c->framing = FRAME_LINES;
			else
				break;
		}
		if (c->framing == FRAME_LINES) {
			char *nl = memchr(p, '\n', avail);
			if (c->discarding) {
				if (!nl) {
					pos = c->len;
					break;
				}
				c->discarding = false;
				pos += (size_t)(nl - p) + 1;
				continue;
			}
			if (nl) {
				ok = handle_line(in, c, p, (size_t)(nl - p));
				pos += (size_t)(nl - p) + 1;
				continue;
			}
			if (avail > GOS_MAX_LINE) {
				reject_long(in, c, avail);
				c->discarding = true;
				pos = c->len;
				break;
			}
			if (final) {
				ok = handle_line(in, c, p, avail);
				pos = c->len;
			}
			break;
		}
		/* FRAME_LEN */
		if (c->skip) {
			size_t k = avail < c->skip ? avail : (size_t)c->skip;
			c->skip -= k;
			pos += k;
			continue;
		}
		if (avail < 4) {
			if (final) {
				struct gos_parse_error e = {.reason = GOS_REJECT_NOT_JSON};
				snprintf(e.message, sizeof(e.message),
				         "connection closed inside a frame's 4-byte length");
				c->line_no++;
				reject(in, c, &e);
				pos = c->len;
			}
			break;
		}
		uint32_t flen = le32(p);
		if (flen > GOS_MAX_LINE) {
			reject_long(in, c, flen);
			c->skip = flen;
			pos += 4;
			continue;
		}
		if (avail - 4 < flen) {
			if (final) {
				struct gos_parse_error e = {.reason = GOS_REJECT_NOT_JSON};
				snprintf(e.message, sizeof(e.message),
				         "connection closed after %zu of a frame's %u bytes",
				         avail - 4, flen);
				c->line_no++;
				reject(in, c, &e);
				pos = c->len;
			}
			break;
		}
		ok = handle_line(in, c, p + 4, flen);
		pos += 4 + (size_t)flen;
	}
	if (pos) {
		memmove(c->buf, c->buf + pos, c->len - pos);
		c->len -= pos;
	}
	return ok;
}

/* ---- connections ---- */

static void update_interest(struct gos_ingest *in, struct conn *c)
{
	uint32_t want = 0;
	if (!c->eof && c->out_len - c->out_off < OUT_HIGH_WATER)
		want |= EPOLLIN | EPOLLRDHUP;
	if (c->out_len > c->out_off)
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

static void conn_close(struct gos_ingest *in, struct conn *c)
{
	if (c->interest)
		epoll_ctl(in->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	for (struct conn **pp = &in->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	in->n_conns--;
	free(c->buf);
	free(c->out);
	free(c);
}

/* Marks a connection that has nothing left to do; the sweep at the end of
 * the loop round closes it (later events of the round may still name it). */
static void maybe_close(struct gos_ingest *in, struct conn *c)
{
	if (c->eof && c->out_len == c->out_off && c->pending_replies == 0) {
		c->closing = true;
		if (c->interest) {
			epoll_ctl(in->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
			c->interest = 0;
		}
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

static void accept_all(struct gos_ingest *in)
{
	for (;;) {
		int fd = accept4(in->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (in->n_conns >= in->max_conns) {
			char msg[160];
			int n = snprintf(msg, sizeof(msg),
			                 "{\"type\":\"error\",\"line\":0,\"code\":\"too_many_producers\","
			                 "\"reason\":\"too many producers connected (limit %d)\"}\n",
			                 in->max_conns);
			if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* nothing more to tell it */
			}
			close(fd);
			continue;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (!c)
			abort();
		c->id = ++in->next_id;
		c->fd = fd;
		c->interest = EPOLLIN | EPOLLRDHUP;
		struct epoll_event ev = {.events = c->interest, .data.ptr = c};
		if (epoll_ctl(in->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = in->conns;
		in->conns = c;
		in->n_conns++;
		in->local.connections_total++;
	}
}

static bool conn_read(struct gos_ingest *in, struct conn *c)
{
	size_t budget = READ_BUDGET;
	while (budget && !c->eof) {
		if (c->out_len - c->out_off >= OUT_HIGH_WATER)
			break;
		size_t need = c->len + READ_CHUNK;
		if (need > c->cap) {
			size_t cap = c->cap ? c->cap : READ_CHUNK * 2;
			while (cap < need)
				cap *= 2;
			c->buf = realloc(c->buf, cap);
			if (!c->buf)
				abort();
			c->cap = cap;
		}
		ssize_t r = recv(c->fd, c->buf + c->len, READ_CHUNK, MSG_DONTWAIT);
		if (r > 0) {
			c->len += (size_t)r;
			in->local.bytes_in += (uint64_t)r;
			budget -= (size_t)r < budget ? (size_t)r : budget;
			if (!process(in, c, false))
				return false;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		c->eof = true;
		if (!process(in, c, true))
			return false;
		/* An unterminated line delivered at EOF still counts: flush it so a
		 * pending sync reply (if any) follows it. */
	}
	return true;
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
	pthread_mutex_lock(&in->lock);
	in->published = in->local;
	pthread_mutex_unlock(&in->lock);
}

static void *ingest_main(void *arg)
{
	struct gos_ingest *in = arg;
	struct epoll_event evs[MAX_EVENTS];
	pthread_setname_np(pthread_self(), "gos-ingest");  /* for top, perf */
	for (;;) {
		pthread_mutex_lock(&in->lock);
		bool stop = in->stop;
		pthread_mutex_unlock(&in->lock);
		if (stop)
			break;
		int n = epoll_wait(in->epoll_fd, evs, MAX_EVENTS, in->batch->n ? 0 : 500);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			void *ptr = evs[i].data.ptr;
			if (ptr == &in->listen_fd) {
				accept_all(in);
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
			if (c->out_len > c->out_off)
				out_flush(c);
			maybe_close(in, c);
		}
		sweep(in);
		/* Hand over what this round parsed, so the core sees it promptly. */
		if (!flush_batch(in))
			break;
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
	in->queue = opts->queue;
	in->batch_events = opts->batch_events ? opts->batch_events : 4096;
	in->max_conns = opts->max_connections ? opts->max_connections : 1024;
	in->path = strdup(opts->socket_path);
	if (!in->path)
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
	while (in->conns)
		conn_close(in, in->conns);
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
	pthread_mutex_destroy(&in->lock);
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
