/* Internals of the protocol module, shared by its files and its tests: the
 * two parse paths behind gos_protocol_parse(), so tests/test_protocol_diff.c
 * can hold them to each other, and the member names both paths read. Same
 * threading and ownership as gos_protocol_parse(). */
#ifndef GOS_PROTOCOL_INTERNAL_H
#define GOS_PROTOCOL_INTERNAL_H

#include "gos_protocol.h"

/* The reference (protocol_cjson.c): the cJSON path alone, exactly as
 * gos_protocol_parse() answers every line it does not take on its fast path. */
bool gos_protocol_parse_reference(const char *line, size_t len, struct gos_event *ev,
                                  struct gos_arena *arena, struct gos_parse_error *err);

/* The fast path alone (protocol_fast.c): true when it took the line (then
 * *ev is what gos_protocol_parse() returns for it); false ("not mine")
 * leaves *ev zeroed and says nothing about whether the line is valid. */
bool gos_protocol_parse_fast(const char *line, size_t len, struct gos_event *ev,
                             struct gos_arena *arena);

/* The top-level members either path reads, by index into
 * gos_protocol_fields, so that both spell them alike: the cJSON path looks
 * them up there; the fast path also counts a repeated one as "not mine". */
enum gos_protocol_field {
	GOS_F_TYPE, GOS_F_TOKEN_ID, GOS_F_TOKEN_TEXT, GOS_F_TIMESTAMP, GOS_F_CONFIDENCE,
	GOS_F_POSITION, GOS_F_STREAM, GOS_F_LOGPROB, GOS_F_TOP_LOGPROBS, GOS_F_STATE,
	GOS_F_TOKENS_PROCESSED, GOS_F_TOTAL_TOKENS, GOS_F_ELAPSED_MS, GOS_F_TOKENS, GOS_F_PATH,
	GOS_F_FIT, GOS_F_TTFT_MS, GOS_F_FINISH_REASON, GOS_F_MESSAGE, GOS_F_MODEL, GOS_F_COUNT_
};

/* A member name and its length. */
struct gos_protocol_key {
	const char *name;
	size_t len;
};

/* gos_protocol_fields[GOS_F_TYPE] is {"type", 4}, and so on. */
extern const struct gos_protocol_key gos_protocol_fields[GOS_F_COUNT_];

#endif
