#!/usr/bin/python3
"""Issue 16's latency and journal metrics through a real gos-compositor
(--no-render, with a journal): with a viewer connected, every event fed is
observed in gos_pipeline_latency_seconds at stage "applied" and at stage
"published" (no earlier than applied) and, once the viewer's socket got
the delta carrying it, at stage "sent" (no earlier than published; the
events the viewer received, as its messages count them), tokens with a
current timestamp in
gos_producer_latency_seconds and a 2023 timestamp in
gos_producer_timestamps_skipped_total; with no viewer, events are applied
but neither published nor sent; a gos.v2 viewer's ticks count as sent
too; the journal's write and fsync histograms and its file
system's free space are there; promtool check metrics passes.

usage: ops_latency.py GOS_COMPOSITOR   (run by ctest)"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from ws_util import Compositor, RawViewer, check, metric, report  # noqa: E402

COMPOSITOR = sys.argv[1]
LAT = "gos_pipeline_latency_seconds"


def stage(text, st, what="count"):
    return metric(text, f"{LAT}_{what}", f'stage="{st}"')


def wait_metrics(c, cond, timeout=10):
    """/metrics once cond(text) holds (the broadcaster observes at the end
    of its tick), or the last text."""
    deadline = time.monotonic() + timeout
    while True:
        text = c.metrics()
        if cond(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.02)


def tokens(prefix, n, ts):
    return [{"type": "token_activation", "token_id": f"{prefix}{i}", "token_text": "w",
             "timestamp": ts, "confidence": 0.5} for i in range(n)]


state = tempfile.mkdtemp(prefix="gos-ops-latency-")
try:
    c = Compositor(COMPOSITOR, "--no-render", f"--state-dir={state}")
    text = c.metrics()
    check(stage(text, "applied") == 0 and stage(text, "published") == 0 and
          stage(text, "sent") == 0 and
          metric(text, "gos_producer_latency_seconds_count") == 0,
          "before any event every stage is there, at zero")

    v = RawViewer(c.port)
    seen = [v.recv_json().get("type") for _ in range(2)]   # hello, snapshot
    check("snapshot" in seen, f"the viewer gets its snapshot ({seen})")
    lines = tokens("now", 20, time.time() - 0.2) + tokens("old", 5, 1.7e9)
    lines.append({"type": "neural_state", "state": "generating", "stream": "s"})
    reply = c.feed(lines)
    check(reply and reply.get("applied") == 26, f"26 events applied ({reply})")
    c.wait_broadcast_caught_up()
    text = wait_metrics(c, lambda t: stage(t, "published") == 26)
    check(stage(text, "applied") == 26 and stage(text, "published") == 26,
          f"with a viewer, 26 events applied and published ({stage(text, 'applied')}, "
          f"{stage(text, 'published')})")
    a_sum, p_sum = stage(text, "applied", "sum"), stage(text, "published", "sum")
    check(0 <= a_sum <= p_sum < 26 * 5, f"published no sooner than applied, within seconds "
          f"(sums {a_sum} s, {p_sum} s)")

    # what the viewer got: 25 tokens and a neural_state change, all in deltas
    got_tokens, got_states = set(), 0
    deadline = time.monotonic() + 10
    while (len(got_tokens) < 25 or not got_states) and time.monotonic() < deadline:
        m = v.recv_json()
        if m is None:
            break
        if m.get("type") == "token_visualization":
            got_tokens |= {x["id"] for x in m["tokens"]}
        elif m.get("type") == "neural_state":
            got_states += sum(1 for st in m["streams"] if st.get("stream") == "s")
    received = len(got_tokens) + min(got_states, 1)
    check(received == 26, f"the viewer received the 26 events ({len(got_tokens)} tokens, "
          f"{got_states} stream states)")
    text = wait_metrics(c, lambda t: stage(t, "sent") == received)
    s_n, s_sum = stage(text, "sent"), stage(text, "sent", "sum")
    p_n, p_sum = stage(text, "published"), stage(text, "published", "sum")
    check(s_n == received == p_n, f"sent: the {received} events the viewer received "
          f"({s_n} sent, {p_n} published)")
    check(p_sum <= s_sum < 26 * 5, f"sent no sooner than published, within seconds "
          f"(sums {p_sum} s, {s_sum} s)")
    for le in ("0.001", "0.01", "0.1", "1"):
        pb = metric(text, f"{LAT}_bucket", f'stage="published",le="{le}"')
        sb = metric(text, f"{LAT}_bucket", f'stage="sent",le="{le}"')
        check(sb is not None and sb <= pb, f"bucket le={le}: sent {sb} <= published {pb}")
    n, s = metric(text, "gos_producer_latency_seconds_count"), metric(text, "gos_producer_latency_seconds_sum")
    check(n == 20 and 20 * 0.2 <= s < 20 * 5, f"20 tokens timed from their producer timestamp "
          f"({n}, {s} s)")
    check(metric(text, "gos_producer_timestamps_skipped_total") == 5, "the 5 from 2023 are skipped")
    check(metric(text, "gos_journal_write_seconds_count") > 0 and
          metric(text, "gos_journal_fsync_seconds_count") > 0 and
          metric(text, "gos_journal_bytes_total") > 0,
          "the journal's writes and fsyncs (the sync barrier) are timed")
    avail = metric(text, "gos_journal_filesystem_avail_bytes")
    size = metric(text, "gos_journal_filesystem_size_bytes")
    check(avail is not None and size and 0 < avail <= size, f"the state dir's file system: {avail} of {size}")
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        check(r.returncode == 0, f"promtool check metrics: {r.stdout}{r.stderr}")

    # no viewer: applied, not published
    v.close()
    wait_metrics(c, lambda t: metric(t, "gos_ws_viewers") == 0)
    reply = c.feed(tokens("later", 10, time.time()))
    c.wait_broadcast_caught_up()
    time.sleep(0.2)  # a few ticks
    text = c.metrics()
    check(stage(text, "applied") == 36 and stage(text, "published") == 26 and
          stage(text, "sent") == 26,
          f"no viewer: applied, neither published nor sent ({stage(text, 'applied')}, "
          f"{stage(text, 'published')}, {stage(text, 'sent')})")

    # a gos.v2 viewer alone: its binary ticks count as sent too
    v2 = RawViewer(c.port, protocol="gos.v2")
    check(v2.status == 101, f"a gos.v2 viewer upgrades ({v2.status})")
    wait_metrics(c, lambda t: metric(t, "gos_ws_viewers") == 1)
    time.sleep(0.2)  # its snapshot first: then it is live
    c.feed(tokens("v2-", 5, time.time()))
    c.wait_broadcast_caught_up()
    text = wait_metrics(c, lambda t: stage(t, "sent") == 31)
    check(stage(text, "published") == 31 and stage(text, "sent") == 31 and
          stage(text, "published", "sum") <= stage(text, "sent", "sum"),
          f"gos.v2: 5 more published and sent ({stage(text, 'published')}, {stage(text, 'sent')})")
    v2.close()
    check(c.stop() == 0, "clean exit")
finally:
    shutil.rmtree(state, ignore_errors=True)

sys.exit(report("ops_latency"))
