# libFuzzer targets (tests/fuzz/): the ingest's line parser, its fast path
# held to the cJSON path, and Geometry OS's shapes (fuzz_ingest), the framing state machine held to a
# reference model over random splits and caps (fuzz_frame), and the map's
# checkpoint reader (fuzz_map_image), the WebSocket frame-header tracker
# (fuzz_wsframes), the --users-file parser (fuzz_users). Built with clang where it can link
# -fsanitize=fuzzer (tests/cmake/fuzz_probe.cmake); each runs for 15 s from
# the committed seeds, new inputs going to the build tree.
include(${CMAKE_SOURCE_DIR}/tests/cmake/fuzz_probe.cmake)
if(GOS_FUZZ_OK)
  set(proto ${CMAKE_SOURCE_DIR}/net/protocol)
  set(ingest ${CMAKE_SOURCE_DIR}/net/ingest)
  set(base ${CMAKE_SOURCE_DIR}/compositor/base)
  set(incs -I${proto} -I${ingest} -I${base} -I${CMAKE_SOURCE_DIR}/tests/support)
  set(fz ${CMAKE_SOURCE_DIR}/tests/fuzz)
  # The protocol module's files (net/protocol/) and what they need from gos_base.
  set(proto_srcs ${proto}/gos_protocol.c ${proto}/protocol_cjson.c ${proto}/protocol_fast.c
                 ${proto}/protocol_write.c ${proto}/gos_json.c ${proto}/gos_geo.c
                 ${base}/gos_arena.c ${base}/gos_buf.c ${base}/gos_utf8.c)

  set(bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_ingest)
  set(srcs ${fz}/fuzz_ingest.c ${proto_srcs})
  add_custom_command(OUTPUT ${bin}
    COMMAND ${GOS_CLANG} ${GOS_FUZZ_FLAGS} ${incs} ${srcs} -lcjson -lm -o ${bin}
    DEPENDS ${srcs} ${proto}/gos_protocol.h ${proto}/gos_protocol_internal.h ${base}/gos_buf.h
            ${proto}/gos_geo.h
    COMMENT "Building the libFuzzer target fuzz_ingest with clang")
  add_custom_target(fuzz_ingest ALL DEPENDS ${bin})
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/ingest_corpus)
  add_test(NAME fuzz_ingest COMMAND ${bin} -max_total_time=15 -timeout=10 -rss_limit_mb=2048
           -print_final_stats=1 -dict=${fz}/ingest.dict
           ${CMAKE_BINARY_DIR}/fuzz/ingest_corpus ${fz}/ingest_corpus)
  set_tests_properties(fuzz_ingest PROPERTIES TIMEOUT 90 LABELS "fuzz")

  set(bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_frame)
  set(srcs ${fz}/fuzz_frame.c ${ingest}/gos_frame.c ${proto_srcs})
  add_custom_command(OUTPUT ${bin}
    COMMAND ${GOS_CLANG} ${GOS_FUZZ_FLAGS} ${incs} ${srcs} -lcjson -lm -o ${bin}
    DEPENDS ${srcs} ${ingest}/gos_frame.h ${proto}/gos_protocol.h ${proto}/gos_protocol_internal.h
    COMMENT "Building the libFuzzer target fuzz_frame with clang")
  add_custom_target(fuzz_frame ALL DEPENDS ${bin})
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/frame_corpus)
  add_test(NAME fuzz_frame COMMAND ${bin} -max_total_time=15 -timeout=10 -rss_limit_mb=2048
           -max_len=8192 -print_final_stats=1 -dict=${fz}/frame.dict
           ${CMAKE_BINARY_DIR}/fuzz/frame_corpus ${fz}/frame_corpus)
  set_tests_properties(fuzz_frame PROPERTIES TIMEOUT 90 LABELS "fuzz")

  # The journal reader (issue 11): a corrupt file never crashes a restore.
  set(journal ${CMAKE_SOURCE_DIR}/compositor/journal)
  set(bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_journal)
  set(srcs ${fz}/fuzz_journal.c ${journal}/journal_file.c ${base}/gos_crc32c.c ${proto_srcs})
  add_custom_command(OUTPUT ${bin}
    COMMAND ${GOS_CLANG} ${GOS_FUZZ_FLAGS} ${incs} -I${journal} -I${CMAKE_SOURCE_DIR}/compositor/map
            ${srcs} -lcjson -lm -o ${bin}
    DEPENDS ${srcs} ${journal}/gos_journal.h ${proto}/gos_protocol.h
    COMMENT "Building the libFuzzer target fuzz_journal with clang")
  add_custom_target(fuzz_journal ALL DEPENDS ${bin})
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/journal_corpus)
  add_test(NAME fuzz_journal COMMAND ${bin} -max_total_time=15 -timeout=10 -rss_limit_mb=2048
           -max_len=65536 -print_final_stats=1
           ${CMAKE_BINARY_DIR}/fuzz/journal_corpus ${fz}/journal_corpus)
  set_tests_properties(fuzz_journal PROPERTIES TIMEOUT 90 LABELS "fuzz")

  # The map's checkpoint reader (compositor/map/map_image.c): seeds are images
  # test_map_image writes (GOS_MAP_IMAGE_SEEDS=tests/fuzz/map_image_corpus).
  set(map ${CMAKE_SOURCE_DIR}/compositor/map)
  set(bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_map_image)
  set(srcs ${fz}/fuzz_map_image.c ${map}/gos_map.c ${map}/map_image.c
           ${base}/gos_crc32c.c ${base}/gos_arena.c ${base}/gos_utf8.c)
  add_custom_command(OUTPUT ${bin}
    COMMAND ${GOS_CLANG} ${GOS_FUZZ_FLAGS} -I${map} ${incs} ${srcs} -lm -lpthread -o ${bin}
    DEPENDS ${srcs} ${map}/gos_map.h ${map}/gos_map_internal.h
            ${CMAKE_SOURCE_DIR}/tests/support/map_image_fix.h
    COMMENT "Building the libFuzzer target fuzz_map_image with clang")
  add_custom_target(fuzz_map_image ALL DEPENDS ${bin})
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/map_image_corpus)
  add_test(NAME fuzz_map_image COMMAND ${bin} -max_total_time=15 -timeout=10 -rss_limit_mb=2048
           -max_len=16384 -print_final_stats=1 -dict=${fz}/map_image.dict
           ${CMAKE_BINARY_DIR}/fuzz/map_image_corpus ${fz}/map_image_corpus)
  set_tests_properties(fuzz_map_image PROPERTIES TIMEOUT 90 LABELS "fuzz")

  # What a browser viewer may send (net/ws/gos_viewer_proto.c): viewport,
  # ping, seek, play, pause, live, search.
  set(ws ${CMAKE_SOURCE_DIR}/net/ws)
  set(bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_viewer)
  set(srcs ${fz}/fuzz_viewer.c ${ws}/gos_viewer_proto.c ${proto}/gos_json.c
           ${base}/gos_buf.c ${base}/gos_arena.c ${base}/gos_utf8.c)
  add_custom_command(OUTPUT ${bin}
    COMMAND ${GOS_CLANG} ${GOS_FUZZ_FLAGS} ${incs} -I${ws} ${srcs} -lcjson -lm -o ${bin}
    DEPENDS ${srcs} ${ws}/gos_viewer_proto.h
    COMMENT "Building the libFuzzer target fuzz_viewer with clang")
  add_custom_target(fuzz_viewer ALL DEPENDS ${bin})
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/viewer_corpus)
  add_test(NAME fuzz_viewer COMMAND ${bin} -max_total_time=15 -timeout=10 -rss_limit_mb=2048
           -max_len=4096 -print_final_stats=1
           ${CMAKE_BINARY_DIR}/fuzz/viewer_corpus ${fz}/viewer_corpus)
  set_tests_properties(fuzz_viewer PROPERTIES TIMEOUT 90 LABELS "fuzz")
  # The frame-header tracker that watches viewers' bytes for unmasked frames.
  set(bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_wsframes)
  set(srcs ${fz}/fuzz_wsframes.c ${ws}/ws_frames.c)
  add_custom_command(OUTPUT ${bin}
    COMMAND ${GOS_CLANG} ${GOS_FUZZ_FLAGS} -I${ws} ${srcs} -o ${bin}
    DEPENDS ${srcs} ${ws}/ws_frames.h
    COMMENT "Building the libFuzzer target fuzz_wsframes with clang")
  add_custom_target(fuzz_wsframes ALL DEPENDS ${bin})
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/wsframes_corpus)
  add_test(NAME fuzz_wsframes COMMAND ${bin} -max_total_time=10 -timeout=10 -rss_limit_mb=2048
           -max_len=4096 -print_final_stats=1 ${CMAKE_BINARY_DIR}/fuzz/wsframes_corpus)
  set_tests_properties(fuzz_wsframes PROPERTIES TIMEOUT 60 LABELS "fuzz")
  # The --users-file parser: a file an operator writes, read again on SIGHUP.
  set(bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_users)
  set(srcs ${fz}/fuzz_users.c ${ws}/gos_users.c)
  add_custom_command(OUTPUT ${bin}
    COMMAND ${GOS_CLANG} ${GOS_FUZZ_FLAGS} -I${ws} ${srcs} -o ${bin}
    DEPENDS ${srcs} ${ws}/gos_users.h
    COMMENT "Building the libFuzzer target fuzz_users with clang")
  add_custom_target(fuzz_users ALL DEPENDS ${bin})
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/users_corpus)
  add_test(NAME fuzz_users COMMAND ${bin} -max_total_time=10 -timeout=10 -rss_limit_mb=2048
           -max_len=4096 -print_final_stats=1
           ${CMAKE_BINARY_DIR}/fuzz/users_corpus ${fz}/users_corpus)
  set_tests_properties(fuzz_users PROPERTIES TIMEOUT 60 LABELS "fuzz")
else()
  message(STATUS "gos: clang with libFuzzer not found: the fuzz targets are not built")
endif()
