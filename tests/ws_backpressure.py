#!/usr/bin/python3
"""A viewer that stops reading while 200k events flow through a real
gos-compositor: the server's memory stays bounded (its queue is cut at
BACKPRESSURE_THRESHOLD messages and replaced by a resync), a viewer that keeps
reading is not held back, and when the slow one reads again it gets
{"type":"resync"} and a snapshot equal to the map.

usage: ws_backpressure.py GOS_COMPOSITOR   (run by ctest)"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, Mirror, RawViewer, check, metric, report  # noqa: E402

COMPOSITOR = sys.argv[1]
EVENTS = 200_000
IDS = 2_000              # ids cycle, so the map stays small and the deltas carry the volume
PAD = "x" * 600          # about 700 bytes per token on the wire
THRESHOLD = 100          # GOS_WS_BACKPRESSURE_THRESHOLD


def line(i, base=0):
    i += base
    k = i % IDS
    return ('{"type":"token_activation","token_id":"id%d","token_text":"%d-%s","timestamp":%d,'
            '"position":[%d,%d],"confidence":%.3f}' % (k, i, PAD, i, k % 50 * 80, k // 50 * 22,
                                                         (i % 1000) / 999))


def expected(base):
    out = {}
    for i in range(base + EVENTS - IDS, base + EVENTS):
        k = i % IDS
        out[f"id{k}"] = (f"{i}-{PAD}", round((i % 1000) / 999, 3), float(k % 50 * 80), float(k // 50 * 22))
    return out


def summary(tokens):
    return {tid: (t["text"], round(t["confidence"], 3), t["x"], t["y"]) for tid, t in tokens.items()}


class Reader(threading.Thread):
    """A viewer that keeps reading (and answering pings) the whole time."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.v = RawViewer(port)
        self.mirror = Mirror()
        self.stop = False
        self.error = None

    def run(self):
        try:
            while not self.stop:
                m = self.v.recv_json()
                if m is None:
                    break
                if m["type"] in ("snapshot", "token_visualization", "neural_state"):
                    self.mirror.apply(m)
                elif m["type"] == "resync":
                    self.mirror.types.append("resync")
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def main():
    c = Compositor(COMPOSITOR, "--tick-ms", "5")
    try:
        fast = Reader(c.port)
        fast.start()
        # Warm-up with the same traffic and no stalled viewer, so that what
        # the rest of the compositor (renderer included) grows to is in the
        # baseline: what grows after is the stalled viewer's cost.
        WARM = 100_000
        reply = c.feed((line(i) for i in range(WARM)), chunk=200, pace=0.004)
        check(reply and reply["applied"] == WARM, f"warm-up applied: {reply}")
        c.wait_broadcast_caught_up()
        with open(f"/proc/{c.proc.pid}/status") as f:
            rss0 = next(int(x.split()[1]) for x in f if x.startswith("VmHWM:"))

        slow = RawViewer(c.port, rcvbuf=4096)
        check(slow.recv_json()["type"] == "hello" and slow.recv_json()["type"] == "snapshot",
              "slow viewer: hello and snapshot, then it stops reading")
        m0 = c.metrics()
        sent0, msgs0 = metric(m0, "gos_ws_sent_bytes_total"), metric(m0, "gos_ws_messages_sent_total")
        deltas0 = metric(m0, "gos_broadcast_deltas_total")

        # 200k events at about 40k/s, so that hundreds of ticks go by.
        t0 = time.monotonic()
        reply = c.feed((line(i, WARM) for i in range(EVENTS)), chunk=200, pace=0.004)
        feed_s = time.monotonic() - t0
        check(reply and reply["applied"] == EVENTS and reply["tokens"] == IDS,
              f"{EVENTS} events applied, {IDS} tokens on the map: {reply}")
        h = c.wait_broadcast_caught_up()
        check(h is not None, "the broadcaster keeps up")
        with open(f"/proc/{c.proc.pid}/status") as f:
            hwm = next(int(x.split()[1]) for x in f if x.startswith("VmHWM:"))
        mt = c.metrics()
        sent = metric(mt, "gos_ws_sent_bytes_total") - sent0
        drops, resyncs = metric(mt, "gos_ws_drops_total"), metric(mt, "gos_ws_resyncs_total")
        qmax = metric(mt, "gos_ws_queue_max_messages")
        deltas = metric(mt, "gos_broadcast_deltas_total") - deltas0
        delta_bytes = sent / max(1, metric(mt, "gos_ws_messages_sent_total") - msgs0)
        print(f"ws_backpressure: fed {EVENTS} events in {feed_s:.1f} s, {deltas:.0f} deltas; "
              f"peak rss {rss0 / 1024:.1f} MiB after warm-up -> {hwm / 1024:.1f} MiB; slow viewer: "
              f"{drops:.0f} drops, {resyncs:.0f} resyncs, longest queue {qmax:.0f}", flush=True)
        check(deltas > 3 * THRESHOLD, f"enough deltas flowed to overrun a stopped viewer ({deltas})")
        check(resyncs >= 1 and drops >= THRESHOLD, f"the stopped viewer was resynced ({resyncs}) "
              f"and its backlog dropped ({drops})")
        check(qmax <= THRESHOLD, f"no viewer queue ever held more than {THRESHOLD} messages ({qmax})")
        # Everything the deltas carried, had it been kept for the stopped
        # viewer, is far more than the server grew by: the bound is the
        # queue limit times a delta, plus socket buffers.
        total_delta_mib = deltas * delta_bytes / 2**20
        grow_mib = (hwm - rss0) / 1024
        bound_mib = max(48.0, 1.5 * THRESHOLD * delta_bytes / 2**20 + 16)
        check(grow_mib < bound_mib, f"server memory grew {grow_mib:.1f} MiB (< {bound_mib:.0f} MiB: "
              f"{THRESHOLD} messages of {delta_bytes / 1024:.0f} KiB and socket buffers) while "
              f"{total_delta_mib:.0f} MiB of deltas went by")
        check(total_delta_mib > 1.5 * bound_mib,
              f"the test is meaningful: {total_delta_mib:.0f} MiB of deltas > 1.5 x the bound")

        # The viewer that kept reading is whole and was never resynced.
        deadline = time.monotonic() + 20
        while fast.mirror.seq != h["seq"] and time.monotonic() < deadline and fast.error is None:
            time.sleep(0.02)
        check(fast.error is None and fast.mirror.seq == h["seq"], f"the reading viewer reached seq {h['seq']}")
        check(not fast.mirror.errors, f"its deltas chained: {fast.mirror.errors[:3]}")
        check("resync" not in fast.mirror.types, "a slow viewer does not hold others back (no resync)")
        want = expected(WARM)
        check(summary(fast.mirror.tokens) == want, "its picture equals the map")

        # The slow viewer reads again: stale bytes, then resync, then a fresh snapshot.
        mirror = Mirror()
        saw_resync = False
        final = None
        slow.s.settimeout(20)
        while True:
            m = slow.recv_json()
            if m is None:
                break
            if m["type"] == "resync":
                saw_resync = True
                final = None
            elif m["type"] == "snapshot" and saw_resync:
                final = m
                mirror.apply(m)
            elif m["type"] in ("token_visualization", "neural_state") and final is not None:
                mirror.apply(m)
            if final is not None and mirror.seq == h["seq"]:
                break
        check(saw_resync, "the slow viewer got {\"type\":\"resync\"}")
        check(final is not None and final["seq"] == h["seq"],
              f"then a snapshot at the map's seq {h['seq']}: {final and final['seq']}")
        check(final is not None and summary({t["id"]: t for t in final["tokens"]}) == want,
              "the snapshot equals the map")
        check(metric(c.metrics(), "gos_ws_viewers") == 2, "both viewers are still connected")
        fast.stop = True
        slow.close()
        fast.v.close()
    finally:
        rc = c.stop()
        check(rc == 0, f"compositor exits 0: {rc}")


main()
sys.exit(report("ws_backpressure"))
