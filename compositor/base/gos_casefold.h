/* Unicode simple case folding (CaseFolding.txt statuses C and S) of UTF-8
 * text, for case-insensitive search: two strings match without case when
 * their folds are equal bytes. One code point folds to one code point (the
 * byte length may change: U+1E9E to U+00DF is 3 to 2 bytes); no Turkic
 * mappings (I folds to i; U+0130 and U+0131 stay), no normalization (a
 * combining mark is a code point like any other). The table is generated
 * by tools/gen_casefold.py (GOS_CASEFOLD_UNICODE says from which Unicode).
 * Pure functions; any thread. */
#ifndef GOS_CASEFOLD_H
#define GOS_CASEFOLD_H

#include <stddef.h>
#include <stdint.h>

#include "gos_buf.h"

/* The simple case fold of code point cp (cp itself when it has none). */
uint32_t gos_casefold_cp(uint32_t cp);

/* Appends the fold of s[0..len) to out; returns the bytes appended (at
 * most len * 3 / 2: a 2-byte character may fold to a 3-byte one, never
 * more). Bytes that are not valid UTF-8 are copied as they are. */
size_t gos_casefold(const char *s, size_t len, struct gos_buf *out);

#endif
