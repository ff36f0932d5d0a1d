/* gos over NATS JetStream (docs/scale-out.md): producers anywhere publish
 * their events to a JetStream stream, the compositor consumes them through
 * a durable consumer. The subjects and assets of a cluster NAME (default
 * "gos"):
 *   NAME.ingest.<stream>   producer events, one ingest-format JSON line a
 *                          message, in the stream NAME_INGEST (upper case)
 *   NAME.sync              a producer's sync request (core NATS request)
 *   NAME.reply.<producer>  error answers to a producer (its Gos-Reply header)
 * and the durable pull consumer "leader" on NAME_INGEST.
 *
 * net/ layer: no map, no Vulkan; events reach the core through the same
 * gos_queue as the socket's. */
#ifndef GOS_NATS_H
#define GOS_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_client.h"    /* struct gos_sync_result, gos_client_line_fn */
#include "gos_queue.h"

#define GOS_NATS_CLUSTER_MAX 64

/* Checks a cluster name: 1..64 of [a-z0-9_-]. One sentence in err. */
bool gos_nats_check_cluster(const char *name, char *err, size_t errlen);

/* ---- the compositor's side ---- */

/* The sync markers the NATS ingest puts in the core's queue carry a conn id
 * with this bit set (the socket's ids never have it). */
#define GOS_NATS_CONN_BIT (1ull << 63)

struct gos_nats_ingest_opts {
	const char *url;              /* required: nats://host:port (a list: comma-separated) */
	const char *cluster;          /* NULL: "gos" */
	struct gos_queue *queue;      /* required: accepted events go here */
	size_t batch_events;          /* messages fetched a batch (0: 1024) */
};

struct gos_nats_ingest_stats {
	bool connected;
	uint64_t reconnects;
	uint64_t messages;            /* messages consumed */
	uint64_t accepted, rejected;
	uint64_t applied_stream_seq;  /* the stream sequence applied (and acked) up to */
	uint64_t syncs_answered;
	uint64_t log_records;         /* change-log records published */
	uint64_t log_failed;          /* ... refused (not connected, JetStream away) */
};

/* Connects (retrying in the background while the server is away: a
 * compositor may start before NATS), creates the stream and the consumer
 * when missing, and starts the consuming thread. NULL with one sentence in
 * err for bad options or a stream that exists with another configuration. */
struct gos_nats_ingest *gos_nats_ingest_create(const struct gos_nats_ingest_opts *opts, char *err,
                                               size_t errlen);
/* Stops the thread (messages fetched and not yet applied are not acked:
 * JetStream delivers them again) and closes the connection. Accepts NULL. */
void gos_nats_ingest_destroy(struct gos_nats_ingest *n);

/* Any thread, never blocks: the core (or the journal, once durable) has
 * applied everything up to the sync marker with this conn id
 * (GOS_NATS_CONN_BIT set): its messages are acked, and producers' syncs
 * that it covers are answered. tokens: live tokens then. */
void gos_nats_ingest_applied(struct gos_nats_ingest *n, uint64_t conn, uint64_t tokens);

/* The core thread (gos_core_opts.on_applied): publishes the batch's events
 * to the change log CLUSTER.log (stream CLUSTER_LOG) as journal records: the
 * event in the ingest format, headers Gos-Seq-First and Gos-Seq-Last (the
 * map seqs it produced). Asynchronous: never waits for the acks. */
void gos_nats_log_publish(struct gos_nats_ingest *n, const struct gos_batch *b, uint64_t seq_start);

/* Any thread. */
void gos_nats_ingest_stats(struct gos_nats_ingest *n, struct gos_nats_ingest_stats *out);

/* ---- following the change log (gos-relay, standbys) ---- */

/* One record of the change log: the event and the map seqs it produced on
 * the leader. Called on the follower's thread, in log order; ev lives for
 * the call. */
typedef void (*gos_nats_record_fn)(void *ctx, const struct gos_event *ev, uint64_t seq_first,
                                   uint64_t seq_last);

struct gos_nats_follow_opts {
	const char *url;              /* required */
	const char *cluster;          /* NULL: "gos" */
	gos_nats_record_fn on_record; /* required */
	void *ctx;
};

struct gos_nats_follow_stats {
	bool connected;
	uint64_t records;             /* records handed to on_record */
	uint64_t lag_records;         /* records in the log not handed over yet */
	double lag_s;                 /* age of the last record handed over while more wait */
	uint64_t unreadable;          /* records that did not parse (skipped) */
};

/* Connects (retrying in the background) and starts the thread that reads
 * the change log from its start (an ordered consumer: in order, no gap) and
 * hands each record to on_record. NULL with one sentence in err. */
struct gos_nats_follow *gos_nats_follow_create(const struct gos_nats_follow_opts *opts, char *err,
                                               size_t errlen);
void gos_nats_follow_destroy(struct gos_nats_follow *f);   /* accepts NULL; joins the thread */
void gos_nats_follow_stats(struct gos_nats_follow *f, struct gos_nats_follow_stats *out);

/* ---- a producer's side (gos-feed, gos-bridge) ---- */

/* Connects; NULL with one sentence in err. One thread owns a producer. */
struct gos_nats_producer *gos_nats_producer_connect(const char *url, const char *cluster,
                                                    char *err, size_t errlen);
void gos_nats_producer_close(struct gos_nats_producer *p);   /* accepts NULL */

/* Error answers (and the sync reply) go to fn. */
void gos_nats_producer_on_line(struct gos_nats_producer *p, gos_client_line_fn fn, void *ctx);

/* Publishes one event line (its "stream" picks the subject) without waiting
 * for its ack (sync waits for all). False when the connection is gone or
 * the publish was refused (err says why). */
bool gos_nats_producer_send(struct gos_nats_producer *p, const char *line, size_t len);

/* Waits for every publish's JetStream ack (then everything sent is stored),
 * then asks the compositor to confirm it applied past them, up to
 * timeout_ms (< 0: forever). out->rejected counts the error answers
 * received; applied = sent - rejected; tokens from the reply. False on a
 * publish that failed, a timeout or a lost connection; *why says which. */
bool gos_nats_producer_sync(struct gos_nats_producer *p, int timeout_ms,
                            struct gos_sync_result *out, char *why, size_t whylen);

#endif
