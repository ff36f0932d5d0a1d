/* gos_render: draws the infinite map into a color target: the background
 * grid (levels of detail that fade, axes at the origin), every token as an
 * instanced quad from the compute pass's indirect draw (colored by
 * token_project.comp, text from the glyph atlas when legible, fading in when
 * new); far out (line height < 8 px) tokens are splatted by
 * token_splat.comp into a per-pixel id buffer instead and composited with
 * the grid (map_background.glsl); the newest token of each stream marked, a
 * HUD, a scale indicator and a hover box.
 *
 * Frames reuse what the GPU computed for the previous ones (projection,
 * splats, background) while the camera, the viewport and the tokens stay
 * the same; after a pan by a whole number of pixels (same zoom, viewport
 * and tokens, no fade-in running) they shift the splats and background and
 * redo only the newly exposed strips. When gos_frame_info.image is given, the background is computed
 * by map_background.comp and copied into the image (far cheaper than a
 * fullscreen fragment pass on lavapipe); otherwise grid.frag draws it.
 *
 * It owns the token compute pipeline (gos_compute), the glyph atlas
 * (gos_text), the per-slot data the shaders read (width, arrival, glyphs), a
 * ring of frames (command buffer + fence) and a render pass for one color
 * format. The map reaches it only through gos_render_sync(), which copies
 * the map's changes since the last call (bounded work, never waits on
 * ingest) into GPU uploads.
 *
 * Targets: a swapchain (compositor/render/gos_window.c) or an offscreen image
 * (struct gos_offscreen below, read back to RGBA for PNGs).
 *
 * Threads: everything on the render thread (the one that owns the gos_vk
 * queue), except gos_render_now() (any thread). */
#ifndef GOS_RENDER_H
#define GOS_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vulkan/vulkan.h>

#include "gos_camera.h"
#include "gos_compute_ref.h"
#include "gos_map.h"
#include "gos_vk.h"

/* Features that can be switched off, for the image tests that prove a
 * comparison notices when one breaks (and for plain pictures). */
enum {
	GOS_RENDER_NO_TEXT   = 1u << 0,   /* no token text */
	GOS_RENDER_NO_GRID   = 1u << 1,   /* background only */
	GOS_RENDER_FLAT      = 1u << 2,   /* tokens flat gray instead of the palette */
	GOS_RENDER_TIGHT_CULL = 1u << 3,  /* cull margin 0: tokens whose center is off
	                                     screen vanish although their box shows */
};

/* What the HUD shows. */
enum {
	GOS_HUD_STATS   = 1u << 0,   /* fps, tokens, events/s, viewers */
	GOS_HUD_STREAMS = 1u << 1,   /* one line per stream with its neural_state */
	GOS_HUD_SCALE   = 1u << 2,   /* scale bar */
	GOS_HUD_HELP    = 1u << 3,   /* the key help line */
	GOS_HUD_ALL     = 0xFu,
};

/* Zero means default for every field. */
struct gos_render_opts {
	VkFormat format;             /* target format; 0: VK_FORMAT_B8G8R8A8_UNORM */
	VkImageLayout final_layout;  /* 0: TRANSFER_SRC_OPTIMAL (offscreen);
	                                PRESENT_SRC_KHR for a swapchain */
	uint32_t palette;            /* GOS_PALETTE_* (0: viridis) */
	uint32_t frames_in_flight;   /* 1..4; 0: 2 */
	uint32_t disable;            /* GOS_RENDER_NO_* bits */
	uint32_t max_sync_tokens;    /* tokens taken from the map per sync; 0: 65536 */
	bool cpu_compute;            /* project/color/cull on the CPU (gos_compute's CPU
	                                mode, --cpu-compute); it is also what happens,
	                                logged, when the GPU token pipeline fails */
};

/* The time-travel bar (the window's keys over the journal), bottom center. */
struct gos_timeline_hud {
	double pos;                  /* 0..1: where the shown map lies in the session */
	bool live;                   /* the live map (the marker at the end) */
	bool playing;
	const char *label;           /* what is shown: time, seq, speed */
};

/* Per-frame inputs (zero is a valid default for every field but view). */
struct gos_frame_info {
	struct gos_view view;
	double now;                  /* gos_render_now() */
	bool no_fade;                /* everything fully faded in (pictures) */
	uint32_t hud;                /* GOS_HUD_* bits */
	double fps;
	double events_per_s;
	int64_t viewers;             /* < 0: not shown */
	int32_t active_stream;       /* highlighted in the HUD; < 0: none */
	const struct gos_token *hover;  /* token under the pointer, or NULL */
	const char *hover_stream;    /* its stream's name */
	double mouse_x, mouse_y;     /* pixels */
	const char *banner;          /* a short message at the bottom, or NULL */
	const struct gos_timeline_hud *timeline;  /* NULL: no bar */
	VkImage image;               /* the target's image, made with TRANSFER_DST usage:
	                                the background is computed and copied into it
	                                (cheap on lavapipe, free when the view holds
	                                still); VK_NULL_HANDLE: drawn with a fullscreen
	                                fragment pass instead */
};

struct gos_render;

/* Creates everything on vk (which must have a graphics queue and outlive the
 * renderer). NULL on failure with one sentence in err. */
struct gos_render *gos_render_create(struct gos_vk *vk, const struct gos_render_opts *opts,
                                     char *err, size_t err_len);
void gos_render_destroy(struct gos_render *r);   /* accepts NULL; waits for the GPU */

VkRenderPass gos_render_pass(const struct gos_render *r);

/* Seconds on the renderer's clock (CLOCK_MONOTONIC minus its start). */
double gos_render_now(const struct gos_render *r);

/* Takes the map's changes since the last call: at most max_sync_tokens
 * tokens per call (a reader that fell behind the change log pages through a
 * full copy over several calls). Returns the number of tokens taken. */
size_t gos_render_sync(struct gos_render *r, struct gos_map *map);

/* True while a full copy is being paged in (or changes remain). */
bool gos_render_behind(const struct gos_render *r);

/* Counters the HUD and the window use. */
struct gos_render_state {
	uint64_t live_tokens;        /* tokens on the map at the last sync */
	uint64_t seq;                /* map seq the GPU copy is at */
	uint32_t drawn;              /* survivors of the last frame that was read back */
	bool has_bounds;
	double x0, y0, x1, y1;       /* world bounds of every token seen */
	size_t n_streams;
	bool cpu_compute;            /* the token projection runs on the CPU */
	uint64_t shifts;             /* frames that reused the last splats shifted (whole-pixel pan) */
};
void gos_render_state(const struct gos_render *r, struct gos_render_state *out);

/* Stream i as of the last sync (i < n_streams), or NULL. */
const struct gos_stream *gos_render_stream(const struct gos_render *r, size_t i);

/* World position and width of a live slot; false if the slot is empty. */
bool gos_render_slot(const struct gos_render *r, uint32_t slot, float *x, float *y, float *w);

/* The slot whose box contains world point (wx, wy) (the newest if several),
 * or -1. Linear in the number of slots: call when the pointer moves. */
int64_t gos_render_pick(const struct gos_render *r, double wx, double wy);

/* A frame: waits for the ring's next command buffer (its fence), then
 * records the uploads, the compute dispatch and the render pass into fb
 * (extent ext), and submits; `wait` (may be VK_NULL_HANDLE) is waited at the
 * color output stage and `signal` (may be VK_NULL_HANDLE) signaled. False on
 * failure (logged). */
bool gos_render_frame(struct gos_render *r, VkFramebuffer fb, VkExtent2D ext,
                      const struct gos_frame_info *fi, VkSemaphore wait, VkSemaphore signal);

/* The color mode and filter the tokens are drawn with from the next frame
 * on (gos_compute_set_style; splats and background follow). False (logged)
 * on a bad style. */
bool gos_render_set_style(struct gos_render *r, const struct gos_compute_style *style);

/* The slots a search matched (any order; n 0: none): their tokens are
 * highlighted while the style has GOS_FILTER_SEARCH. Re-reads from map the
 * tokens whose highlight changes (one short lock per 65536). False when
 * memory runs out. */
bool gos_render_set_matches(struct gos_render *r, struct gos_map *map, const uint32_t *slots,
                            size_t n);

/* The next gos_render_sync() takes a full copy of the map it is given
 * (paged as usual), replacing everything held: for switching between maps
 * (the live one and one built as it was). */
void gos_render_resync(struct gos_render *r);

/* Waits for the fence of the ring slot the next gos_render_frame() will
 * use, so per-slot objects of the caller (a swapchain acquire semaphore)
 * are free again. gos_render_frame() does this itself too. */
bool gos_render_wait_slot(struct gos_render *r);

/* The ring slot the next gos_render_frame() records into (0..frames-1). */
uint32_t gos_render_slot_index(const struct gos_render *r);

/* Waits until every submitted frame has completed. */
bool gos_render_wait(struct gos_render *r);

/* Survivors of the most recently completed frame (reads back; waits). */
bool gos_render_drawn(struct gos_render *r, uint32_t *count);

/* ---- offscreen target ---- */

struct gos_offscreen;

/* A w x h color image + framebuffer in the renderer's format. */
struct gos_offscreen *gos_offscreen_create(struct gos_render *r, uint32_t w, uint32_t h);
void gos_offscreen_destroy(struct gos_render *r, struct gos_offscreen *o);  /* accepts NULL */
VkFramebuffer gos_offscreen_framebuffer(const struct gos_offscreen *o);
VkExtent2D gos_offscreen_extent(const struct gos_offscreen *o);
VkImage gos_offscreen_image(const struct gos_offscreen *o);   /* for gos_frame_info.image */

/* Waits for the frames, copies the image to rgba (w * h * 4 bytes, RGBA,
 * top row first). Works for a renderer made for a swapchain too (the image
 * is moved from its final layout for the copy). */
bool gos_offscreen_read(struct gos_render *r, struct gos_offscreen *o, uint8_t *rgba);

/* The default view for a picture of the whole map: fits the bounds of every
 * token (pad 24 px), or the origin at zoom 1 when empty. */
struct gos_view gos_render_fit(const struct gos_render *r, double vw, double vh);

#endif
