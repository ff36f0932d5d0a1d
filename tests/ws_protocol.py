#!/usr/bin/python3
"""Remote viewers through a real gos-compositor: protocol gos.v1 (hello,
snapshot, deltas that cover every event in seq order, late joiners, eviction),
client messages (unknown, viewport, ping, oversize), the HTTP side (files,
path traversal, /metrics through promtool, /health), and the server's
refusals (auth token, Origin, --max-viewers), as a user meets them.

usage: ws_protocol.py GOS_COMPOSITOR   (run by ctest)"""
import asyncio
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import (Compositor, Mirror, RawViewer, check, http_raw, metric,  # noqa: E402
                     read_until, report)

COMPOSITOR = sys.argv[1]
SOURCE = os.environ.get("GOS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
ASSETS = os.path.join(SOURCE, "assets", "web")


def ws_url(c, query=""):
    return f"ws://127.0.0.1:{c.port}/ws{query}"


async def connect(c, query="", **kw):
    return await websockets.connect(ws_url(c, query), subprotocols=["gos.v1"], max_size=None,
                                    open_timeout=10, **kw)


def token_line(i, **kw):
    d = {"type": "token_activation", "token_id": f"t{i}", "token_text": f"w{i}",
         "timestamp": 1700000000.0 + i, "confidence": round((i % 100) / 99, 4),
         "stream": "alpha" if i % 2 else "beta"}
    d.update(kw)
    return d


def expected_fields_match(mirror, expect):
    bad = []
    for tid, e in expect.items():
        got = mirror.tokens.get(tid)
        if got is None:
            bad.append(f"{tid} missing")
            continue
        if got["text"] != e["text"] or got["stream"] != e["stream"]:
            bad.append(f"{tid}: text/stream {got['text']!r}/{got['stream']!r} != {e['text']!r}/{e['stream']!r}")
        if e["confidence"] is None:
            if got["confidence"] is not None:
                bad.append(f"{tid}: confidence {got['confidence']} should be unknown (null)")
        elif got["confidence"] is None or abs(got["confidence"] - e["confidence"]) > 1e-6:
            bad.append(f"{tid}: confidence {got['confidence']} != {e['confidence']}")
        if "x" in e and (abs(got["x"] - e["x"]) > 1e-3 or abs(got["y"] - e["y"]) > 1e-3):
            bad.append(f"{tid}: at ({got['x']},{got['y']}) not ({e['x']},{e['y']})")
    return bad


def web_dir_with_traps(tmp):
    """A copy of the viewer's files plus links that point outside it."""
    web = os.path.join(tmp, "web")
    shutil.copytree(ASSETS, web)
    secret = os.path.join(tmp, "secret.txt")
    with open(secret, "w") as f:
        f.write("TOP-SECRET-gos-test\n")
    os.symlink(secret, os.path.join(web, "leak.txt"))
    os.symlink(tmp, os.path.join(web, "leakdir"))
    return web


async def protocol_tests():
    tmp = tempfile.mkdtemp(prefix="gos-wsp-")
    web = web_dir_with_traps(tmp)
    c = Compositor(COMPOSITOR, "--web-dir", web, "--tick-ms", "20", tmp=tmp)
    try:
        # --- hello, then a snapshot of the (empty) map
        a = await connect(c)
        hello = json.loads(await a.recv())
        check(hello.get("type") == "hello" and hello.get("protocol") == "gos.v1" and
              hello.get("protocol_version") == 1 and hello.get("server_version"),
              f"first message is hello with protocol and versions: {hello}")
        snap = json.loads(await a.recv())
        check(snap.get("type") == "snapshot" and snap.get("tokens") == [] and
              isinstance(snap.get("seq"), int), f"then a snapshot of the empty map: {snap}")
        ma = Mirror()
        ma.apply(snap)

        # --- every kind of event
        expect = {}
        lines = []
        for i in range(300):   # positioned tokens, two streams, some with alternatives
            d = token_line(i, position=[i * 10.0, -i * 3.5])
            if i % 7 == 0:
                d["top_logprobs"] = [{"token": f"w{i}", "logprob": -0.1}, {"token": "alt", "logprob": -2.5}]
                d["logprob"] = -0.1
            lines.append(d)
            expect[d["token_id"]] = {"text": d["token_text"], "stream": d["stream"],
                                     "confidence": d["confidence"], "x": i * 10.0, "y": -i * 3.5}
        for i in range(300, 350):   # laid out by the compositor, unknown confidence
            d = token_line(i)
            del d["confidence"]
            lines.append(d)
            expect[d["token_id"]] = {"text": d["token_text"], "stream": d["stream"], "confidence": None}
        lines.append({"type": "neural_state", "stream": "alpha", "state": "processing",
                      "tokens_processed": 150, "total_tokens": 264, "elapsed_ms": 1234})
        lines.append({"type": "neural_state", "stream": "beta", "state": "done",
                      "tokens_processed": 175, "total_tokens": 175, "elapsed_ms": 999})
        viz = [{"id": f"v{i}", "text": f"viz{i}", "x": 5000 + i, "y": 77, "confidence": 0.5}
               for i in range(20)]
        lines.append({"type": "token_visualization", "tokens": viz})
        for v in viz:
            expect[v["id"]] = {"text": v["text"], "stream": "", "confidence": 0.5, "x": v["x"], "y": v["y"]}
        for i in range(0, 60, 2):   # updates of existing tokens
            d = token_line(i, token_text=f"upd{i}", confidence=0.25, position=[1.0 * i, 2.0 * i])
            lines.append(d)
            expect[d["token_id"]].update(text=f"upd{i}", confidence=0.25, x=1.0 * i, y=2.0 * i)
        lines.append('{"type":"token_activation","token_id":"bad","token_text":"x","timestamp":1,"confidence":1.5}')
        lines.append('not json at all')
        reply = c.feed(lines)
        check(reply and reply["tokens"] == len(expect) and reply["rejected"] == 2,
              f"the map holds {len(expect)} tokens and 2 lines were rejected: {reply}")
        h = c.wait_broadcast_caught_up()
        check(h is not None, "the broadcaster catches up with the map")
        check(await read_until(a, ma, h["seq"]), f"viewer A reaches seq {h['seq']}")
        check(not ma.errors, f"deltas chain in seq order: {ma.errors[:3]}")
        check(len(ma.tokens) == len(expect), f"viewer A has {len(ma.tokens)} tokens, want {len(expect)}")
        bad = expected_fields_match(ma, expect)
        check(not bad, f"every token as ingested (id/text/x/y/confidence/stream): {bad[:5]}")
        check("bad" not in ma.tokens, "a rejected line never reaches viewers")
        t7 = ma.tokens.get("t7", {})
        check([x["token"] for x in t7.get("alts", [])] == ["w7", "alt"] and
              abs(t7.get("logprob", 0) + 0.1) < 1e-6, f"top alternatives and logprob reach viewers: {t7}")
        st = ma.streams.get("alpha", {})
        check(st.get("state") == "processing" and st.get("tokens_processed") == 150 and
              st.get("total_tokens") == 264, f"neural_state of stream alpha: {st}")
        check(ma.streams.get("beta", {}).get("state") == "done", f"neural_state of stream beta: {ma.streams.get('beta')}")
        laid = [ma.tokens[f"t{i}"] for i in range(300, 350)]
        check(all(math.isfinite(t["x"]) and math.isfinite(t["y"]) for t in laid) and
              len({(t["x"], t["y"]) for t in laid}) == len(laid),
              "tokens without a position are laid out at distinct places")

        # --- a late joiner's snapshot holds everything, at the same seq
        b = await connect(c)
        json.loads(await b.recv())
        sb = json.loads(await b.recv())
        check(sb["type"] == "snapshot" and sb["seq"] == ma.seq,
              f"late joiner's snapshot is at seq {ma.seq}: {sb.get('seq')}")
        mb = Mirror()
        mb.apply(sb)
        check(mb.tokens == ma.tokens, "late joiner's snapshot tokens == what deltas built")
        check(mb.streams == ma.streams, "late joiner's snapshot streams == what deltas built")

        # --- both keep up with more events, in order
        more = [token_line(i, position=[0.0, 1000.0 + i]) for i in range(1000, 1500)]
        c.feed(more, chunk=50, pace=0.005)
        h = c.wait_broadcast_caught_up()
        await read_until(a, ma, h["seq"])
        await read_until(b, mb, h["seq"])
        check(not ma.errors and not mb.errors, f"no gaps while events flow: {ma.errors[:2]} {mb.errors[:2]}")
        check(ma.tokens == mb.tokens and len(ma.tokens) == len(expect) + 500,
              f"both viewers converge ({len(ma.tokens)} / {len(mb.tokens)} tokens)")

        # --- client messages: unknown and malformed ignored, viewport accepted, ping answered
        await a.send(json.dumps({"type": "no_such_thing", "x": 1}))
        await a.send("this is not json")
        await a.send(json.dumps({"type": "viewport", "x": 0, "y": 0, "w": 800, "h": 600, "zoom": 1}))
        await a.send(json.dumps({"type": "ping", "t": 42.5}))
        c.feed([token_line(2000, position=[1.0, 1.0])])
        h = c.wait_broadcast_caught_up()
        check(await read_until(a, ma, h["seq"]) and "t2000" in ma.tokens,
              "after unknown/malformed messages the viewer is still served")
        pongs = getattr(ma, "pongs", [])
        if not pongs:
            m = json.loads(await asyncio.wait_for(a.recv(), 5))
            pongs = [m] if m.get("type") == "pong" else []
        check(pongs and pongs[0].get("t") == 42.5, f"ping answered by pong echoing t: {pongs}")
        mt = c.metrics()
        check(metric(mt, "gos_ws_inbound_ignored_total") == 2,
              f"two ignored client messages counted: {metric(mt, 'gos_ws_inbound_ignored_total')}")

        # --- oversize inbound messages close the connection (1009)
        r = RawViewer(c.port)
        check(r.status == 101, f"raw viewer upgraded: {r.status}")
        r.recv()
        r.send("x" * (70 * 1024))
        got = None
        try:
            while got is None or r.closed is None:
                got = r.recv()
                if got is None:
                    break
        except (EOFError, OSError):
            pass
        check(r.closed is not None and r.closed[0] == 1009,
              f"a 70 KiB message is answered by close 1009: {r.closed}")
        r.close()
        r = RawViewer(c.port)
        r.recv()
        r.send("y" * (40 * 1024), fin=False)
        r.send("y" * (40 * 1024), opcode=0x0)
        try:
            while r.recv() is not None:
                pass
        except (EOFError, OSError):
            pass
        check(r.closed is not None and r.closed[0] == 1009,
              f"a message over 64 KiB in fragments is closed too: {r.closed}")
        r.close()
        time.sleep(0.2)
        check(metric(c.metrics(), "gos_ws_closed_oversize_total") == 2, "oversize closes counted")
        check(await read_until(a, ma, h["seq"]) and a.open, "other viewers are untouched")

        # --- other paths
        r = RawViewer(c.port, path="/not-ws")
        check(r.status == 404, f"an upgrade anywhere but /ws is refused with 404: {r.status}")
        r.close()
        st, hd, body = c.http("/ws")
        check(st == 426, f"plain GET /ws says it is a WebSocket endpoint (426): {st}")

        # --- files
        st, hd, body = c.http("/")
        check(st == 200 and hd.get("content-type", "").startswith("text/html") and
              b"viewer.js" in body, f"/ serves the viewer page: {st} {hd.get('content-type')}")
        for path, ctype in (("/viewer.js", "text/javascript"), ("/viewer.css", "text/css"),
                            ("/index.html", "text/html")):
            st, hd, body = c.http(path)
            with open(os.path.join(ASSETS, path[1:]), "rb") as f:
                same = f.read() == body
            check(st == 200 and hd.get("content-type", "").startswith(ctype) and same,
                  f"{path} served whole as {ctype}: {st} {hd.get('content-type')}")
        st, _, _ = c.http("/no-such-file.js")
        check(st == 404, f"a missing file is 404: {st}")
        traps = ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
                 "/.%2e/secret.txt", "/%252e%252e/secret.txt", "/leak.txt", "/leakdir/secret.txt",
                 "//etc/passwd", "/etc/passwd", "/../../../../etc/passwd",
                 "/..\\secret.txt", "/%5c..%5csecret.txt", "/index.html/../../secret.txt",
                 "/viewer.js%00.html", "/" + tmp + "/secret.txt", "/proc/self/environ"]
        for path in traps:
            st, _, body = c.http(path)
            # Refused: a 4xx, or (for a NUL byte) libwebsockets hangs up unanswered.
            check((st >= 400 or st == 0) and b"TOP-SECRET" not in body and b"root:" not in body,
                  f"{path!r} is refused ({st}) and leaks nothing")

        # --- /metrics: valid for promtool, and the numbers are the truth
        deadline = time.monotonic() + 30   # the headless renderer starts slowly under validation
        while c.health()["render"]["frames"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        mt = c.metrics()
        pt = subprocess.run(["promtool", "check", "metrics"], input=mt, capture_output=True, text=True)
        check(pt.returncode == 0, f"promtool check metrics passes: {pt.stdout} {pt.stderr}")
        check(metric(mt, "gos_tokens") == len(ma.tokens), f"gos_tokens == {len(ma.tokens)}")
        check(metric(mt, "gos_events_total", 'type="token_activation"') == 350 + 30 + 500 + 1,
              "gos_events_total counts token_activation events")
        check(metric(mt, "gos_events_total", 'type="neural_state"') == 2, "neural_state events counted")
        check(metric(mt, "gos_events_total", 'type="token_visualization"') == 1, "token_visualization counted")
        check(metric(mt, "gos_events_rejected_total", 'reason="confidence"') == 1 and
              metric(mt, "gos_events_rejected_total", 'reason="not_json"') == 1, "rejects by reason")
        check(metric(mt, "gos_ws_viewers") == 2, f"gos_ws_viewers == 2: {metric(mt, 'gos_ws_viewers')}")
        check(metric(mt, "gos_ws_messages_sent_total") > 10 and metric(mt, "gos_ws_sent_bytes_total") > 10000,
              "messages and bytes sent counted")
        check(metric(mt, "gos_broadcast_tick_duration_seconds_count") > 0, "tick duration histogram filled")
        check(metric(mt, "gos_frame_duration_seconds_count") > 0,
              "frame time histogram filled by the (headless) renderer")
        for name in ("gos_ws_drops_total", "gos_ws_resyncs_total", "gos_tokens_evicted_total"):
            check(metric(mt, name) is not None, f"{name} is exported")

        # --- /health
        h = c.health()
        check(h["status"] == "ok" and h["tokens"] == len(ma.tokens) and h["viewers"] == 2 and
              h["ingest"]["alive"] is True and h["uptime_s"] > 0 and h["protocol"] == "gos.v1" and
              h["render"]["alive"] is True and h["render"]["frames"] > 0 and
              h["seq"] == h["broadcast"]["seq"], f"/health fields: {h}")

        await a.close()
        await b.close()
        time.sleep(0.2)
        check(metric(c.metrics(), "gos_ws_viewers") == 0, "closed viewers leave the count")
    finally:
        rc = c.stop()
        check(rc == 0, f"compositor exits 0 on SIGTERM: {rc}")
        shutil.rmtree(tmp, ignore_errors=True)


async def eviction_tests():
    c = Compositor(COMPOSITOR, "--max-tokens", "50", "--tick-ms", "10")
    try:
        a = await connect(c)
        ma = Mirror()
        await a.recv()
        ma.apply(json.loads(await a.recv()))
        c.feed([token_line(i, position=[float(i), 0.0]) for i in range(120)], chunk=10, pace=0.01)
        h = c.wait_broadcast_caught_up()
        await read_until(a, ma, h["seq"])
        check(sorted(ma.tokens) == sorted(f"t{i}" for i in range(70, 120)),
              f"evicted tokens are removed from viewers ({len(ma.tokens)} left)")
        b = await connect(c)
        await b.recv()
        mb = Mirror()
        mb.apply(json.loads(await b.recv()))
        check(mb.tokens == ma.tokens, "late joiner after eviction sees the same 50")
        await a.close()
        await b.close()
    finally:
        c.stop()


async def refusal_tests():
    tmp = tempfile.mkdtemp(prefix="gos-wsa-")
    tok = os.path.join(tmp, "token")
    with open(tok, "w") as f:
        f.write("s3cret-Token_42\n")
    c = Compositor(COMPOSITOR, "--auth-token-file", tok, "--allow-origin", "http://good.example",
                   "--max-viewers", "2", tmp=tmp)
    try:
        async def status_of(query="", **kw):
            try:
                ws = await connect(c, query, **kw)
            except websockets.exceptions.InvalidStatusCode as e:
                return e.status_code
            m = json.loads(await ws.recv())
            await ws.close()
            return 101 if m["type"] == "hello" else -1

        check(await status_of() == 401, "no token: 401")
        check(await status_of("?token=s3cret-Token_4") == 401, "a prefix of the token: 401")
        check(await status_of("?token=s3cret-Token_42x") == 401, "the token plus a byte: 401")
        check(await status_of("?token=s3cret-Token_42") == 101, "?token=: accepted")
        check(await status_of(extra_headers={"Authorization": "Bearer s3cret-Token_42"}) == 101,
              "Authorization: Bearer: accepted")
        check(await status_of(extra_headers={"Authorization": "Bearer wrong"}) == 401, "wrong Bearer: 401")
        q = "?token=s3cret-Token_42"
        check(await status_of(q, origin="http://evil.example") == 403, "foreign Origin: 403")
        check(await status_of(q, origin="http://good.example") == 101, "--allow-origin Origin: accepted")
        check(await status_of(q, origin=f"http://127.0.0.1:{c.port}") == 101, "same-origin page: accepted")

        st, _, _ = c.http("/metrics")
        check(st == 401, f"/metrics without token: 401 ({st})")
        st, _, body = c.http("/metrics", {"Authorization": "Bearer s3cret-Token_42"})
        check(st == 200 and b"gos_ws_refused_total" in body, f"/metrics with Bearer: 200 ({st})")
        mt = body.decode()
        check(metric(mt, "gos_ws_refused_total", 'reason="auth"') >= 4 and
              metric(mt, "gos_ws_refused_total", 'reason="origin"') == 1,
              "refusals counted by reason")
        st, _, _ = c.http("/")
        check(st == 401, f"/ without token: 401 ({st})")
        st, hd, body = c.http("/?token=s3cret-Token_42")
        cookie = hd.get("set-cookie", "")
        check(st == 200 and b"viewer.js" in body and cookie.startswith("gos_token=") and
              "HttpOnly" in cookie, f"/?token= serves the page and sets a cookie: {st} {cookie}")
        st, _, _ = c.http("/viewer.js", {"Cookie": cookie.split(";")[0]})
        check(st == 200, f"the page's script loads with the cookie: {st}")
        st, _, _ = c.http("/viewer.js")
        check(st == 401, f"... and not without: {st}")
        st, _, body = c.http("/health")
        check(st == 200 and json.loads(body)["status"] == "ok", "/health needs no token")

        # --max-viewers 2: the third is refused with a clear close reason
        v1 = RawViewer(c.port, path="/ws" + q)
        v2 = RawViewer(c.port, path="/ws" + q)
        v3 = RawViewer(c.port, path="/ws" + q)
        check(v1.recv_json()["type"] == "hello" and v2.recv_json()["type"] == "hello", "two viewers accepted")
        try:
            m = v3.recv()
        except EOFError:
            m = None
        check(m is None and v3.closed and v3.closed[0] == 1013 and "too many viewers" in v3.closed[1],
              f"the third is closed with 1013 'too many viewers': {v3.closed}")
        v1.close()
        v3.close()
        time.sleep(0.3)
        v4 = RawViewer(c.port, path="/ws" + q)
        check(v4.recv_json()["type"] == "hello", "a place freed is taken again")
        v2.close()
        v4.close()
    finally:
        c.stop()

    # start-up errors: one sentence and exit code 1
    bad = subprocess.run([COMPOSITOR, "--headless", "--socket", os.path.join(tmp, "x.sock"),
                          "--listen", "127.0.0.1:0", "--auth-token-file", os.path.join(tmp, "nope")],
                         capture_output=True, text=True, timeout=20)
    check(bad.returncode == 1 and "auth-token-file" in bad.stderr,
          f"a missing token file: exit 1 with a sentence ({bad.returncode}: {bad.stderr.strip()})")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    r = subprocess.run([COMPOSITOR, "--headless", "--socket", os.path.join(tmp, "y.sock"),
                        "--listen", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=20)
    busy.close()
    check(r.returncode == 1 and "cannot listen on 127.0.0.1:%d" % port in r.stderr,
          f"a busy port: exit 1 with a sentence ({r.returncode}: {r.stderr.strip()})")
    # The default port taken (say by another gos-compositor): a warning, not a refusal.
    hold = socket.socket()
    try:
        hold.bind(("127.0.0.1", 7680))
        hold.listen()
        held = True
    except OSError:
        held = False   # someone else has it, which serves as well
    p = subprocess.Popen([COMPOSITOR, "--headless", "--no-journal", "--socket", os.path.join(tmp, "w.sock"),
                          "--log-interval", "0"], stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    alive = p.poll() is None
    p.terminate()
    _, err = p.communicate(timeout=20)
    hold.close()
    warned = "web viewer off: cannot listen on 127.0.0.1:7680" in err and "--listen" in err
    check(alive and (warned or (not held and "web viewer at" in err)),
          f"default port taken: the compositor runs on with a warning ({err.strip()[:300]})")
    r = subprocess.run([COMPOSITOR, "--headless", "--socket", os.path.join(tmp, "v.sock"), "--listen",
                        "127.0.0.1:0", "--web-dir", os.path.join(tmp, "no-such-dir")],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 1 and "no-such-dir" in r.stderr,
          f"a missing --web-dir: exit 1 with a sentence ({r.returncode}: {r.stderr.strip()})")
    r = subprocess.run([COMPOSITOR, "--headless", "--listen", "nonsense"], capture_output=True, text=True)
    check(r.returncode == 2 and "--listen" in r.stderr, f"a bad --listen: exit 2 ({r.stderr.strip()})")
    r = subprocess.run([COMPOSITOR, "--headless", "--tick-ms", "0"], capture_output=True, text=True)
    check(r.returncode == 2 and "--tick-ms" in r.stderr, f"a bad --tick-ms: exit 2 ({r.stderr.strip()})")
    # --no-listen: no server
    p = subprocess.Popen([COMPOSITOR, "--headless", "--no-journal", "--socket", os.path.join(tmp, "z.sock"), "--no-listen",
                          "--log-interval", "0"], stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    p.terminate()
    _, err = p.communicate(timeout=20)
    check(p.returncode == 0 and "web viewer at" not in err, f"--no-listen starts no server: {err.strip()}")
    shutil.rmtree(tmp, ignore_errors=True)


def raw_frame(opcode, payload, fin=True, rsv=0, masked=True):
    """One client frame, byte for byte (RawViewer.send cannot set RSV bits
    or leave the mask out)."""
    n = len(payload)
    mbit = 0x80 if masked else 0
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def frame_tests():
    """Frames that break RFC 6455, sent raw, each on a fresh viewer: the
    server fails the connection with the close code the RFC names (read
    from its close frame), and a viewer beside them is untouched."""
    c = Compositor(COMPOSITOR, "--no-render")
    try:
        good = RawViewer(c.port)
        check(good.recv_json()["type"] == "hello", "a well-behaved viewer is served")
        cases = [
            ("invalid UTF-8 in a text frame", raw_frame(1, b'{"type":"\xff"}'), 1007),
            ("invalid UTF-8 split across fragments",
             raw_frame(1, b'{"t":"\xe2\x82', fin=False) + raw_frame(0, b'"}'), 1007),
            ("a message over 64 KiB", raw_frame(1, b"x" * (70 * 1024)), 1009),
            ("RSV1 set with no extension negotiated", raw_frame(1, b"{}", rsv=0x40), 1002),
            ("RSV2 set", raw_frame(1, b"{}", rsv=0x20), 1002),
            ("reserved opcode 3", raw_frame(3, b"{}"), 1002),
            ("a fragmented ping", raw_frame(9, b"p", fin=False), 1002),
            ("a continuation with nothing to continue", raw_frame(0, b"{}"), 1002),
            ("a new text frame inside a fragmented message",
             raw_frame(1, b"{", fin=False) + raw_frame(1, b"}"), 1002),
            ("a close frame with code 999", raw_frame(8, struct.pack(">H", 999)), 1002),
            ("an unmasked text frame", raw_frame(1, b'{"type":"ping","t":1}', masked=False), 1002),
            ("an unmasked frame after masked ones",
             raw_frame(1, b'{"type":"ping","t":1}') + raw_frame(1, b"x" * 300) +
             raw_frame(1, b'{"type":"ping","t":2}', masked=False), 1002),
            ("an unmasked ping (answered by libwebsockets itself)",
             raw_frame(9, b"p", masked=False), 1002),
            ("an unmasked continuation of a masked fragment",
             raw_frame(1, b"{", fin=False) + raw_frame(0, b"}", masked=False), 1002),
        ]
        for what, data, code in cases:
            r = RawViewer(c.port)
            r.recv()
            r.s.sendall(data)
            try:
                while r.recv() is not None:
                    pass
            except (EOFError, OSError):
                pass
            check(r.closed is not None and r.closed[0] == code,
                  f"{what}: closed with {code} ({r.closed})")
            r.close()
        good.send(json.dumps({"type": "ping", "t": 9}))
        m = good.recv_json()
        while m and m["type"] != "pong":
            m = good.recv_json()
        check(m and m["t"] == 9, f"the viewer beside them is still answered: {m}")
        good.close()
    finally:
        c.stop()


async def main():
    await protocol_tests()
    await eviction_tests()
    await refusal_tests()
    frame_tests()


asyncio.run(main())
sys.exit(report("ws_protocol"))
