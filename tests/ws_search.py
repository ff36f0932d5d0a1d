#!/usr/bin/python3
"""Search through a real gos-compositor (docs/protocol.md, "search_result"):
random streams with Unicode texts go in through the socket; gos.v1 and gos.v2
viewers search them and every answer is checked against a reference search
here (the streams' texts in arrival order, folded with Unicode simple case
folding derived as tools/gen_casefold.py derives it, matched left to right
without overlaps): counts, the listed matches' streams, ids and positions,
truncated, the stream and probability filters; the index follows updated
and evicted tokens; bad requests get bad_request and the connection stays
usable.

usage: ws_search.py GOS_COMPOSITOR   (run by ctest)"""
import asyncio
import json
import os
import random
import struct
import sys

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, check, report  # noqa: E402

COMPOSITOR = sys.argv[1]
STREAMS = ["", "gen-1", "gen-2", "Ωmega", "猫-stream", "x y"]
VOCAB = [" the", " cat", "The", " CAT", " sat", " on", "ẞ", "ß", "ss", "Σ", "σ", "ς", "猫", "🙂",
         "e", "\u0301", "é", "İ", "i", "ı", "I", "Ж", "ж", "Ä", "ä", "ab", "a", "b", " ", "aa",
         " Straße", " ΣΟΦΟΣ", "K", "µ", "x"]
QUERIES = ["the cat", "a", "ab", "aa", "ss", "ß", "ẞ", "σ", "ΣΟΦΟΣ", "ii", "ı", "İ", "猫🙂", " ",
           "é", "e\u0301", "ж", "ä", "cat the", "straße", "k", "μ", "zzz", "THE CAT SAT"]


def f32(x):
    """x as the map holds it (a 32-bit float)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def fold_char(c):
    """Simple case folding (C + S), as tools/gen_casefold.py derives it."""
    f = c.casefold()
    if len(f) == 1:
        return f
    low = c.lower()
    return low if len(low) == 1 and low != c else c


def fold(s):
    return "".join(fold_char(c) for c in s)


class Model:
    """The tokens as sent: arrival order, text, confidence, stream."""

    def __init__(self):
        self.order = []        # ids in arrival order
        self.tok = {}          # id -> dict(text, conf, stream)
        self.gone = set()

    def add(self, tid, text, stream, conf):
        if tid not in self.tok or tid in self.gone:
            self.order.append(tid)
            self.gone.discard(tid)
        self.tok[tid] = {"text": text, "stream": stream, "conf": conf}

    def evict_to(self, max_tokens):
        live = [t for t in self.order if t not in self.gone]
        for t in live[:max(0, len(live) - max_tokens)]:
            self.gone.add(t)
        self.order = [t for t in self.order if t not in self.gone]

    def search(self, q, limit=100, streams=None, min_p=None, max_p=None):
        qf = fold(q)
        count, matches = 0, []
        names = sorted({self.tok[t]["stream"] for t in self.order}, key=self.stream_index)
        for s in names:
            if streams is not None and s not in streams:
                continue
            toks = [t for t in self.order if self.tok[t]["stream"] == s]
            text, start = "", []
            for t in toks:
                start.append(len(text))
                text += fold(self.tok[t]["text"])
            start.append(len(text))
            a = text.find(qf)
            while a >= 0:
                b = a + len(qf)
                cover = [toks[i] for i in range(len(toks))
                         if start[i] < b and start[i + 1] > a and start[i] != start[i + 1]]
                ok = True
                if min_p is not None or max_p is not None:
                    lo = 0.0 if min_p is None else min_p
                    hi = 1.0 if max_p is None else max_p
                    ok = all(self.tok[t]["conf"] is not None and
                             f32(lo) <= f32(self.tok[t]["conf"]) <= f32(hi) for t in cover)
                if ok:
                    count += 1
                    if len(matches) < limit:
                        matches.append((s, cover))
                a = text.find(qf, b)
        return count, matches

    def stream_index(self, name):
        return self.first_seen.index(name)


def events(model, n, rnd, start=0):
    out = []
    for i in range(start, start + n):
        tid = f"t{i}"
        stream = STREAMS[rnd.randrange(len(STREAMS))]
        text = "".join(rnd.choice(VOCAB) for _ in range(rnd.randint(1, 3)))
        conf = None if rnd.random() < 0.2 else round(rnd.random(), 3)
        model.add(tid, text, stream, conf)
        if stream not in model.first_seen:
            model.first_seen.append(stream)
        d = {"type": "token_activation", "token_id": tid, "token_text": text, "stream": stream,
             "timestamp": 1700000000.0 + i}
        if conf is not None:
            d["confidence"] = conf
        out.append(d)
    return out


def updates(model, ids, rnd):
    out = []
    for tid in ids:
        t = model.tok[tid]
        text = rnd.choice(VOCAB) + rnd.choice(VOCAB)
        conf = round(rnd.random(), 3)
        model.add(tid, text, t["stream"], conf)
        out.append({"type": "token_activation", "token_id": tid, "token_text": text,
                    "stream": t["stream"], "timestamp": 1800000000.0, "confidence": conf})
    return out


async def answer(ws, want=("search_result", "error")):
    while True:
        m = await asyncio.wait_for(ws.recv(), 30)
        if isinstance(m, bytes):
            continue   # gos.v2 binary frames
        msg = json.loads(m)
        if msg["type"] in want:
            return msg


async def positions(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["gos.v1"],
                                  max_size=None) as ws:
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "snapshot":
                return {t["id"]: (t["x"], t["y"]) for t in msg["tokens"]}


def same(model, pos, got, q, **kw):
    count, matches = model.search(q, **kw)
    theirs = [(m["stream"], m["ids"]) for m in got.get("matches", [])]
    ok = (got.get("type") == "search_result" and got["q"] == q and got["count"] == count and
          theirs == matches and got["truncated"] == (count > len(matches)))
    ok = ok and all(pos.get(m["ids"][0]) == (m["x"], m["y"]) for m in got["matches"])
    return ok, count, len(matches)


async def conformance(c, model, label, queries):
    pos = await positions(c.port)
    url = f"ws://127.0.0.1:{c.port}/ws"
    for proto in ("gos.v1", "gos.v2"):
        bad, n = [], 0
        # a viewer may send 40 messages in a burst (then 20/s): a fresh one per 30
        for part in range(0, len(queries), 30):
            async with websockets.connect(url, subprotocols=[proto], max_size=None) as ws:
                for q, kw in queries[part:part + 30]:
                    await ws.send(json.dumps({"type": "search", "q": q, **kw}))
                    got = await answer(ws)
                    ok, count, listed = same(model, pos, got, q, **kw)
                    n += 1
                    if not ok:
                        bad.append((q, kw, got.get("count"), count, str(got)[:300]))
        check(not bad, f"{label} ({proto}): {n} searches answer as the reference "
              f"({len(bad)} differ: {bad[:2]})")


def query_set(rnd, model):
    qs = []
    for q in QUERIES:
        qs.append((q, {}))
    for _ in range(25):
        q = rnd.choice(QUERIES)
        kw = {"limit": rnd.choice([1, 3, 100, 10000])}
        if rnd.random() < 0.4:
            kw["streams"] = rnd.sample(STREAMS, rnd.randint(0, 3))
        if rnd.random() < 0.4:
            lo = round(rnd.random() * 0.5, 2)
            kw["min_p"], kw["max_p"] = lo, round(lo + rnd.random() * 0.5, 2)
        elif rnd.random() < 0.2:
            kw["min_p"] = 0.5
        qs.append((q, kw))
    # a query that spans tokens: the concatenation of two neighbours' texts
    live = model.order
    for _ in range(10):
        i = rnd.randrange(len(live) - 1)
        a, b = model.tok[live[i]], model.tok[live[i + 1]]
        if a["stream"] == b["stream"]:
            qs.append(((a["text"][-2:] + b["text"][:2]).swapcase() or "a", {}))
    return [(q, kw) for q, kw in qs if q and len(q.encode()) <= 256]


async def errors(c):
    url = f"ws://127.0.0.1:{c.port}/ws"
    async with websockets.connect(url, subprotocols=["gos.v1"], max_size=None) as ws:
        cases = [({"type": "search"}, "\"q\""), ({"type": "search", "q": ""}, "not empty"),
                 ({"type": "search", "q": "a" * 257}, "256 bytes"),
                 ({"type": "search", "q": "a", "limit": 0}, "\"limit\""),
                 ({"type": "search", "q": "a", "limit": 10001}, "\"limit\""),
                 ({"type": "search", "q": "a", "min_p": 0.7, "max_p": 0.2}, "above"),
                 ({"type": "search", "q": "a", "max_p": 2}, "\"max_p\""),
                 ({"type": "search", "q": "a", "streams": "gen-1"}, "array")]
        bad = []
        for msg, why in cases:
            await ws.send(json.dumps(msg))
            got = await answer(ws, ("error", "search_result"))
            if got["type"] != "error" or got["code"] != "bad_request" or why not in got["message"]:
                bad.append((msg, got))
        check(not bad, f"bad searches get bad_request with a sentence ({bad[:2]})")
        await ws.send(json.dumps({"type": "ping", "t": 5}))
        got = await answer(ws, ("pong",))
        await ws.send(json.dumps({"type": "search", "q": "the"}))
        res = await answer(ws)
        check(got["t"] == 5 and res["type"] == "search_result",
              "the connection stays usable: a ping and a search are answered after")
        # a burst: a newer search replaces the queued one; the last is answered
        for i in range(6):
            await ws.send(json.dumps({"type": "search", "q": f"zz{i}"}))
        seen = []
        while "zz5" not in seen:
            seen.append((await answer(ws))["q"])
        check(all(q.startswith("zz") for q in seen) and seen[-1] == "zz5",
              f"a burst of searches: the last one is answered ({seen})")


def main():
    rnd = random.Random(int(os.environ.get("GOS_SEARCH_SEED", "13")))
    model = Model()
    model.first_seen = []
    c = Compositor(COMPOSITOR, "--no-render")
    try:
        c.feed(events(model, 3000, rnd))
        asyncio.run(conformance(c, model, "3000 random tokens", query_set(rnd, model)))
        c.feed(updates(model, rnd.sample(model.order, 300), rnd))
        asyncio.run(conformance(c, model, "after 300 updates", query_set(rnd, model)))
        asyncio.run(errors(c))
    finally:
        c.stop()
    model = Model()
    model.first_seen = []
    c = Compositor(COMPOSITOR, "--no-render", "--max-tokens", "1000")
    try:
        n = 0
        for k in range(3):
            c.feed(events(model, 700, rnd, start=n))
            n += 700
            model.evict_to(1000)
            asyncio.run(conformance(c, model, f"--max-tokens 1000, {n} sent",
                                    query_set(rnd, model)))
    finally:
        c.stop()
    return report("ws_search")


if __name__ == "__main__":
    sys.exit(main())
