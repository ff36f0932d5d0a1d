# Map state, ingest through a real Unix socket, and the programs end to end.
# test_map, test_frame and the ingest tests also run under ASan/UBSan (SAN);
# test_map and the ingest tests (threads) under ThreadSanitizer too (TSAN).
gos_add_test(test_map SAN TSAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_map.c
  LIBS gos_map
  LABELS unit)
# The map's checkpoint images (compositor/map/map_image.c): round trips,
# gos_map_fork, damaged and cut files, and size/speed for 1M tokens.
gos_add_test(test_map_image SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_map_image.c
  LIBS gos_map
  LABELS unit)
# The ingest's framing state machine alone (net/ingest/gos_frame.c).
gos_add_test(test_frame SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_frame.c
  LIBS gos_net
  LABELS unit)
# The ingest through a real socket (tests/support/ingest_rig.h); its limits
# under hostile producers (issue 9) in a program of their own.
gos_add_test(test_ingest SAN TSAN TIMEOUT 300
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_ingest.c
  LIBS gos_core gos_net
  LABELS integration)
gos_add_test(test_ingest_limits SAN TSAN TIMEOUT 300
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_ingest_limits.c
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
# The README's first command (tools/run.sh: set-up, build, gos-compositor
# --demo), run against this build directory and stopped after 3 frames.
add_test(NAME run_script
  COMMAND env GOS_BUILD_DIR=${CMAKE_BINARY_DIR} GOS_VALIDATION=1
          bash ${CMAKE_SOURCE_DIR}/tools/run.sh --headless --no-listen --frames 3
          --log-interval 0 --socket ${CMAKE_BINARY_DIR}/run_script.sock)
set_tests_properties(run_script PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE LABELS integration)
