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

/* The per-slot data and glyphs staged since the last frame, between
 * barriers: earlier frames' shader reads before, every later shader stage
 * after. Changed tokens or widths invalidate what earlier frames left on
 * the GPU. */
static bool record_uploads(struct gos_render *r, VkCommandBuffer cmd)
{
	VkMemoryBarrier before = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = 0,
		.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_VERTEX_SHADER_BIT | VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT |
	                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	                     VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, NULL, 0, NULL);
	if (r->meta.n_pend || gos_compute_pending(r->compute)) {
		r->proj_valid = false;
		r->splat_valid = false;
	}
	if (!render_slotbuf_record(r->vk, &r->meta, r->cur, cmd) ||
	    !render_slotbuf_record(r->vk, &r->glyphs, r->cur, cmd))
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
	return true;
}

/* The camera the tokens are projected (or splatted) with: the view, and a
 * cull margin that keeps tokens whose box still shows although their center
 * is off screen (none with GOS_RENDER_TIGHT_CULL). */
static struct gos_camera frame_camera(const struct gos_render *r, const struct gos_view *v,
                                      double vw, double vh)
{
	double margin = (r->max_w * 0.5 + GOS_FLOW_LINE_H) * v->zoom + 4;
	if (margin > 1e6)
		margin = 1e6;
	if (r->o.disable & GOS_RENDER_TIGHT_CULL)
		margin = 0;
	return (struct gos_camera){
		.center_x = (float)v->cx, .center_y = (float)v->cy, .zoom = (float)v->zoom,
		.viewport_w = (float)vw, .viewport_h = (float)vh, .margin = (float)margin,
	};
}

/* The token pass: far out splats (no quads), otherwise the projection that
 * feeds the quads. Either is skipped when the camera and the tokens are
 * what the GPU already holds the result for. */
static bool record_token_pass(struct gos_render *r, VkCommandBuffer cmd,
                              const struct gos_camera *cam, const struct gos_view *v, bool splat)
{
	if (splat) {
		if (!render_record_splat(r, cmd, cam, v))
			return false;
	} else if (!r->proj_valid || memcmp(cam, &r->proj_cam, sizeof(*cam)) ||
	           gos_compute_pending(r->compute)) {
		if (!gos_compute_record(r->compute, cmd, cam, r->o.palette))
			return false;
		r->proj_valid = true;
		r->proj_cam = *cam;
		r->projections++;
	}
	r->last_splat = splat;
	return true;
}

/* Builds the overlay, records the glyph atlas upload (the overlay's text
 * may have rasterized new glyphs, so in this order) and writes the
 * vertices into the frame's vertex buffer (grown as needed). */
static bool record_overlay(struct gos_render *r, struct render_frame *f,
                           const struct gos_frame_info *fi, double vw, double vh)
{
	struct gos_vk *vk = r->vk;
	render_build_overlay(r, fi, vw, vh);
	if (!gos_text_record(r->text, f->cmd))
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
	return true;
}

/* token.vert/token.frag's inputs: the text fades in between 8 and 13 px
 * line height (never with GOS_RENDER_NO_TEXT). */
static struct token_push make_token_push(const struct gos_render *r,
                                         const struct gos_frame_info *fi,
                                         const struct gos_compute_buffers *cb, double vw, double vh)
{
	const struct gos_view *v = &fi->view;
	double line_px = GOS_FLOW_LINE_H * v->zoom;
	double ta = (line_px - 8.0) / 5.0;
	ta = ta < 0 ? 0 : ta > 1 ? 1 : ta;
	if (r->o.disable & GOS_RENDER_NO_TEXT)
		ta = 0;
	return (struct token_push){
		.out = cb->output_address,
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
}

/* The render pass into fb: the grid (unless the background was copied into
 * the image, which pass_load keeps), the token quads (unless splatted) and
 * the overlay. */
static void record_draws(struct gos_render *r, struct render_frame *f, VkFramebuffer fb,
                         VkExtent2D ext, const struct gos_frame_info *fi,
                         const struct grid_push *gp, bool copy, bool splat)
{
	VkCommandBuffer cmd = f->cmd;
	double vw = ext.width, vh = ext.height;
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
		push(r, cmd, gp, sizeof(*gp));
		vkCmdDraw(cmd, 3, 1, 0, 0);
	}
	if (!splat) {
		struct gos_compute_buffers cb;
		gos_compute_buffers(r->compute, &cb);
		struct token_push tp = make_token_push(r, fi, &cb, vw, vh);
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->tokens);
		push(r, cmd, &tp, sizeof(tp));
		vkCmdDrawIndirect(cmd, cb.indirect, 0, 1, sizeof(VkDrawIndirectCommand));
	}
	if (r->n_ov) {
		float op[2] = {(float)vw, (float)vh};
		VkDeviceSize off = 0;
		vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, r->overlay);
		push(r, cmd, op, sizeof(op));
		vkCmdBindVertexBuffers(cmd, 0, 1, &f->overlay->buffer, &off);
		vkCmdDraw(cmd, (uint32_t)r->n_ov, 1, 0, 0);
	}
	vkCmdEndRenderPass(cmd);
}

bool render_record(struct gos_render *r, struct render_frame *f, VkFramebuffer fb,
                   VkExtent2D ext, const struct gos_frame_info *fi)
{
	VkCommandBuffer cmd = f->cmd;
	const struct gos_view *v = &fi->view;
	double vw = ext.width, vh = ext.height;
	/* Per-slot data and glyphs first, then the compute pass, whose closing
	 * barrier also covers these transfers for the vertex/fragment stages. */
	if (!record_uploads(r, cmd))
		return false;
	struct gos_camera cam = frame_camera(r, v, vw, vh);
	bool splat = GOS_FLOW_LINE_H * v->zoom < SPLAT_BELOW_PX;
	if (!record_token_pass(r, cmd, &cam, v, splat) || !record_overlay(r, f, fi, vw, vh))
		return false;
	/* The background: copied into the image when there is one, else drawn
	 * by grid.frag in the render pass. */
	bool copy = fi->image != VK_NULL_HANDLE;
	if (copy && !render_ensure_bgbuf(r, ext.width, ext.height))
		return false;
	struct grid_push gp = render_grid_push(r, fi, ext, copy, splat);
	if (copy && !render_record_background(r, cmd, &gp, fi, ext, splat))
		return false;
	record_draws(r, f, fb, ext, fi, &gp, copy, splat);
	return true;
}
