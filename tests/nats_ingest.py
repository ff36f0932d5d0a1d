#!/usr/bin/python3
"""Remote producers over NATS JetStream (issue 15, docs/scale-out.md), with
a real nats-server and real gos-compositor processes:
- gos-feed --nats publishes while no compositor runs: every event is stored
  (the sync times out, exit 3, and says so); a compositor started later
  applies them all;
- a running compositor applies what gos-feed publishes, and gos-feed's exit
  means applied (its reply counts the map's tokens);
- a malformed event gets the socket's error answer (same reason and code)
  on the producer's reply subject, exit 1, and nothing else changes;
- a compositor on a fresh state dir rebuilds the map from the cluster's
  change log (docs/scale-out.md: the map is the log's);
- a compositor killed (SIGKILL) while events arrive loses none and applies
  none twice: restarted, it has every distinct token once (what it had
  published is in the log; what it had not acked, JetStream redelivers and
  the new leader skips when the log holds it);
- a compositor started before nats-server consumes once the server is up.

- gos-bridge --nats streams a generation from a fake OpenAI server through
  JetStream into the compositor (three parallel generations, one group).

usage: nats_ingest.py GOS_COMPOSITOR GOS_FEED GOS_BRIDGE   (run by ctest)"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from nats_util import NatsServer, available, free_port  # noqa: E402
from bridge_rig import Fake  # noqa: E402
from ws_util import Compositor, check, report  # noqa: E402

COMPOSITOR, FEED, BRIDGE = sys.argv[1], sys.argv[2], sys.argv[3]
if not available():
    print("nats_ingest: nats-server is not installed (tools/setup.sh installs it)", file=sys.stderr)
    sys.exit(1)


def tok(i, stream="s", **kw):
    d = {"type": "token_activation", "token_id": f"n{i}", "token_text": f" w{i}",
         "timestamp": float(i), "confidence": (i % 10) / 10, "stream": stream}
    d.update(kw)
    return json.dumps(d)


def feed(url, lines, *extra, timeout=60):
    p = subprocess.run([FEED, "--nats", url, *extra, "-"], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stderr


def live(c):
    h = c.health()
    return h["tokens"] if h else None


def wait_live(c, n, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if live(c) == n:
            return True
        time.sleep(0.1)
    return False


tmp = tempfile.mkdtemp(prefix="gos-nats-test-")
nats = NatsServer()

# 1. no compositor yet: stored, not confirmed
rc, err = feed(nats.url, [tok(i) for i in range(300)], "--sync-timeout", "1")
check(rc == 3 and "stored in JetStream" in err, f"without a compositor: exit 3, stored ({rc}: {err!r})")

# 2. a compositor starts and applies them, then more
c = Compositor(COMPOSITOR, "--nats", nats.url, tmp=tmp)
check(wait_live(c, 300), f"a compositor started later applies all 300 ({live(c)})")
rc, err = feed(nats.url, [tok(i, stream="other stream.x") for i in range(300, 1300)])
check(rc == 0 and "applied 1000, rejected 0; 1300 tokens on the map" in err,
      f"gos-feed's exit means applied: {rc} {err!r}")
check(live(c) == 1300, f"the map holds 1300 tokens ({live(c)})")

# 3. a malformed event: the socket's answer, on the producer's reply subject
bad = json.dumps({"type": "token_activation", "token_id": "bad", "token_text": "x",
                  "timestamp": 1.0, "confidence": 7})
rc, err = feed(nats.url, [bad, tok(1300)])
line = next((x for x in err.splitlines() if "rejected:" in x), "")
ans = json.loads(line.split("rejected: ", 1)[1]) if line else {}
sock_reply = []
import socket as _s  # noqa: E402
s = _s.socket(_s.AF_UNIX, _s.SOCK_STREAM)
s.connect(c.sock)
s.sendall((bad + '\n{"type":"sync"}\n').encode())
data = b""
s.settimeout(10)
while data.count(b"\n") < 2:
    data += s.recv(4096)
s.close()
sock_ans = json.loads(data.split(b"\n")[0])
check(rc == 1 and ans.get("type") == "error" and ans.get("code") == sock_ans.get("code") and
      ans.get("reason") == sock_ans.get("reason"),
      f"the same error answer as the socket's ({ans} vs {sock_ans}), exit 1 ({rc})")
check(live(c) == 1301, f"the good event after it is applied, nothing else changed ({live(c)})")
c.stop()

# 4. SIGKILL while events arrive: nothing lost
state = os.path.join(tmp, "state")
c = Compositor(COMPOSITOR, "--nats", nats.url, f"--state-dir={state}", tmp=tmp)
time.sleep(0.5)
# the map is the cluster's change log's, whatever the state dir holds
check(wait_live(c, 1301), f"a fresh state dir: the map rebuilt from the change log ({live(c)})")
prod = subprocess.Popen([FEED, "--nats", nats.url, "-"], stdin=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
lines = [tok(i) for i in range(2000, 12000)]
prod.stdin.write("\n".join(lines[:5000]) + "\n")
prod.stdin.flush()
time.sleep(0.3)
c.proc.send_signal(signal.SIGKILL)
c.proc.wait()
prod.stdin.write("\n".join(lines[5000:]) + "\n")
prod.stdin.close()
c = Compositor(COMPOSITOR, "--nats", nats.url, f"--state-dir={state}", tmp=tmp)
out = prod.stderr.read()
prc = prod.wait(timeout=120)
check(prc == 0, f"the producer's sync completes once a compositor is back ({prc}: {out!r})")
check(wait_live(c, 11301, timeout=60),
      f"after kill -9 and a restart every distinct token is there, none twice ({live(c)})")
c.stop()

# 5. a compositor started before NATS consumes once it is up
nats.stop()
c = Compositor(COMPOSITOR, "--nats", nats.url, tmp=tmp)
time.sleep(0.5)
check("not consuming yet" in c.stderr() or "retrying" in c.stderr() or live(c) == 0,
      f"without NATS the compositor starts and says it waits ({c.stderr()[-300:]!r})")
nats.start()
rc, err = feed(nats.url, [tok(i) for i in range(20000, 20100)])
check(rc == 0 and wait_live(c, 11401, timeout=40),
      f"once NATS is up it rebuilds the map from the log and consumes ({rc}, {live(c)})")

# 6. gos-bridge --nats
fake = Fake()
r = subprocess.run([BRIDGE, "--nats", nats.url, "--url", fake.url("ok"), "--parallel", "3",
                    "--prompt", "hi", "--sync-timeout", "30"], capture_output=True, text=True,
                   timeout=120)
n_bridge = (live(c) or 0) - 100
check(r.returncode == 0 and n_bridge > 0, f"gos-bridge --nats: exit 0, its tokens on the map "
      f"({r.returncode}, {n_bridge} tokens: {r.stderr[-400:]!r})")
fake.stop()
c.stop()

nats.cleanup()
sys.exit(report("nats_ingest"))
