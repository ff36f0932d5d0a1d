/* Framing of one producer stream, apart from any socket: bytes go in, in any
 * split; complete lines or frames and framing errors come out through
 * callbacks, in stream order, the same whatever the split points. Used by
 * the Unix-socket ingest (one per connection) and its fuzz target.
 *
 * With GOS_FRAMING_AUTO (the default) the stream's first bytes choose:
 *  - JSON lines when none of the first four bytes is NUL (JSON text never
 *    holds one) and the first is '{', a space, tab, CR or LF, or they start
 *    with a UTF-8 byte order mark (skipped). A line ends at '\n'; one '\r'
 *    before it is dropped. A line over max_line bytes is reported
 *    (GOS_REJECT_LINE_TOO_LONG, not fatal) and skipped up to its '\n': the
 *    stream goes on after it.
 *  - length-prefixed frames otherwise: a u32 length, little-endian (as
 *    Geometry OS's Rust EvolutionClient writes it) or big-endian (its Python
 *    producers), then that many bytes. The byte order is resolved from the
 *    bytes that follow: a frame starts with a JSON object ('{' right after
 *    the length) and ends where its length says, at most
 *    GOS_FRAME_TRAILER_MAX bytes after the object's closing brace. A length
 *    that reads within max_line both ways (00 xx yy 00) is resolved by
 *    reading up to the smaller one: if the object closes by then, the
 *    length it fits is the one (the two readings differ by 65280 or more, so
 *    at most one fits); if not, the larger. Never more than the true frame
 *    is waited for. Until a frame's two readings differ, the order stays
 *    open (a zero-length frame reads 0 both ways).
 *    A first frame that fits neither order (a length over max_line both
 *    ways, a payload not starting with '{', an object that ends where
 *    neither length does) is a fatal error at once.
 * GOS_FRAMING_LINES, _LE and _BE take the stream as that framing with no
 * guessing (lines: a leading byte order mark is still skipped).
 *
 * Inside a frame, bytes after the JSON object (Geometry OS's Python side
 * sends a 16-byte binary glyph command there) are not delivered: on_line
 * gets the object alone. A payload that is not an object (or never closes)
 * is delivered whole, for the parser to reject. A frame length over
 * max_line is a fatal error (after a bad length the framing cannot be
 * trusted): every later byte is ignored, and the owner is expected to
 * answer and close.
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
#define GOS_FRAME_TRAILER_MAX 4096  /* bytes after a first frame's JSON object, at most */

enum gos_framing {
	GOS_FRAMING_AUTO = 0,  /* chosen by the first bytes (above) */
	GOS_FRAMING_LINES,     /* JSON lines */
	GOS_FRAMING_LE,        /* u32 little-endian length, then the payload */
	GOS_FRAMING_BE,        /* u32 big-endian length, then the payload */
};

/* "auto", "lines", "le", "be"; gos_framing_parse() reads them back (false:
 * none of them). */
const char *gos_framing_name(enum gos_framing f);
bool gos_framing_parse(const char *s, enum gos_framing *out);

/* Zero means default. */
struct gos_frame_opts {
	size_t max_line;  /* longest line or frame payload delivered (0: GOS_MAX_LINE) */
	enum gos_framing framing;  /* 0: auto */
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

/* What the stream turned out to be: GOS_FRAMING_LINES, _LE or _BE once
 * known (the framing replies go back in), GOS_FRAMING_AUTO while it is not
 * (nothing yet, or frames whose byte order is still open). */
enum gos_framing gos_frame_framing(const struct gos_frame *f);

/* True while the stream is (or may be) length-prefixed frames: the owner's
 * frame deadline applies. False for JSON lines. */
bool gos_frame_is_framed(const struct gos_frame *f);

/* True between lines or frames (nothing of the next one received yet), and
 * after a fatal error; false inside one, or inside the first four bytes. */
bool gos_frame_idle(const struct gos_frame *f);

/* Where the stream stands, for a message (under 64 bytes): "inside a line:
 * got 12 bytes, no newline yet", "inside a frame: got 0 of 1048576 bytes",
 * "inside a frame: got 3 of 256 or 65536 bytes" (byte order still open). */
void gos_frame_where(const struct gos_frame *f, char *buf, size_t len);

#endif
