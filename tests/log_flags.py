#!/usr/bin/python3
"""gos-compositor's --log-level and --log-format: with json every stderr
line is one object (time, level, subsystem, msg) and the start-up lines are
there, named by subsystem; so is the journal's restore line after a
restart, and its warning about a torn last record; warn leaves out info
lines but keeps the exposure warning; error leaves that out too; bad values
exit 2. The web server's own lines (subsystem ws) are JSON too: --max-http 1
and two idle connections make it say it closes the oldest. Start-up
failures at run time (a busy --listen port, a socket in a folder that is
not there) are main's error lines, JSON with --log-format json, exit 1;
command-line errors stay plain text, exit 2. gos-relay takes the same two
flags: a busy port is relay's error line.

usage: log_flags.py GOS_COMPOSITOR [GOS_RELAY]   (run by ctest)"""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, check, report  # noqa: E402

COMPOSITOR = sys.argv[1]
RELAY = sys.argv[2] if len(sys.argv) > 2 else None

c = Compositor(COMPOSITOR, "--no-render", "--log-format", "json", "--listen", "0.0.0.0:0",
               "--max-http", "1")
c.feed([])
idle = [socket.create_connection(("127.0.0.1", c.port)) for _ in range(2)]
deadline = time.monotonic() + 10
while time.monotonic() < deadline and "the most allowed" not in c.stderr():
    time.sleep(0.05)
for s in idle:
    s.close()
c.proc.terminate()
c.proc.wait(timeout=20)
lines = c.stderr().splitlines()
rc = c.stop()
objs = []
for ln in lines:
    try:
        objs.append(json.loads(ln))
    except ValueError:
        check(False, f"json: a stderr line is not JSON: {ln!r}")
check(rc == 0 and objs and all(set(o) == {"time", "level", "subsystem", "msg"} for o in objs),
      f"json: every line has time, level, subsystem, msg ({objs})")
by = [(o["subsystem"], o["level"], o["msg"]) for o in objs]
check(any(s == "web" and l == "info" and m.startswith("web viewer at http://0.0.0.0:")
          for s, l, m in by), f"json: the viewer URL is web's info line ({by})")
check(any(s == "web" and l == "warn" and "clear text" in m for s, l, m in by),
      "json: the exposure warning is web's warn line")
check(any(s == "main" and l == "info" and "listening for producers" in m for s, l, m in by),
      "json: main says where producers connect")
check(any(s == "ws" and l == "warn" and "HTTP connections, the most allowed" in m
          for s, l, m in by), f"json: the web server's own line is ws's warn line ({by})")
check(all(o["time"].endswith("Z") and len(o["time"]) == 24 for o in objs), "json: UTC times in ms")


def json_lines(text, what):
    """The stderr lines as objects; a line that is not one fails the check."""
    out = []
    for ln in text.splitlines():
        try:
            out.append(json.loads(ln))
        except ValueError:
            check(False, f"{what}: a stderr line is not JSON: {ln!r}")
    return out


# The journal's restore: a session, then a restart from its state dir with
# the last record torn (a few bytes cut off the newest segment).
state = tempfile.mkdtemp(prefix="gos-log-flags-state-")
try:
    c = Compositor(COMPOSITOR, "--no-render", "--log-format", "json", f"--state-dir={state}")
    c.feed([{"type": "token_activation", "token_id": f"t{i}", "token_text": "w",
             "timestamp": 1707345600.0 + i, "confidence": 0.5} for i in range(20)])
    c.stop()
    seg = sorted(glob.glob(os.path.join(state, "journal", "*.seg")))[-1]
    os.truncate(seg, os.path.getsize(seg) - 3)
    c = Compositor(COMPOSITOR, "--no-render", "--log-format", "json", f"--state-dir={state}")
    c.proc.terminate()
    c.proc.wait(timeout=20)
    objs = json_lines(c.stderr(), "restore")
    rc = c.stop()
    by = [(o.get("subsystem"), o.get("level"), o.get("msg", "")) for o in objs]
    check(rc == 0 and any(s == "journal" and l == "info" and m.startswith("restored the last session from ")
                          for s, l, m in by), f"json: the restore is journal's info line ({by})")
    check(any(s == "journal" and l == "warn" and "torn" in m and "dropped" in m for s, l, m in by),
          f"json: the torn record is journal's warn line ({by})")
finally:
    shutil.rmtree(state, ignore_errors=True)



def run_for_a_while(*args):
    """A compositor on 0.0.0.0 (any port) for a second, then SIGTERM: (exit, stderr)."""
    p = subprocess.Popen([COMPOSITOR, "--no-render", "--no-journal", "--listen", "0.0.0.0:0",
                          "--socket", f"/tmp/gos-log-flags-{os.getpid()}.sock", *args],
                         stderr=subprocess.PIPE, text=True)
    try:
        return p.returncode, p.communicate(timeout=1.5)[1]
    except subprocess.TimeoutExpired:
        p.terminate()
        out = p.communicate(timeout=20)[1]
        return p.returncode, out


rc, err = run_for_a_while("--log-level", "warn")
check(rc == 0 and "listening for producers" not in err and "web viewer at" not in err and
      err.startswith("gos [web] warning: port ") and err.count("\n") == 1,
      f"warn: info lines left out, the warning kept ({rc} {err!r})")
rc, err = run_for_a_while("--log-level", "error")
check(rc == 0 and err == "", f"error: a clean run writes nothing ({rc} {err!r})")

for prog in (COMPOSITOR, RELAY) if RELAY else (COMPOSITOR,):
    name = os.path.basename(prog)
    for flag, value in (("--log-level", "loud"), ("--log-format", "xml")):
        r = subprocess.run([prog, flag, value], capture_output=True, text=True, timeout=10)
        check(r.returncode == 2 and r.stderr.startswith(f"{name}: ") and flag in r.stderr and
              value in r.stderr,
              f"{name} {flag} {value}: exit 2 naming it, plain text ({r.returncode} {r.stderr!r})")


def fails_with_json(what, args, subsys, says):
    """Runs args expecting a start-up failure at run time: exit 1, every
    stderr line a JSON object, one of them subsys's error line containing says."""
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    objs = json_lines(r.stderr, what)
    errors = [o for o in objs if o.get("level") == "error"]
    check(r.returncode == 1 and objs and len(errors) == 1 and errors[0].get("subsystem") == subsys and
          says in errors[0].get("msg", ""),
          f"{what}: exit 1, {subsys}'s one error line in JSON saying {says!r} ({r.returncode} {r.stderr!r})")


busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
port = busy.getsockname()[1]
tmp = tempfile.mkdtemp(prefix="gos-log-flags-")
try:
    fails_with_json("a busy --listen port",
                    [COMPOSITOR, "--no-render", "--no-journal", "--log-format", "json",
                     "--socket", os.path.join(tmp, "gos.sock"), "--listen", f"127.0.0.1:{port}"],
                    "main", str(port))
    missing = os.path.join(tmp, "no-such-dir", "gos.sock")
    fails_with_json("a socket in a missing folder",
                    [COMPOSITOR, "--no-render", "--no-journal", "--log-format", "json",
                     "--socket", missing, "--listen", "127.0.0.1:0"],
                    "main", missing)
    r = subprocess.run([COMPOSITOR, "--no-render", "--no-journal", "--socket", missing,
                        "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "gos [main] error: " in r.stderr and missing in r.stderr,
          f"text: the same failure is main's error line ({r.returncode} {r.stderr!r})")
    if RELAY:
        # the busy port; NATS need not be there (the relay keeps trying it
        # in the background), port 1 refuses at once
        fails_with_json("gos-relay on a busy --listen port",
                        [RELAY, "--nats", "nats://127.0.0.1:1", "--log-format", "json",
                         "--listen", f"127.0.0.1:{port}"],
                        "relay", str(port))
finally:
    busy.close()
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(report("log_flags"))
