/* gos_render, offscreen target: a color image and framebuffer in the
 * renderer's format, and its readback to RGBA. */
#include <stdlib.h>

#include "gos_render_internal.h"

struct gos_offscreen {
	VkImage image;
	VkDeviceMemory memory;
	VkImageView view;
	VkFramebuffer fb;
	VkExtent2D ext;
	struct gos_vk_buffer *readback;
};

struct gos_offscreen *gos_offscreen_create(struct gos_render *r, uint32_t w, uint32_t h)
{
	struct gos_vk *vk = r->vk;
	VkDevice dev = vk->device;
	struct gos_offscreen *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->ext = (VkExtent2D){w, h};
	VkImageCreateInfo ici = {
		.sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO,
		.imageType = VK_IMAGE_TYPE_2D,
		.format = r->o.format,
		.extent = {w, h, 1},
		.mipLevels = 1,
		.arrayLayers = 1,
		.samples = VK_SAMPLE_COUNT_1_BIT,
		.tiling = VK_IMAGE_TILING_OPTIMAL,
		.usage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT |
		         VK_IMAGE_USAGE_TRANSFER_DST_BIT,
		.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
	};
	VK(vkCreateImage(dev, &ici, NULL, &o->image));
	gos_vk_name(vk, VK_OBJECT_TYPE_IMAGE, (uint64_t)o->image, "offscreen %ux%u", w, h);
	VkMemoryRequirements req;
	vkGetImageMemoryRequirements(dev, o->image, &req);
	int mt = gos_vk_memory_type(vk, req.memoryTypeBits, 0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
	if (mt < 0)
		goto error;
	VkMemoryAllocateInfo mai = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
		.allocationSize = req.size,
		.memoryTypeIndex = (uint32_t)mt,
	};
	VK(vkAllocateMemory(dev, &mai, NULL, &o->memory));
	VK(vkBindImageMemory(dev, o->image, o->memory, 0));
	VkImageViewCreateInfo vci = {
		.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO,
		.image = o->image,
		.viewType = VK_IMAGE_VIEW_TYPE_2D,
		.format = r->o.format,
		.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1},
	};
	VK(vkCreateImageView(dev, &vci, NULL, &o->view));
	VkFramebufferCreateInfo fci = {
		.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO,
		.renderPass = r->pass,
		.attachmentCount = 1,
		.pAttachments = &o->view,
		.width = w,
		.height = h,
		.layers = 1,
	};
	VK(vkCreateFramebuffer(dev, &fci, NULL, &o->fb));
	o->readback = gos_vk_buffer_create(vk, (VkDeviceSize)w * h * 4, VK_BUFFER_USAGE_TRANSFER_DST_BIT,
	                                   GOS_VK_MEM_READBACK, "offscreen readback");
	if (!o->readback)
		goto error;
	return o;
error:
	gos_offscreen_destroy(r, o);
	return NULL;
}

void gos_offscreen_destroy(struct gos_render *r, struct gos_offscreen *o)
{
	if (!o)
		return;
	VkDevice dev = r->vk->device;
	vkDeviceWaitIdle(dev);
	gos_vk_buffer_destroy(r->vk, o->readback);
	if (o->fb)
		vkDestroyFramebuffer(dev, o->fb, NULL);
	if (o->view)
		vkDestroyImageView(dev, o->view, NULL);
	if (o->image)
		vkDestroyImage(dev, o->image, NULL);
	if (o->memory)
		vkFreeMemory(dev, o->memory, NULL);
	free(o);
}

VkFramebuffer gos_offscreen_framebuffer(const struct gos_offscreen *o) { return o->fb; }
VkExtent2D gos_offscreen_extent(const struct gos_offscreen *o) { return o->ext; }
VkImage gos_offscreen_image(const struct gos_offscreen *o) { return o->image; }

bool gos_offscreen_read(struct gos_render *r, struct gos_offscreen *o, uint8_t *rgba)
{
	if (!gos_render_wait(r))
		return false;
	VkCommandBuffer cmd = gos_vk_oneshot_begin(r->vk);
	if (!cmd)
		return false;
	if (r->o.final_layout != VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL) {
		VkImageMemoryBarrier b = {
			.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER,
			.srcAccessMask = 0,
			.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
			.oldLayout = r->o.final_layout,
			.newLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
			.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
			.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
			.image = o->image,
			.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1},
		};
		vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
		                     0, 0, NULL, 0, NULL, 1, &b);
	}
	VkBufferImageCopy region = {
		.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
		.imageExtent = {o->ext.width, o->ext.height, 1},
	};
	vkCmdCopyImageToBuffer(cmd, o->image, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
	                       o->readback->buffer, 1, &region);
	VkMemoryBarrier host = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_HOST_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
	                     &host, 0, NULL, 0, NULL);
	if (!gos_vk_oneshot_end(r->vk, cmd) || !gos_vk_buffer_invalidate(r->vk, o->readback))
		return false;
	const uint8_t *src = o->readback->mapped;
	size_t n = (size_t)o->ext.width * o->ext.height;
	bool bgra = r->o.format == VK_FORMAT_B8G8R8A8_UNORM || r->o.format == VK_FORMAT_B8G8R8A8_SRGB;
	for (size_t i = 0; i < n; i++) {
		rgba[4 * i + 0] = src[4 * i + (bgra ? 2 : 0)];
		rgba[4 * i + 1] = src[4 * i + 1];
		rgba[4 * i + 2] = src[4 * i + (bgra ? 0 : 2)];
		rgba[4 * i + 3] = 255;
	}
	uint32_t count;
	if (render_read_drawn(r, &count))
		r->drawn = count;
	return true;
}
