/* libFuzzer target for gos_sse. The input is fed whole and again in chunks
 * whose sizes come from the input itself; the two transcripts must be equal
 * (output never depends on chunk boundaries), every string must be valid
 * UTF-8 and NUL-terminated, and data must respect the cap. Any difference
 * aborts, which libFuzzer reports as a crash with the input that caused it.
 * A small cap (64 bytes) exercises the over-long event path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gos_sse.h"

#define CAP 64

struct out {
	uint64_t hash;
	uint64_t n;
};

static void mix(struct out *o, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		o->hash = (o->hash ^ s[i]) * 0x100000001B3ull;
	o->hash = (o->hash ^ n) * 0x100000001B3ull;
}

static int utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t need = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2
		            : c >= 0xF0 && c <= 0xF4 ? 3 : 9;
		if (need == 9 || n - i <= need)
			return need == 0;
		unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
		unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
		if (need && (s[i + 1] < lo || s[i + 1] > hi))
			return 0;
		for (size_t j = 2; j <= need; j++)
			if ((s[i + j] & 0xC0) != 0x80)
				return 0;
		i += need + 1;
	}
	return 1;
}

static void on_event(void *ctx, const struct gos_sse_event *ev)
{
	struct out *o = ctx;
	if (ev->type[ev->type_len] || ev->data[ev->data_len] || ev->id[ev->id_len])
		abort();
	if (ev->data_len > CAP || memchr(ev->id, 0, ev->id_len))
		abort();
	if (!utf8_ok((const unsigned char *)ev->type, ev->type_len) ||
	    !utf8_ok((const unsigned char *)ev->data, ev->data_len) ||
	    !utf8_ok((const unsigned char *)ev->id, ev->id_len))
		abort();
	mix(o, "E", 1);
	mix(o, ev->type, ev->type_len);
	mix(o, ev->data, ev->data_len);
	mix(o, ev->id, ev->id_len);
	mix(o, &ev->has_id, 1);
	o->n++;
}

static void on_retry(void *ctx, uint64_t ms)
{
	struct out *o = ctx;
	mix(o, "R", 1);
	mix(o, &ms, sizeof ms);
	o->n++;
}

static void on_error(void *ctx, const char *msg)
{
	struct out *o = ctx;
	mix(o, "X", 1);
	(void)msg;
	o->n++;
}

static struct out run(const uint8_t *data, size_t size, int chunked)
{
	struct out o = {0xcbf29ce484222325ull, 0};
	struct gos_sse_callbacks cb = {on_event, on_retry, on_error, &o, NULL};
	struct gos_sse_opts opts = {.max_data = CAP};
	struct gos_sse *p = gos_sse_create(&opts, &cb);
	if (!p)
		abort();
	if (!chunked) {
		gos_sse_feed(p, data, size);
	} else {
		size_t at = 0, k = 0;
		while (at < size) {
			size_t n = 1 + (size_t)(data[k++ % size] % 7);
			if (n > size - at)
				n = size - at;
			gos_sse_feed(p, data + at, n);
			at += n;
		}
	}
	gos_sse_end(p);
	/* The parser is reusable after end: a second stream must not crash. */
	gos_sse_feed(p, data, size);
	gos_sse_end(p);
	gos_sse_destroy(p);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out a = run(data, size, 0);
	struct out b = run(data, size, 1);
	if (a.hash != b.hash || a.n != b.n)
		abort();
	return 0;
}
