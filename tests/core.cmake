# Map state, ingest through a real Unix socket, and the programs end to end.
# test_map and test_ingest also run under ASan/UBSan (SAN).
gos_add_test(test_map SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_map.c
  LIBS gos_core gos_net
  LABELS unit)
gos_add_test(test_ingest SAN TIMEOUT 300
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_ingest.c
  LIBS gos_core gos_net
  LABELS integration)
add_test(NAME test_programs
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/test_programs.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed>)
set_tests_properties(test_programs PROPERTIES TIMEOUT 120 LABELS integration)
gos_add_test(test_demo SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_demo.c
  LIBS gos_core gos_net
  LABELS unit)
