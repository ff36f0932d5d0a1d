"""A real nats-server (JetStream on) for the tests: loopback, a free port,
a temporary store; stopped at exit."""
import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class NatsServer:
    def __init__(self, port=None, store=None):
        self.port = port or free_port()
        self.own_store = store is None
        self.store = store or tempfile.mkdtemp(prefix="gos-nats-")
        self.proc = None
        atexit.register(self.stop)
        self.start()

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def argv(self):
        return ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port),
                "-sd", os.path.join(self.store, "js")]

    def start(self):
        self.log = open(os.path.join(self.store, f"nats-{time.monotonic_ns()}.log"), "w")
        self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server {getattr(self, 'name', '')} did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log and not self.log.closed:
            self.log.close()

    def cleanup(self):
        self.stop()
        if self.own_store:
            shutil.rmtree(self.store, ignore_errors=True)


def js_request(port, subject, payload=b"", timeout=5):
    """One request to a JetStream API subject over the raw NATS protocol;
    the reply parsed as JSON (None when none came)."""
    import json
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    f = s.makefile("rwb")
    f.readline()   # INFO
    f.write(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
            b"SUB _gos_reply 1\r\n" + f"PUB {subject} _gos_reply {len(payload)}\r\n".encode()
            + payload + b"\r\n")
    f.flush()
    try:
        while True:
            line = f.readline()
            if not line:
                return None
            if line.startswith(b"MSG"):
                return json.loads(f.read(int(line.split()[-1]) + 2))
            if line.startswith(b"HMSG"):
                return None
    finally:
        s.close()


class NatsNode(NatsServer):
    """One node of a NatsCluster: JetStream on, routes to the others."""

    def __init__(self, name, port, cluster_port, routes, store):
        self.name, self.cluster_port, self.routes = name, cluster_port, routes
        super().__init__(port=port, store=store)

    def argv(self):
        return super().argv() + ["-n", self.name, "--cluster_name", "gos-test",
                                 "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                                 "--routes", self.routes]


class NatsCluster:
    """Three nats-server processes on loopback, routed to each other, with
    JetStream clustered (streams the gos programs create get 3 replicas)."""

    def __init__(self, n=3):
        self.root = tempfile.mkdtemp(prefix="gos-natsc-")
        ports = [free_port() for _ in range(n)]
        cports = [free_port() for _ in range(n)]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in cports)
        self.nodes = []
        for i in range(n):
            store = os.path.join(self.root, f"n{i + 1}")
            os.makedirs(store)
            self.nodes.append(NatsNode(f"n{i + 1}", ports[i], cports[i], routes, store))
        atexit.register(self.cleanup)

    @property
    def url(self):
        return ",".join(n.url for n in self.nodes)

    def ready(self, timeout=30):
        """Until JetStream answers on every node (a meta leader is elected)."""
        import json
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = 0
            for n in self.nodes:
                try:
                    s = socket.create_connection(("127.0.0.1", n.port), timeout=2)
                    s.settimeout(2)
                    f = s.makefile("rwb")
                    f.readline()   # INFO
                    f.write(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
                            b"SUB _r 1\r\nPUB $JS.API.INFO _r 0\r\n\r\nPING\r\n")
                    f.flush()
                    while True:
                        line = f.readline()
                        if line.startswith(b"MSG"):
                            body = f.read(int(line.split()[-1]) + 2)
                            if b'"error"' not in body and json.loads(body).get("type"):
                                ok += 1
                            break
                        if line.startswith(b"HMSG") or not line:
                            break
                    s.close()
                except (OSError, ValueError):
                    pass
            if ok == len(self.nodes):
                return True
            time.sleep(0.3)
        return False

    def cleanup(self):
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Relay:
    """A gos-relay on a free loopback port."""

    def __init__(self, binary, url, tmp, *extra):
        import re
        self.errpath = os.path.join(tmp, f"relay-{time.monotonic_ns()}.txt")
        self.errf = open(self.errpath, "w")
        self.proc = subprocess.Popen([binary, "--nats", url, "--listen", "127.0.0.1:0", *extra],
                                     stdout=subprocess.DEVNULL, stderr=self.errf)
        atexit.register(self.stop)
        self.port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"web viewer at http://127\.0\.0\.1:(\d+)/", self.stderr())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("gos-relay did not start: " + self.stderr())

    def stderr(self):
        with open(self.errpath) as f:
            return f.read()

    def health(self):
        from ws_util import http_raw
        import json
        try:
            st, _, body = http_raw(self.port, "/health")
        except OSError:
            return None
        return json.loads(body) if st in (200, 503) else None

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
        return self.proc.returncode


def tok(i, stream):
    """One token event of a stream, id STREAM-i."""
    import json
    return json.dumps({"type": "token_activation", "token_id": f"{stream}-{i}",
                       "token_text": f"w{i} ", "stream": stream, "timestamp": 1.0 + i * 0.01,
                       "confidence": (i % 100) / 100})


class Producer:
    """gos-feed --nats (binary feed, NATS url) fed n events of stream from
    start at about rate a second, on a thread; wait() returns its exit."""

    def __init__(self, feed, url, stream, n, rate, start=0, extra=()):
        import threading
        self.proc = subprocess.Popen([feed, "--nats", url, *extra, "-"], stdin=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.err = ""
        self.th = threading.Thread(target=self.run, args=(stream, start, n, rate))
        self.th.start()

    def run(self, stream, start, n, rate):
        chunk = max(1, rate // 20)
        try:
            for k in range(start, start + n, chunk):
                self.proc.stdin.write("\n".join(tok(i, stream)
                                                for i in range(k, min(k + chunk, start + n))) + "\n")
                self.proc.stdin.flush()
                time.sleep(0.05)
        except BrokenPipeError:
            pass   # gos-feed gave up: wait() reports its exit
        finally:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def wait(self, timeout=180):
        self.th.join()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err = self.proc.stderr.read()
        return self.proc.returncode


def available():
    return shutil.which("nats-server") is not None
