#!/usr/bin/env python3
"""The Grafana dashboard (assets/grafana/gos.json) and the alerting rules
(assets/prometheus/gos-rules.yml) read only what gos-compositor exports:
every metric name, every label they match or group by, and every label
value they match exactly is checked against a live compositor's /metrics
(--no-render, with a journal, so every family is there). Also: the
dashboard imports (its datasource is an input, ids unique, panels do not
overlap) and each of its queries parses (promtool check rules over them as
recording rules); each alert has a runbook section and a unit test.

usage: ops_metrics.py GOS_COMPOSITOR SOURCE_DIR"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
import yaml  # noqa: E402  (python3-yaml, tools/setup.sh)
from gos_check import check, report  # noqa: E402
from gos_proc import skip  # noqa: E402
from promql_names import grafana_subst, read  # noqa: E402

NAME = "ops_metrics"
# Labels Prometheus adds to every series it scrapes; `up` is its own metric.
TARGET_LABELS = {"instance", "job"}
PROMETHEUS_OWN = {"up": {"instance": set(), "job": set()}}


def live_metrics(binary, tmp, *extra, what="gos-compositor"):
    """name -> {label -> set of values} from a fresh compositor's /metrics
    (or, with extra, whatever argv[0] is: gos-relay)."""
    err = open(os.path.join(tmp, f"stderr-{time.monotonic_ns()}"), "w+")
    argv = [binary, "--listen", "127.0.0.1:0", *extra] if what == "gos-relay" else \
        [binary, "--no-render", "--listen", "127.0.0.1:0",
         "--socket", os.path.join(tmp, f"gos-{time.monotonic_ns()}.sock"),
         "--state-dir", os.path.join(tmp, f"state-{time.monotonic_ns()}"), "--log-interval", "0",
         *extra]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    try:
        url = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and p.poll() is None and not url:
            err.seek(0)
            m = re.search(r"web viewer at (http://127\.0\.0\.1:\d+/)", err.read())
            url = m.group(1) if m else None
            time.sleep(0.02)
        if not check(url, f"{what} {' '.join(extra)} serves /metrics"):
            err.seek(0)
            print(err.read(), file=sys.stderr)
            return {}
        if extra and what != "gos-relay":
            time.sleep(1.5)   # a cluster member: it takes the lease (gos_leader 1)
        text = urllib.request.urlopen(url + "metrics", timeout=10).read().decode()
    finally:
        p.terminate()
        p.wait(timeout=20)
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? \S+$", line)
        if not check(m, f"/metrics line reads as a sample: {line!r}"):
            continue
        labels = out.setdefault(m.group(1), {})
        for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
            labels.setdefault(k, set()).add(v)
    return out


def check_expr(where, expr, exported):
    """Every name, label and exact value expr reads is exported."""
    metrics, matchers, groupings = read(expr)
    known = dict(exported, **PROMETHEUS_OWN)
    for name in sorted(metrics):
        check(name in known, f"{where}: metric {name} is not in gos-compositor's /metrics")
    for metric, label, op, value in matchers:
        if label in TARGET_LABELS or metric not in known:
            continue
        values = known[metric].get(label)
        if not check(values is not None, f"{where}: {metric} has no label {label}"):
            continue
        if ".*" in value:
            continue  # a Grafana variable
        if op in ("=", "!="):
            check(value in values, f"{where}: {metric}{{{label}=\"{value}\"}}: no such value "
                  f"(there are {sorted(values)})")
        else:
            re.compile(value)  # a bad regex fails here, loudly
            for alt in value.split("|"):
                check(any(re.fullmatch(alt, v) for v in values),
                      f"{where}: {metric}{{{label}{op}\"{value}\"}}: {alt!r} matches none of {sorted(values)}")
    for label in sorted(groupings):
        if label in TARGET_LABELS:
            continue
        check(any(label in known.get(m, {}) for m in metrics),
              f"{where}: groups by {label}, which none of {sorted(metrics)} has")
    return metrics


def dashboard_exprs(dash):
    """(where, expr) of every query in the dashboard, template queries too."""
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
    for v in dash["templating"]["list"]:
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["query"]["query"])
        if check(m, f"variable {v['name']}: a label_values(metric, label) query"):
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def check_dashboard(dash, exported, tmp):
    check(any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus"
              for i in dash.get("__inputs", [])), "the dashboard asks for a Prometheus datasource on import")
    check(dash.get("uid") and dash.get("title") and dash.get("schemaVersion"),
          "the dashboard has a uid, a title and a schemaVersion")
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), f"panel ids are unique: {ids}")
    cells = {}
    for p in dash["panels"]:
        g = p["gridPos"]
        check(g["x"] >= 0 and g["x"] + g["w"] <= 24, f"panel {p['title']!r} fits the 24 columns")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if not check((x, y) not in cells, f"panel {p['title']!r} overlaps {cells.get((x, y))!r}"):
                    break
                cells[(x, y)] = p["title"]
        if p["type"] in ("row", "text"):
            continue
        check(p.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}",
              f"panel {p['title']!r} reads the imported datasource")
        refs = [t["refId"] for t in p.get("targets", [])]
        check(refs and len(refs) == len(set(refs)), f"panel {p['title']!r} has targets with unique refIds")
        for t in p["targets"]:
            check(t.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}",
                  f"panel {p['title']!r} {t['refId']} reads the imported datasource")
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for want in ("events/s", "tokens", "viewers", "drops and resyncs", "frame time p50 / p99",
                 "broadcast tick p50 / p99", "pipeline latency p99", "journal write and fsync p99",
                 "journal file system free", "by reason"):
        check(want in titles, f"the dashboard has a panel on {want!r}")

    used = set()
    exprs = dashboard_exprs(dash)
    for where, expr in exprs:
        used |= check_expr(where, grafana_subst(expr), exported)
    # Each query parses: promtool reads them as recording rules.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"gos_dashboard:q{i}", "expr": grafana_subst(e)} for i, (_, e) in enumerate(exprs)]}]}
    path = os.path.join(tmp, "dashboard-rules.yml")
    with open(path, "w") as f:
        yaml.safe_dump(rules, f)
    r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
    check(r.returncode == 0, f"every dashboard query parses (promtool): {r.stdout}{r.stderr}")
    return used


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def check_rules(src, exported):
    rules = yaml.safe_load(open(os.path.join(src, "assets/prometheus/gos-rules.yml")))
    tests = yaml.safe_load(open(os.path.join(src, "assets/prometheus/gos-rules.test.yml")))
    runbook = open(os.path.join(src, "docs/runbook.md")).read()
    anchors = {slug(h) for h in re.findall(r"^#+ (.*)$", runbook, re.M)}
    tested = set()
    for t in tests["tests"]:
        for a in t.get("alert_rule_test", []):
            if a.get("exp_alerts"):
                tested.add(a["alertname"])
    names = set()
    used = set()
    for g in rules["groups"]:
        for r in g["rules"]:
            name = r.get("alert")
            if not check(name, f"rule {r} is an alert"):
                continue
            names.add(name)
            used |= check_expr(f"alert {name}", r["expr"], exported)
            check(r.get("labels", {}).get("severity") in ("warning", "critical"),
                  f"alert {name} has a severity, warning or critical")
            ann = r.get("annotations", {})
            check(ann.get("summary") and ann.get("description"), f"alert {name} has a summary and a description")
            m = re.fullmatch(r"docs/runbook\.md#(.+)", ann.get("runbook", ""))
            check(m and m.group(1) in anchors, f"alert {name}'s runbook link {ann.get('runbook')!r} "
                  "names a section of docs/runbook.md")
            check(name in tested, f"alert {name} has a unit test where it fires (gos-rules.test.yml)")
    # What issue 16 asks for.
    for want in ("GosCompositorDown", "GosIngestStalled", "GosViewersResyncingOften",
                 "GosRenderStalled", "GosJournalStalled", "GosPipelineLatencyHigh",
                 "GosJournalDiskNearlyFull"):
        check(want in names, f"the rules have {want}")
    return used


def self_test():
    """The reader finds what it must (else every check above passes vacuously)."""
    got = read('histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{job=~"x", t="v"}[5m])))'
               ' / on (instance) group_left (reason) b - sum without (z) (c offset 5m) > bool 1 / 60')
    check(got == ({"a_bucket", "b", "c"}, [("a_bucket", "job", "=~", "x"), ("a_bucket", "t", "=", "v")],
                  {"instance", "le", "reason", "z"}), f"promql_names.read: {got}")
    check(read(grafana_subst('rate(x{i=~"$instance"}[$__rate_interval])'))[1] == [("x", "i", "=~", ".*")],
          "grafana_subst replaces variables and intervals")


def merge(into, more):
    for name, labels in more.items():
        for k, vals in labels.items():
            into.setdefault(name, {}).setdefault(k, set()).update(vals)
        into.setdefault(name, {})


def main():
    binary, src = sys.argv[1], sys.argv[2]
    relay = sys.argv[3] if len(sys.argv) > 3 else None
    self_test()
    if not shutil.which("promtool"):
        skip(NAME, "promtool not found (Debian's prometheus package; tools/setup.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="gos-ops-")
    try:
        exported = live_metrics(binary, tmp)
        if relay:
            # a cluster's leader and a relay add the NATS families the
            # cluster's rules read (docs/scale-out.md)
            sys.path.insert(0, os.path.join(src, "tests", "support"))
            from nats_util import NatsServer, available
            if not check(available(), "nats-server is installed (tools/setup.sh)"):
                return report(NAME)
            nats = NatsServer()
            try:
                merge(exported, live_metrics(binary, tmp, "--nats", nats.url))
                merge(exported, live_metrics(relay, tmp, "--nats", nats.url, what="gos-relay"))
            finally:
                nats.cleanup()
            check("gos_leader" in exported and "gos_replica_lag_seconds" in exported,
                  "a cluster's leader and a relay export the cluster families")
        if exported:
            check("gos_journal_stalled" in exported and "gos_frame_duration_seconds_bucket" in exported,
                  "the live compositor exports the journal and frame families")
            dash = json.load(open(os.path.join(src, "assets/grafana/gos.json")))
            used = check_dashboard(dash, exported, tmp)
            used |= check_rules(src, exported)
            print(f"{NAME}: {len(used)} metric names read by the dashboard and the rules, "
                  f"{len(exported)} exported", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(NAME)


if __name__ == "__main__":
    sys.exit(main())
