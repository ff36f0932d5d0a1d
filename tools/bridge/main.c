/* gos-bridge: streams an LLM's tokens into the compositor. Talks to any
 * OpenAI-compatible server (POST {url}/chat/completions, stream: true) or
 * follows any server-sent event stream (--sse), turns what arrives into
 * token_activation / neural_state lines and writes them to the compositor's
 * Unix socket. One thread: libcurl multi for the HTTP side, a bounded ring
 * of lines for the socket side.
 *
 * This file: set-up, the event loop, the summary and the log lines. The
 * other parts (options, upstream, --sse, the compositor side) are listed
 * in bridge.h. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bridge.h"
#include "gos_time.h"

#define FINISH_GRACE_S 2.0       /* after finish_reason, wait this long for usage/[DONE] */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

double bridge_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool bridge_quiet;

void bridge_note(const char *fmt, ...)
{
	if (bridge_quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("gos-bridge: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void bridge_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("gos-bridge: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* A model's short name: what follows its last '/' or '\\' (servers name
 * models by file path, "/models/qwen2.5-0.5b-q4_k_m.gguf", or by
 * "org/name"); the whole name when nothing follows. */
static const char *short_model(const char *model)
{
	const char *s = model;
	for (const char *p = model; *p; p++)
		if ((*p == '/' || *p == '\\') && p[1])
			s = p + 1;
	return s;
}

/* A stream label: the first 64 bytes of the model's short name (or 'sse'),
 * cut on a UTF-8 boundary, with a per-run id so two runs never share token
 * ids. */
static void name_streams(struct bridge *b, const char *model)
{
	const char *label = b->o.stream ? b->o.stream
	                    : model && model[0] ? short_model(model) : b->o.sse_url ? "sse" : "bridge";
	size_t n = strlen(label);
	if (n > 64) {
		n = 64;
		while (n && ((unsigned char)label[n] & 0xC0) == 0x80)
			n--;
	}
	snprintf(b->label, sizeof b->label, "%.*s", (int)n, label);
	for (int k = 0; k < b->n_jobs; k++) {
		if (b->o.sse_url)
			snprintf(b->jobs[k].stream, sizeof b->jobs[k].stream, "%.*s:%s", (int)n, label, b->run_id);
		else
			snprintf(b->jobs[k].stream, sizeof b->jobs[k].stream, "%.*s:%s:%d", (int)n, label,
			         b->run_id, k + 1);
	}
}

/* host[:port] of a URL (no scheme, user or path), at most 40 bytes. */
static void url_host(const char *url, char *out, size_t len)
{
	const char *h = strstr(url, "://");
	h = h ? h + 3 : url;
	size_t n = strcspn(h, "/?#");
	const char *at = memchr(h, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - h);
		h = at + 1;
	}
	if (n > 40)
		n = 40;
	if (n >= len)
		n = len - 1;
	memcpy(out, h, n);
	out[n] = '\0';
}

static int pick_exit_code(struct bridge *b)
{
	for (int k = 0; k < b->n_jobs; k++)
		if (b->jobs[k].state == JOB_FAILED)
			return b->jobs[k].exit_code;
	return EXIT_OK;
}

static void summary(struct bridge *b, bool delivered)
{
	if (bridge_quiet)
		return;
	uint64_t tokens = 0, malformed = 0, forwarded = 0, events = 0;
	int done = 0, failed = 0;
	double ttft_sum = 0;
	int ttft_n = 0;
	for (int k = 0; k < b->n_jobs; k++) {
		struct job *j = &b->jobs[k];
		tokens += j->tokens;
		malformed += j->malformed;
		forwarded += j->forwarded;
		events += j->events;
		done += j->state == JOB_DONE;
		failed += j->state == JOB_FAILED;
		if (j->t_first > 0) {
			ttft_sum += j->t_first - j->t_start;
			ttft_n++;
		}
	}
	double secs = gos_now_s() - b->t0;
	char what[256];
	if (b->o.sse_url)
		snprintf(what, sizeof what, "%llu events: %llu tokens, %llu forwarded as is, %llu reconnects",
		         (unsigned long long)events, (unsigned long long)tokens,
		         (unsigned long long)forwarded,
		         (unsigned long long)(b->jobs[0].attempts > 0 ? b->jobs[0].attempts - 1 : 0));
	else
		snprintf(what, sizeof what, "%d generation%s (%d done, %d failed), %llu tokens, ttft %.0f ms, "
		         "%llu retries", b->n_jobs, b->n_jobs == 1 ? "" : "s", done, failed,
		         (unsigned long long)tokens, ttft_n ? ttft_sum / ttft_n * 1e3 : 0.0,
		         (unsigned long long)b->total_retries);
	char pool[64 + MAX_URLS * 96] = "";
	if (!b->o.sse_url && b->n_up > 1) {
		size_t at = 0;
		at += (size_t)snprintf(pool, sizeof pool, "; pool:");
		for (int i = 0; i < b->n_up && at < sizeof pool; i++)
			at += (size_t)snprintf(pool + at, sizeof pool - at, "%s %s %llu attempts (%llu failed) breaker %s",
			                       i ? "," : "", b->up[i].host, (unsigned long long)b->up[i].attempts,
			                       (unsigned long long)b->up[i].failures, bridge_breaker_name(&b->up[i]));
	}
	char cache[200] = "";
	if (b->o.cache_dir)
		snprintf(cache, sizeof cache, "; cache: %llu hits, %llu misses (%llu corrupt), %llu stored",
		         (unsigned long long)b->cache_hits, (unsigned long long)b->cache_misses,
		         (unsigned long long)b->cache_corrupt, (unsigned long long)b->cache_stored);
	char sent[256];
	if (delivered && b->out.have_result)
		snprintf(sent, sizeof sent, "compositor confirmed (applied %llu, rejected %llu, %llu tokens on the map)",
		         (unsigned long long)b->out.result.applied, (unsigned long long)b->out.result.rejected,
		         (unsigned long long)b->out.result.tokens);
	else
		snprintf(sent, sizeof sent, "%llu events NOT confirmed by the compositor",
		         (unsigned long long)(b->out.end - b->out.base));
	fprintf(stderr, "gos-bridge: %s in %.2f s (%.0f tokens/s), %llu malformed chunks, %llu dropped; %s%s%s\n",
	        what, secs, secs > 0 ? (double)tokens / secs : 0.0, (unsigned long long)malformed,
	        (unsigned long long)b->out.dropped, sent, pool, cache);
}

int main(int argc, char **argv)
{
	struct bridge b = {0};
	int rc = bridge_parse_args(argc, argv, &b.o);
	if (rc >= 0)
		return rc;

	bridge_upstream_seed((uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32);
	static const char b36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	uint64_t rid = (uint64_t)(bridge_wall() * 1000) ^ ((uint64_t)getpid() << 20);
	for (int i = 0; i < 5; i++, rid /= 36)
		b.run_id[i] = b36[rid % 36];

	if (!b.o.sse_url && (rc = bridge_load_prompt(&b)) >= 0) {
		free(b.prompt);
		return rc;
	}

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The compositor first: without it there is nowhere to put tokens. */
	char err[512];
	if (!bridge_out_open(&b, err, sizeof err)) {
		fprintf(stderr, "gos-bridge: %s\n", err);
		free(b.prompt);
		bridge_out_finish(&b);
		return EXIT_COMPOSITOR;
	}

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "gos-bridge: libcurl failed to start\n");
		return EXIT_UNREACHABLE;
	}
	b.n_up = b.o.sse_url ? 1 : b.o.n_urls;
	for (int i = 0; i < b.n_up; i++) {
		b.up[i].base = b.o.sse_url ? b.o.sse_url : b.o.urls[i];
		b.up[i].max = b.o.sse_url ? 0 : b.o.url_max[i];
		url_host(b.up[i].base, b.up[i].host, sizeof b.up[i].host);
	}
	char *model = NULL;
	if (!b.o.sse_url && !b.o.model) {
		model = bridge_discover_model(&b);
		b.o.model = model;
	}

	b.multi = curl_multi_init();
	b.n_jobs = b.o.sse_url ? 1 : b.o.parallel;
	b.jobs = calloc((size_t)b.n_jobs, sizeof *b.jobs);
	if (!b.multi || !b.jobs)
		abort();
	name_streams(&b, b.o.model);
	b.t0 = gos_now_s();
	for (int k = 0; k < b.n_jobs; k++)
		bridge_job_init(&b.jobs[k], &b, k);
	if (!b.o.sse_url)
		bridge_note("%d generation%s from %s%s into %s", b.n_jobs, b.n_jobs == 1 ? "" : "s",
		            b.up[0].base, b.n_up < 2 ? "" : b.o.spread ? " and the other URLs (spread)"
		            : " (and fail-over URLs)", b.out.path ? b.out.path : b.o.socket_path);

	bool cancelled = false;
	for (;;) {
		double now = gos_now_s();
		if (interrupted && !b.stopping) {
			b.stopping = true;
			for (int k = 0; k < b.n_jobs; k++) {
				struct job *j = &b.jobs[k];
				if (j->state == JOB_RUNNING) {
					curl_multi_remove_handle(b.multi, j->easy);
					bridge_release_url(j);
					if (b.o.sse_url)
						bridge_job_done(j);
					else
						bridge_job_fail(j, EXIT_INTERRUPTED,
						                "interrupted after %llu tokens",
						                (unsigned long long)j->tokens);
				} else if (j->state == JOB_WAIT) {
					if (b.o.sse_url)
						bridge_job_done(j);
					else
						bridge_job_fail(j, EXIT_INTERRUPTED,
						                "interrupted before it started");
				}
			}
			cancelled = !b.o.sse_url;
		}
		int active = 0;
		double replay_wake = INFINITY;
		for (int k = 0; k < b.n_jobs; k++) {
			struct job *j = &b.jobs[k];
			if (j->state == JOB_WAIT && j->wake_at <= now)
				bridge_start_attempt(j, now);
			if (j->state == JOB_RUNNING && j->replaying)
				replay_wake = fmin(replay_wake, bridge_cache_replay(j, now));
			if (j->state == JOB_WAIT || j->state == JOB_RUNNING)
				active++;
		}
		if (!active)
			break;
		int running;
		curl_multi_perform(b.multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(b.multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct job *j = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
			CURLcode res = m->data.result;
			if (j && j->state == JOB_RUNNING)
				bridge_attempt_ended(j, res);
		}
		now = gos_now_s();
		for (int k = 0; k < b.n_jobs; k++) {
			struct job *j = &b.jobs[k];
			if (j->state == JOB_RUNNING && j->got_finish && now - j->finish_at > FINISH_GRACE_S) {
				/* finish_reason came, the server keeps the connection open
				 * without [DONE]: the generation is complete all the same. */
				curl_multi_remove_handle(b.multi, j->easy);
				bridge_release_url(j);
				bridge_job_done(j);
				continue;
			}
			if (j->state == JOB_RUNNING && !j->replaying && now - j->last_activity > b.o.read_timeout) {
				snprintf(j->abort_reason, sizeof j->abort_reason,
				         "%s sent nothing for %.1f s (--read-timeout)",
				         b.o.sse_url ? b.o.sse_url : b.up[j->url].base, b.o.read_timeout);
				bridge_attempt_ended(j, CURLE_OPERATION_TIMEDOUT);
			}
		}
		bridge_out_flush(&b, false);
		if (b.out.c && !gos_client_poll(b.out.c, 0))
			bridge_out_lost(&b);
		double next_wake = fmin(gos_now_s() + 0.1, replay_wake);
		for (int k = 0; k < b.n_jobs; k++)
			if (b.jobs[k].state == JOB_WAIT && b.jobs[k].wake_at < next_wake)
				next_wake = b.jobs[k].wake_at;
		int wait_ms = (int)((next_wake - gos_now_s()) * 1e3);
		if (wait_ms < 0)
			wait_ms = 0;
		if (wait_ms > 100)
			wait_ms = 100;
		curl_multi_poll(b.multi, NULL, 0, wait_ms, NULL);
	}

	if (b.echo_nl)
		putchar('\n');
	bool delivered = bridge_out_drain(&b, b.o.sync_timeout);
	if (!delivered)
		bridge_fail("%llu events were not confirmed by the compositor at %s within %.0f s",
		            (unsigned long long)(b.out.end - b.out.base), b.out.path ? b.out.path : b.o.socket_path, b.o.sync_timeout);
	else if (b.out.dropped > b.out.dropped_reported)
		bridge_fail("dropped %llu events while the compositor was away (the --buffer limit is %zu)",
		            (unsigned long long)(b.out.dropped - b.out.dropped_reported), b.out.cap);
	summary(&b, delivered);

	if (b.out.rejected)
		bridge_fail("the compositor rejected %llu events", (unsigned long long)b.out.rejected);
	rc = cancelled ? EXIT_INTERRUPTED : pick_exit_code(&b);
	if (rc == EXIT_OK && (!delivered || b.out.dropped || b.out.rejected))
		rc = EXIT_COMPOSITOR;

	for (int k = 0; k < b.n_jobs; k++)
		bridge_job_finish(&b.jobs[k]);
	free(b.jobs);
	curl_multi_cleanup(b.multi);
	curl_global_cleanup();
	bridge_out_finish(&b);
	free(b.prompt);
	free(model);
	return rc;
}
