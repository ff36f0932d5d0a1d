#!/usr/bin/python3
"""GET /export through a real gos-compositor (docs/protocol.md, "Export"):
the JSON lines go through gos-feed into a fresh compositor and give the same
tokens (ids, texts, streams, positions, confidences, logprobs, alternatives);
CSV reads back with Python's csv module (quoting of commas, quotes, line
breaks), indexes count each stream in arrival order, ranks come from the
top_logprobs (ties, the chosen token absent); stream and probability
filters; a stream's plain text; bad arguments get 400 and a sentence,
an unknown stream 404; the token guards it as it guards /.

usage: ws_export.py GOS_COMPOSITOR GOS_FEED   (run by ctest)"""
import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import tempfile

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, Mirror, check, http_raw, report  # noqa: E402

COMPOSITOR, FEED = sys.argv[1], sys.argv[2]
TEXTS = ["hello", " wor,ld", ' "quoted"', " line\nbreak", " 猫", " 🙂", ""]


def events():
    out = []
    for i in range(120):
        s = ("alpha", "beta", "gamma")[i % 3]
        d = {"type": "token_activation", "token_id": f"t{i}", "token_text": TEXTS[i % len(TEXTS)] + str(i),
             "timestamp": 1700000000.0 + i * 0.5, "stream": s}
        if i % 4:
            d["confidence"] = round((i % 50) / 49, 4)
        if i % 5 == 0:
            d["position"] = [i * 10.5, -i * 3.25]
        if i % 3 == 0:
            text = d["token_text"]
            alts = [{"token": "x", "logprob": -0.1}, {"token": text, "logprob": -0.5},
                    {"token": "y", "logprob": -0.5}]
            if i % 9 == 0:
                alts = [{"token": "x", "logprob": -0.1}, {"token": "z", "logprob": -0.2}]
            d["logprob"] = -0.5
            d["top_logprobs"] = alts
        out.append(d)
    return out


async def picture(c):
    """The whole map as a gos.v1 viewer sees it."""
    m = Mirror()
    async with websockets.connect(f"ws://127.0.0.1:{c.port}/ws", subprotocols=["gos.v1"],
                                  max_size=None) as ws:
        while m.seq is None:
            msg = json.loads(await ws.recv())
            if msg["type"] == "snapshot":
                m.apply(msg)
    return m.tokens


def key(t):
    return (t["text"], t["stream"], round(t["x"], 3), round(t["y"], 3), t["confidence"],
            t.get("logprob"), json.dumps(t.get("alts")))


def main():
    c = Compositor(COMPOSITOR, "--no-render")
    try:
        c.feed(events())
        c.wait_broadcast_caught_up()
        before = asyncio.run(picture(c))
        st, hdrs, body = c.http("/export?format=jsonl")
        check(st == 200 and hdrs.get("content-type", "").startswith("application/x-ndjson") and
              "attachment" in hdrs.get("content-disposition", ""),
              f"jsonl: 200, ndjson, an attachment ({st} {hdrs.get('content-type')})")
        lines = body.decode().splitlines()
        check(len(lines) == 120, f"one line per token ({len(lines)})")
        rows = [json.loads(x) for x in lines]
        check(all(r["type"] == "token_activation" for r in rows), "lines are token_activation events")
        idx = {}
        ok = True
        for r in rows:
            ok &= r["index"] == idx.get(r["stream"], 0)
            idx[r["stream"]] = r["index"] + 1
        check(ok, "index counts each stream's tokens in arrival order")
        ranks = {r["token_id"]: r.get("rank") for r in rows}
        check(ranks["t3"] == 2 and ranks["t9"] is None and ranks["t1"] is None,
              f"rank: second after a tie broken by order (t3: {ranks['t3']}), absent when the "
              f"chosen token is not among the alternatives (t9) or there are none (t1)")
        # the round trip: gos-feed into a fresh compositor gives the same tokens
        tmp = tempfile.mkdtemp(prefix="gos-export-")
        path = os.path.join(tmp, "export.ndjson")
        with open(path, "wb") as f:
            f.write(body)
        c2 = Compositor(COMPOSITOR, "--no-render")
        try:
            r = subprocess.run([FEED, "--socket", c2.sock, path], capture_output=True, text=True,
                               timeout=60)
            check(r.returncode == 0, f"gos-feed sends the export: {r.stderr.strip()[-200:]}")
            c2.wait_broadcast_caught_up()
            after = asyncio.run(picture(c2))
            same = set(before) == set(after) and all(key(before[k]) == key(after[k]) for k in before)
            bad = [k for k in before if k in after and key(before[k]) != key(after[k])][:2]
            check(same, f"the export fed into a fresh compositor gives the same 120 tokens "
                  f"({len(after)}; differ: {[(before[k], after[k]) for k in bad]})")
        finally:
            c2.stop()
        # CSV
        st, hdrs, body = c.http("/export?format=csv")
        check(st == 200 and hdrs.get("content-type", "").startswith("text/csv"), f"csv: 200 ({st})")
        table = list(csv.reader(io.StringIO(body.decode(), newline="")))
        check(table[0] == ["id", "stream", "index", "text", "probability", "logprob", "rank",
                           "timestamp", "x", "y"], f"csv header: {table[0]}")
        by_id = {row[0]: row for row in table[1:]}
        check(len(by_id) == 120 and by_id["t3"][3] == before["t3"]["text"] and
              by_id["t10"][3] == before["t10"]["text"] and "\n" in by_id["t3"][3],
              "csv quoting keeps commas, quotes and line breaks in texts")
        check(by_id["t0"][4] == "" and by_id["t1"][4] != "" and
              abs(float(by_id["t1"][4]) - before["t1"]["confidence"]) < 1e-6,
              "csv: probability empty when unknown, the confidence otherwise")
        # filters
        st, _, body = c.http("/export?format=csv&stream=beta&min_p=0.5&max_p=1")
        rows = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
        want = [t for t in before.values() if t["stream"] == "beta" and t["confidence"] is not None
                and t["confidence"] >= 0.5]
        check(st == 200 and len(rows) == len(want) and all(r["stream"] == "beta" for r in rows),
              f"stream and probability filters ({len(rows)} rows, expected {len(want)})")
        # a stream's plain text
        st, hdrs, body = c.http("/export?format=text&stream=gamma")
        want = "".join(r["token_text"] for r in sorted(
            (e for e in events() if e["stream"] == "gamma"), key=lambda e: e["timestamp"]))
        check(st == 200 and body.decode() == want, "text: the stream's tokens joined in order")
        # refusals
        for q, code in [("", 400), ("?format=xml", 400), ("?format=text", 400),
                        ("?format=csv&min_p=2", 400), ("?format=csv&min_p=0.9&max_p=0.1", 400),
                        ("?format=csv&bogus=1", 400), ("?format=csv&format=jsonl", 400),
                        ("?format=csv&stream=nope", 404)]:
            st, _, body = c.http("/export" + q)
            check(st == code and body.startswith(b"gos: export:"),
                  f"/export{q}: {code} with a sentence ({st} {body[:80]!r})")
    finally:
        check(c.stop() == 0, "gos-compositor exits 0")
    # the token guards /export
    tmp = tempfile.mkdtemp(prefix="gos-export-auth-")
    tok = os.path.join(tmp, "token")
    with open(tok, "w") as f:
        f.write("s3cret-export-token\n")
    os.chmod(tok, 0o600)
    c = Compositor(COMPOSITOR, "--no-render", "--auth-token-file", tok)
    try:
        st, _, _ = c.http("/export?format=csv")
        check(st == 401, f"without the token: 401 ({st})")
        st, _, body = c.http("/export?format=csv&token=s3cret-export-token")
        check(st == 200 and body.startswith(b"id,stream"), f"with ?token=: 200 ({st})")
    finally:
        c.stop()


main()
sys.exit(report("ws_export"))
