/* gos_compute_ref: the data formats of the token compute pipeline and its CPU
 * reference implementation: exactly the math of shaders/token_project.comp
 * (same palettes, same culling, same output records), in plain C, no Vulkan.
 * The tests hold the GPU to it; the compositor's --cpu-compute fallback
 * runs it when the GPU path fails at start-up.
 *
 * Conventions (shared with the shader):
 *   screen = (world - center) * zoom + viewport / 2, pixels, x right, y DOWN.
 *   A token is kept when -margin <= screen <= viewport + margin on both axes
 *   (inclusive). Empty slots (id GOS_SLOT_EMPTY) are skipped.
 *   Colors are sRGB-encoded with straight alpha: palette ramp of confidence,
 *   alpha 0.35..1.0 with confidence; unknown confidence is neutral gray
 *   (0.6, 0.6, 0.6, 0.6). Tables and constants: shaders/gos_palette.h.
 *
 * Threads: the pure functions may be called from any thread; a
 * struct gos_compute_ref belongs to one thread at a time. */
#ifndef GOS_COMPUTE_REF_H
#define GOS_COMPUTE_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_palette.h"   /* GOS_PALETTE_VIRIDIS, GOS_PALETTE_RED_GREEN, GOS_COLOR_*, ... */
#include "gos_token.h"     /* the packed fields, GOS_FILTER_* */

/* Token.id of a slot that holds no token (evicted, or never written). */
#define GOS_SLOT_EMPTY 0xFFFFFFFFu
/* Token.confidence stored for an unknown (NAN) confidence: the shader tests
 * `confidence < 0`, which no optimizer can fold away the way it may fold
 * isnan(). */
#define GOS_CONFIDENCE_UNKNOWN (-1.0f)
/* Slots are < this (134M: the map's default max is 10M); the GPU path may
 * allow fewer (its device's maxMemoryAllocationSize / 32). */
#define GOS_COMPUTE_MAX_SLOTS (1u << 27)

/* The view the tokens are projected into. */
struct gos_camera {
	float center_x, center_y;      /* world point at the viewport's center */
	float zoom;                    /* pixels per world unit, > 0 */
	float viewport_w, viewport_h;  /* pixels, > 0 */
	float margin;                  /* cull margin in pixels, >= 0 */
};

/* One change to a slot, as the compositor derives it from the map state's
 * change log (struct gos_token: slot, x, y, confidence, removed). */
struct gos_token_update {
	uint32_t slot;       /* the map slot = the GPU array index = the output id */
	float x, y;          /* world position, finite (ignored when removed) */
	float confidence;    /* [0, 1], or NAN when unknown (ignored when removed) */
	bool removed;        /* the slot is empty from now on */
	/* For the color modes and filters (zero: stream 0, everything unknown);
	 * gos_compute_ref_facts fills them. */
	uint8_t rank;        /* bucket: 0 unknown, 1 first choice, 2 <= 10, 3 <= 100, 4 beyond */
	uint8_t flags;       /* GOS_TOKEN_DIVERGES, GOS_TOKEN_MATCH */
	uint8_t q[4];        /* quantized logprob, entropy, latency, agreement (0: unknown) */
	uint32_t stream;     /* stream index (past GOS_TOKEN_STREAM_MAX: that) */
};

/* Token, as stored in the GPU buffer (std430, 24 bytes). */
struct gos_gpu_token {
	uint32_t id;         /* the slot, or GOS_SLOT_EMPTY */
	uint32_t attrs;      /* stream, rank bucket, flags (gos_token.h) */
	float x, y;
	float confidence;    /* [0, 1], or GOS_CONFIDENCE_UNKNOWN */
	uint32_t values;     /* the quantized mode values (gos_token.h) */
};

/* ProcessedToken, one per surviving token (std430, 32 bytes): the instance
 * data of the token quads. */
struct gos_processed {
	uint32_t id;         /* the slot */
	uint32_t pad0;       /* written as 0 */
	float x, y;          /* screen position, pixels, y down */
	float r, g, b, a;    /* sRGB-encoded, straight alpha */
};

_Static_assert(sizeof(struct gos_gpu_token) == 24, "Token is 24 bytes");
_Static_assert(sizeof(struct gos_processed) == 32, "ProcessedToken is 32 bytes");

/* How tokens are drawn beyond the palette: the color mode, and the filter
 * (GOS_FILTER_* bits; gos_token.glsl has the predicate). Zero: confidence,
 * no filter. */
struct gos_compute_style {
	uint32_t mode;           /* GOS_COLOR_* */
	uint32_t filter;         /* GOS_FILTER_* */
	float p_min, p_max;      /* GOS_FILTER_RANGE */
	const uint32_t *mask;    /* GOS_FILTER_STREAMS: bit s%32 of mask[s/32] shows stream s */
	uint32_t mask_words;     /* <= GOS_FILTER_MASK_WORDS; streams past: GOS_FILTER_BEYOND */
};

/* Checks a style: known mode and bits, p_min <= p_max within [0, 1] when
 * ranged, mask_words within bounds (and mask given when non-zero). One
 * sentence in err on failure. */
bool gos_compute_ref_check_style(const struct gos_compute_style *st, char *err, size_t len);

/* The color-mode fields of an update from a token's facts: logprob (NAN:
 * none; then ln(confidence) stands in), rank (0 unknown, 1.., UINT32_MAX
 * beyond), entropy (nats, NAN none), gap_ms (NAN none), agree (0..1, NAN
 * none); the mappings are gos_palette.h's. */
void gos_compute_ref_facts(struct gos_token_update *u, float logprob, uint32_t rank,
                           float entropy, float gap_ms, float agree);

/* Color mode names: "confidence", "logprob", "rank", "entropy", "latency",
 * "agreement"; NULL for an unknown index. */
const char *gos_compute_ref_mode_name(uint32_t mode);

/* Parses a color mode name; false (out unchanged) when unknown. */
bool gos_compute_ref_mode_parse(const char *name, uint32_t *out);

/* Palette names: "viridis", "red-green". NULL for an unknown index. */
const char *gos_compute_ref_palette_name(uint32_t palette);

/* Parses a palette name; false (out unchanged) when unknown. */
bool gos_compute_ref_palette_parse(const char *name, uint32_t *out);

/* Checks a camera: finite center, zoom > 0, viewport > 0, margin >= 0, all
 * finite. On failure writes one sentence to err and returns false. */
bool gos_compute_ref_check_camera(const struct gos_camera *cam, char *err, size_t len);

/* Checks a batch of updates: slot < max_slots; for live slots finite x, y
 * and a confidence in [0, 1] or NAN. On failure names the first bad entry in
 * err and returns false. */
bool gos_compute_ref_check_updates(const struct gos_token_update *u, size_t n,
                                   uint32_t max_slots, char *err, size_t len);

/* The GPU record for an update (removed: an empty slot). */
struct gos_gpu_token gos_compute_ref_pack(const struct gos_token_update *u);

/* The palette table of gos_palette.h (what the GPU path uploads): *n floats,
 * GOS_PALETTE_COUNT * GOS_PALETTE_N rgb triples. */
const float *gos_compute_ref_palette_table(size_t *n);

/* rgba for a stored confidence (GOS_CONFIDENCE_UNKNOWN or [0, 1]). */
void gos_compute_ref_color(float confidence, uint32_t palette, float rgba[4]);

/* Projects, colors and culls one token; true (and *out written) if kept.
 * style NULL: confidence, no filter. */
bool gos_compute_ref_token(const struct gos_gpu_token *t, const struct gos_camera *cam,
                           uint32_t palette, struct gos_processed *out);
bool gos_compute_ref_token_styled(const struct gos_gpu_token *t, const struct gos_camera *cam,
                                  uint32_t palette, const struct gos_compute_style *style,
                                  struct gos_processed *out);

/* Is the token shown under the style's filter (token_shown in gos_token.glsl)? */
bool gos_compute_ref_shown(const struct gos_gpu_token *t, const struct gos_compute_style *style);

/* Runs the whole pass over n stored tokens into out (room for n): returns the
 * number kept, in slot order (the GPU's order is arbitrary; compare as sets). */
size_t gos_compute_ref_project(const struct gos_gpu_token *in, size_t n,
                               const struct gos_camera *cam, uint32_t palette,
                               struct gos_processed *out);
size_t gos_compute_ref_project_styled(const struct gos_gpu_token *in, size_t n,
                                      const struct gos_camera *cam, uint32_t palette,
                                      const struct gos_compute_style *style,
                                      struct gos_processed *out);

/* ---- a CPU stand-in for struct gos_compute (the --cpu-compute path) ---- */

struct gos_compute_ref;

struct gos_compute_ref *gos_compute_ref_create(void);
void gos_compute_ref_destroy(struct gos_compute_ref *r);   /* accepts NULL */

/* Same contract as gos_compute_update(): checks the whole batch first (bad
 * input: logged, false, nothing changed), then writes those slots, growing
 * by doubling; slots never written are empty. */
bool gos_compute_ref_update(struct gos_compute_ref *r, const struct gos_token_update *u,
                            size_t n);

/* Replaces the whole state with these tokens (every other slot empty). */
bool gos_compute_ref_set_all(struct gos_compute_ref *r, const struct gos_token_update *u,
                             size_t n);

/* The style dispatch uses from now on (copied, the mask too). False (logged,
 * nothing changed) when gos_compute_ref_check_style refuses it. */
bool gos_compute_ref_set_style(struct gos_compute_ref *r, const struct gos_compute_style *style);

/* Projects every slot (with the style set); *count gets the number kept.
 * False on a bad camera or palette (logged). The output stays valid until
 * the next call. */
bool gos_compute_ref_dispatch(struct gos_compute_ref *r, const struct gos_camera *cam,
                              uint32_t palette, uint32_t *count);
const struct gos_processed *gos_compute_ref_output(const struct gos_compute_ref *r);

/* The stored tokens: slots [0, *n). */
const struct gos_gpu_token *gos_compute_ref_tokens(const struct gos_compute_ref *r,
                                                   uint32_t *n);

#endif
