/* gos_render, recording: a frame's command buffer, in order: the per-slot
 * uploads, the token pass (the projection, or splats far out), the overlay
 * vertices and glyph uploads, the background, then the render pass (grid,
 * tokens, overlay). */
#include <math.h>
#include <string.h>

#include "gos_compute.h"
#include "gos_render_internal.h"
#include "gos_text.h"

/* Below this line height (pixels) no text shows and tokens are boxes of a
 * few pixels: they are splatted by token_splat.comp instead of drawn as
 * quads (lavapipe sets up each quad's two triangles at ~1 us). */
#define SPLAT_BELOW_PX 8.0

static void push(struct gos_render *r, VkCommandBuffer cmd, const void *data, size_t size)
{
	uint8_t buf[PUSH_SIZE] = {0};
	memcpy(buf, data, size);
	vkCmdPushConstants(cmd, r->layout, VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT,
	                   0, PUSH_SIZE, buf);
}

bool render_record(struct gos_render *r, struct frame *f, VkFramebuffer fb, VkExtent2D ext,
                   const struct gos_frame_info *fi)
{
	VkCommandBuffer cmd = f->cmd;
	struct gos_vk *vk = r->vk;
	const struct gos_view *v = &fi->view;
	double vw = ext.width, vh = ext.height;

	/* Per-slot data and glyphs first, then the compute pass, whose closing
	 * barrier also covers these transfers for the vertex/fragment stages. */
	VkMemoryBarrier before = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = 0,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_VERTEX_SHADER_BIT | VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT |
	                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, NULL, 0, NULL);
	/* Tokens or widths changed: what earlier frames left on the GPU is stale. */
	if (r->meta.n_pend || gos_compute_pending(r->compute)) {
		r->proj_valid = false;
		r->splat_valid = false;
	}
	if (!render_slotbuf_record(vk, &r->meta, r->cur, cmd) || !render_slotbuf_record(vk, &r->glyphs, r->cur, cmd))
		return false;
	VkMemoryBarrier after = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
	                     VK_PIPELINE_STAGE_VERTEX_SHADER_BIT | VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT |
	                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     0, 1, &after, 0, NULL, 0, NULL);

	double margin = (r->max_w * 0.5 + GOS_FLOW_LINE_H) * v->zoom + 4;
	if (margin > 1e6)
		margin = 1e6;
	if (r->o.disable & GOS_RENDER_TIGHT_CULL)
		margin = 0;
	struct gos_camera cam = {
		.center_x = (float)v->cx, .center_y = (float)v->cy, .zoom = (float)v->zoom,
		.viewport_w = (float)vw, .viewport_h = (float)vh, .margin = (float)margin,
	};
	/* Far out: splats, no quads. Otherwise the projection feeds the quads.
	 * Either is skipped when the camera and the tokens are what the GPU
	 * already holds the result for. */
	double line_px = GOS_FLOW_LINE_H * v->zoom;
	bool splat = line_px < SPLAT_BELOW_PX;
	if (splat) {
		if (!render_record_splat(r, cmd, &cam, v))
			return false;
	} else if (!r->proj_valid || memcmp(&cam, &r->proj_cam, sizeof(cam)) ||
	           gos_compute_pending(r->compute)) {
		if (!gos_compute_record(r->compute, cmd, &cam, r->o.palette))
			return false;
		r->proj_valid = true;
		r->proj_cam = cam;
		r->projections++;
	}
	r->last_splat = splat;

	/* The overlay's text may rasterize new glyphs: build it before the atlas
	 * upload is recorded. */
	render_build_overlay(r, fi, vw, vh);
	if (!gos_text_record(r->text, cmd))
		return false;
	size_t ov_bytes = r->n_ov * sizeof(struct ov_vertex);
	if (ov_bytes && (!f->overlay || f->overlay->size < ov_bytes)) {
		gos_vk_buffer_destroy(vk, f->overlay);
		size_t sz = 64 * 1024;
		while (sz < ov_bytes)
			sz *= 2;
		f->overlay = gos_vk_buffer_create(vk, sz, VK_BUFFER_USAGE_VERTEX_BUFFER_BIT,
		                                  GOS_VK_MEM_UPLOAD, "overlay vertices");
		if (!f->overlay)
			return false;
	}
	if (ov_bytes) {
		memcpy(f->overlay->mapped, r->ov, ov_bytes);
		if (!gos_vk_buffer_flush(vk, f->overlay, 0, ov_bytes))
			return false;
	}

	/* grid (and the splatted tokens) */
	struct gos_compute_buffers cb;
	gos_compute_buffers(r->compute, &cb);
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
		.palette = r->o.palette,
	};
	/* Each level's strength: 0 at 8 px spacing, 1 at 800 px, smoothstepped. */
	for (int i = 0; i < 3; i++) {
		double px = base * pow(10.0, i) * v->zoom;
		double t = log(px / 8.0) / log(100.0);
		t = t < 0 ? 0 : t > 1 ? 1 : t;
		gp.strength[i] = (float)(t * t * (3.0 - 2.0 * t));
	}
	bool copy = fi->image != VK_NULL_HANDLE;
	if (copy && !render_ensure_bgbuf(r, ext.width, ext.height))
		return false;
	if (copy || splat)
		gp.ids = r->splat_ids->address;
	if (copy && (r->o.format == VK_FORMAT_B8G8R8A8_UNORM || r->o.format == VK_FORMAT_B8G8R8A8_SRGB))
		gp.flags |= GRID_BGRA;
	if (splat) {
		gp.flags |= GRID_SPLATS | (line_px < 3.0 ? GRID_POINTS : 0u) |
		            ((r->o.disable & GOS_RENDER_FLAT) ? GRID_FLAT : 0u);
		gp.tokens = cb.tokens_address;
		gp.meta = r->meta.dev->address;
		gp.lut = cb.palettes_address;
	}
	if (copy && !render_record_background(r, cmd, &gp, fi, ext, splat))
		return false;

	VkClearValue clear = {.color = {{BG_R, BG_G, BG_B, 1.0f}}};
	VkRenderPassBeginInfo rbi = {
		.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO,
		.renderPass = copy ? r->pass_load : r->pass,
		.framebuffer = fb,
		.renderArea = {{0, 0}, ext},
		.clearValueCount = 1,
		.pClearValues = &clear,
	};
	vkCmdBeginRenderPass(cmd, &rbi, VK_SUBPASS_CONTENTS_INLINE);
	VkViewport viewport = {0, 0, (float)vw, (float)vh, 0, 1};
	VkRect2D scissor = {{0, 0}, ext};
	vkCmdSetViewport(cmd, 0, 1, &viewport);
	vkCmdSetScissor(cmd, 0, 1, &scissor);
	vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->layout, 0, 1, &r->set, 0, NULL);

	if (!copy) {
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->grid);
		push(r, cmd, &gp, sizeof(gp));
		vkCmdDraw(cmd, 3, 1, 0, 0);
	}

	/* tokens */
	double ta = (line_px - 8.0) / 5.0;
	ta = ta < 0 ? 0 : ta > 1 ? 1 : ta;
	if (r->o.disable & GOS_RENDER_NO_TEXT)
		ta = 0;
	struct token_push tp = {
		.out = cb.output_address,
		.meta = r->meta.dev->address,
		.glyphs = r->glyphs.dev->address,
		.viewport = {(float)vw, (float)vh},
		.zoom = (float)v->zoom,
		.now = (float)fi->now,
		.fade_s = fi->no_fade ? 0.0f : 0.35f,
		.text_alpha = (float)ta,
		.line_h = GOS_FLOW_LINE_H,
		.char_w = GOS_FLOW_CHAR_W,
		.flags = (r->o.disable & GOS_RENDER_FLAT) ? 1u : 0u,
	};
	if (!splat) {
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->tokens);
		push(r, cmd, &tp, sizeof(tp));
		vkCmdDrawIndirect(cmd, cb.indirect, 0, 1, sizeof(VkDrawIndirectCommand));
	}

	/* overlay */
	if (r->n_ov) {
		float op[2] = {(float)vw, (float)vh};
		VkDeviceSize off = 0;
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->overlay);
		push(r, cmd, op, sizeof(op));
		vkCmdBindVertexBuffers(cmd, 0, 1, &f->overlay->buffer, &off);
		vkCmdDraw(cmd, (uint32_t)r->n_ov, 1, 0, 0);
	}
	vkCmdEndRenderPass(cmd);
	return true;
}
