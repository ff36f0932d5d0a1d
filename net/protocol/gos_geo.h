/* Geometry OS's own messages on the producer socket (docs/geometry-os.md):
 * the ProtocolMessage shapes its two sides send, read into gos events or
 * into what to answer, and the answers written in the peer's own shape.
 *
 *  - Rust (EvolutionClient): {"message_type":T,"payload":...,"timestamp":ms}
 *  - Python (compositor_bridge.py, the evolution protocol server):
 *    {"msg_type":T,"sequence":N,"payload":...}
 *
 * TokenVisualizationUpdate and Thought (payload type "token") become tokens,
 * NeuralStateUpdate the stream's neural_state, SyncRequest a sync barrier;
 * Heartbeat and requests gos does not serve are answered at once; every
 * other message is counted and otherwise left alone. Which shape a
 * connection speaks decides the shape of every reply on it.
 *
 * No I/O, no threads: every function here is reentrant, any thread. */
#ifndef GOS_GEO_H
#define GOS_GEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_protocol.h"

/* hilbert_position is normalized to [0,1] on Geometry OS's 256 x 256
 * (order 8) Hilbert grid; gos draws that grid at the pitch of its own
 * Hilbert layout, 24 world units a cell: a coordinate v lands at
 * v * GOS_GEO_WORLD world units. */
#define GOS_GEO_GRID   256
#define GOS_GEO_WORLD  (256.0 * 24.0)

/* The streams gos puts Geometry OS's tokens and states in. */
#define GOS_GEO_STREAM_RUST   "geometry-os"
#define GOS_GEO_STREAM_THOUGHT "sisyphus"

enum gos_geo_dialect {
	GOS_GEO_NONE = 0,   /* not a Geometry OS message */
	GOS_GEO_RUST,       /* message_type / payload / timestamp */
	GOS_GEO_PYTHON,     /* msg_type / sequence / payload */
};

/* What the caller does with a Geometry OS message. */
enum gos_geo_action {
	GOS_GEO_EVENT = 1,  /* *ev is a map event (token or neural_state): apply it */
	GOS_GEO_SYNC,       /* *ev is a sync barrier: answer with gos_geo_sync_reply() */
	GOS_GEO_ACK,        /* answer now with gos_geo_ack() (Heartbeat: "alive";
	                     * a request gos does not serve: "unsupported") */
	GOS_GEO_IGNORED,    /* not visualised, no answer expected: count it */
};

/* What was received, for gos_ingest_geo_messages_total{kind}. */
enum gos_geo_kind {
	GOS_GEO_K_TOKEN,      /* TokenVisualizationUpdate */
	GOS_GEO_K_THOUGHT,    /* Thought whose payload type is "token" */
	GOS_GEO_K_STATE,      /* NeuralStateUpdate with a payload */
	GOS_GEO_K_SYNC,       /* SyncRequest */
	GOS_GEO_K_HEARTBEAT,  /* Heartbeat */
	GOS_GEO_K_REQUEST,    /* Request... / ...Request gos does not serve */
	GOS_GEO_K_IGNORED,    /* everything else */
	GOS_GEO_K_COUNT_
};

/* Stable label of a kind ("token", "thought", ...). */
const char *gos_geo_kind_name(enum gos_geo_kind k);

/* One message as read. type is message_type / msg_type as sent, cut to
 * fit on a UTF-8 boundary. sequence: the Python side's (0 when absent). */
struct gos_geo_msg {
	enum gos_geo_dialect dialect;
	enum gos_geo_action action;
	enum gos_geo_kind kind;
	char type[64];
	uint64_t sequence;
};

/* What gos_geo_parse() keeps per connection: Thoughts carry no id, so
 * theirs are made from the connection and a count. Zero is a fresh one. */
struct gos_geo_conn {
	uint64_t conn;        /* the connection's number (the caller sets it) */
	uint64_t thoughts;    /* Thought tokens so far */
};

/* Reads one message (a line or a frame's JSON object; need not be
 * NUL-terminated). Not a Geometry OS message (no top-level "message_type"
 * or "msg_type" string, not a JSON object at all): returns true with
 * msg->dialect GOS_GEO_NONE, nothing else touched. A Geometry OS message
 * gos cannot take (a token without its text, a number out of range, ...):
 * false, with the reason and a sentence naming the field in err and
 * msg->dialect/type set (the reply's shape). Otherwise true, with msg
 * filled and, for GOS_GEO_EVENT and GOS_GEO_SYNC, *ev (strings in arena;
 * ev->raw NULL). */
bool gos_geo_parse(const char *p, size_t n, struct gos_geo_conn *gc, struct gos_event *ev,
                   struct gos_arena *arena, struct gos_geo_msg *msg, struct gos_parse_error *err);

/* Replies, malloc'd JSON objects without a newline (the caller frees);
 * now_ms is the wall clock in milliseconds (the Rust shape's timestamp).
 * The Python shape echoes the request's sequence.
 *   sync:  {"message_type":"SyncResponse","payload":{"applied":N,"rejected":M,
 *          "tokens":T,"ignored":K},"timestamp":ms}  /  {"msg_type":"SyncResponse",
 *          "sequence":S,"payload":{...}}
 *   ack:   ...,"payload":{"status":STATUS,"of":TYPE}  (type "Ack")
 *   error: ...,"payload":{"error":SENTENCE,"code":REASON,"line":N}  (type "Error") */
char *gos_geo_sync_reply(enum gos_geo_dialect d, uint64_t sequence, uint64_t applied,
                         uint64_t rejected, uint64_t tokens, uint64_t ignored, uint64_t now_ms);
char *gos_geo_ack(enum gos_geo_dialect d, uint64_t sequence, const char *of_type,
                  const char *status, uint64_t now_ms);
char *gos_geo_error(enum gos_geo_dialect d, uint64_t sequence, uint64_t line_no,
                    const struct gos_parse_error *err, uint64_t now_ms);

#endif
