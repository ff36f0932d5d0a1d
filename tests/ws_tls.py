#!/usr/bin/python3
"""--tls-cert/--tls-key through a real gos-compositor, with a certificate
this test makes (openssl req -x509): https GET / and /health, wss viewers
(a raw one, and python websockets with permessage-deflate) that get hello,
a snapshot and live deltas; a plain-HTTP request to the TLS port is closed
and the server goes on; an unreadable, non-PEM or mismatched key is one
sentence and exit 1; and the start-up warning for a port open to other
machines in clear text without a token.

usage: ws_tls.py GOS_COMPOSITOR   (run by ctest)"""
import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, Mirror, RawViewer, check, http_raw, report  # noqa: E402

COMPOSITOR = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="gos-tls-")


def path(name):
    return os.path.join(tmp, name)


def make_cert(stem):
    """A self-signed certificate for 127.0.0.1 and localhost (P-256: quick)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", path(stem + ".key"), "-out", path(stem + ".pem")],
                   check=True, capture_output=True)
    return path(stem + ".pem"), path(stem + ".key")


def token_line(i):
    return {"type": "token_activation", "token_id": f"t{i}", "token_text": f"w{i}",
            "timestamp": 1700000000.0 + i, "confidence": 0.5, "stream": "s"}


def start_fails(*extra):
    """Runs the compositor expecting a start-up failure: (exit code, stderr)."""
    p = subprocess.run([COMPOSITOR, "--headless", "--no-journal", "--log-interval", "0",
                        "--socket", path("fail.sock"), "--listen", "127.0.0.1:0", *extra],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


cert, key = make_cert("a")
other_cert, other_key = make_cert("b")
with open(path("junk.pem"), "w") as f:
    f.write("not a certificate\n")

# ---- files that cannot serve: one sentence naming the file, exit 1
for what, args, says in [
    ("a key that cannot be read", ["--tls-cert", cert, "--tls-key", path("absent.key")],
     f"cannot read --tls-key {path('absent.key')}: No such file or directory"),
    ("a certificate that cannot be read", ["--tls-cert", path("absent.pem"), "--tls-key", key],
     f"cannot read --tls-cert {path('absent.pem')}"),
    ("a certificate file that holds none", ["--tls-cert", path("junk.pem"), "--tls-key", key],
     "holds no PEM certificate"),
    ("a key file that holds none", ["--tls-cert", cert, "--tls-key", path("junk.pem")],
     "holds no PEM private key"),
    ("another certificate's key", ["--tls-cert", cert, "--tls-key", other_key],
     f"--tls-key {other_key} is not the private key of the certificate in --tls-cert {cert}"),
    ("a certificate without its key", ["--tls-cert", cert],
     "--tls-cert and --tls-key go together"),
]:
    rc, err = start_fails(*args)
    lines = [ln for ln in err.splitlines() if ln.startswith("gos [main] error: ")]
    check(rc == 1 and len(lines) == 1 and says in lines[0],
          f"{what}: exit 1 with one sentence containing {says!r} (exit {rc}: {err!r})")

# ---- a TLS server
ctx = ssl.create_default_context(cafile=cert)   # verifies the chain and 127.0.0.1
c = Compositor(COMPOSITOR, "--tls-cert", cert, "--tls-key", key, "--tick-ms", "20",
               ssl_ctx=ctx)
check(f"web viewer at https://127.0.0.1:{c.port}/" in c.stderr(),
      f"the start-up line gives the https:// URL ({c.stderr()!r})")
check("warning" not in c.stderr(), "no exposure warning on loopback")

st, hdrs, body = c.http("/")
check(st == 200 and b"<html" in body.lower() and hdrs.get("content-type", "").startswith("text/html"),
      f"https GET / serves the viewer page ({st} {hdrs})")
st, _, body = c.http("/health")
h = json.loads(body) if st == 200 else {}
check(st == 200 and h.get("status") == "ok", f"https GET /health is 200 ok ({st} {body[:200]!r})")
st, _, body = c.http("/viewer.js")
check(st == 200 and b"location.protocol === 'https:' ? 'wss:'" in body,
      "the viewer builds its WebSocket URL from location: wss: on an https: page")

N = 300
check(c.feed([token_line(i) for i in range(N)]) is not None, "the producer's sync came back")

# a raw wss viewer (no deflate: lws writes its frames over TLS)
v = RawViewer(c.port, ssl_ctx=ctx)
check(v.status == 101, f"wss upgrade answers 101 ({v.status})")
mirror = Mirror()
hello = v.recv_json()
check(hello and hello.get("type") == "hello", f"raw wss viewer gets hello ({hello})")
deadline = time.monotonic() + 20
while len(mirror.tokens) < N and time.monotonic() < deadline:
    m = v.recv_json()
    if m and m["type"] in ("snapshot", "token_visualization", "neural_state"):
        mirror.apply(m)
check(len(mirror.tokens) == N, f"raw wss viewer holds all {N} tokens ({len(mirror.tokens)})")
c.feed([token_line(i) for i in range(N, N + 50)])
while len(mirror.tokens) < N + 50 and time.monotonic() < deadline + 10:
    m = v.recv_json()
    if m and m["type"] in ("snapshot", "token_visualization", "neural_state"):
        mirror.apply(m)
check(len(mirror.tokens) == N + 50, f"raw wss viewer gets the live deltas ({len(mirror.tokens)})")
v.close()


async def websockets_viewer():
    url = f"wss://127.0.0.1:{c.port}/ws"
    async with websockets.connect(url, ssl=ctx, subprotocols=["gos.v1"], max_size=None,
                                  open_timeout=10) as ws:
        deflate = any(e.name == "permessage-deflate" for e in ws.extensions)
        mirror2 = Mirror()
        end = time.monotonic() + 20
        while len(mirror2.tokens) < N + 50 and time.monotonic() < end:
            m = json.loads(await asyncio.wait_for(ws.recv(), end - time.monotonic()))
            if m["type"] in ("snapshot", "token_visualization", "neural_state"):
                mirror2.apply(m)
        return deflate, len(mirror2.tokens)

deflate, n = asyncio.run(websockets_viewer())
check(deflate and n == N + 50, f"python websockets over wss (deflate {deflate}) holds {n} tokens")

# ---- plain HTTP (and plain WebSocket) to the TLS port: closed, the server goes on
for _ in range(3):
    st, _, body = http_raw(c.port, "/health", timeout=5)
    check(st == 0 and body == b"", f"a plain-HTTP request to the TLS port gets no answer ({st})")
try:
    plain = RawViewer(c.port)
    status = plain.status
    plain.close()
except OSError:   # reset while the upgrade was being read
    status = 0
check(status == 0, f"a plain ws:// upgrade to the TLS port is closed ({status})")
st, _, _ = c.http("/health")
check(st == 200 and c.proc.poll() is None, "the TLS server goes on serving after plain requests")
check(c.stop() == 0, "the TLS compositor exits 0 on SIGTERM")

# ---- the exposure warning: a non-loopback --listen without TLS and token
c = Compositor(COMPOSITOR, "--listen", "0.0.0.0:0")
warn = [ln for ln in c.stderr().splitlines() if "warning" in ln]
check(len(warn) == 1 and "0.0.0.0" in warn[0] and "clear text" in warn[0] and
      "without a token" in warn[0] and "/recording" in warn[0],
      f"0.0.0.0 without TLS or token: one warning that says what is exposed ({warn})")
c.stop()
with open(path("token"), "w") as f:
    f.write("s3cret\n")
for extra in (["--tls-cert", cert, "--tls-key", key], ["--auth-token-file", path("token")]):
    c = Compositor(COMPOSITOR, "--listen", "0.0.0.0:0", *extra,
                   ssl_ctx=ctx if "--tls-cert" in extra else None)
    check("warning" not in c.stderr(), f"no warning with {extra[0]} ({c.stderr()!r})")
    c.stop()

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("ws_tls"))
