#!/usr/bin/python3
"""gos-shot --socket: a picture of a running compositor's map, as a user takes
it. A headless gos-compositor (validation on) gets tests/data/render_small.jsonl
through gos-feed; gos-shot --socket writes a PNG of the compositor's size
(with a relative --out too) that differs from the picture taken before the
feed (which says 0 tokens), and with --fit it matches gos-shot --input --fit
of the same recording at the same size within the image tests' tolerance:
that is the check that the tokens, text and colors are there. The same
recording with an arrival time "_t" on every line (docs/recording.md) gives
gos-shot --input the same pixels. Errors: a
relative path is rejected by the protocol with an error line, an unwritable
directory answers ok:false with a reason (exit 1), and a missing socket exits
4 with a sentence. The compositor must report no validation error.
Exit 77 without a Vulkan device."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_check import check, failures, report  # noqa: E402
from gos_proc import skip  # noqa: E402
from png_read import read_png  # noqa: E402

COMPOSITOR, SHOT, FEED, DATA = (os.path.abspath(p) for p in sys.argv[1:5])
REC = os.path.join(DATA, "render_small.jsonl")
W, H = 640, 360
THRESHOLD, MAX_PCT = 16, 0.1   # as in tests/test_render_image.c


def differing_pct(a, b):
    """Percent of pixels with some channel differing by more than THRESHOLD."""
    n = 0
    for ra, rb in zip(a[2], b[2]):
        for x in range(0, len(ra), 3):
            if (abs(ra[x] - rb[x]) > THRESHOLD or abs(ra[x + 1] - rb[x + 1]) > THRESHOLD or
                    abs(ra[x + 2] - rb[x + 2]) > THRESHOLD):
                n += 1
    return 100.0 * n / (a[0] * a[1])


def shot(sock, out, *extra, timeout=60):
    return subprocess.run([SHOT, "--socket", sock, "--out", out, *extra],
                          capture_output=True, text=True, timeout=timeout)


def send_lines(sock, lines, n_replies, timeout=20):
    """Sends raw lines on one connection and returns the first n_replies answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall("".join(l + "\n" for l in lines).encode())
    s.settimeout(timeout)
    buf = b""
    while buf.count(b"\n") < n_replies:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return [json.loads(l) for l in buf.decode().splitlines()]


with tempfile.TemporaryDirectory() as d:
    sock = os.path.join(d, "gos.sock")
    env = dict(os.environ, GOS_VALIDATION="1")
    log = open(os.path.join(d, "compositor.log"), "w+")
    comp = subprocess.Popen([COMPOSITOR, "--headless", "--no-listen", "--no-journal", "--socket", sock,
                             "--size", f"{W}x{H}", "--log-interval", "0"],
                            stderr=log, stdout=log, env=env)
    try:
        for _ in range(200):
            if os.path.exists(sock) or comp.poll() is not None:
                break
            time.sleep(0.05)
        check(os.path.exists(sock), "the compositor did not open its socket")

        # Before any token: a picture of the empty map.
        empty = os.path.join(d, "empty.png")
        r = shot(sock, empty)
        log.seek(0)
        if r.returncode == 1 and "rendering is off" in r.stderr and "no usable Vulkan device" in log.read():
            skip("test_shot_socket", "no Vulkan device")
        check(r.returncode == 0 and "0 tokens" in r.stdout,
              f"empty map: exit {r.returncode}, {r.stdout!r} {r.stderr!r}")

        f = subprocess.run([FEED, "--socket", sock, REC], capture_output=True, text=True, timeout=60)
        check(f.returncode == 0, f"gos-feed exited {f.returncode}: {f.stderr}")

        # The current view, path given relative to the working directory.
        r = subprocess.run([SHOT, "--socket", sock, "--out", "cur.png"], cwd=d,
                           capture_output=True, text=True, timeout=60)
        cur = os.path.join(d, "cur.png")
        check(r.returncode == 0 and cur in r.stdout and f"({W}x{H}, 151 tokens)" in r.stdout,
              f"current view: exit {r.returncode}, {r.stdout!r} {r.stderr!r}")
        if os.path.exists(cur) and os.path.exists(empty):
            a, b = read_png(cur), read_png(empty)
            check((a[0], a[1]) == (W, H), f"current view is {a[0]}x{a[1]}, not {W}x{H}")
            pct = differing_pct(a, b)
            print(f"current view vs empty map: {pct:.2f}% of pixels differ")
            check(pct > 1.0, f"the picture barely differs from the empty map ({pct:.3f}%): tokens not drawn")
        else:
            check(False, "cur.png or empty.png was not written")

        # --fit: the same picture gos-shot --input --fit makes of the recording.
        fit = os.path.join(d, "fit.png")
        r = shot(sock, fit, "--fit")
        check(r.returncode == 0, f"--fit: exit {r.returncode}, {r.stderr!r}")
        ref = os.path.join(d, "ref.png")
        rr = subprocess.run([SHOT, "--input", REC, "--out", ref, "--fit", "--size", f"{W}x{H}",
                             "--quiet"], capture_output=True, text=True, timeout=120, env=env)
        check(rr.returncode == 0, f"gos-shot --input exited {rr.returncode}: {rr.stderr}")
        if r.returncode == 0 and rr.returncode == 0:
            a, b = read_png(fit), read_png(ref)
            check((a[0], a[1]) == (b[0], b[1]) == (W, H), "--fit picture sizes differ")
            pct = differing_pct(a, b)
            print(f"--socket --fit vs --input --fit: {pct:.3f}% of pixels differ (limit {MAX_PCT}%)")
            check(pct <= MAX_PCT, f"--socket --fit differs from --input --fit in {pct:.3f}% of pixels")

        # A recording (docs/recording.md: each line with an arrival time "_t"
        # as its last key) gives gos-shot --input the very same picture.
        rec_t = os.path.join(d, "rec_t.jsonl")
        with open(REC) as src, open(rec_t, "w") as dst:
            for i, line in enumerate(src):
                line = line.rstrip("\n")
                dst.write(line[:-1] + ',"_t":%.3f}\n' % (1764582000.123 + i * 0.01) if line else "\n")
        ref_t = os.path.join(d, "ref_t.png")
        rt = subprocess.run([SHOT, "--input", rec_t, "--out", ref_t, "--fit", "--size", f"{W}x{H}",
                             "--quiet"], capture_output=True, text=True, timeout=120, env=env)
        check(rt.returncode == 0 and rt.stderr.count("gos-shot:") == 0,
              f"gos-shot --input of a recording with \"_t\": exit {rt.returncode}, {rt.stderr}")
        if rr.returncode == 0 and rt.returncode == 0:
            check(read_png(ref_t) == read_png(ref), "a recording with \"_t\" draws a different picture")

        # Errors.
        r = shot(sock, os.path.join(d, "no-such-dir", "x.png"))
        check(r.returncode == 1 and "could not take the picture" in r.stderr and
              "no-such-dir" in r.stderr, f"unwritable: exit {r.returncode}, {r.stderr!r}")
        replies = send_lines(sock, ['{"type":"screenshot","path":"rel.png"}',
                                    '{"type":"screenshot","path":"%s","fit":1}' % fit,
                                    '{"type":"screenshot","path":"/%s"}' % ("a" * 4096),
                                    '{"type":"screenshot","path":"%s/nodir/y.png"}' % d], 4)
        check(len(replies) == 4, f"expected 4 answers, got {replies}")
        if len(replies) == 4:
            check(replies[0]["type"] == "error" and "absolute" in replies[0]["reason"],
                  f"relative path: {replies[0]}")
            check(replies[1]["type"] == "error" and replies[1]["code"] == "wrong_type" and
                  "fit" in replies[1]["reason"], f"fit not a bool: {replies[1]}")
            check(replies[2]["type"] == "error" and replies[2]["code"] == "too_long",
                  f"path too long: {replies[2]}")
            check(replies[3]["type"] == "screenshot" and replies[3]["ok"] is False and
                  "No such file" in replies[3]["reason"], f"unwritable over the wire: {replies[3]}")
        r = shot(os.path.join(d, "missing.sock"), os.path.join(d, "m.png"))
        check(r.returncode == 4 and "cannot connect to the compositor" in r.stderr,
              f"missing socket: exit {r.returncode}, {r.stderr!r}")
        r = shot(sock, fit, "--input", REC)
        check(r.returncode == 2 and "exclude each other" in r.stderr,
              f"--input with --socket: exit {r.returncode}, {r.stderr!r}")
    finally:
        comp.terminate()
        try:
            rc = comp.wait(timeout=30)
        except subprocess.TimeoutExpired:
            comp.kill()
            rc = comp.wait()
        log.seek(0)
        text = log.read()
        check(rc == 0, f"the compositor exited {rc}")
        check("validation reported" not in text, "the compositor reported validation errors")
        if failures():
            sys.stderr.write(text)

sys.exit(report("test_shot_socket"))
