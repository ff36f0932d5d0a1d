#version 450
/* token.vert: one instanced quad per surviving token, drawn with the compute
 * pass's indirect command: gl_InstanceIndex indexes the ProcessedToken output
 * of token_project.comp (screen position and color), whose id is the map
 * slot that indexes the renderer's per-slot meta (width, arrival, glyphs).
 * Below ~3 px tall a token becomes a colored point (min 2 px). */
#extension GL_EXT_buffer_reference : require

struct ProcessedToken {
	uint id;
	uint pad0;
	vec2 screen_pos;
	vec4 color;
};
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer OutBuf {
	ProcessedToken p[];
};
/* per slot: width (world), arrival (s, renderer clock), stream, glyph count */
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer MetaBuf {
	vec4 m[];
};

layout(push_constant, std430) uniform Push {
	OutBuf out_buf;
	MetaBuf meta;
	uvec2 glyphs;      /* a GlyphBuf address, read by token.frag */
	vec2 viewport;
	float zoom;
	float now;         /* renderer clock, s */
	float fade_s;      /* fade-in time, s (0: none) */
	float text_alpha;  /* 0..1: text legibility at this zoom */
	float line_h;      /* world units */
	float char_w;      /* world units */
	uint flags;        /* 1: flat gray (tests) */
} pc;

layout(location = 0) out vec4 v_color;
layout(location = 1) out vec2 v_local;      /* x: character cells, y: 0..1 down */
layout(location = 2) out vec2 v_px;         /* position in pixels from the quad's center */
layout(location = 3) flat out vec2 v_half;  /* half size, pixels */
layout(location = 4) flat out uint v_slot;
layout(location = 5) flat out uint v_nglyphs;

void main()
{
	const vec2 corners[6] = vec2[](vec2(-1, -1), vec2(1, -1), vec2(1, 1),
	                               vec2(-1, -1), vec2(1, 1), vec2(-1, 1));
	vec2 c = corners[gl_VertexIndex];
	ProcessedToken t = pc.out_buf.p[gl_InstanceIndex];
	vec4 meta = pc.meta.m[t.id];
	float age = pc.now - meta.y;
	float fade = pc.fade_s > 0.0 ? clamp(age / pc.fade_s, 0.0, 1.0) : 1.0;
	fade = fade * fade * (3.0 - 2.0 * fade);

	vec2 size = vec2(meta.x, pc.line_h) * pc.zoom;
	/* 1 px gap between neighbours while there is room for it */
	vec2 half_sz = max(size * 0.5 - (size.y > 6.0 ? 0.75 : 0.0), vec2(1.0));
	half_sz *= mix(0.7, 1.0, fade);
	vec2 px = c * (half_sz + 1.0);   /* 1 px of room for anti-aliasing */
	vec2 pos = t.screen_pos + px;
	gl_Position = vec4(pos / pc.viewport * 2.0 - 1.0, 0.0, 1.0);

	vec4 color = (pc.flags & 1u) != 0u ? vec4(0.6, 0.6, 0.6, 0.8) : t.color;
	if (size.y < 3.0)
		color.a = max(color.a, 0.8);   /* points stay visible far out */
	color.a *= fade;
	v_color = color;
	/* v_local spans the token's box; the 1 px margin falls outside it */
	v_local = vec2(px.x / (2.0 * half_sz.x) * (meta.x / pc.char_w) + 0.5 * meta.x / pc.char_w,
	               px.y / (2.0 * half_sz.y) + 0.5);
	v_px = px;
	v_half = half_sz;
	v_slot = t.id;
	v_nglyphs = uint(meta.w);
}
