/* Thread heartbeats (see gos_heartbeat.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gos_heartbeat.h"
#include "gos_time.h"

static struct slot {
	_Atomic uint64_t beat_ns;     /* CLOCK_MONOTONIC */
	_Atomic uint64_t bound_ms;
	_Atomic int running;
} slots[GOS_HB_COUNT_];

static const char *const names[GOS_HB_COUNT_] = {
	[GOS_HB_INGEST] = "ingest", [GOS_HB_CORE] = "core", [GOS_HB_BROADCAST] = "broadcast",
	[GOS_HB_WEB] = "web", [GOS_HB_JOURNAL] = "journal", [GOS_HB_RENDER] = "render",
};

/* GOS_TEST_STALL=NAME:FILE, read once. */
static pthread_once_t stall_once = PTHREAD_ONCE_INIT;
static int stall_thread = -1;
static char stall_file[512];

static void stall_init(void)
{
	const char *e = getenv("GOS_TEST_STALL");
	const char *colon = e ? strchr(e, ':') : NULL;
	if (!colon || strlen(colon + 1) >= sizeof(stall_file))
		return;
	for (int t = 0; t < GOS_HB_COUNT_; t++)
		if ((size_t)(colon - e) == strlen(names[t]) && !strncmp(e, names[t], strlen(names[t]))) {
			memcpy(stall_file, colon + 1, strlen(colon + 1) + 1);
			stall_thread = t;
		}
}

void gos_hb_start(enum gos_hb t, double bound_s)
{
	pthread_once(&stall_once, stall_init);
	uint64_t ms = (uint64_t)((bound_s > 0 ? bound_s : GOS_HB_BOUND_S) * 1000.0);
	atomic_store_explicit(&slots[t].bound_ms, ms, memory_order_relaxed);
	atomic_store_explicit(&slots[t].beat_ns, gos_now_ns(), memory_order_relaxed);
	atomic_fetch_add_explicit(&slots[t].running, 1, memory_order_release);
}

void gos_hb_beat(enum gos_hb t)
{
	if ((int)t == stall_thread)   /* the test hook: no beat while the file exists */
		while (access(stall_file, F_OK) == 0)
			nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
	atomic_store_explicit(&slots[t].beat_ns, gos_now_ns(), memory_order_relaxed);
}

void gos_hb_stop(enum gos_hb t)
{
	atomic_fetch_sub_explicit(&slots[t].running, 1, memory_order_release);
}

const char *gos_hb_name(enum gos_hb t)
{
	return (unsigned)t < GOS_HB_COUNT_ ? names[t] : "unknown";
}

void gos_hb_read(enum gos_hb t, struct gos_hb_state *out)
{
	struct slot *s = &slots[t];
	uint64_t now = gos_now_ns(), beat = atomic_load_explicit(&s->beat_ns, memory_order_relaxed);
	out->running = atomic_load_explicit(&s->running, memory_order_acquire) > 0;
	out->age_s = now > beat ? (double)(now - beat) / 1e9 : 0.0;
	out->bound_s = (double)atomic_load_explicit(&s->bound_ms, memory_order_relaxed) / 1000.0;
	out->stalled = out->running && out->age_s > out->bound_s;
}
