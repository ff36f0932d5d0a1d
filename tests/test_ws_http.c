/* net/ws/gos_ws's HTTP side and its connections, on the server alone (also
 * under ASan/UBSan and ThreadSanitizer): the Host names it answers to (DNS
 * rebinding), request smuggling, the web folder's files (only regular files
 * beneath it, streamed, a FIFO never blocking), the HTTP connection budget,
 * the process out of descriptors (no spinning, one log line), and lws's log
 * lines collapsed. Viewers: test_ws.c. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "gos_buf.h"
#include "gos_host.h"
#include "gos_test.h"
#include "gos_ws.h"
#include "ws_test_client.h"

/* ---- tests --------------------------------------------------------------- */

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
	struct gos_ws *ws = test_server();
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
	struct gos_ws *ws = test_server();
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
	struct gos_ws *ws = test_server();
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

/* lws's own log lines (through gos_ws's emitter) collapse: a line that
 * repeats, numbers aside, is printed once and then counted. */
static void test_lws_log(void)
{
	struct gos_ws *ws = test_server();
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
	test_host_names();
	test_rebinding();
	test_smuggling();
	test_files();
	test_http_budget();
	test_fd_exhaustion();
	test_lws_log();
	return gos_test_report("test_ws_http");
}
