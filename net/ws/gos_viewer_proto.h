/* gos_viewer: the remote-viewer protocol gos.v1 (docs/protocol.md), written
 * and read in this one place.
 *
 * Server to viewer: every message is appended to a gos_buf as the bytes of
 * one text frame. hello, resync and pong take one call each. snapshot,
 * token_visualization and neural_state carry lists and are written in parts
 * through a struct gos_viewer_writer: a *_begin call, one put per token or
 * stream, then gos_viewer_end. Tokens and streams come in as plain structs
 * that the caller fills from whatever it holds (the broadcaster: the map's
 * view; pointers are only read during the call), so nothing here knows the
 * map or the server.
 *
 * Viewer to server: gos_viewer_parse reads one text message (viewport,
 * ping, seek, play, pause, live, search) into a plain struct; anything else
 * is GOS_VIEWER_IN_IGNORED.
 *
 * Threads: any thread; nothing is shared (a writer and its buffer belong to
 * one thread at a time). */
#ifndef GOS_VIEWER_PROTO_H
#define GOS_VIEWER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_buf.h"
#include "gos_event.h"

#define GOS_VIEWER_PROTOCOL         "gos.v1"  /* the WebSocket subprotocol (GOS_WS_PROTOCOL) */
#define GOS_VIEWER_PROTOCOL_VERSION 1

/* One token of a snapshot or token_visualization. */
struct gos_viewer_token {
	const char *id;              /* the producer's token_id */
	bool removed;                /* evicted: only id is written, with "removed":true */
	const char *text;            /* NULL: "" */
	float x, y;                  /* the centre of its box, world units */
	float w;                     /* the box's width, world units */
	float confidence;            /* 0..1; NAN: unknown (null) */
	const char *stream;          /* its stream's name, "" the default; NULL: "" */
	double timestamp;            /* the producer's, seconds */
	float logprob;               /* NAN: none sent (the field is left out) */
	uint32_t n_alts;             /* top_logprobs alternatives; 0: "alts" left out */
	const struct gos_alt *alts;  /* an alt's token NULL: "" */
	/* issue 13 (docs/protocol.md, "Token fields"); written for live tokens */
	uint32_t index;              /* its place in its stream */
	uint32_t rank;               /* among its top_logprobs: 0 unknown (left out),
	                              * UINT32_MAX beyond (written -1) */
	float gap_ms, entropy, agree;  /* NAN: unknown (left out); zero is a value */
	bool diverges;               /* "diverges":true, else left out */
};

/* One stream of a snapshot or neural_state. */
struct gos_viewer_stream {
	const char *name;            /* "" the default stream; NULL: "" */
	const char *state;           /* the latest neural_state's, "" none yet; NULL: "" */
	int64_t tokens_processed;
	int64_t total_tokens;        /* -1: not sent */
	double elapsed_ms;           /* NAN: not sent (null) */
	uint64_t tokens;             /* tokens of this stream applied, ever */
	/* the generation's analytics; sent only when stats is not NULL */
	double ttft_ms;              /* NAN: unknown */
	const char *finish_reason, *message, *model;  /* "" or NULL: none */
	const struct gos_stream_stats *stats;
	/* divergence (always written): the group's first stream, by name for
	 * gos.v1 (NULL: its own name) and by index for gos.v2 */
	const char *group;
	uint32_t group_index;
	int64_t diverge_at;          /* first index where it differs from its group; -1 none */
};

/* The numbers viewers show for a stream, derived from s->stats (NAN where
 * there is nothing to say): tokens_per_s, mean_confidence, min_confidence,
 * perplexity, mean_entropy, in that order. */
void gos_viewer_stream_derived(const struct gos_viewer_stream *s, double out[5]);

/* A list-carrying message being written. Caller-owned; a *_begin call
 * (re)initializes it, so it needs no setup and holds no memory. The fields
 * are the writer's own. */
struct gos_viewer_writer {
	struct gos_buf *out;
	int kind;                    /* which message */
	int list;                    /* which of its lists is open */
	uint64_t n;                  /* entries in the open list */
	uint64_t tokens;             /* tokens put */
	uint64_t announced;          /* token_visualization: its "n" */
	const char *mode;            /* snapshot: "mode" written by gos_viewer_end, NULL none */
	double time;                 /* snapshot with a mode: "time"; NAN: none (null) */
	bool has_time;               /* write "time" at all */
};

/* {"type":"hello",...}: protocol, protocol_version, this server's version. */
void gos_viewer_hello(struct gos_buf *out);
/* {"type":"resync"}: the backlog was dropped, a snapshot follows. */
void gos_viewer_resync(struct gos_buf *out);
/* {"type":"pong","t":T}: the answer to a ping, echoing its t. */
void gos_viewer_pong(struct gos_buf *out, double t);

/* snapshot at seq: put every token, then every stream; gos_viewer_end
 * writes live_tokens, the number of tokens put. */
void gos_viewer_snapshot_begin(struct gos_viewer_writer *w, struct gos_buf *out, uint64_t seq);
/* The same snapshot with "mode" (and "time" when has_time; NAN writes null)
 * after live_tokens: the time-travel snapshots (seek, play, live). */
void gos_viewer_snapshot_begin_mode(struct gos_viewer_writer *w, struct gos_buf *out,
                                    uint64_t seq, const char *mode, bool has_time, double time);
/* token_visualization from since to seq: put exactly n tokens (changed or
 * removed); live_tokens: tokens on the map at seq. */
void gos_viewer_token_visualization_begin(struct gos_viewer_writer *w, struct gos_buf *out,
                                          uint64_t since, uint64_t seq, uint64_t live_tokens,
                                          uint64_t n);
/* neural_state from since to seq: put the streams that changed. */
void gos_viewer_neural_state_begin(struct gos_viewer_writer *w, struct gos_buf *out,
                                   uint64_t since, uint64_t seq);

/* {"type":"error","code":CODE,"message":MSG}. */
void gos_viewer_error(struct gos_buf *out, const char *code, const char *message);
/* {"type":"error","code":"seek_range","first":A,"last":B,"message":MSG}. */
void gos_viewer_error_range(struct gos_buf *out, uint64_t first, uint64_t last,
                            const char *message);
/* {"type":"paused","seq":S}. */
void gos_viewer_paused(struct gos_buf *out, uint64_t seq);
/* {"type":"timeline","first_seq":A,"last_seq":B,"first_time":T0,"last_time":T1,
 * "points":[[t,seq],...]}: n points, t[i] and seq[i]. */
void gos_viewer_timeline(struct gos_buf *out, uint64_t first_seq, uint64_t last_seq,
                         double first_time, double last_time, const double *t,
                         const uint64_t *seq, size_t n);

/* One match of a search_result. */
struct gos_viewer_match {
	const char *stream;          /* its stream's name; NULL: "" */
	uint32_t n_ids;
	const char *const *ids;      /* the tokens it covers, in stream order */
	float x, y;                  /* the first token's position */
};

/* {"type":"search_result","q":Q,"count":C,"matches":[{"stream","ids":[..],
 * "x","y"}],"truncated":T}: n matches of the count C; truncated when C > n. */
void gos_viewer_search_result(struct gos_buf *out, const char *q, uint64_t count,
                              const struct gos_viewer_match *m, size_t n);

/* Put one token or stream into the open message. A put the message does not
 * carry (a token in neural_state, a token after a snapshot's streams) is a
 * programming error and aborts. */
void gos_viewer_put_token(struct gos_viewer_writer *w, const struct gos_viewer_token *t);
void gos_viewer_put_stream(struct gos_viewer_writer *w, const struct gos_viewer_stream *s);
/* Closes the message; returns the number of tokens put. A
 * token_visualization with other than its n tokens aborts. */
uint64_t gos_viewer_end(struct gos_viewer_writer *w);

enum gos_viewer_in_type {
	GOS_VIEWER_IN_IGNORED = 0,   /* not JSON, no string "type", or a type gos.v1 lacks */
	GOS_VIEWER_IN_VIEWPORT,
	GOS_VIEWER_IN_PING,
	GOS_VIEWER_IN_SEEK,          /* seek_seq or seek_time (has_time) */
	GOS_VIEWER_IN_PLAY,          /* seek_seq, speed */
	GOS_VIEWER_IN_PAUSE,
	GOS_VIEWER_IN_LIVE,
	GOS_VIEWER_IN_BAD,           /* a seek, play or search with bad fields: bad says why */
	GOS_VIEWER_IN_SEARCH,        /* search */
};

/* search's limits (docs/protocol.md, "search_result"). */
#define GOS_VIEWER_SEARCH_Q_MAX         256    /* bytes of "q" (UTF-8) */
#define GOS_VIEWER_SEARCH_LIMIT         100    /* "limit" when absent */
#define GOS_VIEWER_SEARCH_LIMIT_MAX     10000
#define GOS_VIEWER_SEARCH_STREAMS_MAX   256    /* names in "streams" */
#define GOS_VIEWER_SEARCH_STREAMS_BYTES 16384  /* their bytes, NULs included */

/* A search, read: a plain copy (no pointers), so that it can be queued. */
struct gos_viewer_search {
	char q[GOS_VIEWER_SEARCH_Q_MAX + 1];  /* 1..256 bytes of valid UTF-8, NUL-terminated */
	uint32_t limit;                       /* 1..LIMIT_MAX */
	double min_p, max_p;                  /* 0..1, min_p <= max_p; NAN: not given */
	bool has_streams;                     /* only the streams named (none: no match) */
	uint32_t n_streams;
	char streams[GOS_VIEWER_SEARCH_STREAMS_BYTES];  /* n_streams NUL-terminated names,
	                                                 * back to back */
};

#define GOS_VIEWER_SPEED_MIN 0.0625
#define GOS_VIEWER_SPEED_MAX 64.0

/* The viewer's visible world rectangle. */
struct gos_viewer_viewport {
	double x, y, w, h, zoom;
};

/* Bits of gos_viewer_in.viewport_has. */
#define GOS_VIEWER_VP_X    (1u << 0)
#define GOS_VIEWER_VP_Y    (1u << 1)
#define GOS_VIEWER_VP_W    (1u << 2)
#define GOS_VIEWER_VP_H    (1u << 3)
#define GOS_VIEWER_VP_ZOOM (1u << 4)

/* One viewer message, read. */
struct gos_viewer_in {
	enum gos_viewer_in_type type;
	struct gos_viewer_viewport viewport;  /* VIEWPORT: the fields in viewport_has */
	unsigned viewport_has;                /* GOS_VIEWER_VP_*: the fields sent as finite numbers */
	double ping_t;                        /* PING: its t; 0 when absent or not a finite number */
	uint64_t seek_seq;                    /* SEEK (unless has_time), PLAY */
	double seek_time;                     /* SEEK with has_time: CLOCK_REALTIME s */
	bool has_time;
	double speed;                         /* PLAY: [SPEED_MIN, SPEED_MAX], default 1 */
	struct gos_viewer_search search;      /* SEARCH */
	char bad[120];                        /* BAD: one sentence */
};

/* Reads len bytes (one text message; need not be NUL-terminated) into
 * *out and returns out->type. */
enum gos_viewer_in_type gos_viewer_parse(const char *msg, size_t len, struct gos_viewer_in *out);

/* Copies the fields a viewport message sent into *vp (the others stay). */
void gos_viewer_viewport_update(struct gos_viewer_viewport *vp, const struct gos_viewer_in *in);

#endif
