/* gos_json: every JSON reader in gos parses NUL-terminated copies, never a
 * length-bounded buffer (cJSON before 1.7.18 reads one byte past the length).
 * Linked with tests/json_guard.c, which aborts on any cJSON_ParseWithLength*
 * call; inputs are exact-size heap copies so ASan catches any over-read. */
#include <stdlib.h>
#include <string.h>

#include "gos_json.h"
#include "gos_llm.h"
#include "gos_protocol_internal.h"
#include "gos_test.h"

/* An exact-size heap copy: nothing readable after the last byte. */
static char *exact(const char *s, size_t len)
{
	char *b = malloc(len ? len : 1);
	if (!b)
		abort();
	memcpy(b, s, len);
	return b;
}

static void test_parse(void)
{
	static const char obj[] = "{\"type\":\"sync\",\"n\":12}";
	char *b = exact(obj, sizeof(obj) - 1);
	size_t stop = 0;
	cJSON *j = gos_json_parse_at(b, sizeof(obj) - 1, &stop);
	CHECK(cJSON_IsObject(j), "an object in an exact-size buffer parses");
	CHECK(stop == sizeof(obj) - 1, "stop at the end of the value: %zu", stop);
	CHECK(cJSON_GetObjectItem(j, "n") && cJSON_GetObjectItem(j, "n")->valueint == 12,
	      "member read back");
	cJSON_Delete(j);

	/* A number that ends exactly at the buffer's end: the case where an
	 * old cJSON looks at the next byte to see whether the number goes on. */
	j = gos_json_parse(b + 19, 2);
	CHECK(cJSON_IsNumber(j) && j->valueint == 12, "a number ending at len is 12, not more");
	cJSON_Delete(j);
	j = gos_json_parse(b, 5);
	CHECK(j == NULL, "a truncated object is not JSON");
	free(b);

	static const char tail[] = "{\"a\":1} trailing";
	b = exact(tail, sizeof(tail) - 1);
	j = gos_json_parse_at(b, sizeof(tail) - 1, &stop);
	CHECK(cJSON_IsObject(j) && stop == 7, "text after the value is left to the caller (%zu)", stop);
	cJSON_Delete(j);
	free(b);

	j = gos_json_parse_at("{\"a\":}", 6, &stop);
	CHECK(j == NULL && stop == 5, "error offset %zu", stop);

	/* Longer than the stack copy: the heap path. */
	size_t big = 64 * 1024;
	char *s = malloc(big);
	if (!s)
		abort();
	memset(s, ' ', big);
	memcpy(s, "{\"k\":\"", 6);
	memset(s + 6, 'x', big - 8);
	memcpy(s + big - 2, "\"}", 2);
	j = gos_json_parse(s, big);
	const cJSON *k = cJSON_GetObjectItem(j, "k");
	CHECK(cJSON_IsString(k) && strlen(k->valuestring) == big - 8, "64 KiB text parses whole");
	cJSON_Delete(j);
	free(s);
}

static void test_protocol_reference_path(void)
{
	static const char line[] =
		"{\"type\":\"token_activation\",\"token_id\":\"a\",\"token_text\":\"x\",\"confidence\":0.5,\"timestamp\":7}";
	char *b = exact(line, sizeof(line) - 1);
	struct gos_arena arena = {0};
	struct gos_event ev;
	struct gos_parse_error err;
	CHECK(gos_protocol_parse_reference(b, sizeof(line) - 1, &ev, &arena, &err),
	      "the ingest parser's cJSON path reads an exact-size line: %s", err.message);
	CHECK(ev.type == GOS_EV_TOKEN && ev.token.timestamp == 7.0, "timestamp 7 read to its end");
	free(b);
	gos_arena_finish(&arena);
}

static void test_llm(void)
{
	static const char chunk[] =
		"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}";
	char *b = exact(chunk, sizeof(chunk) - 1);
	struct gos_arena arena = {0};
	struct gos_llm_chunk out;
	gos_llm_parse_chunk(b, sizeof(chunk) - 1, &out, &arena);
	CHECK(out.kind == GOS_LLM_CHUNK && out.n_tokens == 1, "an SSE chunk reads (kind %d)",
	      (int)out.kind);
	free(b);
	gos_arena_finish(&arena);

	static const char error[] = "{\"error\":{\"message\":\"model not loaded\"}}";
	b = exact(error, sizeof(error) - 1);
	char msg[64];
	gos_llm_error_message(b, sizeof(error) - 1, msg, sizeof(msg));
	CHECK(!strcmp(msg, "model not loaded"), "error body read: '%s'", msg);
	free(b);

	static const char models[] = "{\"data\":[{\"id\":\"qwen\"}]}";
	b = exact(models, sizeof(models) - 1);
	char *id = gos_llm_first_model(b, sizeof(models) - 1);
	CHECK(id && !strcmp(id, "qwen"), "first model read: %s", id ? id : "(null)");
	free(id);
	free(b);
}

int main(void)
{
	test_parse();
	test_protocol_reference_path();
	test_llm();
	return gos_test_report("test_json");
}
