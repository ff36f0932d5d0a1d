/* gos_render, background: the grid, the axes and the splats behind the
 * tokens. Its inputs (struct grid_push) serve grid.frag's fullscreen pass
 * and map_background.comp alike; when the target's image can be copied
 * into, map_background.comp computes it into a buffer, kept while its
 * inputs hold (after a whole-pixel shift only the exposed strips are
 * redone), and the buffer is copied into the image for the render pass to
 * draw over. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gos_compute.h"
#include "gos_render_internal.h"

/* grid_push.palette: the palette, the color mode and the search flag
 * (map_background.glsl). */
static uint32_t render_bg_palette(const struct gos_render *r)
{
	struct gos_compute_style st;
	gos_compute_get_style(r->compute, &st);
	return r->o.palette | st.mode << 8 | (st.filter & GOS_FILTER_SEARCH) << 16;
}

struct grid_push render_grid_push(const struct gos_render *r, const struct gos_frame_info *fi,
                                  VkExtent2D ext, bool copy, bool splat)
{
	const struct gos_view *v = &fi->view;
	double vw = ext.width, vh = ext.height;
	double base = pow(10.0, ceil(log10(8.0 / v->zoom)));
	double period = base * 1000.0;
	double ax, ay;
	gos_view_to_screen(v, vw, vh, 0, 0, &ax, &ay);
	struct grid_push gp = {
		.line = {0.45f, 0.55f, 0.72f, 0.22f},
		.axis_color = {0.85f, 0.55f, 0.35f, 0.55f},
		.viewport = {(float)vw, (float)vh},
		.center = {(float)fmod(v->cx, period), (float)fmod(v->cy, period)},
		.axis = {(float)fmin(fmax(ax, -1e6), 1e6), (float)fmin(fmax(ay, -1e6), 1e6)},
		.zoom = (float)v->zoom,
		.base = (float)base,
		.flags = (r->o.disable & GOS_RENDER_NO_GRID) ? 0u : GRID_ON,
		.now = (float)fi->now,
		.fade_s = fi->no_fade ? 0.0f : 0.35f,
		.palette = render_bg_palette(r),
	};
	/* Each level's strength: 0 at 8 px spacing, 1 at 800 px, smoothstepped. */
	for (int i = 0; i < 3; i++) {
		double px = base * pow(10.0, i) * v->zoom;
		double t = log(px / 8.0) / log(100.0);
		t = t < 0 ? 0 : t > 1 ? 1 : t;
		gp.strength[i] = (float)(t * t * (3.0 - 2.0 * t));
	}
	if (copy || splat)
		gp.ids = r->splat_ids->address;
	if (copy && (r->o.format == VK_FORMAT_B8G8R8A8_UNORM || r->o.format == VK_FORMAT_B8G8R8A8_SRGB))
		gp.flags |= GRID_BGRA;
	if (splat) {
		double line_px = GOS_FLOW_LINE_H * v->zoom;
		struct gos_compute_buffers cb;
		gos_compute_buffers(r->compute, &cb);
		gp.flags |= GRID_SPLATS | (line_px < 3.0 ? GRID_POINTS : 0u) |
		            ((r->o.disable & GOS_RENDER_FLAT) ? GRID_FLAT : 0u);
		gp.tokens = cb.tokens_address;
		gp.meta = r->meta.dev->address;
		gp.lut = cb.palettes_address;
	}
	return gp;
}

/* The background buffer was just written by compute: make it visible to the
 * copy into the image, and remember what it now holds. */
static void background_written(struct gos_render *r, VkCommandBuffer cmd,
                               const struct grid_push *key, bool final, bool on_splat)
{
	VkMemoryBarrier done = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     0, 1, &done, 0, NULL, 0, NULL);
	r->bg_valid = true;
	r->bg_final = final;
	r->bg_push = *key;
	r->bg_on_splat = on_splat;
}

bool render_record_background(struct gos_render *r, VkCommandBuffer cmd, const struct grid_push *gp,
                              const struct gos_frame_info *fi, VkExtent2D ext, bool splat)
{
	struct grid_push key = *gp;
	key.now = 0;
	bool final = !(gp->fade_s > 0 && (gp->flags & GRID_SPLATS) &&
	               fi->now < (double)r->last_arrival + gp->fade_s);
	/* Shifted with the splats (record_shift): only the grid's position may
	 * differ from what it was computed with. */
	struct grid_push was = r->bg_push, now = key;
	memset(was.center, 0, sizeof(was.center));
	memset(was.axis, 0, sizeof(was.axis));
	was.ids = 0;
	memset(now.center, 0, sizeof(now.center));
	memset(now.axis, 0, sizeof(now.axis));
	now.ids = 0;
	if (r->bg_shift && final && splat && !memcmp(&was, &now, sizeof(was))) {
		VkMemoryBarrier moved = {
			.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
			.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT,
			.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
		};
		vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
		                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &moved, 0, NULL, 0, NULL);
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, r->bg);
		int32_t dx = r->shift_dx, dy = r->shift_dy;
		uint32_t w = ext.width, h = ext.height;
		if (dx) {
			struct grid_push strip = *gp;
			uint32_t x0 = dx > 0 ? w - (uint32_t)dx : 0, n = (uint32_t)abs(dx);
			strip.origin = x0;
			vkCmdPushConstants(cmd, r->bg_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(strip), &strip);
			vkCmdDispatch(cmd, (n + 7) / 8, (h + 7) / 8, 1);
		}
		if (dy) {
			struct grid_push strip = *gp;
			uint32_t y0 = dy > 0 ? h - (uint32_t)dy : 0, n = (uint32_t)abs(dy);
			strip.origin = y0 << 16;
			vkCmdPushConstants(cmd, r->bg_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(strip), &strip);
			vkCmdDispatch(cmd, (w + 7) / 8, (n + 7) / 8, 1);
		}
		background_written(r, cmd, &key, true, true);
	} else if (!r->bg_valid || !r->bg_final || memcmp(&key, &r->bg_push, sizeof(key))) {
		/* The last frame's copy has read the buffer before we write it. */
		vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
		                     0, 0, NULL, 0, NULL, 0, NULL);
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, r->bg);
		vkCmdPushConstants(cmd, r->bg_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(*gp), gp);
		vkCmdDispatch(cmd, (ext.width + 7) / 8, (ext.height + 7) / 8, 1);
		background_written(r, cmd, &key, final, splat);
		r->backgrounds++;
	}
	r->bg_shift = false;
	VkImageMemoryBarrier ib = {
		.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER,
		.srcAccessMask = 0,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.oldLayout = VK_IMAGE_LAYOUT_UNDEFINED,
		.newLayout = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
		.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
		.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
		.image = fi->image,
		.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1},
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, NULL, 0, NULL, 1, &ib);
	VkBufferImageCopy region = {
		.bufferOffset = (VkDeviceSize)ext.width * ext.height * 4,
		.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
		.imageExtent = {ext.width, ext.height, 1},
	};
	vkCmdCopyBufferToImage(cmd, r->splat_ids->buffer, fi->image, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
	                       1, &region);
	return true;
}
