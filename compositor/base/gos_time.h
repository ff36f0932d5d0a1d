/* The one clock gos measures with: CLOCK_MONOTONIC (never jumps with the
 * wall clock); and the wall clock for what is recorded (journal "_t").
 * Header-only; any thread. */
#ifndef GOS_TIME_H
#define GOS_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t gos_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t gos_now_ms(void)
{
	return gos_now_ns() / 1000000u;
}

/* Seconds, with nanosecond resolution. */
static inline double gos_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CLOCK_REALTIME seconds: only for timestamps that outlive the process. */
static inline double gos_now_realtime_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
