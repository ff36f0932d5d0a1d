/* net/ws/gos_ws's viewers, on the server alone (also under ASan/UBSan and
 * ThreadSanitizer): the order in which a viewer gets hello, snapshot and
 * deltas; backpressure on a viewer that stops reading; the stale-viewer
 * pass; --max-viewers; control frames and fragments paying into the inbound
 * rate limit; permessage-deflate beside plain viewers; a marked message's
 * first write reported once. The viewers are raw TCP WebSocket clients
 * (ws_test_client.h), so every byte the server sends is seen. HTTP and
 * connections: test_ws_http.c; the messages' bytes: test_ws_proto.c. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <zlib.h>

#include "gos_buf.h"
#include "gos_test.h"
#include "gos_ws.h"
#include "ws_test_client.h"

/* ---- tests --------------------------------------------------------------- */

static void test_order(void)
{
	struct gos_ws *ws = test_server();
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

	/* Token bucket: 20/s with bursts of 40. 100 at once: most are dropped,
	 * the connection stays. */
	static const char vp[] = "{\"type\":\"viewport\",\"x\":0,\"y\":0,\"w\":10,\"h\":10,\"zoom\":1}";
	expect(&b, "\"n\":8", "B has read what was sent before");
	for (int i = 0; i < 100; i++)
		client_send(&b, 0x1, vp, sizeof(vp) - 1);
	sleep_ms(200);
	gos_ws_stats(ws, &st);
	CHECK(st.inbound_limited >= 50 && st.inbound_limited <= 62,
	      "a burst of 100 messages: about 60 over the bucket dropped (%llu)",
	      (unsigned long long)st.inbound_limited);
	publish(ws, "{\"n\":9}", false);
	expect(&b, "\"n\":9", "the bursting viewer is still served");

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

/* Appends one masked (zero mask) client frame to b. */
static void frame_put(struct gos_buf *b, bool fin, int opcode, const char *data, size_t n)
{
	unsigned char h[8];
	size_t hl = 0;
	h[hl++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
	if (n < 126) {
		h[hl++] = (unsigned char)(0x80 | n);
	} else {
		h[hl++] = 0x80 | 126;
		h[hl++] = (unsigned char)(n >> 8);
		h[hl++] = (unsigned char)n;
	}
	memset(h + hl, 0, 4);
	hl += 4;
	gos_buf_append(b, (const char *)h, hl);
	gos_buf_append(b, data, n);
}

/* Reads until the server closes; true when it sent close code `code`. */
static bool closed_with(struct client *c, int code, double within_s)
{
	double deadline = now_s() + within_s;
	while (now_s() < deadline) {
		char *m = NULL;
		size_t n = 0;
		bool got = client_recv(c, &m, &n, (int)((deadline - now_s()) * 1000) + 1);
		free(m);
		if (!got)
			break;
	}
	return c->close_code == code;
}

/* Control frames and fragments pay into the inbound rate limit like
 * messages: a ping flood, a pong flood and a message in 3000 fragments are
 * closed with 1008 at once, a ping flood after a quiet while within about
 * a second; a polite viewer is not touched. */
static void test_control_flood(void)
{
	struct gos_ws *ws = test_server();
	if (!ws)
		return;
	int port = gos_ws_port(ws);
	static const struct { const char *what; int opcode; size_t payload; } floods[] = {
		{"empty pings", 0x9, 0}, {"pings with 125 bytes", 0x9, 125}, {"pongs", 0xA, 4},
	};
	char pad[128];
	memset(pad, 'p', sizeof(pad));
	for (size_t f = 0; f < sizeof(floods) / sizeof(floods[0]); f++) {
		struct client c;
		CHECK(client_connect(&c, port, 0), "flooder upgrades");
		expect(&c, "hello", "flooder hello");
		struct gos_buf b = {0};
		for (int i = 0; i < 20000; i++)
			frame_put(&b, true, floods[f].opcode, pad, floods[f].payload);
		double t0 = now_s();
		for (size_t off = 0; off < b.len;) {
			ssize_t k = send(c.fd, b.data + off, b.len - off, MSG_NOSIGNAL);
			if (k <= 0)
				break;
			off += (size_t)k;
		}
		gos_buf_finish(&b);
		CHECK(closed_with(&c, 1008, 3.0) && strstr(c.close_reason, "rate limit") &&
		      now_s() - t0 < 2.0, "20000 %s: closed 1008 '%s' (%d) in %.2f s", floods[f].what,
		      c.close_reason, c.close_code, now_s() - t0);
		client_close(&c);
	}
	/* A viewer quiet long enough to be looked at only every CTL_SCAN_MAX_MS
	 * is stopped all the same, within about that long. */
	struct client q;
	CHECK(client_connect(&q, port, 0), "quiet flooder upgrades");
	expect(&q, "hello", "quiet flooder hello");
	sleep_ms(2500);
	struct gos_buf qb = {0};
	for (int i = 0; i < 20000; i++)
		frame_put(&qb, true, 0x9, pad, 0);
	double tq = now_s();
	for (size_t off = 0; off < qb.len;) {
		ssize_t k = send(q.fd, qb.data + off, qb.len - off, MSG_NOSIGNAL);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	gos_buf_finish(&qb);
	CHECK(closed_with(&q, 1008, 4.0) && now_s() - tq < 3.0,
	      "a flood after 2.5 s of quiet: closed 1008 (%d) in %.2f s", q.close_code, now_s() - tq);
	client_close(&q);

	/* One text message in 3000 one-byte fragments: 3000 frames to pay. */
	struct client c;
	CHECK(client_connect(&c, port, 0), "fragmenter upgrades");
	expect(&c, "hello", "fragmenter hello");
	struct gos_buf b = {0};
	frame_put(&b, false, 0x1, "{", 1);
	for (int i = 0; i < 3000; i++)
		frame_put(&b, false, 0x0, " ", 1);
	frame_put(&b, true, 0x0, "}", 1);
	send(c.fd, b.data, b.len, MSG_NOSIGNAL);
	gos_buf_finish(&b);
	CHECK(closed_with(&c, 1008, 3.0), "a message in 3000 fragments: closed 1008 (%d)", c.close_code);
	client_close(&c);

	/* A polite viewer: a few pings, a 60 KiB message in one frame, a 20 KiB
	 * one in 10 fragments, and viewports: nothing limited, still served. */
	struct gos_ws_stats st0, st;
	gos_ws_stats(ws, &st0);
	struct client p;
	uint64_t req0 = gos_ws_snapshot_requests(ws);
	CHECK(client_connect(&p, port, 0), "polite viewer upgrades");
	expect(&p, "hello", "polite viewer hello");
	CHECK(wait_requests(ws, req0 + 1), "asks for a snapshot");
	for (int i = 0; i < 5; i++)
		client_send(&p, 0x9, "hi", 2);
	char *big = malloc(60 * 1024);
	memset(big, ' ', 60 * 1024);
	big[0] = '{';
	big[60 * 1024 - 1] = '}';
	client_send(&p, 0x1, big, 60 * 1024);
	gos_buf_append(&b, "", 0);
	b.len = 0;
	for (int i = 0; i < 10; i++)
		frame_put(&b, i == 9, i ? 0x0 : 0x1, big, 2048);
	send(p.fd, b.data, b.len, MSG_NOSIGNAL);
	gos_buf_finish(&b);
	free(big);
	static const char vp[] = "{\"type\":\"viewport\",\"x\":0,\"y\":0,\"w\":10,\"h\":10,\"zoom\":1}";
	for (int i = 0; i < 5; i++)
		client_send(&p, 0x1, vp, sizeof(vp) - 1);
	sleep_ms(1200);  /* past the server's 1 s look at every viewer */
	publish(ws, "{\"type\":\"snapshot\",\"n\":1}", true);
	expect(&p, "\"n\":1", "the polite viewer is still served");
	gos_ws_stats(ws, &st);
	CHECK(st.inbound_limited == st0.inbound_limited && st.closed_rate == 3 + 1 + 1,
	      "nothing of the polite viewer limited (%llu -> %llu), 5 floods closed (%llu)",
	      (unsigned long long)st0.inbound_limited, (unsigned long long)st.inbound_limited,
	      (unsigned long long)st.closed_rate);
	CHECK(st.inbound_control >= 3000, "control frames counted (%llu)",
	      (unsigned long long)st.inbound_control);
	client_close(&p);
	gos_ws_destroy(ws);
}

/* The next message of a viewer that negotiated permessage-deflate,
 * inflated with the stream's context (caller frees). */
static bool recv_inflated(struct client *c, z_stream *z, char **out, size_t *outlen)
{
	char *m = NULL;
	size_t n = 0;
	if (!client_recv(c, &m, &n, 5000))
		return false;
	if (!c->rsv1) {
		*out = m;
		*outlen = n;
		return true;
	}
	m = realloc(m, n + 4);
	memcpy(m + n, "\x00\x00\xff\xff", 4);  /* RFC 7692 7.2.2: the tail the sender took off */
	struct gos_buf text = {0};
	z->next_in = (unsigned char *)m;
	z->avail_in = (uInt)(n + 4);
	int r = Z_OK;
	while (r == Z_OK && z->avail_in) {
		unsigned char piece[16384];
		z->next_out = piece;
		z->avail_out = sizeof(piece);
		r = inflate(z, Z_SYNC_FLUSH);
		gos_buf_append(&text, (const char *)piece, sizeof(piece) - z->avail_out);
		if (r == Z_BUF_ERROR && !z->avail_in)
			r = Z_OK;
	}
	free(m);
	if (r != Z_OK) {
		gos_buf_finish(&text);
		return false;
	}
	if (!text.data)
		gos_buf_append(&text, "", 0);
	*out = text.data;
	*outlen = text.len;
	return true;
}

/* permessage-deflate: a viewer that offers it gets every message
 * compressed, large ones (compressible or not) in fragments of the
 * compressor's output, each equal once inflated to what a viewer without
 * it gets from the same shared bytes; an offer lws cannot honour is
 * declined and that viewer gets plain frames. */
static void test_deflate(void)
{
	struct gos_ws *ws = test_server();
	if (!ws)
		return;
	int port = gos_ws_port(ws);
	static const char offer[] =
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
	struct client d, p, x;
	z_stream z = {0};
	CHECK(inflateInit2(&z, -15) == Z_OK, "zlib inflater");
	CHECK(client_connect_with(&d, port, 0, offer) && d.deflate, "D upgrades with permessage-deflate");
	CHECK(client_connect(&p, port, 0) && !p.deflate, "P upgrades without it");
	static const char declined[] =
		"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n";
	CHECK(client_connect_with(&x, port, 0, declined) && !x.deflate,
	      "an offer with server_max_window_bits is declined");
	char *m = NULL;
	size_t n = 0;
	CHECK(recv_inflated(&d, &z, &m, &n) && d.rsv1 && strstr(m, "\"type\":\"hello\""),
	      "D's hello is compressed (%d): %.60s", d.rsv1, m ? m : "");
	free(m);
	m = NULL;
	expect(&p, "hello", "P hello");
	expect(&x, "hello", "X hello");
	CHECK(!p.rsv1 && !x.rsv1, "plain frames without the extension");
	CHECK(wait_requests(ws, 3), "all three ask for a snapshot");

	/* 300 KiB that compresses well, then 300 KiB that hardly does (the
	 * compressor's output per write must stay within lws's buffer). */
	size_t big = 300 * 1024;
	char *s[2];
	for (int k = 0; k < 2; k++) {
		s[k] = malloc(big + 1);
		uint32_t r = 12345;
		for (size_t i = 0; i < big; i++) {
			r = r * 1103515245u + 12345u;
			s[k][i] = k ? (char)(' ' + (r >> 16) % 94) : "{}:,tokenx0123"[i % 7 + (i / 97) % 7];
		}
		s[k][big] = '\0';
	}
	publish(ws, s[0], true);
	publish(ws, s[1], false);
	publish(ws, "{\"n\":10}", false);
	for (int k = 0; k < 3; k++) {
		const char *want = k < 2 ? s[k] : "{\"n\":10}";
		size_t wl = strlen(want);
		CHECK(recv_inflated(&d, &z, &m, &n) && d.rsv1 && n == wl && !memcmp(m, want, wl),
		      "D: message %d inflates whole and equal (%zu of %zu bytes)", k, n, wl);
		free(m);
		m = NULL;
		CHECK(client_recv(&p, &m, &n, 5000) && !p.rsv1 && n == wl && !memcmp(m, want, wl),
		      "P: message %d plain and equal (%zu bytes)", k, n);
		free(m);
		m = NULL;
		CHECK(client_recv(&x, &m, &n, 5000) && !x.rsv1 && n == wl && !memcmp(m, want, wl),
		      "X: message %d plain and equal (%zu bytes)", k, n);
		free(m);
		m = NULL;
	}
	client_send(&d, 0x1, "{\"type\":\"ping\",\"t\":5}", 21);
	CHECK(recv_inflated(&d, &z, &m, &n) && m && strstr(m, "{\"type\":\"pong\",\"t\":5}"),
	      "D's uncompressed ping answered (compressed): %.60s", m ? m : "");
	free(m);
	inflateEnd(&z);
	free(s[0]);
	free(s[1]);
	client_close(&d);
	client_close(&p);
	client_close(&x);
	gos_ws_destroy(ws);
}

/* ---- first_write: once per marked message, whichever viewer writes it ---- */

static _Atomic uint32_t written[8];   /* by mark */
static _Atomic uint32_t written_other;

static void on_first_write(void *ctx, uint64_t mark)
{
	(void)ctx;
	if (mark < 8)
		atomic_fetch_add(&written[mark], 1);
	else
		atomic_fetch_add(&written_other, 1);
}

static void publish_marked(struct gos_ws *ws, const char *s, bool snapshot, uint64_t mark)
{
	struct gos_ws_msg *m = gos_ws_msg_create(s, strlen(s));
	if (mark)
		gos_ws_msg_mark(m, mark);
	if (snapshot)
		gos_ws_publish_snapshot(ws, m, false);
	else
		gos_ws_publish(ws, m);
}

static void test_first_write(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0",
	                                  .first_write = on_first_write}, err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return;
	int port = gos_ws_port(ws);
	static const char offer[] =
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
	struct client p, d;
	z_stream z = {0};
	CHECK(inflateInit2(&z, -15) == Z_OK, "zlib inflater");
	/* a plain viewer (frames by sendmsg) and a deflate one (lws_write) */
	CHECK(client_connect(&p, port, 0), "P upgrades");
	CHECK(client_connect_with(&d, port, 0, offer) && d.deflate, "D upgrades with deflate");
	char *m = NULL;
	size_t n = 0;
	expect(&p, "hello", "P hello");
	CHECK(recv_inflated(&d, &z, &m, &n), "D hello");
	free(m);
	m = NULL;
	CHECK(wait_requests(ws, 2), "both ask for a snapshot");
	publish_marked(ws, "{\"n\":1}", true, 1);
	publish_marked(ws, "{\"n\":2}", false, 2);
	publish_marked(ws, "{\"n\":3}", false, 0);       /* unmarked */
	size_t big = 200 * 1024;                           /* in fragments */
	char *s = malloc(big + 1);
	memset(s, 'q', big);
	memcpy(s, "{\"n\":4,\"p\":\"", 12);
	memcpy(s + big - 2, "\"}", 2);
	s[big] = '\0';
	publish_marked(ws, s, false, 4);
	for (int k = 1; k <= 4; k++) {
		CHECK(client_recv(&p, &m, &n, 5000), "P gets message %d", k);
		free(m);
		m = NULL;
		CHECK(recv_inflated(&d, &z, &m, &n), "D gets message %d", k);
		free(m);
		m = NULL;
	}
	sleep_ms(200);   /* the report follows the socket write */
	CHECK(atomic_load(&written[1]) == 1 && atomic_load(&written[2]) == 1 &&
	      atomic_load(&written[4]) == 1 && atomic_load(&written[0]) == 0 &&
	      atomic_load(&written[3]) == 0 && atomic_load(&written_other) == 0,
	      "each marked message reported once, two viewers or not (%u %u %u), unmarked never",
	      atomic_load(&written[1]), atomic_load(&written[2]), atomic_load(&written[4]));

	/* the deflate viewer alone writes this one */
	client_close(&p);
	sleep_ms(100);
	publish_marked(ws, "{\"n\":5}", false, 5);
	CHECK(recv_inflated(&d, &z, &m, &n) && m && strstr(m, "\"n\":5"), "D gets message 5");
	free(m);
	sleep_ms(200);
	CHECK(atomic_load(&written[5]) == 1, "through lws_write too (%u)", atomic_load(&written[5]));
	inflateEnd(&z);
	free(s);
	client_close(&d);
	gos_ws_destroy(ws);
}

int main(void)
{
	test_first_write();
	test_deflate();
	test_control_flood();
	test_order();
	test_backpressure_and_stale();
	test_max_viewers();
	return gos_test_report("test_ws");
}
