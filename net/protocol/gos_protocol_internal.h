/* Internals of the protocol module shared with its tests: the two parse
 * paths behind gos_protocol_parse(), so tests/test_protocol_diff.c can hold
 * them to each other. Same threading and ownership as gos_protocol_parse(). */
#ifndef GOS_PROTOCOL_INTERNAL_H
#define GOS_PROTOCOL_INTERNAL_H

#include "gos_protocol.h"

/* The reference: the cJSON path alone, exactly as gos_protocol_parse()
 * answers every line it does not take on its fast path. */
bool gos_protocol_parse_reference(const char *line, size_t len, struct gos_event *ev,
                                  struct gos_arena *arena, struct gos_parse_error *err);

/* The fast path alone: true when it took the line (then *ev is what
 * gos_protocol_parse() returns for it); false ("not mine") leaves *ev zeroed
 * and says nothing about whether the line is valid. */
bool gos_protocol_parse_fast(const char *line, size_t len, struct gos_event *ev,
                             struct gos_arena *arena);

#endif
