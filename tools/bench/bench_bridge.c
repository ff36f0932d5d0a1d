/* gos-bench bridge: (1) the SSE parser's throughput on a large generated
 * OpenAI-style stream (chat.completion.chunk events with logprobs, as
 * gos-bridge receives them), alone and with each chunk turned into tokens
 * (gos_llm, cJSON); (2) the tokens/s gos-bridge sustains from the fake
 * OpenAI server (tests/support/fake_openai.py, python3) into a real gos-compositor,
 * at --parallel 1 and 64, and at 64 with --cache (filling it, then
 * replaying it at --cache-speed 0 without the server): the clock runs from
 * starting gos-bridge to its exit, which comes after the compositor
 * confirmed every event. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gos_bench.h"
#include "gos_client.h"
#include "gos_llm.h"
#include "gos_sse.h"
#include "gos_time.h"

/* ---- the parser ---- */

static const char *const words[] = {" The", " quick", " brown", " fox", " caf\xC3\xA9", " \xE6\x97\xA5\xE6\x9C\xAC",
                                    " jumps", " over", " the", " lazy", " dog", "."};
#define N_WORDS (sizeof words / sizeof words[0])

/* OpenAI-style chunks with logprobs and 5 alternatives, about 600 bytes an
 * event, until the stream holds `bytes`. */
static char *make_stream(size_t bytes, const char *eol, size_t *len_out, size_t *events_out)
{
	char *s = malloc(bytes + 4096);
	if (!s)
		abort();
	size_t len = 0, events = 0;
	while (len < bytes) {
		const char *w = words[events % N_WORDS];
		int n = snprintf(s + len, bytes + 4096 - len,
			"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
			"\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"},\"logprobs\":"
			"{\"content\":[{\"token\":\"%s\",\"logprob\":-0.%03zu,\"bytes\":[32,119],\"top_logprobs\":["
			"{\"token\":\"%s\",\"logprob\":-0.%03zu},{\"token\":\" a\",\"logprob\":-2.5},"
			"{\"token\":\" b\",\"logprob\":-3.5},{\"token\":\" c\",\"logprob\":-4.5},"
			"{\"token\":\" d\",\"logprob\":-5.5}]}]},\"finish_reason\":null}]}%s%s",
			w, w, events % 1000, w, events % 1000, eol, eol);
		len += (size_t)n;
		events++;
	}
	*len_out = len;
	*events_out = events;
	return s;
}

struct counts {
	uint64_t events, tokens;
	bool to_tokens;
	struct gos_arena arena;
};

static void count_event(void *ctx, const struct gos_sse_event *ev)
{
	struct counts *c = ctx;
	c->events++;
	if (c->to_tokens) {
		struct gos_llm_chunk ch;
		gos_arena_reset(&c->arena);
		gos_llm_parse_chunk(ev->data, ev->data_len, &ch, &c->arena);
		c->tokens += ch.n_tokens;
	}
}

/* Best of 3: seconds to parse the stream fed in `chunk`-byte pieces. */
static double parse_time(const char *s, size_t len, size_t chunk, bool to_tokens, uint64_t *events,
                         uint64_t *tokens)
{
	double best = 1e30;
	for (int r = 0; r < 3; r++) {
		struct counts c = {.to_tokens = to_tokens};
		struct gos_sse_callbacks cb = {count_event, NULL, NULL, &c, NULL};
		struct gos_sse *p = gos_sse_create(NULL, &cb);
		double t = gos_now_s();
		for (size_t at = 0; at < len; at += chunk)
			gos_sse_feed(p, s + at, len - at < chunk ? len - at : chunk);
		gos_sse_end(p);
		t = gos_now_s() - t;
		gos_sse_destroy(p);
		gos_arena_finish(&c.arena);
		if (t < best)
			best = t;
		*events = c.events;
		*tokens = c.tokens;
	}
	return best;
}

static int bench_parser(size_t mb)
{
	printf("SSE parser (gos_sse), one core, %zu MiB of chat.completion.chunk events with logprobs:\n", mb);
	printf("  %-34s %10s %14s %14s\n", "case", "MB/s", "events/s", "tokens/s");
	struct { const char *name, *eol; size_t chunk; bool tokens; } cases[] = {
		{"LF, 16 KiB reads", "\n", 16384, false},
		{"CRLF, 16 KiB reads", "\r\n", 16384, false},
		{"LF, 64-byte reads", "\n", 64, false},
		{"LF, 16 KiB reads + gos_llm (cJSON)", "\n", 16384, true},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len, want;
		char *s = make_stream(mb << 20, cases[i].eol, &len, &want);
		uint64_t events, tokens;
		double t = parse_time(s, len, cases[i].chunk, cases[i].tokens, &events, &tokens);
		free(s);
		if (events != want || (cases[i].tokens && tokens != want)) {
			fprintf(stderr, "gos-bench bridge: parsed %llu events (%llu tokens), the stream held %zu\n",
			        (unsigned long long)events, (unsigned long long)tokens, want);
			return 1;
		}
		char tk[32] = "-";
		if (cases[i].tokens)
			snprintf(tk, sizeof tk, "%.0f", (double)tokens / t);
		printf("  %-34s %10.0f %14.0f %14s\n", cases[i].name, (double)len / t / 1e6, (double)events / t, tk);
	}
	return 0;
}

/* ---- end to end ---- */

static bool exe_dir(char *out, size_t len)
{
	char buf[4096];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	snprintf(out, len, "%s", dirname(buf));
	return true;
}

/* The source tree: --source, $GOS_SOURCE_DIR, else the build's CMakeCache. */
static bool find_source(const char *tools_dir, char *out, size_t len)
{
	const char *env = getenv("GOS_SOURCE_DIR");
	if (env && *env) {
		snprintf(out, len, "%s", env);
		return true;
	}
	char cache[4200];
	snprintf(cache, sizeof cache, "%s/../CMakeCache.txt", tools_dir);
	FILE *f = fopen(cache, "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (fgets(line, sizeof line, f)) {
		static const char key[] = "CMAKE_HOME_DIRECTORY:INTERNAL=";
		if (!strncmp(line, key, sizeof key - 1)) {
			line[strcspn(line, "\r\n")] = '\0';
			snprintf(out, len, "%s", line + sizeof key - 1);
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

struct child {
	pid_t pid;
	int in_fd;   /* the fake server's stdin: closing it stops the server */
};

static bool start_fake(const char *source, struct child *c, int *port)
{
	int in[2], out[2];
	if (pipe(in) || pipe(out))
		return false;
	char script[4200];
	snprintf(script, sizeof script, "%s/tests/support/fake_openai.py", source);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl("/usr/bin/python3", "python3", script, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->pid = pid;
	c->in_fd = in[1];
	FILE *f = fdopen(out[0], "r");
	char line[64] = "";
	bool ok = f && fgets(line, sizeof line, f) && sscanf(line, "PORT %d", port) == 1;
	if (f)
		fclose(f);
	return ok;
}

static bool start_compositor(const char *path_bin, const char *sock, struct child *c)
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execl(path_bin, "gos-compositor", "--headless", "--no-listen", "--socket", sock, "--log-interval", "0", (char *)NULL);
		_exit(127);
	}
	c->pid = pid;
	c->in_fd = -1;
	for (int i = 0; i < 500; i++) {
		char err[256];
		struct gos_client *cl = gos_client_connect(sock, err, sizeof err);
		if (cl) {
			gos_client_close(cl);
			return true;
		}
		usleep(20000);
	}
	return false;
}

static uint64_t map_tokens(const char *sock)
{
	char err[256];
	struct gos_client *c = gos_client_connect(sock, err, sizeof err);
	struct gos_sync_result r = {0};
	if (!c || !gos_client_sync(c, 10000, &r))
		r.tokens = 0;
	gos_client_close(c);
	return r.tokens;
}

/* Runs gos-bridge (with --cache DIR --cache-speed 0 when cache is not
 * NULL); returns its exit status, wall and CPU seconds. */
static int run_bridge(const char *bin, const char *sock, int port, uint64_t per_stream, int parallel,
                      const char *cache, double *wall, double *cpu)
{
	char url[256], par[16];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/big,n=%llu/v1", port, (unsigned long long)per_stream);
	snprintf(par, sizeof par, "%d", parallel);
	double t = gos_now_s();
	pid_t pid = fork();
	if (pid == 0) {
		if (cache)
			execl(bin, "gos-bridge", "--url", url, "--model", "bench", "--prompt", "go", "--parallel", par,
			      "--socket", sock, "--quiet", "--buffer", "100000", "--cache", cache, "--cache-speed", "0",
			      "--cache-max-bytes", "4G", (char *)NULL);
		else
			execl(bin, "gos-bridge", "--url", url, "--model", "bench", "--prompt", "go", "--parallel", par,
			      "--socket", sock, "--quiet", "--buffer", "100000", (char *)NULL);
		_exit(127);
	}
	int status = 0;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0)
		return -1;
	*wall = gos_now_s() - t;
	*cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void stop_child(struct child *c)
{
	if (c->in_fd >= 0)
		close(c->in_fd);
	else if (c->pid > 0)
		kill(c->pid, SIGTERM);
	if (c->pid > 0)
		waitpid(c->pid, NULL, 0);
}

static int bench_e2e(uint64_t tokens, const char *source_opt)
{
	char tools[4096], source[4096], bridge[4200], compositor[4200];
	if (!exe_dir(tools, sizeof tools)) {
		fprintf(stderr, "gos-bench bridge: cannot find my own directory\n");
		return 1;
	}
	if (source_opt)
		snprintf(source, sizeof source, "%s", source_opt);
	else if (!find_source(tools, source, sizeof source)) {
		fprintf(stderr, "gos-bench bridge: cannot find the source tree (give --source DIR)\n");
		return 1;
	}
	snprintf(bridge, sizeof bridge, "%s/gos-bridge", tools);
	snprintf(compositor, sizeof compositor, "%s/../compositor/gos-compositor", tools);
	if (access(bridge, X_OK) || access(compositor, X_OK)) {
		fprintf(stderr, "gos-bench bridge: %s or %s is missing (build them first)\n", bridge, compositor);
		return 1;
	}
	char sock[128];
	snprintf(sock, sizeof sock, "/tmp/gos-bench-bridge-%d.sock", (int)getpid());
	struct child fake = {0}, comp = {0};
	int port = 0, rc = 1;
	if (!start_fake(source, &fake, &port)) {
		fprintf(stderr, "gos-bench bridge: the fake server (%s/tests/support/fake_openai.py) did not start\n", source);
		stop_child(&fake);
		return 1;
	}
	if (!start_compositor(compositor, sock, &comp)) {
		fprintf(stderr, "gos-bench bridge: gos-compositor did not start on %s\n", sock);
		goto out;
	}
	printf("\ngos-bridge end to end: fake OpenAI server (python3, logprobs with 5 alternatives) -> "
	       "gos-bridge -> gos-compositor --headless;\n%llu tokens per case, clock stops when the "
	       "compositor has confirmed every event; %ld CPUs\n",
	       (unsigned long long)tokens, sysconf(_SC_NPROCESSORS_ONLN));
	printf("  %-16s %10s %10s %12s %14s %16s\n", "parallel", "tokens", "seconds", "tokens/s",
	       "bridge CPU s", "bridge us/token");
	static const int pars[] = {1, 64};
	double wall, cpu;
	/* Warm the server's event cache so that python renders nothing twice. */
	if (run_bridge(bridge, sock, port, tokens, 1, NULL, &wall, &cpu) != 0) {
		fprintf(stderr, "gos-bench bridge: the warm-up run of gos-bridge failed\n");
		goto out;
	}
	/* The last two rows: --parallel 64 with --cache, first filling it
	 * (asks the server, stores each generation), then replaying it at
	 * --cache-speed 0 (no server). */
	char cache[] = "/tmp/gos-bench-cache-XXXXXX";
	if (!mkdtemp(cache)) {
		fprintf(stderr, "gos-bench bridge: cannot create a cache directory: %s\n", strerror(errno));
		goto out;
	}
	static const char *const how[] = {NULL, NULL, "store", "replay"};
	for (size_t i = 0; i < 4; i++) {
		int par = i < 2 ? pars[i] : 64;
		uint64_t per = tokens / (uint64_t)par;
		uint64_t before = map_tokens(sock);
		int st = run_bridge(bridge, sock, port, per, par, how[i] ? cache : NULL, &wall, &cpu);
		uint64_t after = map_tokens(sock);
		uint64_t n = per * (uint64_t)par;
		if (st != 0 || after - before != n) {
			fprintf(stderr, "gos-bench bridge: --parallel %d%s%s: exit %d, %llu tokens arrived of %llu\n",
			        par, how[i] ? " --cache " : "", how[i] ? how[i] : "", st,
			        (unsigned long long)(after - before), (unsigned long long)n);
			goto out_cache;
		}
		char label[32];
		snprintf(label, sizeof label, how[i] ? "%d cache %s" : "%d", par, how[i] ? how[i] : "");
		printf("  %-16s %10llu %10.2f %12.0f %14.2f %16.2f\n", label, (unsigned long long)n, wall,
		       (double)n / wall, cpu, cpu / (double)n * 1e6);
	}
	rc = 0;
out_cache:
	{
		DIR *d = opendir(cache);
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.' || !strncmp(de->d_name, ".tmp-", 5))
				unlinkat(dirfd(d), de->d_name, 0);
		if (d)
			closedir(d);
		rmdir(cache);
	}
out:
	stop_child(&comp);
	stop_child(&fake);
	unlink(sock);
	return rc;
}

int gos_bench_bridge(int argc, char **argv)
{
	size_t mb = 64;
	uint64_t tokens = 64000;
	const char *source = NULL;
	bool e2e = true, parser = true;
	static const struct option longopts[] = {
		{"sse-mb", required_argument, NULL, 'm'},
		{"tokens", required_argument, NULL, 't'},
		{"source", required_argument, NULL, 's'},
		{"parser-only", no_argument, NULL, 'p'},
		{"e2e-only", no_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'm':
			mb = strtoul(optarg, &end, 10);
			if (*end || mb < 1 || mb > 4096) {
				fprintf(stderr, "gos-bench bridge: --sse-mb wants 1..4096\n");
				return 2;
			}
			break;
		case 't':
			tokens = strtoull(optarg, &end, 10);
			if (*end || tokens < 64 || tokens > 100000000) {
				fprintf(stderr, "gos-bench bridge: --tokens wants 64..100000000\n");
				return 2;
			}
			break;
		case 's': source = optarg; break;
		case 'p': e2e = false; break;
		case 'e': parser = false; break;
		case 'h':
			printf("usage: gos-bench bridge [--sse-mb N] [--tokens N] [--source DIR] [--parser-only|--e2e-only]\n"
			       "  --sse-mb N     size of the generated event stream for the parser (default 64)\n"
			       "  --tokens N     tokens per end-to-end case (default 64000)\n"
			       "  --source DIR   the gos source tree (for tests/support/fake_openai.py; default: from the build)\n");
			return 0;
		default:
			fprintf(stderr, "try 'gos-bench bridge --help'\n");
			return 2;
		}
	}
	if (parser && bench_parser(mb))
		return 1;
	if (e2e && bench_e2e(tokens, source))
		return 1;
	return 0;
}
