/* gos_render, splats: far out, token_splat.comp writes the newest token of
 * each pixel into an id buffer (which the background reads) instead of
 * drawing quads; after a pan by whole pixels the ids (and the background
 * computed for them) are shifted and only the exposed strips redone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gos_compute.h"
#include "gos_render_internal.h"

bool render_splat_init(struct gos_render *r)
{
	r->splat_count = gos_vk_buffer_create(r->vk, 4, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
	                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT |
	                                      VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
	                                      VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
	                                      GOS_VK_MEM_DEVICE, "splat count");
	return r->splat_count != NULL;
}

void render_splat_finish(struct gos_render *r)
{
	gos_vk_buffer_destroy(r->vk, r->splat_ids);
	gos_vk_buffer_destroy(r->vk, r->splat_count);
	gos_vk_buffer_destroy(r->vk, r->splat_twin);
	gos_vk_buffer_destroy(r->vk, r->zeros);
	free(r->clear_rows);
}

bool render_ensure_bgbuf(struct gos_render *r, uint32_t w, uint32_t h)
{
	VkDeviceSize bytes = (VkDeviceSize)w * h * 8;
	if (r->splat_ids && r->bg_w == w && r->bg_h == h)
		return true;
	r->splat_valid = false;
	r->bg_valid = false;
	r->bg_shift = false;
	r->bg_w = w;
	r->bg_h = h;
	if (r->splat_ids && r->splat_ids->size >= bytes)
		return true;
	/* A bigger target: frames in flight may still read the old buffer. */
	if (r->splat_ids && !gos_render_wait(r))
		return false;
	gos_vk_buffer_destroy(r->vk, r->splat_ids);
	r->splat_ids = gos_vk_buffer_create(r->vk, bytes, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
	                                    VK_BUFFER_USAGE_TRANSFER_DST_BIT |
	                                    VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
	                                    VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
	                                    GOS_VK_MEM_DEVICE, "splat ids and background");
	return r->splat_ids != NULL;
}

static void dispatch_splat(struct gos_render *r, VkCommandBuffer cmd, const struct gos_camera *cam,
                           const int32_t cols[2], const int32_t rows[2]);

/* The whole pixels (dx, dy) the view moved since the splats the buffer
 * holds, when shifting them gives this view: same zoom and viewport, the
 * move a whole number of pixels (to 1/100 px) and at most a quarter of the
 * view (beyond that the strips cost about what a full pass does). */
static bool shift_of(const struct gos_render *r, const struct gos_camera *cam, const struct gos_view *v,
                     int32_t *dx, int32_t *dy)
{
	if (!r->splat_valid || v->zoom != r->splat_zoom || cam->viewport_w != r->splat_cam.viewport_w ||
	    cam->viewport_h != r->splat_cam.viewport_h)
		return false;
	double fx = (v->cx - r->splat_cx) * v->zoom, fy = (v->cy - r->splat_cy) * v->zoom;
	double rx = round(fx), ry = round(fy);
	if (fabs(fx - rx) > 0.01 || fabs(fy - ry) > 0.01 || fabs(rx) * 4 > cam->viewport_w ||
	    fabs(ry) * 4 > cam->viewport_h)
		return false;
	*dx = (int32_t)rx;
	*dy = (int32_t)ry;
	return true;
}

/* The shift path of the splat pass: copies the ids (and the background,
 * when it was computed for them and has no fade-in left) into the twin
 * buffer moved by (dx, dy) pixels, so pixel (x, y) gets what (x + dx,
 * y + dy) held, zeroes the ids of the exposed columns and rows, splats only
 * those, and makes the twin the buffer. The background strips are left to
 * record_background (bg_shift). */
static bool record_shift(struct gos_render *r, VkCommandBuffer cmd, const struct gos_camera *cam,
                         const struct gos_view *v, int32_t dx, int32_t dy)
{
	struct gos_vk *vk = r->vk;
	uint32_t w = r->bg_w, h = r->bg_h;
	/* Frames in flight may still use a buffer being replaced. */
	if (!r->splat_twin || r->splat_twin->size < r->splat_ids->size) {
		if (r->splat_twin && !gos_render_wait(r))
			return false;
		gos_vk_buffer_destroy(vk, r->splat_twin);
		r->splat_twin = gos_vk_buffer_create(vk, r->splat_ids->size, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
		                                     VK_BUFFER_USAGE_TRANSFER_DST_BIT |
		                                     VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
		                                     VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
		                                     GOS_VK_MEM_DEVICE, "splat ids and background (twin)");
		if (!r->splat_twin)
			return false;
	}
	if (!r->zeros || r->zeros->size < (VkDeviceSize)w * 4) {
		if (r->zeros && !gos_render_wait(r))
			return false;
		gos_vk_buffer_destroy(vk, r->zeros);
		r->zeros = gos_vk_buffer_create(vk, (VkDeviceSize)w * 4, VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
		                                GOS_VK_MEM_UPLOAD, "zero columns");
		if (!r->zeros)
			return false;
		memset(r->zeros->mapped, 0, (size_t)w * 4);
		if (!gos_vk_buffer_flush(vk, r->zeros, 0, (VkDeviceSize)w * 4))
			return false;
	}
	if (h > r->cap_clear_rows) {
		VkBufferCopy *n = realloc(r->clear_rows, h * sizeof(*n));
		if (!n)
			return false;
		r->clear_rows = n;
		r->cap_clear_rows = h;
	}
	bool bg = r->bg_valid && r->bg_final && r->bg_on_splat;
	/* The last frames' passes and copies are done with both buffers. */
	VkMemoryBarrier war = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
	                     VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &war, 0, NULL, 0, NULL);
	/* One linear copy: twin[p] = ids[p + dy * w + dx]. Row-major, so what
	 * wraps across a row end (or from the ids into the background) lands
	 * only in the exposed columns and rows, which are redone. */
	int64_t n = (int64_t)w * h * (bg ? 2 : 1);
	int64_t off = (int64_t)dy * w + dx;
	int64_t p0 = off < 0 ? -off : 0, p1 = off > 0 ? n - off : n;
	VkBufferCopy moved = {
		.srcOffset = (VkDeviceSize)(p0 + off) * 4,
		.dstOffset = (VkDeviceSize)p0 * 4,
		.size = (VkDeviceSize)(p1 - p0) * 4,
	};
	vkCmdCopyBuffer(cmd, r->splat_ids->buffer, r->splat_twin->buffer, 1, &moved);
	VkMemoryBarrier copied = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     0, 1, &copied, 0, NULL, 0, NULL);
	int32_t cols[2] = {dx > 0 ? (int32_t)w - dx : 0, dx > 0 ? (int32_t)w : -dx};
	int32_t rows[2] = {dy > 0 ? (int32_t)h - dy : 0, dy > 0 ? (int32_t)h : -dy};
	if (rows[1] > rows[0])
		vkCmdFillBuffer(cmd, r->splat_twin->buffer, (VkDeviceSize)rows[0] * w * 4,
		                (VkDeviceSize)(rows[1] - rows[0]) * w * 4, 0);
	uint32_t k = 0;
	for (int32_t y = 0; cols[1] > cols[0] && y < (int32_t)h; y++)
		if (y < rows[0] || y >= rows[1])
			r->clear_rows[k++] = (VkBufferCopy){
				.srcOffset = 0,
				.dstOffset = ((VkDeviceSize)y * w + (VkDeviceSize)cols[0]) * 4,
				.size = (VkDeviceSize)(cols[1] - cols[0]) * 4,
			};
	if (k)
		vkCmdCopyBuffer(cmd, r->zeros->buffer, r->splat_twin->buffer, k, r->clear_rows);
	struct gos_vk_buffer *t = r->splat_ids;
	r->splat_ids = r->splat_twin;
	r->splat_twin = t;
	dispatch_splat(r, cmd, cam, cols, rows);
	r->splat_valid = true;
	r->splat_cam = *cam;
	r->splat_cx += dx / v->zoom;
	r->splat_cy += dy / v->zoom;
	r->bg_valid = false;
	r->bg_shift = bg;
	r->shift_dx = dx;
	r->shift_dy = dy;
	r->shifts++;
	return true;
}

bool render_record_splat(struct gos_render *r, VkCommandBuffer cmd, const struct gos_camera *cam,
                         const struct gos_view *v)
{
	if (!gos_compute_record_upload(r->compute, cmd))
		return false;
	r->proj_valid = false;   /* the projection's output no longer matches the tokens */
	if (r->splat_valid && !memcmp(cam, &r->splat_cam, sizeof(*cam)))
		return true;
	int32_t dx, dy;
	if (shift_of(r, cam, v, &dx, &dy))
		return record_shift(r, cmd, cam, v, dx, dy);
	VkDeviceSize bytes = (VkDeviceSize)cam->viewport_w * (VkDeviceSize)cam->viewport_h * 4;
	if (!render_ensure_bgbuf(r, (uint32_t)cam->viewport_w, (uint32_t)cam->viewport_h))
		return false;
	/* The last frame's grid pass (and splat) are done with the buffers. */
	VkMemoryBarrier war = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
	                     VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &war, 0, NULL, 0, NULL);
	vkCmdFillBuffer(cmd, r->splat_ids->buffer, 0, bytes, 0);
	int32_t all[2] = {0, (int32_t)cam->viewport_w}, none[2] = {0, 0};
	dispatch_splat(r, cmd, cam, all, none);
	r->splat_valid = true;
	r->bg_valid = false;
	r->bg_shift = false;
	r->splat_cam = *cam;
	r->splat_cx = v->cx;
	r->splat_cy = v->cy;
	r->splat_zoom = v->zoom;
	r->splats++;
	return true;
}

/* Zeroes the counter and runs token_splat.comp over every slot, writing the
 * pixels of columns cols and rows rows (the ids transfers recorded before
 * are made visible to it). Ends with the ids visible to the fragment,
 * compute and transfer stages. */
static void dispatch_splat(struct gos_render *r, VkCommandBuffer cmd, const struct gos_camera *cam,
                           const int32_t cols[2], const int32_t rows[2])
{
	struct gos_vk *vk = r->vk;
	vkCmdFillBuffer(cmd, r->splat_count->buffer, 0, 4, 0);
	VkMemoryBarrier cleared = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     0, 1, &cleared, 0, NULL, 0, NULL);
	struct gos_compute_buffers cb;
	gos_compute_buffers(r->compute, &cb);
	struct gos_compute_style style;
	gos_compute_get_style(r->compute, &style);
	if (cb.slots) {
		uint32_t groups = (cb.slots + 63) / 64;
		uint32_t max_x = vk->props.limits.maxComputeWorkGroupCount[0];
		uint32_t gx = groups < max_x ? groups : max_x;
		uint32_t gy = (groups + gx - 1) / gx;
		struct splat_push sp = {
			.tokens = cb.tokens_address,
			.meta = r->meta.dev->address,
			.ids = r->splat_ids->address,
			.counter = r->splat_count->address,
			.center = {cam->center_x, cam->center_y},
			.viewport = {cam->viewport_w, cam->viewport_h},
			.zoom = cam->zoom,
			.line_h = GOS_FLOW_LINE_H,
			.count = cb.slots,
			.row_stride = gx * 64,
			.cols = {cols[0], cols[1]},
			.rows = {rows[0], rows[1]},
			.max_half = fmaxf(r->max_w * cam->zoom * 0.5f, 1.0f),
			.filter = style.filter,
			.mask = gos_compute_mask_address(r->compute),
			.mask_words = style.mask_words,
			.p_min = style.p_min,
			.p_max = style.p_max,
		};
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, r->splat);
		vkCmdPushConstants(cmd, r->splat_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(sp), &sp);
		vkCmdDispatch(cmd, gx, gy, 1);
	}
	VkMemoryBarrier done = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
	                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     0, 1, &done, 0, NULL, 0, NULL);
}
