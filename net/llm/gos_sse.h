/* gos_sse: an incremental text/event-stream parser that follows the WHATWG
 * "event stream interpretation" rules (HTML, server-sent events, 9.2.6):
 * one UTF-8 BOM stripped at the very start of a stream, CR / LF / CRLF line
 * ends (a CR ending one chunk and its LF starting the next count once),
 * comments, data / event / id / retry fields, fields without a colon, one
 * leading space of a value stripped, dispatch on an empty line, and an
 * unfinished event at the end of a stream discarded. Bytes that are not
 * UTF-8 are decoded as the UTF-8 decoder of the Encoding standard does
 * (each maximal invalid subpart becomes U+FFFD), so every string handed to a
 * callback is valid UTF-8. What comes out does not depend on how the bytes
 * were split into chunks.
 *
 * Memory is bounded: one line and one event's data are each capped at
 * max_data bytes; an event over the cap is reported through on_error and
 * skipped (nothing is dispatched for it), and parsing goes on.
 *
 * Threads: a parser belongs to one thread; callbacks run on that thread,
 * inside gos_sse_feed()/gos_sse_end(), and must not feed, end or destroy the
 * parser they are called from. No I/O. */
#ifndef GOS_SSE_H
#define GOS_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GOS_SSE_DEFAULT_MAX_DATA (16u << 20)   /* 16 MiB */

/* One dispatched event. Every pointer is NUL-terminated as a convenience,
 * but data, type and id may contain NUL bytes, so use the lengths. They stay
 * valid only during the callback. */
struct gos_sse_event {
	const char *type;     /* the event field, "message" when absent or empty */
	size_t type_len;
	const char *data;     /* data lines joined with '\n' */
	size_t data_len;
	const char *id;       /* the stream's last event ID (persists across events) */
	size_t id_len;
	bool has_id;          /* an id field was seen since the previous empty line */
};

/* Every callback may be NULL. */
struct gos_sse_callbacks {
	void (*on_event)(void *ctx, const struct gos_sse_event *ev);
	/* A retry field with a valid (ASCII digits only) value, in ms, saturated
	 * at UINT64_MAX; called for each such field, in stream order. */
	void (*on_retry)(void *ctx, uint64_t ms);
	/* An over-long event was skipped; message is one sentence. */
	void (*on_error)(void *ctx, const char *message);
	void *ctx;
	/* A field the standard ignores (any name but data, event, id and retry),
	 * with one leading space of its value stripped; both valid UTF-8 and
	 * NUL-terminated. The event stream goes on as the standard says: this
	 * only lets a client see lines such as llama.cpp's "error: {...}". */
	void (*on_field)(void *ctx, const char *name, size_t name_len, const char *value,
	                 size_t value_len);
};

/* Zero means default. */
struct gos_sse_opts {
	size_t max_data;      /* 0: GOS_SSE_DEFAULT_MAX_DATA */
};

/* Returns NULL when out of memory. opts may be NULL. */
struct gos_sse *gos_sse_create(const struct gos_sse_opts *opts,
                               const struct gos_sse_callbacks *cb);
void gos_sse_destroy(struct gos_sse *p);   /* accepts NULL */

/* Feeds the next len bytes of the stream (any split, len may be 0). Returns
 * false only when out of memory (the parser is then unusable). */
bool gos_sse_feed(struct gos_sse *p, const void *bytes, size_t len);

/* The stream ended (connection closed): an unfinished line or event is
 * discarded, and the parser is ready for a new stream (a BOM is allowed
 * again). The last event ID (as of the last dispatch) is kept, for the
 * Last-Event-ID header of a reconnection. */
void gos_sse_end(struct gos_sse *p);

/* The stream's last event ID as of the last dispatch ("" if none; never
 * contains NUL, since ids with NUL are ignored), its length in *len (len may
 * be NULL). Valid until the next feed/end. */
const char *gos_sse_last_event_id(const struct gos_sse *p, size_t *len);

/* Events skipped because they were over the cap, since creation. */
uint64_t gos_sse_errors(const struct gos_sse *p);

#endif
