/* The events gos moves from producers to the map: plain structs with no
 * behaviour, made by the ingest parser (net/protocol), the demo and the
 * bridge, carried in batches by gos_queue and applied by the map. Strings
 * and arrays live in the gos_arena of the batch that carries the event. */
#ifndef GOS_EVENT_H
#define GOS_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits, in bytes of UTF-8 (without the terminating NUL). A longer field is
 * rejected with GOS_REJECT_TOO_LONG; a longer line with GOS_REJECT_LINE_TOO_LONG. */
#define GOS_MAX_LINE        (1u << 20)  /* one JSON line / frame: 1 MiB */
#define GOS_MAX_ID          256
#define GOS_MAX_TEXT        4096
#define GOS_MAX_STREAM      128
#define GOS_MAX_STATE       64
#define GOS_MAX_MESSAGE     1024        /* neural_state "message" (an error's text) */
#define GOS_MAX_MODEL       256         /* neural_state "model" */
#define GOS_MAX_ALTS        20          /* top_logprobs entries kept per token */
#define GOS_MAX_VIZ_TOKENS  100000      /* tokens in one token_visualization */
#define GOS_MAX_PATH        4096        /* screenshot "path" */

enum gos_event_type {
	GOS_EV_NONE = 0,
	GOS_EV_TOKEN,        /* "token_activation" */
	GOS_EV_STATE,        /* "neural_state" */
	GOS_EV_VIZ,          /* "token_visualization" */
	GOS_EV_SYNC,         /* "sync" barrier: carries no payload */
	GOS_EV_SCREENSHOT,   /* "screenshot": a PNG of the map, answered on the connection */
	GOS_EV_COUNT_        /* sizes arrays indexed by event type */
};

/* One top_logprobs alternative. */
struct gos_alt {
	const char *token;
	float logprob;
};

/* token_activation. Strings point into the arena passed to gos_protocol_parse.
 * has_position false: the compositor lays the token out. confidence is NAN when
 * absent (drawn neutral). logprob is NAN when absent. stream is "" for the
 * default stream. */
struct gos_token_ev {
	const char *id;
	const char *text;
	const char *stream;
	double timestamp;
	bool has_position;
	float x, y;
	float confidence;
	float logprob;
	uint32_t n_alts;
	const struct gos_alt *alts;
};

/* A stream's running numbers over every token it ever added (a token's
 * later updates and its eviction leave them as they were: they describe the
 * generation, not what is left on the map). Viewers derive tokens/s, mean
 * and minimum confidence, perplexity and mean entropy from them. */
struct gos_stream_stats {
	uint64_t n_conf;           /* tokens with a confidence */
	double conf_sum;
	float conf_min;            /* NAN: none */
	uint64_t n_logprob;        /* tokens with a logprob */
	double logprob_sum;        /* perplexity: exp(-logprob_sum / n_logprob) */
	uint64_t n_entropy;        /* tokens with top_logprobs */
	double entropy_sum;        /* nats, each over its top_logprobs renormalised */
	double first_ts, last_ts;  /* producer timestamps of its first and last token (NAN: none) */
	uint32_t hist[10];         /* confidences by tenth ([0,0.1) ... [0.9,1]) */
};

/* neural_state. Numbers absent from the line are -1 (elapsed_ms, ttft_ms:
 * NAN); strings absent are NULL (stream: ""). */
struct gos_state_ev {
	const char *state;
	const char *stream;
	int64_t tokens_processed;
	int64_t total_tokens;
	double elapsed_ms;
	double ttft_ms;              /* time to the first token, ms */
	const char *finish_reason;   /* "stop", "length", ... */
	const char *message;         /* a failed generation's error text */
	const char *model;           /* the model that generates the stream */
};

/* One entry of token_visualization ("tokens":[{"id","text","x","y"}]).
 * confidence (optional) is NAN when absent; stream (optional) "" when absent. */
struct gos_viz_token {
	const char *id;
	const char *text;
	const char *stream;
	float x, y;
	float confidence;
};

struct gos_viz_ev {
	uint32_t n_tokens;
	const struct gos_viz_token *tokens;
};

/* The sync barrier. The parser leaves these zero; the ingest layer fills in
 * which connection asked and that connection's counts at the barrier. */
struct gos_sync_ev {
	uint64_t conn;
	uint64_t applied;
	uint64_t rejected;
	uint64_t tokens;     /* filled by the core: live tokens at the barrier */
};

/* The screenshot request: {"type":"screenshot","path":"/abs.png","fit":bool}.
 * path is absolute (starts with '/'), at most GOS_MAX_PATH bytes; fit (false
 * when absent) frames every token instead of the current view. Like sync it
 * is a barrier: the ingest layer fills in conn, and the picture shows every
 * earlier line of that connection applied. */
struct gos_screenshot_ev {
	const char *path;
	bool fit;
	uint64_t conn;
};

struct gos_event {
	enum gos_event_type type;
	/* The line as the ingest accepted it (trimmed; in the batch's arena),
	 * kept for the journal, which records it as is; NULL for events made
	 * in-process (demo, tests), which the journal serializes. */
	const char *raw;
	uint32_t raw_len;
	/* Over NATS: the ingest stream sequence of the message it came in (the
	 * change log carries it, so a new leader skips what its predecessor
	 * applied and did not ack); 0 from other sources. */
	uint64_t src_seq;
	union {
		struct gos_token_ev token;
		struct gos_state_ev state;
		struct gos_viz_ev viz;
		struct gos_sync_ev sync;
		struct gos_screenshot_ev shot;
	};
};

#endif
