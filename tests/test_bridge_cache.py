#!/usr/bin/python3
"""gos-bridge --cache end to end: the fake OpenAI-compatible server, a real
headless gos-compositor, gos-bridge between them. A prompt set of which a
quarter repeats gets its hits, a replay shows the original's tokens,
logprobs and alternatives without asking the server, failed generations
are never stored, a corrupt entry is a logged miss, the least recently used
entries go first, and a bridge killed while writing an entry leaves no
partial one.

usage: test_bridge_cache.py GOS_COMPOSITOR GOS_BRIDGE"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

COMPOSITOR, BRIDGE = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, os.path.join(HERE, "support"))
from gos_check import check, report  # noqa: E402
import gos_proc  # noqa: E402
from gos_proc import sync  # noqa: E402
from bridge_rig import Fake, Rig, run_bridge  # noqa: E402

rig = Rig(COMPOSITOR, "gos-bridge-cache-")
tmp, csock, psock, comp, proxy = rig.tmp, rig.csock, rig.psock, rig.comp, rig.proxy
fake = Fake()


def bridge(*args, **kw):
    return run_bridge(BRIDGE, proxy, [fake], psock, *args, **kw)


def cache_counts(err):
    m = re.search(r"cache: (\d+) hits, (\d+) misses \((\d+) corrupt\), (\d+) stored", err)
    return tuple(int(x) for x in m.groups()) if m else None


def entries(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".gen")) if os.path.isdir(d) else []


def shown(r):
    """What the map got of each token, without ids and timestamps."""
    return [(t["token_text"], t.get("logprob"), t.get("confidence"),
             [(a["token"], a["logprob"]) for a in t.get("top_logprobs", [])]) for t in r.tokens]


# ---- a prompt set of which a quarter repeats ----

cdir = os.path.join(tmp, "c1")
prompts = ["p0", "p1", "p2", "p3", "p4", "p5", "p0", "p2"]
hits = misses = 0
first = {}
ok_replay = True
for p in prompts:
    r = bridge("--url", fake.url("ok,n=12"), "--model", "m", "--prompt", p, "--cache", cdir, "--cache-speed", "0")
    c = cache_counts(r.err)
    check(r.rc == 0 and c is not None, f"--cache {p}: exit 0 and the summary counts ({r.rc}, {r.err.strip()[-200:]})")
    if c:
        hits += c[0]
        misses += c[1]
    if p in first:
        ok_replay &= c == (1, 0, 0, 0) and len(r.reqs) == 0 and shown(r) == shown(first[p])
        check(r.states and r.states[-1]["state"] == "done" and r.states[-1].get("finish_reason") == "stop"
              and "replayed from the cache" in r.states[-1].get("message", ""),
              f"a replay ends done, with the original's finish reason: {r.states[-1:]}")
    else:
        first[p] = r
        ok_replay &= c == (0, 1, 0, 1) and len(r.reqs) == 1
check(hits / len(prompts) >= 0.20 and hits == 2 and misses == 6,
      f"a quarter of the prompts repeat: {hits} hits of {len(prompts)} (>= 20%), {misses} misses")
check(ok_replay, "repeats ask the server nothing and show the original's tokens, logprobs and alternatives")
check(len(entries(cdir)) == 6, f"six entries ({len(entries(cdir))})")

# the cache key: another model, temperature, seed or max-tokens is another request
before = len(fake.stats())
for extra in (["--model", "m2"], ["--temperature", "0.5"], ["--seed", "3"], ["--max-tokens", "5"], ["--no-logprobs"]):
    args = ["--url", fake.url("ok,n=12"), "--model", "m", "--prompt", "p0", "--cache", cdir, "--cache-speed", "0"]
    r = bridge(*(args + extra))
    check(r.rc == 0 and cache_counts(r.err)[:2] == (0, 1), f"p0 with {extra}: a miss ({cache_counts(r.err)})")
check(len(fake.stats()) - before == 5, "...each asked the server")

# --parallel: each generation is its own entry; a rerun replays all three
r1 = bridge("--url", fake.url("ok,n=8"), "--model", "m", "--prompt", "par", "--parallel", "3", "--cache", cdir)
r2 = bridge("--url", fake.url("ok,n=8"), "--model", "m", "--prompt", "par", "--parallel", "3", "--cache", cdir,
            "--cache-speed", "4")
check(r1.rc == 0 and cache_counts(r1.err) == (0, 3, 0, 3) and r2.rc == 0 and cache_counts(r2.err) == (3, 0, 0, 0)
      and len(r2.reqs) == 0 and len(r2.tokens) == 24, f"--parallel 3: three stored, three replayed ({cache_counts(r2.err)})")
before = sync(csock)["tokens"]
r = bridge("--url", fake.url("ok,n=8"), "--model", "m", "--prompt", "par", "--cache", cdir, "--cache-speed", "0")
check(r.rc == 0 and sync(csock)["tokens"] == before + 8, "a replay's tokens reach the compositor")

# ---- only finished generations are stored ----

cdir2 = os.path.join(tmp, "c2")
for scen in ("midstream-error,at=4", "drop,at=3"):
    r = bridge("--url", fake.url(scen), "--model", "m", "--prompt", "f", "--cache", cdir2)
    r2 = bridge("--url", fake.url(scen), "--model", "m", "--prompt", "f", "--cache", cdir2)
    check(r.rc == 1 and r2.rc == 1 and len(r2.reqs) == 1 and cache_counts(r2.err) == (0, 1, 0, 0)
          and entries(cdir2) == [], f"{scen}: a failed generation is not stored ({cache_counts(r2.err)})")

# ---- a corrupt entry is a logged miss, then replaced ----

cdir3 = os.path.join(tmp, "c3")
r = bridge("--url", fake.url("ok,n=10"), "--model", "m", "--prompt", "c", "--cache", cdir3)
(name,) = entries(cdir3)
path = os.path.join(cdir3, name)
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0x20
open(path, "wb").write(bytes(data))
r = bridge("--url", fake.url("ok,n=10"), "--model", "m", "--prompt", "c", "--cache", cdir3)
check(r.rc == 0 and len(r.reqs) == 1 and len(r.tokens) == 10 and "corrupt (checksum mismatch)" in r.err
      and cache_counts(r.err) == (0, 1, 1, 1), f"a flipped byte: corrupt, said, a miss, stored again ({r.err.strip()[-250:]})")
open(path, "wb").write(open(path, "rb").read()[:100])
r = bridge("--url", fake.url("ok,n=10"), "--model", "m", "--prompt", "c", "--cache", cdir3)
check(r.rc == 0 and "is corrupt (" in r.err and cache_counts(r.err)[2] == 1, f"a cut entry: corrupt, a miss ({r.err.strip()[-300:]})")
r = bridge("--url", fake.url("ok,n=10"), "--model", "m", "--prompt", "c", "--cache", cdir3, "--cache-speed", "0")
check(r.rc == 0 and cache_counts(r.err) == (1, 0, 0, 0), "...and a hit once stored again")

# ---- LRU: bounded by --cache-max-bytes ----

cdir4 = os.path.join(tmp, "c4")
def run4(p):
    return bridge("--url", fake.url("ok,n=20"), "--model", "m", "--prompt", p, "--cache", cdir4, "--cache-speed", "0",
                  "--cache-max-bytes", "10K")
run4("a")
size = os.path.getsize(os.path.join(cdir4, entries(cdir4)[0]))
check(3500 < size < 5000, f"an entry of 20 tokens with 5 alternatives: {size} bytes (two fit in 10K)")
run4("b")
time.sleep(0.02)
r = run4("a")
check(cache_counts(r.err)[0] == 1, "a again: a hit (now the most recently used)")
time.sleep(0.02)
run4("c")
check(len(entries(cdir4)) == 2 and sum(os.path.getsize(os.path.join(cdir4, f)) for f in entries(cdir4)) <= 10 * 1024,
      f"c stored: two entries kept, under the bound ({len(entries(cdir4))})")
ra, rb = run4("a"), run4("b")
check(cache_counts(ra.err)[0] == 1 and cache_counts(rb.err)[0] == 0,
      f"b, the least recently used, went; a stayed ({cache_counts(ra.err)}, {cache_counts(rb.err)})")

# ---- killed while writing: no partial entry ----

cdir5 = os.path.join(tmp, "c5")
env = dict(os.environ, GOS_BRIDGE_TEST_CACHE_PAUSE_MS="20000")
env.pop("OPENAI_API_KEY", None)
p = subprocess.Popen([BRIDGE, "--socket", psock, "--url", fake.url("ok,n=30"), "--model", "m", "--prompt", "k",
                      "--cache", cdir5], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
tmpfile = None
for _ in range(500):
    names = os.listdir(cdir5) if os.path.isdir(cdir5) else []
    tmps = [n for n in names if n.startswith(".tmp-")]
    if tmps and os.path.getsize(os.path.join(cdir5, tmps[0])) > 0:
        tmpfile = tmps[0]
        break
    time.sleep(0.02)
p.send_signal(signal.SIGKILL)
p.communicate(timeout=20)
check(tmpfile is not None and entries(cdir5) == [], f"SIGKILL mid-write: a temp file ({tmpfile}), no entry ({entries(cdir5)})")
r = bridge("--url", fake.url("ok,n=30"), "--model", "m", "--prompt", "k", "--cache", cdir5)
check(r.rc == 0 and cache_counts(r.err) == (0, 1, 0, 1) and "is corrupt" not in r.err and len(r.reqs) == 1,
      f"the next run: a clean miss, stored ({r.rc}, {len(r.reqs)}, {r.err.strip()[-300:]})")
check(tmpfile not in os.listdir(cdir5) and len(entries(cdir5)) == 1, "...and the dead run's temp file is gone")
r = bridge("--url", fake.url("ok,n=30"), "--model", "m", "--prompt", "k", "--cache", cdir5, "--cache-speed", "0")
check(r.rc == 0 and cache_counts(r.err) == (1, 0, 0, 0) and len(r.tokens) == 30, "...then a hit")

# options
q = subprocess.run([BRIDGE, "--url", fake.url("ok"), "--prompt", "x", "--cache-max-bytes", "12Q"], capture_output=True,
                   text=True)
check(q.returncode == 2 and "--cache-max-bytes" in q.stderr, "--cache-max-bytes 12Q: exit 2")
q = subprocess.run([BRIDGE, "--sse", fake.base + "/x/events", "--cache", cdir], capture_output=True, text=True)
check(q.returncode == 2 and "--cache" in q.stderr, "--cache with --sse: exit 2")

rc, err = gos_proc.stop_compositor(comp)
check(rc == 0, f"gos-compositor shut down cleanly (rc={rc}): {err.strip()[-300:]}")
fake.stop()
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("test_bridge_cache"))
