# gos-bench fanout's own WebSocket load client against gos-compositor and the
# Node ws peer, with a few viewers for a second: no figure is held to
# anything (the machine decides those), only that every viewer connected,
# received deltas and was not closed.
add_test(NAME bench_fanout
  COMMAND $<TARGET_FILE:gos-bench> fanout --viewers 3 --seconds 1 --warmup 0.5
          --compositor $<TARGET_FILE:gos-compositor>)
set_tests_properties(bench_fanout PROPERTIES TIMEOUT 120 LABELS "integration;bench"
  FAIL_REGULAR_EXPRESSION "did not connect;were closed;nothing received;producer failed;gos-bench: ")
