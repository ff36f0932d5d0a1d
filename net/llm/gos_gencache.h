/* gos_gencache: gos-bridge's response cache. A finished generation (its
 * tokens, logprobs, alternatives and their timing) is stored in a directory
 * under the key of the request that produced it, so that the same request
 * can be replayed without asking the server.
 *
 * One file per entry, DIR/KEY.gen, written whole to DIR/.tmp-PID-KEY,
 * fsync'd and renamed into place (then the directory fsync'd): a process
 * killed while writing leaves at most a temp file, never a half entry.
 * Temp files of dead processes are removed by the next store. Entries are
 * evicted least recently used first (a hit touches the file's mtime) to
 * keep the directory's entries under a byte bound.
 *
 * The file format (text, UTF-8):
 *   {"gos_gencache":1,"request":R,"finish_reason":F|null,
 *    "completion_tokens":N|-1,"ttft_ms":T,"elapsed_ms":E,"tokens":COUNT}\n
 *   [t_ms,"text",logprob|null,[["alt",logprob],...]]\n      (COUNT lines)
 *   #crc32c XXXXXXXX\n           (CRC-32C of every byte before this line)
 * R is the canonical request text the key was made from: a lookup whose
 * request differs (a key collision) is a miss.
 *
 * No global state; any thread. */
#ifndef GOS_GENCACHE_H
#define GOS_GENCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_arena.h"
#include "gos_event.h"

struct gos_gencache_token {
	double t_ms;                  /* since the request was sent */
	const char *text;             /* valid UTF-8, 1..GOS_MAX_TEXT bytes, no NUL */
	double logprob;               /* NAN: none */
	uint32_t n_alts;              /* at most GOS_MAX_ALTS */
	struct gos_alt *alts;
};

struct gos_gencache_entry {
	const char *request;
	const char *finish_reason;    /* NULL: none */
	int64_t completion_tokens;    /* -1: unknown */
	double ttft_ms, elapsed_ms;
	uint32_t n_tokens;
	struct gos_gencache_token *tokens;
};

#define GOS_GENCACHE_KEY_LEN 32

/* The key of a canonical request text: 32 lowercase hex digits. */
void gos_gencache_key(const char *request, size_t len, char out[GOS_GENCACHE_KEY_LEN + 1]);

/* The file's bytes for e (malloc'd, *len set); NULL when out of memory or
 * when e holds something the format cannot (invalid text, NUL). */
char *gos_gencache_encode(const struct gos_gencache_entry *e, size_t *len);

/* Parses a file's bytes: true with *e filled (strings and arrays in a),
 * else false with one sentence in why. Never reads past len. */
bool gos_gencache_parse(const char *data, size_t len, struct gos_gencache_entry *e,
                        struct gos_arena *a, char *why, size_t whylen);

enum gos_gencache_result { GOS_GENCACHE_MISS, GOS_GENCACHE_HIT, GOS_GENCACHE_CORRUPT };

/* Looks up the entry for request in dir. HIT: *e filled (in a) and the
 * file's mtime set to now (the LRU). CORRUPT: the file exists but does not
 * parse (why says how; it is removed, so the next store replaces it). MISS:
 * no entry, or one for another request. */
enum gos_gencache_result gos_gencache_load(const char *dir, const char *request, struct gos_gencache_entry *e,
                                           struct gos_arena *a, char *why, size_t whylen);

/* Zero means default. */
struct gos_gencache_opts {
	uint64_t max_bytes;           /* the entries' total; 0: 256 MiB */
	unsigned pause_ms;            /* tests only: sleep with half the temp file written */
};

/* Stores e under its request, atomically, then evicts the least recently
 * used entries until the total fits (and removes dead processes' temp
 * files). false with one sentence in why when it could not be written. */
bool gos_gencache_store(const char *dir, const struct gos_gencache_entry *e, const struct gos_gencache_opts *o,
                        char *why, size_t whylen);

#endif
