#!/usr/bin/python3
"""gos-bridge's upstream pool, end to end: three fake OpenAI-compatible
servers, a real headless gos-compositor, gos-bridge between them.
--spread hands --parallel generations out evenly, ",max=N" caps a URL,
a URL that keeps failing opens its circuit breaker (its jobs move to the
others) and a probe after the cooldown closes it once the server is back.
Each case checks exit codes, the requests every server got, the stream
names and the neural_state messages.

usage: test_bridge_pool.py GOS_COMPOSITOR GOS_BRIDGE"""
import os
import shutil
import subprocess
import sys

COMPOSITOR, BRIDGE = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, os.path.join(HERE, "support"))
from gos_check import check, report  # noqa: E402
import gos_proc  # noqa: E402
from gos_proc import sync  # noqa: E402
from bridge_rig import Fake, Rig, run_bridge  # noqa: E402

rig = Rig(COMPOSITOR, "gos-bridge-pool-")
tmp, csock, psock, comp, proxy = rig.tmp, rig.csock, rig.psock, rig.comp, rig.proxy
fakes = [Fake(), Fake(), Fake()]
hosts = [f"127.0.0.1:{f.port}" for f in fakes]


def bridge(*args, **kw):
    return run_bridge(BRIDGE, proxy, fakes, psock, *args, **kw)


def done_streams(r):
    return [s["stream"] for s in r.states if s["state"] == "done"]


def by_host(streams):
    return [sum(1 for s in streams if s.startswith(f"m@{h}:")) for h in hosts]


# ---- --spread: nine generations over three servers ----

before = sync(csock)["tokens"]
r = bridge("--url", fakes[0].url("ok,n=20,delay=0.01"), "--url", fakes[1].url("ok,n=20,delay=0.01"),
           "--url", fakes[2].url("ok,n=20,delay=0.01"), "--model", "m", "--prompt", "x",
           "--parallel", "9", "--spread")
check(r.rc == 0 and [len(q) for q in r.reqs_by] == [3, 3, 3],
      f"--parallel 9 --spread: each server gets three (rc={r.rc}, {[len(q) for q in r.reqs_by]})")
ds = done_streams(r)
check(len(ds) == 9 and by_host(ds) == [3, 3, 3] and all(s.rsplit(":", 1)[1].isdigit() for s in ds),
      f"...streams named MODEL@HOST:PORT:RUN:N, three per server: {sorted(ds)[:3]}...")
check(sync(csock)["tokens"] == before + 180, "...180 tokens on the map")
check(all("via 127.0.0.1:" in s.get("message", "") and "breaker closed" in s["message"] for s in r.states),
      f"...every neural_state says which server and its breaker: {r.states[0].get('message')}")
check("pool:" in r.err and r.err.count("breaker closed") >= 3, f"...the summary gives each breaker: {r.err.strip()[-300:]}")

# without --spread, max=N caps fill the URLs in order
r = bridge("--url", fakes[0].url("ok,n=10,delay=0.02") + ",max=4", "--url", fakes[1].url("ok,n=10,delay=0.02") + ",max=4",
           "--url", fakes[2].url("ok,n=10,delay=0.02"), "--model", "m", "--prompt", "x", "--parallel", "9")
check(r.rc == 0 and [len(q) for q in r.reqs_by] == [4, 4, 1],
      f"max=4, max=4, no cap, in order: 4, 4, 1 (rc={r.rc}, {[len(q) for q in r.reqs_by]})")
p = subprocess.run([BRIDGE, "--url", fakes[0].url("ok") + ",max=0", "--prompt", "x"], capture_output=True, text=True)
check(p.returncode == 2 and "max=" in p.stderr, f"max=0: exit 2 ({p.stderr.strip()})")

# ---- one server fails: its breaker opens, its jobs move ----

r = bridge("--url", fakes[0].url("ok,n=20,delay=0.02"), "--url", fakes[1].url("ok,n=20,delay=0.02"),
           "--url", fakes[2].url("status,code=500,key=down"), "--model", "m", "--prompt", "x",
           "--parallel", "9", "--spread", "--breaker-failures", "3", "--breaker-cooldown", "30")
n = [len(q) for q in r.reqs_by]
check(r.rc == 0 and n[2] == 3 and n[0] + n[1] == 9,
      f"a failing server: three failures, then no more requests; its jobs go to the others (rc={r.rc}, {n})")
ds = done_streams(r)
check(len(ds) == 9 and by_host(ds)[2] == 0, f"...all nine done, named by the servers that made them: {by_host(ds)}")
check(f"{hosts[2]}: breaker open after 3 failures" in r.err and f"{hosts[2]} 3 attempts (3 failed) breaker open" in r.err,
      f"...said, and the summary shows it open: {r.err.strip()[-400:]}")

# ---- it recovers: the half-open probe closes the breaker ----

r = bridge("--url", fakes[0].url("ok,n=20,delay=0.1") + ",max=3", "--url", fakes[1].url("ok,n=20,delay=0.1") + ",max=3",
           "--url", fakes[2].url("status,code=500,fails=3,key=back,n=20,delay=0.02") + ",max=3",
           "--model", "m", "--prompt", "x", "--parallel", "9", "--spread", "--breaker-cooldown", "0.3")
n = [len(q) for q in r.reqs_by]
check(r.rc == 0 and n == [3, 3, 6], f"back after 3 failures: its 3 jobs wait (caps), a probe, then all three there "
      f"(rc={r.rc}, {n}, {r.err.strip()[-300:]})")
check("breaker half-open" in r.err and "the probe worked: breaker closed" in r.err
      and f"{hosts[2]} 6 attempts (3 failed) breaker closed" in r.err, f"...said, summary closed: {r.err.strip()[-300:]}")
check(any("breaker half-open" in s.get("message", "") for s in r.states),
      "...the probe's neural_state says half-open")
check(len(done_streams(r)) == 9 and by_host(done_streams(r)) == [3, 3, 3], f"...nine done: {by_host(done_streams(r))}")

rc, err = gos_proc.stop_compositor(comp)
check(rc == 0, f"gos-compositor shut down cleanly (rc={rc}): {err.strip()[-300:]}")
for f in fakes:
    f.stop()
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("test_bridge_pool"))
