/* Map state: struct-of-arrays token store, id index, streams, change log.
 * See gos_map.h for the threading contract.
 *
 * Over 800 lines on purpose: this is the one place where the threads meet,
 * and every piece here (the index, the slabs, the log, the writer and the
 * readers) works on the same struct under the same short lock; read whole,
 * the invariants between them (a slot's blob, its index entry and its log
 * entry change together) stay visible. */
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "gos_map_internal.h"
#include "gos_time.h"
#include "gos_utf8.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define DEFAULT_MAX_TOKENS 10000000ull
#define DEFAULT_LOG_CAP    (1u << 20)
#define EMPTY              UINT32_MAX
/* Events applied per lock hold: bounds how long a reader can wait. */
#define APPLY_CHUNK        256
#define HUGE_PAGE          (2u << 20)

enum log_kind { LOG_TOKEN = 1, LOG_STREAM, LOG_REMOVED };

struct log_entry {
	uint64_t seq;
	uint32_t idx;          /* slot or stream index */
	uint32_t kind;
	char *removed_id;      /* LOG_REMOVED: the evicted token's id */
};

uint32_t gos_hash32(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

void gos_hilbert_d2xy(uint32_t order, uint64_t d, uint32_t *x, uint32_t *y)
{
	uint64_t rx, ry, t = d;
	uint64_t px = 0, py = 0;
	for (uint64_t s = 1; s < (1ull << order); s *= 2) {
		rx = 1 & (t / 2);
		ry = 1 & (t ^ rx);
		if (ry == 0) {
			if (rx == 1) {
				px = s - 1 - px;
				py = s - 1 - py;
			}
			uint64_t tmp = px;
			px = py;
			py = tmp;
		}
		px += s * rx;
		py += s * ry;
		t /= 4;
	}
	*x = (uint32_t)px;
	*y = (uint32_t)py;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s);
	char *d = xcalloc(1, n + 1);
	memcpy(d, s, n);
	return d;
}

/* Zeroed memory straight from the kernel, reserved but faulted in only as it
 * is touched, in 2 MiB pages where transparent huge pages are offered: no
 * realloc copies, no memset, and a few hundred page faults instead of one
 * per 4 KiB (each costs ~10 us in some VMs). NULL when the kernel refuses
 * (e.g. strict overcommit); callers fall back to malloc. *size: the bytes
 * to pass to region_unmap. */
static void *region_map(size_t bytes, size_t *size)
{
	size_t n = (bytes + 4095) & ~(size_t)4095;
	void *p = mmap(NULL, n ? n : 4096, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (n >= HUGE_PAGE)
		madvise(p, n, MADV_HUGEPAGE);  /* best effort */
	*size = n ? n : 4096;
	return p;
}

static void region_unmap(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

/* ---- string index ---- */

typedef const char *(*key_fn)(const struct gos_map *m, uint32_t idx);

static const char *token_key(const struct gos_map *m, uint32_t slot)
{
	return blob_id(m->blob[slot]);
}

static const char *stream_key(const struct gos_map *m, uint32_t i)
{
	return m->streams[i].name;
}

/* Tables of 64 KiB and more come from region_map (zeroed, lazily faulted). */
static void index_init(struct str_index *ix, uint32_t size)
{
	size_t bytes = (size_t)size * sizeof(struct ix_entry);
	ix->mapped = 0;
	ix->e = bytes >= (64u << 10) ? region_map(bytes, &ix->mapped) : NULL;
	if (!ix->e)
		ix->e = xcalloc(size, sizeof(struct ix_entry));
	ix->mask = size - 1;
	ix->count = 0;
}

static void index_finish(struct str_index *ix)
{
	if (ix->mapped)
		region_unmap(ix->e, ix->mapped);
	else
		free(ix->e);
	ix->e = NULL;
}

static uint32_t index_find(const struct gos_map *m, const struct str_index *ix,
                           key_fn key, const char *s, uint32_t h)
{
	for (uint32_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
		struct ix_entry e = ix->e[i];
		if (!e.v1)
			return EMPTY;
		if (e.hash == h && strcmp(key(m, e.v1 - 1), s) == 0)
			return e.v1 - 1;
	}
}

static void index_put_raw(struct str_index *ix, uint32_t v1, uint32_t h)
{
	uint32_t i = h & ix->mask;
	while (ix->e[i].v1)
		i = (i + 1) & ix->mask;
	ix->e[i] = (struct ix_entry){.v1 = v1, .hash = h};
}

static void index_insert(struct str_index *ix, uint32_t v, uint32_t h)
{
	if ((uint64_t)(ix->count + 1) * 2 > (uint64_t)ix->mask + 1) {
		struct str_index old = *ix;
		index_init(ix, (old.mask + 1) * 2);
		ix->count = old.count;
		for (uint32_t i = 0; i <= old.mask; i++)
			if (old.e[i].v1)
				index_put_raw(ix, old.e[i].v1, old.e[i].hash);
		index_finish(&old);
	}
	index_put_raw(ix, v + 1, h);
	ix->count++;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void index_remove(struct str_index *ix, uint32_t v, uint32_t h)
{
	uint32_t i = h & ix->mask;
	while (ix->e[i].v1 != v + 1) {
		if (!ix->e[i].v1)
			return;
		i = (i + 1) & ix->mask;
	}
	uint32_t j = i;
	for (;;) {
		j = (j + 1) & ix->mask;
		if (!ix->e[j].v1)
			break;
		uint32_t home = ix->e[j].hash & ix->mask;
		/* Move j back to i unless its home lies cyclically in (i, j]. */
		bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		ix->e[i] = ix->e[j];
		i = j;
	}
	ix->e[i] = (struct ix_entry){0};
	ix->count--;
}

/* ---- blobs ---- */

static void *slab_alloc(struct slab *sl, uint32_t cls)
{
	void *p = sl->free[cls];
	if (p) {
		UNPOISON(p, cls * SLAB_STEP);
		memcpy(&sl->free[cls], p, sizeof(void *));
		return p;
	}
	size_t n = cls * SLAB_STEP;
	if ((size_t)(sl->end - sl->cur) < n) {
		size_t size = 0;
		struct slab_chunk *c = region_map(SLAB_CHUNK, &size);
		if (!c)
			return NULL;
		c->next = sl->chunks;
		c->size = size;
		sl->chunks = c;
		sl->cur = (char *)c + 64;
		sl->end = (char *)c + size;
		POISON(sl->cur, (size_t)(sl->end - sl->cur));
	}
	p = sl->cur;
	sl->cur += n;
	UNPOISON(p, n);
	return p;
}

static void slab_free(struct slab *sl, void *p, uint32_t cls)
{
	memcpy(p, &sl->free[cls], sizeof(void *));
	sl->free[cls] = p;
	POISON(p, cls * SLAB_STEP);
}

static void slab_finish(struct slab *sl)
{
	struct slab_chunk *c = sl->chunks;
	while (c) {
		struct slab_chunk *next = c->next;
		UNPOISON(c, c->size);
		region_unmap(c, c->size);
		c = next;
	}
	*sl = (struct slab){0};
}

static void blob_free(struct gos_map *m, struct blob *b)
{
	if (!b)
		return;
	if (b->cls)
		slab_free(&m->slab, b, b->cls);
	else
		free(b);
}

static struct blob *blob_make(struct gos_map *m, const char *id, size_t id_len,
                              const char *text, size_t text_len,
                              uint32_t n_alts, const struct gos_alt *alts)
{
	size_t size = offsetof(struct blob, buf) + id_len + 1 + text_len + 1;
	size_t alts_off = 0;
	if (n_alts) {
		alts_off = blob_alts_off(id_len, text_len);
		size = alts_off + n_alts * sizeof(struct gos_alt);
		for (uint32_t i = 0; i < n_alts; i++)
			size += strlen(alts[i].token) + 1;
	}
	uint32_t cls = (uint32_t)((size + SLAB_STEP - 1) / SLAB_STEP);
	struct blob *b = NULL;
	if (cls <= SLAB_CLASSES)
		b = slab_alloc(&m->slab, cls);
	if (!b) {
		b = xcalloc(1, size);
		cls = 0;
	}
	b->id_len = (uint32_t)id_len;
	b->text_len = (uint32_t)text_len;
	b->cls = (uint16_t)cls;
	char *p = b->buf;
	memcpy(p, id, id_len);
	p[id_len] = '\0';
	p += id_len + 1;
	memcpy(p, text, text_len);
	p[text_len] = '\0';
	b->n_alts = n_alts;
	if (n_alts) {
		struct gos_alt *ba = (struct gos_alt *)((char *)b + alts_off);
		char *s = (char *)(ba + n_alts);
		for (uint32_t i = 0; i < n_alts; i++) {
			size_t n = strlen(alts[i].token) + 1;
			memcpy(s, alts[i].token, n);
			ba[i].token = s;
			ba[i].logprob = alts[i].logprob;
			s += n;
		}
	}
	return b;
}

/* ---- change log ---- */

static void log_change(struct gos_map *m, enum log_kind kind, uint32_t idx, char *removed_id)
{
	uint64_t s = ++m->cur_seq;
	struct log_entry *e = &m->log[s % m->log_cap];
	free(e->removed_id);
	e->seq = s;
	e->idx = idx;
	e->kind = kind;
	e->removed_id = removed_id;
	if (kind == LOG_TOKEN)
		m->seq[idx] = s;
	else if (kind == LOG_STREAM)
		m->streams[idx].seq = s;
}

/* ---- token arrays ---- */

/* Reserves every token array for max_tokens at once (see region_map), so
 * they never move or grow. Leaves them NULL when the kernel refuses; then
 * grow_tokens reallocs them as the map fills. */
static void reserve_tokens(struct gos_map *m)
{
	const size_t sizes[] = {
		sizeof(*m->x), sizeof(*m->y), sizeof(*m->w), sizeof(*m->conf),
		sizeof(*m->logprob), sizeof(*m->ts), sizeof(*m->arrived), sizeof(*m->seq),
		sizeof(*m->stream), sizeof(*m->blob), sizeof(*m->gap), sizeof(*m->index),
	};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	size_t off[N], total = 0;
	for (size_t i = 0; i < N; i++) {
		off[i] = total;
		/* each array starts on a huge-page boundary of the region */
		size_t bytes = (size_t)m->max_tokens * sizes[i];
		total += (bytes + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	}
	char *base = region_map(total, &m->tok_region_size);
	if (!base)
		return;
	m->tok_region = base;
	m->x = (void *)(base + off[0]);
	m->y = (void *)(base + off[1]);
	m->w = (void *)(base + off[2]);
	m->conf = (void *)(base + off[3]);
	m->logprob = (void *)(base + off[4]);
	m->ts = (void *)(base + off[5]);
	m->arrived = (void *)(base + off[6]);
	m->seq = (void *)(base + off[7]);
	m->stream = (void *)(base + off[8]);
	m->blob = (void *)(base + off[9]);
	m->gap = (void *)(base + off[10]);
	m->index = (void *)(base + off[11]);
	m->cap = (uint32_t)m->max_tokens;
}

/* ---- create / destroy ---- */

struct gos_map *gos_map_create(const struct gos_map_opts *opts)
{
	struct gos_map_opts o = opts ? *opts : (struct gos_map_opts){0};
	struct gos_map *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->max_tokens = o.max_tokens ? o.max_tokens : DEFAULT_MAX_TOKENS;
	if (m->max_tokens > UINT32_MAX - 1)
		m->max_tokens = UINT32_MAX - 1;
	m->layout = o.layout;
	m->log_cap = o.log_capacity ? o.log_capacity : DEFAULT_LOG_CAP;
	m->log = region_map((size_t)m->log_cap * sizeof(*m->log), &m->log_mapped);
	if (!m->log) {
		m->log_mapped = 0;
		m->log = xcalloc(m->log_cap, sizeof(*m->log));
	}
	reserve_tokens(m);
	index_init(&m->tok_index, 1024);
	index_init(&m->stream_index, 64);
	return m;
}

void gos_map_destroy(struct gos_map *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; i < m->used; i++)
		if (m->blob && m->blob[i] && !m->blob[i]->cls)
			free(m->blob[i]);
	slab_finish(&m->slab);
	if (m->tok_region) {
		region_unmap(m->tok_region, m->tok_region_size);
	} else {
		free(m->x); free(m->y); free(m->w); free(m->conf); free(m->logprob);
		free(m->ts); free(m->arrived); free(m->seq); free(m->stream); free(m->blob);
		free(m->gap); free(m->index);
	}
	index_finish(&m->tok_index);
	for (uint32_t i = 0; i < m->n_streams; i++) {
		free(m->streams[i].name);
		free(m->streams[i].state);
		free(m->streams[i].finish_reason);
		free(m->streams[i].message);
		free(m->streams[i].model);
		free(m->streams[i].at);
	}
	free(m->streams);
	index_finish(&m->stream_index);
	if (m->log)
		for (uint32_t i = 0; i < m->log_cap; i++)
			free(m->log[i].removed_id);
	if (m->log_mapped)
		region_unmap(m->log, m->log_mapped);
	else
		free(m->log);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- writer ---- */

static uint32_t stream_get(struct gos_map *m, const char *name)
{
	if (!name)
		name = "";
	/* Events come in runs of one stream: try the last one first. */
	if (m->last_stream < m->n_streams && strcmp(m->streams[m->last_stream].name, name) == 0)
		return m->last_stream;
	uint32_t h = gos_hash32(name, strlen(name));
	uint32_t i = index_find(m, &m->stream_index, stream_key, name, h);
	if (i != EMPTY) {
		m->last_stream = i;
		return i;
	}
	if (m->n_streams == m->cap_streams) {
		m->cap_streams = m->cap_streams ? m->cap_streams * 2 : 16;
		m->streams = xrealloc(m->streams, m->cap_streams * sizeof(*m->streams));
	}
	i = m->n_streams++;
	m->streams[i] = (struct stream_rec){.name = xstrdup(name), .hash = h, .state = xstrdup("")};
	gos_map_stream_fresh(&m->streams[i]);
	index_insert(&m->stream_index, i, h);
	gos_map_stream_group(m, i);
	m->last_stream = i;
	m->stats.streams = m->n_streams;
	log_change(m, LOG_STREAM, i, NULL);
	return i;
}

static void grow_tokens(struct gos_map *m)
{
	uint64_t ncap = m->cap ? (uint64_t)m->cap * 2 : 4096;
	if (ncap > m->max_tokens)
		ncap = m->max_tokens;
	uint32_t n = (uint32_t)ncap;
#define GROW(field) m->field = xrealloc(m->field, n * sizeof(*m->field))
	GROW(x); GROW(y); GROW(w); GROW(conf); GROW(logprob);
	GROW(ts); GROW(arrived); GROW(seq); GROW(stream); GROW(blob); GROW(gap); GROW(index);
#undef GROW
	memset(m->blob + m->cap, 0, (n - m->cap) * sizeof(*m->blob));
	m->cap = n;
}

static void stream_at_drop(struct gos_map *m, uint32_t slot);

static void evict(struct gos_map *m, uint32_t slot)
{
	struct blob *b = m->blob[slot];
	index_remove(&m->tok_index, slot, gos_hash32(blob_id(b), b->id_len));
	struct stream_rec *st = &m->streams[m->stream[slot]];
	if (st->newest_slot == (int64_t)slot)
		st->newest_slot = -1;
	stream_at_drop(m, slot);
	char *id = xstrdup(blob_id(b));
	blob_free(m, b);
	m->blob[slot] = NULL;
	m->live--;
	m->stats.evicted++;
	log_change(m, LOG_REMOVED, slot, id);
}

static uint32_t alloc_slot(struct gos_map *m)
{
	if (m->used < m->max_tokens) {
		if (m->used == m->cap)
			grow_tokens(m);
		return m->used++;
	}
	/* Full: slots are handed out in order, so the cursor is the oldest. */
	uint32_t slot = m->evict_cursor;
	m->evict_cursor = (uint32_t)((m->evict_cursor + 1) % m->max_tokens);
	if (m->blob[slot])
		evict(m, slot);
	return slot;
}

/* The grid cell of the next page: the extension being filled (a column
 * down, or a row left to right), or a new one, a column when the grid is
 * narrower than GOS_FLOW_ASPECT, else a row. */
static void pages_step(struct flow_pages *p, uint32_t *cx, uint32_t *cy)
{
	uint32_t len = p->ext_col ? p->rows : p->cols;
	if (!p->cols || p->ext_i >= len) {
		double pw = GOS_FLOW_COLUMN_W + GOS_FLOW_COLUMN_GAP, ph = GOS_FLOW_PAGE_H + GOS_FLOW_COLUMN_GAP;
		if (!p->cols) {
			p->cols = p->rows = 1;
			p->ext_col = true;
		} else if ((double)p->cols * pw <= GOS_FLOW_ASPECT * (double)p->rows * ph) {
			p->cols++;
			p->ext_col = true;
		} else {
			p->rows++;
			p->ext_col = false;
		}
		p->ext_i = 0;
	}
	*cx = p->ext_col ? p->cols - 1 : p->ext_i;
	*cy = p->ext_col ? p->ext_i : p->rows - 1;
	p->ext_i++;
	p->n++;
}

void gos_map_pages_replay(struct flow_pages *pages, uint32_t n)
{
	float origin = pages->origin_x;
	*pages = (struct flow_pages){.origin_x = origin};
	uint32_t cx, cy;
	for (uint32_t i = 0; i < n; i++)
		pages_step(pages, &cx, &cy);
}

/* A new page for the stream (its cursor back to the page's start). */
static void page_next(struct gos_map *m, struct stream_rec *st)
{
	uint32_t cx, cy;
	pages_step(&m->pages, &cx, &cy);
	st->page_x = m->pages.origin_x + (float)cx * (GOS_FLOW_COLUMN_W + GOS_FLOW_COLUMN_GAP);
	st->page_y = (float)cy * (GOS_FLOW_PAGE_H + GOS_FLOW_COLUMN_GAP);
	st->page_flags = STREAM_PAGE_HAS;
	st->cursor_x = st->cursor_y = 0;
}

static void layout_place(struct gos_map *m, struct stream_rec *st, uint32_t si,
                         const char *text, float w, float *x, float *y)
{
	if (m->layout == GOS_LAYOUT_HILBERT) {
		uint32_t h = gos_hash32(text, strlen(text));
		uint32_t hx, hy;
		uint64_t cells = 1ull << (2 * GOS_HILBERT_ORDER);
		gos_hilbert_d2xy(GOS_HILBERT_ORDER, h % cells, &hx, &hy);
		*x = (float)hx * GOS_HILBERT_CELL + GOS_HILBERT_CELL / 2;
		*y = (float)hy * GOS_HILBERT_CELL + GOS_HILBERT_CELL / 2;
		return;
	}
	(void)si;
	bool paged = !(st->page_flags & STREAM_PAGE_COLUMN);
	if (!(st->page_flags & STREAM_PAGE_HAS) ||
	    (paged && st->cursor_y + GOS_FLOW_LINE_H > GOS_FLOW_PAGE_H))
		page_next(m, st);
	if (st->cursor_x > 0 && st->cursor_x + w > GOS_FLOW_COLUMN_W) {
		st->cursor_x = 0;
		st->cursor_y += GOS_FLOW_LINE_H;
		if (paged && st->cursor_y + GOS_FLOW_LINE_H > GOS_FLOW_PAGE_H)
			page_next(m, st);
	}
	*x = st->page_x + st->cursor_x + w / 2;
	*y = st->page_y + st->cursor_y + GOS_FLOW_LINE_H / 2;
	st->cursor_x += w;
	if (strchr(text, '\n')) {
		st->cursor_x = 0;
		st->cursor_y += GOS_FLOW_LINE_H;
	}
}

void gos_map_stream_fresh(struct stream_rec *s)
{
	s->tokens_processed = -1;
	s->total_tokens = -1;
	s->elapsed_ms = NAN;
	s->newest_slot = -1;
	s->ttft_ms = NAN;
	s->finish_reason = xstrdup("");
	s->message = xstrdup("");
	s->model = xstrdup("");
	s->stats = (struct gos_stream_stats){.conf_min = NAN, .first_ts = NAN, .last_ts = NAN};
	s->next_in_group = EMPTY;
	s->group_size = 1;
	s->diverge_at = -1;
	s->at = NULL;
	s->at_base = s->at_n = s->at_cap = 0;
}

/* ---- groups and divergence ---- */

/* The length of a stream name's group key: the name without a last
 * ":DIGITS" (the whole name when it has none, or nothing precedes it). */
static size_t group_key_len(const char *name)
{
	size_t n = strlen(name), d = n;
	while (d && name[d - 1] >= '0' && name[d - 1] <= '9')
		d--;
	return d < n && d >= 2 && name[d - 1] == ':' ? d - 1 : n;
}

void gos_map_stream_group(struct gos_map *m, uint32_t si)
{
	struct stream_rec *s = &m->streams[si];
	s->group = si;
	size_t kl = group_key_len(s->name);
	if (kl == strlen(s->name))
		return;   /* no ":DIGITS": alone */
	for (uint32_t i = 0; i < si; i++) {
		struct stream_rec *g = &m->streams[i];
		if (g->group != i || group_key_len(g->name) != kl || strncmp(g->name, s->name, kl))
			continue;
		if (g->group_size >= GOS_GROUP_MAX)
			return;
		uint32_t last = i;
		while (m->streams[last].next_in_group != EMPTY)
			last = m->streams[last].next_in_group;
		m->streams[last].next_in_group = si;
		g->group_size++;
		s->group = i;
		return;
	}
}

/* The slot of stream s's token at index, EMPTY when it has none (yet, or
 * evicted). */
static uint32_t stream_slot_at(const struct stream_rec *s, uint32_t index)
{
	if (index < s->at_base || index - s->at_base >= s->at_n)
		return EMPTY;
	return s->at[index - s->at_base];
}

void gos_map_stream_at(struct gos_map *m, uint32_t slot)
{
	struct stream_rec *s = &m->streams[m->stream[slot]];
	uint32_t index = m->index[slot];
	/* A stream's live tokens are its newest, but for the odd eviction
	 * order after a restore into a bigger max_tokens: the run spans at
	 * most span_max indexes, and a token far older than the rest is not
	 * looked up (it takes no part in agreement). */
	uint64_t span_max = 2 * m->max_tokens + 1024;
	if (s->at_n && index >= s->at_base && (uint64_t)index - s->at_base >= span_max) {
		uint64_t drop = (uint64_t)index - s->at_base - span_max + 1;
		if (drop >= s->at_n) {
			s->at_n = 0;
		} else {
			memmove(s->at, s->at + drop, (s->at_n - drop) * sizeof(*s->at));
			s->at_n -= (uint32_t)drop;
			s->at_base += (uint32_t)drop;
		}
	}
	if (s->at_n && index < s->at_base && (uint64_t)s->at_base - index + s->at_n > span_max)
		return;
	if (!s->at_n) {
		s->at_base = index;
	} else if (index < s->at_base) {
		/* restore hands slots in slot order, not index order */
		uint32_t shift = s->at_base - index;
		if (s->at_n + shift > s->at_cap) {
			s->at_cap = (s->at_n + shift) * 2;
			s->at = xrealloc(s->at, s->at_cap * sizeof(*s->at));
		}
		memmove(s->at + shift, s->at, s->at_n * sizeof(*s->at));
		for (uint32_t k = 0; k < shift; k++)
			s->at[k] = EMPTY;
		s->at_n += shift;
		s->at_base = index;
	}
	uint32_t k = index - s->at_base;
	if (k >= s->at_cap) {
		s->at_cap = s->at_cap ? s->at_cap * 2 : 64;
		while (k >= s->at_cap)
			s->at_cap *= 2;
		s->at = xrealloc(s->at, s->at_cap * sizeof(*s->at));
	}
	while (s->at_n <= k)
		s->at[s->at_n++] = EMPTY;
	s->at[k] = slot;
}

/* Slot is evicted: its stream forgets it, and the front of its index run,
 * now empty, goes (eviction is oldest first). */
static void stream_at_drop(struct gos_map *m, uint32_t slot)
{
	struct stream_rec *s = &m->streams[m->stream[slot]];
	uint32_t index = m->index[slot];
	if (stream_slot_at(s, index) != slot)
		return;
	s->at[index - s->at_base] = EMPTY;
	uint32_t lead = 0;
	while (lead < s->at_n && s->at[lead] == EMPTY)
		lead++;
	if (lead == s->at_n) {
		s->at_base += s->at_n;
		s->at_n = 0;
	} else if (lead > 0 && lead * 2 >= s->at_n) {
		memmove(s->at, s->at + lead, (s->at_n - lead) * sizeof(*s->at));
		s->at_n -= lead;
		s->at_base += lead;
	}
	if (s->at_cap > 1024 && s->at_n * 4 < s->at_cap) {
		s->at_cap /= 2;
		s->at = xrealloc(s->at, s->at_cap * sizeof(*s->at));
	}
}

/* Stream si differs from another of its group at index: its first
 * divergence is there or earlier. The tokens that gain or lose the mark
 * are told to readers. */
static void diverge(struct gos_map *m, uint32_t si, uint32_t index)
{
	struct stream_rec *s = &m->streams[si];
	if (s->diverge_at >= 0 && s->diverge_at <= (int64_t)index)
		return;
	if (s->diverge_at >= 0) {
		uint32_t was = stream_slot_at(s, (uint32_t)s->diverge_at);
		if (was != EMPTY)
			log_change(m, LOG_TOKEN, was, NULL);
	}
	s->diverge_at = index;
	log_change(m, LOG_STREAM, si, NULL);
}

/* The token at slot (its stream's index) is new or has new text: the same
 * index of the group's other streams changes agreement (their readers are
 * told), and where the texts differ, both streams diverge there at the
 * latest. */
static void group_compare(struct gos_map *m, uint32_t slot)
{
	uint32_t si = m->stream[slot];
	struct stream_rec *s = &m->streams[si];
	if (m->streams[s->group].group_size < 2)
		return;
	uint32_t index = m->index[slot];
	const struct blob *b = m->blob[slot];
	for (uint32_t o = s->group; o != EMPTY; o = m->streams[o].next_in_group) {
		if (o == si)
			continue;
		struct stream_rec *os = &m->streams[o];
		uint32_t other = stream_slot_at(os, index);
		if (other == EMPTY)
			continue;
		const struct blob *ob = m->blob[other];
		if (ob->text_len != b->text_len || memcmp(blob_text(ob), blob_text(b), b->text_len)) {
			diverge(m, si, index);
			diverge(m, o, index);
		}
		log_change(m, LOG_TOKEN, other, NULL);
	}
}

/* Agreement of the token at slot with its group (gos_token.agree). */
static float group_agree(const struct gos_map *m, uint32_t slot)
{
	uint32_t si = m->stream[slot];
	const struct stream_rec *s = &m->streams[si];
	if (m->streams[s->group].group_size < 2)
		return NAN;
	uint32_t index = m->index[slot], have = 0, same = 0;
	const struct blob *b = m->blob[slot];
	for (uint32_t o = s->group; o != EMPTY; o = m->streams[o].next_in_group) {
		uint32_t other = o == si ? EMPTY : stream_slot_at(&m->streams[o], index);
		if (other == EMPTY)
			continue;
		const struct blob *ob = m->blob[other];
		have++;
		same += ob->text_len == b->text_len && !memcmp(blob_text(ob), blob_text(b), b->text_len);
	}
	return have ? (float)(same + 1) / (float)(have + 1) : NAN;
}

static char *strndup_x(const char *p, size_t n)
{
	char *d = xcalloc(1, n + 1);
	memcpy(d, p, n);
	return d;
}

void gos_map_stream_texts(struct stream_rec *s, const char *finish, size_t fl, const char *message,
                          size_t ml, const char *model, size_t dl)
{
	free(s->finish_reason);
	free(s->message);
	free(s->model);
	s->finish_reason = strndup_x(finish, fl);
	s->message = strndup_x(message, ml);
	s->model = strndup_x(model, dl);
}

/* A neural_state's text field: kept when the event did not send it. */
static void set_text(char **field, const char *v)
{
	if (!v || !strcmp(*field, v))
		return;
	free(*field);
	*field = xstrdup(v);
}

uint32_t gos_token_rank(const char *text, const struct gos_alt *alts, uint32_t n_alts)
{
	if (!n_alts)
		return 0;
	for (uint32_t j = 0; j < n_alts; j++) {
		if (strcmp(alts[j].token, text))
			continue;
		uint32_t rank = 1;
		for (uint32_t k = 0; k < n_alts; k++)
			rank += alts[k].logprob > alts[j].logprob ||
			        (k < j && alts[k].logprob == alts[j].logprob);
		return rank;
	}
	return GOS_RANK_BEYOND;
}

double gos_alts_entropy(uint32_t n, const struct gos_alt *alts)
{
	if (!n)
		return NAN;
	double max = -INFINITY, z = 0.0, s = 0.0;
	for (uint32_t i = 0; i < n; i++)
		max = fmax(max, alts[i].logprob);
	for (uint32_t i = 0; i < n; i++)
		z += exp(alts[i].logprob - max);
	for (uint32_t i = 0; i < n; i++) {
		double p = exp(alts[i].logprob - max) / z;
		if (p > 0)
			s -= p * log(p);
	}
	return s;
}

static void stats_add(struct gos_stream_stats *st, float conf, float logprob, double ts,
                      uint32_t n_alts, const struct gos_alt *alts)
{
	if (!isnan(conf)) {
		st->n_conf++;
		st->conf_sum += conf;
		st->conf_min = isnan(st->conf_min) ? conf : fminf(st->conf_min, conf);
		int b = (int)(conf * 10.0f);
		st->hist[b < 0 ? 0 : b > 9 ? 9 : b]++;
	}
	if (!isnan(logprob)) {
		st->n_logprob++;
		st->logprob_sum += logprob;
	}
	if (n_alts) {
		st->n_entropy++;
		st->entropy_sum += gos_alts_entropy(n_alts, alts);
	}
	if (isfinite(ts)) {
		if (isnan(st->first_ts))
			st->first_ts = ts;
		st->last_ts = ts;
	}
}

/* Applies one token (token_activation or a token_visualization entry). */
static void apply_token(struct gos_map *m, const char *id, size_t id_len, uint32_t h,
                        const char *text, const char *stream, bool has_pos,
                        float px, float py, float conf, float logprob, double ts,
                        uint32_t n_alts, const struct gos_alt *alts, double now)
{
	size_t text_len = strlen(text);
	uint32_t slot = index_find(m, &m->tok_index, token_key, id, h);
	uint32_t chars = gos_utf8_chars(text);
	float w = (float)(chars ? chars : 1) * GOS_FLOW_CHAR_W;

	if (slot != EMPTY) {
		/* Same token_id again: update text, position, confidence. */
		struct blob *old = m->blob[slot];
		bool new_text = old->text_len != text_len || memcmp(blob_text(old), text, text_len);
		if (new_text || n_alts || old->n_alts) {
			m->blob[slot] = blob_make(m, id, id_len, text, text_len, n_alts, alts);
			blob_free(m, old);
		}
		if (new_text)
			group_compare(m, slot);
		if (has_pos) {
			m->x[slot] = px;
			m->y[slot] = py;
		}
		m->w[slot] = w;
		m->conf[slot] = conf;
		m->logprob[slot] = logprob;
		m->ts[slot] = ts;
		m->stats.tokens_updated++;
		log_change(m, LOG_TOKEN, slot, NULL);
		return;
	}

	uint32_t si = stream_get(m, stream);
	slot = alloc_slot(m);
	struct stream_rec *st = &m->streams[si];
	if (!has_pos)
		layout_place(m, st, si, text, w, &px, &py);
	m->blob[slot] = blob_make(m, id, id_len, text, text_len, n_alts, alts);
	m->x[slot] = px;
	m->y[slot] = py;
	m->w[slot] = w;
	m->conf[slot] = conf;
	m->logprob[slot] = logprob;
	m->ts[slot] = ts;
	m->arrived[slot] = now;
	m->stream[slot] = si;
	m->index[slot] = (uint32_t)st->n_tokens;
	m->gap[slot] = isfinite(ts) && isfinite(st->stats.last_ts) && ts >= st->stats.last_ts
	               ? (float)((ts - st->stats.last_ts) * 1000.0) : NAN;
	index_insert(&m->tok_index, slot, h);
	m->live++;
	m->stats.tokens_added++;
	st->n_tokens++;
	st->newest_slot = slot;
	stats_add(&st->stats, conf, logprob, ts, n_alts, alts);
	gos_map_stream_at(m, slot);
	group_compare(m, slot);
	log_change(m, LOG_TOKEN, slot, NULL);
	/* The stream's token count changed: readers see it in the stream list. */
	log_change(m, LOG_STREAM, si, NULL);
}

/* An event's token_id length and hash, computed ahead of applying it. */
struct id_hash {
	size_t len;
	uint32_t h;
};

static void apply_one(struct gos_map *m, const struct gos_event *ev, struct id_hash idh,
                      double now)
{
	switch (ev->type) {
	case GOS_EV_TOKEN: {
		const struct gos_token_ev *t = &ev->token;
		apply_token(m, t->id, idh.len, idh.h, t->text, t->stream, t->has_position, t->x, t->y,
		            t->confidence, t->logprob, t->timestamp, t->n_alts, t->alts, now);
		break;
	}
	case GOS_EV_VIZ:
		for (uint32_t i = 0; i < ev->viz.n_tokens; i++) {
			const struct gos_viz_token *t = &ev->viz.tokens[i];
			size_t len = strlen(t->id);
			apply_token(m, t->id, len, gos_hash32(t->id, len), t->text, t->stream, true,
			            t->x, t->y,
			            t->confidence, NAN, 0, 0, NULL, now);
		}
		break;
	case GOS_EV_STATE: {
		const struct gos_state_ev *s = &ev->state;
		uint32_t si = stream_get(m, s->stream);
		struct stream_rec *st = &m->streams[si];
		if (strcmp(st->state, s->state) != 0) {
			free(st->state);
			st->state = xstrdup(s->state);
		}
		st->tokens_processed = s->tokens_processed;
		st->total_tokens = s->total_tokens;
		st->elapsed_ms = s->elapsed_ms;
		/* the generation's facts stay known when a later state omits them */
		if (!isnan(s->ttft_ms))
			st->ttft_ms = s->ttft_ms;
		set_text(&st->finish_reason, s->finish_reason);
		set_text(&st->message, s->message);
		set_text(&st->model, s->model);
		log_change(m, LOG_STREAM, si, NULL);
		break;
	}
	default:
		return;
	}
	if ((unsigned)ev->type < GOS_EV_COUNT_)
		m->stats.applied[ev->type]++;
}

/* Hashes a token event's id and prefetches its home in the id index, a few
 * events before it is applied: the probe is the one random access per
 * token in a table far bigger than the caches. */
static struct id_hash prefetch_id(const struct gos_map *m, const struct gos_event *ev)
{
	struct id_hash r = {0, 0};
	if (ev->type != GOS_EV_TOKEN)
		return r;
	r.len = strlen(ev->token.id);
	r.h = gos_hash32(ev->token.id, r.len);
	__builtin_prefetch(&m->tok_index.e[r.h & m->tok_index.mask]);
	return r;
}

#define PREFETCH_AHEAD 8   /* a power of two */

void gos_map_apply(struct gos_map *m, const struct gos_event *ev, size_t n)
{
	gos_map_apply_seq(m, ev, n, NULL);
}

void gos_map_apply_seq(struct gos_map *m, const struct gos_event *ev, size_t n,
                       uint64_t *seq_end)
{
	double now = gos_now_s();
	struct id_hash ring[PREFETCH_AHEAD];
	for (size_t j = 0; j < n && j < PREFETCH_AHEAD; j++)
		ring[j] = prefetch_id(m, &ev[j]);
	for (size_t i = 0; i < n; i += APPLY_CHUNK) {
		size_t end = i + APPLY_CHUNK < n ? i + APPLY_CHUNK : n;
		pthread_mutex_lock(&m->lock);
		for (size_t j = i; j < end; j++) {
			struct id_hash idh = ring[j % PREFETCH_AHEAD];
			if (j + PREFETCH_AHEAD < n)
				ring[j % PREFETCH_AHEAD] = prefetch_id(m, &ev[j + PREFETCH_AHEAD]);
			apply_one(m, &ev[j], idh, now);
			if (seq_end)
				seq_end[j] = m->cur_seq;
		}
		m->stats.live_tokens = m->live;
		m->stats.seq = m->cur_seq;
		pthread_mutex_unlock(&m->lock);
	}
}

void gos_map_adopt(struct gos_map *m, struct gos_map *from)
{
	/* everything but the lock, which readers may be waiting on */
	_Static_assert(offsetof(struct gos_map, lock) == 0, "the lock leads struct gos_map");
	const size_t off = offsetof(struct gos_map, max_tokens), len = sizeof(*m) - off;
	unsigned char tmp[sizeof(struct gos_map)];
	pthread_mutex_lock(&m->lock);
	memcpy(tmp, (unsigned char *)m + off, len);
	memcpy((unsigned char *)m + off, (unsigned char *)from + off, len);
	memcpy((unsigned char *)from + off, tmp, len);
	if (m->log_floor < m->cur_seq)
		m->log_floor = m->cur_seq;   /* readers behind it read everything again */
	pthread_mutex_unlock(&m->lock);
	gos_map_destroy(from);
}

void gos_map_advance_seq(struct gos_map *m, uint64_t seq)
{
	pthread_mutex_lock(&m->lock);
	if (seq > m->cur_seq) {
		m->cur_seq = seq;
		m->stats.seq = seq;
	}
	pthread_mutex_unlock(&m->lock);
}

/* ---- restore (map_image.c) ---- */

void gos_map_restore_slots(struct gos_map *m, uint32_t used)
{
	while (m->cap < used)
		grow_tokens(m);
	m->used = used;
}

bool gos_map_restore_token(struct gos_map *m, uint32_t slot, const char *id, size_t id_len,
                           const char *text, size_t text_len,
                           uint32_t n_alts, const struct gos_alt *alts)
{
	/* blob_make gives the id its NUL, which index_find's strcmp needs */
	struct blob *b = blob_make(m, id, id_len, text, text_len, n_alts, alts);
	uint32_t h = gos_hash32(blob_id(b), id_len);
	if (index_find(m, &m->tok_index, token_key, blob_id(b), h) != EMPTY) {
		blob_free(m, b);
		return false;
	}
	blob_free(m, m->blob[slot]);
	m->blob[slot] = b;
	index_insert(&m->tok_index, slot, h);
	return true;
}

bool gos_map_restore_stream(struct gos_map *m, const char *name, size_t name_len,
                            const char *state, size_t state_len)
{
	char *n = xcalloc(1, name_len + 1), *s = xcalloc(1, state_len + 1);
	memcpy(n, name, name_len);
	memcpy(s, state, state_len);
	uint32_t h = gos_hash32(n, name_len);
	if (index_find(m, &m->stream_index, stream_key, n, h) != EMPTY) {
		free(n);
		free(s);
		return false;
	}
	if (m->n_streams == m->cap_streams) {
		m->cap_streams = m->cap_streams ? m->cap_streams * 2 : 16;
		m->streams = xrealloc(m->streams, m->cap_streams * sizeof(*m->streams));
	}
	uint32_t i = m->n_streams++;
	m->streams[i] = (struct stream_rec){.name = n, .hash = h, .state = s};
	gos_map_stream_fresh(&m->streams[i]);
	index_insert(&m->stream_index, i, h);
	gos_map_stream_group(m, i);
	m->stats.streams = m->n_streams;
	return true;
}

/* ---- readers ---- */

static struct gos_token *view_push_token(struct gos_map_view *v)
{
	if (v->n_tokens == v->cap_tokens) {
		v->cap_tokens = v->cap_tokens ? v->cap_tokens * 2 : 1024;
		v->tokens = xrealloc(v->tokens, v->cap_tokens * sizeof(*v->tokens));
	}
	return &v->tokens[v->n_tokens++];
}

static void copy_token(const struct gos_map *m, uint32_t slot, struct gos_map_view *v)
{
	const struct blob *b = m->blob[slot];
	struct gos_token *t = view_push_token(v);
	*t = (struct gos_token){
		.slot = slot, .stream = m->stream[slot],
		.x = m->x[slot], .y = m->y[slot], .w = m->w[slot],
		.confidence = m->conf[slot], .logprob = m->logprob[slot],
		.timestamp = m->ts[slot], .arrived = m->arrived[slot], .seq = m->seq[slot],
		.index = m->index[slot], .gap_ms = m->gap[slot], .entropy = NAN,
		.agree = group_agree(m, slot),
		.diverges = m->streams[m->stream[slot]].diverge_at == (int64_t)m->index[slot],
		.id = gos_arena_strndup(&v->arena, blob_id(b), b->id_len),
		.text = gos_arena_strndup(&v->arena, blob_text(b), b->text_len),
		.n_alts = b->n_alts,
	};
	if (b->n_alts) {
		const struct gos_alt *ba = blob_alts(b);
		struct gos_alt *a = gos_arena_alloc(&v->arena, b->n_alts * sizeof(*a), 8);
		for (uint32_t i = 0; i < b->n_alts; i++) {
			a[i].token = gos_arena_strndup(&v->arena, ba[i].token, strlen(ba[i].token));
			a[i].logprob = ba[i].logprob;
		}
		t->alts = a;
		t->entropy = (float)gos_alts_entropy(b->n_alts, ba);
	}
	t->rank = gos_token_rank(t->text, t->alts, t->n_alts);
}

static void copy_stream(const struct gos_map *m, uint32_t i, struct gos_map_view *v)
{
	if (v->n_streams == v->cap_streams) {
		v->cap_streams = v->cap_streams ? v->cap_streams * 2 : 16;
		v->streams = xrealloc(v->streams, v->cap_streams * sizeof(*v->streams));
	}
	const struct stream_rec *s = &m->streams[i];
	v->streams[v->n_streams++] = (struct gos_stream){
		.index = i,
		.name = gos_arena_strndup(&v->arena, s->name, strlen(s->name)),
		.state = gos_arena_strndup(&v->arena, s->state, strlen(s->state)),
		.tokens_processed = s->tokens_processed, .total_tokens = s->total_tokens,
		.elapsed_ms = s->elapsed_ms, .n_tokens = s->n_tokens,
		.newest_slot = s->newest_slot, .seq = s->seq,
		.ttft_ms = s->ttft_ms,
		.finish_reason = gos_arena_strndup(&v->arena, s->finish_reason, strlen(s->finish_reason)),
		.message = gos_arena_strndup(&v->arena, s->message, strlen(s->message)),
		.model = gos_arena_strndup(&v->arena, s->model, strlen(s->model)),
		.stats = s->stats,
		.group = s->group, .diverge_at = s->diverge_at,
	};
}

static void view_reset(struct gos_map_view *v)
{
	v->n_tokens = 0;
	v->n_streams = 0;
	v->more = false;
	gos_arena_reset(&v->arena);
}

bool gos_map_read_since(struct gos_map *m, uint64_t since, size_t max,
                        struct gos_map_view *v)
{
	view_reset(v);
	pthread_mutex_lock(&m->lock);
	if (since > m->cur_seq || since < m->log_floor || m->cur_seq - since > m->log_cap) {
		v->seq = m->cur_seq;
		v->live_tokens = m->live;
		pthread_mutex_unlock(&m->lock);
		return false;
	}
	uint64_t s = since;
	while (s < m->cur_seq) {
		if (max && v->n_tokens >= max) {
			v->more = true;
			break;
		}
		s++;
		const struct log_entry *e = &m->log[s % m->log_cap];
		if (e->seq != s)
			continue;   /* a seq skipped by gos_map_advance_seq */
		switch (e->kind) {
		case LOG_TOKEN:
			if (m->blob[e->idx] && m->seq[e->idx] == e->seq)
				copy_token(m, e->idx, v);
			break;
		case LOG_STREAM:
			if (m->streams[e->idx].seq == e->seq)
				copy_stream(m, e->idx, v);
			break;
		case LOG_REMOVED: {
			struct gos_token *t = view_push_token(v);
			*t = (struct gos_token){
				.slot = e->idx, .seq = e->seq, .removed = true,
				.id = gos_arena_strndup(&v->arena, e->removed_id, strlen(e->removed_id)),
				.text = "", .confidence = NAN, .logprob = NAN, .gap_ms = NAN,
				.entropy = NAN, .agree = NAN,
			};
			break;
		}
		}
	}
	v->seq = s;
	v->live_tokens = m->live;
	pthread_mutex_unlock(&m->lock);
	return true;
}

void gos_map_read_all(struct gos_map *m, uint32_t start_slot, size_t max,
                      struct gos_map_view *v)
{
	view_reset(v);
	pthread_mutex_lock(&m->lock);
	uint32_t slot = start_slot;
	for (; slot < m->used; slot++) {
		if (max && v->n_tokens >= max) {
			v->more = true;
			break;
		}
		if (m->blob[slot])
			copy_token(m, slot, v);
	}
	v->next_slot = slot;
	for (uint32_t i = 0; i < m->n_streams; i++)
		copy_stream(m, i, v);
	v->seq = m->cur_seq;
	v->live_tokens = m->live;
	pthread_mutex_unlock(&m->lock);
}

void gos_map_read_slots(struct gos_map *m, const uint32_t *slots, size_t n,
                        struct gos_map_view *v)
{
	view_reset(v);
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < n; i++)
		if (slots[i] < m->used && m->blob[slots[i]])
			copy_token(m, slots[i], v);
	v->seq = m->cur_seq;
	v->live_tokens = m->live;
	pthread_mutex_unlock(&m->lock);
}

size_t gos_map_read_places(struct gos_map *m, uint32_t start, struct gos_place *out, size_t max,
                           uint32_t *next)
{
	size_t n = 0;
	pthread_mutex_lock(&m->lock);
	uint32_t slot = start;
	for (; slot < m->used && n < max; slot++)
		if (m->blob[slot])
			out[n++] = (struct gos_place){slot, m->stream[slot], m->index[slot], m->x[slot],
			                              m->y[slot], m->conf[slot], m->arrived[slot]};
	*next = slot < m->used ? slot : UINT32_MAX;
	pthread_mutex_unlock(&m->lock);
	return n;
}

void gos_map_read_streams(struct gos_map *m, struct gos_map_view *v)
{
	view_reset(v);
	pthread_mutex_lock(&m->lock);
	for (uint32_t i = 0; i < m->n_streams; i++)
		copy_stream(m, i, v);
	v->seq = m->cur_seq;
	v->live_tokens = m->live;
	pthread_mutex_unlock(&m->lock);
}

void gos_map_stats(struct gos_map *m, struct gos_map_stats *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->stats;
	out->seq = m->cur_seq;
	out->live_tokens = m->live;
	pthread_mutex_unlock(&m->lock);
}

uint64_t gos_map_seq(struct gos_map *m)
{
	pthread_mutex_lock(&m->lock);
	uint64_t s = m->cur_seq;
	pthread_mutex_unlock(&m->lock);
	return s;
}

void gos_map_view_finish(struct gos_map_view *v)
{
	if (!v)
		return;
	free(v->tokens);
	free(v->streams);
	gos_arena_finish(&v->arena);
	*v = (struct gos_map_view){0};
}
