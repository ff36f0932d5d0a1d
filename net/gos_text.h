/* A growable byte buffer for building JSON and Prometheus text. The owner
 * (one thread at a time) appends; gos_text_finish() frees. Zero-initialized
 * is valid and empty; data is always NUL-terminated once anything was
 * appended. Allocation failure aborts (a programming limit, as in the arena). */
#ifndef GOS_TEXT_H
#define GOS_TEXT_H

#include <stdarg.h>
#include <stddef.h>

struct gos_text {
	char *data;
	size_t len, cap;
};

/* Makes room for at least n more bytes (plus the NUL); returns where they go. */
char *gos_text_reserve(struct gos_text *t, size_t n);
void gos_text_append(struct gos_text *t, const char *s, size_t len);
void gos_text_puts(struct gos_text *t, const char *s);
void gos_text_putc(struct gos_text *t, char c);
void gos_text_printf(struct gos_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void gos_text_vprintf(struct gos_text *t, const char *fmt, va_list ap);

/* A JSON string literal, quotes included; s is UTF-8 (not validated here:
 * callers pass text that the protocol layer already validated). */
void gos_text_json_str(struct gos_text *t, const char *s);
/* A JSON number with enough digits for a float/double; non-finite: null. */
void gos_text_json_f32(struct gos_text *t, float v);
void gos_text_json_f64(struct gos_text *t, double v);
void gos_text_u64(struct gos_text *t, unsigned long long v);
void gos_text_i64(struct gos_text *t, long long v);

void gos_text_clear(struct gos_text *t);   /* len = 0, keeps the memory */
void gos_text_finish(struct gos_text *t);  /* frees; t is empty again */

#endif
