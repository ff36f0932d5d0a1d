# gos-bridge and the SSE parser: unit, differential, fuzz and end-to-end tests.
set(GOS_TESTS ${CMAKE_SOURCE_DIR}/tests)

gos_add_test(test_sse SAN SOURCES ${GOS_TESTS}/test_sse.c LIBS gos_net)

# Differential: gos_sse vs npm eventsource-parser@3 (tests/node-sse, installed
# by tools/setup.sh) on random streams. Skipped (77) only where node is absent.
gos_add_test(test_sse_diff SOURCES ${GOS_TESTS}/test_sse_diff.c LIBS gos_net TIMEOUT 60)
set_tests_properties(test_sse_diff PROPERTIES SKIP_RETURN_CODE 77)

# libFuzzer target for the SSE parser, built with clang where clang can link
# -fsanitize=fuzzer (tests/cmake/fuzz_probe.cmake), run for 20 s.
include(${CMAKE_SOURCE_DIR}/tests/cmake/fuzz_probe.cmake)
if(GOS_FUZZ_OK)
  set(fuzz_bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_sse)
  add_custom_command(OUTPUT ${fuzz_bin}
    COMMAND ${GOS_CLANG} ${GOS_FUZZ_FLAGS}
            -I${CMAKE_SOURCE_DIR}/net/llm -I${CMAKE_SOURCE_DIR}/compositor/base ${GOS_TESTS}/fuzz/fuzz_sse.c ${CMAKE_SOURCE_DIR}/net/llm/gos_sse.c ${CMAKE_SOURCE_DIR}/compositor/base/gos_utf8.c -o ${fuzz_bin}
    DEPENDS ${GOS_TESTS}/fuzz/fuzz_sse.c ${CMAKE_SOURCE_DIR}/net/llm/gos_sse.c ${CMAKE_SOURCE_DIR}/net/llm/gos_sse.h
    COMMENT "Building the libFuzzer target fuzz_sse with clang")
  add_custom_target(fuzz_sse ALL DEPENDS ${fuzz_bin})
  # New inputs go to the build tree; the committed seeds are read only.
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/sse_corpus)
  add_test(NAME fuzz_sse COMMAND ${fuzz_bin} -max_total_time=20 -timeout=10 -rss_limit_mb=2048
           -print_final_stats=1 -dict=${GOS_TESTS}/fuzz/sse.dict
           ${CMAKE_BINARY_DIR}/fuzz/sse_corpus ${GOS_TESTS}/fuzz/sse_corpus)
  set_tests_properties(fuzz_sse PROPERTIES TIMEOUT 90 LABELS "fuzz")

  # gos-bridge's cache entry files (net/llm/gos_gencache.c): parsed input.
  set(fuzz_bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_gencache)
  set(base ${CMAKE_SOURCE_DIR}/compositor/base)
  set(srcs ${GOS_TESTS}/fuzz/fuzz_gencache.c ${CMAKE_SOURCE_DIR}/net/llm/gos_gencache.c
           ${base}/gos_crc32c.c ${base}/gos_utf8.c ${base}/gos_arena.c)
  add_custom_command(OUTPUT ${fuzz_bin}
    COMMAND ${GOS_CLANG} ${GOS_FUZZ_FLAGS} -I${CMAKE_SOURCE_DIR}/net/llm -I${base} ${srcs} -lcjson -lm -o ${fuzz_bin}
    DEPENDS ${srcs} ${CMAKE_SOURCE_DIR}/net/llm/gos_gencache.h
    COMMENT "Building the libFuzzer target fuzz_gencache with clang")
  add_custom_target(fuzz_gencache ALL DEPENDS ${fuzz_bin})
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/gencache_corpus)
  add_test(NAME fuzz_gencache COMMAND ${fuzz_bin} -max_total_time=15 -timeout=10 -rss_limit_mb=2048
           -max_len=16384 -print_final_stats=1
           ${CMAKE_BINARY_DIR}/fuzz/gencache_corpus ${GOS_TESTS}/fuzz/gencache_corpus)
  set_tests_properties(fuzz_gencache PROPERTIES TIMEOUT 90 LABELS "fuzz")
else()
  message(STATUS "gos: clang with libFuzzer not found: the fuzz_sse and fuzz_gencache tests are not built")
endif()

# gos_llm: request bodies, chunk -> tokens, error bodies, Retry-After.
gos_add_test(test_llm SAN SOURCES ${GOS_TESTS}/test_llm.c LIBS gos_net LABELS unit)
# gos_gencache: gos-bridge's cache files and directory (round trips, damage, LRU).
gos_add_test(test_gencache SAN SOURCES ${GOS_TESTS}/test_gencache.c LIBS gos_net LABELS unit)

# End to end: the fake OpenAI-compatible server (tests/support/fake_openai.py), a
# real headless gos-compositor, gos-bridge between them.
add_test(NAME test_bridge
  COMMAND /usr/bin/python3 ${GOS_TESTS}/test_bridge.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-bridge>)
set_tests_properties(test_bridge PROPERTIES TIMEOUT 180 LABELS integration ENVIRONMENT "GOS_VALIDATION=1")
# Real producers (issue 14): every captured llama.cpp response (tests/data/llamacpp/)
# byte for byte, the SSE error forms, HTTP statuses and retries, --completions.
add_test(NAME test_bridge_llamacpp
  COMMAND /usr/bin/python3 ${GOS_TESTS}/test_bridge_llamacpp.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-bridge>)
set_tests_properties(test_bridge_llamacpp PROPERTIES TIMEOUT 180 LABELS integration ENVIRONMENT "GOS_VALIDATION=1")
# The --url pool (--spread, max=N, circuit breakers); the response cache (--cache).
foreach(t pool cache)
  add_test(NAME test_bridge_${t}
    COMMAND /usr/bin/python3 ${GOS_TESTS}/test_bridge_${t}.py
            $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-bridge>)
  set_tests_properties(test_bridge_${t} PROPERTIES TIMEOUT 180 LABELS integration ENVIRONMENT "GOS_VALIDATION=1")
endforeach()
if(TARGET gos-bridge-asan)
  add_test(NAME test_bridge_asan
    COMMAND /usr/bin/python3 ${GOS_TESTS}/test_bridge.py
            $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-bridge-asan>)
  set_tests_properties(test_bridge_asan PROPERTIES TIMEOUT 240 LABELS "integration;asan"
    ENVIRONMENT "GOS_VALIDATION=1;ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
  foreach(t llamacpp pool cache)
    add_test(NAME test_bridge_${t}_asan
      COMMAND /usr/bin/python3 ${GOS_TESTS}/test_bridge_${t}.py
              $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-bridge-asan>)
    set_tests_properties(test_bridge_${t}_asan PROPERTIES TIMEOUT 240 LABELS "integration;asan"
      ENVIRONMENT "GOS_VALIDATION=1;ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
  endforeach()
endif()
