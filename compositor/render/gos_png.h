/* gos_png: RGBA8 images to and from PNG files (libpng), and the image
 * comparison the image tests use. No Vulkan. Any thread. */
#ifndef GOS_PNG_H
#define GOS_PNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes w x h RGBA pixels (top row first) as an 8-bit RGB PNG. False with
 * one sentence in err on failure. */
bool gos_png_write(const char *path, const uint8_t *rgba, uint32_t w, uint32_t h,
                   char *err, size_t err_len);

/* Reads a PNG as RGBA (*rgba malloc'd, caller frees). */
bool gos_png_read(const char *path, uint8_t **rgba, uint32_t *w, uint32_t *h,
                  char *err, size_t err_len);

struct gos_png_diff {
	uint32_t max_delta;       /* largest per-channel difference, 0..255 */
	uint64_t differing;       /* pixels with some channel differing by > threshold */
	double differing_pct;     /* of all pixels */
};

/* Compares two same-sized RGBA images; `threshold` is the per-channel delta
 * a pixel may have and still count as equal. */
void gos_png_compare(const uint8_t *a, const uint8_t *b, uint32_t w, uint32_t h,
                     uint32_t threshold, struct gos_png_diff *out);

#endif
