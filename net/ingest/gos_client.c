/* Producer-side client of the compositor's Unix socket. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gos_client.h"
#include "gos_reply.h"
#include "gos_time.h"

struct gos_client {
	int fd;
	char *in;                  /* reply bytes not yet split into lines */
	size_t in_len, in_cap;
	gos_client_line_fn on_line;
	void *ctx;
	bool got_sync;
	bool length_prefixed;
	struct gos_sync_result sync;
};

void gos_default_socket_path(char *buf, size_t len)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	if (rt && *rt)
		snprintf(buf, len, "%s/gos.sock", rt);
	else
		snprintf(buf, len, "/tmp/gos-%u.sock", (unsigned)getuid());
}

struct gos_client *gos_client_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "socket path is too long: %s", path);
		return NULL;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a Unix socket: %s", strerror(errno));
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		snprintf(err, errlen, "cannot connect to the compositor at %s: %s "
		         "(is gos-compositor running? --socket sets the path)", path, strerror(errno));
		close(fd);
		return NULL;
	}
	struct gos_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->fd = fd;
	return c;
}

void gos_client_close(struct gos_client *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c->in);
	free(c);
}

void gos_client_on_line(struct gos_client *c, gos_client_line_fn fn, void *ctx)
{
	c->on_line = fn;
	c->ctx = ctx;
}

static void dispatch_line(struct gos_client *c, const char *line, size_t len)
{
	/* Sync replies are recognised here; every line also goes to on_line.
	 * Only lines that mention sync are parsed: a flood of error lines
	 * costs a memmem each, not a JSON parse. */
	if (memmem(line, len, "sync", 4)) {
		struct gos_reply r;
		if (gos_reply_parse(line, len, &r) == GOS_REPLY_SYNC) {
			c->sync = (struct gos_sync_result){
				.applied = r.sync.applied,
				.rejected = r.sync.rejected,
				.tokens = r.sync.tokens,
			};
			c->got_sync = true;
		}
	}
	if (c->on_line)
		c->on_line(c->ctx, line, len);
}

/* Reads what is available; false when the connection is gone. */
static bool read_replies(struct gos_client *c)
{
	for (;;) {
		if (c->in_cap - c->in_len < 4096) {
			c->in_cap = c->in_cap ? c->in_cap * 2 : 8192;
			c->in = realloc(c->in, c->in_cap);
			if (!c->in)
				abort();
		}
		ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0)
			return false;
		c->in_len += (size_t)r;
		size_t pos = 0;
		for (;;) {
			const unsigned char *u = (const unsigned char *)c->in + pos;
			size_t left = c->in_len - pos;
			/* A framed connection's replies are frames (u32 little-endian
			 * length), except one sent before the compositor knew the
			 * framing: a line, which starts {" where a frame's length
			 * starting with '{' goes on with a NUL. */
			if (c->length_prefixed && left >= 2 && !(u[0] == '{' && u[1] == '"')) {
				if (left < 4)
					break;
				size_t n = (size_t)u[0] | (size_t)u[1] << 8 | (size_t)u[2] << 16 | (size_t)u[3] << 24;
				if (n > (1u << 20))
					return false;   /* not a reply gos sends */
				if (n > left - 4) {
					if (n + 4 > c->in_cap) {
						c->in_cap = n + 4;
						c->in = realloc(c->in, c->in_cap);
						if (!c->in)
							abort();
					}
					break;
				}
				dispatch_line(c, c->in + pos + 4, n);
				pos += 4 + n;
				continue;
			}
			char *nl = memchr(c->in + pos, '\n', left);
			if (!nl)
				break;
			dispatch_line(c, c->in + pos, (size_t)(nl - (c->in + pos)));
			pos = (size_t)(nl - c->in) + 1;
		}
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
	}
	return true;
}

static bool send_all(struct gos_client *c, const char *p, size_t n)
{
	while (n) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN | POLLOUT};
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (pfd.revents & POLLIN)
			if (!read_replies(c))
				return false;
		if (pfd.revents & (POLLERR | POLLHUP))
			return false;
		if (!(pfd.revents & POLLOUT))
			continue;
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

bool gos_client_send_raw(struct gos_client *c, const char *p, size_t n)
{
	return send_all(c, p, n);
}

void gos_client_set_length_prefixed(struct gos_client *c, bool on)
{
	c->length_prefixed = on;
}

bool gos_client_send(struct gos_client *c, const char *line, size_t len)
{
	if (!send_all(c, line, len))
		return false;
	if (len == 0 || line[len - 1] != '\n')
		return send_all(c, "\n", 1);
	return true;
}

bool gos_client_poll(struct gos_client *c, int timeout_ms)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	int r = poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR;
	if (r == 0)
		return true;
	return read_replies(c);
}

bool gos_client_sync(struct gos_client *c, int timeout_ms, struct gos_sync_result *out)
{
	static const char req[] = "{\"type\":\"sync\"}\n";
	static const char framed[] = "\x0f\0\0\0{\"type\":\"sync\"}";
	c->got_sync = false;
	bool sent = c->length_prefixed ? send_all(c, framed, sizeof(framed) - 1)
	                               : send_all(c, req, sizeof(req) - 1);
	if (!sent)
		return false;
	double deadline = (gos_now_s() * 1e3) + timeout_ms;
	while (!c->got_sync) {
		int wait = -1;
		if (timeout_ms >= 0) {
			double left = deadline - (gos_now_s() * 1e3);
			if (left <= 0)
				return false;
			wait = (int)left + 1;
		}
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int r = poll(&pfd, 1, wait);
		if (r < 0 && errno != EINTR)
			return false;
		if (r > 0 && !read_replies(c))
			return c->got_sync ? (*out = c->sync, true) : false;
	}
	*out = c->sync;
	return true;
}
