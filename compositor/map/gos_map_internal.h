/* gos_map's internals, shared by the files of compositor/map/ (gos_map.c,
 * map_image.c) and nothing else: the map struct and the pieces it is made
 * of. The locking contract of gos_map.h holds for every field here: the
 * writer changes them under map->lock; a fork()ed child (gos_map_fork) reads
 * its frozen copy without the lock. */
#ifndef GOS_MAP_INTERNAL_H
#define GOS_MAP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_map.h"

/* A token's strings in one allocation: id, NUL, text, NUL, then the alts
 * (8-aligned, see blob_alts) and their strings. cls: its slab class, 0 when
 * malloc'd. Kept small: its bytes are most of a token's memory. */
struct blob {
	uint32_t id_len, text_len, n_alts;
	uint16_t cls;
	char buf[];
};

static inline size_t blob_alts_off(size_t id_len, size_t text_len)
{
	size_t end = offsetof(struct blob, buf) + id_len + 1 + text_len + 1;
	return (end + 7) & ~(size_t)7;
}

static inline struct gos_alt *blob_alts(const struct blob *b)
{
	return (struct gos_alt *)((char *)b + blob_alts_off(b->id_len, b->text_len));
}

static inline const char *blob_id(const struct blob *b)
{
	return b->buf;
}

static inline const char *blob_text(const struct blob *b)
{
	return b->buf + b->id_len + 1;
}

/* Small blobs come from size classes of 16-byte steps carved out of big
 * lazily-faulted chunks, with one free list per class: no malloc call and
 * no heap-growth page faults per token. */
#define SLAB_STEP    16u
#define SLAB_CLASSES 32u                 /* blobs up to 512 bytes */
#define SLAB_CHUNK   (64u << 20)

struct slab_chunk {
	struct slab_chunk *next;
	size_t size;
};

struct slab {
	char *cur, *end;
	void *free[SLAB_CLASSES + 1];    /* by class; [0] unused */
	struct slab_chunk *chunks;
};

struct log_entry;   /* the change log's entries: gos_map.c */

struct stream_rec {
	char *name;
	uint32_t hash;
	char *state;
	int64_t tokens_processed, total_tokens;
	double elapsed_ms;
	uint64_t n_tokens;
	int64_t newest_slot;
	uint64_t seq;
	float cursor_x, cursor_y;   /* flow layout, relative to the column */
	float page_x, page_y;       /* flow layout: its page's top-left */
	uint32_t page_flags;        /* STREAM_PAGE_* */
	double ttft_ms;             /* NAN: never sent */
	char *finish_reason, *message, *model;  /* "" when never sent (never NULL) */
	struct gos_stream_stats stats;
	/* divergence (gos_map.h, GOS_GROUP_*) */
	uint32_t group;             /* the group's first stream */
	uint32_t next_in_group;     /* the group's next stream, UINT32_MAX: last */
	uint32_t group_size;        /* on the group's first stream: its streams */
	int64_t diverge_at;         /* -1: none */
	uint32_t *at;               /* slots of its live tokens by index - at_base */
	uint32_t at_base, at_n, at_cap;
};

/* A stream record's fields that are not its name and state, as fresh. */
void gos_map_stream_fresh(struct stream_rec *s);

/* Puts stream si (just appended) in its group (by name, gos_map.h). */
void gos_map_stream_group(struct gos_map *m, uint32_t si);

/* Records that slot holds the token at its index of its stream (restore:
 * slots in any order). */
void gos_map_stream_at(struct gos_map *m, uint32_t slot);
/* Sets a restored stream's finish reason, message and model (no NUL
 * needed in the strings). */
void gos_map_stream_texts(struct stream_rec *s, const char *finish, size_t fl, const char *message,
                          size_t ml, const char *model, size_t dl);

/* Open addressing with linear probing: string -> index. The strings live
 * elsewhere; key_of() fetches the one an index stands for. An entry holds
 * index + 1 (0: empty, so fresh zeroed pages need no initialization) and
 * the string's hash side by side: one cache line per probe. */
struct ix_entry {
	uint32_t v1;
	uint32_t hash;
};

struct str_index {
	struct ix_entry *e;
	size_t mapped;   /* bytes mmap'd, 0: calloc'd */
	uint32_t mask;   /* size - 1, size a power of two */
	uint32_t count;
};

#define STREAM_PAGE_HAS    1u   /* page_x/y hold its page */
#define STREAM_PAGE_COLUMN 2u   /* a column of the old layout (a version-1 image):
                                 * it goes on down it, with no page end */

/* The flow layout's page grid (see gos_map.h): pages handed out so far, the
 * grid's size, and the extension being filled (a column or a row). */
struct flow_pages {
	uint32_t n;
	uint32_t cols, rows;
	bool ext_col;
	uint32_t ext_i;             /* cells of the extension handed out */
	float origin_x;             /* left of the grid (right of old columns) */
};

/* Sets pages to the state after n pages were handed out from scratch. */
void gos_map_pages_replay(struct flow_pages *pages, uint32_t n);

struct gos_map {
	pthread_mutex_t lock;
	uint64_t max_tokens;
	enum gos_layout_kind layout;
	struct flow_pages pages;

	/* tokens, slot-indexed */
	uint32_t cap, used;         /* used: slots ever handed out (<= cap) */
	uint32_t evict_cursor;      /* next slot to evict once used == max */
	uint64_t live;
	float *x, *y, *w, *conf, *logprob, *gap;
	uint32_t *index;            /* in its stream */
	double *ts, *arrived;
	uint64_t *seq;
	uint32_t *stream;
	struct blob **blob;
	void *tok_region;           /* the arrays above reserved at once, or NULL */
	size_t tok_region_size;
	struct str_index tok_index;
	struct slab slab;

	struct stream_rec *streams;
	uint32_t n_streams, cap_streams;
	uint32_t last_stream;       /* stream_get's guess; may be out of range */
	struct str_index stream_index;

	struct log_entry *log;
	size_t log_mapped;          /* bytes mmap'd, 0: calloc'd */
	uint32_t log_cap;
	uint64_t cur_seq;
	uint64_t log_floor;         /* read_since answers only since >= this: 0, or
	                             * the seq a restored map started at */

	struct gos_map_stats stats;
};

/* ---- for map_image.c: building a restored map ----
 * Only on a map that no other thread sees yet (gos_map_image_read's own). */

/* Makes room for slots 0..used-1 and sets map->used; slots stay empty. */
void gos_map_restore_slots(struct gos_map *map, uint32_t used);

/* Puts a token's strings in slot (the caller sets its arrays) and indexes its
 * id. Strings need no NUL; alts' tokens do. false: the id is already on the
 * map (nothing changed). */
bool gos_map_restore_token(struct gos_map *map, uint32_t slot, const char *id, size_t id_len,
                           const char *text, size_t text_len,
                           uint32_t n_alts, const struct gos_alt *alts);

/* Appends a stream named name (its counters as a new stream's; the caller
 * sets them) and indexes it. false: the name is taken (nothing changed). */
bool gos_map_restore_stream(struct gos_map *map, const char *name, size_t name_len,
                            const char *state, size_t state_len);

#endif
