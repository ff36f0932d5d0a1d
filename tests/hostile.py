"""Hostile clients against a real gos-compositor (--no-render, web server on
loopback), one fresh compositor per attack, each attack with its numbers:
what the compositor's RSS, CPU time and log did, and how fast /health and
the Unix socket's producers were still answered (issue 9, items 2-7).

  fd_producers  idle producers past the fd limit (RLIMIT_NOFILE 256)
  fd_http       idle TCP connections to the HTTP port past the fd limit
  frame_16m     a length header 00 00 00 01 (16 MiB) and nothing else
  frame_skip    a frame header of 16 MiB - 1, then a sync
  frame_1m      a header announcing exactly 1 MiB, then nothing
  line_stall    half a JSON line, then nothing
  mem_lines     300 producers each holding 1 MiB - 16 B of an unfinished line
  mem_files     40 clients asking for a 30 MiB file and reading nothing
  fifo          a FIFO in --web-dir asked for
  ping_flood    WebSocket pings as fast as one client can send them

usage: hostile.py GOS_COMPOSITOR GOS_FEED [ATTACK...]   (default: all)
Prints one line per measured figure, then 'hostile: N passed, M failed'."""
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
import ws_util  # noqa: E402
from ws_util import check, report, RawViewer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
STALL_S = 2          # --producer-timeout the attacks run with
figures = []


def figure(attack, what, value, unit, limit, ok):
    figures.append((attack, what, value, unit, limit))
    shown = f"{value:.3f}" if isinstance(value, float) else str(value)
    print(f"  {attack:13} {what:34} {shown:>10} {unit:5} (limit {limit})", flush=True)
    return check(ok, f"{attack}: {what} = {shown} {unit}, limit {limit}")


class Gos:
    """A gos-compositor --no-render with its web server on a free port."""

    def __init__(self, binary, tmp, nofile=None, extra=()):
        self.sock = os.path.join(tmp, "gos.sock")
        self.errpath = os.path.join(tmp, f"stderr-{time.monotonic_ns()}.txt")
        self.webdir = os.path.join(tmp, "web")
        supports = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
        args = [binary, "--no-render", "--no-journal", "--socket", self.sock, "--log-interval", "0",
                "--listen", "127.0.0.1:0", "--web-dir", self.webdir, *extra]
        if "--producer-timeout" in supports:
            args += ["--producer-timeout", str(STALL_S)]

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.errf = open(self.errpath, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.errf,
                                     preexec_fn=limit)
        self.port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"web viewer at http://127\.0\.0\.1:(\d+)/", self.log())
            if m and os.path.exists(self.sock):
                self.port = int(m.group(1))
                break
            time.sleep(0.02)
        if self.port is None:
            raise RuntimeError("gos-compositor did not start: " + self.log())

    def log(self):
        with open(self.errpath, errors="replace") as f:
            return f.read()

    def log_bytes(self):
        return os.path.getsize(self.errpath)

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def health_s(self, timeout=3.0):
        """Seconds until /health answered 200, or None (no answer in timeout)."""
        t0 = time.monotonic()
        try:
            status, _, _ = ws_util.http_raw(self.port, "/health", timeout=timeout)
        except OSError:
            return None
        return time.monotonic() - t0 if status == 200 else None

    def producer_s(self, feed, count=1000, timeout=15):
        """Seconds gos-feed took to deliver `count` events and get its sync
        answered, or None."""
        t0 = time.monotonic()
        try:
            r = subprocess.run([feed, "--socket", self.sock, "--quiet", "--synthetic",
                                "--count", str(count)], capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - t0 if r.returncode == 0 else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errf.close()


def quiet_cpu(g, seconds=2.0):
    """The compositor's CPU seconds over a window in which nothing asks it
    for anything (the attack's connections sit idle)."""
    c0 = g.cpu_s()
    time.sleep(seconds)
    return g.cpu_s() - c0


def health_figures(g, attack, feed):
    h = g.health_s()
    figure(attack, "/health answered in", h if h is not None else -1.0, "s", "1 s",
           h is not None and h < 1.0)
    p = g.producer_s(feed)
    figure(attack, "a producer's 1000 events synced in", p if p is not None else -1.0, "s",
           "5 s", p is not None and p < 5.0)


def unix_conn(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def read_reply(s, timeout, done=lambda data: False):
    """(seconds until the first reply line, that line, whether the server
    closed the connection, all bytes read) after reading until EOF, done(data)
    or the timeout."""
    s.settimeout(0.1)
    t0 = time.monotonic()
    data, first_at, eof = b"", None, False
    while time.monotonic() - t0 < timeout:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            eof = True
            break
        if not chunk:
            eof = True
            break
        data += chunk
        if first_at is None and (b"\n" in data or framed_reply(data)):
            first_at = time.monotonic() - t0
        if done(data):
            break
    if framed_reply(data):
        n = struct.unpack("<I", data[:4])[0]
        line = data[4:4 + n].decode(errors="replace")
    else:
        line = data.split(b"\n")[0].decode(errors="replace")
    return first_at, line, eof, data


def framed_reply(data):
    """A whole reply frame (u32 little-endian length + JSON) at the start of
    data: what a length-prefixed connection gets back."""
    if len(data) < 5 or data[:2] == b'{"':
        return False
    return len(data) >= 4 + struct.unpack("<I", data[:4])[0]


# ---- attacks ----------------------------------------------------------------

def fd_producers(binary, feed, tmp):
    g = Gos(binary, tmp, nofile=256)
    try:
        log0 = g.log_bytes()
        conns = []
        for _ in range(300):
            try:
                conns.append(unix_conn(g.sock))
            except OSError:
                break
        time.sleep(0.5)
        cpu = quiet_cpu(g)
        figure("fd_producers", "CPU while 300 producers sit idle", cpu, "s/2s", "0.3",
               cpu < 0.3)
        h = g.health_s()
        figure("fd_producers", "/health answered in", h if h is not None else -1.0, "s",
               "1 s", h is not None and h < 1.0)
        # A producer already connected is still served...
        conns[0].sendall(b'{"type":"sync"}\n')
        at, line, _, _ = read_reply(conns[0], 3, lambda d: b"\n" in d)
        figure("fd_producers", "a connected producer's sync in", at if at is not None else -1.0,
               "s", "1 s", at is not None and at < 1.0 and '"sync"' in line)
        # ...and one past the budget is told so at once, not left hanging.
        try:
            late = unix_conn(g.sock)
            try:
                late.sendall(b'{"type":"sync"}\n')
            except OSError:
                pass  # refused and closed already: its answer is waiting
            at, line, _, _ = read_reply(late, 3, lambda d: b"\n" in d)
            late.close()
        except OSError as e:
            at, line = None, repr(e)
        if not figure("fd_producers", "one more producer answered in",
                      at if at is not None else -1.0, "s", "1 s",
                      at is not None and at < 1.0 and
                      ("too_many_producers" in line or '"sync"' in line)):
            print(f"  answer: {line!r}", flush=True)
        grew = g.log_bytes() - log0
        figure("fd_producers", "log written", grew, "B", "4096", grew < 4096)
        for c in conns[:150]:
            c.close()
        time.sleep(0.3)
        p = g.producer_s(feed)
        figure("fd_producers", "after half left: producer synced in",
               p if p is not None else -1.0, "s", "5 s", p is not None and p < 5.0)
        for c in conns[150:]:
            c.close()
    finally:
        g.stop()


def fd_http(binary, feed, tmp):
    g = Gos(binary, tmp, nofile=256)
    try:
        log0 = g.log_bytes()
        conns = []
        for _ in range(400):
            try:
                s = socket.create_connection(("127.0.0.1", g.port), timeout=1)
                conns.append(s)
            except OSError:
                break
        time.sleep(0.5)
        cpu = quiet_cpu(g)
        figure("fd_http", "CPU while 400 TCP clients sit idle", cpu, "s/2s", "0.3", cpu < 0.3)
        health_figures(g, "fd_http", feed)
        grew = g.log_bytes() - log0
        figure("fd_http", "log written", grew, "B", "4096", grew < 4096)
        for c in conns:
            c.close()
    finally:
        g.stop()


def frame_case(binary, feed, tmp, attack, payload, limit_s, want_close, good_first=True):
    """Sends one good event (good_first), then the payload; the error reply
    must come within limit_s, the event must stay applied, and (want_close)
    a sync sent after the payload must be answered or the connection end:
    never swallowed in silence."""
    g = Gos(binary, tmp)
    try:
        s = unix_conn(g.sock)
        good = (b'{"type":"token_activation","token_id":"kept","token_text":"k",'
                b'"timestamp":1.0,"confidence":0.5}')
        lp = payload[:1] != b"{"
        if good_first:
            s.sendall(struct.pack("<I", len(good)) + good if lp else good + b"\n")
        s.sendall(payload)
        at, line, eof, data = read_reply(
            s, limit_s + 3,
            lambda d: b'"sync"' in d if want_close else b"\n" in d or framed_reply(d))
        figure(attack, "error reply after", at if at is not None else -1.0, "s",
               f"{limit_s} s", at is not None and at <= limit_s + 0.5 and '"error"' in line)
        if want_close:
            # Whatever the client sends next must not vanish without an answer.
            figure(attack, "connection closed or sync answered", int(eof or b'"sync"' in data),
                   "", "1", eof or b'"sync"' in data)
        s.close()
        if good_first:
            tokens = ws_util_sync_tokens(g.sock)
            figure(attack, "earlier event still applied (tokens)", tokens, "", "1", tokens == 1)
    finally:
        g.stop()


def ws_util_sync_tokens(sock):
    s = unix_conn(sock)
    s.settimeout(5)
    s.sendall(b'{"type":"sync"}\n')
    _, line, _, _ = read_reply(s, 5, lambda d: b"\n" in d)
    s.close()
    m = re.search(r'"tokens":(\d+)', line)
    return int(m.group(1)) if m else -1


def frame_16m(binary, feed, tmp):
    sync = b'{"type":"sync"}'
    frame_case(binary, feed, tmp, "frame_16m", b"\x00\x00\x00\x01" + struct.pack("<I", len(sync)) +
               sync, 1.0, True, good_first=False)


def frame_skip(binary, feed, tmp):
    sync = b'{"type":"sync"}'
    frame_case(binary, feed, tmp, "frame_skip",
               struct.pack("<I", (16 << 20) - 1) + b"x" * 1000 +
               struct.pack("<I", len(sync)) + sync, 1.0, True)


def frame_1m(binary, feed, tmp):
    frame_case(binary, feed, tmp, "frame_1m", struct.pack("<I", 1 << 20), STALL_S, False)


def line_stall(binary, feed, tmp):
    frame_case(binary, feed, tmp, "line_stall", b'{"type":"token_activation","tok', STALL_S,
               False)


def mem_lines(binary, feed, tmp):
    g = Gos(binary, tmp)
    try:
        rss0 = g.rss_mib()
        chunk = b"{" + b" " * ((1 << 20) - 17)
        conns = []
        for _ in range(300):
            s = unix_conn(g.sock)
            s.setblocking(False)
            conns.append([s, 0])
        deadline = time.monotonic() + 4
        peak = 0.0
        while time.monotonic() < deadline and any(off < len(chunk) for _, off in conns):
            for c in conns:
                if c[1] < len(chunk):
                    try:
                        c[1] += c[0].send(chunk[c[1]:c[1] + 262144])
                    except (BlockingIOError, OSError):
                        pass
            peak = max(peak, g.rss_mib() - rss0)
        sent = sum(off for _, off in conns) / (1 << 20)
        figure("mem_lines", "MiB of unfinished lines sent", sent, "MiB", "-", True)
        figure("mem_lines", "peak RSS growth meanwhile", peak, "MiB", "160", peak < 160)
        health_figures(g, "mem_lines", feed)
        for s, _ in conns:
            s.close()
        time.sleep(1.0)
        left = g.rss_mib() - rss0
        figure("mem_lines", "RSS growth after they closed", left, "MiB", "48", left < 48)
    finally:
        g.stop()


def mem_files(binary, feed, tmp):
    g = Gos(binary, tmp)
    try:
        rss0 = g.rss_mib()
        conns = []
        for _ in range(40):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", g.port))
            s.sendall(f"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\n\r\n".encode())
            conns.append(s)
        time.sleep(1.5)
        held = g.rss_mib() - rss0
        figure("mem_files", "RSS growth, 40 readers of 30 MiB stalled", held, "MiB", "64",
               held < 64)
        health_figures(g, "mem_files", feed)
        for s in conns:
            s.close()
    finally:
        g.stop()


def fifo(binary, feed, tmp):
    g = Gos(binary, tmp)
    try:
        t0 = time.monotonic()
        try:
            status, _, _ = ws_util.http_raw(g.port, "/pipe.html", timeout=3)
        except OSError:
            status = 0
        took = time.monotonic() - t0
        figure("fifo", "GET /pipe.html (a FIFO) answered in", took if status else -1.0, "s",
               "1 s", status in (403, 404) and took < 1.0)
        health_figures(g, "fifo", feed)
    finally:
        # Opening the write end frees a service thread stuck in open().
        try:
            fd = os.open(os.path.join(g.webdir, "pipe.html"), os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
        g.stop()


def ping_flood(binary, feed, tmp):
    g = Gos(binary, tmp)
    try:
        v = RawViewer(g.port)
        # Masked pings with an empty payload (a client must mask).
        blob = b"\x89\x80\x00\x00\x00\x00" * 20000
        v.s.settimeout(0.5)
        c0, t0, sent, closed_at = g.cpu_s(), time.monotonic(), 0, None
        while time.monotonic() - t0 < 3.0:
            try:
                v.s.sendall(blob)
                sent += 20000
            except (socket.timeout, BlockingIOError):
                pass
            except OSError:
                closed_at = time.monotonic() - t0
                break
        cpu = g.cpu_s() - c0
        figure("ping_flood", "pings sent", sent, "", "-", True)
        figure("ping_flood", "closed by the server after", closed_at if closed_at else -1.0,
               "s", "1 s", closed_at is not None and closed_at < 1.0)
        figure("ping_flood", "server CPU during the flood", cpu, "s", "0.5", cpu < 0.5)
        v.s.close()
        health_figures(g, "ping_flood", feed)
    finally:
        g.stop()


ATTACKS = {f.__name__: f for f in (fd_producers, fd_http, frame_16m, frame_skip, frame_1m,
                                   line_stall, mem_lines, mem_files, fifo, ping_flood)}


def main():
    binary, feed = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or list(ATTACKS)
    for name in names:
        tmp = tempfile.mkdtemp(prefix=f"gos-hostile-{name}-")
        web = os.path.join(tmp, "web")
        os.mkdir(web)
        with open(os.path.join(web, "index.html"), "w") as f:
            f.write("<!doctype html><title>gos</title>\n")
        with open(os.path.join(web, "big.bin"), "wb") as f:
            f.truncate(30 << 20)
        os.mkfifo(os.path.join(web, "pipe.html"))
        print(f"{name}:", flush=True)
        t0 = time.monotonic()
        try:
            ATTACKS[name](binary, feed, tmp)
        except Exception as e:
            check(False, f"{name}: {e!r}")
        print(f"  ({time.monotonic() - t0:.1f} s)", flush=True)
    return report("hostile")


if __name__ == "__main__":
    sys.exit(main())
