#!/usr/bin/python3
"""The journal against a real gos-compositor killed with SIGKILL (issue 11):
three producers feed at once, each syncing every few hundred events, while a
viewer mirrors the map; the compositor is killed at a random moment, several
rounds on one state dir. After each restart every event whose sync was
answered is on the map (ids, texts, positions, confidences equal to what the
producer sent or, for laid-out tokens, to what the viewer saw), and the seq
continues past everything a viewer saw (never reused). Then: a torn tail, a
corrupt record in the middle, and a second compositor on the same dir.

usage: journal_crash.py GOS_COMPOSITOR   (run by ctest)"""
import glob
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from journal_util import event_records  # noqa: E402
from ws_util import Compositor, Mirror, RawViewer, check, report  # noqa: E402

COMPOSITOR = sys.argv[1]
ROUNDS = 4
PRODUCERS = 3
SYNC_EVERY = 300


def token(k, i, rnd):
    ev = {"type": "token_activation", "token_id": f"r{rnd}-p{k}-{i}", "token_text": f"w{i} ",
          "timestamp": float(i), "stream": f"gen-{k}",
          "confidence": round((i * 37 % 100) / 100.0, 2)}
    if i % 3 == 0:
        ev["position"] = [float(i % 500) * 7.5, float(k * 1000 + i // 500)]
    return ev


class Producer(threading.Thread):
    """Feeds until the connection dies; acked holds every event whose sync
    was answered."""

    def __init__(self, sock, k, rnd):
        super().__init__(daemon=True)
        self.sock, self.k, self.rnd = sock, k, rnd
        self.acked = {}

    def run(self):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.sock)
            s.settimeout(30)
            f = s.makefile("rb")
            i = 0
            while True:
                batch = [token(self.k, i + n, self.rnd) for n in range(SYNC_EVERY)]
                i += SYNC_EVERY
                s.sendall(("\n".join(json.dumps(e) for e in batch) + '\n{"type":"sync"}\n').encode())
                while True:
                    line = f.readline()
                    if not line:
                        return
                    if json.loads(line).get("type") == "sync":
                        break
                for e in batch:
                    self.acked[e["token_id"]] = e
        except OSError:
            return


class Watcher(threading.Thread):
    """A viewer mirroring the map until the connection dies."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.v = RawViewer(port)
        self.m = Mirror()
        self.max_seq = 0

    def run(self):
        try:
            while True:
                msg = self.v.recv_json()
                if msg is None:
                    return
                self.m.apply(msg)
                self.max_seq = max(self.max_seq, msg.get("seq", 0))
        except (OSError, EOFError, ValueError):
            return


def snapshot(port):
    v = RawViewer(port)
    try:
        while True:
            m = v.recv_json()
            if m is None:
                return None
            if m.get("type") == "snapshot":
                return m
    finally:
        v.close()


def start(state, *extra):
    return Compositor(COMPOSITOR, "--no-render", "--state-dir", state, "--tick-ms", "20", *extra)


tmp = tempfile.mkdtemp(prefix="gos-journal-")
state = os.path.join(tmp, "state")
rng = random.Random(11)
acked = {}            # every event acknowledged in any round
seen_pos = {}         # laid-out tokens: the position a viewer saw
max_seen_seq = 0

for rnd in range(ROUNDS):
    c = start(state, "--checkpoint-events", "4000")
    snap = snapshot(c.port)
    # everything acknowledged before is back, as it was
    toks = {t["id"]: t for t in snap["tokens"]}
    missing = [i for i in acked if i not in toks]
    check(not missing, f"round {rnd}: every acknowledged event survived the kill "
          f"({len(missing)} of {len(acked)} missing, e.g. {missing[:3]})")
    wrong = []
    for i, e in acked.items():
        t = toks.get(i)
        if not t:
            continue
        pos = e.get("position") or seen_pos.get(i)
        if t["text"] != e["token_text"] or t["confidence"] != e["confidence"] or \
           t["stream"] != e["stream"] or (pos and [t["x"], t["y"]] != list(pos)):
            wrong.append((i, t, e, pos))
    check(not wrong, f"round {rnd}: texts, confidences, streams and positions equal "
          f"({len(wrong)} differ, e.g. {wrong[:1]})")
    check(snap["seq"] > max_seen_seq or rnd == 0,
          f"round {rnd}: seq continues past what viewers saw ({snap['seq']} > {max_seen_seq})")

    w = Watcher(c.port)
    w.start()
    prods = [Producer(c.sock, k, rnd) for k in range(PRODUCERS)]
    for p in prods:
        p.start()
    time.sleep(rng.uniform(0.8, 2.5))
    c.proc.kill()
    c.proc.wait()
    for p in prods:
        p.join(10)
    w.join(10)
    n = sum(len(p.acked) for p in prods)
    check(n > 0, f"round {rnd}: producers had syncs answered before the kill ({n} events)")
    for p in prods:
        acked.update(p.acked)
    for i, t in w.m.tokens.items():
        seen_pos[i] = [t["x"], t["y"]]
    max_seen_seq = max(max_seen_seq, w.max_seq)
    check(not w.m.errors, f"round {rnd}: the viewer's chain was sound: {w.m.errors[:2]}")
    c.stop()

# ---- a clean restart, then a torn tail
c = start(state)
snap = snapshot(c.port)
toks = {t["id"] for t in snap["tokens"]}
check(all(i in toks for i in acked), "after the last kill everything acknowledged is there")
reply = c.feed([token(9, i, 99) for i in range(50)])
check(reply and reply["applied"] == 50, "a clean round after the kills: 50 applied")
seq_before = snapshot(c.port)["seq"]
check(c.stop() == 0, "SIGTERM: clean exit")
segs = sorted(glob.glob(os.path.join(state, "journal", "*.seg")))
check(len(segs) >= 1, f"segments on disk ({len(segs)})")
last = segs[-1]

ev_recs = event_records(last)
check(ev_recs and b'"r99-p9-49"' in ev_recs[-1][2], "the last event record is the last event fed")
with open(last, "r+b") as f:
    f.truncate(ev_recs[-1][0] + 30)   # a power cut in the middle of the last event record
c = start(state)
err = c.stderr()
check("torn" in err and "dropped" in err, f"the torn tail is named in the log: {err[-400:]}")
snap = snapshot(c.port)
toks = {t["id"] for t in snap["tokens"]}
check("r99-p9-49" not in toks and "r99-p9-48" in toks,
      "the torn record is gone, the one before it is there")
check(snap["seq"] >= seq_before, "seq does not go back after a torn tail")
check(c.stop() == 0, "clean exit after a torn-tail restore")

# ---- a corrupt record in the middle
segs = sorted(glob.glob(os.path.join(state, "journal", "*.seg")))
big = max(segs, key=os.path.getsize)
data = bytearray(open(big, "rb").read())
mid = len(data) // 2
j = data.find(b"token_text", mid)
data[j + 2] ^= 0x40
open(big, "wb").write(data)
c = start(state)
err = c.stderr()
check("corrupt" in err and "set aside" in err, f"the corrupt record is named: {err[-500:]}")
bad = os.listdir(os.path.join(state, "bad"))
check(any(os.path.basename(big) in b for b in bad), f"the bad segment is kept in bad/: {bad}")
snap1 = snapshot(c.port)
check(len(snap1["tokens"]) > 0, f"what came before the corruption is kept ({len(snap1['tokens'])} tokens)")
reply = c.feed([token(8, i, 98) for i in range(10)])
check(reply and reply["applied"] == 10, "the compositor takes events after a corrupt restore")
snap1 = snapshot(c.port)

# ---- a second compositor on the same state dir is refused
r = subprocess.run([COMPOSITOR, "--no-render", "--no-listen", "--state-dir", state,
                    "--socket", os.path.join(tmp, "second.sock")],
                   capture_output=True, text=True, timeout=20)
check(r.returncode == 1, f"a second compositor on the dir exits 1 (got {r.returncode})")
check("--state-dir" in r.stderr and "--no-journal" in r.stderr and r.stderr.count("\n") == 1,
      f"one sentence naming --state-dir and --no-journal: {r.stderr!r}")
check(c.stop() == 0, "clean exit")

# the prefix before the corruption stays across another restart
c = start(state)
snap2 = snapshot(c.port)
check({t["id"] for t in snap2["tokens"]} == {t["id"] for t in snap1["tokens"]},
      "the same map after one more restart")
c.stop()

# ---- --open with a bad line changes nothing; --fresh keeps the session; --sessions lists it
n_before = len(snap2["tokens"])
bad = os.path.join(tmp, "bad.ndjson")
with open(bad, "w") as f:
    f.write(json.dumps(token(7, 0, 97)) + "\n" + '{"type":"token_activation","token_id":"x"}\n')
r = subprocess.run([COMPOSITOR, "--no-render", "--no-listen", "--state-dir", state, "--open", bad,
                    "--socket", os.path.join(tmp, "open.sock")], capture_output=True, text=True, timeout=20)
check(r.returncode == 1 and "line 2" in r.stderr, f"--open of a bad file: exit 1 naming line 2: {r.stderr!r}")
c = start(state)
check(len(snapshot(c.port)["tokens"]) == n_before, "a refused --open left the session as it was")
c.stop()
c = start(state, "--fresh")
check(len(snapshot(c.port)["tokens"]) == 0, "--fresh starts with an empty map")
c.stop()
kept = os.listdir(os.path.join(state, "sessions"))
check(len(kept) == 1, f"--fresh kept the last session in sessions/ ({kept})")
r = subprocess.run([COMPOSITOR, "--sessions", "--state-dir", state], capture_output=True, text=True,
                   timeout=60)
check(r.returncode == 0 and kept[0] in r.stdout and "current" in r.stdout and "events" in r.stdout,
      f"--sessions lists the kept session and the current one: {r.stdout!r}")

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("journal_crash"))
