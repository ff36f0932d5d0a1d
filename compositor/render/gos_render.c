/* gos_render: create/destroy, the ring of frames (command buffer + fence),
 * frame submission and the waits. The pieces are listed in
 * gos_render_internal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_compute.h"
#include "gos_render_internal.h"
#include "gos_text.h"
#include "gos_time.h"

double gos_render_now(const struct gos_render *r)
{
	return gos_now_s() - r->epoch;
}

static bool create_frames(struct gos_render *r)
{
	VkDevice dev = r->vk->device;
	VkCommandPoolCreateInfo pci = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
		.queueFamilyIndex = r->vk->queue_family,
	};
	VK(vkCreateCommandPool(dev, &pci, NULL, &r->cmd_pool));
	for (uint32_t i = 0; i < r->n_frames; i++) {
		struct render_frame *f = &r->frames[i];
		VkCommandBufferAllocateInfo ai = {
			.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
			.commandPool = r->cmd_pool,
			.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
			.commandBufferCount = 1,
		};
		VK(vkAllocateCommandBuffers(dev, &ai, &f->cmd));
		VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
		VK(vkCreateFence(dev, &fci, NULL, &f->fence));
	}
	return true;
error:
	return false;
}

struct gos_render *gos_render_create(struct gos_vk *vk, const struct gos_render_opts *opts,
                                     char *err, size_t err_len)
{
	struct gos_render *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	err[0] = 0;
	r->vk = vk;
	r->o = opts ? *opts : (struct gos_render_opts){0};
	if (!r->o.format)
		r->o.format = VK_FORMAT_B8G8R8A8_UNORM;
	if (!r->o.final_layout)
		r->o.final_layout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL;
	r->n_frames = r->o.frames_in_flight ? r->o.frames_in_flight : 2;
	if (r->n_frames > 4)
		r->n_frames = 4;
	r->epoch = gos_now_s();
	if (!(vk->queue_flags & VK_QUEUE_GRAPHICS_BIT)) {
		snprintf(err, err_len, "the Vulkan queue has no graphics support");
		goto error;
	}
	r->compute = gos_compute_create(vk, &(struct gos_compute_opts){
		.frames_in_flight = r->n_frames, .cpu = r->o.cpu_compute});
	if (!r->compute) {
		snprintf(err, err_len, "cannot create the token compute pipeline");
		goto error;
	}
	r->text = gos_text_create(vk, &(struct gos_text_opts){.frames_in_flight = r->n_frames},
	                          err, err_len);
	if (!r->text)
		goto error;
	if (!render_slotbuf_init(vk, &r->meta, "token meta", 16) ||
	    !render_slotbuf_init(vk, &r->glyphs, "token glyphs", MAX_GLYPHS * 2) ||
	    !render_reserve_slots(r, 0) || !render_pipelines_init(r) || !create_frames(r) ||
	    !render_splat_init(r))
		goto error;
	return r;
error:
	if (!err[0])
		snprintf(err, err_len, "cannot create the renderer (see the Vulkan log above)");
	gos_render_destroy(r);
	return NULL;
}

void gos_render_destroy(struct gos_render *r)
{
	if (!r)
		return;
	struct gos_vk *vk = r->vk;
	VkDevice dev = vk->device;
	vkDeviceWaitIdle(dev);
	for (uint32_t i = 0; i < 4; i++) {
		struct render_frame *f = &r->frames[i];
		if (f->fence)
			vkDestroyFence(dev, f->fence, NULL);
		gos_vk_buffer_destroy(vk, f->overlay);
	}
	if (r->cmd_pool)
		vkDestroyCommandPool(dev, r->cmd_pool, NULL);
	render_pipelines_finish(r);
	render_splat_finish(r);
	render_slotbuf_finish(vk, &r->meta);
	render_slotbuf_finish(vk, &r->glyphs);
	gos_text_destroy(r->text);
	gos_compute_destroy(r->compute);
	gos_map_view_finish(&r->view);
	free(r->upd);
	free(r->matches);
	gos_map_view_finish(&r->match_view);
	free(r->xyw);
	free(r->streams);
	free(r->ov);
	free(r);
}

VkRenderPass gos_render_pass(const struct gos_render *r)
{
	return r->pass;
}

bool gos_render_frame(struct gos_render *r, VkFramebuffer fb, VkExtent2D ext,
                      const struct gos_frame_info *fi, VkSemaphore wait, VkSemaphore signal)
{
	VkDevice dev = r->vk->device;
	struct render_frame *f = &r->frames[r->cur];
	if (f->submitted) {
		VK(vkWaitForFences(dev, 1, &f->fence, VK_TRUE, UINT64_MAX));
		VK(vkResetFences(dev, 1, &f->fence));
		f->submitted = false;
	}
	VK(vkResetCommandBuffer(f->cmd, 0));
	VkCommandBufferBeginInfo bi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
		.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
	};
	VK(vkBeginCommandBuffer(f->cmd, &bi));
	if (!render_record(r, f, fb, ext, fi)) {
		vkEndCommandBuffer(f->cmd);
		return false;
	}
	VK(vkEndCommandBuffer(f->cmd));
	/* The background copy writes the image too: it waits as well. */
	VkPipelineStageFlags stage = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT |
	                             (fi->image ? VK_PIPELINE_STAGE_TRANSFER_BIT : 0);
	VkSubmitInfo si = {
		.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
		.waitSemaphoreCount = wait ? 1 : 0,
		.pWaitSemaphores = &wait,
		.pWaitDstStageMask = &stage,
		.commandBufferCount = 1,
		.pCommandBuffers = &f->cmd,
		.signalSemaphoreCount = signal ? 1 : 0,
		.pSignalSemaphores = &signal,
	};
	VK(vkQueueSubmit(r->vk->queue, 1, &si, f->fence));
	f->submitted = true;
	r->cur = (r->cur + 1) % r->n_frames;
	return true;
error:
	return false;
}

bool gos_render_wait_slot(struct gos_render *r)
{
	struct render_frame *f = &r->frames[r->cur];
	if (f->submitted) {
		VK(vkWaitForFences(r->vk->device, 1, &f->fence, VK_TRUE, UINT64_MAX));
		VK(vkResetFences(r->vk->device, 1, &f->fence));
		f->submitted = false;
	}
	return true;
error:
	return false;
}

uint32_t gos_render_slot_index(const struct gos_render *r)
{
	return r->cur;
}

bool gos_render_wait(struct gos_render *r)
{
	for (uint32_t i = 0; i < r->n_frames; i++) {
		struct render_frame *f = &r->frames[i];
		if (!f->submitted)
			continue;
		VK(vkWaitForFences(r->vk->device, 1, &f->fence, VK_TRUE, UINT64_MAX));
		VK(vkResetFences(r->vk->device, 1, &f->fence));
		f->submitted = false;
	}
	return true;
error:
	return false;
}

bool render_read_drawn(struct gos_render *r, uint32_t *count)
{
	if (r->last_splat)
		return gos_vk_buffer_download(r->vk, r->splat_count, 0, count, sizeof(*count));
	return gos_compute_read(r->compute, NULL, 0, count);
}

bool gos_render_drawn(struct gos_render *r, uint32_t *count)
{
	if (!gos_render_wait(r))
		return false;
	if (!render_read_drawn(r, count))
		return false;
	r->drawn = *count;
	return true;
}
