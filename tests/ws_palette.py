#!/usr/bin/python3
"""The web viewer draws with the same confidence palettes as the GPU shader:
the tables viewer.js builds (viridis, red-green in OKLab, alpha ramp, unknown
gray) equal what tools/gen_palette.py writes into shaders/gos_palette.h.

usage: ws_palette.py   (run by ctest; needs node)"""
import importlib.util
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import check, report  # noqa: E402

SOURCE = os.environ.get("GOS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
spec = importlib.util.spec_from_file_location("gen_palette", os.path.join(SOURCE, "tools", "gen_palette.py"))
gp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gp)

# Evaluate the palette part of viewer.js (it needs no DOM) in node.
js = r"""
const s = require('fs').readFileSync(process.argv[1], 'utf8');
const a = s.indexOf('const PALETTE_N'), b = s.indexOf('const PALETTES = {');
if (a < 0 || b < 0) { console.log('null'); process.exit(0); }
eval(s.slice(a, b) + "const P = { 'viridis': VIRIDIS, 'red-green': redGreen() };" +
  "console.log(JSON.stringify({n: PALETTE_N, v: P['viridis'], rg: P['red-green'], " +
  "amin: ALPHA_MIN, ar: ALPHA_RANGE, unk: UNKNOWN}));");
"""
out = subprocess.run(["node", "-e", js, os.path.join(SOURCE, "assets", "web", "viewer.js")],
                     capture_output=True, text=True, timeout=30)
got = json.loads(out.stdout) if out.returncode == 0 else None
check(got is not None, f"viewer.js palettes evaluate in node: {out.stderr.strip()}")
if got:
    def diff(a, b):
        return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)) if len(a) == len(b) else 1
    check(got["n"] == gp.N, f"same number of entries ({got['n']} vs {gp.N})")
    check(diff(got["v"], gp.VIRIDIS) < 1e-9, "viridis entries equal the shader's")
    check(diff(got["rg"], gp.red_green()) < 1e-9, "red-green entries equal the shader's")
    check((got["amin"], got["ar"]) == (gp.ALPHA_MIN, gp.ALPHA_RANGE), "same alpha ramp")
    check(tuple(got["unk"]) == tuple(gp.UNKNOWN_RGBA), "same unknown-confidence gray")
sys.exit(report("ws_palette"))
