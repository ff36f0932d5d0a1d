/* Ingest through a real Unix socket into a real map: partial lines, both
 * framings, many producers, malformed lines, killed producers, a full queue,
 * socket file handling. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gos_client.h"
#include "gos_core.h"
#include "gos_ingest.h"
#include "gos_map.h"
#include "gos_test.h"

struct rig {
	char path[108];
	struct gos_queue *queue;
	struct gos_map *map;
	struct gos_core *core;
	struct gos_ingest *ingest;
};

static void on_sync(void *ctx, const struct gos_sync_ev *s, uint64_t tokens)
{
	struct rig *r = ctx;
	gos_ingest_sync_done(r->ingest, s->conn, s->applied, s->rejected, tokens);
}

static void rig_start_core(struct rig *r)
{
	r->core = gos_core_create(&(struct gos_core_opts){
		.queue = r->queue, .map = r->map, .on_sync = on_sync, .ctx = r});
}

/* opts (may be NULL) gives the ingest's limits; the rig fills in the rest. */
static bool rig_init_opts(struct rig *r, size_t queue_cap, size_t batch, bool start_core,
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

static bool rig_init(struct rig *r, size_t queue_cap, size_t batch, bool start_core)
{
	return rig_init_opts(r, queue_cap, batch, start_core, NULL);
}

static void rig_finish(struct rig *r)
{
	gos_ingest_destroy(r->ingest);
	if (!r->core)
		rig_start_core(r);
	gos_core_destroy(r->core);
	gos_map_destroy(r->map);
	gos_queue_destroy(r->queue);
}

static int raw_connect(const char *path)
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

static bool write_all(int fd, const void *p, size_t n)
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
static int read_until(int fd, char *buf, size_t cap, const char *until, int timeout_ms, bool *eof)
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
static bool read_sync(int fd, struct gos_sync_result *r, int *errors, int *last_error_line)
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
			if (strstr(line, "\"type\":\"error\"")) {
				(*errors)++;
				char *l = strstr(line, "\"line\":");
				if (l && last_error_line)
					*last_error_line = atoi(l + 7);
			} else if (strstr(line, "\"type\":\"sync\"")) {
				unsigned long long a = 0, rj = 0, t = 0;
				char *p;
				if ((p = strstr(line, "\"applied\":")))
					a = strtoull(p + 10, NULL, 10);
				if ((p = strstr(line, "\"rejected\":")))
					rj = strtoull(p + 11, NULL, 10);
				if ((p = strstr(line, "\"tokens\":")))
					t = strtoull(p + 9, NULL, 10);
				*r = (struct gos_sync_result){a, rj, t};
				return true;
			}
			line = nl + 1;
		}
		len = strlen(line);
		memmove(buf, line, len);
	}
}

static int token_line(char *buf, size_t cap, const char *id)
{
	return snprintf(buf, cap,
	                "{\"type\":\"token_activation\",\"token_id\":\"%s\",\"token_text\":\" t\","
	                "\"timestamp\":1.5,\"confidence\":0.75}\n", id);
}

static const char SYNC[] = "{\"type\":\"sync\"}\n";

static void test_partial_lines(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	int fd = raw_connect(r.path);
	char line[256];
	int n = token_line(line, sizeof(line), "partial-1");
	/* one byte per write, with pauses, so reads split the line everywhere */
	for (int i = 0; i < n; i++) {
		CHECK(write_all(fd, line + i, 1), "write byte");
		if (i % 16 == 0)
			usleep(2000);
	}
	/* two lines in one write, then a third split in two writes */
	char two[512];
	int a = token_line(two, sizeof(two), "partial-2");
	a += token_line(two + a, sizeof(two) - (size_t)a, "partial-3");
	write_all(fd, two, (size_t)a);
	n = token_line(line, sizeof(line), "partial-4");
	write_all(fd, line, 10);
	usleep(20000);
	write_all(fd, line + 10, (size_t)n - 10);
	write_all(fd, SYNC, sizeof(SYNC) - 1);
	struct gos_sync_result res = {0};
	int errors = 0;
	CHECK(read_sync(fd, &res, &errors, NULL), "sync reply");
	CHECK(res.applied == 4 && res.rejected == 0 && errors == 0, "4 applied (%llu), 0 rejected",
	      (unsigned long long)res.applied);
	CHECK(res.tokens == 4, "4 tokens on the map, got %llu", (unsigned long long)res.tokens);
	close(fd);
	rig_finish(&r);
}

/* Lines and their sync in one write land in one read and one batch: the
 * reply must still come after those lines are on the map. */
static void test_sync_same_batch(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	int fd = raw_connect(r.path);
	char buf[4096];
	size_t len = 0;
	for (int i = 0; i < 10; i++) {
		char id[32];
		snprintf(id, sizeof(id), "same-%d", i);
		len += (size_t)token_line(buf + len, sizeof(buf) - len, id);
	}
	memcpy(buf + len, SYNC, sizeof(SYNC) - 1);
	len += sizeof(SYNC) - 1;
	CHECK(write_all(fd, buf, len), "one write");
	struct gos_sync_result res = {0};
	int errors = 0;
	CHECK(read_sync(fd, &res, &errors, NULL), "sync reply");
	CHECK(res.applied == 10 && res.tokens == 10,
	      "the sync reply follows its own batch's lines: applied %llu, tokens %llu",
	      (unsigned long long)res.applied, (unsigned long long)res.tokens);
	close(fd);
	rig_finish(&r);
}

static void put_frame(char *buf, size_t *len, const char *json, size_t n)
{
	buf[*len + 0] = (char)(n & 0xff);
	buf[*len + 1] = (char)((n >> 8) & 0xff);
	buf[*len + 2] = (char)((n >> 16) & 0xff);
	buf[*len + 3] = (char)((n >> 24) & 0xff);
	memcpy(buf + *len + 4, json, n);
	*len += 4 + n;
}

static void test_length_framing(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	int fd = raw_connect(r.path);
	static char buf[1 << 16];
	size_t len = 0;
	char json[256];
	for (int i = 0; i < 100; i++) {
		char id[32];
		snprintf(id, sizeof(id), "frame-%d", i);
		int n = token_line(json, sizeof(json), id);
		put_frame(buf, &len, json, (size_t)n - 1);   /* frames carry no newline */
	}
	put_frame(buf, &len, "{\"type\":\"bogus\"}", 16);
	/* frames split across writes at odd places, including inside the header */
	size_t cuts[] = {1, 3, 7, 50, 333, len};
	size_t off = 0;
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		write_all(fd, buf + off, cuts[i] - off);
		off = cuts[i];
		usleep(5000);
	}
	len = 0;
	put_frame(buf, &len, SYNC, sizeof(SYNC) - 2);
	write_all(fd, buf, len);
	struct gos_sync_result res = {0};
	int errors = 0, last = 0;
	CHECK(read_sync(fd, &res, &errors, &last), "sync reply on a framed connection");
	CHECK(res.applied == 100 && res.rejected == 1 && errors == 1 && last == 101,
	      "framed: applied %llu rejected %llu errors %d (line %d)",
	      (unsigned long long)res.applied, (unsigned long long)res.rejected, errors, last);
	/* a line-mode producer at the same time is unaffected */
	int fd2 = raw_connect(r.path);
	char line[256];
	int n = token_line(line, sizeof(line), "lines-1");
	write_all(fd2, line, (size_t)n);
	write_all(fd2, SYNC, sizeof(SYNC) - 1);
	CHECK(read_sync(fd2, &res, &errors, NULL) && res.applied == 1 && res.tokens == 101,
	      "line producer beside a framed one: tokens %llu", (unsigned long long)res.tokens);
	/* an over-long frame: after a bad length the framing cannot be trusted,
	 * so the connection is answered line_too_long and closed; what it sent
	 * before stays applied */
	uint32_t big = GOS_MAX_LINE + 10;
	char hdr[4] = {(char)(big & 0xff), (char)((big >> 8) & 0xff), (char)((big >> 16) & 0xff), 0};
	write_all(fd, hdr, 4);
	char text[4096];
	bool eof = false;
	int ms = read_until(fd, text, sizeof(text), NULL, 3000, &eof);
	CHECK(ms >= 0 && eof && strstr(text, "\"code\":\"line_too_long\"") && strstr(text, "1048586"),
	      "over-long frame: error naming its length, then the connection closes (%d ms): %s", ms, text);
	CHECK(!strstr(text, "\"type\":\"sync\""), "nothing after the error");
	write_all(fd2, SYNC, sizeof(SYNC) - 1);
	CHECK(read_sync(fd2, &res, &errors, NULL) && res.tokens == 101,
	      "the framed connection's events stay applied: tokens %llu", (unsigned long long)res.tokens);
	close(fd);
	close(fd2);
	rig_finish(&r);
}

struct producer_arg {
	const char *path;
	int index, count;
	bool ok;
	struct gos_sync_result res;
};

static void *producer_thread(void *p)
{
	struct producer_arg *a = p;
	char err[256];
	struct gos_client *c = gos_client_connect(a->path, err, sizeof(err));
	if (!c)
		return NULL;
	char *buf = malloc((size_t)a->count * 160);
	size_t len = 0;
	for (int i = 0; i < a->count; i++) {
		char id[48];
		snprintf(id, sizeof(id), "p%d-%d", a->index, i);
		len += (size_t)token_line(buf + len, 160, id);
	}
	/* send in uneven chunks, each cut at a line end */
	size_t off = 0, step = 1000 + (size_t)a->index * 37;
	a->ok = true;
	while (off < len && a->ok) {
		size_t n = len - off < step ? len - off : step;
		while (buf[off + n - 1] != '\n')
			n++;
		a->ok = gos_client_send(c, buf + off, n);
		off += n;
	}
	a->ok = a->ok && gos_client_sync(c, 60000, &a->res);
	free(buf);
	gos_client_close(c);
	return NULL;
}

static void test_many_producers(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	enum { P = 64, N = 2000 };
	pthread_t th[P];
	struct producer_arg args[P];
	for (int i = 0; i < P; i++) {
		args[i] = (struct producer_arg){.path = r.path, .index = i, .count = N};
		pthread_create(&th[i], NULL, producer_thread, &args[i]);
	}
	int ok = 0;
	for (int i = 0; i < P; i++) {
		pthread_join(th[i], NULL);
		ok += args[i].ok && args[i].res.applied == N && args[i].res.rejected == 0;
	}
	CHECK(ok == P, "%d of %d producers had all %d events applied", ok, P, N);
	struct gos_map_stats st;
	gos_map_stats(r.map, &st);
	CHECK(st.live_tokens == (uint64_t)P * N, "map holds %llu tokens, expected %d",
	      (unsigned long long)st.live_tokens, P * N);
	rig_finish(&r);
}

static void test_malformed_mixed(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	enum { VALID = 100000, BAD = 1000 };
	static const char *bad[] = {
		"not json at all",
		"{\"type\":\"token_activation\",\"token_id\":\"x\",\"token_text\":\"t\",\"timestamp\":1,\"confidence\":1.5}",
		"{\"type\":\"mystery\"}",
		"{\"type\":\"token_activation\",\"token_text\":\"t\",\"timestamp\":1,\"confidence\":0.5}",
		"{\"type\":\"neural_state\",\"state\":7}",
		"{\"type\":\"token_activation\",\"token_id\":\"\xff\xfe\",\"token_text\":\"t\",\"timestamp\":1,\"confidence\":0.5}",
		"[1,2,3]",
		"{\"type\":\"token_activation\",\"token_id\":\"x\",\"token_text\":\"t\",\"timestamp\":1e999,\"confidence\":0.5}",
	};
	size_t nbad = sizeof(bad) / sizeof(bad[0]);
	size_t cap = (size_t)(VALID + BAD) * 160;
	char *buf = malloc(cap);
	size_t len = 0;
	int bad_at_line[BAD];
	int line_no = 0, b = 0;
	uint32_t rng = 7;
	for (int v = 0; v < VALID || b < BAD;) {
		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		bool put_bad = b < BAD && (v >= VALID || rng % 101 == 0);
		line_no++;
		if (put_bad) {
			const char *s = bad[b % nbad];
			size_t n = strlen(s);
			memcpy(buf + len, s, n);
			buf[len + n] = '\n';
			len += n + 1;
			bad_at_line[b++] = line_no;
		} else {
			char id[32];
			snprintf(id, sizeof(id), "v%d", v++);
			len += (size_t)token_line(buf + len, 160, id);
		}
	}
	int fd = raw_connect(r.path);
	/* the writer is a child process, so replies are read while it sends */
	pid_t pid = fork();
	if (pid == 0) {
		write_all(fd, buf, len);
		write_all(fd, SYNC, sizeof(SYNC) - 1);
		_exit(0);
	}
	struct gos_sync_result res = {0};
	int errors = 0, last = 0;
	CHECK(read_sync(fd, &res, &errors, &last), "sync after the mixed stream");
	waitpid(pid, NULL, 0);
	CHECK(res.applied == VALID, "all %d valid applied, got %llu", VALID, (unsigned long long)res.applied);
	CHECK(res.rejected == BAD && errors == BAD, "all %d bad answered: rejected %llu, error lines %d",
	      BAD, (unsigned long long)res.rejected, errors);
	CHECK(last == bad_at_line[BAD - 1], "error lines name the line (%d vs %d)", last, bad_at_line[BAD - 1]);
	CHECK(res.tokens == VALID, "map holds %llu tokens", (unsigned long long)res.tokens);
	struct gos_ingest_stats st;
	gos_ingest_stats(r.ingest, &st);
	uint64_t rej = 0;
	for (int i = 0; i < GOS_REJECT_COUNT_; i++)
		rej += st.rejected[i];
	CHECK(rej == BAD && st.rejected[GOS_REJECT_CONFIDENCE] > 0 && st.rejected[GOS_REJECT_UTF8] > 0,
	      "rejects counted by reason");
	free(buf);
	close(fd);
	rig_finish(&r);
}

static void test_killed_producer(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int fd = raw_connect(r.path);
		char line[256];
		for (int i = 0; i < 500; i++) {
			char id[32];
			snprintf(id, sizeof(id), "k%d", i);
			int n = token_line(line, sizeof(line), id);
			write_all(fd, line, (size_t)n);
		}
		write_all(fd, "{\"type\":\"token_activation\",\"token_id\":\"half", 40);
		kill(getpid(), SIGKILL);
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st), "producer was killed");
	int fd = raw_connect(r.path);
	char line[256];
	int n = token_line(line, sizeof(line), "survivor");
	write_all(fd, line, (size_t)n);
	write_all(fd, SYNC, sizeof(SYNC) - 1);
	struct gos_sync_result res = {0};
	int errors = 0;
	CHECK(read_sync(fd, &res, &errors, NULL), "compositor answers after a killed producer");
	/* The killed producer's 500 complete lines were applied before its EOF was
	 * seen, and EOF on its connection came before this connection's sync? Not
	 * necessarily: wait until the map shows them. */
	struct gos_map_stats ms;
	for (int i = 0; i < 100; i++) {
		gos_map_stats(r.map, &ms);
		if (ms.live_tokens >= 501)
			break;
		usleep(10000);
	}
	CHECK(ms.live_tokens == 501, "500 complete lines of the killed producer + 1: %llu",
	      (unsigned long long)ms.live_tokens);
	struct gos_ingest_stats is;
	gos_ingest_stats(r.ingest, &is);
	CHECK(is.rejected[GOS_REJECT_NOT_JSON] == 1, "the half line is counted as rejected");
	close(fd);
	rig_finish(&r);
}

static void *slow_sender(void *p)
{
	struct producer_arg *a = p;
	int fd = raw_connect(a->path);
	char line[256];
	a->ok = true;
	for (int i = 0; i < a->count && a->ok; i++) {
		char id[32];
		snprintf(id, sizeof(id), "q%d", i);
		int n = token_line(line, sizeof(line), id);
		a->ok = write_all(fd, line, (size_t)n);
	}
	write_all(fd, SYNC, sizeof(SYNC) - 1);
	int errors = 0;
	a->ok = a->ok && read_sync(fd, &a->res, &errors, NULL) && errors == 0;
	close(fd);
	return NULL;
}

static void test_full_queue(void)
{
	/* No core yet and a queue of 2 small batches: the ingest thread must
	 * stop reading, the producer must block in the kernel, nothing is lost. */
	struct rig r;
	if (!rig_init(&r, 2, 64, false)) {
		CHECK(0, "rig");
		return;
	}
	enum { N = 50000 };
	struct producer_arg a = {.path = r.path, .count = N};
	pthread_t th;
	pthread_create(&th, NULL, slow_sender, &a);
	usleep(300000);
	struct gos_ingest_stats st;
	gos_ingest_stats(r.ingest, &st);
	CHECK(gos_queue_depth(r.queue) == 2, "queue is full (%zu)", gos_queue_depth(r.queue));
	CHECK(st.accepted[GOS_EV_TOKEN] < N, "ingest stopped reading (%llu accepted so far)",
	      (unsigned long long)st.accepted[GOS_EV_TOKEN]);
	rig_start_core(&r);
	pthread_join(th, NULL);
	CHECK(a.ok && a.res.applied == N && a.res.tokens == N, "all %d applied after the stall: %llu, tokens %llu",
	      N, (unsigned long long)a.res.applied, (unsigned long long)a.res.tokens);
	gos_ingest_stats(r.ingest, &st);
	CHECK(st.queue_full_waits > 0, "full-queue waits counted: %llu", (unsigned long long)st.queue_full_waits);
	rig_finish(&r);
}

static void test_socket_file(void)
{
	char path[108];
	snprintf(path, sizeof(path), "/tmp/gos-test-sock-%d.sock", (int)getpid());
	struct gos_queue *q = gos_queue_create(4);
	char err[256] = "";

	/* a stale socket file (bound, then its owner gone) is replaced */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path) + 1);
	unlink(path);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	struct gos_ingest *in = gos_ingest_create(&(struct gos_ingest_opts){.socket_path = path, .queue = q}, err, sizeof(err));
	CHECK(in != NULL, "stale socket replaced (%s)", err);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "socket mode 0600 (%o)", st.st_mode & 0777);

	/* a live one is refused with a clear message */
	struct gos_ingest *in2 = gos_ingest_create(&(struct gos_ingest_opts){.socket_path = path, .queue = q}, err, sizeof(err));
	CHECK(in2 == NULL && strstr(err, "already listening"), "live socket refused: %s", err);
	CHECK(stat(path, &st) == 0, "the live socket file is left alone");
	gos_ingest_destroy(in);
	CHECK(stat(path, &st) != 0, "destroy removes the socket file");

	/* a regular file is never replaced */
	FILE *f = fopen(path, "w");
	fputs("precious", f);
	fclose(f);
	in = gos_ingest_create(&(struct gos_ingest_opts){.socket_path = path, .queue = q}, err, sizeof(err));
	CHECK(in == NULL && strstr(err, "not a socket"), "regular file refused: %s", err);
	CHECK(stat(path, &st) == 0 && st.st_size == 8, "regular file untouched");
	unlink(path);
	gos_queue_destroy(q);
}

/* Issue 9, item 4: lengths no frame may have are answered at once and close
 * the connection (its framing is lost), never read as JSON lines or skipped
 * over silently; what the connection sent before stays applied. */
static void test_bad_lengths(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	char text[4096];
	bool eof = false;
	/* 00 00 00 01 (16 MiB) as the first bytes */
	int fd = raw_connect(r.path);
	write_all(fd, "\x00\x00\x00\x01", 4);
	int ms = read_until(fd, text, sizeof(text), NULL, 3000, &eof);
	CHECK(ms >= 0 && ms < 1000 && eof, "16 MiB length: answered and closed promptly (%d ms)", ms);
	CHECK(strstr(text, "\"code\":\"line_too_long\"") && strstr(text, "16777216") &&
	      strstr(text, "1048576") && strstr(text, "cannot be trusted"),
	      "the error names the length and the limit: %s", text);
	close(fd);

	/* three frames, a 16 MiB - 1 length, then a sync: the sync is not
	 * swallowed by a 16 MiB skip, the error comes at once */
	fd = raw_connect(r.path);
	char buf[2048], json[256];
	size_t len = 0;
	for (int i = 0; i < 3; i++) {
		char id[32];
		snprintf(id, sizeof(id), "before-bad-%d", i);
		int n = token_line(json, sizeof(json), id);
		put_frame(buf, &len, json, (size_t)n - 1);
	}
	memcpy(buf + len, "\xff\xff\xff\x00", 4);
	len += 4;
	put_frame(buf, &len, SYNC, sizeof(SYNC) - 2);
	write_all(fd, buf, len);
	ms = read_until(fd, text, sizeof(text), NULL, 3000, &eof);
	CHECK(ms >= 0 && ms < 1000 && eof, "16 MiB - 1 length: answered and closed promptly (%d ms)", ms);
	CHECK(strstr(text, "\"line\":4") && strstr(text, "line_too_long") && strstr(text, "16777215"),
	      "the error is about line 4, the length: %s", text);
	CHECK(!strstr(text, "\"type\":\"sync\""), "nothing is read past the bad length: %s", text);
	close(fd);
	int fd2 = raw_connect(r.path);
	write_all(fd2, SYNC, sizeof(SYNC) - 1);
	struct gos_sync_result res = {0};
	int errors = 0;
	CHECK(read_sync(fd2, &res, &errors, NULL) && res.tokens == 3,
	      "the frames before the bad length are on the map: %llu", (unsigned long long)res.tokens);

	/* JSON lines: an over-long line is answered and skipped to its newline;
	 * the sync after it is answered */
	size_t big = GOS_MAX_LINE + 1000;
	char *junk = malloc(big + 1);
	memset(junk, ' ', big);
	junk[0] = '{';
	junk[big] = '\n';
	pid_t pid = fork();
	if (pid == 0) {
		write_all(fd2, junk, big + 1);
		write_all(fd2, SYNC, sizeof(SYNC) - 1);
		_exit(0);
	}
	errors = 0;
	CHECK(read_sync(fd2, &res, &errors, NULL) && errors == 1 && res.rejected == 1,
	      "over-long line: one error, then the sync's answer (errors %d)", errors);
	waitpid(pid, NULL, 0);
	free(junk);
	close(fd2);
	rig_finish(&r);
}

static int ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (int)((t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Issue 9, item 4: a connection that stops inside a line or a frame gets an
 * error and is closed after the progress timeout (its earlier lines stay
 * applied); one idle between lines stays open. */
static void test_progress_timeout(void)
{
	struct rig r;
	if (!rig_init_opts(&r, 0, 0, true, &(struct gos_ingest_opts){.progress_timeout_ms = 300})) {
		CHECK(0, "rig");
		return;
	}
	struct gos_sync_result res = {0};
	int errors = 0;
	char line[256], text[4096];
	bool eof = false;
	/* a: a line, its sync, then 20 bytes of a line and silence */
	int a = raw_connect(r.path);
	int n = token_line(line, sizeof(line), "stall-1");
	write_all(a, line, (size_t)n);
	write_all(a, SYNC, sizeof(SYNC) - 1);
	CHECK(read_sync(a, &res, &errors, NULL) && res.applied == 1, "a: first line applied");
	/* b: the same, then idle between lines for longer than the timeout */
	int b = raw_connect(r.path);
	n = token_line(line, sizeof(line), "idle-1");
	write_all(b, line, (size_t)n);
	write_all(b, SYNC, sizeof(SYNC) - 1);
	CHECK(read_sync(b, &res, &errors, NULL) && res.applied == 1, "b: first line applied");
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	write_all(a, line, 20);
	/* c: a length of exactly 1 MiB (allowed), then nothing */
	int c = raw_connect(r.path);
	write_all(c, "\x00\x00\x10\x00", 4);

	int ms = read_until(a, text, sizeof(text), NULL, 3000, &eof);
	int took = ms_since(&t0);
	CHECK(ms >= 0 && eof && took >= 250 && took < 1500,
	      "stalled mid-line: answered and closed after the timeout (%d ms)", took);
	CHECK(strstr(text, "\"code\":\"timeout\"") && strstr(text, "no data for 0.3 s inside a line: got 20 bytes"),
	      "the error says where it stalled: %s", text);
	ms = read_until(c, text, sizeof(text), NULL, 3000, &eof);
	took = ms_since(&t0);
	CHECK(ms >= 0 && eof && took >= 250 && took < 1500,
	      "1 MiB length then nothing: answered and closed after the timeout (%d ms)", took);
	CHECK(strstr(text, "\"code\":\"timeout\"") &&
	      strstr(text, "no data for 0.3 s inside a frame: got 0 of 1048576 bytes"),
	      "the error says where it stalled: %s", text);
	while (ms_since(&t0) < 700)
		usleep(10000);
	n = token_line(line, sizeof(line), "idle-2");
	write_all(b, line, (size_t)n);
	write_all(b, SYNC, sizeof(SYNC) - 1);
	CHECK(read_sync(b, &res, &errors, NULL) && res.applied == 2 && res.tokens == 3,
	      "idle between lines is fine: b goes on (applied %llu, tokens %llu)",
	      (unsigned long long)res.applied, (unsigned long long)res.tokens);
	struct gos_ingest_stats st;
	gos_ingest_stats(r.ingest, &st);
	CHECK(st.rejected[GOS_REJECT_TIMEOUT] == 2, "timeouts counted: %llu",
	      (unsigned long long)st.rejected[GOS_REJECT_TIMEOUT]);
	close(a);
	close(b);
	close(c);
	rig_finish(&r);
}

static long rss_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_CHECKS 0   /* the sanitizers' allocators and shadow memory blur RSS */
#else
#define RSS_CHECKS 1
#endif

/* Issue 9, item 5: many connections each sending most of a 1 MiB line. The
 * bytes held for them stay within the budget, every one is answered, and
 * the memory goes back once they are done. */
static void test_input_budget(void)
{
	enum { N = 48 };
	const size_t budget = (size_t)4 << 20;
	struct rig r;
	if (!rig_init_opts(&r, 0, 0, true, &(struct gos_ingest_opts){.input_budget = budget})) {
		CHECK(0, "rig");
		return;
	}
	/* a valid sync line of GOS_MAX_LINE - 16 bytes: the object padded with blanks */
	const size_t L = GOS_MAX_LINE - 16;
	char *line = malloc(L);
	memset(line, ' ', L);
	memcpy(line, "{\"type\":\"sync\"", 14);
	line[L - 2] = '}';
	line[L - 1] = '\n';
	long base = rss_kib(), peak = base;
	int fds[N];
	size_t sent[N];
	int answered = 0, errors = 0;
	bool done[N];
	for (int i = 0; i < N; i++) {
		fds[i] = raw_connect(r.path);
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
		sent[i] = 0;
		done[i] = false;
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (answered < N && ms_since(&t0) < 30000) {
		struct pollfd p[N];
		for (int i = 0; i < N; i++)
			p[i] = (struct pollfd){.fd = fds[i], .events = (short)(done[i] ? 0 : POLLIN | (sent[i] < L ? POLLOUT : 0))};
		poll(p, N, 10);
		for (int i = 0; i < N; i++) {
			if (p[i].revents & POLLOUT) {
				ssize_t w = send(fds[i], line + sent[i], L - sent[i], MSG_DONTWAIT | MSG_NOSIGNAL);
				if (w > 0)
					sent[i] += (size_t)w;
			}
			if (p[i].revents & (POLLIN | POLLHUP)) {
				char buf[512];
				ssize_t k = read(fds[i], buf, sizeof(buf) - 1);
				buf[k > 0 ? k : 0] = 0;
				if (k > 0 && strstr(buf, "\"type\":\"error\""))
					errors++;
				if (k > 0 && strstr(buf, "\"type\":\"sync\"") && strstr(buf, "\"rejected\":0"))
					answered++;
				if (k > 0 ? !!strstr(buf, "\"type\":\"sync\"") : true)
					done[i] = true;
			}
		}
		long now = rss_kib();
		if (now > peak)
			peak = now;
	}
	struct gos_ingest_stats st;
	gos_ingest_stats(r.ingest, &st);
	CHECK(answered == N && errors == 0, "%d of %d connections answered (%d errors) in %d ms",
	      answered, N, errors, ms_since(&t0));
	CHECK(st.buffered_peak <= budget, "held at most the budget: %llu of %zu bytes",
	      (unsigned long long)st.buffered_peak, budget);
	/* Whether any connection had to wait depends on how fast this side
	 * sends (slow under ThreadSanitizer): the bound is what must hold. */
	CHECK(st.buffered_peak > 0, "partial lines were held at all: peak %llu bytes",
	      (unsigned long long)st.buffered_peak);
	if (RSS_CHECKS)
		CHECK(peak - base < (long)(budget >> 10) + 16 * 1024,
		      "RSS grew by %ld KiB for %d x %zu-byte lines (budget %zu KiB)", peak - base, N, L, budget >> 10);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	for (int i = 0; i < 200; i++) {
		gos_ingest_stats(r.ingest, &st);
		if (st.connections == 0)
			break;
		usleep(10000);
	}
	usleep(50000);
	gos_ingest_stats(r.ingest, &st);
	CHECK(st.connections == 0 && st.buffered_bytes == 0, "all gone, nothing held: %llu",
	      (unsigned long long)st.buffered_bytes);
	if (RSS_CHECKS)
		CHECK(rss_kib() - base < 8 * 1024, "memory given back: RSS %ld KiB above the start (peak %ld)",
		      rss_kib() - base, peak - base);
	free(line);
	rig_finish(&r);
}

/* The ingest thread's id, found by its name. */
static int ingest_tid(void)
{
	DIR *d = opendir("/proc/self/task");
	int tid = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[300], name[32] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f) && !strcmp(name, "gos-ingest\n"))
			tid = atoi(e->d_name);
		fclose(f);
	}
	if (d)
		closedir(d);
	return tid;
}

/* CPU time of a thread of this process, in clock ticks, from its stat file
 * opened beforehand (at the lowered fd limit nothing more can be opened). */
static int thread_stat_open(int tid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static long thread_ticks(int stat_fd)
{
	char buf[1024];
	ssize_t n = pread(stat_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	long utime = 0, stime = 0;
	/* after the name: state, then fields 4..13, then utime and stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
		return -1;
	return utime + stime;
}

/* Issue 9, item 2: at the file descriptor limit, producers are refused with
 * an error line instead of the ingest spinning on its listen socket, and one
 * that connects after others left is served. */
static void test_out_of_fds(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	int tid = ingest_tid();
	int stat_fd = thread_stat_open(tid);
	CHECK(tid > 0 && stat_fd >= 0, "ingest thread found");
	enum { K = 24, SPARE = 6 };
	int cl[K], knock = socket(AF_UNIX, SOCK_STREAM, 0);
	for (int i = 0; i < K; i++)
		cl[i] = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	memcpy(addr.sun_path, r.path, strlen(r.path) + 1);
	struct rlimit old, low;
	getrlimit(RLIMIT_NOFILE, &old);
	int probe = dup(0);   /* the lowest free descriptor */
	close(probe);
	low = old;
	low.rlim_cur = (rlim_t)probe + SPARE;
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0, "lower RLIMIT_NOFILE");

	for (int i = 0; i < K; i++)
		CHECK(connect(cl[i], (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect %d", i);
	usleep(300000);
	int refused = 0, silent = 0;
	bool served[K];
	char text[1024];
	bool eof = false;
	for (int i = 0; i < K; i++) {
		struct pollfd p = {.fd = cl[i], .events = POLLIN};
		served[i] = poll(&p, 1, 0) == 0;
		if (served[i]) {
			silent++;
			continue;
		}
		read_until(cl[i], text, sizeof(text), NULL, 1000, &eof);
		refused += eof && strstr(text, "\"code\":\"too_many_producers\"") &&
		           strstr(text, "out of file descriptors");
	}
	CHECK(silent >= 1 && silent <= SPARE && refused == K - silent,
	      "the first producers are served (%d), the rest refused with an error line (%d)", silent, refused);

	/* a second of the limit, with one more producer knocking: no spinning */
	long t0 = thread_ticks(stat_fd);
	connect(knock, (struct sockaddr *)&addr, sizeof(addr));
	usleep(1000000);
	long t1 = thread_ticks(stat_fd);
	long hz = sysconf(_SC_CLK_TCK);
	CHECK(t0 >= 0 && t1 - t0 <= hz / 10, "ingest thread CPU over 1 s at the limit: %ld ms",
	      (t1 - t0) * 1000 / hz);
	read_until(knock, text, sizeof(text), NULL, 1000, &eof);
	CHECK(eof && strstr(text, "too_many_producers"), "the knocking producer was refused: %s", text);
	struct gos_ingest_stats st;
	gos_ingest_stats(r.ingest, &st);
	CHECK(st.refused_no_fd == (uint64_t)refused + 1, "refusals counted: %llu",
	      (unsigned long long)st.refused_no_fd);

	/* served producers leave; a new one is served */
	for (int i = 0; i < K; i++)
		close(cl[i]);
	close(knock);
	for (int i = 0; i < 200; i++) {
		gos_ingest_stats(r.ingest, &st);
		if (st.connections == 0)
			break;
		usleep(10000);
	}
	int fd = raw_connect(r.path);
	CHECK(fd >= 0, "connect after others left");
	char line[256];
	int n = token_line(line, sizeof(line), "after-emfile");
	write_all(fd, line, (size_t)n);
	write_all(fd, SYNC, sizeof(SYNC) - 1);
	struct gos_sync_result res = {0};
	int errors = 0;
	CHECK(read_sync(fd, &res, &errors, NULL) && res.applied == 1,
	      "a producer arriving after others left is served");
	close(fd);
	setrlimit(RLIMIT_NOFILE, &old);
	close(stat_fd);
	rig_finish(&r);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_partial_lines();
	test_sync_same_batch();
	test_length_framing();
	test_many_producers();
	test_malformed_mixed();
	test_killed_producer();
	test_full_queue();
	test_socket_file();
	test_bad_lengths();
	test_progress_timeout();
	test_input_budget();
	test_out_of_fds();
	return gos_test_report("test_ingest");
}
