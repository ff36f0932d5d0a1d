/* The ingest's framing state machine (net/gos_frame.h) on its own: framing
 * detection (JSON text, BOM, length headers, headers no JSON can start
 * with), CRLF, over-long lines and frames, end of stream inside a unit,
 * zero-length frames, where/idle for timeout messages, held memory by tier
 * and its cap, pauses, and the same transcript whatever the split. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_frame.h"
#include "gos_test.h"

/* A transcript: "L<len>:<bytes>" per line, "E<reason>[!]:<message>" per error. */
struct rec {
	char *s;
	size_t len, cap;
	int lines, errors, pause_after;  /* pause_after: on_line returns false after that many lines (0: never) */
	size_t longest;
};

static void rec_put(struct rec *r, const char *p, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		r->cap = (r->len + n + 1) * 2;
		r->s = realloc(r->s, r->cap);
	}
	memcpy(r->s + r->len, p, n);
	r->len += n;
	r->s[r->len] = 0;
}

static bool on_line(void *ctx, const char *p, size_t n)
{
	struct rec *r = ctx;
	char h[32];
	int k = snprintf(h, sizeof(h), "L%zu:", n);
	rec_put(r, h, (size_t)k);
	rec_put(r, p, n);
	rec_put(r, "\n", 1);
	r->lines++;
	if (n > r->longest)
		r->longest = n;
	return !(r->pause_after && r->lines % r->pause_after == 0);
}

static void on_error(void *ctx, const struct gos_parse_error *e, bool fatal)
{
	struct rec *r = ctx;
	char h[256];
	int k = snprintf(h, sizeof(h), "E%s%s:%s\n", gos_reject_name(e->reason), fatal ? "!" : "", e->message);
	rec_put(r, h, (size_t)k);
	r->errors++;
}

static struct gos_frame *mk(struct rec *r, size_t max_line)
{
	memset(r, 0, sizeof(*r));
	rec_put(r, "", 0);
	return gos_frame_create(&(struct gos_frame_opts){.max_line = max_line},
	                        &(struct gos_frame_callbacks){.on_line = on_line, .on_error = on_error, .ctx = r});
}

/* Feeds all of p in pieces of `step` bytes (0: whole), re-feeding what a
 * pause left, then ends the stream if `end`. */
static void feed_all(struct gos_frame *f, const char *p, size_t n, size_t step, bool end)
{
	size_t at = 0;
	while (at < n) {
		size_t k = step && step < n - at ? step : n - at;
		size_t used = 0;
		while (used < k)
			used += gos_frame_feed(f, p + at + used, k - used, SIZE_MAX);
		at += k;
	}
	if (end)
		gos_frame_end(f);
}

/* The transcript of p fed whole, and checks it is the same byte by byte
 * and in 7-byte pieces. */
static char *run(const char *p, size_t n, size_t max_line)
{
	struct rec a, b, c;
	struct gos_frame *f = mk(&a, max_line);
	feed_all(f, p, n, 0, true);
	gos_frame_destroy(f);
	f = mk(&b, max_line);
	feed_all(f, p, n, 1, true);
	gos_frame_destroy(f);
	f = mk(&c, max_line);
	feed_all(f, p, n, 7, true);
	gos_frame_destroy(f);
	CHECK(!strcmp(a.s, b.s) && !strcmp(a.s, c.s), "same transcript whatever the split:\n%s---\n%s---\n%s",
	      a.s, b.s, c.s);
	free(b.s);
	free(c.s);
	return a.s;
}

static void expect(const char *what, const char *p, size_t n, size_t max_line, const char *want)
{
	char *got = run(p, n, max_line);
	CHECK(!strcmp(got, want), "%s:\n got: %s\nwant: %s", what, got, want);
	free(got);
}

#define S(lit) lit, sizeof(lit) - 1

static void test_detection(void)
{
	expect("JSON lines", S("{\"a\":1}\n{\"b\":2}\n"), 0, "L7:{\"a\":1}\nL7:{\"b\":2}\n");
	expect("leading blank line", S("\n{\"a\":1}\n"), 0, "L0:\nL7:{\"a\":1}\n");
	expect("leading spaces", S("  {}\n"), 0, "L4:  {}\n");
	expect("tab, CR", S("\t\r\n{}\n"), 0, "L1:\t\nL2:{}\n");
	expect("BOM skipped", S("\xEF\xBB\xBF{\"a\":1}\n"), 0, "L7:{\"a\":1}\n");
	expect("CRLF: one CR dropped", S("{}\r\n{}\r\r\n"), 0, "L2:{}\nL3:{}\r\n");
	expect("unterminated last line delivered", S("{}\n{\"x\""), 0, "L2:{}\nL4:{\"x\"\n");
	expect("short stream that can be JSON", S("{}"), 0, "L2:{}\n");
	expect("short blank stream", S("\n"), 0, "L0:\n");
	expect("empty stream", S(""), 0, "");
	expect("frames", S("\x07\x00\x00\x00{\"a\":1}\x02\x00\x00\x00{}\x05\x00\x00\x00hello"), 0,
	       "L7:{\"a\":1}\nL2:{}\nL5:hello\n");
	expect("zero-length frame, order still open", S("\x00\x00\x00\x00\x00\x00\x00\x02{}"), 0,
	       "L0:\nL2:{}\n");
	/* a length whose low byte is '{' (123) is still a length: it holds NULs */
	{
		char fr[4 + 123];
		memcpy(fr, "\x7b\x00\x00\x00{", 5);
		memset(fr + 5, ' ', 121);
		fr[4 + 122] = '}';
		char *got = run(fr, sizeof(fr), 0);
		CHECK(!strncmp(got, "L123:{  ", 8), "a 123-byte frame is a frame: %.40s", got);
		free(got);
	}
	/* the header 00 00 00 01 (16 MiB little-endian, 1 byte big-endian) before
	 * JSON text: an error, never JSON lines, never a wait */
	expect("16 MiB header", S("\x00\x00\x00\x01{\"type\":\"sync\"}\n"), 0,
	       "Eline_too_long!:frame length reads as 16777216 (little-endian) or 1 (big-endian): "
	       "no JSON object fits within 1048576 bytes; closing (the framing cannot be trusted)\n");
	/* 16 MiB - 1, then a sync frame: the sync is not swallowed into a skip */
	expect("16 MiB - 1 header then a sync frame",
	       S("\x03\x00\x00\x00{ }\xff\xff\xff\x00\x0f\x00\x00\x00{\"type\":\"sync\"}"), 0,
	       "L3:{ }\nEline_too_long!:frame length 16777215 is over the limit of 1048576 bytes; after "
	       "a bad length the framing cannot be trusted, so the connection is closed\n");
	expect("text no JSON can start with", S("not json\n"), 0,
	       "Eline_too_long!:the first bytes are neither JSON text (starting with '{') nor a frame "
	       "length within 1048576 bytes (they read as 544501614); closing\n");
	expect("stream ends inside the first bytes", S("ab"), 0,
	       "Enot_json:connection closed inside a frame's 4-byte length (got 2 of 4 bytes)\n");
	expect("partial BOM", S("\xEF\xBB"), 0,
	       "Enot_json:connection closed inside a frame's 4-byte length (got 2 of 4 bytes)\n");
	expect("stream ends inside a frame", S("\x0a\x00\x00\x00" "{bc"), 0,
	       "Enot_json:connection closed after 3 of a frame's 10 bytes\n");
	expect("stream ends inside a frame's length", S("\x02\x00\x00\x00{}\x01\x00"), 0,
	       "L2:{}\nEnot_json:connection closed inside a frame's 4-byte length (got 2 of 4 bytes)\n");
}

/* A frame: u32 length (big- or little-endian), the JSON, the trailer. */
static size_t mkframe(char *out, bool be, const char *json, size_t jn, const char *tr, size_t tn)
{
	uint32_t n = (uint32_t)(jn + tn);
	unsigned char h[4] = {(unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16),
	                      (unsigned char)(n >> 24)};
	if (be) {
		unsigned char t = h[0];
		h[0] = h[3], h[3] = t, t = h[1], h[1] = h[2], h[2] = t;
	}
	memcpy(out, h, 4);
	memcpy(out + 4, json, jn);
	memcpy(out + 4 + jn, tr, tn);
	return 4 + jn + tn;
}

/* A JSON object of exactly n bytes: {"pad":"xxx..."}. */
static char *padded(size_t n)
{
	char *j = malloc(n + 1);
	memcpy(j, "{\"pad\":\"", 8);
	memset(j + 8, 'x', n - 10);
	memcpy(j + n - 2, "\"}", 3);
	return j;
}

static struct gos_frame *mk_as(struct rec *r, enum gos_framing fr)
{
	memset(r, 0, sizeof(*r));
	rec_put(r, "", 0);
	return gos_frame_create(&(struct gos_frame_opts){.framing = fr},
	                        &(struct gos_frame_callbacks){.on_line = on_line, .on_error = on_error, .ctx = r});
}

/* Geometry OS's producers (issue 14): the Rust EvolutionClient's u32
 * little-endian frames, the Python side's big-endian ones with a 16-byte
 * glyph command after the JSON inside the frame; the byte order resolved
 * from the bytes that follow, never by waiting past the true frame. */
static void test_byte_orders(void)
{
	static const char rust[] = "{\"message_type\":\"TokenVisualizationUpdate\",\"payload\":{\"current_token\":"
	                           "\"hello\",\"token_id\":42,\"hilbert_position\":[0.25,0.5],\"activation\":0.8,"
	                           "\"layer\":3},\"timestamp\":1707345600000}";
	static const char py[] = "{\"msg_type\":\"Thought\",\"sequence\":7,\"payload\":{\"type\":\"token\","
	                         "\"token\":\"hello\",\"confidence\":0.9}}";
	static const char glyph[16] = "\xce\x10\x00\x20\x00\xff\xff\x00\xff\x00\x00\x00\x00\x00\x00\x00";
	char buf[70000];
	char want[1024];
	struct rec r;

	size_t n = mkframe(buf, false, rust, sizeof(rust) - 1, "", 0);
	n += mkframe(buf + n, false, rust, sizeof(rust) - 1, "", 0);
	snprintf(want, sizeof(want), "L%zu:%s\nL%zu:%s\n", sizeof(rust) - 1, rust, sizeof(rust) - 1, rust);
	expect("Rust: little-endian frames", buf, n, 0, want);
	struct gos_frame *f = mk(&r, 0);
	gos_frame_feed(f, buf, n, SIZE_MAX);
	CHECK(gos_frame_framing(f) == GOS_FRAMING_LE && r.lines == 2, "little-endian: lines %d", r.lines);
	gos_frame_destroy(f);
	free(r.s);

	n = mkframe(buf, true, py, sizeof(py) - 1, glyph, 16);
	n += mkframe(buf + n, true, py, sizeof(py) - 1, glyph, 16);
	snprintf(want, sizeof(want), "L%zu:%s\nL%zu:%s\n", sizeof(py) - 1, py, sizeof(py) - 1, py);
	expect("Python: big-endian frames, the glyph command kept out", buf, n, 0, want);
	f = mk(&r, 0);
	gos_frame_feed(f, buf, n, SIZE_MAX);
	CHECK(gos_frame_framing(f) == GOS_FRAMING_BE && r.lines == 2, "big-endian: lines %d", r.lines);
	gos_frame_destroy(f);
	free(r.s);

	/* Big-endian 256 (00 00 01 00) reads 65536 little-endian: both within
	 * the limit. The object ends at 240 + a 16-byte glyph: big-endian, and
	 * the frame is delivered once its 260 bytes are in, byte by byte too. */
	char *j = padded(240);
	n = mkframe(buf, true, j, 240, glyph, 16);
	CHECK(n == 260 && !memcmp(buf, "\x00\x00\x01\x00", 4), "a big-endian 256");
	for (size_t step = 0; step <= 1; step++) {
		f = mk(&r, 0);
		feed_all(f, buf, n, step, false);
		CHECK(r.lines == 1 && r.longest == 240 && r.errors == 0 && gos_frame_idle(f) &&
		      gos_frame_framing(f) == GOS_FRAMING_BE,
		      "big-endian 256, low byte 0, fed %s: delivered without waiting (%s)",
		      step ? "byte by byte" : "whole", r.s);
		gos_frame_destroy(f);
		free(r.s);
	}
	free(j);
	/* The same with no trailer (a 256-byte object) */
	j = padded(256);
	n = mkframe(buf, true, j, 256, "", 0);
	f = mk(&r, 0);
	feed_all(f, buf, n, 1, false);
	CHECK(r.lines == 1 && r.longest == 256 && gos_frame_framing(f) == GOS_FRAMING_BE, "%s", r.s);
	gos_frame_destroy(f);
	free(r.s);
	free(j);
	/* 00 01 00 00: 256 little-endian, 65536 big-endian; the object does
	 * not end within 256 bytes, so it is the big-endian 65536 */
	j = padded(65536);
	n = mkframe(buf, true, j, 65536, "", 0);
	CHECK(!memcmp(buf, "\x00\x01\x00\x00", 4), "a big-endian 65536");
	f = mk(&r, 0);
	feed_all(f, buf, n, 1000, false);
	CHECK(r.lines == 1 && r.longest == 65536 && gos_frame_framing(f) == GOS_FRAMING_BE, "%.80s", r.s);
	gos_frame_destroy(f);
	free(r.s);
	/* and the little-endian 256 with the same header */
	free(j);
	j = padded(256);
	n = mkframe(buf, false, j, 256, "", 0);
	CHECK(!memcmp(buf, "\x00\x01\x00\x00", 4), "a little-endian 256");
	f = mk(&r, 0);
	feed_all(f, buf, n, 1, false);
	CHECK(r.lines == 1 && r.longest == 256 && gos_frame_framing(f) == GOS_FRAMING_LE, "%.80s", r.s);
	gos_frame_destroy(f);
	free(r.s);
	free(j);

	/* Garbage is answered at once, without the end of the stream */
	static const struct {
		const char *what, *p;
		size_t n;
		const char *want;
	} bad[] = {
		{"a length, then no JSON object", S("\x05\x00\x00\x00hello"),
		 "Enot_json!:a frame does not fit its length: its payload does not start with a JSON "
		 "object ('{'), its length reads as 5; closing\n"},
		{"binary", S("ab\x00\x00\x01\x02"),
		 "Enot_json!:a frame does not fit its length: its payload does not start with a JSON "
		 "object ('{'), its length reads as 25185; closing\n"},
		{"both orders within the limit, the object ends where neither does",
		 S("\x00\x02\x01\x00{\"a\":1}\x01\x02"),
		 "Enot_json!:a frame fits neither byte order: its JSON object ends after 7 bytes, its "
		 "length reads as 66048 (little-endian) or 131328 (big-endian); closing\n"},
		{"over the limit both ways", S("\x01\x00\x00\x01{}"),
		 "Eline_too_long!:frame length reads as 16777217 (little-endian) or 16777217 (big-endian): "
		 "no JSON object fits within 1048576 bytes; "
		 "closing (the framing cannot be trusted)\n"},
		{"16 MiB little-endian, 1 big-endian (too short for an object)", S("\x00\x00\x00\x01"),
		 "Eline_too_long!:frame length reads as 16777216 (little-endian) or 1 (big-endian): "
		 "no JSON object fits within 1048576 bytes; "
		 "closing (the framing cannot be trusted)\n"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = mk(&r, 0);
		gos_frame_feed(f, bad[i].p, bad[i].n, SIZE_MAX);
		CHECK(!strcmp(r.s, bad[i].want), "%s:\n got: %s\nwant: %s", bad[i].what, r.s, bad[i].want);
		gos_frame_destroy(f);
		free(r.s);
	}

	/* No guessing when told */
	f = mk_as(&r, GOS_FRAMING_LE);
	feed_all(f, S("\x05\x00\x00\x00hello\x00\x00\x00\x00"), 0, true);
	CHECK(!strcmp(r.s, "L5:hello\nL0:\n"), "le: %s", r.s);
	gos_frame_destroy(f);
	free(r.s);
	f = mk_as(&r, GOS_FRAMING_BE);
	feed_all(f, S("\x00\x00\x00\x05hello\x00\x00\x01\x00"), 0, false);
	CHECK(!strcmp(r.s, "L5:hello\n") && gos_frame_framing(f) == GOS_FRAMING_BE, "be: %s", r.s);
	gos_frame_destroy(f);
	free(r.s);
	f = mk_as(&r, GOS_FRAMING_LINES);
	feed_all(f, S("\x05\x00\x00\x00hello\n{}\n"), 0, true);
	CHECK(!memcmp(r.s, "L9:\x05\x00\x00\x00hello\nL2:{}\n", 19) && gos_frame_framing(f) == GOS_FRAMING_LINES,
	      "lines: %s", r.s);
	gos_frame_destroy(f);
	free(r.s);
	enum gos_framing fr;
	CHECK(gos_framing_parse("be", &fr) && fr == GOS_FRAMING_BE && !gos_framing_parse("big", &fr) &&
	      !strcmp(gos_framing_name(GOS_FRAMING_AUTO), "auto"), "framing names");

	/* JSON lines still work, and are lines */
	f = mk(&r, 0);
	feed_all(f, S("{\"type\":\"sync\"}\n"), 0, false);
	CHECK(r.lines == 1 && gos_frame_framing(f) == GOS_FRAMING_LINES && !gos_frame_is_framed(f), "lines");
	gos_frame_destroy(f);
	free(r.s);
}

static void test_limits(void)
{
	expect("line of exactly the limit", S("{234567}\n"), 8, "L8:{234567}\n");
	expect("one over: reported, skipped to its newline, the stream goes on",
	       S("{2345678}\n{}\n{23456789abcdef and more}\n{\"s\":1}\n"), 8,
	       "Eline_too_long:line longer than the limit of 8 bytes; skipped to its end\nL2:{}\n"
	       "Eline_too_long:line longer than the limit of 8 bytes; skipped to its end\nL7:{\"s\":1}\n");
	expect("over-long unterminated last line", S("{}\n{2345678901"), 8,
	       "L2:{}\nEline_too_long:line longer than the limit of 8 bytes; skipped to its end\n");
	expect("frame of exactly the limit", S("\x08\x00\x00\x00" "{2345678" "\x01\x00\x00\x00z"), 8,
	       "L8:{2345678\nL1:z\n");
	expect("frame one over the limit: fatal, the rest ignored",
	       S("\x02\x00\x00\x00{}\x09\x00\x00\x00" "123456789" "\x01\x00\x00\x00y"), 8,
	       "L2:{}\nEline_too_long!:frame length 9 is over the limit of 8 bytes; after a bad length the "
	       "framing cannot be trusted, so the connection is closed\n");
}

static void test_where_and_idle(void)
{
	struct rec r;
	struct gos_frame *f = mk(&r, 0);
	char w[64];
	CHECK(gos_frame_idle(f), "a new stream is idle");
	gos_frame_feed(f, "{\"a", 3, SIZE_MAX);
	gos_frame_where(f, w, sizeof(w));
	CHECK(!gos_frame_idle(f) && !strcmp(w, "inside the first 4 bytes: got 3"), "%s", w);
	gos_frame_feed(f, "\":1}\n{\"b\"", 9, SIZE_MAX);
	gos_frame_where(f, w, sizeof(w));
	CHECK(!gos_frame_idle(f) && !strcmp(w, "inside a line: got 4 bytes, no newline yet"), "%s", w);
	gos_frame_feed(f, ":2}\n", 4, SIZE_MAX);
	CHECK(gos_frame_idle(f) && r.lines == 2, "between lines: idle");
	gos_frame_end(f);
	CHECK(gos_frame_idle(f), "after the end: a new stream");

	/* a header announcing exactly 1 MiB little-endian (4096 big-endian),
	 * then nothing: both orders still open */
	gos_frame_feed(f, "\x00\x00\x10\x00", 4, SIZE_MAX);
	gos_frame_where(f, w, sizeof(w));
	CHECK(!gos_frame_idle(f) && !strcmp(w, "inside a frame: got 0 of 4096 or 1048576 bytes"), "%s", w);
	CHECK(r.errors == 0 && gos_frame_framing(f) == GOS_FRAMING_AUTO && gos_frame_is_framed(f),
	      "a length of exactly the limit is fine");
	gos_frame_feed(f, "{bc", 3, SIZE_MAX);
	gos_frame_where(f, w, sizeof(w));
	CHECK(!strcmp(w, "inside a frame: got 3 of 4096 or 1048576 bytes"), "%s", w);
	gos_frame_end(f);
	CHECK(r.errors == 1 && strstr(r.s, "after 3 of a frame's 4096 or 1048576 bytes"), "end inside it: %s", r.s);
	gos_frame_feed(f, "\x02\x00", 2, SIZE_MAX);
	gos_frame_where(f, w, sizeof(w));
	CHECK(!gos_frame_idle(f) && !strcmp(w, "inside the first 4 bytes: got 2"), "%s", w);
	gos_frame_feed(f, "\x00\x00", 2, SIZE_MAX);
	gos_frame_where(f, w, sizeof(w));
	CHECK(!gos_frame_idle(f) && !strcmp(w, "inside a frame: got 0 of 2 bytes"), "%s", w);
	gos_frame_feed(f, "{}\x05\x00", 4, SIZE_MAX);
	CHECK(gos_frame_framing(f) == GOS_FRAMING_LE, "the order is known after the first frame");
	gos_frame_where(f, w, sizeof(w));
	CHECK(!gos_frame_idle(f) && !strcmp(w, "inside a frame's 4-byte length: got 2 of 4 bytes"), "%s", w);
	gos_frame_destroy(f);
	free(r.s);

	f = mk(&r, 0);
	gos_frame_feed(f, "\x00\x00\x00\x01x", 5, SIZE_MAX);
	CHECK(gos_frame_idle(f) && r.errors == 1, "after a fatal error: idle (nothing to wait for)");
	CHECK(gos_frame_feed(f, "\x01\x00\x00\x00z", 5, SIZE_MAX) == 5 && r.lines == 0,
	      "later bytes are taken and ignored");
	gos_frame_destroy(f);
	free(r.s);
}

static void test_memory(void)
{
	enum { BIG = 300000 };
	char *line = malloc(BIG + 1);
	memset(line, ' ', BIG);
	line[0] = '{';
	line[BIG - 1] = '}';
	line[BIG] = '\n';
	struct rec r;
	struct gos_frame *f = mk(&r, 0);
	size_t most = gos_frame_max_held(NULL);
	CHECK(most == GOS_MAX_LINE, "the most a stream holds: %zu", most);
	gos_frame_feed(f, line, 3000, SIZE_MAX);
	CHECK(gos_frame_held(f) == 0, "3000 bytes are kept inline: %zu", gos_frame_held(f));
	gos_frame_feed(f, line + 3000, 7000, SIZE_MAX);
	CHECK(gos_frame_held(f) == 16384, "10000 bytes: a 16 KiB heap buffer: %zu", gos_frame_held(f));
	gos_frame_feed(f, line + 10000, 190000, SIZE_MAX);
	CHECK(gos_frame_held(f) == 262144, "200000 bytes: 4 mapped 64 KiB steps: %zu", gos_frame_held(f));
	/* the cap: nothing more is kept, the rest is left to the caller */
	size_t used = gos_frame_feed(f, line + 200000, 99999, 262144);
	CHECK(used == 62144 && gos_frame_held(f) == 262144, "capped at what is held: took %zu, holds %zu",
	      used, gos_frame_held(f));
	/* a unit already started may complete past the cap */
	used = gos_frame_feed(f, line + 262144, BIG + 1 - 262144, 0);
	CHECK(used == BIG + 1 - 262144 && r.lines == 1 && r.longest == BIG, "completed past the cap");
	CHECK(gos_frame_held(f) == 0, "given back once complete: %zu", gos_frame_held(f));

	/* a fresh line is kept only within the cap (inline is free) */
	used = gos_frame_feed(f, line, 100000, 0);
	CHECK(used == GOS_FRAME_INLINE && gos_frame_held(f) == 0, "cap 0 keeps %zu (inline)", used);
	used = gos_frame_feed(f, line + used, 100000, 20000);
	CHECK(used == 16384 - GOS_FRAME_INLINE && gos_frame_held(f) == 16384,
	      "cap 20000: up to a 16 KiB buffer (took %zu, holds %zu)", used, gos_frame_held(f));
	gos_frame_end(f);
	CHECK(gos_frame_held(f) == 0 && r.lines == 2, "end delivers the rest and frees it");
	gos_frame_destroy(f);
	free(r.s);

	/* a big frame fed in small pieces arrives whole */
	char *fr = malloc(4 + BIG);
	uint32_t n = BIG;
	memcpy(fr, (char[4]){(char)(n & 0xff), (char)(n >> 8 & 0xff), (char)(n >> 16 & 0xff), 0}, 4);
	for (size_t i = 0; i < BIG; i++)
		fr[4 + i] = (char)('a' + i % 26);
	fr[4] = '{';
	f = mk(&r, 0);
	size_t peak = 0;
	for (size_t at = 0; at < 4 + BIG; at += 1000) {
		size_t k = 4 + BIG - at < 1000 ? 4 + BIG - at : 1000;
		gos_frame_feed(f, fr + at, k, SIZE_MAX);
		if (gos_frame_held(f) > peak)
			peak = gos_frame_held(f);
	}
	CHECK(r.lines == 1 && r.longest == BIG && !memcmp(strchr(r.s, ':') + 1, fr + 4, BIG),
	      "a 300000-byte frame in 1000-byte pieces");
	CHECK(peak == 327680 && gos_frame_held(f) == 0, "held at most 5 x 64 KiB (%zu), then nothing", peak);
	gos_frame_destroy(f);
	free(r.s);
	free(fr);
	free(line);
}

static void test_pause(void)
{
	struct rec r;
	struct gos_frame *f = mk(&r, 0);
	r.pause_after = 1;
	const char s[] = "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\"";
	size_t n = sizeof(s) - 1;
	size_t used = gos_frame_feed(f, s, n, SIZE_MAX);
	CHECK(used == 8 && r.lines == 1, "paused after the first line: took %zu", used);
	used += gos_frame_feed(f, s + used, n - used, SIZE_MAX);
	CHECK(used == 16 && r.lines == 2, "then the second: %zu", used);
	used += gos_frame_feed(f, s + used, n - used, SIZE_MAX);
	used += gos_frame_feed(f, s + used, n - used, SIZE_MAX);
	CHECK(used == n && r.lines == 3, "then the rest is kept: %zu", used);
	gos_frame_end(f);
	CHECK(r.lines == 4, "and ends as a line");
	gos_frame_destroy(f);
	free(r.s);

	/* a pause inside the first four bytes (they held a whole line) */
	f = mk(&r, 0);
	r.pause_after = 1;
	used = gos_frame_feed(f, "\n\n{}\n", 5, SIZE_MAX);
	CHECK(used == 4 && r.lines == 1, "the 4 bytes are taken, one line delivered (%zu)", used);
	used = gos_frame_feed(f, "\n", 1, SIZE_MAX);
	CHECK(r.lines == 2 && used == 0, "the rest of the first bytes come first (%zu)", used);
	used = gos_frame_feed(f, "\n", 1, SIZE_MAX);
	CHECK(r.lines == 3 && used == 1, "then the new byte: %zu", used);
	gos_frame_destroy(f);
	free(r.s);
}

/* Random streams of lines and frames, fed at random split points with
 * random caps: the transcript is the one of the whole stream. */
static void test_random_splits(void)
{
	uint64_t rng = 12345;
	for (int round = 0; round < 300; round++) {
		char s[4096];
		size_t n = 0;
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		bool frames = rng & 1;
		while (n < sizeof(s) - 64) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			size_t len = rng % 40;
			if (frames) {
				memcpy(s + n, (char[4]){(char)len, 0, 0, 0}, 4);
				n += 4;
			} else {
				s[n++] = '{';
			}
			for (size_t i = 0; i < len; i++)
				s[n++] = frames && i == 0 ? '{' : "ab \r\n{}"[(rng >> (i % 50)) % (frames ? 7 : 5)];
			if (!frames)
				s[n++] = '\n';
		}
		struct rec whole, split;
		struct gos_frame *f = mk(&whole, 20);
		feed_all(f, s, n, 0, true);
		gos_frame_destroy(f);
		f = mk(&split, 20);
		size_t at = 0;
		while (at < n) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			size_t k = 1 + rng % 50;
			if (k > n - at)
				k = n - at;
			size_t cap = (rng >> 20) % 3 ? SIZE_MAX : 0;
			at += gos_frame_feed(f, s + at, k, cap);
		}
		gos_frame_end(f);
		gos_frame_destroy(f);
		CHECK(!strcmp(whole.s, split.s) && whole.longest <= 20, "round %d: same transcript", round);
		free(whole.s);
		free(split.s);
	}
}

int main(void)
{
	test_detection();
	test_byte_orders();
	test_limits();
	test_where_and_idle();
	test_memory();
	test_pause();
	test_random_splits();
	return gos_test_report("test_frame");
}
