/* A compositor in a cluster (--nats URL --cluster NAME, docs/scale-out.md):
 * a standby that follows the cluster's change log into its own map until it
 * takes the leader lease, then the leader that consumes producer events from
 * JetStream and publishes what it applies. Wires net/nats/ to the core's
 * queue; main.c sees a role and a few pass-throughs. */
#ifndef GOS_CLUSTER_H
#define GOS_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "gos_buf.h"
#include "gos_map.h"
#include "gos_queue.h"

/* The leader stopped being one (its lease lost, a publish fenced): its map
 * holds what the log may not, so the process must stop (main.c exits 3 and
 * its supervisor starts it again as a standby). Any thread, once; must not
 * block. */
typedef void (*gos_cluster_deposed_fn)(void *ctx, const char *why);

struct gos_cluster_opts {
	const char *url;              /* required */
	const char *cluster;          /* NULL: "gos" */
	unsigned lease_ms;            /* 0: 3000 */
	struct gos_queue *queue;      /* required: the core's */
	/* This host's producers (the socket, the demo) push here: passed on to
	 * the core once this compositor leads (until then they wait: a
	 * standby's map is the leader's). Required. */
	struct gos_queue *hold;
	/* The core's map (required): the leader publishes a checkpoint of it
	 * every checkpoint_s (0: 60; < 0: never); a standby starting up takes
	 * the newest one (built with map_opts) before the log after it. */
	struct gos_map *map;
	struct gos_map_opts map_opts;
	double checkpoint_s;
	gos_cluster_deposed_fn on_deposed;
	void *ctx;
};

/* Starts as a standby: the change log followed from its start into queue,
 * and the lease tried. NULL with one sentence in err. */
struct gos_cluster *gos_cluster_create(const struct gos_cluster_opts *opts, char *err,
                                       size_t errlen);

/* Stops passing hold on (call before the core stops: what hold still has
 * goes to the core first when leading), then everything: what was applied
 * is acked, the lease handed over. Accepts NULL. Two steps: stop_hold
 * before the core's destroy, destroy after. */
void gos_cluster_stop_hold(struct gos_cluster *c);
void gos_cluster_destroy(struct gos_cluster *c);

/* "standby", "leader" or "deposed". Any thread. */
const char *gos_cluster_role(struct gos_cluster *c);

/* The core's hooks: a NATS sync marker applied (any thread), and a batch
 * applied (core thread: published to the change log when leading). */
void gos_cluster_applied(struct gos_cluster *c, uint64_t conn, uint64_t tokens);
void gos_cluster_publish(struct gos_cluster *c, const struct gos_batch *b, uint64_t seq_start);

/* /health fields (",\"nats\":{..},\"lag\":{..},\"lease\":{..}"; false when
 * NATS is away) and /metrics families. Any thread. */
bool gos_cluster_health(struct gos_cluster *c, struct gos_buf *out);
void gos_cluster_metrics(struct gos_cluster *c, struct gos_buf *out);

#endif
