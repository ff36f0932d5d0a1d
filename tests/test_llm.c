/* test_llm: the OpenAI-compatible protocol pieces of net/gos_llm without
 * I/O: the request body, chunk -> tokens (with and without logprobs, several
 * entries per chunk, usage, errors, malformed chunks, long deltas), error
 * bodies, Retry-After and the model list. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "gos_llm.h"
#include "gos_test.h"
#include "gos_utf8.h"

static struct gos_arena arena;

static struct gos_llm_chunk parse(const char *s)
{
	struct gos_llm_chunk c;
	gos_arena_reset(&arena);
	gos_llm_parse_chunk(s, strlen(s), &c, &arena);
	return c;
}

static bool near(double a, double b)
{
	return fabs(a - b) < 1e-6;
}

static void test_request(void)
{
	struct gos_llm_request r = {
		.model = "qwen", .system = "Be brief", .prompt = "Hi \"there\"\n", .max_tokens = 64,
		.temperature = 0.7, .logprobs = true, .top_logprobs = 50, .include_usage = true,
	};
	char *s = gos_llm_request_json(&r);
	cJSON *o = cJSON_Parse(s);
	CHECK(o != NULL, "request is JSON: %s", s);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "stream")), "stream: true");
	CHECK(!strcmp(cJSON_GetObjectItem(o, "model")->valuestring, "qwen"), "model");
	CHECK(cJSON_GetObjectItem(o, "max_tokens")->valueint == 64, "max_tokens");
	CHECK(near(cJSON_GetObjectItem(o, "temperature")->valuedouble, 0.7), "temperature");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "logprobs")), "logprobs: true");
	CHECK(cJSON_GetObjectItem(o, "top_logprobs")->valueint == 20, "top_logprobs capped at 20");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "stream_options"), "include_usage")),
	      "stream_options.include_usage");
	cJSON *m = cJSON_GetObjectItem(o, "messages");
	CHECK(cJSON_GetArraySize(m) == 2, "system + user messages");
	CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content")->valuestring, "Hi \"there\"\n"),
	      "the prompt survives escaping");
	cJSON_Delete(o);
	free(s);

	struct gos_llm_request d = {.prompt = "x", .temperature = -1};
	s = gos_llm_request_json(&d);
	o = cJSON_Parse(s);
	CHECK(o && !cJSON_GetObjectItem(o, "model") && !cJSON_GetObjectItem(o, "max_tokens") &&
	      !cJSON_GetObjectItem(o, "temperature") && !cJSON_GetObjectItem(o, "logprobs") &&
	      !cJSON_GetObjectItem(o, "stream_options") &&
	      cJSON_GetArraySize(cJSON_GetObjectItem(o, "messages")) == 1,
	      "unset options are left out: %s", s);
	cJSON_Delete(o);
	free(s);

	struct gos_llm_request k0 = {.prompt = "x", .temperature = -1, .logprobs = true};
	s = gos_llm_request_json(&k0);
	CHECK(strstr(s, "\"logprobs\":true") && !strstr(s, "top_logprobs"), "top_logprobs 0: only logprobs: %s", s);
	free(s);
}

static void test_chunks(void)
{
	struct gos_llm_chunk c = parse("{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":"
	                               "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
	                               "\"logprobs\":null,\"finish_reason\":null}]}");
	CHECK(c.kind == GOS_LLM_CHUNK && c.n_tokens == 0 && !c.finish_reason && !c.has_logprobs,
	      "role-only first chunk: no token");

	c = parse("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\" Hello\"},\"logprobs\":{\"content\":"
	          "[{\"token\":\" Hello\",\"logprob\":-0.25,\"bytes\":[32,72],\"top_logprobs\":["
	          "{\"token\":\" Hello\",\"logprob\":-0.25},{\"token\":\" Hi\",\"logprob\":-1.5}]}]},"
	          "\"finish_reason\":null}]}");
	CHECK(c.kind == GOS_LLM_CHUNK && c.n_tokens == 1 && c.has_logprobs, "one token with logprobs");
	CHECK(c.n_tokens == 1 && !strcmp(c.tokens[0].text, " Hello") && near(c.tokens[0].logprob, -0.25),
	      "text and logprob");
	CHECK(c.n_tokens == 1 && c.tokens[0].n_alts == 2 && !strcmp(c.tokens[0].alts[1].token, " Hi") &&
	      near(c.tokens[0].alts[1].logprob, -1.5), "alternatives");

	c = parse("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abc\"},\"logprobs\":{\"content\":["
	          "{\"token\":\"a\",\"logprob\":-1,\"top_logprobs\":[]},{\"token\":\"b\",\"logprob\":-2},"
	          "{\"token\":\"c\",\"logprob\":-3}]}}]}");
	CHECK(c.n_tokens == 3 && !strcmp(c.tokens[1].text, "b") && near(c.tokens[2].logprob, -3),
	      "entries that spell the delta: one token each");

	c = parse("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xE2\x82\xAC\"},\"logprobs\":{\"content\":["
	          "{\"token\":\"\\\\xe2\\\\x82\",\"logprob\":-1},{\"token\":\"\\\\xac\",\"logprob\":-0.5}]}}]}");
	CHECK(c.n_tokens == 1 && !strcmp(c.tokens[0].text, "\xE2\x82\xAC") && near(c.tokens[0].logprob, -1.5) &&
	      c.tokens[0].n_alts == 0, "entries that do not spell it: one token, summed logprob");

	c = parse("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"logprobs\":{\"content\":["
	          "{\"token\":\"x\"}]}}]}");
	CHECK(c.n_tokens == 1 && isnan(c.tokens[0].logprob), "an entry without a logprob: no confidence");

	c = parse("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"plain\"},\"finish_reason\":null}]}");
	CHECK(c.n_tokens == 1 && !c.has_logprobs && isnan(c.tokens[0].logprob) && c.tokens[0].n_alts == 0,
	      "no logprobs: logprob NAN");
	CHECK(isnan(gos_llm_confidence(c.tokens[0].logprob)), "no logprobs: no confidence");

	c = parse("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}");
	CHECK(c.n_tokens == 0 && c.finish_reason && !strcmp(c.finish_reason, "stop"), "finish_reason");

	c = parse("{\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":42,\"total_tokens\":49}}");
	CHECK(c.kind == GOS_LLM_CHUNK && c.has_usage && c.prompt_tokens == 7 && c.completion_tokens == 42,
	      "usage chunk");

	CHECK(parse(" [DONE] ").kind == GOS_LLM_DONE, "[DONE]");
	c = parse("{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}");
	CHECK(c.kind == GOS_LLM_ERROR && !strcmp(c.message, "boom"), "error object: %s", c.message);
	c = parse("{\"choices\": [{\"delta\": {\"content\": \"brok");
	CHECK(c.kind == GOS_LLM_MALFORMED && strstr(c.message, "not valid JSON"), "truncated JSON is malformed");
	CHECK(parse("[1,2]").kind == GOS_LLM_MALFORMED, "an array is malformed");
	CHECK(parse("{\"foo\":1}").kind == GOS_LLM_MALFORMED, "neither choices nor usage is malformed");
	CHECK(parse("").kind == GOS_LLM_MALFORMED, "empty data is malformed");

	c = parse("{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"B\"}},{\"index\":0,\"delta\":{\"content\":\"A\"}}]}");
	CHECK(c.n_tokens == 1 && !strcmp(c.tokens[0].text, "A") && c.other_choices == 1, "only choice 0 is shown");

	c = parse("{\"choices\":[{\"index\":0,\"text\":\"legacy\"}]}");
	CHECK(c.n_tokens == 1 && !strcmp(c.tokens[0].text, "legacy"), "legacy completions text");

	c = parse("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"bad \xFF byte\"}}]}");
	CHECK(c.kind == GOS_LLM_CHUNK && c.n_tokens == 0, "content that is not UTF-8 makes no token");

	/* 26 alternatives, the first without a logprob: it is dropped, 20 good ones kept. */
	char big[8192];
	size_t at = (size_t)snprintf(big, sizeof big, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t\"},"
	                             "\"logprobs\":{\"content\":[{\"token\":\"t\",\"logprob\":-0.5,\"top_logprobs\":["
	                             "{\"token\":\"nolp\"}");
	for (int i = 0; i < 25; i++)
		at += (size_t)snprintf(big + at, sizeof big - at, ",{\"token\":\"a%d\",\"logprob\":%d}", i, -i);
	snprintf(big + at, sizeof big - at, "]}]}}]}");
	c = parse(big);
	CHECK(c.n_tokens == 1 && c.tokens[0].n_alts == GOS_MAX_ALTS && !strcmp(c.tokens[0].alts[0].token, "a0") &&
	      !strcmp(c.tokens[0].alts[19].token, "a19"),
	      "alternatives: bad ones dropped, capped at %d (%u)", GOS_MAX_ALTS,
	      c.n_tokens ? c.tokens[0].n_alts : 0);

	/* A delta over GOS_MAX_TEXT: pieces on character boundaries. */
	size_t n = GOS_MAX_TEXT * 2 + 100;
	char *text = malloc(n * 3 + 1);
	size_t tl = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(text + tl, "\xE2\x82\xAC", 3);   /* 3-byte characters straddle any cut */
		tl += 3;
	}
	text[tl] = '\0';
	char *json = malloc(tl + 128);
	snprintf(json, tl + 128, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"}}]}", text);
	c = parse(json);
	size_t sum = 0;
	bool ok = c.n_tokens > 1;
	for (uint32_t i = 0; i < c.n_tokens; i++) {
		size_t l = strlen(c.tokens[i].text);
		ok = ok && l <= GOS_MAX_TEXT && gos_utf8_valid(c.tokens[i].text, l) &&
		     !memcmp(text + sum, c.tokens[i].text, l);
		sum += l;
	}
	CHECK(ok && sum == tl, "a long delta is split into valid UTF-8 pieces (%u pieces)", c.n_tokens);
	free(text);
	free(json);
}

static void test_confidence(void)
{
	CHECK(fabs(gos_llm_confidence(-0.1) - exp(-0.1)) < 1e-6, "confidence = exp(logprob)");
	CHECK(gos_llm_confidence(0.3) == 1.0f, "clamped at 1");
	CHECK(gos_llm_confidence(-1000) == 0.0f, "very unlikely: 0");
	CHECK(isnan(gos_llm_confidence(NAN)), "unknown stays unknown");
}

static void msg_is(const char *body, const char *want)
{
	char out[256];
	gos_llm_error_message(body, strlen(body), out, sizeof out);
	CHECK(!strcmp(out, want), "error message of %s: '%s' (want '%s')", body, out, want);
}

static void test_errors(void)
{
	msg_is("{\"error\":{\"message\":\"model not found\",\"type\":\"x\"}}", "model not found");
	msg_is("{\"error\":\"Unauthorized\"}", "Unauthorized");
	msg_is("{\"object\":\"error\",\"message\":\"vllm says no\"}", "vllm says no");
	msg_is("{\"detail\":\"Not Found\"}", "Not Found");
	msg_is("{\"detail\":[{\"loc\":[\"body\"],\"msg\":\"bad\"}]}", "[{\"loc\":[\"body\"],\"msg\":\"bad\"}]");
	msg_is("  Bad Gateway\r\nmore text", "Bad Gateway");
	msg_is("<html><body>502</body></html>", "");
	msg_is("{\"error\":{\"message\":\"tab\\there\\nnext\"}}", "tab here");
	msg_is("", "");
	char out[8];
	gos_llm_error_message("{\"message\":\"\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\"}", 23, out, sizeof out);
	CHECK(strlen(out) == 6 && gos_utf8_valid(out, 6), "truncated on a character boundary: '%s'", out);

	const char *b = "{\"error\":{\"message\":\"Unknown parameter: TOP_LOGPROBS\"}}";
	CHECK(gos_llm_error_mentions(b, strlen(b), "logprob"), "mentions, any case");
	CHECK(!gos_llm_error_mentions(b, strlen(b), "stream_options"), "does not mention");
}

static void test_retry_after(void)
{
	time_t now = time(NULL);
	CHECK(gos_llm_retry_after("5", now) == 5, "delta-seconds");
	CHECK(gos_llm_retry_after(" 2.5\r\n", now) == 2.5, "with spaces and CRLF");
	CHECK(gos_llm_retry_after("soon", now) == -1, "unreadable: -1");
	CHECK(gos_llm_retry_after("-3", now) == -1, "negative: -1");
	CHECK(gos_llm_retry_after(NULL, now) == -1 && gos_llm_retry_after("", now) == -1, "absent: -1");
	char date[64];
	time_t later = now + 30;
	struct tm tm;
	gmtime_r(&later, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	double s = gos_llm_retry_after(date, now);
	CHECK(s >= 29 && s <= 31, "HTTP-date 30 s ahead: %g", s);
	CHECK(gos_llm_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0, "a past date: now");
}

static void test_models(void)
{
	const char *a = "{\"object\":\"list\",\"data\":[{\"id\":\"qwen2.5-7b\"},{\"id\":\"other\"}]}";
	char *id = gos_llm_first_model(a, strlen(a));
	CHECK(id && !strcmp(id, "qwen2.5-7b"), "first model");
	free(id);
	CHECK(!gos_llm_first_model("{\"data\":[]}", 11), "no model");
	CHECK(!gos_llm_first_model("nope", 4), "not JSON: no model");
}

/* --completions: a raw prompt, logprobs as a count, the seed. */
static void test_completions(void)
{
	struct gos_llm_request r = {.model = "base", .system = "ignored", .prompt = "Once upon",
	                            .logprobs = true, .top_logprobs = 0, .completions = true,
	                            .has_seed = true, .seed = 42, .temperature = -1};
	char *s = gos_llm_request_json(&r);
	cJSON *o = cJSON_Parse(s);
	CHECK(o && !strcmp(cJSON_GetObjectItem(o, "prompt")->valuestring, "Once upon") &&
	      !cJSON_GetObjectItem(o, "messages") && cJSON_GetObjectItem(o, "logprobs")->valueint == 1 &&
	      !cJSON_GetObjectItem(o, "top_logprobs") && cJSON_GetObjectItem(o, "seed")->valueint == 42,
	      "completions body: prompt, logprobs 1, seed: %s", s);
	cJSON_Delete(o);
	free(s);

	/* llama.cpp's completions: text + logprobs.content[] */
	struct gos_llm_chunk c = parse("{\"choices\":[{\"text\":\" rail\",\"index\":0,\"logprobs\":{\"content\":"
	    "[{\"id\":1,\"token\":\" rail\",\"logprob\":-2.5,\"top_logprobs\":[{\"token\":\"x\",\"logprob\":-3}]}]},"
	    "\"finish_reason\":null}],\"object\":\"text_completion\"}");
	CHECK(c.n_tokens == 1 && !strcmp(c.tokens[0].text, " rail") && near(c.tokens[0].logprob, -2.5) &&
	      c.tokens[0].n_alts == 1, "completions chunk, content[] logprobs");
	/* OpenAI's legacy arrays: two tokens spell the text */
	c = parse("{\"choices\":[{\"text\":\"ab\",\"index\":0,\"logprobs\":{\"tokens\":[\"a\",\"b\"],"
	          "\"token_logprobs\":[-1,-2],\"top_logprobs\":[{\"a\":-1,\"z\":-4},{\"b\":-2}],"
	          "\"text_offset\":[0,1]},\"finish_reason\":\"length\"}]}");
	CHECK(c.n_tokens == 2 && c.has_logprobs && !strcmp(c.tokens[1].text, "b") && near(c.tokens[1].logprob, -2) &&
	      c.tokens[0].n_alts == 2 && !strcmp(c.tokens[0].alts[1].token, "z") && near(c.tokens[0].alts[1].logprob, -4) &&
	      c.finish_reason && !strcmp(c.finish_reason, "length"), "legacy logprobs arrays: one token each");
	/* a null logprob (the echoed first token): the text as one token, no confidence */
	c = parse("{\"choices\":[{\"text\":\"ab\",\"logprobs\":{\"tokens\":[\"a\",\"b\"],"
	          "\"token_logprobs\":[null,-2],\"top_logprobs\":[null,null]}}]}");
	CHECK(c.n_tokens == 1 && isnan(c.tokens[0].logprob), "legacy arrays with a null logprob");
}

/* Which errors are worth asking again. */
static void test_error_kind(void)
{
	static const struct {
		const char *body;
		enum gos_llm_error_kind want;
	} cases[] = {
		/* llama.cpp b4750: HTTP 500 for a request it refuses */
		{"{\"error\":{\"code\":500,\"message\":\"top_logprobs requires logprobs to be set to true\","
		 "\"type\":\"server_error\"}}", GOS_LLM_ERR_INVALID},
		/* its "error:" line when the prompt is too long */
		{"{\"code\":400,\"message\":\"the request exceeds the available context size\","
		 "\"type\":\"invalid_request_error\"}", GOS_LLM_ERR_INVALID},
		{"{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}",
		 GOS_LLM_ERR_TRANSIENT},
		{"{\"error\":{\"message\":\"server busy, try again\"}}", GOS_LLM_ERR_TRANSIENT},
		{"{\"error\":{\"code\":\"429\",\"message\":\"slow down\"}}", GOS_LLM_ERR_TRANSIENT},
		{"{\"error\":{\"code\":500,\"message\":\"the model crashed\"}}", GOS_LLM_ERR_TRANSIENT},
		{"{\"error\":{\"message\":\"internal error\"}}", GOS_LLM_ERR_UNKNOWN},
		{"{\"error\":{\"code\":401,\"message\":\"who are you\"}}", GOS_LLM_ERR_INVALID},
		{"Service Unavailable", GOS_LLM_ERR_TRANSIENT},
		{"", GOS_LLM_ERR_UNKNOWN},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum gos_llm_error_kind k = gos_llm_error_kind(cases[i].body, strlen(cases[i].body));
		CHECK(k == cases[i].want, "error kind of %s: %d, want %d", cases[i].body, k, cases[i].want);
	}
}

int main(void)
{
	test_request();
	test_completions();
	test_error_kind();
	test_chunks();
	test_confidence();
	test_errors();
	test_retry_after();
	test_models();
	gos_arena_finish(&arena);
	return gos_test_report("test_llm");
}
