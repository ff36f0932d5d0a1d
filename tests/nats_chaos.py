#!/usr/bin/python3
"""A NATS node dies under gos (issue 15, docs/scale-out.md): a real 3-node
nats-server cluster on loopback (routes between them, JetStream clustered:
what gos creates gets 3 replicas), two gos-compositor --nats (a leader and a
standby), a gos-relay connected to the third node only, and two gos-feed
--nats producers publishing while the third node is killed (-9):
- the system continues: both producers' syncs complete (exit 0), every
  event is on the leader's map once;
- the relay, whose NATS connection dropped, reconnects to another node
  (discovered from the cluster), catches up, and ends with the leader's
  /export byte for byte, no record out of its seq chain;
- exactly one compositor leads after it (a leader whose change-log publish
  failed while the stream's leader moved stops with exit 3 and is started
  again, as its supervisor would: then it follows as a standby);
- then the leader is killed too (two failures): the standby takes over on
  the two nodes left, and a producer's events still arrive;
- the killed node comes back and rejoins.

usage: nats_chaos.py GOS_COMPOSITOR GOS_FEED GOS_RELAY   (run by ctest)"""
import json
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from nats_util import NatsCluster, Producer, Relay, available  # noqa: E402
from ws_util import Compositor, check, http_raw, metric, report  # noqa: E402

COMPOSITOR, FEED, RELAY = sys.argv[1:4]
if not available():
    print("nats_chaos: nats-server is not installed (tools/setup.sh installs it)", file=sys.stderr)
    sys.exit(1)

tmp = tempfile.mkdtemp(prefix="gos-chaos-")
cluster = NatsCluster(3)
check(cluster.ready(), "the 3-node NATS cluster has JetStream up")
URL = cluster.url


def node(name):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    return Compositor(COMPOSITOR, "--no-render", "--nats", URL, "--lease-ms", "1500",
                      f"--state-dir={d}/state", tmp=d)


def get(port, path):
    try:
        st, _, body = http_raw(port, path)
    except OSError:
        return None
    return body if st in (200, 503) else None


def health(port):
    b = get(port, "/health")
    return json.loads(b) if b else {}


def export(port):
    return get(port, "/export?format=csv")


def wait(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


a = node("a")
check(wait(lambda: health(a.port).get("role") == "leader"), "a compositor leads")
b = node("b")
check(wait(lambda: health(b.port).get("role") == "standby"), "another follows as a standby")
victim = cluster.nodes[2]
relay = Relay(RELAY, victim.url, tmp)   # knows only the node that dies (and what it discovers)

# a NATS node dies while two producers publish
SYNC = ("--sync-timeout", "120")
p1 = Producer(FEED, URL, "one", 4000, 2000, extra=SYNC)
p2 = Producer(FEED, URL, "two", 4000, 2000, extra=SYNC)
time.sleep(0.8)
victim.proc.send_signal(signal.SIGKILL)
victim.proc.wait()
rc1, rc2 = p1.wait(), p2.wait()
check(rc1 == 0 and rc2 == 0, f"both producers' syncs complete with a NATS node dead "
      f"({rc1}: {p1.err[-300:]!r}; {rc2}: {p2.err[-300:]!r})")


def leaders():
    return [c for c in nodes.values() if c.proc.poll() is None and
            health(c.port).get("role") == "leader"]


# A leader whose change-log publish failed while the stream moved to another
# node stops (exit 3) and its standby takes over; either way one leads.
nodes = {"a": a, "b": b}
check(wait(lambda: len(leaders()) == 1, timeout=30), f"exactly one leader after the node died "
      f"({[(k, c.proc.poll(), health(c.port).get('role')) for k, c in nodes.items()]})")
lead = leaders()[0] if leaders() else a
check(wait(lambda: health(lead.port).get("tokens") == 8000, timeout=60),
      f"every event is on the leader's map ({health(lead.port).get('tokens')} of 8000)")
check(metric(lead.metrics() or "", "gos_tokens_updated_total") == 0, "none applied twice")
for k, c in nodes.items():
    if c.proc.poll() is not None:
        check(c.proc.returncode == 3, f"a stopped leader exits 3 ({c.proc.returncode})")
        nodes[k] = node(k)   # its supervisor starts it again
other = [c for c in nodes.values() if c is not lead][0]
check(wait(lambda: health(other.port).get("role") == "standby"), "the other one is a standby")
check(wait(lambda: export(relay.port) == export(lead.port), timeout=60),
      "the relay reconnects to another node and ends with the leader's /export")
rh = health(relay.port)
check(rh.get("nats", {}).get("reconnects", 0) >= 1 and rh.get("nats", {}).get("connected"),
      f"the relay's /health shows the reconnection ({rh.get('nats')})")
check(rh.get("replica", {}).get("mismatched") == 0, f"no record out of its chain ({rh.get('replica')})")
check(wait(lambda: export(other.port) == export(lead.port), timeout=60), "the standby is in step")

# then the leader dies too: the standby takes over on the two nodes left
lead.proc.send_signal(signal.SIGKILL)
lead.proc.wait()
check(wait(lambda: health(other.port).get("role") == "leader", timeout=20),
      f"the standby takes over with a NATS node down ({health(other.port).get('role')})")
b = other
p3 = Producer(FEED, URL, "three", 1000, 2000, extra=SYNC)
rc3 = p3.wait()
check(rc3 == 0 and wait(lambda: health(b.port).get("tokens") == 9000, timeout=60),
      f"and consumes ({rc3}, {health(b.port).get('tokens')} of 9000)")
check(wait(lambda: export(relay.port) == export(b.port), timeout=60),
      "the relay follows the new leader")

# the dead node comes back
victim.start()
check(cluster.ready(), "the killed node rejoins the cluster")
p4 = Producer(FEED, URL, "four", 500, 2000, extra=SYNC)
check(p4.wait() == 0 and wait(lambda: health(b.port).get("tokens") == 9500, timeout=60),
      f"events flow with all three nodes again ({health(b.port).get('tokens')} of 9500)")

relay.stop()
b.stop()
cluster.cleanup()
sys.exit(report("nats_chaos"))
