/* libFuzzer: the WebSocket frame-header tracker (net/ws/ws_frames.c) that
 * watches clients' bytes for unmasked frames. Input: one byte that seeds
 * the split points, then a client byte stream. Fed whole and fed in random
 * pieces, the tracker ends in the same state, and that state equals a
 * straightforward reference parse: the same frames counted, the same
 * unmasked verdict, the same bytes left of the last frame. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frames.h"

/* The reference: frame by frame over the whole buffer. */
static void reference(const uint8_t *p, size_t n, uint64_t *frames, int *unmasked, uint64_t *left,
                      size_t *partial)
{
	size_t at = 0;
	*frames = 0;
	*unmasked = 0;
	*left = 0;
	*partial = 0;
	while (at < n) {
		if (n - at < 2) {
			*partial = n - at;
			return;
		}
		uint8_t b1 = p[at + 1];
		int masked = b1 & 0x80;
		*unmasked |= !masked;
		size_t ext = (b1 & 0x7f) == 126 ? 2 : (b1 & 0x7f) == 127 ? 8 : 0;
		size_t hl = 2 + ext + (masked ? 4 : 0);
		if (n - at < hl) {
			*partial = n - at;
			return;
		}
		uint64_t len = b1 & 0x7f;
		if (ext == 2)
			len = (uint64_t)p[at + 2] << 8 | p[at + 3];
		else if (ext == 8) {
			len = 0;
			for (size_t i = 0; i < 8; i++)
				len = len << 8 | p[at + 2 + i];
		}
		at += hl;
		(*frames)++;
		if (len > n - at) {
			*left = len - (n - at);
			return;
		}
		at += (size_t)len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned seed = data[0];
	data++;
	size--;
	struct ws_frames whole = {0}, split = {0};
	ws_frames_feed(&whole, data, size);
	srand(seed);
	for (size_t at = 0; at < size;) {
		size_t k = 1 + (size_t)rand() % 17;
		if (k > size - at)
			k = size - at;
		ws_frames_feed(&split, data + at, k);
		at += k;
	}
	uint64_t frames, left;
	int unmasked;
	size_t partial;
	reference(data, size, &frames, &unmasked, &left, &partial);
	if (whole.frames != split.frames || whole.unmasked != split.unmasked ||
	    whole.left != split.left || whole.have != split.have) {
		fprintf(stderr, "fed whole and in pieces, the tracker differs\n");
		abort();
	}
	if (whole.frames != frames || whole.left != left || whole.have != partial ||
	    (whole.unmasked != 0) != (unmasked != 0)) {
		fprintf(stderr, "tracker: %llu frames, unmasked %d, left %llu, have %u; reference: "
		        "%llu, %d, %llu, %zu\n", (unsigned long long)whole.frames, whole.unmasked,
		        (unsigned long long)whole.left, whole.have, (unsigned long long)frames,
		        unmasked, (unsigned long long)left, partial);
		abort();
	}
	return 0;
}
