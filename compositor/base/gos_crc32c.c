/* CRC-32C: hardware when the CPU has SSE4.2, else a byte table. */
#include <stdbool.h>
#include <string.h>

#include "gos_crc32c.h"

#define POLY 0x82f63b78u   /* reversed Castagnoli */

static uint32_t table[256];

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[i] = c;
	}
}

static uint32_t crc_table(uint32_t crc, const unsigned char *p, size_t n)
{
	while (n--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n)
{
	uint64_t c = crc;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (n--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}
#endif

uint32_t gos_crc32c(uint32_t crc, const void *data, size_t n)
{
	static _Atomic int mode;   /* 0: unknown, 1: table, 2: hardware */
	int m = mode;
	if (!m) {
		table_init();
#if defined(__x86_64__)
		__builtin_cpu_init();
		m = __builtin_cpu_supports("sse4.2") ? 2 : 1;
#else
		m = 1;
#endif
		mode = m;
	}
	crc = ~crc;
#if defined(__x86_64__)
	if (m == 2)
		return ~crc_hw(crc, data, n);
#endif
	return ~crc_table(crc, data, n);
}
