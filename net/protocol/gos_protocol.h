/* gos wire protocol: parse, validate and serialize the ingest messages of
 * shared/design.md ("Wire formats") into plain C structs. No I/O, no threads:
 * every function here is reentrant and may be called from any thread. */
#ifndef GOS_PROTOCOL_H
#define GOS_PROTOCOL_H

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

/* Why a line was rejected. gos_reject_name() gives the stable snake_case name
 * used in /metrics labels; the error line carries a longer human sentence. */
enum gos_reject {
	GOS_REJECT_NONE = 0,
	GOS_REJECT_NOT_JSON,        /* not valid JSON, or not a JSON object */
	GOS_REJECT_UNKNOWN_TYPE,    /* "type" missing, not a string, or unknown */
	GOS_REJECT_MISSING_FIELD,   /* a required field is absent */
	GOS_REJECT_WRONG_TYPE,      /* a field has the wrong JSON type or shape */
	GOS_REJECT_NOT_FINITE,      /* a number is NaN/Inf or outside double range */
	GOS_REJECT_CONFIDENCE,      /* confidence outside [0,1] */
	GOS_REJECT_UTF8,            /* the line is not valid UTF-8 */
	GOS_REJECT_TOO_LONG,        /* a string field is over its limit */
	GOS_REJECT_LINE_TOO_LONG,   /* the line is over GOS_MAX_LINE */
	GOS_REJECT_TIMEOUT,         /* the producer stalled inside a line (ingest only) */
	GOS_REJECT_COUNT_
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

/* neural_state. Numbers absent from the line are -1 (elapsed_ms: NAN). */
struct gos_state_ev {
	const char *state;
	const char *stream;
	int64_t tokens_processed;
	int64_t total_tokens;
	double elapsed_ms;
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
	union {
		struct gos_token_ev token;
		struct gos_state_ev state;
		struct gos_viz_ev viz;
		struct gos_sync_ev sync;
		struct gos_screenshot_ev shot;
	};
};

/* A bump allocator for the strings and arrays of parsed events. The caller
 * owns it; gos_arena_reset() frees everything parsed into it at once. Zero-
 * initialized is valid and empty. */
struct gos_arena {
	struct gos_arena_block *head;
	size_t used_total;
};

void *gos_arena_alloc(struct gos_arena *a, size_t size, size_t align);
char *gos_arena_strndup(struct gos_arena *a, const char *s, size_t len);
void gos_arena_reset(struct gos_arena *a);   /* keeps one block for reuse */
void gos_arena_finish(struct gos_arena *a);  /* frees every block */

/* A rejection: the reason code and a human sentence naming the field. */
struct gos_parse_error {
	enum gos_reject reason;
	char message[160];
};

/* Parses one line (without its '\n'; need not be NUL-terminated) into *ev,
 * copying strings into arena. Returns true on success. On failure returns
 * false, fills *err and leaves the arena's earlier contents intact (what this
 * call allocated may stay allocated until the next reset). */
bool gos_protocol_parse(const char *line, size_t len, struct gos_event *ev,
                        struct gos_arena *arena, struct gos_parse_error *err);

/* Stable snake_case name of a reject reason ("not_json", "confidence", ...). */
const char *gos_reject_name(enum gos_reject r);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool gos_utf8_valid(const char *s, size_t len);

/* Serializers. Each writes one JSON object (no trailing newline) into a
 * malloc'd NUL-terminated string the caller frees (out of memory aborts,
 * as everywhere in gos). Shortest round-tripping numbers, escaped strings. */
char *gos_protocol_serialize(const struct gos_event *ev);
/* {"type":"error","line":N,"reason":"..."} */
char *gos_protocol_error_line(uint64_t line_no, const struct gos_parse_error *err);
/* {"type":"sync","applied":N,"rejected":M,"tokens":T} */
char *gos_protocol_sync_reply(uint64_t applied, uint64_t rejected, uint64_t tokens);
/* ok: {"type":"screenshot","path":"...","ok":true,"width":W,"height":H,"tokens":T}
 * else {"type":"screenshot","path":"...","ok":false,"reason":"..."} */
char *gos_protocol_screenshot_reply(const char *path, bool ok, uint32_t width, uint32_t height,
                                    uint64_t tokens, const char *reason);

#endif
