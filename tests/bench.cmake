# gos-bench fanout's own WebSocket load client against gos-compositor and the
# Node ws peer, with a few viewers for a second: no figure is held to
# anything (the machine decides those), only that every viewer connected,
# received deltas and was not closed.
add_test(NAME bench_fanout
  COMMAND $<TARGET_FILE:gos-bench> fanout --viewers 3 --seconds 1 --warmup 0.5
          --compositor $<TARGET_FILE:gos-compositor>)
set_tests_properties(bench_fanout PROPERTIES TIMEOUT 120 LABELS "integration;bench"
  FAIL_REGULAR_EXPRESSION "did not connect;were closed;nothing received;producer failed;gos-bench: ")
# gos-bench style on a small map: every style row runs (validation on) and
# prints; no figure is held to anything.
add_test(NAME bench_style
  COMMAND $<TARGET_FILE:gos-bench> style --tokens 20000 --frames 6 --size 320x200)
set_tests_properties(bench_style PROPERTIES TIMEOUT 120 LABELS "gpu;bench"
  ENVIRONMENT "GOS_VALIDATION=1"
  PASS_REGULAR_EXPRESSION "zoom 1 +search 1000")

# gos-bench search on a small map: it builds the index, runs every kind of
# search and prints its table (no figure is held to anything).
add_test(NAME bench_search
  COMMAND $<TARGET_FILE:gos-bench> search --tokens 20000 --queries 8)
set_tests_properties(bench_search PROPERTIES TIMEOUT 120 LABELS "bench;search"
  PASS_REGULAR_EXPRESSION "catch up 10k tokens \\+ search +4 ")
# gos-bench relay against a real nats-server, compositor and relays, briefly:
# every row prints; no figure is held to anything.
add_test(NAME bench_relay
  COMMAND $<TARGET_FILE:gos-bench> relay --viewers 4 --rate 500 --seconds 1 --warmup 0.5
          --relays 1 --compositor $<TARGET_FILE:gos-compositor> --relay $<TARGET_FILE:gos-relay>)
set_tests_properties(bench_relay PROPERTIES TIMEOUT 120 LABELS "integration;bench;nats"
  RESOURCE_LOCK nats
  PASS_REGULAR_EXPRESSION "NATS -> log -> 1 relay +4 +4"
  FAIL_REGULAR_EXPRESSION "failed|did not start")

# gos-bench failover, briefly: 2 rounds of kill -9 of the leader under a
# small load; what must hold is no acknowledged event lost or applied twice
# and the relays ending with the leader's map (the times are only printed).
add_test(NAME bench_failover
  COMMAND $<TARGET_FILE:gos-bench> failover --rounds 2 --rate 1000 --viewers 2
          --compositor $<TARGET_FILE:gos-compositor> --relay $<TARGET_FILE:gos-relay>)
set_tests_properties(bench_failover PROPERTIES TIMEOUT 240 LABELS "integration;bench;nats"
  RESOURCE_LOCK nats
  PASS_REGULAR_EXPRESSION "acknowledged events lost +0\n"
  FAIL_REGULAR_EXPRESSION "NOT confirmed|relays end with the leader's map +NO|did not start|no takeover")
