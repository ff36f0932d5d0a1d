/* gos_vk: the Vulkan context (see gos_vk.h): logging and result names, the
 * validation messenger, object names, the instance, create/destroy. The
 * device choice is in vk_device.c, buffers and one-shot submits in
 * vk_buffer.c (gos_vk_internal.h). */
#include "gos_vk_internal.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

bool vk_has_ext(const VkExtensionProperties *exts, uint32_t n, const char *name)
{
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(exts[i].extensionName, name))
			return true;
	return false;
}

void vk_add_name(const char **list, uint32_t *n, const char *name)
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
		if (!vk_has_ext(avail, n_avail, opts->instance_exts[i])) {
			gos_vk_log("instance extension %s is not available", opts->instance_exts[i]);
			goto error;
		}
		vk_add_name(exts, &n_exts, opts->instance_exts[i]);
	}
	vk->debug_utils = vk_has_ext(avail, n_avail, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
	if (vk->debug_utils)
		vk_add_name(exts, &n_exts, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
	bool portability = vk_has_ext(avail, n_avail, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
	if (portability)
		vk_add_name(exts, &n_exts, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
	bool features = want_validation &&
		vk_has_ext(avail, n_avail, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME) &&
		!env_flag("GOS_VALIDATION_NO_SYNC");
	if (features)
		vk_add_name(exts, &n_exts, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);

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

/* ---- create / destroy ---- */

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
	if (!vk_choose_device(vk, opts) || !vk_create_device(vk, opts))
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
