#version 450
/* grid.frag: the infinite map's background. Grid lines every `base`, 10 base
 * and 100 base world units, each level's strength a smooth function of its
 * on-screen spacing (0 at 8 px, full at 800 px), so levels fade in and out
 * continuously while zooming (no popping) and no level is ever drawn denser
 * than 8 px (no moire). Lines are 1 px, anti-aliased by their pixel distance.
 * The axes through the world origin are drawn on top. Output: sRGB-encoded,
 * premultiplied alpha (the target is UNORM; blending happens in sRGB space). */
layout(push_constant, std430) uniform Push {
	vec2 viewport;   /* pixels */
	vec2 center;     /* world center, reduced modulo 1000 base (periodic) */
	vec2 axis;       /* screen position of world x = 0 (x) and y = 0 (y) */
	float zoom;      /* pixels per world unit */
	float base;      /* finest level's spacing, world units */
	vec4 line;       /* grid line color (rgb) and strength (a) */
	vec4 axis_color;
	float enabled;   /* 0: background only (tests) */
} pc;

layout(location = 0) out vec4 o_color;

void main()
{
	vec2 frag = gl_FragCoord.xy;
	float a = 0.0;
	if (pc.enabled > 0.5) {
		vec2 world = (frag - pc.viewport * 0.5) / pc.zoom + pc.center;
		float sp = pc.base;
		for (int i = 0; i < 3; i++) {
			float px = sp * pc.zoom;
			float strength = clamp(log(px / 8.0) / log(100.0), 0.0, 1.0);
			strength = strength * strength * (3.0 - 2.0 * strength);
			vec2 d = abs(fract(world / sp + 0.5) - 0.5) * px;
			float cov = clamp(1.0 - min(d.x, d.y), 0.0, 1.0);
			a = max(a, cov * strength);
			sp *= 10.0;
		}
		a *= pc.line.a;
	}
	vec3 rgb = pc.line.rgb * a;
	float alpha = a;
	if (pc.enabled > 0.5) {
		vec2 da = abs(frag - pc.axis);
		float ax = clamp(1.5 - min(da.x, da.y), 0.0, 1.0) * pc.axis_color.a;
		rgb = rgb * (1.0 - ax) + pc.axis_color.rgb * ax;
		alpha = alpha * (1.0 - ax) + ax;
	}
	o_color = vec4(rgb, alpha);
}
