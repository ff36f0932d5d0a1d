/* gos_compute_ref: CPU reference of shaders/token_project.comp. See the header.
 *
 * Every float operation here mirrors one `precise` operation of the shader,
 * in the same order, in single precision and without contraction into fused
 * multiply-adds (compute/CMakeLists.txt builds this file with
 * -ffp-contract=off), so the results match the GPU's bit for bit on a
 * conformant device. Keep it that way when editing either side. */
#include "gos_compute_ref.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const float lut[GOS_PALETTE_COUNT * GOS_PALETTE_N * 3] = {GOS_PALETTE_DATA};

static const char *const palette_names[GOS_PALETTE_COUNT] = {
	[GOS_PALETTE_VIRIDIS] = "viridis",
	[GOS_PALETTE_RED_GREEN] = "red-green",
};

static void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_error(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "gos compute: %s\n", line);
}

static const char *const mode_names[GOS_COLOR_MODE_COUNT] = {
	[GOS_COLOR_CONFIDENCE] = "confidence",
	[GOS_COLOR_LOGPROB] = "logprob",
	[GOS_COLOR_RANK] = "rank",
	[GOS_COLOR_ENTROPY] = "entropy",
	[GOS_COLOR_LATENCY] = "latency",
	[GOS_COLOR_AGREEMENT] = "agreement",
};

const char *gos_compute_ref_mode_name(uint32_t mode)
{
	return mode < GOS_COLOR_MODE_COUNT ? mode_names[mode] : NULL;
}

bool gos_compute_ref_mode_parse(const char *name, uint32_t *out)
{
	for (uint32_t i = 0; name && i < GOS_COLOR_MODE_COUNT; i++) {
		if (!strcmp(name, mode_names[i])) {
			*out = i;
			return true;
		}
	}
	return false;
}

bool gos_compute_ref_check_style(const struct gos_compute_style *st, char *err, size_t len)
{
	const char *what = NULL;
	const uint32_t bits = GOS_FILTER_STREAMS | GOS_FILTER_RANGE | GOS_FILTER_SEARCH |
	                      GOS_FILTER_BEYOND;
	if (st->mode >= GOS_COLOR_MODE_COUNT)
		what = "unknown color mode";
	else if (st->filter & ~bits)
		what = "unknown filter bits";
	else if ((st->filter & GOS_FILTER_RANGE) &&
	         !(st->p_min >= 0.0f && st->p_max <= 1.0f && st->p_min <= st->p_max))
		what = "the probability range must satisfy 0 <= p_min <= p_max <= 1";
	else if (st->mask_words > GOS_FILTER_MASK_WORDS || (st->mask_words && !st->mask))
		what = "the stream mask is too long or missing";
	if (what && err && len)
		snprintf(err, len, "%s", what);
	return what == NULL;
}

/* t in [0, 1] as a byte: 1 + round(t * GOS_QUANT); NAN: 0 (unknown). */
static uint8_t quant(double t)
{
	if (isnan(t))
		return 0;
	t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
	return (uint8_t)(1 + (int)floor(t * GOS_QUANT + 0.5));
}

void gos_compute_ref_facts(struct gos_token_update *u, float logprob, uint32_t rank,
                           float entropy, float gap_ms, float agree)
{
	double lp = !isnan(logprob) ? logprob
	            : !isnan(u->confidence) && u->confidence > 0.0f ? log(u->confidence) : NAN;
	u->q[0] = quant(isnan(lp) ? NAN : 1.0 + lp / log(10.0) / GOS_LOGPROB_DECADES);
	u->q[1] = quant(isnan(entropy) ? NAN : 1.0 - entropy / GOS_ENTROPY_MAX);
	u->q[2] = quant(isnan(gap_ms) ? NAN
	                : 1.0 - log10(gap_ms > 1.0f ? gap_ms : 1.0) / GOS_LATENCY_DECADES);
	u->q[3] = quant(agree);
	u->rank = rank == 0 ? 0 : rank == 1 ? 1 : rank <= 10 ? 2 : rank <= 100 ? 3 : 4;
}

const char *gos_compute_ref_palette_name(uint32_t palette)
{
	return palette < GOS_PALETTE_COUNT ? palette_names[palette] : NULL;
}

bool gos_compute_ref_palette_parse(const char *name, uint32_t *out)
{
	for (uint32_t i = 0; name && i < GOS_PALETTE_COUNT; i++) {
		if (!strcmp(name, palette_names[i])) {
			*out = i;
			return true;
		}
	}
	return false;
}

bool gos_compute_ref_check_camera(const struct gos_camera *cam, char *err, size_t len)
{
	const char *what = NULL;
	if (!cam)
		what = "no camera given";
	else if (!isfinite(cam->center_x) || !isfinite(cam->center_y))
		what = "camera center is not finite";
	else if (!isfinite(cam->zoom) || !(cam->zoom > 0.0f))
		what = "camera zoom must be a finite number > 0";
	else if (!isfinite(cam->viewport_w) || !isfinite(cam->viewport_h) ||
	         !(cam->viewport_w > 0.0f) || !(cam->viewport_h > 0.0f))
		what = "camera viewport must be finite and > 0 in both directions";
	else if (!isfinite(cam->margin) || !(cam->margin >= 0.0f))
		what = "camera cull margin must be a finite number >= 0";
	if (what && err && len)
		snprintf(err, len, "%s", what);
	return what == NULL;
}

bool gos_compute_ref_check_updates(const struct gos_token_update *u, size_t n,
                                   uint32_t max_slots, char *err, size_t len)
{
	if (n && !u) {
		snprintf(err, len, "%zu updates but no array", n);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const struct gos_token_update *e = &u[i];
		if (e->slot >= max_slots) {
			snprintf(err, len, "update %zu: slot %u is out of range (max %u)", i,
			         e->slot, max_slots - 1);
			return false;
		}
		if (e->removed)
			continue;
		if (!isfinite(e->x) || !isfinite(e->y)) {
			snprintf(err, len, "update %zu: slot %u has a non-finite position (%g, %g)", i,
			         e->slot, (double)e->x, (double)e->y);
			return false;
		}
		if (!isnan(e->confidence) && !(e->confidence >= 0.0f && e->confidence <= 1.0f)) {
			snprintf(err, len, "update %zu: slot %u has confidence %g outside [0, 1]", i,
			         e->slot, (double)e->confidence);
			return false;
		}
	}
	return true;
}

struct gos_gpu_token gos_compute_ref_pack(const struct gos_token_update *u)
{
	struct gos_gpu_token t = {.id = GOS_SLOT_EMPTY, .confidence = GOS_CONFIDENCE_UNKNOWN};
	if (u->removed)
		return t;
	t.id = u->slot;
	t.x = u->x;
	t.y = u->y;
	t.confidence = isnan(u->confidence) ? GOS_CONFIDENCE_UNKNOWN : u->confidence;
	uint32_t stream = u->stream < GOS_TOKEN_STREAM_MAX ? u->stream : GOS_TOKEN_STREAM_MAX;
	t.attrs = stream | (uint32_t)(u->rank & 7u) << GOS_TOKEN_RANK_SHIFT |
	          (uint32_t)u->flags << GOS_TOKEN_FLAG_SHIFT;
	t.values = (uint32_t)u->q[0] << GOS_VALUE_LOGPROB_SHIFT |
	           (uint32_t)u->q[1] << GOS_VALUE_ENTROPY_SHIFT |
	           (uint32_t)u->q[2] << GOS_VALUE_LATENCY_SHIFT |
	           (uint32_t)u->q[3] << GOS_VALUE_AGREEMENT_SHIFT;
	return t;
}

const float *gos_compute_ref_palette_table(size_t *n)
{
	*n = sizeof(lut) / sizeof(lut[0]);
	return lut;
}

void gos_compute_ref_color(float confidence, uint32_t palette, float rgba[4])
{
	if (confidence < 0.0f) {
		rgba[0] = GOS_UNKNOWN_R;
		rgba[1] = GOS_UNKNOWN_G;
		rgba[2] = GOS_UNKNOWN_B;
		rgba[3] = GOS_UNKNOWN_A;
		return;
	}
	/* GLSL min(x, y) is y < x ? y : x. */
	float t = 1.0f < confidence ? 1.0f : confidence;
	float x = t * GOS_PALETTE_SEGMENTS;
	uint32_t k = (uint32_t)x;
	if (k > GOS_PALETTE_N - 2)
		k = GOS_PALETTE_N - 2;
	float f = x - (float)k;
	uint32_t p = palette < GOS_PALETTE_COUNT ? palette : GOS_PALETTE_COUNT - 1;
	const float *lo = &lut[(p * GOS_PALETTE_N + k) * 3];
	const float *hi = lo + 3;
	for (int c = 0; c < 3; c++)
		rgba[c] = lo[c] + (hi[c] - lo[c]) * f;
	rgba[3] = GOS_ALPHA_MIN + GOS_ALPHA_RANGE * t;
}

bool gos_compute_ref_shown(const struct gos_gpu_token *t, const struct gos_compute_style *st)
{
	if (!st)
		return true;
	if ((st->filter & GOS_FILTER_RANGE) &&
	    (t->confidence < 0.0f || t->confidence < st->p_min || t->confidence > st->p_max))
		return false;
	if (st->filter & GOS_FILTER_STREAMS) {
		uint32_t s = t->attrs & GOS_TOKEN_STREAM_MASK;
		if ((s >> 5) >= st->mask_words)
			return (st->filter & GOS_FILTER_BEYOND) != 0;
		return (st->mask[s >> 5] >> (s & 31u)) & 1u;
	}
	return true;
}

/* token_value() of gos_token.glsl. */
static float token_value(const struct gos_gpu_token *t, uint32_t mode)
{
	if (mode == GOS_COLOR_CONFIDENCE)
		return t->confidence;
	if (mode == GOS_COLOR_RANK) {
		uint32_t b = (t->attrs >> GOS_TOKEN_RANK_SHIFT) & 7u;
		return b == 0 ? -1.0f : b == 1 ? GOS_RANK_T1 : b == 2 ? GOS_RANK_T10
		       : b == 3 ? GOS_RANK_T100 : GOS_RANK_TBEYOND;
	}
	uint32_t shift = mode == GOS_COLOR_LOGPROB ? GOS_VALUE_LOGPROB_SHIFT
	                 : mode == GOS_COLOR_ENTROPY ? GOS_VALUE_ENTROPY_SHIFT
	                 : mode == GOS_COLOR_LATENCY ? GOS_VALUE_LATENCY_SHIFT
	                 : GOS_VALUE_AGREEMENT_SHIFT;
	uint32_t q = (t->values >> shift) & 0xFFu;
	return q == 0 ? -1.0f : (float)(q - 1u) * GOS_QUANT_INV;
}

bool gos_compute_ref_token(const struct gos_gpu_token *t, const struct gos_camera *cam,
                           uint32_t palette, struct gos_processed *out)
{
	return gos_compute_ref_token_styled(t, cam, palette, NULL, out);
}

bool gos_compute_ref_token_styled(const struct gos_gpu_token *t, const struct gos_camera *cam,
                                  uint32_t palette, const struct gos_compute_style *style,
                                  struct gos_processed *out)
{
	if (t->id == GOS_SLOT_EMPTY || !gos_compute_ref_shown(t, style))
		return false;
	float sx = (t->x - cam->center_x) * cam->zoom + cam->viewport_w * 0.5f;
	float sy = (t->y - cam->center_y) * cam->zoom + cam->viewport_h * 0.5f;
	float hx = cam->viewport_w + cam->margin;
	float hy = cam->viewport_h + cam->margin;
	if (!(sx >= -cam->margin && sy >= -cam->margin && sx <= hx && sy <= hy))
		return false;
	float rgba[4];
	uint32_t mode = style ? style->mode : GOS_COLOR_CONFIDENCE;
	uint32_t filter = style ? style->filter : 0;
	uint32_t flags = t->attrs >> GOS_TOKEN_FLAG_SHIFT;
	/* token_accent() of gos_token.glsl */
	uint32_t accent = filter & GOS_FILTER_SEARCH ? (flags & GOS_TOKEN_MATCH ? 1 : 2)
	                  : mode == GOS_COLOR_AGREEMENT && (flags & GOS_TOKEN_DIVERGES) ? 1 : 0;
	if (accent == 1) {
		rgba[0] = GOS_HIGHLIGHT_R;
		rgba[1] = GOS_HIGHLIGHT_G;
		rgba[2] = GOS_HIGHLIGHT_B;
		rgba[3] = GOS_HIGHLIGHT_A;
	} else {
		gos_compute_ref_color(token_value(t, mode), palette, rgba);
		if (accent == 2)
			rgba[3] = rgba[3] * GOS_DIM_ALPHA;
	}
	*out = (struct gos_processed){
		.id = t->id, .x = sx, .y = sy,
		.r = rgba[0], .g = rgba[1], .b = rgba[2], .a = rgba[3],
	};
	return true;
}

size_t gos_compute_ref_project(const struct gos_gpu_token *in, size_t n,
                               const struct gos_camera *cam, uint32_t palette,
                               struct gos_processed *out)
{
	return gos_compute_ref_project_styled(in, n, cam, palette, NULL, out);
}

size_t gos_compute_ref_project_styled(const struct gos_gpu_token *in, size_t n,
                                      const struct gos_camera *cam, uint32_t palette,
                                      const struct gos_compute_style *style,
                                      struct gos_processed *out)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		kept += gos_compute_ref_token_styled(&in[i], cam, palette, style, &out[kept]);
	return kept;
}

/* ---- the CPU stand-in ---- */

struct gos_compute_ref {
	struct gos_gpu_token *tokens;
	struct gos_processed *out;
	uint32_t n_slots, capacity;
	struct gos_compute_style style;   /* its mask: mask_copy */
	uint32_t *mask_copy;
};

struct gos_compute_ref *gos_compute_ref_create(void)
{
	return calloc(1, sizeof(struct gos_compute_ref));
}

void gos_compute_ref_destroy(struct gos_compute_ref *r)
{
	if (!r)
		return;
	free(r->tokens);
	free(r->out);
	free(r->mask_copy);
	free(r);
}

static bool reserve(struct gos_compute_ref *r, uint32_t slots)
{
	if (slots <= r->capacity)
		return true;
	uint32_t cap = r->capacity ? r->capacity : 4096;
	while (cap < slots)
		cap = cap > GOS_COMPUTE_MAX_SLOTS / 2 ? GOS_COMPUTE_MAX_SLOTS : cap * 2;
	struct gos_gpu_token *t = realloc(r->tokens, (size_t)cap * sizeof(*t));
	if (!t)
		goto nomem;
	r->tokens = t;
	for (uint32_t i = r->capacity; i < cap; i++)
		t[i] = (struct gos_gpu_token){.id = GOS_SLOT_EMPTY, .confidence = GOS_CONFIDENCE_UNKNOWN};
	struct gos_processed *o = realloc(r->out, (size_t)cap * sizeof(*o));
	if (!o)
		goto nomem;
	r->out = o;
	r->capacity = cap;
	return true;
nomem:
	log_error("out of memory growing the CPU token store to %u slots", cap);
	return false;
}

bool gos_compute_ref_update(struct gos_compute_ref *r, const struct gos_token_update *u, size_t n)
{
	char err[256];
	if (!gos_compute_ref_check_updates(u, n, GOS_COMPUTE_MAX_SLOTS, err, sizeof(err))) {
		log_error("rejected token update: %s", err);
		return false;
	}
	uint32_t needed = r->n_slots;
	for (size_t i = 0; i < n; i++)
		if (u[i].slot >= needed)
			needed = u[i].slot + 1;
	if (!reserve(r, needed))
		return false;
	for (size_t i = 0; i < n; i++)
		r->tokens[u[i].slot] = gos_compute_ref_pack(&u[i]);
	r->n_slots = needed;
	return true;
}

bool gos_compute_ref_set_all(struct gos_compute_ref *r, const struct gos_token_update *u, size_t n)
{
	char err[256];
	if (!gos_compute_ref_check_updates(u, n, GOS_COMPUTE_MAX_SLOTS, err, sizeof(err))) {
		log_error("rejected token set: %s", err);
		return false;
	}
	uint32_t needed = 0;
	for (size_t i = 0; i < n; i++)
		if (u[i].slot >= needed)
			needed = u[i].slot + 1;
	if (!reserve(r, needed))
		return false;
	for (uint32_t i = 0; i < r->n_slots; i++)
		r->tokens[i] = (struct gos_gpu_token){.id = GOS_SLOT_EMPTY,
		                                      .confidence = GOS_CONFIDENCE_UNKNOWN};
	for (size_t i = 0; i < n; i++)
		r->tokens[u[i].slot] = gos_compute_ref_pack(&u[i]);
	r->n_slots = needed;
	return true;
}

bool gos_compute_ref_dispatch(struct gos_compute_ref *r, const struct gos_camera *cam,
                              uint32_t palette, uint32_t *count)
{
	char err[256];
	if (!gos_compute_ref_check_camera(cam, err, sizeof(err))) {
		log_error("rejected dispatch: %s", err);
		return false;
	}
	if (palette >= GOS_PALETTE_COUNT) {
		log_error("rejected dispatch: unknown palette %u", palette);
		return false;
	}
	*count = (uint32_t)gos_compute_ref_project_styled(r->tokens, r->n_slots, cam, palette,
	                                                  &r->style, r->out);
	return true;
}

bool gos_compute_ref_set_style(struct gos_compute_ref *r, const struct gos_compute_style *style)
{
	char err[256];
	if (!gos_compute_ref_check_style(style, err, sizeof(err))) {
		log_error("rejected style: %s", err);
		return false;
	}
	uint32_t *m = NULL;
	if (style->mask_words) {
		m = malloc(style->mask_words * sizeof(*m));
		if (!m) {
			log_error("out of memory copying a stream mask");
			return false;
		}
		memcpy(m, style->mask, style->mask_words * sizeof(*m));
	}
	free(r->mask_copy);
	r->mask_copy = m;
	r->style = *style;
	r->style.mask = m;
	return true;
}

const struct gos_processed *gos_compute_ref_output(const struct gos_compute_ref *r)
{
	return r->out;
}

const struct gos_gpu_token *gos_compute_ref_tokens(const struct gos_compute_ref *r, uint32_t *n)
{
	*n = r->n_slots;
	return r->tokens;
}
