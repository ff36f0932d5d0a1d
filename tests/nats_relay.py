#!/usr/bin/python3
"""gos-relay (issue 15 step 3, docs/scale-out.md) with a real nats-server, a
real gos-compositor --nats and real relays:
- events published over NATS reach the compositor and, through the change
  log, a relay: same seq, and the relay's /export is the compositor's, byte
  for byte (same tokens, positions, indexes, ranks, in the same order);
- a relay started later rebuilds the whole map from the log's start;
- a gos.v1 viewer of the relay gets the map in its snapshot;
- /health: "role" leader and relay, the relay's lag and NATS state.

usage: nats_relay.py GOS_COMPOSITOR GOS_FEED GOS_RELAY   (run by ctest)"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
import nats_util  # noqa: E402
from nats_util import NatsServer, available  # noqa: E402
from ws_util import Compositor, RawViewer, check, http_raw, metric, report  # noqa: E402

COMPOSITOR, FEED, RELAY = sys.argv[1:4]
if not available():
    print("nats_relay: nats-server is not installed (tools/setup.sh installs it)", file=sys.stderr)
    sys.exit(1)


def Relay(url, tmp):
    return nats_util.Relay(RELAY, url, tmp)


def export(port):
    st, _, body = http_raw(port, "/export?format=csv")
    return body if st == 200 else None


def wait_seq(relay, seq, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = relay.health()
        if h and h["seq"] == seq:
            return True
        time.sleep(0.1)
    return False


def tok(i):
    return json.dumps({"type": "token_activation", "token_id": f"r{i}", "token_text": f" t{i % 97}",
                       "timestamp": 1000.0 + i * 0.01, "confidence": (i % 100) / 100,
                       "stream": f"m:run:{i % 3 + 1}",
                       "top_logprobs": [{"token": f" t{i % 97}", "logprob": -0.2},
                                        {"token": " x", "logprob": -1.5}]})


tmp = tempfile.mkdtemp(prefix="gos-relay-test-")
nats = NatsServer()
c = Compositor(COMPOSITOR, "--nats", nats.url, tmp=tmp)
r1 = Relay(nats.url, tmp)
p = subprocess.run([FEED, "--nats", nats.url, "-"], input="\n".join(tok(i) for i in range(3000)) + "\n",
                   capture_output=True, text=True, timeout=120)
check(p.returncode == 0, f"gos-feed --nats: {p.returncode} {p.stderr!r}")
# a state update and an update of a token (same id, new text) go through too
p = subprocess.run([FEED, "--nats", nats.url, "-"], input="\n".join([
    json.dumps({"type": "neural_state", "state": "done", "stream": "m:run:1", "tokens_processed": 1000,
                "total_tokens": 1000, "finish_reason": "stop", "model": "m"}),
    json.dumps({"type": "token_activation", "token_id": "r5", "token_text": " changed",
                "timestamp": 2000.0, "confidence": 0.5, "stream": "m:run:3"})]) + "\n",
                   capture_output=True, text=True, timeout=60)
check(p.returncode == 0, f"a state and an update: {p.returncode} {p.stderr!r}")
hc = c.health()
check(hc["role"] == "leader" and hc["nats"]["connected"] and hc["nats"]["log_records"] >= 3002,
      f"the compositor is the leader and publishes its change log: {hc.get('nats')}")
check(wait_seq(r1, hc["seq"]), f"the relay reaches the compositor's seq {hc['seq']} ({r1.health()})")
e_c, e_r = export(c.port), export(r1.port)
check(e_c is not None and e_c == e_r and e_c.count(b"\n") == 3001,
      f"the relay's export is the compositor's, byte for byte ({len(e_c or b'')} vs {len(e_r or b'')} bytes)")
hr = r1.health()
check(hr["role"] == "relay" and hr["nats"]["connected"] and hr["lag"]["records"] == 0 and
      hr["replica"]["mismatched"] == 0, f"the relay's /health: {hr}")

# /metrics: the relay's lag and NATS state, the leader's change log (promtool reads both)
st, _, mr = http_raw(r1.port, "/metrics")
mc = c.metrics()
mr = mr.decode() if st == 200 else ""
check(metric(mr, "gos_nats_connected") == 1 and metric(mr, "gos_replica_lag_records") == 0 and
      metric(mr, "gos_replica_records_total") >= 3002 and metric(mr, "gos_replica_mismatched_total") == 0,
      "the relay's /metrics: connected, no lag, every record, none mismatched")
check(metric(mc, "gos_leader") == 1 and metric(mc, "gos_nats_log_records_total") >= 3002 and
      metric(mc, "gos_nats_log_failed_total") == 0, "the leader's /metrics: its change log")
for name, text in (("relay", mr), ("compositor", mc)):
    pc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    check(pc.returncode == 0, f"promtool check metrics accepts the {name}'s /metrics: {pc.stderr[:300]!r}")

r2 = Relay(nats.url, tmp)
check(wait_seq(r2, hc["seq"]), "a relay started later rebuilds the map from the log")
check(export(r2.port) == e_c, "... the same map")

v = RawViewer(r2.port, protocol="gos.v1")
snap = None
for _ in range(50):
    m = v.recv_json()
    if m and m.get("type") == "snapshot":
        snap = m
        break
check(snap is not None and len(snap["tokens"]) == 3000 and snap["seq"] == hc["seq"],
      f"a gos.v1 viewer of the relay gets the whole map ({len(snap['tokens']) if snap else None})")
v.close()

rc1, rc2 = r1.stop(), r2.stop()
check(rc1 == 0 and rc2 == 0, f"relays stop cleanly on SIGTERM ({rc1}, {rc2}: {r1.stderr()[-300:]!r})")
c.stop()
nats.cleanup()
sys.exit(report("nats_relay"))
