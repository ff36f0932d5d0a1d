/* libFuzzer target for the ingest's framing state machine (gos_frame).
 *
 * Input: byte 0 picks the line limit (16, 300, 5000, 70000 or 1 MiB),
 * byte 1 seeds the split points, caps and pauses; the rest is the stream,
 * where FE X N stands for byte X repeated (N + 1) * 997 times, so that
 * small inputs reach the large (malloc'd and mmap'd) buffers.
 *
 * The stream is framed three ways, which must agree:
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
	size_t pos = 0;
	while (pos < n) {
		if (n - pos < 4) {
			put_error(o, GOS_REJECT_NOT_JSON, false, NULL);
			return;
		}
		uint32_t len = le32(s + pos);
		if (len > o->max_line) {
			put_error(o, GOS_REJECT_LINE_TOO_LONG, true, NULL);
			return;
		}
		if (n - pos - 4 < len) {
			put_error(o, GOS_REJECT_NOT_JSON, false, NULL);
			return;
		}
		put_line(o, (const char *)s + pos + 4, len);
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
