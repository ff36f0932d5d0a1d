/* Linked with -Wl,--wrap=cJSON_ParseWithLength,--wrap=cJSON_ParseWithLengthOpts
 * into tests that drive gos's JSON readers: any gos code that hands cJSON a
 * length-bounded buffer (which cJSON before 1.7.18 over-reads by one byte)
 * aborts the test with the call named. gos parses through gos_json.h. */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

cJSON *__wrap_cJSON_ParseWithLength(const char *value, size_t len);
cJSON *__wrap_cJSON_ParseWithLengthOpts(const char *value, size_t len, const char **end,
                                        cJSON_bool require_null);

cJSON *__wrap_cJSON_ParseWithLength(const char *value, size_t len)
{
	(void)value;
	fprintf(stderr, "json_guard: gos called cJSON_ParseWithLength(len %zu): cJSON < 1.7.18 "
	        "reads a byte past len; parse through gos_json_parse()\n", len);
	abort();
}

cJSON *__wrap_cJSON_ParseWithLengthOpts(const char *value, size_t len, const char **end,
                                        cJSON_bool require_null)
{
	(void)value;
	(void)end;
	(void)require_null;
	fprintf(stderr, "json_guard: gos called cJSON_ParseWithLengthOpts(len %zu): cJSON < "
	        "1.7.18 reads a byte past len; parse through gos_json_parse_at()\n", len);
	abort();
}
