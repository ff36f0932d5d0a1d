/* gos_sse: WHATWG event-stream parser (see gos_sse.h). */
#include "gos_sse.h"
#include "gos_utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte string, always NUL-terminated when p != NULL. */
struct buf {
	char *p;
	size_t len, cap;
};

/* Buffers that grew past this for one huge event are given back afterwards,
 * so a parser idles small. */
#define SHRINK_ABOVE (256u << 10)

enum { BOM_DONE = 3 };
static const unsigned char bom_bytes[3] = {0xEF, 0xBB, 0xBF};

struct gos_sse {
	struct gos_sse_callbacks cb;
	size_t max_data;
	size_t max_line;

	unsigned bom;         /* BOM bytes matched at stream start; BOM_DONE after */
	bool skip_lf;         /* the previous line ended in CR: a next LF is its CRLF */

	/* The unfinished line carried from one chunk to the next. */
	struct buf line;
	size_t line_seen;     /* bytes of it seen (line.len stops at max_line) */
	bool line_comment;    /* it starts with ':': nothing is kept */
	bool line_over;       /* it is longer than max_line */

	struct buf data;
	size_t data_lines;
	struct buf type;
	struct buf id;        /* the last event ID buffer */
	struct buf last_id;   /* committed at each dispatch */
	bool id_in_event;
	bool skip_event;      /* the event went over the cap: dispatch nothing */

	struct buf fixed;     /* a line with invalid UTF-8 repaired */
	uint64_t errors;
};

static bool buf_reserve(struct buf *b, size_t need)
{
	if (need + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need + 1)
		cap *= 2;
	char *q = realloc(b->p, cap);
	if (!q)
		return false;
	b->p = q;
	b->cap = cap;
	return true;
}

static bool buf_append(struct buf *b, const char *s, size_t n)
{
	if (!buf_reserve(b, b->len + n))
		return false;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return true;
}

static bool buf_set(struct buf *b, const char *s, size_t n)
{
	b->len = 0;
	return buf_append(b, s, n);
}

static void buf_clear(struct buf *b)
{
	if (b->cap > SHRINK_ABOVE) {
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

static void buf_free(struct buf *b)
{
	free(b->p);
	*b = (struct buf){0};
}

/* ---- UTF-8, as the Encoding standard's decoder reads it ---- */

/* Decodes s[0..n) into out, each maximal invalid subpart becoming U+FFFD
 * (what TextDecoder and the WHATWG stream decoder produce). Stops adding
 * once out would pass limit; returns false only when out of memory. */
static bool utf8_repair(const unsigned char *s, size_t n, struct buf *out, size_t limit)
{
	static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
	out->len = 0;
	size_t i = 0;
	while (i < n && out->len <= limit) {
		size_t ok = gos_utf8_valid_prefix((const char *)s + i, n - i);
		if (!buf_append(out, (const char *)s + i, ok))
			return false;
		i += ok;
		if (i >= n)
			break;
		/* s[i] starts an invalid subpart: a bad lead byte alone, or a
		 * lead with the continuation bytes that were still in range. */
		unsigned c = s[i];
		size_t need = 0;
		unsigned lo = 0x80, hi = 0xBF;
		if (c >= 0xC2 && c <= 0xDF) {
			need = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			need = 2;
			lo = c == 0xE0 ? 0xA0 : 0x80;
			hi = c == 0xED ? 0x9F : 0xBF;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3;
			lo = c == 0xF0 ? 0x90 : 0x80;
			hi = c == 0xF4 ? 0x8F : 0xBF;
		}
		size_t j = 1;
		while (j <= need && i + j < n && s[i + j] >= lo && s[i + j] <= hi) {
			lo = 0x80;
			hi = 0xBF;
			j++;
		}
		i += j;
		if (!buf_append(out, fffd, 3))
			return false;
	}
	return true;
}

/* ---- fields and dispatch ---- */

static void report(struct gos_sse *p, const char *what, size_t limit)
{
	p->errors++;
	if (p->cb.on_error) {
		char msg[160];
		snprintf(msg, sizeof msg, "SSE event skipped: its %s is over the %zu-byte limit", what, limit);
		p->cb.on_error(p->cb.ctx, msg);
	}
}

static void reset_event(struct gos_sse *p)
{
	buf_clear(&p->data);
	p->data_lines = 0;
	buf_clear(&p->type);
	p->id_in_event = false;
	p->skip_event = false;
}

static bool dispatch(struct gos_sse *p)
{
	if (!buf_set(&p->last_id, p->id.p ? p->id.p : "", p->id.len))
		return false;
	if (p->data_lines > 0 && !p->skip_event && p->cb.on_event) {
		struct gos_sse_event ev = {
			.type = p->type.len ? p->type.p : "message",
			.type_len = p->type.len ? p->type.len : 7,
			.data = p->data.p ? p->data.p : "",
			.data_len = p->data.len,
			.id = p->last_id.p,
			.id_len = p->last_id.len,
			.has_id = p->id_in_event,
		};
		p->cb.on_event(p->cb.ctx, &ev);
	}
	reset_event(p);
	return true;
}

static bool name_is(const char *name, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l && !memcmp(name, lit, l);
}

/* A line longer than max_line: only its field name (in the kept prefix)
 * matters. Known fields skip the event; unknown ones are ignored anyway. */
static void over_long_line(struct gos_sse *p, const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n < 8 ? n : 8);
	if (!colon)
		return;
	size_t nl = (size_t)(colon - s);
	if (name_is(s, nl, "data") || name_is(s, nl, "event") || name_is(s, nl, "id")) {
		if (!p->skip_event)
			report(p, nl == 4 ? "data line" : nl == 5 ? "event line" : "id line", p->max_line);
		p->skip_event = true;
	}
	/* An over-long retry value is ignored: no reconnection time is that long. */
}

static bool process_line(struct gos_sse *p, const char *s, size_t n, bool over)
{
	if (over) {
		over_long_line(p, s, n);
		return true;
	}
	if (n == 0)
		return dispatch(p);
	if (s[0] == ':')
		return true;
	if (gos_utf8_valid_prefix(s, n) != n) {
		if (!utf8_repair((const unsigned char *)s, n, &p->fixed, p->max_line))
			return false;
		s = p->fixed.p;
		n = p->fixed.len;
		if (n > p->max_line) {
			over_long_line(p, s, n);
			return true;
		}
	}

	const char *colon = memchr(s, ':', n);
	size_t nl = colon ? (size_t)(colon - s) : n;
	const char *v = colon ? colon + 1 : s + n;
	size_t vl = (size_t)(s + n - v);
	if (vl && v[0] == ' ') {
		v++;
		vl--;
	}

	if (name_is(s, nl, "data")) {
		if (p->skip_event)
			return true;
		size_t sep = p->data_lines ? 1 : 0;
		if (p->data.len + sep + vl > p->max_data) {
			report(p, "data", p->max_data);
			p->skip_event = true;
			buf_clear(&p->data);
			return true;
		}
		if ((sep && !buf_append(&p->data, "\n", 1)) || !buf_append(&p->data, v, vl))
			return false;
		p->data_lines++;
	} else if (name_is(s, nl, "event")) {
		return buf_set(&p->type, v, vl);
	} else if (name_is(s, nl, "id")) {
		if (memchr(v, '\0', vl))
			return true;
		p->id_in_event = true;
		return buf_set(&p->id, v, vl);
	} else if (name_is(s, nl, "retry")) {
		if (vl == 0)
			return true;
		uint64_t ms = 0;
		for (size_t i = 0; i < vl; i++) {
			if (v[i] < '0' || v[i] > '9')
				return true;
			unsigned d = (unsigned)(v[i] - '0');
			ms = ms > (UINT64_MAX - d) / 10 ? UINT64_MAX : ms * 10 + d;
		}
		if (p->cb.on_retry)
			p->cb.on_retry(p->cb.ctx, ms);
	} else if (p->cb.on_field) {
		/* s and v point into a buffer that ends at the line: copy to
		 * terminate them. */
		char small[256];
		char *t = n + 2 <= sizeof small ? small : malloc(n + 2);
		if (!t)
			return false;
		memcpy(t, s, nl);
		t[nl] = '\0';
		memcpy(t + nl + 1, v, vl);
		t[nl + 1 + vl] = '\0';
		p->cb.on_field(p->cb.ctx, t, nl, t + nl + 1, vl);
		if (t != small)
			free(t);
	}
	return true;
}

/* ---- the unfinished line ---- */

static bool line_append(struct gos_sse *p, const char *s, size_t n)
{
	if (p->line_seen == 0 && n > 0 && s[0] == ':')
		p->line_comment = true;
	p->line_seen += n;
	if (p->line_comment || p->line_over)
		return true;
	if (p->line.len + n > p->max_line) {
		n = p->max_line - p->line.len;
		p->line_over = true;
	}
	return buf_append(&p->line, s, n);
}

static void line_reset(struct gos_sse *p)
{
	buf_clear(&p->line);
	p->line_seen = 0;
	p->line_comment = false;
	p->line_over = false;
}

/* Splits s[0..n) into lines; the part after the last line end is kept. */
static bool scan(struct gos_sse *p, const char *s, size_t n)
{
	size_t i = 0, cr = 0, lf = 0;
	bool have_cr = false, have_lf = false;
	while (i < n) {
		if (p->skip_lf) {
			p->skip_lf = false;
			if (s[i] == '\n') {
				i++;
				continue;
			}
		}
		if (!have_cr || cr < i) {
			const char *q = memchr(s + i, '\r', n - i);
			cr = q ? (size_t)(q - s) : n;
			have_cr = true;
		}
		if (!have_lf || lf < i) {
			const char *q = memchr(s + i, '\n', n - i);
			lf = q ? (size_t)(q - s) : n;
			have_lf = true;
		}
		size_t eol = cr < lf ? cr : lf;
		if (eol == n)
			return line_append(p, s + i, n - i);
		bool ok;
		if (p->line_seen == 0) {
			size_t len = eol - i;
			ok = process_line(p, s + i, len, len > p->max_line);
		} else {
			ok = line_append(p, s + i, eol - i);
			if (ok && !p->line_comment)
				ok = process_line(p, p->line.p, p->line.len, p->line_over);
			line_reset(p);
		}
		if (!ok)
			return false;
		p->skip_lf = s[eol] == '\r';
		i = eol + 1;
	}
	return true;
}

bool gos_sse_feed(struct gos_sse *p, const void *bytes, size_t len)
{
	const unsigned char *s = bytes;
	while (p->bom != BOM_DONE && len > 0) {
		if (s[0] == bom_bytes[p->bom]) {
			p->bom++;
			s++;
			len--;
			continue;
		}
		/* Not a BOM after all: the bytes matched so far are content. */
		unsigned matched = p->bom;
		p->bom = BOM_DONE;
		if (matched && !scan(p, (const char *)bom_bytes, matched))
			return false;
	}
	return scan(p, (const char *)s, len);
}

void gos_sse_end(struct gos_sse *p)
{
	line_reset(p);
	reset_event(p);
	/* An id seen in the discarded event was never dispatched. */
	buf_set(&p->id, p->last_id.p ? p->last_id.p : "", p->last_id.len);
	buf_clear(&p->fixed);
	p->skip_lf = false;
	p->bom = 0;
}

const char *gos_sse_last_event_id(const struct gos_sse *p, size_t *len)
{
	if (len)
		*len = p->last_id.len;
	return p->last_id.p ? p->last_id.p : "";
}

uint64_t gos_sse_errors(const struct gos_sse *p)
{
	return p->errors;
}

struct gos_sse *gos_sse_create(const struct gos_sse_opts *opts,
                               const struct gos_sse_callbacks *cb)
{
	struct gos_sse *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	if (cb)
		p->cb = *cb;
	p->max_data = opts && opts->max_data ? opts->max_data : GOS_SSE_DEFAULT_MAX_DATA;
	/* A data line may carry max_data bytes after its "data: " prefix. */
	p->max_line = p->max_data + 16;
	return p;
}

void gos_sse_destroy(struct gos_sse *p)
{
	if (!p)
		return;
	buf_free(&p->line);
	buf_free(&p->data);
	buf_free(&p->type);
	buf_free(&p->id);
	buf_free(&p->last_id);
	buf_free(&p->fixed);
	free(p);
}
