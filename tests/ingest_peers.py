#!/usr/bin/python3
"""Who produces (issue 16): the socket is 0600 by default; --socket-group
GROUP makes it 0660 and GROUP's; an unknown group is refused at start with
one sentence (exit 1); each producer connection is logged with its peer's
uid and pid (SO_PEERCRED) and counted by uid on /metrics.

usage: ingest_peers.py GOS_COMPOSITOR   (run by ctest)"""
import grp
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, check, metric, report  # noqa: E402

COMPOSITOR = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="gos-peers-")

c = Compositor(COMPOSITOR, tmp=tmp)
st = os.stat(c.sock)
check(stat.S_IMODE(st.st_mode) == 0o600, f"the socket is 0600 by default ({oct(st.st_mode)})")
c.stop()

gid = os.getgid()
name = grp.getgrgid(gid).gr_name
c = Compositor(COMPOSITOR, f"--socket-group={name}", tmp=tmp)
st = os.stat(c.sock)
check(stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == gid,
      f"--socket-group {name}: 0660 and the group's ({oct(st.st_mode)}, gid {st.st_gid})")
# two producers: each logged with this process's uid and pid, counted
for _ in range(2):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(c.sock)
    s.sendall(b'{"type":"sync"}\n')
    s.recv(4096)
    s.close()
time.sleep(0.3)
want = f"connected: uid {os.getuid()}, pid {os.getpid()}"
check(c.stderr().count(want) == 2, f"each producer connection is logged with uid and pid ({want!r})")
n = metric(c.metrics(), "gos_ingest_producer_connections_total", f'uid="{os.getuid()}"')
check(n == 2, f"/metrics counts them by uid ({n})")
c.stop()

p = subprocess.run([COMPOSITOR, "--headless", "--no-journal", "--no-listen", "--socket",
                    os.path.join(tmp, "x.sock"), "--socket-group", "no-such-group-gos"],
                   capture_output=True, text=True, timeout=30)
check(p.returncode == 1 and 'no group "no-such-group-gos"' in p.stderr,
      f"an unknown group is refused at start: {p.returncode} {p.stderr.strip()!r}")
sys.exit(report("ingest_peers"))
