"""Shared by gos-bridge's end-to-end tests: a pass-through proxy in front
of the compositor's socket that records what each connection wrote, the fake
OpenAI-compatible server (fake_openai.py) as a child process, and a runner
that returns what a user sees of one gos-bridge run."""
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


class Proxy:
    """A Unix-socket pass-through in front of the compositor that records
    what each client connection wrote. When the compositor goes away, the
    client's connection is closed too, as if it had been direct."""

    def __init__(self, path, target):
        self.path, self.target = path, target
        self.conns = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(64)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        rec = bytearray()
        try:
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            u.connect(self.target)
        except OSError:
            c.close()
            return
        self.conns.append(rec)

        def back():
            try:
                while True:
                    d = u.recv(65536)
                    if not d:
                        break
                    c.sendall(d)
            except OSError:
                pass
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        t = threading.Thread(target=back, daemon=True)
        t.start()
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                rec += d
                u.sendall(d)
        except OSError:
            pass
        try:
            u.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        t.join(10)
        c.close()
        u.close()

    def lines(self, since):
        out = []
        for rec in self.conns[since:]:
            for ln in bytes(rec).decode().splitlines():
                out.append(json.loads(ln))
        return out


class Fake:
    def __init__(self):
        self.p = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "fake_openai.py")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.p.stdout.readline().split()[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, scenario):
        return f"{self.base}/{scenario}/v1"

    def stats(self):
        with urllib.request.urlopen(self.base + "/stats", timeout=10) as r:
            return json.load(r)["requests"]

    def stop(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)




class Run:
    pass


def run_bridge(binary, proxy, fakes, sock, *args, env=None, stdin=None, timeout=60):
    """Runs gos-bridge on sock (the proxy's); returns rc, out, err, secs,
    the lines it wrote, and the requests each fake server got during the run
    (reqs: the first server's; reqs_by: one list per server)."""
    r = Run()
    n_conns = len(proxy.conns)
    n_reqs = [len(f.stats()) for f in fakes]
    e = dict(os.environ)
    e.pop("OPENAI_API_KEY", None)
    e.update(env or {})
    t = time.monotonic()
    p = subprocess.run([binary, "--socket", sock, *args], input=stdin, capture_output=True,
                       text=True, timeout=timeout, env=e)
    r.secs = time.monotonic() - t
    r.rc, r.out, r.err = p.returncode, p.stdout, p.stderr
    time.sleep(0.05)   # the proxy's threads finish recording
    r.lines = proxy.lines(n_conns)
    r.reqs_by = [f.stats()[n:] for f, n in zip(fakes, n_reqs)]
    r.reqs = r.reqs_by[0] if r.reqs_by else []
    r.tokens = [l for l in r.lines if l.get("type") == "token_activation"]
    r.states = [l for l in r.lines if l.get("type") == "neural_state"]
    return r


class Rig:
    """A headless gos-compositor (validation on) on a fresh socket in a
    temporary folder, with a recording Proxy in front: tmp, csock (the
    compositor's), psock (the proxy's: give it to gos-bridge), comp (its
    process), proxy."""

    def __init__(self, compositor, prefix):
        import gos_proc
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.csock = os.path.join(self.tmp, "gos.sock")
        self.psock = os.path.join(self.tmp, "proxy.sock")
        self.comp = gos_proc.start_compositor(compositor, self.csock, validation=True,
                                              stdout=subprocess.DEVNULL)
        if self.comp.poll() is not None:
            raise RuntimeError("gos-compositor did not start: " + self.comp.stderr.read())
        self.proxy = Proxy(self.psock, self.csock)
