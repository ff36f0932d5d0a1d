/* gos-bench's child processes and clocks. See bench_proc.h. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_proc.h"
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

