# Protocol unit tests (net/gos_protocol.c): every accepted shape, every reject
# reason, UTF-8 edge cases, round trips. Also built with ASan/UBSan (SAN).
gos_add_test(test_protocol SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_protocol.c
  LIBS gos_net
  LABELS unit)
