#!/usr/bin/env python3
"""cmake --install into a temporary prefix, then: the install manifest is
what is on disk; the web viewer, the Grafana dashboard, the Prometheus
rules, the runbook, a man page per program (each --help option in it,
installed paths, no builder's paths) and the systemd units,
gos-compositor.service and the template gos-relay@.service (hardened,
ExecStart on the installed program, the relay's options from
/etc/gos/relay-INSTANCE.env, reload by SIGHUP; systemd-analyze verify and
security on both when there) are there. Then the prefix moves elsewhere and the moved
gos-compositor runs with the source tree out of reach (a tmpfs over it in
a mount namespace of its own, as root): GET / answers the installed
index.html (marked, so no other copy could pass), the installed gos-feed
reaches it, /metrics counts the tokens.

usage: install_tree.py BUILD_DIR SOURCE_DIR"""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_check import check, report  # noqa: E402

NAME = "install_tree"
PROGRAMS = ["gos-compositor", "gos-feed", "gos-shot", "gos-bridge", "gos-relay"]
IN_COMPOSITOR = ("gos-compositor", "gos-relay")   # built in compositor/, the rest in tools/
HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "ProtectHome=yes",
             "PrivateTmp=yes", "CapabilityBoundingSet=", "ExecReload=/bin/kill -HUP $MAINPID")


def files_under(root):
    out = set()
    for d, _, fs in os.walk(root):
        for f in fs:
            out.add(os.path.join(d, f))
    return out


def man_text(path):
    """A man page's words with troff's escapes for '-' and fonts undone."""
    t = open(path).read()
    t = t.replace("\\-", "-")
    return re.sub(r"\\f[BIRP]", "", t)


def help_options(binary):
    env = dict(os.environ, XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR", HOME="~")
    env.pop("XDG_STATE_HOME", None)
    r = subprocess.run([binary, "--help"], capture_output=True, text=True, env=env)
    return r.returncode, r.stdout + r.stderr, set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", r.stdout + r.stderr))


def check_install(build, src, prefix):
    r = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True, text=True)
    if not check(r.returncode == 0, f"cmake --install --prefix {prefix}: {r.stdout}{r.stderr}"):
        return False
    manifest = set(open(os.path.join(build, "install_manifest.txt")).read().split())
    on_disk = files_under(prefix)
    check(manifest == on_disk, f"the install manifest is what is installed: only in the manifest "
          f"{sorted(manifest - on_disk)}, only on disk {sorted(on_disk - manifest)}")

    for p in PROGRAMS:
        path = os.path.join(prefix, "bin", p)
        check(os.path.isfile(path) and os.stat(path).st_mode & stat.S_IXOTH, f"{path} is an executable")
    check(not os.path.exists(os.path.join(prefix, "bin", "gos-bench")), "gos-bench stays in the build tree")
    web_src = os.path.join(src, "assets", "web")
    web = os.path.join(prefix, "share", "gos", "web")
    check(sorted(os.listdir(web)) == sorted(os.listdir(web_src)), f"{web} holds the viewer's files")
    for f in os.listdir(web_src):
        check(open(os.path.join(web, f), "rb").read() == open(os.path.join(web_src, f), "rb").read(),
              f"installed {f} is the source's")
    for rel in ("share/gos/grafana/gos.json", "share/gos/prometheus/gos-rules.yml",
                "share/gos/prometheus/gos-rules.test.yml", "share/doc/gos/runbook.md",
                "share/doc/gos/README.md", "lib/systemd/system/gos-compositor.service",
                "lib/systemd/system/gos-relay@.service"):
        check(os.path.isfile(os.path.join(prefix, rel)), f"{rel} is installed")

    # Man pages: one per program, every option its --help names.
    for p in PROGRAMS:
        page = os.path.join(prefix, "share", "man", "man1", p + ".1")
        if not check(os.path.isfile(page), f"{page} is installed"):
            continue
        text = man_text(page)
        rc, _, opts = help_options(os.path.join(build, "compositor" if p in IN_COMPOSITOR else "tools", p))
        check(rc == 0 and len(opts) >= 3, f"{p} --help names its options ({sorted(opts)})")
        missing = sorted(o for o in opts if o not in text)
        check(not missing, f"{p}.1 mentions every option of {p} --help; missing {missing}")
        check(re.search(r'^\.TH "?' + p.upper() + r'"? "?1"?', text, re.M) and "0.1.0" in text,
              f"{p}.1 has a title line with its section and version")
        check(src not in text and build not in text and "/root" not in text,
              f"{p}.1 names no path of the build machine")
        if shutil.which("man"):
            r = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, text=True,
                               env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
            check(r.returncode == 0 and not r.stderr.strip() and p in r.stdout,
                  f"man -l {p}.1 renders without warnings: {r.stderr}")
    comp = man_text(os.path.join(prefix, "share", "man", "man1", "gos-compositor.1"))
    check(os.path.join(prefix, "share/gos/web") in comp,
          "gos-compositor.1 gives the installed viewer folder as --web-dir's default")
    check("$XDG_RUNTIME_DIR/gos.sock" in comp and "~/.local/state/gos" in comp,
          "gos-compositor.1 gives the socket's and the state dir's defaults for any user")

    # The systemd unit.
    unit_path = os.path.join(prefix, "lib/systemd/system/gos-compositor.service")
    unit = open(unit_path).read()
    check(re.search(r"^ExecStart=" + re.escape(os.path.join(prefix, "bin", "gos-compositor")) + " ", unit, re.M),
          "the unit starts the installed gos-compositor")
    for line in HARDENING + ("StateDirectory=gos", "--state-dir /var/lib/gos",
                             "--socket /run/gos/gos.sock", "RuntimeDirectory=gos"):
        check(line in unit, f"the unit has {line}")
    check("@" not in re.sub(r"gos-relay@|@system-service", "", unit), "the unit has no unreplaced @VAR@")

    # The relays' template: one instance per /etc/gos/relay-NAME.env.
    relay_path = os.path.join(prefix, "lib/systemd/system/gos-relay@.service")
    relay = open(relay_path).read()
    check(re.search(r"^ExecStart=" + re.escape(os.path.join(prefix, "bin", "gos-relay")) +
                    r" \$GOS_RELAY_ARGS$", relay, re.M),
          "the relay unit starts the installed gos-relay with $GOS_RELAY_ARGS")
    check(re.search(r"^EnvironmentFile=/etc/gos/relay-%i\.env$", relay, re.M),
          "the relay unit reads /etc/gos/relay-INSTANCE.env (required)")
    for line in HARDENING + ("MemoryDenyWriteExecute=yes",):
        check(line in relay, f"the relay unit has {line}")
    check("StateDirectory" not in relay, "the relay unit writes no state")
    check("@" not in re.sub(r"gos-relay@|@system-service", "", relay), "the relay unit has no unreplaced @VAR@")

    if shutil.which("systemd-analyze"):
        env = dict(os.environ, MANPATH=os.path.join(prefix, "share", "man"))
        # an instance of the template, as systemctl would load it
        inst = os.path.join(prefix, "gos-relay@a.service")
        shutil.copy(relay_path, inst)
        for path in (unit_path, relay_path, inst):
            r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, env=env)
            check(r.returncode == 0 and not r.stderr.strip(),
                  f"systemd-analyze verify {os.path.basename(path)} (its man: link found too): "
                  f"{r.stdout}{r.stderr}")
        for path in (unit_path, inst):
            r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", path],
                               capture_output=True, text=True)
            m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout + r.stderr)
            check(r.returncode == 0 and m, f"systemd-analyze security {os.path.basename(path)}: "
                  f"exposure at most 2.0 ({m.group(1) if m else r.stdout[-300:] + r.stderr})")
        os.remove(inst)
    else:
        print(f"{NAME}: no systemd-analyze here, the units are not verified by it", flush=True)
    return True


def run_moved(src, build, moved, tmp, hide):
    """The moved prefix's gos-compositor; with hide, the source and build
    trees are out of its reach (root and unshare(1) only). Returns
    (Popen, url, socket)."""
    binary = os.path.join(moved, "bin", "gos-compositor")
    sock = os.path.join(tmp, "gos.sock")
    args = [binary, "--no-render", "--no-journal", "--listen", "127.0.0.1:0", "--socket", sock,
            "--log-interval", "0"]
    if hide:
        # Everything of the source and the build tree gone: a tmpfs over each
        # (over the source alone when the build dir is inside it).
        tops = [d for d in sorted({src, build}) if not any(d.startswith(o + "/") for o in (src, build))]
        mounts = " && ".join(f"mount -t tmpfs -o size=1m,mode=000 gos-hidden '{d}'" for d in tops)
        args = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"{mounts} && test ! -e '{src}/assets/web/index.html' && exec \"$0\" \"$@\"", *args]
    errpath = os.path.join(tmp, "stderr")
    err = open(errpath, "w")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    url = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and p.poll() is None and not url:
        m = re.search(r"web viewer at (http://127\.0\.0\.1:\d+/)", open(errpath).read())
        url = m.group(1) if m and os.path.exists(sock) else None
        time.sleep(0.02)
    if not check(url, f"the moved gos-compositor starts and serves ({'source hidden' if hide else 'source there'})"):
        print(open(errpath).read(), file=sys.stderr)
    return p, url, sock


def serve_installed(src, build, moved, tmp, index, mark, hide):
    """GET / and /viewer.js are the installed files; the installed gos-feed
    reaches the compositor; SIGTERM ends it cleanly."""
    p, url, sock = run_moved(src, build, moved, tmp, hide)
    where = "source hidden" if hide else "source there"
    try:
        if not url:
            return
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        check(body == open(index).read() and mark in body,
              f"GET / answers the installed (marked) index.html ({where})")
        js = urllib.request.urlopen(url + "viewer.js", timeout=10).read()
        check(js == open(os.path.join(moved, "share/gos/web/viewer.js"), "rb").read(),
              f"GET /viewer.js answers the installed viewer.js ({where})")
        r = subprocess.run([os.path.join(moved, "bin", "gos-feed"), "--socket", sock, "--synthetic",
                            "--count", "300", "--quiet"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"the installed gos-feed delivers 300 events: {r.stdout}{r.stderr}")
        metrics = urllib.request.urlopen(url + "metrics", timeout=10).read().decode()
        check(re.search(r"^gos_tokens 300$", metrics, re.M), f"/metrics counts the 300 tokens ({where})")
        health = urllib.request.urlopen(url + "health", timeout=10)
        check(health.status == 200, f"/health answers 200 ({where})")
        p.terminate()
        check(p.wait(timeout=20) == 0, f"SIGTERM stops the installed gos-compositor cleanly ({where})")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    build, src = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="gos-install-")
    try:
        prefix = os.path.join(tmp, "prefix")
        if not check_install(build, src, prefix):
            return report(NAME)

        # Move the installed tree: the program finds its viewer from where it is.
        moved = os.path.join(tmp, "moved", "elsewhere")
        os.makedirs(os.path.dirname(moved))
        shutil.move(prefix, moved)
        index = os.path.join(moved, "share", "gos", "web", "index.html")
        mark = f"<!-- installed copy {os.getpid()}-{time.monotonic_ns()} -->\n"
        with open(index, "a") as f:
            f.write(mark)
        _, out, _ = help_options(os.path.join(moved, "bin", "gos-compositor"))
        check(re.search(r"--web-dir DIR .*\(default " + re.escape(os.path.join(moved, "share/gos/web")) + r"\)", out),
              "the moved gos-compositor's --web-dir default is the viewer beside it")
        _, out, _ = help_options(os.path.join(build, "compositor", "gos-compositor"))
        check(os.path.join(src, "assets/web") in out,
              "the build tree's gos-compositor still serves the source tree's viewer")

        # With the source tree there (an installed program prefers its own
        # viewer), then with it out of reach (it needs nothing from it).
        serve_installed(src, build, moved, tmp, index, mark, hide=False)
        if os.geteuid() == 0 and shutil.which("unshare"):
            serve_installed(src, build, moved, tmp, index, mark, hide=True)
        else:
            print(f"{NAME}: not root or no unshare(1): the source tree could not be hidden", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(NAME)


if __name__ == "__main__":
    sys.exit(main())
