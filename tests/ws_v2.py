#!/usr/bin/python3
"""gos.v2 conformance through a real gos-compositor (docs/protocol-v2.md),
with an independent decoder (tests/support/v2_decode.py) and Debian's
python3-websockets: a gos.v1 and a gos.v2 viewer on one server see the
same map. The v2 picture (snapshot + ticks + tiles + cells + regions) must
equal the map in its cell rect and tiles at the levels and rects it holds:
after a feed, after pans that fetch new regions, zoomed far out (tiles
only), after evictions and tokens that move between cells, and for a
viewer that lags (resync, snapshot, viewport again).

usage: ws_v2.py GOS_COMPOSITOR   (run by ctest)"""
import asyncio
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from v2_decode import CELL_LEVEL, V2Mirror, expected_tiles, in_rect, tile_of  # noqa: E402
from ws_util import Compositor, Mirror, RawViewer, check, metric, report  # noqa: E402

COMPOSITOR = sys.argv[1]
MAX_TOKENS = 4000
rng = random.Random(12)


def token(i, x=None, y=None, conf=None, text=None):
    d = {"type": "token_activation", "token_id": f"t{i}", "token_text": text or f"w{i}",
         "timestamp": 1700000000.0 + i, "stream": ("a", "b", "c")[i % 3]}
    if x is not None:
        d["position"] = [x, y]
    if conf is not None:
        d["confidence"] = conf
    return d


def spread(i):
    """A position on a 60k x 30k field, away from tile edges."""
    return (rng.randrange(-300, 300) * 100 + 50.5, rng.randrange(-150, 150) * 100 + 50.5)


def feed_batch(c, ids):
    lines = []
    for i in ids:
        x, y = spread(i)
        conf = None if i % 7 == 0 else round(rng.random(), 4)
        lines.append(token(i, x, y, conf))
    return c.feed(lines)


class Pair:
    """One gos.v1 and one gos.v2 viewer on the same server."""

    def __init__(self, c):
        self.c = c
        self.v1 = Mirror()
        self.v2 = V2Mirror()

    async def open(self):
        url = f"ws://127.0.0.1:{self.c.port}/ws"
        self.w1 = await websockets.connect(url, subprotocols=["gos.v1"], max_size=None)
        self.w2 = await websockets.connect(url, subprotocols=["gos.v2", "gos.v1"], max_size=None)
        check(self.w2.subprotocol == "gos.v2", "a client offering gos.v2 gets it")
        check(self.w1.subprotocol == "gos.v1", "a client asking for gos.v1 still gets it")
        hello = json.loads(await self.w2.recv())
        check(hello["type"] == "hello" and hello["protocol"] == "gos.v2" and
              hello["protocol_version"] == 2, f"gos.v2 hello: {hello}")

    async def _reader(self, ws, apply):
        try:
            async for m in ws:
                apply(m)
        except websockets.ConnectionClosed:
            pass

    async def pump(self, until, timeout=20):
        """Lets both viewers read (they always do) until until() holds."""
        if not hasattr(self, "tasks"):
            self.tasks = [asyncio.create_task(self._reader(self.w1, self._v1)),
                          asyncio.create_task(self._reader(self.w2, self._v2))]
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def _v1(self, m):
        m = json.loads(m)
        if m["type"] in ("snapshot", "token_visualization", "neural_state"):
            self.v1.apply(m)

    def _v2(self, m):
        if isinstance(m, bytes):
            self.v2.apply(m)
        else:
            j = json.loads(m)
            self.v2.kinds.append(j["type"])
            if j["type"] == "resync":
                self.resynced = True

    async def viewport(self, x, y, w, h, zoom):
        self.v2.region_seq = None
        await self.w2.send(json.dumps({"type": "viewport", "x": x, "y": y, "w": w, "h": h,
                                       "zoom": zoom}))
        return await self.pump(lambda: self.v2.region_seq is not None)

    async def settle(self):
        """Until both viewers hold the map's current seq (and a tick of v2
        has passed any region answer)."""
        h = self.c.wait_broadcast_caught_up()
        seq = h["seq"]
        ok = await self.pump(lambda: self.v1.seq is not None and self.v1.seq >= seq and
                             self.v2.seq is not None and self.v2.seq >= seq)
        await self.pump(lambda: False, timeout=0.3)   # regions and ticks in flight
        return ok


def compare(p, what):
    """The v2 picture against the v1 one (the whole map)."""
    v1, v2 = p.v1, p.v2
    bad = []
    want = {tid: t for tid, t in v1.tokens.items()
            if in_rect(v2.cells, tile_of(t["x"], CELL_LEVEL), tile_of(t["y"], CELL_LEVEL))}
    got = {t["id"]: t for t in v2.tokens.values()}
    if set(want) != set(got):
        bad.append(f"tokens: {len(set(want) - set(got))} missing, {len(set(got) - set(want))} extra "
                   f"(e.g. {sorted(set(want) ^ set(got))[:3]})")
    for tid in set(want) & set(got):
        a, b = want[tid], got[tid]
        conf = b["conf"]
        same_conf = (a["confidence"] is None and math.isnan(conf)) or (
            a["confidence"] is not None and abs(a["confidence"] - conf) < 1e-6)
        if (a["text"] != b["text"] or abs(a["x"] - b["x"]) > 1e-3 or abs(a["y"] - b["y"]) > 1e-3
                or abs(a["w"] - b["w"]) > 1e-3 or not same_conf
                or a["stream"] != v2.stream_name(b["stream"])
                or a["index"] != b["index"]
                or a.get("rank") != {0: None, 0xFFFFFFFF: -1}.get(b["rank"], b["rank"])
                or ("gap_ms" in a) == math.isnan(b["gap_ms"])
                or ("agree" in a) == math.isnan(b["agree"])
                or a.get("diverges", False) != b["diverges"]):
            bad.append(f"{tid}: v1 {a} v2 {b}")
            break
    exp = expected_tiles(v1.tokens, v2.ov)
    if v2.vl >= 0 and v2.trect is not None:
        exp.update(expected_tiles(v1.tokens, v2.vl, v2.trect))
    if set(exp) != set(v2.tiles):
        bad.append(f"tiles: {len(set(exp) - set(v2.tiles))} missing, "
                   f"{len(set(v2.tiles) - set(exp))} extra at levels ov={v2.ov} vl={v2.vl}")
    else:
        for k, (cnt, conf) in exp.items():
            gc, gconf = v2.tiles[k]
            if gc != cnt or not ((math.isnan(conf) and math.isnan(gconf)) or abs(conf - gconf) < 1e-4):
                bad.append(f"tile {k}: {gc}/{gconf} != {cnt}/{conf}")
                break
    if v2.live != len(v1.tokens):
        bad.append(f"live_tokens {v2.live} != {len(v1.tokens)}")
    why = "; ".join(bad + v2.errors + v1.errors)[:600]
    check(not why, f"{what}: v2 equals the map ({len(got)} tokens in cells {v2.cells}, "
          f"{len(v2.tiles)} tiles) {why}")
    return len(got)


async def lagging_viewer(c, p):
    """A gos.v2 viewer that stops reading: resync, snapshot, viewport again."""
    r = RawViewer(c.port, protocol="gos.v2", rcvbuf=4096)
    check(r.status == 101, "a raw gos.v2 viewer upgrades")
    r.send(json.dumps({"type": "viewport", "x": -30000, "y": -15000, "w": 60000, "h": 30000,
                       "zoom": 0.2}))
    # it reads nothing while many ticks go by (each a dozen messages or more,
    # more bytes than the sockets' buffers hold)
    lines = []
    for i in range(20000, 40000):
        x, y = spread(i)
        lines.append(token(i, x, y, round(rng.random(), 4), text="x" * 200))
    c.feed(lines, chunk=100, pace=0.02)
    await p.settle()
    m = V2Mirror()
    resynced = False
    deadline = time.monotonic() + 30
    seq = c.wait_broadcast_caught_up()["seq"]
    sent_again = False
    parts, first_op = [], None
    while time.monotonic() < deadline:
        fin, op, payload = r.frame()
        if op == 0x9:
            r.send(payload, opcode=0xA)
            continue
        if op in (0x0, 0x1, 0x2):
            # fragments (continuation frames) make one message
            first_op = op if op else first_op
            parts.append(payload)
            if not fin:
                continue
            op, payload, parts = first_op, b"".join(parts), []
        if op == 0x1:
            if json.loads(payload)["type"] == "resync":
                resynced = True
            continue
        if op == 0x2:
            msg = m.apply(payload)
            if msg["kind"] == "snapshot" and resynced and not sent_again:
                r.send(json.dumps({"type": "viewport", "x": -30000, "y": -15000, "w": 60000,
                                   "h": 30000, "zoom": 0.2}))
                sent_again = True
            if sent_again and m.region_seq is not None and m.seq >= seq:
                break
    check(resynced, "a gos.v2 viewer that fell behind gets resync")
    await p.settle()
    # its picture after the fresh snapshot equals the map
    p2 = Pair(c)
    p2.v1, p2.v2 = p.v1, m
    compare(p2, "lagging viewer after resync")
    r.s.close()


async def time_travel():
    """A gos.v2 viewer looks at the past as gos.v1 JSON, and `live` brings
    it back to binary gos.v2 with its viewport answered again."""
    state = tempfile.mkdtemp(prefix="gos-v2-state-")
    c = Compositor(COMPOSITOR, "--state-dir", state)
    try:
        c.feed([token(i, *spread(i), 0.5) for i in range(500)])
        h = c.wait_broadcast_caught_up()
        w = await websockets.connect(f"ws://127.0.0.1:{c.port}/ws", subprotocols=["gos.v2"],
                                     max_size=None)
        await w.recv()                     # hello
        m = V2Mirror()
        m.apply(await w.recv())            # the binary snapshot
        await w.send(json.dumps({"type": "viewport", "x": -30000, "y": -15000, "w": 60000,
                                 "h": 30000, "zoom": 0.3}))
        await w.send(json.dumps({"type": "seek", "seq": h["seq"] // 2}))
        snap = None
        deadline = time.monotonic() + 20
        while snap is None and time.monotonic() < deadline:
            x = await asyncio.wait_for(w.recv(), 20)
            if isinstance(x, str) and json.loads(x)["type"] == "snapshot":
                snap = json.loads(x)
        check(snap is not None and snap["mode"] == "seek" and snap["seq"] == h["seq"] // 2,
              "a gos.v2 viewer's seek answers with the gos.v1 JSON snapshot of the past")
        await w.send(json.dumps({"type": "live"}))
        got_snap = got_region = False
        deadline = time.monotonic() + 20
        while not (got_snap and got_region) and time.monotonic() < deadline:
            x = await asyncio.wait_for(w.recv(), 20)
            if isinstance(x, bytes):
                k = m.apply(x)["kind"]
                got_snap |= k == "snapshot"
                got_region |= k == "region" and got_snap
        check(got_snap and got_region and len(m.tokens) == 500,
              f"live: a binary snapshot, then its viewport answered ({len(m.tokens)} tokens)")
        await w.close()
    finally:
        c.stop()
        shutil.rmtree(state, ignore_errors=True)


async def main():
    await time_travel()
    c = Compositor(COMPOSITOR, "--max-tokens", str(MAX_TOKENS))
    try:
        p = Pair(c)
        await p.open()
        await p.pump(lambda: p.v1.seq is not None and p.v2.seq is not None)
        check(p.v2.kinds[:1] == ["snapshot"], f"the first binary message is a snapshot: {p.v2.kinds}")
        mt = c.metrics()
        check(metric(mt, "gos_ws_viewers_v2") == 1 and metric(mt, "gos_ws_viewers") == 2,
              "/metrics counts the gos.v2 viewer apart (1 of 2)")
        # a viewport that holds a middle band in detail
        await p.viewport(-4000, -2000, 8000, 4000, 0.25)
        feed_batch(c, range(0, 3000))
        await p.settle()
        n = compare(p, "after a feed of 3000 tokens")
        check(n > 50, f"the detail region holds tokens ({n})")
        last = p.v1.tokens.get("t2999")
        check(last is not None and p.v2.newest is not None and
              abs(p.v2.newest[0] - last["x"]) < 1e-3 and abs(p.v2.newest[1] - last["y"]) < 1e-3,
              f"the last tick names the newest token's place {p.v2.newest}")
        # pans fetch what is missing
        for k, (x, y) in enumerate([(6000, -2000), (-20000, 5000), (-4000, -2000)]):
            ok = await p.viewport(x, y, 8000, 4000, 0.25)
            check(ok, f"pan {k}: a region answer came")
            await p.settle()
            compare(p, f"after pan {k} to ({x}, {y})")
        # zoomed far out: tiles only
        await p.viewport(-60000, -30000, 120000, 60000, 0.01)
        await p.settle()
        check(p.v2.cells is None and p.v2.vl == 3,
              f"far out (zoom 0.01): no detail, tiles at level 3 (128*8*0.01 >= 8 px): {p.v2.vl}")
        compare(p, "zoomed out")
        # back in, then evictions (6000 > --max-tokens) and moves across cells
        await p.viewport(-8000, -4000, 16000, 8000, 0.2)
        feed_batch(c, range(3000, 6000))
        await p.settle()
        compare(p, "after evictions")
        movers = [tid for tid in list(p.v1.tokens)[:400]]
        lines = []
        for tid in movers:
            x, y = spread(0)
            lines.append({"type": "token_activation", "token_id": tid, "token_text": "moved",
                          "timestamp": 1800000000.0, "position": [x, y], "confidence": 0.5})
        c.feed(lines)
        await p.settle()
        compare(p, "after 400 tokens moved")
        # laid out tokens (no position) and a stream state
        c.feed([token(9000 + i) for i in range(300)] +
               [{"type": "neural_state", "stream": "a", "state": "done", "tokens_processed": 5,
                 "ttft_ms": 42.5, "model": "tiny-q4", "message": "all \"good\""}])
        await p.settle()
        compare(p, "after laid-out tokens")
        a2 = [s for s in p.v2.streams.values() if s["name"] == "a"]
        a1 = p.v1.streams.get("a", {})
        check(a2 and a2[0]["state"] == "done", "stream states reach gos.v2 viewers")
        check(a2 and a2[0].get("ttft_ms") == 42.5 and a2[0].get("model") == "tiny-q4" and
              a2[0].get("message") == 'all "good"' and
              abs(a2[0]["mean_confidence"] - a1.get("mean_confidence", -1)) < 1e-9 and
              a2[0]["confidence_hist"] == a1.get("confidence_hist"),
              f"the generation's analytics reach both protocols alike: {a2[:1]} / {a1}")
        await lagging_viewer(c, p)
        # a late joiner on gos.v2 costs bytes in proportion to the screen
        url = f"ws://127.0.0.1:{c.port}/ws"
        late = await websockets.connect(url, subprotocols=["gos.v2"], max_size=None)
        await late.recv()
        snap = await late.recv()
        check(isinstance(snap, bytes) and len(snap) < 64 * 1024,
              f"a late joiner's snapshot is small ({len(snap)} bytes for {len(p.v1.tokens)} tokens)")
        await late.close()
        await p.w1.close()
        await p.w2.close()
    finally:
        rc = c.stop()
        check(rc == 0, f"gos-compositor exits 0 (got {rc})")


asyncio.run(main())
sys.exit(report("ws_v2"))
