/* Unix-socket ingest thread: epoll over every producer, framing by
 * gos_frame, per-connection replies, batches into the core's queue.
 * What producers can hold is bounded: incomplete lines share one memory
 * budget, a connection that stalls inside a line is timed out, and running
 * out of file descriptors refuses producers instead of spinning.
 * This file: create/destroy, the thread's loop, batches and stats; the
 * connections are in ingest_conn.c, replies in ingest_reply.c
 * (gos_ingest_internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
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

#include "gos_heartbeat.h"
#include "gos_ingest_internal.h"
#include "gos_metrics.h"
#include "gos_time.h"

#define MAX_EVENTS         64
#define DEFAULT_BUDGET     ((size_t)64 << 20)
#define DEFAULT_TIMEOUT_MS 10000
#define TRIM_BYTES         ((size_t)4 << 20)  /* a burst worth giving back to the system */
#define TRIM_CONNS         256

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b ? b : "");
}

/* ---- batches ---- */

bool ingest_flush_batch(struct gos_ingest *in)
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

/* ---- the thread ---- */

/* epoll_wait's timeout: until the earliest progress deadline or the end of
 * an accept pause; -1 (wait for events alone) when there is neither. */
static int wait_ms(struct gos_ingest *in, int64_t now)
{
	if (in->batch->n)
		return 0;
	int64_t due = INT64_MAX;
	if (!node_empty(&in->partial))
		due = CONN_OF(in->partial.next, partial)->progress_ns + (int64_t)in->timeout_ms * 1000000;
	if (!node_empty(&in->framed)) {
		int64_t d = CONN_OF(in->framed.next, framed)->frame_ns + (int64_t)in->frame_timeout_ms * 1000000;
		if (d < due)
			due = d;
	}
	if (in->accept_paused && in->accept_resume_ns < due)
		due = in->accept_resume_ns;
	if (in->budget_quiet_since && in->budget_quiet_since + INGEST_BUDGET_QUIET_NS < due)
		due = in->budget_quiet_since + INGEST_BUDGET_QUIET_NS;
	if (due == INT64_MAX)
		return GOS_HB_WAIT_MS;  /* nothing due: wake to beat */
	if (due <= now)
		return 0;
	int64_t ms = (due - now + 999999) / 1000000;
	return ms > GOS_HB_WAIT_MS ? GOS_HB_WAIT_MS : (int)ms;
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
	gos_hb_start(GOS_HB_INGEST, 0);
	for (;;) {
		gos_hb_beat(GOS_HB_INGEST);
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
				ingest_accept_all(in, now);
				continue;
			}
			if (ptr == &in->wake_fd) {
				uint64_t v;
				if (read(in->wake_fd, &v, sizeof(v)) < 0) {
					/* counter already drained */
				}
				ingest_drain_replies(in);
				continue;
			}
			struct conn *c = ptr;
			if (c->closing)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
				if (!ingest_conn_read(in, c))
					goto out;
			if (ingest_out_pending(c))
				ingest_out_flush(c);
			ingest_maybe_close(in, c);
		}
		now = (int64_t)gos_now_ns();
		if (in->accept_paused && now >= in->accept_resume_ns)
			ingest_accept_resume(in);
		ingest_expire_stalled(in, now);
		ingest_budget_episode_check(in, now);
		ingest_sweep(in);
		/* Hand over what this round parsed, so the core sees it promptly. */
		if (!ingest_flush_batch(in))
			break;
		trim_after_burst(in);
		publish_stats(in);
	}
out:
	publish_stats(in);
	gos_hb_stop(GOS_HB_INGEST);
	return NULL;
}

/* ---- create / destroy ---- */

/* The group a --socket-group names: a name or a number. */
static bool group_id(const char *name, gid_t *out)
{
	char buf[4096];
	struct group gr, *res = NULL;
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) == 0 && res) {
		*out = res->gr_gid;
		return true;
	}
	char *end;
	errno = 0;
	unsigned long v = strtoul(name, &end, 10);
	if (!errno && end != name && !*end && v < (unsigned long)(gid_t)-1) {
		*out = (gid_t)v;
		return true;
	}
	return false;
}

static int bind_socket(const char *path, const char *group, char *err, size_t errlen)
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
	if (group) {
		gid_t gid;
		if (!group_id(group, &gid)) {
			set_err(err, errlen, "--socket-group: no group \"%s\" on this machine%s", group, NULL);
			close(fd);
			unlink(path);
			return -1;
		}
		if (chown(path, (uid_t)-1, gid) < 0 || chmod(path, 0660) < 0) {
			set_err(err, errlen, "cannot give %s to its group: %s", path, strerror(errno));
			close(fd);
			unlink(path);
			return -1;
		}
	}
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
	node_init(&in->framed);
	node_init(&in->parked);
	in->queue = opts->queue;
	in->batch_events = opts->batch_events ? opts->batch_events : 4096;
	in->max_conns = opts->max_connections ? opts->max_connections : 1024;
	in->timeout_ms = opts->progress_timeout_ms > 0 ? opts->progress_timeout_ms : DEFAULT_TIMEOUT_MS;
	in->frame_timeout_ms = opts->frame_timeout_ms > 0 ? opts->frame_timeout_ms : DEFAULT_TIMEOUT_MS;
	in->framing = opts->framing;
	in->lane_cap = gos_frame_max_held(NULL);
	in->budget = opts->input_budget ? opts->input_budget : DEFAULT_BUDGET;
	if (in->budget < 2 * in->lane_cap)
		in->budget = 2 * in->lane_cap;
	/* Spare descriptor for refusing producers at EMFILE (see accept_failed in ingest_conn.c). */
	in->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	in->scratch = malloc(INGEST_READ_CHUNK);
	in->path = strdup(opts->socket_path);
	if (!in->path || !in->scratch)
		goto error;

	in->listen_fd = bind_socket(in->path, opts->socket_group, err, errlen);
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

void gos_ingest_destroy(struct gos_ingest *in)
{
	if (!in)
		return;
	if (in->thread_started) {
		pthread_mutex_lock(&in->lock);
		in->stop = true;
		pthread_mutex_unlock(&in->lock);
		ingest_wake(in);
		pthread_join(in->thread, NULL);
	}
	while (in->conns) {
		struct conn *c = in->conns;
		in->conns = c->next;
		ingest_conn_free(c);
	}
	if (in->batch)
		gos_queue_put_batch(in->queue, in->batch);
	ingest_free_replies(in);
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

void gos_ingest_stats(struct gos_ingest *in, struct gos_ingest_stats *out)
{
	pthread_mutex_lock(&in->lock);
	*out = in->published;
	pthread_mutex_unlock(&in->lock);
}

void gos_ingest_metrics(struct gos_ingest *in, struct gos_buf *t)
{
	struct gos_ingest_stats st;
	gos_ingest_stats(in, &st);
	gos_metrics_family(t, "gos_ingest_geo_messages_total", "counter",
	                   "Geometry OS messages from producers, by kind (docs/geometry-os.md).");
	for (int k = 0; k < GOS_GEO_K_COUNT_; k++) {
		char lab[48];
		snprintf(lab, sizeof(lab), "kind=\"%s\"", gos_geo_kind_name((enum gos_geo_kind)k));
		gos_metrics_sample_u64(t, "gos_ingest_geo_messages_total", lab, st.geo[k]);
	}
	gos_metrics_family(t, "gos_ingest_producer_connections_total", "counter",
	                   "Producer connections by the peer's uid (SO_PEERCRED; \"other\": past the "
	                   "first 16 uids).");
	for (uint32_t k = 0; k < st.n_uids; k++) {
		char lab[32];
		snprintf(lab, sizeof(lab), "uid=\"%u\"", st.by_uid[k].uid);
		gos_metrics_sample_u64(t, "gos_ingest_producer_connections_total", lab,
		                       st.by_uid[k].connections);
	}
	if (st.other_uids)
		gos_metrics_sample_u64(t, "gos_ingest_producer_connections_total", "uid=\"other\"",
		                       st.other_uids);
	gos_metrics_family(t, "gos_ingest_frame_timeouts_total", "counter",
	                   "Length-prefixed frames not complete within --frame-timeout (closed).");
	gos_metrics_sample_u64(t, "gos_ingest_frame_timeouts_total", NULL, st.frame_timeouts);
}
