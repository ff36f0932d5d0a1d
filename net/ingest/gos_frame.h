/* Framing of one producer stream, apart from any socket: bytes go in, in any
 * split; complete lines or frames and framing errors come out through
 * callbacks, in stream order, the same whatever the split points. Used by
 * the Unix-socket ingest (one per connection) and its fuzz target.
 *
 * The stream's first four bytes choose the framing:
 *  - JSON lines when none of them is NUL (JSON text never holds one) and the
 *    first is '{', a space, tab, CR or LF, or they start with a UTF-8 byte
 *    order mark (skipped). A line ends at '\n'; one '\r' before it is
 *    dropped. A line over max_line bytes is reported (GOS_REJECT_LINE_TOO_LONG,
 *    not fatal) and skipped up to its '\n': the stream goes on after it.
 *  - length-prefixed frames otherwise: a u32 little-endian length, then that
 *    many bytes. A length over max_line is a fatal error (after a bad length
 *    the framing cannot be trusted): every later byte is ignored, and the
 *    owner is expected to answer and close.
 * A stream that ends inside a frame, or inside its first four bytes when
 * they cannot be JSON, gets a GOS_REJECT_NOT_JSON error; an unterminated last
 * line is delivered as a line.
 *
 * Memory: an incomplete line or frame is kept in the object itself up to
 * GOS_FRAME_INLINE bytes, beyond that in a buffer of its own (malloc'd up to
 * 64 KiB, mmap'd above so that it goes back to the system when freed), freed
 * as soon as the line or frame is complete. gos_frame_held() says how many
 * bytes that buffer holds; the owner may cap it per call of gos_frame_feed().
 *
 * Not thread-safe: one thread owns a gos_frame. */
#ifndef GOS_FRAME_H
#define GOS_FRAME_H

#include <stdbool.h>
#include <stddef.h>

#include "gos_protocol.h"

#define GOS_FRAME_INLINE 4096  /* bytes of an incomplete unit kept inline */

/* Zero means default. */
struct gos_frame_opts {
	size_t max_line;  /* longest line or frame payload delivered (0: GOS_MAX_LINE) */
};

struct gos_frame_callbacks {
	/* A complete line (without its "\n" or "\r\n") or a frame's payload.
	 * p is valid only during the call. Return false to pause: the feed
	 * returns right after this line, and the caller feeds the rest later. */
	bool (*on_line)(void *ctx, const char *p, size_t n);
	/* A framing error: reason and one sentence in e. After a fatal one the
	 * framing is lost and every later byte is ignored. */
	void (*on_error)(void *ctx, const struct gos_parse_error *e, bool fatal);
	void *ctx;
};

/* Copies opts and cb. Never fails (out of memory aborts). */
struct gos_frame *gos_frame_create(const struct gos_frame_opts *opts,
                                   const struct gos_frame_callbacks *cb);
void gos_frame_destroy(struct gos_frame *f);  /* accepts NULL */

/* Takes the next bytes of the stream and returns how many it consumed:
 * all n, unless on_line asked to pause, or keeping the rest of an
 * incomplete line or frame would make gos_frame_held() exceed max_held
 * (SIZE_MAX: no cap). Either way the caller feeds the unconsumed rest again
 * later. A line or frame already started may grow past max_held while it
 * completes inside p: the cap is on what stays held when the call returns,
 * which is at most max(max_held, what was held before). */
size_t gos_frame_feed(struct gos_frame *f, const char *p, size_t n, size_t max_held);

/* The stream ended: delivers an unterminated last line or reports a
 * truncated frame, then starts over as a new stream (framing undecided). */
void gos_frame_end(struct gos_frame *f);

/* Bytes of memory held outside the object for the incomplete line or frame
 * (0 while it fits inline). Never more than gos_frame_max_held(). */
size_t gos_frame_held(const struct gos_frame *f);
/* The most a gos_frame made with opts (NULL: defaults) ever holds. */
size_t gos_frame_max_held(const struct gos_frame_opts *opts);

/* True between lines or frames (nothing of the next one received yet), and
 * after a fatal error; false inside one, or inside the first four bytes. */
bool gos_frame_idle(const struct gos_frame *f);

/* Where the stream stands, for a message (under 64 bytes): "inside a line:
 * got 12 bytes, no newline yet", "inside a frame: got 0 of 1048576 bytes". */
void gos_frame_where(const struct gos_frame *f, char *buf, size_t len);

#endif
