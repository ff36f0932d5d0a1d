#include "gos_render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_compute.h"
#include "gos_text.h"
#include "gos_time.h"

static const uint32_t fullscreen_vert[] =
#include "fullscreen.vert.inc"
;
static const uint32_t grid_frag[] =
#include "grid.frag.inc"
;
static const uint32_t token_vert[] =
#include "token.vert.inc"
;
static const uint32_t token_frag[] =
#include "token.frag.inc"
;
static const uint32_t overlay_vert[] =
#include "overlay.vert.inc"
;
static const uint32_t overlay_frag[] =
#include "overlay.frag.inc"
;
static const uint32_t token_splat_comp[] =
#include "token_splat.comp.inc"
;
static const uint32_t map_background_comp[] =
#include "map_background.comp.inc"
;

#define NONE UINT32_MAX
#define MAX_GLYPHS 16            /* per token; longer texts end in an ellipsis */
#define PUSH_SIZE 128
#define BG_R 0.043f
#define BG_G 0.055f
#define BG_B 0.078f
#define MAX_STREAMS_SHOWN 10
/* Below this line height (pixels) no text shows and tokens are boxes of a
 * few pixels: they are splatted by token_splat.comp instead of drawn as
 * quads (lavapipe sets up each quad's two triangles at ~1 us). */
#define SPLAT_BELOW_PX 8.0

/* Mirrors of the shaders' push constant blocks. */
struct token_push {
	VkDeviceAddress out, meta, glyphs;
	float viewport[2];
	float zoom, now, fade_s, text_alpha, line_h, char_w;
	uint32_t flags;
	uint32_t pad;
};
enum {
	GRID_ON = 1u,
	GRID_SPLATS = 2u,
	GRID_FLAT = 4u,
	GRID_POINTS = 8u,
	GRID_BGRA = 16u,
};
struct grid_push {
	float line[4];
	float axis_color[4];
	float viewport[2];
	float center[2];
	float axis[2];
	float zoom, base;
	float strength[3];
	uint32_t flags;              /* GRID_* */
	VkDeviceAddress ids, tokens, meta, lut;
	float now, fade_s;
	uint32_t palette;
	uint32_t origin;             /* map_background.comp: first pixel, x | y << 16 */
};
/* Mirrors the push constant block of token_splat.comp. */
struct splat_push {
	VkDeviceAddress tokens, meta, ids, counter;
	float center[2];
	float viewport[2];
	float zoom, line_h;
	uint32_t count, row_stride;
	int32_t cols[2], rows[2];    /* pixels written: these columns and rows */
	float max_half;              /* pixels: no token's half width exceeds it */
	uint32_t pad;
};
_Static_assert(sizeof(struct token_push) <= PUSH_SIZE, "push size");
_Static_assert(sizeof(struct grid_push) <= PUSH_SIZE, "push size");
_Static_assert(offsetof(struct grid_push, ids) == 80 && offsetof(struct grid_push, now) == 112,
               "grid_push mirrors grid.frag's std430 block");

struct ov_vertex {
	float x, y, u, v;
	float r, g, b, a;
	float mode;
};

/* Per-slot records on the GPU, updated through staged copies recorded into
 * the frame (only the slots that changed). */
struct slotbuf {
	const char *name;
	size_t rec;                  /* bytes per slot */
	struct gos_vk_buffer *dev;
	uint32_t cap;                /* slots dev holds */
	uint8_t *pend;               /* rec bytes per pending slot */
	uint32_t *pend_slot;
	uint32_t n_pend, cap_pend;
	uint32_t *pend_at;           /* slot -> index in pend, or NONE; cap entries */
	struct gos_vk_buffer *staging[4];
	VkBufferCopy *regions;
	size_t cap_regions;
};

struct frame {
	VkCommandBuffer cmd;
	VkFence fence;
	bool submitted;
	struct gos_vk_buffer *overlay;
};

struct stream_copy {
	struct gos_stream s;         /* name/state point into the strings below */
	char name[64];
	char state[32];
};

struct gos_render {
	struct gos_vk *vk;
	struct gos_render_opts o;
	struct gos_compute *compute;
	struct gos_text *text;
	double epoch;

	VkRenderPass pass;
	VkDescriptorSetLayout dsl;
	VkDescriptorPool dpool;
	VkDescriptorSet set;
	VkPipelineLayout layout;
	VkPipeline grid, tokens, overlay;
	VkCommandPool cmd_pool;
	struct frame frames[4];
	uint32_t n_frames, cur;

	struct slotbuf meta, glyphs;

	/* CPU copy of what the pick, bounds and markers need: x, y, w (w < 0:
	 * empty slot). */
	float *xyw;
	uint32_t cap_slots;
	uint32_t n_slots;            /* highest live slot + 1 seen */
	float max_w;
	bool has_bounds;
	double bx0, by0, bx1, by1;

	/* map sync */
	uint64_t seq;
	bool paging, first_page;
	uint32_t page_next;
	uint64_t page_seq;
	bool more;
	struct gos_map_view view;
	struct gos_token_update *upd;
	size_t cap_upd;
	uint64_t live_tokens;
	struct stream_copy *streams;
	size_t n_streams, cap_streams;

	struct ov_vertex *ov;
	size_t n_ov, cap_ov;
	uint32_t drawn;

	/* What the GPU holds from earlier frames, so a frame whose camera and
	 * tokens did not change skips the work: the projection (quads) ... */
	bool proj_valid;
	struct gos_camera proj_cam;
	/* ... the splats (ids: slot + 1 of the newest token per pixel) ... */
	VkPipelineLayout splat_layout, bg_layout;
	VkPipeline splat, bg;
	struct gos_vk_buffer *splat_ids;    /* 2 uint32 per pixel: ids, then background colors */
	uint32_t bg_w, bg_h;                /* the extent the buffer is laid out for */
	struct gos_vk_buffer *splat_count;  /* uint32: tokens splatted */
	bool splat_valid;
	struct gos_camera splat_cam;
	/* A pan by whole pixels shifts the buffer into its twin (ping-pong)
	 * and computes only the exposed strips: the view center and zoom the
	 * ids show exactly (the camera's may differ by < 0.01 px) ... */
	double splat_cx, splat_cy, splat_zoom;
	struct gos_vk_buffer *splat_twin;
	struct gos_vk_buffer *zeros;        /* uint32 0 per column: clears exposed columns */
	VkBufferCopy *clear_rows;
	size_t cap_clear_rows;
	/* ... and the background strips left to compute (bg_shift). */
	bool bg_shift, bg_on_splat;
	int32_t shift_dx, shift_dy;
	uint64_t shifts;
	bool last_splat;                    /* the last frame splatted (drawn count) */
	/* ... and the background colors (copy path). */
	VkRenderPass pass_load;             /* keeps the copied background */
	bool bg_valid;
	bool bg_final;                      /* computed after every fade-in had ended */
	struct grid_push bg_push;           /* what they were computed with (now = 0) */
	float last_arrival;                 /* newest meta arrival (renderer clock) */
	uint64_t backgrounds;
	uint64_t projections, splats;       /* dispatches recorded */
};

double gos_render_now(const struct gos_render *r)
{
	return gos_now_s() - r->epoch;
}

/* ---- per-slot buffers ---- */

static bool slotbuf_init(struct gos_vk *vk, struct slotbuf *b, const char *name, size_t rec)
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

static void slotbuf_finish(struct gos_vk *vk, struct slotbuf *b)
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
static void *slotbuf_write(struct gos_vk *vk, struct slotbuf *b, uint32_t slot)
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

static bool slotbuf_record(struct gos_vk *vk, struct slotbuf *b, uint32_t frame,
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

static bool reserve_slots(struct gos_render *r, uint32_t slot)
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

static void copy_stream(struct gos_render *r, const struct gos_stream *s)
{
	if (s->index >= r->cap_streams) {
		size_t cap = r->cap_streams ? r->cap_streams : 8;
		while (cap <= s->index)
			cap *= 2;
		struct stream_copy *p = realloc(r->streams, cap * sizeof(*p));
		if (!p)
			return;
		memset(p + r->cap_streams, 0, (cap - r->cap_streams) * sizeof(*p));
		r->streams = p;
		r->cap_streams = cap;
	}
	struct stream_copy *c = &r->streams[s->index];
	c->s = *s;
	snprintf(c->name, sizeof(c->name), "%s", s->name ? s->name : "");
	snprintf(c->state, sizeof(c->state), "%s", s->state ? s->state : "");
	if (s->index >= r->n_streams)
		r->n_streams = s->index + 1;
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
		if (!reserve_slots(r, t->slot))
			return false;
		float *p = &r->xyw[(size_t)t->slot * 3];
		if (t->removed) {
			p[2] = -1;
			continue;
		}
		u->x = t->x;
		u->y = t->y;
		u->confidence = t->confidence;
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
	struct stream_copy *c = &r->streams[i];
	c->s.name = c->name;
	c->s.state = c->state;
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

/* ---- overlay (HUD) geometry ---- */

static void ov_quad(struct gos_render *r, float x0, float y0, float x1, float y1,
                    float u0, float v0, float u1, float v1, const float c[4], float mode)
{
	if (r->n_ov + 6 > r->cap_ov) {
		size_t cap = r->cap_ov ? r->cap_ov * 2 : 4096;
		struct ov_vertex *p = realloc(r->ov, cap * sizeof(*p));
		if (!p)
			return;
		r->ov = p;
		r->cap_ov = cap;
	}
	struct ov_vertex q[4] = {
		{x0, y0, u0, v0, c[0], c[1], c[2], c[3], mode},
		{x1, y0, u1, v0, c[0], c[1], c[2], c[3], mode},
		{x1, y1, u1, v1, c[0], c[1], c[2], c[3], mode},
		{x0, y1, u0, v1, c[0], c[1], c[2], c[3], mode},
	};
	static const int idx[6] = {0, 1, 2, 0, 2, 3};
	for (int i = 0; i < 6; i++)
		r->ov[r->n_ov++] = q[idx[i]];
}

static void ov_rect(struct gos_render *r, float x, float y, float w, float h, const float c[4])
{
	ov_quad(r, x, y, x + w, y + h, 0, 0, 0, 0, c, 0);
}

/* Draws UTF-8 text with its top-left at (x, y), `px` pixels per line;
 * returns the x after it. */
static float ov_text(struct gos_render *r, float x, float y, float px, const char *s,
                     const float c[4])
{
	float cw = px * (GOS_FLOW_CHAR_W / GOS_FLOW_LINE_H);
	uint32_t cp;
	while ((cp = gos_text_utf8_next(&s)) != 0) {
		uint32_t cell = gos_text_glyph(r->text, cp);
		if (cell != GOS_TEXT_CELL_BLANK) {
			float u0 = (float)((cell % GOS_TEXT_COLS) * GOS_TEXT_CELL_W) / GOS_TEXT_ATLAS_W;
			float v0 = (float)((cell / GOS_TEXT_COLS) * GOS_TEXT_CELL_H) / GOS_TEXT_ATLAS_H;
			float u1 = u0 + (float)GOS_TEXT_CELL_W / GOS_TEXT_ATLAS_W;
			float v1 = v0 + (float)GOS_TEXT_CELL_H / GOS_TEXT_ATLAS_H;
			ov_quad(r, x, y, x + cw, y + px, u0, v0, u1, v1, c, 1);
		}
		x += cw;
	}
	return x;
}

static float text_width(float px, const char *s)
{
	float cw = px * (GOS_FLOW_CHAR_W / GOS_FLOW_LINE_H);
	size_t n = 0;
	while (gos_text_utf8_next(&s))
		n++;
	return cw * (float)n;
}

static void fmt_count(char *out, size_t len, double v)
{
	if (v >= 1e9)
		snprintf(out, len, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(out, len, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(out, len, "%.1fk", v / 1e3);
	else
		snprintf(out, len, "%.0f", v);
}

/* A distinct, pleasant hue per stream (golden-angle steps). */
static void stream_color(uint32_t i, float c[4])
{
	double h = fmod(0.58 + i * 0.381966, 1.0) * 6.0;
	double s = 0.55, v = 0.95;
	int k = (int)h;
	double f = h - k, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
	double rgb[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
	c[0] = (float)rgb[k % 6][0];
	c[1] = (float)rgb[k % 6][1];
	c[2] = (float)rgb[k % 6][2];
	c[3] = 1;
}

static void build_overlay(struct gos_render *r, const struct gos_frame_info *fi, double vw,
                          double vh)
{
	static const float panel[4] = {0.02f, 0.025f, 0.04f, 0.78f};
	static const float white[4] = {0.93f, 0.95f, 1.0f, 1.0f};
	static const float dim[4] = {0.62f, 0.67f, 0.76f, 1.0f};
	const struct gos_view *v = &fi->view;
	r->n_ov = 0;

	/* Newest token of each stream: a caret after it and an underline. */
	double pulse = fi->no_fade ? 1.0 : 0.6 + 0.4 * cos(fi->now * 5.0);
	for (size_t i = 0; i < r->n_streams; i++) {
		const struct gos_stream *s = &r->streams[i].s;
		float x, y, w;
		if (s->newest_slot < 0 || !gos_render_slot(r, (uint32_t)s->newest_slot, &x, &y, &w))
			continue;
		double sx, sy;
		gos_view_to_screen(v, vw, vh, x + w * 0.5, y, &sx, &sy);
		double h = GOS_FLOW_LINE_H * v->zoom;
		if (sx < -20 || sy < -20 || sx > vw + 20 || sy > vh + 20)
			continue;
		float c[4];
		stream_color((uint32_t)i, c);
		c[3] = (float)pulse;
		if (h >= 6) {
			ov_rect(r, (float)sx + 1, (float)(sy - h * 0.45), 2.5f, (float)(h * 0.9), c);
			double ux0 = (x - w * 0.5 - v->cx) * v->zoom + vw * 0.5;
			c[3] = (float)(0.7 * pulse);
			ov_rect(r, (float)ux0, (float)(sy + h * 0.5 - 1), (float)(sx - ux0), 2, c);
		} else {
			ov_rect(r, (float)sx - 3, (float)sy - 3, 6, 6, c);
		}
	}

	float px = 15, lh = 20;
	if (fi->hud & (GOS_HUD_STATS | GOS_HUD_STREAMS)) {
		char line[MAX_STREAMS_SHOWN + 2][160];
		int nl = 0;
		if (fi->hud & GOS_HUD_STATS) {
			char tok[32], ev[32];
			fmt_count(tok, sizeof(tok), (double)r->live_tokens);
			fmt_count(ev, sizeof(ev), fi->events_per_s);
			if (fi->viewers >= 0)
				snprintf(line[nl++], sizeof(line[0]), "%5.1f fps  %s tokens  %s events/s  %lld viewers",
				         fi->fps, tok, ev, (long long)fi->viewers);
			else
				snprintf(line[nl++], sizeof(line[0]), "%5.1f fps  %s tokens  %s events/s",
				         fi->fps, tok, ev);
		}
		size_t first_stream_line = (size_t)nl;
		if (fi->hud & GOS_HUD_STREAMS) {
			for (size_t i = 0; i < r->n_streams && nl < MAX_STREAMS_SHOWN + 1; i++) {
				const struct stream_copy *c = &r->streams[i];
				char prog[64] = "";
				if (c->s.total_tokens > 0)
					snprintf(prog, sizeof(prog), "  %lld/%lld", (long long)c->s.tokens_processed,
					         (long long)c->s.total_tokens);
				else if (c->s.tokens_processed > 0)
					snprintf(prog, sizeof(prog), "  %lld", (long long)c->s.tokens_processed);
				char el[32] = "";
				if (c->s.elapsed_ms > 0)
					snprintf(el, sizeof(el), "  %.1fs", c->s.elapsed_ms / 1000.0);
				snprintf(line[nl++], sizeof(line[0]), "   %.24s  %.16s%s%s  (%llu tokens)",
				         c->name[0] ? c->name : "default", c->state[0] ? c->state : "-",
				         prog, el, (unsigned long long)c->s.n_tokens);
			}
			if (r->n_streams > MAX_STREAMS_SHOWN)
				snprintf(line[nl++], sizeof(line[0]), "   + %zu more streams",
				         r->n_streams - MAX_STREAMS_SHOWN);
		}
		float wmax = 0;
		for (int i = 0; i < nl; i++) {
			float w = text_width(px, line[i]);
			if (w > wmax)
				wmax = w;
		}
		if (nl) {
			ov_rect(r, 10, 10, wmax + 20, (float)nl * lh + 12, panel);
			for (int i = 0; i < nl; i++) {
				float y = 16 + (float)i * lh;
				bool is_stream = (size_t)i >= first_stream_line && (size_t)i - first_stream_line < r->n_streams;
				if (is_stream) {
					size_t si = (size_t)i - first_stream_line;
					float c[4];
					stream_color((uint32_t)si, c);
					ov_rect(r, 22, y + 5, 9, 9, c);
					if ((int32_t)si == fi->active_stream)
						ov_rect(r, 12, y + 2, 3, 15, white);
				}
				ov_text(r, 20, y, px, line[i], is_stream ? dim : white);
			}
		}
	}

	if (fi->hud & GOS_HUD_SCALE) {
		double len = gos_cam_nice_length(v->zoom, 160);
		float bar = (float)(len * v->zoom);
		char lab[48];
		if (len >= 1)
			snprintf(lab, sizeof(lab), "%.0f units", len);
		else
			snprintf(lab, sizeof(lab), "%g units", len);
		float x = 20, y = (float)vh - 22;
		ov_rect(r, x - 8, y - 24, (bar > text_width(13, lab) ? bar : text_width(13, lab)) + 16, 36, panel);
		ov_rect(r, x, y, bar, 2, white);
		ov_rect(r, x, y - 5, 2, 7, white);
		ov_rect(r, x + bar - 2, y - 5, 2, 7, white);
		ov_text(r, x, y - 21, 13, lab, dim);
	}

	if (fi->hud & GOS_HUD_HELP) {
		const char *help = "drag pan  wheel zoom  Home fit  F follow  Tab stream  S shot  Q quit";
		float w = text_width(13, help);
		ov_text(r, (float)vw - w - 16, (float)vh - 24, 13, help, dim);
	}

	if (fi->banner) {
		float w = text_width(16, fi->banner);
		float x = (float)(vw - w) * 0.5f, y = (float)vh - 60;
		ov_rect(r, x - 12, y - 6, w + 24, 28, panel);
		ov_text(r, x, y, 16, fi->banner, white);
	}

	if (fi->hover) {
		const struct gos_token *t = fi->hover;
		char lines[12][160];
		int nl = 0;
		snprintf(lines[nl++], sizeof(lines[0]), "\"%.60s\"", t->text ? t->text : "");
		if (isnan(t->confidence))
			snprintf(lines[nl++], sizeof(lines[0]), "confidence  unknown");
		else
			snprintf(lines[nl++], sizeof(lines[0]), "confidence  %.3f", t->confidence);
		snprintf(lines[nl++], sizeof(lines[0]), "stream      %.40s",
		         fi->hover_stream && fi->hover_stream[0] ? fi->hover_stream : "default");
		snprintf(lines[nl++], sizeof(lines[0]), "timestamp   %.3f", t->timestamp);
		snprintf(lines[nl++], sizeof(lines[0]), "id          %.40s", t->id ? t->id : "");
		for (uint32_t i = 0; i < t->n_alts && nl < 12; i++)
			snprintf(lines[nl++], sizeof(lines[0]), "  %-14.14s p=%.3f", t->alts[i].token,
			         exp(t->alts[i].logprob));
		float wmax = 0;
		for (int i = 0; i < nl; i++) {
			float w = text_width(px, lines[i]);
			if (w > wmax)
				wmax = w;
		}
		float bw = wmax + 20, bh = (float)nl * lh + 12;
		float x = (float)fi->mouse_x + 18, y = (float)fi->mouse_y + 18;
		if (x + bw > vw)
			x = (float)fi->mouse_x - 18 - bw;
		if (y + bh > vh)
			y = (float)fi->mouse_y - 18 - bh;
		ov_rect(r, x, y, bw, bh, panel);
		for (int i = 0; i < nl; i++)
			ov_text(r, x + 10, y + 6 + (float)i * lh, px, lines[i], i == 0 ? white : dim);
	}
}

/* ---- pipelines ---- */

static VkShaderModule make_module(VkDevice dev, const uint32_t *code, size_t size)
{
	VkShaderModuleCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
		.codeSize = size,
		.pCode = code,
	};
	VkShaderModule m = VK_NULL_HANDLE;
	if (vkCreateShaderModule(dev, &ci, NULL, &m) != VK_SUCCESS)
		return VK_NULL_HANDLE;
	return m;
}

static VkPipeline make_pipeline(struct gos_render *r, const uint32_t *vs, size_t vs_size,
                                const uint32_t *fs, size_t fs_size, bool overlay_input,
                                const char *name)
{
	VkDevice dev = r->vk->device;
	VkPipeline p = VK_NULL_HANDLE;
	VkShaderModule vm = make_module(dev, vs, vs_size);
	VkShaderModule fm = make_module(dev, fs, fs_size);
	if (!vm || !fm)
		goto error;
	VkPipelineShaderStageCreateInfo stages[2] = {
		{.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
		 .stage = VK_SHADER_STAGE_VERTEX_BIT, .module = vm, .pName = "main"},
		{.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
		 .stage = VK_SHADER_STAGE_FRAGMENT_BIT, .module = fm, .pName = "main"},
	};
	VkVertexInputBindingDescription bind = {0, sizeof(struct ov_vertex), VK_VERTEX_INPUT_RATE_VERTEX};
	VkVertexInputAttributeDescription attrs[4] = {
		{0, 0, VK_FORMAT_R32G32_SFLOAT, offsetof(struct ov_vertex, x)},
		{1, 0, VK_FORMAT_R32G32_SFLOAT, offsetof(struct ov_vertex, u)},
		{2, 0, VK_FORMAT_R32G32B32A32_SFLOAT, offsetof(struct ov_vertex, r)},
		{3, 0, VK_FORMAT_R32_SFLOAT, offsetof(struct ov_vertex, mode)},
	};
	VkPipelineVertexInputStateCreateInfo vi = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO,
		.vertexBindingDescriptionCount = overlay_input ? 1 : 0,
		.pVertexBindingDescriptions = &bind,
		.vertexAttributeDescriptionCount = overlay_input ? 4 : 0,
		.pVertexAttributeDescriptions = attrs,
	};
	VkPipelineInputAssemblyStateCreateInfo ia = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO,
		.topology = VK_PRIMITIVE_TOPOLOGY_TRIANGLE_LIST,
	};
	VkPipelineViewportStateCreateInfo vp = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO,
		.viewportCount = 1,
		.scissorCount = 1,
	};
	VkPipelineRasterizationStateCreateInfo rs = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO,
		.polygonMode = VK_POLYGON_MODE_FILL,
		.cullMode = VK_CULL_MODE_NONE,
		.lineWidth = 1,
	};
	VkPipelineMultisampleStateCreateInfo ms = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO,
		.rasterizationSamples = VK_SAMPLE_COUNT_1_BIT,
	};
	VkPipelineColorBlendAttachmentState blend = {
		.blendEnable = VK_TRUE,
		.srcColorBlendFactor = VK_BLEND_FACTOR_ONE,
		.dstColorBlendFactor = VK_BLEND_FACTOR_ONE_MINUS_SRC_ALPHA,
		.colorBlendOp = VK_BLEND_OP_ADD,
		.srcAlphaBlendFactor = VK_BLEND_FACTOR_ONE,
		.dstAlphaBlendFactor = VK_BLEND_FACTOR_ONE_MINUS_SRC_ALPHA,
		.alphaBlendOp = VK_BLEND_OP_ADD,
		.colorWriteMask = 0xF,
	};
	VkPipelineColorBlendStateCreateInfo cb = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO,
		.attachmentCount = 1,
		.pAttachments = &blend,
	};
	VkDynamicState dyn[2] = {VK_DYNAMIC_STATE_VIEWPORT, VK_DYNAMIC_STATE_SCISSOR};
	VkPipelineDynamicStateCreateInfo ds = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_DYNAMIC_STATE_CREATE_INFO,
		.dynamicStateCount = 2,
		.pDynamicStates = dyn,
	};
	VkGraphicsPipelineCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO,
		.stageCount = 2,
		.pStages = stages,
		.pVertexInputState = &vi,
		.pInputAssemblyState = &ia,
		.pViewportState = &vp,
		.pRasterizationState = &rs,
		.pMultisampleState = &ms,
		.pColorBlendState = &cb,
		.pDynamicState = &ds,
		.layout = r->layout,
		.renderPass = r->pass,
	};
	VK(vkCreateGraphicsPipelines(dev, VK_NULL_HANDLE, 1, &ci, NULL, &p));
	gos_vk_name(r->vk, VK_OBJECT_TYPE_PIPELINE, (uint64_t)p, "%s pipeline", name);
error:
	if (vm)
		vkDestroyShaderModule(dev, vm, NULL);
	if (fm)
		vkDestroyShaderModule(dev, fm, NULL);
	return p;
}

/* The render pass: `load` keeps the background copied into the image
 * (initial layout TRANSFER_DST_OPTIMAL), otherwise it clears. Both are
 * compatible (the same framebuffers serve both). */
static bool create_pass(struct gos_render *r, bool load, VkRenderPass *out)
{
	VkAttachmentDescription att = {
		.format = r->o.format,
		.samples = VK_SAMPLE_COUNT_1_BIT,
		.loadOp = load ? VK_ATTACHMENT_LOAD_OP_LOAD : VK_ATTACHMENT_LOAD_OP_CLEAR,
		.storeOp = VK_ATTACHMENT_STORE_OP_STORE,
		.stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE,
		.stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
		.initialLayout = load ? VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL : VK_IMAGE_LAYOUT_UNDEFINED,
		.finalLayout = r->o.final_layout,
	};
	VkAttachmentReference ref = {0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
	VkSubpassDescription sub = {
		.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS,
		.colorAttachmentCount = 1,
		.pColorAttachments = &ref,
	};
	VkSubpassDependency deps[2] = {
		{ /* earlier reads of the image (readback, presentation) and the
		     background copy before we read and write it */
			.srcSubpass = VK_SUBPASS_EXTERNAL,
			.dstSubpass = 0,
			.srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT |
			                VK_PIPELINE_STAGE_TRANSFER_BIT,
			.dstStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
			/* the same in both passes: dependencies are part of
			   render pass compatibility */
			.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
			.dstAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT |
			                 VK_ACCESS_COLOR_ATTACHMENT_READ_BIT,
		},
		{ /* our writes before the readback copy */
			.srcSubpass = 0,
			.dstSubpass = VK_SUBPASS_EXTERNAL,
			.srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
			.dstStageMask = VK_PIPELINE_STAGE_TRANSFER_BIT,
			.srcAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT,
			.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
		},
	};
	VkRenderPassCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO,
		.attachmentCount = 1,
		.pAttachments = &att,
		.subpassCount = 1,
		.pSubpasses = &sub,
		.dependencyCount = 2,
		.pDependencies = deps,
	};
	VK(vkCreateRenderPass(r->vk->device, &ci, NULL, out));
	return true;
error:
	return false;
}

static bool create_layout(struct gos_render *r)
{
	VkDevice dev = r->vk->device;
	VkDescriptorSetLayoutBinding b = {
		.binding = 0,
		.descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER,
		.descriptorCount = 1,
		.stageFlags = VK_SHADER_STAGE_FRAGMENT_BIT,
	};
	VkDescriptorSetLayoutCreateInfo dci = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
		.bindingCount = 1,
		.pBindings = &b,
	};
	VK(vkCreateDescriptorSetLayout(dev, &dci, NULL, &r->dsl));
	VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 1};
	VkDescriptorPoolCreateInfo pci = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
		.maxSets = 1,
		.poolSizeCount = 1,
		.pPoolSizes = &ps,
	};
	VK(vkCreateDescriptorPool(dev, &pci, NULL, &r->dpool));
	VkDescriptorSetAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
		.descriptorPool = r->dpool,
		.descriptorSetCount = 1,
		.pSetLayouts = &r->dsl,
	};
	VK(vkAllocateDescriptorSets(dev, &ai, &r->set));
	VkDescriptorImageInfo ii = {
		.sampler = gos_text_sampler(r->text),
		.imageView = gos_text_view(r->text),
		.imageLayout = VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL,
	};
	VkWriteDescriptorSet w = {
		.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
		.dstSet = r->set,
		.dstBinding = 0,
		.descriptorCount = 1,
		.descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER,
		.pImageInfo = &ii,
	};
	vkUpdateDescriptorSets(dev, 1, &w, 0, NULL);
	VkPushConstantRange range = {VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT, 0, PUSH_SIZE};
	VkPipelineLayoutCreateInfo lci = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
		.setLayoutCount = 1,
		.pSetLayouts = &r->dsl,
		.pushConstantRangeCount = 1,
		.pPushConstantRanges = &range,
	};
	VK(vkCreatePipelineLayout(dev, &lci, NULL, &r->layout));
	return true;
error:
	return false;
}

static bool create_frames(struct gos_render *r)
{
	VkDevice dev = r->vk->device;
	VkCommandPoolCreateInfo pci = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
		.queueFamilyIndex = r->vk->queue_family,
	};
	VK(vkCreateCommandPool(dev, &pci, NULL, &r->cmd_pool));
	for (uint32_t i = 0; i < r->n_frames; i++) {
		struct frame *f = &r->frames[i];
		VkCommandBufferAllocateInfo ai = {
			.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
			.commandPool = r->cmd_pool,
			.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
			.commandBufferCount = 1,
		};
		VK(vkAllocateCommandBuffers(dev, &ai, &f->cmd));
		VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
		VK(vkCreateFence(dev, &fci, NULL, &f->fence));
	}
	return true;
error:
	return false;
}

static bool make_compute(struct gos_render *r, const uint32_t *code, size_t size, uint32_t push_size,
                         const char *name, VkPipelineLayout *layout, VkPipeline *pipe)
{
	VkDevice dev = r->vk->device;
	VkShaderModule m = make_module(dev, code, size);
	if (!m)
		return false;
	VkPushConstantRange range = {VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size};
	VkPipelineLayoutCreateInfo lci = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
		.pushConstantRangeCount = 1,
		.pPushConstantRanges = &range,
	};
	VK(vkCreatePipelineLayout(dev, &lci, NULL, layout));
	VkComputePipelineCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
		.stage = {
			.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
			.stage = VK_SHADER_STAGE_COMPUTE_BIT,
			.module = m,
			.pName = "main",
		},
		.layout = *layout,
	};
	VK(vkCreateComputePipelines(dev, VK_NULL_HANDLE, 1, &ci, NULL, pipe));
	gos_vk_name(r->vk, VK_OBJECT_TYPE_PIPELINE, (uint64_t)*pipe, "%s", name);
	vkDestroyShaderModule(dev, m, NULL);
	return true;
error:
	vkDestroyShaderModule(dev, m, NULL);
	return false;
}

/* The splat and background compute pipelines and the splat counter. */
static bool create_splat(struct gos_render *r)
{
	if (!make_compute(r, token_splat_comp, sizeof(token_splat_comp), sizeof(struct splat_push),
	                  "token_splat.comp", &r->splat_layout, &r->splat) ||
	    !make_compute(r, map_background_comp, sizeof(map_background_comp),
	                  sizeof(struct grid_push), "map_background.comp", &r->bg_layout, &r->bg))
		return false;
	r->splat_count = gos_vk_buffer_create(r->vk, 4, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
	                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT |
	                                      VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
	                                      VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
	                                      GOS_VK_MEM_DEVICE, "splat count");
	return r->splat_count != NULL;
}

struct gos_render *gos_render_create(struct gos_vk *vk, const struct gos_render_opts *opts,
                                     char *err, size_t err_len)
{
	struct gos_render *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	err[0] = 0;
	r->vk = vk;
	r->o = opts ? *opts : (struct gos_render_opts){0};
	if (!r->o.format)
		r->o.format = VK_FORMAT_B8G8R8A8_UNORM;
	if (!r->o.final_layout)
		r->o.final_layout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL;
	r->n_frames = r->o.frames_in_flight ? r->o.frames_in_flight : 2;
	if (r->n_frames > 4)
		r->n_frames = 4;
	r->epoch = gos_now_s();
	if (!(vk->queue_flags & VK_QUEUE_GRAPHICS_BIT)) {
		snprintf(err, err_len, "the Vulkan queue has no graphics support");
		goto error;
	}
	r->compute = gos_compute_create(vk, &(struct gos_compute_opts){
		.frames_in_flight = r->n_frames, .cpu = r->o.cpu_compute});
	if (!r->compute) {
		snprintf(err, err_len, "cannot create the token compute pipeline");
		goto error;
	}
	r->text = gos_text_create(vk, &(struct gos_text_opts){.frames_in_flight = r->n_frames},
	                          err, err_len);
	if (!r->text)
		goto error;
	if (!slotbuf_init(vk, &r->meta, "token meta", 16) ||
	    !slotbuf_init(vk, &r->glyphs, "token glyphs", MAX_GLYPHS * 2) ||
	    !reserve_slots(r, 0) || !create_pass(r, false, &r->pass) ||
	    !create_pass(r, true, &r->pass_load) || !create_layout(r) || !create_frames(r))
		goto error;
	r->grid = make_pipeline(r, fullscreen_vert, sizeof(fullscreen_vert), grid_frag,
	                        sizeof(grid_frag), false, "grid");
	r->tokens = make_pipeline(r, token_vert, sizeof(token_vert), token_frag,
	                          sizeof(token_frag), false, "tokens");
	r->overlay = make_pipeline(r, overlay_vert, sizeof(overlay_vert), overlay_frag,
	                           sizeof(overlay_frag), true, "overlay");
	if (!r->grid || !r->tokens || !r->overlay || !create_splat(r))
		goto error;
	return r;
error:
	if (!err[0])
		snprintf(err, err_len, "cannot create the renderer (see the Vulkan log above)");
	gos_render_destroy(r);
	return NULL;
}

void gos_render_destroy(struct gos_render *r)
{
	if (!r)
		return;
	struct gos_vk *vk = r->vk;
	VkDevice dev = vk->device;
	vkDeviceWaitIdle(dev);
	for (uint32_t i = 0; i < 4; i++) {
		struct frame *f = &r->frames[i];
		if (f->fence)
			vkDestroyFence(dev, f->fence, NULL);
		gos_vk_buffer_destroy(vk, f->overlay);
	}
	if (r->cmd_pool)
		vkDestroyCommandPool(dev, r->cmd_pool, NULL);
	if (r->grid)
		vkDestroyPipeline(dev, r->grid, NULL);
	if (r->tokens)
		vkDestroyPipeline(dev, r->tokens, NULL);
	if (r->overlay)
		vkDestroyPipeline(dev, r->overlay, NULL);
	if (r->splat)
		vkDestroyPipeline(dev, r->splat, NULL);
	if (r->splat_layout)
		vkDestroyPipelineLayout(dev, r->splat_layout, NULL);
	gos_vk_buffer_destroy(vk, r->splat_ids);
	gos_vk_buffer_destroy(vk, r->splat_count);
	gos_vk_buffer_destroy(vk, r->splat_twin);
	gos_vk_buffer_destroy(vk, r->zeros);
	free(r->clear_rows);
	if (r->layout)
		vkDestroyPipelineLayout(dev, r->layout, NULL);
	if (r->dpool)
		vkDestroyDescriptorPool(dev, r->dpool, NULL);
	if (r->dsl)
		vkDestroyDescriptorSetLayout(dev, r->dsl, NULL);
	if (r->pass)
		vkDestroyRenderPass(dev, r->pass, NULL);
	if (r->pass_load)
		vkDestroyRenderPass(dev, r->pass_load, NULL);
	if (r->bg)
		vkDestroyPipeline(dev, r->bg, NULL);
	if (r->bg_layout)
		vkDestroyPipelineLayout(dev, r->bg_layout, NULL);
	slotbuf_finish(vk, &r->meta);
	slotbuf_finish(vk, &r->glyphs);
	gos_text_destroy(r->text);
	gos_compute_destroy(r->compute);
	gos_map_view_finish(&r->view);
	free(r->upd);
	free(r->xyw);
	free(r->streams);
	free(r->ov);
	free(r);
}

VkRenderPass gos_render_pass(const struct gos_render *r)
{
	return r->pass;
}

/* ---- frames ---- */

static void push(struct gos_render *r, VkCommandBuffer cmd, const void *data, size_t size)
{
	uint8_t buf[PUSH_SIZE] = {0};
	memcpy(buf, data, size);
	vkCmdPushConstants(cmd, r->layout, VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT,
	                   0, PUSH_SIZE, buf);
}

/* Makes the id/background buffer fit a w x h target. A new layout
 * invalidates the splats and the background it held. */
static bool ensure_bgbuf(struct gos_render *r, uint32_t w, uint32_t h)
{
	VkDeviceSize bytes = (VkDeviceSize)w * h * 8;
	if (r->splat_ids && r->bg_w == w && r->bg_h == h)
		return true;
	r->splat_valid = false;
	r->bg_valid = false;
	r->bg_shift = false;
	r->bg_w = w;
	r->bg_h = h;
	if (r->splat_ids && r->splat_ids->size >= bytes)
		return true;
	/* A bigger target: frames in flight may still read the old buffer. */
	if (r->splat_ids && !gos_render_wait(r))
		return false;
	gos_vk_buffer_destroy(r->vk, r->splat_ids);
	r->splat_ids = gos_vk_buffer_create(r->vk, bytes, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
	                                    VK_BUFFER_USAGE_TRANSFER_DST_BIT |
	                                    VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
	                                    VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
	                                    GOS_VK_MEM_DEVICE, "splat ids and background");
	return r->splat_ids != NULL;
}

static void dispatch_splat(struct gos_render *r, VkCommandBuffer cmd, const struct gos_camera *cam,
                           const int32_t cols[2], const int32_t rows[2]);

/* The whole pixels (dx, dy) the view moved since the splats the buffer
 * holds, when shifting them gives this view: same zoom and viewport, the
 * move a whole number of pixels (to 1/100 px) and at most a quarter of the
 * view (beyond that the strips cost about what a full pass does). */
static bool shift_of(const struct gos_render *r, const struct gos_camera *cam, const struct gos_view *v,
                     int32_t *dx, int32_t *dy)
{
	if (!r->splat_valid || v->zoom != r->splat_zoom || cam->viewport_w != r->splat_cam.viewport_w ||
	    cam->viewport_h != r->splat_cam.viewport_h)
		return false;
	double fx = (v->cx - r->splat_cx) * v->zoom, fy = (v->cy - r->splat_cy) * v->zoom;
	double rx = round(fx), ry = round(fy);
	if (fabs(fx - rx) > 0.01 || fabs(fy - ry) > 0.01 || fabs(rx) * 4 > cam->viewport_w ||
	    fabs(ry) * 4 > cam->viewport_h)
		return false;
	*dx = (int32_t)rx;
	*dy = (int32_t)ry;
	return true;
}

/* The shift path of the splat pass: copies the ids (and the background,
 * when it was computed for them and has no fade-in left) into the twin
 * buffer moved by (dx, dy) pixels, so pixel (x, y) gets what (x + dx,
 * y + dy) held, zeroes the ids of the exposed columns and rows, splats only
 * those, and makes the twin the buffer. The background strips are left to
 * record_background (bg_shift). */
static bool record_shift(struct gos_render *r, VkCommandBuffer cmd, const struct gos_camera *cam,
                         const struct gos_view *v, int32_t dx, int32_t dy)
{
	struct gos_vk *vk = r->vk;
	uint32_t w = r->bg_w, h = r->bg_h;
	/* Frames in flight may still use a buffer being replaced. */
	if (!r->splat_twin || r->splat_twin->size < r->splat_ids->size) {
		if (r->splat_twin && !gos_render_wait(r))
			return false;
		gos_vk_buffer_destroy(vk, r->splat_twin);
		r->splat_twin = gos_vk_buffer_create(vk, r->splat_ids->size, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
		                                     VK_BUFFER_USAGE_TRANSFER_DST_BIT |
		                                     VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
		                                     VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
		                                     GOS_VK_MEM_DEVICE, "splat ids and background (twin)");
		if (!r->splat_twin)
			return false;
	}
	if (!r->zeros || r->zeros->size < (VkDeviceSize)w * 4) {
		if (r->zeros && !gos_render_wait(r))
			return false;
		gos_vk_buffer_destroy(vk, r->zeros);
		r->zeros = gos_vk_buffer_create(vk, (VkDeviceSize)w * 4, VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
		                                GOS_VK_MEM_UPLOAD, "zero columns");
		if (!r->zeros)
			return false;
		memset(r->zeros->mapped, 0, (size_t)w * 4);
		if (!gos_vk_buffer_flush(vk, r->zeros, 0, (VkDeviceSize)w * 4))
			return false;
	}
	if (h > r->cap_clear_rows) {
		VkBufferCopy *n = realloc(r->clear_rows, h * sizeof(*n));
		if (!n)
			return false;
		r->clear_rows = n;
		r->cap_clear_rows = h;
	}
	bool bg = r->bg_valid && r->bg_final && r->bg_on_splat;
	/* The last frames' passes and copies are done with both buffers. */
	VkMemoryBarrier war = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
	                     VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &war, 0, NULL, 0, NULL);
	/* One linear copy: twin[p] = ids[p + dy * w + dx]. Row-major, so what
	 * wraps across a row end (or from the ids into the background) lands
	 * only in the exposed columns and rows, which are redone. */
	int64_t n = (int64_t)w * h * (bg ? 2 : 1);
	int64_t off = (int64_t)dy * w + dx;
	int64_t p0 = off < 0 ? -off : 0, p1 = off > 0 ? n - off : n;
	VkBufferCopy moved = {
		.srcOffset = (VkDeviceSize)(p0 + off) * 4,
		.dstOffset = (VkDeviceSize)p0 * 4,
		.size = (VkDeviceSize)(p1 - p0) * 4,
	};
	vkCmdCopyBuffer(cmd, r->splat_ids->buffer, r->splat_twin->buffer, 1, &moved);
	VkMemoryBarrier copied = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     0, 1, &copied, 0, NULL, 0, NULL);
	int32_t cols[2] = {dx > 0 ? (int32_t)w - dx : 0, dx > 0 ? (int32_t)w : -dx};
	int32_t rows[2] = {dy > 0 ? (int32_t)h - dy : 0, dy > 0 ? (int32_t)h : -dy};
	if (rows[1] > rows[0])
		vkCmdFillBuffer(cmd, r->splat_twin->buffer, (VkDeviceSize)rows[0] * w * 4,
		                (VkDeviceSize)(rows[1] - rows[0]) * w * 4, 0);
	uint32_t k = 0;
	for (int32_t y = 0; cols[1] > cols[0] && y < (int32_t)h; y++)
		if (y < rows[0] || y >= rows[1])
			r->clear_rows[k++] = (VkBufferCopy){
				.srcOffset = 0,
				.dstOffset = ((VkDeviceSize)y * w + (VkDeviceSize)cols[0]) * 4,
				.size = (VkDeviceSize)(cols[1] - cols[0]) * 4,
			};
	if (k)
		vkCmdCopyBuffer(cmd, r->zeros->buffer, r->splat_twin->buffer, k, r->clear_rows);
	struct gos_vk_buffer *t = r->splat_ids;
	r->splat_ids = r->splat_twin;
	r->splat_twin = t;
	dispatch_splat(r, cmd, cam, cols, rows);
	r->splat_valid = true;
	r->splat_cam = *cam;
	r->splat_cx += dx / v->zoom;
	r->splat_cy += dy / v->zoom;
	r->bg_valid = false;
	r->bg_shift = bg;
	r->shift_dx = dx;
	r->shift_dy = dy;
	r->shifts++;
	return true;
}

/* The splat pass: uploads staged tokens, and unless the GPU already holds
 * the splats of this camera and these tokens, clears the id buffer and runs
 * token_splat.comp over every slot (after a pan by whole pixels: shifts
 * them and splats the exposed strips, record_shift). Ends with the ids
 * visible to the fragment stage (grid.frag). */
static bool record_splat(struct gos_render *r, VkCommandBuffer cmd, const struct gos_camera *cam,
                         const struct gos_view *v)
{
	if (!gos_compute_record_upload(r->compute, cmd))
		return false;
	r->proj_valid = false;   /* the projection's output no longer matches the tokens */
	if (r->splat_valid && !memcmp(cam, &r->splat_cam, sizeof(*cam)))
		return true;
	int32_t dx, dy;
	if (shift_of(r, cam, v, &dx, &dy))
		return record_shift(r, cmd, cam, v, dx, dy);
	VkDeviceSize bytes = (VkDeviceSize)cam->viewport_w * (VkDeviceSize)cam->viewport_h * 4;
	if (!ensure_bgbuf(r, (uint32_t)cam->viewport_w, (uint32_t)cam->viewport_h))
		return false;
	/* The last frame's grid pass (and splat) are done with the buffers. */
	VkMemoryBarrier war = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
	                     VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &war, 0, NULL, 0, NULL);
	vkCmdFillBuffer(cmd, r->splat_ids->buffer, 0, bytes, 0);
	int32_t all[2] = {0, (int32_t)cam->viewport_w}, none[2] = {0, 0};
	dispatch_splat(r, cmd, cam, all, none);
	r->splat_valid = true;
	r->bg_valid = false;
	r->bg_shift = false;
	r->splat_cam = *cam;
	r->splat_cx = v->cx;
	r->splat_cy = v->cy;
	r->splat_zoom = v->zoom;
	r->splats++;
	return true;
}

/* Zeroes the counter and runs token_splat.comp over every slot, writing the
 * pixels of columns cols and rows rows (the ids transfers recorded before
 * are made visible to it). Ends with the ids visible to the fragment,
 * compute and transfer stages. */
static void dispatch_splat(struct gos_render *r, VkCommandBuffer cmd, const struct gos_camera *cam,
                           const int32_t cols[2], const int32_t rows[2])
{
	struct gos_vk *vk = r->vk;
	vkCmdFillBuffer(cmd, r->splat_count->buffer, 0, 4, 0);
	VkMemoryBarrier cleared = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     0, 1, &cleared, 0, NULL, 0, NULL);
	struct gos_compute_buffers cb;
	gos_compute_buffers(r->compute, &cb);
	if (cb.slots) {
		uint32_t groups = (cb.slots + 63) / 64;
		uint32_t max_x = vk->props.limits.maxComputeWorkGroupCount[0];
		uint32_t gx = groups < max_x ? groups : max_x;
		uint32_t gy = (groups + gx - 1) / gx;
		struct splat_push sp = {
			.tokens = cb.tokens_address,
			.meta = r->meta.dev->address,
			.ids = r->splat_ids->address,
			.counter = r->splat_count->address,
			.center = {cam->center_x, cam->center_y},
			.viewport = {cam->viewport_w, cam->viewport_h},
			.zoom = cam->zoom,
			.line_h = GOS_FLOW_LINE_H,
			.count = cb.slots,
			.row_stride = gx * 64,
			.cols = {cols[0], cols[1]},
			.rows = {rows[0], rows[1]},
			.max_half = fmaxf(r->max_w * cam->zoom * 0.5f, 1.0f),
		};
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, r->splat);
		vkCmdPushConstants(cmd, r->splat_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(sp), &sp);
		vkCmdDispatch(cmd, gx, gy, 1);
	}
	VkMemoryBarrier done = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
	                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     0, 1, &done, 0, NULL, 0, NULL);
}

/* The copy path: unless the buffer already holds the background for these
 * inputs, map_background.comp computes it (grid, axes, splats over the
 * clear color); then it is copied into the target image, which the render
 * pass (pass_load) keeps. */
/* The background buffer was just written by compute: make it visible to the
 * copy into the image, and remember what it now holds. */
static void background_written(struct gos_render *r, VkCommandBuffer cmd,
                               const struct grid_push *key, bool final, bool on_splat)
{
	VkMemoryBarrier done = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     0, 1, &done, 0, NULL, 0, NULL);
	r->bg_valid = true;
	r->bg_final = final;
	r->bg_push = *key;
	r->bg_on_splat = on_splat;
}

static bool record_background(struct gos_render *r, VkCommandBuffer cmd, const struct grid_push *gp,
                              const struct gos_frame_info *fi, VkExtent2D ext, bool splat)
{
	struct grid_push key = *gp;
	key.now = 0;
	bool final = !(gp->fade_s > 0 && (gp->flags & GRID_SPLATS) &&
	               fi->now < (double)r->last_arrival + gp->fade_s);
	/* Shifted with the splats (record_shift): only the grid's position may
	 * differ from what it was computed with. */
	struct grid_push was = r->bg_push, now = key;
	memset(was.center, 0, sizeof(was.center));
	memset(was.axis, 0, sizeof(was.axis));
	was.ids = 0;
	memset(now.center, 0, sizeof(now.center));
	memset(now.axis, 0, sizeof(now.axis));
	now.ids = 0;
	if (r->bg_shift && final && splat && !memcmp(&was, &now, sizeof(was))) {
		VkMemoryBarrier moved = {
			.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
			.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT,
			.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
		};
		vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
		                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &moved, 0, NULL, 0, NULL);
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, r->bg);
		int32_t dx = r->shift_dx, dy = r->shift_dy;
		uint32_t w = ext.width, h = ext.height;
		if (dx) {
			struct grid_push strip = *gp;
			uint32_t x0 = dx > 0 ? w - (uint32_t)dx : 0, n = (uint32_t)abs(dx);
			strip.origin = x0;
			vkCmdPushConstants(cmd, r->bg_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(strip), &strip);
			vkCmdDispatch(cmd, (n + 7) / 8, (h + 7) / 8, 1);
		}
		if (dy) {
			struct grid_push strip = *gp;
			uint32_t y0 = dy > 0 ? h - (uint32_t)dy : 0, n = (uint32_t)abs(dy);
			strip.origin = y0 << 16;
			vkCmdPushConstants(cmd, r->bg_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(strip), &strip);
			vkCmdDispatch(cmd, (w + 7) / 8, (n + 7) / 8, 1);
		}
		background_written(r, cmd, &key, true, true);
	} else if (!r->bg_valid || !r->bg_final || memcmp(&key, &r->bg_push, sizeof(key))) {
		/* The last frame's copy has read the buffer before we write it. */
		vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
		                     0, 0, NULL, 0, NULL, 0, NULL);
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, r->bg);
		vkCmdPushConstants(cmd, r->bg_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(*gp), gp);
		vkCmdDispatch(cmd, (ext.width + 7) / 8, (ext.height + 7) / 8, 1);
		background_written(r, cmd, &key, final, splat);
		r->backgrounds++;
	}
	r->bg_shift = false;
	VkImageMemoryBarrier ib = {
		.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER,
		.srcAccessMask = 0,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.oldLayout = VK_IMAGE_LAYOUT_UNDEFINED,
		.newLayout = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
		.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
		.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
		.image = fi->image,
		.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1},
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, NULL, 0, NULL, 1, &ib);
	VkBufferImageCopy region = {
		.bufferOffset = (VkDeviceSize)ext.width * ext.height * 4,
		.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
		.imageExtent = {ext.width, ext.height, 1},
	};
	vkCmdCopyBufferToImage(cmd, r->splat_ids->buffer, fi->image, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
	                       1, &region);
	return true;
}

static bool record(struct gos_render *r, struct frame *f, VkFramebuffer fb, VkExtent2D ext,
                   const struct gos_frame_info *fi)
{
	VkCommandBuffer cmd = f->cmd;
	struct gos_vk *vk = r->vk;
	const struct gos_view *v = &fi->view;
	double vw = ext.width, vh = ext.height;

	/* Per-slot data and glyphs first, then the compute pass, whose closing
	 * barrier also covers these transfers for the vertex/fragment stages. */
	VkMemoryBarrier before = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = 0,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_VERTEX_SHADER_BIT | VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT |
	                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, NULL, 0, NULL);
	/* Tokens or widths changed: what earlier frames left on the GPU is stale. */
	if (r->meta.n_pend || gos_compute_pending(r->compute)) {
		r->proj_valid = false;
		r->splat_valid = false;
	}
	if (!slotbuf_record(vk, &r->meta, r->cur, cmd) || !slotbuf_record(vk, &r->glyphs, r->cur, cmd))
		return false;
	VkMemoryBarrier after = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     VK_PIPELINE_STAGE_VERTEX_SHADER_BIT | VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT |
	                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     0, 1, &after, 0, NULL, 0, NULL);

	double margin = (r->max_w * 0.5 + GOS_FLOW_LINE_H) * v->zoom + 4;
	if (margin > 1e6)
		margin = 1e6;
	if (r->o.disable & GOS_RENDER_TIGHT_CULL)
		margin = 0;
	struct gos_camera cam = {
		.center_x = (float)v->cx, .center_y = (float)v->cy, .zoom = (float)v->zoom,
		.viewport_w = (float)vw, .viewport_h = (float)vh, .margin = (float)margin,
	};
	/* Far out: splats, no quads. Otherwise the projection feeds the quads.
	 * Either is skipped when the camera and the tokens are what the GPU
	 * already holds the result for. */
	double line_px = GOS_FLOW_LINE_H * v->zoom;
	bool splat = line_px < SPLAT_BELOW_PX;
	if (splat) {
		if (!record_splat(r, cmd, &cam, v))
			return false;
	} else if (!r->proj_valid || memcmp(&cam, &r->proj_cam, sizeof(cam)) ||
	           gos_compute_pending(r->compute)) {
		if (!gos_compute_record(r->compute, cmd, &cam, r->o.palette))
			return false;
		r->proj_valid = true;
		r->proj_cam = cam;
		r->projections++;
	}
	r->last_splat = splat;

	/* The overlay's text may rasterize new glyphs: build it before the atlas
	 * upload is recorded. */
	build_overlay(r, fi, vw, vh);
	if (!gos_text_record(r->text, cmd))
		return false;
	size_t ov_bytes = r->n_ov * sizeof(struct ov_vertex);
	if (ov_bytes && (!f->overlay || f->overlay->size < ov_bytes)) {
		gos_vk_buffer_destroy(vk, f->overlay);
		size_t sz = 64 * 1024;
		while (sz < ov_bytes)
			sz *= 2;
		f->overlay = gos_vk_buffer_create(vk, sz, VK_BUFFER_USAGE_VERTEX_BUFFER_BIT,
		                                  GOS_VK_MEM_UPLOAD, "overlay vertices");
		if (!f->overlay)
			return false;
	}
	if (ov_bytes) {
		memcpy(f->overlay->mapped, r->ov, ov_bytes);
		if (!gos_vk_buffer_flush(vk, f->overlay, 0, ov_bytes))
			return false;
	}

	/* grid (and the splatted tokens) */
	struct gos_compute_buffers cb;
	gos_compute_buffers(r->compute, &cb);
	double base = pow(10.0, ceil(log10(8.0 / v->zoom)));
	double period = base * 1000.0;
	double ax, ay;
	gos_view_to_screen(v, vw, vh, 0, 0, &ax, &ay);
	struct grid_push gp = {
		.line = {0.45f, 0.55f, 0.72f, 0.22f},
		.axis_color = {0.85f, 0.55f, 0.35f, 0.55f},
		.viewport = {(float)vw, (float)vh},
		.center = {(float)fmod(v->cx, period), (float)fmod(v->cy, period)},
		.axis = {(float)fmin(fmax(ax, -1e6), 1e6), (float)fmin(fmax(ay, -1e6), 1e6)},
		.zoom = (float)v->zoom,
		.base = (float)base,
		.flags = (r->o.disable & GOS_RENDER_NO_GRID) ? 0u : GRID_ON,
		.now = (float)fi->now,
		.fade_s = fi->no_fade ? 0.0f : 0.35f,
		.palette = r->o.palette,
	};
	/* Each level's strength: 0 at 8 px spacing, 1 at 800 px, smoothstepped. */
	for (int i = 0; i < 3; i++) {
		double px = base * pow(10.0, i) * v->zoom;
		double t = log(px / 8.0) / log(100.0);
		t = t < 0 ? 0 : t > 1 ? 1 : t;
		gp.strength[i] = (float)(t * t * (3.0 - 2.0 * t));
	}
	bool copy = fi->image != VK_NULL_HANDLE;
	if (copy && !ensure_bgbuf(r, ext.width, ext.height))
		return false;
	if (copy || splat)
		gp.ids = r->splat_ids->address;
	if (copy && (r->o.format == VK_FORMAT_B8G8R8A8_UNORM || r->o.format == VK_FORMAT_B8G8R8A8_SRGB))
		gp.flags |= GRID_BGRA;
	if (splat) {
		gp.flags |= GRID_SPLATS | (line_px < 3.0 ? GRID_POINTS : 0u) |
		            ((r->o.disable & GOS_RENDER_FLAT) ? GRID_FLAT : 0u);
		gp.tokens = cb.tokens_address;
		gp.meta = r->meta.dev->address;
		gp.lut = cb.palettes_address;
	}
	if (copy && !record_background(r, cmd, &gp, fi, ext, splat))
		return false;

	VkClearValue clear = {.color = {{BG_R, BG_G, BG_B, 1.0f}}};
	VkRenderPassBeginInfo rbi = {
		.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO,
		.renderPass = copy ? r->pass_load : r->pass,
		.framebuffer = fb,
		.renderArea = {{0, 0}, ext},
		.clearValueCount = 1,
		.pClearValues = &clear,
	};
	vkCmdBeginRenderPass(cmd, &rbi, VK_SUBPASS_CONTENTS_INLINE);
	VkViewport viewport = {0, 0, (float)vw, (float)vh, 0, 1};
	VkRect2D scissor = {{0, 0}, ext};
	vkCmdSetViewport(cmd, 0, 1, &viewport);
	vkCmdSetScissor(cmd, 0, 1, &scissor);
	vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->layout, 0, 1, &r->set, 0, NULL);

	if (!copy) {
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->grid);
		push(r, cmd, &gp, sizeof(gp));
		vkCmdDraw(cmd, 3, 1, 0, 0);
	}

	/* tokens */
	double ta = (line_px - 8.0) / 5.0;
	ta = ta < 0 ? 0 : ta > 1 ? 1 : ta;
	if (r->o.disable & GOS_RENDER_NO_TEXT)
		ta = 0;
	struct token_push tp = {
		.out = cb.output_address,
		.meta = r->meta.dev->address,
		.glyphs = r->glyphs.dev->address,
		.viewport = {(float)vw, (float)vh},
		.zoom = (float)v->zoom,
		.now = (float)fi->now,
		.fade_s = fi->no_fade ? 0.0f : 0.35f,
		.text_alpha = (float)ta,
		.line_h = GOS_FLOW_LINE_H,
		.char_w = GOS_FLOW_CHAR_W,
		.flags = (r->o.disable & GOS_RENDER_FLAT) ? 1u : 0u,
	};
	if (!splat) {
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->tokens);
		push(r, cmd, &tp, sizeof(tp));
		vkCmdDrawIndirect(cmd, cb.indirect, 0, 1, sizeof(VkDrawIndirectCommand));
	}

	/* overlay */
	if (r->n_ov) {
		float op[2] = {(float)vw, (float)vh};
		VkDeviceSize off = 0;
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->overlay);
		push(r, cmd, op, sizeof(op));
		vkCmdBindVertexBuffers(cmd, 0, 1, &f->overlay->buffer, &off);
		vkCmdDraw(cmd, (uint32_t)r->n_ov, 1, 0, 0);
	}
	vkCmdEndRenderPass(cmd);
	return true;
}

bool gos_render_frame(struct gos_render *r, VkFramebuffer fb, VkExtent2D ext,
                      const struct gos_frame_info *fi, VkSemaphore wait, VkSemaphore signal)
{
	VkDevice dev = r->vk->device;
	struct frame *f = &r->frames[r->cur];
	if (f->submitted) {
		VK(vkWaitForFences(dev, 1, &f->fence, VK_TRUE, UINT64_MAX));
		VK(vkResetFences(dev, 1, &f->fence));
		f->submitted = false;
	}
	VK(vkResetCommandBuffer(f->cmd, 0));
	VkCommandBufferBeginInfo bi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
		.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
	};
	VK(vkBeginCommandBuffer(f->cmd, &bi));
	if (!record(r, f, fb, ext, fi)) {
		vkEndCommandBuffer(f->cmd);
		return false;
	}
	VK(vkEndCommandBuffer(f->cmd));
	/* The background copy writes the image too: it waits as well. */
	VkPipelineStageFlags stage = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT |
	                             (fi->image ? VK_PIPELINE_STAGE_TRANSFER_BIT : 0);
	VkSubmitInfo si = {
		.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
		.waitSemaphoreCount = wait ? 1 : 0,
		.pWaitSemaphores = &wait,
		.pWaitDstStageMask = &stage,
		.commandBufferCount = 1,
		.pCommandBuffers = &f->cmd,
		.signalSemaphoreCount = signal ? 1 : 0,
		.pSignalSemaphores = &signal,
	};
	VK(vkQueueSubmit(r->vk->queue, 1, &si, f->fence));
	f->submitted = true;
	r->cur = (r->cur + 1) % r->n_frames;
	return true;
error:
	return false;
}

bool gos_render_wait_slot(struct gos_render *r)
{
	struct frame *f = &r->frames[r->cur];
	if (f->submitted) {
		VK(vkWaitForFences(r->vk->device, 1, &f->fence, VK_TRUE, UINT64_MAX));
		VK(vkResetFences(r->vk->device, 1, &f->fence));
		f->submitted = false;
	}
	return true;
error:
	return false;
}

uint32_t gos_render_slot_index(const struct gos_render *r)
{
	return r->cur;
}

bool gos_render_wait(struct gos_render *r)
{
	for (uint32_t i = 0; i < r->n_frames; i++) {
		struct frame *f = &r->frames[i];
		if (!f->submitted)
			continue;
		VK(vkWaitForFences(r->vk->device, 1, &f->fence, VK_TRUE, UINT64_MAX));
		VK(vkResetFences(r->vk->device, 1, &f->fence));
		f->submitted = false;
	}
	return true;
error:
	return false;
}

/* Tokens the last frame drew: splatted, or survivors of the projection. */
static bool read_drawn(struct gos_render *r, uint32_t *count)
{
	if (r->last_splat)
		return gos_vk_buffer_download(r->vk, r->splat_count, 0, count, sizeof(*count));
	return gos_compute_read(r->compute, NULL, 0, count);
}

bool gos_render_drawn(struct gos_render *r, uint32_t *count)
{
	if (!gos_render_wait(r))
		return false;
	if (!read_drawn(r, count))
		return false;
	r->drawn = *count;
	return true;
}

/* ---- offscreen ---- */

struct gos_offscreen {
	VkImage image;
	VkDeviceMemory memory;
	VkImageView view;
	VkFramebuffer fb;
	VkExtent2D ext;
	struct gos_vk_buffer *readback;
};

struct gos_offscreen *gos_offscreen_create(struct gos_render *r, uint32_t w, uint32_t h)
{
	struct gos_vk *vk = r->vk;
	VkDevice dev = vk->device;
	struct gos_offscreen *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->ext = (VkExtent2D){w, h};
	VkImageCreateInfo ici = {
		.sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO,
		.imageType = VK_IMAGE_TYPE_2D,
		.format = r->o.format,
		.extent = {w, h, 1},
		.mipLevels = 1,
		.arrayLayers = 1,
		.samples = VK_SAMPLE_COUNT_1_BIT,
		.tiling = VK_IMAGE_TILING_OPTIMAL,
		.usage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT |
		         VK_IMAGE_USAGE_TRANSFER_DST_BIT,
		.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
	};
	VK(vkCreateImage(dev, &ici, NULL, &o->image));
	gos_vk_name(vk, VK_OBJECT_TYPE_IMAGE, (uint64_t)o->image, "offscreen %ux%u", w, h);
	VkMemoryRequirements req;
	vkGetImageMemoryRequirements(dev, o->image, &req);
	int mt = gos_vk_memory_type(vk, req.memoryTypeBits, 0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
	if (mt < 0)
		goto error;
	VkMemoryAllocateInfo mai = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
		.allocationSize = req.size,
		.memoryTypeIndex = (uint32_t)mt,
	};
	VK(vkAllocateMemory(dev, &mai, NULL, &o->memory));
	VK(vkBindImageMemory(dev, o->image, o->memory, 0));
	VkImageViewCreateInfo vci = {
		.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO,
		.image = o->image,
		.viewType = VK_IMAGE_VIEW_TYPE_2D,
		.format = r->o.format,
		.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1},
	};
	VK(vkCreateImageView(dev, &vci, NULL, &o->view));
	VkFramebufferCreateInfo fci = {
		.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO,
		.renderPass = r->pass,
		.attachmentCount = 1,
		.pAttachments = &o->view,
		.width = w,
		.height = h,
		.layers = 1,
	};
	VK(vkCreateFramebuffer(dev, &fci, NULL, &o->fb));
	o->readback = gos_vk_buffer_create(vk, (VkDeviceSize)w * h * 4, VK_BUFFER_USAGE_TRANSFER_DST_BIT,
	                                   GOS_VK_MEM_READBACK, "offscreen readback");
	if (!o->readback)
		goto error;
	return o;
error:
	gos_offscreen_destroy(r, o);
	return NULL;
}

void gos_offscreen_destroy(struct gos_render *r, struct gos_offscreen *o)
{
	if (!o)
		return;
	VkDevice dev = r->vk->device;
	vkDeviceWaitIdle(dev);
	gos_vk_buffer_destroy(r->vk, o->readback);
	if (o->fb)
		vkDestroyFramebuffer(dev, o->fb, NULL);
	if (o->view)
		vkDestroyImageView(dev, o->view, NULL);
	if (o->image)
		vkDestroyImage(dev, o->image, NULL);
	if (o->memory)
		vkFreeMemory(dev, o->memory, NULL);
	free(o);
}

VkFramebuffer gos_offscreen_framebuffer(const struct gos_offscreen *o) { return o->fb; }
VkExtent2D gos_offscreen_extent(const struct gos_offscreen *o) { return o->ext; }
VkImage gos_offscreen_image(const struct gos_offscreen *o) { return o->image; }

bool gos_offscreen_read(struct gos_render *r, struct gos_offscreen *o, uint8_t *rgba)
{
	if (!gos_render_wait(r))
		return false;
	VkCommandBuffer cmd = gos_vk_oneshot_begin(r->vk);
	if (!cmd)
		return false;
	if (r->o.final_layout != VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL) {
		VkImageMemoryBarrier b = {
			.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER,
			.srcAccessMask = 0,
			.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
			.oldLayout = r->o.final_layout,
			.newLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
			.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
			.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
			.image = o->image,
			.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1},
		};
		vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
		                     0, 0, NULL, 0, NULL, 1, &b);
	}
	VkBufferImageCopy region = {
		.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
		.imageExtent = {o->ext.width, o->ext.height, 1},
	};
	vkCmdCopyImageToBuffer(cmd, o->image, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
	                       o->readback->buffer, 1, &region);
	VkMemoryBarrier host = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_HOST_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
	                     &host, 0, NULL, 0, NULL);
	if (!gos_vk_oneshot_end(r->vk, cmd) || !gos_vk_buffer_invalidate(r->vk, o->readback))
		return false;
	const uint8_t *src = o->readback->mapped;
	size_t n = (size_t)o->ext.width * o->ext.height;
	bool bgra = r->o.format == VK_FORMAT_B8G8R8A8_UNORM || r->o.format == VK_FORMAT_B8G8R8A8_SRGB;
	for (size_t i = 0; i < n; i++) {
		rgba[4 * i + 0] = src[4 * i + (bgra ? 2 : 0)];
		rgba[4 * i + 1] = src[4 * i + 1];
		rgba[4 * i + 2] = src[4 * i + (bgra ? 0 : 2)];
		rgba[4 * i + 3] = 255;
	}
	uint32_t count;
	if (read_drawn(r, &count))
		r->drawn = count;
	return true;
}
