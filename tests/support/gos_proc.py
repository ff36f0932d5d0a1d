"""Shared by the Python end-to-end tests: start and stop a real
gos-compositor on a Unix socket, and ask it for a sync barrier."""
import json
import os
import socket
import subprocess
import time


def wait_connectable(sock, p, tries=500):
    """True once sock accepts a connection; False if p exits first."""
    for _ in range(tries):
        if p.poll() is not None:
            return False
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(sock)
            c.close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def start_compositor(binary, sock, *extra, validation=False, stdout=subprocess.PIPE):
    """gos-compositor --headless --no-listen on sock; returns the Popen once
    the socket answers (or once the process has exited: check p.poll())."""
    env = dict(os.environ, GOS_VALIDATION="1") if validation else None
    # memory only unless the test is about the journal (it passes --state-dir)
    journal = [] if any(a.startswith("--state-dir") for a in extra) else ["--no-journal"]
    p = subprocess.Popen([binary, "--headless", "--no-listen", "--socket", sock,
                          "--log-interval", "0", *journal, *extra],
                         stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
    wait_connectable(sock, p)
    return p


def stop_compositor(p, timeout=20):
    """SIGTERM, then (returncode, stderr)."""
    p.terminate()
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return p.returncode, err


def sync(sock, timeout=10):
    """The compositor's own account: a sync barrier on a fresh connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock)
    s.sendall(b'{"type":"sync"}\n')
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data.decode())


def skip(name, why):
    """Exit 77 (ctest: skipped) because `why` (no Vulkan device, no xvfb-run);
    in CI (CI set), where tools/setup.sh installs lavapipe and Xvfb, a skip
    hides a broken set-up, so it is a failure that says so."""
    import sys
    if os.environ.get("CI"):
        print(f"{name}: FAILED: {why}, and CI is set: in CI every GPU test must run "
              "(tools/setup.sh installs Mesa lavapipe and Xvfb)", flush=True)
        sys.exit(1)
    print(f"{name}: {why}, skipped", flush=True)
    sys.exit(77)
