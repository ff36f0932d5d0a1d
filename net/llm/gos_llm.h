/* gos_llm: the OpenAI-compatible chat-completions and (legacy) completions
 * protocol without the I/O: the streaming request body, each streamed chunk (the data of one SSE
 * event) turned into tokens with their log-probabilities, error bodies and
 * Retry-After headers turned into something a user can read. gos-bridge
 * does the HTTP (libcurl) and the compositor socket around it.
 *
 * No global state: every function may be called from any thread. */
#ifndef GOS_LLM_H
#define GOS_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "gos_protocol.h"

/* What to ask for. Zero/NULL fields are left out of the request, so the
 * server's defaults apply; temperature is left out when negative. */
struct gos_llm_request {
	const char *model;
	const char *system;
	const char *prompt;
	int64_t max_tokens;       /* <= 0: left out */
	double temperature;       /* < 0: left out */
	bool logprobs;            /* "logprobs": true */
	int top_logprobs;         /* with logprobs, > 0: "top_logprobs": K (max 20) */
	bool include_usage;       /* "stream_options": {"include_usage": true} */
	bool completions;         /* POST /completions: "prompt" (raw, system ignored),
	                           * "logprobs": K (at least 1) instead of messages */
	bool has_seed;            /* "seed": seed */
	int64_t seed;
};

/* The JSON body of POST {base}/chat/completions (or /completions) with
 * "stream": true. malloc'd, the caller frees; NULL when out of memory. */
char *gos_llm_request_json(const struct gos_llm_request *r);

/* One token of a chunk. text is valid UTF-8, 1..GOS_MAX_TEXT bytes, no NUL.
 * logprob is NAN when the server sent none. */
struct gos_llm_token {
	const char *text;
	double logprob;
	uint32_t n_alts;
	struct gos_alt *alts;     /* top_logprobs, at most GOS_MAX_ALTS */
};

enum gos_llm_chunk_kind {
	GOS_LLM_CHUNK,            /* a chat.completion.chunk (maybe without tokens) */
	GOS_LLM_DONE,             /* "data: [DONE]" */
	GOS_LLM_ERROR,            /* an {"error": ...} object sent in the stream */
	GOS_LLM_MALFORMED,        /* not JSON, or not a chunk */
};

/* A parsed chunk. Strings and arrays live in the arena given to the parser. */
struct gos_llm_chunk {
	enum gos_llm_chunk_kind kind;
	uint32_t n_tokens;
	struct gos_llm_token *tokens;
	const char *finish_reason;    /* NULL while the choice goes on */
	bool has_logprobs;            /* choice 0 carried logprobs.content */
	bool has_usage;
	int64_t prompt_tokens;        /* -1 when absent */
	int64_t completion_tokens;    /* -1 when absent */
	uint32_t other_choices;       /* choices with index != 0 (not shown) */
	const char *message;          /* ERROR: the server's message; MALFORMED: why */
};

/* Parses the data of one SSE event of a chat-completions or completions
 * stream. Tokens come from choice 0 (delta.content, or text for
 * completions): one per logprobs entry when the entries spell the text,
 * else one for the whole text (its logprob the sum of the entries'); a text
 * longer than GOS_MAX_TEXT becomes several tokens, split at UTF-8 character
 * boundaries. Logprobs entries are logprobs.content[] ({token, logprob,
 * top_logprobs: [{token, logprob}]}, chat and llama.cpp's completions) or
 * the legacy completions arrays (logprobs.tokens[], token_logprobs[],
 * top_logprobs[]: {token: logprob}). Never fails: bad input is MALFORMED. */
void gos_llm_parse_chunk(const char *data, size_t len, struct gos_llm_chunk *out,
                         struct gos_arena *arena);

/* exp(logprob) clamped to [0,1]; NAN for NAN. */
float gos_llm_confidence(double logprob);

/* The human part of an HTTP error body: error.message, error (a string),
 * message, detail, else the first line of the text, trimmed to out's size.
 * Writes "" when the body says nothing readable. */
void gos_llm_error_message(const char *body, size_t len, char *out, size_t outlen);

/* What an error body (an HTTP error's, or an error sent inside a stream)
 * says about asking again. INVALID: the request itself is at fault (an
 * error type such as invalid_request_error, a 4xx code other than 408/429,
 * or a message such as "requires", "invalid", "not supported", "exceeds"),
 * so the same request fails again; TRANSIENT: the server is busy, loading,
 * overloaded or unavailable (408, 429, 502-504 codes, such words or types),
 * or names a 5xx code without blaming the request; UNKNOWN: neither (no
 * code, nothing recognisable). */
enum gos_llm_error_kind { GOS_LLM_ERR_UNKNOWN, GOS_LLM_ERR_TRANSIENT, GOS_LLM_ERR_INVALID };
enum gos_llm_error_kind gos_llm_error_kind(const char *body, size_t len);

/* True when an error body names param (ASCII case-insensitive): how a 400
 * that refuses "logprobs" or "stream_options" is told from other 400s. */
bool gos_llm_error_mentions(const char *body, size_t len, const char *param);

/* Seconds to wait from a Retry-After header value (delta-seconds or an
 * HTTP-date, relative to now); -1 when absent or unreadable. */
double gos_llm_retry_after(const char *value, time_t now);

/* The id of the first model in a GET {base}/models reply, malloc'd; NULL if
 * there is none. */
char *gos_llm_first_model(const char *body, size_t len);

#endif
