/* gos_log (compositor/base/gos_log.h): the text and JSON line shapes, the
 * level filter, the flags' values, and repeats from one call site held back
 * and counted ("… repeated 1,531 times"), from one thread and from four. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_log.h"
#include "gos_test.h"

static FILE *cap;
static int saved_fd = -1;

/* stderr into a temporary file until captured() */
static void capture(void)
{
	fflush(stderr);
	cap = tmpfile();
	saved_fd = dup(2);
	dup2(fileno(cap), 2);
}

/* What went to stderr since capture(), as a string to free. */
static char *captured(void)
{
	fflush(stderr);
	dup2(saved_fd, 2);
	close(saved_fd);
	long n = ftell(cap);
	char *s = calloc(1, (size_t)n + 1);
	rewind(cap);
	if (fread(s, 1, (size_t)n, cap) != (size_t)n)
		s[0] = '\0';
	fclose(cap);
	return s;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void *spam(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++)
		gos_log_warn("threads", "the same trouble, number %d", i);
	return NULL;
}

int main(void)
{
	enum gos_log_level l;
	enum gos_log_format f;
	CHECK(gos_log_level_parse("warn", &l) && l == GOS_LOG_WARN, "warn");
	CHECK(gos_log_level_parse("debug", &l) && l == GOS_LOG_DEBUG, "debug");
	CHECK(!gos_log_level_parse("loud", &l) && !gos_log_level_parse("", &l), "bad levels refused");
	CHECK(gos_log_format_parse("json", &f) && f == GOS_LOG_JSON, "json");
	CHECK(!gos_log_format_parse("xml", &f), "bad format refused");

	/* text, info: debug left out, warnings and errors marked */
	gos_log_setup(GOS_LOG_DEFAULT, GOS_LOG_TEXT);
	capture();
	gos_log_info("web", "web viewer at http://%s:%d/", "127.0.0.1", 7680);
	gos_log_debug("web", "not shown");
	gos_log_warn("journal", "disk %s", "full");
	gos_log_error("main", "bad");
	char *s = captured();
	CHECK(!strcmp(s, "gos [web] web viewer at http://127.0.0.1:7680/\n"
	                 "gos [journal] warning: disk full\n"
	                 "gos [main] error: bad\n"), "text lines: %s", s);
	free(s);

	/* --log-level error */
	gos_log_setup(GOS_LOG_ERROR, GOS_LOG_TEXT);
	capture();
	gos_log_info("main", "quiet");
	gos_log_warn("main", "quiet too");
	gos_log_error("main", "loud");
	s = captured();
	CHECK(!strcmp(s, "gos [main] error: loud\n"), "error level: %s", s);
	free(s);

	/* one call site 1532 times: one line, then the count */
	gos_log_setup(GOS_LOG_INFO, GOS_LOG_TEXT);
	capture();
	for (int i = 0; i < 1532; i++) {
		gos_log_info("ingest", "producer %d sent a bad line", i);
		if (i == 10)
			gos_log_info("ingest", "another call site");   /* not held back by the first */
	}
	gos_log_always(GOS_LOG_INFO, "main", "counts");
	gos_log_always(GOS_LOG_INFO, "main", "counts");     /* periodic: never held back */
	gos_log_flush();
	s = captured();
	CHECK(strstr(s, "gos [ingest] producer 0 sent a bad line\n") &&
	      strstr(s, "gos [ingest] another call site\n") &&
	      strstr(s, "gos [ingest] … repeated 1,531 times in ") && count_lines(s) == 5 &&
	      strstr(s, "gos [main] counts\ngos [main] counts\n"), "repeats: %s", s);
	free(s);

	/* JSON, debug: one object a line, strings escaped */
	gos_log_setup(GOS_LOG_DEBUG, GOS_LOG_JSON);
	capture();
	gos_log_debug("seek", "a \"quoted\" path\\here");
	for (int i = 0; i < 3; i++)
		gos_log_warn("seek", "again");
	gos_log_flush();
	s = captured();
	char *second = strchr(s, '\n');
	CHECK(!strncmp(s, "{\"time\":\"20", 11) && strstr(s, "Z\",\"level\":\"debug\",\"subsystem\":"
	      "\"seek\",\"msg\":\"a \\\"quoted\\\" path\\\\here\"}\n") && count_lines(s) == 3 &&
	      second && strstr(second, "\"level\":\"warn\",\"subsystem\":\"seek\",\"msg\":\"again\"}") &&
	      strstr(second, "\"msg\":\"… repeated 2 times in 0.0 s\",\"repeated\":2}"),
	      "json lines: %s", s);
	free(s);

	/* four threads, one call site: one line and 3,999 counted */
	gos_log_setup(GOS_LOG_INFO, GOS_LOG_TEXT);
	capture();
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, spam, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	gos_log_flush();
	s = captured();
	CHECK(count_lines(s) == 2 && strstr(s, "gos [threads] warning: the same trouble, number ") &&
	      strstr(s, "gos [threads] warning: … repeated 3,999 times in "), "threads: %s", s);
	free(s);
	return gos_test_report("test_log");
}
