/* gos_compute: the GPU token pipeline. Keeps every map slot in a device
 * buffer (struct gos_gpu_token), takes incremental updates (only the slots
 * that changed are uploaded), and runs shaders/token_project.comp to project,
 * color and cull them into an output buffer of struct gos_processed plus a
 * VkDrawIndirectCommand {vertexCount 6, instanceCount = survivors,
 * firstVertex 0, firstInstance 0} for the renderer's token quads. The math
 * and formats are those of gos_compute_ref.h, its CPU reference.
 *
 * CPU mode (--cpu-compute): with opts.cpu, or when the GPU pipelines cannot
 * be built at creation (logged on one line: "the GPU token pipeline failed
 * (why); using the CPU reference instead (--cpu-compute)"), the projection,
 * coloring and culling run in a gos_compute_ref store that mirrors every
 * update, and record() copies its survivors (in slot order) and the indirect
 * command into the same output and indirect buffers, through host-visible
 * staging. Everything else is unchanged: the token buffer is uploaded as
 * usual (copy regions; never the scatter shader), the barrier and staging
 * contracts hold, and the renderer draws from the same buffers. Test hook:
 * GOS_FORCE_COMPUTE_FAIL=1 in the environment makes the creation of
 * token_project.comp's pipeline fail, so tests can prove the fallback.
 *
 * Threads: all calls on the thread that owns the gos_vk queue (the render
 * thread). */
#ifndef GOS_COMPUTE_H
#define GOS_COMPUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_compute_ref.h"
#include "gos_vk.h"

/* How staged records reach the token buffer. */
enum gos_compute_upload {
	GOS_COMPUTE_UPLOAD_AUTO = 0,  /* copy up to GOS_COMPUTE_COPY_MAX_RUNS runs, else scatter */
	GOS_COMPUTE_UPLOAD_COPY,      /* vkCmdCopyBuffer, one region per run of consecutive slots */
	GOS_COMPUTE_UPLOAD_SCATTER,   /* token_scatter.comp: one dispatch */
};
#define GOS_COMPUTE_COPY_MAX_RUNS 64

/* Zero means default for every field. */
struct gos_compute_opts {
	uint32_t initial_capacity;   /* slots the buffers start with; 0: 4096 */
	uint32_t frames_in_flight;   /* staging buffers in rotation, 1..4; 0: 2 */
	enum gos_compute_upload upload;   /* CPU mode: always copies */
	bool cpu;                    /* CPU mode from the start (--cpu-compute) */
};

struct gos_compute;

/* Builds the pipeline and its buffers on vk (which must outlive it). When
 * the pipelines fail to build, falls back to CPU mode (logged, see above).
 * NULL on any other failure (logged: no buffer device address, out of
 * memory, ...). */
struct gos_compute *gos_compute_create(struct gos_vk *vk, const struct gos_compute_opts *opts);

/* True in CPU mode (asked for, or fallen back to). */
bool gos_compute_is_cpu(const struct gos_compute *c);

/* Waits for the queue to go idle, then frees everything. Accepts NULL and a
 * half-built object. */
void gos_compute_destroy(struct gos_compute *c);

/* Stages n slot updates for the next record/dispatch (later updates of the
 * same slot win, within and across calls). Checks the whole batch first:
 * bad input (slot too large, non-finite position, confidence outside [0, 1]
 * and not NAN) is logged and returns false with nothing changed. Slots past
 * the buffers' capacity grow them by doubling (contents kept; this waits for
 * the queue to go idle, so every command buffer recorded before must have
 * been submitted). Slots never written are empty. */
bool gos_compute_update(struct gos_compute *c, const struct gos_token_update *u, size_t n);

/* Replaces the whole state: the given slots, every other slot empty. The
 * full re-upload path (one contiguous copy), checked like update(). */
bool gos_compute_set_all(struct gos_compute *c, const struct gos_token_update *u, size_t n);

/* Records into `cmd` (a primary command buffer of vk's queue family, in the
 * recording state, outside a render pass): the staged uploads, the reset of
 * the indirect command, and the dispatch.
 *
 * Barrier contract: the recorded commands start with a barrier that waits
 * for earlier reads of the output, indirect and token buffers (draw-indirect,
 * vertex-input, vertex-shader, compute and transfer stages) and earlier
 * writes to them, and end with a barrier that makes the results visible to
 * DRAW_INDIRECT (indirect command read), VERTEX_INPUT (vertex attribute
 * read), VERTEX_SHADER and COMPUTE_SHADER (shader read) and TRANSFER
 * (transfer read). A renderer on the same queue records its draw right after
 * and needs no barrier of its own.
 *
 * Staging: the uploads recorded here use one of frames_in_flight staging
 * buffers in rotation; the command buffer recorded frames_in_flight records
 * ago must have finished executing before the next gos_compute_update()
 * (the usual per-frame fence wait gives this).
 *
 * Bad camera or palette: logged, false, nothing recorded. */
bool gos_compute_record(struct gos_compute *c, VkCommandBuffer cmd,
                        const struct gos_camera *cam, uint32_t palette);

/* Records only the staged uploads into the token buffer (no dispatch; the
 * output and the indirect command keep what the last dispatch wrote, which
 * no longer matches the tokens). Same barriers as record(): earlier readers
 * and writers first; at the end the token buffer is visible to the COMPUTE,
 * VERTEX and FRAGMENT shader stages and to TRANSFER reads. Nothing staged:
 * records nothing. Same staging contract as record(). For a renderer that
 * draws the tokens another way this frame (compositor's point splats). */
bool gos_compute_record_upload(struct gos_compute *c, VkCommandBuffer cmd);

/* The style (color mode, filter) of every record/dispatch from now on,
 * copied (the mask too: its words reach the GPU in the next record, in
 * queue order, so frames in flight keep theirs). False (logged, nothing
 * changed) when gos_compute_ref_check_style refuses it. Zero style:
 * confidence colors, no filter (the default). */
bool gos_compute_set_style(struct gos_compute *c, const struct gos_compute_style *style);

/* The style set (its mask points at the object's copy). */
void gos_compute_get_style(const struct gos_compute *c, struct gos_compute_style *out);

/* The device address of the stream mask buffer (GOS_FILTER_MASK_WORDS
 * words; what the last record copied), for other passes that filter alike
 * (the renderer's splats). */
VkDeviceAddress gos_compute_mask_address(const struct gos_compute *c);

/* Slot records staged and not yet recorded (0: the token buffer on the GPU
 * is what the map gave, once recorded commands run). */
size_t gos_compute_pending(const struct gos_compute *c);

/* record() in the object's own command buffer, submitted and waited for,
 * plus a readback of the survivor count into *count (may be NULL). For tools,
 * tests and the benchmark. */
bool gos_compute_dispatch(struct gos_compute *c, const struct gos_camera *cam,
                          uint32_t palette, uint32_t *count);

/* Copies the survivors of the last record/dispatch to the host (it must have
 * completed): *count gets their number, the first min(count, cap) go to out,
 * in the GPU's (arbitrary) order. Waits. */
bool gos_compute_read(struct gos_compute *c, struct gos_processed *out, size_t cap,
                      uint32_t *count);

/* What the renderer binds. Valid until the next gos_compute_update() or
 * gos_compute_set_all() (growth replaces the buffers). */
struct gos_compute_buffers {
	VkBuffer output;                /* gos_processed[capacity]; STORAGE|VERTEX usage */
	VkDeviceAddress output_address;
	VkBuffer indirect;              /* VkDrawIndirectCommand at offset 0; INDIRECT usage */
	VkBuffer tokens;                /* gos_gpu_token[capacity] */
	VkDeviceAddress tokens_address;
	VkDeviceAddress palettes_address;  /* the gos_palette.h table (GOS_PALETTE_COUNT x
	                                      GOS_PALETTE_N rgb float triples) */
	uint32_t capacity;              /* slots the buffers hold */
	uint32_t slots;                 /* slots processed: [0, slots) */
};
void gos_compute_buffers(const struct gos_compute *c, struct gos_compute_buffers *out);

/* Largest slot + 1 the device allows (<= GOS_COMPUTE_MAX_SLOTS). */
uint32_t gos_compute_max_slots(const struct gos_compute *c);

/* Counters since creation. */
struct gos_compute_stats {
	uint64_t dispatches;          /* records (incl. dispatch calls) */
	uint64_t records_uploaded;    /* staged slot records moved to the GPU */
	uint64_t copy_uploads;        /* uploads done with vkCmdCopyBuffer */
	uint64_t copy_regions;        /* their regions */
	uint64_t scatter_uploads;     /* uploads done with token_scatter.comp */
};
void gos_compute_stats(const struct gos_compute *c, struct gos_compute_stats *out);

/* ---- for tests and tools ---- */

/* Fills the whole output buffer with a 32-bit pattern; waits. */
bool gos_compute_fill_output(struct gos_compute *c, uint32_t pattern);

/* Copies output records [first, first + n) (n within the capacity) to out,
 * whatever they hold; waits. */
bool gos_compute_read_range(struct gos_compute *c, uint32_t first, uint32_t n,
                            struct gos_processed *out);

/* Copies token-buffer records [first, first + n) (n within the capacity) to
 * out, as the GPU holds them (staged updates count once recorded and run);
 * waits. */
bool gos_compute_read_tokens(struct gos_compute *c, uint32_t first, uint32_t n,
                             struct gos_gpu_token *out);

#endif
