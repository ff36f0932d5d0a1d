#!/usr/bin/python3
"""gos-compositor and gos-feed end to end, as a user runs them: flags, exit
codes, the socket file's life, feeding files and synthetic load, the demo."""
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_check import check, failures, report  # noqa: E402
from gos_proc import start_compositor, stop_compositor, sync  # noqa: E402

COMPOSITOR, FEED = sys.argv[1], sys.argv[2]


def start(sock, *extra):
    return start_compositor(COMPOSITOR, sock, *extra)


def stop(p):
    return stop_compositor(p)


def feed(sock, *args, stdin=None):
    r = subprocess.run([FEED, "--socket", sock, *args], input=stdin, capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stderr


def tok(i, text="tok", conf=0.5):
    return ('{"type":"token_activation","token_id":"id%d","token_text":"%s","timestamp":1.0,'
            '"confidence":%s}' % (i, text, conf))


tmp = tempfile.mkdtemp(prefix="gos-programs-")
sock = os.path.join(tmp, "gos.sock")

# flags and exit codes
r = subprocess.run([COMPOSITOR, "--help"], capture_output=True, text=True)
check(r.returncode == 0 and "--socket" in r.stdout and "--demo" in r.stdout, "--help exits 0 and lists flags")
r = subprocess.run([COMPOSITOR, "--version"], capture_output=True, text=True)
check(r.returncode == 0 and r.stdout.startswith("gos-compositor "), "--version")
r = subprocess.run([FEED, "--version"], capture_output=True, text=True)
check(r.returncode == 0 and r.stdout.startswith("gos-feed "), "gos-feed --version")
r = subprocess.run([COMPOSITOR, "--bogus"], capture_output=True, text=True)
check(r.returncode == 2 and "--bogus" in r.stderr, "unknown flag: exit 2 naming it")
r = subprocess.run([COMPOSITOR, "--max-tokens", "ten"], capture_output=True, text=True)
check(r.returncode == 2 and "--max-tokens" in r.stderr, "bad --max-tokens: exit 2")
r = subprocess.run([COMPOSITOR, "--layout", "spiral"], capture_output=True, text=True)
check(r.returncode == 2 and "--layout" in r.stderr, "bad --layout: exit 2")
r = subprocess.run([FEED, "--socket", sock, "-"], input="", capture_output=True, text=True)
check(r.returncode == 3 and "cannot connect" in r.stderr, "gos-feed with no compositor: exit 3, clear message")

# a stale socket file from a dead process is replaced
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sock)
s.close()
p = start(sock)
check(p.poll() is None, "compositor starts over a stale socket file")
check(stat.S_IMODE(os.stat(sock).st_mode) == 0o600, "socket file mode 0600")

# a second compositor on a live socket is refused
r = subprocess.run([COMPOSITOR, "--headless", "--no-listen", "--no-journal", "--socket", sock], capture_output=True, text=True, timeout=10)
check(r.returncode == 1 and "already listening" in r.stderr, "live socket: exit 1, clear message")
check(os.path.exists(sock), "the live socket survives the refused start")

# a file with good and bad lines
lines = "\n".join([tok(1), "{oops", tok(2, conf=1.5), tok(3)]) + "\n"
rc, err = feed(sock, "-", stdin=lines)
check(rc == 1, f"gos-feed exits 1 when a line is rejected (rc={rc})")
check("line\":2" in err and "line\":3" in err, "both rejected lines are reported with their numbers")
check("applied 2, rejected 2" in err, f"summary counts: {err.strip()}")
# the same id again updates, it does not add
rc, err = feed(sock, "-", stdin=tok(1, "changed") + "\n")
check(rc == 0 and "2 tokens on the map" in err, f"same token_id updates: {err.strip()}")
# length-prefixed framing
fr = os.path.join(tmp, "lines.jsonl")
with open(fr, "w") as f:
    f.write("\n".join(tok(100 + i) for i in range(50)) + "\n")
rc, err = feed(sock, "--length-prefixed", fr)
check(rc == 0 and "applied 50, rejected 0" in err, f"length-prefixed feed: {err.strip()}")
# synthetic load
rc, err = feed(sock, "--synthetic", "--count", "20000", "--streams", "3")
check(rc == 0 and "applied 20000, rejected 0" in err and "20052 tokens" in err, f"synthetic: {err.strip()}")
# neural_state and token_visualization are accepted
extra = ('{"type":"neural_state","state":"processing","tokens_processed":1,"total_tokens":9,"elapsed_ms":5}\n'
         '{"type":"token_visualization","tokens":[{"id":"v1","text":"a","x":1,"y":2},{"id":"v2","text":"b","x":3,"y":4}]}\n')
rc, err = feed(sock, "-", stdin=extra)
check(rc == 0 and "20054 tokens" in err, f"neural_state + token_visualization: {err.strip()}")

rc, err = stop(p)
check(rc == 0, f"SIGTERM: clean exit (rc={rc}) {err[-300:]}")
check(not os.path.exists(sock), "SIGTERM removes the socket file")

# --max-tokens evicts the oldest
p = start(sock, "--max-tokens", "100")
rc, err = feed(sock, "--synthetic", "--count", "1000")
check(rc == 0 and "100 tokens on the map" in err, f"--max-tokens 100 caps the map: {err.strip()}")
stop(p)

# the demo stream fills the map while nobody is connected
p = start(sock, "--demo")
time.sleep(1.5)
r = sync(sock)
check(r.get("type") == "sync" and r.get("tokens", 0) > 5, f"demo put tokens on the map: {r}")
rc, err = stop(p)
check(rc == 0, "demo compositor stops cleanly")

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("test_programs"))
