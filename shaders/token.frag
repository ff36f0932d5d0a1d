#version 450
/* token.frag: a token's rounded box in its confidence color and, when the
 * zoom makes it legible, its text: each character box samples its glyph's
 * cell of the atlas (gos_text.h) with explicit gradients, so mip selection
 * stays smooth across cell borders. Output: premultiplied alpha. */
#extension GL_EXT_buffer_reference : require

/* per slot: 16 glyph cells as uint16 pairs packed in 8 uints (32 bytes) */
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer GlyphBuf {
	uint g[];
};

layout(push_constant, std430) uniform Push {
	uvec2 out_buf;     /* addresses used by token.vert */
	uvec2 meta;
	GlyphBuf glyphs;
	vec2 viewport;
	float zoom;
	float now;
	float fade_s;
	float text_alpha;
	float line_h;
	float char_w;
	uint flags;
} pc;

layout(set = 0, binding = 0) uniform sampler2D atlas;

layout(location = 0) in vec4 v_color;
layout(location = 1) in vec2 v_local;
layout(location = 2) in vec2 v_px;
layout(location = 3) flat in vec2 v_half;
layout(location = 4) flat in uint v_slot;
layout(location = 5) flat in uint v_nglyphs;

layout(location = 0) out vec4 o_color;

const vec2 ATLAS = vec2(4096.0, 4096.0);
const vec2 CELL = vec2(32.0, 64.0);
const uint COLS = 128u;
const vec3 BG = vec3(0.043, 0.055, 0.078);

void main()
{
	float r = min(min(v_half.x, v_half.y) * 0.35, 4.0);
	vec2 q = abs(v_px) - v_half + r;
	float sdf = length(max(q, 0.0)) + min(max(q.x, q.y), 0.0) - r;
	float cov = clamp(0.5 - sdf, 0.0, 1.0);
	vec4 c = v_color;
	float fill_a = c.a * (pc.text_alpha > 0.0 ? mix(0.9, 0.75, pc.text_alpha) : 0.95);
	vec3 rgb = c.rgb;
	float a = fill_a * cov;

	if (pc.text_alpha > 0.0 && v_nglyphs > 0u) {
		float cellf = floor(v_local.x);
		vec2 dx = dFdx(v_local), dy = dFdy(v_local);
		if (cellf >= 0.0 && cellf < float(v_nglyphs) && v_local.y >= 0.0 && v_local.y <= 1.0) {
			uint k = uint(cellf);
			uint word = pc.glyphs.g[v_slot * 8u + (k >> 1)];
			uint cell = (k & 1u) != 0u ? (word >> 16) : (word & 0xFFFFu);
			vec2 origin = vec2(float(cell % COLS), float(cell / COLS)) * CELL;
			vec2 uv = (origin + vec2(fract(v_local.x), v_local.y) * CELL) / ATLAS;
			vec2 scale = CELL / ATLAS;
			float g = textureGrad(atlas, uv, dx * scale, dy * scale).r;
			/* light text on dark boxes, dark text on light ones */
			vec3 under = BG * (1.0 - fill_a) + rgb * fill_a;
			float lum = dot(under, vec3(0.299, 0.587, 0.114));
			vec3 ink = lum > 0.55 ? vec3(0.04, 0.05, 0.08) : vec3(0.96, 0.97, 1.0);
			/* fading-in tokens fade their text too (alpha >= 0.35 when settled) */
			float ga = g * pc.text_alpha * min(1.0, c.a / 0.35) * cov;
			/* composite ink over the fill (both premultiplied) */
			vec3 pm = rgb * a;
			pm = pm * (1.0 - ga) + ink * ga;
			a = a * (1.0 - ga) + ga;
			o_color = vec4(pm, a);
			return;
		}
	}
	o_color = vec4(rgb * a, a);
}
