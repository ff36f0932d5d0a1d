#version 450
/* grid.frag: the infinite map's background, and far out the tokens too.
 *
 * Grid lines every `base`, 10 base and 100 base world units, each level's
 * strength a smooth function of its on-screen spacing (0 at 8 px, full at
 * 800 px; computed once per frame on the host), so levels fade in and out
 * continuously while zooming (no popping) and no level is ever drawn denser
 * than 8 px (no moire). Lines are 1 px, anti-aliased by their pixel distance.
 * The axes through the world origin are drawn on top.
 *
 * Splats (flag 2): far out, token_splat.comp has written the newest slot
 * covering each pixel (+1; 0: none) into a screen-sized id buffer; the token
 * is colored here as token.vert/token.frag would (confidence ramp of the
 * palette table, alpha at least 0.8 as a point below 3 px, 0.95 fill, fade-in
 * from its arrival time) and composited over the grid.
 *
 * Output: sRGB-encoded, premultiplied alpha (the target is UNORM; blending
 * happens in sRGB space). */
#define IDS_QUALIFIER readonly
#include "map_background.glsl"

layout(location = 0) out vec4 o_color;

void main()
{
	o_color = map_background(uvec2(gl_FragCoord.xy), gl_FragCoord.xy);
}
