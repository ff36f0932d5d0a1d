/* cJSON on NUL-terminated copies (see gos_json.h for why). */
#include <stdlib.h>
#include <string.h>

#include "gos_json.h"

/* Most texts gos parses (ingest lines, viewer messages, SSE chunks) are
 * short: those are copied to the stack. */
#define STACK_COPY 4096

cJSON *gos_json_parse_at(const char *text, size_t len, size_t *stop)
{
	char small[STACK_COPY];
	char *copy = len < sizeof(small) ? small : malloc(len + 1);
	if (!copy)
		abort();
	if (len)
		memcpy(copy, text, len);
	copy[len] = '\0';
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithOpts(copy, &end, 0);
	if (stop)
		*stop = end && end >= copy && end <= copy + len ? (size_t)(end - copy) : 0;
	if (copy != small)
		free(copy);
	return root;
}

cJSON *gos_json_parse(const char *text, size_t len)
{
	return gos_json_parse_at(text, len, NULL);
}
