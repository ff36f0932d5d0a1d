/* gos_text: the glyph atlas. Rasterizes glyphs with FreeType on demand
 * (DejaVu Sans Mono, then DejaVu Sans, then Noto Sans CJK for what the first
 * two lack) into fixed cells of one R8 Vulkan image with a mip chain (box-
 * filtered on the CPU, so text stays smooth when it is small), and records
 * the uploads of new cells into the frame's command buffer.
 *
 * A cell is GOS_TEXT_CELL_W x GOS_TEXT_CELL_H texels and maps onto one
 * monospace character box of the map's flow layout (GOS_FLOW_CHAR_W x
 * GOS_FLOW_LINE_H world units); glyphs are rasterized with the matching
 * anisotropic pixel size so they look undistorted on the map.
 *
 * Threads: render thread only (it owns the gos_vk queue). */
#ifndef GOS_TEXT_H
#define GOS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vulkan/vulkan.h>

#include "gos_vk.h"

#define GOS_TEXT_CELL_W   32
#define GOS_TEXT_CELL_H   64
#define GOS_TEXT_LEVELS   4          /* mip levels: 32x64 .. 4x8 */
#define GOS_TEXT_ATLAS_W  4096
#define GOS_TEXT_ATLAS_H  4096
#define GOS_TEXT_COLS     (GOS_TEXT_ATLAS_W / GOS_TEXT_CELL_W)
#define GOS_TEXT_CELLS    ((GOS_TEXT_ATLAS_W / GOS_TEXT_CELL_W) * (GOS_TEXT_ATLAS_H / GOS_TEXT_CELL_H))
#define GOS_TEXT_CELL_BLANK  0u      /* an empty cell (space, control) */
#define GOS_TEXT_CELL_MISSING 1u     /* a box: no font has the glyph, or the atlas is full */

/* Zero means default. Font paths: NULL means the Debian location. */
struct gos_text_opts {
	const char *mono_font;      /* /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf */
	const char *sans_font;      /* /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf */
	const char *cjk_font;       /* /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc */
	uint32_t frames_in_flight;  /* staging buffers in rotation; 0: 2 */
};

struct gos_text;

/* Loads the fonts (the mono font is required, the others optional: a missing
 * one is logged once), creates the atlas image, view and sampler on vk.
 * NULL on failure, with one sentence in err. */
struct gos_text *gos_text_create(struct gos_vk *vk, const struct gos_text_opts *opts,
                                 char *err, size_t err_len);
void gos_text_destroy(struct gos_text *t);   /* accepts NULL; GPU must be idle */

/* The atlas cell for a Unicode code point, rasterizing it the first time (the
 * upload is recorded by the next gos_text_record()). */
uint32_t gos_text_glyph(struct gos_text *t, uint32_t codepoint);

/* Decodes the next code point of NUL-terminated UTF-8 at *s and advances *s;
 * U+FFFD for a malformed sequence; 0 at the end. */
uint32_t gos_text_utf8_next(const char **s);

/* Records the uploads of the cells rasterized since the last call (outside a
 * render pass), leaving the atlas in SHADER_READ_ONLY_OPTIMAL. The command
 * buffer recorded frames_in_flight calls ago must have completed. */
bool gos_text_record(struct gos_text *t, VkCommandBuffer cmd);

VkImageView gos_text_view(const struct gos_text *t);
VkSampler gos_text_sampler(const struct gos_text *t);

/* Cells in use (including the two fixed ones). */
uint32_t gos_text_cells_used(const struct gos_text *t);

#endif
