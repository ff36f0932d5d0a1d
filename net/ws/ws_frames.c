/* A WebSocket frame-header tracker (see ws_frames.h). */
#include "ws_frames.h"

void ws_frames_feed(struct ws_frames *f, const uint8_t *p, size_t n)
{
	while (n) {
		if (f->left) {
			size_t k = f->left < n ? (size_t)f->left : n;
			f->left -= k;
			p += k;
			n -= k;
			continue;
		}
		f->hdr[f->have++] = *p++;
		n--;
		if (f->have == 2) {
			uint8_t len7 = f->hdr[1] & 0x7f;
			bool masked = f->hdr[1] & 0x80;
			f->unmasked |= !masked;
			f->need = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0));
		}
		if (f->have < 2 || f->have < f->need)
			continue;
		uint64_t len = f->hdr[1] & 0x7f;
		if (len == 126) {
			len = (uint64_t)f->hdr[2] << 8 | f->hdr[3];
		} else if (len == 127) {
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | f->hdr[2 + i];
		}
		f->left = len;
		f->have = f->need = 0;
		f->frames++;
	}
}
