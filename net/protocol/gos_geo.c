/* Geometry OS's ProtocolMessage shapes (gos_geo.h): one cJSON tree per
 * message, mapped onto gos events, and the replies in the peer's shape. */
#include <cjson/cJSON.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gos_buf.h"
#include "gos_geo.h"
#include "gos_json.h"
#include "gos_utf8.h"

static const char *const kind_names[GOS_GEO_K_COUNT_] = {
	[GOS_GEO_K_TOKEN] = "token", [GOS_GEO_K_THOUGHT] = "thought", [GOS_GEO_K_STATE] = "state",
	[GOS_GEO_K_SYNC] = "sync", [GOS_GEO_K_HEARTBEAT] = "heartbeat",
	[GOS_GEO_K_REQUEST] = "request", [GOS_GEO_K_IGNORED] = "ignored",
};

const char *gos_geo_kind_name(enum gos_geo_kind k)
{
	return (unsigned)k < GOS_GEO_K_COUNT_ ? kind_names[k] : "unknown";
}

/* ---- reading ------------------------------------------------------------- */

static bool fail(struct gos_parse_error *err, enum gos_reject reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool fail(struct gos_parse_error *err, enum gos_reject reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	/* Cut back to a whole UTF-8 character (a field name may be long). */
	err->message[gos_utf8_valid_prefix(err->message, strlen(err->message))] = '\0';
	err->reason = reason;
	return false;
}

static const char *kind_of(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v) ? "true" : "false";
	return "null";
}

static bool wrong(struct gos_parse_error *err, const char *field, const char *want, const cJSON *v)
{
	return fail(err, GOS_REJECT_WRONG_TYPE, "field \"%s\" must be %s, got %s", field, want,
	            kind_of(v));
}

/* A finite number. */
static bool number(const cJSON *v, const char *field, double *out, struct gos_parse_error *err)
{
	if (!cJSON_IsNumber(v))
		return wrong(err, field, "a number", v);
	if (!isfinite(v->valuedouble))
		return fail(err, GOS_REJECT_NOT_FINITE, "field \"%s\" is not a finite number", field);
	*out = v->valuedouble;
	return true;
}

/* A whole number in [0, max]. */
static bool whole(const cJSON *v, const char *field, double max, uint64_t *out,
                  struct gos_parse_error *err)
{
	double d;
	if (!number(v, field, &d, err))
		return false;
	if (d < 0 || d > max || d != floor(d))
		return fail(err, GOS_REJECT_WRONG_TYPE, "field \"%s\" is %g, not a whole number from 0 to %.0f",
		            field, d, max);
	*out = (uint64_t)d;
	return true;
}

static bool string(const cJSON *v, const char *field, size_t max, bool allow_empty,
                   struct gos_arena *arena, const char **out, struct gos_parse_error *err)
{
	if (!cJSON_IsString(v))
		return wrong(err, field, "a string", v);
	size_t len = strlen(v->valuestring);
	if (len > max)
		return fail(err, GOS_REJECT_TOO_LONG, "field \"%s\" is %zu bytes long, over the limit of %zu",
		            field, len, max);
	if (!len && !allow_empty)
		return fail(err, GOS_REJECT_MISSING_FIELD, "field \"%s\" is empty", field);
	*out = gos_arena_strndup(arena, v->valuestring, len);
	return true;
}

static bool missing(struct gos_parse_error *err, const char *field)
{
	return fail(err, GOS_REJECT_MISSING_FIELD, "required field \"%s\" is missing", field);
}

/* Seconds from a timestamp in seconds or milliseconds: Geometry OS's Rust
 * side sends u64 milliseconds, some of its documents float seconds. No
 * time in seconds reaches 1e11 (the year 5138); every time since 1973 in
 * milliseconds does. */
static double seconds(double t)
{
	return t >= 1e11 ? t / 1000.0 : t;
}

/* TokenVisualizationUpdate's payload: a token at its Hilbert position. */
static bool read_token_viz(const cJSON *pl, double top_ts, struct gos_event *ev,
                           struct gos_arena *arena, struct gos_parse_error *err)
{
	if (!cJSON_IsObject(pl))
		return wrong(err, "payload", "an object", pl);
	struct gos_token_ev *t = &ev->token;
	ev->type = GOS_EV_TOKEN;
	t->stream = GOS_GEO_STREAM_RUST;
	t->confidence = NAN;
	t->logprob = NAN;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(pl, "token_id");
	uint64_t id;
	if (!v)
		return missing(err, "payload.token_id");
	if (!whole(v, "payload.token_id", 4294967295.0, &id, err))
		return false;
	char idbuf[32];
	int k = snprintf(idbuf, sizeof(idbuf), "geo:%" PRIu64, id);
	t->id = gos_arena_strndup(arena, idbuf, (size_t)k);
	v = cJSON_GetObjectItemCaseSensitive(pl, "current_token");
	if (!v)
		return missing(err, "payload.current_token");
	if (!string(v, "payload.current_token", GOS_MAX_TEXT, true, arena, &t->text, err))
		return false;
	v = cJSON_GetObjectItemCaseSensitive(pl, "hilbert_position");
	if (v) {
		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
			return wrong(err, "payload.hilbert_position", "an array of two numbers [x,y]", v);
		double xy[2];
		if (!number(cJSON_GetArrayItem(v, 0), "payload.hilbert_position[0]", &xy[0], err) ||
		    !number(cJSON_GetArrayItem(v, 1), "payload.hilbert_position[1]", &xy[1], err))
			return false;
		for (int i = 0; i < 2; i++) {
			double w = xy[i] * GOS_GEO_WORLD;
			if (fabs(w) > FLT_MAX)
				return fail(err, GOS_REJECT_NOT_FINITE,
				            "field \"payload.hilbert_position[%d]\" is %g, outside the map", i, xy[i]);
			xy[i] = w;
		}
		t->has_position = true;
		t->x = (float)xy[0];
		t->y = (float)xy[1];
	}
	v = cJSON_GetObjectItemCaseSensitive(pl, "activation");
	if (v) {
		double a;
		if (!number(v, "payload.activation", &a, err))
			return false;
		/* Documented as 0..1: kept as is there, clamped outside. */
		t->confidence = (float)(a < 0 ? 0 : a > 1 ? 1 : a);
	}
	v = cJSON_GetObjectItemCaseSensitive(pl, "layer");
	uint64_t layer;
	if (v && !whole(v, "payload.layer", 4294967295.0, &layer, err))
		return false;
	t->timestamp = top_ts;
	v = cJSON_GetObjectItemCaseSensitive(pl, "timestamp");
	if (v) {
		double s;
		if (!number(v, "payload.timestamp", &s, err))
			return false;
		t->timestamp = seconds(s);
	}
	return true;
}

/* NeuralStateUpdate's payload: {"daemon_id","strength","data":{...}} or the
 * data alone. The stream is processing; the daemon is its model. */
static bool read_state(const cJSON *pl, struct gos_event *ev, struct gos_arena *arena,
                       struct gos_parse_error *err)
{
	if (!cJSON_IsObject(pl))
		return wrong(err, "payload", "an object (or null)", pl);
	struct gos_state_ev *s = &ev->state;
	ev->type = GOS_EV_STATE;
	s->state = "processing";
	s->stream = GOS_GEO_STREAM_RUST;
	s->tokens_processed = -1;
	s->total_tokens = -1;
	s->elapsed_ms = NAN;
	s->ttft_ms = NAN;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(pl, "daemon_id");
	if (v && !string(v, "payload.daemon_id", GOS_MAX_MODEL, true, arena, &s->model, err))
		return false;
	return true;
}

/* Thought: a token when its payload's type is "token". */
static bool read_thought(const cJSON *pl, struct gos_geo_conn *gc, uint64_t sequence,
                         struct gos_event *ev, struct gos_arena *arena, bool *is_token,
                         struct gos_parse_error *err)
{
	*is_token = false;
	if (!cJSON_IsObject(pl))
		return true;   /* a thought gos does not draw */
	const cJSON *ty = cJSON_GetObjectItemCaseSensitive(pl, "type");
	if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "token"))
		return true;
	*is_token = true;
	struct gos_token_ev *t = &ev->token;
	ev->type = GOS_EV_TOKEN;
	t->stream = GOS_GEO_STREAM_THOUGHT;
	t->confidence = NAN;
	t->logprob = NAN;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(pl, "token");
	if (!v)
		return missing(err, "payload.token");
	if (!string(v, "payload.token", GOS_MAX_TEXT, true, arena, &t->text, err))
		return false;
	v = cJSON_GetObjectItemCaseSensitive(pl, "confidence");
	if (v) {
		double c;
		if (!number(v, "payload.confidence", &c, err))
			return false;
		if (!(c >= 0 && c <= 1))
			return fail(err, GOS_REJECT_CONFIDENCE, "field \"payload.confidence\" is %g, outside [0,1]", c);
		t->confidence = (float)c;
	}
	v = cJSON_GetObjectItemCaseSensitive(pl, "timestamp");
	if (v) {
		double s;
		if (!number(v, "payload.timestamp", &s, err))
			return false;
		t->timestamp = seconds(s);
	}
	/* The sequence is the sender's clock in ms (mod 2^32): not unique. */
	char idbuf[96];
	int k = snprintf(idbuf, sizeof(idbuf), "thought:%" PRIu64 ":%" PRIu64 ".%" PRIu64, sequence,
	                 gc->conn, ++gc->thoughts);
	t->id = gos_arena_strndup(arena, idbuf, (size_t)k);
	return true;
}

static bool is_request(const char *t)
{
	size_t n = strlen(t);
	return !strncmp(t, "Request", 7) || (n > 7 && !strcmp(t + n - 7, "Request"));
}

static bool dispatch(const cJSON *root, struct gos_geo_conn *gc, struct gos_event *ev,
                     struct gos_arena *arena, struct gos_geo_msg *m, struct gos_parse_error *err)
{
	const char *t = m->type;
	const cJSON *pl = cJSON_GetObjectItemCaseSensitive(root, "payload");
	double top_ts = 0;
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "timestamp");
	if (ts) {
		if (!number(ts, "timestamp", &top_ts, err))
			return false;
		top_ts = seconds(top_ts);
	}
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "sequence");
	if (seq && !whole(seq, "sequence", 18446744073709549568.0, &m->sequence, err))
		return false;

	if (!strcmp(t, "TokenVisualizationUpdate")) {
		m->kind = GOS_GEO_K_TOKEN;
		m->action = GOS_GEO_EVENT;
		return pl ? read_token_viz(pl, top_ts, ev, arena, err) : missing(err, "payload");
	}
	if (!strcmp(t, "NeuralStateUpdate")) {
		if (!pl || cJSON_IsNull(pl)) {
			/* The Rust client's request for the daemon's state: nothing to draw. */
			m->kind = GOS_GEO_K_IGNORED;
			m->action = GOS_GEO_IGNORED;
			return true;
		}
		m->kind = GOS_GEO_K_STATE;
		m->action = GOS_GEO_EVENT;
		return read_state(pl, ev, arena, err);
	}
	if (!strcmp(t, "Thought")) {
		bool tok;
		if (!read_thought(pl, gc, m->sequence, ev, arena, &tok, err))
			return false;
		m->kind = tok ? GOS_GEO_K_THOUGHT : GOS_GEO_K_IGNORED;
		m->action = tok ? GOS_GEO_EVENT : GOS_GEO_IGNORED;
		if (!tok)
			memset(ev, 0, sizeof(*ev));
		return true;
	}
	if (!strcmp(t, "SyncRequest")) {
		m->kind = GOS_GEO_K_SYNC;
		m->action = GOS_GEO_SYNC;
		ev->type = GOS_EV_SYNC;
		return true;
	}
	if (!strcmp(t, "Heartbeat")) {
		m->kind = GOS_GEO_K_HEARTBEAT;
		m->action = GOS_GEO_ACK;
		return true;
	}
	m->kind = is_request(t) ? GOS_GEO_K_REQUEST : GOS_GEO_K_IGNORED;
	m->action = is_request(t) ? GOS_GEO_ACK : GOS_GEO_IGNORED;
	return true;
}

bool gos_geo_parse(const char *p, size_t n, struct gos_geo_conn *gc, struct gos_event *ev,
                   struct gos_arena *arena, struct gos_geo_msg *msg, struct gos_parse_error *err)
{
	memset(msg, 0, sizeof(*msg));
	if (n > GOS_MAX_LINE || gos_utf8_valid_prefix(p, n) != n || memchr(p, 0, n))
		return true;   /* the gos parser says what is wrong */
	size_t stop = 0;
	cJSON *root = n ? gos_json_parse_at(p, n, &stop) : NULL;
	if (!root)
		return true;
	for (size_t i = stop; i < n; i++) {
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') {
			cJSON_Delete(root);
			return true;
		}
	}
	const cJSON *mt = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "message_type") : NULL;
	const cJSON *pt = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "msg_type") : NULL;
	const cJSON *ty = cJSON_IsString(mt) ? mt : cJSON_IsString(pt) ? pt : NULL;
	if (!ty) {
		cJSON_Delete(root);
		return true;
	}
	msg->dialect = ty == mt ? GOS_GEO_RUST : GOS_GEO_PYTHON;
	size_t tl = strlen(ty->valuestring);
	tl = gos_utf8_cut(ty->valuestring, tl, sizeof(msg->type) - 1);
	memcpy(msg->type, ty->valuestring, tl);
	msg->type[tl] = '\0';
	memset(ev, 0, sizeof(*ev));
	bool ok;
	if (memmem(p, n, "\\u0000", 6))
		ok = fail(err, GOS_REJECT_WRONG_TYPE, "a string contains a NUL character (\\u0000)");
	else
		ok = dispatch(root, gc, ev, arena, msg, err);
	cJSON_Delete(root);
	if (!ok)
		memset(ev, 0, sizeof(*ev));
	return ok;
}

/* ---- replies ------------------------------------------------------------- */

static void head(struct gos_buf *w, enum gos_geo_dialect d, const char *type, uint64_t sequence)
{
	if (d == GOS_GEO_PYTHON) {
		gos_buf_puts(w, "{\"msg_type\":");
		gos_buf_json_str(w, type);
		gos_buf_puts(w, ",\"sequence\":");
		gos_buf_u64(w, sequence);
		gos_buf_puts(w, ",\"payload\":{");
	} else {
		gos_buf_puts(w, "{\"message_type\":");
		gos_buf_json_str(w, type);
		gos_buf_puts(w, ",\"payload\":{");
	}
}

static char *tail(struct gos_buf *w, enum gos_geo_dialect d, uint64_t now_ms)
{
	gos_buf_puts(w, "}");
	if (d != GOS_GEO_PYTHON) {
		gos_buf_puts(w, ",\"timestamp\":");
		gos_buf_u64(w, now_ms);
	}
	gos_buf_puts(w, "}");
	return gos_buf_take(w);
}

char *gos_geo_sync_reply(enum gos_geo_dialect d, uint64_t sequence, uint64_t applied,
                         uint64_t rejected, uint64_t tokens, uint64_t ignored, uint64_t now_ms)
{
	struct gos_buf w = {0};
	head(&w, d, "SyncResponse", sequence);
	gos_buf_printf(&w, "\"applied\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"tokens\":%" PRIu64
	               ",\"ignored\":%" PRIu64, applied, rejected, tokens, ignored);
	return tail(&w, d, now_ms);
}

char *gos_geo_ack(enum gos_geo_dialect d, uint64_t sequence, const char *of_type,
                  const char *status, uint64_t now_ms)
{
	struct gos_buf w = {0};
	head(&w, d, "Ack", sequence);
	gos_buf_puts(&w, "\"status\":");
	gos_buf_json_str(&w, status);
	gos_buf_puts(&w, ",\"of\":");
	gos_buf_json_str(&w, of_type);
	return tail(&w, d, now_ms);
}

char *gos_geo_error(enum gos_geo_dialect d, uint64_t sequence, uint64_t line_no,
                    const struct gos_parse_error *err, uint64_t now_ms)
{
	struct gos_buf w = {0};
	head(&w, d, "Error", sequence);
	gos_buf_puts(&w, "\"error\":");
	gos_buf_json_str(&w, err->message);
	gos_buf_puts(&w, ",\"code\":");
	gos_buf_json_str(&w, gos_reject_name(err->reason));
	gos_buf_printf(&w, ",\"line\":%" PRIu64, line_no);
	return tail(&w, d, now_ms);
}
