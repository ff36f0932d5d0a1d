/* Ingest through a real Unix socket into a real map: partial lines, both
 * framings, many producers, malformed lines, killed producers, a full queue,
 * socket file handling. What producers cannot make it hold (issue 9) is
 * tested in test_ingest_limits.c; the rig is tests/support/ingest_rig.h. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gos_client.h"
#include "gos_ingest.h"
#include "gos_map.h"
#include "gos_test.h"
#include "ingest_rig.h"

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
	CHECK(read_sync_framed(fd, false, &res, &errors, &last),
	      "sync reply on a framed connection, framed as it is");
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
	CHECK(read_frame(fd, text, sizeof(text), false) && strstr(text, "\"code\":\"line_too_long\"") &&
	      strstr(text, "1048586"), "over-long frame: an error frame naming its length: %s", text);
	int ms = read_until(fd, text, sizeof(text), NULL, 3000, &eof);
	CHECK(ms >= 0 && eof && !text[0], "then the connection closes, nothing after the error (%d ms)", ms);
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
	return gos_test_report("test_ingest");
}
