/* A minimal WebSocket client for the gos_ws tests (header-only, static):
 * raw TCP, so a test sees every byte and decides when to read. */
#ifndef WS_TEST_CLIENT_H
#define WS_TEST_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gos_buf.h"
#include "gos_test.h"
#include "gos_ws.h"

struct client {
	int fd;
	unsigned char *buf;
	size_t len, cap;
	int close_code;
	char close_reason[128];
	unsigned pings;
	bool rsv1;                     /* the last message came compressed (RFC 7692) */
	bool deflate;                  /* the server answered permessage-deflate */
};

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Reads more bytes within timeout_ms; false on EOF, error or timeout. */
static inline bool fill(struct client *c, int timeout_ms)
{
	struct pollfd p = {c->fd, POLLIN, 0};
	if (poll(&p, 1, timeout_ms) <= 0)
		return false;
	if (c->len + 65536 > c->cap) {
		c->cap = (c->len + 65536) * 2;
		c->buf = realloc(c->buf, c->cap);
	}
	ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (n <= 0)
		return false;
	c->len += (size_t)n;
	return true;
}

/* Upgrades with `headers` ("Name: value\r\n" lines) added to the request. */
static inline bool client_connect_with(struct client *c, int port, int rcvbuf, const char *headers);

static inline bool client_connect(struct client *c, int port, int rcvbuf)
{
	return client_connect_with(c, port, rcvbuf, "");
}

static inline bool client_connect_with(struct client *c, int port, int rcvbuf, const char *headers)
{
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (rcvbuf)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)))
		return false;
	char req[1024];
	int n = snprintf(req, sizeof(req),
	                 "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: gos.v1\r\n%s\r\n",
	                 port, headers);
	if (send(c->fd, req, (size_t)n, 0) != n)
		return false;
	for (;;) {
		unsigned char *end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
		if (end) {
			bool ok = c->len > 12 && !memcmp(c->buf, "HTTP/1.1 101", 12);
			size_t head = (size_t)(end + 4 - c->buf);
			static const char ext[] = "\r\nSec-WebSocket-Extensions: permessage-deflate";
			c->deflate = memmem(c->buf, head, ext, sizeof(ext) - 1) != NULL;
			memmove(c->buf, c->buf + head, c->len - head);
			c->len -= head;
			return ok;
		}
		if (!fill(c, 5000))
			return false;
	}
}

static inline void client_send(struct client *c, int opcode, const void *data, size_t n)
{
	unsigned char h[14];
	size_t hl = 0;
	h[hl++] = (unsigned char)(0x80 | opcode);
	if (n < 126) {
		h[hl++] = (unsigned char)(0x80 | n);
	} else {
		h[hl++] = 0x80 | 126;
		h[hl++] = (unsigned char)(n >> 8);
		h[hl++] = (unsigned char)n;
	}
	memset(h + hl, 0, 4);  /* mask of zeros: the payload goes as is */
	hl += 4;
	send(c->fd, h, hl, MSG_NOSIGNAL);
	if (n)
		send(c->fd, data, n, MSG_NOSIGNAL);
}

/* The next text message into out (caller frees), answering pings. Returns
 * false on close (close_code set), EOF or timeout. */
static inline bool client_recv(struct client *c, char **out, size_t *outlen, int timeout_ms)
{
	struct gos_buf msg = {0};
	double deadline = now_s() + timeout_ms / 1000.0;
	for (;;) {
		size_t need = 2;
		uint64_t plen = 0;
		size_t off = 2;
		if (c->len >= 2) {
			plen = c->buf[1] & 0x7f;
			if (plen == 126) {
				off = 4;
				if (c->len >= 4)
					plen = ((uint64_t)c->buf[2] << 8) | c->buf[3];
			} else if (plen == 127) {
				off = 10;
				if (c->len >= 10) {
					plen = 0;
					for (int i = 0; i < 8; i++)
						plen = (plen << 8) | c->buf[2 + i];
				}
			}
			need = off + (size_t)plen;
		}
		if (c->len < need || c->len < off) {
			int left = (int)((deadline - now_s()) * 1000);
			if (left <= 0 || !fill(c, left)) {
				gos_buf_finish(&msg);
				return false;
			}
			continue;
		}
		int fin = c->buf[0] & 0x80, op = c->buf[0] & 0x0f;
		unsigned char *p = c->buf + off;
		if (op == 0x8) {
			c->close_code = plen >= 2 ? (p[0] << 8) | p[1] : 0;
			snprintf(c->close_reason, sizeof(c->close_reason), "%.*s",
			         plen >= 2 ? (int)plen - 2 : 0, (const char *)p + 2);
		} else if (op == 0x9) {
			c->pings++;
			client_send(c, 0xA, p, (size_t)plen);
		} else if (op == 0x1 || op == 0x0) {
			if (op == 0x1)
				c->rsv1 = c->buf[0] & 0x40;
			gos_buf_append(&msg, (const char *)p, (size_t)plen);
		}
		memmove(c->buf, c->buf + need, c->len - need);
		c->len -= need;
		if (op == 0x8) {
			gos_buf_finish(&msg);
			return false;
		}
		if ((op == 0x1 || op == 0x0) && fin) {
			if (!msg.data)
				gos_buf_append(&msg, "", 0);
			*out = msg.data;
			*outlen = msg.len;
			return true;
		}
	}
}

/* The next message must contain `want`. */
static inline bool expect(struct client *c, const char *want, const char *what)
{
	char *m = NULL;
	size_t n = 0;
	bool ok = client_recv(c, &m, &n, 5000) && strstr(m, want);
	CHECK(ok, "%s: wanted a message with %s, got %.120s", what, want, m ? m : "(nothing)");
	free(m);
	return ok;
}

static inline void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
}

/* A TCP connection to 127.0.0.1:port, or -1; rcvbuf: SO_RCVBUF (set before
 * connecting, so that the window is negotiated for it), 0: the default. */
static inline int tcp_connect_rcvbuf(int port, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static inline int tcp_connect(int port)
{
	return tcp_connect_rcvbuf(port, 0);
}

/* Sends req as is on a new connection and reads what comes back until the
 * server closes or timeout_ms passes without a byte. Returns the bytes
 * (NUL-terminated, caller frees; "" when nothing came) and sets *closed when
 * the server hung up. */
static inline char *http_raw(int port, const char *req, size_t reqlen, int timeout_ms,
                             bool *closed)
{
	struct gos_buf out = {0};
	gos_buf_append(&out, "", 0);
	if (closed)
		*closed = false;
	int fd = tcp_connect(port);
	if (fd < 0)
		return out.data;
	send(fd, req, reqlen, MSG_NOSIGNAL);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, timeout_ms) <= 0)
			break;
		char b[16384];
		ssize_t n = recv(fd, b, sizeof(b), 0);
		if (n <= 0) {
			if (closed)
				*closed = true;
			break;
		}
		gos_buf_append(&out, b, (size_t)n);
	}
	close(fd);
	return out.data;
}

/* How many times needle occurs in hay. */
static inline unsigned count_of(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static inline void publish(struct gos_ws *ws, const char *s, bool snapshot)
{
	struct gos_ws_msg *m = gos_ws_msg_create(s, strlen(s));
	if (snapshot)
		gos_ws_publish_snapshot(ws, m, false);
	else
		gos_ws_publish(ws, m);
}

static inline bool wait_requests(struct gos_ws *ws, uint64_t want)
{
	double deadline = now_s() + 5;
	while (gos_ws_snapshot_requests(ws) < want && now_s() < deadline)
		sleep_ms(2);
	return gos_ws_snapshot_requests(ws) >= want;
}

/* A gos_ws with the default options on a free loopback port; NULL (and a
 * failed CHECK) when it cannot start. */
static inline struct gos_ws *test_server(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0"},
	                                  err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	return ws;
}

#endif
