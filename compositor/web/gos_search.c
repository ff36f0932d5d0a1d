/* The search index and worker (see gos_search.h).
 *
 * Order. A stream's tokens are kept in arrival order: the map numbers each
 * stream's tokens as they arrive (gos_token.index). New tokens of one
 * catch-up are sorted by stream and index, then appended. A full read goes
 * in slot order, which is arrival order rotated where the map's slot ring
 * wrapped: each stream is rotated at the first place its index goes down.
 *
 * Memory per token: slot (4), confidence (4), folded length (2) in the
 * stream's entry arrays, and per map slot its stream and serial (8): the
 * serial is the token's arrival number in the index's stream, so the entry
 * is at serial - base. Evictions come from a stream's front (oldest first):
 * the front moves. A token changed or dropped in the middle becomes a patch,
 * applied to the stream's text in one pass at the end of the catch-up. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_buf.h"
#include "gos_casefold.h"
#include "gos_search.h"
#include "gos_time.h"
#include "gos_utf8.h"

#define PAGE        65536           /* tokens per map read */
#define NONE        UINT32_MAX      /* rev_stream: no token indexed at the slot */
#define PENDING     (UINT32_MAX - 1) /* rev_stream: new, waiting in the catch-up */
#define DEAD        UINT32_MAX      /* an entry's slot: dropped, zero length */
#define MAX_TOKLEN  65535u          /* a token's folded bytes (u16) */
#define RETRIES     4               /* a search whose tokens changed under it */

struct sstream {
	char *name;
	char *text;                     /* folded bytes; live: [head, len) */
	size_t head, len, cap;
	uint32_t *slot;                 /* entries; live: [e_head, e_len) */
	float *conf;
	uint16_t *tlen;
	size_t e_head, e_len, e_cap;
	uint32_t base;                  /* serial of entry e_head */
	bool dirty;                     /* has patches */
};

struct patch {
	uint32_t stream, serial;
	size_t off;                     /* in the patch text */
	uint32_t len;
	bool dead;
};

struct pend {
	size_t off;                     /* in the pending text */
	uint32_t slot, stream, index, order, len;
	float conf;
	bool dead;
};

struct req {
	uint64_t viewer, gen;
	struct gos_viewer_search q;
};

struct gos_search {
	struct gos_search_opts o;

	pthread_mutex_t lock;           /* the index: everything below to `searches` */
	bool built;
	uint64_t seq;
	struct sstream *st;
	size_t n_st, cap_st;
	uint32_t *rev_stream, *rev_serial;
	size_t n_rev;
	struct pend *pend;
	size_t n_pend, cap_pend;
	struct gos_buf pend_text;
	struct patch *patch;
	size_t n_patch, cap_patch;
	struct gos_buf patch_text;
	struct gos_buf fold;
	struct gos_map_view view;
	uint64_t searches, full_builds;

	pthread_mutex_t qlock;          /* the request queue and stop */
	pthread_cond_t wake;
	bool stop;
	struct req q[GOS_SEARCH_QUEUE];
	size_t nq;
	pthread_t thread;
	bool started;

	/* the worker's own */
	struct gos_search_result res;
	struct gos_buf out;
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

/* memcpy that takes n == 0 with NULL pointers (empty texts have none). */
static void copy(void *dst, const void *src, size_t n)
{
	if (n)
		memcpy(dst, src, n);
}

#define GROW(arr, cap, need) do {                                             \
	if ((need) > (cap)) {                                                 \
		size_t c_ = (cap) ? (cap) + (cap) / 2 : 16;                   \
		if (c_ < (need))                                              \
			c_ = (need);                                          \
		(arr) = xrealloc((arr), c_ * sizeof(*(arr)));                 \
		(cap) = c_;                                                   \
	}                                                                     \
} while (0)

/* ---- the index ---------------------------------------------------------- */

static void stream_free(struct sstream *t)
{
	free(t->name);
	free(t->text);
	free(t->slot);
	free(t->conf);
	free(t->tlen);
}

static void index_reset(struct gos_search *s)
{
	for (size_t i = 0; i < s->n_st; i++)
		stream_free(&s->st[i]);
	free(s->st);
	free(s->rev_stream);
	free(s->rev_serial);
	s->st = NULL;
	s->n_st = s->cap_st = 0;
	s->rev_stream = s->rev_serial = NULL;
	s->n_rev = 0;
	s->n_pend = s->n_patch = 0;
	s->built = false;
}

static struct sstream *stream_at(struct gos_search *s, uint32_t i)
{
	if (i >= s->n_st) {
		GROW(s->st, s->cap_st, (size_t)i + 1);
		memset(s->st + s->n_st, 0, ((size_t)i + 1 - s->n_st) * sizeof(*s->st));
		s->n_st = (size_t)i + 1;
	}
	return &s->st[i];
}

static void rev_ensure(struct gos_search *s, uint32_t slot)
{
	if (slot < s->n_rev)
		return;
	size_t n = s->n_rev ? s->n_rev + s->n_rev / 2 : 1024;
	if (n <= slot)
		n = (size_t)slot + 1;
	s->rev_stream = xrealloc(s->rev_stream, n * sizeof(*s->rev_stream));
	s->rev_serial = xrealloc(s->rev_serial, n * sizeof(*s->rev_serial));
	for (size_t i = s->n_rev; i < n; i++)
		s->rev_stream[i] = NONE;
	s->n_rev = n;
}

/* The folded text of a token into s->fold (cleared first), at most
 * MAX_TOKLEN bytes, cut at a character. */
static void fold_token(struct gos_search *s, const char *text)
{
	gos_buf_clear(&s->fold);
	gos_casefold(text, strlen(text), &s->fold);
	if (s->fold.len > MAX_TOKLEN)
		s->fold.len = gos_utf8_cut(s->fold.data, s->fold.len, MAX_TOKLEN);
}

static void text_append(struct sstream *t, const char *b, size_t n)
{
	if (t->len + n > t->cap && t->head > (t->len - t->head) / 4) {
		/* a quarter dead at the front: compact rather than grow */
		if (t->len > t->head)
			memmove(t->text, t->text + t->head, t->len - t->head);
		t->len -= t->head;
		t->head = 0;
	}
	if (t->len + n > t->cap) {
		size_t c = t->cap + t->cap / 8 + 256;   /* big ones: realloc is mremap */
		t->text = xrealloc(t->text, c > t->len + n ? c : t->len + n);
		t->cap = c > t->len + n ? c : t->len + n;
	}
	copy(t->text + t->len, b, n);
	t->len += n;
}

static void entry_append(struct sstream *t, uint32_t slot, float conf, uint32_t len)
{
	if (t->e_len == t->e_cap && t->e_head > (t->e_len - t->e_head) / 4) {
		size_t n = t->e_len - t->e_head;
		memmove(t->slot, t->slot + t->e_head, n * sizeof(*t->slot));
		memmove(t->conf, t->conf + t->e_head, n * sizeof(*t->conf));
		memmove(t->tlen, t->tlen + t->e_head, n * sizeof(*t->tlen));
		t->e_len = n;
		t->e_head = 0;
	}
	if (t->e_len == t->e_cap) {
		size_t c = t->e_cap + t->e_cap / 8 + 64;   /* big ones: realloc is mremap */
		t->slot = xrealloc(t->slot, c * sizeof(*t->slot));
		t->conf = xrealloc(t->conf, c * sizeof(*t->conf));
		t->tlen = xrealloc(t->tlen, c * sizeof(*t->tlen));
		t->e_cap = c;
	}
	t->slot[t->e_len] = slot;
	t->conf[t->e_len] = conf;
	t->tlen[t->e_len] = (uint16_t)len;
	t->e_len++;
}

/* Appends a token at its stream's end. */
static void index_append(struct gos_search *s, uint32_t si, uint32_t slot, float conf,
                         const char *b, uint32_t len)
{
	struct sstream *t = stream_at(s, si);
	rev_ensure(s, slot);
	s->rev_stream[slot] = si;
	s->rev_serial[slot] = t->base + (uint32_t)(t->e_len - t->e_head);
	text_append(t, b, len);
	entry_append(t, slot, conf, len);
}

/* Drops dead entries at a stream's front. */
static void front_trim(struct sstream *t)
{
	while (t->e_head < t->e_len && t->slot[t->e_head] == DEAD) {
		t->head += t->tlen[t->e_head];
		t->e_head++;
		t->base++;
	}
	if (t->e_head == t->e_len) {
		t->e_head = t->e_len = 0;
		t->head = t->len = 0;
	}
}

static void patch_push(struct gos_search *s, uint32_t si, uint32_t serial, bool dead,
                       const char *b, uint32_t len)
{
	GROW(s->patch, s->cap_patch, s->n_patch + 1);
	s->patch[s->n_patch++] = (struct patch){si, serial, s->patch_text.len, len, dead};
	gos_buf_append(&s->patch_text, b, len);
	s->st[si].dirty = true;
}

static void on_removed(struct gos_search *s, uint32_t slot)
{
	if (slot >= s->n_rev || s->rev_stream[slot] == NONE)
		return;   /* never indexed (came and went between two catch-ups) */
	if (s->rev_stream[slot] == PENDING) {
		s->pend[s->rev_serial[slot]].dead = true;
		s->rev_stream[slot] = NONE;
		return;
	}
	uint32_t si = s->rev_stream[slot];
	struct sstream *t = &s->st[si];
	size_t i = t->e_head + (uint32_t)(s->rev_serial[slot] - t->base);
	s->rev_stream[slot] = NONE;
	t->slot[i] = DEAD;
	if (i == t->e_head)
		front_trim(t);
	else
		patch_push(s, si, s->rev_serial[slot], true, "", 0);
}

static void on_token(struct gos_search *s, const struct gos_token *tk, uint32_t order)
{
	uint32_t slot = tk->slot;
	rev_ensure(s, slot);
	uint32_t where = s->rev_stream[slot];
	fold_token(s, tk->text);
	uint32_t len = (uint32_t)s->fold.len;
	if (where == NONE || where == PENDING) {
		struct pend *p;
		if (where == NONE) {
			GROW(s->pend, s->cap_pend, s->n_pend + 1);
			s->rev_stream[slot] = PENDING;
			s->rev_serial[slot] = (uint32_t)s->n_pend;
			p = &s->pend[s->n_pend++];
			*p = (struct pend){.slot = slot, .stream = tk->stream, .index = tk->index,
			                   .order = order};
		} else {
			p = &s->pend[s->rev_serial[slot]];
		}
		p->off = s->pend_text.len;
		p->len = len;
		p->conf = tk->confidence;
		gos_buf_append(&s->pend_text, s->fold.data, len);
		return;
	}
	struct sstream *t = &s->st[where];
	uint32_t serial = s->rev_serial[slot];
	size_t i = t->e_head + (uint32_t)(serial - t->base);
	t->conf[i] = tk->confidence;
	if (i + 1 == t->e_len) {
		/* the newest token of its stream (often: a streamed token rewritten) */
		t->len -= t->tlen[i];
		text_append(t, s->fold.data, len);
		t->tlen[i] = (uint16_t)len;
		return;
	}
	patch_push(s, where, serial, false, s->fold.data, len);
}

static int cmp_patch(const void *a, const void *b)
{
	const struct patch *x = a, *y = b;
	if (x->stream != y->stream)
		return x->stream < y->stream ? -1 : 1;
	if (x->serial != y->serial)
		return x->serial < y->serial ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;   /* the later patch wins */
}

/* Applies a stream's patches (sorted, p[0..n)): in place when no length
 * changes, else a new text in one pass. */
static void patch_stream(struct gos_search *s, struct sstream *t, const struct patch *p, size_t n)
{
	const char *pt = s->patch_text.data;
	bool same = true;
	size_t off = t->head, k = 0;
	for (size_t i = t->e_head; i < t->e_len && k < n; i++) {
		uint32_t serial = t->base + (uint32_t)(i - t->e_head);
		while (k < n && p[k].serial < serial)
			k++;   /* its token left the front meanwhile */
		size_t last = n;
		while (k < n && p[k].serial == serial)
			last = k++;
		if (last < n) {
			const struct patch *q = &p[last];
			if (q->len != t->tlen[i] || q->dead)
				same = false;
			else if (same)
				copy(t->text + off, pt + q->off, q->len);
		}
		off += t->tlen[i];
	}
	if (same)
		return;
	size_t cap = t->len - t->head;
	for (size_t i = 0; i < n; i++)
		cap += p[i].len;
	char *nt = xrealloc(NULL, cap);
	size_t len = 0;
	off = t->head;
	k = 0;
	for (size_t i = t->e_head; i < t->e_len; i++) {
		uint32_t serial = t->base + (uint32_t)(i - t->e_head);
		while (k < n && p[k].serial < serial)
			k++;
		size_t last = n;
		while (k < n && p[k].serial == serial)
			last = k++;
		if (last < n) {
			uint32_t l = p[last].dead || t->slot[i] == DEAD ? 0 : p[last].len;
			copy(nt + len, pt + p[last].off, l);
			len += l;
			off += t->tlen[i];
			t->tlen[i] = (uint16_t)l;
		} else {
			copy(nt + len, t->text + off, t->tlen[i]);
			len += t->tlen[i];
			off += t->tlen[i];
		}
	}
	free(t->text);
	t->text = nt;
	t->head = 0;
	t->len = len;
	t->cap = cap;
}

static void apply_patches(struct gos_search *s)
{
	if (!s->n_patch)
		return;
	qsort(s->patch, s->n_patch, sizeof(*s->patch), cmp_patch);
	for (size_t i = 0, j; i < s->n_patch; i = j) {
		for (j = i; j < s->n_patch && s->patch[j].stream == s->patch[i].stream; j++)
			;
		struct sstream *t = &s->st[s->patch[i].stream];
		patch_stream(s, t, s->patch + i, j - i);
		t->dirty = false;
		front_trim(t);
	}
	s->n_patch = 0;
	gos_buf_clear(&s->patch_text);
}

static int cmp_pend(const void *a, const void *b)
{
	const struct pend *x = a, *y = b;
	if (x->stream != y->stream)
		return x->stream < y->stream ? -1 : 1;
	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* The catch-up's new tokens, in arrival order, at their streams' ends. */
static void flush_pending(struct gos_search *s)
{
	if (!s->n_pend)
		return;
	qsort(s->pend, s->n_pend, sizeof(*s->pend), cmp_pend);
	for (size_t i = 0; i < s->n_pend; i++) {
		const struct pend *p = &s->pend[i];
		if (p->dead)
			continue;
		index_append(s, p->stream, p->slot, p->conf, s->pend_text.data + p->off, p->len);
	}
	s->n_pend = 0;
	gos_buf_clear(&s->pend_text);
}

static void take_streams(struct gos_search *s, const struct gos_map_view *v)
{
	for (size_t i = 0; i < v->n_streams; i++) {
		struct sstream *t = stream_at(s, v->streams[i].index);
		if (!t->name) {
			t->name = strdup(v->streams[i].name);
			if (!t->name)
				abort();
		}
	}
}

/* A stream's entries [0, split) (and text [0, split_text)) go to its end. */
static void rotate(struct gos_search *s, uint32_t si, size_t split, size_t split_text)
{
	struct sstream *t = &s->st[si];
	size_t n = t->e_len - t->e_head, nt = t->len - t->head;
	if (!split || split >= n)
		return;
	char *text = xrealloc(NULL, nt);
	copy(text, t->text + t->head + split_text, nt - split_text);
	copy(text + nt - split_text, t->text + t->head, split_text);
	free(t->text);
	t->text = text;
	t->head = 0;
	t->len = t->cap = nt;
#define ROT(arr) do {                                                          \
	__typeof__(t->arr) a_ = xrealloc(NULL, n * sizeof(*a_));               \
	memcpy(a_, t->arr + t->e_head + split, (n - split) * sizeof(*a_));     \
	memcpy(a_ + n - split, t->arr + t->e_head, split * sizeof(*a_));       \
	free(t->arr);                                                          \
	t->arr = a_;                                                           \
} while (0)
	ROT(slot);
	ROT(conf);
	ROT(tlen);
#undef ROT
	t->e_head = 0;
	t->e_len = t->e_cap = n;
	for (size_t i = 0; i < n; i++)
		s->rev_serial[t->slot[i]] = t->base + (uint32_t)i;
}

/* Gives back a stream's room to grow (after a full read). */
static void fit(struct sstream *t)
{
	if (t->e_head || t->head || t->e_len == t->e_cap || !t->e_len)
		return;
	t->slot = xrealloc(t->slot, t->e_len * sizeof(*t->slot));
	t->conf = xrealloc(t->conf, t->e_len * sizeof(*t->conf));
	t->tlen = xrealloc(t->tlen, t->e_len * sizeof(*t->tlen));
	t->e_cap = t->e_len;
	if (t->len) {
		t->text = xrealloc(t->text, t->len);
		t->cap = t->len;
	}
}

/* Where each stream's index went down in a full read (the ring's seam). */
struct seams {
	uint32_t *last;                 /* per stream: the index read last */
	size_t *split, *split_text;     /* per stream: entries and bytes before the seam */
	bool *seen, *cut;
	size_t n;
};

static void seam_note(struct seams *z, const struct sstream *t, uint32_t si, uint32_t index)
{
	if (si >= z->n) {
		size_t n = (size_t)si + 1 > z->n * 2 ? (size_t)si + 1 : z->n * 2;
		z->last = xrealloc(z->last, n * sizeof(*z->last));
		z->split = xrealloc(z->split, n * sizeof(*z->split));
		z->split_text = xrealloc(z->split_text, n * sizeof(*z->split_text));
		z->seen = xrealloc(z->seen, n * sizeof(*z->seen));
		z->cut = xrealloc(z->cut, n * sizeof(*z->cut));
		memset(z->seen + z->n, 0, (n - z->n) * sizeof(*z->seen));
		memset(z->cut + z->n, 0, (n - z->n) * sizeof(*z->cut));
		z->n = n;
	}
	if (z->seen[si] && !z->cut[si] && index < z->last[si]) {
		z->cut[si] = true;
		z->split[si] = t->e_len - t->e_head;
		z->split_text[si] = t->len - t->head;
	}
	z->seen[si] = true;
	z->last[si] = index;
}

/* The whole map, read in slot order a page at a time; the caller then
 * catches up from the first page's seq (s->seq). */
static void full_build(struct gos_search *s)
{
	index_reset(s);
	s->full_builds++;
	struct seams z = {0};
	uint32_t start = 0;
	bool first = true;
	do {
		gos_map_read_all(s->o.map, start, PAGE, &s->view);
		if (first) {
			s->seq = s->view.seq;
			if (s->view.live_tokens)   /* slots are about as many: no slack */
				rev_ensure(s, (uint32_t)(s->view.live_tokens - 1));
		}
		first = false;
		take_streams(s, &s->view);
		for (size_t i = 0; i < s->view.n_tokens; i++) {
			const struct gos_token *tk = &s->view.tokens[i];
			seam_note(&z, stream_at(s, tk->stream), tk->stream, tk->index);
			fold_token(s, tk->text);
			index_append(s, tk->stream, tk->slot, tk->confidence, s->fold.data,
			             (uint32_t)s->fold.len);
		}
		start = s->view.next_slot;
	} while (s->view.more);
	for (size_t k = 0; k < z.n && k < s->n_st; k++)
		if (z.cut[k])
			rotate(s, (uint32_t)k, z.split[k], z.split_text[k]);
	free(z.last);
	free(z.split);
	free(z.split_text);
	free(z.seen);
	free(z.cut);
	for (size_t k = 0; k < s->n_st; k++)
		fit(&s->st[k]);
	s->built = true;
}

/* Brings the index up to date with the map. Index lock held. */
static void sync_index(struct gos_search *s)
{
	if (!s->built)
		full_build(s);
	uint32_t order = 0;
	for (;;) {
		if (!gos_map_read_since(s->o.map, s->seq, PAGE, &s->view)) {
			/* the change log moved past us: read everything again */
			s->n_pend = s->n_patch = 0;
			gos_buf_clear(&s->pend_text);
			gos_buf_clear(&s->patch_text);
			full_build(s);
			order = 0;
			continue;
		}
		take_streams(s, &s->view);
		for (size_t i = 0; i < s->view.n_tokens; i++) {
			const struct gos_token *tk = &s->view.tokens[i];
			if (tk->removed)
				on_removed(s, tk->slot);
			else
				on_token(s, tk, order++);
		}
		s->seq = s->view.seq;
		if (!s->view.more)
			break;
	}
	apply_patches(s);
	flush_pending(s);
}

/* ---- searching ---------------------------------------------------------- */

static bool stream_wanted(const struct gos_search_query *q, const char *name)
{
	if (!q->has_streams)
		return true;
	for (size_t i = 0; i < q->n_streams; i++)
		if (q->streams[i] && name && !strcmp(q->streams[i], name))
			return true;
	return false;
}

static void result_reset(struct gos_search_result *r)
{
	r->count = 0;
	r->n_matches = 0;
	r->n_tokens = 0;
	gos_arena_reset(&r->arena);
}

static void result_token(struct gos_search_result *r, uint32_t slot)
{
	if (r->n_tokens == r->cap_tokens) {
		r->cap_tokens = r->cap_tokens ? r->cap_tokens * 2 : 256;
		r->slots = xrealloc(r->slots, r->cap_tokens * sizeof(*r->slots));
		r->ids = xrealloc(r->ids, r->cap_tokens * sizeof(*r->ids));
	}
	r->slots[r->n_tokens] = slot;
	r->ids[r->n_tokens] = "";
	r->n_tokens++;
}

/* Scans one stream for the folded query; the first matches (up to limit
 * in all) go into r with their slots. */
static void scan_stream(struct sstream *t, uint32_t si, const char *qf, size_t m,
                        const struct gos_search_query *q, uint32_t limit,
                        struct gos_search_result *r)
{
	/* confidences are the map's floats: 0.6 sent is 0.6f, so is the bound */
	float lo = (float)q->min_p, hi = (float)q->max_p;
	const char *text = t->text + t->head;
	size_t n = t->len - t->head, pos = 0;
	size_t ei = t->e_head, eoff = 0;   /* entry ei starts at eoff */
	while (pos + m <= n) {
		const char *hit = memmem(text + pos, n - pos, qf, m);
		if (!hit)
			break;
		size_t a = (size_t)(hit - text), b = a + m;
		pos = b;
		bool need = q->has_p || r->n_matches < limit;
		if (!need) {
			r->count++;
			continue;
		}
		while (ei < t->e_len && eoff + t->tlen[ei] <= a) {
			eoff += t->tlen[ei];
			ei++;
		}
		bool ok = true;
		if (q->has_p) {
			size_t off = eoff;
			for (size_t k = ei; k < t->e_len && off < b; off += t->tlen[k], k++) {
				if (!t->tlen[k])
					continue;
				float c = t->conf[k];
				if (isnan(c) || c < lo || c > hi) {
					ok = false;
					break;
				}
			}
		}
		if (!ok)
			continue;
		r->count++;
		if (r->n_matches >= limit)
			continue;
		if (r->n_matches == r->cap_matches) {
			r->cap_matches = r->cap_matches ? r->cap_matches * 2 : 64;
			r->matches = xrealloc(r->matches, r->cap_matches * sizeof(*r->matches));
		}
		struct gos_search_match *mt = &r->matches[r->n_matches++];
		*mt = (struct gos_search_match){.stream = si, .first = r->n_tokens};
		size_t off = eoff;
		for (size_t k = ei; k < t->e_len && off < b; off += t->tlen[k], k++) {
			if (!t->tlen[k])
				continue;
			result_token(r, t->slot[k]);
			mt->n++;
		}
	}
}

/* Fills ids and positions from the map. false: a token changed since the
 * index's seq (the caller catches up and searches again). */
static bool resolve(struct gos_search *s, struct gos_search_result *r, bool last_try)
{
	gos_map_read_slots(s->o.map, r->slots, r->n_tokens, &s->view);
	size_t k = 0;
	bool ok = true;
	float *xy = xrealloc(NULL, (r->n_tokens ? r->n_tokens : 1) * 2 * sizeof(float));
	for (size_t i = 0; i < r->n_tokens; i++) {
		const struct gos_token *tk = k < s->view.n_tokens ? &s->view.tokens[k] : NULL;
		if (!tk || tk->slot != r->slots[i]) {
			ok = false;   /* evicted since */
			xy[2 * i] = xy[2 * i + 1] = NAN;
			continue;
		}
		k++;
		if (tk->seq > s->seq)
			ok = false;   /* changed since: perhaps another token in the slot */
		r->ids[i] = gos_arena_strndup(&r->arena, tk->id, strlen(tk->id));
		xy[2 * i] = tk->x;
		xy[2 * i + 1] = tk->y;
	}
	if (ok || last_try) {
		for (size_t i = 0; i < r->n_matches; i++) {
			struct gos_search_match *mt = &r->matches[i];
			mt->stream_name = gos_arena_strndup(&r->arena, s->st[mt->stream].name ?
			                                    s->st[mt->stream].name : "",
			                                    s->st[mt->stream].name ?
			                                    strlen(s->st[mt->stream].name) : 0);
			mt->x = mt->n ? xy[2 * mt->first] : NAN;
			mt->y = mt->n ? xy[2 * mt->first + 1] : NAN;
		}
	}
	free(xy);
	return ok;
}

bool gos_search_run(struct gos_search *s, const struct gos_search_query *q,
                    struct gos_search_result *out, char *err, size_t errlen)
{
	size_t qlen = q->q ? strlen(q->q) : 0;
	if (!qlen || qlen > GOS_VIEWER_SEARCH_Q_MAX || !gos_utf8_valid(q->q, qlen)) {
		snprintf(err, errlen, "search: the query must be 1 to %d bytes of UTF-8",
		         GOS_VIEWER_SEARCH_Q_MAX);
		return false;
	}
	if (q->limit > GOS_VIEWER_SEARCH_LIMIT_MAX) {
		snprintf(err, errlen, "search: the limit must be at most %d",
		         GOS_VIEWER_SEARCH_LIMIT_MAX);
		return false;
	}
	if (q->has_p && !(q->min_p <= q->max_p)) {
		snprintf(err, errlen, "search: min_p must not be above max_p");
		return false;
	}
	uint32_t limit = q->limit ? q->limit : GOS_VIEWER_SEARCH_LIMIT;
	struct gos_buf qf = {0};
	gos_casefold(q->q, qlen, &qf);
	pthread_mutex_lock(&s->lock);
	for (int attempt = 0;; attempt++) {
		sync_index(s);
		result_reset(out);
		out->seq = s->seq;
		for (size_t i = 0; i < s->n_st; i++)
			if (s->st[i].e_len > s->st[i].e_head && stream_wanted(q, s->st[i].name))
				scan_stream(&s->st[i], (uint32_t)i, qf.data, qf.len, q, limit, out);
		if (resolve(s, out, attempt + 1 == RETRIES))
			break;
		if (attempt + 1 == RETRIES)
			break;
	}
	s->searches++;
	pthread_mutex_unlock(&s->lock);
	gos_buf_finish(&qf);
	return true;
}

void gos_search_result_finish(struct gos_search_result *r)
{
	if (!r)
		return;
	free(r->matches);
	free(r->slots);
	free(r->ids);
	gos_arena_finish(&r->arena);
	*r = (struct gos_search_result){0};
}

void gos_search_stats(struct gos_search *s, struct gos_search_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = (struct gos_search_stats){.built = s->built, .seq = s->seq, .streams = s->n_st,
	                                 .searches = s->searches, .full_builds = s->full_builds};
	uint64_t bytes = s->n_rev * 8 + s->cap_st * sizeof(*s->st);
	for (size_t i = 0; i < s->n_st; i++) {
		const struct sstream *t = &s->st[i];
		out->tokens += t->e_len - t->e_head;
		for (size_t k = t->e_head; k < t->e_len; k++)
			out->text_bytes += t->tlen[k];
		out->text_alloc += t->cap;
		bytes += t->cap + t->e_cap * 10 + (t->name ? strlen(t->name) + 1 : 0);
	}
	out->bytes = bytes + s->cap_pend * sizeof(*s->pend) + s->pend_text.cap +
	             s->cap_patch * sizeof(*s->patch) + s->patch_text.cap + s->fold.cap;
	pthread_mutex_unlock(&s->lock);
}

/* ---- the worker --------------------------------------------------------- */

static void send_error(struct gos_search *s, uint64_t viewer, uint64_t gen, const char *code,
                       const char *message)
{
	struct gos_buf t = {0};
	gos_viewer_error(&t, code, message);
	gos_ws_viewer_send(s->o.ws, viewer, gen, GOS_WS_SEND_ANSWER,
	                   gos_ws_msg_create(t.data, t.len));
	gos_buf_finish(&t);
}

static void answer(struct gos_search *s, const struct req *r)
{
	const char *names[GOS_VIEWER_SEARCH_STREAMS_MAX];
	const char *p = r->q.streams;
	for (uint32_t i = 0; i < r->q.n_streams; i++) {
		names[i] = p;
		p += strlen(p) + 1;
	}
	struct gos_search_query q = {
		.q = r->q.q, .limit = r->q.limit,
		.has_streams = r->q.has_streams, .streams = names, .n_streams = r->q.n_streams,
		.has_p = !isnan(r->q.min_p) || !isnan(r->q.max_p),
		.min_p = isnan(r->q.min_p) ? 0.0 : r->q.min_p,
		.max_p = isnan(r->q.max_p) ? 1.0 : r->q.max_p,
	};
	char err[200];
	if (!gos_search_run(s, &q, &s->res, err, sizeof(err))) {
		send_error(s, r->viewer, r->gen, "bad_request", err);
		return;
	}
	struct gos_viewer_match *m = xrealloc(NULL, (s->res.n_matches ? s->res.n_matches : 1) *
	                                      sizeof(*m));
	for (size_t i = 0; i < s->res.n_matches; i++) {
		const struct gos_search_match *a = &s->res.matches[i];
		m[i] = (struct gos_viewer_match){a->stream_name, a->n, s->res.ids + a->first,
		                                 a->x, a->y};
	}
	gos_buf_clear(&s->out);
	gos_viewer_search_result(&s->out, r->q.q, s->res.count, m, s->res.n_matches);
	free(m);
	gos_ws_viewer_send(s->o.ws, r->viewer, r->gen, GOS_WS_SEND_ANSWER,
	                   gos_ws_msg_create(s->out.data, s->out.len));
}

static void deadline(struct timespec *ts, uint32_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *search_main(void *arg)
{
	struct gos_search *s = arg;
	pthread_mutex_lock(&s->qlock);
	while (!s->stop) {
		if (!s->nq) {
			struct timespec ts;
			deadline(&ts, s->o.sync_ms);
			if (pthread_cond_timedwait(&s->wake, &s->qlock, &ts) && !s->nq && !s->stop) {
				/* idle: follow the map, once there is an index to keep */
				pthread_mutex_unlock(&s->qlock);
				pthread_mutex_lock(&s->lock);
				if (s->built)
					sync_index(s);
				pthread_mutex_unlock(&s->lock);
				pthread_mutex_lock(&s->qlock);
			}
			continue;
		}
		struct req r = s->q[0];
		memmove(s->q, s->q + 1, (s->nq - 1) * sizeof(*s->q));
		s->nq--;
		pthread_mutex_unlock(&s->qlock);
		answer(s, &r);
		pthread_mutex_lock(&s->qlock);
	}
	pthread_mutex_unlock(&s->qlock);
	return NULL;
}

struct gos_search *gos_search_create(const struct gos_search_opts *opts, char *err,
                                     size_t errlen)
{
	struct gos_search *s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	s->o = *opts;
	if (!s->o.sync_ms)
		s->o.sync_ms = 1000;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->qlock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (s->o.ws) {
		if (pthread_create(&s->thread, NULL, search_main, s)) {
			snprintf(err, errlen, "cannot start the search thread");
			gos_search_destroy(s);
			return NULL;
		}
		s->started = true;
	}
	return s;
}

void gos_search_destroy(struct gos_search *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->qlock);
		s->stop = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->qlock);
		pthread_join(s->thread, NULL);
	}
	index_reset(s);
	free(s->pend);
	free(s->patch);
	gos_buf_finish(&s->pend_text);
	gos_buf_finish(&s->patch_text);
	gos_buf_finish(&s->fold);
	gos_buf_finish(&s->out);
	gos_map_view_finish(&s->view);
	gos_search_result_finish(&s->res);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->qlock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void gos_search_request(struct gos_search *s, uint64_t viewer, uint64_t gen,
                        const struct gos_viewer_in *in)
{
	pthread_mutex_lock(&s->qlock);
	if (!in) {
		size_t k = 0;
		for (size_t i = 0; i < s->nq; i++)
			if (s->q[i].viewer != viewer)
				s->q[k++] = s->q[i];
		s->nq = k;
		pthread_mutex_unlock(&s->qlock);
		return;
	}
	for (size_t i = 0; i < s->nq; i++) {
		if (s->q[i].viewer == viewer) {
			s->q[i].gen = gen;
			s->q[i].q = in->search;   /* the newer search replaces the older */
			pthread_mutex_unlock(&s->qlock);
			return;
		}
	}
	bool full = s->nq == GOS_SEARCH_QUEUE;
	if (!full) {
		s->q[s->nq] = (struct req){.viewer = viewer, .gen = gen};
		s->q[s->nq].q = in->search;
		s->nq++;
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->qlock);
	if (full)
		send_error(s, viewer, gen, "busy", "the search queue is full; try again in a moment");
}
