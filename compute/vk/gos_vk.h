/* gos_vk: the Vulkan context shared by the compute pipeline and the renderer:
 * instance (+ validation and debug utils), the chosen physical device, one
 * device with one queue, buffers with their memory, one-shot submits.
 *
 * Threads: gos_vk_create()/gos_vk_destroy() and everything that records or
 * submits (buffer create/grow/upload/download, one-shot submits) run on the
 * thread that owns the queue (the render thread; in tools and tests, main).
 * gos_vk_validation_errors() and gos_vk_result_name() may be called from any
 * thread.
 *
 * Logging: every message goes to stderr prefixed "gos vk: ". */
#ifndef GOS_VK_H
#define GOS_VK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vulkan/vulkan.h>

/* VK(expr): runs a Vulkan call returning VkResult; on anything but VK_SUCCESS
 * it logs the call text, the result's name and file:line, then does
 * `goto error`. Calls where a positive result is a normal outcome
 * (VK_TIMEOUT, VK_SUBOPTIMAL_KHR, ...) are checked by hand instead. */
#define VK(expr) \
	do { \
		VkResult gos_vk_res_ = (expr); \
		if (gos_vk_res_ != VK_SUCCESS) { \
			gos_vk_log_result(#expr, gos_vk_res_, __FILE__, __LINE__); \
			goto error; \
		} \
	} while (0)

/* Zero means default for every field: (struct gos_vk_opts){0} gives a
 * compute-capable context on the best device, no surface. */
struct gos_vk_opts {
	/* Device override: "INDEX" (position in vkEnumeratePhysicalDevices
	 * order) or a case-insensitive substring of the device name. NULL: the
	 * GOS_GPU environment variable, else automatic (discrete, integrated,
	 * virtual, then CPU). An override that matches no usable device fails. */
	const char *gpu;
	/* Extra instance extensions (e.g. from glfwGetRequiredInstanceExtensions),
	 * all required. */
	const char *const *instance_exts;
	uint32_t n_instance_exts;
	/* Extra device extensions, all required (VK_KHR_swapchain is added by
	 * itself when there is a surface). */
	const char *const *device_exts;
	uint32_t n_device_exts;
	/* The queue must also support graphics (the renderer sets this). */
	bool want_graphics;
	/* Called once the instance exists, before the device is chosen, to make
	 * the window's surface (e.g. with glfwCreateWindowSurface); the chosen
	 * queue must be able to present to it. The context owns the surface
	 * from then on and destroys it. Return VK_NULL_HANDLE on failure. */
	VkSurfaceKHR (*create_surface)(VkInstance instance, void *user);
	void *surface_user;
	/* Name given to the application in VkApplicationInfo; NULL: "gos". */
	const char *app_name;
};

struct gos_vk_priv;

/* The handles the renderer builds on, plain fields: read them, don't change
 * them. All are owned by the context. */
struct gos_vk {
	VkInstance instance;
	VkPhysicalDevice physical_device;
	VkDevice device;
	VkQueue queue;                   /* graphics+compute when want_graphics */
	uint32_t queue_family;
	VkQueueFlags queue_flags;
	VkSurfaceKHR surface;            /* VK_NULL_HANDLE without create_surface */
	VkPhysicalDeviceProperties props;
	VkPhysicalDeviceMemoryProperties mem_props;
	uint32_t device_index;           /* in vkEnumeratePhysicalDevices order */
	char device_name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
	char driver_name[VK_MAX_DRIVER_NAME_SIZE];   /* "" if the driver won't say */
	char driver_info[VK_MAX_DRIVER_INFO_SIZE];   /* e.g. "Mesa 22.3.6 (LLVM 15.0.6)" */
	char driver_version[32];         /* driverVersion decoded the vendor's way */
	VkDeviceSize max_alloc;          /* maxMemoryAllocationSize (Vulkan 1.1) */
	bool validation;                 /* VK_LAYER_KHRONOS_validation is on */
	bool debug_utils;                /* VK_EXT_debug_utils: messages + names */
	bool buffer_device_address;      /* always true: devices without it are skipped */
	struct gos_vk_priv *priv;        /* internals */
};

/* Whether a Vulkan loader and at least one physical device exist (no layers,
 * no logging). Tests exit 77 when this is false. Any thread. */
bool gos_vk_available(void);

/* Creates the context. With GOS_VALIDATION=1 in the environment, the
 * Khronos validation layer is required and enabled (with synchronization
 * validation when the layer offers VK_EXT_validation_features); every message
 * it sends goes to the log and every error is counted. Logs the chosen device
 * with its driver. On failure logs why and returns NULL (no Vulkan, no usable
 * device, an override that matches nothing, a missing extension). */
struct gos_vk *gos_vk_create(const struct gos_vk_opts *opts);

/* Waits for the device to go idle and frees everything. Accepts NULL and a
 * half-built context. Objects made from it must be destroyed first. */
void gos_vk_destroy(struct gos_vk *vk);

/* Validation errors reported so far by this context (0 without validation).
 * Any thread. */
uint32_t gos_vk_validation_errors(const struct gos_vk *vk);

/* "VK_ERROR_OUT_OF_DEVICE_MEMORY" etc.; "VK_RESULT_<number>" if unknown. */
const char *gos_vk_result_name(VkResult r);

/* Used by VK(): logs "gos vk: CALL failed: RESULT (file:line)". */
void gos_vk_log_result(const char *call, VkResult r, const char *file, int line);

/* printf-style line to the log with the "gos vk: " prefix. */
void gos_vk_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Names an object for validation messages and debuggers (printf-style);
 * does nothing without debug utils. */
void gos_vk_name(struct gos_vk *vk, VkObjectType type, uint64_t handle,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A memory type index with all `required` flags (and the most of `preferred`)
 * among `type_bits`; -1 if none. */
int gos_vk_memory_type(const struct gos_vk *vk, uint32_t type_bits,
                       VkMemoryPropertyFlags required,
                       VkMemoryPropertyFlags preferred);

/* ---- buffers ---- */

enum gos_vk_mem {
	GOS_VK_MEM_DEVICE = 0,   /* device-local if the device has it, else any */
	GOS_VK_MEM_UPLOAD,       /* host-visible, mapped; for staging uploads */
	GOS_VK_MEM_READBACK,     /* host-visible, mapped, cached if possible */
};

/* A buffer and its own memory. Device-local buffers also get TRANSFER_SRC/DST
 * (for growth and upload) and, on every buffer, SHADER_DEVICE_ADDRESS. */
struct gos_vk_buffer {
	VkBuffer buffer;
	VkDeviceMemory memory;
	VkDeviceSize size;
	VkBufferUsageFlags usage;
	enum gos_vk_mem mem;
	VkMemoryPropertyFlags mem_flags;
	VkDeviceAddress address;   /* vkGetBufferDeviceAddress */
	void *mapped;              /* host pointer when host-visible, else NULL */
	char name[64];
};

/* Creates a buffer of `size` bytes (> 0) named `name` (copied). NULL on
 * failure (logged). */
struct gos_vk_buffer *gos_vk_buffer_create(struct gos_vk *vk, VkDeviceSize size,
                                           VkBufferUsageFlags usage,
                                           enum gos_vk_mem mem, const char *name);

/* Frees buffer and memory; accepts NULL and a half-built buffer. The GPU must
 * be done with it. */
void gos_vk_buffer_destroy(struct gos_vk *vk, struct gos_vk_buffer *b);

/* Grows b in place to the first size >= min_size reached by doubling
 * (capped at max(min_size, vk->max_alloc)), keeping its contents: copied on
 * the GPU (host buffers: memcpy). With `fill`, the new bytes are set to that
 * 32-bit pattern. Waits for the queue to go idle before freeing the old
 * buffer, so b->buffer and b->address change and every command buffer that
 * used the old ones must have been submitted. Returns false on failure
 * (logged), leaving b as it was. */
bool gos_vk_buffer_grow(struct gos_vk *vk, struct gos_vk_buffer *b,
                        VkDeviceSize min_size, const uint32_t *fill);

/* Copies host data into b at `offset` (through a staging buffer unless b is
 * mapped) and waits for it. Returns false on failure (logged). */
bool gos_vk_buffer_upload(struct gos_vk *vk, struct gos_vk_buffer *b,
                          VkDeviceSize offset, const void *data, VkDeviceSize size);

/* Copies `size` bytes of b at `offset` to the host; waits. */
bool gos_vk_buffer_download(struct gos_vk *vk, struct gos_vk_buffer *b,
                            VkDeviceSize offset, void *data, VkDeviceSize size);

/* Makes device writes to a mapped buffer visible to the host (no-op on
 * host-coherent memory); call after waiting for the writing submission. */
bool gos_vk_buffer_invalidate(struct gos_vk *vk, struct gos_vk_buffer *b);

/* Makes host writes to a mapped buffer visible to the device (no-op on
 * host-coherent memory); call before submitting the reading commands. */
bool gos_vk_buffer_flush(struct gos_vk *vk, struct gos_vk_buffer *b,
                         VkDeviceSize offset, VkDeviceSize size);

/* ---- one-shot submits ---- */

/* Begins a primary command buffer for one use; VK_NULL_HANDLE on failure. */
VkCommandBuffer gos_vk_oneshot_begin(struct gos_vk *vk);

/* Ends, submits and waits for the command buffer from gos_vk_oneshot_begin(),
 * then frees it (also on failure). Returns false on failure (logged). */
bool gos_vk_oneshot_end(struct gos_vk *vk, VkCommandBuffer cmd);

#endif
