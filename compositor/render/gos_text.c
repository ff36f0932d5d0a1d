#include "gos_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ft2build.h>
#include FT_FREETYPE_H

#include "gos_map.h"   /* GOS_FLOW_CHAR_W, GOS_FLOW_LINE_H */

#define CELL_BYTES (32 * 64 + 16 * 32 + 8 * 16 + 4 * 8)
#define HASH_CAP   (1u << 15)       /* > 2 x GOS_TEXT_CELLS: short probes */
#define NO_KEY     0xFFFFFFFFu
/* The em size in world units: DejaVu Sans Mono's advance (0.602 em) then
 * equals GOS_FLOW_CHAR_W. */
#define EM_WORLD   15.0

_Static_assert(GOS_TEXT_LEVELS == 4, "CELL_BYTES assumes 4 levels");

struct gos_text {
	struct gos_vk *vk;
	FT_Library ft;
	FT_Face faces[3];               /* mono, sans, cjk; NULL if missing */
	int em_x, em_y;                 /* pixel sizes at scale 1 */
	int baseline;                   /* texels from the cell's top */

	VkImage image;
	VkDeviceMemory memory;
	VkImageView view;
	VkSampler sampler;

	uint32_t keys[HASH_CAP];        /* code point, NO_KEY when free */
	uint32_t vals[HASH_CAP];
	uint32_t used;                  /* cells in use */
	bool full_logged;

	uint8_t *pending;               /* CELL_BYTES per pending cell */
	uint32_t *pending_cell;
	uint32_t n_pending, cap_pending;

	struct gos_vk_buffer *staging[4];
	uint32_t n_staging, cur;
};

uint32_t gos_text_utf8_next(const char **sp)
{
	const unsigned char *s = (const unsigned char *)*sp;
	uint32_t c = s[0];
	if (!c)
		return 0;
	int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 :
	        (c & 0xF8) == 0xF0 ? 3 : -1;
	if (n < 0) {
		*sp += 1;
		return 0xFFFD;
	}
	uint32_t cp = n == 0 ? c : c & (0x3Fu >> n);
	for (int i = 1; i <= n; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			*sp += i;
			return 0xFFFD;
		}
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	*sp += n + 1;
	return cp;
}

static uint32_t *pending_slot(struct gos_text *t, uint32_t cell, uint8_t **pix)
{
	if (t->n_pending == t->cap_pending) {
		uint32_t cap = t->cap_pending ? t->cap_pending * 2 : 64;
		uint8_t *p = realloc(t->pending, (size_t)cap * CELL_BYTES);
		if (!p)
			return NULL;
		t->pending = p;
		uint32_t *c = realloc(t->pending_cell, cap * sizeof(*c));
		if (!c)
			return NULL;
		t->pending_cell = c;
		t->cap_pending = cap;
	}
	*pix = t->pending + (size_t)t->n_pending * CELL_BYTES;
	memset(*pix, 0, CELL_BYTES);
	t->pending_cell[t->n_pending] = cell;
	return &t->pending_cell[t->n_pending++];
}

/* Box-filters level 0 (at pix) into the three smaller levels after it. */
static void make_mips(uint8_t *pix)
{
	int w = GOS_TEXT_CELL_W, h = GOS_TEXT_CELL_H;
	uint8_t *src = pix;
	for (int l = 1; l < GOS_TEXT_LEVELS; l++) {
		uint8_t *dst = src + w * h;
		int dw = w / 2, dh = h / 2;
		for (int y = 0; y < dh; y++)
			for (int x = 0; x < dw; x++) {
				int s = src[(2 * y) * w + 2 * x] + src[(2 * y) * w + 2 * x + 1] +
				        src[(2 * y + 1) * w + 2 * x] + src[(2 * y + 1) * w + 2 * x + 1];
				dst[y * dw + x] = (uint8_t)((s + 2) / 4);
			}
		src = dst;
		w = dw;
		h = dh;
	}
}

static void draw_missing_box(uint8_t *pix)
{
	for (int y = 14; y < 50; y++)
		for (int x = 6; x < 26; x++)
			if (y < 17 || y >= 47 || x < 9 || x >= 23)
				pix[y * GOS_TEXT_CELL_W + x] = 200;
}

/* Rasterizes cp from the first face that has it into pix (level 0); false if
 * no face has it. */
static bool rasterize(struct gos_text *t, uint32_t cp, uint8_t *pix)
{
	for (int f = 0; f < 3; f++) {
		FT_Face face = t->faces[f];
		if (!face || !FT_Get_Char_Index(face, cp))
			continue;
		double scale = 1.0;
		for (int attempt = 0; attempt < 2; attempt++) {
			FT_Set_Pixel_Sizes(face, (FT_UInt)lround(t->em_x * scale),
			                   (FT_UInt)lround(t->em_y * scale));
			if (FT_Load_Char(face, cp, FT_LOAD_RENDER))
				return false;
			FT_GlyphSlot g = face->glyph;
			double adv = (double)g->advance.x / 64.0;
			/* Wide glyphs (CJK, some symbols) are shrunk to fit the cell. */
			if (attempt == 0 && adv > GOS_TEXT_CELL_W) {
				scale = (GOS_TEXT_CELL_W - 1) / adv;
				continue;
			}
			FT_Bitmap *bm = &g->bitmap;
			int x0 = (int)lround((GOS_TEXT_CELL_W - adv) / 2) + g->bitmap_left;
			int y0 = t->baseline - (int)lround((1.0 - scale) * t->em_y * 0.35) - g->bitmap_top;
			for (unsigned y = 0; y < bm->rows; y++) {
				int ty = y0 + (int)y;
				if (ty < 0 || ty >= GOS_TEXT_CELL_H)
					continue;
				for (unsigned x = 0; x < bm->width; x++) {
					int tx = x0 + (int)x;
					if (tx < 0 || tx >= GOS_TEXT_CELL_W)
						continue;
					pix[ty * GOS_TEXT_CELL_W + tx] = bm->buffer[y * (unsigned)bm->pitch + x];
				}
			}
			return true;
		}
	}
	return false;
}

uint32_t gos_text_glyph(struct gos_text *t, uint32_t cp)
{
	if (cp <= 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0))
		return GOS_TEXT_CELL_BLANK;
	uint32_t h = (cp * 2654435761u) & (HASH_CAP - 1);
	while (t->keys[h] != NO_KEY) {
		if (t->keys[h] == cp)
			return t->vals[h];
		h = (h + 1) & (HASH_CAP - 1);
	}
	if (t->used >= GOS_TEXT_CELLS) {
		if (!t->full_logged)
			gos_vk_log("glyph atlas full (%u cells): further new glyphs show as boxes",
			           GOS_TEXT_CELLS);
		t->full_logged = true;
		return GOS_TEXT_CELL_MISSING;
	}
	uint8_t *pix;
	uint32_t cell = t->used;
	if (!pending_slot(t, cell, &pix))
		return GOS_TEXT_CELL_MISSING;
	if (!rasterize(t, cp, pix)) {
		t->n_pending--;
		cell = GOS_TEXT_CELL_MISSING;
	} else {
		make_mips(pix);
		t->used++;
	}
	t->keys[h] = cp;
	t->vals[h] = cell;
	return cell;
}

static FT_Face load_face(struct gos_text *t, const char *path, bool required,
                         char *err, size_t err_len)
{
	FT_Face face = NULL;
	if (FT_New_Face(t->ft, path, 0, &face)) {
		if (required)
			snprintf(err, err_len, "cannot load the font %s (install fonts-dejavu-core)", path);
		else
			gos_vk_log("fallback font %s not found: its glyphs will show as boxes", path);
		return NULL;
	}
	return face;
}

static void image_barrier(VkCommandBuffer cmd, VkImage image, VkImageLayout from,
                          VkImageLayout to, VkAccessFlags src_access, VkAccessFlags dst_access,
                          VkPipelineStageFlags src, VkPipelineStageFlags dst)
{
	VkImageMemoryBarrier b = {
		.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER,
		.srcAccessMask = src_access,
		.dstAccessMask = dst_access,
		.oldLayout = from,
		.newLayout = to,
		.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
		.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
		.image = image,
		.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, GOS_TEXT_LEVELS, 0, 1},
	};
	vkCmdPipelineBarrier(cmd, src, dst, 0, 0, NULL, 0, NULL, 1, &b);
}

struct gos_text *gos_text_create(struct gos_vk *vk, const struct gos_text_opts *opts,
                                 char *err, size_t err_len)
{
	struct gos_text_opts o = opts ? *opts : (struct gos_text_opts){0};
	struct gos_text *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	t->vk = vk;
	memset(t->keys, 0xFF, sizeof(t->keys));
	t->n_staging = o.frames_in_flight ? o.frames_in_flight : 2;
	if (t->n_staging > 4)
		t->n_staging = 4;
	if (FT_Init_FreeType(&t->ft)) {
		snprintf(err, err_len, "cannot initialize FreeType");
		goto error;
	}
	t->faces[0] = load_face(t, o.mono_font ? o.mono_font :
	                        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", true, err, err_len);
	if (!t->faces[0])
		goto error;
	t->faces[1] = load_face(t, o.sans_font ? o.sans_font :
	                        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", false, err, err_len);
	t->faces[2] = load_face(t, o.cjk_font ? o.cjk_font :
	                        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", false, err, err_len);
	/* Texels per world unit differ on the two axes (a 32x64 cell shows a
	 * 9x22 box), so the em is rasterized anisotropically. */
	t->em_x = (int)lround(EM_WORLD * GOS_TEXT_CELL_W / GOS_FLOW_CHAR_W);
	t->em_y = (int)lround(EM_WORLD * GOS_TEXT_CELL_H / GOS_FLOW_LINE_H);
	FT_Set_Pixel_Sizes(t->faces[0], (FT_UInt)t->em_x, (FT_UInt)t->em_y);
	int asc = (int)(t->faces[0]->size->metrics.ascender >> 6);
	int desc = (int)(-t->faces[0]->size->metrics.descender >> 6);
	t->baseline = (GOS_TEXT_CELL_H - (asc + desc)) / 2 + asc;

	VkImageCreateInfo ici = {
		.sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO,
		.imageType = VK_IMAGE_TYPE_2D,
		.format = VK_FORMAT_R8_UNORM,
		.extent = {GOS_TEXT_ATLAS_W, GOS_TEXT_ATLAS_H, 1},
		.mipLevels = GOS_TEXT_LEVELS,
		.arrayLayers = 1,
		.samples = VK_SAMPLE_COUNT_1_BIT,
		.tiling = VK_IMAGE_TILING_OPTIMAL,
		.usage = VK_IMAGE_USAGE_SAMPLED_BIT | VK_IMAGE_USAGE_TRANSFER_DST_BIT,
		.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
	};
	VK(vkCreateImage(vk->device, &ici, NULL, &t->image));
	gos_vk_name(vk, VK_OBJECT_TYPE_IMAGE, (uint64_t)t->image, "glyph atlas");
	VkMemoryRequirements req;
	vkGetImageMemoryRequirements(vk->device, t->image, &req);
	int mt = gos_vk_memory_type(vk, req.memoryTypeBits, 0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
	if (mt < 0)
		goto error;
	VkMemoryAllocateInfo mai = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
		.allocationSize = req.size,
		.memoryTypeIndex = (uint32_t)mt,
	};
	VK(vkAllocateMemory(vk->device, &mai, NULL, &t->memory));
	VK(vkBindImageMemory(vk->device, t->image, t->memory, 0));
	VkImageViewCreateInfo vci = {
		.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO,
		.image = t->image,
		.viewType = VK_IMAGE_VIEW_TYPE_2D,
		.format = VK_FORMAT_R8_UNORM,
		.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, GOS_TEXT_LEVELS, 0, 1},
	};
	VK(vkCreateImageView(vk->device, &vci, NULL, &t->view));
	VkSamplerCreateInfo sci = {
		.sType = VK_STRUCTURE_TYPE_SAMPLER_CREATE_INFO,
		.magFilter = VK_FILTER_LINEAR,
		.minFilter = VK_FILTER_LINEAR,
		.mipmapMode = VK_SAMPLER_MIPMAP_MODE_LINEAR,
		.addressModeU = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE,
		.addressModeV = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE,
		.addressModeW = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE,
		.maxLod = GOS_TEXT_LEVELS - 1,
	};
	VK(vkCreateSampler(vk->device, &sci, NULL, &t->sampler));

	/* Clear every level once, so unused cells sample as empty. */
	VkCommandBuffer cmd = gos_vk_oneshot_begin(vk);
	if (!cmd)
		goto error;
	image_barrier(cmd, t->image, VK_IMAGE_LAYOUT_UNDEFINED, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
	              0, VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT,
	              VK_PIPELINE_STAGE_TRANSFER_BIT);
	VkClearColorValue zero = {{0}};
	VkImageSubresourceRange all = {VK_IMAGE_ASPECT_COLOR_BIT, 0, GOS_TEXT_LEVELS, 0, 1};
	vkCmdClearColorImage(cmd, t->image, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, &zero, 1, &all);
	image_barrier(cmd, t->image, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
	              VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL, VK_ACCESS_TRANSFER_WRITE_BIT,
	              VK_ACCESS_SHADER_READ_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
	              VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT);
	if (!gos_vk_oneshot_end(vk, cmd))
		goto error;

	/* Cell 0 stays blank; cell 1 is the missing-glyph box. */
	uint8_t *pix;
	t->used = 2;
	if (!pending_slot(t, GOS_TEXT_CELL_MISSING, &pix)) {
		snprintf(err, err_len, "out of memory");
		goto error;
	}
	draw_missing_box(pix);
	make_mips(pix);
	return t;

error:
	if (!err[0])
		snprintf(err, err_len, "cannot create the glyph atlas (see the log above)");
	gos_text_destroy(t);
	return NULL;
}

void gos_text_destroy(struct gos_text *t)
{
	if (!t)
		return;
	VkDevice dev = t->vk->device;
	for (uint32_t i = 0; i < 4; i++)
		gos_vk_buffer_destroy(t->vk, t->staging[i]);
	if (t->sampler)
		vkDestroySampler(dev, t->sampler, NULL);
	if (t->view)
		vkDestroyImageView(dev, t->view, NULL);
	if (t->image)
		vkDestroyImage(dev, t->image, NULL);
	if (t->memory)
		vkFreeMemory(dev, t->memory, NULL);
	for (int f = 0; f < 3; f++)
		if (t->faces[f])
			FT_Done_Face(t->faces[f]);
	if (t->ft)
		FT_Done_FreeType(t->ft);
	free(t->pending);
	free(t->pending_cell);
	free(t);
}

bool gos_text_record(struct gos_text *t, VkCommandBuffer cmd)
{
	if (!t->n_pending)
		return true;
	struct gos_vk *vk = t->vk;
	size_t bytes = (size_t)t->n_pending * CELL_BYTES;
	struct gos_vk_buffer **st = &t->staging[t->cur];
	if (!*st || (*st)->size < bytes) {
		gos_vk_buffer_destroy(vk, *st);
		size_t sz = 64 * CELL_BYTES;
		while (sz < bytes)
			sz *= 2;
		*st = gos_vk_buffer_create(vk, sz, VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
		                           GOS_VK_MEM_UPLOAD, "glyph staging");
		if (!*st)
			return false;
	}
	memcpy((*st)->mapped, t->pending, bytes);
	if (!gos_vk_buffer_flush(vk, *st, 0, bytes))
		return false;
	VkBufferImageCopy *regions = calloc((size_t)t->n_pending * GOS_TEXT_LEVELS, sizeof(*regions));
	if (!regions)
		return false;
	uint32_t n = 0;
	for (uint32_t i = 0; i < t->n_pending; i++) {
		uint32_t cell = t->pending_cell[i];
		uint32_t cx = (cell % GOS_TEXT_COLS) * GOS_TEXT_CELL_W;
		uint32_t cy = (cell / GOS_TEXT_COLS) * GOS_TEXT_CELL_H;
		VkDeviceSize off = (VkDeviceSize)i * CELL_BYTES;
		for (uint32_t l = 0; l < GOS_TEXT_LEVELS; l++) {
			uint32_t w = GOS_TEXT_CELL_W >> l, h = GOS_TEXT_CELL_H >> l;
			regions[n++] = (VkBufferImageCopy){
				.bufferOffset = off,
				.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, l, 0, 1},
				.imageOffset = {(int32_t)(cx >> l), (int32_t)(cy >> l), 0},
				.imageExtent = {w, h, 1},
			};
			off += (VkDeviceSize)w * h;
		}
	}
	image_barrier(cmd, t->image, VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL,
	              VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, VK_ACCESS_SHADER_READ_BIT,
	              VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT,
	              VK_PIPELINE_STAGE_TRANSFER_BIT);
	vkCmdCopyBufferToImage(cmd, (*st)->buffer, t->image, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
	                       n, regions);
	image_barrier(cmd, t->image, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
	              VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL, VK_ACCESS_TRANSFER_WRITE_BIT,
	              VK_ACCESS_SHADER_READ_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
	              VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT);
	free(regions);
	t->n_pending = 0;
	t->cur = (t->cur + 1) % t->n_staging;
	return true;
}

VkImageView gos_text_view(const struct gos_text *t) { return t->view; }
VkSampler gos_text_sampler(const struct gos_text *t) { return t->sampler; }
uint32_t gos_text_cells_used(const struct gos_text *t) { return t->used; }
