/* gos search: case-insensitive substring search over each stream's text
 * (docs/analytics.md "Search", docs/protocol.md "search_result").
 *
 * A stream's text is its tokens' texts in arrival order, joined, so a match
 * may span tokens (" the" + " cat" holds "the cat"). Matching is on the
 * bytes of the Unicode simple case fold (gos_casefold.h: no Turkic
 * mappings, no normalization, so "e" + U+0301 matches only itself, not
 * U+00E9). Matches do not overlap: each stream is scanned left to right,
 * and the scan goes on after the end of a match. The filters (streams,
 * probability range) then pick among those matches.
 *
 * The index, built at the first search and then followed: per stream the
 * folded text of its live tokens and, per token, its map slot, confidence
 * and folded length; per map slot, where its token is. It follows the map's
 * change log (gos_map_read_since; a full read when the log has moved on):
 * new tokens are appended, changed ones patched, evicted ones dropped.
 * About 18 bytes per token besides the folded text.
 *
 * Threads: create/destroy on the owning thread (with a server: after it
 * exists, before it is destroyed); gos_search_run and gos_search_stats from
 * any thread (one index lock: concurrent calls take turns, the worker's
 * included); gos_search_request on the server's thread (never waits for a
 * search: it only queues). The worker thread (with a server) answers the
 * queued requests and, once the index is built, follows the map every
 * sync_ms so that a search has little to catch up on. */
#ifndef GOS_SEARCH_H
#define GOS_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_arena.h"
#include "gos_map.h"
#include "gos_viewer_proto.h"
#include "gos_ws.h"

#define GOS_SEARCH_QUEUE 8          /* requests waiting, for all viewers */

/* Zero means default. */
struct gos_search_opts {
	struct gos_map *map;        /* required; must outlive the gos_search */
	struct gos_ws *ws;          /* NULL: no worker thread, gos_search_run only */
	uint32_t sync_ms;           /* the worker follows the map this often once the
	                             * index is built; 0: 1000 */
};

/* Zero means default: every stream, no probability range, 100 matches. */
struct gos_search_query {
	const char *q;              /* 1..256 bytes of UTF-8 (NUL-terminated) */
	uint32_t limit;             /* matches to return, 1..10000; 0: 100 */
	bool has_streams;           /* only the streams named (none named: no match) */
	const char *const *streams;
	size_t n_streams;
	bool has_p;                 /* only matches whose every token has a known
	                             * confidence in [min_p, max_p] (compared as
	                             * floats, as the map holds confidences) */
	double min_p, max_p;
};

/* One match: its tokens are slots[first .. first + n) and ids[...] of the
 * result. */
struct gos_search_match {
	uint32_t stream;            /* the map's stream index */
	const char *stream_name;
	size_t first;
	uint32_t n;
	float x, y;                 /* the first token's world position */
};

/* A caller-owned result. Zero-initialize; reuse it across searches (no
 * allocation once it has grown); gos_search_result_finish() frees it.
 * Strings live in its arena until the next search into it. */
struct gos_search_result {
	uint64_t seq;               /* the map seq the answer is as of */
	uint64_t count;             /* every match (not only the first limit) */
	size_t n_matches, cap_matches;
	struct gos_search_match *matches;  /* the first limit, streams by index,
	                                    * then by place in the stream */
	size_t n_tokens, cap_tokens;
	uint32_t *slots;            /* the matched tokens' map slots (GPU index) */
	const char **ids;           /* their token ids */
	struct gos_arena arena;
};

/* The index's size (gos_search_stats). */
struct gos_search_stats {
	bool built;
	uint64_t seq;               /* the map seq the index is as of */
	uint64_t tokens;            /* live tokens indexed */
	uint64_t streams;
	uint64_t text_bytes;        /* folded text of live tokens */
	uint64_t text_alloc;        /* allocated for folded text (text_bytes, room to grow) */
	uint64_t bytes;             /* everything the index has allocated */
	uint64_t searches;
	uint64_t full_builds;       /* full reads of the map (first search, log overrun) */
};

struct gos_search;

/* Starts the worker when opts->ws is set. NULL with one sentence in err. */
struct gos_search *gos_search_create(const struct gos_search_opts *opts, char *err,
                                     size_t errlen);
/* Stops and joins the worker, frees the index. Accepts NULL. */
void gos_search_destroy(struct gos_search *s);

/* Any thread. Brings the index up to date with the map (every change
 * applied before the call is seen) and searches it into *out. false: a
 * bad query (empty q, not UTF-8, over 256 bytes, limit over 10000), with
 * one sentence in err. */
bool gos_search_run(struct gos_search *s, const struct gos_search_query *q,
                    struct gos_search_result *out, char *err, size_t errlen);

void gos_search_result_finish(struct gos_search_result *r);  /* accepts NULL */

/* Any thread. Waits for a search in progress. */
void gos_search_stats(struct gos_search *s, struct gos_search_stats *out);

/* The server's thread (a gos_ws_request_fn's arguments, in->type SEARCH):
 * queues the search, replacing the viewer's queued one; in NULL (the viewer
 * left) drops it. The worker answers with a search_result (or an error)
 * to that viewer alone. A full queue answers {"type":"error","code":"busy"}. */
void gos_search_request(struct gos_search *s, uint64_t viewer, uint64_t gen,
                        const struct gos_viewer_in *in);

#endif
