/* gos-bridge, the HTTP side: the upstream pool (--url, several for
 * fail-over, or --spread over them: a URL is used when its breaker is not
 * open, it is not resting (a failure rests it for a backoff with jitter,
 * or for its Retry-After) and it has a free slot (max=N)), one libcurl easy
 * handle per job on the multi handle, the responses read as event streams,
 * the OpenAI chat / completions chunks turned into tokens, errors inside
 * the stream, and what an attempt's end means: done, retried, or failed.
 * Also GET /models when no --model is given. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "bridge.h"
#include "gos_llm.h"
#include "gos_time.h"

#define ERRBODY_MAX (64u * 1024u)  /* an error response's body kept, at most */
#define BACKOFF_BASE_S 0.5
#define BACKOFF_MAX_S 30.0

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

void bridge_upstream_seed(uint64_t seed)
{
	rng_state ^= seed;
}

static double rnd01(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) / (double)(1ull << 53);
}

/* ---- HTTP callbacks ---- */

static bool starts_with_ci(const char *s, const char *prefix)
{
	return s && !strncasecmp(s, prefix, strlen(prefix));
}

static void check_head(struct job *j)
{
	if (j->head_checked)
		return;
	j->head_checked = true;
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &j->status);
	char *ct = NULL;
	curl_easy_getinfo(j->easy, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(j->content_type, sizeof j->content_type, "%s", ct ? ct : "");
	/* 204 has no body, whatever its Content-Type says. */
	j->is_sse = j->status / 100 == 2 && j->status != 204 && starts_with_ci(ct, "text/event-stream");
	/* A generation's first "processing" waits for its stream: the server
	 * that names it is known then (--url pool). */
	if (j->is_sse && !j->sent_processing && !j->b->o.sse_url) {
		j->sent_processing = true;
		bridge_emit_state(j, "processing", NULL);
	}
}

static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
	struct job *j = ud;
	size_t len = size * n;
	j->last_activity = gos_now_s();
	if (len > 12 && !strncasecmp(ptr, "retry-after:", 12)) {
		size_t vl = len - 12;
		if (vl >= sizeof j->retry_after)
			vl = sizeof j->retry_after - 1;
		memcpy(j->retry_after, ptr + 12, vl);
		j->retry_after[vl] = '\0';
	} else if (len >= 5 && !strncmp(ptr, "HTTP/", 5)) {
		j->retry_after[0] = '\0';   /* a new response (after a 100 Continue, say) */
	}
	return len;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
	struct job *j = ud;
	size_t len = size * n;
	j->last_activity = gos_now_s();
	check_head(j);
	if (!j->is_sse) {
		size_t keep = len;
		if (j->errbody_len + keep > ERRBODY_MAX)
			keep = ERRBODY_MAX - j->errbody_len;
		if (keep) {
			char *e = realloc(j->errbody, j->errbody_len + keep + 1);
			if (!e)
				return 0;
			j->errbody = e;
			memcpy(e + j->errbody_len, ptr, keep);
			j->errbody_len += keep;
			e[j->errbody_len] = '\0';
		}
		/* 2xx without an event stream is an error already: stop reading. */
		return j->status / 100 == 2 && j->errbody_len >= ERRBODY_MAX ? 0 : len;
	}
	if (j->got_done)
		return len;
	if (!gos_sse_feed(j->sse, ptr, len))
		abort();
	return j->aborted ? 0 : len;
}

static void url_worked(struct bridge *b, struct upstream *u);

/* ---- events from the stream ---- */

/* An error sent inside the stream (an "error" event, an "error:" field
 * line, or a chunk {"error": ...}): the attempt stops here. */
static void stream_error(struct job *j, const char *body, size_t len, const char *dflt)
{
	gos_llm_error_message(body, len, j->stream_error, sizeof j->stream_error);
	if (!j->stream_error[0])
		snprintf(j->stream_error, sizeof j->stream_error, "%s", dflt);
	j->stream_error_kind = (int)gos_llm_error_kind(body, len);
	j->aborted = true;
}

static void chat_event(struct job *j, const struct gos_sse_event *ev)
{
	struct bridge *b = j->b;
	if (j->got_done || j->aborted)
		return;
	if (!strcmp(ev->type, "error")) {
		stream_error(j, ev->data, ev->data_len, "the server sent an error event");
		return;
	}
	if (strcmp(ev->type, "message"))
		return;
	gos_arena_reset(&j->arena);
	struct gos_llm_chunk c;
	gos_llm_parse_chunk(ev->data, ev->data_len, &c, &j->arena);
	switch (c.kind) {
	case GOS_LLM_DONE:
		j->got_done = true;
		return;
	case GOS_LLM_ERROR:
		stream_error(j, ev->data, ev->data_len, c.message);
		return;
	case GOS_LLM_MALFORMED:
		j->malformed++;
		if (j->malformed <= 3)
			bridge_fail("%s: skipped a malformed chunk (%s): %.80s%s", j->stream, c.message,
			            ev->data, ev->data_len > 80 ? "..." : "");
		return;
	case GOS_LLM_CHUNK:
		break;
	}
	struct upstream *u = &b->up[j->url];
	if ((c.n_tokens || c.finish_reason) && !j->url_ok) {
		j->url_ok = true;
		url_worked(b, u);
	}
	if (c.n_tokens && !c.has_logprobs && !b->o.no_logprobs && !u->no_logprobs && !u->said_no_logprobs) {
		u->said_no_logprobs = true;
		bridge_note("%s sends no logprobs: its tokens are drawn without confidence", u->base);
	}
	for (uint32_t i = 0; i < c.n_tokens; i++) {
		/* --completions asks for 1 alternative at least */
		uint32_t n_alts = b->o.top_logprobs ? c.tokens[i].n_alts : 0;
		bridge_emit_token(j, c.tokens[i].text, c.tokens[i].logprob, c.tokens[i].alts, n_alts);
		if (b->o.cache_dir)
			bridge_cache_record(j, c.tokens[i].text, c.tokens[i].logprob, c.tokens[i].alts, n_alts);
	}
	if (c.finish_reason && !j->got_finish) {
		j->got_finish = true;
		j->finish_at = gos_now_s();
		snprintf(j->finish_reason, sizeof j->finish_reason, "%s", c.finish_reason);
	}
	if (c.has_usage && c.completion_tokens >= 0)
		j->completion_tokens = c.completion_tokens;
	if (c.n_tokens && gos_now_s() - j->last_state >= STATE_EVERY_S)
		bridge_emit_state(j, "processing", NULL);
}

static void on_sse_event(void *ctx, const struct gos_sse_event *ev)
{
	struct job *j = ctx;
	if (j->b->o.sse_url)
		bridge_sse_event(j, ev);
	else
		chat_event(j, ev);
}

static void on_sse_retry(void *ctx, uint64_t ms)
{
	struct job *j = ctx;
	j->sse_retry_ms = ms;
}

/* llama.cpp (2025) reports an error after the 200 header as an "error:"
 * field line, then "data: [DONE]": the standard ignores the field, so
 * without this the generation would look finished. */
static void on_sse_field(void *ctx, const char *name, size_t name_len, const char *value,
                         size_t value_len)
{
	struct job *j = ctx;
	if (j->b->o.sse_url || j->got_done || j->aborted || name_len != 5 || memcmp(name, "error", 5))
		return;
	stream_error(j, value, value_len, "the server sent an error line");
}

static void on_sse_error(void *ctx, const char *message)
{
	struct job *j = ctx;
	bridge_fail("%s: %s", j->stream, message);
}

/* ---- jobs and attempts ---- */

void bridge_job_init(struct job *j, struct bridge *b, int index)
{
	j->b = b;
	j->index = index;
	j->state = JOB_WAIT;
	j->wake_at = b->t0;
	j->t_start = b->t0;
	j->completion_tokens = -1;
	j->sse_retry_ms = (uint64_t)(b->o.reconnect * 1e3);
	j->easy = curl_easy_init();
	struct gos_sse_callbacks cb = {on_sse_event, on_sse_retry, on_sse_error, j, on_sse_field};
	j->sse = gos_sse_create(NULL, &cb);
	if (!j->easy || !j->sse)
		abort();
}

void bridge_job_finish(struct job *j)
{
	curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->headers);
	free(j->body);
	free(j->errbody);
	gos_sse_destroy(j->sse);
	gos_arena_finish(&j->arena);
	gos_arena_finish(&j->cache_arena);
	free(j->rec);
}

/* ---- the pool: caps, rests and circuit breakers ---- */

#define BREAKER_MAX_S 60.0

const char *bridge_breaker_name(const struct upstream *u)
{
	return u->breaker == BREAKER_CLOSED ? "closed" : u->breaker == BREAKER_OPEN ? "open" : "half-open";
}

/* The attempt showed the URL works: the breaker closes. */
static void url_worked(struct bridge *b, struct upstream *u)
{
	u->fails = 0;
	u->opens = 0;
	u->probing = false;
	if (u->breaker != BREAKER_CLOSED && !b->o.sse_url)
		bridge_note("%s: the probe worked: breaker closed", u->host);
	u->breaker = BREAKER_CLOSED;
}

/* The attempt failed because of the URL (unreachable, 5xx, broken
 * stream): K in a row, or a failed probe, open its breaker. */
static void url_failed(struct bridge *b, struct upstream *u)
{
	double now = gos_now_s();
	u->fails++;
	u->failures++;
	/* One URL has nowhere else to send the work: its retries' backoff
	 * paces it, a breaker would only add waits. */
	if (b->o.sse_url || b->n_up < 2 || (u->breaker == BREAKER_CLOSED && u->fails < b->o.breaker_failures))
		return;
	u->opens++;
	double wait = b->o.breaker_cooldown * pow(2.0, u->opens - 1);
	if (wait > BREAKER_MAX_S)
		wait = BREAKER_MAX_S;
	u->breaker = BREAKER_OPEN;
	u->probing = false;
	u->open_until = now + wait;
	bridge_note("%s: breaker open after %d failure%s in a row: a probe in %.1f s", u->host, u->fails,
	            u->fails == 1 ? "" : "s", wait);
}

void bridge_release_url(struct job *j)
{
	if (!j->holds_url)
		return;
	j->holds_url = false;
	struct upstream *u = &j->b->up[j->url];
	u->in_flight--;
	/* A probe that ended without a verdict (interrupted) lets another try. */
	if (u->breaker == BREAKER_HALF_OPEN && !j->url_ok)
		u->probing = false;
}

/* Can up[i] take an attempt now? Else *wake: when it might. */
static bool url_usable(struct bridge *b, int i, double now, double *wake)
{
	struct upstream *u = &b->up[i];
	if (u->breaker == BREAKER_OPEN) {
		if (now < u->open_until) {
			*wake = fmin(*wake, u->open_until);
			return false;
		}
		u->breaker = BREAKER_HALF_OPEN;
		u->probing = false;
	}
	if (u->not_before > now) {
		*wake = fmin(*wake, u->not_before);
		return false;
	}
	if ((u->max && u->in_flight >= u->max) || (u->breaker == BREAKER_HALF_OPEN && u->probing)) {
		*wake = fmin(*wake, now + 0.05);   /* a slot frees when an attempt ends */
		return false;
	}
	return true;
}

/* The URL for the next attempt: the first usable one in --url order, or
 * with --spread the usable one with the fewest attempts in flight (ties:
 * --url order); -1 and *wake when none is. */
static int pick_upstream(struct bridge *b, double now, double *wake)
{
	*wake = INFINITY;
	int best = -1;
	for (int i = 0; i < b->n_up; i++) {
		if (!url_usable(b, i, now, wake))
			continue;
		if (!b->o.spread)
			return i;
		if (best < 0 || b->up[i].in_flight < b->up[best].in_flight)
			best = i;
	}
	return best;
}

/* With several URLs streams are named by server: LABEL@HOST:PORT:RUN:N,
 * the server the generation's tokens come from (so fixed by its first). */
static void name_by_url(struct job *j)
{
	struct bridge *b = j->b;
	if (b->n_up < 2 || b->o.sse_url || j->tokens)
		return;
	snprintf(j->stream, sizeof j->stream, "%s@%s:%s:%d", b->label, b->up[j->url].host, b->run_id,
	         j->index + 1);
}

void bridge_start_attempt(struct job *j, double now)
{
	struct bridge *b = j->b;
	double wake;
	if (b->o.cache_dir && !b->o.sse_url && !j->cache_checked) {
		j->cache_checked = true;
		if (bridge_cache_lookup(j, now))
			return;
	}
	int u = b->o.sse_url ? 0 : pick_upstream(b, now, &wake);
	if (u < 0) {
		j->wake_at = wake;
		return;
	}
	j->url = u;
	j->holds_url = true;
	j->url_ok = false;
	b->up[u].in_flight++;
	b->up[u].attempts++;
	if (b->up[u].breaker == BREAKER_HALF_OPEN) {
		b->up[u].probing = true;
		bridge_note("%s: breaker half-open: %s probes it", b->up[u].host, j->stream);
	}
	name_by_url(j);
	j->attempts++;
	j->attempt_t0 = now;
	j->head_checked = j->is_sse = false;
	j->status = 0;
	j->content_type[0] = '\0';
	j->errbody_len = 0;
	j->retry_after[0] = '\0';
	j->got_done = j->got_finish = false;
	j->finish_reason[0] = '\0';
	j->stream_error[0] = '\0';
	j->stream_error_kind = GOS_LLM_ERR_UNKNOWN;
	j->aborted = false;
	j->abort_reason[0] = '\0';
	j->curl_err[0] = '\0';
	j->last_activity = now;
	gos_sse_end(j->sse);

	curl_easy_reset(j->easy);
	curl_slist_free_all(j->headers);
	j->headers = NULL;
	free(j->body);
	j->body = NULL;

	char url[4096];
	j->headers = curl_slist_append(j->headers, "Accept: text/event-stream");
	if (b->o.sse_url) {
		snprintf(url, sizeof url, "%s", b->o.sse_url);
		j->headers = curl_slist_append(j->headers, "Cache-Control: no-cache");
		size_t idl;
		const char *id = gos_sse_last_event_id(j->sse, &idl);
		if (idl) {
			char h[1100];
			snprintf(h, sizeof h, "Last-Event-ID: %.1024s", id);
			j->headers = curl_slist_append(j->headers, h);
		}
		curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(j->easy, CURLOPT_MAXREDIRS, 5L);
	} else {
		const char *base = b->up[u].base;
		size_t bl = strlen(base);
		while (bl && base[bl - 1] == '/')
			bl--;
		snprintf(url, sizeof url, "%.*s/%s", (int)bl, base,
		         b->o.completions ? "completions" : "chat/completions");
		struct gos_llm_request r = {
			.model = b->o.model,
			.system = b->o.system,
			.prompt = b->prompt,
			.max_tokens = b->o.max_tokens,
			.temperature = b->o.temperature,
			.logprobs = !b->o.no_logprobs && !b->up[u].no_logprobs,
			.top_logprobs = b->o.top_logprobs,
			.include_usage = !b->up[u].no_usage,
			.completions = b->o.completions,
			.has_seed = b->o.has_seed,
			.seed = b->o.seed,
		};
		j->body = gos_llm_request_json(&r);
		if (!j->body)
			abort();
		j->headers = curl_slist_append(j->headers, "Content-Type: application/json");
		j->headers = curl_slist_append(j->headers, "Expect:");
		curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body);
	}
	if (b->o.api_key && b->o.api_key[0]) {
		char h[1200];
		snprintf(h, sizeof h, "Authorization: Bearer %.1100s", b->o.api_key);
		j->headers = curl_slist_append(j->headers, h);
	}
	curl_easy_setopt(j->easy, CURLOPT_URL, url);
	curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
	curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(j->easy, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
	curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->curl_err);
	curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(j->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(b->o.connect_timeout * 1e3));
	curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "gos-bridge/" GOS_VERSION);
	curl_multi_add_handle(b->multi, j->easy);
	j->state = JOB_RUNNING;
	if (!j->sent_processing && b->o.sse_url) {
		j->sent_processing = true;
		bridge_emit_state(j, "processing", NULL);
	}
}

void bridge_job_fail(struct job *j, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof j->error, fmt, ap);
	va_end(ap);
	j->state = JOB_FAILED;
	j->exit_code = code;
	j->t_end = gos_now_s();
	bridge_fail("%s: %s", j->stream, j->error);
	bridge_emit_state(j, code == EXIT_INTERRUPTED ? "cancelled" : "error", j->error);
}

void bridge_job_done(struct job *j)
{
	if (j->b->o.cache_dir && !j->b->o.sse_url && !j->replaying)
		bridge_cache_store(j);
	j->state = JOB_DONE;
	j->t_end = gos_now_s();
	bridge_emit_state(j, "done", NULL);
}

/* Backoff with jitter for the failures-th failure in a row. */
double bridge_backoff(int failures, double base, double max)
{
	double d = base * pow(2.0, failures > 1 ? failures - 1 : 0);
	if (d > max)
		d = max;
	return d * (0.5 + 0.5 * rnd01());
}

/* A failure worth another attempt: rest the upstream, pick the next one or
 * wait, unless the retries are spent. */
static void retry_later(struct job *j, int code, const char *what)
{
	struct bridge *b = j->b;
	double now = gos_now_s();
	struct upstream *u = &b->up[j->url];
	if (!j->url_ok)
		url_failed(b, u);
	/* The job's own count sets the pace: N parallel jobs failing together
	 * must not push each other's backoff up. */
	double ra = gos_llm_retry_after(j->retry_after, time(NULL));
	double rest = ra >= 0 ? (ra > 600 ? 600 : ra)
	            : bridge_backoff(j->retries + 1, BACKOFF_BASE_S, BACKOFF_MAX_S);
	if (u->not_before < now + rest)
		u->not_before = now + rest;
	if (b->o.max_retries >= 0 && j->retries >= b->o.max_retries) {
		bridge_job_fail(j, code, "%s (gave up after %d %s)", what, j->retries + 1,
		                j->retries ? "attempts" : "attempt");
		return;
	}
	j->retries++;
	b->total_retries++;
	double wake;
	int next = pick_upstream(b, now, &wake);
	if (next >= 0) {
		bridge_note("%s: %s; trying %s now (retry %d)", j->stream, what, b->up[next].base, j->retries);
		j->wake_at = now;
	} else if (!isfinite(wake)) {
		j->wake_at = now + 0.05;
	} else {
		bridge_note("%s: %s; retrying in %.1f s%s (retry %d)", j->stream, what, wake - now,
		            ra >= 0 ? " (Retry-After)" : "", j->retries);
		j->wake_at = wake;
	}
	j->state = JOB_WAIT;
}

bool bridge_http_retryable(const struct job *j)
{
	if (j->status == 408 || j->status == 429)
		return true;
	if (j->status / 100 != 5)
		return false;
	return gos_llm_error_kind(j->errbody ? j->errbody : "", j->errbody_len) != GOS_LLM_ERR_INVALID;
}

void bridge_describe_http(struct job *j, char *out, size_t len)
{
	char msg[400];
	gos_llm_error_message(j->errbody ? j->errbody : "", j->errbody_len, msg, sizeof msg);
	const char *url = j->b->o.sse_url ? j->b->o.sse_url : j->b->up[j->url].base;
	if (msg[0])
		snprintf(out, len, "%s answered HTTP %ld: %s", url, j->status, msg);
	else
		snprintf(out, len, "%s answered HTTP %ld", url, j->status);
}

static void chat_attempt_ended(struct job *j, CURLcode res)
{
	struct bridge *b = j->b;
	struct upstream *u = &b->up[j->url];
	char what[700];

	if (j->stream_error[0]) {
		if (j->tokens) {
			url_failed(b, u);
			bridge_job_fail(j, EXIT_GENERATION, "the server reported an error after %llu "
			                "tokens: %s", (unsigned long long)j->tokens, j->stream_error);
			return;
		}
		snprintf(what, sizeof what, "%s reported an error: %s", u->base, j->stream_error);
		if (j->stream_error_kind == GOS_LLM_ERR_TRANSIENT) {
			retry_later(j, EXIT_HTTP, what);
		} else {
			url_worked(b, u);   /* it answered: the request is at fault */
			bridge_job_fail(j, EXIT_HTTP, "%s", what);
		}
		return;
	}
	if (j->is_sse && (j->got_done || j->got_finish)) {
		if (!j->url_ok)
			url_worked(b, u);
		bridge_job_done(j);
		return;
	}
	if (j->is_sse) {
		/* The stream stopped before [DONE] or a finish_reason. */
		if (j->abort_reason[0])
			snprintf(what, sizeof what, "%s", j->abort_reason);
		else if (res != CURLE_OK)
			snprintf(what, sizeof what, "the stream from %s broke: %s", u->base,
			         j->curl_err[0] ? j->curl_err : curl_easy_strerror(res));
		else
			snprintf(what, sizeof what, "the stream from %s ended before [DONE]", u->base);
		if (j->tokens) {
			url_failed(b, u);
			bridge_job_fail(j, EXIT_GENERATION, "%s after %llu tokens (not restarted: they "
			                "are on the map)", what, (unsigned long long)j->tokens);
			return;
		}
		retry_later(j, EXIT_UNREACHABLE, what);
		return;
	}
	if (j->status == 0) {
		/* No HTTP answer at all. */
		if (j->abort_reason[0])
			snprintf(what, sizeof what, "%s", j->abort_reason);
		else
			snprintf(what, sizeof what, "cannot reach %s: %s", u->base,
			         j->curl_err[0] ? j->curl_err : curl_easy_strerror(res));
		retry_later(j, EXIT_UNREACHABLE, what);
		return;
	}
	bridge_describe_http(j, what, sizeof what);
	if (j->status / 100 == 2) {
		bridge_job_fail(j, EXIT_NOT_SSE, "%s answered with Content-Type '%s', not an event stream "
		                "(text/event-stream): is it an OpenAI-compatible server that supports stream: true?",
		                u->base, j->content_type[0] ? j->content_type : "(none)");
		return;
	}
	if (bridge_http_retryable(j)) {
		retry_later(j, EXIT_HTTP, what);
		return;
	}
	url_worked(b, u);   /* it answered: the request is at fault */
	if (j->status / 100 == 4 && !u->no_logprobs && !b->o.no_logprobs &&
	    (gos_llm_error_mentions(j->errbody, j->errbody_len, "logprob"))) {
		u->no_logprobs = true;
		bridge_note("%s refuses logprobs (%s): asking without; tokens are drawn without confidence",
		            u->base, what);
		j->wake_at = gos_now_s();
		j->state = JOB_WAIT;
		return;
	}
	if (j->status / 100 == 4 && !u->no_usage &&
	    gos_llm_error_mentions(j->errbody, j->errbody_len, "stream_options")) {
		u->no_usage = true;
		bridge_note("%s refuses stream_options: asking without", u->base);
		j->wake_at = gos_now_s();
		j->state = JOB_WAIT;
		return;
	}
	bridge_job_fail(j, EXIT_HTTP, "%s%s", what, j->status / 100 == 5 ?
	                " (not retried: the server says the request is invalid)" : "");
}

void bridge_attempt_ended(struct job *j, CURLcode res)
{
	curl_multi_remove_handle(j->b->multi, j->easy);
	bridge_release_url(j);
	/* A body cut short on purpose (an error event, a timeout) is not news. */
	check_head(j);
	if (j->b->o.sse_url)
		bridge_sse_attempt_ended(j, res);
	else
		chat_attempt_ended(j, res);
}

/* ---- set-up: GET /models ---- */

struct membuf {
	char *p;
	size_t len;
};

static size_t on_models(char *ptr, size_t size, size_t n, void *ud)
{
	struct membuf *m = ud;
	size_t len = size * n;
	if (m->len + len > (1u << 20))
		return 0;
	char *q = realloc(m->p, m->len + len + 1);
	if (!q)
		return 0;
	memcpy(q + m->len, ptr, len);
	m->p = q;
	m->len += len;
	q[m->len] = '\0';
	return len;
}

/* No --model: ask the first server that answers GET /models. */
char *bridge_discover_model(struct bridge *b)
{
	for (int i = 0; i < b->n_up; i++) {
		CURL *e = curl_easy_init();
		if (!e)
			return NULL;
		char url[4096];
		const char *base = b->up[i].base;
		size_t bl = strlen(base);
		while (bl && base[bl - 1] == '/')
			bl--;
		snprintf(url, sizeof url, "%.*s/models", (int)bl, base);
		struct membuf m = {0};
		struct curl_slist *h = NULL;
		if (b->o.api_key && b->o.api_key[0]) {
			char a[1200];
			snprintf(a, sizeof a, "Authorization: Bearer %.1100s", b->o.api_key);
			h = curl_slist_append(h, a);
		}
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_models);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &m);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(b->o.connect_timeout * 1e3));
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(b->o.connect_timeout * 1e3) + 5000);
		CURLcode r = curl_easy_perform(e);
		long status = 0;
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(e);
		curl_slist_free_all(h);
		char *id = r == CURLE_OK && status == 200 && m.p ? gos_llm_first_model(m.p, m.len) : NULL;
		free(m.p);
		if (id) {
			bridge_note("using model %s (the first of %s)", id, url);
			return id;
		}
		if (r == CURLE_OK)
			return NULL;   /* it answered, without a list: send no model */
	}
	return NULL;
}
