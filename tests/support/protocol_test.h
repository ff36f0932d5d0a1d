/* For the protocol tests, header-only (include after gos_test.h): parsing
 * from exact-size heap copies, and accept_at() that CHECKs a line is taken.
 * Each including test program has its own arena. */
#ifndef GOS_PROTOCOL_TEST_H
#define GOS_PROTOCOL_TEST_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gos_protocol.h"
#include "gos_test.h"

static struct gos_arena arena;

/* Parses from an exact-size heap copy with no NUL after it, freed before the
 * caller looks at the event: ASan then catches any read past len and any
 * string left pointing into the line instead of the arena. */
static bool parse_n(const char *s, size_t len, struct gos_event *ev, struct gos_parse_error *err)
{
	char *buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	memcpy(buf, s, len);
	bool ok = gos_protocol_parse(buf, len, ev, &arena, err);
	free(buf);
	return ok;
}

static bool accept_at(int line, const char *s, size_t len, struct gos_event *ev)
{
	struct gos_parse_error err;
	bool ok = parse_n(s, len, ev, &err);
	CHECK(ok, "line %d: rejected (%s: %s): %.200s", line, gos_reject_name(err.reason),
	      err.message, s);
	if (ok)
		CHECK(err.reason == GOS_REJECT_NONE, "line %d: reason set on success", line);
	return ok;
}

#endif
