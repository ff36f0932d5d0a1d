# Protocol unit tests (net/protocol/), also built with ASan/UBSan (SAN).
# The parser: every accepted shape, every reject reason, UTF-8 edge cases.
gos_add_test(test_protocol_parse SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_protocol_parse.c
  LIBS gos_net
  LABELS unit)
# The serializers: round trips, the canonical form, the reply lines.
gos_add_test(test_protocol_write SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_protocol_write.c
  LIBS gos_net
  LABELS unit)
# The parser's fast path held to its cJSON path (the reference) on many
# generated valid and near-valid lines (net/protocol/gos_protocol_internal.h).
gos_add_test(test_protocol_diff SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_protocol_diff.c
  LIBS gos_net
  LABELS unit)
# Every JSON reader in gos parses NUL-terminated copies (net/gos_json.h):
# tests/json_guard.c aborts on any cJSON_ParseWithLength* call, which cJSON
# before 1.7.18 over-reads by one byte. test_ws links the guard too.
set(GOS_JSON_GUARD_LINK
  -Wl,--wrap=cJSON_ParseWithLength -Wl,--wrap=cJSON_ParseWithLengthOpts)
gos_add_test(test_json SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_json.c ${CMAKE_SOURCE_DIR}/tests/support/json_guard.c
  LIBS gos_net
  LABELS unit)
foreach(t test_json test_json_asan)
  if(TARGET ${t})
    target_link_options(${t} PRIVATE ${GOS_JSON_GUARD_LINK})
  endif()
endforeach()
# Reply lines (net/protocol/gos_reply.c): every reply serializer's output
# read back, malformed lines refused, gos_client's sync taken from the
# parser. Linked with the JSON guard too.
gos_add_test(test_reply SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_reply.c ${CMAKE_SOURCE_DIR}/tests/support/json_guard.c
  LIBS gos_net
  LABELS unit)
foreach(t test_reply test_reply_asan)
  if(TARGET ${t})
    target_link_options(${t} PRIVATE ${GOS_JSON_GUARD_LINK})
  endif()
endforeach()
