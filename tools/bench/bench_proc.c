/* gos-bench's child processes and clocks. See bench_proc.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_proc.h"
#include "gos_buf.h"
#include "gos_nats.h"
#include "gos_time.h"

double bench_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *drain_main(void *arg)
{
	struct server *s = arg;
	char buf[4096];
	while (read(s->out_fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

/* Starts argv with stdout+stderr on a pipe and waits for a line holding
 * `marker` followed by the port number. */
bool bench_server_start(struct server *s, char *const argv[], const char *marker,
                         bool no_vulkan)
{
	int fds[2];
	memset(s, 0, sizeof(*s));
	if (pipe(fds))
		return false;
	s->pid = fork();
	if (s->pid < 0)
		return false;
	if (s->pid == 0) {
		if (no_vulkan)
			setenv("VK_ICD_FILENAMES", "/dev/null", 1);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	s->out_fd = fds[0];
	char line[4096];
	size_t len = 0;
	double deadline = gos_now_s() + 15;
	while (gos_now_s() < deadline) {
		ssize_t r = read(s->out_fd, line + len, sizeof(line) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		line[len] = '\0';
		char *m = strstr(line, marker);
		if (m && strchr(m, '\n')) {
			s->port = atoi(m + strlen(marker));
			break;
		}
		if (len == sizeof(line) - 1)
			len = 0;
	}
	if (s->port <= 0) {
		fprintf(stderr, "gos-bench: %s did not start: %s\n", argv[0], line);
		return false;
	}
	s->drain_started = !pthread_create(&s->drain, NULL, drain_main, s);
	return true;
}

void bench_server_stop(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		int st;
		for (int i = 0; i < 200 && waitpid(s->pid, &st, WNOHANG) == 0; i++)
			usleep(20000);
		if (waitpid(s->pid, &st, WNOHANG) == 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
		}
	}
	if (s->drain_started)
		pthread_join(s->drain, NULL);
	if (s->out_fd > 0)
		close(s->out_fd);
	s->pid = 0;
}

/* utime + stime of a process, in seconds. */
double bench_cpu_seconds(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return NAN;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return NAN;
	unsigned long ut = 0, st = 0;
	/* after ")": state(3) ... utime is field 14, stime 15 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}


/* Writes `rate` token events a second, each stamped with the wall clock
 * when it is written, to the socket or to NATS. */
void *bench_feed_main(void *arg)
{
	struct bench_feed *f = arg;
	int fd = -1;
	struct gos_nats_producer *np = NULL;
	if (f->sock) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
			snprintf(f->err, sizeof(f->err), "cannot connect to %s: %s", f->sock, strerror(errno));
			if (fd >= 0)
				close(fd);
			return NULL;
		}
	} else if (!(np = gos_nats_producer_connect(f->url, f->cluster, f->err, sizeof(f->err)))) {
		return NULL;
	}
	f->ok = true;
	struct gos_buf t = {0};
	double t0 = gos_now_s();
	uint64_t sent = 0;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&f->stop)) {
		next.tv_nsec += 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		uint64_t due = (uint64_t)((gos_now_s() - t0) * f->rate);
		double ts = bench_wall();
		gos_buf_clear(&t);
		for (; sent < due; sent++) {
			size_t at = t.len;
			gos_buf_printf(&t, "{\"type\":\"token_activation\",\"token_id\":\"%s%llu\","
			               "\"token_text\":\" tok\",\"timestamp\":%.6f,\"position\":[%llu,%llu],"
			               "\"confidence\":0.5}\n", f->prefix ? f->prefix : "b",
			               (unsigned long long)sent, ts,
			               (unsigned long long)(sent % 100) * 40,
			               (unsigned long long)(sent / 100) * 22);
			if (np && !gos_nats_producer_send(np, t.data + at, t.len - at)) {
				snprintf(f->err, sizeof(f->err), "publishing to NATS failed");
				atomic_store(&f->stop, true);
				break;
			}
		}
		for (size_t off = 0; fd >= 0 && off < t.len;) {
			ssize_t w = send(fd, t.data + off, t.len - off, MSG_NOSIGNAL);
			if (w <= 0) {
				snprintf(f->err, sizeof(f->err), "write to the compositor failed: %s",
				         strerror(errno));
				atomic_store(&f->stop, true);
				break;
			}
			off += (size_t)w;
		}
	}
	atomic_store(&f->sent, sent);
	gos_buf_finish(&t);
	if (fd >= 0)
		close(fd);
	if (np && f->sync && !f->err[0]) {
		struct gos_sync_result res;
		char why[200];
		f->synced = gos_nats_producer_sync(np, 120000, &res, why, sizeof(why));
		if (!f->synced)
			snprintf(f->err, sizeof(f->err), "sync: %s", why);
	}
	gos_nats_producer_close(np);
	return NULL;
}

bool bench_http_get(int port, const char *path, char *out, size_t outlen)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	struct timeval tv = {.tv_sec = 2};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char req[512];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                 "Connection: close\r\n\r\n", path);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return false;
	}
	struct gos_buf b = {0};
	char chunk[4096];
	ssize_t r;
	while ((r = recv(fd, chunk, sizeof(chunk), 0)) > 0)
		gos_buf_append(&b, chunk, (size_t)r);
	close(fd);
	gos_buf_putc(&b, '\0');
	bool ok = b.len > 12 && (!strncmp(b.data + 9, "200", 3) || !strncmp(b.data + 9, "503", 3));
	const char *body = ok ? strstr(b.data, "\r\n\r\n") : NULL;
	if (body)
		snprintf(out, outlen, "%s", body + 4);
	gos_buf_finish(&b);
	return body != NULL;
}


void bench_default_paths(char *compositor, size_t clen, char *relay, size_t rlen)
{
	char dir[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	dir[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	snprintf(compositor, clen, "%s/../compositor/gos-compositor", dir);
	snprintf(relay, rlen, "%s/../compositor/gos-relay", dir);
}

void bench_raise_limits(void)
{
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
}

bool bench_nats_start(struct server *nats, const char *dir, char *url, size_t urllen)
{
	char store[PATH_MAX];
	snprintf(store, sizeof(store), "%s/js", dir);
	char *nargv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", "-1", "-sd", store, NULL};
	if (!bench_server_start(nats, nargv, "client connections on 127.0.0.1:", true)) {
		bench_server_stop(nats);
		return false;
	}
	snprintf(url, urllen, "nats://127.0.0.1:%d", nats->port);
	return true;
}

void bench_remove_dir(const char *dir)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "gos-bench: could not remove %s\n", dir);
}
