/* gos-bench fanout's load client (see fanout_load.h). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "fanout_load.h"
#include "gos_buf.h"
#include "gos_time.h"

#define LAT_CAP    (1u << 18)      /* latency samples kept per process */
#define HEAD_CAP   256             /* first bytes of a message kept: type and "n" */
#define RESP_CAP   2048            /* the handshake's answer */
#define READ_CHUNK (256 * 1024)

/* Per process, in memory shared with the owner. */
struct proc_shm {
	_Atomic int ready, failed, closed;
	uint64_t messages, deliveries, data_messages, bytes, resyncs;
	double cpu_s;
	size_t n_lat;
	double lat[LAT_CAP];
};

struct fanout_load {
	int procs;
	pid_t pid[FANOUT_LOAD_MAX_PROCS];
	int ctl[FANOUT_LOAD_MAX_PROCS];  /* the owner's end of each socketpair */
	struct proc_shm *shm;            /* procs of them */
	size_t shm_len;
	int viewers;
};

/* ---- the client (one process) -------------------------------------------- */

enum conn_state { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };

struct conn {
	enum conn_state state;
	int fd;
	bool sample, got_first;
	char key[32];                  /* Sec-WebSocket-Key */
	char *resp;                    /* the handshake's answer so far */
	size_t resp_len;
	/* the frame being parsed */
	unsigned char hdr[14];
	size_t hdr_len, hdr_need;
	uint64_t left;                 /* payload bytes of the frame still to come */
	unsigned char op;
	bool fin;
	unsigned char ctl[125];
	size_t ctl_len;
	/* the message being assembled */
	bool in_msg;
	char head[HEAD_CAP];
	size_t head_len;
	struct gos_buf msg;            /* sampled viewers: the whole message */
};

struct client {
	struct proc_shm *shm;
	int ep;
	int port;
	const char *path;
	struct conn *c;
	int n, next, pending, inflight;
	bool measuring;
	uint64_t rng;
	double cpu0;
	unsigned char *rbuf;
};

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static uint64_t rnd(struct client *cl)
{
	cl->rng ^= cl->rng << 13;
	cl->rng ^= cl->rng >> 7;
	cl->rng ^= cl->rng << 17;
	return cl->rng;
}

/* SHA-1 (FIPS 180-4) of a short string: for Sec-WebSocket-Accept only. */
static void sha1(const unsigned char *msg, size_t len, unsigned char out[20])
{
	uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
	size_t total = ((len + 8) / 64 + 1) * 64;
	unsigned char buf[256];
	if (total > sizeof(buf))
		abort();
	memset(buf, 0, total);
	memcpy(buf, msg, len);
	buf[len] = 0x80;
	uint64_t bits = (uint64_t)len * 8;
	for (int i = 0; i < 8; i++)
		buf[total - 1 - i] = (unsigned char)(bits >> (8 * i));
	for (size_t blk = 0; blk < total; blk += 64) {
		uint32_t w[80];
		for (int i = 0; i < 16; i++)
			w[i] = (uint32_t)buf[blk + 4 * i] << 24 | (uint32_t)buf[blk + 4 * i + 1] << 16 |
			       (uint32_t)buf[blk + 4 * i + 2] << 8 | buf[blk + 4 * i + 3];
		for (int i = 16; i < 80; i++) {
			uint32_t x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
			w[i] = x << 1 | x >> 31;
		}
		uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
		for (int i = 0; i < 80; i++) {
			uint32_t f, k;
			if (i < 20) {
				f = (b & c) | (~b & d);
				k = 0x5A827999;
			} else if (i < 40) {
				f = b ^ c ^ d;
				k = 0x6ED9EBA1;
			} else if (i < 60) {
				f = (b & c) | (b & d) | (c & d);
				k = 0x8F1BBCDC;
			} else {
				f = b ^ c ^ d;
				k = 0xCA62C1D6;
			}
			uint32_t t = (a << 5 | a >> 27) + f + e + k + w[i];
			e = d;
			d = c;
			c = b << 30 | b >> 2;
			b = a;
			a = t;
		}
		h[0] += a;
		h[1] += b;
		h[2] += c;
		h[3] += d;
		h[4] += e;
	}
	for (int i = 0; i < 20; i++)
		out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const unsigned char *in, size_t len, char *out)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
		             (i + 2 < len ? in[i + 2] : 0);
		out[o++] = tbl[v >> 18 & 63];
		out[o++] = tbl[v >> 12 & 63];
		out[o++] = i + 1 < len ? tbl[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
}

static void conn_fail(struct client *cl, struct conn *c)
{
	if (c->state == C_DEAD)
		return;
	if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
		cl->pending--;
		atomic_fetch_add(&cl->shm->failed, 1);
	} else if (c->state == C_OPEN && c->got_first) {
		atomic_fetch_add(&cl->shm->closed, 1);
	} else {
		atomic_fetch_add(&cl->shm->failed, 1);
	}
	c->state = C_DEAD;
	close(c->fd);  /* also leaves the epoll set */
	c->fd = -1;
	free(c->resp);
	c->resp = NULL;
	gos_buf_finish(&c->msg);
}

/* A masked frame from the client (RFC 6455 5.3): control frames only,
 * small, so one send takes all of it or the connection is beyond help. */
static void conn_send(struct client *cl, struct conn *c, unsigned char op,
                      const unsigned char *payload, size_t len)
{
	unsigned char f[2 + 4 + 125];
	uint32_t mask = (uint32_t)rnd(cl);
	f[0] = (unsigned char)(0x80 | op);
	f[1] = (unsigned char)(0x80 | len);
	memcpy(f + 2, &mask, 4);
	for (size_t i = 0; i < len; i++)
		f[6 + i] = payload[i] ^ f[2 + i % 4];
	if (send(c->fd, f, 6 + len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)(6 + len))
		conn_fail(cl, c);
}

static void conn_start(struct client *cl, struct conn *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->state = C_DEAD;
		atomic_fetch_add(&cl->shm->failed, 1);
		return;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cl->port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->state = C_CONNECTING;
	cl->pending++;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		conn_fail(cl, c);
		return;
	}
	/* Edge-triggered: registered once, never modified. */
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
	                         .data.ptr = c};
	if (epoll_ctl(cl->ep, EPOLL_CTL_ADD, c->fd, &ev))
		conn_fail(cl, c);
}

static void conn_connected(struct client *cl, struct conn *c)
{
	int e = 0;
	socklen_t el = sizeof(e);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) || e) {
		conn_fail(cl, c);
		return;
	}
	unsigned char raw[16];
	for (int i = 0; i < 16; i += 8) {
		uint64_t r = rnd(cl);
		memcpy(raw + i, &r, 8);
	}
	base64(raw, 16, c->key);
	char req[512];
	int n = snprintf(req, sizeof(req),
	                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	                 "Sec-WebSocket-Version: 13\r\n\r\n", cl->path, cl->port, c->key);
	if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		conn_fail(cl, c);
		return;
	}
	c->state = C_HANDSHAKE;
	c->resp = malloc(RESP_CAP + 1);
	if (!c->resp)
		abort();
	c->resp_len = 0;
}

static void on_message(struct client *cl, struct conn *c)
{
	struct proc_shm *s = cl->shm;
	if (!c->got_first) {
		c->got_first = true;
		atomic_fetch_add(&s->ready, 1);
	}
	const char *h = c->head;
	size_t hl = c->head_len;
	bool tv = hl > 30 && !memcmp(h, "{\"type\":\"token_visualization\"", 29);
	if (!cl->measuring)
		return;
	s->data_messages++;
	if (memmem(h, hl, "\"type\":\"resync\"", 15))
		s->resyncs++;
	if (!tv)
		return;
	s->messages++;
	const char *n = memmem(h, hl, "\"n\":", 4);
	if (n)
		s->deliveries += strtoull(n + 4, NULL, 10);
	if (!c->sample)
		return;
	double now = wall();
	gos_buf_putc(&c->msg, '\0');
	const char *p = c->msg.data, *end = c->msg.data + c->msg.len;
	while ((p = memmem(p, (size_t)(end - p), "\"timestamp\":", 12)) != NULL) {
		p += 12;
		if (s->n_lat < LAT_CAP)
			s->lat[s->n_lat++] = now - strtod(p, NULL);
	}
}

/* A control frame's payload is complete. */
static void on_control(struct client *cl, struct conn *c)
{
	if (c->op == 0x9) {
		conn_send(cl, c, 0xA, c->ctl, c->ctl_len);
	} else if (c->op == 0x8) {
		conn_send(cl, c, 0x8, c->ctl, c->ctl_len < 2 ? c->ctl_len : 2);
		conn_fail(cl, c);
	}
}

static void payload(struct client *cl, struct conn *c, const unsigned char *p, size_t n)
{
	if (c->op >= 0x8) {
		memcpy(c->ctl + c->ctl_len, p, n);
		c->ctl_len += n;
		return;
	}
	(void)cl;
	if (c->head_len < HEAD_CAP) {
		size_t k = HEAD_CAP - c->head_len < n ? HEAD_CAP - c->head_len : n;
		memcpy(c->head + c->head_len, p, k);
		c->head_len += k;
	}
	if (cl->measuring)
		cl->shm->bytes += n;
	if (c->sample)
		gos_buf_append(&c->msg, (const char *)p, n);
}

/* The payload of the current frame is complete. */
static void frame_end(struct client *cl, struct conn *c)
{
	if (c->op >= 0x8)
		on_control(cl, c);
	else if (c->fin) {
		on_message(cl, c);
		c->in_msg = false;
	}
	c->hdr_len = 0;
	c->hdr_need = 2;
}

/* A frame header is complete: returns false on a protocol error. */
static bool frame_begin(struct conn *c)
{
	unsigned char b0 = c->hdr[0], b1 = c->hdr[1];
	c->fin = b0 & 0x80;
	unsigned char op = b0 & 0x0f;
	if (b0 & 0x70 || b1 & 0x80)
		return false;  /* no extension negotiated; servers never mask */
	uint64_t len = b1 & 0x7f;
	if (len == 126)
		len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
	else if (len == 127)
		for (int i = 0; i < 8; i++)
			len = (i ? len << 8 : 0) | c->hdr[2 + i];
	c->left = len;
	if (op >= 0x8) {
		if (len > 125 || !c->fin)
			return false;
		c->ctl_len = 0;
	} else if (op == 0x0) {
		if (!c->in_msg)
			return false;
	} else if (op == 0x1 || op == 0x2) {
		if (c->in_msg)
			return false;
		c->in_msg = true;
		c->head_len = 0;
		gos_buf_clear(&c->msg);
	} else {
		return false;
	}
	c->op = op;
	return true;
}

/* Frames as they stream in: no copy but the first bytes of a message. */
static bool frames(struct client *cl, struct conn *c, const unsigned char *p, size_t n)
{
	while (n && c->state == C_OPEN) {
		if (c->hdr_len < c->hdr_need) {
			c->hdr[c->hdr_len++] = *p++;
			n--;
			if (c->hdr_len == 2) {
				unsigned char l = c->hdr[1] & 0x7f;
				c->hdr_need = l == 126 ? 4 : l == 127 ? 10 : 2;
			}
			if (c->hdr_len < c->hdr_need)
				continue;
			if (!frame_begin(c))
				return false;
			if (!c->left)
				frame_end(cl, c);
			continue;
		}
		size_t k = c->left < n ? (size_t)c->left : n;
		payload(cl, c, p, k);
		p += k;
		n -= k;
		c->left -= k;
		if (!c->left)
			frame_end(cl, c);
	}
	return true;
}

/* The handshake's answer: 101 and the right Sec-WebSocket-Accept. Returns
 * how many bytes of buf it took, or -1. */
static ssize_t handshake(struct client *cl, struct conn *c, const unsigned char *buf, size_t n)
{
	size_t k = RESP_CAP - c->resp_len < n ? RESP_CAP - c->resp_len : n;
	memcpy(c->resp + c->resp_len, buf, k);
	size_t before = c->resp_len;
	c->resp_len += k;
	c->resp[c->resp_len] = '\0';
	char *end = strstr(c->resp, "\r\n\r\n");
	if (!end)
		return c->resp_len == RESP_CAP ? -1 : (ssize_t)k;
	size_t used = (size_t)(end + 4 - c->resp) - before;
	*end = '\0';
	if (strncmp(c->resp, "HTTP/1.1 101", 12))
		return -1;
	char src[96], want[32];
	unsigned char md[20];
	int sl = snprintf(src, sizeof(src), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
	sha1((unsigned char *)src, (size_t)sl, md);
	base64(md, 20, want);
	bool ok = false;
	for (char *line = strstr(c->resp, "\r\n"); line && !ok; line = strstr(line + 2, "\r\n")) {
		if (!strncasecmp(line + 2, "Sec-WebSocket-Accept:", 21)) {
			char *v = line + 23;
			while (*v == ' ')
				v++;
			ok = !strncmp(v, want, strlen(want));
		}
	}
	if (!ok)
		return -1;
	free(c->resp);
	c->resp = NULL;
	c->state = C_OPEN;
	c->hdr_len = 0;
	c->hdr_need = 2;
	cl->pending--;
	return (ssize_t)used;
}

static void conn_readable(struct client *cl, struct conn *c)
{
	for (;;) {
		ssize_t r = recv(c->fd, cl->rbuf, READ_CHUNK, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_fail(cl, c);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		const unsigned char *p = cl->rbuf;
		size_t n = (size_t)r;
		if (c->state == C_HANDSHAKE) {
			ssize_t used = handshake(cl, c, p, n);
			if (used < 0) {
				conn_fail(cl, c);
				return;
			}
			p += used;
			n -= (size_t)used;
		}
		if (c->state == C_OPEN && !frames(cl, c, p, n)) {
			conn_fail(cl, c);
			return;
		}
		if (c->state == C_DEAD)
			return;
	}
}

static void client_fill(struct client *cl)
{
	while (cl->next < cl->n && cl->pending < cl->inflight)
		conn_start(cl, &cl->c[cl->next++]);
}

static void client_main(struct client *cl, int ctl_fd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	cl->ep = ep;
	struct epoll_event cev = {.events = EPOLLIN, .data.ptr = NULL};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ctl_fd, &cev))
		_exit(1);
	cl->rbuf = malloc(READ_CHUNK);
	if (!cl->rbuf)
		abort();
	client_fill(cl);
	struct epoll_event evs[512];
	for (;;) {
		int n = epoll_wait(ep, evs, 512, cl->pending ? 100 : 1000);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				char cmd;
				if (read(ctl_fd, &cmd, 1) != 1)
					_exit(0);  /* the owner is gone */
				/* The owner's commands, each acknowledged with its byte:
				 * 'm' measure, 'e' end (results stored), 'q' quit. */
				if (cmd == 'm') {
					cl->cpu0 = self_cpu();
					cl->measuring = true;
				} else if (cmd == 'e') {
					cl->measuring = false;
					cl->shm->cpu_s = self_cpu() - cl->cpu0;
				} else if (cmd == 'q') {
					_exit(0);
				}
				if (write(ctl_fd, &cmd, 1) != 1)
					_exit(0);
				continue;
			}
			uint32_t e = evs[i].events;
			if (c->state == C_CONNECTING && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
				conn_connected(cl, c);
			if ((c->state == C_HANDSHAKE || c->state == C_OPEN) &&
			    (e & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
				conn_readable(cl, c);
		}
		client_fill(cl);
	}
}

/* ---- the owner ----------------------------------------------------------- */

static void command(struct fanout_load *l, char cmd)
{
	for (int i = 0; i < l->procs; i++)
		if (l->ctl[i] >= 0 && write(l->ctl[i], &cmd, 1) != 1) {
			close(l->ctl[i]);
			l->ctl[i] = -1;
		}
	for (int i = 0; i < l->procs; i++) {
		char ack;
		if (l->ctl[i] >= 0 && read(l->ctl[i], &ack, 1) != 1) {
			close(l->ctl[i]);
			l->ctl[i] = -1;
		}
	}
}

struct fanout_load *fanout_load_start(const struct fanout_load_opts *opts, char *err,
                                      size_t errlen)
{
	struct fanout_load *l = calloc(1, sizeof(*l));
	if (!l)
		abort();
	int viewers = opts->viewers > 0 ? opts->viewers : 1;
	int procs = opts->procs > 0 ? opts->procs : (viewers + 249) / 250;
	if (procs > 8 && opts->procs <= 0)
		procs = 8;
	if (procs > FANOUT_LOAD_MAX_PROCS)
		procs = FANOUT_LOAD_MAX_PROCS;
	if (procs > viewers)
		procs = viewers;
	int sampled = opts->sampled > 0 ? opts->sampled : 10;
	int stride = viewers > sampled ? viewers / sampled : 1;
	int inflight = (opts->inflight > 0 ? opts->inflight : 128) / procs;
	l->procs = procs;
	l->viewers = viewers;
	for (int i = 0; i < FANOUT_LOAD_MAX_PROCS; i++)
		l->ctl[i] = -1;
	l->shm_len = (size_t)procs * sizeof(struct proc_shm);
	l->shm = mmap(NULL, l->shm_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (l->shm == MAP_FAILED) {
		l->shm = NULL;
		snprintf(err, errlen, "cannot map the load client's shared memory: %s", strerror(errno));
		goto error;
	}
	fflush(NULL);
	for (int p = 0, first = 0; p < procs; p++) {
		int count = viewers / procs + (p < viewers % procs);
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
			snprintf(err, errlen, "cannot make a socketpair: %s", strerror(errno));
			goto error;
		}
		pid_t pid = fork();
		if (pid < 0) {
			snprintf(err, errlen, "cannot fork a load client: %s", strerror(errno));
			close(sv[0]);
			close(sv[1]);
			goto error;
		}
		if (pid == 0) {
			close(sv[0]);
			for (int i = 0; i < p; i++)
				close(l->ctl[i]);
			signal(SIGPIPE, SIG_IGN);
			struct client cl = {
				.shm = &l->shm[p],
				.port = opts->port,
				.path = opts->path ? opts->path : "/ws",
				.n = count,
				.inflight = inflight > 0 ? inflight : 1,
				.rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 20) ^
				       (uint64_t)gos_now_ms(),
			};
			cl.c = calloc((size_t)count, sizeof(*cl.c));
			if (!cl.c)
				abort();
			for (int i = 0; i < count; i++) {
				cl.c[i].fd = -1;
				cl.c[i].sample = (first + i) % stride == 0 && (first + i) / stride < sampled;
			}
			client_main(&cl, sv[1]);
			_exit(0);
		}
		close(sv[1]);
		l->pid[p] = pid;
		l->ctl[p] = sv[0];
		first += count;
	}
	return l;
error:
	fanout_load_destroy(l);
	return NULL;
}

int fanout_load_wait_ready(struct fanout_load *l, double timeout_s)
{
	double deadline = gos_now_s() + timeout_s;
	for (;;) {
		int ready = 0, done = 0;
		for (int i = 0; i < l->procs; i++) {
			int r = atomic_load(&l->shm[i].ready);
			ready += r;
			done += r + atomic_load(&l->shm[i].failed);
		}
		if (done >= l->viewers || gos_now_s() >= deadline)
			return ready;
		usleep(10000);
	}
}

void fanout_load_measure(struct fanout_load *l, bool on)
{
	command(l, on ? 'm' : 'e');
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void fanout_load_collect(struct fanout_load *l, struct fanout_load_result *res)
{
	memset(res, 0, sizeof(*res));
	res->procs = l->procs;
	size_t n_lat = 0;
	for (int i = 0; i < l->procs; i++)
		n_lat += l->shm[i].n_lat;
	res->lat = malloc((n_lat ? n_lat : 1) * sizeof(*res->lat));
	if (!res->lat)
		abort();
	for (int i = 0; i < l->procs; i++) {
		const struct proc_shm *s = &l->shm[i];
		res->ready += atomic_load(&s->ready);
		res->failed += atomic_load(&s->failed);
		res->closed += atomic_load(&s->closed);
		res->messages += s->messages;
		res->deliveries += s->deliveries;
		res->data_messages += s->data_messages;
		res->bytes += s->bytes;
		res->resyncs += s->resyncs;
		res->cpu_s[i] = s->cpu_s;
		res->cpu_sum_s += s->cpu_s;
		if (s->cpu_s > res->cpu_max_s)
			res->cpu_max_s = s->cpu_s;
		memcpy(res->lat + res->n_lat, s->lat, s->n_lat * sizeof(*res->lat));
		res->n_lat += s->n_lat;
	}
	qsort(res->lat, res->n_lat, sizeof(*res->lat), cmp_double);
	command(l, 'q');
}

void fanout_load_destroy(struct fanout_load *l)
{
	if (!l)
		return;
	for (int i = 0; i < l->procs; i++) {
		if (l->ctl[i] >= 0)
			close(l->ctl[i]);  /* a process that reads EOF exits */
		if (l->pid[i] > 0) {
			int st;
			for (int k = 0; k < 100 && waitpid(l->pid[i], &st, WNOHANG) == 0; k++)
				usleep(10000);
			if (waitpid(l->pid[i], &st, WNOHANG) == 0) {
				kill(l->pid[i], SIGKILL);
				waitpid(l->pid[i], &st, 0);
			}
		}
	}
	if (l->shm)
		munmap(l->shm, l->shm_len);
	free(l);
}
