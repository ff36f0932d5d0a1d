#!/usr/bin/python3
"""permessage-deflate (RFC 7692) on /ws through a real gos-compositor, as
three independent clients meet it: Debian's python3-websockets (offers it
by default), npm ws (likewise), and a raw socket that inflates with the
stdlib's zlib and counts the bytes on the wire. A large snapshot (5000
tokens, 0.7 MB, sent in fragments) and the deltas after it must arrive
equal to what a client without compression gets, in far fewer bytes; the
offers lws cannot honour are declined (plain frames, no failed
handshake); compressed messages from the viewer are read whole and not
charged as control frames, while a ping flood still is; and the compression memory per viewer stays
near its documented bound.

usage: ws_deflate.py GOS_COMPOSITOR   (run by ctest)"""
import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import (Compositor, Mirror, RawViewer, check, metric, read_until,  # noqa: E402
                     report)

COMPOSITOR = sys.argv[1]
SOURCE = os.environ.get("GOS_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
NODE_CLIENT = os.path.join(SOURCE, "tests", "browser", "ws_deflate_client.js")
OFFER = "permessage-deflate; client_max_window_bits"   # what browsers and both libraries send


def token_line(i):
    words = ["the", " model", "ing", " token", " of", "\n", " compos", "itor"]
    d = {"type": "token_activation", "token_id": f"t{i}", "token_text": words[i % 8] + str(i % 13),
         "timestamp": 1700000000.0 + i * 0.01, "confidence": round((i * 37 % 100) / 99, 4),
         "stream": f"gen-{i % 3}", "logprob": -0.01 * (i % 50)}
    if i % 5 == 0:
        d["top_logprobs"] = [{"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -2.5}]
    return d


class InflatingViewer(RawViewer):
    """A raw viewer (ws_util.RawViewer) that offers `offer` (or nothing),
    inflates compressed messages itself (zlib, 15-bit window, context kept
    as RFC 7692 says by default), counts every byte of its frames and checks
    their RSV bits."""

    def __init__(self, port, offer=None):
        super().__init__(port, headers={"Sec-WebSocket-Extensions": offer} if offer else None)
        self.extensions = self.headers.get("sec-websocket-extensions")
        self.z = zlib.decompressobj(-15)
        self.rsv_errors = []

    def recv(self):
        """(text, wire bytes of its frames, compressed, frame count)."""
        parts, wire, compressed, frames = [], 0, None, 0
        while True:
            b0, payload, size = self.raw_frame()
            op = b0 & 0x0F
            if op >= 8:
                if b0 & 0x70:
                    self.rsv_errors.append(f"control frame 0x{b0:02x} with RSV bits")
                continue
            wire += size
            frames += 1
            if compressed is None:
                compressed = bool(b0 & 0x40)
                if op != 1:
                    self.rsv_errors.append(f"message starts with opcode {op}")
            elif b0 & 0x70:
                self.rsv_errors.append(f"continuation 0x{b0:02x} with RSV bits")
            if (b0 & 0x40) and not self.extensions:
                self.rsv_errors.append("RSV1 without the extension negotiated")
            parts.append(payload)
            if b0 & 0x80:
                break
        data = b"".join(parts)
        if compressed:
            data = self.z.decompress(data + b"\x00\x00\xff\xff")
        return data.decode(), wire, compressed, frames


async def connect(c, **kw):
    return await websockets.connect(f"ws://127.0.0.1:{c.port}/ws", subprotocols=["gos.v1"],
                                    max_size=None, open_timeout=10, **kw)


async def recv_json(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def node_client(port, pmd=None):
    args = ["node", NODE_CLIENT, f"ws://127.0.0.1:{port}/ws"] + ([json.dumps(pmd)] if pmd is not None else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"no result (exit {r.returncode}): {r.stderr.strip()[-300:]}"}


async def snapshot_tests(c):
    c.feed([token_line(i) for i in range(5000)])
    h = c.wait_broadcast_caught_up()
    check(h is not None and h["tokens"] == 5000, "5000 tokens on the map")

    # --- the same snapshot, with and without compression, read raw
    d = InflatingViewer(c.port, OFFER)
    p = InflatingViewer(c.port)
    check(d.status == 101 and d.extensions == "permessage-deflate",
          f"the offer is accepted: Sec-WebSocket-Extensions: {d.extensions!r}")
    check(p.status == 101 and p.extensions is None, "no offer, no extension in the answer")
    hello_d, _, hello_comp, _ = d.recv()
    hello_p, _, _, _ = p.recv()
    check(hello_d == hello_p and hello_comp, "hello: compressed (RSV1) and equal to the plain one")
    snap_d, wire_d, comp_d, frames_d = d.recv()
    snap_p, wire_p, comp_p, frames_p = p.recv()
    sd, sp = json.loads(snap_d), json.loads(snap_p)
    check(sd["type"] == "snapshot" and sp["type"] == "snapshot" and len(sp["tokens"]) == 5000,
          f"both get the snapshot of 5000 tokens ({len(sp.get('tokens', []))})")
    check(snap_d == snap_p, f"the inflated snapshot is byte for byte the plain one ({len(snap_d)} / {len(snap_p)} B)")
    check(comp_d and not comp_p and frames_p > 1,
          f"compressed frames only where negotiated; plain snapshot in {frames_p} fragments")
    ratio = wire_p / max(wire_d, 1)
    print(f"  snapshot {len(snap_p)} B: wire {wire_p} B plain ({frames_p} frames), "
          f"{wire_d} B deflate ({frames_d} frames), {ratio:.2f}x", flush=True)
    check(ratio > 4.0, f"the compressed snapshot is over 4x smaller on the wire ({ratio:.2f}x)")
    check(not d.rsv_errors and not p.rsv_errors, f"frame bits as RFC 7692 says: {d.rsv_errors[:3]} {p.rsv_errors[:3]}")

    # --- python websockets with and without compression, then deltas on all four
    a = await connect(c)
    b = await connect(c, compression=None)
    ext = a.response_headers.get("Sec-WebSocket-Extensions")
    check(ext == "permessage-deflate" and a.extensions and
          a.request_headers.get("Sec-WebSocket-Extensions") == OFFER,
          f"python websockets offers {a.request_headers.get('Sec-WebSocket-Extensions')!r}, gets {ext!r}")
    check(b.response_headers.get("Sec-WebSocket-Extensions") is None and not b.extensions,
          "python websockets without compression: none")
    ma, mb = Mirror(), Mirror()
    for ws, m in ((a, ma), (b, mb)):
        check((await recv_json(ws))["type"] == "hello", "hello first")
        raw = await asyncio.wait_for(ws.recv(), 10)
        m.apply(json.loads(raw))
        check(raw == snap_p, "python websockets gets the same snapshot bytes")
    check(metric(c.metrics(), "gos_ws_viewers_deflate") == 2 and metric(c.metrics(), "gos_ws_viewers") == 4,
          "gos_ws_viewers_deflate counts the two compressing viewers of four")

    more = [token_line(i) for i in range(5000, 6500)]
    c.feed(more, chunk=100, pace=0.01)
    h = c.wait_broadcast_caught_up()
    check(await read_until(a, ma, h["seq"]) and await read_until(b, mb, h["seq"]),
          f"both python viewers reach seq {h['seq']}")
    md, mp = Mirror(), Mirror()
    md.apply(sd)
    mp.apply(sp)
    deltas_wire = [0, 0]
    for i, (v, m) in enumerate(((d, md), (p, mp))):
        while m.seq < h["seq"]:
            text, wire, _, _ = v.recv()
            deltas_wire[i] += wire
            mm = json.loads(text)
            if mm["type"] in ("snapshot", "token_visualization", "neural_state"):
                m.apply(mm)
    check(not ma.errors and not mb.errors and not md.errors and not mp.errors,
          f"deltas chain with and without compression: {(ma.errors + md.errors)[:2]}")
    check(ma.tokens == mb.tokens == md.tokens == mp.tokens and len(ma.tokens) == 6500,
          f"all four converge on 6500 tokens ({len(ma.tokens)}, {len(mb.tokens)}, {len(md.tokens)}, {len(mp.tokens)})")
    print(f"  deltas of 1500 tokens: wire {deltas_wire[1]} B plain, {deltas_wire[0]} B deflate", flush=True)
    check(deltas_wire[0] * 2 < deltas_wire[1], "deltas are compressed too (context kept across messages)")

    # --- compressed messages from the viewer: read whole, charged as messages only
    for size in (100, 3000, 20000, 60000):
        await a.send(json.dumps({"type": "ping", "t": size, "pad": "x" * size}))
        got = None
        deadline = time.monotonic() + 10
        while got is None and time.monotonic() < deadline:
            m = json.loads(await asyncio.wait_for(a.recv(), 10))
            if m["type"] == "pong":
                got = m
        check(got is not None and got["t"] == size, f"a compressed ping padded to {size} B is answered: {got}")
    await a.send(json.dumps({"type": "viewport", "x": 0, "y": 0, "w": 800, "h": 600, "zoom": 1}))
    await a.send("x" * 70000)
    try:
        while True:
            await asyncio.wait_for(a.recv(), 10)
    except websockets.exceptions.ConnectionClosed:
        pass
    check(a.close_code == 1009, f"a compressed message over 64 KiB (inflated) closes with 1009: {a.close_code}")
    mt = c.metrics()
    check(metric(mt, "gos_ws_inbound_rate_limited_total") == 0 and
          metric(mt, "gos_ws_inbound_control_frames_total") == 0,
          "no compressed message was charged as control frames or rate-limited "
          f"({metric(mt, 'gos_ws_inbound_control_frames_total')}, {metric(mt, 'gos_ws_inbound_rate_limited_total')})")
    await b.close()
    d.close()
    p.close()

    # --- npm ws: a second independent implementation
    if shutil.which("node"):
        plain_sha = hashlib.sha256(snap_p.encode()).hexdigest()
        c.feed([])  # nothing new: the snapshot stays the one at seq h
        for pmd, want in ((None, "permessage-deflate"), ({"serverMaxWindowBits": 10}, ""), (False, "")):
            r = node_client(c.port, pmd)
            check(r.get("error") is None and r.get("extensions") == want and r.get("hello") == "gos.v1" and
                  r.get("pong_t") == 77,
                  f"npm ws (perMessageDeflate {pmd}) negotiates {want!r} and talks gos.v1: {r}")
            check(r.get("snapshot_seq") == h["seq"] and r.get("snapshot_len", 0) > len(snap_p),
                  f"npm ws gets the snapshot at seq {h['seq']}: {r.get('snapshot_seq')}, {r.get('snapshot_len')} B")
        check(plain_sha != "", "node client ran")
    else:
        check(False, "node is not installed (tools/setup.sh installs it)")


async def offer_tests(c):
    """What lws 4.1 cannot honour is declined: the connection goes on plain."""
    declined = ["permessage-deflate; server_max_window_bits=10",
                "permessage-deflate; server_no_context_takeover",
                "permessage-deflate; client_max_window_bits=16",
                "permessage-deflate; client_max_window_bits=x",
                "permessage-deflate; client_max_window_bits=:",
                "permessage-deflate; client_max_window_bits=09",
                "permessage-deflate; foo=1",
                "x-webkit-deflate-frame",
                "permessage-deflate; server_max_window_bits=10, permessage-deflate"]
    for offer in declined:
        r = InflatingViewer(c.port, offer)
        hello, _, comp, _ = r.recv()
        check(r.status == 101 and r.extensions is None and not comp and json.loads(hello)["type"] == "hello",
              f"{offer!r}: declined ({r.extensions!r}), plain hello")
        r.close()
    accepted = {"permessage-deflate": "permessage-deflate",
                "permessage-deflate; client_max_window_bits=10": "permessage-deflate",
                'permessage-deflate; client_max_window_bits="12"': "permessage-deflate",
                "permessage-deflate; client_no_context_takeover":
                    "permessage-deflate; client_no_context_takeover",
                "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits":
                    "permessage-deflate"}
    for offer, want in accepted.items():
        r = InflatingViewer(c.port, offer)
        hello, _, comp, _ = r.recv()
        snap, _, comp2, _ = r.recv()
        check(r.extensions == want and comp and comp2 and json.loads(snap)["type"] == "snapshot",
              f"{offer!r}: accepted as {r.extensions!r}, hello and snapshot compressed")
        r.close()
    # python websockets asking for what the server declines still connects
    for kw in ({"server_max_window_bits": 10}, {"server_no_context_takeover": True}):
        ws = await connect(c, compression=None, extensions=[ClientPerMessageDeflateFactory(**kw)])
        ok = (await recv_json(ws))["type"] == "hello" and (await recv_json(ws))["type"] == "snapshot"
        check(ok and not ws.extensions, f"python websockets with {kw}: connected without compression")
        await ws.close()
    ws = await connect(c, compression=None, extensions=[ClientPerMessageDeflateFactory(client_no_context_takeover=True)])
    msgs = [await recv_json(ws) for _ in range(2)]
    pongs = []
    for t in (1, 2):   # one at a time: a viewer has one pong pending at most
        await ws.send(json.dumps({"type": "ping", "t": t}))
        pongs.append(await recv_json(ws))
    check(ws.extensions and [m["type"] for m in msgs] == ["hello", "snapshot"] and
          [m.get("t") for m in pongs] == [1, 2],
          f"client_no_context_takeover: messages both ways ({[m['type'] for m in msgs + pongs]})")
    await ws.close()


def flood_tests(c):
    """A ping flood on a compressing connection is closed as on a plain one
    (control frames counted from the bytes; compressed messages do not hide
    them)."""
    r = InflatingViewer(c.port, OFFER)
    r.recv()
    ping = b"\x89\x80\x00\x00\x00\x00"   # masked, empty
    r.s.settimeout(0.5)
    t0, closed_at = time.monotonic(), None
    while time.monotonic() - t0 < 3.0:
        try:
            r.s.sendall(ping * 20000)
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.monotonic() - t0
            break
    print(f"  ping flood on a compressing viewer: closed after {closed_at} s", flush=True)
    check(closed_at is not None and closed_at < 1.0, f"a ping flood is closed within 1 s ({closed_at})")
    check(metric(c.metrics(), "gos_ws_closed_rate_total") >= 1, "... counted as a rate-limit close")
    r.close()


async def memory_tests():
    """Compression state per viewer, from the compositor's RSS: 40 viewers
    without it, then 40 with it (each also compresses a message of its own,
    so that its inflater exists too)."""
    c = Compositor(COMPOSITOR, "--no-render", "--tick-ms", "20")
    try:
        c.feed([token_line(i) for i in range(500)])
        c.wait_broadcast_caught_up()
        n = 40

        async def batch(**kw):
            vs = [await connect(c, **kw) for _ in range(n)]
            for ws in vs:
                await recv_json(ws)
                await recv_json(ws)
                await ws.send(json.dumps({"type": "ping", "t": 3, "pad": "abcdefgh" * 200}))
            for ws in vs:
                while (await recv_json(ws))["type"] != "pong":
                    pass
            time.sleep(0.3)
            return vs

        rss0 = c.rss_kib()
        plain = await batch(compression=None)
        rss1 = c.rss_kib()
        comp = await batch()
        rss2 = c.rss_kib()
        per_plain = (rss1 - rss0) / n
        per_comp = (rss2 - rss1) / n
        print(f"  RSS per viewer: {per_plain:.1f} KiB plain, {per_comp:.1f} KiB with deflate "
              f"(+{per_comp - per_plain:.1f} KiB; bound about 80 KiB, lws defaults 310 KiB)", flush=True)
        check(per_comp - per_plain < 110, f"compression costs under 110 KiB per viewer ({per_comp - per_plain:.1f})")
        check(metric(c.metrics(), "gos_ws_viewers_deflate") == n, "the 40 compressing viewers are counted")
        for ws in plain + comp:
            await ws.close()
    finally:
        c.stop()


async def main():
    c = Compositor(COMPOSITOR, "--no-render", "--tick-ms", "20")
    try:
        await snapshot_tests(c)
        await offer_tests(c)
        flood_tests(c)
    finally:
        rc = c.stop()
        check(rc == 0, f"compositor exits 0 on SIGTERM: {rc}")
    await memory_tests()


asyncio.run(main())
sys.exit(report("ws_deflate"))
