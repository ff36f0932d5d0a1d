# Operations (issue 16): the alerting rules (promtool check and unit tests),
# the dashboard's and the rules' metric names against a live /metrics.
# promtool is Debian's prometheus package; python3-yaml too from tools/setup.sh.
foreach(mode check test)
  add_test(NAME prometheus_rules_${mode}
    COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ops_promtool.py ${mode}
            ${CMAKE_SOURCE_DIR}/assets/prometheus)
  set_tests_properties(prometheus_rules_${mode} PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77 LABELS unit)
endforeach()
add_test(NAME ops_metrics
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ops_metrics.py
          $<TARGET_FILE:gos-compositor> ${CMAKE_SOURCE_DIR})
set_tests_properties(ops_metrics PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77 LABELS integration)
