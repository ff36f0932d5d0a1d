/* The Vulkan context's buffers (gos_vk.h): memory types, buffers with their
 * own memory (create, grow, upload, download, flush/invalidate), and the
 * one-shot submits that uploads, downloads and growth wait on. */
#include "gos_vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory and buffers ---- */

int gos_vk_memory_type(const struct gos_vk *vk, uint32_t type_bits,
                       VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred)
{
	int best = -1, best_score = -1;
	for (uint32_t i = 0; i < vk->mem_props.memoryTypeCount; i++) {
		VkMemoryPropertyFlags f = vk->mem_props.memoryTypes[i].propertyFlags;
		if (!(type_bits & (1u << i)) || (f & required) != required)
			continue;
		int score = __builtin_popcount(f & preferred);
		if (score > best_score) {
			best = (int)i;
			best_score = score;
		}
	}
	return best;
}

static int pick_memory(const struct gos_vk *vk, uint32_t bits, enum gos_vk_mem mem)
{
	const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
	int t = -1;
	switch (mem) {
	case GOS_VK_MEM_DEVICE:
		t = gos_vk_memory_type(vk, bits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
		if (t < 0)
			t = gos_vk_memory_type(vk, bits, 0, host);
		break;
	case GOS_VK_MEM_UPLOAD:
		t = gos_vk_memory_type(vk, bits, host, VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
		break;
	case GOS_VK_MEM_READBACK:
		t = gos_vk_memory_type(vk, bits, host, VK_MEMORY_PROPERTY_HOST_CACHED_BIT |
		                                       VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
		break;
	}
	return t;
}

struct gos_vk_buffer *gos_vk_buffer_create(struct gos_vk *vk, VkDeviceSize size,
                                           VkBufferUsageFlags usage, enum gos_vk_mem mem,
                                           const char *name)
{
	struct gos_vk_buffer *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	snprintf(b->name, sizeof(b->name), "%s", name ? name : "buffer");
	if (size == 0) {
		gos_vk_log("buffer '%s': size 0 requested", b->name);
		goto error;
	}
	b->size = size;
	b->mem = mem;
	b->usage = usage | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT;
	if (mem == GOS_VK_MEM_DEVICE)
		b->usage |= VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

	VkBufferCreateInfo info = {
		.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
		.size = size,
		.usage = b->usage,
		.sharingMode = VK_SHARING_MODE_EXCLUSIVE,
	};
	VK(vkCreateBuffer(vk->device, &info, NULL, &b->buffer));
	VkMemoryRequirements req;
	vkGetBufferMemoryRequirements(vk->device, b->buffer, &req);
	int type = pick_memory(vk, req.memoryTypeBits, mem);
	if (type < 0) {
		gos_vk_log("buffer '%s': no suitable memory type", b->name);
		goto error;
	}
	b->mem_flags = vk->mem_props.memoryTypes[type].propertyFlags;
	VkMemoryAllocateFlagsInfo flags = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
		.flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT,
	};
	VkMemoryAllocateInfo alloc = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
		.pNext = &flags,
		.allocationSize = req.size,
		.memoryTypeIndex = (uint32_t)type,
	};
	VK(vkAllocateMemory(vk->device, &alloc, NULL, &b->memory));
	VK(vkBindBufferMemory(vk->device, b->buffer, b->memory, 0));
	if (mem != GOS_VK_MEM_DEVICE)
		VK(vkMapMemory(vk->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped));
	VkBufferDeviceAddressInfo ai = {
		.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO,
		.buffer = b->buffer,
	};
	b->address = vkGetBufferDeviceAddress(vk->device, &ai);
	gos_vk_name(vk, VK_OBJECT_TYPE_BUFFER, (uint64_t)b->buffer, "%s", b->name);
	gos_vk_name(vk, VK_OBJECT_TYPE_DEVICE_MEMORY, (uint64_t)b->memory, "%s memory", b->name);
	return b;
error:
	if (b->size)
		gos_vk_log("buffer '%s' of %llu bytes could not be created", b->name,
		           (unsigned long long)size);
	gos_vk_buffer_destroy(vk, b);
	return NULL;
}

void gos_vk_buffer_destroy(struct gos_vk *vk, struct gos_vk_buffer *b)
{
	if (!b)
		return;
	if (b->buffer)
		vkDestroyBuffer(vk->device, b->buffer, NULL);
	if (b->memory)
		vkFreeMemory(vk->device, b->memory, NULL);  /* unmaps too */
	free(b);
}

bool gos_vk_buffer_invalidate(struct gos_vk *vk, struct gos_vk_buffer *b)
{
	if (!b->mapped || (b->mem_flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT))
		return true;
	VkMappedMemoryRange r = {
		.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE,
		.memory = b->memory,
		.size = VK_WHOLE_SIZE,
	};
	VK(vkInvalidateMappedMemoryRanges(vk->device, 1, &r));
	return true;
error:
	return false;
}

bool gos_vk_buffer_flush(struct gos_vk *vk, struct gos_vk_buffer *b, VkDeviceSize offset,
                         VkDeviceSize size)
{
	if (!b->mapped || (b->mem_flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) || size == 0)
		return true;
	/* Ranges must be aligned to nonCoherentAtomSize. */
	VkDeviceSize atom = vk->props.limits.nonCoherentAtomSize;
	VkDeviceSize start = offset / atom * atom;
	VkDeviceSize end = (offset + size + atom - 1) / atom * atom;
	VkMappedMemoryRange r = {
		.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE,
		.memory = b->memory,
		.offset = start,
		.size = end >= b->size ? VK_WHOLE_SIZE : end - start,
	};
	VK(vkFlushMappedMemoryRanges(vk->device, 1, &r));
	return true;
error:
	return false;
}

/* A barrier between everything submitted before (any stage, any access) and
 * what follows, for one-shot transfers that run beside other work. */
static void full_barrier(VkCommandBuffer cmd)
{
	VkMemoryBarrier mb = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT | VK_ACCESS_MEMORY_READ_BIT,
		.dstAccessMask = VK_ACCESS_MEMORY_WRITE_BIT | VK_ACCESS_MEMORY_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
	                     VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

static void host_read_barrier(VkCommandBuffer cmd)
{
	VkMemoryBarrier mb = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_HOST_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT,
	                     0, 1, &mb, 0, NULL, 0, NULL);
}

bool gos_vk_buffer_grow(struct gos_vk *vk, struct gos_vk_buffer *b, VkDeviceSize min_size,
                        const uint32_t *fill)
{
	struct gos_vk_buffer *nb = NULL;
	VkCommandBuffer cmd = VK_NULL_HANDLE;
	if (min_size <= b->size)
		return true;
	VkDeviceSize size = b->size;
	while (size < min_size)
		size *= 2;
	if (size > vk->max_alloc && min_size <= vk->max_alloc)
		size = vk->max_alloc / 4 * 4;
	nb = gos_vk_buffer_create(vk, size, b->usage, b->mem, b->name);
	if (!nb)
		goto error;
	if (b->mapped && nb->mapped) {
		/* Host memory is only touched by the host between uses (staging,
		 * readback), so a plain copy is enough. */
		memcpy(nb->mapped, b->mapped, b->size);
		if (fill) {
			uint32_t *p = (uint32_t *)((char *)nb->mapped + b->size);
			for (VkDeviceSize i = 0; i < (size - b->size) / 4; i++)
				p[i] = *fill;
		}
		if (!gos_vk_buffer_flush(vk, nb, 0, size))
			goto error;
	} else {
		cmd = gos_vk_oneshot_begin(vk);
		if (!cmd)
			goto error;
		full_barrier(cmd);
		VkBufferCopy region = {.size = b->size};
		vkCmdCopyBuffer(cmd, b->buffer, nb->buffer, 1, &region);
		if (fill && size - b->size >= 4 && b->size % 4 == 0)
			vkCmdFillBuffer(cmd, nb->buffer, b->size, (size - b->size) / 4 * 4, *fill);
		full_barrier(cmd);
		bool ok = gos_vk_oneshot_end(vk, cmd);
		cmd = VK_NULL_HANDLE;
		if (!ok)
			goto error;
	}
	/* Older submissions may still use the old buffer. */
	VK(vkQueueWaitIdle(vk->queue));
	struct gos_vk_buffer old = *b;
	*b = *nb;
	*nb = old;
	gos_vk_buffer_destroy(vk, nb);
	return true;
error:
	gos_vk_log("buffer '%s' could not grow from %llu to %llu bytes", b->name,
	           (unsigned long long)b->size, (unsigned long long)min_size);
	gos_vk_buffer_destroy(vk, nb);
	return false;
}

/* Whether [offset, offset + size) lies inside the buffer; logs it if not. */
static bool in_range(const struct gos_vk_buffer *b, VkDeviceSize offset, VkDeviceSize size,
                     const char *what)
{
	if (offset <= b->size && size <= b->size - offset)
		return true;
	gos_vk_log("%s of %llu bytes at %llu overruns buffer '%s' (%llu bytes)", what,
	           (unsigned long long)size, (unsigned long long)offset, b->name,
	           (unsigned long long)b->size);
	return false;
}

bool gos_vk_buffer_upload(struct gos_vk *vk, struct gos_vk_buffer *b, VkDeviceSize offset,
                          const void *data, VkDeviceSize size)
{
	struct gos_vk_buffer *staging = NULL;
	bool ok = false;
	if (size == 0)
		return true;
	if (!in_range(b, offset, size, "upload"))
		return false;
	if (b->mapped) {
		VK(vkQueueWaitIdle(vk->queue));
		memcpy((char *)b->mapped + offset, data, size);
		return gos_vk_buffer_flush(vk, b, offset, size);
	}
	staging = gos_vk_buffer_create(vk, size, VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
	                               GOS_VK_MEM_UPLOAD, "upload staging");
	if (!staging)
		goto error;
	memcpy(staging->mapped, data, size);
	if (!gos_vk_buffer_flush(vk, staging, 0, size))
		goto error;
	VkCommandBuffer cmd = gos_vk_oneshot_begin(vk);
	if (!cmd)
		goto error;
	full_barrier(cmd);
	VkBufferCopy region = {.dstOffset = offset, .size = size};
	vkCmdCopyBuffer(cmd, staging->buffer, b->buffer, 1, &region);
	full_barrier(cmd);
	ok = gos_vk_oneshot_end(vk, cmd);
error:
	gos_vk_buffer_destroy(vk, staging);
	return ok;
}

bool gos_vk_buffer_download(struct gos_vk *vk, struct gos_vk_buffer *b, VkDeviceSize offset,
                            void *data, VkDeviceSize size)
{
	struct gos_vk_buffer *rb = NULL;
	bool ok = false;
	if (size == 0)
		return true;
	if (!in_range(b, offset, size, "download"))
		return false;
	if (b->mapped) {
		VK(vkQueueWaitIdle(vk->queue));
		if (!gos_vk_buffer_invalidate(vk, b))
			goto error;
		memcpy(data, (char *)b->mapped + offset, size);
		return true;
	}
	rb = gos_vk_buffer_create(vk, size, VK_BUFFER_USAGE_TRANSFER_DST_BIT,
	                          GOS_VK_MEM_READBACK, "download readback");
	if (!rb)
		goto error;
	VkCommandBuffer cmd = gos_vk_oneshot_begin(vk);
	if (!cmd)
		goto error;
	full_barrier(cmd);
	VkBufferCopy region = {.srcOffset = offset, .size = size};
	vkCmdCopyBuffer(cmd, b->buffer, rb->buffer, 1, &region);
	host_read_barrier(cmd);
	if (!gos_vk_oneshot_end(vk, cmd) || !gos_vk_buffer_invalidate(vk, rb))
		goto error;
	memcpy(data, rb->mapped, size);
	ok = true;
error:
	gos_vk_buffer_destroy(vk, rb);
	return ok;
}

/* ---- one-shot submits ---- */

VkCommandBuffer gos_vk_oneshot_begin(struct gos_vk *vk)
{
	VkCommandBuffer cmd = VK_NULL_HANDLE;
	VkCommandBufferAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
		.commandPool = vk->priv->oneshot_pool,
		.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
		.commandBufferCount = 1,
	};
	VK(vkAllocateCommandBuffers(vk->device, &ai, &cmd));
	VkCommandBufferBeginInfo bi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
		.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
	};
	VK(vkBeginCommandBuffer(cmd, &bi));
	return cmd;
error:
	if (cmd)
		vkFreeCommandBuffers(vk->device, vk->priv->oneshot_pool, 1, &cmd);
	return VK_NULL_HANDLE;
}

bool gos_vk_oneshot_end(struct gos_vk *vk, VkCommandBuffer cmd)
{
	VkFence fence = VK_NULL_HANDLE;
	bool ok = false;
	VK(vkEndCommandBuffer(cmd));
	VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
	VK(vkCreateFence(vk->device, &fi, NULL, &fence));
	VkSubmitInfo si = {
		.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
		.commandBufferCount = 1,
		.pCommandBuffers = &cmd,
	};
	VK(vkQueueSubmit(vk->queue, 1, &si, fence));
	VK(vkWaitForFences(vk->device, 1, &fence, VK_TRUE, UINT64_MAX));
	ok = true;
error:
	if (fence)
		vkDestroyFence(vk->device, fence, NULL);
	vkFreeCommandBuffers(vk->device, vk->priv->oneshot_pool, 1, &cmd);
	return ok;
}
