/* Wire protocol: parse and validate ingest lines into struct gos_event, and
 * serialize events, error lines and replies (see gos_protocol.h). Parsing
 * sits on the ingest hot path. It has two paths (gos_protocol_internal.h):
 * the cJSON path is the reference (protocol_cjson.c, every reject comes from
 * it); a fast path in front of it (protocol_fast.c) takes the common shapes
 * without building a tree and hands everything else to it. The serializers
 * are in protocol_write.c. */
#include <string.h>

#include "gos_protocol.h"
#include "gos_protocol_internal.h"

static const char *const reject_names[GOS_REJECT_COUNT_] = {
	[GOS_REJECT_NONE] = "none",
	[GOS_REJECT_NOT_JSON] = "not_json",
	[GOS_REJECT_UNKNOWN_TYPE] = "unknown_type",
	[GOS_REJECT_MISSING_FIELD] = "missing_field",
	[GOS_REJECT_WRONG_TYPE] = "wrong_type",
	[GOS_REJECT_NOT_FINITE] = "not_finite",
	[GOS_REJECT_CONFIDENCE] = "confidence",
	[GOS_REJECT_UTF8] = "utf8",
	[GOS_REJECT_TOO_LONG] = "too_long",
	[GOS_REJECT_LINE_TOO_LONG] = "line_too_long",
	[GOS_REJECT_TIMEOUT] = "timeout",
};

const char *gos_reject_name(enum gos_reject r)
{
	if ((unsigned)r >= GOS_REJECT_COUNT_)
		return "unknown";
	return reject_names[r];
}

bool gos_protocol_parse(const char *line, size_t len, struct gos_event *ev,
                        struct gos_arena *arena, struct gos_parse_error *err)
{
	err->reason = GOS_REJECT_NONE;
	err->message[0] = '\0';
	/* The fast path checks length, UTF-8 and NULs itself as it goes. */
	if (gos_protocol_parse_fast(line, len, ev, arena))
		return true;
	return gos_protocol_parse_reference(line, len, ev, arena, err);
}
