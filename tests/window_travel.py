#!/usr/bin/python3
"""Time travel in the native window (issue 11), driven as a user would: a
real gos-compositor window under Xvfb (Vulkan validation on), a journal in
a temp state dir, two bursts of events fed a second apart, then real key
presses through the X server (xdotool: XTEST):
  [  steps back: the window shows the map as it was (a seq before the
     second burst, logged), and a screenshot (S) of it holds fewer tokens'
     pixels than one of the live map;
  L  goes live again;
  Ctrl+S saves the session as a recording: every event fed, in order, and
     not a screenshot;
  E  exports the map's tokens as CSV (issue 13), every token in order;
  .  doubles the speed, Space replays from the start until it goes live.
usage: window_travel.py GOS_COMPOSITOR   (run by ctest)"""
import atexit
import csv
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_check import check, report  # noqa: E402
from gos_proc import skip, sync  # noqa: E402
from png_read import read_png  # noqa: E402

COMPOSITOR = os.path.abspath(sys.argv[1])
for tool in ("xvfb-run", "xdotool"):
    if not shutil.which(tool):
        skip("window_travel", f"{tool} is not installed (tools/setup.sh installs it)")

tmp = tempfile.mkdtemp(prefix="gos-wtravel-")
sock = os.path.join(tmp, "gos.sock")
errpath = os.path.join(tmp, "stderr.txt")
env = dict(os.environ, GOS_VALIDATION="1")
# xdotool runs inside the same xvfb-run, so it talks to the same display
script = os.path.join(tmp, "run.sh")
with open(script, "w") as f:
    f.write(f'"{COMPOSITOR}" --socket "{sock}" --state-dir "{tmp}/state" --size 800x500 '
            f'--log-interval 0 --no-listen 2>"{errpath}" &\n'
            'echo "$DISPLAY $XAUTHORITY" > "' + tmp + '/display"\nwait\n')
p = subprocess.Popen(["xvfb-run", "-a", "-s", "-screen 0 1024x768x24", "sh", script], cwd=tmp,
                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


@atexit.register
def _cleanup():
    """Whatever happened, no compositor or X server outlives the test."""
    try:
        os.killpg(p.pid, 9)
    except ProcessLookupError:
        pass
    shutil.rmtree(tmp, ignore_errors=True)



def log():
    with open(errpath) as f:
        return f.read()


def wait_log(pattern, after=0, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, log()[after:])
        if m:
            return m
        time.sleep(0.05)
    return None


for _ in range(600):
    if os.path.exists(sock) and os.path.exists(os.path.join(tmp, "display")):
        break
    time.sleep(0.05)
if "no usable Vulkan device" in (log() if os.path.exists(errpath) else ""):
    skip("window_travel", "no Vulkan device")
if not os.path.exists(sock):
    print("gos-compositor did not start:", log() if os.path.exists(errpath) else "", file=sys.stderr)
    sys.exit(1)
display, xauth = (open(os.path.join(tmp, "display")).read().split() + [""])[:2]
xenv = dict(os.environ, DISPLAY=display, XAUTHORITY=xauth)


def xdo(*args):
    return subprocess.run(["xdotool", *args], env=xenv, capture_output=True, text=True, timeout=20)


win = None
for _ in range(100):
    r = xdo("search", "--name", "^gos$")
    if r.returncode == 0 and r.stdout.strip():
        win = r.stdout.split()[0]
        break
    time.sleep(0.1)
if not check(win is not None, "the gos window is on the X display"):
    sys.exit(report("window_travel"))


def key(*keys):
    xdo("windowfocus", "--sync", win)
    for k in keys:
        xdo("key", k)
        time.sleep(0.25)


def feed(lines):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(("\n".join(json.dumps(x) for x in lines) + '\n{"type":"sync"}\n').encode())
    s.settimeout(30)
    data = b""
    while b'"sync"' not in data:
        data += s.recv(4096)
    s.close()


def burst(a, b):
    return [{"type": "token_activation", "token_id": f"k{i}", "token_text": f"w{i} ",
             "timestamp": float(i), "confidence": (i % 10) / 10, "stream": "s"} for i in range(a, b)]


feed(burst(0, 150))
first_seq = sync(sock)   # answered once on disk: the first burst is in the journal
time.sleep(1.5)
feed(burst(150, 400))
time.sleep(1.0)          # the window draws the live map, the span refreshes


def shot():
    before = set(glob.glob(os.path.join(tmp, "gos-*.png")))
    key("s")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        new = set(glob.glob(os.path.join(tmp, "gos-*.png"))) - before
        if new:
            time.sleep(0.3)
            return new.pop()
        time.sleep(0.05)
    return None


def ink(path):
    """Pixels brighter than the background."""
    _, _, rows = read_png(path)
    return sum(1 for r in rows for x in range(0, len(r), 3) if r[x] + r[x + 1] + r[x + 2] > 200)


key("Home")
live_png = shot()
mark = len(log())
# back: 1% steps until the map is before the second burst (at most 60 presses)
m = None
for _ in range(60):
    key("bracketleft")
    m = wait_log(r"time travel: the map as of \S+ \(seq (\d+)\)", mark, timeout=5)
    if m and int(m.group(1)) <= first_seq["tokens"] * 2 + 2:
        break
    mark = len(log())
check(m is not None, f"[ shows the map as it was (log: {log()[-300:]!r})")
past_seq = int(m.group(1)) if m else None
check(past_seq is not None and past_seq < 800, f"the window went back before the second burst "
      f"(seq {past_seq})")
key("Home")
past_png = shot()
if live_png and past_png:
    li, pi = ink(live_png), ink(past_png)
    check(pi < li, f"a screenshot of the past holds fewer tokens' pixels ({pi} < {li})")
else:
    check(False, "screenshots of the live and the past map were written")

mark = len(log())
key("l")
check(wait_log(r"time travel: live \(L\)", mark), "L goes live")

mark = len(log())
before = set(glob.glob(os.path.join(tmp, "*")))
key("ctrl+s")
m = wait_log(r"recording saved to (\S+) \((\d+) bytes\)", mark)
check(m is not None, f"Ctrl+S saves the session ({log()[mark:]!r})")
if m:
    lines = open(os.path.join(tmp, m.group(1))).read().splitlines()
    ids = [json.loads(x)["token_id"] for x in lines]
    check(ids == [f"k{i}" for i in range(400)], f"the recording holds every event in order ({len(ids)})")
    check(all("_t" in json.loads(x) for x in lines), "each line has its arrival time")
new = set(glob.glob(os.path.join(tmp, "*"))) - before
check(not [x for x in new if x.endswith(".png")], "Ctrl+S is not a screenshot")

# E exports the map's tokens as CSV (as GET /export?format=csv)
mark = len(log())
key("e")
m = wait_log(r"export saved to (\S+) \((\d+) bytes\)", mark)
check(m is not None, f"E exports the tokens ({log()[mark:]!r})")
if m:
    rows = list(csv.reader(open(os.path.join(tmp, m.group(1)), newline="")))
    check(rows[0][:4] == ["id", "stream", "index", "text"] and
          [r[0] for r in rows[1:]] == [f"k{i}" for i in range(400)],
          f"the export holds every token in arrival order ({len(rows) - 1} rows)")

# color modes and filters: C, R (probability ranges), A (everything again)
mark = len(log())
key("c")
check(wait_log(r"color: logprob \(", mark), f"C switches to log-probability colors ({log()[mark:]!r})")
key("shift+c")
check(wait_log(r"color: confidence \(", mark), "Shift+C goes back")
key("Home")
all_png = shot()
mark = len(log())
key("r")
check(wait_log(r"showing probability below 0.1", mark), "R narrows the probability range")
low_png = shot()
if all_png and low_png:
    a_ink, l_ink = ink(all_png), ink(low_png)
    check(l_ink < a_ink * 0.5, f"only the tokens under 0.1 are drawn ({l_ink} < {a_ink} / 2)")
mark = len(log())
key("a")
check(wait_log(r"every stream and probability shown", mark), "A shows everything again")

# search: / opens the box, typed text, Enter; n the next match; Esc ends it
mark = len(log())
key("slash")
xdo("windowfocus", "--sync", win)
xdo("type", "--delay", "60", "W12")
time.sleep(0.3)
key("Return")
check(wait_log(r'search "W12": match 1 of 11', mark),
      f"/ W12 Enter: 11 matches, case folded (w12, w120..w129) ({log()[mark:]!r})")


def magenta(path):
    _, _, rows = read_png(path)
    return sum(1 for r in rows for x in range(0, len(r), 3)
               if r[x] > 150 and r[x + 2] > 120 and r[x + 1] * 2 < r[x])


key("Home")
hl_png = shot()
check(hl_png is not None and magenta(hl_png) > 100, "the matches are highlighted in the picture")
mark = len(log())
key("n")
check(wait_log(r'search "W12": match 2 of 11', mark), "n goes to the next match")
mark = len(log())
key("Escape")
check(wait_log(r"search off", mark), "Esc ends the search (and does not quit)")

mark = len(log())
key("period", "period", "period", "space")
check(wait_log(r"time travel: replaying at 8x", mark), "., . and . make 8x; Space replays")
check(wait_log(r"time travel: live \(the replay reached the present\)", mark, timeout=30),
      "the replay reaches the present and goes live")

# SIGTERM to the compositor itself (the X server must outlive it)
pids = subprocess.run(["pgrep", "-f", "--", f"--socket {sock}"], capture_output=True,
                      text=True).stdout.split()
for pid in pids:
    os.kill(int(pid), 15)
try:
    p.wait(timeout=30)
except subprocess.TimeoutExpired:
    pass
err = log()
check("Vulkan validation reported" not in err, "no Vulkan validation errors")
check("shutting down" in err, "clean shutdown")
sys.exit(report("window_travel"))
