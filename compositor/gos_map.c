/* Map state: struct-of-arrays token store, id index, streams, change log.
 * See gos_map.h for the threading contract. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_map.h"

#define DEFAULT_MAX_TOKENS 10000000ull
#define DEFAULT_LOG_CAP    (1u << 20)
#define EMPTY              UINT32_MAX
/* Events applied per lock hold: bounds how long a reader can wait. */
#define APPLY_CHUNK        256

/* A token's strings, one allocation with pointers into itself. */
struct blob {
	const char *id;
	const char *text;
	uint32_t n_alts;
	struct gos_alt *alts;
	size_t id_len;
	char buf[];
};

enum log_kind { LOG_TOKEN = 1, LOG_STREAM, LOG_REMOVED };

struct log_entry {
	uint64_t seq;
	uint32_t idx;          /* slot or stream index */
	uint32_t kind;
	char *removed_id;      /* LOG_REMOVED: the evicted token's id */
};

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
};

/* Open addressing with linear probing: string -> index. The strings live
 * elsewhere; key_of() fetches the one an index stands for. */
struct str_index {
	uint32_t *idx;
	uint32_t *hash;
	uint32_t mask;   /* size - 1, size a power of two */
	uint32_t count;
};

struct gos_map {
	pthread_mutex_t lock;
	uint64_t max_tokens;
	enum gos_layout_kind layout;

	/* tokens, slot-indexed */
	uint32_t cap, used;         /* used: slots ever handed out (<= cap) */
	uint32_t evict_cursor;      /* next slot to evict once used == max */
	uint64_t live;
	float *x, *y, *w, *conf, *logprob;
	double *ts, *arrived;
	uint64_t *seq;
	uint32_t *stream;
	struct blob **blob;
	struct str_index tok_index;

	struct stream_rec *streams;
	uint32_t n_streams, cap_streams;
	struct str_index stream_index;

	struct log_entry *log;
	uint32_t log_cap;
	uint64_t cur_seq;

	struct gos_map_stats stats;
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

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- string index ---- */

typedef const char *(*key_fn)(const struct gos_map *m, uint32_t idx);

static const char *token_key(const struct gos_map *m, uint32_t slot)
{
	return m->blob[slot]->id;
}

static const char *stream_key(const struct gos_map *m, uint32_t i)
{
	return m->streams[i].name;
}

static void index_init(struct str_index *ix, uint32_t size)
{
	ix->idx = xcalloc(size, sizeof(uint32_t));
	ix->hash = xcalloc(size, sizeof(uint32_t));
	memset(ix->idx, 0xff, size * sizeof(uint32_t));
	ix->mask = size - 1;
	ix->count = 0;
}

static void index_finish(struct str_index *ix)
{
	free(ix->idx);
	free(ix->hash);
}

static uint32_t index_find(const struct gos_map *m, const struct str_index *ix,
                           key_fn key, const char *s, uint32_t h)
{
	for (uint32_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
		uint32_t v = ix->idx[i];
		if (v == EMPTY)
			return EMPTY;
		if (ix->hash[i] == h && strcmp(key(m, v), s) == 0)
			return v;
	}
}

static void index_put_raw(struct str_index *ix, uint32_t v, uint32_t h)
{
	uint32_t i = h & ix->mask;
	while (ix->idx[i] != EMPTY)
		i = (i + 1) & ix->mask;
	ix->idx[i] = v;
	ix->hash[i] = h;
}

static void index_insert(struct str_index *ix, uint32_t v, uint32_t h)
{
	if ((uint64_t)(ix->count + 1) * 2 > (uint64_t)ix->mask + 1) {
		struct str_index old = *ix;
		index_init(ix, (old.mask + 1) * 2);
		ix->count = old.count;
		for (uint32_t i = 0; i <= old.mask; i++)
			if (old.idx[i] != EMPTY)
				index_put_raw(ix, old.idx[i], old.hash[i]);
		index_finish(&old);
	}
	index_put_raw(ix, v, h);
	ix->count++;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void index_remove(struct str_index *ix, uint32_t v, uint32_t h)
{
	uint32_t i = h & ix->mask;
	while (ix->idx[i] != v) {
		if (ix->idx[i] == EMPTY)
			return;
		i = (i + 1) & ix->mask;
	}
	uint32_t j = i;
	for (;;) {
		j = (j + 1) & ix->mask;
		if (ix->idx[j] == EMPTY)
			break;
		uint32_t home = ix->hash[j] & ix->mask;
		/* Move j back to i unless its home lies cyclically in (i, j]. */
		bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		ix->idx[i] = ix->idx[j];
		ix->hash[i] = ix->hash[j];
		i = j;
	}
	ix->idx[i] = EMPTY;
	ix->count--;
}

/* ---- blobs ---- */

static struct blob *blob_make(const char *id, const char *text,
                              uint32_t n_alts, const struct gos_alt *alts)
{
	size_t id_len = strlen(id), text_len = strlen(text);
	size_t size = sizeof(struct blob) + id_len + 1 + text_len + 1;
	size_t alts_off = 0;
	if (n_alts) {
		alts_off = (size + 7) & ~(size_t)7;
		size = alts_off + n_alts * sizeof(struct gos_alt);
		for (uint32_t i = 0; i < n_alts; i++)
			size += strlen(alts[i].token) + 1;
	}
	struct blob *b = xcalloc(1, size);
	char *p = b->buf;
	memcpy(p, id, id_len + 1);
	b->id = p;
	b->id_len = id_len;
	p += id_len + 1;
	memcpy(p, text, text_len + 1);
	b->text = p;
	b->n_alts = n_alts;
	if (n_alts) {
		b->alts = (struct gos_alt *)((char *)b + alts_off);
		char *s = (char *)(b->alts + n_alts);
		for (uint32_t i = 0; i < n_alts; i++) {
			size_t n = strlen(alts[i].token) + 1;
			memcpy(s, alts[i].token, n);
			b->alts[i].token = s;
			b->alts[i].logprob = alts[i].logprob;
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
	m->log = xcalloc(m->log_cap, sizeof(*m->log));
	index_init(&m->tok_index, 1024);
	index_init(&m->stream_index, 64);
	return m;
}

void gos_map_destroy(struct gos_map *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; i < m->used; i++)
		free(m->blob ? m->blob[i] : NULL);
	free(m->x); free(m->y); free(m->w); free(m->conf); free(m->logprob);
	free(m->ts); free(m->arrived); free(m->seq); free(m->stream); free(m->blob);
	index_finish(&m->tok_index);
	for (uint32_t i = 0; i < m->n_streams; i++) {
		free(m->streams[i].name);
		free(m->streams[i].state);
	}
	free(m->streams);
	index_finish(&m->stream_index);
	if (m->log)
		for (uint32_t i = 0; i < m->log_cap; i++)
			free(m->log[i].removed_id);
	free(m->log);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- writer ---- */

static uint32_t stream_get(struct gos_map *m, const char *name)
{
	if (!name)
		name = "";
	uint32_t h = gos_hash32(name, strlen(name));
	uint32_t i = index_find(m, &m->stream_index, stream_key, name, h);
	if (i != EMPTY)
		return i;
	if (m->n_streams == m->cap_streams) {
		m->cap_streams = m->cap_streams ? m->cap_streams * 2 : 16;
		m->streams = xrealloc(m->streams, m->cap_streams * sizeof(*m->streams));
	}
	i = m->n_streams++;
	m->streams[i] = (struct stream_rec){
		.name = xstrdup(name), .hash = h, .state = xstrdup(""),
		.tokens_processed = -1, .total_tokens = -1, .elapsed_ms = NAN,
		.newest_slot = -1,
	};
	index_insert(&m->stream_index, i, h);
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
	GROW(ts); GROW(arrived); GROW(seq); GROW(stream); GROW(blob);
#undef GROW
	memset(m->blob + m->cap, 0, (n - m->cap) * sizeof(*m->blob));
	m->cap = n;
}

static uint32_t utf8_chars(const char *s)
{
	uint32_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

static void evict(struct gos_map *m, uint32_t slot)
{
	struct blob *b = m->blob[slot];
	index_remove(&m->tok_index, slot, gos_hash32(b->id, b->id_len));
	struct stream_rec *st = &m->streams[m->stream[slot]];
	if (st->newest_slot == (int64_t)slot)
		st->newest_slot = -1;
	char *id = xstrdup(b->id);
	free(b);
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
	float x0 = (float)si * (GOS_FLOW_COLUMN_W + GOS_FLOW_COLUMN_GAP);
	if (st->cursor_x > 0 && st->cursor_x + w > GOS_FLOW_COLUMN_W) {
		st->cursor_x = 0;
		st->cursor_y += GOS_FLOW_LINE_H;
	}
	*x = x0 + st->cursor_x + w / 2;
	*y = st->cursor_y + GOS_FLOW_LINE_H / 2;
	st->cursor_x += w;
	if (strchr(text, '\n')) {
		st->cursor_x = 0;
		st->cursor_y += GOS_FLOW_LINE_H;
	}
}

/* Applies one token (token_activation or a token_visualization entry). */
static void apply_token(struct gos_map *m, const char *id, const char *text,
                        const char *stream, bool has_pos, float px, float py,
                        float conf, float logprob, double ts,
                        uint32_t n_alts, const struct gos_alt *alts, double now)
{
	size_t id_len = strlen(id);
	uint32_t h = gos_hash32(id, id_len);
	uint32_t slot = index_find(m, &m->tok_index, token_key, id, h);
	float w = (float)(utf8_chars(text) ? utf8_chars(text) : 1) * GOS_FLOW_CHAR_W;

	if (slot != EMPTY) {
		/* Same token_id again: update text, position, confidence. */
		struct blob *old = m->blob[slot];
		if (strcmp(old->text, text) != 0 || n_alts || old->n_alts) {
			m->blob[slot] = blob_make(id, text, n_alts, alts);
			free(old);
		}
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
	m->blob[slot] = blob_make(id, text, n_alts, alts);
	m->x[slot] = px;
	m->y[slot] = py;
	m->w[slot] = w;
	m->conf[slot] = conf;
	m->logprob[slot] = logprob;
	m->ts[slot] = ts;
	m->arrived[slot] = now;
	m->stream[slot] = si;
	index_insert(&m->tok_index, slot, h);
	m->live++;
	m->stats.tokens_added++;
	st->n_tokens++;
	st->newest_slot = slot;
	log_change(m, LOG_TOKEN, slot, NULL);
	/* The stream's token count changed: readers see it in the stream list. */
	log_change(m, LOG_STREAM, si, NULL);
}

static void apply_one(struct gos_map *m, const struct gos_event *ev, double now)
{
	switch (ev->type) {
	case GOS_EV_TOKEN: {
		const struct gos_token_ev *t = &ev->token;
		apply_token(m, t->id, t->text, t->stream, t->has_position, t->x, t->y,
		            t->confidence, t->logprob, t->timestamp, t->n_alts, t->alts, now);
		break;
	}
	case GOS_EV_VIZ:
		for (uint32_t i = 0; i < ev->viz.n_tokens; i++) {
			const struct gos_viz_token *t = &ev->viz.tokens[i];
			apply_token(m, t->id, t->text, t->stream, true, t->x, t->y,
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
		log_change(m, LOG_STREAM, si, NULL);
		break;
	}
	default:
		return;
	}
	if ((unsigned)ev->type < 5)
		m->stats.applied[ev->type]++;
}

void gos_map_apply(struct gos_map *m, const struct gos_event *ev, size_t n)
{
	double now = now_mono();
	for (size_t i = 0; i < n; i += APPLY_CHUNK) {
		size_t end = i + APPLY_CHUNK < n ? i + APPLY_CHUNK : n;
		pthread_mutex_lock(&m->lock);
		for (size_t j = i; j < end; j++)
			apply_one(m, &ev[j], now);
		m->stats.live_tokens = m->live;
		m->stats.seq = m->cur_seq;
		pthread_mutex_unlock(&m->lock);
	}
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
		.id = gos_arena_strndup(&v->arena, b->id, b->id_len),
		.text = gos_arena_strndup(&v->arena, b->text, strlen(b->text)),
		.n_alts = b->n_alts,
	};
	if (b->n_alts) {
		struct gos_alt *a = gos_arena_alloc(&v->arena, b->n_alts * sizeof(*a), 8);
		for (uint32_t i = 0; i < b->n_alts; i++) {
			a[i].token = gos_arena_strndup(&v->arena, b->alts[i].token,
			                               strlen(b->alts[i].token));
			a[i].logprob = b->alts[i].logprob;
		}
		t->alts = a;
	}
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
	if (since > m->cur_seq || m->cur_seq - since > m->log_cap) {
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
				.text = "", .confidence = NAN, .logprob = NAN,
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

void gos_map_stats(struct gos_map *m, struct gos_map_stats *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->stats;
	out->seq = m->cur_seq;
	out->live_tokens = m->live;
	pthread_mutex_unlock(&m->lock);
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
