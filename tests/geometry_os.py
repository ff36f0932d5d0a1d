"""Geometry OS's producers against a real gos-compositor (issue 14;
docs/geometry-os.md): the Rust EvolutionClient's little-endian frames and
the Python side's big-endian ones (JSON, then a 16-byte glyph command inside
the same length), in their real message shapes: a frame split across reads
byte by byte, a big-endian length whose low byte is 0, messages gos does
not visualise (counted on /metrics, acknowledged when asked), Heartbeat answered within
5 s, SyncRequest answered in the peer's framing and shape, a frame that
never completes (an error after --frame-timeout, the connection closed, the
events before it applied), first bytes that fit no framing (answered at
once). What reached the map is read back from a viewer's snapshot.

usage: geometry_os.py GOS_COMPOSITOR"""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, RawViewer, check, metric, report  # noqa: E402

GLYPH = bytes([0xCE, 0x10, 0x00, 0x20, 0x00, 0xFF, 0xFF, 0x00, 0xFF]) + bytes(7)


def rust(msg_type, payload, ts=1707345600123):
    """The Rust side's frame: u32 little-endian length + serde_json's bytes."""
    data = json.dumps({"message_type": msg_type, "payload": payload, "timestamp": ts},
                      separators=(",", ":")).encode()
    return struct.pack("<I", len(data)) + data


def python(msg_type, payload, sequence, glyph=GLYPH):
    """compositor_bridge.py's frame: u32 big-endian length + json.dumps +
    the glyph command, all inside the length."""
    data = json.dumps({"msg_type": msg_type, "sequence": sequence, "payload": payload}).encode()
    body = data + glyph
    return struct.pack(">I", len(body)) + body


def read_exact(s, n, timeout):
    s.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_reply(s, order, timeout=5.0):
    """One reply frame (order '<' or '>'), parsed; None at EOF or timeout."""
    try:
        head = read_exact(s, 4, timeout)
        if head is None:
            return None
        n = struct.unpack(order + "I", head)[0]
        if n > 1 << 20:
            return {"bad length": n}
        body = read_exact(s, n, timeout)
        return json.loads(body) if body is not None else None
    except (socket.timeout, OSError):
        return None


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def snapshot(port):
    v = RawViewer(port)
    try:
        while True:
            m = v.recv_json()
            if m.get("type") == "snapshot":
                return m
    finally:
        v.close()


def main():
    binary = sys.argv[1]
    g = Compositor(binary, "--frame-timeout", "1", "--producer-timeout", "30")
    try:
        # ---- the Rust side: little-endian frames --------------------------
        r = connect(g.sock)
        first = rust("TokenVisualizationUpdate", {
            "current_token": "hello", "token_id": 42, "hilbert_position": [0.25, 0.5],
            "activation": 0.8, "layer": 3, "attention_weights": [0.25, 0.75],
            "timestamp": 1707345600.123, "sequence_position": 0, "sequence_length": 2})
        for b in first:                      # split across reads, byte by byte
            r.send(bytes([b]))
            time.sleep(0.002)
        r.sendall(rust("TokenVisualizationUpdate", {
            "current_token": " world", "token_id": 7, "hilbert_position": [1.0, 0.0],
            "activation": 1.7, "layer": 0, "attention_weights": [],
            "timestamp": 1707345600.2, "sequence_position": 1, "sequence_length": 2}))
        r.sendall(rust("NeuralStateUpdate", {"daemon_id": "lm_studio_daemon", "strength": 0.8,
                                             "data": {"confidence": 0.95, "layer_activations": [0.5]}}))
        r.sendall(rust("EvolutionTick", None))          # the Rust client's heartbeat
        r.sendall(rust("CognitiveStateUpdate", {"mode": "reasoning"}))  # not visualised
        r.sendall(rust("SyncRequest", None))
        t0 = time.monotonic()
        rep = read_reply(r, "<")
        check(rep is not None and rep.get("message_type") == "SyncResponse" and
              rep["payload"] == {"applied": 3, "rejected": 0, "tokens": 2, "ignored": 2} and
              isinstance(rep.get("timestamp"), int) and rep["timestamp"] > 1.7e12,
              f"Rust: SyncResponse, little-endian, in the Rust shape: {rep}")
        check(time.monotonic() - t0 < 5, "Rust: the sync answered promptly")

        # ---- the Python side: big-endian frames with the glyph command ----
        p = connect(g.sock)
        p.sendall(python("Thought", {"type": "token", "token": "hi", "confidence": 0.9}, 1001))
        p.sendall(python("Thought", {"type": "gvn", "content": "Eliminated 45 instructions"}, 1002))
        p.sendall(python("Bogus", {"x": 1}, 1003))      # an unknown msg_type: counted, no reply
        # a Heartbeat whose big-endian length is 256 (00 00 01 00: 65536 read
        # little-endian), as compositor_bridge.py sends it, split in two reads
        pad = 256 - 16 - len(json.dumps({"msg_type": "Heartbeat", "sequence": 1004,
                                         "payload": {"opcode": 254, "timestamp": 0.0, "pad": ""}}).encode())
        hb = python("Heartbeat", {"opcode": 254, "timestamp": 0.0, "pad": "p" * pad}, 1004)
        check(hb[:4] == b"\x00\x00\x01\x00", f"Python: the heartbeat's length is 00 00 01 00: {hb[:4]!r}")
        t0 = time.monotonic()
        p.sendall(hb[:100])
        time.sleep(0.05)
        p.sendall(hb[100:])
        rep = read_reply(p, ">", timeout=5.0)
        took = time.monotonic() - t0
        check(rep == {"msg_type": "Ack", "sequence": 1004, "payload": {"status": "alive", "of": "Heartbeat"}},
              f"Python: Heartbeat answered, big-endian, in the Python shape: {rep}")
        check(took < 5.0, f"Python: within compositor_bridge's 5 s ({took:.3f} s)")
        p.sendall(python("RequestMetrics", {}, 1005))
        rep = read_reply(p, ">")
        check(rep is not None and rep["msg_type"] == "Ack" and rep["payload"]["status"] == "unsupported",
              f"Python: a request gos does not serve is acknowledged: {rep}")
        p.sendall(python("SyncRequest", {}, 1006))
        rep = read_reply(p, ">")
        check(rep == {"msg_type": "SyncResponse", "sequence": 1006,
                      "payload": {"applied": 1, "rejected": 0, "tokens": 3, "ignored": 2}},
              f"Python: SyncResponse in the Python shape, after nothing else: {rep}")

        # ---- what reached the map ------------------------------------------
        snap = snapshot(g.port)
        toks = {t["id"]: t for t in snap["tokens"]}
        t42 = toks.get("geo:42", {})
        check(t42.get("text") == "hello" and t42.get("x") == 1536 and t42.get("y") == 3072 and
              abs(t42.get("confidence", 0) - 0.8) < 1e-6 and t42.get("stream") == "geometry-os",
              f"token_id 42: hilbert [0.25,0.5] x 6144 world units, activation 0.8: {t42}")
        t7 = toks.get("geo:7", {})
        check(t7.get("x") == 6144 and t7.get("y") == 0 and t7.get("confidence") == 1,
              f"token_id 7: activation 1.7 clamped to 1: {t7}")
        th = [t for t in snap["tokens"] if t["id"].startswith("thought:1001:")]
        check(len(th) == 1 and th[0]["text"] == "hi" and abs(th[0]["confidence"] - 0.9) < 1e-6 and
              th[0]["stream"] == "sisyphus", f"the Thought token: {th}")
        streams = {s["stream"]: s for s in snap["streams"]}
        st = streams.get("geometry-os", {})
        check(st.get("state") == "processing" and st.get("model") == "lm_studio_daemon",
              f"NeuralStateUpdate: the stream's state: {st}")

        # ---- a frame that never completes -----------------------------------
        d = connect(g.sock)
        d.sendall(rust("TokenVisualizationUpdate", {"current_token": "kept", "token_id": 99,
                                                    "hilbert_position": [0.5, 0.5], "activation": 0.5}))
        t0 = time.monotonic()
        d.sendall(struct.pack("<I", 500) + b'{"message_type":')     # 500 bytes announced
        for _ in range(4):                  # a byte now and then: progress, no completion
            time.sleep(0.3)
            try:
                d.send(b" ")
            except OSError:
                break
        rep = read_reply(d, "<", timeout=5.0)
        took = time.monotonic() - t0
        check(rep is not None and rep.get("message_type") == "Error" and
              rep["payload"]["code"] == "timeout" and "frame not complete 1 s" in rep["payload"]["error"],
              f"an unfinished frame: an error in the peer's framing and shape: {rep}")
        check(0.9 <= took < 3.0, f"after --frame-timeout 1 s ({took:.2f} s)")
        d.settimeout(3)
        try:
            eof = d.recv(1) == b""
        except OSError:
            eof = True
        check(eof, "then the connection is closed")
        d.close()
        q = connect(g.sock)
        q.sendall(b'{"type":"sync"}\n')
        q.settimeout(5)
        line = q.recv(4096)
        check(b'"tokens":4' in line, f"the event before it stays applied: {line!r}")
        q.close()

        # ---- first bytes that fit no framing: answered at once --------------
        for what, data in (("a length, then no JSON", b"\x05\x00\x00\x00hello"),
                           ("text no JSON starts with", b"not json\n"),
                           ("16 MiB one way, 1 byte the other", b"\x00\x00\x00\x01")):
            z = connect(g.sock)
            t0 = time.monotonic()
            z.sendall(data)
            z.settimeout(3)
            got = b""
            try:
                while True:
                    c = z.recv(4096)
                    if not c:
                        break
                    got += c
            except socket.timeout:
                pass
            took = time.monotonic() - t0
            check(b'"type":"error"' in got and took < 1.0,
                  f"{what}: an error at once ({took:.3f} s), closed: {got!r}")
            z.close()
        # ---- counted on /metrics ------------------------------------------------
        m = g.metrics() or ""
        kinds = {k: metric(m, "gos_ingest_geo_messages_total", f'kind="{k}"')
                 for k in ("token", "thought", "state", "sync", "heartbeat", "request", "ignored")}
        check(kinds == {"token": 3, "thought": 1, "state": 1, "sync": 2, "heartbeat": 1,
                        "request": 1, "ignored": 4},
              f"gos_ingest_geo_messages_total by kind: {kinds}")
        check(metric(m, "gos_ingest_frame_timeouts_total") == 1, "gos_ingest_frame_timeouts_total 1")
        r.close()
        p.close()
    finally:
        rc = g.stop()
    check(rc == 0, f"the compositor shut down cleanly ({rc})")
    return report("geometry_os")


if __name__ == "__main__":
    sys.exit(main())
