/* Internals of the Vulkan context (gos_vk.h) shared by its files:
 *   gos_vk.c      logging, the validation messenger, object names, the
 *                 instance, create/destroy
 *   vk_device.c   choosing the physical device, creating the device
 *   vk_buffer.c   memory types, buffers, one-shot submits
 * Same threading as gos_vk.h: the thread that owns the queue. */
#ifndef GOS_VK_INTERNAL_H
#define GOS_VK_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gos_vk.h"

/* What struct gos_vk keeps out of its public fields. */
struct gos_vk_priv {
	VkDebugUtilsMessengerEXT messenger;
	PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
	PFN_vkSetDebugUtilsObjectNameEXT set_name;
	VkCommandPool oneshot_pool;
	bool portability_subset;
	atomic_uint errors;
};

/* Whether name is among the n extensions exts. */
bool vk_has_ext(const VkExtensionProperties *exts, uint32_t n, const char *name);

/* Appends name to list unless it is there already; list has room for it. */
void vk_add_name(const char **list, uint32_t *n, const char *name);

/* After the instance (and surface): picks the physical device (opts->gpu,
 * GOS_GPU, else the best type), fills the device fields of vk and logs the
 * choice. False, with the devices listed in the log, when none fits. */
bool vk_choose_device(struct gos_vk *vk, const struct gos_vk_opts *opts);

/* Creates the device, its queue and the one-shot command pool on the chosen
 * physical device. False on failure (logged). */
bool vk_create_device(struct gos_vk *vk, const struct gos_vk_opts *opts);

#endif
