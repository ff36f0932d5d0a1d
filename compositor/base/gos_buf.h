/* A growable byte buffer for building JSON and Prometheus text. The owner
 * (one thread at a time) appends; gos_buf_finish() frees. Zero-initialized
 * is valid and empty; data is always NUL-terminated once anything was
 * appended. Allocation failure aborts (a programming limit, as in the arena). */
#ifndef GOS_BUF_H
#define GOS_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct gos_buf {
	char *data;
	size_t len, cap;
};

/* Makes room for at least n more bytes (plus the NUL); returns where they go. */
char *gos_buf_reserve(struct gos_buf *t, size_t n);
void gos_buf_append(struct gos_buf *t, const char *s, size_t len);
void gos_buf_puts(struct gos_buf *t, const char *s);
void gos_buf_putc(struct gos_buf *t, char c);
void gos_buf_printf(struct gos_buf *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void gos_buf_vprintf(struct gos_buf *t, const char *fmt, va_list ap);

/* A JSON string literal, quotes included; s is UTF-8 (not validated here:
 * callers pass text that the protocol layer already validated). */
void gos_buf_json_str(struct gos_buf *t, const char *s);
/* A JSON number, the shortest of a few precisions that reads back (strtod,
 * then narrowing for f32) to exactly v; non-finite: null. */
void gos_buf_json_f32(struct gos_buf *t, float v);
void gos_buf_json_f64(struct gos_buf *t, double v);
void gos_buf_u64(struct gos_buf *t, unsigned long long v);
void gos_buf_i64(struct gos_buf *t, long long v);

/* Hands the NUL-terminated text to the caller (free() it); t is empty again. */
char *gos_buf_take(struct gos_buf *t);
void gos_buf_clear(struct gos_buf *t);   /* len = 0, keeps the memory */
void gos_buf_finish(struct gos_buf *t);  /* frees; t is empty again */

#endif
