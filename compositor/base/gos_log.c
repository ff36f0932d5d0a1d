/* gos-compositor's log lines (see gos_log.h). */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gos_buf.h"
#include "gos_log.h"
#include "gos_time.h"

#define SITES 64   /* call sites remembered for repeats */

static _Atomic int level = GOS_LOG_INFO;
static enum gos_log_format format = GOS_LOG_TEXT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* A call site's window: lines within GOS_LOG_REPEAT_S of `printed` are
 * counted in `held`. */
static struct site {
	const char *subsys, *fmt;
	enum gos_log_level level;
	uint64_t printed_ms, last_ms;
	uint64_t held;
} sites[SITES];

static const char *const level_names[] = {
	[GOS_LOG_ERROR] = "error", [GOS_LOG_WARN] = "warn", [GOS_LOG_INFO] = "info",
	[GOS_LOG_DEBUG] = "debug",
};

void gos_log_setup(enum gos_log_level l, enum gos_log_format f)
{
	atomic_store(&level, l ? (int)l : GOS_LOG_INFO);
	format = f;
}

bool gos_log_level_parse(const char *s, enum gos_log_level *out)
{
	for (int l = GOS_LOG_ERROR; l <= GOS_LOG_DEBUG; l++)
		if (!strcmp(s, level_names[l])) {
			*out = (enum gos_log_level)l;
			return true;
		}
	return false;
}

bool gos_log_format_parse(const char *s, enum gos_log_format *out)
{
	if (!strcmp(s, "text") || !strcmp(s, "json")) {
		*out = s[0] == 't' ? GOS_LOG_TEXT : GOS_LOG_JSON;
		return true;
	}
	return false;
}

bool gos_log_enabled(enum gos_log_level l)
{
	return (int)l <= atomic_load_explicit(&level, memory_order_relaxed);
}

/* 1532 -> "1,532". */
static void thousands(char *out, size_t cap, uint64_t n)
{
	char digits[24];
	int len = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
	size_t o = 0;
	for (int i = 0; i < len && o + 2 < cap; i++) {
		if (i && (len - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
}

/* Writes one line; lock held. repeated: a repeat count line (msg unused). */
static void emit(enum gos_log_level l, const char *subsys, const char *msg, uint64_t repeated,
                 double over_s)
{
	struct gos_buf b = {0};
	char count[32];
	thousands(count, sizeof(count), repeated);
	if (format == GOS_LOG_JSON) {
		struct timespec ts;
		struct tm tm;
		char when[40];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		gos_buf_printf(&b, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"subsystem\":", when,
		               ts.tv_nsec / 1000000, level_names[l]);
		gos_buf_json_str(&b, subsys);
		if (repeated) {
			gos_buf_printf(&b, ",\"msg\":\"… repeated %s times in %.1f s\",\"repeated\":%llu}\n",
			               count, over_s, (unsigned long long)repeated);
		} else {
			gos_buf_puts(&b, ",\"msg\":");
			gos_buf_json_str(&b, msg);
			gos_buf_puts(&b, "}\n");
		}
	} else {
		gos_buf_printf(&b, "gos [%s] %s", subsys,
		               l == GOS_LOG_ERROR ? "error: " : l == GOS_LOG_WARN ? "warning: " : "");
		if (repeated)
			gos_buf_printf(&b, "… repeated %s times in %.1f s\n", count, over_s);
		else
			gos_buf_printf(&b, "%s\n", msg);
	}
	fwrite(b.data, 1, b.len, stderr);
	gos_buf_finish(&b);
}

static void site_flush(struct site *s)
{
	if (s->held)
		emit(s->level, s->subsys, NULL, s->held, (double)(s->last_ms - s->printed_ms) / 1000.0);
	s->held = 0;
}

static void logv(enum gos_log_level l, const char *subsys, bool limit, const char *fmt,
                 va_list ap)
{
	uint64_t now = gos_now_ms(), window = (uint64_t)(GOS_LOG_REPEAT_S * 1000);
	pthread_mutex_lock(&lock);
	for (int i = 0; i < SITES; i++)   /* runs that ended: their counts now */
		if (sites[i].held && now - sites[i].printed_ms >= window)
			site_flush(&sites[i]);
	struct site *s = NULL, *oldest = &sites[0];
	for (int i = 0; i < SITES && !s; i++) {
		if (sites[i].fmt == fmt && sites[i].subsys == subsys)
			s = &sites[i];
		else if (sites[i].last_ms < oldest->last_ms)
			oldest = &sites[i];
	}
	if (limit && s && now - s->printed_ms < window) {
		s->held++;
		s->last_ms = now;
		pthread_mutex_unlock(&lock);
		return;
	}
	if (!s) {
		s = oldest;
		site_flush(s);
		*s = (struct site){.subsys = subsys, .fmt = fmt, .level = l};
	}
	site_flush(s);
	s->printed_ms = s->last_ms = now;
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	emit(l, subsys, msg, 0, 0);
	pthread_mutex_unlock(&lock);
}

void gos_log(enum gos_log_level l, const char *subsys, const char *fmt, ...)
{
	if (!gos_log_enabled(l))
		return;
	va_list ap;
	va_start(ap, fmt);
	logv(l, subsys, true, fmt, ap);
	va_end(ap);
}

void gos_log_always(enum gos_log_level l, const char *subsys, const char *fmt, ...)
{
	if (!gos_log_enabled(l))
		return;
	va_list ap;
	va_start(ap, fmt);
	logv(l, subsys, false, fmt, ap);
	va_end(ap);
}

void gos_log_flush(void)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < SITES; i++)
		site_flush(&sites[i]);
	pthread_mutex_unlock(&lock);
}
