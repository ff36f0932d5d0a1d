/* gos_render, pipelines: the embedded SPIR-V, shader modules, the two
 * render passes, the descriptor set and layout of the graphics pipelines,
 * the grid, tokens and overlay pipelines and the splat and background
 * compute pipelines. */
#include <stdlib.h>

#include "gos_render_internal.h"
#include "gos_text.h"

static const uint32_t fullscreen_vert[] =
#include "fullscreen.vert.inc"
;
static const uint32_t grid_frag[] =
#include "grid.frag.inc"
;
static const uint32_t token_vert[] =
#include "token.vert.inc"
;
static const uint32_t token_frag[] =
#include "token.frag.inc"
;
static const uint32_t overlay_vert[] =
#include "overlay.vert.inc"
;
static const uint32_t overlay_frag[] =
#include "overlay.frag.inc"
;
static const uint32_t token_splat_comp[] =
#include "token_splat.comp.inc"
;
static const uint32_t map_background_comp[] =
#include "map_background.comp.inc"
;

static VkShaderModule make_module(VkDevice dev, const uint32_t *code, size_t size)
{
	VkShaderModuleCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
		.codeSize = size,
		.pCode = code,
	};
	VkShaderModule m = VK_NULL_HANDLE;
	if (vkCreateShaderModule(dev, &ci, NULL, &m) != VK_SUCCESS)
		return VK_NULL_HANDLE;
	return m;
}

static VkPipeline make_pipeline(struct gos_render *r, const uint32_t *vs, size_t vs_size,
                                const uint32_t *fs, size_t fs_size, bool overlay_input,
                                const char *name)
{
	VkDevice dev = r->vk->device;
	VkPipeline p = VK_NULL_HANDLE;
	VkShaderModule vm = make_module(dev, vs, vs_size);
	VkShaderModule fm = make_module(dev, fs, fs_size);
	if (!vm || !fm)
		goto error;
	VkPipelineShaderStageCreateInfo stages[2] = {
		{.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
		 .stage = VK_SHADER_STAGE_VERTEX_BIT, .module = vm, .pName = "main"},
		{.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
		 .stage = VK_SHADER_STAGE_FRAGMENT_BIT, .module = fm, .pName = "main"},
	};
	VkVertexInputBindingDescription bind = {0, sizeof(struct ov_vertex), VK_VERTEX_INPUT_RATE_VERTEX};
	VkVertexInputAttributeDescription attrs[4] = {
		{0, 0, VK_FORMAT_R32G32_SFLOAT, offsetof(struct ov_vertex, x)},
		{1, 0, VK_FORMAT_R32G32_SFLOAT, offsetof(struct ov_vertex, u)},
		{2, 0, VK_FORMAT_R32G32B32A32_SFLOAT, offsetof(struct ov_vertex, r)},
		{3, 0, VK_FORMAT_R32_SFLOAT, offsetof(struct ov_vertex, mode)},
	};
	VkPipelineVertexInputStateCreateInfo vi = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO,
		.vertexBindingDescriptionCount = overlay_input ? 1 : 0,
		.pVertexBindingDescriptions = &bind,
		.vertexAttributeDescriptionCount = overlay_input ? 4 : 0,
		.pVertexAttributeDescriptions = attrs,
	};
	VkPipelineInputAssemblyStateCreateInfo ia = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO,
		.topology = VK_PRIMITIVE_TOPOLOGY_TRIANGLE_LIST,
	};
	VkPipelineViewportStateCreateInfo vp = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO,
		.viewportCount = 1,
		.scissorCount = 1,
	};
	VkPipelineRasterizationStateCreateInfo rs = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO,
		.polygonMode = VK_POLYGON_MODE_FILL,
		.cullMode = VK_CULL_MODE_NONE,
		.lineWidth = 1,
	};
	VkPipelineMultisampleStateCreateInfo ms = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO,
		.rasterizationSamples = VK_SAMPLE_COUNT_1_BIT,
	};
	VkPipelineColorBlendAttachmentState blend = {
		.blendEnable = VK_TRUE,
		.srcColorBlendFactor = VK_BLEND_FACTOR_ONE,
		.dstColorBlendFactor = VK_BLEND_FACTOR_ONE_MINUS_SRC_ALPHA,
		.colorBlendOp = VK_BLEND_OP_ADD,
		.srcAlphaBlendFactor = VK_BLEND_FACTOR_ONE,
		.dstAlphaBlendFactor = VK_BLEND_FACTOR_ONE_MINUS_SRC_ALPHA,
		.alphaBlendOp = VK_BLEND_OP_ADD,
		.colorWriteMask = 0xF,
	};
	VkPipelineColorBlendStateCreateInfo cb = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO,
		.attachmentCount = 1,
		.pAttachments = &blend,
	};
	VkDynamicState dyn[2] = {VK_DYNAMIC_STATE_VIEWPORT, VK_DYNAMIC_STATE_SCISSOR};
	VkPipelineDynamicStateCreateInfo ds = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_DYNAMIC_STATE_CREATE_INFO,
		.dynamicStateCount = 2,
		.pDynamicStates = dyn,
	};
	VkGraphicsPipelineCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO,
		.stageCount = 2,
		.pStages = stages,
		.pVertexInputState = &vi,
		.pInputAssemblyState = &ia,
		.pViewportState = &vp,
		.pRasterizationState = &rs,
		.pMultisampleState = &ms,
		.pColorBlendState = &cb,
		.pDynamicState = &ds,
		.layout = r->layout,
		.renderPass = r->pass,
	};
	VK(vkCreateGraphicsPipelines(dev, VK_NULL_HANDLE, 1, &ci, NULL, &p));
	gos_vk_name(r->vk, VK_OBJECT_TYPE_PIPELINE, (uint64_t)p, "%s pipeline", name);
error:
	if (vm)
		vkDestroyShaderModule(dev, vm, NULL);
	if (fm)
		vkDestroyShaderModule(dev, fm, NULL);
	return p;
}

/* The render pass: `load` keeps the background copied into the image
 * (initial layout TRANSFER_DST_OPTIMAL), otherwise it clears. Both are
 * compatible (the same framebuffers serve both). */
static bool create_pass(struct gos_render *r, bool load, VkRenderPass *out)
{
	VkAttachmentDescription att = {
		.format = r->o.format,
		.samples = VK_SAMPLE_COUNT_1_BIT,
		.loadOp = load ? VK_ATTACHMENT_LOAD_OP_LOAD : VK_ATTACHMENT_LOAD_OP_CLEAR,
		.storeOp = VK_ATTACHMENT_STORE_OP_STORE,
		.stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE,
		.stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
		.initialLayout = load ? VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL : VK_IMAGE_LAYOUT_UNDEFINED,
		.finalLayout = r->o.final_layout,
	};
	VkAttachmentReference ref = {0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
	VkSubpassDescription sub = {
		.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS,
		.colorAttachmentCount = 1,
		.pColorAttachments = &ref,
	};
	VkSubpassDependency deps[2] = {
		{ /* earlier reads of the image (readback, presentation) and the
		     background copy before we read and write it */
			.srcSubpass = VK_SUBPASS_EXTERNAL,
			.dstSubpass = 0,
			.srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT |
			                VK_PIPELINE_STAGE_TRANSFER_BIT,
			.dstStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
			/* the same in both passes: dependencies are part of
			   render pass compatibility */
			.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
			.dstAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT |
			                 VK_ACCESS_COLOR_ATTACHMENT_READ_BIT,
		},
		{ /* our writes before the readback copy */
			.srcSubpass = 0,
			.dstSubpass = VK_SUBPASS_EXTERNAL,
			.srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
			.dstStageMask = VK_PIPELINE_STAGE_TRANSFER_BIT,
			.srcAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT,
			.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
		},
	};
	VkRenderPassCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO,
		.attachmentCount = 1,
		.pAttachments = &att,
		.subpassCount = 1,
		.pSubpasses = &sub,
		.dependencyCount = 2,
		.pDependencies = deps,
	};
	VK(vkCreateRenderPass(r->vk->device, &ci, NULL, out));
	return true;
error:
	return false;
}

/* The glyph atlas's descriptor set and the graphics pipelines' layout. */
static bool create_layout(struct gos_render *r)
{
	VkDevice dev = r->vk->device;
	VkDescriptorSetLayoutBinding b = {
		.binding = 0,
		.descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER,
		.descriptorCount = 1,
		.stageFlags = VK_SHADER_STAGE_FRAGMENT_BIT,
	};
	VkDescriptorSetLayoutCreateInfo dci = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
		.bindingCount = 1,
		.pBindings = &b,
	};
	VK(vkCreateDescriptorSetLayout(dev, &dci, NULL, &r->dsl));
	VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 1};
	VkDescriptorPoolCreateInfo pci = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
		.maxSets = 1,
		.poolSizeCount = 1,
		.pPoolSizes = &ps,
	};
	VK(vkCreateDescriptorPool(dev, &pci, NULL, &r->dpool));
	VkDescriptorSetAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
		.descriptorPool = r->dpool,
		.descriptorSetCount = 1,
		.pSetLayouts = &r->dsl,
	};
	VK(vkAllocateDescriptorSets(dev, &ai, &r->set));
	VkDescriptorImageInfo ii = {
		.sampler = gos_text_sampler(r->text),
		.imageView = gos_text_view(r->text),
		.imageLayout = VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL,
	};
	VkWriteDescriptorSet w = {
		.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
		.dstSet = r->set,
		.dstBinding = 0,
		.descriptorCount = 1,
		.descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER,
		.pImageInfo = &ii,
	};
	vkUpdateDescriptorSets(dev, 1, &w, 0, NULL);
	VkPushConstantRange range = {VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT, 0, PUSH_SIZE};
	VkPipelineLayoutCreateInfo lci = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
		.setLayoutCount = 1,
		.pSetLayouts = &r->dsl,
		.pushConstantRangeCount = 1,
		.pPushConstantRanges = &range,
	};
	VK(vkCreatePipelineLayout(dev, &lci, NULL, &r->layout));
	return true;
error:
	return false;
}

static bool make_compute(struct gos_render *r, const uint32_t *code, size_t size, uint32_t push_size,
                         const char *name, VkPipelineLayout *layout, VkPipeline *pipe)
{
	VkDevice dev = r->vk->device;
	VkShaderModule m = make_module(dev, code, size);
	if (!m)
		return false;
	VkPushConstantRange range = {VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size};
	VkPipelineLayoutCreateInfo lci = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
		.pushConstantRangeCount = 1,
		.pPushConstantRanges = &range,
	};
	VK(vkCreatePipelineLayout(dev, &lci, NULL, layout));
	VkComputePipelineCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
		.stage = {
			.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
			.stage = VK_SHADER_STAGE_COMPUTE_BIT,
			.module = m,
			.pName = "main",
		},
		.layout = *layout,
	};
	VK(vkCreateComputePipelines(dev, VK_NULL_HANDLE, 1, &ci, NULL, pipe));
	gos_vk_name(r->vk, VK_OBJECT_TYPE_PIPELINE, (uint64_t)*pipe, "%s", name);
	vkDestroyShaderModule(dev, m, NULL);
	return true;
error:
	vkDestroyShaderModule(dev, m, NULL);
	return false;
}

bool render_pipelines_init(struct gos_render *r)
{
	if (!create_pass(r, false, &r->pass) || !create_pass(r, true, &r->pass_load) ||
	    !create_layout(r))
		return false;
	r->grid = make_pipeline(r, fullscreen_vert, sizeof(fullscreen_vert), grid_frag,
	                        sizeof(grid_frag), false, "grid");
	r->tokens = make_pipeline(r, token_vert, sizeof(token_vert), token_frag,
	                          sizeof(token_frag), false, "tokens");
	r->overlay = make_pipeline(r, overlay_vert, sizeof(overlay_vert), overlay_frag,
	                           sizeof(overlay_frag), true, "overlay");
	return r->grid && r->tokens && r->overlay &&
	       make_compute(r, token_splat_comp, sizeof(token_splat_comp), sizeof(struct splat_push),
	                    "token_splat.comp", &r->splat_layout, &r->splat) &&
	       make_compute(r, map_background_comp, sizeof(map_background_comp),
	                    sizeof(struct grid_push), "map_background.comp", &r->bg_layout, &r->bg);
}

void render_pipelines_finish(struct gos_render *r)
{
	VkDevice dev = r->vk->device;
	if (r->grid)
		vkDestroyPipeline(dev, r->grid, NULL);
	if (r->tokens)
		vkDestroyPipeline(dev, r->tokens, NULL);
	if (r->overlay)
		vkDestroyPipeline(dev, r->overlay, NULL);
	if (r->splat)
		vkDestroyPipeline(dev, r->splat, NULL);
	if (r->splat_layout)
		vkDestroyPipelineLayout(dev, r->splat_layout, NULL);
	if (r->bg)
		vkDestroyPipeline(dev, r->bg, NULL);
	if (r->bg_layout)
		vkDestroyPipelineLayout(dev, r->bg_layout, NULL);
	if (r->layout)
		vkDestroyPipelineLayout(dev, r->layout, NULL);
	if (r->dpool)
		vkDestroyDescriptorPool(dev, r->dpool, NULL);
	if (r->dsl)
		vkDestroyDescriptorSetLayout(dev, r->dsl, NULL);
	if (r->pass)
		vkDestroyRenderPass(dev, r->pass, NULL);
	if (r->pass_load)
		vkDestroyRenderPass(dev, r->pass_load, NULL);
}
