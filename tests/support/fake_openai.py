#!/usr/bin/python3
"""A fake OpenAI-compatible server for gos-bridge's tests and benchmark.

Listens on 127.0.0.1 (an ephemeral port unless --port), prints "PORT <n>" on
stdout, and serves until stdin closes (so it never outlives its parent) or
it is killed. Standard library only.

What a request gets is chosen by the first path segment, the "scenario":

    POST /<scenario>[,k=v...]/v1/chat/completions
    POST /<scenario>[,k=v...]/v1/completions  (legacy completions: "text" chunks)
    GET  /<scenario>[,k=v...]/v1/models
    GET  /<scenario>[,k=v...]/events          (a plain event stream, for --sse)
    GET  /stats                               (what every request asked for)

Scenarios (chat): ok, nolp (never sends logprobs), refuse-lp (400 when asked
for logprobs), midstream-error, drop (connection cut mid-stream), 429 (the
first `fails` requests of a `key` get 429 + Retry-After), 500 (the first
`fails` get 500), 404, 401, html (200 text/html), json (200, not a stream),
slow (a trickle of 1-3 byte writes), stall (some tokens, then silence),
nodone (finish_reason and usage, then silence instead of [DONE]),
malformed (every 3rd chunk is broken JSON), multi (several tokens and
logprob entries per chunk), big (fast, large writes: the benchmark).
status (the first `fails` requests of a `key`, default all, get HTTP
`code` with a JSON error body: msg=, type=), fixture (f=FILE of tests/data/llamacpp/, served byte for byte: a .sse body
after the captured .headers, a .http file as it is, its body re-chunked when
its headers say chunked), errfield (some tokens, then llama.cpp's 2025
"error:" line and data: [DONE]; code=, msg=), errevent (the same as an
"event: error"), errdata (the same as data: {"error": ...}).
Options: n=tokens, at=token where midstream-error/drop/stall strike,
fails=, ra=Retry-After seconds, key=counter name, delay=seconds between
tokens, crlf=1 (CRLF line ends), split=none (whole events per write).

Events (--sse): n events, ids 1..n, "retry: <retry>" first, the connection
dropped after every `drop` events, resumed after Last-Event-ID; every 5th
event's data is an ingest token_activation JSON; after the last event the
next request gets 204 No Content. Scenario status: the first `fails`
requests of a `key` (default: all) get HTTP `code` (204 comes with
Content-Type text/event-stream, as some servers send it), the rest the
events; fixture: a captured response, as for chat.
"""
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = [" The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".",
         " Héllo", " 日本", " 🚀", " naïve", " café", "\n", " tab\t", " \"quoted\"", " back\\slash",
         " 0.95", " end"]

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "llamacpp")

lock = threading.Lock()
counters = {}
requests = []
big_cache = {}   # (token index, top_logprobs, with logprobs) -> the event's bytes, for "big"


def token_text(i):
    return WORDS[i % len(WORDS)]


def logprob(i):
    # Deterministic, spread over probabilities from ~0.05 to ~1.
    return -3.0 * ((i * 7919) % 100) / 100.0


def alternatives(i, tok, lp, k):
    if k <= 0:
        return []
    alts = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}]
    for a in range(1, k):
        t = WORDS[(i + 3 * a) % len(WORDS)]
        alts.append({"token": t, "logprob": lp - 0.5 * a - 0.25, "bytes": list(t.encode())})
    return alts


def parse_scenario(segment):
    parts = segment.split(",")
    opts = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            opts[k] = urllib.parse.unquote(v)
    return parts[0], opts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, fmt, *args):
        pass

    # -- plumbing --

    def send_json(self, status, obj, extra=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def start_stream(self):
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def write_split(self, data, how, rng):
        """Writes data in pieces whose boundaries fall anywhere: inside
        "data:", between CR and LF, inside a UTF-8 sequence."""
        if how == "none":
            self.write_chunk(data)
            return
        if how == "trickle":
            i = 0
            while i < len(data):
                n = rng.randint(1, 3)
                self.write_chunk(data[i:i + n])
                i += n
                time.sleep(0.001)
            return
        i = 0
        while i < len(data):
            n = rng.choice([1, 2, 3, 5, 7, 11, 13, 31, 64])
            self.write_chunk(data[i:i + n])
            i += n
            if rng.random() < 0.1:
                time.sleep(0.0005)

    def serve_fixture(self, name, rng):
        """A captured response as the server sent it: the bytes of the file,
        only the transfer encoding redone (chunked, at odd boundaries)."""
        path = os.path.join(FIXTURES, os.path.basename(name))
        with open(path, "rb") as f:
            raw = f.read()
        if name.endswith(".sse"):
            with open(os.path.join(FIXTURES, "llamacpp-b4750-chat-logprobs.headers"), "rb") as f:
                head = f.read()
            body = raw
        else:
            head, _, body = raw.partition(b"\r\n\r\n")
            head += b"\r\n\r\n"
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.wfile.write(head)
        if b"transfer-encoding: chunked" in head.lower():
            self.write_split(body, "odd", rng)
            self.end_stream()
        else:
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

    # -- routes --

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/stats":
            with lock:
                self.send_json(200, {"requests": list(requests)})
            return
        segs = [s for s in path.split("/") if s]
        if len(segs) >= 2 and segs[-1] == "models":
            self.send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            return
        if len(segs) == 2 and segs[1] == "events":
            name, opts = parse_scenario(segs[0])
            key = ("events:" + name, opts.get("key", ""))
            with lock:
                counters[key] = counters.get(key, 0) + 1
                count = counters[key]
            if name == "fixture":
                with lock:
                    requests.append({"scenario": "events:fixture", "count": count})
                self.serve_fixture(opts["f"], random.Random(count))
                return
            if name == "status" and count <= int(opts.get("fails", 1 << 30)):
                code = int(opts.get("code", 500))
                with lock:
                    requests.append({"scenario": "events:status", "count": count, "code": code})
                if code == 204:
                    self.send_response(204)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    return
                self.send_json(code, {"error": {"code": code, "message": f"status {code} (fake)",
                                                "type": "server_error" if code >= 500 else "invalid_request_error"}})
                return
            self.events(name, opts)
            return
        self.send_json(404, {"error": {"message": f"no route for GET {path}"}})

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        segs = [s for s in path.split("/") if s]
        if segs[-1:] != ["completions"]:
            self.send_json(404, {"error": {"message": f"no route for POST {path}"}})
            return
        endpoint = "chat" if segs[-2:] == ["chat", "completions"] else "completions"
        name, opts = parse_scenario(segs[0]) if len(segs) > 2 + (endpoint == "chat") else ("ok", {})
        try:
            req = json.loads(raw)
        except ValueError:
            self.send_json(400, {"error": {"message": "the request body is not JSON"}})
            return
        key = (name, opts.get("key", ""))
        with lock:
            counters[key] = counters.get(key, 0) + 1
            count = counters[key]
            requests.append({
                "scenario": name, "key": opts.get("key", ""), "count": count,
                "model": req.get("model"), "logprobs": req.get("logprobs"),
                "top_logprobs": req.get("top_logprobs"), "max_tokens": req.get("max_tokens"),
                "temperature": req.get("temperature"), "stream": req.get("stream"),
                "stream_options": req.get("stream_options"), "messages": req.get("messages"),
                "authorization": self.headers.get("Authorization"),
                "endpoint": endpoint, "prompt": req.get("prompt"), "seed": req.get("seed"),
            })
        self.endpoint = endpoint
        self.chat(name, opts, req, count)

    def chat(self, name, opts, req, count):
        fails = int(opts.get("fails", 1))
        if name == "429" and count <= fails:
            self.send_json(429, {"error": {"message": "rate limited: slow down", "type": "rate_limit"}},
                           [("Retry-After", opts.get("ra", "1"))])
            return
        if name == "500" and count <= fails:
            self.send_json(500, {"error": {"message": "internal error (fake)"}})
            return
        if name == "404":
            self.send_json(404, {"error": {"message": "model 'nope' not found", "type": "not_found"}})
            return
        if name == "401":
            self.send_json(401, {"error": {"message": "invalid API key"}})
            return
        if name == "refuse-lp" and req.get("logprobs"):
            self.send_json(400, {"error": {"message": "logprobs is not supported by this model",
                                           "type": "invalid_request_error", "param": "logprobs"}})
            return
        if name == "fixture":
            self.serve_fixture(opts["f"], random.Random(count))
            return
        if name == "status" and count <= int(opts.get("fails", 1 << 30)):
            code = int(opts.get("code", 500))
            self.send_json(code, {"error": {"code": code, "message": opts.get("msg", f"status {code} (fake)"),
                                            "type": opts.get("type", "server_error")}})
            return
        if name == "html":
            body = b"<html><body>It works!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if name == "json":
            self.send_json(200, {"object": "chat.completion",
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]})
            return
        self.stream_chat(name, opts, req, count)

    def stream_chat(self, name, opts, req, count=1):
        n = int(opts.get("n", 20))
        max_tokens = req.get("max_tokens")
        finish = "stop"
        if isinstance(max_tokens, int) and max_tokens < n:
            n, finish = max_tokens, "length"
        at = int(opts.get("at", 5))
        delay = float(opts.get("delay", 0))
        eol = b"\r\n" if opts.get("crlf") == "1" else b"\n"
        split = {"slow": "trickle", "big": "none"}.get(name, opts.get("split", "odd"))
        want_lp = bool(req.get("logprobs")) and name not in ("nolp",)
        k = int(req.get("top_logprobs") or 0)
        if getattr(self, "endpoint", "chat") == "completions":
            lpv = req.get("logprobs")
            want_lp = isinstance(lpv, int) and not isinstance(lpv, bool) and lpv > 0 and name != "nolp"
            k = lpv if want_lp else 0
        errs = ("errfield", "errevent", "errdata")
        err_now = name in errs and count <= int(opts.get("fails", 1 << 30))
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        rng = random.Random(n * 31 + at)
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": req.get("model") or "fake-model"}

        def event(obj):
            data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=(rng.random() < 0.5))
            return b"data: " + data.encode() + eol + eol

        completions = getattr(self, "endpoint", "chat") == "completions"
        if completions:
            base["object"] = "text_completion"

        def choice(delta, lp=None, fin=None):
            c = dict(base)
            if completions:
                # The legacy shape: text, and logprobs as parallel arrays.
                leg = None
                if lp:
                    leg = {"tokens": [e["token"] for e in lp["content"]],
                           "token_logprobs": [e["logprob"] for e in lp["content"]],
                           "top_logprobs": [{a["token"]: a["logprob"] for a in e["top_logprobs"]}
                                            for e in lp["content"]]}
                c["choices"] = [{"index": 0, "text": delta.get("content", ""), "logprobs": leg,
                                 "finish_reason": fin}]
            else:
                c["choices"] = [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": fin}]
            return c

        def lp_entry(i):
            tok, lpv = token_text(i), logprob(i)
            return {"token": tok, "logprob": lpv, "bytes": list(tok.encode()),
                    "top_logprobs": alternatives(i, tok, lpv, k)}

        self.start_stream()
        out = bytearray()
        try:
            if name != "big":
                out += b": fake-openai keep-alive" + eol + eol
            out += event(choice({"role": "assistant", "content": ""}))
            i = 0
            while i < n:
                if (name in ("midstream-error", "drop", "stall") or err_now) and i == at:
                    break
                if name == "malformed" and i % 3 == 2:
                    out += b"data: {\"choices\": [{\"delta\": {\"content\": \"broken" + eol + eol
                if name == "big":
                    ck = (i, k, want_lp)
                    ev = big_cache.get(ck)
                    if ev is None:
                        ev = event(choice({"content": token_text(i)}, {"content": [lp_entry(i)]} if want_lp else None))
                        big_cache[ck] = ev
                    out += ev
                    i += 1
                elif name == "multi":
                    idx = list(range(i, min(n, i + 3)))
                    text = "".join(token_text(j) for j in idx)
                    lp = {"content": [lp_entry(j) for j in idx]} if want_lp else None
                    out += event(choice({"content": text}, lp))
                    i += len(idx)
                else:
                    lp = {"content": [lp_entry(i)]} if want_lp else None
                    out += event(choice({"content": token_text(i)}, lp))
                    i += 1
                if name != "big" or len(out) > 65536:
                    self.write_split(bytes(out), split, rng)
                    out.clear()
                if delay:
                    time.sleep(delay)
            if name == "midstream-error":
                out += event({"error": {"message": "the model crashed (fake)", "type": "server_error"}})
                self.write_split(bytes(out), split, rng)
                self.end_stream()
                return
            if err_now:
                code = int(opts.get("code", 500))
                err = json.dumps({"code": code, "message": opts.get("msg", "the model crashed (fake)"),
                                  "type": "unavailable_error" if code == 503 else "server_error"}).encode()
                if name == "errfield":
                    out += b"error: " + err + eol + eol + b"data: [DONE]" + eol + eol
                elif name == "errevent":
                    out += b"event: error" + eol + b"data: " + err + eol + eol
                else:
                    out += b'data: {"error":' + err + b"}" + eol + eol
                self.write_split(bytes(out), split, rng)
                self.end_stream()
                return
            if name == "drop":
                self.write_split(bytes(out), split, rng)
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if name == "stall":
                self.write_split(bytes(out), split, rng)
                for _ in range(600):
                    time.sleep(0.1)
                return
            out += event(choice({}, None, finish))
            if include_usage:
                u = dict(base)
                u["choices"] = []
                u["usage"] = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
                out += event(u)
            if name == "nodone":
                self.write_split(bytes(out), split, rng)
                for _ in range(600):
                    time.sleep(0.1)
                return
            out += event("[DONE]")
            self.write_split(bytes(out), split, rng)
            self.end_stream()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def events(self, name, opts):
        n = int(opts.get("n", 20))
        drop = int(opts.get("drop", 0))
        retry = int(opts.get("retry", 200))
        last = self.headers.get("Last-Event-ID")
        with lock:
            requests.append({"scenario": "events:" + name, "last_event_id": last})
        start = int(last) + 1 if last and last.isdigit() else 1
        if start > n:
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rng = random.Random(start)
        self.start_stream()
        out = bytearray(b"retry: %d\n\n" % retry)
        sent = 0
        try:
            for i in range(start, n + 1):
                if i % 5 == 0:
                    data = json.dumps({"type": "token_activation", "token_id": f"ev-{i}",
                                       "token_text": f"json{i}", "timestamp": 1.0, "confidence": 0.5})
                elif i % 7 == 0:
                    data = f"line one of {i}\ndata: line two"
                else:
                    data = f"event {i} ✓"
                out += b": comment\r\n" if i % 3 == 0 else b""
                out += b"id: %d\r\ndata: %s\r\n\r\n" % (i, data.encode())
                self.write_split(bytes(out), "odd", rng)
                out.clear()
                sent += 1
                if drop and sent == drop and i < n:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
            self.end_stream()
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512   # listen() backlog: 64 clients connect at once

    def handle_error(self, request, client_address):
        # A client that stops reading on purpose (an error in the stream) resets
        # the connection: not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    port = 0
    if "--port" in sys.argv:
        port = int(sys.argv[sys.argv.index("--port") + 1])
    srv = Server(("127.0.0.1", port), Handler)
    print(f"PORT {srv.server_address[1]}", flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        sys.stdin.read()   # until the parent goes away
    except KeyboardInterrupt:
        pass
    srv.shutdown()


if __name__ == "__main__":
    main()
