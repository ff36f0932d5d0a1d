#!/usr/bin/python3
"""A full disk under the journal (issue 11): gos-compositor's state dir is a
small tmpfs mounted in its own mount namespace. When the journal cannot
write, syncs are not answered, /health says 503 with the reason and
/metrics gos_journal_stalled is 1; when space returns (the test deletes a
filler file through /proc/PID/root), writing resumes, the waiting sync is
answered, and every event fed is on the map and in the journal.

Needs root (mount); in CI (root) it never skips.

usage: journal_disk.py GOS_COMPOSITOR   (run by ctest)"""
import glob
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_proc import skip  # noqa: E402
from journal_util import event_records  # noqa: E402
from ws_util import Compositor, RawViewer, check, metric, report  # noqa: E402

COMPOSITOR = sys.argv[1]
if os.geteuid() != 0 or not shutil.which("unshare"):
    skip("journal_disk", "needs root and unshare(1) to mount a small tmpfs")

tmp = tempfile.mkdtemp(prefix="gos-disk-")
mnt = os.path.join(tmp, "state")
os.mkdir(mnt)
wrap = os.path.join(tmp, "wrap.sh")
with open(wrap, "w") as f:
    f.write("#!/bin/sh\n"
            f"exec unshare -m sh -c 'mount -t tmpfs -o size=2m tmpfs \"{mnt}\" && exec \"$0\" \"$@\"' "
            f"\"{COMPOSITOR}\" \"$@\"\n")
os.chmod(wrap, stat.S_IRWXU)

c = Compositor(wrap, "--no-render", "--state-dir", mnt, "--checkpoint-events", "100000000",
               "--checkpoint-s", "86400", "--tick-ms", "20")
inside = f"/proc/{c.proc.pid}/root{mnt}"
check(os.path.isdir(os.path.join(inside, "journal")), f"the journal is on the tmpfs ({inside})")
free = os.statvfs(inside)
avail = free.f_bavail * free.f_frsize
filler = os.path.join(inside, "filler")
with open(filler, "wb") as f:
    f.write(b"\0" * max(0, avail - 160 * 1024))       # leave ~160 KiB


def token(i):
    return json.dumps({"type": "token_activation", "token_id": f"d{i}", "token_text": f"w{i} ",
                       "timestamp": float(i), "confidence": 0.5, "stream": "disk"})


s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(c.sock)
pending = b""


def readline():
    """One reply line; socket.timeout when none comes in time."""
    global pending
    while b"\n" not in pending:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        pending += chunk
    line, pending = pending.split(b"\n", 1)
    return line


fed, acked, stalled_at = 0, 0, None
s.settimeout(3)
while fed < 20000:
    s.sendall(("\n".join(token(fed + k) for k in range(200)) + '\n{"type":"sync"}\n').encode())
    fed += 200
    try:
        line = readline()
    except (socket.timeout, TimeoutError):
        stalled_at = fed
        break
    if json.loads(line).get("type") == "sync":
        acked = fed
check(stalled_at is not None, f"the journal filled the disk and a sync waited ({acked} acked)")

h = c.health()
st, _, _ = c.http("/health")
check(st == 503, f"/health answers 503 while the disk is full (got {st})")
check(h and h["journal"]["ok"] is False and "disk full" in h["journal"].get("reason", ""),
      f"/health names the reason: {h and h.get('journal')}")
m = c.metrics()
check(metric(m, "gos_journal_stalled") == 1, "gos_journal_stalled is 1")
pt = subprocess.run(["promtool", "check", "metrics"], input=m, capture_output=True, text=True)
check(pt.returncode == 0, f"/metrics with the journal passes promtool: {pt.stdout}{pt.stderr}")
check((metric(m, "gos_journal_write_errors_total") or 0) >= 1, "write errors are counted")
check("disk full" in c.stderr() or "No space" in c.stderr(), "the log says so")
# acknowledged is never more than what is on disk
h2 = c.health()
check(h2["journal"]["durable_seq"] <= h2["seq"], "durable seq never passes the map's")

os.unlink(filler)                                   # space returns
s.settimeout(30)
reply = None
try:
    while reply is None:
        msg = json.loads(readline())
        if msg.get("type") == "sync":
            reply = msg
except (socket.timeout, TimeoutError, ValueError, EOFError):
    pass
check(reply is not None and reply["applied"] == fed,
      f"the waiting sync is answered once space returns: {reply}")
st, _, _ = c.http("/health")
check(st == 200, f"/health is 200 again (got {st})")
check(metric(c.metrics(), "gos_journal_stalled") == 0, "gos_journal_stalled is 0 again")
check("writing again" in c.stderr(), "the log says writing resumed")
s.close()


on_disk = sum(len(event_records(p)) for p in glob.glob(os.path.join(inside, "journal", "*.seg")))
check(on_disk == fed, f"every event fed is in the journal ({on_disk} of {fed})")
v = RawViewer(c.port)
snap = None
while snap is None:
    msg = v.recv_json()
    if msg and msg.get("type") == "snapshot":
        snap = msg
v.close()
check(len(snap["tokens"]) == fed, f"every event fed is on the map ({len(snap['tokens'])})")
check(c.stop() == 0, "clean exit")
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("journal_disk"))
