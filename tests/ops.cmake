# Operations (issue 16): the alerting rules (promtool check and unit tests),
# the dashboard's and the rules' metric names against a live /metrics, the
# installed tree and the .deb. promtool is Debian's prometheus package, as
# python3-yaml and help2man, all from tools/setup.sh.
foreach(mode check test)
  add_test(NAME prometheus_rules_${mode}
    COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ops_promtool.py ${mode}
            ${CMAKE_SOURCE_DIR}/assets/prometheus)
  set_tests_properties(prometheus_rules_${mode} PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77 LABELS unit)
endforeach()
add_test(NAME ops_metrics
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ops_metrics.py
          $<TARGET_FILE:gos-compositor> ${CMAKE_SOURCE_DIR} $<TARGET_FILE:gos-relay>)
set_tests_properties(ops_metrics PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77 LABELS integration
  RESOURCE_LOCK nats)
# Pipeline latency (arrival -> applied -> published -> sent, producer timestamps)
# and the journal's write/fsync histograms and free space, in a live /metrics.
add_test(NAME ops_latency
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ops_latency.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(ops_latency PROPERTIES TIMEOUT 120 LABELS integration)
# gos-compositor's log lines (compositor/base/gos_log): text and JSON,
# levels, repeats counted (also from several threads: TSan).
gos_add_test(test_log SAN TSAN TIMEOUT 60
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_log.c
  LIBS gos_base
  LABELS unit)
# gos_pipeline_latency_seconds and gos_producer_latency_seconds
# (compositor/base/gos_pipeline): stages, clamps, the ring, two threads.
gos_add_test(test_pipeline SAN TSAN TIMEOUT 60
  SOURCES ${CMAKE_SOURCE_DIR}/tests/test_pipeline.c
  LIBS gos_base
  LABELS unit)
# --log-level and --log-format through a real gos-compositor and gos-relay.
add_test(NAME log_flags
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/log_flags.py $<TARGET_FILE:gos-compositor>
          $<TARGET_FILE:gos-relay>)
set_tests_properties(log_flags PROPERTIES TIMEOUT 60 LABELS integration)
# Real health: /health's per-thread heartbeats, 503 naming a stuck thread
# (the GOS_TEST_STALL hook), 200 again; gos_thread_stalled in /metrics.
add_test(NAME health_threads
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/health_threads.py $<TARGET_FILE:gos-compositor>)
set_tests_properties(health_threads PROPERTIES TIMEOUT 120 LABELS integration)
# Both install from this build dir and read its install_manifest.txt: one at a time.
add_test(NAME install_tree
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/install_tree.py ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(install_tree PROPERTIES TIMEOUT 180 LABELS integration
                     RESOURCE_LOCK gos_install_manifest)
add_test(NAME deb_package
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/deb_package.py ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(deb_package PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS integration
                     RESOURCE_LOCK gos_install_manifest)
