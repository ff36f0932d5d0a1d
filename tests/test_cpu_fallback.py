#!/usr/bin/python3
"""--cpu-compute and the fallback to it, in the programs as a user runs them:
gos-compositor --headless renders frames of the demo stream with the token
projection on the CPU, asked for (--cpu-compute) or fallen back to when the
GPU token pipeline fails at start-up (forced by the test hook
GOS_FORCE_COMPUTE_FAIL=1): it keeps rendering, exits 0, logs the fallback on
one line with its reason, and the validation layer (on) reports no error.
Both programs document the flag in --help. Exit 77 without a Vulkan device."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_check import check, failures, report  # noqa: E402
from gos_proc import skip  # noqa: E402

COMPOSITOR, SHOT = sys.argv[1], sys.argv[2]
FALLBACK = "the GPU token pipeline failed ("
INSTEAD = "using the CPU reference instead (--cpu-compute)"


def compositor(d, name, *extra, env_extra=None):
    env = dict(os.environ, GOS_VALIDATION="1")
    env.pop("GOS_FORCE_COMPUTE_FAIL", None)
    env.update(env_extra or {})
    r = subprocess.run([COMPOSITOR, "--headless", "--no-journal", "--demo", "--frames", "15", "--size", "480x270",
                        "--socket", os.path.join(d, name + ".sock"), "--log-interval", "0", *extra],
                       capture_output=True, text=True, timeout=60, env=env)
    if "no usable Vulkan device" in r.stderr:
        skip("test_cpu_fallback", "no Vulkan device")
    sys.stderr.write(r.stderr)
    return r


for prog in (COMPOSITOR, SHOT):
    h = subprocess.run([prog, "--help"], capture_output=True, text=True, timeout=10)
    check(h.returncode == 0 and "--cpu-compute" in h.stdout, f"{prog} --help documents --cpu-compute")

with tempfile.TemporaryDirectory() as d:
    r = compositor(d, "forced", env_extra={"GOS_FORCE_COMPUTE_FAIL": "1"})
    check(r.returncode == 0, f"forced failure: gos-compositor exited {r.returncode}")
    check("15 frames in" in r.stderr, "forced failure: it did not render its 15 frames")
    lines = [l for l in r.stderr.splitlines() if FALLBACK in l]
    check(len(lines) == 1 and INSTEAD in lines[0] and "GOS_FORCE_COMPUTE_FAIL" in lines[0],
          f"forced failure: the fallback is not logged on one line with its reason: {lines}")
    check("validation reported" not in r.stderr, "forced failure: validation errors")

    r = compositor(d, "asked", "--cpu-compute")
    check(r.returncode == 0 and "15 frames in" in r.stderr,
          f"--cpu-compute: exited {r.returncode} or did not render its frames")
    check("projecting tokens on the CPU (--cpu-compute)" in r.stderr and FALLBACK not in r.stderr,
          "--cpu-compute: the CPU path is not said, or a failure was reported")
    check("validation reported" not in r.stderr, "--cpu-compute: validation errors")

    r = compositor(d, "plain")
    check(r.returncode == 0 and "15 frames in" in r.stderr, "plain run failed")
    check(FALLBACK not in r.stderr and "projecting tokens on the CPU" not in r.stderr,
          "a plain run took the CPU path")

sys.exit(report("test_cpu_fallback"))
