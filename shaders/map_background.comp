#version 450
/* map_background.comp: the map's background (grid, axes and, far out, the
 * splatted tokens; map_background.glsl) composited over the clear color,
 * one invocation per pixel, packed as 8-bit RGBA or BGRA into
 * ids[w*h + y*w + x]. compositor/gos_render.c copies that into the target
 * image and draws the quads and the overlay over it: on lavapipe this costs
 * a fraction of a fullscreen fragment pass, and a frame whose camera and
 * tokens did not change only repeats the copy. */
#define IDS_QUALIFIER
#include "map_background.glsl"

layout(local_size_x = 8, local_size_y = 8) in;

const vec3 BG = vec3(0.043, 0.055, 0.078);   /* gos_render.c BG_R/G/B */

/* Flag 32: the tables pass: invocation i < w writes column i's grid_1d,
 * w <= i < w + h row i - w's, into ids[2*w*h + 2*i], as float bits. The
 * pixel pass (flag clear) reads them: the grid math per column and row
 * instead of per pixel. */
void main()
{
	uint w = uint(pc.viewport.x), h = uint(pc.viewport.y);
	uint tab = 2u * w * h;
	if ((pc.flags & 32u) != 0u) {
		uint i = gl_WorkGroupID.x * 64u + gl_LocalInvocationIndex;
		vec2 g;
		if (i < w)
			g = grid_1d(float(i) + 0.5, pc.viewport.x, pc.center.x, pc.axis.x);
		else if (i < w + h)
			g = grid_1d(float(i - w) + 0.5, pc.viewport.y, pc.center.y, pc.axis.y);
		else
			return;
		pc.ids.ids[tab + 2u * i] = floatBitsToUint(g.x);
		pc.ids.ids[tab + 2u * i + 1u] = floatBitsToUint(g.y);
		return;
	}
	uvec2 px = gl_GlobalInvocationID.xy;
	if (px.x >= w || px.y >= h)
		return;
	vec2 col = vec2(0.0), row = vec2(0.0);
	if ((pc.flags & 1u) != 0u) {
		uint c = tab + 2u * px.x, r = tab + 2u * (w + px.y);
		col = vec2(uintBitsToFloat(pc.ids.ids[c]), uintBitsToFloat(pc.ids.ids[c + 1u]));
		row = vec2(uintBitsToFloat(pc.ids.ids[r]), uintBitsToFloat(pc.ids.ids[r + 1u]));
	}
	vec4 c = map_background_sep(px, col, row);
	vec3 rgb = clamp(c.rgb + BG * (1.0 - c.a), 0.0, 1.0);
	uvec3 b = uvec3(rgb * 255.0 + 0.5);
	if ((pc.flags & 16u) != 0u)
		b = b.bgr;
	pc.ids.ids[w * h + px.y * w + px.x] = b.x | (b.y << 8) | (b.z << 16) | (255u << 24);
}
