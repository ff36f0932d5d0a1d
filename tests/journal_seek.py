"""Time travel (issue 11): a live viewer records the map at every seq it
holds; a second viewer's seek to a recorded seq (before and after eviction,
past a checkpoint, the last, by time, after a restart) must give exactly
that state; no deltas while seeking; live comes back; play at speed 16
rebuilds the recorded states and ends live; errors for out-of-range, bad
and journal-less requests; GET /recording opened by a fresh compositor
gives the same map.

usage: journal_seek.py GOS_COMPOSITOR"""
import copy
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, Mirror, RawViewer, check, http_raw, report  # noqa: E402

BIN = sys.argv[1]
FLAGS = ["--no-render", "--tick-ms", "20", "--checkpoint-events", "3000", "--max-tokens", "4000"]


def token_line(i):
    return {"type": "token_activation", "token_id": f"t{i}", "token_text": f"w{i}",
            "timestamp": 1700000000.0 + i, "confidence": round((i % 100) / 99, 4),
            "stream": f"gen-{i % 3}"}


def state_line(k, n):
    return {"type": "neural_state", "stream": f"gen-{k % 3}", "state": f"s{n}",
            "tokens_processed": n, "total_tokens": 20000}


def lines(a, b):
    out = []
    for i in range(a, b):
        out.append(token_line(i))
        if i % 500 == 0:
            out.append(state_line(i, i))
    return out


class Recorder(threading.Thread):
    """The live viewer: seq -> (tokens, streams) after every message."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.v = RawViewer(port)
        self.m = Mirror()
        self.states = {}
        self.lock = threading.Lock()
        self.start()

    def run(self):
        try:
            while True:
                msg = self.v.recv_json()
                if msg is None:
                    return
                # under the lock: wait_seq must never see a seq whose state
                # is not recorded yet
                with self.lock:
                    self.m.apply(msg)
                    if msg["type"] in ("snapshot", "token_visualization"):
                        self.states[self.m.seq] = (copy.deepcopy(self.m.tokens),
                                                   copy.deepcopy(self.m.streams))
        except (EOFError, OSError):
            return

    def wait_seq(self, seq, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.m.seq is not None and self.m.seq >= seq:
                    return True
            time.sleep(0.02)
        return False


def recv_until(v, types, timeout=30, skip=None):
    """Messages until one of `types`; returns (that message, the skipped ones)."""
    v.s.settimeout(timeout)
    seen = []
    while True:
        m = v.recv_json()
        if m is None:
            return None, seen
        if m["type"] == "timeline":
            v.timeline = m
        if m["type"] in types:
            return m, seen
        seen.append(m)


def as_state(snap):
    return ({t["id"]: t for t in snap["tokens"]}, {s["stream"]: s for s in snap["streams"]})


def same(a, b):
    return a[0] == b[0] and a[1] == b[1]


def diff(a, b):
    ka, kb = set(a[0]), set(b[0])
    d = [x for x in ka & kb if a[0][x] != b[0][x]][:3]
    return (f"{len(ka)} vs {len(kb)} tokens, {len(ka - kb)} only left, {len(kb - ka)} only right, "
            f"differing e.g. {[(a[0][x], b[0][x]) for x in d]}, streams equal: {a[1] == b[1]}")


def seek(v, **kw):
    v.send(json.dumps({"type": "seek", **kw}))
    m, _ = recv_until(v, ("snapshot", "error"))
    return m


def new_viewer(port):
    v = RawViewer(port)
    m, _ = recv_until(v, ("snapshot",))
    check(m is not None and m.get("mode") == "live", "a viewer's first snapshot says mode live")
    return v


def main():
    tmp = tempfile.mkdtemp(prefix="gos-seek-")
    state = os.path.join(tmp, "state")
    c = Compositor(BIN, "--state-dir", state, *FLAGS, tmp=tmp)
    try:
        rec = Recorder(c.port)
        time.sleep(0.2)
        n = 0
        for k in range(12):
            c.feed(lines(n, n + 1000), chunk=250)
            n += 1000
        h = c.wait_broadcast_caught_up()
        check(h is not None and rec.wait_seq(h["seq"]), "the live viewer caught up")
        last = h["seq"]
        ckpts = sorted(int(f.split(".")[0]) for f in os.listdir(os.path.join(state, "checkpoint"))
                       if f.endswith(".ckpt"))
        check(len(ckpts) >= 2, f"checkpoints were written ({ckpts})")
        with rec.lock:
            states = dict(rec.states)
        seqs = sorted(states)
        before = [s for s in seqs if 0 < len(states[s][0]) < 4000]
        after = [s for s in seqs if len(states[s][0]) == 4000 and s < last]
        at_ck = [s for s in seqs if ckpts and s >= ckpts[-1]]
        if not check(before and after and at_ck, f"recorded states before ({len(before)}) and "
                     f"after ({len(after)}) eviction, and at or after the newest checkpoint "
                     f"({len(at_ck)}; checkpoints {ckpts}, last {last})"):
            return report("journal_seek")
        picks = [last, before[len(before) // 2], after[len(after) // 2], at_ck[0],
                 after[len(after) // 2] + 0, before[-1]]
        if ckpts[0] in states:
            picks.append(ckpts[0])

        b = new_viewer(c.port)
        for s in picks:
            m = seek(b, seq=s)
            ok = m and m["type"] == "snapshot" and m.get("mode") == "seek" and m["seq"] == s
            check(ok, f"seek {s}: a seek snapshot at {s} ({m and {k: m[k] for k in m if k != 'tokens'}})")
            if ok:
                check(same(as_state(m), states[s]), f"seek {s}: equals what the live viewer held "
                      f"({'' if same(as_state(m), states[s]) else diff(as_state(m), states[s])})")
                check(isinstance(m.get("time"), float), f"seek {s}: has the event's time")

        # the timeline came after the first snapshot; by time
        # (sent once a second while durable_seq moves: wait for one that covers `last`)
        tl = getattr(b, "timeline", None)
        deadline = time.monotonic() + 10
        while (tl is None or tl["last_seq"] < last) and time.monotonic() < deadline:
            tl = recv_until(b, ("timeline",), timeout=5)[0] or tl
        check(tl is not None and tl["first_seq"] == 0 and tl["last_seq"] >= last - 0 and
              2 <= len(tl["points"]) <= 200, f"a timeline ({tl and {k: tl[k] for k in tl if k != 'points'}})")
        if tl:
            t, s = tl["points"][len(tl["points"]) // 2]
            m = seek(b, time=t)
            check(m and m["type"] == "snapshot" and m["seq"] >= s and m["time"] <= t,
                  f"seek by time {t}: the state after the last event at or before it")
            if m and m["type"] == "snapshot":
                by_time = as_state(m)
                m2 = seek(b, seq=m["seq"])
                check(m2 and same(as_state(m2), by_time), "seek by time equals seek by its seq")
                if m["seq"] in states:
                    check(same(by_time, states[m["seq"]]), "seek by time equals the live state")
            m = seek(b, time=tl["first_time"] - 100)
            check(m and m["type"] == "error" and m["code"] == "seek_range", "a time before the journal: seek_range")

        m = seek(b, seq=last + 100000)
        check(m and m["type"] == "error" and m["code"] == "seek_range" and m["first"] == 0 and
              m["last"] >= last, f"out of range: seek_range with first/last ({m})")
        for bad in ['{"type":"seek"}', '{"type":"seek","seq":-1}', '{"type":"seek","seq":"5"}',
                    '{"type":"seek","seq":1.5}', '{"type":"play","seq":5,"speed":100}',
                    '{"type":"play","seq":5,"speed":0.01}', '{"type":"play"}']:
            b.send(bad)
            m, _ = recv_until(b, ("snapshot", "error"))
            check(m and m["type"] == "error" and m["code"] == "bad_request", f"{bad}: bad_request")

        # seeking: no deltas while more events arrive
        m = seek(b, seq=before[0])
        c.feed(lines(n, n + 500), chunk=250)
        n += 500
        h = c.wait_broadcast_caught_up()
        b.s.settimeout(1.0)
        got = []
        try:
            while True:
                x = b.recv_json()
                if x is None:
                    break
                got.append(x["type"])
        except (socket.timeout, TimeoutError):
            pass
        check(not [t for t in got if t in ("token_visualization", "neural_state", "snapshot")],
              f"no deltas while seeking ({got})")
        # live
        rec.wait_seq(h["seq"])
        b.send('{"type":"live"}')
        m, _ = recv_until(b, ("snapshot",))
        check(m and m.get("mode") == "live", "live: a live snapshot")
        if m:
            rec.wait_seq(m["seq"])
            with rec.lock:
                want = rec.states.get(m["seq"])
            check(want is not None and same(as_state(m), want), "live: equals the map")
        mb = Mirror()
        mb.apply(m)
        c.feed(lines(n, n + 200), chunk=200)
        n += 200
        h = c.wait_broadcast_caught_up()
        b.s.settimeout(10)
        while mb.seq < h["seq"]:
            x = b.recv_json()
            if x["type"] in ("token_visualization", "neural_state"):
                mb.apply(x)
        check(not mb.errors and mb.tokens == rec.m.tokens, "live: deltas again after live")

        # play from an early seq at speed 16, until it goes live
        rec.wait_seq(h["seq"])
        with rec.lock:
            states = dict(rec.states)
        s0 = before[len(before) // 3]
        b.send(json.dumps({"type": "play", "seq": s0, "speed": 16}))
        m, _ = recv_until(b, ("snapshot",))
        check(m and m.get("mode") == "play" and m["seq"] == s0, "play: a play snapshot at S")
        mp = Mirror()
        mp.apply(m)
        played = {s0: as_state(m)}
        live = None
        b.s.settimeout(60)
        while True:
            x = b.recv_json()
            if x is None:
                break
            if x["type"] == "snapshot":
                live = x
                break
            if x["type"] in ("token_visualization", "neural_state"):
                mp.apply(x)
                if x["type"] == "token_visualization":
                    played[mp.seq] = (copy.deepcopy(mp.tokens), copy.deepcopy(mp.streams))
        check(live is not None and live.get("mode") == "live", "play ends live")
        check(not mp.errors, f"play's deltas chain ({mp.errors[:3]})")
        common = [s for s in played if s in states]
        check(len(common) >= 2 and all(same(played[s], states[s]) for s in common),
              f"play equals the recorded states where both have one ({len(common)} seqs)")
        check(len(played) >= 5, f"play sent several deltas ({len(played)})")
        mids = sorted(played)[1:-1][:: max(1, len(played) // 3)][:3]
        for s in mids:
            m = seek(b, seq=s)
            check(m and same(as_state(m), played[s]), f"play's state at {s} equals a seek to it")
        b.send('{"type":"live"}')

        # pause
        b.send(json.dumps({"type": "play", "seq": before[0], "speed": 0.0625}))
        m, _ = recv_until(b, ("snapshot",))
        b.send('{"type":"pause"}')
        m, _ = recv_until(b, ("paused", "error"))
        check(m and m["type"] == "paused" and m["seq"] >= before[0], f"pause: paused ({m})")
        b.close()

        # GET /recording
        st, hd, body = http_raw(c.port, "/recording", timeout=60)
        check(st == 200 and hd.get("content-type") == "application/x-ndjson" and
              'attachment; filename="gos-' in hd.get("content-disposition", ""),
              f"/recording: 200, ndjson, attachment ({st} {hd})")
        rl = body.decode().splitlines()
        check(len(rl) == sum(1 for _ in range(n)) + n // 500 + (1 if n % 500 else 0) and
              all(json.loads(x)["_t"] > 0 for x in rl[:5]),
              f"/recording: every event, one a line ({len(rl)})")
        recfile = os.path.join(tmp, "rec.ndjson")
        with open(recfile, "wb") as f:
            f.write(body)
        final = as_state({"tokens": list(rec.m.tokens.values()), "streams": list(rec.m.streams.values())})

        # restart: seek to a seq from before it
        rec.v.close()
        check(c.stop() == 0, "SIGTERM: exit 0")
        c = Compositor(BIN, "--state-dir", state, *FLAGS, tmp=tmp)
        b = new_viewer(c.port)
        s = after[len(after) // 3]
        m = seek(b, seq=s)
        check(m and m["type"] == "snapshot" and same(as_state(m), states[s]),
              f"after a restart, seek {s} equals what the live viewer held")
        b.close()

        # the recording, opened by a fresh compositor
        o = Compositor(BIN, "--state-dir", os.path.join(tmp, "other"), "--open", recfile, *FLAGS)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (o.health() or {}).get("tokens") != len(final[0]):
                time.sleep(0.05)
            o.wait_broadcast_caught_up()
            v = RawViewer(o.port)
            m, _ = recv_until(v, ("snapshot",))
            check(m and same(as_state(m), final), "--open of GET /recording: the same map "
                  f"({'' if m and same(as_state(m), final) else m and diff(as_state(m), final)})")
            v.close()
        finally:
            o.stop()
    finally:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # --no-journal
    c = Compositor(BIN, "--no-render")
    try:
        v = new_viewer(c.port)
        m = seek(v, seq=0)
        check(m and m["type"] == "error" and m["code"] == "no_journal", f"--no-journal: seek no_journal ({m})")
        v.send('{"type":"play","seq":0}')
        m, _ = recv_until(v, ("snapshot", "error"))
        check(m and m["code"] == "no_journal", "--no-journal: play no_journal")
        st, _, body = c.http("/recording")
        check(st == 404 and b"journal" in body, f"--no-journal: /recording 404 ({st} {body[:80]})")
        v.close()
    finally:
        c.stop()
    return report("journal_seek")


if __name__ == "__main__":
    sys.exit(main())
