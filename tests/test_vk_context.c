/* vk_context: the Vulkan context on the real device (lavapipe in CI), with
 * validation on: device choice and its overrides, clear failures, the VK()
 * macro's log line, validation messages counted (and a deliberate error
 * caught, with the object's debug name in the message), buffers that keep
 * their contents when they grow, one-shot submits. Exits 77 only when the
 * machine has no Vulkan device at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_vk.h"
#include "gos_test_gpu.h"

static int failures;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++; \
		} \
	} while (0)

/* ---- stderr capture: what a user sees in the log ---- */

static int saved_stderr = -1;
static FILE *capture_file;

static void capture_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	saved_stderr = dup(2);
	dup2(fileno(capture_file), 2);
}

/* Returns the captured text (caller frees) and echoes it to the real stderr. */
static char *capture_end(void)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	long n = ftell(capture_file);
	char *text = calloc((size_t)(n > 0 ? n : 0) + 1, 1);
	rewind(capture_file);
	size_t got = fread(text, 1, (size_t)(n > 0 ? n : 0), capture_file);
	text[got] = 0;
	fclose(capture_file);
	fprintf(stderr, "%s", text);
	return text;
}

static struct gos_vk *create_captured(const struct gos_vk_opts *opts, char **log)
{
	capture_begin();
	struct gos_vk *vk = gos_vk_create(opts);
	*log = capture_end();
	return vk;
}

/* ---- the VK() macro ---- */

static VkResult fake_lost_device(void)
{
	return VK_ERROR_DEVICE_LOST;
}

static int vk_macro_line;

static bool run_failing_call(void)
{
	vk_macro_line = __LINE__ + 1;
	VK(fake_lost_device());
	return true;
error:
	return false;
}

static void test_vk_macro(void)
{
	CHECK(!strcmp(gos_vk_result_name(VK_ERROR_OUT_OF_DEVICE_MEMORY),
	              "VK_ERROR_OUT_OF_DEVICE_MEMORY"));
	CHECK(!strcmp(gos_vk_result_name(VK_SUBOPTIMAL_KHR), "VK_SUBOPTIMAL_KHR"));
	CHECK(!strcmp(gos_vk_result_name((VkResult)-12345), "VK_RESULT_-12345"));

	capture_begin();
	bool ok = run_failing_call();
	char *log = capture_end();
	char expect[256];
	snprintf(expect, sizeof(expect),
	         "gos vk: fake_lost_device() failed: VK_ERROR_DEVICE_LOST (%s:%d)\n", __FILE__,
	         vk_macro_line);
	CHECK(!ok);
	CHECK(strstr(log, expect) != NULL);
	free(log);
}

/* ---- device choice ---- */

static void test_default_context(void)
{
	char *log;
	struct gos_vk *vk = create_captured(NULL, &log);
	CHECK(vk != NULL);
	if (!vk) {
		free(log);
		return;
	}
	const char *env = getenv("GOS_VALIDATION");
	bool want = env && *env && strcmp(env, "0");
	CHECK(vk->validation == want);
	CHECK(vk->instance && vk->physical_device && vk->device && vk->queue);
	CHECK(vk->queue_flags & VK_QUEUE_COMPUTE_BIT);
	CHECK(vk->device_name[0] != 0);
	CHECK(vk->buffer_device_address);
	CHECK(vk->mem_props.memoryTypeCount > 0);
	/* The choice is logged with device, driver and version. */
	char expect[512];
	snprintf(expect, sizeof(expect), "using GPU%u '%s'", vk->device_index, vk->device_name);
	CHECK(strstr(log, expect) != NULL);
	CHECK(strstr(log, vk->driver_info) != NULL);
	CHECK(strstr(log, vk->driver_version) != NULL);
	CHECK(strstr(log, want ? "validation on" : "validation off") != NULL);
	printf("default device: GPU%u '%s', driver '%s' '%s' %s\n", vk->device_index,
	       vk->device_name, vk->driver_name, vk->driver_info, vk->driver_version);
	CHECK(gos_vk_validation_errors(vk) == 0);
	gos_vk_destroy(vk);
	free(log);
}

static void test_overrides(void)
{
	char *log;
	struct gos_vk *base = gos_vk_create(NULL);
	CHECK(base != NULL);
	if (!base)
		return;
	char index[16], upper[8] = {0};
	snprintf(index, sizeof(index), "%u", base->device_index);
	/* The first few letters of the name, upper-cased: matching ignores case. */
	for (int i = 0; i < 4 && base->device_name[i]; i++)
		upper[i] = (char)((base->device_name[i] >= 'a' && base->device_name[i] <= 'z')
		                  ? base->device_name[i] - 32 : base->device_name[i]);

	struct gos_vk_opts o = {.gpu = index};
	struct gos_vk *vk = create_captured(&o, &log);
	CHECK(vk && vk->device_index == base->device_index);
	CHECK(strstr(log, "(chosen by --gpu)") != NULL);
	gos_vk_destroy(vk);
	free(log);

	o.gpu = upper;
	vk = create_captured(&o, &log);
	CHECK(vk && !strcmp(vk->device_name, base->device_name));
	gos_vk_destroy(vk);
	free(log);

	/* No match: a clear error naming the override, the devices listed. */
	o.gpu = "no-such-gpu-xyz";
	vk = create_captured(&o, &log);
	CHECK(vk == NULL);
	CHECK(strstr(log, "--gpu=no-such-gpu-xyz matches no Vulkan device") != NULL);
	CHECK(strstr(log, base->device_name) != NULL);
	free(log);

	o.gpu = "999";
	vk = create_captured(&o, &log);
	CHECK(vk == NULL);
	CHECK(strstr(log, "--gpu=999 matches no Vulkan device") != NULL);
	free(log);

	/* GOS_GPU works the same way, and --gpu wins over it. */
	setenv("GOS_GPU", "no-such-gpu-xyz", 1);
	vk = create_captured(NULL, &log);
	CHECK(vk == NULL);
	CHECK(strstr(log, "GOS_GPU=no-such-gpu-xyz matches no Vulkan device") != NULL);
	free(log);
	o.gpu = index;
	vk = create_captured(&o, &log);
	CHECK(vk != NULL);
	gos_vk_destroy(vk);
	free(log);
	setenv("GOS_GPU", index, 1);
	vk = create_captured(NULL, &log);
	CHECK(vk && vk->device_index == base->device_index);
	CHECK(strstr(log, "(chosen by GOS_GPU)") != NULL);
	gos_vk_destroy(vk);
	free(log);
	unsetenv("GOS_GPU");

	/* Missing extensions: clear errors, no context. */
	const char *bad_inst[] = {"VK_GOS_not_an_extension"};
	struct gos_vk_opts oi = {.instance_exts = bad_inst, .n_instance_exts = 1};
	vk = create_captured(&oi, &log);
	CHECK(vk == NULL);
	CHECK(strstr(log, "instance extension VK_GOS_not_an_extension is not available") != NULL);
	free(log);
	struct gos_vk_opts od = {.device_exts = bad_inst, .n_device_exts = 1};
	vk = create_captured(&od, &log);
	CHECK(vk == NULL);
	CHECK(strstr(log, "lacks VK_GOS_not_an_extension") != NULL);
	free(log);

	/* A graphics+compute queue for the renderer (lavapipe has one). */
	struct gos_vk_opts og = {.want_graphics = true};
	vk = gos_vk_create(&og);
	CHECK(vk != NULL);
	if (vk) {
		CHECK((vk->queue_flags & (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT)) ==
		      (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT));
		CHECK(gos_vk_validation_errors(vk) == 0);
	}
	gos_vk_destroy(vk);
	CHECK(gos_vk_validation_errors(base) == 0);
	gos_vk_destroy(base);
	gos_vk_destroy(NULL);
}

/* ---- validation is really on, and counted ---- */

static void test_validation_counter(void)
{
	struct gos_vk *vk = gos_vk_create(NULL);
	CHECK(vk != NULL);
	if (!vk)
		return;
	if (!vk->validation) {
		printf("validation off (GOS_VALIDATION unset): counter test skipped\n");
		gos_vk_destroy(vk);
		return;
	}
	CHECK(vk->debug_utils);
	struct gos_vk_buffer *b = gos_vk_buffer_create(vk, 256, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
	                                               GOS_VK_MEM_DEVICE, "deliberately-misused");
	CHECK(b != NULL);
	CHECK(gos_vk_validation_errors(vk) == 0);

	/* Record (never submit) a fill past the end of the buffer: an error the
	 * layer must report, harmless since nothing executes. */
	VkCommandPool pool = VK_NULL_HANDLE;
	VkCommandBuffer cmd = VK_NULL_HANDLE;
	VkCommandPoolCreateInfo pi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.queueFamilyIndex = vk->queue_family,
	};
	CHECK(vkCreateCommandPool(vk->device, &pi, NULL, &pool) == VK_SUCCESS);
	VkCommandBufferAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
		.commandPool = pool,
		.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
		.commandBufferCount = 1,
	};
	CHECK(vkAllocateCommandBuffers(vk->device, &ai, &cmd) == VK_SUCCESS);
	VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
	CHECK(vkBeginCommandBuffer(cmd, &bi) == VK_SUCCESS);
	capture_begin();
	vkCmdFillBuffer(cmd, b->buffer, 512, 4, 0);
	char *log = capture_end();
	vkEndCommandBuffer(cmd);
	vkDestroyCommandPool(vk->device, pool, NULL);

	CHECK(gos_vk_validation_errors(vk) > 0);
	CHECK(strstr(log, "gos vk: validation error:") != NULL);
	CHECK(strstr(log, "VUID-vkCmdFillBuffer-dstOffset") != NULL);
	/* The debug-utils name given at creation shows up in the message. */
	CHECK(strstr(log, "deliberately-misused") != NULL);
	printf("deliberate misuse counted: %u validation error(s)\n", gos_vk_validation_errors(vk));
	free(log);
	gos_vk_buffer_destroy(vk, b);
	gos_vk_destroy(vk);
}

/* ---- buffers ---- */

static void test_buffers(void)
{
	struct gos_vk *vk = gos_vk_create(NULL);
	CHECK(vk != NULL);
	if (!vk)
		return;
	enum { N = 1024 };
	uint32_t data[N], back[4 * N];
	for (uint32_t i = 0; i < N; i++)
		data[i] = i * 2654435761u;

	struct gos_vk_buffer *b = gos_vk_buffer_create(vk, sizeof(data),
	                                               VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
	                                               GOS_VK_MEM_DEVICE, "test device");
	CHECK(b && b->address != 0 && b->size == sizeof(data));
	if (b) {
		CHECK(b->mem_flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
		CHECK(gos_vk_buffer_upload(vk, b, 0, data, sizeof(data)));
		memset(back, 0, sizeof(back));
		CHECK(gos_vk_buffer_download(vk, b, 0, back, sizeof(data)));
		CHECK(!memcmp(back, data, sizeof(data)));

		/* Growth doubles, keeps the old bytes, fills the new ones. */
		VkBuffer old = b->buffer;
		uint32_t fill = 0xA5A5A5A5u;
		CHECK(gos_vk_buffer_grow(vk, b, sizeof(data) + 4, &fill));
		CHECK(b->size == 2 * sizeof(data));
		CHECK(b->buffer != old && b->address != 0);
		CHECK(gos_vk_buffer_download(vk, b, 0, back, b->size));
		CHECK(!memcmp(back, data, sizeof(data)));
		bool filled = true;
		for (uint32_t i = N; i < 2 * N; i++)
			filled &= back[i] == fill;
		CHECK(filled);
		/* Straight to a larger size: the first doubling that reaches it. */
		CHECK(gos_vk_buffer_grow(vk, b, 3 * sizeof(data), NULL));
		CHECK(b->size == 4 * sizeof(data));
		CHECK(gos_vk_buffer_download(vk, b, 0, back, sizeof(data)));
		CHECK(!memcmp(back, data, sizeof(data)));
		/* Smaller requests change nothing. */
		CHECK(gos_vk_buffer_grow(vk, b, 16, NULL) && b->size == 4 * sizeof(data));
		/* Out-of-range transfers are refused. */
		CHECK(!gos_vk_buffer_upload(vk, b, b->size - 4, data, 8));
		CHECK(!gos_vk_buffer_download(vk, b, b->size, back, 4));

		/* A one-shot submit: fill, then read it back. */
		VkCommandBuffer cmd = gos_vk_oneshot_begin(vk);
		CHECK(cmd != VK_NULL_HANDLE);
		if (cmd) {
			vkCmdFillBuffer(cmd, b->buffer, 0, 64, 0x01020304u);
			CHECK(gos_vk_oneshot_end(vk, cmd));
			CHECK(gos_vk_buffer_download(vk, b, 0, back, 64));
			CHECK(back[0] == 0x01020304u && back[15] == 0x01020304u);
		}
	}
	gos_vk_buffer_destroy(vk, b);

	/* Host-visible upload memory grows on the host, contents kept. */
	struct gos_vk_buffer *u = gos_vk_buffer_create(vk, 64, VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
	                                               GOS_VK_MEM_UPLOAD, "test upload");
	CHECK(u && u->mapped);
	if (u && u->mapped) {
		memcpy(u->mapped, data, 64);
		CHECK(gos_vk_buffer_grow(vk, u, 100, NULL));
		CHECK(u->size == 128 && u->mapped && !memcmp(u->mapped, data, 64));
	}
	gos_vk_buffer_destroy(vk, u);

	/* Zero bytes is an error, not a crash. */
	CHECK(gos_vk_buffer_create(vk, 0, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, GOS_VK_MEM_DEVICE,
	                           "empty") == NULL);
	gos_vk_buffer_destroy(vk, NULL);
	CHECK(gos_vk_validation_errors(vk) == 0);
	gos_vk_destroy(vk);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!gos_vk_available()) {
		return gos_test_no_gpu("test_vk_context");
	}
	test_vk_macro();
	test_default_context();
	test_overrides();
	test_validation_counter();
	test_buffers();
	if (failures) {
		fprintf(stderr, "vk_context: %d check(s) failed\n", failures);
		return 1;
	}
	printf("vk_context: all checks passed\n");
	return 0;
}
