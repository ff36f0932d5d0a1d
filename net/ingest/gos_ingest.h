/* Unix-socket ingest: one thread (epoll) serves every producer connection,
 * frames its bytes (gos_frame.h: JSON lines or length-prefixed frames,
 * either byte order), parses and validates each line (gos's own messages,
 * or Geometry OS's: gos_geo.h), answers rejects on the same connection, in
 * its framing, and hands accepted events to the core in batches through a
 * gos_queue.
 * When the queue is full the thread stops reading, so the kernel pushes
 * back on producers: nothing accepted is dropped.
 *
 * What producers can make it hold is bounded. Incomplete lines of all
 * connections share one memory budget (input_budget); a connection that
 * would need more stops being read until there is room (the kernel holds
 * its bytes meanwhile), and one connection at a time may always finish its
 * line, so a full budget never deadlocks. A connection that is inside a line
 * or frame and sends no byte for progress_timeout_ms gets an error line
 * (reason "timeout") and is closed; one that is idle between lines is kept
 * for ever. A frame length over GOS_MAX_LINE, or first bytes that are
 * neither JSON nor a frame of either byte order, get an error line and
 * close the connection (its framing is lost). A frame not complete
 * frame_timeout_ms after its first byte gets an error (reason "timeout")
 * and is closed, however slowly its bytes trickle in. Producers past max_connections, or
 * arriving when the process is out of file descriptors, get an error line
 * ("too_many_producers") and are closed, logged once per episode. Each
 * producer connection is logged with its peer's uid and pid (SO_PEERCRED)
 * and counted by uid. */
#ifndef GOS_INGEST_H
#define GOS_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_buf.h"
#include "gos_frame.h"
#include "gos_geo.h"
#include "gos_protocol.h"
#include "gos_queue.h"

#define GOS_INGEST_UIDS 16

/* Zero means default. */
struct gos_ingest_opts {
	const char *socket_path;      /* required */
	const char *socket_group;     /* NULL: the socket is 0600; else 0660 and this
	                               * group's (a name or a number) */
	struct gos_queue *queue;      /* required: accepted events go here */
	size_t batch_events;          /* events per batch (0: 4096) */
	int max_connections;          /* 0: 1024; more are refused with an error line */
	size_t input_budget;          /* bytes held for incomplete lines, all connections
	                               * together (0: 64 MiB; at least 2 MiB). Each
	                               * connection also keeps up to GOS_FRAME_INLINE
	                               * bytes (4 KiB) of its own. */
	int progress_timeout_ms;      /* no byte for this long inside a line or frame:
	                               * error and close (0: 10000) */
	int frame_timeout_ms;         /* a length-prefixed frame not complete this long
	                               * after its first byte: error and close (0: 10000) */
	enum gos_framing framing;     /* 0: auto (gos_frame.h) */
};

struct gos_ingest_stats {
	uint64_t connections;         /* open now */
	uint64_t connections_total;
	uint64_t bytes_in;
	uint64_t lines;               /* lines/frames seen */
	uint64_t accepted[GOS_EV_COUNT_];  /* by enum gos_event_type */
	uint64_t rejected[GOS_REJECT_COUNT_];  /* by enum gos_reject */
	uint64_t queue_full_waits;    /* times the thread waited on a full queue */
	uint64_t buffered_bytes;      /* held now for incomplete lines (input_budget) */
	uint64_t buffered_peak;       /* the most ever held at once */
	uint64_t buffer_waits;        /* times a connection waited for input buffer space */
	uint64_t refused_limit;       /* producers refused: max_connections reached */
	uint64_t refused_no_fd;       /* producers refused: out of file descriptors */
	/* producer connections by the peer's uid (SO_PEERCRED), the first
	 * GOS_INGEST_UIDS uids seen; the rest together */
	struct {
		uint32_t uid;
		uint64_t connections;
	} by_uid[GOS_INGEST_UIDS];
	uint32_t n_uids;
	uint64_t other_uids;
	uint64_t geo[GOS_GEO_K_COUNT_];  /* Geometry OS messages, by enum gos_geo_kind */
	uint64_t frame_timeouts;      /* frames not complete within frame_timeout_ms */
};

/* Binds the socket (mode 0600) and starts the ingest thread. A stale socket
 * file (nobody listening) is replaced; a live one, a path that is not a
 * socket, or any other failure returns NULL with one sentence in err. */
struct gos_ingest *gos_ingest_create(const struct gos_ingest_opts *opts,
                                     char *err, size_t errlen);

/* Stops the thread, closes every connection, removes the socket file.
 * Accepts NULL. */
void gos_ingest_destroy(struct gos_ingest *in);

/* Any thread (the core, after applying a GOS_EV_SYNC marker): queues the
 * sync reply for connection `conn` (dropped if it has gone). Never blocks.
 * Same as gos_ingest_reply() with gos_protocol_sync_reply()'s text. */
void gos_ingest_sync_done(struct gos_ingest *in, uint64_t conn, uint64_t applied,
                          uint64_t rejected, uint64_t tokens);

/* Any thread, never blocks: queues one reply line (a JSON object; the
 * newline is added) for connection `conn`, answering one barrier it sent
 * (sync or screenshot): a connection stays open until each of its barriers
 * has been answered, so call this exactly once per barrier. Dropped if the
 * connection has gone. The text is copied. */
void gos_ingest_reply(struct gos_ingest *in, uint64_t conn, const char *json_line);

/* Any thread. */
void gos_ingest_stats(struct gos_ingest *in, struct gos_ingest_stats *out);

/* Any thread: appends the ingest's own /metrics families beyond the stats
 * the web layer writes (gos_ingest_geo_messages_total{kind},
 * gos_ingest_frame_timeouts_total). */
void gos_ingest_metrics(struct gos_ingest *in, struct gos_buf *t);

#endif
