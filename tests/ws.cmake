# Remote viewers: the WebSocket/HTTP server (net/gos_ws) on its own under
# ASan, then through a real gos-compositor with independent clients (Python
# with Debian's python3-websockets, and Debian's chromium driven by
# playwright-core for the web viewer).
gos_add_test(test_ws SAN TIMEOUT 60
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_ws.c ${CMAKE_SOURCE_DIR}/tests/json_guard.c
  LIBS gos_net
  LABELS unit ws)
foreach(t test_ws test_ws_asan)  # viewer messages parse through gos_json
  if(TARGET ${t})
    target_link_options(${t} PRIVATE ${GOS_JSON_GUARD_LINK})
  endif()
endforeach()
gos_add_test(test_broadcast SAN TIMEOUT 60
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_broadcast.c
  LIBS gos_core gos_net
  LABELS unit ws)

add_test(NAME ws_protocol
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_protocol.py $<TARGET_FILE:gos-compositor>)
add_test(NAME ws_backpressure
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_backpressure.py $<TARGET_FILE:gos-compositor>)
# gos-compositor renders headless in these tests: validation on, and a
# compositor that saw validation errors exits 1, which the tests check.
set_tests_properties(ws_protocol ws_backpressure PROPERTIES
  TIMEOUT 120 LABELS "integration;ws"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR};GOS_VALIDATION=1")

# The viewer's palettes are the GPU shader's (tools/gen_palette.py).
add_test(NAME ws_palette COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_palette.py)
set_tests_properties(ws_palette PROPERTIES TIMEOUT 60 LABELS "unit;ws"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

# The browser test needs node + playwright-core (tools/setup.sh installs them).
add_test(NAME ws_browser
  COMMAND node ${CMAKE_SOURCE_DIR}/tests/browser/viewer.test.js $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_browser PROPERTIES
  TIMEOUT 120 LABELS "integration;ws;browser"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR};GOS_VALIDATION=1")
