/* gos_export: GET /export (docs/protocol.md, "Export"): the map's tokens as
 * CSV, as JSON lines in the ingest format (token_activation events that
 * gos-feed sends into another compositor), or one stream's plain text.
 * Tokens go in the order they arrived, each with its index in its stream;
 * a stream, a probability range narrow the set. A gos_ws_stream: open
 * takes the request's arguments, read hands out the body in pieces (the
 * map read a batch of tokens at a time, each batch one short map lock).
 *
 * Threads: the web server's (one handle, one thread at a time). */
#ifndef GOS_EXPORT_H
#define GOS_EXPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "gos_map.h"
#include "gos_ws.h"

/* The stream callbacks for map (which must outlive every handle). */
void gos_export_stream(struct gos_ws_stream *st, struct gos_map *map);

/* Writes the export of map in format ("csv", "jsonl") to DIR/gos-DATE.EXT
 * (created, not overwritten): true with "export saved to NAME (N bytes)" in
 * msg, else false with one sentence. Any thread (short map locks). */
bool gos_export_save(struct gos_map *map, const char *format, const char *dir, char *msg,
                     size_t msglen);

#endif
