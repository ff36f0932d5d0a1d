#!/usr/bin/python3
"""gos-feed --realtime against a real gos-compositor (--no-render: no GPU),
as a user runs it: a recording (docs/recording.md) of 20 token events with
"_t" spread over 2 s, and one line without "_t", replayed at --speed 4
takes at least 0.4 s and every event is applied; the same file without
--realtime is plain input. Bad --speed values, --speed without --realtime
and a malformed "_t" exit 2 with a sentence; after a bad "_t" the lines
before it are applied and none after. Times are held to lower bounds only
(and a generous sanity limit): machines are noisy."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_check import check, report  # noqa: E402
from gos_proc import start_compositor, stop_compositor, sync  # noqa: E402

COMPOSITOR, FEED = sys.argv[1], sys.argv[2]
T0 = 1764582000.123


def feed(sock, *args, stdin=None, timeout=60):
    """(returncode, stderr, wall seconds) of one gos-feed run."""
    start = time.monotonic()
    r = subprocess.run([FEED, "--socket", sock, *args], input=stdin, capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stderr, time.monotonic() - start


def tok(name, t=None):
    line = ('{"type":"token_activation","token_id":"%s","token_text":" %s","timestamp":1.5,'
            '"confidence":0.5' % (name, name))
    return line + (',"_t":%.3f}' % t if t is not None else "}")


def tokens_on_map(sock):
    return sync(sock).get("tokens", -1)


def wait_tokens(sock, want, within=10.0):
    """The map's token count once it reaches want (or the last one seen)."""
    deadline = time.monotonic() + within
    n = tokens_on_map(sock)
    while n != want and time.monotonic() < deadline:
        time.sleep(0.05)
        n = tokens_on_map(sock)
    return n


tmp = tempfile.mkdtemp(prefix="gos-feed-realtime-")
sock = os.path.join(tmp, "gos.sock")
extra = ["--no-render"]
# The compositor will journal by default (docs/journal.md); this test needs no journal.
helptext = subprocess.run([COMPOSITOR, "--help"], capture_output=True, text=True).stdout
if "--no-journal" in helptext:
    extra.append("--no-journal")
p = start_compositor(COMPOSITOR, sock, *extra)
check(p.poll() is None, "the compositor started")

# A recording: 20 events, "_t" from T0 to T0 + 2 s, and a neural_state
# without "_t" in the middle (it goes with the line before it).
rec = os.path.join(tmp, "rec.jsonl")
lines = [tok("r%d" % i, T0 + i * 2.0 / 19) for i in range(20)]
lines.insert(10, '{"type":"neural_state","state":"processing","tokens_processed":10}')
with open(rec, "w") as f:
    f.write("\n".join(lines) + "\n")

rc, err, wall = feed(sock, "--realtime", "--speed", "4", rec)
print(f"--realtime --speed 4 over 2 s of recording: {wall:.3f} s; {err.strip()}")
check(rc == 0, f"--realtime: exit {rc}: {err.strip()}")
check(wall >= 0.4, f"--realtime --speed 4 of 2 s took only {wall:.3f} s (at least 0.5 s expected)")
check(wall < 30, f"--realtime --speed 4 of 2 s took {wall:.3f} s")
m = re.search(r"replayed 21 lines in ([0-9.]+) s \(2\.000 s of recording at speed 4\): "
              r"applied 21, rejected 0; 20 tokens on the map", err)
check(m is not None, f"summary line: {err.strip()}")
if m:
    check(float(m.group(1)) >= 0.4, f"the summary's wall time {m.group(1)} s is under 0.4 s")
check(tokens_on_map(sock) == 20, "the compositor holds the 20 tokens")

# Without --realtime the same file is plain input: every line, no pacing asked.
rc, err, _ = feed(sock, rec)
check(rc == 0 and "sent 21 lines" in err and "applied 21, rejected 0" in err,
      f"plain gos-feed of a recording: exit {rc}: {err.strip()}")

# From stdin, at --speed 1000, a line without "_t" first: all applied.
rc, err, _ = feed(sock, "--realtime", "--speed", "1000", "-",
                  stdin=tok("s0") + "\n" + tok("s1", T0) + "\n" + tok("s2", T0 + 1) + "\n")
check(rc == 0 and "replayed 3 lines" in err and "applied 3, rejected 0" in err,
      f"--realtime from stdin: exit {rc}: {err.strip()}")

# Bad command lines: exit 2, a sentence naming the flag.
for args, needle in ((["--realtime", "--speed", "0", rec], "--speed"),
                     (["--realtime", "--speed", "abc", rec], "--speed"),
                     (["--realtime", "--speed", "-1", rec], "--speed"),
                     (["--realtime", "--speed", "1001", rec], "--speed"),
                     (["--speed", "2", rec], "only with --realtime"),
                     (["--realtime", "--synthetic"], "--synthetic")):
    rc, err, _ = feed(sock, *args)
    check(rc == 2 and needle in err and "gos-feed:" in err,
          f"gos-feed {' '.join(args)}: exit {rc}, {err.strip()!r}")

# A malformed "_t" stops the replay there: exit 2 naming file and line, the
# lines before it applied, none after.
before = tokens_on_map(sock)
for i, bad in enumerate(('"soon"', "1e999", "12x", "", "null")):
    path = os.path.join(tmp, "bad%d.jsonl" % i)
    with open(path, "w") as f:
        f.write(tok("b%d-1" % i, T0) + "\n" + tok("b%d-2" % i, T0 + 0.01) + "\n" +
                tok("b%d-3" % i)[:-1] + ',"_t":' + bad + "}\n" +
                tok("b%d-4" % i, T0 + 0.03) + "\n")
    rc, err, _ = feed(sock, "--realtime", "--speed", "10", path)
    check(rc == 2 and f"{path}:3:" in err and '"_t"' in err and "nothing after" in err,
          f'"_t":{bad}: exit {rc}, {err.strip()!r}')
    before += 2
    check(wait_tokens(sock, before) == before, f'"_t":{bad}: the 2 lines before it are on the map')
time.sleep(0.3)
check(tokens_on_map(sock) == before, "no line after a bad \"_t\" reached the map")
rc, err, _ = feed(sock, "--realtime", "-", stdin=tok("c1", T0) + "\n" + tok("c2")[:-1] + ',"_t":x}\n')
check(rc == 2 and "stdin:2:" in err, f"a bad \"_t\" on stdin names stdin:2: exit {rc}, {err.strip()!r}")

rc, err = stop_compositor(p)
check(rc == 0, f"the compositor stopped cleanly (rc={rc}) {err[-300:]}")
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("test_feed_realtime"))
