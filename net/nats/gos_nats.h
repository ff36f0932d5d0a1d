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
#define GOS_NATS_HOLDER_MAX 160

struct gos_nats_lease;

/* Checks a cluster name: 1..64 of [a-z0-9_-]. One sentence in err. */
bool gos_nats_check_cluster(const char *name, char *err, size_t errlen);

/* ---- the compositor's side ---- */

/* The sync markers the NATS ingest puts in the core's queue carry a conn id
 * with this bit set (the socket's ids never have it). */
#define GOS_NATS_CONN_BIT (1ull << 63)

/* The ingest's change-log publishes stopped for good: the lease was lost
 * or a publish was refused (another leader wrote to the log, or the log
 * could not take it). Called once, on a libnats or the core thread: the
 * compositor's map now holds what the log does not, so it must stop
 * (docs/scale-out.md, "fencing"). Must not block. */
typedef void (*gos_nats_fenced_fn)(void *ctx, const char *why);

struct gos_nats_ingest_opts {
	const char *url;              /* required: nats://host:port (a list: comma-separated) */
	const char *cluster;          /* NULL: "gos" */
	struct gos_queue *queue;      /* required: accepted events go here */
	size_t batch_events;          /* messages fetched a batch (0: 1024) */
	/* A cluster's leader (NULL: a single compositor, always leading): each
	 * change-log publish first checks the lease is held, and expects the
	 * log's last stream sequence to be the one before it, from log_seq
	 * (the log's end when it took over) on. */
	struct gos_nats_lease *lease;
	uint64_t log_seq;
	/* Ingest stream sequences already in the change log (what the previous
	 * leader applied and may not have acked): acked, not applied again. */
	const uint64_t *skip;
	size_t n_skip;
	gos_nats_fenced_fn on_fenced; /* may be NULL */
	void *ctx;
};

struct gos_nats_ingest_stats {
	bool connected;
	uint64_t reconnects;
	uint64_t messages;            /* messages consumed */
	uint64_t accepted, rejected;
	uint64_t applied_stream_seq;  /* the stream sequence applied (and acked) up to */
	uint64_t syncs_answered;
	uint64_t log_records;         /* change-log records published */
	uint64_t log_failed;          /* ... refused (not connected, JetStream away, fenced) */
	uint64_t skipped;             /* messages already in the log (a takeover's redeliveries) */
	bool fenced;                  /* publishes stopped for good */
	uint64_t recoveries;          /* failed change-log publishes sent again in place */
	uint64_t checkpoints;         /* checkpoints published */
	uint64_t checkpoint_seq;      /* the last one's map seq */
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
 * map seqs it produced) and Gos-Src-Seq (its ingest stream sequence, for
 * events that came over NATS). Asynchronous: never waits for the acks. A
 * replayed batch (a standby's) is not published. */
void gos_nats_log_publish(struct gos_nats_ingest *n, const struct gos_batch *b, uint64_t seq_start);

/* Any thread. */
void gos_nats_ingest_stats(struct gos_nats_ingest *n, struct gos_nats_ingest_stats *out);

/* Checkpoints (docs/scale-out.md). One thread (the leader's checkpointer):
 * the change log's last stream sequence now (read before the map is
 * imaged: every record up to it is in the image), then the image (fd, read
 * from its start) published as the map at seq, records after log_pos
 * continuing it: parts to CLUSTER.ckpt.data, then the index to
 * CLUSTER.ckpt.index, only while this process leads; older parts purged
 * (the last two checkpoints stay). False with one sentence in err. */
bool gos_nats_log_position(struct gos_nats_ingest *n, uint64_t *pos);
bool gos_nats_checkpoint_publish(struct gos_nats_ingest *n, int fd, uint64_t seq, uint64_t log_pos,
                                 char *err, size_t errlen);

/* ---- following the change log (gos-relay, standbys) ---- */

/* One record of the change log: the event and the map seqs it produced on
 * the leader. Called on the follower's thread, in log order; ev lives for
 * the call. */
typedef void (*gos_nats_record_fn)(void *ctx, const struct gos_event *ev, uint64_t seq_first,
                                   uint64_t seq_last);

struct gos_nats_follow_opts {
	const char *url;              /* required */
	const char *cluster;          /* NULL: "gos" */
	/* One of the two: each record to on_record (a relay), or to queue in
	 * batches (a standby compositor's core: b->replayed, b->seq_floor
	 * where the leader's seqs jumped, each event's src_seq and raw). */
	gos_nats_record_fn on_record;
	struct gos_queue *queue;
	/* May be NULL (the log from its start). Else the newest checkpoint is
	 * handed over first: the map as of seq, an image (gos_map_image_read)
	 * in fd; true when the replica took it (then only records after it
	 * follow), false: the log from its start. On the follower's thread. */
	bool (*on_checkpoint)(void *ctx, int fd, uint64_t seq);
	void *ctx;
};

struct gos_nats_follow_stats {
	bool connected;
	uint64_t reconnects;
	uint64_t records;             /* records handed to on_record */
	uint64_t lag_records;         /* records in the log not handed over yet */
	double lag_s;                 /* age of the last record handed over while more wait */
	uint64_t unreadable;          /* records that did not parse or did not continue the seqs */
	uint64_t log_seq;             /* the log's stream sequence handed over up to */
	uint64_t leaders;             /* takeover markers seen (leaders that took over) */
	uint64_t checkpoint_seq;      /* the checkpoint it started from (0: the log's start) */
};

/* Where a follower stopped (gos_nats_follow_finish). */
struct gos_nats_follow_end {
	uint64_t log_seq;             /* the takeover marker's stream sequence */
	uint64_t next_seq;            /* the map's seq once what was handed over is applied */
	uint64_t *src;                /* the ingest seqs of the last records (caller frees) */
	size_t n_src;
};

/* Connects (retrying in the background) and starts the thread that reads
 * the change log from its start (an ordered consumer: in order, no gap) and
 * hands each record to on_record. NULL with one sentence in err. */
struct gos_nats_follow *gos_nats_follow_create(const struct gos_nats_follow_opts *opts, char *err,
                                               size_t errlen);
void gos_nats_follow_destroy(struct gos_nats_follow *f);   /* accepts NULL; joins the thread */
void gos_nats_follow_stats(struct gos_nats_follow *f, struct gos_nats_follow_stats *out);

/* A standby taking over (queue mode): publishes a takeover marker to the
 * log (header Gos-Leader: holder; no event; followers skip it), waits up
 * to timeout_ms until every record before it has gone to the queue, then
 * stops following (destroy still frees). The old leader's publishes that
 * land after the marker are refused (fencing). False with why when the
 * marker could not be published or reached in time (the follower keeps
 * going; call again: the same marker is waited for). */
bool gos_nats_follow_finish(struct gos_nats_follow *f, const char *holder, int timeout_ms,
                            struct gos_nats_follow_end *out, char *why, size_t whylen);

/* ---- the leader lease (docs/scale-out.md) ---- */

/* Called on the lease thread when this process takes the lease (true) or
 * loses it (false; once lost, never taken again by this process). May
 * block briefly. */
typedef void (*gos_nats_lease_fn)(void *ctx, bool held);

struct gos_nats_lease_opts {
	const char *url;              /* required */
	const char *cluster;          /* NULL: "gos" */
	unsigned lease_ms;            /* the lease's TTL (0: 3000) */
	const char *holder;           /* who we are, in the bucket (NULL: host:pid) */
	gos_nats_lease_fn on_change;  /* may be NULL */
	void *ctx;
};

struct gos_nats_lease_stats {
	bool connected, held, lost;
	uint64_t revision, takeovers;
	char holder[GOS_NATS_HOLDER_MAX];   /* who holds it as last seen ("" none) */
	char self[GOS_NATS_HOLDER_MAX];
};

/* Connects (retrying in the background) and starts the thread that tries
 * to take the lease (key "leader" of the bucket CLUSTER_LEASE, created
 * with TTL lease_ms) every lease_ms / 6 and, once held, renews it every
 * lease_ms / 3 (compare-and-set on its revision). NULL with one sentence. */
struct gos_nats_lease *gos_nats_lease_create(const struct gos_nats_lease_opts *opts, char *err,
                                             size_t errlen);
/* Stops; a lease still held is handed over (deleted) so a standby need not
 * wait for the TTL. Accepts NULL. */
void gos_nats_lease_destroy(struct gos_nats_lease *l);
/* Any thread: held, and renewed less than 0.9 TTL ago by this process's
 * clock (a paused process that wakes up sees false at once). */
bool gos_nats_lease_held(struct gos_nats_lease *l);
/* Any thread: drop it for good (a fenced publish). */
void gos_nats_lease_give_up(struct gos_nats_lease *l, const char *why);
void gos_nats_lease_stats(struct gos_nats_lease *l, struct gos_nats_lease_stats *out);

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
