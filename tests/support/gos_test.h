/* Tiny assertion helper for gos tests, header-only. CHECK(cond, fmt, ...)
 * counts a pass, or prints file:line, the condition and the formatted
 * explanation and counts a failure; the test goes on. main ends with
 * `return gos_test_report("test_name");`, which prints
 * "test_name: P passed, F failed" and returns 1 when anything failed.
 * The counters are per translation unit: keep one program's CHECKs in one .c. */
#ifndef GOS_TEST_H
#define GOS_TEST_H

#include <stdio.h>

static struct {
	unsigned passed, failed;
} gos_test_counts;

#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (cond) {                                                       \
			gos_test_counts.passed++;                                 \
		} else {                                                          \
			gos_test_counts.failed++;                                 \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__,    \
			        __LINE__, #cond);                                 \
			fprintf(stderr, __VA_ARGS__);                             \
			fputc('\n', stderr);                                      \
		}                                                                 \
	} while (0)

static inline int gos_test_report(const char *name)
{
	printf("%s: %u passed, %u failed\n", name, gos_test_counts.passed,
	       gos_test_counts.failed);
	fflush(stdout);
	return gos_test_counts.failed ? 1 : 0;
}

#endif
