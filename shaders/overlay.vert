#version 450
/* overlay.vert: screen-space quads built on the CPU each frame (HUD, scale
 * indicator, newest-token markers, hover box): solid or atlas glyphs. */
layout(push_constant, std430) uniform Push {
	vec2 viewport;
} pc;

layout(location = 0) in vec2 a_pos;     /* pixels */
layout(location = 1) in vec2 a_uv;      /* atlas uv (glyphs) */
layout(location = 2) in vec4 a_color;   /* sRGB, straight alpha */
layout(location = 3) in float a_mode;   /* 0 solid, 1 glyph */

layout(location = 0) out vec2 v_uv;
layout(location = 1) out vec4 v_color;
layout(location = 2) out float v_mode;

void main()
{
	gl_Position = vec4(a_pos / pc.viewport * 2.0 - 1.0, 0.0, 1.0);
	v_uv = a_uv;
	v_color = a_color;
	v_mode = a_mode;
}
