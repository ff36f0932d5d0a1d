/* libFuzzer target for the ingest line parser. The input is one line.
 * gos_protocol_parse() (fast path, cJSON behind it) must answer exactly as
 * the cJSON path alone (gos_protocol_parse_reference): same accept/reject,
 * same reason and message, same event field by field; whatever the fast
 * path takes on its own, the reference accepts as the same event. Accepted
 * events and rejects must serialize. The same line read as Geometry OS's
 * message (gos_geo_parse, what the ingest tries when gos's parser finds no
 * "type") must either not be one, or be one that gives an event that
 * serializes, an action, or a reject with a reason and a sentence; its
 * replies must be valid UTF-8 JSON. Any difference aborts, which libFuzzer
 * reports as a crash with the input that caused it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_geo.h"
#include "gos_json.h"
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

	struct gos_geo_conn gc = {.conn = 3};
	struct gos_geo_msg gm;
	struct gos_event e4;
	struct gos_parse_error r4 = {0};
	memset(&e4, 0x5a, sizeof(e4));
	bool ok4 = gos_geo_parse(line, size, &gc, &e4, &a3, &gm, &r4);
	if (gm.dialect == GOS_GEO_NONE) {
		if (!ok4)
			die("geo: not Geometry OS's yet rejected", &r4, &r2);
	} else if (!ok4) {
		if (r4.reason == GOS_REJECT_NONE || !memchr(r4.message, 0, sizeof(r4.message)) || !r4.message[0] ||
		    !gos_utf8_valid(r4.message, strlen(r4.message)))
			die("geo: a reject without a reason or a valid sentence", &r4, &r2);
		out = gos_geo_error(gm.dialect, gm.sequence, 7, &r4, 1);
		cJSON *j = out ? gos_json_parse(out, strlen(out)) : NULL;
		if (!j || !gos_utf8_valid(out, strlen(out)))
			die("geo: the error reply is not JSON", &r4, &r2);
		cJSON_Delete(j);
		free(out);
	} else {
		if (gm.action == GOS_GEO_EVENT) {
			if (e4.type != GOS_EV_TOKEN && e4.type != GOS_EV_STATE)
				die("geo: an event that is no token or state", &r4, &r2);
			out = gos_protocol_serialize(&e4);
			struct gos_event back;
			struct gos_parse_error r5 = {0};
			if (!out || !gos_protocol_parse_reference(out, strlen(out), &back, &a2, &r5))
				die("geo: the event does not serialize into a line gos reads", &r5, &r4);
			free(out);
		} else if (gm.action == GOS_GEO_SYNC) {
			if (e4.type != GOS_EV_SYNC)
				die("geo: a sync that is no sync", &r4, &r2);
		} else if (gm.action != GOS_GEO_ACK && gm.action != GOS_GEO_IGNORED) {
			die("geo: no action", &r4, &r2);
		}
		char *rs[2] = {gos_geo_sync_reply(gm.dialect, gm.sequence, 1, 2, 3, 4, 5),
		               gos_geo_ack(gm.dialect, gm.sequence, gm.type, "alive", 5)};
		for (int i = 0; i < 2; i++) {
			cJSON *j = rs[i] ? gos_json_parse(rs[i], strlen(rs[i])) : NULL;
			if (!j || !gos_utf8_valid(rs[i], strlen(rs[i])))
				die("geo: a reply is not JSON", &r4, &r2);
			cJSON_Delete(j);
			free(rs[i]);
		}
	}
	gos_arena_reset(&a1);
	gos_arena_reset(&a2);
	gos_arena_reset(&a3);
	return 0;
}
