#!/usr/bin/python3
"""The window under Xvfb, as a user runs it: gos-compositor opens a window with
a Vulkan swapchain, renders 120 frames while events flow in (the demo stream
and gos-feed on the socket at the same time), is resized twice and toggled to
fullscreen and back (--exercise), and closes; the validation layer (on, by
GOS_VALIDATION=1) must report no error. Exit 77 when there is no Vulkan device
or no xvfb-run."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_check import check, failures, report  # noqa: E402
from gos_proc import skip  # noqa: E402

COMPOSITOR, FEED = sys.argv[1], sys.argv[2]


if not shutil.which("xvfb-run"):
    skip("test_window", "xvfb-run not installed")

with tempfile.TemporaryDirectory() as d:
    sock = os.path.join(d, "gos.sock")
    env = dict(os.environ, GOS_VALIDATION="1")
    p = subprocess.Popen(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", COMPOSITOR,
                          "--socket", sock, "--demo", "--frames", "120", "--exercise",
                          "--size", "960x600", "--log-interval", "0", "--no-listen", "--no-journal"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(1500):
        if os.path.exists(sock) or p.poll() is not None:
            break
        time.sleep(0.01)
    feed = subprocess.run([FEED, "--socket", sock, "--synthetic", "--count", "3000",
                           "--rate", "1500", "--streams", "3", "--quiet"],
                          capture_output=True, text=True, timeout=60)
    try:
        out, err = p.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    if "no Vulkan device" in err or "no usable Vulkan device" in err:
        skip("test_window", "no Vulkan device")
    sys.stderr.write(err)
    check(p.returncode == 0, f"gos-compositor exited {p.returncode}")
    check("120 frames in" in err, "it did not report 120 frames")
    check("rendering headless" not in err, "it fell back to headless instead of opening a window")
    import re
    sizes = re.findall(r"swapchain (\d+x\d+)", err)
    check(len(set(sizes)) >= 4, f"expected the swapchain at 960x600, two resizes and fullscreen, got {sizes}")
    check("validation reported" not in err, "Vulkan validation reported errors")
    # The producer kept going while the window was resized: everything it
    # sent before the window closed was accepted (feed exits 0, or 3 when the
    # compositor closed the socket first at the end of its 120 frames).
    check(feed.returncode in (0, 3), f"gos-feed exited {feed.returncode}: {feed.stderr}")
    check("rejected" not in feed.stderr, f"gos-feed saw rejections: {feed.stderr}")

sys.exit(report("test_window"))
