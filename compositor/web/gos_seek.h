/* gos seek worker: time travel for viewers (docs/journal.md "Time travel").
 * One thread that owns every private map: it builds the map at a seq from
 * the nearest checkpoint and the journal (keeping the last one built, so
 * scrubbing forward replays only the difference), serializes one snapshot
 * with the broadcaster's serializer, and hands the bytes to that viewer
 * through gos_ws_viewer_send; it paces play from the records' times; once a
 * second it publishes the timeline while it changes. The web server's
 * thread never touches the disk: it only queues requests.
 *
 * Threads: create/destroy on the owning thread (after the server exists,
 * before it is destroyed); gos_seek_request on the server's thread. */
#ifndef GOS_SEEK_H
#define GOS_SEEK_H

#include <stdbool.h>
#include <stdint.h>

#include "gos_journal.h"
#include "gos_map.h"
#include "gos_viewer_proto.h"
#include "gos_ws.h"

#define GOS_SEEK_QUEUE 8        /* requests waiting, for all viewers */
#define GOS_SEEK_PLAYS 4        /* viewers playing at once */

struct gos_seek_opts {
	const char *dir;                    /* the state dir (required) */
	struct gos_journal *journal;        /* required: durable_seq */
	struct gos_map_opts map_opts;       /* the live map's (max_tokens, layout) */
	struct gos_ws *ws;                  /* required */
	uint32_t tick_ms;                   /* play's deltas; 0: 33 */
};

struct gos_seek;

/* Starts the worker thread. NULL with err. */
struct gos_seek *gos_seek_create(const struct gos_seek_opts *opts, char *err, size_t errlen);
/* Stops and joins the worker, frees its maps. Accepts NULL. */
void gos_seek_destroy(struct gos_seek *s);

/* The server's thread (a gos_ws_request_fn's arguments): queues a seek,
 * play or pause, replacing the viewer's queued one; `live` and in NULL
 * (the viewer left) stop what plays for it. Never blocks on the worker:
 * a full queue answers the viewer {"type":"error","code":"busy"}. */
void gos_seek_request(struct gos_seek *s, uint64_t viewer, uint64_t gen,
                      const struct gos_viewer_in *in);

/* The same bytes gos_ws would queue for a viewer: an error message. Any
 * thread. */
void gos_seek_send_error(struct gos_ws *ws, uint64_t viewer, uint64_t gen, const char *code,
                         const char *message);

#endif
