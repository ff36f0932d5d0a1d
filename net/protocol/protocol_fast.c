/* The protocol parser's fast path (gos_protocol_internal.h): the common shape
 * of a line, read without building a cJSON tree: one object whose member
 * values are strings without escapes or control characters, plain RFC 8259
 * numbers, true/false/null, or (for "position") an array of two numbers, of
 * type token_activation or sync. It says yes only where the cJSON path
 * (protocol_cjson.c) accepts with the same result; on anything else (every
 * reject, escapes, duplicate known keys, nesting, top_logprobs, other types)
 * it says "not mine" and the line takes the cJSON path.
 * tests/test_protocol_diff.c holds the two paths to each other. */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gos_utf8.h"
#include "gos_protocol.h"
#include "gos_protocol_internal.h"

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

/* GOS_F_* index of a member name, -1 when gos does not read it. */
static int fast_key(const char *k, size_t len)
{
	int i;
	switch (len) {
	case 4: i = GOS_F_TYPE; break;
	case 5: i = GOS_F_STATE; break;
	case 6: i = k[0] == 's' ? GOS_F_STREAM : GOS_F_TOKENS; break;
	case 7: i = GOS_F_LOGPROB; break;
	case 8: i = k[0] == 't' ? GOS_F_TOKEN_ID : GOS_F_POSITION; break;
	case 9: i = GOS_F_TIMESTAMP; break;
	case 10: i = k[0] == 't' ? GOS_F_TOKEN_TEXT : k[0] == 'c' ? GOS_F_CONFIDENCE : GOS_F_ELAPSED_MS; break;
	case 12: i = k[1] == 'o' ? (k[2] == 'p' ? GOS_F_TOP_LOGPROBS : GOS_F_TOTAL_TOKENS) : -1; break;
	case 16: i = GOS_F_TOKENS_PROCESSED; break;
	default: return -1;
	}
	if (i < 0 || gos_protocol_fields[i].len != len ||
	    memcmp(gos_protocol_fields[i].name, k, len) != 0)
		return -1;
	return i;
}

/* One member value at p (after the colon and any blanks); key is its
 * GOS_F_* index or -1. Returns the end of the value, or NULL: not mine. */
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
	if (c == '[' && key == GOS_F_POSITION) {
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
	struct fval f[GOS_F_COUNT_];
	for (int i = 0; i < GOS_F_COUNT_; i++)
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

	const struct fval *type = &f[GOS_F_TYPE];
	if (type->kind != FV_STRING)
		return false;
	if (type->len == 4 && !memcmp(type->s, "sync", 4)) {
		ev->type = GOS_EV_SYNC;
		return true;
	}
	if (type->len != 16 || memcmp(type->s, "token_activation", 16) != 0)
		return false;
	const struct fval *id = &f[GOS_F_TOKEN_ID], *text = &f[GOS_F_TOKEN_TEXT], *ts = &f[GOS_F_TIMESTAMP];
	const struct fval *conf = &f[GOS_F_CONFIDENCE], *pos = &f[GOS_F_POSITION], *stream = &f[GOS_F_STREAM];
	const struct fval *lp = &f[GOS_F_LOGPROB];
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
	if (f[GOS_F_TOP_LOGPROBS].kind != FV_NONE)
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

bool gos_protocol_parse_fast(const char *line, size_t len, struct gos_event *ev,
                             struct gos_arena *arena)
{
	memset(ev, 0, sizeof(*ev));
	if (len <= GOS_MAX_LINE && fast_parse(line, len, ev, arena))
		return true;
	memset(ev, 0, sizeof(*ev));
	return false;
}
