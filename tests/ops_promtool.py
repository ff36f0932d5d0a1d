#!/usr/bin/env python3
"""promtool check rules gos-rules.yml (MODE check), or promtool test rules
gos-rules.test.yml, the rules' unit tests (MODE test). Skips (77) where
promtool is missing, which in CI (tools/setup.sh installs Debian's
prometheus) is a failure.

usage: ops_promtool.py check|test ASSETS_PROMETHEUS_DIR"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_proc import skip  # noqa: E402

mode, folder = sys.argv[1], sys.argv[2]
name = f"prometheus_rules_{mode}"
if not shutil.which("promtool"):
    skip(name, "promtool not found (Debian's prometheus package; tools/setup.sh installs it)")
target = "gos-rules.yml" if mode == "check" else "gos-rules.test.yml"
r = subprocess.run(["promtool", mode, "rules", target], cwd=folder)
print(f"{name}: promtool {mode} rules {target}: exit {r.returncode}", flush=True)
sys.exit(1 if r.returncode else 0)
