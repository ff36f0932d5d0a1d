#include "gos_png.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool gos_png_write(const char *path, const uint8_t *rgba, uint32_t w, uint32_t h,
                   char *err, size_t err_len)
{
	png_image img;
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	img.width = w;
	img.height = h;
	img.format = PNG_FORMAT_RGBA;
	/* Opaque RGBA in; written as RGB: drop alpha via a temporary copy. */
	uint8_t *rgb = malloc((size_t)w * h * 3);
	if (!rgb) {
		snprintf(err, err_len, "out of memory for a %ux%u image", w, h);
		return false;
	}
	for (size_t i = 0; i < (size_t)w * h; i++)
		memcpy(&rgb[3 * i], &rgba[4 * i], 3);
	img.format = PNG_FORMAT_RGB;
	FILE *f = fopen(path, "wb");
	if (!f) {
		snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
		free(rgb);
		return false;
	}
	bool ok = png_image_write_to_stdio(&img, f, 0, rgb, 0, NULL);
	if (fclose(f) != 0)
		ok = false;
	free(rgb);
	if (!ok) {
		snprintf(err, err_len, "cannot write %s: %s", path,
		         img.message[0] ? img.message : "write error");
		png_image_free(&img);
		remove(path);
		return false;
	}
	return true;
}

bool gos_png_read(const char *path, uint8_t **rgba, uint32_t *w, uint32_t *h,
                  char *err, size_t err_len)
{
	png_image img;
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_file(&img, path)) {
		snprintf(err, err_len, "cannot read %s: %s", path, img.message);
		return false;
	}
	img.format = PNG_FORMAT_RGBA;
	uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
	if (!buf) {
		png_image_free(&img);
		snprintf(err, err_len, "out of memory reading %s", path);
		return false;
	}
	if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) {
		snprintf(err, err_len, "cannot decode %s: %s", path, img.message);
		free(buf);
		return false;
	}
	*rgba = buf;
	*w = img.width;
	*h = img.height;
	return true;
}

void gos_png_compare(const uint8_t *a, const uint8_t *b, uint32_t w, uint32_t h,
                     uint32_t threshold, struct gos_png_diff *out)
{
	*out = (struct gos_png_diff){0};
	size_t n = (size_t)w * h;
	for (size_t i = 0; i < n; i++) {
		uint32_t m = 0;
		for (int c = 0; c < 3; c++) {
			int d = (int)a[4 * i + c] - (int)b[4 * i + c];
			uint32_t ad = (uint32_t)(d < 0 ? -d : d);
			if (ad > m)
				m = ad;
		}
		if (m > out->max_delta)
			out->max_delta = m;
		if (m > threshold)
			out->differing++;
	}
	out->differing_pct = n ? 100.0 * (double)out->differing / (double)n : 0;
}
