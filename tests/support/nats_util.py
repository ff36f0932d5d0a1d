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

    def start(self):
        self.log = open(os.path.join(self.store, f"nats-{time.monotonic_ns()}.log"), "w")
        self.proc = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port),
                                      "-sd", os.path.join(self.store, "js")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

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


def available():
    return shutil.which("nats-server") is not None
