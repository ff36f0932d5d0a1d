/* gos.v2 binary messages (see gos_viewer_v2.h and docs/protocol-v2.md). */
#include <math.h>
#include <string.h>

#include "gos_viewer_v2.h"

/* Columns, in the order the sections put them. */
enum {
	C_TS, C_SLOT, C_STREAM, C_X, C_Y, C_W, C_CONF, C_LP, C_ID_OFF, C_ID_LEN,
	C_TEXT_OFF, C_TEXT_LEN, C_ALT_FIRST, C_ALT_COUNT,                 /* tokens */
	C_INDEX, C_RANK, C_GAP, C_ENTROPY, C_AGREE, C_TFLAGS,             /* tokens' detail (flag 2) */
	C_REMOVED,                                                       /* removed */
	C_S_PROC, C_S_TOTAL, C_S_ELAPSED, C_S_TOKENS, C_S_INDEX, C_S_NAME_OFF, C_S_NAME_LEN,
	C_S_STATE_OFF, C_S_STATE_LEN,                                    /* streams */
	C_S_TTFT, C_S_TPS, C_S_MEANC, C_S_MINC, C_S_PPL, C_S_ENT, C_S_FIN_OFF, C_S_FIN_LEN,
	C_S_MSG_OFF, C_S_MSG_LEN, C_S_MODEL_OFF, C_S_MODEL_LEN, C_S_HIST,  /* streams' analytics (flag 1) */
	C_S_GROUP, C_S_DIVERGE,                                          /* streams' groups (flag 2) */
	C_T_LEVEL, C_T_X, C_T_Y, C_T_COUNT, C_T_CONF,                    /* tiles */
	C_A_OFF, C_A_LEN, C_A_LP,                                        /* alts */
	C_COUNT_
};

_Static_assert(C_COUNT_ <= sizeof(((struct gos_v2_writer *)0)->col) / sizeof(struct gos_buf),
               "one staging buffer per column");

static void put(struct gos_v2_writer *w, int c, const void *p, size_t n)
{
	gos_buf_append(&w->col[c], p, n);
}

static void put_u32(struct gos_v2_writer *w, int c, uint32_t v)
{
	put(w, c, &v, 4);  /* little-endian hosts only (checked in gos_v2_finish) */
}

static void put_i32(struct gos_v2_writer *w, int c, int32_t v)
{
	put(w, c, &v, 4);
}

static void put_f32(struct gos_v2_writer *w, int c, float v)
{
	put(w, c, &v, 4);
}

static void put_f64(struct gos_v2_writer *w, int c, double v)
{
	put(w, c, &v, 8);
}

/* A string into the table: its offset and length columns. */
static void put_str(struct gos_v2_writer *w, int c_off, int c_len, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	put_u32(w, c_off, (uint32_t)w->str.len);
	put_u32(w, c_len, (uint32_t)n);
	if (n)
		gos_buf_append(&w->str, s, n);
}

void gos_v2_hello(struct gos_buf *out)
{
	gos_buf_puts(out, "{\"type\":\"hello\",\"protocol\":\"" GOS_V2_PROTOCOL "\","
	             "\"protocol_version\":2,\"server\":\"gos\",\"server_version\":\""
	             GOS_VERSION "\"}");
}

void gos_v2_begin(struct gos_v2_writer *w, const struct gos_v2_head *h)
{
	w->h = *h;
	w->n_tokens = w->n_removed = w->n_streams = w->n_tiles = w->n_alts = 0;
	for (int c = 0; c < C_COUNT_; c++)
		gos_buf_clear(&w->col[c]);
	gos_buf_clear(&w->str);
}

void gos_v2_token(struct gos_v2_writer *w, const struct gos_v2_token *t)
{
	put_f64(w, C_TS, t->timestamp);
	put_u32(w, C_SLOT, t->slot);
	put_u32(w, C_STREAM, t->stream);
	put_f32(w, C_X, t->x);
	put_f32(w, C_Y, t->y);
	put_f32(w, C_W, t->w);
	put_f32(w, C_CONF, t->confidence);
	put_f32(w, C_LP, t->logprob);
	put_str(w, C_ID_OFF, C_ID_LEN, t->id);
	put_str(w, C_TEXT_OFF, C_TEXT_LEN, t->text);
	put_u32(w, C_ALT_FIRST, w->n_alts);
	put_u32(w, C_ALT_COUNT, t->n_alts);
	for (uint32_t i = 0; i < t->n_alts; i++) {
		put_str(w, C_A_OFF, C_A_LEN, t->alts[i].token);
		put_f32(w, C_A_LP, t->alts[i].logprob);
	}
	w->n_alts += t->n_alts;
	put_u32(w, C_INDEX, t->index);
	put_u32(w, C_RANK, t->rank);
	put_f32(w, C_GAP, t->gap_ms);
	put_f32(w, C_ENTROPY, t->entropy);
	put_f32(w, C_AGREE, t->agree);
	put_u32(w, C_TFLAGS, t->diverges ? GOS_V2_TFLAG_DIVERGES : 0);
	w->n_tokens++;
}

void gos_v2_removed(struct gos_v2_writer *w, uint32_t slot)
{
	put_u32(w, C_REMOVED, slot);
	w->n_removed++;
}

void gos_v2_stream(struct gos_v2_writer *w, uint32_t index, const struct gos_viewer_stream *s)
{
	put_f64(w, C_S_PROC, (double)s->tokens_processed);
	put_f64(w, C_S_TOTAL, (double)s->total_tokens);
	put_f64(w, C_S_ELAPSED, s->elapsed_ms);
	put_f64(w, C_S_TOKENS, (double)s->tokens);
	put_u32(w, C_S_INDEX, index);
	put_str(w, C_S_NAME_OFF, C_S_NAME_LEN, s->name);
	put_str(w, C_S_STATE_OFF, C_S_STATE_LEN, s->state);
	/* the analytics columns, for every stream of every message (flag 1) */
	double d[5];
	gos_viewer_stream_derived(s, d);
	put_f64(w, C_S_TTFT, s->stats ? s->ttft_ms : NAN);
	for (int i = 0; i < 5; i++)
		put_f64(w, C_S_TPS + i, d[i]);
	put_str(w, C_S_FIN_OFF, C_S_FIN_LEN, s->finish_reason);
	put_str(w, C_S_MSG_OFF, C_S_MSG_LEN, s->message);
	put_str(w, C_S_MODEL_OFF, C_S_MODEL_LEN, s->model);
	for (int i = 0; i < 10; i++)
		put_u32(w, C_S_HIST, s->stats ? s->stats->hist[i] : 0);
	put_u32(w, C_S_GROUP, s->group_index);
	put_i32(w, C_S_DIVERGE, (int32_t)(s->diverge_at < INT32_MIN ? INT32_MIN
	                                  : s->diverge_at > INT32_MAX ? INT32_MAX : s->diverge_at));
	w->n_streams++;
}

void gos_v2_tile(struct gos_v2_writer *w, uint32_t level, int32_t tx, int32_t ty, uint32_t count,
                 float confidence)
{
	put_u32(w, C_T_LEVEL, level);
	put_i32(w, C_T_X, tx);
	put_i32(w, C_T_Y, ty);
	put_u32(w, C_T_COUNT, count);
	put_f32(w, C_T_CONF, confidence);
	w->n_tiles++;
}

static void out_u32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void out_i32(unsigned char *p, int32_t v)
{
	memcpy(p, &v, 4);
}

static void out_u64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void out_f32(unsigned char *p, float v)
{
	memcpy(p, &v, 4);
}

/* Appends len bytes, then zeros up to a multiple of 8 of the message. */
static void append_padded(struct gos_buf *out, const void *p, size_t len)
{
	if (len)
		gos_buf_append(out, p, len);
	static const char zero[8];
	if (out->len % 8)
		gos_buf_append(out, zero, 8 - out->len % 8);
}

void gos_v2_finish(struct gos_v2_writer *w, struct gos_buf *out)
{
	_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "gos.v2 is little-endian");
	gos_buf_clear(out);
	unsigned char *h = (unsigned char *)gos_buf_reserve(out, GOS_V2_HEADER);
	memset(h, 0, GOS_V2_HEADER);
	h[0] = (unsigned char)w->h.kind;
	h[1] = 2;
	h[2] = GOS_V2_FLAG_ANALYTICS | GOS_V2_FLAG_DETAIL;
	out_u32(h + 4, w->n_tokens);
	out_u64(h + 8, w->h.seq);
	out_u64(h + 16, w->h.since);
	out_u32(h + 24, w->n_removed);
	out_u32(h + 28, w->n_streams);
	out_u32(h + 32, w->n_tiles);
	out_u32(h + 36, w->n_alts);
	out_u32(h + 40, (uint32_t)w->str.len);
	out_u32(h + 44, w->h.live_tokens);
	for (int i = 0; i < 4; i++)
		out_f32(h + 48 + 4 * i, w->h.bounds[i]);
	out_i32(h + 64, w->h.overview_level);
	out_i32(h + 68, w->h.view_level);
	const struct gos_v2_rect *r[2] = {&w->h.cells, &w->h.tiles};
	for (int k = 0; k < 2; k++) {
		out_i32(h + 72 + 16 * k, r[k]->x0);
		out_i32(h + 76 + 16 * k, r[k]->y0);
		out_i32(h + 80 + 16 * k, r[k]->x1);
		out_i32(h + 84 + 16 * k, r[k]->y1);
	}
	if (w->h.kind == GOS_V2_TICK) {
		out_f32(h + 104, w->h.newest[0]);
		out_f32(h + 108, w->h.newest[1]);
	} else {
		out_u32(h + 104, w->h.level);
	}
	out->len += GOS_V2_HEADER;
	for (int c = 0; c < C_COUNT_; c++)
		append_padded(out, w->col[c].data, w->col[c].len);
	append_padded(out, w->str.data, w->str.len);
}

void gos_v2_writer_finish(struct gos_v2_writer *w)
{
	for (int c = 0; c < C_COUNT_; c++)
		gos_buf_finish(&w->col[c]);
	gos_buf_finish(&w->str);
}

/* ---- geometry ----------------------------------------------------------- */

double gos_v2_tile_size(int level)
{
	return ldexp(GOS_V2_TILE0, level);
}

int64_t gos_v2_tile0(double v)
{
	double t = floor(v * (1.0 / GOS_V2_TILE0));  /* a power of two: exact */
	if (!(t > -1e15))
		return (int64_t)-1e15;
	return t > 1e15 ? (int64_t)1e15 : (int64_t)t;
}

int32_t gos_v2_tile_of(double v, int level)
{
	int64_t t = gos_v2_tile0(v) >> level;  /* arithmetic: a floor division */
	return t < -2147483647 ? -2147483647 : t > 2147483647 ? 2147483647 : (int32_t)t;
}

int gos_v2_view_level(double zoom)
{
	if (!(zoom > 0))
		return GOS_V2_LEVELS - 1;
	for (int k = 0; k < GOS_V2_LEVELS; k++)
		if (gos_v2_tile_size(k) * zoom >= GOS_V2_TILE_PX)
			return k;
	return GOS_V2_LEVELS - 1;
}

int gos_v2_overview_level(const float b[4])
{
	if (isnan(b[0]))
		return 0;
	for (int k = 0; k < GOS_V2_LEVELS; k++)
		if (gos_v2_tile_of(b[2], k) - gos_v2_tile_of(b[0], k) < GOS_V2_OVERVIEW &&
		    gos_v2_tile_of(b[3], k) - gos_v2_tile_of(b[1], k) < GOS_V2_OVERVIEW)
			return k;
	return GOS_V2_LEVELS - 1;
}

struct gos_v2_rect gos_v2_view_rect(const struct gos_viewer_viewport *vp, int level)
{
	if (!(vp->w >= 0) || !(vp->h >= 0) || !isfinite(vp->x) || !isfinite(vp->y))
		return GOS_V2_RECT_NONE;
	double x0 = vp->x - vp->w / 2, x1 = vp->x + vp->w * 1.5;
	double y0 = vp->y - vp->h / 2, y1 = vp->y + vp->h * 1.5;
	return (struct gos_v2_rect){gos_v2_tile_of(x0, level), gos_v2_tile_of(y0, level),
	                            gos_v2_tile_of(x1, level), gos_v2_tile_of(y1, level)};
}
