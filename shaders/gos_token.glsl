/* gos_token.glsl: the token record (compute/gos_compute_ref.h, struct
 * gos_gpu_token; fields in shaders/gos_token.h) and the view style's pure
 * functions, shared by token_project.comp, token_splat.comp and
 * map_background.glsl. The including shader enables
 * GL_EXT_buffer_reference. Only correctly rounded arithmetic, `precise`:
 * the CPU reference (compute/gos_compute_ref.c) reproduces it bit for bit. */
#include "gos_palette.h"
#include "gos_token.h"

struct Token {
	uint id;
	uint attrs;
	vec2 position;
	float confidence;
	uint values;
};

layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer MaskBuf {
	uint words[];
};

/* Is the token drawn under the filter (GOS_FILTER_* bits)? */
bool token_shown(Token t, uint filter_bits, MaskBuf mask, uint mask_words, float p_min,
                 float p_max)
{
	if ((filter_bits & GOS_FILTER_RANGE) != 0u &&
	    (t.confidence < 0.0 || t.confidence < p_min || t.confidence > p_max))
		return false;
	if ((filter_bits & GOS_FILTER_STREAMS) != 0u) {
		uint s = t.attrs & GOS_TOKEN_STREAM_MASK;
		if ((s >> 5u) >= mask_words)
			return (filter_bits & GOS_FILTER_BEYOND) != 0u;
		return ((mask.words[s >> 5u] >> (s & 31u)) & 1u) != 0u;
	}
	return true;
}

/* The value the color mode ramps (GOS_COLOR_*), -1.0 when unknown. */
float token_value(Token t, uint mode)
{
	if (mode == GOS_COLOR_CONFIDENCE)
		return t.confidence;
	if (mode == GOS_COLOR_RANK) {
		uint b = (t.attrs >> GOS_TOKEN_RANK_SHIFT) & 7u;
		return b == 0u ? -1.0 : b == 1u ? GOS_RANK_T1 : b == 2u ? GOS_RANK_T10
		       : b == 3u ? GOS_RANK_T100 : GOS_RANK_TBEYOND;
	}
	uint shift = mode == GOS_COLOR_LOGPROB ? GOS_VALUE_LOGPROB_SHIFT
	             : mode == GOS_COLOR_ENTROPY ? GOS_VALUE_ENTROPY_SHIFT
	             : mode == GOS_COLOR_LATENCY ? GOS_VALUE_LATENCY_SHIFT
	             : GOS_VALUE_AGREEMENT_SHIFT;
	uint q = (t.values >> shift) & 0xFFu;
	precise float v = float(q - 1u) * GOS_QUANT_INV;
	return q == 0u ? -1.0 : v;
}

/* 0: the palette's color; 1: the highlight (a search match, or in
 * agreement mode a first divergence); 2: dimmed (a search is on and the
 * token is not among its matches). */
uint token_accent(Token t, uint mode, uint filter_bits)
{
	uint flags = t.attrs >> GOS_TOKEN_FLAG_SHIFT;
	if ((filter_bits & GOS_FILTER_SEARCH) != 0u)
		return (flags & GOS_TOKEN_MATCH) != 0u ? 1u : 2u;
	return mode == GOS_COLOR_AGREEMENT && (flags & GOS_TOKEN_DIVERGES) != 0u ? 1u : 0u;
}
