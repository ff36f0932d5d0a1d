/* The Vulkan context's device (gos_vk_internal.h): every physical device
 * examined (Vulkan 1.2, bufferDeviceAddress, the extensions asked for, a
 * queue family with compute, graphics and present as needed), the override
 * or the best type chosen and logged with its driver, then the device with
 * its one queue and the one-shot command pool. */
#include "gos_vk_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- physical device choice ---- */

struct candidate {
	VkPhysicalDevice pd;
	VkPhysicalDeviceProperties props;
	char driver_name[VK_MAX_DRIVER_NAME_SIZE];
	char driver_info[VK_MAX_DRIVER_INFO_SIZE];
	VkDeviceSize max_alloc;
	uint32_t family;
	VkQueueFlags family_flags;
	bool portability_subset;
	char why_not[160];   /* "" when usable */
};

static int type_rank(VkPhysicalDeviceType t)
{
	switch (t) {
	case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
	case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
	case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
	case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
	default: return 4;
	}
}

static const char *type_name(VkPhysicalDeviceType t)
{
	switch (t) {
	case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
	case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
	case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
	case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
	default: return "other";
	}
}

/* driverVersion is vendor-encoded: NVIDIA uses 10.8.8.6 bits, Intel's
 * Windows driver 18.14, everyone else the Vulkan version macros. */
static void decode_driver_version(const VkPhysicalDeviceProperties *p, char *out, size_t len)
{
	uint32_t v = p->driverVersion;
	if (p->vendorID == 0x10DE)
		snprintf(out, len, "%u.%u.%u.%u", (v >> 22) & 0x3ff, (v >> 14) & 0xff,
		         (v >> 6) & 0xff, v & 0x3f);
	else
		snprintf(out, len, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v),
		         VK_API_VERSION_PATCH(v));
}

static void examine(struct gos_vk *vk, const struct gos_vk_opts *opts, struct candidate *c)
{
	VkExtensionProperties *exts = NULL;
	VkQueueFamilyProperties *fams = NULL;
	uint32_t n_exts = 0, n_fams = 0;

	vkGetPhysicalDeviceProperties(c->pd, &c->props);
	c->family = UINT32_MAX;
	if (c->props.apiVersion < VK_API_VERSION_1_2) {
		snprintf(c->why_not, sizeof(c->why_not), "supports only Vulkan %u.%u, gos needs 1.2",
		         VK_API_VERSION_MAJOR(c->props.apiVersion),
		         VK_API_VERSION_MINOR(c->props.apiVersion));
		return;
	}

	VkPhysicalDeviceVulkan12Properties p12 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES,
	};
	VkPhysicalDeviceMaintenance3Properties m3 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES,
		.pNext = &p12,
	};
	VkPhysicalDeviceProperties2 p2 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
		.pNext = &m3,
	};
	vkGetPhysicalDeviceProperties2(c->pd, &p2);
	memcpy(c->driver_name, p12.driverName, sizeof(c->driver_name));
	memcpy(c->driver_info, p12.driverInfo, sizeof(c->driver_info));
	c->driver_name[sizeof(c->driver_name) - 1] = 0;
	c->driver_info[sizeof(c->driver_info) - 1] = 0;
	c->max_alloc = m3.maxMemoryAllocationSize;

	VkPhysicalDeviceVulkan12Features f12 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
	};
	VkPhysicalDeviceFeatures2 f2 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
		.pNext = &f12,
	};
	vkGetPhysicalDeviceFeatures2(c->pd, &f2);
	if (!f12.bufferDeviceAddress) {
		snprintf(c->why_not, sizeof(c->why_not), "has no bufferDeviceAddress");
		return;
	}

	VK(vkEnumerateDeviceExtensionProperties(c->pd, NULL, &n_exts, NULL));
	exts = calloc(n_exts + 1, sizeof(*exts));
	if (!exts)
		goto error;
	VK(vkEnumerateDeviceExtensionProperties(c->pd, NULL, &n_exts, exts));
	for (uint32_t i = 0; i < opts->n_device_exts; i++) {
		if (!vk_has_ext(exts, n_exts, opts->device_exts[i])) {
			snprintf(c->why_not, sizeof(c->why_not), "lacks %s", opts->device_exts[i]);
			goto out;
		}
	}
	if (vk->surface && !vk_has_ext(exts, n_exts, VK_KHR_SWAPCHAIN_EXTENSION_NAME)) {
		snprintf(c->why_not, sizeof(c->why_not), "lacks %s", VK_KHR_SWAPCHAIN_EXTENSION_NAME);
		goto out;
	}
	c->portability_subset = vk_has_ext(exts, n_exts, "VK_KHR_portability_subset");

	vkGetPhysicalDeviceQueueFamilyProperties(c->pd, &n_fams, NULL);
	fams = calloc(n_fams + 1, sizeof(*fams));
	if (!fams)
		goto error;
	vkGetPhysicalDeviceQueueFamilyProperties(c->pd, &n_fams, fams);
	VkQueueFlags need = VK_QUEUE_COMPUTE_BIT | (opts->want_graphics ? VK_QUEUE_GRAPHICS_BIT : 0);
	for (uint32_t i = 0; i < n_fams && c->family == UINT32_MAX; i++) {
		if ((fams[i].queueFlags & need) != need || fams[i].queueCount == 0)
			continue;
		if (vk->surface) {
			VkBool32 present = VK_FALSE;
			VK(vkGetPhysicalDeviceSurfaceSupportKHR(c->pd, i, vk->surface, &present));
			if (!present)
				continue;
		}
		c->family = i;
		c->family_flags = fams[i].queueFlags;
	}
	if (c->family == UINT32_MAX)
		snprintf(c->why_not, sizeof(c->why_not), "has no queue family with compute%s%s",
		         opts->want_graphics ? "+graphics" : "", vk->surface ? "+present" : "");
	goto out;
error:
	snprintf(c->why_not, sizeof(c->why_not), "could not be queried");
out:
	free(fams);
	free(exts);
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static bool contains_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++) {
		size_t i = 0;
		while (i < n && hay[i] &&
		       tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return true;
	}
	return n == 0;
}

static void list_devices(const struct candidate *c, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		gos_vk_log("  GPU%u '%s' (%s)%s%s", i, c[i].props.deviceName,
		           type_name(c[i].props.deviceType), c[i].why_not[0] ? ": " : "",
		           c[i].why_not[0] ? c[i].why_not : "");
}

bool vk_choose_device(struct gos_vk *vk, const struct gos_vk_opts *opts)
{
	VkPhysicalDevice *pds = NULL;
	struct candidate *c = NULL;
	uint32_t n = 0;
	bool ok = false;

	VK(vkEnumeratePhysicalDevices(vk->instance, &n, NULL));
	if (n == 0) {
		gos_vk_log("no Vulkan device found (for the CPU driver lavapipe on Debian: "
		           "apt install mesa-vulkan-drivers)");
		goto error;
	}
	pds = calloc(n, sizeof(*pds));
	c = calloc(n, sizeof(*c));
	if (!pds || !c)
		goto error;
	VK(vkEnumeratePhysicalDevices(vk->instance, &n, pds));
	for (uint32_t i = 0; i < n; i++) {
		c[i].pd = pds[i];
		examine(vk, opts, &c[i]);
	}

	const char *override = opts->gpu, *source = "--gpu";
	if (!override || !*override) {
		override = getenv("GOS_GPU");
		source = "GOS_GPU";
	}
	if (override && !*override)
		override = NULL;

	int best = -1, unusable = -1;
	for (uint32_t i = 0; i < n; i++) {
		if (override && !(all_digits(override) ? strtoul(override, NULL, 10) == i
		                                       : contains_nocase(c[i].props.deviceName, override)))
			continue;
		if (c[i].why_not[0]) {
			if (unusable < 0)
				unusable = (int)i;
			continue;
		}
		if (best < 0 || type_rank(c[i].props.deviceType) < type_rank(c[best].props.deviceType))
			best = (int)i;
	}
	if (best < 0) {
		if (override && unusable >= 0)
			gos_vk_log("%s=%s selects GPU%d '%s', which gos can't use: %s; the devices are:",
			           source, override, unusable, c[unusable].props.deviceName,
			           c[unusable].why_not);
		else if (override)
			gos_vk_log("%s=%s matches no Vulkan device; the devices are:", source, override);
		else
			gos_vk_log("no usable Vulkan device; the devices are:");
		list_devices(c, n);
		goto error;
	}

	struct candidate *b = &c[best];
	vk->physical_device = b->pd;
	vk->device_index = (uint32_t)best;
	vk->props = b->props;
	vk->queue_family = b->family;
	vk->queue_flags = b->family_flags;
	vk->max_alloc = b->max_alloc ? b->max_alloc : ((VkDeviceSize)1 << 30);
	memcpy(vk->device_name, b->props.deviceName, sizeof(vk->device_name));
	memcpy(vk->driver_name, b->driver_name, sizeof(vk->driver_name));
	memcpy(vk->driver_info, b->driver_info, sizeof(vk->driver_info));
	decode_driver_version(&b->props, vk->driver_version, sizeof(vk->driver_version));
	vkGetPhysicalDeviceMemoryProperties(vk->physical_device, &vk->mem_props);
	gos_vk_log("using GPU%u '%s' (%s), driver %s '%s' version %s, Vulkan %u.%u.%u%s%s%s; "
	           "validation %s",
	           vk->device_index, vk->device_name, type_name(vk->props.deviceType),
	           vk->driver_name[0] ? vk->driver_name : "(unnamed)", vk->driver_info,
	           vk->driver_version, VK_API_VERSION_MAJOR(vk->props.apiVersion),
	           VK_API_VERSION_MINOR(vk->props.apiVersion), VK_API_VERSION_PATCH(vk->props.apiVersion),
	           override ? " (chosen by " : "", override ? source : "", override ? ")" : "",
	           vk->validation ? "on" : "off");
	vk->priv->portability_subset = b->portability_subset;
	ok = true;
error:
	free(c);
	free(pds);
	return ok;
}

/* ---- the device ---- */

bool vk_create_device(struct gos_vk *vk, const struct gos_vk_opts *opts)
{
	const char **exts = calloc(opts->n_device_exts + 3, sizeof(*exts));
	uint32_t n_exts = 0;
	bool ok = false;
	if (!exts)
		goto error;
	for (uint32_t i = 0; i < opts->n_device_exts; i++)
		vk_add_name(exts, &n_exts, opts->device_exts[i]);
	if (vk->surface)
		vk_add_name(exts, &n_exts, VK_KHR_SWAPCHAIN_EXTENSION_NAME);
	if (vk->priv->portability_subset)
		vk_add_name(exts, &n_exts, "VK_KHR_portability_subset");

	float priority = 1.0f;
	VkDeviceQueueCreateInfo queue = {
		.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
		.queueFamilyIndex = vk->queue_family,
		.queueCount = 1,
		.pQueuePriorities = &priority,
	};
	VkPhysicalDeviceVulkan12Features f12 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
		.bufferDeviceAddress = VK_TRUE,
	};
	VkPhysicalDeviceFeatures2 f2 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
		.pNext = &f12,
	};
	VkDeviceCreateInfo info = {
		.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
		.pNext = &f2,
		.queueCreateInfoCount = 1,
		.pQueueCreateInfos = &queue,
		.enabledExtensionCount = n_exts,
		.ppEnabledExtensionNames = exts,
	};
	VK(vkCreateDevice(vk->physical_device, &info, NULL, &vk->device));
	vk->buffer_device_address = true;
	vkGetDeviceQueue(vk->device, vk->queue_family, 0, &vk->queue);

	VkCommandPoolCreateInfo pool = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT |
		         VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
		.queueFamilyIndex = vk->queue_family,
	};
	VK(vkCreateCommandPool(vk->device, &pool, NULL, &vk->priv->oneshot_pool));
	gos_vk_name(vk, VK_OBJECT_TYPE_DEVICE, (uint64_t)(uintptr_t)vk->device, "gos device");
	gos_vk_name(vk, VK_OBJECT_TYPE_QUEUE, (uint64_t)(uintptr_t)vk->queue, "gos queue");
	gos_vk_name(vk, VK_OBJECT_TYPE_COMMAND_POOL, (uint64_t)vk->priv->oneshot_pool,
	            "gos one-shot pool");
	ok = true;
error:
	free(exts);
	return ok;
}
