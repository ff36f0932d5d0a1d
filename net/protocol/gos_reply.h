/* gos_reply: the one reader of the lines the compositor sends back to a
 * producer on the Unix socket, the counterpart of gos_protocol_sync_reply(),
 * gos_protocol_error_line() and gos_protocol_screenshot_reply() (and of the
 * ingest's too_many_producers refusal). A line in, a plain tagged struct
 * out; gos_client (its sync), gos-bridge and gos-shot read replies only
 * through here. No I/O, no allocation, nothing shared: any thread. */
#ifndef GOS_REPLY_H
#define GOS_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_event.h"

enum gos_reply_type {
	GOS_REPLY_INVALID = 0,  /* a line this parser does not understand (why says why) */
	GOS_REPLY_SYNC,         /* {"type":"sync","applied":N,"rejected":M,"tokens":T} */
	GOS_REPLY_ERROR,        /* {"type":"error","line":N,"reason":"...","code":"..."} */
	GOS_REPLY_SCREENSHOT,   /* {"type":"screenshot","path":"...","ok":...,...} */
};

/* Longest reason and code kept, in bytes; longer ones are cut on a UTF-8
 * character boundary. */
#define GOS_REPLY_MAX_REASON 1023
#define GOS_REPLY_MAX_CODE   63

/* The answer to a sync barrier: the connection's counts at the barrier and
 * the tokens on the map. */
struct gos_reply_sync {
	uint64_t applied, rejected, tokens;
};

/* A rejected line (line: its number on the connection, 0 for a refused
 * connection). code is the reject name ("not_json", "too_many_producers",
 * ...), "" from compositors that sent none. */
struct gos_reply_error {
	uint64_t line;
	char code[GOS_REPLY_MAX_CODE + 1];
	char reason[GOS_REPLY_MAX_REASON + 1];
};

/* The answer to a screenshot request. ok: width, height and tokens are set
 * and reason is ""; not ok: reason is set and the numbers are 0. */
struct gos_reply_screenshot {
	bool ok;
	uint32_t width, height;
	uint64_t tokens;
	char path[GOS_MAX_PATH + 1];
	char reason[GOS_REPLY_MAX_REASON + 1];
};

/* A parsed reply. Exactly the member named by type is set; why is "" unless
 * type is GOS_REPLY_INVALID. About 5 KiB: fine on a stack. */
struct gos_reply {
	enum gos_reply_type type;
	union {
		struct gos_reply_sync sync;
		struct gos_reply_error error;
		struct gos_reply_screenshot shot;
	};
	char why[160];
};

/* Parses one line (without its '\n'; need not be NUL-terminated) into *out
 * and returns out->type. A line is understood when it is one JSON object
 * (whitespace around it allowed) whose "type" is sync, error or screenshot
 * and that has every field its serializer writes, with the right JSON type
 * ("code" may be absent). Counts are whole numbers from 0 to 2^64 - 1; cJSON
 * reads them as doubles, so above 2^53 they come back rounded (UINT64_MAX
 * as UINT64_MAX). width and height fit in 32 bits. Fields it does not know
 * are ignored. Anything else (not JSON, text after the object, another
 * type, a missing or mistyped field) gives GOS_REPLY_INVALID with one
 * phrase in out->why. */
enum gos_reply_type gos_reply_parse(const char *line, size_t len, struct gos_reply *out);

/* Stable name of a reply type: "sync", "error", "screenshot", "invalid". */
const char *gos_reply_type_name(enum gos_reply_type t);

#endif
