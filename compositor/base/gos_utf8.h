/* UTF-8 as gos checks it everywhere (Unicode 15, table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF). Pure functions; any thread. */
#ifndef GOS_UTF8_H
#define GOS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the longest valid prefix of s[0..len): the offset of the first
 * byte that starts an invalid or truncated sequence, len when all is valid. */
size_t gos_utf8_valid_prefix(const char *s, size_t len);

/* True when s[0..len) is valid UTF-8. */
bool gos_utf8_valid(const char *s, size_t len);

/* Length of the longest prefix of s[0..len) (valid UTF-8) that is at most
 * max bytes and ends on a character boundary; 0 when the first character is
 * longer than max. */
size_t gos_utf8_cut(const char *s, size_t len, size_t max);

/* Characters (not bytes) in the NUL-terminated valid UTF-8 string s. */
uint32_t gos_utf8_chars(const char *s);

#endif
