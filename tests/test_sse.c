/* test_sse: every rule of the WHATWG event-stream interpretation, as gos_sse
 * implements it. Each case is fed whole, split in two at every byte
 * boundary, in 1-byte chunks and in random chunks; the transcript of
 * callbacks must be the expected one every time. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_sse.h"

struct transcript {
	char *s;
	size_t len, cap;
};

static void t_add(struct transcript *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		if (!t->s)
			abort();
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = '\0';
}

static void t_printf(struct transcript *t, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	t_add(t, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Printable ASCII as is (backslash doubled), every other byte as \xNN. */
static void t_escaped(struct transcript *t, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\')
			t_add(t, "\\\\", 2);
		else if (c >= 0x20 && c < 0x7f)
			t_add(t, (const char *)&c, 1);
		else
			t_printf(t, "\\x%02x", c);
	}
}

static void on_event(void *ctx, const struct gos_sse_event *ev)
{
	struct transcript *t = ctx;
	if (ev->type[ev->type_len] != '\0' || ev->data[ev->data_len] != '\0' ||
	    ev->id[ev->id_len] != '\0') {
		fprintf(stderr, "event strings are not NUL-terminated\n");
		abort();
	}
	t_add(t, "event type=", 11);
	t_escaped(t, ev->type, ev->type_len);
	t_add(t, " data=", 6);
	t_escaped(t, ev->data, ev->data_len);
	t_add(t, " id=", 4);
	t_escaped(t, ev->id, ev->id_len);
	t_printf(t, "%s\n", ev->has_id ? " (set)" : "");
}

static void on_retry(void *ctx, uint64_t ms)
{
	t_printf(ctx, "retry %llu\n", (unsigned long long)ms);
}

static void on_error(void *ctx, const char *msg)
{
	(void)msg;
	t_printf(ctx, "error\n");
}

struct sse_case {
	const char *name;
	const char *in;
	size_t in_len;       /* 0: strlen(in) */
	const char *want;
	size_t max_data;     /* 0: default */
};

#define N(s) s, sizeof(s) - 1   /* a literal that holds NUL bytes */

static const struct sse_case cases[] = {
	{"simple event", "data: hello\n\n", 0, "event type=message data=hello id=\n", 0},
	{"BOM at the start is stripped", "\xEF\xBB\xBF" "data: x\n\n", 0,
	 "event type=message data=x id=\n", 0},
	{"only one BOM is stripped", "\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\ndata: y\n\n", 0,
	 "event type=message data=y id=\n", 0},
	{"a BOM after the start is content", "data: a\n\n\xEF\xBB\xBF" "data: b\n\ndata: c\n\n", 0,
	 "event type=message data=a id=\nevent type=message data=c id=\n", 0},
	{"half a BOM is not a BOM", "\xEF\xBB" "data: x\n\ndata: y\n\n", 0,
	 "event type=message data=y id=\n", 0},
	{"BOM alone then a stream", "\xEF\xBB\xBF\n" "data: x\n\n", 0,
	 "event type=message data=x id=\n", 0},
	{"LF line ends", "data: a\ndata: b\n\n", 0, "event type=message data=a\\x0ab id=\n", 0},
	{"CR line ends", "data: a\rdata: b\r\r", 0, "event type=message data=a\\x0ab id=\n", 0},
	{"CRLF line ends", "data: a\r\ndata: b\r\n\r\n", 0, "event type=message data=a\\x0ab id=\n", 0},
	{"mixed line ends", "data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\n\n", 0,
	 "event type=message data=a\\x0ab\\x0ac id=\nevent type=message data=d id=\n", 0},
	{"LF then CR is two line ends", "data: a\n\rdata: b\n\n", 0,
	 "event type=message data=a id=\nevent type=message data=b id=\n", 0},
	{"CR CR is two line ends", "data: a\r\rdata: b\r\n\r\n", 0,
	 "event type=message data=a id=\nevent type=message data=b id=\n", 0},
	{"CRLF CR", "data: a\r\n\rdata: b\n\n", 0,
	 "event type=message data=a id=\nevent type=message data=b id=\n", 0},
	{"a final CR dispatches at once", "data: x\n\r", 0, "event type=message data=x id=\n", 0},
	{"comments are ignored", ": hi\ndata: a\n:\n: mid\ndata: b\n\n:\n\n", 0,
	 "event type=message data=a\\x0ab id=\n", 0},
	{"comment lines do not dispatch", "data: a\n:x\n\n", 0, "event type=message data=a id=\n", 0},
	{"data lines are joined with LF", "data: a\ndata: b\ndata\ndata:\n\n", 0,
	 "event type=message data=a\\x0ab\\x0a\\x0a id=\n", 0},
	{"one empty data line dispatches an empty event", "data\n\n", 0, "event type=message data= id=\n", 0},
	{"empty value after the colon", "data:\n\n", 0, "event type=message data= id=\n", 0},
	{"two empty data lines give one LF", "data\ndata\n\n", 0, "event type=message data=\\x0a id=\n", 0},
	{"no data: nothing dispatched, buffers reset", "event: foo\n\ndata: x\n\n", 0,
	 "event type=message data=x id=\n", 0},
	{"empty lines alone dispatch nothing", "\n\n\r\n\r\r\n", 0, "", 0},
	{"event type", "event: add\ndata: 1\n\ndata: 2\n\n", 0,
	 "event type=add data=1 id=\nevent type=message data=2 id=\n", 0},
	{"empty event type is message", "event:\ndata: 1\n\n", 0, "event type=message data=1 id=\n", 0},
	{"event field without colon", "event\ndata: 1\n\n", 0, "event type=message data=1 id=\n", 0},
	{"last event type wins", "event: a\nevent: b\ndata: x\n\n", 0, "event type=b data=x id=\n", 0},
	{"event type keeps spaces after the first", "event:  odd type \ndata: x\n\n", 0,
	 "event type= odd type  data=x id=\n", 0},
	{"id persists across events", "id: 1\ndata: a\n\ndata: b\n\n", 0,
	 "event type=message data=a id=1 (set)\nevent type=message data=b id=1\n", 0},
	{"id with NUL is ignored", N("id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"),
	 "event type=message data=a id=1 (set)\nevent type=message data=b id=1\n", 0},
	{"id with NUL keeps an earlier id of the same event", N("id: 3\nid: 4\0\ndata: a\n\n"),
	 "event type=message data=a id=3 (set)\n", 0},
	{"empty id resets the last event ID", "id: 1\ndata: a\n\nid\ndata: b\n\nid:\ndata: c\n\n", 0,
	 "event type=message data=a id=1 (set)\nevent type=message data=b id= (set)\n"
	 "event type=message data=c id= (set)\n", 0},
	{"id of an event without data still counts", "id: 7\n\ndata: x\n\n", 0,
	 "event type=message data=x id=7\n", 0},
	{"id value keeps later spaces", "id:  a b \ndata: x\n\n", 0, "event type=message data=x id= a b  (set)\n", 0},
	{"retry with digits", "retry: 1000\ndata: x\n\nretry:007\n", 0,
	 "retry 1000\nevent type=message data=x id=\nretry 7\n", 0},
	{"retry applies at once, mid-event", "data: a\nretry: 5\n\n", 0,
	 "retry 5\nevent type=message data=a id=\n", 0},
	{"retry without only-digits is ignored",
	 "retry: 10a\nretry: -1\nretry:\nretry\nretry: 1 0\nretry:  5\nretry: 1.5\nretry: \xEF\xBC\x93\nretry: +3\n", 0,
	 "", 0},
	{"retry saturates", "retry: 99999999999999999999999\n", 0, "retry 18446744073709551615\n", 0},
	{"field without a colon is the whole line", "data\n\nid\n\n", 0, "event type=message data= id=\n", 0},
	{"only one leading space is stripped", "data:  two\n\ndata:no\n\ndata: \n\n", 0,
	 "event type=message data= two id=\nevent type=message data=no id=\nevent type=message data= id=\n", 0},
	{"a tab is not stripped", "data:\tx\n\n", 0, "event type=message data=\\x09x id=\n", 0},
	{"field names are case-sensitive", "Data: x\nDATA: y\n\ndata: z\n\n", 0,
	 "event type=message data=z id=\n", 0},
	{"unknown fields are ignored", "foo: bar\ndata: x\nbaz\n\n", 0, "event type=message data=x id=\n", 0},
	{"a space before the colon is part of the name", "data : x\n\ndata: y\n\n", 0,
	 "event type=message data=y id=\n", 0},
	{"colons in the value stay", "data: a:b: c\n\n", 0, "event type=message data=a:b: c id=\n", 0},
	{"unfinished event at EOF is discarded", "data: x\n\ndata: y\n", 0, "event type=message data=x id=\n", 0},
	{"unfinished line at EOF is discarded", "data: x\n\ndata: y\n\ndata: z", 0,
	 "event type=message data=x id=\nevent type=message data=y id=\n", 0},
	{"NUL bytes in data and type", N("event: a\0b\ndata: 1\0" "2\n\n"),
	 "event type=a\\x00b data=1\\x002 id=\n", 0},
	{"valid UTF-8 passes", "data: h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80\n\n", 0,
	 "event type=message data=h\\xc3\\xa9llo \\xe2\\x82\\xac \\xf0\\x9f\\x98\\x80 id=\n", 0},
	{"invalid bytes become U+FFFD", "data: \xFF\xFE" "a\n\n", 0,
	 "event type=message data=\\xef\\xbf\\xbd\\xef\\xbf\\xbda id=\n", 0},
	{"a truncated sequence is one U+FFFD", "data: \xE2\x82\ndata: \xF0\x9F\x98\n\n", 0,
	 "event type=message data=\\xef\\xbf\\xbd\\x0a\\xef\\xbf\\xbd id=\n", 0},
	{"surrogates and overlongs", "data: \xED\xA0\x80|\xC0\xAF|\xE0\x80\xAF|\xF4\x90\x80\x80\n\n", 0,
	 "event type=message data=\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd|\\xef\\xbf\\xbd\\xef\\xbf\\xbd|"
	 "\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd|\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd id=\n", 0},
	{"invalid byte before a known field name", "\xFF" "data: x\n\ndata: y\n\n", 0,
	 "event type=message data=y id=\n", 0},
	{"over-long data is skipped, the stream goes on",
	 "data: 0123456789abcdefX\n\ndata: ok\n\n", 0, "error\nevent type=message data=ok id=\n", 16},
	{"data over the cap across lines",
	 "data: 01234567\ndata: 89abcdef\ndata: more\n\ndata: ok\n\n", 0,
	 "error\nevent type=message data=ok id=\n", 16},
	{"data exactly at the cap passes", "data: 0123456789abcdef\n\n", 0,
	 "event type=message data=0123456789abcdef id=\n", 16},
	{"over-long line is skipped",
	 "data: 0123456789abcdef0123456789abcdef0123456789abcdef\ndata: x\n\ndata: ok\n\n", 0,
	 "error\nevent type=message data=ok id=\n", 16},
	{"over-long id skips its event",
	 "id: 0123456789abcdef0123456789abcdef0123456789abcdef\ndata: x\n\ndata: ok\n\n", 0,
	 "error\nevent type=message data=ok id=\n", 16},
	{"over-long comment and unknown field are ignored",
	 ":0123456789abcdef0123456789abcdef0123456789abcdef\n"
	 "xyz: 0123456789abcdef0123456789abcdef0123456789abcdef\ndata: ok\n\n", 0,
	 "event type=message data=ok id=\n", 16},
	{"repaired data counts against the cap", "data: \xFF\xFF\xFF\xFF\xFF\xFF\n\ndata: ok\n\n", 0,
	 "error\nevent type=message data=ok id=\n", 16},
};

static char *run(const char *in, size_t len, const size_t *cuts, size_t n_cuts, size_t max_data)
{
	struct transcript t = {0};
	t_add(&t, "", 0);
	struct gos_sse_callbacks cb = {on_event, on_retry, on_error, &t, NULL};
	struct gos_sse_opts o = {.max_data = max_data};
	struct gos_sse *p = gos_sse_create(&o, &cb);
	if (!p)
		abort();
	size_t at = 0;
	for (size_t i = 0; i <= n_cuts; i++) {
		size_t to = i < n_cuts ? cuts[i] : len;
		if (!gos_sse_feed(p, in + at, to - at))
			abort();
		at = to;
	}
	gos_sse_end(p);
	gos_sse_destroy(p);
	return t.s;
}

static int failures;

static void check(const struct sse_case *c, const char *how, char *got)
{
	if (strcmp(got, c->want)) {
		failures++;
		fprintf(stderr, "FAIL %s (%s)\n--- want\n%s--- got\n%s---\n", c->name, how, c->want, got);
	}
	free(got);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

static void test_cases(void)
{
	size_t *cuts = NULL;
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		const struct sse_case *c = &cases[k];
		size_t len = c->in_len ? c->in_len : strlen(c->in);
		cuts = realloc(cuts, (len + 1) * sizeof *cuts);
		if (!cuts)
			abort();
		char how[64];
		check(c, "whole", run(c->in, len, NULL, 0, c->max_data));
		for (size_t s = 0; s <= len; s++) {
			cuts[0] = s;
			snprintf(how, sizeof how, "split at %zu", s);
			check(c, how, run(c->in, len, cuts, 1, c->max_data));
		}
		for (size_t s = 0; s < len; s++)
			cuts[s] = s + 1;
		check(c, "1-byte chunks", run(c->in, len, cuts, len ? len - 1 : 0, c->max_data));
		for (int r = 0; r < 50; r++) {
			size_t n = len ? rnd() % (len + 1) : 0;
			for (size_t i = 0; i < n; i++)
				cuts[i] = rnd() % (len + 1);
			qsort(cuts, n, sizeof *cuts, cmp_size);
			snprintf(how, sizeof how, "random chunks #%d", r);
			check(c, how, run(c->in, len, cuts, n, c->max_data));
		}
	}
	free(cuts);
}

/* The last event ID for a reconnection: committed at dispatch (also of an
 * event without data), not by an id in an event cut off by the end. */
static void test_last_event_id(void)
{
	struct transcript t = {0};
	struct gos_sse_callbacks cb = {on_event, on_retry, on_error, &t, NULL};
	struct gos_sse *p = gos_sse_create(NULL, &cb);
	size_t len = 99;
	if (strcmp(gos_sse_last_event_id(p, &len), "") || len != 0) {
		failures++;
		fprintf(stderr, "FAIL last event id is not empty at first\n");
	}
	const char *s1 = "id: 5\ndata: a\n\nid: 6\n\nid: 7\ndata: b\n";
	gos_sse_feed(p, s1, strlen(s1));
	gos_sse_end(p);
	if (strcmp(gos_sse_last_event_id(p, &len), "6") || len != 1) {
		failures++;
		fprintf(stderr, "FAIL last event id after end: '%s' (want 6)\n", gos_sse_last_event_id(p, NULL));
	}
	/* A new stream after end: BOM allowed again, the id carries on. */
	const char *s2 = "\xEF\xBB\xBF" "data: c\n\n";
	free(t.s);
	t = (struct transcript){0};
	gos_sse_feed(p, s2, strlen(s2));
	if (!t.s || strcmp(t.s, "event type=message data=c id=6\n")) {
		failures++;
		fprintf(stderr, "FAIL second stream: %s\n", t.s ? t.s : "(nothing)");
	}
	free(t.s);
	gos_sse_destroy(p);
}

/* Memory stays bounded however long a line without a line end runs. */
static void test_bounded_line(void)
{
	struct transcript t = {0};
	struct gos_sse_callbacks cb = {on_event, on_retry, on_error, &t, NULL};
	struct gos_sse_opts o = {.max_data = 1024};
	struct gos_sse *p = gos_sse_create(&o, &cb);
	char chunk[4096];
	memset(chunk, 'x', sizeof chunk);
	gos_sse_feed(p, "data: ", 6);
	for (int i = 0; i < 4096; i++)   /* 16 MiB on one line */
		gos_sse_feed(p, chunk, sizeof chunk);
	const char *tail = "\n\ndata: after\n\n";
	gos_sse_feed(p, tail, strlen(tail));
	if (!t.s || strcmp(t.s, "error\nevent type=message data=after id=\n") || gos_sse_errors(p) != 1) {
		failures++;
		fprintf(stderr, "FAIL bounded line: %s\n", t.s ? t.s : "(nothing)");
	}
	free(t.s);
	gos_sse_destroy(p);
}

static void on_field(void *ctx, const char *name, size_t name_len, const char *value, size_t value_len)
{
	struct transcript *t = ctx;
	t_printf(t, "field ");
	t_escaped(t, name, name_len);
	t_printf(t, "=");
	t_escaped(t, value, value_len);
	t_printf(t, "\n");
}

/* Fields the standard ignores reach on_field (llama.cpp's "error:" line),
 * the events around them unchanged, at any split. */
static void test_unknown_fields(void)
{
	const char *in = "error: {\"code\":400,\"message\":\"too long\"}\r\n\r\ndata: [DONE]\n\n"
	                 "x-y:no space\nbare\n:comment\ndata: a\n\n";
	const char *want = "field error={\"code\":400,\"message\":\"too long\"}\n"
	                   "event type=message data=[DONE] id=\n"
	                   "field x-y=no space\nfield bare=\nevent type=message data=a id=\n";
	size_t len = strlen(in);
	for (size_t cut = 0; cut <= len; cut++) {
		struct transcript t = {0};
		struct gos_sse_callbacks cb = {on_event, on_retry, on_error, &t, on_field};
		struct gos_sse *p = gos_sse_create(NULL, &cb);
		if (!p || !gos_sse_feed(p, in, cut) || !gos_sse_feed(p, in + cut, len - cut))
			abort();
		gos_sse_end(p);
		gos_sse_destroy(p);
		if (!t.s || strcmp(t.s, want)) {
			failures++;
			fprintf(stderr, "FAIL unknown fields (cut %zu): %s\n", cut, t.s ? t.s : "(nothing)");
			free(t.s);
			return;
		}
		free(t.s);
	}
}

int main(void)
{
	test_cases();
	test_unknown_fields();
	test_last_event_id();
	test_bounded_line();
	gos_sse_destroy(NULL);
	if (failures) {
		fprintf(stderr, "test_sse: %d failures\n", failures);
		return 1;
	}
	printf("test_sse: %zu cases, each whole, at every split, byte by byte and in random chunks: ok\n",
	       sizeof cases / sizeof cases[0]);
	return 0;
}
