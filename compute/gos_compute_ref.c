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

bool gos_compute_ref_token(const struct gos_gpu_token *t, const struct gos_camera *cam,
                           uint32_t palette, struct gos_processed *out)
{
	if (t->id == GOS_SLOT_EMPTY)
		return false;
	float sx = (t->x - cam->center_x) * cam->zoom + cam->viewport_w * 0.5f;
	float sy = (t->y - cam->center_y) * cam->zoom + cam->viewport_h * 0.5f;
	float hx = cam->viewport_w + cam->margin;
	float hy = cam->viewport_h + cam->margin;
	if (!(sx >= -cam->margin && sy >= -cam->margin && sx <= hx && sy <= hy))
		return false;
	float rgba[4];
	gos_compute_ref_color(t->confidence, palette, rgba);
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
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		kept += gos_compute_ref_token(&in[i], cam, palette, &out[kept]);
	return kept;
}

/* ---- the CPU stand-in ---- */

struct gos_compute_ref {
	struct gos_gpu_token *tokens;
	struct gos_processed *out;
	uint32_t n_slots, capacity;
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
	*count = (uint32_t)gos_compute_ref_project(r->tokens, r->n_slots, cam, palette, r->out);
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
