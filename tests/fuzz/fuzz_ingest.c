/* libFuzzer target for the ingest line parser. The input is one line.
 * gos_protocol_parse() (fast path, cJSON behind it) must answer exactly as
 * the cJSON path alone (gos_protocol_parse_reference): same accept/reject,
 * same reason and message, same event field by field; whatever the fast
 * path takes on its own, the reference accepts as the same event. Accepted
 * events and rejects must serialize. Any difference aborts, which libFuzzer
 * reports as a crash with the input that caused it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_protocol.h"
#include "gos_protocol_internal.h"
#include "gos_utf8.h"
#include "event_equal.h"

static void die(const char *what, const struct gos_parse_error *a, const struct gos_parse_error *b)
{
	fprintf(stderr, "fuzz_ingest: %s\n  combined: %s: %s\n  reference: %s: %s\n", what,
	        gos_reject_name(a->reason), a->message, gos_reject_name(b->reason), b->message);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gos_arena a1, a2, a3;
	const char *line = (const char *)data;
	struct gos_event e1, e2, e3;
	struct gos_parse_error r1 = {0}, r2 = {0};
	memset(&e1, 0, sizeof(e1));
	memset(&e2, 0, sizeof(e2));
	memset(&e3, 0, sizeof(e3));
	bool ok1 = gos_protocol_parse(line, size, &e1, &a1, &r1);
	bool ok2 = gos_protocol_parse_reference(line, size, &e2, &a2, &r2);
	bool fast = gos_protocol_parse_fast(line, size, &e3, &a3);
	if (ok1 != ok2)
		die(ok1 ? "combined accepts, reference rejects" : "combined rejects, reference accepts", &r1, &r2);
	if (!ok1 && (r1.reason != r2.reason || strcmp(r1.message, r2.message)))
		die("rejected differently", &r1, &r2);
	if (!ok1 && (r1.reason == GOS_REJECT_NONE || !memchr(r1.message, 0, sizeof(r1.message)) || !r1.message[0]))
		die("a reject without a reason or message", &r1, &r2);
	if (ok1 && !same_event(&e1, &e2))
		die("accepted as different events", &r1, &r2);
	if (fast && !ok2)
		die("the fast path took a line the reference rejects", &r1, &r2);
	if (fast && !same_event(&e3, &e2))
		die("the fast path took a line as a different event", &r1, &r2);
	char *out = ok1 ? gos_protocol_serialize(&e1) : gos_protocol_error_line(7, &r1);
	if (!out || !gos_utf8_valid(out, strlen(out)))
		die("serializing the answer failed or gave invalid UTF-8", &r1, &r2);
	free(out);
	gos_arena_reset(&a1);
	gos_arena_reset(&a2);
	gos_arena_reset(&a3);
	return 0;
}
