/* gos_vk: Vulkan context, buffers and one-shot submits. See gos_vk.h. */
#include "gos_vk.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gos_vk_priv {
	VkDebugUtilsMessengerEXT messenger;
	PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
	PFN_vkSetDebugUtilsObjectNameEXT set_name;
	VkCommandPool oneshot_pool;
	bool portability_subset;
	atomic_uint errors;
};

void gos_vk_log(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "gos vk: %s\n", line);
}

const char *gos_vk_result_name(VkResult r)
{
	switch (r) {
#define R(x) case x: return #x
	R(VK_SUCCESS);
	R(VK_NOT_READY);
	R(VK_TIMEOUT);
	R(VK_EVENT_SET);
	R(VK_EVENT_RESET);
	R(VK_INCOMPLETE);
	R(VK_ERROR_OUT_OF_HOST_MEMORY);
	R(VK_ERROR_OUT_OF_DEVICE_MEMORY);
	R(VK_ERROR_INITIALIZATION_FAILED);
	R(VK_ERROR_DEVICE_LOST);
	R(VK_ERROR_MEMORY_MAP_FAILED);
	R(VK_ERROR_LAYER_NOT_PRESENT);
	R(VK_ERROR_EXTENSION_NOT_PRESENT);
	R(VK_ERROR_FEATURE_NOT_PRESENT);
	R(VK_ERROR_INCOMPATIBLE_DRIVER);
	R(VK_ERROR_TOO_MANY_OBJECTS);
	R(VK_ERROR_FORMAT_NOT_SUPPORTED);
	R(VK_ERROR_FRAGMENTED_POOL);
	R(VK_ERROR_UNKNOWN);
	R(VK_ERROR_OUT_OF_POOL_MEMORY);
	R(VK_ERROR_INVALID_EXTERNAL_HANDLE);
	R(VK_ERROR_FRAGMENTATION);
	R(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS);
	R(VK_PIPELINE_COMPILE_REQUIRED);
	R(VK_ERROR_SURFACE_LOST_KHR);
	R(VK_ERROR_NATIVE_WINDOW_IN_USE_KHR);
	R(VK_SUBOPTIMAL_KHR);
	R(VK_ERROR_OUT_OF_DATE_KHR);
	R(VK_ERROR_INCOMPATIBLE_DISPLAY_KHR);
	R(VK_ERROR_VALIDATION_FAILED_EXT);
	R(VK_ERROR_INVALID_SHADER_NV);
	R(VK_ERROR_NOT_PERMITTED_KHR);
	R(VK_THREAD_IDLE_KHR);
	R(VK_THREAD_DONE_KHR);
	R(VK_OPERATION_DEFERRED_KHR);
	R(VK_OPERATION_NOT_DEFERRED_KHR);
#undef R
	default:
		break;
	}
	static _Thread_local char unknown[32];
	snprintf(unknown, sizeof(unknown), "VK_RESULT_%d", (int)r);
	return unknown;
}

void gos_vk_log_result(const char *call, VkResult r, const char *file, int line)
{
	gos_vk_log("%s failed: %s (%s:%d)", call, gos_vk_result_name(r), file, line);
}

uint32_t gos_vk_validation_errors(const struct gos_vk *vk)
{
	if (!vk || !vk->priv)
		return 0;
	return atomic_load(&vk->priv->errors);
}

static VKAPI_ATTR VkBool32 VKAPI_CALL
debug_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
              VkDebugUtilsMessageTypeFlagsEXT types,
              const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
	struct gos_vk_priv *priv = user;
	const char *kind = (types & VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT) ? "validation"
	                 : (types & VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT) ? "performance"
	                 : "general";
	const char *level = "info";
	if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
		level = "error";
		atomic_fetch_add(&priv->errors, 1);
	} else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
		level = "warning";
	}
	gos_vk_log("%s %s: %s", kind, level,
	           data && data->pMessage ? data->pMessage : "(no message)");
	return VK_FALSE;  /* never abort the call: the layer only reports */
}

void gos_vk_name(struct gos_vk *vk, VkObjectType type, uint64_t handle, const char *fmt, ...)
{
	if (!vk || !vk->priv || !vk->priv->set_name || !vk->device || !handle)
		return;
	char name[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	VkDebugUtilsObjectNameInfoEXT info = {
		.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_OBJECT_NAME_INFO_EXT,
		.objectType = type,
		.objectHandle = handle,
		.pObjectName = name,
	};
	vk->priv->set_name(vk->device, &info);
}

/* ---- instance ---- */

static bool env_flag(const char *name)
{
	const char *v = getenv(name);
	return v && *v && strcmp(v, "0") != 0;
}

static bool has_ext(const VkExtensionProperties *exts, uint32_t n, const char *name)
{
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(exts[i].extensionName, name))
			return true;
	return false;
}

/* Appends name to list unless it is there already. */
static void add_name(const char **list, uint32_t *n, const char *name)
{
	for (uint32_t i = 0; i < *n; i++)
		if (!strcmp(list[i], name))
			return;
	list[(*n)++] = name;
}

/* Instance extensions of the loader plus those of `layer` (may be NULL). */
static VkExtensionProperties *instance_extensions(const char *layer, uint32_t *n)
{
	VkExtensionProperties *exts = NULL;
	uint32_t n_base = 0, n_more = 0;
	*n = 0;
	VK(vkEnumerateInstanceExtensionProperties(NULL, &n_base, NULL));
	if (layer)
		VK(vkEnumerateInstanceExtensionProperties(layer, &n_more, NULL));
	exts = calloc(n_base + n_more + 1, sizeof(*exts));
	if (!exts)
		goto error;
	VK(vkEnumerateInstanceExtensionProperties(NULL, &n_base, exts));
	if (layer)
		VK(vkEnumerateInstanceExtensionProperties(layer, &n_more, exts + n_base));
	*n = n_base + n_more;
	return exts;
error:
	free(exts);
	return NULL;
}

static bool has_layer(const char *name)
{
	uint32_t n = 0;
	VkLayerProperties *layers = NULL;
	bool found = false;
	VK(vkEnumerateInstanceLayerProperties(&n, NULL));
	layers = calloc(n + 1, sizeof(*layers));
	if (!layers)
		goto error;
	VK(vkEnumerateInstanceLayerProperties(&n, layers));
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(layers[i].layerName, name))
			found = true;
error:
	free(layers);
	return found;
}

static const char VALIDATION_LAYER[] = "VK_LAYER_KHRONOS_validation";

static bool create_instance(struct gos_vk *vk, const struct gos_vk_opts *opts)
{
	VkExtensionProperties *avail = NULL;
	const char **exts = NULL;
	uint32_t n_avail = 0, n_exts = 0;
	bool ok = false;

	uint32_t loader_version = VK_API_VERSION_1_0;
	PFN_vkEnumerateInstanceVersion enum_version = (PFN_vkEnumerateInstanceVersion)
		vkGetInstanceProcAddr(NULL, "vkEnumerateInstanceVersion");
	if (enum_version)
		VK(enum_version(&loader_version));
	if (loader_version < VK_API_VERSION_1_2) {
		gos_vk_log("the Vulkan loader supports only %u.%u; gos needs Vulkan 1.2",
		           VK_API_VERSION_MAJOR(loader_version), VK_API_VERSION_MINOR(loader_version));
		goto error;
	}

	bool want_validation = env_flag("GOS_VALIDATION");
	if (want_validation && !has_layer(VALIDATION_LAYER)) {
		gos_vk_log("GOS_VALIDATION is set but %s is not installed "
		           "(Debian: apt install vulkan-validationlayers)", VALIDATION_LAYER);
		goto error;
	}
	avail = instance_extensions(want_validation ? VALIDATION_LAYER : NULL, &n_avail);
	if (!avail)
		goto error;

	exts = calloc(opts->n_instance_exts + 4, sizeof(*exts));
	if (!exts)
		goto error;
	for (uint32_t i = 0; i < opts->n_instance_exts; i++) {
		if (!has_ext(avail, n_avail, opts->instance_exts[i])) {
			gos_vk_log("instance extension %s is not available", opts->instance_exts[i]);
			goto error;
		}
		add_name(exts, &n_exts, opts->instance_exts[i]);
	}
	vk->debug_utils = has_ext(avail, n_avail, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
	if (vk->debug_utils)
		add_name(exts, &n_exts, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
	bool portability = has_ext(avail, n_avail, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
	if (portability)
		add_name(exts, &n_exts, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
	bool features = want_validation &&
		has_ext(avail, n_avail, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME) &&
		!env_flag("GOS_VALIDATION_NO_SYNC");
	if (features)
		add_name(exts, &n_exts, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);

	/* Synchronization validation catches missing barriers, which the core
	 * checks cannot see. */
	static const VkValidationFeatureEnableEXT enables[] = {
		VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT,
	};
	VkValidationFeaturesEXT vfeatures = {
		.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
		.enabledValidationFeatureCount = 1,
		.pEnabledValidationFeatures = enables,
	};
	/* Chained into the instance create info too, so that messages about
	 * vkCreateInstance/vkDestroyInstance themselves are caught. */
	VkDebugUtilsMessengerCreateInfoEXT mcreate = {
		.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
		.pNext = features ? &vfeatures : NULL,
		.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
		                   VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
		.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
		               VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
		               VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
		.pfnUserCallback = debug_message,
		.pUserData = vk->priv,
	};
	VkApplicationInfo app = {
		.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
		.pApplicationName = opts->app_name ? opts->app_name : "gos",
		.applicationVersion = VK_MAKE_API_VERSION(0, 0, 1, 0),
		.pEngineName = "gos",
		.engineVersion = VK_MAKE_API_VERSION(0, 0, 1, 0),
		.apiVersion = VK_API_VERSION_1_2,
	};
	const char *layers[] = {VALIDATION_LAYER};
	VkInstanceCreateInfo info = {
		.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
		.pNext = vk->debug_utils ? (const void *)&mcreate : (features ? (const void *)&vfeatures : NULL),
		.flags = portability ? VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR : 0,
		.pApplicationInfo = &app,
		.enabledLayerCount = want_validation ? 1 : 0,
		.ppEnabledLayerNames = layers,
		.enabledExtensionCount = n_exts,
		.ppEnabledExtensionNames = exts,
	};
	VK(vkCreateInstance(&info, NULL, &vk->instance));
	vk->validation = want_validation;

	if (vk->debug_utils) {
		PFN_vkCreateDebugUtilsMessengerEXT create_messenger = (PFN_vkCreateDebugUtilsMessengerEXT)
			vkGetInstanceProcAddr(vk->instance, "vkCreateDebugUtilsMessengerEXT");
		vk->priv->destroy_messenger = (PFN_vkDestroyDebugUtilsMessengerEXT)
			vkGetInstanceProcAddr(vk->instance, "vkDestroyDebugUtilsMessengerEXT");
		vk->priv->set_name = (PFN_vkSetDebugUtilsObjectNameEXT)
			vkGetInstanceProcAddr(vk->instance, "vkSetDebugUtilsObjectNameEXT");
		if (create_messenger && vk->priv->destroy_messenger) {
			mcreate.pNext = NULL;
			VK(create_messenger(vk->instance, &mcreate, NULL, &vk->priv->messenger));
		}
	}
	ok = true;
error:
	free(exts);
	free(avail);
	return ok;
}

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
		if (!has_ext(exts, n_exts, opts->device_exts[i])) {
			snprintf(c->why_not, sizeof(c->why_not), "lacks %s", opts->device_exts[i]);
			goto out;
		}
	}
	if (vk->surface && !has_ext(exts, n_exts, VK_KHR_SWAPCHAIN_EXTENSION_NAME)) {
		snprintf(c->why_not, sizeof(c->why_not), "lacks %s", VK_KHR_SWAPCHAIN_EXTENSION_NAME);
		goto out;
	}
	c->portability_subset = has_ext(exts, n_exts, "VK_KHR_portability_subset");

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

static bool choose_device(struct gos_vk *vk, const struct gos_vk_opts *opts)
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

static bool create_device(struct gos_vk *vk, const struct gos_vk_opts *opts)
{
	const char **exts = calloc(opts->n_device_exts + 3, sizeof(*exts));
	uint32_t n_exts = 0;
	bool ok = false;
	if (!exts)
		goto error;
	for (uint32_t i = 0; i < opts->n_device_exts; i++)
		add_name(exts, &n_exts, opts->device_exts[i]);
	if (vk->surface)
		add_name(exts, &n_exts, VK_KHR_SWAPCHAIN_EXTENSION_NAME);
	if (vk->priv->portability_subset)
		add_name(exts, &n_exts, "VK_KHR_portability_subset");

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

bool gos_vk_available(void)
{
	VkInstance instance = VK_NULL_HANDLE;
	uint32_t n = 0;
	VkApplicationInfo app = {
		.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
		.pApplicationName = "gos probe",
		.apiVersion = VK_API_VERSION_1_1,
	};
	VkInstanceCreateInfo info = {
		.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
		.pApplicationInfo = &app,
	};
	if (vkCreateInstance(&info, NULL, &instance) != VK_SUCCESS)
		return false;
	if (vkEnumeratePhysicalDevices(instance, &n, NULL) != VK_SUCCESS)
		n = 0;
	vkDestroyInstance(instance, NULL);
	return n > 0;
}

struct gos_vk *gos_vk_create(const struct gos_vk_opts *opts_in)
{
	static const struct gos_vk_opts defaults = {0};
	const struct gos_vk_opts *opts = opts_in ? opts_in : &defaults;
	struct gos_vk *vk = calloc(1, sizeof(*vk));
	if (!vk)
		return NULL;
	vk->priv = calloc(1, sizeof(*vk->priv));
	if (!vk->priv)
		goto error;
	atomic_init(&vk->priv->errors, 0);

	if (!create_instance(vk, opts))
		goto error;
	if (opts->create_surface) {
		vk->surface = opts->create_surface(vk->instance, opts->surface_user);
		if (!vk->surface) {
			gos_vk_log("the window surface could not be created");
			goto error;
		}
	}
	if (!choose_device(vk, opts) || !create_device(vk, opts))
		goto error;
	return vk;
error:
	gos_vk_destroy(vk);
	return NULL;
}

void gos_vk_destroy(struct gos_vk *vk)
{
	if (!vk)
		return;
	if (vk->device) {
		vkDeviceWaitIdle(vk->device);
		if (vk->priv && vk->priv->oneshot_pool)
			vkDestroyCommandPool(vk->device, vk->priv->oneshot_pool, NULL);
		vkDestroyDevice(vk->device, NULL);
	}
	if (vk->surface)
		vkDestroySurfaceKHR(vk->instance, vk->surface, NULL);
	if (vk->instance) {
		if (vk->priv && vk->priv->messenger)
			vk->priv->destroy_messenger(vk->instance, vk->priv->messenger, NULL);
		vkDestroyInstance(vk->instance, NULL);
	}
	free(vk->priv);
	free(vk);
}

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
