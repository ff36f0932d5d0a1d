/* Unit tests of the protocol's serializers (net/protocol/): serialize ->
 * parse round trips of random events, the canonical compact form, and the
 * error, sync and screenshot reply lines read back with cJSON. The parser
 * is tested in test_protocol_parse.c. */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gos_protocol.h"
#include "gos_test.h"
#include "gos_utf8.h"
#include "protocol_test.h"

#define ACCEPT(s, ev) accept_at(__LINE__, (s), strlen(s), (ev))

/* ---- round trips ---------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint32_t rnd_below(uint32_t n)
{
	return (uint32_t)((rnd() >> 32) % n);
}

/* Random valid UTF-8 without NUL, up to max bytes; sometimes exactly max. */
static const char *rnd_string(struct gos_arena *a, size_t max, bool allow_empty)
{
	size_t target = rnd_below(50) == 0 ? max : rnd_below(max < 24 ? (uint32_t)max + 1 : 25);
	if (!allow_empty && target == 0)
		target = 1;
	char *s = gos_arena_alloc(a, max + 1, 1);
	size_t n = 0;
	while (n < target) {
		uint32_t kind = rnd_below(20), cp;
		if (kind < 10)
			cp = 0x20 + rnd_below(0x5f);                 /* printable ASCII */
		else if (kind < 12)
			cp = "\"\\/\n\t\r\b\f"[rnd_below(8)];
		else if (kind < 13)
			cp = 1 + rnd_below(0x7f);                    /* any ASCII but NUL */
		else if (kind < 15)
			cp = 0x80 + rnd_below(0x780);
		else if (kind < 18)
			do
				cp = 0x800 + rnd_below(0xf800);
			while (cp >= 0xd800 && cp <= 0xdfff);
		else
			cp = 0x10000 + rnd_below(0x100000);
		size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		if (n + len > target) {
			cp = 'z';
			len = 1;
		}
		unsigned char *e = (unsigned char *)s + n;
		switch (len) {
		case 1: e[0] = (unsigned char)cp; break;
		case 2: e[0] = (unsigned char)(0xc0 | cp >> 6); e[1] = (unsigned char)(0x80 | (cp & 63)); break;
		case 3:
			e[0] = (unsigned char)(0xe0 | cp >> 12); e[1] = (unsigned char)(0x80 | (cp >> 6 & 63));
			e[2] = (unsigned char)(0x80 | (cp & 63));
			break;
		default:
			e[0] = (unsigned char)(0xf0 | cp >> 18); e[1] = (unsigned char)(0x80 | (cp >> 12 & 63));
			e[2] = (unsigned char)(0x80 | (cp >> 6 & 63)); e[3] = (unsigned char)(0x80 | (cp & 63));
		}
		n += len;
	}
	s[n] = '\0';
	return s;
}

/* Any finite float: random bits (denormals, huge, negative zero) or a
 * short decimal. */
static float rnd_float(void)
{
	if (rnd_below(3) == 0)
		return (float)((int32_t)rnd_below(2000001) - 1000000) / 100.0f;
	for (;;) {
		uint32_t b = (uint32_t)(rnd() >> 32);
		float f;
		memcpy(&f, &b, sizeof(f));
		if (isfinite(f))
			return f;
	}
}

static double rnd_double(void)
{
	if (rnd_below(2) == 0)
		return 1.7e9 + (double)rnd_below(100000000) / 1000.0;
	for (;;) {
		uint64_t b = rnd();
		double d;
		memcpy(&d, &b, sizeof(d));
		if (isfinite(d))
			return d;
	}
}

static float rnd_unit(void)
{
	switch (rnd_below(8)) {
	case 0: return 0.0f;
	case 1: return 1.0f;
	case 2: return nextafterf(1.0f, 0.0f);
	case 3: return FLT_TRUE_MIN * (float)rnd_below(1000);
	default: return (float)(rnd() >> 40) / 16777216.0f;
	}
}

static float rnd_logprob(void)
{
	float f = -fabsf(rnd_float());
	return rnd_below(10) == 0 ? -0.0f : f;
}

static bool same_f(float a, float b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

static bool same_d(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

static bool same_event(const struct gos_event *a, const struct gos_event *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case GOS_EV_TOKEN: {
		const struct gos_token_ev *x = &a->token, *y = &b->token;
		if (strcmp(x->id, y->id) || strcmp(x->text, y->text) || strcmp(x->stream, y->stream) ||
		    !same_d(x->timestamp, y->timestamp) || x->has_position != y->has_position ||
		    !same_f(x->confidence, y->confidence) || !same_f(x->logprob, y->logprob) ||
		    x->n_alts != y->n_alts)
			return false;
		if (x->has_position && (!same_f(x->x, y->x) || !same_f(x->y, y->y)))
			return false;
		for (uint32_t i = 0; i < x->n_alts; i++)
			if (strcmp(x->alts[i].token, y->alts[i].token) ||
			    !same_f(x->alts[i].logprob, y->alts[i].logprob))
				return false;
		return true;
	}
	case GOS_EV_STATE:
		return !strcmp(a->state.state, b->state.state) && !strcmp(a->state.stream, b->state.stream) &&
		       a->state.tokens_processed == b->state.tokens_processed &&
		       a->state.total_tokens == b->state.total_tokens &&
		       same_d(a->state.elapsed_ms, b->state.elapsed_ms);
	case GOS_EV_VIZ:
		if (a->viz.n_tokens != b->viz.n_tokens)
			return false;
		for (uint32_t i = 0; i < a->viz.n_tokens; i++) {
			const struct gos_viz_token *x = &a->viz.tokens[i], *y = &b->viz.tokens[i];
			if (strcmp(x->id, y->id) || strcmp(x->text, y->text) || strcmp(x->stream, y->stream) ||
			    !same_f(x->x, y->x) || !same_f(x->y, y->y) || !same_f(x->confidence, y->confidence))
				return false;
		}
		return true;
	case GOS_EV_SYNC:
		return true;
	case GOS_EV_SCREENSHOT:
		return !strcmp(a->shot.path, b->shot.path) && a->shot.fit == b->shot.fit;
	case GOS_EV_NONE:
	case GOS_EV_COUNT_:
		break;
	}
	return false;
}

static void rnd_event(struct gos_arena *a, struct gos_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	switch (rnd_below(4)) {
	case 0: {
		struct gos_token_ev *t = &ev->token;
		ev->type = GOS_EV_TOKEN;
		t->id = rnd_string(a, GOS_MAX_ID, false);
		t->text = rnd_string(a, GOS_MAX_TEXT, true);
		t->stream = rnd_below(2) ? rnd_string(a, GOS_MAX_STREAM, true) : "";
		t->timestamp = rnd_double();
		t->confidence = rnd_unit();
		t->has_position = rnd_below(2);
		if (t->has_position) {
			t->x = rnd_float();
			t->y = rnd_float();
		}
		t->logprob = rnd_below(2) ? rnd_logprob() : NAN;
		t->n_alts = rnd_below(3) ? 0 : rnd_below(GOS_MAX_ALTS + 1);
		struct gos_alt *alts = gos_arena_alloc(a, sizeof(*alts) * GOS_MAX_ALTS, 8);
		for (uint32_t i = 0; i < t->n_alts; i++) {
			alts[i].token = rnd_string(a, rnd_below(8) ? 16 : GOS_MAX_TEXT, true);
			alts[i].logprob = rnd_logprob();
		}
		t->alts = alts;
		break;
	}
	case 1: {
		struct gos_state_ev *s = &ev->state;
		ev->type = GOS_EV_STATE;
		s->state = rnd_string(a, GOS_MAX_STATE, true);
		s->stream = rnd_below(2) ? rnd_string(a, GOS_MAX_STREAM, true) : "";
		s->tokens_processed = rnd_below(3) ? (int64_t)(rnd() >> 11) : -1;
		s->total_tokens = rnd_below(3) ? (int64_t)rnd_below(1000000) : -1;
		s->elapsed_ms = rnd_below(3) ? rnd_double() : NAN;
		break;
	}
	case 2: {
		ev->type = GOS_EV_VIZ;
		uint32_t n = rnd_below(10) ? rnd_below(9) : 60;
		struct gos_viz_token *toks = gos_arena_alloc(a, sizeof(*toks) * (n + 1), 8);
		for (uint32_t i = 0; i < n; i++) {
			toks[i].id = rnd_string(a, GOS_MAX_ID, false);
			toks[i].text = rnd_string(a, rnd_below(10) ? 32 : GOS_MAX_TEXT, true);
			toks[i].stream = rnd_below(2) ? rnd_string(a, GOS_MAX_STREAM, true) : "";
			toks[i].x = rnd_float();
			toks[i].y = rnd_float();
			toks[i].confidence = rnd_below(2) ? rnd_unit() : NAN;
		}
		ev->viz.n_tokens = n;
		ev->viz.tokens = toks;
		break;
	}
	default:
		ev->type = GOS_EV_SYNC;
	}
}

static void test_round_trips(void)
{
	struct gos_arena gen = {0};
	unsigned failures = 0, per_type[5] = {0};
	for (int i = 0; i < 4000; i++) {
		struct gos_event ev, back;
		rnd_event(&gen, &ev);
		char *json = gos_protocol_serialize(&ev);
		CHECK(json != NULL, "serialize returned NULL");
		if (!json)
			continue;
		size_t len = strlen(json);
		CHECK(gos_utf8_valid(json, len), "event %d: serialized form is not UTF-8", i);
		struct gos_parse_error err;
		bool ok = parse_n(json, len, &back, &err);
		if (len > GOS_MAX_LINE) {
			CHECK(!ok && err.reason == GOS_REJECT_LINE_TOO_LONG, "event %d: %zu bytes accepted", i, len);
		} else if (!ok || !same_event(&ev, &back)) {
			if (failures++ < 5)
				CHECK(false, "event %d (type %d) did not round-trip (%s): %.300s", i, ev.type,
				      ok ? "differs" : err.message, json);
		} else {
			per_type[ev.type]++;
		}
		/* cJSON agrees that it is one JSON object. */
		cJSON *j = cJSON_ParseWithLength(json, len);
		if (!j || !cJSON_IsObject(j))
			CHECK(false, "event %d: cJSON cannot read %.200s", i, json);
		cJSON_Delete(j);
		free(json);
		gos_arena_reset(&gen);
		gos_arena_reset(&arena);
	}
	CHECK(failures == 0, "%u of 4000 random events did not round-trip", failures);
	for (int t = GOS_EV_TOKEN; t <= GOS_EV_SYNC; t++)
		CHECK(per_type[t] > 800, "only %u round trips of type %d", per_type[t], t);
	gos_arena_finish(&gen);
}

/* The canonical form is compact and omits what is absent. */
static void test_canonical(void)
{
	struct gos_event ev;
	char *s;
	if (ACCEPT("{ \"confidence\": 0.95, \"type\": \"token_activation\", \"token_id\": \"abc123\", "
	           "\"token_text\": \"hello\", \"timestamp\": 1707345600.0, \"position\": [100.0, 200.0] }", &ev)) {
		s = gos_protocol_serialize(&ev);
		CHECK(s && !strcmp(s, "{\"type\":\"token_activation\",\"token_id\":\"abc123\",\"token_text\":\"hello\","
		                      "\"timestamp\":1707345600,\"confidence\":0.95,\"position\":[100,200]}"),
		      "canonical token: %s", s);
		free(s);
	}
	if (ACCEPT("{\"type\":\"token_activation\",\"token_id\":\"a\",\"token_text\":\"\\u0001\\u001f\\\"\","
	           "\"timestamp\":0.1,\"confidence\":0.1,\"stream\":\"s\",\"logprob\":-2.5,"
	           "\"top_logprobs\":[{\"token\":\"\\n\",\"logprob\":-0.1}]}", &ev)) {
		s = gos_protocol_serialize(&ev);
		CHECK(s && !strcmp(s, "{\"type\":\"token_activation\",\"token_id\":\"a\",\"token_text\":\"\\u0001\\u001f\\\"\","
		                      "\"timestamp\":0.1,\"confidence\":0.1,\"stream\":\"s\",\"logprob\":-2.5,"
		                      "\"top_logprobs\":[{\"token\":\"\\n\",\"logprob\":-0.1}]}"),
		      "escapes and optional fields: %s", s);
		free(s);
	}
	if (ACCEPT("{\"type\":\"neural_state\",\"state\":\"idle\"}", &ev)) {
		s = gos_protocol_serialize(&ev);
		CHECK(s && !strcmp(s, "{\"type\":\"neural_state\",\"state\":\"idle\"}"), "state: %s", s);
		free(s);
	}
	if (ACCEPT("{\"type\":\"neural_state\",\"state\":\"p\",\"tokens_processed\":150,\"total_tokens\":264,"
	           "\"elapsed_ms\":1234.5,\"stream\":\"g\"}", &ev)) {
		s = gos_protocol_serialize(&ev);
		CHECK(s && !strcmp(s, "{\"type\":\"neural_state\",\"state\":\"p\",\"tokens_processed\":150,"
		                      "\"total_tokens\":264,\"elapsed_ms\":1234.5,\"stream\":\"g\"}"), "state: %s", s);
		free(s);
	}
	if (ACCEPT("{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"b\",\"x\":1.5,\"y\":-2},"
	           "{\"id\":\"c\",\"text\":\"d\",\"x\":0,\"y\":0,\"confidence\":0.5,\"stream\":\"s\"}]}", &ev)) {
		s = gos_protocol_serialize(&ev);
		CHECK(s && !strcmp(s, "{\"type\":\"token_visualization\",\"tokens\":[{\"id\":\"a\",\"text\":\"b\","
		                      "\"x\":1.5,\"y\":-2},{\"id\":\"c\",\"text\":\"d\",\"x\":0,\"y\":0,"
		                      "\"confidence\":0.5,\"stream\":\"s\"}]}"), "viz: %s", s);
		free(s);
	}
	ev = (struct gos_event){.type = GOS_EV_SYNC};
	s = gos_protocol_serialize(&ev);
	CHECK(s && !strcmp(s, "{\"type\":\"sync\"}"), "sync: %s", s);
	free(s);
	ev = (struct gos_event){.type = GOS_EV_NONE};
	CHECK(gos_protocol_serialize(&ev) == NULL, "an empty event serialized");
}

/* ---- replies -------------------------------------------------------------- */

static void check_error_line(uint64_t line_no, const char *bad_line, enum gos_reject want)
{
	struct gos_event ev;
	struct gos_parse_error err;
	CHECK(!parse_n(bad_line, strlen(bad_line), &ev, &err) && err.reason == want,
	      "expected %s for %s", gos_reject_name(want), bad_line);
	char *s = gos_protocol_error_line(line_no, &err);
	CHECK(s != NULL, "error_line returned NULL");
	if (!s)
		return;
	CHECK(gos_utf8_valid(s, strlen(s)), "error line is not UTF-8: %s", s);
	cJSON *j = cJSON_Parse(s);
	CHECK(j && cJSON_IsObject(j), "error line is not a JSON object: %s", s);
	if (j) {
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
		const cJSON *line = cJSON_GetObjectItemCaseSensitive(j, "line");
		const cJSON *reason = cJSON_GetObjectItemCaseSensitive(j, "reason");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
		CHECK(cJSON_IsString(type) && !strcmp(type->valuestring, "error"), "type in %s", s);
		CHECK(cJSON_IsNumber(line) && line->valuedouble == (double)line_no, "line in %s", s);
		CHECK(cJSON_IsString(reason) && !strcmp(reason->valuestring, err.message), "reason in %s", s);
		CHECK(cJSON_IsString(code) && !strcmp(code->valuestring, gos_reject_name(want)), "code in %s", s);
		CHECK(cJSON_GetArraySize(j) == 4, "error line has %d members: %s", cJSON_GetArraySize(j), s);
	}
	cJSON_Delete(j);
	free(s);
}

static void test_replies(void)
{
	check_error_line(1, "{\"type\":\"token_activation\",\"token_id\":\"t\",\"token_text\":\"x\","
	                    "\"timestamp\":1,\"confidence\":1.5}", GOS_REJECT_CONFIDENCE);
	/* The message quotes the user's type (with quotes, backslashes, and
	 * multi-byte text cut at a character boundary). */
	check_error_line(123456789012345ull, "{\"type\":\"\\\"quoted\\\\ \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	                 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}",
	                 GOS_REJECT_UNKNOWN_TYPE);
	check_error_line(7, "{\"type\":\"sync\",\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
	                 "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
	                 "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\":[{\"a\":\"\\u0000\"}]}", GOS_REJECT_WRONG_TYPE);
	/* A deep path of multi-byte names, cut to fit the message. */
	char deep[512], name[64];
	size_t k = 0;
	for (int i = 0; i < 30; i++)
		k += (size_t)snprintf(name + k, sizeof(name) - k, "\xc3\xa9");
	int o = snprintf(deep, sizeof(deep), "{\"type\":\"sync\",\"a%s\":{\"a%s\":{\"%s\":[\"\\u0000\"]}}}",
	                 name, name, name);
	CHECK(o > 0 && (size_t)o < sizeof(deep), "deep line fits");
	check_error_line(8, deep, GOS_REJECT_WRONG_TYPE);
	check_error_line(0, "\xff", GOS_REJECT_UTF8);
	check_error_line(2, "nope", GOS_REJECT_NOT_JSON);

	char *s = gos_protocol_sync_reply(3, 1, 42);
	CHECK(s && !strcmp(s, "{\"type\":\"sync\",\"applied\":3,\"rejected\":1,\"tokens\":42}"), "sync reply %s", s);
	free(s);
	s = gos_protocol_sync_reply(9007199254740992ull, 0, 10000000);
	cJSON *j = s ? cJSON_Parse(s) : NULL;
	CHECK(j != NULL, "sync reply is not JSON: %s", s);
	if (j) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "applied");
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "rejected");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tokens");
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
		CHECK(cJSON_IsString(type) && !strcmp(type->valuestring, "sync"), "type in %s", s);
		CHECK(cJSON_IsNumber(a) && a->valuedouble == 9007199254740992.0, "applied in %s", s);
		CHECK(cJSON_IsNumber(r) && r->valuedouble == 0.0, "rejected in %s", s);
		CHECK(cJSON_IsNumber(t) && t->valuedouble == 10000000.0, "tokens in %s", s);
	}
	cJSON_Delete(j);
	free(s);
	/* A sync reply is itself a line our parser takes as a sync. */
	s = gos_protocol_sync_reply(1, 2, 3);
	struct gos_event ev;
	if (s && ACCEPT(s, &ev))
		CHECK(ev.type == GOS_EV_SYNC, "sync reply parsed as %d", ev.type);
	free(s);
}

/* The screenshot request serialized and read back, and its replies. */
static void test_screenshot_reply(void)
{
	struct gos_event ev;
	/* Serialize and parse back. */
	struct gos_event out = {.type = GOS_EV_SCREENSHOT,
	                        .shot = {.path = "/q\"uote\\d.png", .fit = true, .conn = 9}};
	char *s = gos_protocol_serialize(&out);
	CHECK(s && !strcmp(s, "{\"type\":\"screenshot\",\"path\":\"/q\\\"uote\\\\d.png\",\"fit\":true}"),
	      "serialized %s", s ? s : "(null)");
	if (s && ACCEPT(s, &ev))
		CHECK(ev.type == GOS_EV_SCREENSHOT && !strcmp(ev.shot.path, out.shot.path) && ev.shot.fit,
		      "round trip of %s", s);
	free(s);

	/* Replies. */
	s = gos_protocol_screenshot_reply("/a.png", true, 640, 360, 151, NULL);
	CHECK(s && !strcmp(s, "{\"type\":\"screenshot\",\"path\":\"/a.png\",\"ok\":true,"
	                      "\"width\":640,\"height\":360,\"tokens\":151}"), "ok reply %s", s ? s : "(null)");
	free(s);
	s = gos_protocol_screenshot_reply("/a\".png", false, 0, 0, 0, "cannot write \"/a\".png\"");
	cJSON *j = s ? cJSON_Parse(s) : NULL;
	CHECK(j != NULL, "failure reply is not JSON: %s", s ? s : "(null)");
	if (j) {
		CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "ok")), "ok:false in %s", s);
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "reason");
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "path");
		CHECK(cJSON_IsString(r) && !strcmp(r->valuestring, "cannot write \"/a\".png\""), "reason in %s", s);
		CHECK(cJSON_IsString(p) && !strcmp(p->valuestring, "/a\".png"), "path in %s", s);
		CHECK(!cJSON_GetObjectItemCaseSensitive(j, "width"), "no width in a failure: %s", s);
	}
	cJSON_Delete(j);
	free(s);
	gos_arena_reset(&arena);
}

int main(void)
{
	test_canonical();
	test_round_trips();
	test_replies();
	test_screenshot_reply();
	gos_arena_finish(&arena);
	return gos_test_report("test_protocol_write");
}
