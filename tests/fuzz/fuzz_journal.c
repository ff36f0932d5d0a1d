/* libFuzzer target for the journal reader (compositor/journal/journal_file.c)
 * and what restore does with each record it yields (gos_protocol_parse of
 * the payload).
 *
 * Byte 0 picks the mode:
 *  - even: the rest is a segment as found on disk, scanned as is; every
 *    record yielded lies inside the input and the scan's account adds up.
 *  - odd: the rest is split at '\n' into payloads, written as valid records
 *    (gos_journal_encode), then cut at a point taken from byte 1..2: the
 *    scan must give back exactly the whole records before the cut, and call
 *    the cut TORN (or CLEAN at a record boundary); then one byte at a point
 *    from byte 3..4 is flipped: records before it come back unchanged and
 *    the scan never reads past the end.
 * Any failure aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_buf.h"
#include "gos_journal.h"
#include "gos_protocol.h"

struct acc {
	const unsigned char *base;
	size_t len;
	uint64_t n;
	size_t end;           /* end of the last record yielded */
	struct gos_arena arena;
};

static bool on_rec(void *ctx, const struct gos_jrec *r)
{
	struct acc *a = ctx;
	if (r->offset + GOS_JREC_HEADER + r->len > a->len)
		abort();
	if ((const unsigned char *)r->payload != a->base + r->offset + GOS_JREC_HEADER)
		abort();
	if (r->offset != a->end)
		abort();
	a->end = r->offset + GOS_JREC_HEADER + r->len;
	a->n++;
	if (r->type == GOS_JREC_EVENT) {
		struct gos_event ev;
		struct gos_parse_error err;
		gos_protocol_parse(r->payload, r->len, &ev, &a->arena, &err);
		gos_arena_reset(&a->arena);
	}
	return true;
}

static void scan(const unsigned char *b, size_t len, struct gos_jscan *sc, struct acc *a)
{
	/* a private copy, exactly len bytes long, so ASan sees any overread */
	unsigned char *copy = malloc(len ? len : 1);
	if (!copy)
		abort();
	if (len)
		memcpy(copy, b, len);
	*a = (struct acc){.base = copy, .len = len};
	gos_journal_scan(copy, len, on_rec, a, sc);
	if (sc->records != a->n || sc->good != a->end || sc->good > len)
		abort();
	if (sc->end == GOS_JSCAN_CLEAN && sc->good != len)
		abort();
	gos_arena_finish(&a->arena);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	struct gos_jscan sc;
	struct acc a;
	if (!(data[0] & 1)) {
		scan(data + 1, size - 1, &sc, &a);
		return 0;
	}
	size_t cut_at = (size_t)data[1] << 8 | data[2];
	size_t flip_at = (size_t)data[3] << 8 | data[4];
	struct gos_buf w = {0};
	size_t bounds[4096];
	size_t nb = 0;
	const uint8_t *p = data + 5, *end = data + size;
	uint64_t seq = 1;
	while (p < end && nb < 4096) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		gos_journal_encode(&w, (n & 1) ? GOS_JREC_EVENT : GOS_JREC_LEASE, seq, seq + n, 1.5,
		                   (const char *)p, (uint32_t)n);
		seq += n + 1;
		bounds[nb++] = w.len;
		p += n + 1;
	}
	size_t total = w.len;
	scan((const unsigned char *)w.data, total, &sc, &a);
	if (sc.end != GOS_JSCAN_CLEAN || sc.records != nb)
		abort();
	size_t cut = total ? cut_at % (total + 1) : 0;
	scan((const unsigned char *)w.data, cut, &sc, &a);
	size_t whole = 0, k = 0;
	while (k < nb && bounds[k] <= cut)
		whole = bounds[k++];
	if (sc.records != k || sc.good != whole)
		abort();
	if (sc.end != (whole == cut ? GOS_JSCAN_CLEAN : GOS_JSCAN_TORN))
		abort();
	if (total) {
		size_t at = flip_at % total;
		w.data[at] ^= 0x20;
		scan((const unsigned char *)w.data, total, &sc, &a);
		size_t before = 0;
		k = 0;
		while (k < nb && bounds[k] <= at)
			before = bounds[k++];
		/* every record wholly before the flipped byte still reads */
		if (sc.good < before)
			abort();
	}
	gos_buf_finish(&w);
	return 0;
}
