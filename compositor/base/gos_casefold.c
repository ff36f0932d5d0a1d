/* Simple case folding over the generated runs (see gos_casefold.h). */
#include <string.h>

#include "gos_casefold.h"
#include "gos_casefold_table.h"

#define N_RUNS (sizeof(gos_casefold_runs) / sizeof(gos_casefold_runs[0]))

uint32_t gos_casefold_cp(uint32_t cp)
{
	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
	size_t lo = 0, hi = N_RUNS;   /* the last run with first <= cp */
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (gos_casefold_runs[mid].first <= cp)
			lo = mid;
		else
			hi = mid;
	}
	const struct gos_casefold_run *r = &gos_casefold_runs[lo];
	if (cp < r->first)
		return cp;
	uint32_t off = cp - r->first;
	if (off % r->stride || off / r->stride >= r->count)
		return cp;
	return (uint32_t)((int32_t)cp + r->delta);
}

/* One valid UTF-8 sequence at s (n bytes left): its length, 0 when invalid. */
static size_t decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t v, min;
	if (c < 0xC2)
		return 0;
	if (c < 0xE0) {
		len = 2, v = c & 0x1F, min = 0x80;
	} else if (c < 0xF0) {
		len = 3, v = c & 0x0F, min = 0x800;
	} else if (c < 0xF5) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

static size_t encode(uint32_t cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

size_t gos_casefold(const char *s, size_t len, struct gos_buf *out)
{
	const unsigned char *u = (const unsigned char *)s;
	char *o = gos_buf_reserve(out, len * 3 / 2 + 4), *o0 = o;
	size_t i = 0;
	while (i < len) {
		unsigned char c = u[i];
		if (c < 0x80) {
			*o++ = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			i++;
			continue;
		}
		uint32_t cp;
		size_t n = decode(u + i, len - i, &cp);
		if (!n) {
			*o++ = (char)c;   /* not UTF-8: as it is */
			i++;
			continue;
		}
		o += encode(gos_casefold_cp(cp), o);
		i += n;
	}
	size_t wrote = (size_t)(o - o0);
	out->len += wrote;
	out->data[out->len] = '\0';
	return wrote;
}
