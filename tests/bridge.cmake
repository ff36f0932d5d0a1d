# gos-bridge and the SSE parser: unit, differential, fuzz and end-to-end tests.
set(GOS_TESTS ${CMAKE_SOURCE_DIR}/tests)

gos_add_test(test_sse SAN SOURCES ${GOS_TESTS}/test_sse.c LIBS gos_net)
