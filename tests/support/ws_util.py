"""Shared helpers for the WebSocket/HTTP tests (tests/ws_*.py): start a real
gos-compositor on loopback, feed its Unix socket, talk raw HTTP and raw
WebSocket (stdlib only: the tests need byte-level control that a client
library hides), and count checks."""
import asyncio
import atexit
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

from gos_check import check, report  # noqa: F401  (the tests import them from here too)


class Compositor:
    """A gos-compositor on a fresh socket and a free loopback port. With
    --tls-cert in extra, pass ssl_ctx (an ssl.SSLContext that trusts the
    certificate): http() and health() then speak https."""

    def __init__(self, binary, *extra, port=0, tmp=None, ssl_ctx=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="gos-ws-")
        self.own_tmp = tmp is None
        self.sock = os.path.join(self.tmp, "gos.sock")
        self.errpath = os.path.join(self.tmp, f"stderr-{time.monotonic_ns()}.txt")
        self.errf = open(self.errpath, "w")
        # memory only unless the test is about the journal (it passes --state-dir)
        journal = [] if any(a.startswith("--state-dir") for a in extra) else ["--no-journal"]
        args = [binary, "--headless", "--socket", self.sock, "--log-interval", "0",
                "--listen", f"127.0.0.1:{port}", *journal, *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.errf)
        # a test that dies half-way leaves no compositor running
        atexit.register(self.stop)
        self.port = None
        self.ssl_ctx = ssl_ctx
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"web viewer at https?://[0-9.]+:(\d+)/", self.stderr())
            if m and os.path.exists(self.sock):
                self.port = int(m.group(1))
                break
            time.sleep(0.02)
        if self.port is None:
            raise RuntimeError("gos-compositor did not start: " + self.stderr())

    def stderr(self):
        with open(self.errpath) as f:
            return f.read()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.errf.closed:
            self.errf.close()
        rc = self.proc.returncode
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return rc

    # ---- producers
    def feed(self, lines, chunk=2000, pace=None):
        """Sends JSON lines (str or dict) then a sync barrier; returns the
        sync reply. pace: seconds between chunks."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock)
        buf = []
        for i, line in enumerate(lines):
            buf.append(line if isinstance(line, str) else json.dumps(line))
            if len(buf) >= chunk:
                s.sendall(("\n".join(buf) + "\n").encode())
                buf = []
                if pace:
                    time.sleep(pace)
        buf.append('{"type":"sync"}')
        s.sendall(("\n".join(buf) + "\n").encode())
        data = b""
        s.settimeout(120)
        reply = None
        while reply is None:
            chunk_ = s.recv(65536)
            if not chunk_:
                break
            data += chunk_
            while b"\n" in data:
                line, data = data.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("type") == "sync":
                    reply = msg
                elif msg.get("type") == "error":
                    print("feed: rejected:", msg, file=sys.stderr)
        s.close()
        return reply

    # ---- HTTP
    def http(self, path, headers=None, method="GET"):
        return http_raw(self.port, path, headers, method, ssl_ctx=self.ssl_ctx)

    def health(self):
        st, _, body = self.http("/health")
        return json.loads(body) if st in (200, 503) else None

    def metrics(self, headers=None):
        st, _, body = self.http("/metrics", headers)
        return body.decode() if st == 200 else None

    def wait_broadcast_caught_up(self, timeout=30):
        """Until the broadcaster has published everything the map holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.health()
            if h and h["broadcast"]["seq"] == h["seq"]:
                return h
            time.sleep(0.02)
        return None


def metric(text, name, labels=None):
    """The value of one sample in Prometheus text, or None."""
    want = name + ("{" + labels + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) == 2 and parts[0] == want:
            return float(parts[1])
    return None


def http_raw(port, path, headers=None, method="GET", timeout=10, ssl_ctx=None):
    """One HTTP/1.1 request with the path sent byte for byte (no client-side
    normalization), over TLS with ssl_ctx. Returns (status, headers dict,
    body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if ssl_ctx:
        s = ssl_ctx.wrap_socket(s, server_hostname="127.0.0.1")
    req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        req += f"{k}: {v}\r\n"
    s.sendall((req + "\r\n").encode("latin-1"))
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"content-length: *(\d+)", head, re.I)
            if m and len(body) >= int(m.group(1)):
                break
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return 0, {}, b""
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


async def read_until(ws, mirror, seq, timeout=20):
    """Applies a websockets client's gos.v1 messages to mirror until it
    reaches seq (pongs are kept in mirror.pongs); False on timeout."""
    deadline = time.monotonic() + timeout
    while mirror.seq is None or mirror.seq < seq:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        m = json.loads(await asyncio.wait_for(ws.recv(), left))
        if m["type"] in ("snapshot", "token_visualization", "neural_state"):
            mirror.apply(m)
        elif m["type"] == "pong":
            mirror.pongs = getattr(mirror, "pongs", []) + [m]
    return True


class RawViewer:
    """A WebSocket client on a plain socket: the test decides when (and
    whether) it reads, answers pings, or sends odd frames."""

    def __init__(self, port, path="/ws", headers=None, rcvbuf=None, protocol="gos.v1",
                 ssl_ctx=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(30)
        self.s.connect(("127.0.0.1", port))
        if ssl_ctx:  # wss://
            self.s = ssl_ctx.wrap_socket(self.s, server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        if protocol:
            req += f"Sec-WebSocket-Protocol: {protocol}\r\n"
        for k, v in (headers or {}).items():
            req += f"{k}: {v}\r\n"
        self.s.sendall((req + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
        self.headers = {k.strip().lower(): v.strip()
                        for k, _, v in (ln.partition(":") for ln in lines[1:])}
        self.closed = None   # (code, reason) once a close frame arrived
        self.pings = 0

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def raw_frame(self):
        """The next frame: (first byte, payload, bytes it took on the wire)."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0, payload, off + n

    def frame(self):
        b0, payload, _ = self.raw_frame()
        return b0 & 0x80, b0 & 0x0F, payload

    def recv(self, answer_pings=True):
        """The next message (str), or None after a close frame."""
        parts = []
        while True:
            fin, op, payload = self.frame()
            if op == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                self.closed = (code, payload[2:].decode(errors="replace"))
                return None
            if op == 0x9:
                self.pings += 1
                if answer_pings:
                    self.send(payload, opcode=0xA)
                continue
            if op == 0xA:
                continue
            parts.append(payload)
            if fin:
                return b"".join(parts).decode()

    def recv_json(self):
        m = self.recv()
        return None if m is None else json.loads(m)

    def send(self, data, opcode=0x1, fin=True):
        if isinstance(data, str):
            data = data.encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if n < 4096 else \
            (int.from_bytes(data, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        self.s.sendall(head + mask + masked)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Mirror:
    """A viewer's picture of the map, built only from gos.v1 messages."""

    def __init__(self):
        self.tokens = {}
        self.streams = {}
        self.seq = None
        self.errors = []
        self.types = []

    def apply(self, m):
        t = m.get("type")
        self.types.append(t)
        if t == "snapshot":
            self.tokens = {x["id"]: x for x in m["tokens"]}
            self.streams = {s["stream"]: s for s in m["streams"]}
            if self.seq is not None and m["seq"] < self.seq:
                self.errors.append(f"snapshot seq {m['seq']} went back from {self.seq}")
            self.seq = m["seq"]
        elif t in ("token_visualization", "neural_state"):
            # Both messages of a tick carry the tick's since and seq; the
            # chain is snapshot -> token_visualization -> token_visualization.
            if self.seq is None:
                self.errors.append(f"{t} before any snapshot")
            elif m["since"] != self.seq:
                self.errors.append(f"{t} since {m['since']} does not continue seq {self.seq}")
            if m["seq"] <= m["since"]:
                self.errors.append(f"{t} seq {m['seq']} not after since {m['since']}")
            if t == "token_visualization":
                for x in m["tokens"]:
                    if x.get("removed"):
                        self.tokens.pop(x["id"], None)
                    else:
                        self.tokens[x["id"]] = x
                self.seq = m["seq"]
            else:
                for st in m["streams"]:
                    self.streams[st["stream"]] = st
