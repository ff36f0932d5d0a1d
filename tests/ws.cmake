# Remote viewers: the WebSocket/HTTP server (net/ws) on its own under ASan
# and TSan (test_ws: viewers; test_ws_http: HTTP and connections), then
# through a real gos-compositor with independent clients (Python with
# Debian's python3-websockets, and Debian's chromium driven by
# playwright-core for the web viewer).
foreach(t test_ws test_ws_http)
  gos_add_test(${t} SAN TSAN TIMEOUT 60
    SOURCES ${CMAKE_SOURCE_DIR}/tests/${t}.c ${CMAKE_SOURCE_DIR}/tests/support/json_guard.c
    LIBS gos_net z  # z: test_ws inflates what permessage-deflate viewers get
    LABELS unit ws)
  foreach(v ${t} ${t}_asan ${t}_tsan)  # viewer messages parse through gos_json
    if(TARGET ${v})
      target_link_options(${v} PRIVATE ${GOS_JSON_GUARD_LINK})
    endif()
  endforeach()
endforeach()

# The gos.v1 messages' bytes and the viewer's messages read (net/ws/gos_viewer_proto).
gos_add_test(test_ws_proto SAN TIMEOUT 60
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_ws_proto.c ${CMAKE_SOURCE_DIR}/tests/support/json_guard.c
  LIBS gos_net
  LABELS unit ws)
foreach(t test_ws_proto test_ws_proto_asan)
  if(TARGET ${t})
    target_link_options(${t} PRIVATE ${GOS_JSON_GUARD_LINK})
  endif()
endforeach()
# The --users-file parser (net/ws/gos_users): roles, rate=, bad lines by number.
gos_add_test(test_users SAN TIMEOUT 60
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_users.c
  LIBS gos_net
  LABELS unit ws)

# Search (compositor/web/gos_search.c) over a real map against a brute force:
# folding, Unicode, filters, the index following updates and evictions.
gos_add_test(test_search SAN TSAN TIMEOUT 300
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_search.c
  LIBS gos_web
  LABELS unit ws search)
# The broadcaster's gos.v2 index against a brute force, the v2 writer.
gos_add_test(test_tiles SAN TIMEOUT 60
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_tiles.c
  LIBS gos_web
  LABELS unit ws)
gos_add_test(test_broadcast SAN TSAN TIMEOUT 60
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_broadcast.c
  LIBS gos_web
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

# gos.v2 (docs/protocol-v2.md) against an independent decoder, beside a
# gos.v1 viewer on the same server.
add_test(NAME ws_v2
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_v2.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_v2 PROPERTIES
  TIMEOUT 180 LABELS "integration;ws"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR};GOS_VALIDATION=1")

# The tokens' index, rank, gap, entropy, agreement and divergence and the
# streams' groups (issue 13) in gos.v1 deltas and snapshots and in gos.v2.
add_test(NAME ws_fields
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_fields.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_fields PROPERTIES
  TIMEOUT 60 LABELS "integration;ws"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

# permessage-deflate on /ws (issue 12): negotiation and declined offers,
# a large snapshot and deltas equal with and without it and smaller on the
# wire, compressed viewer messages, memory per viewer; python websockets,
# npm ws (node) and a raw zlib client.
add_test(NAME ws_deflate
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_deflate.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_deflate PROPERTIES TIMEOUT 180 LABELS "integration;ws"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

# GET /export: CSV, JSON lines (a round trip through gos-feed), text.
add_test(NAME ws_export
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_export.py $<TARGET_FILE:gos-compositor>
          $<TARGET_FILE:gos-feed>)
set_tests_properties(ws_export PROPERTIES TIMEOUT 120 LABELS "integration;ws"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

# Search from gos.v1 and gos.v2 viewers against a reference search in Python.
add_test(NAME ws_search
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_search.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_search PROPERTIES TIMEOUT 180 LABELS "integration;ws;search"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

# The viewer's palettes are the GPU shader's (tools/gen_palette.py).
add_test(NAME ws_palette COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_palette.py)
set_tests_properties(ws_palette PROPERTIES TIMEOUT 60 LABELS "unit;ws"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

# --tls-cert/--tls-key: https and wss with a certificate the test makes
# (openssl), plain HTTP to the TLS port closed, bad files refused in one
# sentence, the warning for a port open in clear text without a token.
add_test(NAME ws_users
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_users.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_users PROPERTIES TIMEOUT 120 LABELS "integration;ws")
add_test(NAME ws_tls
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ws_tls.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_tls PROPERTIES TIMEOUT 120 LABELS "integration;ws")

# The browser test needs node + playwright-core (tools/setup.sh installs them).
add_test(NAME ws_browser
  COMMAND node ${CMAKE_SOURCE_DIR}/tests/browser/viewer.test.js $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_browser PROPERTIES
  TIMEOUT 120 LABELS "integration;ws;browser"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR};GOS_VALIDATION=1")

# The viewer over TLS in chromium: https page, wss:// WebSocket, gos.v2 and v1.
add_test(NAME ws_browser_tls
  COMMAND node ${CMAKE_SOURCE_DIR}/tests/browser/tls.test.js $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_browser_tls PROPERTIES
  TIMEOUT 120 LABELS "integration;ws;browser"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR};GOS_VALIDATION=1")

# The viewer's gos.v2 decoder (assets/web/v2.js) in plain node, against
# messages built from docs/protocol-v2.md by tests/browser/v2_encode.js.
add_test(NAME ws_v2_decode
  COMMAND node ${CMAKE_SOURCE_DIR}/tests/browser/v2_decode.test.js)
set_tests_properties(ws_v2_decode PROPERTIES TIMEOUT 60 LABELS "unit;ws")

# The viewer's gos.v2 side in chromium (WebGL2 and Canvas 2D) against a
# stand-in server written from docs/protocol-v2.md (tests/browser/mock_server.js):
# tiles, regions, ticks, overview changes, late-join bytes.
add_test(NAME ws_browser_v2
  COMMAND node ${CMAKE_SOURCE_DIR}/tests/browser/v2_viewer.test.js)
set_tests_properties(ws_browser_v2 PROPERTIES TIMEOUT 120 LABELS "integration;ws;browser")

# The viewer's color modes, filters and shareable URL against a real
# gos-compositor (gos.v2 + WebGL2, gos.v1 + Canvas 2D), its search against
# the stand-in server (issue 13).
add_test(NAME ws_browser_features
  COMMAND node ${CMAKE_SOURCE_DIR}/tests/browser/features.test.js $<TARGET_FILE:gos-compositor>)
set_tests_properties(ws_browser_features PROPERTIES
  TIMEOUT 120 LABELS "integration;ws;browser"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR};GOS_VALIDATION=1")

# The whole compositor under ThreadSanitizer (renderer off) with producers,
# viewers and /health under load, then SIGTERM: any report fails.
if(TARGET gos-compositor-tsan)
  add_test(NAME tsan_compositor
    COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/tsan_compositor.py
            $<TARGET_FILE:gos-compositor-tsan> $<TARGET_FILE:gos-feed>)
  set_tests_properties(tsan_compositor PROPERTIES TIMEOUT 240 LABELS "integration;tsan"
    ENVIRONMENT "${GOS_TSAN_ENV}")
endif()

# Hostile clients (issue 9): fd exhaustion by producers and by idle HTTP
# clients, broken framing, memory held by half-sent lines and unread files,
# a FIFO in the web folder, a ping flood; each against a fresh compositor,
# with its numbers printed (RSS, CPU-s, log bytes, time to answer).
add_test(NAME hostile
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/hostile.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed>)
set_tests_properties(hostile PROPERTIES TIMEOUT 180 LABELS "integration;ws;hostile")

# Time travel (issue 11): seek, live, play, pause, timeline, GET /recording
# and --open of it, against a real compositor with a journal (and without).
add_test(NAME journal_seek
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/journal_seek.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(journal_seek PROPERTIES TIMEOUT 240 LABELS "integration;ws;journal"
  ENVIRONMENT "GOS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

# Remote producers over NATS JetStream against a real nats-server.
add_test(NAME nats_ingest
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/nats_ingest.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed> $<TARGET_FILE:gos-bridge>)
set_tests_properties(nats_ingest PROPERTIES TIMEOUT 240 LABELS "integration;nats"
  RESOURCE_LOCK nats)

# gos-relay: a replica followed over the change log serves what the compositor does.
add_test(NAME nats_relay
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/nats_relay.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed> $<TARGET_FILE:gos-relay>)
set_tests_properties(nats_relay PROPERTIES TIMEOUT 180 LABELS "integration;nats"
  RESOURCE_LOCK nats)

# Hot standby: leader kill -9 and SIGSTOP, takeover, fencing, hand-over.
add_test(NAME nats_failover
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/nats_failover.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed> $<TARGET_FILE:gos-relay>)
set_tests_properties(nats_failover PROPERTIES TIMEOUT 300 LABELS "integration;nats"
  RESOURCE_LOCK nats)

# Checkpoints: a relay and a standby built from one after the log before it went.
add_test(NAME nats_checkpoint
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/nats_checkpoint.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed> $<TARGET_FILE:gos-relay>)
set_tests_properties(nats_checkpoint PROPERTIES TIMEOUT 240 LABELS "integration;nats"
  RESOURCE_LOCK nats)

# A node of a 3-node NATS cluster killed under producers, a relay and a leader.
add_test(NAME nats_chaos
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/nats_chaos.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed> $<TARGET_FILE:gos-relay>)
set_tests_properties(nats_chaos PROPERTIES TIMEOUT 300 LABELS "integration;nats"
  RESOURCE_LOCK nats)

# --socket-group, and producers logged and counted by their peer's uid.
add_test(NAME ingest_peers
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ingest_peers.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(ingest_peers PROPERTIES TIMEOUT 60 LABELS "integration")
