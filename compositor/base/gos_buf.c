/* Growable text buffer (see gos_buf.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_buf.h"

char *gos_buf_reserve(struct gos_buf *t, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *d = realloc(t->data, cap);
		if (!d)
			abort();
		t->data = d;
		t->cap = cap;
	}
	return t->data + t->len;
}

void gos_buf_append(struct gos_buf *t, const char *s, size_t len)
{
	char *d = gos_buf_reserve(t, len);
	memcpy(d, s, len);
	t->len += len;
	t->data[t->len] = '\0';
}

void gos_buf_puts(struct gos_buf *t, const char *s)
{
	gos_buf_append(t, s, strlen(s));
}

void gos_buf_putc(struct gos_buf *t, char c)
{
	char *d = gos_buf_reserve(t, 1);
	d[0] = c;
	t->len++;
	t->data[t->len] = '\0';
}

void gos_buf_vprintf(struct gos_buf *t, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	char *d = gos_buf_reserve(t, 64);
	int n = vsnprintf(d, t->cap - t->len, fmt, ap);
	if (n < 0)
		abort();  /* a bad format string: a programming error */
	if ((size_t)n >= t->cap - t->len) {
		d = gos_buf_reserve(t, (size_t)n);
		vsnprintf(d, t->cap - t->len, fmt, ap2);
	}
	va_end(ap2);
	t->len += (size_t)n;
}

void gos_buf_printf(struct gos_buf *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	gos_buf_vprintf(t, fmt, ap);
	va_end(ap);
}

void gos_buf_json_str(struct gos_buf *t, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s);
	/* Worst case every byte becomes \u00XX. */
	char *d = gos_buf_reserve(t, n * 6 + 2);
	char *p = d;
	*p++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*p++ = '\\';
			*p++ = (char)c;
		} else if (c >= 0x20) {
			*p++ = (char)c;
		} else if (c == '\n') {
			*p++ = '\\';
			*p++ = 'n';
		} else if (c == '\t') {
			*p++ = '\\';
			*p++ = 't';
		} else if (c == '\r') {
			*p++ = '\\';
			*p++ = 'r';
		} else {
			*p++ = '\\';
			*p++ = 'u';
			*p++ = '0';
			*p++ = '0';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p++ = '"';
	t->len += (size_t)(p - d);
	t->data[t->len] = '\0';
}

void gos_buf_json_f32(struct gos_buf *t, float v)
{
	if (!isfinite(v)) {
		gos_buf_append(t, "null", 4);
		return;
	}
	/* Integral values (laid-out positions mostly are) print without %g's cost. */
	if (fabsf(v) < 1e9f && v == (float)(long)v) {
		gos_buf_i64(t, (long)v);
		return;
	}
	static const int prec[] = {7, 9};
	char b[40];
	int n = 0;
	for (size_t i = 0; i < sizeof(prec) / sizeof(prec[0]); i++) {
		n = snprintf(b, sizeof(b), "%.*g", prec[i], (double)v);
		if ((float)strtod(b, NULL) == v)
			break;
	}
	gos_buf_append(t, b, (size_t)n);
}

void gos_buf_json_f64(struct gos_buf *t, double v)
{
	if (!isfinite(v)) {
		gos_buf_append(t, "null", 4);
		return;
	}
	char b[40];
	int n = snprintf(b, sizeof(b), "%.15g", v);
	if (strtod(b, NULL) != v)
		n = snprintf(b, sizeof(b), "%.17g", v);
	gos_buf_append(t, b, (size_t)n);
}

void gos_buf_u64(struct gos_buf *t, unsigned long long v)
{
	char buf[24];
	char *p = buf + sizeof(buf);
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	gos_buf_append(t, p, (size_t)(buf + sizeof(buf) - p));
}

void gos_buf_i64(struct gos_buf *t, long long v)
{
	if (v < 0) {
		gos_buf_putc(t, '-');
		gos_buf_u64(t, 0ull - (unsigned long long)v);
	} else {
		gos_buf_u64(t, (unsigned long long)v);
	}
}

char *gos_buf_take(struct gos_buf *t)
{
	gos_buf_reserve(t, 0);   /* an empty buffer still gets its NUL */
	t->data[t->len] = '\0';
	char *d = t->data;
	*t = (struct gos_buf){0};
	return d;
}

void gos_buf_clear(struct gos_buf *t)
{
	t->len = 0;
	if (t->data)
		t->data[0] = '\0';
}

void gos_buf_finish(struct gos_buf *t)
{
	free(t->data);
	t->data = NULL;
	t->len = t->cap = 0;
}
