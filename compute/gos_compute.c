/* gos_compute: the GPU token pipeline. See gos_compute.h.
 *
 * Over 800 lines on purpose: one pipeline (upload, project, compact, read
 * back) whose buffers, barriers and frames in flight only make sense read
 * together; the CPU mode fills the same buffers and sits beside it.
 *
 * Uploads: gos_compute_update() writes each changed slot's record into the
 * current host-visible staging buffer (once per slot: pending_at[] maps a
 * slot to its staged record, so a slot changed twice is staged once). record()
 * moves them into the token buffer one of two ways:
 *   - copy: one vkCmdCopyBuffer region per run of consecutive slots (appends
 *     and full re-uploads are a single region);
 *   - scatter: token_scatter.comp, tokens[slots[i]] = records[i], one
 *     dispatch whatever the slots.
 * Many small regions cost per region (in drivers, and superlinearly in the
 * validation layer), so `auto` copies up to GOS_COMPUTE_COPY_MAX_RUNS runs and
 * scatters beyond; `gos-bench compute` measures both.
 *
 * CPU mode (opts.cpu, or the fallback when the pipelines cannot be built):
 * no compute shader of ours runs. A gos_compute_ref store mirrors every
 * update; the token buffer is still uploaded (by copy; past
 * GOS_COMPUTE_COPY_MAX_RUNS runs, the whole span from the CPU store) since
 * the renderer's splats read it; record() projects in the store and copies
 * the survivors and the indirect command into the same buffers the shader
 * would have written. */
#include "gos_compute.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t token_project_spv[] =
#include "token_project.comp.inc"
;
static const uint32_t token_scatter_spv[] =
#include "token_scatter.comp.inc"
;

#define NONE UINT32_MAX
#define MAX_FRAMES 4

/* Mirrors the push constant block of token_project.comp. */
struct gos_compute_push {
	VkDeviceAddress tokens;
	VkDeviceAddress out;
	VkDeviceAddress draw;
	VkDeviceAddress palettes;
	VkDeviceAddress mask;
	float center[2];
	float viewport[2];
	float zoom;
	float margin;
	uint32_t count;
	uint32_t palette;
	uint32_t row_stride;
	uint32_t mode;
	uint32_t filter;
	uint32_t mask_words;
	float p_min, p_max;
};
_Static_assert(sizeof(struct gos_compute_push) == 96, "token_project.comp's push block");

/* Mirrors the push constant block of token_scatter.comp. */
struct gos_scatter_push {
	VkDeviceAddress records;
	VkDeviceAddress slots;
	VkDeviceAddress tokens;
	uint32_t count;
	uint32_t row_stride;
};

struct pipe {
	VkShaderModule module;
	VkPipelineLayout layout;
	VkPipeline pipeline;
};

struct gos_compute {
	struct gos_vk *vk;
	struct pipe project, scatter;
	enum gos_compute_upload upload;
	struct gos_compute_stats stats;
	VkCommandPool pool;
	VkCommandBuffer cmd;
	VkFence fence;

	struct gos_vk_buffer *tokens;    /* gos_gpu_token[capacity] */
	struct gos_vk_buffer *out;       /* gos_processed[capacity] */
	struct gos_vk_buffer *draw;      /* VkDrawIndirectCommand */
	struct gos_vk_buffer *palettes;  /* the gos_palette.h table */
	struct gos_vk_buffer *mask;      /* the style's stream mask (GOS_FILTER_MASK_WORDS) */
	struct gos_compute_style style;  /* its mask: mask_words */
	uint32_t *mask_words;            /* [GOS_FILTER_MASK_WORDS] */
	bool mask_dirty;                 /* to be copied into `mask` at the next record */
	struct gos_vk_buffer *count_rb;  /* readback of the draw command */
	struct gos_vk_buffer *staging[MAX_FRAMES];        /* gos_gpu_token records */
	struct gos_vk_buffer *staging_slots[MAX_FRAMES];  /* their slots (scatter) */
	uint32_t n_staging, cur;

	/* CPU mode (--cpu-compute): the projection runs in `ref`, which mirrors
	 * every update, and its survivors reach `out` through out_staging. */
	bool cpu;
	struct gos_compute_ref *ref;
	struct gos_vk_buffer *out_staging[MAX_FRAMES];    /* gos_processed records */

	uint32_t capacity, n_slots, max_slots;

	uint32_t *pending_at;            /* [capacity]: staged index of a slot, or NONE */
	uint32_t *pending_slot;          /* [cap_pending]: slot of each staged record */
	size_t n_pending, cap_pending;
	VkBufferCopy *regions;
	size_t cap_regions;
};

static void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_error(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "gos compute: %s\n", line);
}

/* The test hook GOS_FORCE_COMPUTE_FAIL=1: token_project.comp "fails" to
 * build, so tests can prove the CPU fallback (see gos_compute.h). */
static bool forced_failure(void)
{
	const char *v = getenv("GOS_FORCE_COMPUTE_FAIL");
	return v && !strcmp(v, "1");
}

/* Builds one compute pipeline; on failure writes what failed to `why`. */
static bool create_pipe(struct gos_compute *c, struct pipe *p, const uint32_t *code,
                        size_t code_size, uint32_t push_size, const char *name,
                        char *why, size_t why_len)
{
	struct gos_vk *vk = c->vk;
	const char *step = "vkCreateShaderModule";
	VkShaderModuleCreateInfo mi = {
		.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
		.codeSize = code_size,
		.pCode = code,
	};
	VK(vkCreateShaderModule(vk->device, &mi, NULL, &p->module));
	step = "vkCreatePipelineLayout";
	gos_vk_name(vk, VK_OBJECT_TYPE_SHADER_MODULE, (uint64_t)p->module, "%s", name);

	VkPushConstantRange range = {
		.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
		.size = push_size,
	};
	VkPipelineLayoutCreateInfo li = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
		.pushConstantRangeCount = 1,
		.pPushConstantRanges = &range,
	};
	VK(vkCreatePipelineLayout(vk->device, &li, NULL, &p->layout));
	step = "vkCreateComputePipelines";
	gos_vk_name(vk, VK_OBJECT_TYPE_PIPELINE_LAYOUT, (uint64_t)p->layout, "%s layout", name);

	VkComputePipelineCreateInfo pi = {
		.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
		.stage = {
			.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
			.stage = VK_SHADER_STAGE_COMPUTE_BIT,
			.module = p->module,
			.pName = "main",
		},
		.layout = p->layout,
	};
	if (p == &c->project && forced_failure()) {
		snprintf(why, why_len, "%s: %s failed: forced by GOS_FORCE_COMPUTE_FAIL=1", name, step);
		return false;
	}
	VK(vkCreateComputePipelines(vk->device, VK_NULL_HANDLE, 1, &pi, NULL, &p->pipeline));
	gos_vk_name(vk, VK_OBJECT_TYPE_PIPELINE, (uint64_t)p->pipeline, "%s", name);
	return true;
error:
	snprintf(why, why_len, "%s: %s failed", name, step);
	return false;
}

static void destroy_pipe(struct gos_vk *vk, struct pipe *p)
{
	if (p->pipeline)
		vkDestroyPipeline(vk->device, p->pipeline, NULL);
	if (p->layout)
		vkDestroyPipelineLayout(vk->device, p->layout, NULL);
	if (p->module)
		vkDestroyShaderModule(vk->device, p->module, NULL);
}

/* A 1-D grid of `items` invocations as (gx, gy) workgroups of 64, since one
 * dimension may stop at 65535 groups (4M invocations). */
static void grid(const struct gos_compute *c, uint32_t items, uint32_t *gx, uint32_t *gy)
{
	uint32_t groups = (items + 63) / 64;
	uint32_t max_x = c->vk->props.limits.maxComputeWorkGroupCount[0];
	*gx = groups < max_x ? groups : max_x;
	*gy = *gx ? (groups + *gx - 1) / *gx : 0;
}

static bool create_commands(struct gos_compute *c)
{
	struct gos_vk *vk = c->vk;
	VkCommandPoolCreateInfo pi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
		.queueFamilyIndex = vk->queue_family,
	};
	VK(vkCreateCommandPool(vk->device, &pi, NULL, &c->pool));
	gos_vk_name(vk, VK_OBJECT_TYPE_COMMAND_POOL, (uint64_t)c->pool, "compute pool");
	VkCommandBufferAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
		.commandPool = c->pool,
		.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
		.commandBufferCount = 1,
	};
	VK(vkAllocateCommandBuffers(vk->device, &ai, &c->cmd));
	gos_vk_name(vk, VK_OBJECT_TYPE_COMMAND_BUFFER, (uint64_t)(uintptr_t)c->cmd,
	            "compute dispatch");
	VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
	VK(vkCreateFence(vk->device, &fi, NULL, &c->fence));
	gos_vk_name(vk, VK_OBJECT_TYPE_FENCE, (uint64_t)c->fence, "compute dispatch fence");
	return true;
error:
	return false;
}

static bool fill_empty(struct gos_compute *c)
{
	VkCommandBuffer cmd = gos_vk_oneshot_begin(c->vk);
	if (!cmd)
		return false;
	vkCmdFillBuffer(cmd, c->tokens->buffer, 0, VK_WHOLE_SIZE, GOS_SLOT_EMPTY);
	VkMemoryBarrier mb = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
	                     0, 1, &mb, 0, NULL, 0, NULL);
	return gos_vk_oneshot_end(c->vk, cmd);
}

struct gos_compute *gos_compute_create(struct gos_vk *vk, const struct gos_compute_opts *opts)
{
	struct gos_compute *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->vk = vk;
	if (!vk || !vk->buffer_device_address) {
		log_error("the token pipeline needs a Vulkan device with bufferDeviceAddress");
		goto error;
	}
	uint64_t max = vk->max_alloc / sizeof(struct gos_processed);
	c->max_slots = max < GOS_COMPUTE_MAX_SLOTS ? (uint32_t)max : GOS_COMPUTE_MAX_SLOTS;
	uint32_t cap = opts && opts->initial_capacity ? opts->initial_capacity : 4096;
	if (cap > c->max_slots)
		cap = c->max_slots;
	c->n_staging = opts && opts->frames_in_flight ? opts->frames_in_flight : 2;
	if (c->n_staging > MAX_FRAMES) {
		log_error("frames_in_flight %u is more than %d", c->n_staging, MAX_FRAMES);
		goto error;
	}

	c->upload = opts ? opts->upload : GOS_COMPUTE_UPLOAD_AUTO;
	c->cpu = opts && opts->cpu;
	char why[256];
	if (!c->cpu &&
	    (!create_pipe(c, &c->project, token_project_spv, sizeof(token_project_spv),
	                  sizeof(struct gos_compute_push), "token_project.comp", why, sizeof(why)) ||
	     !create_pipe(c, &c->scatter, token_scatter_spv, sizeof(token_scatter_spv),
	                  sizeof(struct gos_scatter_push), "token_scatter.comp", why, sizeof(why)))) {
		/* Not silent: the user learns why the GPU path is off, and how to
		 * ask for the CPU path directly. */
		fprintf(stderr, "gos compute: the GPU token pipeline failed (%s); using the CPU "
		        "reference instead (--cpu-compute)\n", why);
		destroy_pipe(vk, &c->project);
		destroy_pipe(vk, &c->scatter);
		c->project = c->scatter = (struct pipe){0};
		c->cpu = true;
	} else if (c->cpu) {
		fprintf(stderr, "gos compute: projecting tokens on the CPU (--cpu-compute)\n");
	}
	if (c->cpu && !(c->ref = gos_compute_ref_create())) {
		log_error("out of memory for the CPU token store");
		goto error;
	}
	if (!create_commands(c))
		goto error;
	c->tokens = gos_vk_buffer_create(vk, (VkDeviceSize)cap * sizeof(struct gos_gpu_token),
	                                 VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, GOS_VK_MEM_DEVICE,
	                                 "compute tokens");
	c->out = gos_vk_buffer_create(vk, (VkDeviceSize)cap * sizeof(struct gos_processed),
	                              VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
	                              VK_BUFFER_USAGE_VERTEX_BUFFER_BIT, GOS_VK_MEM_DEVICE,
	                              "compute output");
	c->draw = gos_vk_buffer_create(vk, sizeof(VkDrawIndirectCommand),
	                               VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
	                               VK_BUFFER_USAGE_INDIRECT_BUFFER_BIT, GOS_VK_MEM_DEVICE,
	                               "compute indirect draw");
	c->count_rb = gos_vk_buffer_create(vk, sizeof(VkDrawIndirectCommand),
	                                   VK_BUFFER_USAGE_TRANSFER_DST_BIT, GOS_VK_MEM_READBACK,
	                                   "compute count readback");
	size_t lut_floats;
	const float *lut = gos_compute_ref_palette_table(&lut_floats);
	c->palettes = gos_vk_buffer_create(vk, lut_floats * sizeof(float),
	                                   VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, GOS_VK_MEM_DEVICE,
	                                   "compute palettes");
	c->mask = gos_vk_buffer_create(vk, GOS_FILTER_MASK_WORDS * sizeof(uint32_t),
	                               VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, GOS_VK_MEM_DEVICE,
	                               "compute stream mask");
	c->mask_words = calloc(GOS_FILTER_MASK_WORDS, sizeof(uint32_t));
	if (!c->tokens || !c->out || !c->draw || !c->count_rb || !c->palettes || !c->mask ||
	    !c->mask_words ||
	    !gos_vk_buffer_upload(vk, c->palettes, 0, lut, lut_floats * sizeof(float)))
		goto error;
	for (uint32_t i = 0; i < c->n_staging; i++) {
		char name[48];
		snprintf(name, sizeof(name), "compute staging %u", i);
		c->staging[i] = gos_vk_buffer_create(vk, 1024 * sizeof(struct gos_gpu_token),
		                                     VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
		                                     GOS_VK_MEM_UPLOAD, name);
		snprintf(name, sizeof(name), "compute staging slots %u", i);
		c->staging_slots[i] = gos_vk_buffer_create(vk, 1024 * sizeof(uint32_t),
		                                           VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
		                                           GOS_VK_MEM_UPLOAD, name);
		if (!c->staging[i] || !c->staging_slots[i])
			goto error;
		if (c->cpu) {
			snprintf(name, sizeof(name), "compute cpu output staging %u", i);
			c->out_staging[i] = gos_vk_buffer_create(vk, 256 * sizeof(struct gos_processed),
			                                         VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
			                                         GOS_VK_MEM_UPLOAD, name);
			if (!c->out_staging[i])
				goto error;
		}
	}
	c->capacity = cap;
	c->pending_at = malloc((size_t)cap * sizeof(*c->pending_at));
	if (!c->pending_at)
		goto error;
	memset(c->pending_at, 0xff, (size_t)cap * sizeof(*c->pending_at));
	if (!fill_empty(c))
		goto error;
	return c;
error:
	log_error("the GPU token pipeline could not be created");
	gos_compute_destroy(c);
	return NULL;
}

void gos_compute_destroy(struct gos_compute *c)
{
	if (!c)
		return;
	struct gos_vk *vk = c->vk;
	if (vk && vk->device) {
		vkQueueWaitIdle(vk->queue);
		for (uint32_t i = 0; i < MAX_FRAMES; i++) {
			gos_vk_buffer_destroy(vk, c->staging[i]);
			gos_vk_buffer_destroy(vk, c->staging_slots[i]);
			gos_vk_buffer_destroy(vk, c->out_staging[i]);
		}
		gos_vk_buffer_destroy(vk, c->count_rb);
		gos_vk_buffer_destroy(vk, c->draw);
		gos_vk_buffer_destroy(vk, c->palettes);
		gos_vk_buffer_destroy(vk, c->mask);
		gos_vk_buffer_destroy(vk, c->out);
		gos_vk_buffer_destroy(vk, c->tokens);
		if (c->fence)
			vkDestroyFence(vk->device, c->fence, NULL);
		if (c->pool)
			vkDestroyCommandPool(vk->device, c->pool, NULL);
		destroy_pipe(vk, &c->project);
		destroy_pipe(vk, &c->scatter);
	}
	gos_compute_ref_destroy(c->ref);
	free(c->mask_words);
	free(c->pending_at);
	free(c->pending_slot);
	free(c->regions);
	free(c);
}

bool gos_compute_is_cpu(const struct gos_compute *c)
{
	return c->cpu;
}

uint32_t gos_compute_max_slots(const struct gos_compute *c)
{
	return c->max_slots;
}

void gos_compute_stats(const struct gos_compute *c, struct gos_compute_stats *out)
{
	*out = c->stats;
}

void gos_compute_buffers(const struct gos_compute *c, struct gos_compute_buffers *out)
{
	*out = (struct gos_compute_buffers){
		.output = c->out->buffer,
		.output_address = c->out->address,
		.indirect = c->draw->buffer,
		.tokens = c->tokens->buffer,
		.tokens_address = c->tokens->address,
		.palettes_address = c->palettes->address,
		.capacity = c->capacity,
		.slots = c->n_slots,
	};
}

/* Makes room for `slots` slots: doubles the device buffers (contents kept,
 * new token slots empty) and the pending index. */
static bool reserve_slots(struct gos_compute *c, uint32_t slots)
{
	if (slots <= c->capacity)
		return true;
	uint32_t cap = c->capacity;
	while (cap < slots)
		cap = cap > c->max_slots / 2 ? c->max_slots : cap * 2;
	const uint32_t empty = GOS_SLOT_EMPTY;
	if (!gos_vk_buffer_grow(c->vk, c->tokens, (VkDeviceSize)cap * sizeof(struct gos_gpu_token),
	                        &empty) ||
	    !gos_vk_buffer_grow(c->vk, c->out, (VkDeviceSize)cap * sizeof(struct gos_processed), NULL))
		goto error;
	uint32_t *p = realloc(c->pending_at, (size_t)cap * sizeof(*p));
	if (!p)
		goto error;
	memset(p + c->capacity, 0xff, (size_t)(cap - c->capacity) * sizeof(*p));
	c->pending_at = p;
	c->capacity = cap;
	return true;
error:
	log_error("could not grow the token buffers to %u slots", cap);
	return false;
}

/* Makes room for `records` staged records in the current staging buffer
 * (host memory the GPU is not using: see the rotation contract). */
static bool reserve_staging(struct gos_compute *c, size_t records)
{
	struct gos_vk_buffer *st = c->staging[c->cur];
	if (records > c->cap_pending) {
		size_t cap = c->cap_pending ? c->cap_pending : 1024;
		while (cap < records)
			cap *= 2;
		uint32_t *p = realloc(c->pending_slot, cap * sizeof(*p));
		if (!p)
			goto error;
		c->pending_slot = p;
		c->cap_pending = cap;
	}
	struct gos_vk_buffer *sl = c->staging_slots[c->cur];
	if ((VkDeviceSize)records * sizeof(struct gos_gpu_token) > st->size &&
	    !gos_vk_buffer_grow(c->vk, st, (VkDeviceSize)records * sizeof(struct gos_gpu_token), NULL))
		goto error;
	if ((VkDeviceSize)records * sizeof(uint32_t) > sl->size &&
	    !gos_vk_buffer_grow(c->vk, sl, (VkDeviceSize)records * sizeof(uint32_t), NULL))
		goto error;
	return true;
error:
	log_error("could not grow the staging buffer to %zu records", records);
	return false;
}

static void stage(struct gos_compute *c, uint32_t slot, const struct gos_gpu_token *t)
{
	struct gos_gpu_token *rec = c->staging[c->cur]->mapped;
	uint32_t at = c->pending_at[slot];
	if (at == NONE) {
		at = (uint32_t)c->n_pending++;
		c->pending_at[slot] = at;
		c->pending_slot[at] = slot;
	}
	rec[at] = *t;
}

bool gos_compute_update(struct gos_compute *c, const struct gos_token_update *u, size_t n)
{
	char err[256];
	if (!gos_compute_ref_check_updates(u, n, c->max_slots, err, sizeof(err))) {
		log_error("rejected token update: %s", err);
		return false;
	}
	uint32_t needed = c->n_slots;
	for (size_t i = 0; i < n; i++)
		if (u[i].slot >= needed)
			needed = u[i].slot + 1;
	if (!reserve_slots(c, needed) || !reserve_staging(c, c->n_pending + n))
		return false;
	if (c->cpu && !gos_compute_ref_update(c->ref, u, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		struct gos_gpu_token t = gos_compute_ref_pack(&u[i]);
		stage(c, u[i].slot, &t);
	}
	c->n_slots = needed;
	return true;
}

bool gos_compute_set_all(struct gos_compute *c, const struct gos_token_update *u, size_t n)
{
	char err[256];
	if (!gos_compute_ref_check_updates(u, n, c->max_slots, err, sizeof(err))) {
		log_error("rejected token set: %s", err);
		return false;
	}
	uint32_t needed = 0;
	for (size_t i = 0; i < n; i++)
		if (u[i].slot >= needed)
			needed = u[i].slot + 1;
	/* The image also covers the old slots past the new end, to empty them. */
	uint32_t image = needed > c->n_slots ? needed : c->n_slots;
	if (!reserve_slots(c, image) || !reserve_staging(c, image))
		return false;
	if (c->cpu && !gos_compute_ref_set_all(c->ref, u, n))
		return false;
	for (size_t i = 0; i < c->n_pending; i++)
		c->pending_at[c->pending_slot[i]] = NONE;
	struct gos_gpu_token *rec = c->staging[c->cur]->mapped;
	memset(rec, 0xff, (size_t)image * sizeof(*rec));  /* id GOS_SLOT_EMPTY */
	for (size_t i = 0; i < n; i++)
		rec[u[i].slot] = gos_compute_ref_pack(&u[i]);
	for (uint32_t s = 0; s < image; s++) {
		c->pending_at[s] = s;
		c->pending_slot[s] = s;
	}
	c->n_pending = image;
	c->n_slots = needed;
	return true;
}

/* Copy regions for the staged records, runs of consecutive slots merged. */
static size_t build_regions(struct gos_compute *c)
{
	const VkDeviceSize rec = sizeof(struct gos_gpu_token);
	size_t n = 0;
	for (size_t i = 0; i < c->n_pending; i++) {
		uint32_t slot = c->pending_slot[i];
		if (n && c->pending_slot[i - 1] + 1 == slot) {
			c->regions[n - 1].size += rec;
			continue;
		}
		c->regions[n++] = (VkBufferCopy){
			.srcOffset = i * rec,
			.dstOffset = (VkDeviceSize)slot * rec,
			.size = rec,
		};
	}
	return n;
}

/* The stages that read the output, indirect and token buffers. */
static VkPipelineStageFlags reader_stages(const struct gos_compute *c)
{
	VkPipelineStageFlags readers = VK_PIPELINE_STAGE_DRAW_INDIRECT_BIT |
	                               VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
	                               VK_PIPELINE_STAGE_TRANSFER_BIT;
	if (c->vk->queue_flags & VK_QUEUE_GRAPHICS_BIT)
		readers |= VK_PIPELINE_STAGE_VERTEX_INPUT_BIT | VK_PIPELINE_STAGE_VERTEX_SHADER_BIT |
		           VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT;
	return readers;
}

/* Records the staged uploads into the token buffer, after a barrier that
 * waits for earlier readers and writers of the buffers; ends with the
 * uploads not yet made visible (the caller's closing barrier does that).
 * Clears the staging state and rotates the staging buffers. */
static bool record_uploads(struct gos_compute *c, VkCommandBuffer cmd)
{
	struct gos_vk *vk = c->vk;
	if (c->n_pending > c->cap_regions) {
		VkBufferCopy *r = realloc(c->regions, c->n_pending * sizeof(*r));
		if (!r) {
			log_error("out of memory for %zu copy regions", c->n_pending);
			return false;
		}
		c->regions = r;
		c->cap_regions = c->n_pending;
	}
	struct gos_vk_buffer *st = c->staging[c->cur];
	size_t n_regions = build_regions(c);
	size_t n_records = c->n_pending;
	if (c->cpu && n_regions > GOS_COMPUTE_COPY_MAX_RUNS) {
		/* No scatter shader in CPU mode: copy the whole span of slots the
		 * changes touch, from the CPU store (which holds every slot), as
		 * one region. */
		uint32_t lo = UINT32_MAX, hi = 0;
		for (size_t i = 0; i < c->n_pending; i++) {
			uint32_t slot = c->pending_slot[i];
			lo = slot < lo ? slot : lo;
			hi = slot + 1 > hi ? slot + 1 : hi;
		}
		n_records = hi - lo;
		if (!reserve_staging(c, n_records))
			return false;
		uint32_t n_ref;
		const struct gos_gpu_token *all = gos_compute_ref_tokens(c->ref, &n_ref);
		struct gos_gpu_token *rec = st->mapped;
		uint32_t have = n_ref > lo ? (n_ref < hi ? n_ref : hi) - lo : 0;
		memcpy(rec, all + lo, (size_t)have * sizeof(*rec));
		memset(rec + have, 0xff, (n_records - have) * sizeof(*rec));   /* empty */
		c->regions[0] = (VkBufferCopy){
			.dstOffset = (VkDeviceSize)lo * sizeof(*rec),
			.size = (VkDeviceSize)n_records * sizeof(*rec),
		};
		n_regions = 1;
	}
	if (!gos_vk_buffer_flush(vk, st, 0, n_records * sizeof(struct gos_gpu_token)))
		return false;

	/* Earlier readers (last frame's draw, copies) and writers (last
	 * dispatch) are done before this upload and dispatch touch the buffers. */
	VkMemoryBarrier before = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT |
		                 VK_ACCESS_SHADER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, reader_stages(c), VK_PIPELINE_STAGE_TRANSFER_BIT |
	                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &before, 0, NULL, 0, NULL);
	if (c->mask_dirty && c->style.mask_words) {
		/* in queue order: frames in flight keep the mask they read */
		vkCmdUpdateBuffer(cmd, c->mask->buffer, 0, c->style.mask_words * sizeof(uint32_t),
		                  c->mask_words);
	}
	c->mask_dirty = false;

	bool scatter = !c->cpu && (c->upload == GOS_COMPUTE_UPLOAD_SCATTER ||
	               (c->upload == GOS_COMPUTE_UPLOAD_AUTO && n_regions > GOS_COMPUTE_COPY_MAX_RUNS));
	if (n_regions && scatter) {
		struct gos_vk_buffer *sl = c->staging_slots[c->cur];
		memcpy(sl->mapped, c->pending_slot, c->n_pending * sizeof(uint32_t));
		if (!gos_vk_buffer_flush(vk, sl, 0, c->n_pending * sizeof(uint32_t)))
			return false;
		uint32_t gx, gy;
		grid(c, (uint32_t)c->n_pending, &gx, &gy);
		struct gos_scatter_push push = {
			.records = st->address,
			.slots = sl->address,
			.tokens = c->tokens->address,
			.count = (uint32_t)c->n_pending,
			.row_stride = gx * 64,
		};
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, c->scatter.pipeline);
		vkCmdPushConstants(cmd, c->scatter.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
		                   sizeof(push), &push);
		vkCmdDispatch(cmd, gx, gy, 1);
		c->stats.scatter_uploads++;
	} else if (n_regions) {
		vkCmdCopyBuffer(cmd, st->buffer, c->tokens->buffer, (uint32_t)n_regions, c->regions);
		c->stats.copy_uploads++;
		c->stats.copy_regions += n_regions;
	}
	c->stats.records_uploaded += c->n_pending;
	for (size_t i = 0; i < c->n_pending; i++)
		c->pending_at[c->pending_slot[i]] = NONE;
	c->n_pending = 0;
	c->cur = (c->cur + 1) % c->n_staging;
	return true;
}

/* CPU mode's stand-in for the dispatch: projects in the CPU store and
 * records the copy of its survivors into the output buffer and the write of
 * the indirect command (transfer writes; record()'s closing barrier makes
 * them visible). Uses staging buffer `frame`, under the same rotation
 * contract as the token uploads. */
static bool record_cpu(struct gos_compute *c, VkCommandBuffer cmd, const struct gos_camera *cam,
                       uint32_t palette, uint32_t frame)
{
	uint32_t count;
	if (!gos_compute_ref_dispatch(c->ref, cam, palette, &count))
		return false;
	const VkDrawIndirectCommand draw = {.vertexCount = 6, .instanceCount = count};
	vkCmdUpdateBuffer(cmd, c->draw->buffer, 0, sizeof(draw), &draw);
	if (!count)
		return true;
	struct gos_vk_buffer *st = c->out_staging[frame];
	VkDeviceSize bytes = (VkDeviceSize)count * sizeof(struct gos_processed);
	if (!gos_vk_buffer_grow(c->vk, st, bytes, NULL)) {
		log_error("could not grow the CPU output staging buffer to %u records", count);
		return false;
	}
	memcpy(st->mapped, gos_compute_ref_output(c->ref), (size_t)bytes);
	if (!gos_vk_buffer_flush(c->vk, st, 0, bytes))
		return false;
	VkBufferCopy region = {.size = bytes};
	vkCmdCopyBuffer(cmd, st->buffer, c->out->buffer, 1, &region);
	return true;
}

/* The GPU path: token_project.comp over every slot into the output and the
 * indirect command. */
static void record_gpu(struct gos_compute *c, VkCommandBuffer cmd, const struct gos_camera *cam,
                       uint32_t palette)
{
	const VkDrawIndirectCommand reset = {.vertexCount = 6};
	vkCmdUpdateBuffer(cmd, c->draw->buffer, 0, sizeof(reset), &reset);

	VkMemoryBarrier uploaded = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &uploaded, 0, NULL, 0, NULL);
	if (!c->n_slots)
		return;
	uint32_t gx, gy;
	grid(c, c->n_slots, &gx, &gy);
	struct gos_compute_push push = {
		.tokens = c->tokens->address,
		.out = c->out->address,
		.draw = c->draw->address,
		.palettes = c->palettes->address,
		.center = {cam->center_x, cam->center_y},
		.viewport = {cam->viewport_w, cam->viewport_h},
		.zoom = cam->zoom,
		.margin = cam->margin,
		.count = c->n_slots,
		.palette = palette,
		.row_stride = gx * 64,
		.mask = c->mask->address,
		.mode = c->style.mode,
		.filter = c->style.filter,
		.mask_words = c->style.mask_words,
		.p_min = c->style.p_min,
		.p_max = c->style.p_max,
	};
	vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, c->project.pipeline);
	vkCmdPushConstants(cmd, c->project.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(push),
	                   &push);
	vkCmdDispatch(cmd, gx, gy, 1);
}

bool gos_compute_record(struct gos_compute *c, VkCommandBuffer cmd,
                        const struct gos_camera *cam, uint32_t palette)
{
	char err[256];
	if (!gos_compute_ref_check_camera(cam, err, sizeof(err))) {
		log_error("rejected dispatch: %s", err);
		return false;
	}
	if (palette >= GOS_PALETTE_COUNT) {
		log_error("rejected dispatch: unknown palette %u (0..%d)", palette,
		          GOS_PALETTE_COUNT - 1);
		return false;
	}
	uint32_t frame = c->cur;   /* record_uploads() rotates it */
	if (!record_uploads(c, cmd))
		return false;
	if (c->cpu) {
		if (!record_cpu(c, cmd, cam, palette, frame))
			return false;
	} else {
		record_gpu(c, cmd, cam, palette);
	}
	c->stats.dispatches++;

	bool graphics = c->vk->queue_flags & VK_QUEUE_GRAPHICS_BIT;
	VkMemoryBarrier done = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_INDIRECT_COMMAND_READ_BIT | VK_ACCESS_SHADER_READ_BIT |
		                 VK_ACCESS_TRANSFER_READ_BIT |
		                 (graphics ? VK_ACCESS_VERTEX_ATTRIBUTE_READ_BIT : 0),
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     reader_stages(c), 0, 1, &done, 0, NULL, 0, NULL);
	return true;
}

bool gos_compute_record_upload(struct gos_compute *c, VkCommandBuffer cmd)
{
	if (!c->n_pending && !c->mask_dirty)
		return true;
	if (!record_uploads(c, cmd))
		return false;
	VkMemoryBarrier done = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     reader_stages(c), 0, 1, &done, 0, NULL, 0, NULL);
	return true;
}

bool gos_compute_set_style(struct gos_compute *c, const struct gos_compute_style *style)
{
	char err[256];
	if (!gos_compute_ref_check_style(style, err, sizeof(err))) {
		log_error("rejected style: %s", err);
		return false;
	}
	if (c->ref && !gos_compute_ref_set_style(c->ref, style))
		return false;
	if (style->mask_words &&
	    (style->mask_words != c->style.mask_words ||
	     memcmp(style->mask, c->mask_words, style->mask_words * sizeof(uint32_t)))) {
		memcpy(c->mask_words, style->mask, style->mask_words * sizeof(uint32_t));
		c->mask_dirty = true;
	}
	c->style = *style;
	c->style.mask = c->mask_words;
	return true;
}

void gos_compute_get_style(const struct gos_compute *c, struct gos_compute_style *out)
{
	*out = c->style;
}

VkDeviceAddress gos_compute_mask_address(const struct gos_compute *c)
{
	return c->mask->address;
}

size_t gos_compute_pending(const struct gos_compute *c)
{
	return c->n_pending;
}

bool gos_compute_dispatch(struct gos_compute *c, const struct gos_camera *cam, uint32_t palette,
                          uint32_t *count)
{
	struct gos_vk *vk = c->vk;
	VK(vkResetCommandBuffer(c->cmd, 0));
	VkCommandBufferBeginInfo bi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
		.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
	};
	VK(vkBeginCommandBuffer(c->cmd, &bi));
	if (!gos_compute_record(c, c->cmd, cam, palette)) {
		vkEndCommandBuffer(c->cmd);
		return false;
	}
	VkBufferCopy region = {.size = sizeof(VkDrawIndirectCommand)};
	vkCmdCopyBuffer(c->cmd, c->draw->buffer, c->count_rb->buffer, 1, &region);
	VkMemoryBarrier host = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_HOST_READ_BIT,
	};
	vkCmdPipelineBarrier(c->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT,
	                     0, 1, &host, 0, NULL, 0, NULL);
	VK(vkEndCommandBuffer(c->cmd));
	VK(vkResetFences(vk->device, 1, &c->fence));
	VkSubmitInfo si = {
		.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
		.commandBufferCount = 1,
		.pCommandBuffers = &c->cmd,
	};
	VK(vkQueueSubmit(vk->queue, 1, &si, c->fence));
	VK(vkWaitForFences(vk->device, 1, &c->fence, VK_TRUE, UINT64_MAX));
	if (!gos_vk_buffer_invalidate(vk, c->count_rb))
		goto error;
	if (count)
		*count = ((const VkDrawIndirectCommand *)c->count_rb->mapped)->instanceCount;
	return true;
error:
	log_error("the token dispatch failed");
	return false;
}

bool gos_compute_read(struct gos_compute *c, struct gos_processed *out, size_t cap,
                      uint32_t *count)
{
	VkDrawIndirectCommand draw;
	if (!gos_vk_buffer_download(c->vk, c->draw, 0, &draw, sizeof(draw)))
		return false;
	if (draw.instanceCount > c->capacity) {
		log_error("the indirect command says %u survivors, more than the %u slots",
		          draw.instanceCount, c->capacity);
		return false;
	}
	*count = draw.instanceCount;
	size_t n = draw.instanceCount < cap ? draw.instanceCount : cap;
	return gos_compute_read_range(c, 0, (uint32_t)n, out);
}

bool gos_compute_read_range(struct gos_compute *c, uint32_t first, uint32_t n,
                            struct gos_processed *out)
{
	if (first > c->capacity || n > c->capacity - first) {
		log_error("read of output records [%u, %u) past the capacity %u", first,
		          first + n, c->capacity);
		return false;
	}
	return gos_vk_buffer_download(c->vk, c->out, (VkDeviceSize)first * sizeof(*out), out,
	                              (VkDeviceSize)n * sizeof(*out));
}

bool gos_compute_fill_output(struct gos_compute *c, uint32_t pattern)
{
	VkCommandBuffer cmd = gos_vk_oneshot_begin(c->vk);
	if (!cmd)
		return false;
	VkMemoryBarrier mb = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     0, 1, &mb, 0, NULL, 0, NULL);
	vkCmdFillBuffer(cmd, c->out->buffer, 0, VK_WHOLE_SIZE, pattern);
	mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
	mb.dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT;
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
	                     0, 1, &mb, 0, NULL, 0, NULL);
	return gos_vk_oneshot_end(c->vk, cmd);
}

bool gos_compute_read_tokens(struct gos_compute *c, uint32_t first, uint32_t n,
                             struct gos_gpu_token *out)
{
	if (first > c->capacity || n > c->capacity - first) {
		log_error("read of token records [%u, %u) past the capacity %u", first,
		          first + n, c->capacity);
		return false;
	}
	return gos_vk_buffer_download(c->vk, c->tokens, (VkDeviceSize)first * sizeof(*out), out,
	                              (VkDeviceSize)n * sizeof(*out));
}
