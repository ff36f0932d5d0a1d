/* map_background.glsl: the map's background for one pixel: the grid and,
 * far out, the splatted tokens. Shared by grid.frag (a fullscreen pass, the
 * fallback when the target cannot be copied into) and map_background.comp
 * (computed into a buffer, copied into the target). See grid.frag for what
 * is drawn. The including shader defines IDS_QUALIFIER (readonly or empty)
 * before including this. */
#extension GL_EXT_buffer_reference : require
#extension GL_GOOGLE_include_directive : require

#include "gos_token.glsl"

/* ids[0, w*h): slot + 1 of the newest token per pixel (0: none);
 * ids[w*h, 2*w*h): the background as packed 8-bit color (compute path). */
layout(buffer_reference, std430, buffer_reference_align = 4) IDS_QUALIFIER buffer IdBuf {
	uint ids[];
};
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer TokenBuf {
	Token tokens[];
};
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer MetaBuf {
	vec4 m[];
};
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer LutBuf {
	float lut[];
};

/* Mirrored by struct grid_push in compositor/gos_render.c (128 bytes). */
layout(push_constant, std430) uniform Push {
	vec4 line;       /* grid line color (rgb) and strength (a) */
	vec4 axis_color;
	vec2 viewport;   /* pixels */
	vec2 center;     /* world center, reduced modulo 1000 base (periodic) */
	vec2 axis;       /* screen position of world x = 0 (x) and y = 0 (y) */
	float zoom;      /* pixels per world unit */
	float base;      /* finest level's spacing, world units */
	float s0, s1, s2;  /* strength of the three levels */
	uint flags;      /* 1: grid on, 2: splats, 4: flat gray tokens, 8: points (< 3 px),
	                    16: pack as BGRA (compute path) */
	IdBuf ids;
	TokenBuf tokens;
	MetaBuf meta;
	LutBuf lut;
	float now;       /* renderer clock, s */
	float fade_s;    /* fade-in time, s (0: none) */
	uint palette;    /* GOS_PALETTE_* | GOS_COLOR_* << 8 | GOS_FILTER_SEARCH << 16 when on */
	uint origin;     /* map_background.comp: first pixel, x | y << 16 (a strip) */
} pc;

/* The color ramp of token_project.comp (not bit-exact: no precise). */
vec4 ramp(float value)
{
	if (value < 0.0)
		return vec4(GOS_UNKNOWN_R, GOS_UNKNOWN_G, GOS_UNKNOWN_B, GOS_UNKNOWN_A);
	float t = min(value, 1.0);
	float x = t * GOS_PALETTE_SEGMENTS;
	uint k = min(uint(x), uint(GOS_PALETTE_N - 2));
	float f = x - float(k);
	uint a = (min(pc.palette & 0xFFu, uint(GOS_PALETTE_COUNT - 1)) * uint(GOS_PALETTE_N) + k) * 3u;
	vec3 lo = vec3(pc.lut.lut[a], pc.lut.lut[a + 1u], pc.lut.lut[a + 2u]);
	vec3 hi = vec3(pc.lut.lut[a + 3u], pc.lut.lut[a + 4u], pc.lut.lut[a + 5u]);
	return vec4(lo + (hi - lo) * f, GOS_ALPHA_MIN + GOS_ALPHA_RANGE * t);
}

/* Line coverage of the level with spacing sp (world units) at `world`. */
float grid_level(vec2 world, float sp, float strength)
{
	vec2 d = abs(fract(world / sp + 0.5) - 0.5) * (sp * pc.zoom);
	return clamp(1.0 - min(d.x, d.y), 0.0, 1.0) * strength;
}

/* Premultiplied sRGB color of pixel `px` (integer pixel, row 0 at the top;
 * `frag` its center). */
vec4 map_background(uvec2 px, vec2 frag)
{
	vec3 rgb = vec3(0.0);
	float alpha = 0.0;
	if ((pc.flags & 1u) != 0u) {
		vec2 world = (frag - pc.viewport * 0.5) / pc.zoom + pc.center;
		float a = 0.0;
		/* three levels, unrolled by hand (no local array: llvmpipe would
		 * keep it in memory) */
		if (pc.s0 > 0.0)
			a = max(a, grid_level(world, pc.base, pc.s0));
		if (pc.s1 > 0.0)
			a = max(a, grid_level(world, pc.base * 10.0, pc.s1));
		if (pc.s2 > 0.0)
			a = max(a, grid_level(world, pc.base * 100.0, pc.s2));
		a *= pc.line.a;
		rgb = pc.line.rgb * a;
		alpha = a;
		vec2 da = abs(frag - pc.axis);
		float ax = clamp(1.5 - min(da.x, da.y), 0.0, 1.0) * pc.axis_color.a;
		rgb = rgb * (1.0 - ax) + pc.axis_color.rgb * ax;
		alpha = alpha * (1.0 - ax) + ax;
	}
	if ((pc.flags & 2u) != 0u) {
		uint id = pc.ids.ids[px.y * uint(pc.viewport.x) + px.x];
		if (id != 0u) {
			uint slot = id - 1u;
			vec4 c = vec4(0.6, 0.6, 0.6, 0.8);
			if ((pc.flags & 4u) == 0u) {
				Token t = pc.tokens.tokens[slot];
				uint mode = (pc.palette >> 8u) & 0xFFu, filter_bits = pc.palette >> 16u;
				uint accent = token_accent(t, mode, filter_bits);
				c = accent == 1u ? vec4(GOS_HIGHLIGHT_R, GOS_HIGHLIGHT_G, GOS_HIGHLIGHT_B,
				                        GOS_HIGHLIGHT_A)
				                 : ramp(token_value(t, mode));
				if (accent == 2u)
					c.a *= GOS_DIM_ALPHA;
			}
			if ((pc.flags & 8u) != 0u)
				c.a = max(c.a, 0.8);
			if (pc.fade_s > 0.0) {
				float fade = clamp((pc.now - pc.meta.m[slot].y) / pc.fade_s, 0.0, 1.0);
				c.a *= fade * fade * (3.0 - 2.0 * fade);
			}
			float ta = c.a * 0.95;
			rgb = c.rgb * ta + rgb * (1.0 - ta);
			alpha = ta + alpha * (1.0 - ta);
		}
	}
	return vec4(rgb, alpha);
}
