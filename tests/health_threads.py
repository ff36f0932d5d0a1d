#!/usr/bin/python3
"""Real health: every thread of gos-compositor beats a heartbeat, /health
shows each one's age and turns 503 naming a stuck one, then 200 again once
it goes on. The stall comes from the test hook GOS_TEST_STALL=THREAD:FILE
(the thread stops, without beating, while FILE exists). Idle threads keep
beating: while one thread is stuck longer than the bound, the others stay
ok. /metrics has gos_thread_stalled{thread} for the alert GosThreadStalled.

usage: health_threads.py GOS_COMPOSITOR   (run by ctest)"""
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, check, metric, report  # noqa: E402

COMPOSITOR = sys.argv[1]
THREADS = ["ingest", "core", "broadcast", "web", "journal"]   # no render: --headless frames vary


def wait_health(c, pred, timeout):
    """Polls /health until pred(status, body); returns the last (status, body)."""
    deadline = time.monotonic() + timeout
    while True:
        st, _, body = c.http("/health")
        h = json.loads(body) if st in (200, 503) else None
        if (h and pred(st, h)) or time.monotonic() > deadline:
            return st, h
        time.sleep(0.1)


for victim in ["core", "ingest"]:
    tmp = tempfile.mkdtemp(prefix="gos-health-")
    stall = os.path.join(tmp, "stall")
    os.environ["GOS_TEST_STALL"] = f"{victim}:{stall}"
    c = Compositor(COMPOSITOR, "--no-render", "--state-dir", os.path.join(tmp, "state"), tmp=tmp)
    del os.environ["GOS_TEST_STALL"]

    st, h = wait_health(c, lambda st, h: all(t in h.get("threads", {}) for t in THREADS), 10)
    threads = (h or {}).get("threads", {})
    check(st == 200 and h["status"] == "ok" and "stalled" not in h,
          f"{victim}: healthy at start ({st} {h})")
    check(sorted(threads) == sorted(THREADS),
          f"{victim}: /health lists every running thread ({sorted(threads)})")
    check(all(0 <= t["age_s"] <= 1.5 and t["ok"] for t in threads.values()),
          f"{victim}: every thread beat within the last second or so ({threads})")
    check(h and h["ingest"]["alive"] is True, f"{victim}: the ingest is alive")
    c.feed([{"type": "token_activation", "token_id": "a", "token_text": "a",
             "timestamp": 1.0, "confidence": 0.5, "stream": "s"}])

    open(stall, "w").close()
    t0 = time.monotonic()
    st, h = wait_health(c, lambda st, h: st == 503, 15)
    took = time.monotonic() - t0
    threads = (h or {}).get("threads", {})
    check(st == 503 and h["status"] == "degraded" and h.get("stalled") == [victim],
          f"{victim}: /health turns 503 naming only the stuck thread ({st} {h})")
    check(4.5 <= took <= 8, f"{victim}: about when its age passes the 5 s bound ({took:.1f} s)")
    check(threads.get(victim, {}).get("ok") is False and threads[victim]["age_s"] > 5,
          f"{victim}: its age is over its bound ({threads.get(victim)})")
    check(all(t["ok"] for n, t in threads.items() if n != victim),
          f"{victim}: the idle others still beat ({threads})")
    if victim == "ingest":
        check(h["ingest"]["alive"] is False, "a stuck ingest is not alive")
    mt = c.metrics()
    check(mt and metric(mt, "gos_thread_stalled", f'thread="{victim}"') == 1 and
          metric(mt, "gos_thread_stalled", 'thread="web"') == 0 and
          metric(mt, "gos_thread_heartbeat_age_seconds", f'thread="{victim}"') > 5,
          f"{victim}: /metrics has gos_thread_stalled 1 for it, 0 for the others")

    os.unlink(stall)
    st, h = wait_health(c, lambda st, h: st == 200, 5)
    check(st == 200 and h["status"] == "ok" and "stalled" not in h,
          f"{victim}: 200 again once it goes on ({st} {h})")
    check(c.feed([{"type": "token_activation", "token_id": "b", "token_text": "b",
                   "timestamp": 2.0, "confidence": 0.5, "stream": "s"}]) is not None,
          f"{victim}: a producer is answered after the stall")
    check(c.stop() == 0, f"{victim}: exits 0 on SIGTERM")
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(report("health_threads"))
