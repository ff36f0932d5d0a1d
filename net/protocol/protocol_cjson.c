/* Wire protocol: parse and validate ingest lines into struct gos_event, and
 * serialize events, error lines and sync replies (see gos_protocol.h).
 * Parsing sits on the ingest hot path. The cJSON path is the reference: one
 * cJSON tree per line, one pass over its members, strings copied into the
 * caller's arena. A fast path in front of it takes the common shapes without
 * building a tree and hands everything else (every reject included) to it. */
#include <cjson/cJSON.h>
#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_buf.h"
#include "gos_json.h"
#include "gos_utf8.h"
#include "gos_protocol.h"
#include "gos_protocol_internal.h"

/* ---- reject names, UTF-8 ------------------------------------------------ */

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

struct key {
	const char *name;
	size_t len;
};

#define KEY(s) {s, sizeof(s) - 1}

/* Points slot[i] at the member named keys[i] (the first one when a name is
 * repeated, as cJSON_GetObjectItem does); other members are ignored so newer
 * producers can add fields. */
static void collect(const cJSON *obj, const struct key *keys, size_t nkeys, const cJSON **slot)
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

enum {
	F_TYPE, F_TOKEN_ID, F_TOKEN_TEXT, F_TIMESTAMP, F_CONFIDENCE, F_POSITION,
	F_STREAM, F_LOGPROB, F_TOP_LOGPROBS, F_STATE, F_TOKENS_PROCESSED,
	F_TOTAL_TOKENS, F_ELAPSED_MS, F_TOKENS, F_PATH, F_FIT, F_COUNT_
};

static const struct key top_keys[F_COUNT_] = {
	[F_TYPE] = KEY("type"),
	[F_TOKEN_ID] = KEY("token_id"),
	[F_TOKEN_TEXT] = KEY("token_text"),
	[F_TIMESTAMP] = KEY("timestamp"),
	[F_CONFIDENCE] = KEY("confidence"),
	[F_POSITION] = KEY("position"),
	[F_STREAM] = KEY("stream"),
	[F_LOGPROB] = KEY("logprob"),
	[F_TOP_LOGPROBS] = KEY("top_logprobs"),
	[F_STATE] = KEY("state"),
	[F_TOKENS_PROCESSED] = KEY("tokens_processed"),
	[F_TOTAL_TOKENS] = KEY("total_tokens"),
	[F_ELAPSED_MS] = KEY("elapsed_ms"),
	[F_TOKENS] = KEY("tokens"),
	[F_PATH] = KEY("path"),
	[F_FIT] = KEY("fit"),
};

enum { V_ID, V_TEXT, V_X, V_Y, V_CONFIDENCE, V_STREAM, V_COUNT_ };

static const struct key viz_keys[V_COUNT_] = {
	[V_ID] = KEY("id"), [V_TEXT] = KEY("text"), [V_X] = KEY("x"), [V_Y] = KEY("y"),
	[V_CONFIDENCE] = KEY("confidence"), [V_STREAM] = KEY("stream"),
};

enum { A_TOKEN, A_LOGPROB, A_COUNT_ };

static const struct key alt_keys[A_COUNT_] = {
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
	if (!f[F_TOKEN_ID])
		return missing(pc, "token_id");
	if (!read_string(pc, f[F_TOKEN_ID], "token_id", GOS_MAX_ID, false, &t->id))
		return false;
	if (!f[F_TOKEN_TEXT])
		return missing(pc, "token_text");
	if (!read_string(pc, f[F_TOKEN_TEXT], "token_text", GOS_MAX_TEXT, true, &t->text))
		return false;
	if (!f[F_TIMESTAMP])
		return missing(pc, "timestamp");
	if (!read_number(pc, f[F_TIMESTAMP], "timestamp", &t->timestamp))
		return false;
	/* confidence is optional: producers without logprobs leave it out and
	 * the token is drawn in the neutral color (NAN here). */
	if (f[F_CONFIDENCE] && !read_confidence(pc, f[F_CONFIDENCE], "confidence", &t->confidence))
		return false;
	if (f[F_POSITION] && !parse_position(pc, f[F_POSITION], t))
		return false;
	if (f[F_STREAM] && !read_string(pc, f[F_STREAM], "stream", GOS_MAX_STREAM, true, &t->stream))
		return false;
	if (f[F_LOGPROB] && !read_logprob(pc, f[F_LOGPROB], "logprob", &t->logprob))
		return false;
	if (f[F_TOP_LOGPROBS] && !parse_alts(pc, f[F_TOP_LOGPROBS], t))
		return false;
	return true;
}

static bool parse_state(struct pctx *pc, const cJSON **f, struct gos_state_ev *s)
{
	s->stream = "";
	s->tokens_processed = -1;
	s->total_tokens = -1;
	s->elapsed_ms = NAN;
	if (!f[F_STATE])
		return missing(pc, "state");
	if (!read_string(pc, f[F_STATE], "state", GOS_MAX_STATE, true, &s->state))
		return false;
	if (f[F_TOKENS_PROCESSED] &&
	    !read_count(pc, f[F_TOKENS_PROCESSED], "tokens_processed", &s->tokens_processed))
		return false;
	if (f[F_TOTAL_TOKENS] && !read_count(pc, f[F_TOTAL_TOKENS], "total_tokens", &s->total_tokens))
		return false;
	if (f[F_ELAPSED_MS] && !read_number(pc, f[F_ELAPSED_MS], "elapsed_ms", &s->elapsed_ms))
		return false;
	if (f[F_STREAM] && !read_string(pc, f[F_STREAM], "stream", GOS_MAX_STREAM, true, &s->stream))
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
	const cJSON *v = f[F_TOKENS];
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
	if (!f[F_PATH])
		return missing(pc, "path");
	if (!read_string(pc, f[F_PATH], "path", GOS_MAX_PATH, false, &s->path))
		return false;
	if (s->path[0] != '/')
		return fail(pc->err, GOS_REJECT_WRONG_TYPE,
		            "field \"path\" must be an absolute path (starting with '/'), got \"%.*s\"",
		            (int)gos_utf8_cut(s->path, strlen(s->path), 48), s->path);
	if (f[F_FIT]) {
		if (!cJSON_IsBool(f[F_FIT]))
			return wrong(pc, "fit", "true or false", f[F_FIT]);
		s->fit = cJSON_IsTrue(f[F_FIT]);
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

/* Checks every path makes before parsing: length, UTF-8, no raw NUL. */
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

	const cJSON *f[F_COUNT_] = {0};
	collect(root, top_keys, F_COUNT_, f);
	const cJSON *type = f[F_TYPE];
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

/* ---- fast path ------------------------------------------------------------ */

/* The common shape of a line, read without building a cJSON tree: one object
 * whose member values are strings without escapes or control characters,
 * plain RFC 8259 numbers, true/false/null, or (for "position") an array of
 * two numbers, of type token_activation or sync. It says yes only where the
 * cJSON path accepts with the same result; on anything else (every reject,
 * escapes, duplicate known keys, nesting, top_logprobs, other types) it says
 * "not mine" and the line takes the cJSON path. tests/test_protocol_diff.c
 * holds the two paths to each other. */

enum fv_kind { FV_NONE, FV_STRING, FV_NUMBER, FV_LITERAL, FV_PAIR };

struct fval {
	enum fv_kind kind;
	const char *s;       /* FV_STRING: the bytes between the quotes */
	size_t len;
	double num[2];       /* FV_NUMBER: num[0]; FV_PAIR: both */
};

static inline bool fast_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static inline const char *fast_skip(const char *p, const char *end)
{
	while (p < end && fast_ws(*p))
		p++;
	return p;
}

/* The closing quote of a string whose body starts at p, or NULL when the
 * body holds a backslash, a control character (NUL included) or invalid
 * UTF-8, or does not end. The fast path checks UTF-8 here, string by
 * string, instead of over the whole line first: outside strings its grammar
 * admits only ASCII, and a multibyte sequence cannot span an ASCII byte. */
static const char *fast_string_end(const char *p, const char *end)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	const char *start = p;
	uint64_t high = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* Eight bytes at a time: the lowest flagged byte of a word is the first
	 * quote, backslash or control byte (the carries that can flag a later
	 * byte only run upward from a true one). */
	while (end - p >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
		uint64_t hit = (((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v)) & highs;
		if (hit) {
			unsigned i = (unsigned)__builtin_ctzll(hit) >> 3;
			high |= v & ((1ull << (8 * i)) - 1);  /* i < 8 */
			p += i;
			break;
		}
		high |= v;
		p += 8;
	}
#endif
	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			if ((high & highs) && gos_utf8_valid_prefix(start,
			                                      (size_t)(p - start)) != (size_t)(p - start))
				return NULL;
			return p;
		}
		if (c == '\\' || c < 0x20)
			return NULL;
		high |= c;
	}
	return NULL;
}

static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* A number in strict JSON grammar at p, followed by a byte cJSON stops at.
 * Returns the end, or NULL (not mine) when the grammar or that byte does
 * not fit, when it is longer than cJSON's 63-byte number buffer, or when it
 * is not finite. The value is the correctly rounded one that strtod (what
 * cJSON calls) gives: exactly so when the digits fit in 2^53 and the power
 * of ten is exact (one IEEE operation); otherwise from strtod itself. */
static const char *fast_number(const char *p, const char *end, double *out)
{
	const char *start = p;
	bool neg = false;
	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	uint64_t w = 0;
	int digits = 0, frac = 0;
	bool exact = true;
	if (p >= end)
		return NULL;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			if (digits < 19)
				w = w * 10 + (uint64_t)(*p - '0');
			else
				exact = false;
			digits++;
		}
	} else {
		return NULL;
	}
	if (p < end && *p == '.') {
		p++;
		const char *f0 = p;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			if (digits < 19)
				w = w * 10 + (uint64_t)(*p - '0');
			else
				exact = false;
			if (w)
				digits++;
			frac++;
		}
		if (p == f0)
			return NULL;
	}
	int e = 0;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		bool eneg = false;
		if (p < end && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		const char *e0 = p;
		for (; p < end && *p >= '0' && *p <= '9'; p++)
			if (e < 100000)
				e = e * 10 + (*p - '0');
		if (p == e0)
			return NULL;
		if (eneg)
			e = -e;
	}
	if (p >= end || (p - start) > 63)
		return NULL;
	char c = *p;
	if (c != ',' && c != '}' && c != ']' && !fast_ws(c))
		return NULL;
	int e10 = e - frac;
	double d;
	if (exact && w <= (1ull << 53) && e10 >= -22 && e10 <= 22) {
		d = e10 < 0 ? (double)w / pow10_exact[-e10] : (double)w * pow10_exact[e10];
		if (neg)
			d = -d;
	} else {
		/* As cJSON does it: a copy with the locale's decimal point. */
		char buf[64];
		size_t n = (size_t)(p - start);
		memcpy(buf, start, n);
		buf[n] = '\0';
		char dp = localeconv()->decimal_point[0];
		if (dp != '.') {
			char *dot = memchr(buf, '.', n);
			if (dot)
				*dot = dp;
		}
		char *stop = NULL;
		d = strtod(buf, &stop);
		if (stop != buf + n)
			return NULL;
	}
	if (!isfinite(d))
		return NULL;
	*out = d;
	return p;
}

/* F_* index of a member name, -1 when gos does not read it. */
static int fast_key(const char *k, size_t len)
{
	int i;
	switch (len) {
	case 4: i = F_TYPE; break;
	case 5: i = F_STATE; break;
	case 6: i = k[0] == 's' ? F_STREAM : F_TOKENS; break;
	case 7: i = F_LOGPROB; break;
	case 8: i = k[0] == 't' ? F_TOKEN_ID : F_POSITION; break;
	case 9: i = F_TIMESTAMP; break;
	case 10: i = k[0] == 't' ? F_TOKEN_TEXT : k[0] == 'c' ? F_CONFIDENCE : F_ELAPSED_MS; break;
	case 12: i = k[1] == 'o' ? (k[2] == 'p' ? F_TOP_LOGPROBS : F_TOTAL_TOKENS) : -1; break;
	case 16: i = F_TOKENS_PROCESSED; break;
	default: return -1;
	}
	if (i < 0 || top_keys[i].len != len || memcmp(top_keys[i].name, k, len) != 0)
		return -1;
	return i;
}

/* One member value at p (after the colon and any blanks); key is its
 * F_* index or -1. Returns the end of the value, or NULL: not mine. */
static const char *fast_value(const char *p, const char *end, int key, struct fval *v)
{
	char c = *p;
	if (c == '"') {
		const char *se = fast_string_end(p + 1, end);
		if (!se)
			return NULL;
		v->kind = FV_STRING;
		v->s = p + 1;
		v->len = (size_t)(se - (p + 1));
		return se + 1;
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		v->kind = FV_NUMBER;
		return fast_number(p, end, &v->num[0]);
	}
	if (c == '[' && key == F_POSITION) {
		p = fast_skip(p + 1, end);
		p = p < end ? fast_number(p, end, &v->num[0]) : NULL;
		p = p ? fast_skip(p, end) : NULL;
		if (!p || p >= end || *p != ',')
			return NULL;
		p = fast_skip(p + 1, end);
		p = p < end ? fast_number(p, end, &v->num[1]) : NULL;
		p = p ? fast_skip(p, end) : NULL;
		if (!p || p >= end || *p != ']')
			return NULL;
		v->kind = FV_PAIR;
		return p + 1;
	}
	static const char *const lits[] = {"true", "false", "null"};
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(lits[i]);
		if ((size_t)(end - p) >= n && !memcmp(p, lits[i], n)) {
			v->kind = FV_LITERAL;
			return p + n;
		}
	}
	return NULL;
}

static bool fast_string_ok(const struct fval *v, size_t max, bool allow_empty)
{
	return v->kind == FV_STRING && v->len <= max && (allow_empty || v->len > 0);
}

static bool fast_parse(const char *line, size_t len, struct gos_event *ev,
                       struct gos_arena *arena)
{
	const char *end = line + len;
	const char *p = fast_skip(line, end);
	if (p >= end || *p != '{')
		return false;
	p = fast_skip(p + 1, end);
	struct fval f[F_COUNT_];
	for (int i = 0; i < F_COUNT_; i++)
		f[i].kind = FV_NONE;
	for (;;) {
		if (p >= end || *p != '"')
			return false;
		const char *ke = fast_string_end(p + 1, end);
		if (!ke)
			return false;
		int key = fast_key(p + 1, (size_t)(ke - (p + 1)));
		p = fast_skip(ke + 1, end);
		if (p >= end || *p != ':')
			return false;
		p = fast_skip(p + 1, end);
		if (p >= end)
			return false;
		struct fval scratch;
		struct fval *v = key >= 0 ? &f[key] : &scratch;
		if (key >= 0 && f[key].kind != FV_NONE)
			return false;  /* a repeated known key: the cJSON path decides */
		p = fast_value(p, end, key, v);
		if (!p)
			return false;
		p = fast_skip(p, end);
		if (p >= end)
			return false;
		if (*p == '}')
			break;
		if (*p != ',')
			return false;
		p = fast_skip(p + 1, end);
	}
	for (p++; p < end; p++)
		if (!fast_ws(*p))
			return false;

	const struct fval *type = &f[F_TYPE];
	if (type->kind != FV_STRING)
		return false;
	if (type->len == 4 && !memcmp(type->s, "sync", 4)) {
		ev->type = GOS_EV_SYNC;
		return true;
	}
	if (type->len != 16 || memcmp(type->s, "token_activation", 16) != 0)
		return false;
	const struct fval *id = &f[F_TOKEN_ID], *text = &f[F_TOKEN_TEXT], *ts = &f[F_TIMESTAMP];
	const struct fval *conf = &f[F_CONFIDENCE], *pos = &f[F_POSITION], *stream = &f[F_STREAM];
	const struct fval *lp = &f[F_LOGPROB];
	if (!fast_string_ok(id, GOS_MAX_ID, false) || !fast_string_ok(text, GOS_MAX_TEXT, true))
		return false;
	if (ts->kind != FV_NUMBER)
		return false;
	if (conf->kind != FV_NONE &&
	    (conf->kind != FV_NUMBER || !(conf->num[0] >= 0.0 && conf->num[0] <= 1.0)))
		return false;
	if (pos->kind != FV_NONE &&
	    (pos->kind != FV_PAIR || fabs(pos->num[0]) > FLT_MAX || fabs(pos->num[1]) > FLT_MAX))
		return false;
	if (stream->kind != FV_NONE && !fast_string_ok(stream, GOS_MAX_STREAM, true))
		return false;
	if (lp->kind != FV_NONE &&
	    (lp->kind != FV_NUMBER || fabs(lp->num[0]) > FLT_MAX || (float)lp->num[0] > 0.0f))
		return false;
	if (f[F_TOP_LOGPROBS].kind != FV_NONE)
		return false;

	struct gos_token_ev *t = &ev->token;
	ev->type = GOS_EV_TOKEN;
	t->id = gos_arena_strndup(arena, id->s, id->len);
	t->text = gos_arena_strndup(arena, text->s, text->len);
	t->timestamp = ts->num[0];
	t->confidence = conf->kind != FV_NONE ? (float)conf->num[0] : NAN;
	if (pos->kind != FV_NONE) {
		t->has_position = true;
		t->x = (float)pos->num[0];
		t->y = (float)pos->num[1];
	}
	t->stream = stream->kind != FV_NONE ? gos_arena_strndup(arena, stream->s, stream->len) : "";
	t->logprob = lp->kind != FV_NONE ? (float)lp->num[0] : NAN;
	return true;
}

/* ---- gos_protocol_parse and its two paths ---------------------------------- */

bool gos_protocol_parse(const char *line, size_t len, struct gos_event *ev,
                        struct gos_arena *arena, struct gos_parse_error *err)
{
	memset(ev, 0, sizeof(*ev));
	err->reason = GOS_REJECT_NONE;
	err->message[0] = '\0';
	/* The fast path checks UTF-8 and NULs itself as it goes. */
	if (len <= GOS_MAX_LINE && fast_parse(line, len, ev, arena))
		return true;
	memset(ev, 0, sizeof(*ev));
	if (!precheck(line, len, err))
		return false;
	return parse_cjson(line, len, ev, arena, err);
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

bool gos_protocol_parse_fast(const char *line, size_t len, struct gos_event *ev,
                             struct gos_arena *arena)
{
	memset(ev, 0, sizeof(*ev));
	if (len <= GOS_MAX_LINE && fast_parse(line, len, ev, arena))
		return true;
	memset(ev, 0, sizeof(*ev));
	return false;
}

/* ---- serializers --------------------------------------------------------- */

/* Serializers write through gos_buf, the JSON writer the broadcaster uses
 * too. s must be a string literal (sizeof gives its length). */
#define jw_lit(w, s) gos_buf_append((w), "" s, sizeof(s) - 1)

static void jw_str(struct gos_buf *w, const char *s)
{
	gos_buf_json_str(w, s ? s : "");
}

static bool has_text(const char *s)
{
	return s && s[0];
}

static void write_token(struct gos_buf *w, const struct gos_token_ev *t)
{
	jw_lit(w, "{\"type\":\"token_activation\",\"token_id\":");
	jw_str(w, t->id);
	jw_lit(w, ",\"token_text\":");
	jw_str(w, t->text);
	jw_lit(w, ",\"timestamp\":");
	gos_buf_json_f64(w, t->timestamp);
	if (!isnan(t->confidence)) {
		jw_lit(w, ",\"confidence\":");
		gos_buf_json_f32(w, t->confidence);
	}
	if (t->has_position) {
		jw_lit(w, ",\"position\":[");
		gos_buf_json_f32(w, t->x);
		jw_lit(w, ",");
		gos_buf_json_f32(w, t->y);
		jw_lit(w, "]");
	}
	if (has_text(t->stream)) {
		jw_lit(w, ",\"stream\":");
		jw_str(w, t->stream);
	}
	if (!isnan(t->logprob)) {
		jw_lit(w, ",\"logprob\":");
		gos_buf_json_f32(w, t->logprob);
	}
	if (t->n_alts) {
		jw_lit(w, ",\"top_logprobs\":[");
		for (uint32_t i = 0; i < t->n_alts; i++) {
			jw_lit(w, "{\"token\":");
			jw_str(w, t->alts[i].token);
			jw_lit(w, ",\"logprob\":");
			gos_buf_json_f32(w, t->alts[i].logprob);
			jw_lit(w, "}");
			if (i + 1 < t->n_alts)
				jw_lit(w, ",");
		}
		jw_lit(w, "]");
	}
	jw_lit(w, "}");
}

static void write_state(struct gos_buf *w, const struct gos_state_ev *s)
{
	jw_lit(w, "{\"type\":\"neural_state\",\"state\":");
	jw_str(w, s->state);
	if (s->tokens_processed >= 0) {
		jw_lit(w, ",\"tokens_processed\":");
		gos_buf_u64(w, (uint64_t)s->tokens_processed);
	}
	if (s->total_tokens >= 0) {
		jw_lit(w, ",\"total_tokens\":");
		gos_buf_u64(w, (uint64_t)s->total_tokens);
	}
	if (!isnan(s->elapsed_ms)) {
		jw_lit(w, ",\"elapsed_ms\":");
		gos_buf_json_f64(w, s->elapsed_ms);
	}
	if (has_text(s->stream)) {
		jw_lit(w, ",\"stream\":");
		jw_str(w, s->stream);
	}
	jw_lit(w, "}");
}

static void write_viz(struct gos_buf *w, const struct gos_viz_ev *z)
{
	jw_lit(w, "{\"type\":\"token_visualization\",\"tokens\":[");
	for (uint32_t i = 0; i < z->n_tokens; i++) {
		const struct gos_viz_token *t = &z->tokens[i];
		jw_lit(w, "{\"id\":");
		jw_str(w, t->id);
		jw_lit(w, ",\"text\":");
		jw_str(w, t->text);
		jw_lit(w, ",\"x\":");
		gos_buf_json_f32(w, t->x);
		jw_lit(w, ",\"y\":");
		gos_buf_json_f32(w, t->y);
		if (!isnan(t->confidence)) {
			jw_lit(w, ",\"confidence\":");
			gos_buf_json_f32(w, t->confidence);
		}
		if (has_text(t->stream)) {
			jw_lit(w, ",\"stream\":");
			jw_str(w, t->stream);
		}
		jw_lit(w, "}");
		if (i + 1 < z->n_tokens)
			jw_lit(w, ",");
	}
	jw_lit(w, "]}");
}

char *gos_protocol_serialize(const struct gos_event *ev)
{
	struct gos_buf w = {0};
	switch (ev->type) {
	case GOS_EV_TOKEN: write_token(&w, &ev->token); break;
	case GOS_EV_STATE: write_state(&w, &ev->state); break;
	case GOS_EV_VIZ: write_viz(&w, &ev->viz); break;
	case GOS_EV_SYNC: jw_lit(&w, "{\"type\":\"sync\"}"); break;
	case GOS_EV_SCREENSHOT:
		jw_lit(&w, "{\"type\":\"screenshot\",\"path\":");
		jw_str(&w, ev->shot.path ? ev->shot.path : "");
		if (ev->shot.fit)
			jw_lit(&w, ",\"fit\":true");
		jw_lit(&w, "}");
		break;
	case GOS_EV_NONE:
	case GOS_EV_COUNT_: return NULL;
	}
	return gos_buf_take(&w);
}

char *gos_protocol_error_line(uint64_t line_no, const struct gos_parse_error *err)
{
	struct gos_buf w = {0};
	jw_lit(&w, "{\"type\":\"error\",\"line\":");
	gos_buf_u64(&w, line_no);
	jw_lit(&w, ",\"reason\":");
	jw_str(&w, err->message);
	jw_lit(&w, ",\"code\":");
	jw_str(&w, gos_reject_name(err->reason));
	jw_lit(&w, "}");
	return gos_buf_take(&w);
}

char *gos_protocol_sync_reply(uint64_t applied, uint64_t rejected, uint64_t tokens)
{
	struct gos_buf w = {0};
	jw_lit(&w, "{\"type\":\"sync\",\"applied\":");
	gos_buf_u64(&w, applied);
	jw_lit(&w, ",\"rejected\":");
	gos_buf_u64(&w, rejected);
	jw_lit(&w, ",\"tokens\":");
	gos_buf_u64(&w, tokens);
	jw_lit(&w, "}");
	return gos_buf_take(&w);
}

char *gos_protocol_screenshot_reply(const char *path, bool ok, uint32_t width, uint32_t height,
                                    uint64_t tokens, const char *reason)
{
	struct gos_buf w = {0};
	jw_lit(&w, "{\"type\":\"screenshot\",\"path\":");
	jw_str(&w, path ? path : "");
	if (ok) {
		jw_lit(&w, ",\"ok\":true,\"width\":");
		gos_buf_u64(&w, width);
		jw_lit(&w, ",\"height\":");
		gos_buf_u64(&w, height);
		jw_lit(&w, ",\"tokens\":");
		gos_buf_u64(&w, tokens);
	} else {
		jw_lit(&w, ",\"ok\":false,\"reason\":");
		jw_str(&w, reason ? reason : "unknown failure");
	}
	jw_lit(&w, "}");
	return gos_buf_take(&w);
}
