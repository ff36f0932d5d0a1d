/* Framing state machine of one producer stream (see gos_frame.h). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gos_frame.h"

#define HEAP_MIN  8192u           /* smallest malloc'd buffer */
#define MAP_MIN   (64u * 1024u)   /* buffers above this are mmap'd, in steps of it */

enum mode {
	M_DETECT,    /* first bytes, framing undecided: they are in head[] */
	M_LINE,      /* JSON lines: buf holds the line so far */
	M_SKIP,      /* JSON lines: skipping an over-long line to its '\n' */
	M_HEADER,    /* frames: head[] holds the length so far */
	M_FIRST,     /* frames, byte order open: buf holds the payload so far,
	              * cand[] the lengths it may have */
	M_PAYLOAD,   /* frames: buf holds the payload so far */
	M_FAILED,    /* frames: a bad length; every later byte is ignored */
};

enum store { S_INLINE, S_HEAP, S_MAP };

enum order { O_OPEN, O_LE, O_BE };

/* Where a JSON object ends, byte by byte: brackets outside strings. It
 * finds the object's extent, not whether it is valid JSON (the parser says
 * that). */
struct jscan {
	uint32_t depth;
	bool in_str, esc;
};

struct gos_frame {
	struct gos_frame_callbacks cb;
	size_t max_line;
	enum gos_framing framing;       /* as asked for */
	enum order order;               /* frames: the byte order, once known */
	enum mode mode;
	unsigned char head[4];
	size_t head_len;
	size_t replay_off, replay_len;  /* detected as lines: head[] bytes not yet fed */
	bool any_unit;                  /* a line or frame was seen (for messages) */
	uint32_t flen;
	uint32_t cand[2];               /* M_FIRST: the lengths still possible, ascending */
	enum order cand_order[2];       /* which reading gave each (O_OPEN: both) */
	int n_cand;
	struct jscan scan;              /* M_FIRST: over buf */
	size_t obj_end;                 /* M_FIRST: the object's end in buf (0: not yet) */
	bool paused;
	char *buf;
	size_t len, cap;
	enum store store;
	char inl[GOS_FRAME_INLINE];
};

/* ---- the buffer ---------------------------------------------------------- */

/* The capacity a buffer for n bytes gets, and where it lives. Every buffer
 * has exactly this capacity between calls, so held memory is a function of
 * the bytes kept. */
static size_t class_cap(size_t n, enum store *where)
{
	if (n <= GOS_FRAME_INLINE) {
		*where = S_INLINE;
		return GOS_FRAME_INLINE;
	}
	if (n <= MAP_MIN) {
		size_t c = HEAP_MIN;
		while (c < n)
			c *= 2;
		*where = S_HEAP;
		return c;
	}
	*where = S_MAP;
	return (n + MAP_MIN - 1) / MAP_MIN * MAP_MIN;
}

static size_t held_for(size_t n)
{
	enum store s;
	size_t c = class_cap(n, &s);
	return s == S_INLINE ? 0 : c;
}

/* The most bytes that may be kept while holding at most max_held. */
static size_t keep_limit(size_t max_held)
{
	if (max_held >= MAP_MIN)
		return max_held / MAP_MIN * MAP_MIN;
	if (max_held >= HEAP_MIN) {
		size_t c = HEAP_MIN;
		while (c * 2 <= max_held)
			c *= 2;
		return c;
	}
	return GOS_FRAME_INLINE;
}

static void release(char *buf, size_t cap, enum store s)
{
	if (s == S_HEAP)
		free(buf);
	else if (s == S_MAP)
		munmap(buf, cap);
}

/* Moves the kept bytes into a buffer of capacity class_cap(need). */
static void resize(struct gos_frame *f, size_t need)
{
	enum store s;
	size_t cap = class_cap(need, &s);
	if (cap == f->cap && s == f->store)
		return;
	char *nb;
	if (s == S_MAP && f->store == S_MAP) {
		/* The kernel moves or trims the pages; nothing is copied. */
		nb = mremap(f->buf, f->cap, cap, MREMAP_MAYMOVE);
		if (nb == MAP_FAILED)
			abort();
		f->buf = nb;
		f->cap = cap;
		return;
	}
	if (s == S_HEAP && f->store == S_HEAP) {
		nb = realloc(f->buf, cap);
		if (!nb)
			abort();
		f->buf = nb;
		f->cap = cap;
		return;
	}
	if (s == S_INLINE) {
		nb = f->inl;
	} else if (s == S_HEAP) {
		nb = malloc(cap);
		if (!nb)
			abort();
	} else {
		nb = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (nb == MAP_FAILED)
			abort();
	}
	if (f->len)
		memcpy(nb, f->buf, f->len);
	release(f->buf, f->cap, f->store);
	f->buf = nb;
	f->cap = cap;
	f->store = s;
}

static void append(struct gos_frame *f, const char *p, size_t n)
{
	if (f->len + n > f->cap)
		resize(f, f->len + n);
	memcpy(f->buf + f->len, p, n);
	f->len += n;
}

/* Keeps up to n bytes of the incomplete unit within max_held; returns how
 * many it kept. */
static size_t keep(struct gos_frame *f, const char *p, size_t n, size_t max_held)
{
	size_t limit = keep_limit(max_held);
	size_t room = limit > f->len ? limit - f->len : 0;
	if (n > room)
		n = room;
	append(f, p, n);
	return n;
}

/* ---- output -------------------------------------------------------------- */

static void deliver(struct gos_frame *f, const char *p, size_t n)
{
	f->any_unit = true;
	if (!f->cb.on_line(f->cb.ctx, p, n))
		f->paused = true;
}

static void fail(struct gos_frame *f, enum gos_reject reason, bool fatal, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void fail(struct gos_frame *f, enum gos_reject reason, bool fatal, const char *fmt, ...)
{
	struct gos_parse_error e = {.reason = reason};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	f->any_unit = true;
	if (f->cb.on_error)
		f->cb.on_error(f->cb.ctx, &e, fatal);
}

/* ---- JSON lines ---------------------------------------------------------- */

static void deliver_line(struct gos_frame *f, const char *p, size_t n)
{
	if (n && p[n - 1] == '\r')
		n--;
	deliver(f, p, n);
}

static size_t feed_lines(struct gos_frame *f, const char *p, size_t n, size_t max_held)
{
	size_t i = 0;
	while (i < n && !f->paused) {
		const char *nl = memchr(p + i, '\n', n - i);
		if (f->mode == M_SKIP) {
			if (!nl)
				return n;
			f->mode = M_LINE;
			i = (size_t)(nl - p) + 1;
			continue;
		}
		size_t k = nl ? (size_t)(nl - (p + i)) : n - i;
		if (f->len + k > f->max_line) {
			fail(f, GOS_REJECT_LINE_TOO_LONG, false,
			     "line longer than the limit of %zu bytes; skipped to its end", f->max_line);
			f->len = 0;
			f->mode = M_SKIP;
			continue;
		}
		if (!nl)
			return i + keep(f, p + i, k, max_held);
		if (f->len == 0) {
			deliver_line(f, p + i, k);
		} else {
			append(f, p + i, k);
			size_t m = f->len;
			f->len = 0;
			deliver_line(f, f->buf, m);
		}
		i += k + 1;
	}
	return i;
}

/* ---- frames -------------------------------------------------------------- */

static uint32_t le32(const unsigned char *u)
{
	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

static uint32_t be32(const unsigned char *u)
{
	return (uint32_t)u[3] | (uint32_t)u[2] << 8 | (uint32_t)u[1] << 16 | (uint32_t)u[0] << 24;
}

/* Returns the offset just after the object's closing bracket among the n
 * bytes fed, or 0 while it is still open. */
static size_t jscan_feed(struct jscan *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (s->in_str) {
			if (s->esc)
				s->esc = false;
			else if (c == '\\')
				s->esc = true;
			else if (c == '"')
				s->in_str = false;
		} else if (c == '"') {
			s->in_str = true;
		} else if (c == '{' || c == '[') {
			s->depth++;
		} else if ((c == '}' || c == ']') && s->depth && --s->depth == 0) {
			return i + 1;
		}
	}
	return 0;
}

/* A complete frame's payload: the JSON object alone when one starts it and
 * ends before the frame does (the rest is a trailer, not for the parser),
 * else all of it. */
static void deliver_frame(struct gos_frame *f, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i < n && p[i] == '{') {
		struct jscan s = {0};
		size_t e = jscan_feed(&s, p + i, n - i);
		if (e)
			n = i + e;
	}
	deliver(f, p, n);
}

/* The frame's length is known: f->len payload bytes are in buf already. */
static void begin_payload(struct gos_frame *f, uint32_t n)
{
	f->flen = n;
	f->mode = M_PAYLOAD;
	if (f->len == n) {
		size_t m = f->len;
		f->len = 0;
		f->mode = M_HEADER;
		deliver_frame(f, f->buf, m);
	}
}

static const char *order_name(enum order o)
{
	return o == O_LE ? "little-endian" : "big-endian";
}

/* head[] holds a complete length. */
static void start_frame(struct gos_frame *f)
{
	uint32_t le = le32(f->head), be = be32(f->head);
	f->head_len = 0;
	f->len = 0;
	if (f->order != O_OPEN) {
		uint32_t n = f->order == O_LE ? le : be;
		if (n > f->max_line) {
			fail(f, GOS_REJECT_LINE_TOO_LONG, true,
			     "frame length %u is over the limit of %zu bytes; after a bad length the "
			     "framing cannot be trusted, so the connection is closed", n, f->max_line);
			f->mode = M_FAILED;
			return;
		}
		begin_payload(f, n);
		return;
	}
	/* A length that can hold a JSON object ("{}" at least), or the empty
	 * frame 00 00 00 00. */
	f->n_cand = 0;
	if (le <= f->max_line && (le >= 2 || le == be)) {
		f->cand[f->n_cand] = le;
		f->cand_order[f->n_cand++] = be == le ? O_OPEN : O_LE;
	}
	if (be <= f->max_line && be >= 2 && be != le) {
		f->cand[f->n_cand] = be;
		f->cand_order[f->n_cand++] = O_BE;
	}
	if (f->n_cand == 0) {
		if (!f->any_unit && !memchr(f->head, 0, 4))
			fail(f, GOS_REJECT_LINE_TOO_LONG, true,
			     "the first bytes are neither JSON text (starting with '{') nor a frame length "
			     "within %zu bytes (they read as %u); closing", f->max_line, le);
		else
			fail(f, GOS_REJECT_LINE_TOO_LONG, true,
			     "frame length reads as %u (little-endian) or %u (big-endian): no JSON object "
			     "fits within %zu bytes; closing (the framing cannot be trusted)",
			     le, be, f->max_line);
		f->mode = M_FAILED;
		return;
	}
	if (f->n_cand == 2 && f->cand[0] > f->cand[1]) {
		uint32_t t = f->cand[0];
		f->cand[0] = f->cand[1];
		f->cand[1] = t;
		enum order o = f->cand_order[0];
		f->cand_order[0] = f->cand_order[1];
		f->cand_order[1] = o;
	}
	if (f->cand[0] == 0) {
		/* 00 00 00 00: empty either way; the order stays open. */
		f->mode = M_HEADER;
		deliver(f, "", 0);
		return;
	}
	f->scan = (struct jscan){0};
	f->obj_end = 0;
	f->mode = M_FIRST;
}

static void first_failed(struct gos_frame *f, const char *why)
{
	if (f->n_cand == 2)
		fail(f, GOS_REJECT_NOT_JSON, true,
		     "a frame fits neither byte order: %s, its length reads as %u (%s) or %u (%s); closing",
		     why, f->cand[0], order_name(f->cand_order[0]), f->cand[1],
		     order_name(f->cand_order[1]));
	else
		fail(f, GOS_REJECT_NOT_JSON, true,
		     "a frame does not fit its length: %s, its length reads as %u; closing", why,
		     f->cand[0]);
	f->mode = M_FAILED;
}

/* One length is left: the frame goes on as an ordinary one. */
static void first_settle(struct gos_frame *f, int k)
{
	if (f->cand_order[k] != O_OPEN)
		f->order = f->cand_order[k];
	begin_payload(f, f->cand[k]);
}

/* M_FIRST, after bytes were added to buf: rules lengths out and settles. */
static void first_check(struct gos_frame *f, size_t scanned_from)
{
	if ((unsigned char)f->buf[0] != '{') {
		first_failed(f, "its payload does not start with a JSON object ('{')");
		return;
	}
	if (!f->obj_end) {
		size_t e = jscan_feed(&f->scan, f->buf + scanned_from, f->len - scanned_from);
		if (e)
			f->obj_end = scanned_from + e;
	}
	if (f->obj_end) {
		/* Every byte read so far is inside any candidate's frame. */
		int keep_k = -1;
		for (int k = 0; k < f->n_cand; k++)
			if (f->cand[k] - f->obj_end <= GOS_FRAME_TRAILER_MAX)
				keep_k = k;
		if (keep_k < 0) {
			char why[96];
			snprintf(why, sizeof(why), "its JSON object ends after %zu bytes", f->obj_end);
			first_failed(f, why);
			return;
		}
		first_settle(f, keep_k);
		return;
	}
	if (f->len == f->cand[0]) {
		/* The object does not end within the smaller length. */
		if (f->n_cand == 1) {
			char why[96];
			snprintf(why, sizeof(why), "its JSON object does not end within %u bytes", f->cand[0]);
			first_failed(f, why);
			return;
		}
		f->cand[0] = f->cand[1];
		f->cand_order[0] = f->cand_order[1];
		f->n_cand = 1;
	}
	if (f->n_cand == 1)
		first_settle(f, 0);
}

static size_t feed_frames(struct gos_frame *f, const char *p, size_t n, size_t max_held)
{
	size_t i = 0;
	while (i < n && !f->paused) {
		if (f->mode == M_FAILED)
			return n;
		if (f->mode == M_HEADER) {
			while (f->head_len < 4 && i < n)
				f->head[f->head_len++] = (unsigned char)p[i++];
			if (f->head_len == 4)
				start_frame(f);
			continue;
		}
		if (f->mode == M_FIRST) {
			/* The first byte alone (it settles a single length), then never
			 * past the smaller length: all of it belongs to the frame
			 * whichever length is true. */
			size_t want = f->len ? f->cand[0] - f->len : 1, avail = n - i;
			size_t from = f->len;
			size_t k = keep(f, p + i, avail < want ? avail : want, max_held);
			if (!k)
				return i;
			i += k;
			first_check(f, from);
			continue;
		}
		size_t need = f->flen - f->len, avail = n - i;
		if (avail < need)
			return i + keep(f, p + i, avail, max_held);
		f->mode = M_HEADER;
		if (f->len == 0) {
			deliver_frame(f, p + i, need);
		} else {
			append(f, p + i, need);
			f->len = 0;
			deliver_frame(f, f->buf, f->flen);
		}
		i += need;
	}
	return i;
}

/* ---- detection ----------------------------------------------------------- */

static bool json_first(unsigned char c)
{
	return c == '{' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Chooses the framing from head[0..head_len): four bytes, or fewer when the
 * stream ended sooner. */
static void decide(struct gos_frame *f)
{
	static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
	bool text = !memchr(f->head, 0, f->head_len);
	size_t skip = 0;
	if ((text || f->framing == GOS_FRAMING_LINES) && f->head_len >= 3 && !memcmp(f->head, bom, 3))
		skip = 3;
	else if (f->framing != GOS_FRAMING_LINES && (!text || !json_first(f->head[0])))
		skip = SIZE_MAX;
	if (skip != SIZE_MAX) {
		/* The bytes are the start of the first line: fed from head[]. */
		f->mode = M_LINE;
		f->replay_off = skip;
		f->replay_len = f->head_len - skip;
		f->head_len = 0;
		return;
	}
	f->mode = M_HEADER;
	if (f->head_len == 4)
		start_frame(f);
}

/* Feeds head[] bytes taken while detecting; false when a line paused it. */
static bool replay(struct gos_frame *f)
{
	size_t used = feed_lines(f, (const char *)f->head + f->replay_off, f->replay_len, SIZE_MAX);
	f->replay_off += used;
	f->replay_len -= used;
	return f->replay_len == 0;
}

/* ---- the stream ---------------------------------------------------------- */

/* Where a stream starts: detection, or frames when asked for frames. */
static void start_stream(struct gos_frame *f)
{
	f->order = f->framing == GOS_FRAMING_LE ? O_LE : f->framing == GOS_FRAMING_BE ? O_BE : O_OPEN;
	f->mode = f->order != O_OPEN ? M_HEADER : M_DETECT;
}

static void reset(struct gos_frame *f)
{
	start_stream(f);
	f->head_len = 0;
	f->replay_off = f->replay_len = 0;
	f->any_unit = false;
	f->paused = false;
	f->len = 0;
	resize(f, 0);
}

struct gos_frame *gos_frame_create(const struct gos_frame_opts *opts,
                                   const struct gos_frame_callbacks *cb)
{
	struct gos_frame *f = calloc(1, sizeof(*f));
	if (!f)
		abort();
	f->cb = *cb;
	f->max_line = opts && opts->max_line ? opts->max_line : GOS_MAX_LINE;
	f->framing = opts ? opts->framing : GOS_FRAMING_AUTO;
	f->buf = f->inl;
	f->cap = GOS_FRAME_INLINE;
	f->store = S_INLINE;
	start_stream(f);
	return f;
}

void gos_frame_destroy(struct gos_frame *f)
{
	if (!f)
		return;
	release(f->buf, f->cap, f->store);
	free(f);
}

size_t gos_frame_feed(struct gos_frame *f, const char *p, size_t n, size_t max_held)
{
	f->paused = false;
	size_t i = 0;
	if (f->mode == M_DETECT) {
		while (f->head_len < 4 && i < n)
			f->head[f->head_len++] = (unsigned char)p[i++];
		if (f->head_len == 4)
			decide(f);
	}
	if (f->replay_len)
		replay(f);
	if (f->mode != M_DETECT && !f->replay_len && !f->paused && i < n) {
		if (f->mode == M_LINE || f->mode == M_SKIP)
			i += feed_lines(f, p + i, n - i, max_held);
		else
			i += feed_frames(f, p + i, n - i, max_held);
	}
	/* Give back what the completed units used: between calls the buffer is
	 * exactly the size class of what it keeps. */
	resize(f, f->len);
	return i;
}

void gos_frame_end(struct gos_frame *f)
{
	if (f->mode == M_DETECT && f->head_len)
		decide(f);
	/* The stream is over: pauses asked for from here on are ignored. */
	while (f->replay_len) {
		f->paused = false;
		replay(f);
	}
	switch (f->mode) {
	case M_LINE:
		if (f->len) {
			size_t m = f->len;
			f->len = 0;
			deliver_line(f, f->buf, m);
		}
		break;
	case M_HEADER:
		if (f->head_len)
			fail(f, GOS_REJECT_NOT_JSON, false,
			     "connection closed inside a frame's 4-byte length (got %zu of 4 bytes)",
			     f->head_len);
		break;
	case M_FIRST:
		if (f->n_cand == 2)
			fail(f, GOS_REJECT_NOT_JSON, false,
			     "connection closed after %zu of a frame's %u or %u bytes", f->len, f->cand[0],
			     f->cand[1]);
		else
			fail(f, GOS_REJECT_NOT_JSON, false,
			     "connection closed after %zu of a frame's %u bytes", f->len, f->cand[0]);
		break;
	case M_PAYLOAD:
		fail(f, GOS_REJECT_NOT_JSON, false, "connection closed after %zu of a frame's %u bytes",
		     f->len, f->flen);
		break;
	default:
		break;
	}
	reset(f);
}

size_t gos_frame_held(const struct gos_frame *f)
{
	return f->store == S_INLINE ? 0 : f->cap;
}

size_t gos_frame_max_held(const struct gos_frame_opts *opts)
{
	return held_for(opts && opts->max_line ? opts->max_line : GOS_MAX_LINE);
}

bool gos_frame_idle(const struct gos_frame *f)
{
	switch (f->mode) {
	case M_DETECT:
	case M_HEADER:
		return f->head_len == 0;
	case M_LINE:
		return f->len == 0 && f->replay_len == 0;
	case M_FAILED:
		return true;
	default:
		return false;
	}
}

enum gos_framing gos_frame_framing(const struct gos_frame *f)
{
	if (f->mode == M_LINE || f->mode == M_SKIP || f->framing == GOS_FRAMING_LINES)
		return GOS_FRAMING_LINES;
	return f->order == O_LE ? GOS_FRAMING_LE : f->order == O_BE ? GOS_FRAMING_BE : GOS_FRAMING_AUTO;
}

bool gos_frame_is_framed(const struct gos_frame *f)
{
	switch (f->mode) {
	case M_HEADER:
	case M_FIRST:
	case M_PAYLOAD:
	case M_FAILED:
		return true;
	default:
		return false;
	}
}

static const char *const framing_names[] = {
	[GOS_FRAMING_AUTO] = "auto", [GOS_FRAMING_LINES] = "lines",
	[GOS_FRAMING_LE] = "le", [GOS_FRAMING_BE] = "be",
};

const char *gos_framing_name(enum gos_framing fr)
{
	return (unsigned)fr <= GOS_FRAMING_BE ? framing_names[fr] : "auto";
}

bool gos_framing_parse(const char *s, enum gos_framing *out)
{
	for (unsigned i = 0; i <= GOS_FRAMING_BE; i++) {
		if (!strcmp(s, framing_names[i])) {
			*out = (enum gos_framing)i;
			return true;
		}
	}
	return false;
}

void gos_frame_where(const struct gos_frame *f, char *buf, size_t len)
{
	switch (f->mode) {
	case M_DETECT:
		if (f->head_len)
			snprintf(buf, len, "inside the first 4 bytes: got %zu", f->head_len);
		else
			snprintf(buf, len, "before the first byte");
		break;
	case M_LINE:
		if (f->len || f->replay_len)
			snprintf(buf, len, "inside a line: got %zu bytes, no newline yet",
			         f->len + f->replay_len);
		else
			snprintf(buf, len, "between lines");
		break;
	case M_SKIP:
		snprintf(buf, len, "inside an over-long line, skipping to its newline");
		break;
	case M_HEADER:
		if (f->head_len)
			snprintf(buf, len, "inside a frame's 4-byte length: got %zu of 4 bytes", f->head_len);
		else
			snprintf(buf, len, "between frames");
		break;
	case M_FIRST:
		if (f->n_cand == 2)
			snprintf(buf, len, "inside a frame: got %zu of %u or %u bytes", f->len, f->cand[0],
			         f->cand[1]);
		else
			snprintf(buf, len, "inside a frame: got %zu of %u bytes", f->len, f->cand[0]);
		break;
	case M_PAYLOAD:
		snprintf(buf, len, "inside a frame: got %zu of %u bytes", f->len, f->flen);
		break;
	case M_FAILED:
		snprintf(buf, len, "after a bad frame length");
		break;
	}
}
