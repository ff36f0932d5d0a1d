#version 450
/* token_project.comp: projects every token of the map to the screen, colors it
 * by confidence, culls what is off screen and compacts the survivors into the
 * instance buffer of an indirect draw. compute/gos_compute.c dispatches it;
 * compute/gos_compute_ref.c is its CPU reference (same math, same output).
 *
 * Data (std430, the design.md WGSL contract; the pads are the contract's
 * implicit padding, named so that every byte of a record is written):
 *   Token          { uint id; uint attrs; vec2 position; float confidence;
 *                    uint values; }                                  24 bytes
 *                  (attrs, values: shaders/gos_token.h)
 *   ProcessedToken { uint id; vec2 screen_pos; vec4 color; }         32 bytes
 * The buffers are reached through buffer device addresses in the push
 * constants (not descriptors): descriptor ranges are capped by
 * maxStorageBufferRange (128 MiB on lavapipe, i.e. 4M tokens), the map holds
 * up to 10M.
 *
 * Conventions:
 *   - id 0xFFFFFFFF marks an empty slot (evicted or never written): skipped.
 *   - confidence < 0 (the host writes -1.0) means unknown: neutral gray.
 *   - screen_pos = (position - center) * zoom + viewport / 2, in pixels, with
 *     x to the right and y DOWN (world y grows down the screen, like text).
 *   - culling keeps a token when -margin <= screen_pos <= viewport + margin on
 *     both axes (inclusive).
 *   - color: sRGB-encoded, straight alpha, from the shaders/gos_palette.h
 *     table, which the host uploads into the buffer at `palettes` (a constant
 *     array here would be copied into every invocation's private memory),
 *     ramping the color mode's value (`mode`, gos_token.glsl); a search
 *     match or a first divergence takes the highlight color, and while a
 *     search is on the other tokens' alpha is scaled by GOS_DIM_ALPHA.
 *   - the filter (`filter_bits`, gos_token.h) drops tokens before the cull: a
 *     stream mask (the buffer at `mask`, mask_words words) and a
 *     confidence range.
 *   - survivors go to out[atomicAdd(draw.instanceCount)]: their order is not
 *     deterministic; no record past instanceCount is touched.
 * The arithmetic is `precise` (no fused multiply-add) and uses only
 * correctly rounded operations (+, -, *, comparisons, float<->int), so the
 * CPU reference reproduces positions, colors and cull decisions bit for bit. */
#extension GL_EXT_buffer_reference : require
#extension GL_GOOGLE_include_directive : require

#include "gos_token.glsl"

layout(local_size_x = 64) in;

struct ProcessedToken {
	uint id;
	uint pad0;
	vec2 screen_pos;
	vec4 color;
};

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer TokenBuf {
	Token tokens[];
};

layout(buffer_reference, std430, buffer_reference_align = 16) writeonly buffer OutBuf {
	ProcessedToken processed[];
};

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer LutBuf {
	float lut[];   /* GOS_PALETTE_COUNT * GOS_PALETTE_N rgb triples */
};

/* VkDrawIndirectCommand */
layout(buffer_reference, std430, buffer_reference_align = 4) buffer DrawBuf {
	uint vertex_count;
	uint instance_count;
	uint first_vertex;
	uint first_instance;
};

/* Mirrored by struct gos_compute_push in compute/gos_compute.c. */
layout(push_constant, std430) uniform Push {
	TokenBuf tokens;
	OutBuf out_buf;
	DrawBuf draw;
	LutBuf palettes;
	MaskBuf mask;     /* stream mask (GOS_FILTER_STREAMS) */
	vec2 center;      /* world units */
	vec2 viewport;    /* pixels */
	float zoom;       /* pixels per world unit */
	float margin;     /* cull margin, pixels */
	uint count;       /* slots to process */
	uint palette;     /* GOS_PALETTE_* */
	uint row_stride;  /* invocations per dispatch row (2-D dispatch past 65535 groups) */
	uint mode;        /* GOS_COLOR_* */
	uint filter_bits; /* GOS_FILTER_* */
	uint mask_words;
	float p_min, p_max;
} pc;

const uint EMPTY = 0xFFFFFFFFu;

vec4 ramp(float value, uint palette)
{
	if (value < 0.0)
		return vec4(GOS_UNKNOWN_R, GOS_UNKNOWN_G, GOS_UNKNOWN_B, GOS_UNKNOWN_A);
	precise float t = min(value, 1.0);
	precise float x = t * GOS_PALETTE_SEGMENTS;
	uint k = min(uint(x), uint(GOS_PALETTE_N - 2));
	precise float f = x - float(k);
	uint a = (min(palette, uint(GOS_PALETTE_COUNT - 1)) * uint(GOS_PALETTE_N) + k) * 3u;
	LutBuf l = pc.palettes;
	vec3 lo = vec3(l.lut[a], l.lut[a + 1u], l.lut[a + 2u]);
	vec3 hi = vec3(l.lut[a + 3u], l.lut[a + 4u], l.lut[a + 5u]);
	precise vec3 rgb = lo + (hi - lo) * f;
	precise float alpha = GOS_ALPHA_MIN + GOS_ALPHA_RANGE * t;
	return vec4(rgb, alpha);
}

vec4 token_color(Token t)
{
	uint accent = token_accent(t, pc.mode, pc.filter_bits);
	if (accent == 1u)
		return vec4(GOS_HIGHLIGHT_R, GOS_HIGHLIGHT_G, GOS_HIGHLIGHT_B, GOS_HIGHLIGHT_A);
	precise vec4 c = ramp(token_value(t, pc.mode), pc.palette);
	if (accent == 2u)
		c.a = c.a * GOS_DIM_ALPHA;
	return c;
}

void main()
{
	uint i = gl_GlobalInvocationID.y * pc.row_stride + gl_GlobalInvocationID.x;
	bool keep = false;
	ProcessedToken p;
	if (i < pc.count) {
		Token t = pc.tokens.tokens[i];
		if (t.id != EMPTY &&
		    token_shown(t, pc.filter_bits, pc.mask, pc.mask_words, pc.p_min, pc.p_max)) {
			precise vec2 s = (t.position - pc.center) * pc.zoom + pc.viewport * 0.5;
			precise vec2 hi = pc.viewport + pc.margin;
			keep = s.x >= -pc.margin && s.y >= -pc.margin && s.x <= hi.x && s.y <= hi.y;
			if (keep) {
				p.id = t.id;
				p.pad0 = 0u;
				p.screen_pos = s;
				p.color = token_color(t);
			}
		}
	}

	/* One atomic per survivor on one address: compilers fold these into one
	 * per subgroup themselves (Mesa's nir_opt_uniform_atomics, NVIDIA's
	 * compiler). A hand-made workgroup reduction (shared counter + 3
	 * barriers) measured 1.7x slower on lavapipe, where barriers are dear. */
	if (keep)
		pc.out_buf.processed[atomicAdd(pc.draw.instance_count, 1u)] = p;
}
