/* gos_render, map sync: the per-slot buffers the shaders read (staged
 * writes, copied into the frame that follows), gos_render_sync() turning the
 * map's changes into GPU updates, the CPU copy of positions and widths, the
 * streams, and what is answered from them (state, pick, fit). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_compute.h"
#include "gos_render_internal.h"
#include "gos_utf8.h"
#include "gos_text.h"

#define NONE UINT32_MAX

/* ---- per-slot buffers ---- */

bool render_slotbuf_init(struct gos_vk *vk, struct render_slotbuf *b, const char *name,
                         size_t rec)
{
	b->name = name;
	b->rec = rec;
	b->cap = 4096;
	b->dev = gos_vk_buffer_create(vk, b->cap * rec, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
	                              VK_BUFFER_USAGE_TRANSFER_DST_BIT |
	                              VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
	                              GOS_VK_MEM_DEVICE, name);
	b->pend_at = malloc(b->cap * sizeof(uint32_t));
	if (!b->dev || !b->pend_at)
		return false;
	memset(b->pend_at, 0xFF, b->cap * sizeof(uint32_t));
	return true;
}

void render_slotbuf_finish(struct gos_vk *vk, struct render_slotbuf *b)
{
	gos_vk_buffer_destroy(vk, b->dev);
	for (int i = 0; i < 4; i++)
		gos_vk_buffer_destroy(vk, b->staging[i]);
	free(b->pend);
	free(b->pend_slot);
	free(b->pend_at);
	free(b->regions);
}

/* Where the record for `slot` goes (later writes of a slot win). */
static void *slotbuf_write(struct gos_vk *vk, struct render_slotbuf *b, uint32_t slot)
{
	if (slot >= b->cap) {
		uint32_t cap = b->cap;
		while (cap <= slot)
			cap *= 2;
		const uint32_t zero = 0;
		if (!gos_vk_buffer_grow(vk, b->dev, (VkDeviceSize)cap * b->rec, &zero))
			return NULL;
		uint32_t *pa = realloc(b->pend_at, cap * sizeof(uint32_t));
		if (!pa)
			return NULL;
		memset(pa + b->cap, 0xFF, (cap - b->cap) * sizeof(uint32_t));
		b->pend_at = pa;
		b->cap = cap;
	}
	if (b->pend_at[slot] != NONE)
		return b->pend + (size_t)b->pend_at[slot] * b->rec;
	if (b->n_pend == b->cap_pend) {
		uint32_t cap = b->cap_pend ? b->cap_pend * 2 : 1024;
		uint8_t *p = realloc(b->pend, (size_t)cap * b->rec);
		if (!p)
			return NULL;
		b->pend = p;
		uint32_t *s = realloc(b->pend_slot, cap * sizeof(uint32_t));
		if (!s)
			return NULL;
		b->pend_slot = s;
		b->cap_pend = cap;
	}
	b->pend_at[slot] = b->n_pend;
	b->pend_slot[b->n_pend] = slot;
	return b->pend + (size_t)b->n_pend++ * b->rec;
}

bool render_slotbuf_record(struct gos_vk *vk, struct render_slotbuf *b, uint32_t frame,
                           VkCommandBuffer cmd)
{
	if (!b->n_pend)
		return true;
	size_t bytes = (size_t)b->n_pend * b->rec;
	struct gos_vk_buffer **st = &b->staging[frame];
	if (!*st || (*st)->size < bytes) {
		gos_vk_buffer_destroy(vk, *st);
		size_t sz = 64 * 1024;
		while (sz < bytes)
			sz *= 2;
		*st = gos_vk_buffer_create(vk, sz, VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
		                           GOS_VK_MEM_UPLOAD, b->name);
		if (!*st)
			return false;
	}
	if (b->cap_regions < b->n_pend) {
		VkBufferCopy *rg = realloc(b->regions, b->n_pend * sizeof(*rg));
		if (!rg)
			return false;
		b->regions = rg;
		b->cap_regions = b->n_pend;
	}
	memcpy((*st)->mapped, b->pend, bytes);
	if (!gos_vk_buffer_flush(vk, *st, 0, bytes))
		return false;
	/* Merge runs of consecutive slots into one region each. */
	uint32_t n = 0;
	for (uint32_t i = 0; i < b->n_pend; i++) {
		VkDeviceSize src = (VkDeviceSize)i * b->rec;
		VkDeviceSize dst = (VkDeviceSize)b->pend_slot[i] * b->rec;
		if (n && b->regions[n - 1].srcOffset + b->regions[n - 1].size == src &&
		    b->regions[n - 1].dstOffset + b->regions[n - 1].size == dst) {
			b->regions[n - 1].size += b->rec;
		} else {
			b->regions[n++] = (VkBufferCopy){src, dst, b->rec};
		}
		b->pend_at[b->pend_slot[i]] = NONE;
	}
	vkCmdCopyBuffer(cmd, (*st)->buffer, b->dev->buffer, n, b->regions);
	b->n_pend = 0;
	return true;
}

/* ---- map sync ---- */

bool render_reserve_slots(struct gos_render *r, uint32_t slot)
{
	if (slot < r->cap_slots)
		return true;
	uint32_t cap = r->cap_slots ? r->cap_slots : 4096;
	while (cap <= slot)
		cap *= 2;
	float *p = realloc(r->xyw, (size_t)cap * 3 * sizeof(float));
	if (!p)
		return false;
	for (size_t i = (size_t)r->cap_slots * 3; i < (size_t)cap * 3; i += 3)
		p[i + 2] = -1;
	r->xyw = p;
	r->cap_slots = cap;
	return true;
}

/* s into a fixed buffer, cut on a UTF-8 boundary, line breaks as spaces. */
static void copy_text(char *out, size_t cap, const char *s)
{
	size_t n = s ? gos_utf8_cut(s, strlen(s), cap - 1) : 0;
	memcpy(out, s ? s : "", n);
	out[n] = '\0';
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
}

static void copy_stream(struct gos_render *r, const struct gos_stream *s)
{
	if (s->index >= r->cap_streams) {
		size_t cap = r->cap_streams ? r->cap_streams : 8;
		while (cap <= s->index)
			cap *= 2;
		struct render_stream *p = realloc(r->streams, cap * sizeof(*p));
		if (!p)
			return;
		memset(p + r->cap_streams, 0, (cap - r->cap_streams) * sizeof(*p));
		r->streams = p;
		r->cap_streams = cap;
	}
	struct render_stream *c = &r->streams[s->index];
	c->s = *s;
	snprintf(c->name, sizeof(c->name), "%s", s->name ? s->name : "");
	snprintf(c->state, sizeof(c->state), "%s", s->state ? s->state : "");
	copy_text(c->model, sizeof(c->model), s->model);
	copy_text(c->finish_reason, sizeof(c->finish_reason), s->finish_reason);
	copy_text(c->message, sizeof(c->message), s->message);
	if (s->index >= r->n_streams)
		r->n_streams = s->index + 1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static bool is_match(const struct gos_render *r, uint32_t slot)
{
	return r->n_matches && bsearch(&slot, r->matches, r->n_matches, sizeof(slot), cmp_u32);
}

/* A live token's GPU update: position, confidence, and what the color
 * modes and filters read (stream, rank, mode values, flags). */
void render_token_update(const struct gos_render *r, const struct gos_token *t,
                         struct gos_token_update *u)
{
	*u = (struct gos_token_update){.slot = t->slot, .x = t->x, .y = t->y,
	                               .confidence = t->confidence, .stream = t->stream};
	gos_compute_ref_facts(u, t->logprob, t->rank, t->entropy, t->gap_ms, t->agree);
	u->flags = (t->diverges ? GOS_TOKEN_DIVERGES : 0) |
	           (is_match(r, t->slot) ? GOS_TOKEN_MATCH : 0);
}

bool gos_render_set_matches(struct gos_render *r, struct gos_map *map, const uint32_t *slots,
                            size_t n)
{
	uint32_t *next = NULL;
	if (n) {
		next = malloc(n * sizeof(*next));
		if (!next)
			return false;
		memcpy(next, slots, n * sizeof(*next));
		qsort(next, n, sizeof(*next), cmp_u32);
	}
	/* the slots whose flag changes: in one set and not the other */
	uint32_t *diff = malloc((r->n_matches + n + 1) * sizeof(*diff));
	if (!diff) {
		free(next);
		return false;
	}
	size_t nd = 0, i = 0, j = 0;
	while (i < r->n_matches || j < n) {
		if (j == n || (i < r->n_matches && r->matches[i] < next[j]))
			diff[nd++] = r->matches[i++];
		else if (i == r->n_matches || next[j] < r->matches[i])
			diff[nd++] = next[j++];
		else
			i++, j++;
	}
	free(r->matches);
	r->matches = next;
	r->n_matches = n;
	bool ok = true;
	for (size_t at = 0; at < nd && ok; at += 65536) {
		size_t k = nd - at < 65536 ? nd - at : 65536;
		gos_map_read_slots(map, diff + at, k, &r->match_view);
		struct gos_map_view *v = &r->match_view;
		struct gos_token_update *u = malloc((v->n_tokens + 1) * sizeof(*u));
		if (!u) {
			ok = false;
			break;
		}
		for (size_t q = 0; q < v->n_tokens; q++)
			render_token_update(r, &v->tokens[q], &u[q]);
		ok = gos_compute_update(r->compute, u, v->n_tokens);
		free(u);
	}
	free(diff);
	r->proj_valid = false;
	r->splat_valid = false;
	return ok;
}

bool gos_render_set_style(struct gos_render *r, const struct gos_compute_style *style)
{
	if (!gos_compute_set_style(r->compute, style))
		return false;
	r->proj_valid = false;
	r->splat_valid = false;
	return true;
}

/* Turns the view's tokens into GPU updates. */
static bool apply_view(struct gos_render *r, bool replace_all)
{
	struct gos_map_view *v = &r->view;
	if (r->cap_upd < v->n_tokens) {
		struct gos_token_update *u = realloc(r->upd, v->n_tokens * sizeof(*u));
		if (!u)
			return false;
		r->upd = u;
		r->cap_upd = v->n_tokens;
	}
	if (replace_all) {
		for (uint32_t i = 0; i < r->cap_slots; i++)
			r->xyw[(size_t)i * 3 + 2] = -1;
		r->has_bounds = false;
		r->n_slots = 0;
	}
	for (size_t i = 0; i < v->n_tokens; i++) {
		const struct gos_token *t = &v->tokens[i];
		struct gos_token_update *u = &r->upd[i];
		*u = (struct gos_token_update){.slot = t->slot, .removed = t->removed};
		if (!render_reserve_slots(r, t->slot))
			return false;
		float *p = &r->xyw[(size_t)t->slot * 3];
		if (t->removed) {
			p[2] = -1;
			continue;
		}
		render_token_update(r, t, u);
		p[0] = t->x;
		p[1] = t->y;
		p[2] = t->w;
		if (t->slot >= r->n_slots)
			r->n_slots = t->slot + 1;
		if (t->w > r->max_w)
			r->max_w = t->w;
		double hw = t->w * 0.5, hh = GOS_FLOW_LINE_H * 0.5;
		if (!r->has_bounds) {
			r->bx0 = t->x - hw; r->bx1 = t->x + hw;
			r->by0 = t->y - hh; r->by1 = t->y + hh;
			r->has_bounds = true;
		} else {
			if (t->x - hw < r->bx0) r->bx0 = t->x - hw;
			if (t->x + hw > r->bx1) r->bx1 = t->x + hw;
			if (t->y - hh < r->by0) r->by0 = t->y - hh;
			if (t->y + hh > r->by1) r->by1 = t->y + hh;
		}

		float *m = slotbuf_write(r->vk, &r->meta, t->slot);
		uint32_t *g = slotbuf_write(r->vk, &r->glyphs, t->slot);
		if (!m || !g)
			return false;
		uint16_t cells[MAX_GLYPHS] = {0};
		uint32_t n = 0;
		const char *s = t->text ? t->text : "";
		uint32_t cp;
		while (n < MAX_GLYPHS && (cp = gos_text_utf8_next(&s)) != 0)
			cells[n++] = (uint16_t)gos_text_glyph(r->text, cp);
		if (n == MAX_GLYPHS && *s)
			cells[MAX_GLYPHS - 1] = (uint16_t)gos_text_glyph(r->text, 0x2026);
		uint32_t boxes = (uint32_t)lroundf(t->w / GOS_FLOW_CHAR_W);
		if (n > boxes)
			n = boxes;
		m[0] = t->w;
		m[1] = (float)(t->arrived - r->epoch);
		if (m[1] > r->last_arrival)
			r->last_arrival = m[1];
		m[2] = (float)t->stream;
		m[3] = (float)n;
		for (int k = 0; k < MAX_GLYPHS / 2; k++)
			g[k] = (uint32_t)cells[2 * k] | ((uint32_t)cells[2 * k + 1] << 16);
	}
	bool ok = replace_all ? gos_compute_set_all(r->compute, r->upd, v->n_tokens)
	                      : gos_compute_update(r->compute, r->upd, v->n_tokens);
	for (size_t i = 0; i < v->n_streams; i++)
		copy_stream(r, &v->streams[i]);
	r->live_tokens = v->live_tokens;
	return ok;
}

size_t gos_render_sync(struct gos_render *r, struct gos_map *map)
{
	size_t max = r->o.max_sync_tokens ? r->o.max_sync_tokens : 65536;
	if (!r->paging) {
		if (gos_map_read_since(map, r->seq, max, &r->view)) {
			apply_view(r, false);
			r->seq = r->view.seq;
			r->more = r->view.more;
			return r->view.n_tokens;
		}
		/* Fell behind the change log: page in a full copy. */
		r->paging = true;
		r->first_page = true;
		r->page_next = 0;
	}
	gos_map_read_all(map, r->page_next, max, &r->view);
	apply_view(r, r->first_page);
	if (r->first_page)
		r->page_seq = r->view.seq;
	r->first_page = false;
	if (r->view.more) {
		r->page_next = r->view.next_slot;
	} else {
		r->paging = false;
		r->seq = r->page_seq;
	}
	r->more = true;
	return r->view.n_tokens;
}

void gos_render_resync(struct gos_render *r)
{
	r->paging = true;
	r->first_page = true;
	r->page_next = 0;
	r->n_streams = 0;
}

bool gos_render_behind(const struct gos_render *r)
{
	return r->paging || r->more;
}

void gos_render_state(const struct gos_render *r, struct gos_render_state *out)
{
	*out = (struct gos_render_state){
		.live_tokens = r->live_tokens, .seq = r->seq, .drawn = r->drawn,
		.has_bounds = r->has_bounds, .x0 = r->bx0, .y0 = r->by0, .x1 = r->bx1, .y1 = r->by1,
		.n_streams = r->n_streams, .cpu_compute = gos_compute_is_cpu(r->compute),
		.shifts = r->shifts,
	};
}

const struct gos_stream *gos_render_stream(const struct gos_render *r, size_t i)
{
	if (i >= r->n_streams)
		return NULL;
	struct render_stream *c = &r->streams[i];
	c->s.name = c->name;
	c->s.state = c->state;
	c->s.model = c->model;
	c->s.finish_reason = c->finish_reason;
	c->s.message = c->message;
	return &c->s;
}

bool gos_render_slot(const struct gos_render *r, uint32_t slot, float *x, float *y, float *w)
{
	if (slot >= r->cap_slots || r->xyw[(size_t)slot * 3 + 2] < 0)
		return false;
	*x = r->xyw[(size_t)slot * 3];
	*y = r->xyw[(size_t)slot * 3 + 1];
	*w = r->xyw[(size_t)slot * 3 + 2];
	return true;
}

int64_t gos_render_pick(const struct gos_render *r, double wx, double wy)
{
	const double hh = GOS_FLOW_LINE_H * 0.5;
	for (uint32_t i = r->n_slots; i-- > 0;) {
		const float *p = &r->xyw[(size_t)i * 3];
		if (p[2] >= 0 && fabs(wx - p[0]) <= p[2] * 0.5 && fabs(wy - p[1]) <= hh)
			return i;
	}
	return -1;
}

struct gos_view gos_render_fit(const struct gos_render *r, double vw, double vh)
{
	if (!r->has_bounds)
		return (struct gos_view){.cx = 0, .cy = 0, .zoom = 1};
	return gos_view_fit(vw, vh, r->bx0, r->by0, r->bx1, r->by1, 24);
}
