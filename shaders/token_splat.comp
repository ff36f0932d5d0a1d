#version 450
/* token_splat.comp: far out, where tokens are only a few pixels tall and no
 * text shows, the renderer draws them without triangles: one invocation per
 * map slot projects the token (the math of token_project.comp) and writes
 * slot + 1 into every pixel of its box in a screen-sized id buffer with
 * atomicMax, so where tokens overlap the newest slot wins, whatever order the
 * invocations run in (the picture is deterministic). Invocation i takes slot
 * count - 1 - i (newest first) and reads a pixel before the atomic, so the
 * pixels a newer token already holds cost a plain load (atomics are what a
 * CPU driver pays most for); the splatted count is summed per workgroup. grid.frag then looks the
 * winner of each pixel up (color by confidence, fade-in) and composites it
 * over the grid. compositor/gos_render.c dispatches it after clearing the
 * id buffer to 0 (no token), or, after a pan by whole pixels, after shifting
 * the buffer and clearing only the exposed strips: then only pixels in
 * pc.cols / pc.rows are written, while the count still covers the whole
 * screen, and tokens far from the strips skip their width (meta) load.
 *
 * The box is the one token.vert would draw: width x line height in world
 * units times zoom, at least 2 px each way, shrunk by 0.75 px each side (the
 * gap between neighbours) once it is taller than 6 px. A pixel belongs to it
 * when its center is inside (left/top edges inclusive). Boxes are capped at
 * MAX_W x MAX_H pixels from their unclipped top-left corner (so a shifted
 * view clips a token the same way a fresh one does; the renderer only splats
 * below 8 px line height). */
#extension GL_EXT_buffer_reference : require
#extension GL_GOOGLE_include_directive : require

#include "gos_token.glsl"

layout(local_size_x = 64) in;


layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer TokenBuf {
	Token tokens[];
};
/* per slot: width (world), arrival, stream, glyph count (gos_render.c) */
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer MetaBuf {
	vec4 m[];
};
layout(buffer_reference, std430, buffer_reference_align = 4) buffer IdBuf {
	uint ids[];   /* width * height, row 0 at the top; 0: no token */
};
layout(buffer_reference, std430, buffer_reference_align = 4) buffer CountBuf {
	uint splatted;   /* tokens with at least one pixel on screen */
};

/* Mirrored by struct splat_push in compositor/gos_render.c. */
layout(push_constant, std430) uniform Push {
	TokenBuf tokens;
	MetaBuf meta;
	IdBuf ids;
	CountBuf counter;
	vec2 center;      /* world units */
	vec2 viewport;    /* pixels */
	float zoom;       /* pixels per world unit */
	float line_h;     /* world units */
	uint count;       /* slots to process */
	uint row_stride;  /* invocations per dispatch row */
	ivec2 cols;       /* pixels written: columns [x, y) of every row ... */
	ivec2 rows;       /* ... and rows [x, y) (strip pass; full: all columns, no rows) */
	float max_half;   /* pixels: no token's half width exceeds this */
	uint filter_bits; /* GOS_FILTER_* (as token_project.comp): hidden tokens splat nothing */
	MaskBuf mask;
	uint mask_words;
	float p_min, p_max;
	uint pad;
} pc;

const uint EMPTY = 0xFFFFFFFFu;
const int MAX_W = 64;
const int MAX_H = 8;

shared uint group_splatted;

/* Writes slot + 1 into the pixels of [a, b). A plain read first: the atomic
 * (costly on a CPU) only where this token beats what the pixel holds. Slots
 * run newest first (main), so most pixels an older token shares are already
 * taken. */
void fill(ivec2 a, ivec2 b, uint v)
{
	uint w = uint(pc.viewport.x);
	for (int y = a.y; y < b.y; y++)
		for (int x = a.x; x < b.x; x++) {
			uint p = uint(y) * w + uint(x);
			if (pc.ids.ids[p] < v)
				atomicMax(pc.ids.ids[p], v);
		}
}

/* Splats slot i into the pixels the pass writes (pc.cols, pc.rows); true
 * when it has a pixel anywhere on screen (counted whatever is written). */
bool splat(uint i)
{
	Token t = pc.tokens.tokens[i];
	if (t.id == EMPTY ||
	    !token_shown(t, pc.filter_bits, pc.mask, pc.mask_words, pc.p_min, pc.p_max))
		return false;
	vec2 s = (t.position - pc.center) * pc.zoom + pc.viewport * 0.5;
	/* The height needs no per-slot data: rows first. */
	float size_y = pc.line_h * pc.zoom;
	float shrink = size_y > 6.0 ? 0.75 : 0.0;
	float half_y = max(size_y * 0.5 - shrink, 1.0);
	float lo_y = ceil(s.y - half_y - 0.5), hi_y = ceil(s.y + half_y - 0.5);
	if (max(lo_y, 0.0) >= min(hi_y, pc.viewport.y))
		return false;
	/* A strip pass skips the width (a scattered load) for the tokens that
	 * cannot reach the strips and are on screen whatever their width. */
	bool near_cols = s.x + pc.max_half + 1.0 >= float(pc.cols.x) &&
	                 s.x - pc.max_half - 1.0 < float(pc.cols.y);
	bool near_rows = hi_y > float(pc.rows.x) && lo_y < float(pc.rows.y);
	if (!near_cols && !near_rows) {
		if (s.x >= max(1.0, pc.max_half - 63.0) && s.x <= pc.viewport.x - 1.0)
			return true;
		if (s.x + pc.max_half + 1.0 < 0.0 || s.x - pc.max_half - 1.0 >= pc.viewport.x)
			return false;
	}
	float size_x = pc.meta.m[t.id].x * pc.zoom;
	float half_x = max(size_x * 0.5 - shrink, 1.0);
	/* pixels whose centers p + 0.5 lie in [s - half, s + half); the box
	 * is capped from its unclipped corner, so a shifted view (strip pass)
	 * clips it the same as a full one */
	ivec2 a = ivec2(ceil(s.x - half_x - 0.5), lo_y);
	ivec2 b = min(ivec2(ceil(s.x + half_x - 0.5), hi_y), a + ivec2(MAX_W, MAX_H));
	a = max(a, ivec2(0));
	b = min(b, ivec2(pc.viewport));
	if (a.x >= b.x || a.y >= b.y)
		return false;
	uint v = t.id + 1u;
	fill(ivec2(max(a.x, pc.cols.x), a.y), ivec2(min(b.x, pc.cols.y), b.y), v);
	fill(ivec2(a.x, max(a.y, pc.rows.x)), ivec2(b.x, min(b.y, pc.rows.y)), v);
	return true;
}

void main()
{
	if (gl_LocalInvocationIndex == 0u)
		group_splatted = 0u;
	barrier();
	uint i = gl_GlobalInvocationID.y * pc.row_stride + gl_GlobalInvocationID.x;
	/* newest slot first (the result does not depend on the order) */
	if (i < pc.count && splat(pc.count - 1u - i))
		atomicAdd(group_splatted, 1u);
	barrier();
	/* one global atomic per workgroup instead of one per token */
	if (gl_LocalInvocationIndex == 0u && group_splatted != 0u)
		atomicAdd(pc.counter.splatted, group_splatted);
}
