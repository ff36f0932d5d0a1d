/* net/gos_ws on its own (also under ASan/UBSan): the order in which a viewer
 * gets hello, snapshot and deltas; backpressure on a viewer that stops
 * reading; the stale-viewer pass; --max-viewers; and the text/metrics
 * helpers. The viewers are raw TCP WebSocket clients written here, so every
 * byte the server sends is seen. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gos_metrics.h"
#include "gos_test.h"
#include "gos_buf.h"
#include "gos_ws.h"

/* ---- a minimal WebSocket client ----------------------------------------- */

struct client {
	int fd;
	unsigned char *buf;
	size_t len, cap;
	int close_code;
	char close_reason[128];
	unsigned pings;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Reads more bytes within timeout_ms; false on EOF, error or timeout. */
static bool fill(struct client *c, int timeout_ms)
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

static bool client_connect(struct client *c, int port, int rcvbuf)
{
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (rcvbuf)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)))
		return false;
	char req[512];
	int n = snprintf(req, sizeof(req),
	                 "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: gos.v1\r\n\r\n", port);
	if (send(c->fd, req, (size_t)n, 0) != n)
		return false;
	for (;;) {
		unsigned char *end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
		if (end) {
			bool ok = c->len > 12 && !memcmp(c->buf, "HTTP/1.1 101", 12);
			size_t head = (size_t)(end + 4 - c->buf);
			memmove(c->buf, c->buf + head, c->len - head);
			c->len -= head;
			return ok;
		}
		if (!fill(c, 5000))
			return false;
	}
}

static void client_send(struct client *c, int opcode, const void *data, size_t n)
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
static bool client_recv(struct client *c, char **out, size_t *outlen, int timeout_ms)
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
static bool expect(struct client *c, const char *want, const char *what)
{
	char *m = NULL;
	size_t n = 0;
	bool ok = client_recv(c, &m, &n, 5000) && strstr(m, want);
	CHECK(ok, "%s: wanted a message with %s, got %.120s", what, want, m ? m : "(nothing)");
	free(m);
	return ok;
}

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
}

static void publish(struct gos_ws *ws, const char *s, bool snapshot)
{
	struct gos_ws_msg *m = gos_ws_msg_create(s, strlen(s));
	if (snapshot)
		gos_ws_publish_snapshot(ws, m, false);
	else
		gos_ws_publish(ws, m);
}

static bool wait_requests(struct gos_ws *ws, uint64_t want)
{
	double deadline = now_s() + 5;
	while (gos_ws_snapshot_requests(ws) < want && now_s() < deadline)
		sleep_ms(2);
	return gos_ws_snapshot_requests(ws) >= want;
}

/* ---- tests --------------------------------------------------------------- */

static void test_text(void)
{
	struct gos_buf t = {0};
	gos_buf_json_str(&t, "a\"b\\c\n\x01 \xc3\xa9");
	CHECK(!strcmp(t.data, "\"a\\\"b\\\\c\\n\\u0001 \xc3\xa9\""), "json escape: %s", t.data);
	gos_buf_clear(&t);
	gos_buf_json_f32(&t, 12.0f);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, -0.5f);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, NAN);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, 3e20f);
	CHECK(!strcmp(t.data, "12 -0.5 null 3.00000006e+20"), "numbers: %s", t.data);
	gos_buf_clear(&t);
	for (int i = 0; i < 1000; i++)
		gos_buf_printf(&t, "%d,", i);
	CHECK(t.len == strlen(t.data) && t.len == 3890, "printf grows the buffer: %zu", t.len);
	gos_buf_finish(&t);

	static const double b[] = {0.1, 1.0};
	struct gos_hist h;
	gos_hist_init(&h, b, 2);
	gos_hist_observe(&h, 0.05);
	gos_hist_observe(&h, 0.5);
	gos_hist_observe(&h, 5.0);
	gos_metrics_hist(&t, "x_seconds", "help.", &h);
	CHECK(strstr(t.data, "x_seconds_bucket{le=\"0.1\"} 1\n") &&
	      strstr(t.data, "x_seconds_bucket{le=\"1\"} 2\n") &&
	      strstr(t.data, "x_seconds_bucket{le=\"+Inf\"} 3\n") &&
	      strstr(t.data, "x_seconds_count 3\n") && strstr(t.data, "x_seconds_sum 5.55"),
	      "cumulative histogram: %s", t.data);
	gos_buf_finish(&t);
}

static void test_order(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0"},
	                                  err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return;
	int port = gos_ws_port(ws);
	CHECK(port > 0, "port 0 picks a port: %d", port);

	struct client a, b;
	CHECK(client_connect(&a, port, 0), "A upgrades");
	expect(&a, "\"type\":\"hello\"", "A hello");
	CHECK(wait_requests(ws, 1), "A asks for a snapshot");
	publish(ws, "{\"type\":\"delta\",\"n\":0}", false);  /* nobody live: nobody gets it */
	publish(ws, "{\"type\":\"snapshot\",\"n\":1}", true);
	publish(ws, "{\"type\":\"delta\",\"n\":2}", false);
	expect(&a, "\"n\":1", "A gets the snapshot");
	expect(&a, "\"n\":2", "then the delta after it");

	CHECK(client_connect(&b, port, 0), "B upgrades");
	expect(&b, "hello", "B hello");
	CHECK(wait_requests(ws, 2), "B asks for a snapshot");
	publish(ws, "{\"type\":\"delta\",\"n\":3}", false);     /* A only: B waits */
	publish(ws, "{\"type\":\"snapshot\",\"n\":4}", true);   /* B only: A is live */
	publish(ws, "{\"type\":\"delta\",\"n\":5}", false);     /* both */
	expect(&a, "\"n\":3", "A gets delta 3");
	expect(&a, "\"n\":5", "A skips snapshot 4 and gets delta 5");
	expect(&b, "\"n\":4", "B gets snapshot 4, not delta 3");
	expect(&b, "\"n\":5", "B then gets delta 5");

	/* A large message goes out in fragments and arrives whole. */
	size_t big = 300 * 1024;
	char *s = malloc(big + 1);
	memset(s, 'z', big);
	memcpy(s, "{\"n\":6,\"p\":\"", 12);
	memcpy(s + big - 2, "\"}", 2);
	s[big] = '\0';
	publish(ws, s, false);
	char *m = NULL;
	size_t n = 0;
	CHECK(client_recv(&a, &m, &n, 5000) && n == big && !memcmp(m, s, big),
	      "a 300 KiB message arrives whole (%zu bytes)", n);
	free(m);
	m = NULL;
	CHECK(client_recv(&b, &m, &n, 5000) && n == big && !memcmp(m, s, big),
	      "... to every viewer (%zu bytes)", n);
	free(m);
	free(s);

	/* ping -> pong; unknown messages ignored; the connection lives on. */
	client_send(&a, 0x1, "{\"type\":\"ping\",\"t\":7}", 21);
	client_send(&a, 0x1, "{\"type\":\"what\"}", 15);
	expect(&a, "{\"type\":\"pong\",\"t\":7}", "ping answered");
	publish(ws, "{\"n\":8}", false);
	expect(&a, "\"n\":8", "A still served after an unknown message");

	struct gos_ws_stats st;
	gos_ws_stats(ws, &st);
	CHECK(st.viewers == 2 && st.snapshots_sent == 2 && st.inbound == 2 && st.inbound_ignored == 1,
	      "stats: viewers %llu snapshots %llu inbound %llu ignored %llu",
	      (unsigned long long)st.viewers, (unsigned long long)st.snapshots_sent,
	      (unsigned long long)st.inbound, (unsigned long long)st.inbound_ignored);
	client_close(&a);
	client_close(&b);
	gos_ws_destroy(ws);
}

static void test_backpressure_and_stale(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){
		.listen = "127.0.0.1:0", .backpressure = 5, .max_queued = 8,
		.ping_interval_ms = 100, .stale_timeout_ms = 1500}, err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return;
	int port = gos_ws_port(ws);
	struct client d;
	CHECK(client_connect(&d, port, 4096), "D upgrades");
	expect(&d, "hello", "D hello");
	CHECK(wait_requests(ws, 1), "D asks for a snapshot");
	publish(ws, "{\"type\":\"snapshot\"}", true);
	expect(&d, "snapshot", "D snapshot");

	/* D stops reading; 40 messages of 256 KiB fill its socket and queue. */
	size_t big = 256 * 1024;
	char *s = malloc(big + 1);
	memset(s, 'q', big);
	s[big] = '\0';
	for (int i = 0; i < 40; i++) {
		publish(ws, s, false);
		sleep_ms(5);
	}
	free(s);
	sleep_ms(200);
	struct gos_ws_stats st;
	gos_ws_stats(ws, &st);
	CHECK(st.resyncs >= 1 && st.drops >= 5, "D was resynced (%llu) with drops (%llu)",
	      (unsigned long long)st.resyncs, (unsigned long long)st.drops);
	CHECK(st.max_queue_seen <= 5, "its queue never held more than 5 (%llu)",
	      (unsigned long long)st.max_queue_seen);
	uint64_t req = gos_ws_snapshot_requests(ws);
	CHECK(req == 1, "a viewer that does not read asks for no snapshot (%llu)",
	      (unsigned long long)req);

	/* D reads again: what was in flight, then resync, then it asks. */
	bool resync = false;
	for (int i = 0; i < 100 && !resync; i++) {
		char *m = NULL;
		size_t n = 0;
		if (!client_recv(&d, &m, &n, 5000))
			break;
		resync = !strcmp(m, "{\"type\":\"resync\"}");
		free(m);
	}
	CHECK(resync, "D reads {\"type\":\"resync\"}");
	CHECK(wait_requests(ws, 2), "then asks for a snapshot");
	publish(ws, "{\"type\":\"snapshot\",\"fresh\":1}", true);
	expect(&d, "fresh", "and gets the fresh one");
	publish(ws, "{\"n\":1}", false);
	expect(&d, "\"n\":1", "then deltas again");

	/* Stale pass: E never reads nor answers pings; D answers (while reading). */
	struct client e;
	CHECK(client_connect(&e, port, 0), "E upgrades");
	double t0 = now_s();
	while (now_s() - t0 < 2.5) {
		char *m = NULL;
		size_t n = 0;
		client_recv(&d, &m, &n, 50);  /* answers pings */
		free(m);
	}
	gos_ws_stats(ws, &st);
	CHECK(st.closed_stale == 1 && st.viewers == 1,
	      "the silent viewer is closed as stale (%llu), the answering one stays (%llu)",
	      (unsigned long long)st.closed_stale, (unsigned long long)st.viewers);
	CHECK(d.pings >= 5, "pings were sent every pass (%u)", d.pings);
	client_close(&e);
	client_close(&d);
	gos_ws_destroy(ws);
}

static void test_max_viewers(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){
		.listen = "127.0.0.1:0", .max_viewers = 1}, err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return;
	struct client a, b;
	CHECK(client_connect(&a, gos_ws_port(ws), 0), "first viewer");
	expect(&a, "hello", "first viewer hello");
	CHECK(client_connect(&b, gos_ws_port(ws), 0), "second upgrades (then is refused)");
	char *m = NULL;
	size_t n = 0;
	CHECK(!client_recv(&b, &m, &n, 5000) && b.close_code == 1013 &&
	      strstr(b.close_reason, "too many viewers"),
	      "second is closed 1013 with a reason: %d '%s'", b.close_code, b.close_reason);
	free(m);
	/* Destroy with a viewer still connected: everything is freed (ASan). */
	client_close(&b);
	gos_ws_destroy(ws);
	client_close(&a);

	/* Bad listen addresses get one sentence each. */
	CHECK(!gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:99999"}, err, sizeof(err)) &&
	      strstr(err, "port"), "a port out of range: %s", err);
	CHECK(!gos_ws_create(&(struct gos_ws_opts){.listen = "no-such-host.invalid:80"}, err,
	                     sizeof(err)) && strstr(err, "resolve"), "an unknown host: %s", err);
	CHECK(!gos_ws_create(&(struct gos_ws_opts){.listen = "8.8.8.8:7680"}, err, sizeof(err)) &&
	      strstr(err, "cannot listen"), "an address not of this machine: %s", err);
}

int main(void)
{
	test_text();
	test_order();
	test_backpressure_and_stale();
	test_max_viewers();
	return gos_test_report("test_ws");
}
