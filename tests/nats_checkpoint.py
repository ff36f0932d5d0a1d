#!/usr/bin/python3
"""Checkpoints on JetStream (issue 15, docs/scale-out.md), with a real
nats-server, real gos-compositor --nats processes and a real gos-relay:
- the leader publishes a checkpoint of its map (--nats-checkpoint-s 1);
- the change log before the checkpoint is purged (as its age limit would),
  and a relay started then builds the map from the checkpoint and the log
  after it: its /export equals the leader's, byte for byte;
- a standby started then does too (a seek to before the checkpoint is
  refused: its journal starts there), takes over when the leader is killed,
  and the relay follows it: events after the takeover arrive once;
- /health and /metrics say so.

usage: nats_checkpoint.py GOS_COMPOSITOR GOS_FEED GOS_RELAY   (run by ctest)"""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from nats_util import NatsServer, Relay, available, js_request  # noqa: E402
from ws_util import Compositor, RawViewer, check, http_raw, metric, report  # noqa: E402

COMPOSITOR, FEED, RELAY = sys.argv[1:4]
if not available():
    print("nats_checkpoint: nats-server is not installed (tools/setup.sh installs it)",
          file=sys.stderr)
    sys.exit(1)

tmp = tempfile.mkdtemp(prefix="gos-ckpt-")
nats = NatsServer()


def node(name):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    return Compositor(COMPOSITOR, "--no-render", "--nats", nats.url, "--lease-ms", "1000",
                      "--nats-checkpoint-s", "1", f"--state-dir={d}/state", tmp=d)


def health(port):
    try:
        st, _, body = http_raw(port, "/health")
    except OSError:
        return {}
    return json.loads(body) if st in (200, 503) else {}


def export(port):
    try:
        st, _, body = http_raw(port, "/export?format=csv")
    except OSError:
        return None
    return body if st == 200 else None


def wait(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def feed(start, n):
    lines = [json.dumps({"type": "token_activation", "token_id": f"t{i}", "token_text": f"w{i} ",
                         "stream": f"s{i % 3}", "timestamp": 1.0 + i * 0.01,
                         "confidence": (i % 100) / 100}) for i in range(start, start + n)]
    return subprocess.run([FEED, "--nats", nats.url, "-"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=120).returncode


a = node("a")
check(wait(lambda: health(a.port).get("role") == "leader"), "a compositor leads")
check(feed(0, 3000) == 0, "3000 events applied")
seq = health(a.port).get("seq")
check(wait(lambda: health(a.port).get("checkpoint", {}).get("seq") == seq, timeout=20),
      f"the leader publishes a checkpoint at its seq {seq} ({health(a.port).get('checkpoint')})")
check(feed(3000, 1000) == 0, "1000 more applied")

# what the log held before the checkpoint goes (its age limit, sooner)
idx = js_request(nats.port, "$JS.API.STREAM.MSG.GET.GOS_CKPT",
                 json.dumps({"last_by_subj": "gos.ckpt.index"}).encode())
index = json.loads(base64.b64decode(idx["message"]["data"])) if idx and "message" in idx else {}
check(index.get("seq") == seq and index.get("parts", 0) >= 1,
      f"the checkpoint's index names its seq and parts ({index})")
purged = js_request(nats.port, "$JS.API.STREAM.PURGE.GOS_LOG",
                    json.dumps({"seq": index.get("log_pos", 0) + 1}).encode())
check(purged and purged.get("success") and purged.get("purged", 0) >= 1000,
      f"the log before the checkpoint is purged ({purged})")

relay = Relay(RELAY, nats.url, tmp)
check(wait(lambda: export(relay.port) == export(a.port), timeout=30),
      "a relay started after the purge builds the leader's map: checkpoint + log after it")
rh = health(relay.port)
check(rh.get("checkpoint", {}).get("started_from_seq") == seq and rh.get("tokens") == 4000,
      f"the relay says it started from the checkpoint ({rh.get('checkpoint')}, {rh.get('tokens')})")

b = node("b")
check(wait(lambda: health(b.port).get("role") == "standby" and export(b.port) == export(a.port),
           timeout=30), "a standby started after the purge has the leader's map")
check(health(b.port).get("checkpoint", {}).get("started_from_seq", 0) >= seq,
      f"from a checkpoint ({health(b.port).get('checkpoint')})")
# its local journal starts at the checkpoint it adopted: a seek before that
# is refused, not answered with a map missing everything before it
v = RawViewer(b.port)
v.s.settimeout(10)
v.send(json.dumps({"type": "seek", "seq": 10}))
ans = None
try:
    for _ in range(200):
        m = v.recv_json()
        if m.get("type") == "error" or m.get("mode") == "seek":
            ans = m
            break
except (OSError, EOFError) as e:
    ans = {"exception": repr(e)}
v.close()
check(ans is not None and ans.get("code") == "seek_range",
      f"a seek before the adopted checkpoint is refused ({ans})")
a.proc.send_signal(signal.SIGKILL)
a.proc.wait()
check(wait(lambda: health(b.port).get("role") == "leader", timeout=15), "the standby takes over")
check(feed(4000, 500) == 0 and wait(lambda: health(b.port).get("tokens") == 4500),
      f"and applies what comes next ({health(b.port).get('tokens')} of 4500)")
check(metric(b.metrics() or "", "gos_tokens_updated_total") == 0, "none applied twice")
check(wait(lambda: export(relay.port) == export(b.port), timeout=30),
      "the relay follows the new leader")
m = b.metrics() or ""
check((metric(m, "gos_nats_checkpoints_total") or 0) >= 0 and
      metric(m, "gos_nats_checkpoint_failures_total") == 0,
      "/metrics counts checkpoints and no failure")
check(wait(lambda: (metric(b.metrics() or "", "gos_nats_checkpoints_total") or 0) >= 1,
           timeout=15), "the new leader publishes checkpoints too")

relay.stop()
b.stop()
nats.cleanup()
sys.exit(report("nats_checkpoint"))
