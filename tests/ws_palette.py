#!/usr/bin/python3
"""The web viewer draws with the same confidence palettes as the GPU shader:
the tables viewer.js builds (viridis, red-green in OKLab, alpha ramp, unknown
gray) equal what tools/gen_palette.py writes into shaders/gos_palette.h, and
so do its color modes' constants (logprob decades, entropy max, latency
decades, rank buckets, quantization, highlight, dim factor); its modeValue
gives each mode's value as the formulas there say.

usage: ws_palette.py   (run by ctest; needs node)"""
import importlib.util
import json
import math
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
  "amin: ALPHA_MIN, ar: ALPHA_RANGE, unk: UNKNOWN, modes: MODES, lpd: LOGPROB_DECADES, hmax: ENTROPY_MAX, " +
  "latd: LATENCY_DECADES, rank: RANK_T, quant: QUANT, hl: HIGHLIGHT_RGBA, dim: DIM_ALPHA, " +
  "values: JSON.parse(process.argv[2]).map(([m, t]) => modeValue(m, t))}));");
"""
# Tokens as viewer.js holds them (c confidence, lp logprob, rank, ent
# entropy, gap gap_ms, agree), each mode's value computed here from
# tools/gen_palette.py's constants and the formulas in its comments.
CASES = [
    {"c": 0.5}, {"c": None}, {"c": 1.0, "lp": -0.01}, {"c": 0.3, "lp": -20.0}, {"c": 0.2},
    {"c": 0.0}, {"rank": 1}, {"rank": 7}, {"rank": 20}, {"rank": -1}, {"rank": 0},
    {"ent": 0.0}, {"ent": 1.234}, {"ent": 9.0}, {"gap": 0.5}, {"gap": 37.0}, {"gap": 5000.0},
    {"agree": 1.0 / 3}, {"agree": 1.0}, {},
]


def expect(mode, t):
    q = lambda v: round(v * gp.QUANT) / gp.QUANT  # noqa: E731
    cl = lambda v: min(1.0, max(0.0, v))  # noqa: E731
    c = t.get("c")
    if mode == "confidence":
        return None if c is None else min(c, 1.0)
    if mode == "logprob":
        lp = t.get("lp", math.log(c) if c else None)
        return None if lp is None else q(cl(1 + math.log10(math.exp(lp)) / gp.LOGPROB_DECADES))
    if mode == "rank":
        r = t.get("rank")
        if not r:
            return None
        return q(gp.RANK_T[0 if r == 1 else 1 if 0 < r <= 10 else 2 if 0 < r <= 100 else 3])
    if mode == "entropy":
        return None if t.get("ent") is None else q(1 - cl(t["ent"] / gp.ENTROPY_MAX))
    if mode == "latency":
        g = t.get("gap")
        return None if g is None else q(1 - cl(math.log10(max(g, 1.0)) / gp.LATENCY_DECADES))
    if mode == "agreement":
        return None if t.get("agree") is None else q(cl(t["agree"]))


pairs = [(m, t) for m in gp.MODES for t in CASES]
out = subprocess.run(["node", "-e", js, os.path.join(SOURCE, "assets", "web", "viewer.js"), json.dumps(pairs)],
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
    check(got["modes"] == gp.MODES, f"same color modes in the same order ({got['modes']})")
    check((got["lpd"], got["hmax"], got["latd"], got["quant"], got["dim"]) ==
          (gp.LOGPROB_DECADES, gp.ENTROPY_MAX, gp.LATENCY_DECADES, gp.QUANT, gp.DIM_ALPHA),
          "same logprob decades, entropy max, latency decades, quantization, dim factor")
    check(diff([got["rank"]], [gp.RANK_T]) < 1e-12 and tuple(got["hl"]) == tuple(gp.HIGHLIGHT_RGBA),
          "same rank buckets and highlight color")
    bad = [(m, t, g, expect(m, t)) for (m, t), g in zip(pairs, got["values"])
           if (g is None) != (expect(m, t) is None) or (g is not None and abs(g - expect(m, t)) > 1e-9)]
    check(len(got["values"]) == len(pairs) and not bad,
          f"viewer.js's modeValue gives each mode's value as gen_palette.py defines it: {bad[:4]}")
sys.exit(report("ws_palette"))
