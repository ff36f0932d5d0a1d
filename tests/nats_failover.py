#!/usr/bin/python3
"""Hot standby over NATS JetStream (issue 15, docs/scale-out.md), with a real
nats-server, two real gos-compositor --nats processes, a real gos-relay and
two real gos-feed --nats producers:
- the first compositor leads, the second follows the change log as a
  standby (its map, seq and /export equal the leader's);
- kill -9 of the leader while two producers publish: the standby takes over
  (exactly one leader), both producers' syncs complete (exit 0: applied),
  every acknowledged event is on the map once (no token applied twice:
  gos_tokens_updated_total stays 0), the seq chain continues (the relay,
  which only follows the log, ends with the new leader's /export byte for
  byte and no mismatched record);
- the killed one started again follows as a standby;
- SIGSTOP of the leader past its lease: the standby takes over; the old
  leader, woken with SIGCONT, publishes nothing (exit 3, "no longer the
  leader") and the log and the new leader's map are unchanged by it;
- a SIGTERM'd leader hands its lease over at once.

usage: nats_failover.py GOS_COMPOSITOR GOS_FEED GOS_RELAY   (run by ctest)"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from nats_util import NatsServer, Producer, Relay, available  # noqa: E402
from ws_util import Compositor, check, http_raw, metric, report  # noqa: E402

COMPOSITOR, FEED, RELAY = sys.argv[1:4]
if not available():
    print("nats_failover: nats-server is not installed (tools/setup.sh installs it)",
          file=sys.stderr)
    sys.exit(1)

LEASE = ["--lease-ms", "1500"]
tmp = tempfile.mkdtemp(prefix="gos-failover-")
nats = NatsServer()


def node(name):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    return Compositor(COMPOSITOR, "--no-render", "--nats", nats.url, *LEASE,
                      f"--state-dir={d}/state", tmp=d)


def health(c):
    try:
        return c.health()
    except OSError:
        return None


def role(c):
    h = health(c)
    return h.get("role") if h else None


def wait(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def export(port):
    try:
        st, _, body = http_raw(port, "/export?format=csv")
    except OSError:
        return None
    return body if st == 200 else None


def live(port):
    try:
        st, _, body = http_raw(port, "/health")
    except OSError:
        return -1
    return json.loads(body)["tokens"] if st in (200, 503) else -1


def updated(c):
    return metric(c.metrics() or "", "gos_tokens_updated_total")


# 1. a leader and a standby
a = node("a")
check(wait(lambda: role(a) == "leader"), f"the first compositor leads ({role(a)})")
b = node("b")
check(wait(lambda: role(b) == "standby"), f"the second follows as a standby ({role(b)})")
relay = Relay(RELAY, nats.url, tmp)
p = Producer(FEED, nats.url, "warm", 2000, 4000)
check(p.wait() == 0, f"a producer's events applied ({p.err!r})")
check(wait(lambda: live(b.port) == 2000 and live(relay.port) == 2000),
      f"the standby and a relay follow the leader ({live(b.port)}, {live(relay.port)})")
check(wait(lambda: export(a.port) == export(b.port)),
      "the standby's /export equals the leader's, byte for byte")

# 2. kill -9 of the leader under two producers
p1 = Producer(FEED, nats.url, "one", 6000, 3000)
p2 = Producer(FEED, nats.url, "two", 6000, 3000)
time.sleep(0.7)
t_kill = time.monotonic()
a.proc.send_signal(signal.SIGKILL)
a.proc.wait()
check(wait(lambda: role(b) == "leader", timeout=15), f"the standby takes over ({role(b)})")
took = time.monotonic() - t_kill
print(f"nats_failover: takeover after kill -9 in {took:.2f} s", flush=True)
rc1, rc2 = p1.wait(), p2.wait()
check(rc1 == 0 and rc2 == 0, f"both producers' syncs complete through the failover "
      f"({rc1}: {p1.err[-300:]!r}; {rc2}: {p2.err[-300:]!r})")
check(wait(lambda: live(b.port) == 14000, timeout=60),
      f"every acknowledged event is on the new leader's map ({live(b.port)} of 14000)")
check(updated(b) == 0, f"no event applied twice (gos_tokens_updated_total {updated(b)})")
check(wait(lambda: export(relay.port) == export(b.port), timeout=30),
      "the relay (the log alone) ends with the new leader's /export: the seq chain continues")
rh = relay.health() or {}
check(rh.get("replica", {}).get("mismatched") == 0,
      f"no record broke the relay's seq chain ({rh.get('replica')})")
hb = health(b) or {}
check(hb.get("lease", {}).get("takeovers") == 1 and hb.get("nats", {}).get("skipped", 0) >= 0,
      f"/health shows the takeover ({hb.get('lease')}, {hb.get('nats')})")

# 3. the killed one comes back as a standby
a = node("a")
check(wait(lambda: role(a) == "standby"), f"restarted, it follows as a standby ({role(a)})")
check(wait(lambda: export(a.port) == export(b.port), timeout=30),
      "its map is rebuilt from the log: /export equals the leader's")

# 4. SIGSTOP of the leader past its lease
p3 = Producer(FEED, nats.url, "three", 3000, 3000)
time.sleep(0.5)
b.proc.send_signal(signal.SIGSTOP)
check(wait(lambda: role(a) == "leader", timeout=15), f"the standby takes over from a paused "
      f"leader ({role(a)})")
rc3 = p3.wait()
check(rc3 == 0, f"the producer's sync completes ({rc3}: {p3.err[-300:]!r})")
check(wait(lambda: live(a.port) == 17000, timeout=60),
      f"every acknowledged event is on the new leader's map ({live(a.port)} of 17000)")
before = export(a.port)
b.proc.send_signal(signal.SIGCONT)
try:
    rcb = b.proc.wait(timeout=20)
except subprocess.TimeoutExpired:
    rcb = None
check(rcb == 3 and "no longer the leader" in b.stderr(),
      f"the deposed leader stops when it wakes up (exit {rcb}: {b.stderr()[-400:]!r})")
time.sleep(1.0)
check(export(a.port) == before and updated(a) == 0,
      "the woken leader changed nothing on the new leader's map")
check(wait(lambda: export(relay.port) == export(a.port), timeout=30),
      "nor in the log: the relay still equals the leader")
rh = relay.health() or {}
check(rh.get("replica", {}).get("mismatched") == 0,
      f"no record broke the relay's seq chain ({rh.get('replica')})")
leaders = [c for c in (a,) if role(c) == "leader"]
check(len(leaders) == 1, "exactly one leader")

# 5. a SIGTERM'd leader hands over at once
b = node("b")
check(wait(lambda: role(b) == "standby" and export(b.port) == export(a.port), timeout=30),
      f"a third start follows as a standby ({role(b)})")
t0 = time.monotonic()
rca = a.stop()
check(rca == 0, f"SIGTERM: exit 0 ({rca})")
check(wait(lambda: role(b) == "leader", timeout=10), f"the standby leads ({role(b)})")
print(f"nats_failover: takeover after SIGTERM in {time.monotonic() - t0:.2f} s", flush=True)
p4 = Producer(FEED, nats.url, "four", 500, 5000)
check(p4.wait() == 0 and wait(lambda: live(b.port) == 17500),
      f"and consumes ({live(b.port)} of 17500)")

b.stop()
relay.stop()
nats.cleanup()
sys.exit(report("nats_failover"))
