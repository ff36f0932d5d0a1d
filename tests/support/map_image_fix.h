/* Makes a damaged checkpoint image's checksums hold again, so that tests
 * and fuzz_map_image reach the checks behind them (counts, lengths,
 * indexes): walks the blocks of the format in compositor/map/map_image.c,
 * rewrites each whole block's crc32c and the end block's offset, count and
 * crc chain. Stops at the first block that runs past n. Header-only; any
 * thread. */
#ifndef GOS_MAP_IMAGE_FIX_H
#define GOS_MAP_IMAGE_FIX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gos_crc32c.h"

static inline void map_image_fix_crcs(unsigned char *b, size_t n)
{
	size_t off = 16;   /* the prefix: magic, version, flags */
	uint32_t blocks = 0, chain = 0;
	while (n >= 20 && off <= n - 20) {
		uint32_t type;
		uint64_t len;
		memcpy(&type, b + off, 4);
		memcpy(&len, b + off + 8, 8);
		if (len > n - 20 - off)
			return;
		if (type == 4 && len == 16) {   /* END: offset, blocks before, chain */
			uint64_t at = off;
			memcpy(b + off + 16, &at, 8);
			memcpy(b + off + 24, &blocks, 4);
			memcpy(b + off + 28, &chain, 4);
		}
		uint32_t crc = gos_crc32c(0, b + off, 16 + (size_t)len);
		memcpy(b + off + 16 + len, &crc, 4);
		chain = gos_crc32c(chain, &crc, 4);
		blocks++;
		off += 20 + (size_t)len;
	}
}

#endif
