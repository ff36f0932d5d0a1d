#version 450
/* token_scatter.comp: writes staged token records to their slots,
 * tokens[slots[i]] = records[i], one invocation per record. The upload path
 * of compute/gos_compute.c for scattered changes: a single dispatch instead of
 * one copy region per run of consecutive slots. The host stages each slot at
 * most once per upload, so no two invocations write the same slot. */
#extension GL_EXT_buffer_reference : require

layout(local_size_x = 64) in;

struct Token {            /* as in gos_token.glsl: 24 bytes, copied as they are */
	uint id;
	uint attrs;
	vec2 position;
	float confidence;
	uint values;
};

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer RecordBuf {
	Token records[];
};

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer SlotBuf {
	uint slots[];
};

layout(buffer_reference, std430, buffer_reference_align = 8) writeonly buffer TokenBuf {
	Token tokens[];
};

/* Mirrored by struct gos_scatter_push in compute/gos_compute.c. */
layout(push_constant, std430) uniform Push {
	RecordBuf records;
	SlotBuf slots;
	TokenBuf tokens;
	uint count;
	uint row_stride;
} pc;

void main()
{
	uint i = gl_GlobalInvocationID.y * pc.row_stride + gl_GlobalInvocationID.x;
	if (i < pc.count)
		pc.tokens.tokens[pc.slots.slots[i]] = pc.records.records[i];
}
