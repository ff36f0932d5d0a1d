/* compute_cpu: gos_compute's CPU mode (--cpu-compute) on the real device
 * (lavapipe in CI), validation and synchronization validation on:
 *   - random batches: the output buffer read back with gos_compute_read /
 *     read_range equals gos_compute_ref's output record for record (same
 *     bytes, same slot order), the indirect command says vertexCount 6 and
 *     the same count, nothing past the survivors is touched (poisoned first);
 *   - incremental updates (appends with gaps, moves, removals, a full
 *     replace, growth, and batches of more than GOS_COMPUTE_COPY_MAX_RUNS
 *     runs): the token buffer on the GPU equals the CPU store slot for slot
 *     (the renderer's splats read it) and every dispatch equals the reference;
 *   - renderer-style recording with two frames in flight (the output staging
 *     rotation): every frame's indirect count is that frame's;
 *   - the fallback: with GOS_FORCE_COMPUTE_FAIL=1, gos_compute_create() of a
 *     GPU pipeline logs "the GPU token pipeline failed (...); using the CPU
 *     reference instead (--cpu-compute)" and returns a working CPU-mode
 *     object; without it, the GPU path is taken and nothing is logged;
 *   - bad input rejected with nothing changed;
 *   - zero validation errors. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_compute.h"
#include "gos_test.h"
#include "gos_test_gpu.h"

static const uint32_t POISON = 0xDEADBEEFu;

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

static float frange(float a, float b)
{
	return a + (b - a) * ((float)(rnd() >> 40) / 16777216.0f);
}

static struct gos_token_update random_token(uint32_t slot)
{
	float conf = rnd() % 10 == 0 ? NAN : frange(0, 1);
	return (struct gos_token_update){
		.slot = slot, .x = frange(-2000, 2000), .y = frange(-2000, 2000), .confidence = conf,
	};
}

static struct gos_camera random_camera(void)
{
	return (struct gos_camera){
		.center_x = frange(-1000, 1000), .center_y = frange(-1000, 1000),
		.zoom = expf(frange(logf(0.05f), logf(4.0f))),
		.viewport_w = frange(16, 2048), .viewport_h = frange(16, 2048),
		.margin = rnd() % 3 ? frange(0, 64) : 0,
	};
}

/* Poisons the output, dispatches c and r with the same camera, and holds
 * the GPU buffers to the reference. */
static void check_dispatch(const char *what, struct gos_compute *c, struct gos_compute_ref *r,
                           const struct gos_camera *cam, uint32_t palette)
{
	uint32_t count = UINT32_MAX, n_ref = 0;
	bool ok = gos_compute_fill_output(c, POISON) && gos_compute_dispatch(c, cam, palette, &count) &&
	          gos_compute_ref_dispatch(r, cam, palette, &n_ref);
	CHECK(ok, "%s: dispatch failed", what);
	if (!ok)
		return;
	CHECK(count == n_ref, "%s: %u survivors, the reference has %u", what, count, n_ref);
	struct gos_compute_buffers b;
	gos_compute_buffers(c, &b);
	struct gos_processed *all = malloc((size_t)b.capacity * sizeof(*all));
	uint32_t read_count = UINT32_MAX;
	ok = all && gos_compute_read(c, all, b.capacity, &read_count);
	CHECK(ok && read_count == n_ref, "%s: gos_compute_read gave %u survivors, the reference %u",
	      what, read_count, n_ref);
	if (ok && read_count == n_ref)
		CHECK(!memcmp(all, gos_compute_ref_output(r), (size_t)n_ref * sizeof(*all)),
		      "%s: the output buffer differs from gos_compute_ref's output", what);
	ok = ok && gos_compute_read_range(c, 0, b.capacity, all);
	CHECK(ok, "%s: read_range failed", what);
	if (ok) {
		size_t touched = 0;
		for (uint32_t i = n_ref; i < b.capacity; i++) {
			const uint32_t *w = (const uint32_t *)&all[i];
			for (int k = 0; k < 8; k++)
				touched += w[k] != POISON;
		}
		CHECK(touched == 0, "%s: %zu words past the %u survivors were written", what, touched, n_ref);
	}
	free(all);
}

/* The token buffer on the GPU holds what the CPU store holds. */
static void check_tokens(const char *what, struct gos_compute *c, struct gos_compute_ref *r)
{
	uint32_t n;
	const struct gos_gpu_token *want = gos_compute_ref_tokens(r, &n);
	struct gos_compute_buffers b;
	gos_compute_buffers(c, &b);
	CHECK(b.slots == n, "%s: %u slots on the GPU, %u in the store", what, b.slots, n);
	struct gos_gpu_token *got = malloc(((size_t)n + 1) * sizeof(*got));
	bool ok = got && gos_compute_read_tokens(c, 0, n, got);
	CHECK(ok, "%s: reading the token buffer failed", what);
	size_t bad = 0;
	for (uint32_t i = 0; ok && i < n; i++) {
		bool same = got[i].id == want[i].id &&
		            (want[i].id == GOS_SLOT_EMPTY ||
		             (got[i].x == want[i].x && got[i].y == want[i].y &&
		              !memcmp(&got[i].confidence, &want[i].confidence, sizeof(float))));
		if (!same && bad++ < 3)
			fprintf(stderr, "%s: slot %u: GPU id %u (%g, %g), store id %u (%g, %g)\n", what, i,
			        got[i].id, (double)got[i].x, (double)got[i].y, want[i].id,
			        (double)want[i].x, (double)want[i].y);
	}
	CHECK(bad == 0, "%s: %zu token slots differ", what, bad);
	free(got);
}

static void test_batches(struct gos_vk *vk)
{
	static const uint32_t sizes[] = {0, 1, 63, 64, 65, 4096, 200000};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint32_t n = sizes[s];
		struct gos_compute *c = gos_compute_create(vk, &(struct gos_compute_opts){.cpu = true});
		struct gos_compute_ref *r = gos_compute_ref_create();
		struct gos_token_update *u = malloc(((size_t)n + 1) * sizeof(*u));
		CHECK(c && r && u, "batch %u: create failed", n);
		if (!c || !r || !u)
			goto next;
		CHECK(gos_compute_is_cpu(c), "opts.cpu did not give CPU mode");
		for (uint32_t i = 0; i < n; i++) {
			u[i] = random_token(i);
			u[i].removed = rnd() % 50 == 0;
		}
		CHECK(gos_compute_update(c, u, n) && gos_compute_ref_update(r, u, n), "batch %u: update", n);
		for (int k = 0; k < 3; k++) {
			char what[64];
			snprintf(what, sizeof(what), "batch of %u, camera %d", n, k);
			struct gos_camera cam = random_camera();
			if (k == 2)   /* everything near */
				cam = (struct gos_camera){.zoom = 0.1f, .viewport_w = 800, .viewport_h = 600,
				                          .margin = 8};
			check_dispatch(what, c, r, &cam, (uint32_t)k % GOS_PALETTE_COUNT);
		}
		check_tokens("batch", c, r);
		printf("batch %6u: CPU mode equals the reference\n", n);
next:
		free(u);
		gos_compute_ref_destroy(r);
		gos_compute_destroy(c);
	}
}

static void test_incremental(struct gos_vk *vk)
{
	struct gos_compute *c = gos_compute_create(vk, &(struct gos_compute_opts){
		.cpu = true, .initial_capacity = 64});
	struct gos_compute_ref *r = gos_compute_ref_create();
	struct gos_token_update *u = malloc(20000 * sizeof(*u));
	CHECK(c && r && u, "incremental: create failed");
	if (!c || !r || !u)
		goto out;
	uint32_t next = 0;
	struct gos_camera see_all = {.zoom = 0.01f, .viewport_w = 1000, .viewport_h = 1000,
	                             .margin = 1e6f};
	for (int round = 0; round < 8; round++) {
		size_t n = 0;
		uint32_t appends = 16u << round;
		for (uint32_t i = 0; i < appends; i++) {
			next += rnd() % 8 == 0 ? (uint32_t)(rnd() % 100) : 0;   /* gaps */
			u[n++] = random_token(next++);
		}
		/* Scattered changes: far more runs than GOS_COMPUTE_COPY_MAX_RUNS
		 * from round 2 on (the CPU mode's span upload). */
		for (uint32_t i = 0; i < 40u * (uint32_t)round; i++) {
			u[n] = random_token((uint32_t)(rnd() % next));
			u[n].removed = rnd() % 4 == 0;
			n++;
		}
		if (round == 5) {   /* a full replace, then more changes */
			size_t k = n / 2;
			CHECK(gos_compute_set_all(c, u, k) && gos_compute_ref_set_all(r, u, k),
			      "round %d: set_all", round);
			CHECK(gos_compute_update(c, u + k, n - k) && gos_compute_ref_update(r, u + k, n - k),
			      "round %d: update after set_all", round);
		} else {
			CHECK(gos_compute_update(c, u, n) && gos_compute_ref_update(r, u, n),
			      "round %d: update", round);
		}
		char what[64];
		snprintf(what, sizeof(what), "incremental round %d", round);
		check_dispatch(what, c, r, round % 2 ? &see_all : &(struct gos_camera){
			.zoom = 0.5f, .viewport_w = 1280, .viewport_h = 720, .margin = 16}, (uint32_t)round % 2);
		check_tokens(what, c, r);
		/* Only uploads (the renderer's splat frames), then a dispatch. */
		u[0] = random_token((uint32_t)(rnd() % next));
		CHECK(gos_compute_update(c, u, 1) && gos_compute_ref_update(r, u, 1), "single update");
		VkCommandBuffer cmd = gos_vk_oneshot_begin(vk);
		CHECK(cmd && gos_compute_record_upload(c, cmd) && gos_vk_oneshot_end(vk, cmd),
		      "record_upload");
		check_tokens("after record_upload", c, r);
	}
	struct gos_compute_buffers b;
	gos_compute_buffers(c, &b);
	struct gos_compute_stats st;
	gos_compute_stats(c, &st);
	printf("incremental: %u slots, capacity %u; %llu copy uploads, %llu scatter\n", b.slots,
	       b.capacity, (unsigned long long)st.copy_uploads, (unsigned long long)st.scatter_uploads);
	CHECK(b.capacity > 64, "the buffers never grew");
	CHECK(st.scatter_uploads == 0 && st.copy_uploads > 0, "CPU mode must upload by copy only");

	/* Bad input: rejected, nothing changed. */
	struct gos_token_update bad[2] = {
		{.slot = 0, .x = 1, .y = 1, .confidence = 0.5f},
		{.slot = 1, .x = NAN, .y = 1, .confidence = 0.5f},
	};
	CHECK(!gos_compute_update(c, bad, 2), "a NAN position was accepted");
	CHECK(!gos_compute_set_all(c, bad, 2), "a NAN position was accepted by set_all");
	struct gos_camera badcam = see_all;
	badcam.zoom = -1;
	uint32_t count = 77;
	CHECK(!gos_compute_dispatch(c, &badcam, 0, &count) && count == 77, "a bad camera was accepted");
	CHECK(!gos_compute_dispatch(c, &see_all, GOS_PALETTE_COUNT, &count) && count == 77,
	      "a bad palette was accepted");
	check_dispatch("after rejected input", c, r, &see_all, 0);
	check_tokens("after rejected input", c, r);
out:
	free(u);
	gos_compute_ref_destroy(r);
	gos_compute_destroy(c);
}

/* Renderer-style: own command buffers, two frames in flight; each frame's
 * indirect command (copied out right after record) holds that frame's
 * count, and the last output equals the reference. */
static void test_frames_in_flight(struct gos_vk *vk)
{
	enum { FRAMES = 2, LOOPS = 10 };
	struct gos_compute *c = gos_compute_create(vk, &(struct gos_compute_opts){
		.cpu = true, .frames_in_flight = FRAMES, .initial_capacity = 256});
	struct gos_compute_ref *r = gos_compute_ref_create();
	VkCommandPool pool = VK_NULL_HANDLE;
	VkCommandBuffer cmd[FRAMES] = {0};
	VkFence fence[FRAMES] = {0};
	struct gos_vk_buffer *rb[FRAMES] = {0};
	uint32_t expect[LOOPS];
	CHECK(c && r, "frames: create failed");
	if (!c || !r)
		goto out;
	VkCommandPoolCreateInfo pi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
		.queueFamilyIndex = vk->queue_family,
	};
	CHECK(vkCreateCommandPool(vk->device, &pi, NULL, &pool) == VK_SUCCESS, "command pool");
	VkCommandBufferAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
		.commandPool = pool,
		.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
		.commandBufferCount = FRAMES,
	};
	CHECK(vkAllocateCommandBuffers(vk->device, &ai, cmd) == VK_SUCCESS, "command buffers");
	for (int f = 0; f < FRAMES; f++) {
		VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO,
		                        .flags = VK_FENCE_CREATE_SIGNALED_BIT};
		CHECK(vkCreateFence(vk->device, &fi, NULL, &fence[f]) == VK_SUCCESS, "fence");
		rb[f] = gos_vk_buffer_create(vk, sizeof(VkDrawIndirectCommand),
		                             VK_BUFFER_USAGE_TRANSFER_DST_BIT, GOS_VK_MEM_READBACK,
		                             "test frame readback");
		CHECK(rb[f] != NULL, "readback buffer");
	}
	struct gos_camera cam = {.zoom = 0.3f, .viewport_w = 1280, .viewport_h = 720, .margin = 8};
	uint32_t next = 0;
	struct gos_token_update u[600];
	for (int frame = 0; frame < LOOPS; frame++) {
		int f = frame % FRAMES;
		CHECK(vkWaitForFences(vk->device, 1, &fence[f], VK_TRUE, UINT64_MAX) == VK_SUCCESS, "wait");
		if (frame >= FRAMES) {
			gos_vk_buffer_invalidate(vk, rb[f]);
			const VkDrawIndirectCommand *d = rb[f]->mapped;
			CHECK(d->instanceCount == expect[frame - FRAMES] && d->vertexCount == 6,
			      "frame %d: indirect %u/%u, expected %u/6", frame - FRAMES, d->instanceCount,
			      d->vertexCount, expect[frame - FRAMES]);
		}
		CHECK(vkResetFences(vk->device, 1, &fence[f]) == VK_SUCCESS, "reset");
		size_t n = 0;
		for (int i = 0; i < 300; i++)   /* growing past 256, and the survivors too */
			u[n++] = random_token(next++);
		for (int i = 0; i < 200; i++)
			u[n++] = random_token((uint32_t)(rnd() % next));
		CHECK(gos_compute_update(c, u, n) && gos_compute_ref_update(r, u, n), "update");
		cam.center_x += 7;
		CHECK(gos_compute_ref_dispatch(r, &cam, 1, &expect[frame]), "ref dispatch");
		VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
		                               .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
		CHECK(vkBeginCommandBuffer(cmd[f], &bi) == VK_SUCCESS, "begin");
		CHECK(gos_compute_record(c, cmd[f], &cam, 1), "record");
		struct gos_compute_buffers b;
		gos_compute_buffers(c, &b);
		VkBufferCopy region = {.size = sizeof(VkDrawIndirectCommand)};
		vkCmdCopyBuffer(cmd[f], b.indirect, rb[f]->buffer, 1, &region);
		VkMemoryBarrier host = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		                        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		                        .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
		vkCmdPipelineBarrier(cmd[f], VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT,
		                     0, 1, &host, 0, NULL, 0, NULL);
		CHECK(vkEndCommandBuffer(cmd[f]) == VK_SUCCESS, "end");
		VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
		                   .pCommandBuffers = &cmd[f]};
		CHECK(vkQueueSubmit(vk->queue, 1, &si, fence[f]) == VK_SUCCESS, "submit");
	}
	CHECK(vkWaitForFences(vk->device, FRAMES, fence, VK_TRUE, UINT64_MAX) == VK_SUCCESS, "wait all");
	for (int frame = LOOPS - FRAMES; frame < LOOPS; frame++) {
		int f = frame % FRAMES;
		gos_vk_buffer_invalidate(vk, rb[f]);
		const VkDrawIndirectCommand *d = rb[f]->mapped;
		CHECK(d->instanceCount == expect[frame], "frame %d: %u survivors, expected %u", frame,
		      d->instanceCount, expect[frame]);
	}
	uint32_t count = 0, n_ref = 0;
	struct gos_compute_buffers b;
	gos_compute_buffers(c, &b);
	struct gos_processed *out = malloc(b.capacity * sizeof(*out));
	CHECK(out && gos_compute_read(c, out, b.capacity, &count) &&
	      gos_compute_ref_dispatch(r, &cam, 1, &n_ref) && count == n_ref &&
	      !memcmp(out, gos_compute_ref_output(r), n_ref * sizeof(*out)),
	      "frames in flight: the last output differs from the reference");
	printf("frames in flight: %d frames, %u slots, last frame kept %u\n", LOOPS, b.slots, count);
	free(out);
out:
	for (int f = 0; f < FRAMES; f++) {
		if (fence[f])
			vkDestroyFence(vk->device, fence[f], NULL);
		gos_vk_buffer_destroy(vk, rb[f]);
	}
	if (pool)
		vkDestroyCommandPool(vk->device, pool, NULL);
	gos_compute_ref_destroy(r);
	gos_compute_destroy(c);
}

/* gos_compute_create() with stderr captured into `log` (room for len). */
static struct gos_compute *create_logged(struct gos_vk *vk, char *log, size_t len)
{
	char path[] = "/tmp/gos_compute_cpu_XXXXXX";
	int fd = mkstemp(path);
	int saved = dup(STDERR_FILENO);
	if (fd < 0 || saved < 0)
		return NULL;
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	struct gos_compute *c = gos_compute_create(vk, NULL);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = pread(fd, log, len - 1, 0);
	log[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(path);
	fputs(log, stderr);   /* still shown in the test's output */
	return c;
}

static void test_fallback(struct gos_vk *vk)
{
	char log[2048];
	setenv("GOS_FORCE_COMPUTE_FAIL", "1", 1);
	struct gos_compute *c = create_logged(vk, log, sizeof(log));
	unsetenv("GOS_FORCE_COMPUTE_FAIL");
	CHECK(c != NULL, "the forced GPU failure was not survived");
	CHECK(strstr(log, "the GPU token pipeline failed (") &&
	      strstr(log, "GOS_FORCE_COMPUTE_FAIL") &&
	      strstr(log, "using the CPU reference instead (--cpu-compute)"),
	      "the fallback was not logged as it should be: '%s'", log);
	struct gos_compute_ref *r = gos_compute_ref_create();
	if (c && r) {
		CHECK(gos_compute_is_cpu(c), "the fallback is not in CPU mode");
		struct gos_token_update u[3000];
		for (uint32_t i = 0; i < 3000; i++)
			u[i] = random_token(i * 3);
		CHECK(gos_compute_update(c, u, 3000) && gos_compute_ref_update(r, u, 3000), "update");
		struct gos_camera cam = {.zoom = 0.2f, .viewport_w = 640, .viewport_h = 480, .margin = 4};
		check_dispatch("after the fallback", c, r, &cam, 0);
		check_tokens("after the fallback", c, r);
	}
	gos_compute_ref_destroy(r);
	gos_compute_destroy(c);

	/* Without the hook: the GPU path, and no word of a fallback. */
	c = create_logged(vk, log, sizeof(log));
	CHECK(c && !gos_compute_is_cpu(c), "without the hook the GPU path should be taken");
	CHECK(!strstr(log, "CPU"), "a plain GPU start logged '%s'", log);
	gos_compute_destroy(c);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!gos_vk_available()) {
		return gos_test_no_gpu("test_compute_cpu");
	}
	struct gos_vk *vk = gos_vk_create(NULL);
	CHECK(vk != NULL, "no Vulkan context");
	if (!vk)
		return gos_test_report("compute_cpu");
	test_fallback(vk);
	test_batches(vk);
	test_incremental(vk);
	test_frames_in_flight(vk);
	uint32_t errors = gos_vk_validation_errors(vk);
	printf("validation %s, %u error(s)\n", vk->validation ? "on" : "OFF", errors);
	CHECK(vk->validation || !getenv("GOS_VALIDATION"), "validation was asked for but is off");
	CHECK(errors == 0, "%u validation errors", errors);
	gos_vk_destroy(vk);
	return gos_test_report("compute_cpu");
}
