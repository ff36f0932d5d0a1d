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
# Geometry OS's producers (issue 14): both byte orders, their shapes on the
# map, replies in the peer's framing and shape, the frame deadline.
gos_add_test(test_ingest_geo SAN TSAN TIMEOUT 120
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_ingest_geo.c
  LIBS gos_core gos_net
  LABELS integration)
add_test(NAME test_programs
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/test_programs.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed>)
set_tests_properties(test_programs PROPERTIES TIMEOUT 120 LABELS integration)
# Geometry OS's producers (issue 14) against a real compositor: both byte
# orders in their real shapes, replies in the peer's framing, the frame
# deadline, what reached the map (a viewer's snapshot).
add_test(NAME geometry_os
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/geometry_os.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(geometry_os PROPERTIES TIMEOUT 120 LABELS integration)
# gos-feed --realtime: a recording (docs/recording.md) replayed at its pace
# into a real compositor (--no-render), and its errors.
add_test(NAME test_feed_realtime
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/test_feed_realtime.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed>)
set_tests_properties(test_feed_realtime PROPERTIES TIMEOUT 120 LABELS integration)
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
# The journal (issue 11): records, torn/corrupt detection, the writer behind a
# real core (a sync waits for the disk), checkpoints and restore.
gos_add_test(test_journal SAN TIMEOUT 180
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_journal.c
  LIBS gos_core gos_journal
  LABELS unit)
# kill -9 under three producers, torn tail, corrupt middle, a second compositor.
add_test(NAME journal_crash
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/journal_crash.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(journal_crash PROPERTIES TIMEOUT 240 LABELS integration)
# A full disk (a 2 MiB tmpfs in the compositor's own mount namespace; root).
add_test(NAME journal_disk
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/journal_disk.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(journal_disk PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77 LABELS integration)
# compositor/base/gos_casefold_table.h is what tools/gen_casefold.py generates.
find_program(GOS_PYTHON3 python3)
add_test(NAME casefold_generated
         COMMAND ${CMAKE_COMMAND} -DPYTHON=${GOS_PYTHON3} -DSRC=${CMAKE_SOURCE_DIR}
                 -DOUT=${CMAKE_BINARY_DIR}/gos_casefold_table.generated.h
                 -P ${CMAKE_SOURCE_DIR}/tests/cmake/casefold_generated.cmake)
set_tests_properties(casefold_generated PROPERTIES LABELS "unit;search" TIMEOUT 120
                     SKIP_REGULAR_EXPRESSION "SKIP: ")
