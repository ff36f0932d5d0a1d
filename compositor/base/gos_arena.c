/* Bump allocator for parsed events (see gos_arena.h). */
#include <stdlib.h>
#include <string.h>

#include "gos_arena.h"

struct gos_arena_block {
	struct gos_arena_block *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

#define GOS_ARENA_MIN_BLOCK (64u * 1024u)

void *gos_arena_alloc(struct gos_arena *a, size_t size, size_t align)
{
	if (align == 0)
		align = 1;
	struct gos_arena_block *b = a->head;
	if (b) {
		size_t off = (b->used + align - 1) & ~(align - 1);
		if (off + size <= b->size) {
			b->used = off + size;
			a->used_total += size;
			return b->data + off;
		}
	}
	size_t bsize = GOS_ARENA_MIN_BLOCK;
	while (bsize < size + align)
		bsize *= 2;
	b = malloc(sizeof(*b) + bsize);
	if (!b)
		abort();  /* out of memory: a programming limit, not a user error */
	b->size = bsize;
	b->used = 0;
	b->next = a->head;
	a->head = b;
	size_t off = 0;
	b->used = off + size;
	a->used_total += size;
	return b->data + off;
}

char *gos_arena_strndup(struct gos_arena *a, const char *s, size_t len)
{
	char *d = gos_arena_alloc(a, len + 1, 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

void gos_arena_reset(struct gos_arena *a)
{
	struct gos_arena_block *b = a->head;
	if (!b)
		return;
	/* Keep the largest block (the head may be a small one). */
	struct gos_arena_block *keep = b;
	for (struct gos_arena_block *i = b; i; i = i->next)
		if (i->size > keep->size)
			keep = i;
	while (b) {
		struct gos_arena_block *next = b->next;
		if (b != keep)
			free(b);
		b = next;
	}
	keep->next = NULL;
	keep->used = 0;
	a->head = keep;
	a->used_total = 0;
}

void gos_arena_finish(struct gos_arena *a)
{
	struct gos_arena_block *b = a->head;
	while (b) {
		struct gos_arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
	a->used_total = 0;
}
