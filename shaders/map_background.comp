#version 450
/* map_background.comp: the map's background (grid, axes and, far out, the
 * splatted tokens; map_background.glsl) composited over the clear color,
 * one invocation per pixel, packed as 8-bit RGBA or BGRA into
 * ids[w*h + y*w + x]. compositor/gos_render.c copies that into the target
 * image and draws the quads and the overlay over it: on lavapipe this costs
 * a fraction of a fullscreen fragment pass, and a frame whose camera and
 * tokens did not change only repeats the copy. After a pan by whole pixels
 * the renderer shifts the buffer and dispatches this over the newly exposed
 * strips only (pc.origin: the strip's first pixel). */
#define IDS_QUALIFIER
#include "map_background.glsl"

layout(local_size_x = 8, local_size_y = 8) in;

const vec3 BG = vec3(0.043, 0.055, 0.078);   /* gos_render.c BG_R/G/B */

void main()
{
	uvec2 px = gl_GlobalInvocationID.xy + uvec2(pc.origin & 0xFFFFu, pc.origin >> 16);
	uint w = uint(pc.viewport.x), h = uint(pc.viewport.y);
	if (px.x >= w || px.y >= h)
		return;
	vec4 c = map_background(px, vec2(px) + 0.5);
	vec3 rgb = clamp(c.rgb + BG * (1.0 - c.a), 0.0, 1.0);
	uvec3 b = uvec3(rgb * 255.0 + 0.5);
	if ((pc.flags & 16u) != 0u)
		b = b.bgr;
	pc.ids.ids[w * h + px.y * w + px.x] = b.x | (b.y << 8) | (b.z << 16) | (255u << 24);
}
