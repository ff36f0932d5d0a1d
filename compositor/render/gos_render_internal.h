/* Internals of gos_render shared by its files (the public contract is
 * gos_render.h; nothing outside compositor/render/gos_render.c and the
 * render_*.c files includes this header):
 *
 *   gos_render.c          create/destroy, frame submission, the waits
 *   render_sync.c         map sync into per-slot buffers, streams, pick, fit
 *   render_hud.c          overlay geometry: markers, HUD text, hover box
 *   render_pipelines.c    shader modules, render passes, layouts, pipelines
 *   render_record.c       a frame's command recording, step by step
 *   render_splat.c        token splats and the whole-pixel shift
 *   render_background.c   the background's inputs, and the background
 *                         computed and copied into the target image
 *   render_offscreen.c    the offscreen target and its readback
 *
 * Threads: like gos_render.h, everything here is for the render thread
 * only. */
#ifndef GOS_RENDER_INTERNAL_H
#define GOS_RENDER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vulkan/vulkan.h>

#include "gos_camera.h"
#include "gos_compute.h"
#include "gos_map.h"
#include "gos_render.h"
#include "gos_vk.h"

struct gos_text;

#define MAX_GLYPHS 16            /* per token; longer texts end in an ellipsis */
#define PUSH_SIZE 128            /* the graphics pipelines' push constant range */
/* The clear color (the background where nothing is drawn). */
#define BG_R 0.043f
#define BG_G 0.055f
#define BG_B 0.078f

/* Mirrors of the shaders' push constant blocks. */
struct token_push {
	VkDeviceAddress out, meta, glyphs;
	float viewport[2];
	float zoom, now, fade_s, text_alpha, line_h, char_w;
	uint32_t flags;
	uint32_t pad;
};
enum {
	GRID_ON = 1u,
	GRID_SPLATS = 2u,
	GRID_FLAT = 4u,
	GRID_POINTS = 8u,
	GRID_BGRA = 16u,
};
struct grid_push {
	float line[4];
	float axis_color[4];
	float viewport[2];
	float center[2];
	float axis[2];
	float zoom, base;
	float strength[3];
	uint32_t flags;              /* GRID_* */
	VkDeviceAddress ids, tokens, meta, lut;
	float now, fade_s;
	uint32_t palette;
	uint32_t origin;             /* map_background.comp: first pixel, x | y << 16 */
};
/* Mirrors the push constant block of token_splat.comp. */
struct splat_push {
	VkDeviceAddress tokens, meta, ids, counter;
	float center[2];
	float viewport[2];
	float zoom, line_h;
	uint32_t count, row_stride;
	int32_t cols[2], rows[2];    /* pixels written: these columns and rows */
	float max_half;              /* pixels: no token's half width exceeds it */
	uint32_t filter;             /* the compute style's (gos_compute_set_style) */
	VkDeviceAddress mask;
	uint32_t mask_words;
	float p_min, p_max;
	uint32_t pad;
};
_Static_assert(sizeof(struct splat_push) == 112, "splat_push mirrors token_splat.comp's block");
_Static_assert(sizeof(struct token_push) <= PUSH_SIZE, "push size");
_Static_assert(sizeof(struct grid_push) <= PUSH_SIZE, "push size");
_Static_assert(offsetof(struct grid_push, ids) == 80 && offsetof(struct grid_push, now) == 112,
               "grid_push mirrors grid.frag's std430 block");

/* One overlay vertex (overlay.vert's input): mode 0 is a solid color, 1
 * samples the glyph atlas at (u, v). */
struct ov_vertex {
	float x, y, u, v;
	float r, g, b, a;
	float mode;
};

/* Per-slot records on the GPU, updated through staged copies recorded into
 * the frame (only the slots that changed). */
struct render_slotbuf {
	const char *name;
	size_t rec;                  /* bytes per slot */
	struct gos_vk_buffer *dev;
	uint32_t cap;                /* slots dev holds */
	uint8_t *pend;               /* rec bytes per pending slot */
	uint32_t *pend_slot;
	uint32_t n_pend, cap_pend;
	uint32_t *pend_at;           /* slot -> index in pend, or NONE; cap entries */
	struct gos_vk_buffer *staging[4];
	VkBufferCopy *regions;
	size_t cap_regions;
};

/* One slot of the ring of frames in flight. */
struct render_frame {
	VkCommandBuffer cmd;
	VkFence fence;
	bool submitted;
	struct gos_vk_buffer *overlay;
};

/* A stream as of the last sync, its strings copied. */
struct render_stream {
	struct gos_stream s;         /* its strings point into the ones below */
	char name[64];
	char state[32];
	char model[48];
	char finish_reason[32];
	char message[120];           /* a failed generation's error, cut for the HUD */
};

struct gos_render {
	struct gos_vk *vk;
	struct gos_render_opts o;
	struct gos_compute *compute;
	struct gos_text *text;
	double epoch;

	VkRenderPass pass;
	VkDescriptorSetLayout dsl;
	VkDescriptorPool dpool;
	VkDescriptorSet set;
	VkPipelineLayout layout;
	VkPipeline grid, tokens, overlay;
	VkCommandPool cmd_pool;
	struct render_frame frames[4];
	uint32_t n_frames, cur;

	struct render_slotbuf meta, glyphs;

	/* CPU copy of what the pick, bounds and markers need: x, y, w (w < 0:
	 * empty slot). */
	float *xyw;
	uint32_t cap_slots;
	uint32_t n_slots;            /* highest live slot + 1 seen */
	float max_w;
	bool has_bounds;
	double bx0, by0, bx1, by1;

	/* map sync */
	uint64_t seq;
	bool paging, first_page;
	uint32_t page_next;
	uint64_t page_seq;
	bool more;
	struct gos_map_view view;
	struct gos_token_update *upd;
	size_t cap_upd;
	uint32_t *matches;          /* slots the search highlights, sorted */
	size_t n_matches;
	struct gos_map_view match_view;   /* re-reads of slots whose highlight changed */
	uint64_t live_tokens;
	struct render_stream *streams;
	size_t n_streams, cap_streams;

	struct ov_vertex *ov;
	size_t n_ov, cap_ov;
	uint32_t drawn;

	/* What the GPU holds from earlier frames, so a frame whose camera and
	 * tokens did not change skips the work: the projection (quads) ... */
	bool proj_valid;
	struct gos_camera proj_cam;
	/* ... the splats (ids: slot + 1 of the newest token per pixel) ... */
	VkPipelineLayout splat_layout, bg_layout;
	VkPipeline splat, bg;
	struct gos_vk_buffer *splat_ids;    /* 2 uint32 per pixel: ids, then background colors */
	uint32_t bg_w, bg_h;                /* the extent the buffer is laid out for */
	struct gos_vk_buffer *splat_count;  /* uint32: tokens splatted */
	bool splat_valid;
	struct gos_camera splat_cam;
	/* A pan by whole pixels shifts the buffer into its twin (ping-pong)
	 * and computes only the exposed strips: the view center and zoom the
	 * ids show exactly (the camera's may differ by < 0.01 px) ... */
	double splat_cx, splat_cy, splat_zoom;
	struct gos_vk_buffer *splat_twin;
	struct gos_vk_buffer *zeros;        /* uint32 0 per column: clears exposed columns */
	VkBufferCopy *clear_rows;
	size_t cap_clear_rows;
	/* ... and the background strips left to compute (bg_shift). */
	bool bg_shift, bg_on_splat;
	int32_t shift_dx, shift_dy;
	uint64_t shifts;
	bool last_splat;                    /* the last frame splatted (drawn count) */
	/* ... and the background colors (copy path). */
	VkRenderPass pass_load;             /* keeps the copied background */
	bool bg_valid;
	bool bg_final;                      /* computed after every fade-in had ended */
	struct grid_push bg_push;           /* what they were computed with (now = 0) */
	float last_arrival;                 /* newest meta arrival (renderer clock) */
	uint64_t backgrounds;
	uint64_t projections, splats;       /* dispatches recorded */
};

/* ---- render_sync.c ---- */

/* A per-slot buffer of `rec` bytes a slot, 4096 slots to start with
 * (grows). False when out of memory; render_slotbuf_finish() cleans up
 * either way. */
bool render_slotbuf_init(struct gos_vk *vk, struct render_slotbuf *b, const char *name,
                         size_t rec);
void render_slotbuf_finish(struct gos_vk *vk, struct render_slotbuf *b);

/* Records the copies of the pending slots into cmd through ring slot
 * frame's staging buffer (which it owns from now until that frame's fence
 * signals) and clears the pending list. */
/* A live token's GPU update (render_sync.c): position, confidence, stream,
 * the color modes' values, the divergence and search-match flags. */
void render_token_update(const struct gos_render *r, const struct gos_token *t,
                         struct gos_token_update *u);

bool render_slotbuf_record(struct gos_vk *vk, struct render_slotbuf *b, uint32_t frame,
                           VkCommandBuffer cmd);

/* Makes the CPU copy (xyw) hold `slot`; new slots are empty. */
bool render_reserve_slots(struct gos_render *r, uint32_t slot);

/* ---- render_hud.c ---- */

/* Rebuilds r->ov (r->n_ov vertices) for a vw x vh frame: the newest-token
 * markers, the HUD panels fi->hud asks for, the banner and the hover box.
 * May rasterize glyphs into the atlas: call before gos_text_record(). */
void render_build_overlay(struct gos_render *r, const struct gos_frame_info *fi, double vw,
                          double vh);

/* ---- render_pipelines.c ---- */

/* The render passes (r->pass clears, r->pass_load keeps the copied
 * background; compatible, so one framebuffer serves both), the glyph
 * atlas's descriptor set, the graphics pipelines' layout, the grid, tokens
 * and overlay pipelines and the splat and background compute pipelines.
 * Needs r->text. What was made before a failure is left for
 * render_pipelines_finish(), which accepts a half-built renderer (after
 * the GPU is idle). */
bool render_pipelines_init(struct gos_render *r);
void render_pipelines_finish(struct gos_render *r);

/* ---- render_record.c ---- */

/* Records a whole frame into f->cmd (begun by the caller): uploads, the
 * token pass (projection or splats), the background, the render pass into
 * fb. False on failure (logged where Vulkan failed). */
bool render_record(struct gos_render *r, struct render_frame *f, VkFramebuffer fb,
                   VkExtent2D ext, const struct gos_frame_info *fi);

/* ---- render_splat.c ---- */

/* The splat counter; render_splat_finish() frees it and the id buffers
 * (accepts a half-built renderer, after the GPU is idle). */
bool render_splat_init(struct gos_render *r);
void render_splat_finish(struct gos_render *r);

/* Makes the id/background buffer (r->splat_ids) fit a w x h target. A new
 * layout invalidates the splats and the background it held; a bigger
 * buffer waits for the frames in flight first. */
bool render_ensure_bgbuf(struct gos_render *r, uint32_t w, uint32_t h);

/* The splat pass: uploads staged tokens, and unless the GPU already holds
 * the splats of this camera and these tokens, clears the id buffer and runs
 * token_splat.comp over every slot (after a pan by whole pixels: shifts
 * them and splats the exposed strips). Ends with the ids visible to the
 * fragment stage (grid.frag). */
bool render_record_splat(struct gos_render *r, VkCommandBuffer cmd, const struct gos_camera *cam,
                         const struct gos_view *v);

/* ---- render_background.c ---- */

/* The background's inputs, for grid.frag (fullscreen pass) and
 * map_background.comp alike: the grid's levels and axes for fi->view on an
 * ext-sized target, and when the frame splats or copies (`splat`, `copy`)
 * the id buffer (which must exist: render_record_splat() or
 * render_ensure_bgbuf() made it) and the token data it is colored from. */
struct grid_push render_grid_push(const struct gos_render *r, const struct gos_frame_info *fi,
                                  VkExtent2D ext, bool copy, bool splat);

/* The copy path: unless the buffer already holds the background for these
 * inputs, map_background.comp computes it (grid, axes, splats over the
 * clear color; after a whole-pixel shift only the exposed strips); then it
 * is copied into fi->image, which the render pass (pass_load) keeps. */
bool render_record_background(struct gos_render *r, VkCommandBuffer cmd, const struct grid_push *gp,
                              const struct gos_frame_info *fi, VkExtent2D ext, bool splat);

/* ---- gos_render.c ---- */

/* Tokens the last frame drew: splatted, or survivors of the projection
 * (reads back; the caller has waited for the frames). */
bool render_read_drawn(struct gos_render *r, uint32_t *count);

#endif
