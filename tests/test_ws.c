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
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "gos_metrics.h"
#include "gos_test.h"
#include "gos_buf.h"
#include "gos_host.h"
#include "gos_ws.h"
#include "ws_test_client.h"

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
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, 0.1f);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f64(&t, 0.1);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, 16777217.5f);
	/* shortest text that reads back to the same float/double */
	CHECK(!strcmp(t.data, "12 -0.5 null 3e+20 0.1 0.1 16777218"), "numbers: %s", t.data);
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

/* The names a server answers to (DNS rebinding), as a table. */
static void test_host_names(void)
{
	char err[256];
	struct gos_host_allow *lo = gos_host_allow_create("127.0.0.1", "127.0.0.1", 7680, NULL,
	                                                  err, sizeof(err));
	CHECK(lo != NULL, "loopback allow list: %s", err);
	static const struct { const char *host; bool ok; } cases[] = {
		{NULL, true},                       /* no Host: HTTP/1.0, not a browser */
		{"127.0.0.1:7680", true}, {"127.0.0.1", true}, {"127.9.8.7:7680", true},
		{"localhost:7680", true}, {"LocalHost:7680", true}, {"localhost.:7680", true},
		{"viewer.localhost:7680", true}, {"[::1]:7680", true}, {"[::1]", true},
		{"[::ffff:127.0.0.1]:7680", true}, {" localhost:7680 ", true},
		{"rebind.evil.example:7680", false}, {"rebind.evil.example", false},
		{"localhost.evil.example:7680", false}, {"evillocalhost:7680", false},
		{"127.0.0.1:7681", false}, {"localhost:80", false}, {"localhost:", true},
		{"[::2]:7680", false}, {"::1", false}, {"192.168.1.9:7680", false},
		{"", false}, {"local host", false}, {"localhost:76a0", false},
		{"localhost:99999", false}, {"[::1", false}, {"[::1]x", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(gos_host_check(lo, cases[i].host) == cases[i].ok, "Host '%s' %s",
		      cases[i].host ? cases[i].host : "(none)", cases[i].ok ? "allowed" : "refused");
	gos_host_allow_destroy(lo);

	struct gos_host_allow *al = gos_host_allow_create("gos.lan", "192.168.1.9", 7680,
	                                                  "viewer.example, *.corp.example ,"
	                                                  "proxy.example:443,[fd00::5]",
	                                                  err, sizeof(err));
	CHECK(al != NULL, "allow list: %s", err);
	static const struct { const char *host; bool ok; } more[] = {
		{"gos.lan:7680", true}, {"GOS.LAN", true}, {"192.168.1.9:7680", true},
		{"192.168.1.8:7680", false}, {"viewer.example:7680", true},
		{"viewer.example:8080", false}, {"a.corp.example:7680", true},
		{"corp.example:7680", false}, {"proxy.example:443", true}, {"proxy.example", true},
		{"proxy.example:7680", false}, {"[fd00::5]:7680", true}, {"localhost:7680", true},
	};
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		CHECK(gos_host_check(al, more[i].host) == more[i].ok, "allow list: Host '%s' %s",
		      more[i].host, more[i].ok ? "allowed" : "refused");
	gos_host_allow_destroy(al);

	struct gos_host_allow *any = gos_host_allow_create("", "", 7680, "*", err, sizeof(err));
	CHECK(any && gos_host_check(any, "rebind.evil.example:1"), "'*' allows any Host");
	gos_host_allow_destroy(any);
	/* A wildcard listen address answers to the machine's own addresses. */
	struct gos_host_allow *wild = gos_host_allow_create("0.0.0.0", "0.0.0.0", 7680, NULL,
	                                                    err, sizeof(err));
	CHECK(wild && gos_host_check(wild, "127.0.0.1:7680") &&
	      !gos_host_check(wild, "rebind.evil.example:7680"), "wildcard listen: own names only");
	gos_host_allow_destroy(wild);
	CHECK(!gos_host_allow_create("", "", 1, "ok.example,bad host", err, sizeof(err)) &&
	      strstr(err, "bad host"), "a malformed --allow-host entry is named: %s", err);
}

/* DNS rebinding: a page at http://rebind.evil.example:PORT/ whose name now
 * points at 127.0.0.1 sends its own name in Host (and Origin). */
static void test_rebinding(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0"},
	                                  err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return;
	int port = gos_ws_port(ws);
	char req[512];
	static const char *const paths[] = {"/metrics", "/health", "/"};
	for (int i = 0; i < 3; i++) {
		int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: rebind.evil.example:%d\r\n"
		                 "Origin: http://rebind.evil.example:%d\r\nConnection: close\r\n\r\n",
		                 paths[i], port, port);
		char *r = http_raw(port, req, (size_t)n, 3000, NULL);
		CHECK(!strncmp(r, "HTTP/1.1 403", 12) && !strstr(r, "gos_uptime_seconds"),
		      "%s with the attacker's Host: 403, nothing read (%.40s)", paths[i], r);
		free(r);
	}
	int n = snprintf(req, sizeof(req),
	                 "GET /ws HTTP/1.1\r\nHost: rebind.evil.example:%d\r\n"
	                 "Origin: http://rebind.evil.example:%d\r\nUpgrade: websocket\r\n"
	                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: gos.v1\r\n\r\n",
	                 port, port);
	char *r = http_raw(port, req, (size_t)n, 3000, NULL);
	CHECK(!strncmp(r, "HTTP/1.1 403", 12), "/ws upgrade with the attacker's Host: 403 (%.40s)", r);
	free(r);
	/* Nor through lws's own "http" protocol named as the subprotocol. */
	n = snprintf(req, sizeof(req),
	             "GET /x HTTP/1.1\r\nHost: rebind.evil.example:%d\r\nUpgrade: websocket\r\n"
	             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: http\r\n\r\n", port);
	r = http_raw(port, req, (size_t)n, 3000, NULL);
	CHECK(!strncmp(r, "HTTP/1.1 404", 12), "an upgrade to subprotocol \"http\": 404 (%.40s)", r);
	free(r);
	/* The server's own names, and no Host at all, still work. */
	static const char *const good[] = {"localhost:%d", "127.0.0.1:%d", "[::1]:%d", NULL};
	for (int i = 0; i < 4; i++) {
		char h[64] = "";
		if (good[i])
			snprintf(h, sizeof(h), good[i], port);
		n = snprintf(req, sizeof(req), "GET /metrics HTTP/1.%d\r\n%s%s%sConnection: close\r\n\r\n",
		             good[i] ? 1 : 0, good[i] ? "Host: " : "", h, good[i] ? "\r\n" : "");
		r = http_raw(port, req, (size_t)n, 3000, NULL);
		CHECK(strstr(r, " 200 ") && strstr(r, "gos_uptime_seconds"), "/metrics with Host '%s': 200",
		      good[i] ? h : "(none, HTTP/1.0)");
		free(r);
	}
	struct gos_ws_stats st;
	gos_ws_stats(ws, &st);
	CHECK(st.refused_total[GOS_WS_REFUSED_HOST] == 4, "host refusals counted (%llu)",
	      (unsigned long long)st.refused_total[GOS_WS_REFUSED_HOST]);
	gos_ws_destroy(ws);
}

/* Request smuggling: a request that announces a body (we serve GET only),
 * or two Content-Lengths, is answered 400 and the connection closed, so
 * what follows it is never served as a request of its own. */
static void test_smuggling(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0"},
	                                  err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return;
	int port = gos_ws_port(ws);
	char hidden[128], req[1024];
	int hl = snprintf(hidden, sizeof(hidden), "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
	                  port);
	static const char *const framing[] = {
		"Content-Length: 0\r\nContent-Length: %d\r\n",   /* the first one wins in lws */
		"Content-Length: %d\r\nContent-Length: 0\r\n",
		"Content-Length: %d\r\n",                          /* a body on GET */
		"Transfer-Encoding: chunked\r\n",
		"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n",
	};
	for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++) {
		char f[128];
		snprintf(f, sizeof(f), framing[i], hl);
		int n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n%s%s",
		                 port, f, strstr(f, "chunked") ? "0\r\n\r\n" : "", hidden);
		bool closed;
		char *r = http_raw(port, req, (size_t)n, 2000, &closed);
		CHECK(!strncmp(r, "HTTP/1.1 400", 12) && count_of(r, "HTTP/1.1 ") == 1 &&
		      !strstr(r, "gos_uptime_seconds") && closed,
		      "framing %zu: 400, connection closed, the hidden request not served (%u answers, "
		      "closed %d: %.60s)", i, count_of(r, "HTTP/1.1 "), closed, r);
		free(r);
	}
	/* An upgrade with a body is refused the same way. */
	int n = snprintf(req, sizeof(req),
	                 "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n"
	                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n%s",
	                 port, hl, hidden);
	char *r = http_raw(port, req, (size_t)n, 2000, NULL);
	CHECK(!strncmp(r, "HTTP/1.1 400", 12) && !strstr(r, "gos_uptime_seconds"),
	      "an upgrade with a body: 400 (%.40s)", r);
	free(r);
	/* Honest pipelining still works: two requests, two answers. */
	n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	             "Content-Length: 0\r\n\r\n%s", port, hidden);
	r = http_raw(port, req, (size_t)n, 1000, NULL);
	CHECK(count_of(r, "HTTP/1.1 200") == 2 && strstr(r, "gos_uptime_seconds"),
	      "two pipelined GETs: two answers (%u)", count_of(r, "HTTP/1.1 200"));
	free(r);
	struct gos_ws_stats st;
	gos_ws_stats(ws, &st);
	CHECK(st.refused_total[GOS_WS_REFUSED_BAD_REQUEST] == 6, "bad requests counted (%llu)",
	      (unsigned long long)st.refused_total[GOS_WS_REFUSED_BAD_REQUEST]);
	gos_ws_destroy(ws);
}

/* Resident memory of this process (the server runs in it), in bytes. */
static long rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * sysconf(_SC_PAGESIZE);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* The web folder's files: served from the folder only, regular files only,
 * streamed (a client that does not read holds a chunk, not the file), and
 * never blocking the service thread (a FIFO). */
static void test_files(void)
{
	char dir[] = "/tmp/gos-test-ws-XXXXXX", path[512], link[512];
	if (!mkdtemp(dir)) {
		CHECK(false, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/web", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/secret.txt", dir);
	write_file(path, "TOP-SECRET\n");
	snprintf(path, sizeof(path), "%s/web/index.html", dir);
	write_file(path, "<p>gos</p>\n");
	snprintf(path, sizeof(path), "%s/web/leak.txt", dir);
	snprintf(link, sizeof(link), "%s/secret.txt", dir);
	CHECK(!symlink(link, path), "symlink out: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/web/up.txt", dir);
	CHECK(!symlink("../secret.txt", path), "relative symlink out: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/web/same.html", dir);
	CHECK(!symlink("index.html", path), "symlink inside: %s", strerror(errno));
	char fifo[512];
	snprintf(fifo, sizeof(fifo), "%s/web/fifo.html", dir);
	CHECK(!mkfifo(fifo, 0600), "mkfifo: %s", strerror(errno));
	/* 24 MiB, a different byte every KiB so that a short or shifted body shows. */
	enum { BIG = 24 << 20 };
	char *big = malloc(BIG);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (char)('a' + (i / 1024) % 26);
	snprintf(path, sizeof(path), "%s/web/big.bin", dir);
	FILE *f = fopen(path, "w");
	if (f) {
		fwrite(big, 1, BIG, f);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/web", dir);

	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0",
	                                                        .assets_dir = path},
	                                  err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		goto out;
	int port = gos_ws_port(ws);
	char req[256];
	static const struct { const char *path; const char *status; } files[] = {
		{"/", "200"}, {"/same.html", "200"}, {"/leak.txt", "404"}, {"/up.txt", "404"},
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		                 "Connection: close\r\n\r\n", files[i].path, port);
		char *r = http_raw(port, req, (size_t)n, 3000, NULL);
		CHECK(!strncmp(r + 9, files[i].status, 3) && !strstr(r, "TOP-SECRET") &&
		      (files[i].status[0] != '2' || strstr(r, "<p>gos</p>")),
		      "%s: %s (%.12s)", files[i].path, files[i].status, r);
		free(r);
	}

	/* A FIFO: refused at once, and the server keeps answering. */
	double t0 = now_s();
	int n = snprintf(req, sizeof(req), "GET /fifo.html HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	                 "Connection: close\r\n\r\n", port);
	char *r = http_raw(port, req, (size_t)n, 2000, NULL);
	CHECK(!strncmp(r, "HTTP/1.1 404", 12), "a FIFO is not served (%.12s)", r);
	free(r);
	n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	             "Connection: close\r\n\r\n", port);
	r = http_raw(port, req, (size_t)n, 2000, NULL);
	CHECK(!strncmp(r, "HTTP/1.1 200", 12) && now_s() - t0 < 1.0,
	      "/health answers right after (%.2f s)", now_s() - t0);
	free(r);
	int unblock = open(fifo, O_WRONLY | O_NONBLOCK);  /* frees a server stuck in open() */
	if (unblock >= 0)
		close(unblock);

	/* 20 clients ask for 24 MiB and do not read: the server holds chunks. */
	enum { SLOW = 20 };
	int fds[SLOW];
	long rss0 = rss_bytes();
	n = snprintf(req, sizeof(req), "GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
	for (int i = 0; i < SLOW; i++) {
		fds[i] = tcp_connect_rcvbuf(port, 4096);
		send(fds[i], req, (size_t)n, MSG_NOSIGNAL);
	}
	sleep_ms(700);
	long grown = rss_bytes() - rss0;
	CHECK(grown < 24L << 20, "%d readers of 24 MiB that do not read: RSS grew %.1f MiB "
	      "(a whole copy each would be %d MiB)", SLOW, (double)grown / (1 << 20), SLOW * 24);
	/* One of them reads now: the whole file arrives, byte for byte. */
	struct gos_buf got = {0};
	double deadline = now_s() + 20;
	size_t head = 0;
	while (now_s() < deadline) {
		struct pollfd p = {fds[0], POLLIN, 0};
		if (poll(&p, 1, 2000) <= 0)
			break;
		char b[65536];
		ssize_t k = recv(fds[0], b, sizeof(b), 0);
		if (k <= 0)
			break;
		gos_buf_append(&got, b, (size_t)k);
		if (!head && got.len >= 4) {
			char *e = memmem(got.data, got.len, "\r\n\r\n", 4);
			head = e ? (size_t)(e + 4 - got.data) : 0;
		}
		if (head && got.len - head >= BIG)
			break;
	}
	CHECK(head && got.len - head == BIG && !memcmp(got.data + head, big, BIG),
	      "the reader gets all 24 MiB intact (%zu)", head ? got.len - head : 0);
	gos_buf_finish(&got);
	for (int i = 0; i < SLOW; i++)
		close(fds[i]);
	gos_ws_destroy(ws);

	/* A budget of 2 HTTP connections, both busy sending the file: a third
	 * gets 503 at once, nobody is cut off. */
	ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0", .assets_dir = path,
	                                         .max_http = 2}, err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		goto out;
	port = gos_ws_port(ws);
	n = snprintf(req, sizeof(req), "GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
	for (int i = 0; i < 2; i++) {
		fds[i] = tcp_connect_rcvbuf(port, 4096);
		send(fds[i], req, (size_t)n, MSG_NOSIGNAL);
	}
	sleep_ms(200);
	bool closed;
	t0 = now_s();
	n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
	r = http_raw(port, req, (size_t)n, 2000, &closed);
	CHECK(!strncmp(r, "HTTP/1.1 503", 12) && closed && now_s() - t0 < 1.0,
	      "both connections busy: the third gets 503 and is closed (%.12s)", r);
	free(r);
	struct gos_ws_stats st;
	gos_ws_stats(ws, &st);
	CHECK(st.refused_total[GOS_WS_REFUSED_HTTP_FULL] == 1 && st.http_evicted == 0 &&
	      st.http_connections == 2, "refused as http_full (%llu), no busy one evicted (%llu)",
	      (unsigned long long)st.refused_total[GOS_WS_REFUSED_HTTP_FULL],
	      (unsigned long long)st.http_evicted);
	for (int i = 0; i < 2; i++)
		close(fds[i]);
	gos_ws_destroy(ws);
out:
	free(big);
	static const char *const names[] = {"web/index.html", "web/leak.txt", "web/up.txt",
	                                    "web/same.html", "web/fifo.html", "web/big.bin",
	                                    "secret.txt", "web", ""};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (remove(path))
			rmdir(path);
	}
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3;  /* ".", ".." and the directory's own descriptor */
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static char *get_health(int port, int timeout_ms)
{
	char req[128];
	int n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	                 "Connection: close\r\n\r\n", port);
	return http_raw(port, req, (size_t)n, timeout_ms, NULL);
}

/* Plain HTTP connections have a budget: idle ones beyond it are closed,
 * oldest first, and the server keeps answering. */
static void test_http_budget(void)
{
	int fds0 = open_fds();
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0",
	                                                        .max_http = 8},
	                                  err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return;
	int port = gos_ws_port(ws);
	enum { IDLE = 30 };
	int idle[IDLE];
	for (int i = 0; i < IDLE; i++) {
		idle[i] = tcp_connect(port);
		sleep_ms(2);  /* an order to close them in */
	}
	sleep_ms(200);
	struct gos_ws_stats st;
	gos_ws_stats(ws, &st);
	CHECK(st.http_connections <= 8 && st.http_evicted >= IDLE - 8,
	      "30 idle connections, budget 8: %llu open, %llu closed for room",
	      (unsigned long long)st.http_connections, (unsigned long long)st.http_evicted);
	int closed = 0, first_open = -1;
	for (int i = 0; i < IDLE; i++) {
		struct pollfd p = {idle[i], POLLIN, 0};
		char b[16];
		if (poll(&p, 1, 0) == 1 && recv(idle[i], b, sizeof(b), MSG_DONTWAIT) <= 0)
			closed++;
		else if (first_open < 0)
			first_open = i;
	}
	CHECK(closed >= IDLE - 8 && first_open >= IDLE - 8 - 1,
	      "the oldest were closed (%d closed, the first still open: #%d)", closed, first_open);
	double t0 = now_s();
	char *r = get_health(port, 2000);
	CHECK(!strncmp(r, "HTTP/1.1 200", 12) && now_s() - t0 < 1.0 && strstr(r, "\"max_http\":8"),
	      "/health answers at once (%.2f s): %.12s", now_s() - t0, r);
	free(r);
	/* A viewer leaves the HTTP budget once upgraded. */
	struct client v;
	CHECK(client_connect(&v, port, 0), "a viewer connects through a full HTTP budget");
	expect(&v, "hello", "viewer hello");
	for (int i = 0; i < IDLE; i++)
		close(idle[i]);
	sleep_ms(100);
	gos_ws_stats(ws, &st);
	CHECK(st.http_connections == 0 && st.viewers == 1,
	      "closed connections leave the count (%llu HTTP, %llu viewers)",
	      (unsigned long long)st.http_connections, (unsigned long long)st.viewers);
	r = get_health(port, 2000);
	free(r);
	gos_ws_stats(ws, &st);
	CHECK(st.refused_total[GOS_WS_REFUSED_HTTP_FULL] == 0, "nobody refused while some were idle");
	client_close(&v);
	gos_ws_destroy(ws);
	CHECK(open_fds() == fds0, "every descriptor is closed after destroy (%d, was %d)",
	      open_fds(), fds0);
}

/* The process out of descriptors (someone else's): the server pauses
 * accepting, without spinning or flooding the log, and resumes. */
static void test_fd_exhaustion(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0"},
	                                  err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return;
	int port = gos_ws_port(ws);
	char logpath[] = "/tmp/gos-test-ws-log-XXXXXX";
	int logfd = mkstemp(logpath);
	int saved_err = dup(2);
	fflush(stderr);
	dup2(logfd, 2);
	struct rlimit rl0, rl;
	getrlimit(RLIMIT_NOFILE, &rl0);
	rl = rl0;
	rl.rlim_cur = (rlim_t)open_fds() + 64;
	setrlimit(RLIMIT_NOFILE, &rl);
	int late = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  /* made now, connected later */
	int *hog = malloc(256 * sizeof(*hog)), n_hog = 0;
	while (n_hog < 256 && (hog[n_hog] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		n_hog++;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool connected = !connect(late, (struct sockaddr *)&sa, sizeof(sa));
	char req[128];
	int n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	                 "Connection: close\r\n\r\n", port);
	send(late, req, (size_t)n, MSG_NOSIGNAL);
	sleep_ms(100);
	double c0 = cpu_s(), t0 = now_s();
	sleep_ms(1000);
	double busy = (cpu_s() - c0) / (now_s() - t0);
	struct gos_ws_stats st;
	gos_ws_stats(ws, &st);
	uint64_t no_fd = st.accept_no_fd;
	for (int i = 0; i < n_hog; i++)
		close(hog[i]);
	free(hog);
	t0 = now_s();
	struct gos_buf got = {0};
	while (now_s() - t0 < 2.0) {
		struct pollfd p = {late, POLLIN, 0};
		char b[4096];
		if (poll(&p, 1, 2000) <= 0)
			break;
		ssize_t k = recv(late, b, sizeof(b), 0);
		if (k <= 0)
			break;
		gos_buf_append(&got, b, (size_t)k);
	}
	double answered = now_s() - t0;
	close(late);
	setrlimit(RLIMIT_NOFILE, &rl0);
	fflush(stderr);
	dup2(saved_err, 2);
	close(saved_err);
	struct stat sb;
	fstat(logfd, &sb);
	char logtext[4096] = "";
	ssize_t lr = pread(logfd, logtext, sizeof(logtext) - 1, 0);
	logtext[lr > 0 ? lr : 0] = '\0';
	close(logfd);
	unlink(logpath);
	CHECK(connected && n_hog > 0, "a client waits while the process is out of descriptors");
	CHECK(busy < 0.25, "no spinning at the descriptor limit: %.0f%% of a core", busy * 100);
	CHECK(no_fd >= 1 && no_fd < 100, "failed accepts counted, a few per second (%llu)",
	      (unsigned long long)no_fd);
	CHECK(sb.st_size < 1024 && count_of(logtext, "cannot accept connections") == 1,
	      "one log line for the episode (%lld bytes): %s", (long long)sb.st_size, logtext);
	CHECK(got.data && strstr(got.data, "HTTP/1.1 200") && answered < 1.0,
	      "descriptors free again: the waiting client is answered (%.2f s)", answered);
	gos_buf_finish(&got);
	gos_ws_destroy(ws);
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
 * closed with 1008 at once; a polite viewer is not touched. */
static void test_control_flood(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0"},
	                                  err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
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
	CHECK(st.inbound_limited == st0.inbound_limited && st.closed_rate == 3 + 1,
	      "nothing of the polite viewer limited (%llu -> %llu), 4 floods closed (%llu)",
	      (unsigned long long)st0.inbound_limited, (unsigned long long)st.inbound_limited,
	      (unsigned long long)st.closed_rate);
	CHECK(st.inbound_control >= 3000, "control frames counted (%llu)",
	      (unsigned long long)st.inbound_control);
	client_close(&p);
	gos_ws_destroy(ws);
}

/* lws's own log lines (through gos_ws's emitter) collapse: a line that
 * repeats, numbers aside, is printed once and then counted. */
static void test_lws_log(void)
{
	char err[256];
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0"},
	                                  err, sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return;
	char logpath[] = "/tmp/gos-test-ws-log-XXXXXX";
	int logfd = mkstemp(logpath);
	int saved_err = dup(2);
	fflush(stderr);
	dup2(logfd, 2);
	for (int i = 0; i < 10000; i++)
		lwsl_err("accept: errno %d\n", 24 + i % 2);
	sleep_ms(1300);  /* the server's once-a-second look ends the run */
	lwsl_err("another line\n");
	fflush(stderr);
	dup2(saved_err, 2);
	close(saved_err);
	char text[4096] = "";
	ssize_t n = pread(logfd, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	close(logfd);
	unlink(logpath);
	CHECK(count_of(text, "accept: errno") == 1 && strstr(text, "came 9999 more times") &&
	      strstr(text, "another line") && strlen(text) < 400,
	      "10000 repeats of a line: 3 lines in all (%zu bytes): %s", strlen(text), text);
	gos_ws_destroy(ws);
}

int main(void)
{
	test_text();
	test_host_names();
	test_rebinding();
	test_smuggling();
	test_files();
	test_http_budget();
	test_fd_exhaustion();
	test_control_flood();
	test_lws_log();
	test_order();
	test_backpressure_and_stale();
	test_max_viewers();
	return gos_test_report("test_ws");
}
