# gos-bridge and the SSE parser: unit, differential, fuzz and end-to-end tests.
set(GOS_TESTS ${CMAKE_SOURCE_DIR}/tests)

gos_add_test(test_sse SAN SOURCES ${GOS_TESTS}/test_sse.c LIBS gos_net)

# Differential: gos_sse vs npm eventsource-parser@3 (tests/node-sse, installed
# by tools/setup.sh) on random streams. Skipped (77) only where node is absent.
gos_add_test(test_sse_diff SOURCES ${GOS_TESTS}/test_sse_diff.c LIBS gos_net TIMEOUT 60)
set_tests_properties(test_sse_diff PROPERTIES SKIP_RETURN_CODE 77)
