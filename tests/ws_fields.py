#!/usr/bin/python3
"""The per-token and per-stream fields of issue 13 on the wire, through a
real gos-compositor: a known sequence (ranks with ties, beyond and absent;
gaps from the producer's timestamps; a group of three streams named
q:1..q:3 that agree and diverge, and a stream alone) reaches a gos.v1
viewer that was there before the feed (deltas: a token's agreement changes
when another stream reaches its index), a gos.v1 viewer that joins after it
(snapshot) and a gos.v2 viewer (the independent decoder,
tests/support/v2_decode.py), each with exactly the values the sequence
implies (docs/protocol.md "Token fields", docs/protocol-v2.md).

usage: ws_fields.py GOS_COMPOSITOR   (run by ctest)"""
import asyncio
import json
import math
import os
import sys
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from v2_decode import V2Mirror  # noqa: E402
from ws_util import Compositor, Mirror, check, report  # noqa: E402

COMPOSITOR = sys.argv[1]


def entropy(lps):
    m = max(lps)
    z = sum(math.exp(x - m) for x in lps)
    return -sum((math.exp(x - m) / z) * math.log(math.exp(x - m) / z) for x in lps)


def tok(tid, text, stream, ts, alts=None, conf=0.5):
    d = {"type": "token_activation", "token_id": tid, "token_text": text, "timestamp": ts,
         "stream": stream, "confidence": conf}
    if alts is not None:
        d["top_logprobs"] = [{"token": a, "logprob": lp} for a, lp in alts]
    return d


# The stream alone: (text, alternatives, timestamp) -> rank, gap
SOLO = [
    ("a", [("a", -0.1), ("b", -2.0)], 100.0, 1, None),        # first choice, first token: no gap
    ("b", [("a", -0.5), ("b", -0.5)], 100.25, 2, 250.0),      # a tie: the order given decides
    ("c", [("a", -0.1), ("b", -2.0)], 100.5, -1, 250.0),      # not among them: beyond
    ("d", None, 101.5, None, 1000.0),                         # no alternatives: unknown
    ("e", [("e", -1.0), ("x", -1.0)], 101.5, 1, 0.0),         # a tie, first given; no time passed
]
# A group of three: texts by index.
GROUP = {"q:1": ["The", "cat", "sat", "."], "q:2": ["The", "cat", "ran", "."],
         "q:3": ["The", "dog", "sat"]}


def expected():
    """{id: {field: value}} for tokens, {name: (group, diverge_at)} for streams."""
    toks = {}
    for i, (text, alts, ts, rank, gap) in enumerate(SOLO):
        e = {"index": i, "rank": rank, "gap_ms": gap,
             "entropy": entropy([lp for _, lp in alts]) if alts else None,
             "agree": None, "diverges": False}
        toks[f"s{i}"] = e
    for name, texts in GROUP.items():
        for i, text in enumerate(texts):
            others = [t[i] for n, t in GROUP.items() if n != name and len(t) > i]
            agree = (1 + sum(o == text for o in others)) / (1 + len(others)) if others else None
            toks[f"{name}-{i}"] = {"index": i, "rank": None, "gap_ms": None if i == 0 else 500.0,
                                   "entropy": None, "agree": agree, "diverges": i == 1}
    streams = {"solo": ("solo", -1), "q:1": ("q:1", 1), "q:2": ("q:1", 1), "q:3": ("q:1", 1)}
    return toks, streams


def lines():
    out = [tok(f"s{i}", text, "solo", ts, alts) for i, (text, alts, ts, _, _) in enumerate(SOLO)]
    # q:1 and q:2 first, q:3 last: its tokens change the others' agreement
    for name in ("q:1", "q:2", "q:3"):
        for i, text in enumerate(GROUP[name]):
            out.append(tok(f"{name}-{i}", text, name, 200.0 + i * 0.5))
    return out


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) < 1e-5 * max(1.0, abs(b))


def check_v1(mirror, what):
    want_t, want_s = expected()
    bad = []
    for tid, e in want_t.items():
        t = mirror.tokens.get(tid)
        if t is None:
            bad.append(f"{tid} missing")
            continue
        got = {"index": t.get("index"), "rank": t.get("rank"), "gap_ms": t.get("gap_ms"),
               "entropy": t.get("entropy"), "agree": t.get("agree"),
               "diverges": t.get("diverges", False)}
        if "diverges" in t and t["diverges"] is not True:
            bad.append(f"{tid}: diverges is {t['diverges']!r}, only true is sent")
        for k, v in e.items():
            if isinstance(v, float) or isinstance(got[k], float):
                ok = close(got[k], v)
            else:
                ok = got[k] == v
            if not ok:
                bad.append(f"{tid}.{k} = {got[k]!r}, want {v!r}")
    for name, (group, div) in want_s.items():
        s = mirror.streams.get(name)
        if s is None or s.get("group") != group or s.get("diverge_at") != div:
            bad.append(f"stream {name}: {s and (s.get('group'), s.get('diverge_at'))}, "
                       f"want {(group, div)}")
    check(not bad, f"{what}: every token's index, rank, gap, entropy, agreement and divergence "
          f"and every stream's group are the sequence's: {bad[:6]}")


def check_v2(m, what):
    want_t, want_s = expected()
    names = {s["index"]: s["name"] for s in m.streams.values()}
    bad = []
    got_ids = {t["id"]: t for t in m.tokens.values()}
    for tid, e in want_t.items():
        t = got_ids.get(tid)
        if t is None:
            bad.append(f"{tid} missing")
            continue
        rank = {0: None, 0xFFFFFFFF: -1}.get(t["rank"], t["rank"])
        nan = lambda v: None if math.isnan(v) else v  # noqa: E731
        got = {"index": t["index"], "rank": rank, "gap_ms": nan(t["gap_ms"]),
               "entropy": nan(t["entropy"]), "agree": nan(t["agree"]), "diverges": t["diverges"]}
        for k, v in e.items():
            ok = close(got[k], v) if isinstance(v, float) or isinstance(got[k], float) else got[k] == v
            if not ok:
                bad.append(f"{tid}.{k} = {got[k]!r}, want {v!r}")
    for s in m.streams.values():
        g, div = want_s.get(s["name"], (None, None))
        if names.get(s["group"]) != g or s["diverge_at"] != div:
            bad.append(f"stream {s['name']}: group {s['group']} ({names.get(s['group'])}) "
                       f"diverge_at {s['diverge_at']}, want {(g, div)}")
    check(len(m.streams) == len(want_s) and not bad,
          f"{what}: the detail columns hold the sequence's values: {bad[:6]}")


async def read_v1(ws, mirror, until, timeout=20):
    deadline = time.monotonic() + timeout
    while not until():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            m = json.loads(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            return False
        if m["type"] in ("snapshot", "token_visualization", "neural_state"):
            mirror.apply(m)
    return True


async def main():
    c = Compositor(COMPOSITOR)
    url = f"ws://127.0.0.1:{c.port}/ws"
    try:
        early = await websockets.connect(url, subprotocols=["gos.v1"], max_size=None)
        m_early = Mirror()
        await read_v1(early, m_early, lambda: m_early.seq is not None)
        r = c.feed(lines())
        check(r is not None and r["applied"] == len(lines()) and r["rejected"] == 0,
              f"the sequence is applied: {r}")
        seq = c.wait_broadcast_caught_up()["seq"]
        await read_v1(early, m_early, lambda: m_early.seq is not None and m_early.seq >= seq)
        check(m_early.seq == seq and not m_early.errors, f"the early viewer caught up: {m_early.errors}")
        check_v1(m_early, "gos.v1 deltas")
        await early.close()

        late = await websockets.connect(url, subprotocols=["gos.v1"], max_size=None)
        m_late = Mirror()
        await read_v1(late, m_late, lambda: m_late.seq is not None)
        check_v1(m_late, "gos.v1 snapshot")
        await late.close()

        w2 = await websockets.connect(url, subprotocols=["gos.v2"], max_size=None)
        v2 = V2Mirror()
        flags = []
        async def pump(until, timeout=20):
            deadline = time.monotonic() + timeout
            while not until() and time.monotonic() < deadline:
                try:
                    msg = await asyncio.wait_for(w2.recv(), deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
                if isinstance(msg, bytes):
                    flags.append(v2.apply(msg)["flags"])
            return until()
        await pump(lambda: v2.seq is not None)
        b = list(m_late.tokens.values())
        x0, x1 = min(t["x"] for t in b) - 50, max(t["x"] for t in b) + 50
        y0, y1 = min(t["y"] for t in b) - 50, max(t["y"] for t in b) + 50
        await w2.send(json.dumps({"type": "viewport", "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0,
                                  "zoom": 1.0}))
        ok = await pump(lambda: len(v2.tokens) >= len(b))
        check(ok, f"the gos.v2 region brings every token ({len(v2.tokens)} of {len(b)})")
        check(flags and all(f == 3 for f in flags), f"every gos.v2 message sets flags bits 0 and 1: {set(flags)}")
        check_v2(v2, "gos.v2 region")
        await w2.close()
    finally:
        rc = c.stop()
    check(rc == 0, f"gos-compositor exits 0 ({rc})")


asyncio.run(main())
sys.exit(report("ws_fields"))
