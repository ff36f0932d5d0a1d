/* cJSON over text given as (pointer, length), not NUL-terminated.
 *
 * cJSON before 1.7.18 reads one byte past the length passed to
 * cJSON_ParseWithLength*() (Debian 12's build carries the fix; other builds
 * may not). gos hands cJSON buffers that end exactly at that length (a line
 * in a socket buffer, a WebSocket message, an HTTP body), so every parse in
 * gos goes through here: the text is copied into a NUL-terminated buffer
 * (on the stack when small) and cJSON never sees a length. gos code calls
 * no cJSON_Parse* function directly (tests/test_json.c holds that).
 *
 * Threads: any thread; nothing shared. */
#ifndef GOS_JSON_H
#define GOS_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Parses len bytes of text (a NUL inside ends the text there, as in cJSON).
 * Text after the first value is ignored. NULL when it is not JSON. The
 * caller owns the tree (cJSON_Delete). */
cJSON *gos_json_parse(const char *text, size_t len);

/* As gos_json_parse; *stop gets the offset where cJSON stopped: just past
 * the value on success, near the error on failure. */
cJSON *gos_json_parse_at(const char *text, size_t len, size_t *stop);

#endif
