# Renderer: camera math (unit, also under ASan/UBSan), and image tests that
# render a fixed recording with gos-shot on the real Vulkan device (lavapipe
# in CI, validation on) and compare it with reference PNGs in tests/data.
gos_add_test(test_camera SAN
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_camera.c
  LIBS gos_map m
  LABELS unit)
gos_add_test(test_render_image GPU TIMEOUT 180
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_render_image.c
  LIBS gos_render gos_compute
  LABELS gpu image)
add_dependencies(test_render_image gos-shot)
add_test(NAME test_window
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/test_window.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-feed>)
set_tests_properties(test_window PROPERTIES TIMEOUT 180 LABELS "gpu;window"
                     ENVIRONMENT "GOS_VALIDATION=1" SKIP_RETURN_CODE 77)
# Time travel in the native window (issue 11): real key presses (xdotool)
# under Xvfb step back, go live, save a recording (Ctrl+S) and replay.
add_test(NAME window_travel
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/window_travel.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(window_travel PROPERTIES TIMEOUT 180 LABELS "gpu;window"
                     ENVIRONMENT "GOS_VALIDATION=1" SKIP_RETURN_CODE 77)
# A renderer reusing earlier frames' GPU work draws what a fresh one draws.
gos_add_test(test_render_cache GPU TIMEOUT 180
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_render_cache.c
  LIBS gos_render gos_core gos_net gos_compute m
  LABELS gpu image)
# --cpu-compute and the logged fallback to it when the GPU token pipeline
# fails (GOS_FORCE_COMPUTE_FAIL=1), in gos-compositor --headless.
add_test(NAME test_cpu_fallback
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/test_cpu_fallback.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-shot>)
set_tests_properties(test_cpu_fallback PROPERTIES TIMEOUT 120 LABELS "gpu;compute"
                     ENVIRONMENT "GOS_VALIDATION=1" SKIP_RETURN_CODE 77)
# gos-shot --socket: a picture of a running headless compositor (validation
# on), compared with gos-shot --input of the same recording; its errors.
add_test(NAME test_shot_socket
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/test_shot_socket.py
          $<TARGET_FILE:gos-compositor> $<TARGET_FILE:gos-shot> $<TARGET_FILE:gos-feed>
          ${CMAKE_SOURCE_DIR}/tests/data)
set_tests_properties(test_shot_socket PROPERTIES TIMEOUT 180 LABELS "gpu;image"
                     ENVIRONMENT "GOS_VALIDATION=1" SKIP_RETURN_CODE 77)
# Color modes, stream and probability filters and search highlights in
# pixels (GPU and --cpu-compute, quads and far-out splats).
gos_add_test(test_render_style GPU TIMEOUT 180
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_render_style.c
  LIBS gos_render gos_core gos_net gos_compute m
  LABELS gpu image)
