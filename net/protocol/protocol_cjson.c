/* The protocol parser's reference path (gos_protocol_internal.h): one cJSON
 * tree per line, one pass over its members, strings copied into the caller's
 * arena. Every reject comes from here, with its reason and the sentence
 * that names the field; the fast path (protocol_fast.c) only takes lines
 * this path accepts, and gives it everything else. */
#include <cjson/cJSON.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gos_json.h"
#include "gos_utf8.h"
#include "gos_protocol.h"
#include "gos_protocol_internal.h"

/* ---- parse context and errors ------------------------------------------- */

struct pctx {
	struct gos_arena *arena;
	struct gos_parse_error *err;
	const char *parent;     /* "tokens", "top_logprobs" while inside an element */
	uint32_t index;         /* the element's index */
};

/* Cuts a string that snprintf may have truncated back to its last complete
 * UTF-8 character. */
static void utf8_trim_tail(char *s)
{
	size_t len = strlen(s), k = len;
	while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
		k--;
	if (k == 0 || ((unsigned char)s[k - 1] & 0xC0) != 0xC0)
		return;  /* ends in ASCII (or holds no lead byte) */
	unsigned c = (unsigned char)s[k - 1];
	size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
	if (len - (k - 1) < want)
		s[k - 1] = '\0';
}

static bool fail(struct gos_parse_error *err, enum gos_reject reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool fail(struct gos_parse_error *err, enum gos_reject reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(err->message))
		utf8_trim_tail(err->message);
	err->reason = reason;
	return false;
}

/* The field's name as the user wrote it: "confidence", "tokens[3].x". */
static const char *field_name(const struct pctx *pc, const char *name, char buf[64])
{
	if (!pc->parent)
		return name;
	snprintf(buf, 64, "%s[%" PRIu32 "].%s", pc->parent, pc->index, name);
	return buf;
}

#define FIELD(pc, name) field_name((pc), (name), (char[64]){0})

static const char *json_kind(const cJSON *v)
{
	switch (v->type & 0xFF) {
	case cJSON_False: return "false";
	case cJSON_True: return "true";
	case cJSON_NULL: return "null";
	case cJSON_Number: return "a number";
	case cJSON_String: return "a string";
	case cJSON_Array: return "an array";
	case cJSON_Object: return "an object";
	default: return "an invalid value";
	}
}

static bool missing(struct pctx *pc, const char *name)
{
	return fail(pc->err, GOS_REJECT_MISSING_FIELD, "required field \"%s\" is missing",
	            FIELD(pc, name));
}

static bool wrong(struct pctx *pc, const char *name, const char *want, const cJSON *v)
{
	return fail(pc->err, GOS_REJECT_WRONG_TYPE, "field \"%s\" must be %s, got %s",
	            FIELD(pc, name), want, json_kind(v));
}

/* ---- field readers ------------------------------------------------------- */

/* A string of at most max bytes, copied into the arena. */
static bool read_string(struct pctx *pc, const cJSON *v, const char *name, size_t max,
                        bool allow_empty, const char **out)
{
	if (!cJSON_IsString(v))
		return wrong(pc, name, "a string", v);
	size_t len = strlen(v->valuestring);
	if (len > max)
		return fail(pc->err, GOS_REJECT_TOO_LONG,
		            "field \"%s\" is %zu bytes long, over the limit of %zu",
		            FIELD(pc, name), len, max);
	if (len == 0 && !allow_empty)
		return fail(pc->err, GOS_REJECT_MISSING_FIELD, "field \"%s\" is empty",
		            FIELD(pc, name));
	*out = gos_arena_strndup(pc->arena, v->valuestring, len);
	return true;
}

static bool read_number(struct pctx *pc, const cJSON *v, const char *name, double *out)
{
	if (!cJSON_IsNumber(v))
		return wrong(pc, name, "a number", v);
	if (!isfinite(v->valuedouble))
		return fail(pc->err, GOS_REJECT_NOT_FINITE,
		            "field \"%s\" is not a finite number (overflows a double)",
		            FIELD(pc, name));
	*out = v->valuedouble;
	return true;
}

static bool read_float(struct pctx *pc, const cJSON *v, const char *name, float *out)
{
	double d = 0.0;
	if (!read_number(pc, v, name, &d))
		return false;
	if (fabs(d) > FLT_MAX)
		return fail(pc->err, GOS_REJECT_NOT_FINITE,
		            "field \"%s\" is %g, outside the range of a float", FIELD(pc, name), d);
	*out = (float)d;
	return true;
}

static bool read_confidence(struct pctx *pc, const cJSON *v, const char *name, float *out)
{
	double d = 0.0;
	if (!read_number(pc, v, name, &d))
		return false;
	if (!(d >= 0.0 && d <= 1.0))
		return fail(pc->err, GOS_REJECT_CONFIDENCE, "field \"%s\" is %g, outside [0,1]",
		            FIELD(pc, name), d);
	*out = (float)d;
	return true;
}

/* A log-probability: finite and <= 0 (a probability above 1 is reported as a
 * confidence outside [0,1]). */
static bool read_logprob(struct pctx *pc, const cJSON *v, const char *name, float *out)
{
	float f = 0.0f;
	if (!read_float(pc, v, name, &f))
		return false;
	if (f > 0.0f)
		return fail(pc->err, GOS_REJECT_CONFIDENCE,
		            "field \"%s\" is %g, above 0 (a probability over 1)", FIELD(pc, name),
		            v->valuedouble);
	*out = f;
	return true;
}

/* A count: a non-negative integer, exact in a double (<= 2^53). */
static bool read_count(struct pctx *pc, const cJSON *v, const char *name, int64_t *out)
{
	double d = 0.0;
	if (!read_number(pc, v, name, &d))
		return false;
	if (d < 0 || d > 9007199254740992.0 || d != floor(d))
		return fail(pc->err, GOS_REJECT_WRONG_TYPE,
		            "field \"%s\" is %g, not a non-negative integer up to 2^53",
		            FIELD(pc, name), d);
	*out = (int64_t)d;
	return true;
}

/* ---- one pass over an object's members ---------------------------------- */

#define KEY(s) {s, sizeof(s) - 1}

/* Points slot[i] at the member named keys[i] (the first one when a name is
 * repeated, as cJSON_GetObjectItem does); other members are ignored so newer
 * producers can add fields. */
static void collect(const cJSON *obj, const struct gos_protocol_key *keys, size_t nkeys,
                    const cJSON **slot)
{
	for (const cJSON *m = obj->child; m; m = m->next) {
		const char *k = m->string;
		size_t len = strlen(k);
		for (size_t i = 0; i < nkeys; i++) {
			if (keys[i].len == len && !memcmp(keys[i].name, k, len)) {
				if (!slot[i])
					slot[i] = m;
				break;
			}
		}
	}
}

/* Both paths read the same members (gos_protocol_internal.h). */
const struct gos_protocol_key gos_protocol_fields[GOS_F_COUNT_] = {
	[GOS_F_TYPE] = KEY("type"),
	[GOS_F_TOKEN_ID] = KEY("token_id"),
	[GOS_F_TOKEN_TEXT] = KEY("token_text"),
	[GOS_F_TIMESTAMP] = KEY("timestamp"),
	[GOS_F_CONFIDENCE] = KEY("confidence"),
	[GOS_F_POSITION] = KEY("position"),
	[GOS_F_STREAM] = KEY("stream"),
	[GOS_F_LOGPROB] = KEY("logprob"),
	[GOS_F_TOP_LOGPROBS] = KEY("top_logprobs"),
	[GOS_F_STATE] = KEY("state"),
	[GOS_F_TOKENS_PROCESSED] = KEY("tokens_processed"),
	[GOS_F_TOTAL_TOKENS] = KEY("total_tokens"),
	[GOS_F_ELAPSED_MS] = KEY("elapsed_ms"),
	[GOS_F_TOKENS] = KEY("tokens"),
	[GOS_F_PATH] = KEY("path"),
	[GOS_F_FIT] = KEY("fit"),
	[GOS_F_TTFT_MS] = KEY("ttft_ms"),
	[GOS_F_FINISH_REASON] = KEY("finish_reason"),
	[GOS_F_MESSAGE] = KEY("message"),
	[GOS_F_MODEL] = KEY("model"),
};

enum { V_ID, V_TEXT, V_X, V_Y, V_CONFIDENCE, V_STREAM, V_COUNT_ };

static const struct gos_protocol_key viz_keys[V_COUNT_] = {
	[V_ID] = KEY("id"), [V_TEXT] = KEY("text"), [V_X] = KEY("x"), [V_Y] = KEY("y"),
	[V_CONFIDENCE] = KEY("confidence"), [V_STREAM] = KEY("stream"),
};

enum { A_TOKEN, A_LOGPROB, A_COUNT_ };

static const struct gos_protocol_key alt_keys[A_COUNT_] = {
	[A_TOKEN] = KEY("token"), [A_LOGPROB] = KEY("logprob"),
};

static uint32_t array_length(const cJSON *a, uint32_t stop)
{
	uint32_t n = 0;
	for (const cJSON *e = a->child; e && n < stop; e = e->next)
		n++;
	return n;
}

/* ---- the message types --------------------------------------------------- */

static bool parse_position(struct pctx *pc, const cJSON *v, struct gos_token_ev *t)
{
	const char *shape = "an array of two numbers [x,y]";
	if (!cJSON_IsArray(v))
		return wrong(pc, "position", shape, v);
	const cJSON *x = v->child;
	const cJSON *y = x ? x->next : NULL;
	if (!x || !y || y->next)
		return fail(pc->err, GOS_REJECT_WRONG_TYPE, "field \"position\" must be %s, got %" PRIu32 " elements",
		            shape, array_length(v, 1000));
	if (!read_float(pc, x, "position[0]", &t->x) || !read_float(pc, y, "position[1]", &t->y))
		return false;
	t->has_position = true;
	return true;
}

static bool parse_alts(struct pctx *pc, const cJSON *v, struct gos_token_ev *t)
{
	if (!cJSON_IsArray(v))
		return wrong(pc, "top_logprobs", "an array of {\"token\",\"logprob\"} objects", v);
	uint32_t n = array_length(v, GOS_MAX_ALTS);
	struct gos_alt *alts = n ? gos_arena_alloc(pc->arena, n * sizeof(*alts), _Alignof(struct gos_alt)) : NULL;
	uint32_t i = 0;
	pc->parent = "top_logprobs";
	/* Every entry is checked; only the first GOS_MAX_ALTS are kept. */
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		pc->index = i;
		if (!cJSON_IsObject(e)) {
			pc->parent = NULL;
			return fail(pc->err, GOS_REJECT_WRONG_TYPE,
			            "field \"top_logprobs[%" PRIu32 "]\" must be an object {\"token\",\"logprob\"}, got %s",
			            i, json_kind(e));
		}
		const cJSON *f[A_COUNT_] = {0};
		collect(e, alt_keys, A_COUNT_, f);
		struct gos_alt a;
		if (!f[A_TOKEN])
			return missing(pc, "token");
		if (!read_string(pc, f[A_TOKEN], "token", GOS_MAX_TEXT, true, &a.token))
			return false;
		if (!f[A_LOGPROB])
			return missing(pc, "logprob");
		if (!read_logprob(pc, f[A_LOGPROB], "logprob", &a.logprob))
			return false;
		if (i < n)
			alts[i] = a;
	}
	pc->parent = NULL;
	t->n_alts = n;
	t->alts = alts;
	return true;
}

static bool parse_token(struct pctx *pc, const cJSON **f, struct gos_token_ev *t)
{
	t->stream = "";
	t->confidence = NAN;
	t->logprob = NAN;
	if (!f[GOS_F_TOKEN_ID])
		return missing(pc, "token_id");
	if (!read_string(pc, f[GOS_F_TOKEN_ID], "token_id", GOS_MAX_ID, false, &t->id))
		return false;
	if (!f[GOS_F_TOKEN_TEXT])
		return missing(pc, "token_text");
	if (!read_string(pc, f[GOS_F_TOKEN_TEXT], "token_text", GOS_MAX_TEXT, true, &t->text))
		return false;
	if (!f[GOS_F_TIMESTAMP])
		return missing(pc, "timestamp");
	if (!read_number(pc, f[GOS_F_TIMESTAMP], "timestamp", &t->timestamp))
		return false;
	/* confidence is optional: producers without logprobs leave it out and
	 * the token is drawn in the neutral color (NAN here). */
	if (f[GOS_F_CONFIDENCE] &&
	    !read_confidence(pc, f[GOS_F_CONFIDENCE], "confidence", &t->confidence))
		return false;
	if (f[GOS_F_POSITION] && !parse_position(pc, f[GOS_F_POSITION], t))
		return false;
	if (f[GOS_F_STREAM] &&
	    !read_string(pc, f[GOS_F_STREAM], "stream", GOS_MAX_STREAM, true, &t->stream))
		return false;
	if (f[GOS_F_LOGPROB] && !read_logprob(pc, f[GOS_F_LOGPROB], "logprob", &t->logprob))
		return false;
	if (f[GOS_F_TOP_LOGPROBS] && !parse_alts(pc, f[GOS_F_TOP_LOGPROBS], t))
		return false;
	return true;
}

static bool parse_state(struct pctx *pc, const cJSON **f, struct gos_state_ev *s)
{
	s->stream = "";
	s->tokens_processed = -1;
	s->total_tokens = -1;
	s->elapsed_ms = NAN;
	s->ttft_ms = NAN;
	s->finish_reason = s->message = s->model = NULL;
	if (!f[GOS_F_STATE])
		return missing(pc, "state");
	if (!read_string(pc, f[GOS_F_STATE], "state", GOS_MAX_STATE, true, &s->state))
		return false;
	if (f[GOS_F_TOKENS_PROCESSED] &&
	    !read_count(pc, f[GOS_F_TOKENS_PROCESSED], "tokens_processed", &s->tokens_processed))
		return false;
	if (f[GOS_F_TOTAL_TOKENS] &&
	    !read_count(pc, f[GOS_F_TOTAL_TOKENS], "total_tokens", &s->total_tokens))
		return false;
	if (f[GOS_F_ELAPSED_MS] && !read_number(pc, f[GOS_F_ELAPSED_MS], "elapsed_ms", &s->elapsed_ms))
		return false;
	if (f[GOS_F_TTFT_MS]) {
		if (!read_number(pc, f[GOS_F_TTFT_MS], "ttft_ms", &s->ttft_ms))
			return false;
		if (s->ttft_ms < 0)
			return fail(pc->err, GOS_REJECT_WRONG_TYPE,
			            "field \"ttft_ms\" is %g, a time cannot be negative", s->ttft_ms);
	}
	if (f[GOS_F_FINISH_REASON] &&
	    !read_string(pc, f[GOS_F_FINISH_REASON], "finish_reason", GOS_MAX_STATE, true,
	                 &s->finish_reason))
		return false;
	if (f[GOS_F_MESSAGE] &&
	    !read_string(pc, f[GOS_F_MESSAGE], "message", GOS_MAX_MESSAGE, true, &s->message))
		return false;
	if (f[GOS_F_MODEL] && !read_string(pc, f[GOS_F_MODEL], "model", GOS_MAX_MODEL, true, &s->model))
		return false;
	if (f[GOS_F_STREAM] &&
	    !read_string(pc, f[GOS_F_STREAM], "stream", GOS_MAX_STREAM, true, &s->stream))
		return false;
	return true;
}

static bool parse_viz_token(struct pctx *pc, const cJSON *e, struct gos_viz_token *t)
{
	if (!cJSON_IsObject(e))
		return fail(pc->err, GOS_REJECT_WRONG_TYPE,
		            "field \"tokens[%" PRIu32 "]\" must be an object {\"id\",\"text\",\"x\",\"y\"}, got %s",
		            pc->index, json_kind(e));
	const cJSON *f[V_COUNT_] = {0};
	collect(e, viz_keys, V_COUNT_, f);
	t->stream = "";
	t->confidence = NAN;
	if (!f[V_ID])
		return missing(pc, "id");
	if (!read_string(pc, f[V_ID], "id", GOS_MAX_ID, false, &t->id))
		return false;
	if (!f[V_TEXT])
		return missing(pc, "text");
	if (!read_string(pc, f[V_TEXT], "text", GOS_MAX_TEXT, true, &t->text))
		return false;
	if (!f[V_X])
		return missing(pc, "x");
	if (!read_float(pc, f[V_X], "x", &t->x))
		return false;
	if (!f[V_Y])
		return missing(pc, "y");
	if (!read_float(pc, f[V_Y], "y", &t->y))
		return false;
	if (f[V_CONFIDENCE] && !read_confidence(pc, f[V_CONFIDENCE], "confidence", &t->confidence))
		return false;
	if (f[V_STREAM] && !read_string(pc, f[V_STREAM], "stream", GOS_MAX_STREAM, true, &t->stream))
		return false;
	return true;
}

static bool parse_viz(struct pctx *pc, const cJSON **f, struct gos_viz_ev *z)
{
	const cJSON *v = f[GOS_F_TOKENS];
	if (!v)
		return missing(pc, "tokens");
	if (!cJSON_IsArray(v))
		return wrong(pc, "tokens", "an array of {\"id\",\"text\",\"x\",\"y\"} objects", v);
	uint32_t n = array_length(v, GOS_MAX_VIZ_TOKENS + 1);
	if (n > GOS_MAX_VIZ_TOKENS)
		return fail(pc->err, GOS_REJECT_TOO_LONG,
		            "field \"tokens\" has more than %d entries", GOS_MAX_VIZ_TOKENS);
	struct gos_viz_token *toks =
		n ? gos_arena_alloc(pc->arena, n * sizeof(*toks), _Alignof(struct gos_viz_token)) : NULL;
	pc->parent = "tokens";
	pc->index = 0;
	for (const cJSON *e = v->child; e; e = e->next, pc->index++)
		if (!parse_viz_token(pc, e, &toks[pc->index]))
			return false;
	pc->parent = NULL;
	z->n_tokens = n;
	z->tokens = toks;
	return true;
}

static bool parse_screenshot(struct pctx *pc, const cJSON **f, struct gos_screenshot_ev *s)
{
	if (!f[GOS_F_PATH])
		return missing(pc, "path");
	if (!read_string(pc, f[GOS_F_PATH], "path", GOS_MAX_PATH, false, &s->path))
		return false;
	if (s->path[0] != '/')
		return fail(pc->err, GOS_REJECT_WRONG_TYPE,
		            "field \"path\" must be an absolute path (starting with '/'), got \"%.*s\"",
		            (int)gos_utf8_cut(s->path, strlen(s->path), 48), s->path);
	if (f[GOS_F_FIT]) {
		if (!cJSON_IsBool(f[GOS_F_FIT]))
			return wrong(pc, "fit", "true or false", f[GOS_F_FIT]);
		s->fit = cJSON_IsTrue(f[GOS_F_FIT]);
	}
	return true;
}

/* ---- escaped NULs -------------------------------------------------------- */

/* True when the JSON text holds a \u0000 escape. Backslashes only occur
 * inside strings, where each one starts a two-character (or \uXXXX) escape. */
static bool has_nul_escape(const char *s, size_t len)
{
	const char *end = s + len;
	const char *p = memchr(s, '\\', len);
	while (p) {
		if (end - p >= 6 && p[1] == 'u' && !memcmp(p + 2, "0000", 4))
			return true;
		p += 2;
		if (p >= end)
			break;
		p = memchr(p, '\\', (size_t)(end - p));
	}
	return false;
}

/* Names the first string in the (valid) JSON text s that holds a \u0000
 * escape, as a path such as tokens[2].text, or "" when it is a member name.
 * Slow path only: runs once a line is known to hold such an escape. */
static void name_nul_string(const char *s, size_t len, char *out, size_t cap)
{
	enum { MAX_DEPTH = 16 };  /* deeper levels are walked but not named */
	struct frame {
		bool object, want_key;
		const char *key;
		size_t key_len;
		uint32_t index;
	} st[MAX_DEPTH];
	int depth = 0;
	snprintf(out, cap, "?");
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		struct frame *top = depth > 0 && depth <= MAX_DEPTH ? &st[depth - 1] : NULL;
		if (c == '{' || c == '[') {
			if (depth < MAX_DEPTH)
				st[depth] = (struct frame){.object = c == '{', .want_key = c == '{'};
			depth++;
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == ',' && top) {
			if (top->object)
				top->want_key = true;
			else
				top->index++;
		} else if (c == ':' && top) {
			top->want_key = false;
		} else if (c == '"') {
			size_t start = ++i;
			bool nul = false;
			for (; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\') {
					if (len - i >= 6 && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4))
						nul = true;
					i++;
				}
			}
			if (top && top->object && top->want_key) {
				top->key = s + start;
				top->key_len = i - start;
				if (nul) {
					out[0] = '\0';
					return;
				}
			} else if (nul) {
				size_t o = 0;
				int named = depth < MAX_DEPTH ? depth : MAX_DEPTH;
				for (int d = 0; d < named && o < cap; d++) {
					int w;
					if (st[d].object)
						w = snprintf(out + o, cap - o, "%s%.*s", d ? "." : "",
						             (int)gos_utf8_cut(st[d].key, st[d].key_len, 40), st[d].key);
					else
						w = snprintf(out + o, cap - o, "[%" PRIu32 "]", st[d].index);
					if (w < 0)
						break;
					o += (size_t)w;
				}
				utf8_trim_tail(out);
				return;
			}
		}
	}
}

/* ---- the cJSON path ------------------------------------------------------ */

/* What the line must be before cJSON sees it: not too long, UTF-8, no raw
 * NUL. (The fast path checks the same as it goes.) */
static bool precheck(const char *line, size_t len, struct gos_parse_error *err)
{
	if (len > GOS_MAX_LINE)
		return fail(err, GOS_REJECT_LINE_TOO_LONG, "line is %zu bytes long, over the limit of %u",
		            len, GOS_MAX_LINE);
	size_t bad = gos_utf8_valid_prefix(line, len);
	if (bad != len)
		return fail(err, GOS_REJECT_UTF8, "line is not valid UTF-8 (bad byte 0x%02X at offset %zu)",
		            (unsigned char)line[bad], bad);
	/* cJSON would cut a string at a raw NUL; JSON allows none anywhere. */
	const char *nul = memchr(line, '\0', len);
	if (nul)
		return fail(err, GOS_REJECT_NOT_JSON, "line holds a NUL byte at offset %zu",
		            (size_t)(nul - line));
	return true;
}

/* The cJSON path, after precheck(): *ev zeroed, err cleared. */
static bool parse_cjson(const char *line, size_t len, struct gos_event *ev,
                        struct gos_arena *arena, struct gos_parse_error *err)
{
	size_t stop = 0;
	cJSON *root = len ? gos_json_parse_at(line, len, &stop) : NULL;
	if (!root) {
		if (len == 0)
			return fail(err, GOS_REJECT_NOT_JSON, "line is empty, expected a JSON object");
		return fail(err, GOS_REJECT_NOT_JSON, "line is not valid JSON (error near offset %zu)",
		            stop);
	}
	bool ok = false;
	for (const char *p = line + stop; p < line + len; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
			fail(err, GOS_REJECT_NOT_JSON, "unexpected text after the JSON value at offset %zu",
			     (size_t)(p - line));
			goto out;
		}
	}
	if (!cJSON_IsObject(root)) {
		fail(err, GOS_REJECT_NOT_JSON, "line is %s, expected a JSON object", json_kind(root));
		goto out;
	}

	const cJSON *f[GOS_F_COUNT_] = {0};
	collect(root, gos_protocol_fields, GOS_F_COUNT_, f);
	const cJSON *type = f[GOS_F_TYPE];
	if (!type) {
		fail(err, GOS_REJECT_UNKNOWN_TYPE, "required field \"type\" is missing");
		goto out;
	}
	if (!cJSON_IsString(type)) {
		fail(err, GOS_REJECT_UNKNOWN_TYPE, "field \"type\" must be a string, got %s",
		     json_kind(type));
		goto out;
	}
	const char *tn = type->valuestring;
	if (!strcmp(tn, "token_activation")) {
		ev->type = GOS_EV_TOKEN;
	} else if (!strcmp(tn, "neural_state")) {
		ev->type = GOS_EV_STATE;
	} else if (!strcmp(tn, "token_visualization")) {
		ev->type = GOS_EV_VIZ;
	} else if (!strcmp(tn, "sync")) {
		ev->type = GOS_EV_SYNC;
	} else if (!strcmp(tn, "screenshot")) {
		ev->type = GOS_EV_SCREENSHOT;
	} else {
		fail(err, GOS_REJECT_UNKNOWN_TYPE,
		     "unknown \"type\" \"%.*s\" (expected token_activation, neural_state, "
		     "token_visualization, sync or screenshot)", (int)gos_utf8_cut(tn, strlen(tn), 32), tn);
		goto out;
	}

	/* We hand out C strings, so a string holding U+0000 cannot be stored. */
	if (has_nul_escape(line, len)) {
		char path[96];
		name_nul_string(line, len, path, sizeof(path));
		if (path[0])
			fail(err, GOS_REJECT_WRONG_TYPE,
			     "field \"%s\" contains a NUL character (\\u0000)", path);
		else
			fail(err, GOS_REJECT_WRONG_TYPE, "a field name contains a NUL character (\\u0000)");
		goto out;
	}

	struct pctx pc = {.arena = arena, .err = err};
	switch (ev->type) {
	case GOS_EV_TOKEN: ok = parse_token(&pc, f, &ev->token); break;
	case GOS_EV_STATE: ok = parse_state(&pc, f, &ev->state); break;
	case GOS_EV_VIZ: ok = parse_viz(&pc, f, &ev->viz); break;
	case GOS_EV_SYNC: ok = true; break;
	case GOS_EV_SCREENSHOT: ok = parse_screenshot(&pc, f, &ev->shot); break;
	case GOS_EV_NONE:
	case GOS_EV_COUNT_: break;
	}
out:
	cJSON_Delete(root);
	if (!ok)
		memset(ev, 0, sizeof(*ev));
	return ok;
}

bool gos_protocol_parse_reference(const char *line, size_t len, struct gos_event *ev,
                                  struct gos_arena *arena, struct gos_parse_error *err)
{
	memset(ev, 0, sizeof(*ev));
	err->reason = GOS_REJECT_NONE;
	err->message[0] = '\0';
	if (!precheck(line, len, err))
		return false;
	return parse_cjson(line, len, ev, arena, err);
}
