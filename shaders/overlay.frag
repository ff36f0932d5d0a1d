#version 450
/* overlay.frag: solid color or glyph coverage from the atlas; premultiplied. */
layout(set = 0, binding = 0) uniform sampler2D atlas;

layout(location = 0) in vec2 v_uv;
layout(location = 1) in vec4 v_color;
layout(location = 2) in float v_mode;

layout(location = 0) out vec4 o_color;

void main()
{
	float a = v_color.a;
	if (v_mode > 0.5)
		a *= texture(atlas, v_uv).r;
	o_color = vec4(v_color.rgb * a, a);
}
