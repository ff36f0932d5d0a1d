/* What /metrics and /health report about the whole program: reads the
 * counters of each part main wires together (map, ingest, core, broadcaster,
 * renderer) and writes Prometheus text or JSON members for gos_ws.
 *
 * Threads: create/destroy on the owning thread; gos_status_frame() from the
 * render thread; gos_status_metrics()/gos_status_health() are gos_ws
 * callbacks (its service thread). Every source must outlive the status. */
#ifndef GOS_STATUS_H
#define GOS_STATUS_H

#include <stdbool.h>

#include "gos_broadcast.h"
#include "gos_core.h"
#include "gos_ingest.h"
#include "gos_map.h"
#include "gos_text.h"

struct gos_status_sources {
	struct gos_map *map;              /* required */
	struct gos_ingest *ingest;        /* NULL: not reported */
	struct gos_core *core;            /* NULL: not reported */
	struct gos_broadcast *broadcast;  /* NULL: not reported */
};

struct gos_status *gos_status_create(const struct gos_status_sources *src);
void gos_status_destroy(struct gos_status *s);  /* accepts NULL */

/* Render thread, once per presented frame: its duration in seconds. Feeds
 * gos_frame_duration_seconds and the render liveness in /health. */
void gos_status_frame(struct gos_status *s, double seconds);

/* gos_ws callbacks (ctx = the struct gos_status *). */
void gos_status_metrics(void *ctx, struct gos_text *out);
bool gos_status_health(void *ctx, struct gos_text *out);

#endif
