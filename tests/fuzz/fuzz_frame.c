/* libFuzzer target for the ingest's framing state machine (gos_frame).
 *
 * Input: byte 0 picks the line limit (16, 300, 5000, 70000 or 1 MiB),
 * byte 1 seeds the split points, caps and pauses; the rest is the stream,
 * where FE X N stands for byte X repeated (N + 1) * 997 times, so that
 * small inputs reach the large (malloc'd and mmap'd) buffers.
 *
 * The framing is automatic (lines, or frames of either byte order, resolved
 * from the bytes that follow). The stream is framed three ways, which must agree:
 *  - fed whole, then ended;
 *  - fed in pieces of random sizes, each feed with a random cap on what may
 *    stay held (SIZE_MAX, 0, or some bytes), and on_line pausing every few
 *    lines; what a feed did not consume is fed again;
 *  - a reference model written here from the rules in gos_frame.h, which
 *    knows nothing of buffers, splits or caps (errors compared by reason
 *    and fatality, lines byte for byte).
 * While feeding in pieces it checks: no line over the limit, held memory
 * within max(cap, held before) and gos_frame_max_held(), nothing after a
 * fatal error, idle and nothing held after the end. Any failure aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_frame.h"

#define MAX_STREAM (3u << 20)

/* The harness's own loops need no coverage feedback (they would cost most
 * of the time on megabyte streams); the coverage that matters is gos_frame's. */
#if defined(__clang__)
#define HARNESS __attribute__((no_sanitize("coverage")))
#else
#define HARNESS
#endif

struct out {
	uint64_t full, kind;  /* hashes: lines + errors with messages; lines + error kinds */
	uint64_t n;
	size_t max_line;
	bool fatal_seen, after_fatal;
	unsigned pause_every;
};

/* Eight bytes a step: streams run to megabytes. */
HARNESS static void mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		*h = (*h ^ w) * 0x9E3779B97F4A7C15ull;
		*h ^= *h >> 29;
	}
	for (; i < n; i++)
		*h = (*h ^ s[i]) * 0x100000001B3ull;
	*h = (*h ^ n) * 0x100000001B3ull;
}

HARNESS static void put_line(struct out *o, const char *p, size_t n)
{
	mix(&o->full, "L", 1);
	mix(&o->full, p, n);
	mix(&o->kind, "L", 1);
	mix(&o->kind, p, n);
	o->n++;
}

HARNESS static void put_error(struct out *o, enum gos_reject reason, bool fatal, const char *msg)
{
	unsigned char k[2] = {(unsigned char)reason, fatal};
	mix(&o->full, "E", 1);
	mix(&o->full, k, 2);
	if (msg)
		mix(&o->full, msg, strlen(msg));
	mix(&o->kind, "E", 1);
	mix(&o->kind, k, 2);
	o->n++;
}

HARNESS static bool on_line(void *ctx, const char *p, size_t n)
{
	struct out *o = ctx;
	if (n > o->max_line || o->fatal_seen)
		abort();
	put_line(o, p, n);
	return !(o->pause_every && o->n % o->pause_every == 0);
}

HARNESS static void on_error(void *ctx, const struct gos_parse_error *e, bool fatal)
{
	struct out *o = ctx;
	if (o->fatal_seen || !memchr(e->message, 0, sizeof(e->message)) || !e->message[0])
		abort();
	if (fatal)
		o->fatal_seen = true;
	put_error(o, e->reason, fatal, e->message);
}

/* ---- the reference ------------------------------------------------------- */

HARNESS static uint32_t le32(const unsigned char *u)
{
	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

HARNESS static uint32_t be32(const unsigned char *u)
{
	return (uint32_t)u[3] | (uint32_t)u[2] << 8 | (uint32_t)u[1] << 16 | (uint32_t)u[0] << 24;
}

/* Where the JSON object starting at p[0] == '{' ends (the offset after its
 * closing bracket, counting brackets outside strings), 0 if not within n. */
HARNESS static size_t obj_end(const unsigned char *p, size_t n)
{
	size_t depth = 0;
	bool str = false, esc = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				str = false;
		} else if (c == '"') {
			str = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && depth && --depth == 0) {
			return i + 1;
		}
	}
	return 0;
}

/* A frame's payload as delivered: the object alone when one (after JSON
 * blanks) starts it and ends inside it. */
HARNESS static void put_frame(struct out *o, const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i < n && p[i] == '{') {
		size_t e = obj_end(p + i, n - i);
		if (e)
			n = i + e;
	}
	put_line(o, (const char *)p, n);
}

HARNESS static void reference(const unsigned char *s, size_t n, struct out *o)
{
	if (n == 0)
		return;
	size_t h = n < 4 ? n : 4;
	bool nul = memchr(s, 0, h) != NULL;
	bool bom = h >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF;
	bool text = !nul && (bom || s[0] == '{' || s[0] == ' ' || s[0] == '\t' || s[0] == '\r' ||
	                     s[0] == '\n');
	if (text) {
		size_t pos = bom ? 3 : 0;
		while (pos < n) {
			const unsigned char *nl = memchr(s + pos, '\n', n - pos);
			size_t end = nl ? (size_t)(nl - s) : n;
			size_t k = end - pos;
			if (k > o->max_line) {
				put_error(o, GOS_REJECT_LINE_TOO_LONG, false, NULL);
			} else if (nl || k) {
				if (k && s[pos + k - 1] == '\r')
					k--;
				put_line(o, (const char *)s + pos, k);
			}
			pos = nl ? end + 1 : n;
		}
		return;
	}
	/* Frames. The byte order, while open, is resolved as gos_frame.h says:
	 * lengths of 2 bytes or more (or 0 both ways) within the limit; the
	 * first payload byte must be '{'; one length left is taken at once; of
	 * two, the one within GOS_FRAME_TRAILER_MAX after where the object
	 * ends, or the larger when it does not end within the smaller. */
	size_t pos = 0;
	int order = 0;   /* 0 open, 1 LE, 2 BE */
	while (pos < n) {
		if (n - pos < 4) {
			put_error(o, GOS_REJECT_NOT_JSON, false, NULL);
			return;
		}
		uint32_t le = le32(s + pos), be = be32(s + pos), len;
		if (order) {
			len = order == 1 ? le : be;
			if (len > o->max_line) {
				put_error(o, GOS_REJECT_LINE_TOO_LONG, true, NULL);
				return;
			}
		} else {
			uint32_t c[2];
			int co[2], k = 0;
			if (le <= o->max_line && (le >= 2 || le == be))
				c[k] = le, co[k++] = be == le ? 0 : 1;
			if (be <= o->max_line && be >= 2 && be != le)
				c[k] = be, co[k++] = 2;
			if (!k) {
				put_error(o, GOS_REJECT_LINE_TOO_LONG, true, NULL);
				return;
			}
			if (k == 2 && c[0] > c[1]) {
				uint32_t t = c[0];
				c[0] = c[1], c[1] = t;
				int u = co[0];
				co[0] = co[1], co[1] = u;
			}
			if (c[0] == 0) {
				put_line(o, "", 0);
				pos += 4;
				continue;
			}
			size_t avail = n - pos - 4;
			const unsigned char *pl = s + pos + 4;
			if (!avail) {
				put_error(o, GOS_REJECT_NOT_JSON, false, NULL);
				return;
			}
			if (pl[0] != '{') {
				put_error(o, GOS_REJECT_NOT_JSON, true, NULL);
				return;
			}
			int pick = -1;
			if (k == 1) {
				if (c[0] == 1) {
					put_error(o, GOS_REJECT_NOT_JSON, true, NULL);
					return;
				}
				pick = 0;
			} else {
				size_t seen = avail < c[0] ? avail : c[0];
				size_t e = obj_end(pl, seen);
				if (e) {
					for (int i = 0; i < 2; i++)
						if (c[i] - e <= GOS_FRAME_TRAILER_MAX)
							pick = i;
					if (pick < 0) {
						put_error(o, GOS_REJECT_NOT_JSON, true, NULL);
						return;
					}
				} else if (seen == c[0]) {
					pick = 1;
				} else {
					put_error(o, GOS_REJECT_NOT_JSON, false, NULL);
					return;
				}
			}
			len = c[pick];
			if (co[pick])
				order = co[pick];
		}
		if (n - pos - 4 < len) {
			put_error(o, GOS_REJECT_NOT_JSON, false, NULL);
			return;
		}
		put_frame(o, s + pos + 4, len);
		pos += 4 + len;
	}
}

/* ---- the framer ---------------------------------------------------------- */

HARNESS static uint32_t next(uint32_t *r)
{
	*r = *r * 1664525u + 1013904223u;
	return *r >> 8;
}

static struct out run(const unsigned char *s, size_t n, size_t max_line, uint32_t seed, bool split)
{
	struct out o = {0xcbf29ce484222325ull, 0xcbf29ce484222325ull, 0, max_line, false, false, 0};
	struct gos_frame_opts opts = {.max_line = max_line};
	struct gos_frame *f = gos_frame_create(&opts, &(struct gos_frame_callbacks){
		.on_line = on_line, .on_error = on_error, .ctx = &o});
	size_t most = gos_frame_max_held(&opts);
	if (!split) {
		if (gos_frame_feed(f, (const char *)s, n, SIZE_MAX) != n)
			abort();
	} else {
		uint32_t r = seed;
		o.pause_every = next(&r) % 4 ? 0 : 1 + next(&r) % 5;
		size_t at = 0;
		bool stuck = false;
		while (at < n) {
			uint32_t k = next(&r);
			size_t piece = 1 + (k & 1 ? next(&r) % 16 : next(&r) % 100000);
			if (piece > n - at)
				piece = n - at;
			size_t cap;
			switch (stuck ? 0 : next(&r) % 4) {
			case 1: cap = 0; break;
			case 2: cap = next(&r) % 300000; break;
			default: cap = SIZE_MAX; break;
			}
			size_t before = gos_frame_held(f);
			size_t used = gos_frame_feed(f, (const char *)s + at, piece, cap);
			size_t after = gos_frame_held(f);
			if (used > piece || after > most || after > (cap > before ? cap : before))
				abort();
			if (cap == SIZE_MAX && !o.pause_every && used != piece)
				abort();
			stuck = used == 0;
			at += used;
		}
	}
	gos_frame_end(f);
	if (!gos_frame_idle(f) || gos_frame_held(f))
		abort();
	gos_frame_destroy(f);
	return o;
}

/* The stream: data[2..], with FE X N expanded. */
HARNESS static size_t expand(const uint8_t *data, size_t size, unsigned char *s)
{
	size_t n = 0;
	for (size_t i = 2; i < size && n < MAX_STREAM; i++) {
		if (data[i] == 0xFE && i + 2 < size) {
			size_t k = ((size_t)data[i + 2] + 1) * 997;
			if (k > MAX_STREAM - n)
				k = MAX_STREAM - n;
			memset(s + n, data[i + 1], k);
			n += k;
			i += 2;
			continue;
		}
		s[n++] = data[i];
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = {16, 300, 5000, 70000, GOS_MAX_LINE};
	static unsigned char *s;
	if (!s)
		s = malloc(MAX_STREAM);
	if (size < 2)
		return 0;
	size_t max_line = limits[data[0] % 5];
	uint32_t seed = data[1] * 2654435761u + (uint32_t)size;
	size_t n = expand(data, size, s);
	struct out whole = run(s, n, max_line, seed, false);
	struct out split = run(s, n, max_line, seed, true);
	struct out ref = {0xcbf29ce484222325ull, 0xcbf29ce484222325ull, 0, max_line, false, false, 0};
	reference(s, n, &ref);
	if (whole.full != split.full || whole.n != split.n)
		abort();
	if (whole.kind != ref.kind || whole.n != ref.n)
		abort();
	return 0;
}
