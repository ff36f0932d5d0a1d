/* The ingest tests' rig (header-only, static): a real ingest on a Unix
 * socket in /tmp feeding a real core and map, and the raw-socket helpers a
 * test producer needs (connect, write, read replies, token and frame
 * lines). Shared by test_ingest.c and test_ingest_limits.c. */
#ifndef INGEST_RIG_H
#define INGEST_RIG_H

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gos_client.h"
#include "gos_core.h"
#include "gos_ingest.h"
#include "gos_map.h"

struct rig {
	char path[108];
	struct gos_queue *queue;
	struct gos_map *map;
	struct gos_core *core;
	struct gos_ingest *ingest;
};

static inline void on_sync(void *ctx, const struct gos_sync_ev *s, uint64_t tokens)
{
	struct rig *r = ctx;
	gos_ingest_sync_done(r->ingest, s->conn, s->applied, s->rejected, tokens);
}

static inline void rig_start_core(struct rig *r)
{
	r->core = gos_core_create(&(struct gos_core_opts){
		.queue = r->queue, .map = r->map, .on_sync = on_sync, .ctx = r});
}

/* opts (may be NULL) gives the ingest's limits; the rig fills in the rest. */
static inline bool rig_init_opts(struct rig *r, size_t queue_cap, size_t batch, bool start_core,
                                 const struct gos_ingest_opts *opts)
{
	static int n;
	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "/tmp/gos-test-ingest-%d-%d.sock", (int)getpid(), n++);
	r->queue = gos_queue_create(queue_cap);
	r->map = gos_map_create(NULL);
	if (start_core)
		rig_start_core(r);
	char err[256];
	struct gos_ingest_opts o = opts ? *opts : (struct gos_ingest_opts){0};
	o.socket_path = r->path;
	o.queue = r->queue;
	o.batch_events = batch;
	r->ingest = gos_ingest_create(&o, err, sizeof(err));
	if (!r->ingest)
		fprintf(stderr, "rig: %s\n", err);
	return r->ingest != NULL;
}

static inline bool rig_init(struct rig *r, size_t queue_cap, size_t batch, bool start_core)
{
	return rig_init_opts(r, queue_cap, batch, start_core, NULL);
}

static inline void rig_finish(struct rig *r)
{
	gos_ingest_destroy(r->ingest);
	if (!r->core)
		rig_start_core(r);
	gos_core_destroy(r->core);
	gos_map_destroy(r->map);
	gos_queue_destroy(r->queue);
}

static inline int raw_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline bool write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w <= 0)
			return false;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

/* Reads what fd sends into buf (NUL-terminated, the start kept if it does
 * not fit) until `until` appears in it (NULL: until EOF), the peer closes,
 * or timeout_ms pass. Returns the milliseconds it took, -1 on timeout;
 * *eof says whether the peer closed. */
static inline int read_until(int fd, char *buf, size_t cap, const char *until, int timeout_ms,
                             bool *eof)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	size_t len = 0;
	buf[0] = 0;
	*eof = false;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		int ms = (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (until && strstr(buf, until))
			return ms;
		if (*eof)
			return until ? -1 : ms;
		if (ms >= timeout_ms)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, timeout_ms - ms) <= 0)
			continue;
		char tmp[4096];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n <= 0) {
			*eof = true;
			continue;
		}
		size_t k = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
		memcpy(buf + len, tmp, k);
		len += k;
		buf[len] = 0;
	}
}

/* Reads lines until a sync reply arrives; counts error lines. */
/* One reply: an error is counted (with its line number), a sync read into
 * *r (true). */
static inline bool rig_reply(const char *line, struct gos_sync_result *r, int *errors,
                             int *last_error_line)
{
	if (strstr(line, "\"type\":\"error\"")) {
		(*errors)++;
		const char *l = strstr(line, "\"line\":");
		if (l && last_error_line)
			*last_error_line = atoi(l + 7);
	} else if (strstr(line, "\"type\":\"sync\"")) {
		unsigned long long a = 0, rj = 0, t = 0;
		const char *p;
		if ((p = strstr(line, "\"applied\":")))
			a = strtoull(p + 10, NULL, 10);
		if ((p = strstr(line, "\"rejected\":")))
			rj = strtoull(p + 11, NULL, 10);
		if ((p = strstr(line, "\"tokens\":")))
			t = strtoull(p + 9, NULL, 10);
		*r = (struct gos_sync_result){a, rj, t};
		return true;
	}
	return false;
}

static inline bool read_sync(int fd, struct gos_sync_result *r, int *errors,
                             int *last_error_line)
{
	char buf[65536];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return false;
		len += (size_t)n;
		buf[len] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			if (rig_reply(line, r, errors, last_error_line))
				return true;
			line = nl + 1;
		}
		len = strlen(line);
		memmove(buf, line, len);
	}
}

/* Reads exactly n bytes (false at EOF or error). */
static inline bool read_full(int fd, void *p, size_t n)
{
	char *b = p;
	while (n) {
		ssize_t k = read(fd, b, n);
		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

/* One reply frame on a length-prefixed connection (be: big-endian length),
 * NUL-terminated into buf; false at EOF or when it does not fit. */
static inline bool read_frame(int fd, char *buf, size_t cap, bool be)
{
	unsigned char h[4];
	if (!read_full(fd, h, 4))
		return false;
	uint32_t n = be ? (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3]
	                : (uint32_t)h[3] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[1] << 8 | h[0];
	if (n >= cap || !read_full(fd, buf, n))
		return false;
	buf[n] = 0;
	return true;
}

/* read_sync() for a length-prefixed connection: replies come as frames. */
static inline bool read_sync_framed(int fd, bool be, struct gos_sync_result *r, int *errors,
                                    int *last_error_line)
{
	char buf[65536];
	while (read_frame(fd, buf, sizeof(buf), be))
		if (rig_reply(buf, r, errors, last_error_line))
			return true;
	return false;
}

static inline int token_line(char *buf, size_t cap, const char *id)
{
	return snprintf(buf, cap,
	                "{\"type\":\"token_activation\",\"token_id\":\"%s\",\"token_text\":\" t\","
	                "\"timestamp\":1.5,\"confidence\":0.75}\n", id);
}

static const char SYNC[] = "{\"type\":\"sync\"}\n";

static inline void put_frame(char *buf, size_t *len, const char *json, size_t n)
{
	buf[*len + 0] = (char)(n & 0xff);
	buf[*len + 1] = (char)((n >> 8) & 0xff);
	buf[*len + 2] = (char)((n >> 16) & 0xff);
	buf[*len + 3] = (char)((n >> 24) & 0xff);
	memcpy(buf + *len + 4, json, n);
	*len += 4 + n;
}

#endif
