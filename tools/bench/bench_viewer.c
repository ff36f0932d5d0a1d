/* gos-bench viewer: what the web viewer costs in a real browser on a big
 * map. A gos-compositor (renderer off, no journal) is fed N synthetic
 * tokens (default 1M); then headless Chromium (tests/browser/latejoin.js)
 * joins late speaking gos.v1 and then gos.v2, each reporting the time to
 * its first picture, the bytes it received before it and its JS heap; and
 * tests/browser/frametime.js times the viewer's WebGL2 and Canvas 2D
 * renderers on the same map (every token on screen, gos.v1), as a ratio:
 * here WebGL2 runs on SwiftShader (CPU), so only the ratio means much. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gos_bench.h"
#include "gos_time.h"

#ifndef GOS_SOURCE_DIR
#define GOS_SOURCE_DIR "."
#endif

/* Runs argv with stdout to a pipe: the command's pid and the pipe's end. */
static pid_t spawn_out(char *const argv[], int *out, bool quiet_stderr)
{
	int fds[2];
	if (pipe(fds))
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[1], 1);
		if (quiet_stderr) {
			int null = open("/dev/null", O_WRONLY);
			if (null >= 0)
				dup2(null, 2);
		} else {
			dup2(fds[1], 2);
		}
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		fprintf(stderr, "gos-bench viewer: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	*out = fds[0];
	return pid;
}

/* Everything the command prints until it exits; its exit status in *rc. */
static char *slurp(pid_t pid, int fd, int *rc)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	if (!buf)
		abort();
	for (;;) {
		if (len + 1 >= cap && !(buf = realloc(buf, cap *= 2)))
			abort();
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	close(fd);
	int st = 0;
	waitpid(pid, &st, 0);
	*rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	return buf;
}

/* A number after "key": in a JSON line, or NAN. */
static double json_num(const char *s, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = s ? strstr(s, pat) : NULL;
	return p ? strtod(p + strlen(pat), NULL) : NAN;
}

struct compositor {
	pid_t pid;
	int port;
	char sock[256], log[256];
};

/* The compositor's output goes to a file (read for its port, kept for
 * the reader when it fails). */
static bool compositor_start(struct compositor *c, const char *bin, uint64_t tokens)
{
	char max[32];
	snprintf(max, sizeof(max), "%" PRIu64, tokens);
	snprintf(c->sock, sizeof(c->sock), "/tmp/gos-bench-viewer-%d.sock", (int)getpid());
	snprintf(c->log, sizeof(c->log), "/tmp/gos-bench-viewer-%d.log", (int)getpid());
	char *argv[] = {(char *)bin, "--no-render", "--no-journal", "--socket", c->sock,
	                "--listen", "127.0.0.1:0", "--max-tokens", max, "--log-interval", "0", NULL};
	int log = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (log < 0)
		return false;
	c->pid = fork();
	if (c->pid == 0) {
		dup2(log, 1);
		dup2(log, 2);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(log);
	if (c->pid < 0)
		return false;
	char buf[8192] = "";
	double deadline = gos_now_s() + 20;
	while (gos_now_s() < deadline && c->port <= 0 && waitpid(c->pid, NULL, WNOHANG) == 0) {
		usleep(20000);
		FILE *f = fopen(c->log, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		buf[n] = '\0';
		if (f)
			fclose(f);
		const char *m = strstr(buf, "web viewer at http://127.0.0.1:");
		if (m && strchr(m, '\n'))
			c->port = atoi(m + strlen("web viewer at http://127.0.0.1:"));
	}
	if (c->port <= 0) {
		fprintf(stderr, "gos-bench viewer: %s did not start: %s\n", bin, buf[0] ? buf : "(no output)");
		return false;
	}
	return true;
}

static void compositor_stop(struct compositor *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGTERM);
		int st;
		for (int i = 0; i < 500 && waitpid(c->pid, &st, WNOHANG) == 0; i++)
			usleep(20000);
		if (waitpid(c->pid, &st, WNOHANG) == 0) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &st, 0);
		}
	}
	unlink(c->sock);
	unlink(c->log);
}

static void self_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
}

int gos_bench_viewer(int argc, char **argv)
{
	uint64_t tokens = 1000000;
	const char *node = "node";
	char dir[4096], compositor[4400], feed[4400];
	self_dir(dir, sizeof(dir));
	snprintf(compositor, sizeof(compositor), "%s/../compositor/gos-compositor", dir);
	snprintf(feed, sizeof(feed), "%s/gos-feed", dir);
	bool frames = true;
	static const struct option longopts[] = {
		{"tokens", required_argument, NULL, 't'},
		{"compositor", required_argument, NULL, 'c'},
		{"node", required_argument, NULL, 'n'},
		{"no-frames", no_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 't': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end || v < 1000 || v > 100000000) {
				fprintf(stderr, "gos-bench viewer: --tokens wants 1000..100000000\n");
				return 2;
			}
			tokens = v;
			break;
		}
		case 'c': snprintf(compositor, sizeof(compositor), "%s", optarg); break;
		case 'n': node = optarg; break;
		case 'F': frames = false; break;
		case 'h':
			printf("usage: gos-bench viewer [--tokens N] [--compositor PATH] [--node PATH] [--no-frames]\n"
			       "A gos-compositor (renderer off) fed N synthetic tokens (default 1000000, 8\n"
			       "streams); headless Chromium then joins late with gos.v1 and with gos.v2:\n"
			       "time to the first picture, bytes received before it, JS heap after it\n"
			       "(tests/browser/latejoin.js). Then the WebGL2 and Canvas 2D renderers' frame\n"
			       "times with every token on screen (gos.v1; tests/browser/frametime.js), and\n"
			       "their ratio: here WebGL2 runs on the CPU (SwiftShader); and the frame\n"
			       "intervals while the color mode or a filter changes every frame.\n");
			return 0;
		default:
			return 2;
		}
	}
	struct compositor c = {0};
	if (!compositor_start(&c, compositor, tokens)) {
		compositor_stop(&c);
		return 1;
	}
	char count[32];
	snprintf(count, sizeof(count), "%" PRIu64, tokens);
	char *fargv[] = {feed, "--socket", c.sock, "--synthetic", "--count", count, "--streams", "8",
	                 "--quiet", NULL};
	int fd, rc;
	double t0 = gos_now_s();
	pid_t pid = spawn_out(fargv, &fd, false);
	free(slurp(pid, fd, &rc));
	if (pid < 0 || rc != 0) {
		fprintf(stderr, "gos-bench viewer: gos-feed failed (%d)\n", rc);
		compositor_stop(&c);
		return 1;
	}
	printf("gos-bench viewer: %" PRIu64 " tokens fed in %.1f s; headless chromium joins late\n",
	       tokens, gos_now_s() - t0);
	char url[128], script[4400];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", c.port);
	printf("%-10s %18s %20s %12s\n", "protocol", "first picture ms", "bytes before it", "JS heap MB");
	int failed = 0;
	for (int v = 2; v >= 1; v--) {
		snprintf(script, sizeof(script), "%s/tests/browser/latejoin.js", GOS_SOURCE_DIR);
		char proto[4];
		snprintf(proto, sizeof(proto), "v%d", v);
		char *nargv[] = {(char *)node, script, url, proto, NULL};
		pid = spawn_out(nargv, &fd, true);
		char *out = pid > 0 ? slurp(pid, fd, &rc) : NULL;
		double ms = json_num(out, "firstPictureMs"), bytes = json_num(out, "bytesBeforePicture"),
		       heap = json_num(out, "jsHeapMB");
		if (pid <= 0 || rc != 0) {
			printf("gos.v%-5d (failed: %s)\n", v, out ? out : "cannot run node");
			failed++;
		} else {
			printf("gos.v%-5d %18.0f %20.0f %12.1f\n", v, ms, bytes, heap);
		}
		free(out);
	}
	if (frames) {
		snprintf(script, sizeof(script), "%s/tests/browser/frametime.js", GOS_SOURCE_DIR);
		char *nargv[] = {(char *)node, script, url, "--styles", NULL};
		pid = spawn_out(nargv, &fd, true);
		char *out = pid > 0 ? slurp(pid, fd, &rc) : NULL;
		const char *gl = out ? strstr(out, "\"webgl2\"") : NULL;
		const char *cv = out ? strstr(out, "\"canvas\"") : NULL;
		double gms = json_num(gl, "frameMs"), cms = json_num(cv, "frameMs");
		double gint = json_num(gl, "intervalMs"), cint = json_num(cv, "intervalMs");
		if (pid <= 0 || rc != 0 || !gl || !cv) {
			printf("frame time: failed: %s\n", out ? out : "cannot run node");
			failed++;
		} else {
			printf("\nframe time, %" PRIu64 " tokens on screen   draw ms   frame interval ms\n", tokens);
			printf("%-34s %9.1f %19.1f\n", "WebGL2 (SwiftShader here)", gms, gint);
			printf("%-34s %9.1f %19.1f\n", "Canvas 2D", cms, cint);
			printf("%-34s %9.2f %19.2f\n", "ratio WebGL2 / Canvas 2D", gms / cms, gint / cint);
			/* frames that change the color mode or a filter (and back) */
			static const char *const rows[] = {"baseline", "rank", "logprob", "hide a stream",
			                                   "p < 0.1"};
			printf("\nstyle changes, %" PRIu64 " tokens   interval: median ms   max ms   "
			       "max / baseline median\n", tokens);
			for (int k = 0; k < 2; k++) {
				const char *at = k ? cv : gl;
				const char *st = at ? strstr(at, "\"styles\"") : NULL;
				double base = NAN;
				for (size_t i = 0; st && i < sizeof(rows) / sizeof(rows[0]); i++) {
					char key[40];
					snprintf(key, sizeof(key), "\"%s\"", rows[i]);
					const char *row = strstr(st, key);
					double m = json_num(row, "medianMs"), x = json_num(row, "maxMs");
					if (i == 0)
						base = m;
					printf("%-8s %-26s %9.1f %9.1f %9.2fx\n", k ? "Canvas" : "WebGL2", rows[i], m,
					       x, x / base);
				}
			}
		}
		free(out);
	}
	compositor_stop(&c);
	return failed ? 1 : 0;
}
