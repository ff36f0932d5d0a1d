/* Unit tests of the protocol parser (net/protocol/): every accepted shape,
 * every reject reason (reason code and a message naming the field), UTF-8
 * edge cases, inputs that are not NUL-terminated, the line limit, the
 * screenshot request, reject names, and the arena after a reject. The
 * serializers are tested in test_protocol_write.c. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event_equal.h"
#include "gos_protocol.h"
#include "gos_test.h"
#include "gos_utf8.h"
#include "protocol_test.h"


/* The line is rejected for reason, and the message holds needle (the field). */
static void reject_at(int line, const char *s, size_t len, enum gos_reject reason, const char *needle)
{
	struct gos_event ev;
	struct gos_parse_error err;
	bool ok = parse_n(s, len, &ev, &err);
	CHECK(!ok, "line %d: accepted, expected %s: %.200s", line, gos_reject_name(reason), s);
	if (ok)
		return;
	CHECK(err.reason == reason, "line %d: reason %s (%s), expected %s", line,
	      gos_reject_name(err.reason), err.message, gos_reject_name(reason));
	CHECK(strstr(err.message, needle) != NULL, "line %d: message \"%s\" does not name \"%s\"",
	      line, err.message, needle);
	size_t mlen = strnlen(err.message, sizeof(err.message));
	CHECK(mlen > 10 && mlen < sizeof(err.message), "line %d: message length %zu", line, mlen);
	CHECK(gos_utf8_valid(err.message, mlen), "line %d: message is not valid UTF-8", line);
	CHECK(ev.type == GOS_EV_NONE, "line %d: event type %d left after a reject", line, ev.type);
}

#define ACCEPT(s, ev) accept_at(__LINE__, (s), strlen(s), (ev))
#define REJECT(s, reason, needle) reject_at(__LINE__, (s), strlen(s), (reason), (needle))

/* ---- accepted shapes ------------------------------------------------------ */

static void test_token_shapes(void)
{
	struct gos_event ev;
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"abc123\",\"token_text\":\"hello\","
	           "\"timestamp\":1707345600.0,\"position\":[100.0,200.0],\"confidence\":0.95}", &ev)) {
		CHECK(ev.type == GOS_EV_TOKEN, "type %d", ev.type);
		CHECK(!strcmp(ev.token.id, "abc123"), "id %s", ev.token.id);
		CHECK(!strcmp(ev.token.text, "hello"), "text %s", ev.token.text);
		CHECK(ev.token.timestamp == 1707345600.0, "timestamp %f", ev.token.timestamp);
		CHECK(ev.token.has_position && ev.token.x == 100.0f && ev.token.y == 200.0f,
		      "position %d %f %f", ev.token.has_position, ev.token.x, ev.token.y);
		CHECK(ev.token.confidence == 0.95f, "confidence %f", ev.token.confidence);
		CHECK(!strcmp(ev.token.stream, ""), "stream \"%s\"", ev.token.stream);
		CHECK(isnan(ev.token.logprob), "logprob %f", ev.token.logprob);
		CHECK(ev.token.n_alts == 0 && ev.token.alts == NULL, "alts %u", ev.token.n_alts);
	}
	/* Minimal: no position, empty text, integer timestamp, confidence 0. */
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"t\",\"token_text\":\"\","
	           "\"timestamp\":5,\"confidence\":0}", &ev)) {
		CHECK(!ev.token.has_position, "has_position without a position");
		CHECK(!strcmp(ev.token.text, ""), "text \"%s\"", ev.token.text);
		CHECK(ev.token.timestamp == 5.0 && ev.token.confidence == 0.0f, "numbers %f %f",
		      ev.token.timestamp, ev.token.confidence);
	}
	/* No confidence (a server without logprobs): unknown, drawn neutral. */
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"t\",\"token_text\":\"x\","
	           "\"timestamp\":1}", &ev))
		CHECK(isnan(ev.token.confidence), "absent confidence is NAN, got %f", ev.token.confidence);
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"t\",\"token_text\":\"x\","
	           "\"timestamp\":-1.5e3,\"confidence\":1,\"stream\":\"gen-7\"}", &ev)) {
		CHECK(!strcmp(ev.token.stream, "gen-7"), "stream \"%s\"", ev.token.stream);
		CHECK(ev.token.confidence == 1.0f && ev.token.timestamp == -1500.0, "numbers");
	}
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"t\",\"token_text\":\"x\","
	           "\"timestamp\":1,\"confidence\":0.5,\"logprob\":-0.6931}", &ev))
		CHECK(ev.token.logprob == -0.6931f, "logprob %f", ev.token.logprob);
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"t\",\"token_text\":\"x\","
	           "\"timestamp\":1,\"confidence\":1,\"logprob\":0}", &ev))
		CHECK(ev.token.logprob == 0.0f, "logprob %f", ev.token.logprob);
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"t\",\"token_text\":\" the\","
	           "\"timestamp\":1,\"confidence\":0.7,\"logprob\":-0.35,\"top_logprobs\":"
	           "[{\"token\":\" the\",\"logprob\":-0.35},{\"token\":\" a\",\"logprob\":-1.5,\"bytes\":[32,97]}]}",
	           &ev)) {
		CHECK(ev.token.n_alts == 2, "n_alts %u", ev.token.n_alts);
		if (ev.token.n_alts == 2) {
			CHECK(!strcmp(ev.token.alts[0].token, " the") && ev.token.alts[0].logprob == -0.35f,
			      "alt 0 %s %f", ev.token.alts[0].token, ev.token.alts[0].logprob);
			CHECK(!strcmp(ev.token.alts[1].token, " a") && ev.token.alts[1].logprob == -1.5f,
			      "alt 1 %s %f", ev.token.alts[1].token, ev.token.alts[1].logprob);
		}
	}
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"t\",\"token_text\":\"x\","
	           "\"timestamp\":1,\"confidence\":0.1,\"top_logprobs\":[]}", &ev))
		CHECK(ev.token.n_alts == 0, "n_alts %u", ev.token.n_alts);

	/* More than GOS_MAX_ALTS alternatives: all checked, the first 20 kept. */
	char big[4096];
	int o = snprintf(big, sizeof(big), "{\"type\":\"token_activation\",\"token_id\":\"t\","
	                 "\"token_text\":\"x\",\"timestamp\":1,\"confidence\":0.1,\"top_logprobs\":[");
	for (int i = 0; i < 25; i++)
		o += snprintf(big + o, sizeof(big) - (size_t)o, "%s{\"token\":\"a%d\",\"logprob\":-%d}",
		              i ? "," : "", i, i);
	snprintf(big + o, sizeof(big) - (size_t)o, "]}");
	if (ACCEPT(big, &ev)) {
		CHECK(ev.token.n_alts == GOS_MAX_ALTS, "n_alts %u", ev.token.n_alts);
		CHECK(!strcmp(ev.token.alts[19].token, "a19") && ev.token.alts[19].logprob == -19.0f,
		      "alt 19 %s", ev.token.alts[19].token);
	}
	/* ... and a bad 25th alternative still rejects the line. */
	char *bad = strstr(big, "\"a24\",\"logprob\":-24");
	bad[16] = ' ';  /* "logprob": 24 */
	REJECT(big, GOS_REJECT_CONFIDENCE, "top_logprobs[24].logprob");

	/* Everything at once, extra fields of every JSON type ignored, keys in
	 * another order, whitespace around and inside, escapes decoded. */
	if (ACCEPT("  { \"extra\" : {\"nested\":[1,{\"a\":null}]}, \"confidence\" : 0.25 ,"
	           "\"top_logprobs\":[{\"logprob\":-2,\"token\":\"\\u00e9\"}], \"logprob\":-1,"
	           "\"stream\":\"s\\/1\",\"position\":[ -1.5 , 2e3 ],\"timestamp\":0.125,"
	           "\"token_text\":\"a\\\"b\\\\c\\nd\\ud83d\\ude00\",\"token_id\":\"id\\t1\","
	           "\"more\":true,\"type\":\"token_activation\",\"n\":null}\t\r", &ev)) {
		CHECK(!strcmp(ev.token.id, "id\t1"), "id %s", ev.token.id);
		CHECK(!strcmp(ev.token.text, "a\"b\\c\nd\xf0\x9f\x98\x80"), "text %s", ev.token.text);
		CHECK(!strcmp(ev.token.stream, "s/1"), "stream %s", ev.token.stream);
		CHECK(ev.token.x == -1.5f && ev.token.y == 2000.0f, "position %f %f", ev.token.x, ev.token.y);
		CHECK(ev.token.confidence == 0.25f && ev.token.logprob == -1.0f &&
		      ev.token.timestamp == 0.125, "numbers");
		CHECK(ev.token.n_alts == 1 && !strcmp(ev.token.alts[0].token, "\xc3\xa9"),
		      "alts %u", ev.token.n_alts);
	}
	/* Raw multi-byte UTF-8 and a valid 4-byte emoji are accepted as is. */
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"\xe2\x82\xac\",\"token_text\":"
	           "\"\xf0\x9f\x98\x80 na\xc3\xafve \xf4\x8f\xbf\xbf\",\"timestamp\":1,\"confidence\":0.5}", &ev)) {
		CHECK(!strcmp(ev.token.id, "\xe2\x82\xac"), "id %s", ev.token.id);
		CHECK(!strcmp(ev.token.text, "\xf0\x9f\x98\x80 na\xc3\xafve \xf4\x8f\xbf\xbf"), "text %s",
		      ev.token.text);
	}
	/* A repeated member: the first one counts (as cJSON_GetObjectItem). */
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"first\",\"token_id\":\"second\","
	           "\"token_text\":\"x\",\"timestamp\":1,\"confidence\":0.5}", &ev))
		CHECK(!strcmp(ev.token.id, "first"), "id %s", ev.token.id);
}

static void test_state_viz_sync_shapes(void)
{
	struct gos_event ev;
	if (ACCEPT("{\"type\":\"neural_state\",\"state\":\"processing\",\"tokens_processed\":150,"
	           "\"total_tokens\":264,\"elapsed_ms\":1234}", &ev)) {
		CHECK(ev.type == GOS_EV_STATE, "type %d", ev.type);
		CHECK(!strcmp(ev.state.state, "processing"), "state %s", ev.state.state);
		CHECK(ev.state.tokens_processed == 150 && ev.state.total_tokens == 264,
		      "counts %" PRId64 " %" PRId64, ev.state.tokens_processed, ev.state.total_tokens);
		CHECK(ev.state.elapsed_ms == 1234.0, "elapsed %f", ev.state.elapsed_ms);
		CHECK(!strcmp(ev.state.stream, ""), "stream %s", ev.state.stream);
	}
	if (ACCEPT("{\"type\":\"neural_state\",\"state\":\"idle\"}", &ev)) {
		CHECK(ev.state.tokens_processed == -1 && ev.state.total_tokens == -1,
		      "absent counts %" PRId64 " %" PRId64, ev.state.tokens_processed, ev.state.total_tokens);
		CHECK(isnan(ev.state.elapsed_ms), "absent elapsed %f", ev.state.elapsed_ms);
		CHECK(isnan(ev.state.ttft_ms) && !ev.state.finish_reason && !ev.state.message &&
		      !ev.state.model, "absent analytics are NAN / NULL");
	}
	/* the generation's analytics (issue 13) */
	if (ACCEPT("{\"type\":\"neural_state\",\"state\":\"error\",\"ttft_ms\":183.5,"
	           "\"finish_reason\":\"length\",\"message\":\"upstream: model \\\"x\\\" crashed\","
	           "\"model\":\"qwen2.5-0.5b\"}", &ev)) {
		CHECK(ev.state.ttft_ms == 183.5 && !strcmp(ev.state.finish_reason, "length") &&
		      !strcmp(ev.state.message, "upstream: model \"x\" crashed") &&
		      !strcmp(ev.state.model, "qwen2.5-0.5b"), "ttft, finish_reason, message, model");
	}
	if (ACCEPT("{\"type\":\"neural_state\",\"state\":\"done\",\"tokens_processed\":0,"
	           "\"total_tokens\":9007199254740992,\"elapsed_ms\":0.5,\"stream\":\"g2\"}", &ev)) {
		CHECK(ev.state.tokens_processed == 0 && ev.state.total_tokens == 9007199254740992LL,
		      "counts %" PRId64 " %" PRId64, ev.state.tokens_processed, ev.state.total_tokens);
		CHECK(ev.state.elapsed_ms == 0.5 && !strcmp(ev.state.stream, "g2"), "elapsed/stream");
	}
	if (ACCEPT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"abc123\",\"text\":\"hello\","
	           "\"x\":100,\"y\":200}]}", &ev)) {
		CHECK(ev.type == GOS_EV_VIZ && ev.viz.n_tokens == 1, "viz %d %u", ev.type, ev.viz.n_tokens);
		const struct gos_viz_token *t = &ev.viz.tokens[0];
		CHECK(!strcmp(t->id, "abc123") && !strcmp(t->text, "hello"), "strings %s %s", t->id, t->text);
		CHECK(t->x == 100.0f && t->y == 200.0f, "position %f %f", t->x, t->y);
		CHECK(isnan(t->confidence) && !strcmp(t->stream, ""), "defaults");
	}
	if (ACCEPT("{\"tokens\":[{\"id\":\"a\",\"text\":\"\",\"x\":-1.25,\"y\":3e-3,\"confidence\":0.5},"
	           "{\"stream\":\"s\",\"id\":\"b\",\"text\":\"B\",\"x\":0,\"y\":0,\"z\":7},"
	           "{\"id\":\"c\",\"text\":\"C\",\"x\":1,\"y\":2,\"confidence\":1,\"stream\":\"t\"}],"
	           "\"type\":\"token_visualization\"}", &ev)) {
		CHECK(ev.viz.n_tokens == 3, "n_tokens %u", ev.viz.n_tokens);
		if (ev.viz.n_tokens == 3) {
			const struct gos_viz_token *t = ev.viz.tokens;
			CHECK(t[0].confidence == 0.5f && t[0].y == 3e-3f && !strcmp(t[0].stream, ""), "token 0");
			CHECK(isnan(t[1].confidence) && !strcmp(t[1].stream, "s") && !strcmp(t[1].id, "b"),
			      "token 1");
			CHECK(t[2].confidence == 1.0f && !strcmp(t[2].stream, "t") && t[2].y == 2.0f, "token 2");
		}
	}
	if (ACCEPT("{\"type\":\"token_visualization\",\"tokens\":[]}", &ev))
		CHECK(ev.viz.n_tokens == 0, "n_tokens %u", ev.viz.n_tokens);
	if (ACCEPT("{\"type\":\"sync\"}", &ev))
		CHECK(ev.type == GOS_EV_SYNC && ev.sync.conn == 0 && ev.sync.applied == 0 &&
		      ev.sync.rejected == 0, "sync %d", ev.type);
	if (ACCEPT("{\"id\":42,\"type\":\"sync\",\"note\":\"later versions may add fields\"}", &ev))
		CHECK(ev.type == GOS_EV_SYNC, "sync %d", ev.type);
}

/* ---- rejections ----------------------------------------------------------- */

#define TOK_PRE "{\"type\":\"token_activation\","
#define TOK_OK "\"token_id\":\"t\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":0.5"

static void test_rejects(void)
{
	/* not_json */
	REJECT("hello", GOS_REJECT_NOT_JSON, "not valid JSON");
	REJECT("{\"type\":\"sync\"", GOS_REJECT_NOT_JSON, "not valid JSON");
	REJECT("{\"type\":\"sync\",}", GOS_REJECT_NOT_JSON, "not valid JSON");
	REJECT("[{\"type\":\"sync\"}]", GOS_REJECT_NOT_JSON, "an array, expected a JSON object");
	REJECT("\"sync\"", GOS_REJECT_NOT_JSON, "a string, expected a JSON object");
	REJECT("42", GOS_REJECT_NOT_JSON, "expected a JSON object");
	REJECT("", GOS_REJECT_NOT_JSON, "empty");
	REJECT("   ", GOS_REJECT_NOT_JSON, "not valid JSON");
	REJECT("{\"type\":\"sync\"} x", GOS_REJECT_NOT_JSON, "after the JSON value at offset 16");
	REJECT("{\"type\":\"sync\"}{\"type\":\"sync\"}", GOS_REJECT_NOT_JSON, "after the JSON value");
	reject_at(__LINE__, "{\"type\":\"sync\",\"a\":\"b\0c\"}", 25, GOS_REJECT_NOT_JSON,
	          "NUL byte at offset 21");

	/* unknown_type */
	REJECT("{\"token_id\":\"t\"}", GOS_REJECT_UNKNOWN_TYPE, "\"type\" is missing");
	REJECT("{\"type\":3}", GOS_REJECT_UNKNOWN_TYPE, "\"type\" must be a string, got a number");
	REJECT("{\"type\":null}", GOS_REJECT_UNKNOWN_TYPE, "\"type\" must be a string, got null");
	REJECT("{\"type\":\"token_activations\"}", GOS_REJECT_UNKNOWN_TYPE, "\"token_activations\"");
	REJECT("{\"type\":\"Sync\"}", GOS_REJECT_UNKNOWN_TYPE, "\"type\" \"Sync\"");
	REJECT("{\"Type\":\"sync\"}", GOS_REJECT_UNKNOWN_TYPE, "\"type\" is missing");

	/* missing_field */
	REJECT(TOK_PRE "\"token_text\":\"x\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_MISSING_FIELD, "\"token_id\"");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_MISSING_FIELD, "\"token_text\"");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"x\",\"confidence\":0.5}",
	       GOS_REJECT_MISSING_FIELD, "\"timestamp\"");
	REJECT(TOK_PRE "\"token_id\":\"\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_MISSING_FIELD, "field \"token_id\" is empty");
	REJECT(TOK_PRE TOK_OK ",\"top_logprobs\":[{\"token\":\"a\",\"logprob\":-1},{\"token\":\"b\"}]}",
	       GOS_REJECT_MISSING_FIELD, "\"top_logprobs[1].logprob\"");
	REJECT(TOK_PRE TOK_OK ",\"top_logprobs\":[{\"logprob\":-1}]}",
	       GOS_REJECT_MISSING_FIELD, "\"top_logprobs[0].token\"");
	REJECT("{\"type\":\"neural_state\",\"tokens_processed\":1}", GOS_REJECT_MISSING_FIELD, "\"state\"");
	REJECT("{\"type\":\"token_visualization\"}", GOS_REJECT_MISSING_FIELD, "\"tokens\"");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"\",\"x\":1,\"y\":1},"
	       "{\"id\":\"b\",\"text\":\"\",\"y\":1}]}", GOS_REJECT_MISSING_FIELD, "\"tokens[1].x\"");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":[{\"text\":\"\",\"x\":1,\"y\":1}]}",
	       GOS_REJECT_MISSING_FIELD, "\"tokens[0].id\"");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"\",\"text\":\"\",\"x\":1,\"y\":1}]}",
	       GOS_REJECT_MISSING_FIELD, "\"tokens[0].id\" is empty");

	/* wrong_type */
	REJECT(TOK_PRE "\"token_id\":7,\"token_text\":\"x\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_WRONG_TYPE, "\"token_id\" must be a string, got a number");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":null,\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_WRONG_TYPE, "\"token_text\" must be a string, got null");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"x\",\"timestamp\":\"1\",\"confidence\":0.5}",
	       GOS_REJECT_WRONG_TYPE, "\"timestamp\" must be a number, got a string");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":true}",
	       GOS_REJECT_WRONG_TYPE, "\"confidence\" must be a number, got true");
	REJECT(TOK_PRE TOK_OK ",\"position\":[1]}", GOS_REJECT_WRONG_TYPE, "\"position\"");
	REJECT(TOK_PRE TOK_OK ",\"position\":[1,2,3]}", GOS_REJECT_WRONG_TYPE, "\"position\"");
	REJECT(TOK_PRE TOK_OK ",\"position\":{\"x\":1,\"y\":2}}", GOS_REJECT_WRONG_TYPE,
	       "\"position\" must be an array of two numbers");
	REJECT(TOK_PRE TOK_OK ",\"position\":[1,\"2\"]}", GOS_REJECT_WRONG_TYPE, "\"position[1]\"");
	REJECT(TOK_PRE TOK_OK ",\"stream\":5}", GOS_REJECT_WRONG_TYPE, "\"stream\"");
	REJECT(TOK_PRE TOK_OK ",\"logprob\":\"-1\"}", GOS_REJECT_WRONG_TYPE, "\"logprob\"");
	REJECT(TOK_PRE TOK_OK ",\"top_logprobs\":{\"a\":-1}}", GOS_REJECT_WRONG_TYPE, "\"top_logprobs\"");
	REJECT(TOK_PRE TOK_OK ",\"top_logprobs\":[[\"a\",-1]]}", GOS_REJECT_WRONG_TYPE,
	       "\"top_logprobs[0]\" must be an object");
	REJECT(TOK_PRE TOK_OK ",\"top_logprobs\":[{\"token\":1,\"logprob\":-1}]}", GOS_REJECT_WRONG_TYPE,
	       "\"top_logprobs[0].token\"");
	REJECT("{\"type\":\"neural_state\",\"state\":1}", GOS_REJECT_WRONG_TYPE, "\"state\"");
	REJECT("{\"type\":\"neural_state\",\"state\":\"x\",\"ttft_ms\":-1}", GOS_REJECT_WRONG_TYPE,
	       "\"ttft_ms\"");
	REJECT("{\"type\":\"neural_state\",\"state\":\"x\",\"model\":7}", GOS_REJECT_WRONG_TYPE,
	       "\"model\"");
	REJECT("{\"type\":\"neural_state\",\"state\":\"s\",\"tokens_processed\":1.5}",
	       GOS_REJECT_WRONG_TYPE, "\"tokens_processed\" is 1.5, not a non-negative integer");
	REJECT("{\"type\":\"neural_state\",\"state\":\"s\",\"total_tokens\":-1}",
	       GOS_REJECT_WRONG_TYPE, "\"total_tokens\"");
	REJECT("{\"type\":\"neural_state\",\"state\":\"s\",\"total_tokens\":1e300}",
	       GOS_REJECT_WRONG_TYPE, "\"total_tokens\"");
	REJECT("{\"type\":\"neural_state\",\"state\":\"s\",\"elapsed_ms\":[]}",
	       GOS_REJECT_WRONG_TYPE, "\"elapsed_ms\" must be a number, got an array");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":{}}", GOS_REJECT_WRONG_TYPE,
	       "\"tokens\" must be an array");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"\",\"x\":1,\"y\":1},7]}",
	       GOS_REJECT_WRONG_TYPE, "\"tokens[1]\" must be an object");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"\",\"x\":\"1\",\"y\":1}]}",
	       GOS_REJECT_WRONG_TYPE, "\"tokens[0].x\"");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"\",\"x\":1,\"y\":1,"
	       "\"stream\":[]}]}", GOS_REJECT_WRONG_TYPE, "\"tokens[0].stream\"");
	/* Escaped NULs cannot live in C strings: named, wherever they are. */
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"a\\u0000b\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_WRONG_TYPE, "field \"token_text\" contains a NUL character");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"\",\"x\":1,\"y\":1},"
	       "{\"id\":\"b\",\"text\":\"\\u0000\",\"x\":1,\"y\":1}]}",
	       GOS_REJECT_WRONG_TYPE, "field \"tokens[1].text\" contains a NUL");
	REJECT(TOK_PRE TOK_OK ",\"top_logprobs\":[{\"token\":\"\\u0000\",\"logprob\":-1}]}",
	       GOS_REJECT_WRONG_TYPE, "\"top_logprobs[0].token\" contains a NUL");
	REJECT("{\"type\":\"sync\",\"x\\u0000\":1}", GOS_REJECT_WRONG_TYPE, "field name contains a NUL");
	REJECT("{\"type\":\"sync\\u0000\"}", GOS_REJECT_WRONG_TYPE, "\"type\" contains a NUL");
	/* ... but an escaped backslash followed by u0000 is just text. */
	struct gos_event ev;
	if (ACCEPT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"\\\\u0000\",\"timestamp\":1,\"confidence\":0.5}", &ev))
		CHECK(!strcmp(ev.token.text, "\\u0000"), "text %s", ev.token.text);

	/* not_finite: cJSON reads 1e999 as inf; float fields must fit a float. */
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"x\",\"timestamp\":1e999,\"confidence\":0.5}",
	       GOS_REJECT_NOT_FINITE, "\"timestamp\" is not a finite number");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":-1e999}",
	       GOS_REJECT_NOT_FINITE, "\"confidence\"");
	REJECT(TOK_PRE TOK_OK ",\"position\":[1e999,0]}", GOS_REJECT_NOT_FINITE, "\"position[0]\"");
	REJECT(TOK_PRE TOK_OK ",\"position\":[0,-1e39]}", GOS_REJECT_NOT_FINITE,
	       "\"position[1]\" is -1e+39, outside the range of a float");
	REJECT(TOK_PRE TOK_OK ",\"logprob\":-1e999}", GOS_REJECT_NOT_FINITE, "\"logprob\"");
	REJECT(TOK_PRE TOK_OK ",\"top_logprobs\":[{\"token\":\"a\",\"logprob\":-1e40}]}",
	       GOS_REJECT_NOT_FINITE, "\"top_logprobs[0].logprob\"");
	REJECT("{\"type\":\"neural_state\",\"state\":\"s\",\"elapsed_ms\":-1e400}",
	       GOS_REJECT_NOT_FINITE, "\"elapsed_ms\"");
	REJECT("{\"type\":\"neural_state\",\"state\":\"s\",\"tokens_processed\":1e999}",
	       GOS_REJECT_NOT_FINITE, "\"tokens_processed\"");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"\",\"x\":1,\"y\":4e38}]}",
	       GOS_REJECT_NOT_FINITE, "\"tokens[0].y\"");

	/* confidence */
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":1.5}",
	       GOS_REJECT_CONFIDENCE, "field \"confidence\" is 1.5, outside [0,1]");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":-0.001}",
	       GOS_REJECT_CONFIDENCE, "field \"confidence\" is -0.001, outside [0,1]");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":1.0000001}",
	       GOS_REJECT_CONFIDENCE, "\"confidence\"");
	REJECT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"\",\"x\":1,\"y\":1,"
	       "\"confidence\":2}]}", GOS_REJECT_CONFIDENCE, "\"tokens[0].confidence\" is 2, outside [0,1]");
	REJECT(TOK_PRE TOK_OK ",\"logprob\":0.5}", GOS_REJECT_CONFIDENCE, "\"logprob\" is 0.5, above 0");

	/* utf8 (raw bytes; the JSON around them is fine) */
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"\xff\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_UTF8, "0xFF at offset 56");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"\xc0\xaf\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_UTF8, "0xC0 at offset 56");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"\xed\xa0\x80\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_UTF8, "not valid UTF-8");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"\xf4\x90\x80\x80\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_UTF8, "not valid UTF-8");
	REJECT(TOK_PRE "\"token_id\":\"t\",\"token_text\":\"\xe2\x82\",\"timestamp\":1,\"confidence\":0.5}",
	       GOS_REJECT_UTF8, "0xE2 at offset 56");
	REJECT("{\"type\":\"sync\"}\xe2\x82", GOS_REJECT_UTF8, "not valid UTF-8");
	REJECT("not json \xc3", GOS_REJECT_UTF8, "offset 9");  /* UTF-8 is checked before JSON */

	/* too_long: each limit, at the limit accepted, one byte over rejected. */
	static char line[3 * GOS_MAX_TEXT];
	static char s[GOS_MAX_TEXT + 2];
	struct {
		const char *fmt;
		size_t max;
		const char *field;
	} lim[] = {
		{TOK_PRE "\"token_id\":\"%s\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":0.5}",
		 GOS_MAX_ID, "\"token_id\" is 257 bytes long, over the limit of 256"},
		{TOK_PRE "\"token_id\":\"t\",\"token_text\":\"%s\",\"timestamp\":1,\"confidence\":0.5}",
		 GOS_MAX_TEXT, "\"token_text\" is 4097 bytes long, over the limit of 4096"},
		{TOK_PRE TOK_OK ",\"stream\":\"%s\"}", GOS_MAX_STREAM, "\"stream\" is 129 bytes"},
		{TOK_PRE TOK_OK ",\"top_logprobs\":[{\"token\":\"%s\",\"logprob\":-1}]}", GOS_MAX_TEXT,
		 "\"top_logprobs[0].token\" is 4097 bytes"},
		{"{\"type\":\"neural_state\",\"state\":\"%s\"}", GOS_MAX_STATE, "\"state\" is 65 bytes"},
		{"{\"type\":\"neural_state\",\"state\":\"s\",\"stream\":\"%s\"}", GOS_MAX_STREAM,
		 "\"stream\" is 129 bytes"},
		{"{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"%s\",\"text\":\"\",\"x\":1,\"y\":1}]}",
		 GOS_MAX_ID, "\"tokens[0].id\" is 257 bytes"},
		{"{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"%s\",\"x\":1,\"y\":1}]}",
		 GOS_MAX_TEXT, "\"tokens[0].text\" is 4097 bytes"},
		{"{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"\",\"x\":1,\"y\":1,"
		 "\"stream\":\"%s\"}]}", GOS_MAX_STREAM, "\"tokens[0].stream\" is 129 bytes"},
	};
	for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
		/* The limit is in bytes: fill with 2-byte characters, then one ASCII
		 * byte when max is odd. */
		size_t k = 0;
		while (k + 2 <= lim[i].max) {
			memcpy(s + k, "\xc3\xa9", 2);
			k += 2;
		}
		if (k < lim[i].max)
			s[k++] = 'a';
		s[k] = '\0';
		snprintf(line, sizeof(line), lim[i].fmt, s);
		CHECK(ACCEPT(line, &ev), "limit %zu of case %zu refused at the limit", lim[i].max, i);
		s[k++] = 'b';
		s[k] = '\0';
		snprintf(line, sizeof(line), lim[i].fmt, s);
		reject_at(__LINE__, line, strlen(line), GOS_REJECT_TOO_LONG, lim[i].field);
	}
	/* Escapes count as the bytes they decode to: 256 "\n" escapes are 256 bytes. */
	int o = snprintf(line, sizeof(line), TOK_PRE "\"token_id\":\"");
	for (int i = 0; i < GOS_MAX_ID; i++)
		o += snprintf(line + o, sizeof(line) - (size_t)o, "\\n");
	snprintf(line + o, sizeof(line) - (size_t)o, "\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":0.5}");
	if (ACCEPT(line, &ev))
		CHECK(strlen(ev.token.id) == GOS_MAX_ID, "id length %zu", strlen(ev.token.id));
}

/* The line limit: exactly GOS_MAX_LINE bytes is fine, one more is not, and
 * the length is checked before anything else. */
static void test_line_limit(void)
{
	size_t n = GOS_MAX_LINE + 1;
	char *line = malloc(n);
	if (!line)
		abort();
	const char *head = "{\"type\":\"sync\",\"pad\":\"";
	size_t hl = strlen(head);
	memcpy(line, head, hl);
	memset(line + hl, 'p', GOS_MAX_LINE - hl - 2);
	memcpy(line + GOS_MAX_LINE - 2, "\"}", 2);
	struct gos_event ev;
	CHECK(accept_at(__LINE__, line, GOS_MAX_LINE, &ev) && ev.type == GOS_EV_SYNC,
	      "a line of exactly GOS_MAX_LINE bytes was refused");
	line[GOS_MAX_LINE] = ' ';
	reject_at(__LINE__, line, GOS_MAX_LINE + 1, GOS_REJECT_LINE_TOO_LONG,
	          "line is 1048577 bytes long, over the limit of 1048576");
	memset(line, 0xff, n);  /* not UTF-8, not JSON: still reported as too long */
	reject_at(__LINE__, line, n, GOS_REJECT_LINE_TOO_LONG, "over the limit");
	/* A big token_visualization under the limit: thousands of tokens. */
	size_t o = (size_t)snprintf(line, n, "{\"type\":\"token_visualization\",\"tokens\":[");
	uint32_t count = 0;
	while (o + 80 < GOS_MAX_LINE) {
		o += (size_t)snprintf(line + o, n - o, "%s{\"id\":\"t%u\",\"text\":\"w\",\"x\":%u,\"y\":-%u}",
		                      count ? "," : "", count, count, count);
		count++;
	}
	o += (size_t)snprintf(line + o, n - o, "]}");
	if (accept_at(__LINE__, line, o, &ev)) {
		CHECK(ev.viz.n_tokens == count, "n_tokens %u, sent %u", ev.viz.n_tokens, count);
		const struct gos_viz_token *last = &ev.viz.tokens[count - 1];
		char id[16];
		snprintf(id, sizeof(id), "t%u", count - 1);
		CHECK(!strcmp(last->id, id) && last->x == (float)(count - 1) && last->y == -(float)(count - 1),
		      "last token %s %f %f", last->id, last->x, last->y);
	}
	free(line);
	gos_arena_reset(&arena);
}

/* Lines inside bigger buffers: bytes after len are never looked at. */
static void test_unterminated(void)
{
	const char *l = "{\"type\":\"token_activation\",\"token_id\":\"q\",\"token_text\":\"w\","
	                "\"timestamp\":2,\"confidence\":0.5}";
	size_t len = strlen(l);
	const char *tails[] = {"garbage", "}", "\xff\xfe", ",\"x\":1}", "\n{\"type\":\"sync\"}\n"};
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		char buf[256];
		memcpy(buf, l, len);
		memcpy(buf + len, tails[i], strlen(tails[i]));
		struct gos_event ev;
		struct gos_parse_error err;
		bool ok = gos_protocol_parse(buf, len, &ev, &arena, &err);
		CHECK(ok, "tail %zu: rejected (%s)", i, err.message);
		if (ok)
			CHECK(!strcmp(ev.token.id, "q") && !strcmp(ev.token.text, "w"), "tail %zu: strings", i);
	}
	/* Cut short inside a buffer whose later bytes would complete it. */
	const char *cut = "{\"type\":\"sync\",\"a\":\"bc\"}";
	char buf[64];
	memcpy(buf, cut, strlen(cut) + 1);
	struct gos_event ev;
	struct gos_parse_error err;
	for (size_t k = 1; k < strlen(cut); k++) {
		bool ok = gos_protocol_parse(buf, k, &ev, &arena, &err);
		CHECK(!ok && err.reason == GOS_REJECT_NOT_JSON, "prefix of %zu bytes: %s %s", k,
		      ok ? "accepted" : gos_reject_name(err.reason), err.message);
	}
	/* Ends in the middle of an escape, and of a number: exact-size copies. */
	REJECT("{\"type\":\"sync\",\"a\":\"b\\", GOS_REJECT_NOT_JSON, "not valid JSON");
	REJECT("{\"type\":\"sync\",\"a\":\"\\u00", GOS_REJECT_NOT_JSON, "not valid JSON");
	REJECT("{\"type\":\"sync\",\"a\":12", GOS_REJECT_NOT_JSON, "not valid JSON");
}

static void test_utf8(void)
{
	struct {
		const char *s;
		size_t len;
		bool valid;
	} c[] = {
		{"", 0, true},
		{"plain ascii, longer than eight bytes", 36, true},
		{"\0", 1, true},
		{"\xc2\x80", 2, true},                 /* U+0080 */
		{"\xdf\xbf", 2, true},                 /* U+07FF */
		{"\xe0\xa0\x80", 3, true},             /* U+0800 */
		{"\xed\x9f\xbf", 3, true},             /* U+D7FF */
		{"\xee\x80\x80", 3, true},             /* U+E000 */
		{"\xef\xbf\xbf", 3, true},             /* U+FFFF */
		{"\xf0\x90\x80\x80", 4, true},         /* U+10000 */
		{"\xf0\x9f\x98\x80", 4, true},         /* U+1F600 emoji */
		{"\xf4\x8f\xbf\xbf", 4, true},         /* U+10FFFF */
		{"\xc0\x80", 2, false},                /* overlong NUL */
		{"\xc1\xbf", 2, false},                /* overlong */
		{"\xe0\x80\x80", 3, false},            /* overlong */
		{"\xe0\x9f\xbf", 3, false},            /* overlong U+07FF */
		{"\xf0\x80\x80\x80", 4, false},        /* overlong */
		{"\xf0\x8f\xbf\xbf", 4, false},        /* overlong U+FFFF */
		{"\xed\xa0\x80", 3, false},            /* U+D800 surrogate */
		{"\xed\xbf\xbf", 3, false},            /* U+DFFF surrogate */
		{"\xed\xa0\xbd\xed\xb8\x80", 6, false},/* CESU-8 surrogate pair */
		{"\xf4\x90\x80\x80", 4, false},        /* U+110000 */
		{"\xf5\x80\x80\x80", 4, false},
		{"\xff", 1, false},
		{"\xfe", 1, false},
		{"\x80", 1, false},                    /* lone continuation */
		{"\xbf", 1, false},
		{"\xc3", 1, false},                    /* truncated 2-byte */
		{"\xe2\x82", 2, false},                /* truncated 3-byte */
		{"\xf0\x9f\x98", 3, false},            /* truncated 4-byte */
		{"\xc3(", 2, false},                   /* bad continuation */
		{"\xe2(\xac", 3, false},
		{"\xe2\x82(", 3, false},
		{"\xf0\x9f(\x80", 4, false},
		{"\xf0\x9f\x98(", 4, false},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		CHECK(gos_utf8_valid(c[i].s, c[i].len) == c[i].valid, "case %zu: expected %s", i,
		      c[i].valid ? "valid" : "invalid");
	/* Every invalid byte is found at every offset around the 8-byte fast
	 * path, and truncation is found at the very end of the buffer. */
	for (size_t off = 0; off < 40; off++) {
		char b[48];
		memset(b, 'a', sizeof(b));
		b[off] = (char)0xff;
		CHECK(!gos_utf8_valid(b, sizeof(b)), "0xff at %zu not found", off);
		memset(b, 'a', sizeof(b));
		memcpy(b + off, "\xf0\x9f\x98\x80", 4);
		CHECK(gos_utf8_valid(b, sizeof(b)), "emoji at %zu refused", off);
		CHECK(!gos_utf8_valid(b, off + 3), "emoji cut at %zu+3 accepted", off);
	}
	/* Every 2-byte pair: valid exactly when it is a 2-byte sequence C2..DF
	 * 80..BF or two ASCII bytes. */
	for (unsigned a = 0; a < 256; a++) {
		for (unsigned b = 0; b < 256; b++) {
			char p[2] = {(char)a, (char)b};
			bool want = (a < 0x80 && b < 0x80) || (a >= 0xc2 && a <= 0xdf && b >= 0x80 && b <= 0xbf);
			if (gos_utf8_valid(p, 2) != want)
				CHECK(false, "pair %02x %02x: expected %s", a, b, want ? "valid" : "invalid");
		}
	}
	CHECK(true, "all 65536 byte pairs classified");
	/* Every code point through U+10FFFF encodes to something valid, and the
	 * surrogates' encodings are invalid. */
	unsigned wrong = 0;
	for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
		unsigned char e[4];
		size_t n;
		if (cp < 0x80) {
			e[0] = (unsigned char)cp, n = 1;
		} else if (cp < 0x800) {
			e[0] = (unsigned char)(0xc0 | cp >> 6), e[1] = (unsigned char)(0x80 | (cp & 63)), n = 2;
		} else if (cp < 0x10000) {
			e[0] = (unsigned char)(0xe0 | cp >> 12), e[1] = (unsigned char)(0x80 | (cp >> 6 & 63));
			e[2] = (unsigned char)(0x80 | (cp & 63)), n = 3;
		} else {
			e[0] = (unsigned char)(0xf0 | cp >> 18), e[1] = (unsigned char)(0x80 | (cp >> 12 & 63));
			e[2] = (unsigned char)(0x80 | (cp >> 6 & 63)), e[3] = (unsigned char)(0x80 | (cp & 63));
			n = 4;
		}
		bool want = cp < 0xd800 || cp > 0xdfff;
		if (gos_utf8_valid((const char *)e, n) != want)
			wrong++;
	}
	CHECK(wrong == 0, "%u code points misclassified", wrong);
}

/* ---- screenshots ------------------------------------------------------- */

/* The screenshot request (its replies: test_protocol_write.c). */
static void test_screenshot_request(void)
{
	struct gos_event ev;
	if (ACCEPT("{\"type\":\"screenshot\",\"path\":\"/tmp/a b/\u00e9.png\"}", &ev))
		CHECK(ev.type == GOS_EV_SCREENSHOT && !strcmp(ev.shot.path, "/tmp/a b/\xc3\xa9.png") &&
		      !ev.shot.fit && ev.shot.conn == 0, "screenshot %d %s", ev.type, ev.shot.path);
	if (ACCEPT("{\"fit\":true,\"type\":\"screenshot\",\"path\":\"/x.png\",\"extra\":1}", &ev))
		CHECK(ev.type == GOS_EV_SCREENSHOT && ev.shot.fit && !strcmp(ev.shot.path, "/x.png"),
		      "screenshot with fit");
	if (ACCEPT("{\"type\":\"screenshot\",\"path\":\"/x.png\",\"fit\":false}", &ev))
		CHECK(!ev.shot.fit, "fit false");
	REJECT("{\"type\":\"screenshot\"}", GOS_REJECT_MISSING_FIELD, "\"path\" is missing");
	REJECT("{\"type\":\"screenshot\",\"path\":\"\"}", GOS_REJECT_MISSING_FIELD, "\"path\" is empty");
	REJECT("{\"type\":\"screenshot\",\"path\":\"shot.png\"}", GOS_REJECT_WRONG_TYPE,
	       "absolute path");
	REJECT("{\"type\":\"screenshot\",\"path\":\"./shot.png\"}", GOS_REJECT_WRONG_TYPE, "\"./shot.png\"");
	REJECT("{\"type\":\"screenshot\",\"path\":7}", GOS_REJECT_WRONG_TYPE, "\"path\" must be a string");
	REJECT("{\"type\":\"screenshot\",\"path\":\"/x\",\"fit\":1}", GOS_REJECT_WRONG_TYPE,
	       "\"fit\" must be true or false");
	REJECT("{\"type\":\"screenshot\",\"path\":\"/x\",\"fit\":\"yes\"}", GOS_REJECT_WRONG_TYPE, "fit");
	/* The path limit: GOS_MAX_PATH bytes pass, one more is too long. */
	char line[GOS_MAX_PATH + 100];
	char path[GOS_MAX_PATH + 2];
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[GOS_MAX_PATH] = '\0';
	snprintf(line, sizeof(line), "{\"type\":\"screenshot\",\"path\":\"%s\"}", path);
	if (ACCEPT(line, &ev))
		CHECK(strlen(ev.shot.path) == GOS_MAX_PATH, "path of %d bytes", GOS_MAX_PATH);
	path[GOS_MAX_PATH] = 'a';
	path[GOS_MAX_PATH + 1] = '\0';
	snprintf(line, sizeof(line), "{\"type\":\"screenshot\",\"path\":\"%s\"}", path);
	REJECT(line, GOS_REJECT_TOO_LONG, "\"path\" is 4097 bytes long");
	gos_arena_reset(&arena);
}

static void test_names_and_arena(void)
{
	static const char *const names[] = {"none", "not_json", "unknown_type", "missing_field", "wrong_type",
	                                    "not_finite", "confidence", "utf8", "too_long", "line_too_long",
	                                    "timeout"};
	for (int r = 0; r < GOS_REJECT_COUNT_; r++)
		CHECK(!strcmp(gos_reject_name((enum gos_reject)r), names[r]), "name of %d: %s", r,
		      gos_reject_name((enum gos_reject)r));
	CHECK(!strcmp(gos_reject_name(GOS_REJECT_COUNT_), "unknown"), "name past the end");

	/* A rejected line leaves what was parsed earlier into the arena intact. */
	gos_arena_reset(&arena);
	struct gos_event a, b;
	struct gos_parse_error err;
	const char *ok = "{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"keep\",\"text\":\"me\",\"x\":1,\"y\":2}]}";
	const char *bad = "{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"zzzz\",\"text\":\"zz\",\"x\":1,\"y\":2},"
	                  "{\"id\":\"zzzz\",\"text\":\"zz\",\"x\":1,\"y\":\"2\"}]}";
	CHECK(parse_n(ok, strlen(ok), &a, &err), "first line rejected: %s", err.message);
	CHECK(!parse_n(bad, strlen(bad), &b, &err) && err.reason == GOS_REJECT_WRONG_TYPE,
	      "second line: %s", err.message);
	CHECK(!strcmp(a.viz.tokens[0].id, "keep") && !strcmp(a.viz.tokens[0].text, "me") &&
	      a.viz.tokens[0].y == 2.0f, "first event changed after a rejected line");
	gos_arena_reset(&arena);
}

/* ---- recordings ----------------------------------------------------------- */

/* A recording (docs/recording.md) is ingest lines with an arrival time "_t"
 * added as the last key: the parser takes each line as the same event as
 * without it. */
static void test_recording_lines(void)
{
	static const char *const lines[] = {
		"{\"type\":\"token_activation\",\"token_id\":\"a\",\"token_text\":\"x\",\"timestamp\":1.5}",
		"{\"type\":\"token_activation\",\"token_id\":\"p0-12\",\"token_text\":\" word\","
		"\"timestamp\":1707345600.5,\"position\":[100,200],\"confidence\":0.123,\"stream\":\"gen-1\","
		"\"logprob\":-0.5,\"top_logprobs\":[{\"token\":\" word\",\"logprob\":-0.5}]}",
		"{\"type\":\"neural_state\",\"state\":\"processing\",\"tokens_processed\":150,"
		"\"total_tokens\":264,\"elapsed_ms\":1234,\"stream\":\"gen-1\"}",
		"{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"v1\",\"text\":\"a\",\"x\":1,\"y\":2}]}",
		"{\"type\":\"sync\"}",
	};
	static const char *const times[] = {",\"_t\":1764582000.123", ",\"_t\":0", ", \"_t\" : 1e9 ",
	                                     ",\"_t\":1764582000.123456789"};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct gos_event plain, rec;
		if (!ACCEPT(lines[i], &plain))
			continue;
		for (size_t k = 0; k < sizeof(times) / sizeof(times[0]); k++) {
			char line[1024];
			size_t n = strlen(lines[i]) - 1;  /* up to the closing brace */
			snprintf(line, sizeof(line), "%.*s%s}", (int)n, lines[i], times[k]);
			if (ACCEPT(line, &rec))
				CHECK(same_event(&plain, &rec), "with \"_t\" a different event: %s", line);
		}
	}
	gos_arena_reset(&arena);
}

int main(void)
{
	test_token_shapes();
	test_state_viz_sync_shapes();
	test_rejects();
	test_line_limit();
	test_unterminated();
	test_utf8();
	test_screenshot_request();
	test_names_and_arena();
	test_recording_lines();
	gos_arena_finish(&arena);
	return gos_test_report("test_protocol_parse");
}
