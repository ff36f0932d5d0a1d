/* A bump allocator for the strings and arrays of parsed events (gos_arena.c).
 * One owner at a time; no locking. */
#ifndef GOS_ARENA_H
#define GOS_ARENA_H

#include <stddef.h>

/* A bump allocator for the strings and arrays of parsed events. The caller
 * owns it; gos_arena_reset() frees everything parsed into it at once. Zero-
 * initialized is valid and empty. */
struct gos_arena {
	struct gos_arena_block *head;
	size_t used_total;
};

void *gos_arena_alloc(struct gos_arena *a, size_t size, size_t align);
char *gos_arena_strndup(struct gos_arena *a, const char *s, size_t len);
void gos_arena_reset(struct gos_arena *a);   /* keeps one block for reuse */
void gos_arena_finish(struct gos_arena *a);  /* frees every block */

#endif
