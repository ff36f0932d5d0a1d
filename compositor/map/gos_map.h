/* gos map state: every token on the infinite map, every stream with its latest
 * neural_state, and a change log that lets readers (renderer, broadcaster)
 * copy out only what changed since the sequence number they last saw.
 *
 * Threads: one writer (the core thread) calls gos_map_apply(); any number of
 * readers on other threads call gos_map_read_since()/gos_map_read_all(). Both
 * hold one internal mutex only for bounded work. */
#ifndef GOS_MAP_H
#define GOS_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gos_arena.h"
#include "gos_event.h"

enum gos_layout_kind {
	GOS_LAYOUT_FLOW = 0,   /* per stream, tokens flow like lines of text, in pages */
	GOS_LAYOUT_HILBERT,    /* hash of the token text on a Hilbert curve */
};

/* Zero means default for every field. */
struct gos_map_opts {
	uint64_t max_tokens;      /* 0: 10,000,000; past it the oldest are evicted */
	uint32_t log_capacity;    /* change-log entries; 0: 1 << 20 */
	enum gos_layout_kind layout;
};

/* Flow layout geometry, in world units (1 unit = 1 pixel at zoom 1). A
 * stream's tokens flow like a paragraph COLUMN_W wide; when its page
 * (PAGE_H tall) is full it goes on in a new page. Pages are handed out on a
 * grid (pitch COLUMN_W + COLUMN_GAP by PAGE_H + COLUMN_GAP) that grows by a
 * column or a row, whichever keeps the grid nearer GOS_FLOW_ASPECT (width
 * / height), so the whole map stays near a screen's shape as streams are
 * added and grow. A placed token never moves. */
#define GOS_FLOW_CHAR_W      9.0f
#define GOS_FLOW_LINE_H      22.0f
#define GOS_FLOW_COLUMN_W    720.0f
#define GOS_FLOW_COLUMN_GAP  180.0f
#define GOS_FLOW_PAGE_H      1320.0f   /* 60 lines */
#define GOS_FLOW_ASPECT      (16.0 / 9.0)
#define GOS_HILBERT_CELL     24.0f
#define GOS_HILBERT_ORDER    12      /* 4096 x 4096 cells */

/* A token as readers see it: a plain copy. Strings and alts point into the
 * view's arena and stay valid until the next read into the same view. */
struct gos_token {
	uint32_t slot;         /* stable index while the token lives (GPU index) */
	uint32_t stream;       /* index into the map's streams */
	float x, y;            /* world position (laid out, if the event had none) */
	float w;               /* laid-out width in world units (text length) */
	float confidence;      /* NAN: unknown */
	float logprob;         /* NAN: unknown */
	double timestamp;      /* the producer's timestamp (seconds) */
	double arrived;        /* CLOCK_MONOTONIC seconds when first applied */
	uint64_t seq;          /* seq of its last change */
	bool removed;          /* evicted: only id, slot and seq are meaningful */
	bool diverges;         /* the first index where its stream differs from its group */
	uint32_t index;        /* its place in its stream: 0 for the stream's first token */
	uint32_t rank;         /* among its top_logprobs (gos_token_rank): 0 unknown */
	float gap_ms;          /* producer time since the stream's previous token (NAN: unknown) */
	float entropy;         /* nats of its top_logprobs, renormalised (NAN: none) */
	float agree;           /* share of its group's streams with the same text at its
	                        * index, itself included (NAN: no other stream there yet) */
	const char *id;
	const char *text;
	uint32_t n_alts;
	const struct gos_alt *alts;
};

struct gos_stream {
	uint32_t index;
	const char *name;      /* "" for the default stream */
	const char *state;     /* latest neural_state's state, "" if none yet */
	int64_t tokens_processed;
	int64_t total_tokens;
	double elapsed_ms;
	uint64_t n_tokens;     /* tokens of this stream applied (ever) */
	int64_t newest_slot;   /* slot of its newest token, -1 if none alive */
	uint64_t seq;          /* seq of its last change */
	double ttft_ms;        /* from neural_state, the last one that sent it (NAN: none) */
	const char *finish_reason, *message, *model;  /* likewise ("": none) */
	struct gos_stream_stats stats;
	uint32_t group;        /* index of the first stream of its group (itself: alone
	                        * or first); see GOS_GROUP_* */
	int64_t diverge_at;    /* first index where it differs from another stream of its
	                        * group, -1 none (yet) */
};

/* Streams of one prompt (gos-bridge --parallel N names them LABEL:RUN:1 ..
 * LABEL:RUN:N) form a group: streams whose names are equal up to a last
 * ":DIGITS". The divergence view aligns a group's streams by token index. A
 * group compares at most GOS_GROUP_MAX streams (later ones stay alone). */
#define GOS_GROUP_MAX 64

/* gos_token.rank when the chosen text is not among its top_logprobs (GLTR's
 * "beyond"). */
#define GOS_RANK_BEYOND UINT32_MAX

/* A caller-owned buffer that reads fill. Zero-initialize; reuse it across
 * reads (no allocation once it has grown); gos_map_view_finish() frees it. */
struct gos_map_view {
	uint64_t seq;          /* map seq at the read: pass as `since` next time */
	bool more;             /* the read stopped at `max`: call again */
	uint32_t next_slot;    /* read_all: the slot to continue from */
	size_t n_tokens, cap_tokens;
	struct gos_token *tokens;
	size_t n_streams, cap_streams;
	struct gos_stream *streams;
	uint64_t live_tokens;  /* tokens on the map at the read */
	struct gos_arena arena;
};

struct gos_map_stats {
	uint64_t seq;
	uint64_t live_tokens;
	uint64_t streams;
	uint64_t evicted;          /* tokens evicted past max_tokens, ever */
	uint64_t applied[GOS_EV_COUNT_];  /* events applied, by enum gos_event_type */
	uint64_t tokens_added;     /* new tokens (not updates) */
	uint64_t tokens_updated;   /* same token_id again */
};

struct gos_map *gos_map_create(const struct gos_map_opts *opts);
void gos_map_destroy(struct gos_map *map);  /* accepts NULL */

/* Writer thread only. Applies n events in order (GOS_EV_SYNC entries are
 * ignored here). Never fails: allocation failure aborts (programming limit). */
void gos_map_apply(struct gos_map *map, const struct gos_event *ev, size_t n);

/* Writer thread only. As gos_map_apply; seq_end[i] receives the map seq
 * once ev[i] is applied (the changes of ev[i] are the seqs after
 * seq_end[i-1] up to seq_end[i]). */
void gos_map_apply_seq(struct gos_map *map, const struct gos_event *ev, size_t n,
                       uint64_t *seq_end);

/* Writer thread only. Moves the seq forward to `seq` (no-op if it is there
 * already) without a change: a restored session continues past every seq a
 * reader may have seen before the restart. Readers skip the gap. */
void gos_map_advance_seq(struct gos_map *map, uint64_t seq);

/* Writer thread only. The map becomes `from` (a map built from an image
 * that no other thread sees: a replica catching up from a checkpoint), and
 * `from` is destroyed. Readers see one change: their next read_since
 * answers false (read everything again). */
void gos_map_adopt(struct gos_map *map, struct gos_map *from);

/* Any thread. Copies every token and stream changed after `since` (each once,
 * as it is now; evicted tokens with removed = true), at most `max` tokens
 * (0: no bound) in change order. Returns false, copying nothing, when `since`
 * is older than the change log holds: the reader must take a full copy with
 * gos_map_read_all() and then continue from that view's seq. */
bool gos_map_read_since(struct gos_map *map, uint64_t since, size_t max,
                        struct gos_map_view *out);

/* Any thread. A full copy, in pages: live tokens from slot `start_slot` on, at
 * most `max` (0: all), plus every stream. Start with 0; while out->more,
 * continue from out->next_slot. Afterwards read_since(first page's seq)
 * brings the pages up to date. */
void gos_map_read_all(struct gos_map *map, uint32_t start_slot, size_t max,
                      struct gos_map_view *out);

/* Any thread. The tokens at the given slots as they are now (empty slots
 * skipped; a slot may hold another token than the caller thinks), under
 * one lock; no streams. out->seq: the map's seq at the read. */
void gos_map_read_slots(struct gos_map *map, const uint32_t *slots, size_t n,
                        struct gos_map_view *out);

/* Where a live token is (gos_map_read_places). */
struct gos_place {
	uint32_t slot, stream;
	uint32_t index;        /* in its stream */
	float x, y, confidence;
	double arrived;        /* CLOCK_MONOTONIC seconds when first applied */
};

/* Any thread. The places of live tokens from slot start on, at most max,
 * under one lock (no strings copied: cheap). Returns how many were written;
 * *next: the slot to continue from (>= the map's used slots: done). */
size_t gos_map_read_places(struct gos_map *map, uint32_t start, struct gos_place *out, size_t max,
                           uint32_t *next);

/* Any thread. Every stream as it is now (no tokens); out->seq: the map's
 * seq at the read. */
void gos_map_read_streams(struct gos_map *map, struct gos_map_view *out);

/* Any thread. Counters, cheap (one lock). */
void gos_map_stats(struct gos_map *map, struct gos_map_stats *out);

/* Any thread. The map's seq now (as gos_map_stats().seq). */
uint64_t gos_map_seq(struct gos_map *map);

void gos_map_view_finish(struct gos_map_view *view);  /* accepts NULL */

/* ---- checkpoint images (map_image.c; the format is described there) ---- */

/* Any thread (the journal's). Takes the map lock, fork()s, and releases the
 * lock in the parent: the child's copy of the map is frozen at one seq,
 * between two apply chunks (*seq, when not NULL, is that seq, in both
 * processes). The lock is held for the fork() call itself
 * (the kernel copying page tables: a few ms for 1M tokens). Returns the
 * child's pid to the parent (which must waitpid it), 0 in the child, -1
 * (errno set) when fork fails. The child may only call
 * gos_map_image_write() and then _exit(): the other threads' locks (malloc's
 * included) may be held forever in it. */
pid_t gos_map_fork(struct gos_map *map, uint64_t *seq);

/* Writes an image of the whole map to fd with write(2) alone: no malloc, no
 * stdio, no lock, so it is safe in gos_map_fork's child. Its one buffer is
 * static: one call at a time per process, on a map no thread is changing
 * (the forked child's copy, or one no other thread uses). The image is
 * deterministic: equal map states give equal bytes (arrival times are not
 * in it). false: a write failed (errno set); the file is then incomplete.
 * Syncing and naming the file is the caller's business. */
bool gos_map_image_write(struct gos_map *map, int fd);

/* Any thread; may allocate. Builds a new map from the image read from fd,
 * to its end. The map continues exactly as the imaged one would have: same
 * slots, layout cursors, eviction order, seq and stats. Its change log starts
 * empty: read_since with an older `since` returns false (take read_all).
 * Tokens' `arrived` is the load time. opts (NULL: all zero): max_tokens 0
 * takes the image's (eviction continues oldest-first only with the image's
 * value or, when the image never evicted, any value); smaller than the
 * image's token count is refused; log_capacity as in gos_map_create; layout
 * is ignored (the image's). Returns NULL on an unreadable, corrupt or
 * truncated image or a refused max_tokens, with one sentence in err (errlen
 * bytes, may be 0). */
struct gos_map *gos_map_image_read(int fd, const struct gos_map_opts *opts, char *err,
                                   size_t errlen);

/* The rank of a chosen token's text among its top_logprobs: 1 for the
 * model's first choice (by logprob, ties in the order given), 0 when there
 * are none, GOS_RANK_BEYOND when the text is not among them. */
uint32_t gos_token_rank(const char *text, const struct gos_alt *alts, uint32_t n_alts);

/* The entropy (nats) of top_logprobs, renormalised to sum to 1; NAN for none. */
double gos_alts_entropy(uint32_t n_alts, const struct gos_alt *alts);

/* Layout math, exposed for tests and the renderer. */
void gos_hilbert_d2xy(uint32_t order, uint64_t d, uint32_t *x, uint32_t *y);
uint32_t gos_hash32(const char *s, size_t len);  /* FNV-1a */

#endif
