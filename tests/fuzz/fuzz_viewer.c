/* libFuzzer target for what a browser viewer may send (gos_viewer_parse in
 * net/ws/gos_viewer_proto.c): viewport, ping, and issue 11's seek, play,
 * pause and live, and issue 13's search. Whatever the bytes, the result
 * holds its contract:
 * a known type; SEEK by time with a finite time >= 0, else a whole seq
 * within 2^53; PLAY with a speed in [SPEED_MIN, SPEED_MAX]; BAD with a
 * NUL-terminated sentence; viewport fields finite when flagged; a ping's t
 * finite (the pong echoes it); SEARCH with a q of 1..256 bytes of UTF-8,
 * a limit in range, probability bounds in 0..1 (or NAN) in order, and
 * n_streams names inside the names' buffer. Parsing
 * the same bytes twice gives the same answer. Any failure aborts. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gos_utf8.h"
#include "gos_viewer_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so ASan sees any read past the message */
	char *msg = malloc(size ? size : 1);
	if (!msg)
		abort();
	memcpy(msg, data, size);
	struct gos_viewer_in a, b;
	enum gos_viewer_in_type t = gos_viewer_parse(msg, size, &a);
	if (t != a.type || t > GOS_VIEWER_IN_SEARCH)
		abort();
	switch (t) {
	case GOS_VIEWER_IN_SEEK:
		if (a.has_time ? !(isfinite(a.seek_time) && a.seek_time >= 0)
		               : a.seek_seq > 9007199254740992ull)
			abort();
		break;
	case GOS_VIEWER_IN_PLAY:
		if (a.has_time || a.seek_seq > 9007199254740992ull ||
		    !(a.speed >= GOS_VIEWER_SPEED_MIN && a.speed <= GOS_VIEWER_SPEED_MAX))
			abort();
		break;
	case GOS_VIEWER_IN_BAD:
		if (!memchr(a.bad, '\0', sizeof(a.bad)) || !a.bad[0])
			abort();
		break;
	case GOS_VIEWER_IN_VIEWPORT: {
		const double v[5] = {a.viewport.x, a.viewport.y, a.viewport.w, a.viewport.h,
		                     a.viewport.zoom};
		for (int i = 0; i < 5; i++)
			if ((a.viewport_has & (1u << i)) && !isfinite(v[i]))
				abort();
		break;
	}
	case GOS_VIEWER_IN_PING:
		if (!isfinite(a.ping_t))   /* echoed in the pong: JSON has no inf */
			abort();
		break;
	case GOS_VIEWER_IN_SEARCH: {
		const struct gos_viewer_search *s = &a.search;
		size_t ql = strnlen(s->q, sizeof(s->q));
		if (!ql || ql > GOS_VIEWER_SEARCH_Q_MAX || !gos_utf8_valid(s->q, ql) ||
		    s->limit < 1 || s->limit > GOS_VIEWER_SEARCH_LIMIT_MAX ||
		    (!isnan(s->min_p) && !(s->min_p >= 0 && s->min_p <= 1)) ||
		    (!isnan(s->max_p) && !(s->max_p >= 0 && s->max_p <= 1)) ||
		    s->min_p > s->max_p || s->n_streams > GOS_VIEWER_SEARCH_STREAMS_MAX ||
		    (s->n_streams && !s->has_streams))
			abort();
		size_t used = 0;
		for (uint32_t i = 0; i < s->n_streams; i++) {
			const char *e = memchr(s->streams + used, '\0', sizeof(s->streams) - used);
			if (!e)
				abort();
			used = (size_t)(e - s->streams) + 1;
		}
		break;
	}
	default:
		break;
	}
	if (gos_viewer_parse(msg, size, &b) != t || (t == GOS_VIEWER_IN_SEEK &&
	    (b.seek_seq != a.seek_seq || b.has_time != a.has_time)) ||
	    (t == GOS_VIEWER_IN_SEARCH && (strcmp(b.search.q, a.search.q) ||
	                                   b.search.limit != a.search.limit)))
		abort();
	free(msg);
	return 0;
}
