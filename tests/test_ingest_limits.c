/* The ingest's limits under hostile producers (issue 9), through a real
 * Unix socket into a real map: lengths no frame may have, the progress
 * timeout, the input budget (and the memory given back after it), and the
 * file descriptor limit without spinning. The rig is
 * tests/support/ingest_rig.h. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gos_ingest.h"
#include "gos_test.h"
#include "ingest_rig.h"

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
	/* The reply is framed as the connection is: a little-endian length first. */
	uint32_t rlen = (uint32_t)(unsigned char)text[0] | (uint32_t)(unsigned char)text[1] << 8;
	CHECK(text[2] == 0 && text[3] == 0 && rlen == strlen(text + 4) && text[4] == '{',
	      "one little-endian frame (%u bytes): %s", rlen, text + 4);
	CHECK(strstr(text + 4, "\"line\":4") && strstr(text + 4, "line_too_long") &&
	      strstr(text + 4, "16777215"), "the error is about line 4, the length: %s", text + 4);
	CHECK(!strstr(text + 4, "\"type\":\"sync\""), "nothing is read past the bad length: %s", text + 4);
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
	/* c: a length of exactly 1 MiB little-endian (allowed; 4096 big-endian),
	 * then nothing */
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
	      strstr(text, "no data for 0.3 s inside a frame: got 0 of 4096 or 1048576 bytes"),
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
	test_bad_lengths();
	test_progress_timeout();
	test_input_budget();
	test_out_of_fds();
	return gos_test_report("test_ingest_limits");
}
