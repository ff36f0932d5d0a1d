/* The token record's packed fields and the view style's flags, shared by the
 * shaders (GLSL, via #include) and the C that packs and mirrors them
 * (compute/gos_compute_ref.c, compute/gos_compute.c, compositor/render).
 * Every constant is an unsigned literal both languages read alike.
 *
 * Token { uint id; uint attrs; vec2 position; float confidence; uint values; }
 *   attrs  bits 0..18  stream index (GOS_TOKEN_STREAM_MAX and past: that value)
 *          bits 20..22 rank bucket: 0 unknown, 1 the model's first choice,
 *                      2 rank <= 10, 3 rank <= 100, 4 beyond (not among its
 *                      top_logprobs)
 *          bits 24..31 flags: GOS_TOKEN_DIVERGES, GOS_TOKEN_MATCH
 *   values bytes of the color modes' quantized values (gos_palette.h:
 *          q = 1 + round(t * GOS_QUANT), 0 unknown): logprob, entropy,
 *          latency, agreement, from the low byte up. */
#ifndef GOS_TOKEN_H
#define GOS_TOKEN_H

#define GOS_TOKEN_STREAM_MASK  0x7FFFFu
#define GOS_TOKEN_STREAM_MAX   0x7FFFFu   /* streams this and past share a filter bit */
#define GOS_TOKEN_RANK_SHIFT   20u
#define GOS_TOKEN_FLAG_SHIFT   24u
#define GOS_TOKEN_DIVERGES     1u         /* the first index where its stream diverges */
#define GOS_TOKEN_MATCH        2u         /* covered by the current search's matches */

#define GOS_VALUE_LOGPROB_SHIFT   0u
#define GOS_VALUE_ENTROPY_SHIFT   8u
#define GOS_VALUE_LATENCY_SHIFT   16u
#define GOS_VALUE_AGREEMENT_SHIFT 24u

/* The view style's filter bits (push constant `filter`). */
#define GOS_FILTER_STREAMS  1u   /* only streams whose bit is set in the mask */
#define GOS_FILTER_RANGE    2u   /* only known confidences in [p_min, p_max] */
#define GOS_FILTER_SEARCH   4u   /* matches highlighted, the rest dimmed */
#define GOS_FILTER_BEYOND   8u   /* with STREAMS: streams past the mask are shown */

/* Stream mask words the GPU takes (one vkCmdUpdateBuffer: 64 KiB). */
#define GOS_FILTER_MASK_WORDS 16384u

#endif
