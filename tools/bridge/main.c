/* gos-bridge: streams an LLM's tokens into the compositor. Talks to any
 * OpenAI-compatible server (POST {url}/chat/completions, stream: true) or
 * follows any server-sent event stream (--sse), turns what arrives into
 * token_activation / neural_state lines and writes them to the compositor's
 * Unix socket. One thread: libcurl multi for the HTTP side, a bounded ring
 * of lines for the socket side. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "gos_client.h"
#include "gos_llm.h"
#include "gos_protocol.h"
#include "gos_reply.h"
#include "gos_sse.h"
#include "gos_time.h"
#include "gos_utf8.h"

/* Exit codes (documented in --help and the README). */
enum {
	EXIT_OK = 0,
	EXIT_GENERATION = 1,     /* a generation failed after it had started */
	EXIT_USAGE = 2,
	EXIT_COMPOSITOR = 3,     /* no compositor at start, or events not delivered at exit */
	EXIT_UNREACHABLE = 4,    /* no server answered (after retries) */
	EXIT_HTTP = 5,           /* the server answered with an HTTP error */
	EXIT_NOT_SSE = 6,        /* the server answered, but not with an event stream */
	EXIT_INTERRUPTED = 130,
};

#define MAX_URLS 16
#define ERRBODY_MAX (64u * 1024u)
#define BACKOFF_BASE_S 0.5
#define BACKOFF_MAX_S 30.0
#define SSE_BACKOFF_MAX_S 60.0
#define SYNC_EVERY_LINES 256
#define SYNC_EVERY_S 0.1
#define STATE_EVERY_S 0.5
#define MAX_MARKS 1024
#define FINISH_GRACE_S 2.0       /* after finish_reason, wait this long for usage/[DONE] */

struct options {
	const char *urls[MAX_URLS];
	int n_urls;
	const char *sse_url;
	const char *event_type;
	const char *model;
	const char *prompt;
	const char *prompt_file;
	const char *system;
	int64_t max_tokens;
	double temperature;
	int top_logprobs;
	bool no_logprobs;
	const char *api_key;
	char socket_path[256];
	int parallel;
	double connect_timeout;
	double read_timeout;
	int max_retries;          /* -1: for ever */
	uint64_t max_events;      /* --sse: stop after this many (0: never) */
	double reconnect;         /* --sse: reconnection delay until the server sends retry */
	size_t buffer;
	const char *stream;
	double sync_timeout;
	bool echo;
	bool quiet;
};

struct upstream {
	const char *base;
	double not_before;        /* CLOCK_MONOTONIC s: rested until then */
	bool no_logprobs;         /* refused them: asked without since */
	bool no_usage;            /* refused stream_options */
	bool said_no_logprobs;
};

enum job_state { JOB_WAIT, JOB_RUNNING, JOB_DONE, JOB_FAILED };

struct bridge;

struct job {
	struct bridge *b;
	int index;
	char stream[GOS_MAX_STREAM + 1];
	enum job_state state;
	double wake_at;

	/* the attempt in flight */
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	char curl_err[CURL_ERROR_SIZE];
	int url;
	bool head_checked, is_sse;
	long status;
	char content_type[128];
	char *errbody;
	size_t errbody_len;
	char retry_after[64];
	double last_activity;
	bool got_done, got_finish;
	double finish_at;         /* when finish_reason came: [DONE] is due soon after */
	char stream_error[512];   /* an error the stream itself carried */
	bool aborted;             /* we stopped the transfer (stream_error, timeout, cancel) */
	char abort_reason[160];
	struct gos_sse *sse;
	struct gos_arena arena;

	/* the generation (chat) or the followed stream (--sse) */
	int attempts;
	int retries;
	uint64_t tokens;          /* tokens shown on the map */
	uint64_t forwarded;       /* --sse: ingest events passed on as they were */
	uint64_t events;          /* --sse: events seen */
	uint64_t malformed;
	int64_t completion_tokens;
	double t_start, t_first, t_end;
	double last_state;
	bool sent_processing;
	bool ever_streamed;       /* --sse: a connection ever delivered a stream */
	uint64_t sse_retry_ms;
	int sse_failures;         /* --sse: failed connects in a row */
	char error[600];
	int exit_code;
};

struct out {
	struct gos_client *c;
	char **ring;              /* lines with their '\n'; ring[seq % cap] */
	size_t cap;
	uint64_t base, sent, end; /* confirmed < base <= sent <= end */
	uint64_t marks[MAX_MARKS];
	size_t mark_head, n_marks;
	uint64_t last_mark;
	double last_sync;
	double next_reconnect;
	uint64_t dropped;
	uint64_t dropped_reported;
	uint64_t rejected;
	int rejects_printed;
	bool have_result;
	struct gos_sync_result result;
	uint64_t reconnects;
	bool outage;              /* lost, not yet confirmed back */
	const char *path;
};

struct bridge {
	struct options o;
	struct upstream up[MAX_URLS];
	int n_up;
	CURLM *multi;
	struct job *jobs;
	int n_jobs;
	struct out out;
	char run_id[8];
	char *prompt;
	double t0;
	uint64_t total_retries;
	bool stopping;
	bool echo_nl;             /* --echo left the terminal mid-line */
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static double rnd01(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) / (double)(1ull << 53);
}

static bool quiet;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	if (quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("gos-bridge: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("gos-bridge: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- the compositor socket: a bounded ring of lines ---- */

static void out_on_line(void *ctx, const char *line, size_t len)
{
	struct out *o = ctx;
	struct gos_reply r;
	enum gos_reply_type type = gos_reply_parse(line, len, &r);
	if (type == GOS_REPLY_SYNC) {
		o->result = (struct gos_sync_result){
			.applied = r.sync.applied,
			.rejected = r.sync.rejected,
			.tokens = r.sync.tokens,
		};
		o->have_result = true;
		if (o->outage) {
			o->outage = false;
			note("reconnected to the compositor at %s: buffered events delivered%s", o->path,
			     o->dropped > o->dropped_reported ? "" : ", none dropped");
			if (o->dropped > o->dropped_reported) {
				fail_msg("dropped %llu events while the compositor was away (the --buffer limit is %zu)",
				         (unsigned long long)(o->dropped - o->dropped_reported), o->cap);
				o->dropped_reported = o->dropped;
			}
		}
		if (o->n_marks) {
			uint64_t m = o->marks[o->mark_head];
			o->mark_head = (o->mark_head + 1) % MAX_MARKS;
			o->n_marks--;
			while (o->base < m) {
				free(o->ring[o->base % o->cap]);
				o->ring[o->base % o->cap] = NULL;
				o->base++;
			}
		}
	} else if (type == GOS_REPLY_ERROR) {
		o->rejected++;
		if (o->rejects_printed++ < 5)
			fail_msg("the compositor rejected a line: %s",
			         r.error.reason[0] ? r.error.reason : "(no reason given)");
	}
}

static void out_lost(struct bridge *b)
{
	struct out *o = &b->out;
	gos_client_close(o->c);
	o->c = NULL;
	o->sent = o->base;   /* unconfirmed lines go again after a reconnect */
	o->n_marks = 0;
	o->last_mark = o->base;
	o->have_result = false;   /* counts are per connection */
	o->next_reconnect = gos_now_s() + 0.25;
	if (!o->outage)
		fail_msg("lost the compositor at %s: keeping up to %zu events and reconnecting",
		         b->o.socket_path, o->cap);
	o->outage = true;
}

static void out_reconnect(struct bridge *b)
{
	struct out *o = &b->out;
	if (o->c || gos_now_s() < o->next_reconnect)
		return;
	char err[512];
	o->c = gos_client_connect(b->o.socket_path, err, sizeof err);
	if (!o->c) {
		o->next_reconnect = gos_now_s() + 0.5;
		return;
	}
	gos_client_on_line(o->c, out_on_line, o);
	o->reconnects++;
}

/* Writes every unsent line, with a sync barrier now and then so that lines
 * the compositor has applied can be let go. force: a barrier now. */
static void out_flush(struct bridge *b, bool force)
{
	struct out *o = &b->out;
	out_reconnect(b);
	if (!o->c)
		return;
	double now = gos_now_s();
	bool want_sync = o->n_marks < MAX_MARKS &&
		(force ? o->last_mark < o->end || (o->n_marks == 0 && !o->have_result)
		       : o->end - o->last_mark >= SYNC_EVERY_LINES ||
		         (o->last_mark < o->end && now - o->last_sync >= SYNC_EVERY_S));
	if (o->sent == o->end && !want_sync)
		return;
	size_t len = 0;
	for (uint64_t s = o->sent; s < o->end; s++)
		len += strlen(o->ring[s % o->cap]);
	static const char sync_line[] = "{\"type\":\"sync\"}\n";
	char *buf = malloc(len + sizeof sync_line);
	if (!buf)
		abort();
	size_t at = 0;
	for (uint64_t s = o->sent; s < o->end; s++) {
		size_t n = strlen(o->ring[s % o->cap]);
		memcpy(buf + at, o->ring[s % o->cap], n);
		at += n;
	}
	if (want_sync) {
		memcpy(buf + at, sync_line, sizeof sync_line - 1);
		at += sizeof sync_line - 1;
		o->marks[(o->mark_head + o->n_marks) % MAX_MARKS] = o->end;
		o->n_marks++;
		o->last_mark = o->end;
		o->last_sync = now;
	}
	uint64_t upto = o->end;
	bool ok = gos_client_send(o->c, buf, at);
	free(buf);
	if (!ok) {
		out_lost(b);
		return;
	}
	o->sent = upto;
}

/* Takes ownership of line (which ends in '\n'). When the ring is full: with
 * a compositor, waits for it to confirm; without, drops the oldest line. */
static void out_push(struct bridge *b, char *line)
{
	struct out *o = &b->out;
	while (o->end - o->base == o->cap) {
		if (o->c) {
			out_flush(b, true);
			if (o->c && !gos_client_poll(o->c, 100))
				out_lost(b);
			continue;
		}
		if (o->sent == o->base)
			o->sent++;
		free(o->ring[o->base % o->cap]);
		o->ring[o->base % o->cap] = NULL;
		o->base++;
		o->dropped++;
		if (o->last_mark < o->base)
			o->last_mark = o->base;
	}
	o->ring[o->end % o->cap] = line;
	o->end++;
}

/* Waits until the compositor has confirmed every line, or until timeout_s.
 * Returns true when everything was delivered. */
static bool out_drain(struct bridge *b, double timeout_s)
{
	struct out *o = &b->out;
	double deadline = gos_now_s() + timeout_s;
	while (gos_now_s() < deadline) {
		out_reconnect(b);
		if (o->c && o->base == o->end && o->n_marks == 0 && o->have_result)
			return true;
		out_flush(b, true);
		if (o->c) {
			if (!gos_client_poll(o->c, 50))
				out_lost(b);
		} else {
			usleep(50 * 1000);
		}
	}
	return false;
}

/* ---- lines ---- */

static char *with_newline(char *s)
{
	if (!s)
		abort();
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (!t)
		abort();
	t[n] = '\n';
	t[n + 1] = '\0';
	return t;
}

static void emit_token(struct job *j, const char *text, double logprob,
                       const struct gos_alt *alts, uint32_t n_alts)
{
	struct bridge *b = j->b;
	char id[GOS_MAX_ID + 1];
	snprintf(id, sizeof id, "%s/%llu", j->stream, (unsigned long long)j->tokens);
	struct gos_event ev = {.type = GOS_EV_TOKEN};
	ev.token = (struct gos_token_ev){
		.id = id,
		.text = text,
		.stream = j->stream,
		.timestamp = wall(),
		.confidence = gos_llm_confidence(logprob),
		.logprob = isnan(logprob) ? NAN : (float)logprob,
		.n_alts = n_alts,
		.alts = alts,
	};
	if (j->tokens == 0)
		j->t_first = gos_now_s();
	j->tokens++;
	out_push(b, with_newline(gos_protocol_serialize(&ev)));
	if (b->o.echo) {
		fputs(text, stdout);
		fflush(stdout);
		b->echo_nl = text[strlen(text) - 1] != '\n';
	}
}

/* A neural_state line; ttft_ms and message ride along as extra fields (the
 * compositor ignores fields it does not know). */
static void emit_state(struct job *j, const char *state, const char *message)
{
	struct bridge *b = j->b;
	double now = gos_now_s();
	bool final = !strcmp(state, "done") || !strcmp(state, "error") || !strcmp(state, "cancelled");
	int64_t total = b->o.max_tokens > 0 ? b->o.max_tokens : -1;
	if (!strcmp(state, "done"))
		total = j->completion_tokens >= 0 ? j->completion_tokens : (int64_t)j->tokens;
	struct gos_event ev = {.type = GOS_EV_STATE};
	ev.state = (struct gos_state_ev){
		.state = state,
		.stream = j->stream,
		.tokens_processed = (int64_t)j->tokens,
		.total_tokens = b->o.sse_url ? -1 : total,
		.elapsed_ms = ((final && j->t_end > 0 ? j->t_end : now) - j->t_start) * 1e3,
	};
	char *s = gos_protocol_serialize(&ev);
	if (!s)
		abort();
	size_t n = strlen(s);
	char extra[1024] = "";
	size_t el = 0;
	if (j->t_first > 0)
		el += (size_t)snprintf(extra + el, sizeof extra - el, ",\"ttft_ms\":%.1f",
		                       (j->t_first - j->t_start) * 1e3);
	if (message && message[0]) {
		cJSON *m = cJSON_CreateString(message);
		char *q = m ? cJSON_PrintUnformatted(m) : NULL;
		if (q && strlen(q) < sizeof extra - el - 16)
			el += (size_t)snprintf(extra + el, sizeof extra - el, ",\"message\":%s", q);
		free(q);
		cJSON_Delete(m);
	}
	char *line = malloc(n + el + 2);
	if (!line)
		abort();
	memcpy(line, s, n - 1);                  /* without the closing brace */
	memcpy(line + n - 1, extra, el);
	memcpy(line + n - 1 + el, "}\n", 3);
	free(s);
	out_push(b, line);
	j->last_state = now;
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
	j->is_sse = j->status / 100 == 2 && starts_with_ci(ct, "text/event-stream");
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

/* ---- events from the stream ---- */

static void chat_event(struct job *j, const struct gos_sse_event *ev)
{
	struct bridge *b = j->b;
	if (j->got_done || j->aborted)
		return;
	if (!strcmp(ev->type, "error")) {
		gos_llm_error_message(ev->data, ev->data_len, j->stream_error, sizeof j->stream_error);
		if (!j->stream_error[0])
			snprintf(j->stream_error, sizeof j->stream_error, "the server sent an error event");
		j->aborted = true;
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
		snprintf(j->stream_error, sizeof j->stream_error, "%s", c.message);
		j->aborted = true;
		return;
	case GOS_LLM_MALFORMED:
		j->malformed++;
		if (j->malformed <= 3)
			fail_msg("%s: skipped a malformed chunk (%s): %.80s%s", j->stream, c.message,
			         ev->data, ev->data_len > 80 ? "..." : "");
		return;
	case GOS_LLM_CHUNK:
		break;
	}
	struct upstream *u = &b->up[j->url];
	if (c.n_tokens && !c.has_logprobs && !b->o.no_logprobs && !u->no_logprobs && !u->said_no_logprobs) {
		u->said_no_logprobs = true;
		note("%s sends no logprobs: its tokens are drawn without confidence", u->base);
	}
	for (uint32_t i = 0; i < c.n_tokens; i++)
		emit_token(j, c.tokens[i].text, c.tokens[i].logprob, c.tokens[i].alts, c.tokens[i].n_alts);
	if (c.finish_reason && !j->got_finish) {
		j->got_finish = true;
		j->finish_at = gos_now_s();
	}
	if (c.has_usage && c.completion_tokens >= 0)
		j->completion_tokens = c.completion_tokens;
	if (c.n_tokens && gos_now_s() - j->last_state >= STATE_EVERY_S)
		emit_state(j, "processing", NULL);
}

/* Splits valid UTF-8 text into tokens of at most GOS_MAX_TEXT bytes. NUL
 * bytes (possible in SSE data) become spaces. */
static void emit_text(struct job *j, const char *s, size_t len)
{
	char piece[GOS_MAX_TEXT + 1];
	while (len > 0) {
		size_t n = len < GOS_MAX_TEXT ? len : GOS_MAX_TEXT;
		if (n < len)
			while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
				n--;
		for (size_t i = 0; i < n; i++)
			piece[i] = s[i] ? s[i] : ' ';
		piece[n] = '\0';
		emit_token(j, piece, NAN, NULL, 0);
		s += n;
		len -= n;
	}
}

static void sse_event(struct job *j, const struct gos_sse_event *ev)
{
	struct bridge *b = j->b;
	if (j->aborted || strcmp(ev->type, b->o.event_type))
		return;
	j->events++;
	if (b->o.max_events && j->events >= b->o.max_events) {
		j->aborted = true;   /* this one is the last */
		snprintf(j->abort_reason, sizeof j->abort_reason, "reached --max-events");
	}
	if (ev->data_len == 0)
		return;
	const char *d = ev->data;
	size_t i = 0;
	while (i < ev->data_len && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n'))
		i++;
	if (i < ev->data_len && d[i] == '{') {
		gos_arena_reset(&j->arena);
		struct gos_event e;
		struct gos_parse_error perr;
		if (gos_protocol_parse(d, ev->data_len, &e, &j->arena, &perr) && e.type != GOS_EV_SYNC &&
		    e.type != GOS_EV_SCREENSHOT) {
			char *line;
			if (memchr(d, '\n', ev->data_len) || memchr(d, '\r', ev->data_len)) {
				line = with_newline(gos_protocol_serialize(&e));
			} else {
				line = malloc(ev->data_len + 2);
				if (!line)
					abort();
				memcpy(line, d, ev->data_len);
				memcpy(line + ev->data_len, "\n", 2);
			}
			out_push(b, line);
			j->forwarded++;
			return;
		}
		if (j->malformed++ < 3)
			note("event data looks like JSON but is not an ingest event (%s): shown as text",
			     e.type == GOS_EV_SYNC ? "a sync barrier is not forwarded" :
			     e.type == GOS_EV_SCREENSHOT ? "a screenshot request is not forwarded" :
			     perr.message);
	}
	emit_text(j, ev->data, ev->data_len);
	if (gos_now_s() - j->last_state >= STATE_EVERY_S)
		emit_state(j, "processing", NULL);
}

static void on_sse_event(void *ctx, const struct gos_sse_event *ev)
{
	struct job *j = ctx;
	if (j->b->o.sse_url)
		sse_event(j, ev);
	else
		chat_event(j, ev);
}

static void on_sse_retry(void *ctx, uint64_t ms)
{
	struct job *j = ctx;
	j->sse_retry_ms = ms;
}

static void on_sse_error(void *ctx, const char *message)
{
	struct job *j = ctx;
	fail_msg("%s: %s", j->stream, message);
}

/* ---- attempts ---- */

/* The first upstream (in --url order) that is not resting; -1 and *wake
 * when all are. */
static int pick_upstream(struct bridge *b, double now, double *wake)
{
	*wake = INFINITY;
	for (int i = 0; i < b->n_up; i++) {
		if (b->up[i].not_before <= now)
			return i;
		if (b->up[i].not_before < *wake)
			*wake = b->up[i].not_before;
	}
	return -1;
}

static void start_attempt(struct job *j, double now)
{
	struct bridge *b = j->b;
	double wake;
	int u = b->o.sse_url ? 0 : pick_upstream(b, now, &wake);
	if (u < 0) {
		j->wake_at = wake;
		return;
	}
	j->url = u;
	j->attempts++;
	j->head_checked = j->is_sse = false;
	j->status = 0;
	j->content_type[0] = '\0';
	j->errbody_len = 0;
	j->retry_after[0] = '\0';
	j->got_done = j->got_finish = false;
	j->stream_error[0] = '\0';
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
		snprintf(url, sizeof url, "%.*s/chat/completions", (int)bl, base);
		struct gos_llm_request r = {
			.model = b->o.model,
			.system = b->o.system,
			.prompt = b->prompt,
			.max_tokens = b->o.max_tokens,
			.temperature = b->o.temperature,
			.logprobs = !b->o.no_logprobs && !b->up[u].no_logprobs,
			.top_logprobs = b->o.top_logprobs,
			.include_usage = !b->up[u].no_usage,
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
	if (!j->sent_processing) {
		j->sent_processing = true;
		emit_state(j, "processing", NULL);
	}
}

static void job_fail(struct job *j, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void job_fail(struct job *j, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof j->error, fmt, ap);
	va_end(ap);
	j->state = JOB_FAILED;
	j->exit_code = code;
	j->t_end = gos_now_s();
	fail_msg("%s: %s", j->stream, j->error);
	emit_state(j, code == EXIT_INTERRUPTED ? "cancelled" : "error", j->error);
}

static void job_done(struct job *j)
{
	j->state = JOB_DONE;
	j->t_end = gos_now_s();
	emit_state(j, "done", NULL);
}

/* Backoff with jitter for the failures-th failure in a row. */
static double backoff(int failures, double base, double max)
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
	/* The job's own count sets the pace: N parallel jobs failing together
	 * must not push each other's backoff up. */
	double ra = gos_llm_retry_after(j->retry_after, time(NULL));
	double rest = ra >= 0 ? (ra > 600 ? 600 : ra) : backoff(j->retries + 1, BACKOFF_BASE_S, BACKOFF_MAX_S);
	if (u->not_before < now + rest)
		u->not_before = now + rest;
	if (b->o.max_retries >= 0 && j->retries >= b->o.max_retries) {
		job_fail(j, code, "%s (gave up after %d %s)", what, j->retries + 1,
		         j->retries ? "attempts" : "attempt");
		return;
	}
	j->retries++;
	b->total_retries++;
	double wake;
	int next = pick_upstream(b, now, &wake);
	if (next >= 0) {
		note("%s: %s; trying %s now (retry %d)", j->stream, what, b->up[next].base, j->retries);
		j->wake_at = now;
	} else {
		note("%s: %s; retrying in %.1f s%s (retry %d)", j->stream, what, wake - now,
		     ra >= 0 ? " (Retry-After)" : "", j->retries);
		j->wake_at = wake;
	}
	j->state = JOB_WAIT;
}

static void describe_http(struct job *j, char *out, size_t len)
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
		if (j->tokens)
			job_fail(j, EXIT_GENERATION, "the server reported an error after %llu tokens: %s",
			         (unsigned long long)j->tokens, j->stream_error);
		else
			job_fail(j, EXIT_HTTP, "%s reported an error: %s", u->base, j->stream_error);
		return;
	}
	if (j->is_sse && (j->got_done || j->got_finish)) {
		job_done(j);
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
			job_fail(j, EXIT_GENERATION, "%s after %llu tokens (not restarted: they are on the map)",
			         what, (unsigned long long)j->tokens);
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
	describe_http(j, what, sizeof what);
	if (j->status / 100 == 2) {
		job_fail(j, EXIT_NOT_SSE, "%s answered with Content-Type '%s', not an event stream "
		         "(text/event-stream): is it an OpenAI-compatible server that supports stream: true?",
		         u->base, j->content_type[0] ? j->content_type : "(none)");
		return;
	}
	if (j->status == 429 || j->status / 100 == 5) {
		retry_later(j, EXIT_HTTP, what);
		return;
	}
	if (j->status / 100 == 4 && !u->no_logprobs && !b->o.no_logprobs &&
	    (gos_llm_error_mentions(j->errbody, j->errbody_len, "logprob"))) {
		u->no_logprobs = true;
		note("%s refuses logprobs (%s): asking without; tokens are drawn without confidence",
		     u->base, what);
		j->wake_at = gos_now_s();
		j->state = JOB_WAIT;
		return;
	}
	if (j->status / 100 == 4 && !u->no_usage &&
	    gos_llm_error_mentions(j->errbody, j->errbody_len, "stream_options")) {
		u->no_usage = true;
		note("%s refuses stream_options: asking without", u->base);
		j->wake_at = gos_now_s();
		j->state = JOB_WAIT;
		return;
	}
	job_fail(j, EXIT_HTTP, "%s", what);
}

static void sse_attempt_ended(struct job *j, CURLcode res)
{
	struct bridge *b = j->b;
	char what[700];
	double now = gos_now_s();
	if (j->is_sse) {
		j->ever_streamed = true;
		j->sse_failures = 0;
		if (b->stopping || (b->o.max_events && j->events >= b->o.max_events)) {
			job_done(j);
			return;
		}
		if (j->abort_reason[0])
			snprintf(what, sizeof what, "%s", j->abort_reason);
		else if (res != CURLE_OK)
			snprintf(what, sizeof what, "the event stream broke: %s",
			         j->curl_err[0] ? j->curl_err : curl_easy_strerror(res));
		else
			snprintf(what, sizeof what, "the event stream ended");
		double delay = (double)j->sse_retry_ms / 1e3;
		size_t idl;
		const char *id = gos_sse_last_event_id(j->sse, &idl);
		note("%s; reconnecting in %.1f s%s%.*s", what, delay, idl ? " with Last-Event-ID " : "",
		     (int)(idl > 64 ? 64 : idl), id);
		j->wake_at = now + delay;
		j->state = JOB_WAIT;
		return;
	}
	if (j->status == 204) {
		note("%s answered 204 No Content: the stream is over", b->o.sse_url);
		job_done(j);
		return;
	}
	int code = EXIT_UNREACHABLE;
	if (j->status == 0) {
		if (j->abort_reason[0])
			snprintf(what, sizeof what, "%s", j->abort_reason);
		else
			snprintf(what, sizeof what, "cannot reach %s: %s", b->o.sse_url,
			         j->curl_err[0] ? j->curl_err : curl_easy_strerror(res));
	} else {
		describe_http(j, what, sizeof what);
		code = EXIT_HTTP;
		if (j->status / 100 == 2) {
			job_fail(j, EXIT_NOT_SSE, "%s answered with Content-Type '%s', not an event stream "
			         "(text/event-stream)", b->o.sse_url, j->content_type[0] ? j->content_type : "(none)");
			return;
		}
		if (j->status != 429 && j->status / 100 != 5) {
			job_fail(j, EXIT_HTTP, "%s", what);
			return;
		}
	}
	if (b->stopping) {
		job_done(j);
		return;
	}
	j->sse_failures++;
	if (b->o.max_retries >= 0 && j->sse_failures > b->o.max_retries) {
		job_fail(j, code, "%s (gave up after %d attempts in a row)", what, j->sse_failures);
		return;
	}
	j->retries++;
	b->total_retries++;
	double ra = gos_llm_retry_after(j->retry_after, time(NULL));
	double delay = ra >= 0 ? (ra > 600 ? 600 : ra)
	             : backoff(j->sse_failures, (double)j->sse_retry_ms / 1e3, SSE_BACKOFF_MAX_S);
	note("%s; retrying in %.1f s", what, delay);
	j->wake_at = now + delay;
	j->state = JOB_WAIT;
}

static void attempt_ended(struct job *j, CURLcode res)
{
	curl_multi_remove_handle(j->b->multi, j->easy);
	/* A body cut short on purpose (an error event, a timeout) is not news. */
	check_head(j);
	if (j->b->o.sse_url)
		sse_attempt_ended(j, res);
	else
		chat_attempt_ended(j, res);
}

/* ---- set-up ---- */

static void usage(FILE *f)
{
	char def[256];
	gos_default_socket_path(def, sizeof def);
	fprintf(f,
"usage: gos-bridge --url URL [--url URL2 ...] [OPTIONS] [--prompt TEXT | --prompt-file F]\n"
"       gos-bridge --sse URL [OPTIONS]\n"
"\n"
"Streams an LLM's tokens into gos-compositor as they are generated. With --url,\n"
"asks an OpenAI-compatible server (LM Studio, llama.cpp server, vLLM, Ollama,\n"
"OpenAI) for a chat completion (POST URL/chat/completions, stream: true); each\n"
"token goes on the map coloured by its probability. With --sse, follows any\n"
"server-sent event stream: each event's data becomes one token (data that is\n"
"already an ingest JSON object is passed on as it is).\n"
"\n"
"generation (--url):\n"
"  --url URL            server base URL, e.g. http://127.0.0.1:1234/v1; give several\n"
"                       for a pool: the first that answers is used, the next takes\n"
"                       over when it fails\n"
"  --model NAME         model (default: the first of GET URL/models, else none)\n"
"  --prompt TEXT        the user message (else --prompt-file, else stdin)\n"
"  --prompt-file F      read the user message from F ('-': stdin)\n"
"  --system TEXT        a system message\n"
"  --max-tokens N       generate at most N tokens (also the progress total)\n"
"  --temperature T      sampling temperature (default: the server's)\n"
"  --top-logprobs K     alternatives per token shown on hover (default 5, 0..20)\n"
"  --no-logprobs        do not ask for logprobs (tokens are drawn neutral)\n"
"  --api-key KEY        bearer token (default: $OPENAI_API_KEY)\n"
"  --parallel N         run N generations of the prompt at once, each its own\n"
"                       stream on the map (default 1)\n"
"  --max-retries N      attempts after a failure before giving up (default 5;\n"
"                       --sse: failed reconnects in a row, default: no limit)\n"
"  --echo               also print the generated text on stdout\n"
"\n"
"event stream (--sse):\n"
"  --sse URL            follow this event stream (GET), reconnecting with\n"
"                       Last-Event-ID after a drop\n"
"  --event TYPE         the event type that becomes tokens (default message)\n"
"  --max-events N       stop after N events (default: run until interrupted)\n"
"  --reconnect S        wait S seconds before reconnecting, until the server sets\n"
"                       its own (retry: field); doubled while it stays down (default 3)\n"
"\n"
"common:\n"
"  --socket PATH        the compositor's socket (default %s)\n"
"  --stream NAME        name the stream(s) on the map NAME:RUN[:K] (default: the\n"
"                       model, or 'sse')\n"
"  --connect-timeout S  give up connecting after S seconds (default 10)\n"
"  --read-timeout S     give up on a response silent for S seconds (default 120)\n"
"  --buffer N           events kept while the compositor is away (default 10000)\n"
"  --sync-timeout S     at exit, wait up to S seconds for the compositor to\n"
"                       confirm every event (default 10)\n"
"  --quiet              no notices or summary (errors are still printed)\n"
"  --help, --version\n"
"\n"
"Connection errors, HTTP 429 and 5xx are retried with exponential backoff and\n"
"jitter (Retry-After is honoured). A generation that fails after its first\n"
"token is reported as failed (neural_state error), never restarted.\n"
"\n"
"exit codes: 0 every generation finished and the compositor applied every event\n"
"            (--sse: the stream ended, --max-events reached, or SIGINT/SIGTERM)\n"
"            1 a generation failed after it had started (error mid-stream, lost\n"
"              connection or read timeout after tokens were shown)\n"
"            2 bad command line\n"
"            3 the compositor: its socket not reachable at start, or events not\n"
"              confirmed at exit, dropped (--buffer) or rejected\n"
"            4 no server reachable (connection refused, DNS, timeouts), after retries\n"
"            5 the server answered with an HTTP error (after retries for 429/5xx)\n"
"            6 the server's answer was not an event stream (wrong Content-Type)\n"
"          130 interrupted (SIGINT/SIGTERM) during a generation\n",
	        def);
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool parse_seconds(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	enum { O_URL = 256, O_SSE, O_EVENT, O_MODEL, O_PROMPT, O_PROMPT_FILE, O_SYSTEM,
	       O_MAX_TOKENS, O_TEMPERATURE, O_TOP_LOGPROBS, O_NO_LOGPROBS, O_API_KEY, O_SOCKET,
	       O_PARALLEL, O_CONNECT_TIMEOUT, O_READ_TIMEOUT, O_MAX_RETRIES, O_MAX_EVENTS,
	       O_BUFFER, O_STREAM, O_SYNC_TIMEOUT, O_ECHO, O_QUIET, O_HELP, O_VERSION, O_RECONNECT };
	static const struct option longopts[] = {
		{"url", required_argument, NULL, O_URL},
		{"sse", required_argument, NULL, O_SSE},
		{"event", required_argument, NULL, O_EVENT},
		{"model", required_argument, NULL, O_MODEL},
		{"prompt", required_argument, NULL, O_PROMPT},
		{"prompt-file", required_argument, NULL, O_PROMPT_FILE},
		{"system", required_argument, NULL, O_SYSTEM},
		{"max-tokens", required_argument, NULL, O_MAX_TOKENS},
		{"temperature", required_argument, NULL, O_TEMPERATURE},
		{"top-logprobs", required_argument, NULL, O_TOP_LOGPROBS},
		{"no-logprobs", no_argument, NULL, O_NO_LOGPROBS},
		{"api-key", required_argument, NULL, O_API_KEY},
		{"socket", required_argument, NULL, O_SOCKET},
		{"parallel", required_argument, NULL, O_PARALLEL},
		{"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
		{"read-timeout", required_argument, NULL, O_READ_TIMEOUT},
		{"max-retries", required_argument, NULL, O_MAX_RETRIES},
		{"max-events", required_argument, NULL, O_MAX_EVENTS},
		{"reconnect", required_argument, NULL, O_RECONNECT},
		{"buffer", required_argument, NULL, O_BUFFER},
		{"stream", required_argument, NULL, O_STREAM},
		{"sync-timeout", required_argument, NULL, O_SYNC_TIMEOUT},
		{"echo", no_argument, NULL, O_ECHO},
		{"quiet", no_argument, NULL, O_QUIET},
		{"help", no_argument, NULL, O_HELP},
		{"version", no_argument, NULL, O_VERSION},
		{0},
	};
	*o = (struct options){
		.event_type = "message",
		.temperature = -1,
		.top_logprobs = 5,
		.parallel = 1,
		.connect_timeout = 10,
		.read_timeout = 120,
		.max_retries = -2,   /* default per mode, below */
		.buffer = 10000,
		.sync_timeout = 10,
		.reconnect = 3,
	};
	gos_default_socket_path(o->socket_path, sizeof o->socket_path);
	int c;
	int64_t v;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_URL:
			if (o->n_urls == MAX_URLS) {
				fprintf(stderr, "gos-bridge: at most %d --url\n", MAX_URLS);
				return EXIT_USAGE;
			}
			if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8)) {
				fprintf(stderr, "gos-bridge: --url wants an http:// or https:// URL, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->urls[o->n_urls++] = optarg;
			break;
		case O_SSE:
			if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8)) {
				fprintf(stderr, "gos-bridge: --sse wants an http:// or https:// URL, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->sse_url = optarg;
			break;
		case O_EVENT: o->event_type = optarg; break;
		case O_MODEL: o->model = optarg; break;
		case O_PROMPT: o->prompt = optarg; break;
		case O_PROMPT_FILE: o->prompt_file = optarg; break;
		case O_SYSTEM: o->system = optarg; break;
		case O_MAX_TOKENS:
			if (!parse_int(optarg, 1, 100000000, &v)) {
				fprintf(stderr, "gos-bridge: --max-tokens wants a whole number from 1, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->max_tokens = v;
			break;
		case O_TEMPERATURE:
			if (!parse_seconds(optarg, 0, 100, &o->temperature)) {
				fprintf(stderr, "gos-bridge: --temperature wants a number from 0, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_TOP_LOGPROBS:
			if (!parse_int(optarg, 0, 20, &v)) {
				fprintf(stderr, "gos-bridge: --top-logprobs wants 0 to 20, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->top_logprobs = (int)v;
			break;
		case O_NO_LOGPROBS: o->no_logprobs = true; break;
		case O_API_KEY: o->api_key = optarg; break;
		case O_SOCKET:
			if (strlen(optarg) >= sizeof o->socket_path) {
				fprintf(stderr, "gos-bridge: --socket path is too long\n");
				return EXIT_USAGE;
			}
			snprintf(o->socket_path, sizeof o->socket_path, "%s", optarg);
			break;
		case O_PARALLEL:
			if (!parse_int(optarg, 1, 4096, &v)) {
				fprintf(stderr, "gos-bridge: --parallel wants 1 to 4096, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->parallel = (int)v;
			break;
		case O_CONNECT_TIMEOUT:
			if (!parse_seconds(optarg, 0.001, 3600, &o->connect_timeout)) {
				fprintf(stderr, "gos-bridge: --connect-timeout wants seconds (0.001 to 3600), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_READ_TIMEOUT:
			if (!parse_seconds(optarg, 0.001, 86400, &o->read_timeout)) {
				fprintf(stderr, "gos-bridge: --read-timeout wants seconds (0.001 to 86400), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_MAX_RETRIES:
			if (!parse_int(optarg, 0, 1000000, &v)) {
				fprintf(stderr, "gos-bridge: --max-retries wants a whole number from 0, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->max_retries = (int)v;
			break;
		case O_MAX_EVENTS:
			if (!parse_int(optarg, 1, INT64_MAX, &v)) {
				fprintf(stderr, "gos-bridge: --max-events wants a whole number from 1, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->max_events = (uint64_t)v;
			break;
		case O_RECONNECT:
			if (!parse_seconds(optarg, 0.001, 3600, &o->reconnect)) {
				fprintf(stderr, "gos-bridge: --reconnect wants seconds (0.001 to 3600), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_BUFFER:
			if (!parse_int(optarg, 1, 100000000, &v)) {
				fprintf(stderr, "gos-bridge: --buffer wants 1 to 100000000 events, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->buffer = (size_t)v;
			break;
		case O_STREAM:
			if (!optarg[0] || strlen(optarg) > 96 || !gos_utf8_valid(optarg, strlen(optarg))) {
				fprintf(stderr, "gos-bridge: --stream wants a name of 1 to 96 bytes of UTF-8\n");
				return EXIT_USAGE;
			}
			o->stream = optarg;
			break;
		case O_SYNC_TIMEOUT:
			if (!parse_seconds(optarg, 0, 3600, &o->sync_timeout)) {
				fprintf(stderr, "gos-bridge: --sync-timeout wants seconds (0 to 3600), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_ECHO: o->echo = true; break;
		case O_QUIET: o->quiet = true; break;
		case O_HELP: usage(stdout); exit(EXIT_OK);
		case O_VERSION: printf("gos-bridge %s\n", GOS_VERSION); exit(EXIT_OK);
		default:
			if (optopt)
				fprintf(stderr, "gos-bridge: option '%s' wants a value\n", argv[optind - 1]);
			else
				fprintf(stderr, "gos-bridge: unknown option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "try 'gos-bridge --help'\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "gos-bridge: unexpected argument '%s' (try --help)\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!o->n_urls == !o->sse_url) {
		fprintf(stderr, "gos-bridge: give --url (an OpenAI-compatible server) or --sse (an event "
		        "stream), not %s (try --help)\n", o->n_urls ? "both" : "neither");
		return EXIT_USAGE;
	}
	if (o->sse_url && (o->prompt || o->prompt_file || o->parallel > 1)) {
		fprintf(stderr, "gos-bridge: --prompt, --prompt-file and --parallel go with --url, not --sse\n");
		return EXIT_USAGE;
	}
	if (o->prompt && o->prompt_file) {
		fprintf(stderr, "gos-bridge: give --prompt or --prompt-file, not both\n");
		return EXIT_USAGE;
	}
	if (o->max_retries == -2)
		o->max_retries = o->sse_url ? -1 : 5;
	if (!o->api_key)
		o->api_key = getenv("OPENAI_API_KEY");
	quiet = o->quiet;
	return -1;
}

static char *read_all(FILE *f)
{
	size_t len = 0, cap = 4096;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	size_t n;
	while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2) {
			if (cap > (64u << 20)) {
				free(s);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			char *t = realloc(s, cap);
			if (!t) {
				free(s);
				return NULL;
			}
			s = t;
		}
	}
	if (ferror(f)) {
		free(s);
		return NULL;
	}
	s[len] = '\0';
	return s;
}

static int load_prompt(struct bridge *b)
{
	const struct options *o = &b->o;
	if (o->prompt) {
		b->prompt = strdup(o->prompt);
	} else {
		FILE *f = stdin;
		const char *name = "stdin";
		if (o->prompt_file && strcmp(o->prompt_file, "-")) {
			name = o->prompt_file;
			f = fopen(o->prompt_file, "rb");
			if (!f) {
				fprintf(stderr, "gos-bridge: cannot read the prompt file %s: %s\n", name, strerror(errno));
				return EXIT_USAGE;
			}
		} else if (isatty(0)) {
			fprintf(stderr, "gos-bridge: reading the prompt from stdin (end it with Ctrl-D)\n");
		}
		b->prompt = read_all(f);
		int e = errno;
		if (f != stdin)
			fclose(f);
		if (!b->prompt) {
			fprintf(stderr, "gos-bridge: cannot read the prompt from %s: %s\n", name, strerror(e));
			return EXIT_USAGE;
		}
	}
	size_t n = strlen(b->prompt);
	while (n && (b->prompt[n - 1] == '\n' || b->prompt[n - 1] == '\r'))
		b->prompt[--n] = '\0';
	if (!n) {
		fprintf(stderr, "gos-bridge: the prompt is empty (give --prompt, --prompt-file or text on stdin)\n");
		return EXIT_USAGE;
	}
	if (!gos_utf8_valid(b->prompt, n)) {
		fprintf(stderr, "gos-bridge: the prompt is not valid UTF-8\n");
		return EXIT_USAGE;
	}
	return -1;
}

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
static char *discover_model(struct bridge *b)
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
			note("using model %s (the first of %s)", id, url);
			return id;
		}
		if (r == CURLE_OK)
			return NULL;   /* it answered, without a list: send no model */
	}
	return NULL;
}

/* A stream label: the first 64 bytes of the model name (or 'sse'), cut on a
 * UTF-8 boundary, with a per-run id so two runs never share token ids. */
static void name_streams(struct bridge *b, const char *model)
{
	const char *label = b->o.stream ? b->o.stream : model && model[0] ? model : b->o.sse_url ? "sse" : "bridge";
	size_t n = strlen(label);
	if (n > 64) {
		n = 64;
		while (n && ((unsigned char)label[n] & 0xC0) == 0x80)
			n--;
	}
	for (int k = 0; k < b->n_jobs; k++) {
		if (b->o.sse_url)
			snprintf(b->jobs[k].stream, sizeof b->jobs[k].stream, "%.*s:%s", (int)n, label, b->run_id);
		else
			snprintf(b->jobs[k].stream, sizeof b->jobs[k].stream, "%.*s:%s:%d", (int)n, label,
			         b->run_id, k + 1);
	}
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
	if (quiet)
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
	char sent[256];
	if (delivered && b->out.have_result)
		snprintf(sent, sizeof sent, "compositor confirmed (applied %llu, rejected %llu, %llu tokens on the map)",
		         (unsigned long long)b->out.result.applied, (unsigned long long)b->out.result.rejected,
		         (unsigned long long)b->out.result.tokens);
	else
		snprintf(sent, sizeof sent, "%llu events NOT confirmed by the compositor",
		         (unsigned long long)(b->out.end - b->out.base));
	fprintf(stderr, "gos-bridge: %s in %.2f s (%.0f tokens/s), %llu malformed chunks, %llu dropped; %s\n",
	        what, secs, secs > 0 ? (double)tokens / secs : 0.0, (unsigned long long)malformed,
	        (unsigned long long)b->out.dropped, sent);
}

int main(int argc, char **argv)
{
	struct bridge b = {0};
	int rc = parse_args(argc, argv, &b.o);
	if (rc >= 0)
		return rc;

	rng_state ^= (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32;
	static const char b36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	uint64_t rid = (uint64_t)(wall() * 1000) ^ ((uint64_t)getpid() << 20);
	for (int i = 0; i < 5; i++, rid /= 36)
		b.run_id[i] = b36[rid % 36];

	if (!b.o.sse_url && (rc = load_prompt(&b)) >= 0) {
		free(b.prompt);
		return rc;
	}

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The compositor first: without it there is nowhere to put tokens. */
	char err[512];
	b.out.cap = b.o.buffer;
	b.out.path = b.o.socket_path;
	b.out.ring = calloc(b.out.cap, sizeof *b.out.ring);
	if (!b.out.ring)
		abort();
	b.out.c = gos_client_connect(b.o.socket_path, err, sizeof err);
	if (!b.out.c) {
		fprintf(stderr, "gos-bridge: %s\n", err);
		free(b.prompt);
		free(b.out.ring);
		return EXIT_COMPOSITOR;
	}
	gos_client_on_line(b.out.c, out_on_line, &b.out);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "gos-bridge: libcurl failed to start\n");
		return EXIT_UNREACHABLE;
	}
	b.n_up = b.o.sse_url ? 1 : b.o.n_urls;
	for (int i = 0; i < b.n_up; i++)
		b.up[i].base = b.o.sse_url ? b.o.sse_url : b.o.urls[i];
	char *model = NULL;
	if (!b.o.sse_url && !b.o.model) {
		model = discover_model(&b);
		b.o.model = model;
	}

	b.multi = curl_multi_init();
	b.n_jobs = b.o.sse_url ? 1 : b.o.parallel;
	b.jobs = calloc((size_t)b.n_jobs, sizeof *b.jobs);
	if (!b.multi || !b.jobs)
		abort();
	name_streams(&b, b.o.model);
	b.t0 = gos_now_s();
	for (int k = 0; k < b.n_jobs; k++) {
		struct job *j = &b.jobs[k];
		j->b = &b;
		j->index = k;
		j->state = JOB_WAIT;
		j->wake_at = b.t0;
		j->t_start = b.t0;
		j->completion_tokens = -1;
		j->sse_retry_ms = (uint64_t)(b.o.reconnect * 1e3);
		j->easy = curl_easy_init();
		struct gos_sse_callbacks cb = {on_sse_event, on_sse_retry, on_sse_error, j};
		j->sse = gos_sse_create(NULL, &cb);
		if (!j->easy || !j->sse)
			abort();
	}
	if (!b.o.sse_url)
		note("%d generation%s from %s%s into %s", b.n_jobs, b.n_jobs == 1 ? "" : "s", b.up[0].base,
		     b.n_up > 1 ? " (and fail-over URLs)" : "", b.o.socket_path);

	bool cancelled = false;
	for (;;) {
		double now = gos_now_s();
		if (interrupted && !b.stopping) {
			b.stopping = true;
			for (int k = 0; k < b.n_jobs; k++) {
				struct job *j = &b.jobs[k];
				if (j->state == JOB_RUNNING) {
					curl_multi_remove_handle(b.multi, j->easy);
					if (b.o.sse_url)
						job_done(j);
					else
						job_fail(j, EXIT_INTERRUPTED, "interrupted after %llu tokens",
						         (unsigned long long)j->tokens);
				} else if (j->state == JOB_WAIT) {
					if (b.o.sse_url)
						job_done(j);
					else
						job_fail(j, EXIT_INTERRUPTED, "interrupted before it started");
				}
			}
			cancelled = !b.o.sse_url;
		}
		int active = 0;
		for (int k = 0; k < b.n_jobs; k++) {
			struct job *j = &b.jobs[k];
			if (j->state == JOB_WAIT && j->wake_at <= now)
				start_attempt(j, now);
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
				attempt_ended(j, res);
		}
		now = gos_now_s();
		for (int k = 0; k < b.n_jobs; k++) {
			struct job *j = &b.jobs[k];
			if (j->state == JOB_RUNNING && j->got_finish && now - j->finish_at > FINISH_GRACE_S) {
				/* finish_reason came, the server keeps the connection open
				 * without [DONE]: the generation is complete all the same. */
				curl_multi_remove_handle(b.multi, j->easy);
				job_done(j);
				continue;
			}
			if (j->state == JOB_RUNNING && now - j->last_activity > b.o.read_timeout) {
				snprintf(j->abort_reason, sizeof j->abort_reason,
				         "%s sent nothing for %.1f s (--read-timeout)",
				         b.o.sse_url ? b.o.sse_url : b.up[j->url].base, b.o.read_timeout);
				attempt_ended(j, CURLE_OPERATION_TIMEDOUT);
			}
		}
		out_flush(&b, false);
		if (b.out.c && !gos_client_poll(b.out.c, 0))
			out_lost(&b);
		double next_wake = gos_now_s() + 0.1;
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
	bool delivered = out_drain(&b, b.o.sync_timeout);
	if (!delivered)
		fail_msg("%llu events were not confirmed by the compositor at %s within %.0f s",
		         (unsigned long long)(b.out.end - b.out.base), b.o.socket_path, b.o.sync_timeout);
	else if (b.out.dropped > b.out.dropped_reported)
		fail_msg("dropped %llu events while the compositor was away (the --buffer limit is %zu)",
		         (unsigned long long)(b.out.dropped - b.out.dropped_reported), b.out.cap);
	summary(&b, delivered);

	if (b.out.rejected)
		fail_msg("the compositor rejected %llu events", (unsigned long long)b.out.rejected);
	rc = cancelled ? EXIT_INTERRUPTED : pick_exit_code(&b);
	if (rc == EXIT_OK && (!delivered || b.out.dropped || b.out.rejected))
		rc = EXIT_COMPOSITOR;

	for (int k = 0; k < b.n_jobs; k++) {
		struct job *j = &b.jobs[k];
		curl_easy_cleanup(j->easy);
		curl_slist_free_all(j->headers);
		free(j->body);
		free(j->errbody);
		gos_sse_destroy(j->sse);
		gos_arena_finish(&j->arena);
	}
	free(b.jobs);
	curl_multi_cleanup(b.multi);
	curl_global_cleanup();
	gos_client_close(b.out.c);
	for (uint64_t s = b.out.base; s < b.out.end; s++)
		free(b.out.ring[s % b.out.cap]);
	free(b.out.ring);
	free(b.prompt);
	free(model);
	return rc;
}
