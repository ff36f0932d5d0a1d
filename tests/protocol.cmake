# Protocol unit tests (net/gos_protocol.c): every accepted shape, every reject
# reason, UTF-8 edge cases, round trips. Also built with ASan/UBSan (SAN).
gos_add_test(test_protocol SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_protocol.c
  LIBS gos_net
  LABELS unit)
# The parser's fast path held to its cJSON path (the reference) on many
# generated valid and near-valid lines (net/gos_protocol_internal.h).
gos_add_test(test_protocol_diff SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_protocol_diff.c
  LIBS gos_net
  LABELS unit)
