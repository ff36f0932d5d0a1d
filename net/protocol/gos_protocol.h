/* gos wire protocol: parse, validate and serialize the ingest messages of
 * shared/design.md ("Wire formats") into plain C structs. No I/O, no threads:
 * every function here is reentrant and may be called from any thread. */
#ifndef GOS_PROTOCOL_H
#define GOS_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_arena.h"
#include "gos_buf.h"
#include "gos_event.h"

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

/* Serializers. Each writes one JSON object (no trailing newline) into a
 * malloc'd NUL-terminated string the caller frees (out of memory aborts,
 * as everywhere in gos). Shortest round-tripping numbers, escaped strings. */
char *gos_protocol_serialize(const struct gos_event *ev);
/* Appends the event's JSON object (as gos_protocol_serialize) to w; false,
 * appending nothing, for GOS_EV_NONE. */
bool gos_protocol_write(struct gos_buf *w, const struct gos_event *ev);
/* {"type":"error","line":N,"reason":"..."} */
char *gos_protocol_error_line(uint64_t line_no, const struct gos_parse_error *err);
/* {"type":"sync","applied":N,"rejected":M,"tokens":T} */
char *gos_protocol_sync_reply(uint64_t applied, uint64_t rejected, uint64_t tokens);
/* ok: {"type":"screenshot","path":"...","ok":true,"width":W,"height":H,"tokens":T}
 * else {"type":"screenshot","path":"...","ok":false,"reason":"..."} */
char *gos_protocol_screenshot_reply(const char *path, bool ok, uint32_t width, uint32_t height,
                                    uint64_t tokens, const char *reason);

#endif
