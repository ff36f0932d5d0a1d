"""The whole compositor under ThreadSanitizer, renderer off (--no-render),
under load: two producers (JSON lines and length-prefixed frames) through the
real gos-feed, three viewers with Debian's python3-websockets (one of them
searching all along: the search worker follows the map as it changes),
/health and /metrics polled all along and still being polled while SIGTERM shuts it
down (the shutdown path is where the broadcaster was freed under the web
thread). Fails on any ThreadSanitizer report or an unclean exit.

usage: tsan_compositor.py GOS_COMPOSITOR_TSAN GOS_FEED"""
import asyncio
import json
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import check, report  # noqa: E402

EVENTS = 30000


def viewer(port, stop, counts, i):
    async def run():
        # viewer 0 speaks gos.v2 and pans: the broadcaster's index and
        # region answers run beside the gos.v1 deltas
        proto = "gos.v2" if i == 0 else "gos.v1"
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", subprotocols=[proto],
                                      max_size=None) as ws:
            k = 0
            while not stop.is_set():
                if proto == "gos.v2" and k % 5 == 0:
                    await ws.send(json.dumps({"type": "viewport", "x": (k % 40) * 200 - 4000,
                                              "y": -2000, "w": 8000, "h": 4000,
                                              "zoom": 0.02 if k % 10 == 0 else 0.5}))
                if i == 2 and k % 4 == 0:
                    await ws.send(json.dumps({"type": "search", "q": ["the", "a b", "ing"][k % 3],
                                              "limit": 50}))
                k += 1
                try:
                    m = await asyncio.wait_for(ws.recv(), 0.2)
                    counts[i] += 1
                    if isinstance(m, str) and '"search_result"' in m[:40]:
                        counts[3] += 1
                except asyncio.TimeoutError:
                    pass
    try:
        asyncio.run(run())
    except websockets.ConnectionClosed:
        pass  # the server going away at shutdown ends it
    except Exception as e:
        if not stop.is_set():
            print(f"viewer {i}: {e!r}", file=sys.stderr)


def poller(port, stop, counts):
    while not stop.is_set():
        for path in ("/health", "/metrics"):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", path)
                r = c.getresponse()
                r.read()
                c.close()
                counts[path] = counts.get(path, 0) + 1
            except OSError:
                counts["errors"] = counts.get("errors", 0) + 1
                time.sleep(0.01)


def main():
    binary, feed = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="gos-tsan-")
    sock = os.path.join(tmp, "gos.sock")
    errpath = os.path.join(tmp, "stderr.txt")
    env = dict(os.environ)
    env.setdefault("TSAN_OPTIONS", "halt_on_error=0:exitcode=66")
    with open(errpath, "w") as errf:
        p = subprocess.Popen(["setarch", "-R", binary, "--no-render", "--no-journal", "--socket", sock,
                              "--listen", "127.0.0.1:0", "--log-interval", "1",
                              "--tick-ms", "20"],
                             stdout=subprocess.DEVNULL, stderr=errf, env=env)
    port = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None and port is None:
        m = re.search(r"web viewer at http://127\.0\.0\.1:(\d+)/", open(errpath).read())
        if m and os.path.exists(sock):
            port = int(m.group(1))
        time.sleep(0.05)
    if not check(port is not None, "the TSan compositor starts: " + open(errpath).read()[-2000:]):
        p.kill()
        return report("tsan_compositor")

    stop = threading.Event()
    vcounts = [0, 0, 0, 0]   # messages per viewer; search results
    hcounts = {}
    threads = [threading.Thread(target=viewer, args=(port, stop, vcounts, i)) for i in range(3)]
    threads.append(threading.Thread(target=poller, args=(port, stop, hcounts)))
    for t in threads:
        t.start()
    feeds = [subprocess.run([feed, "--socket", sock, "--quiet", "--synthetic", "--count",
                             str(EVENTS), "--rate", "20000", "--streams", "3", *extra],
                            capture_output=True, text=True, timeout=120)
             for extra in ([], ["--length-prefixed"])]
    for f in feeds:
        check(f.returncode == 0, f"gos-feed delivered everything (exit {f.returncode}): {f.stderr}")
    time.sleep(0.5)
    check(all(n > 0 for n in vcounts), f"every viewer got messages, and searches were "
          f"answered: {vcounts}")
    check(hcounts.get("/health", 0) > 0 and hcounts.get("/metrics", 0) > 0,
          f"/health and /metrics answered under load: {hcounts}")

    # Shut down while /health is still being asked for.
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    err = open(errpath).read()
    reports = err.count("WARNING: ThreadSanitizer")
    check(reports == 0, f"no ThreadSanitizer report ({reports}):\n" +
          "\n".join(err.splitlines()[:120]))
    check(rc == 0, f"clean exit after SIGTERM (rc {rc}; 66 means TSan reported)")
    check("shutting down" in err, "the compositor said it shut down")
    return report("tsan_compositor")


if __name__ == "__main__":
    sys.exit(main())
