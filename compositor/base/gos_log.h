/* gos-compositor's own log lines on stderr: a level and a format chosen
 * once (--log-level, --log-format), each line naming its subsystem
 * ("main", "web", "journal", ...), and repeats held back: a line from the
 * same call site (subsystem and format string) again within
 * GOS_LOG_REPEAT_S of the last one printed is counted, not printed; the
 * count comes out as "… repeated N times" before that call site's next
 * printed line, or at gos_log_flush().
 *
 * text: "gos [web] web viewer at http://127.0.0.1:7680/"; warnings and
 *       errors add "warning: " / "error: " before the message.
 * json: {"time":"2026-12-01T16:02:34.123Z","level":"info","subsystem":"web",
 *        "msg":"web viewer at ..."} (one object a line; repeats add
 *        "repeated":N to a line of their own).
 *
 * Threads: gos_log_setup on the main thread before other threads start;
 * everything else from any thread (one lock, held while a line is written). */
#ifndef GOS_LOG_H
#define GOS_LOG_H

#include <stdbool.h>

enum gos_log_level {
	GOS_LOG_DEFAULT = 0,   /* info */
	GOS_LOG_ERROR,
	GOS_LOG_WARN,
	GOS_LOG_INFO,
	GOS_LOG_DEBUG,
};

enum gos_log_format {
	GOS_LOG_TEXT = 0,
	GOS_LOG_JSON,
};

#define GOS_LOG_REPEAT_S 5.0

/* Lines above level are not written. */
void gos_log_setup(enum gos_log_level level, enum gos_log_format format);
/* "error", "warn", "info", "debug"; false for anything else. */
bool gos_log_level_parse(const char *s, enum gos_log_level *out);
/* "text", "json"; false for anything else. */
bool gos_log_format_parse(const char *s, enum gos_log_format *out);
/* Whether a line at level would be written (to skip costly arguments). */
bool gos_log_enabled(enum gos_log_level level);

/* One line (no trailing newline in fmt). subsys: a string literal. */
void gos_log(enum gos_log_level level, const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, never held back: a periodic line that keeps its own rate. */
void gos_log_always(enum gos_log_level level, const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Writes the counts of repeats held back (at exit, or now and then). */
void gos_log_flush(void);

#define gos_log_error(subsys, ...) gos_log(GOS_LOG_ERROR, subsys, __VA_ARGS__)
#define gos_log_warn(subsys, ...)  gos_log(GOS_LOG_WARN, subsys, __VA_ARGS__)
#define gos_log_info(subsys, ...)  gos_log(GOS_LOG_INFO, subsys, __VA_ARGS__)
#define gos_log_debug(subsys, ...) gos_log(GOS_LOG_DEBUG, subsys, __VA_ARGS__)

#endif
