/* gos-bridge's internals, shared by its files. One program, one thread:
 * nothing here is thread-safe, and none of it is a library.
 *
 *   main.c             set-up, the event loop, the summary, the log lines
 *   bridge_opts.c      the command line (--help) and the prompt
 *   bridge_upstream.c  the HTTP side: the --url pool (fail-over or --spread,
 *                      max=N caps, circuit breakers, retries with backoff and
 *                      Retry-After), OpenAI chat / completions streams and
 *                      their error forms, model discovery, and the attempts
 *                      of both modes
 *   bridge_sse.c       --sse: any event stream's events as tokens (ingest
 *                      JSON passed on), reconnecting with Last-Event-ID
 *   bridge_out.c       the compositor side: events as ingest lines in a
 *                      bounded ring, let go once a sync barrier confirms
 *                      them, kept and resent while the compositor is away
 *   bridge_cache.c     --cache: a finished generation stored under its
 *                      request, replayed at its own pace instead of asking
 *
 * A job is one generation (--url, --parallel N of them) or the followed
 * stream (--sse): at most one HTTP attempt in flight at a time. */
#ifndef GOS_BRIDGE_H
#define GOS_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "gos_arena.h"
#include "gos_client.h"
#include "gos_event.h"
#include "gos_gencache.h"
#include "gos_sse.h"

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

#define MAX_URLS 16             /* --url */
#define MAX_MARKS 1024           /* sync barriers in flight */
#define STATE_EVERY_S 0.5        /* "processing" neural_state lines at most this often */

struct options {
	const char *urls[MAX_URLS];   /* without their ",max=N" */
	int url_max[MAX_URLS];        /* ",max=N": at most N attempts at once (0: no cap) */
	int n_urls;
	bool spread;                  /* --spread: least busy healthy URL, not the first */
	int breaker_failures;         /* the breaker opens after this many failures in a row */
	double breaker_cooldown;      /* first wait before the half-open probe */
	const char *sse_url;
	const char *event_type;
	const char *model;
	const char *prompt;
	const char *prompt_file;
	const char *system;
	bool completions;         /* POST /completions with a raw prompt */
	bool has_seed;
	int64_t seed;
	int64_t max_tokens;
	double temperature;
	int top_logprobs;
	bool no_logprobs;
	const char *api_key;
	char socket_path[256];
	const char *nats_url;     /* --nats: publish to JetStream instead */
	const char *cluster;
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
	const char *cache_dir;    /* --cache */
	double cache_speed;       /* replay pace: 1 the original, 0 at once */
	uint64_t cache_max_bytes;
};

/* A URL's circuit breaker: closed (used), open (skipped until open_until),
 * half-open (one probe attempt; its outcome closes or reopens it). */
enum breaker { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct upstream {
	const char *base;
	char host[48];            /* host:port, for stream names and the summary */
	int max;                  /* attempts at once (0: no cap) */
	int in_flight;
	double not_before;        /* CLOCK_MONOTONIC s: rested until then */
	enum breaker breaker;
	int fails;                /* failures in a row */
	int opens;                /* times opened without a success between */
	double open_until;
	bool probing;             /* half-open: the probe is in flight */
	uint64_t attempts, failures;
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
	bool holds_url;           /* counted in up[url].in_flight */
	bool url_ok;              /* this attempt showed the URL works (breaker) */
	bool head_checked, is_sse;
	long status;
	char content_type[128];
	char *errbody;
	size_t errbody_len;
	char retry_after[64];
	double last_activity;
	bool got_done, got_finish;
	double finish_at;         /* when finish_reason came: [DONE] is due soon after */
	char finish_reason[32];   /* as the server sent it ("stop", "length", ...) */
	char stream_error[512];   /* an error the stream itself carried */
	int stream_error_kind;    /* enum gos_llm_error_kind of that error */
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

	/* --cache */
	double attempt_t0;        /* when the attempt in flight was sent */
	bool cache_checked;       /* looked up (once, before the first attempt) */
	bool replaying;           /* the generation comes from the cache */
	struct gos_gencache_entry replay;
	uint32_t replay_next;
	double replay_t0;
	struct gos_gencache_token *rec;   /* the tokens shown, for the store */
	uint32_t n_rec, cap_rec;
	struct gos_arena cache_arena;     /* replay and rec's strings */
};

struct out {
	struct gos_client *c;
	struct gos_nats_producer *nats;   /* --nats: lines are published, not sent */
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
	char label[72];           /* streams are LABEL[@HOST:PORT]:RUN[:N] */
	char run_id[8];
	char *prompt;
	double t0;
	uint64_t total_retries;
	uint64_t cache_hits, cache_misses, cache_stored, cache_corrupt;
	bool stopping;
	bool echo_nl;             /* --echo left the terminal mid-line */
};

/* ---- main.c ---- */

/* --quiet: bridge_note() prints nothing. Set by bridge_parse_args(). */
extern bool bridge_quiet;

/* "gos-bridge: " and one line on stderr, unless --quiet. */
void bridge_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The same for failures: printed even with --quiet. */
void bridge_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* CLOCK_REALTIME in seconds: token timestamps, the run id. */
double bridge_wall(void);

/* ---- bridge_opts.c ---- */

/* Fills *o from the command line (its defaults first; --help and --version
 * print and exit 0). Returns -1 to go on, else the exit code (EXIT_USAGE)
 * after one sentence on stderr. */
int bridge_parse_args(int argc, char **argv, struct options *o);

/* Reads the prompt (--prompt, --prompt-file or stdin) into b->prompt
 * (malloc'd, trailing newlines cut; must be non-empty UTF-8). Returns -1 on
 * success, else EXIT_USAGE after one sentence on stderr. */
int bridge_load_prompt(struct bridge *b);

/* ---- bridge_out.c ---- */

/* Sets up b->out (a ring of b->o.buffer lines) and connects to
 * b->o.socket_path. False, with one sentence in err, when the compositor
 * cannot be reached; bridge_out_finish() frees what was set up either way. */
bool bridge_out_open(struct bridge *b, char *err, size_t errlen);

/* Closes the connection and frees the ring and the lines still in it. */
void bridge_out_finish(struct bridge *b);

/* Queues line (malloc'd, ends in '\n'; the ring takes it). When the ring is
 * full: with a compositor, waits for it to confirm; without, drops the
 * oldest line (counted in b->out.dropped). */
void bridge_out_push(struct bridge *b, char *line);

/* Writes every unsent line, with a sync barrier now and then (every 256
 * lines or 0.1 s); force: a barrier now. Reconnects first when due. */
void bridge_out_flush(struct bridge *b, bool force);

/* The connection broke: closes it; unconfirmed lines go again after the
 * reconnect (bridge_out_flush() tries after 0.25 s, then every 0.5 s). */
void bridge_out_lost(struct bridge *b);

/* Waits up to timeout_s for the compositor to confirm every line; true
 * when it did. */
bool bridge_out_drain(struct bridge *b, double timeout_s);

/* s (malloc'd, NUL-terminated; NULL aborts) with '\n' added, reallocated. */
char *bridge_with_newline(char *s);

/* Queues the job's next token_activation: id STREAM/N, coloured by
 * logprob (NAN: neutral). --echo also prints text. */
void bridge_emit_token(struct job *j, const char *text, double logprob,
                       const struct gos_alt *alts, uint32_t n_alts);

/* Queues a neural_state line for the job (state "processing", "done",
 * "error" or "cancelled"), with ttft_ms and message (NULL: none) as extra
 * fields the compositor ignores. With several --url the message also says
 * which URL and its breaker's state. */
void bridge_emit_state(struct job *j, const char *state, const char *message);

/* ---- bridge_upstream.c ---- */

/* Mixes seed into the backoff jitter's generator. */
void bridge_upstream_seed(uint64_t seed);

/* Sets up job index of b: waiting to start at b->t0, with its curl handle
 * and SSE parser (out of memory aborts). */
void bridge_job_init(struct job *j, struct bridge *b, int index);

/* Frees what bridge_job_init() and the attempts allocated. */
void bridge_job_finish(struct job *j);

/* No --model: the first model of the first server that answers GET
 * /models (malloc'd), or NULL. */
char *bridge_discover_model(struct bridge *b);

/* Starts the job's next attempt on the first upstream not resting (--sse:
 * the stream's URL); when all rest, sets j->wake_at instead. */
void bridge_start_attempt(struct job *j, double now);

/* The attempt in flight ended (res: curl's result): done, failed, or
 * waiting for another attempt (j->state says which). */
void bridge_attempt_ended(struct job *j, CURLcode res);

/* The job failed with exit code code: says why (stderr and a neural_state
 * "error", or "cancelled" for EXIT_INTERRUPTED). */
void bridge_job_fail(struct job *j, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The job finished: a neural_state "done". */
void bridge_job_done(struct job *j);

/* Backoff with jitter for the failures-th failure in a row: base doubled
 * per failure up to max, times 0.5 to 1. */
double bridge_backoff(int failures, double base, double max);

/* The attempt's HTTP error is worth asking again: 408, 429, or a 5xx whose
 * body does not say the request is invalid (gos_llm_error_kind). */
bool bridge_http_retryable(const struct job *j);

/* The attempt is over for its URL: its slot is free again (idempotent). */
void bridge_release_url(struct job *j);

/* The breaker's word for up[i]: "closed", "open" or "half-open". */
const char *bridge_breaker_name(const struct upstream *u);

/* "URL answered HTTP N: message" from the attempt's status and error body. */
void bridge_describe_http(struct job *j, char *out, size_t len);

/* ---- bridge_sse.c ---- */

/* --sse: one event of the followed stream (events of another type are
 * skipped): ingest JSON is passed on as it is, anything else becomes tokens. */
void bridge_sse_event(struct job *j, const struct gos_sse_event *ev);

/* --sse: the attempt ended: reconnect (after the server's retry delay, or
 * backoff while it fails), or stop. */
void bridge_sse_attempt_ended(struct job *j, CURLcode res);

/* ---- bridge_cache.c ---- */

/* --cache, before the job's first attempt: a stored generation for the
 * same request makes the job a replay (state running, replaying; its
 * processing state sent) and returns true; a miss or a corrupt entry
 * (said on stderr) returns false. Counts hits and misses. */
bool bridge_cache_lookup(struct job *j, double now);

/* A replaying job: shows the tokens whose time has come (their recorded
 * time since the request, divided by --cache-speed) and finishes the job
 * after the last. Returns when the next token is due (INFINITY when done). */
double bridge_cache_replay(struct job *j, double now);

/* Keeps a token the job showed (from the server), for the store. */
void bridge_cache_record(struct job *j, const char *text, double logprob, const struct gos_alt *alts,
                         uint32_t n_alts);

/* The job finished (not a replay): stores what it showed under its
 * request, atomically; a failure to write is said, not fatal. */
void bridge_cache_store(struct job *j);

#endif
