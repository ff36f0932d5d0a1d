/* CRC-32C (Castagnoli), the checksum of journal records and checkpoint
 * blocks: the SSE4.2 instruction where the CPU has it, a table otherwise.
 * Any thread. */
#ifndef GOS_CRC32C_H
#define GOS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc over n bytes; start with 0. gos_crc32c(0, "123456789", 9)
 * is 0xe3069283. */
uint32_t gos_crc32c(uint32_t crc, const void *data, size_t n);

#endif
