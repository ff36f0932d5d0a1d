/* Reader of the compositor's reply lines (see gos_reply.h). Strict on what
 * the serializers in gos_protocol.c always write, blind to extra fields, so
 * that a newer compositor's additions do not break older producers. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gos_json.h"
#include "gos_reply.h"
#include "gos_utf8.h"

/* 2^64: UINT64_MAX, the largest count, reads back as this double. */
#define TWO_POW_64 18446744073709551616.0

static bool invalid(struct gos_reply *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool invalid(struct gos_reply *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
	return false;
}

/* A whole number from 0 to max (UINT64_MAX: up to 2^64, see gos_reply.h). */
static bool get_count(struct gos_reply *out, const cJSON *o, const char *key, uint64_t max,
                      uint64_t *v)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!n)
		return invalid(out, "no \"%s\"", key);
	if (!cJSON_IsNumber(n))
		return invalid(out, "\"%s\" is not a number", key);
	double d = n->valuedouble;
	if (!(d >= 0) || d != floor(d))
		return invalid(out, "\"%s\" is not a whole number from 0", key);
	double limit = max == UINT64_MAX ? TWO_POW_64 : (double)max;
	if (d > limit)
		return invalid(out, "\"%s\" is over %llu", key, (unsigned long long)max);
	*v = d >= TWO_POW_64 ? UINT64_MAX : (uint64_t)d;
	return true;
}

/* Copies string member key into dst[cap]. Absent: an error when required,
 * else "". Longer than cap - 1 bytes: cut on a character boundary, or an
 * error when !cut. */
static bool get_string(struct gos_reply *out, const cJSON *o, const char *key, bool required,
                       bool cut, char *dst, size_t cap)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
	dst[0] = '\0';
	if (!s)
		return required ? invalid(out, "no \"%s\"", key) : true;
	if (!cJSON_IsString(s) || !s->valuestring)
		return invalid(out, "\"%s\" is not a string", key);
	size_t n = strlen(s->valuestring);
	if (n > cap - 1) {
		if (!cut)
			return invalid(out, "\"%s\" is over %zu bytes", key, cap - 1);
		n = gos_utf8_cut(s->valuestring, n, cap - 1);
	}
	memcpy(dst, s->valuestring, n);
	dst[n] = '\0';
	return true;
}

static bool parse_sync(struct gos_reply *out, const cJSON *o)
{
	struct gos_reply_sync *s = &out->sync;
	return get_count(out, o, "applied", UINT64_MAX, &s->applied) &&
	       get_count(out, o, "rejected", UINT64_MAX, &s->rejected) &&
	       get_count(out, o, "tokens", UINT64_MAX, &s->tokens);
}

static bool parse_error(struct gos_reply *out, const cJSON *o)
{
	struct gos_reply_error *e = &out->error;
	return get_count(out, o, "line", UINT64_MAX, &e->line) &&
	       get_string(out, o, "reason", true, true, e->reason, sizeof(e->reason)) &&
	       get_string(out, o, "code", false, true, e->code, sizeof(e->code));
}

static bool parse_screenshot(struct gos_reply *out, const cJSON *o)
{
	struct gos_reply_screenshot *s = &out->shot;
	if (!get_string(out, o, "path", true, false, s->path, sizeof(s->path)))
		return false;
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(o, "ok");
	if (!ok)
		return invalid(out, "no \"ok\"");
	if (!cJSON_IsBool(ok))
		return invalid(out, "\"ok\" is not true or false");
	s->ok = cJSON_IsTrue(ok);
	if (!s->ok)
		return get_string(out, o, "reason", true, true, s->reason, sizeof(s->reason));
	uint64_t w, h;
	if (!get_count(out, o, "width", UINT32_MAX, &w) ||
	    !get_count(out, o, "height", UINT32_MAX, &h) ||
	    !get_count(out, o, "tokens", UINT64_MAX, &s->tokens))
		return false;
	s->width = (uint32_t)w;
	s->height = (uint32_t)h;
	return true;
}

static bool only_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

static bool parse_object(struct gos_reply *out, const cJSON *o)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
	if (!t)
		return invalid(out, "no \"type\"");
	if (!cJSON_IsString(t) || !t->valuestring)
		return invalid(out, "\"type\" is not a string");
	if (!strcmp(t->valuestring, "sync")) {
		out->type = GOS_REPLY_SYNC;
		return parse_sync(out, o);
	}
	if (!strcmp(t->valuestring, "error")) {
		out->type = GOS_REPLY_ERROR;
		return parse_error(out, o);
	}
	if (!strcmp(t->valuestring, "screenshot")) {
		out->type = GOS_REPLY_SCREENSHOT;
		return parse_screenshot(out, o);
	}
	return invalid(out, "unknown type \"%.40s\"", t->valuestring);
}

enum gos_reply_type gos_reply_parse(const char *line, size_t len, struct gos_reply *out)
{
	memset(out, 0, sizeof(*out));
	size_t stop = 0;
	cJSON *o = gos_json_parse_at(line, len, &stop);
	bool ok;
	if (!o)
		ok = invalid(out, "not JSON");
	else if (!cJSON_IsObject(o))
		ok = invalid(out, "not a JSON object");
	else if (!only_space(line + stop, len - stop))
		ok = invalid(out, "text after the object");
	else
		ok = parse_object(out, o);
	cJSON_Delete(o);
	if (!ok) {
		/* Keep why; leave no half-filled member behind. */
		char why[sizeof(out->why)];
		memcpy(why, out->why, sizeof(why));
		memset(out, 0, sizeof(*out));
		memcpy(out->why, why, sizeof(why));
		out->type = GOS_REPLY_INVALID;
	}
	return out->type;
}

const char *gos_reply_type_name(enum gos_reply_type t)
{
	switch (t) {
	case GOS_REPLY_SYNC: return "sync";
	case GOS_REPLY_ERROR: return "error";
	case GOS_REPLY_SCREENSHOT: return "screenshot";
	case GOS_REPLY_INVALID: break;
	}
	return "invalid";
}
