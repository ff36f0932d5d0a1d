#!/usr/bin/python3
"""--users-file and --access-log through a real gos-compositor (--no-render,
with a journal so that /recording serves): each role reaches what it may
(/, a /ws upgrade, /export, /recording, /metrics) and gets 401 without or
with a wrong token, 403 for too small a role; the --auth-token-file token
keeps working beside the file as the user "anonymous"; a file with a bad
line is refused at start (exit 1) and at SIGHUP (the error names the line,
the users before stay); a SIGHUP that adds one user and removes another
closes the removed user's viewer (1008) while another user's viewer stays
connected and keeps receiving deltas; a user's rate= limits all its viewers
together and is counted in /metrics by user name; and the access log has
one JSON line per request and per viewer session, with time, user,
address, path, session, status, bytes and duration, reopened on SIGHUP.

usage: ws_users.py GOS_COMPOSITOR   (run by ctest)"""
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gos_check import check, report  # noqa: E402
from ws_util import Compositor, RawViewer, http_raw, metric  # noqa: E402

COMPOSITOR = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="gos-users-")
USERS = os.path.join(tmp, "users")
ALOG = os.path.join(tmp, "access.log")
TOKEN_FILE = os.path.join(tmp, "token")

TOK = {"alice": "alice-secret-1", "bob": "bob-secret-2", "carol": "carol-secret-3",
       "dave": "dave-secret-4", "erin": "erin-secret-5", "anonymous": "file-token-0"}

# what the test asked, for the access log: (path, user or None, status)
asked = []


def write_users(text):
    with open(USERS + ".new", "w") as f:
        f.write(text)
    os.replace(USERS + ".new", USERS)


def req(c, path, user=None, token=None, how="bearer"):
    """GET path as user (its token) or with token; recorded for the access log."""
    token = token if token is not None else TOK.get(user)
    headers = {}
    if token is not None and how == "bearer":
        headers["Authorization"] = f"Bearer {token}"
    elif token is not None and how == "cookie":
        headers["Cookie"] = f"other=1; gos_token={token}"
    elif token is not None and how == "query":
        path += ("&" if "?" in path else "?") + "token=" + token
    st, hdrs, body = http_raw(c.port, path, headers)
    # a token that names nobody (any more) is logged without a user
    known = user in TOK and token == TOK[user] and st != 401
    asked.append((path.split("?")[0], user if known else None, st))
    return st, hdrs, body


def viewer(c, user=None, token=None):
    """A raw viewer as user; its upgrade's status in .status."""
    token = token if token is not None else TOK.get(user)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    v = RawViewer(c.port, headers=headers)
    good = user in TOK and token == TOK[user] and v.status != 401
    v.user = user if good else None
    if v.status != 101:
        asked.append(("/ws", v.user, v.status))
        v.close()
    return v


def viewer_gone(v):
    """A viewer that was 101: its session line comes when it closes."""
    asked.append(("/ws", v.user, 101))


def token_line(i, stream="s"):
    return {"type": "token_activation", "token_id": f"t{i}", "token_text": f"w{i}",
            "timestamp": 1700000000.0 + i, "confidence": 0.5, "stream": stream}


def read_until(v, needle, timeout=15):
    """Reads v's messages until one holds needle; False on timeout or close."""
    deadline = time.monotonic() + timeout
    v.s.settimeout(1)
    while time.monotonic() < deadline:
        try:
            m = v.recv()
        except (TimeoutError, OSError):
            continue
        except EOFError:
            return False
        if m is None:
            return False
        if needle in m:
            return True
    return False


def start_fails(*extra):
    p = subprocess.run([COMPOSITOR, "--no-render", "--no-journal", "--log-interval", "0",
                        "--socket", os.path.join(tmp, "fail.sock"), "--listen", "127.0.0.1:0",
                        *extra], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


# ---- a file that does not parse: exit 1, one sentence naming the line
write_users("alice a-tok admin\n# two\nbob b-tok superuser\n")
rc, err = start_fails("--users-file", USERS)
lines = [ln for ln in err.splitlines() if "--users-file" in ln]
check(rc == 1 and len(lines) == 1 and f"--users-file {USERS} line 3: bob's role must be view, "
      "export or admin" in lines[0], f"a bad line at start: exit 1 naming line 3 ({rc}: {err!r})")
write_users("alice a-tok admin\nbob a-tok view\n")
rc, err = start_fails("--users-file", USERS)
check(rc == 1 and "line 2: bob's token is already alice's (line 1)" in err,
      f"a token given twice: exit 1 ({err!r})")
rc, err = start_fails("--users-file", os.path.join(tmp, "absent"))
check(rc == 1 and "cannot read --users-file" in err, f"a missing file: exit 1 ({err!r})")
with open(TOKEN_FILE, "w") as f:
    f.write(TOK["anonymous"] + "\n")
write_users(f"alice {TOK['anonymous']} admin\n")
rc, err = start_fails("--users-file", USERS, "--auth-token-file", TOKEN_FILE)
check(rc == 1 and "gives a user the token of --auth-token-file" in err,
      f"a user with the token file's token: exit 1 ({err!r})")

# ---- the server
write_users(f"""# gos users: NAME TOKEN ROLE [rate=N] [burst=M]
alice {TOK['alice']} admin

bob   {TOK['bob']}   export
carol {TOK['carol']} view rate=2 burst=2
dave  {TOK['dave']}  view
""")
c = Compositor(COMPOSITOR, "--no-render", "--tick-ms", "20", "--state-dir",
               os.path.join(tmp, "state"), "--users-file", USERS, "--access-log", ALOG,
               "--auth-token-file", TOKEN_FILE, tmp=tmp)
check("?token=TOKEN (a user's token in --users-file)" in c.stderr(),
      "the start-up line says a user's token goes in the URL")
c.feed([token_line(i) for i in range(20)])

# ---- who reaches what
ROLE = {"alice": "admin", "bob": "export", "carol": "view", "dave": "view",
        "anonymous": "admin"}
MAY = {"view": {"/", "/ws"}, "export": {"/", "/ws", "/export", "/recording"},
       "admin": {"/", "/ws", "/export", "/recording", "/metrics"}}
for who in [None, "wrong", "alice", "bob", "carol", "anonymous"]:
    token = "not-a-token" if who == "wrong" else None
    user = None if who == "wrong" else who
    for path in ["/", "/ws", "/export", "/recording", "/metrics"]:
        if path == "/ws":
            v = viewer(c, user, token)
            st = v.status
            if st == 101:
                v.close()
                viewer_gone(v)
        else:
            st, hdrs, body = req(c, path + ("?format=csv" if path == "/export" else ""),
                                 user, token)
        if who in (None, "wrong"):
            want = 401
        else:
            want = (101 if path == "/ws" else 200) if path in MAY[ROLE[who]] else 403
        check(st == want, f"{who or 'no token'} {path}: {want}, got {st}")
        if st == 401 and path != "/ws":
            check(hdrs.get("www-authenticate", "").startswith("Bearer"),
                  f"{who or 'no token'} {path}: 401 names Bearer")
st, _, _ = req(c, "/health")
check(st == 200, "/health needs no token")
st, hdrs, _ = req(c, "/", "dave", how="query")
check(st == 200 and f"gos_token={TOK['dave']}" in hdrs.get("set-cookie", ""),
      f"?token= gets a cookie with that user's token ({st}, {hdrs.get('set-cookie')})")
st, _, _ = req(c, "/metrics", "alice", how="cookie")
check(st == 200, "the gos_token cookie names a user")
st, _, _ = req(c, "/metrics", "dave", how="cookie")
check(st == 403, "the cookie of a view user: /metrics 403")

# ---- viewers that stay, and one whose user goes
vd = viewer(c, "dave")
check(vd.status == 101 and read_until(vd, '"snapshot"'), "dave's viewer gets its snapshot")
vb = viewer(c, "bob")
check(vb.status == 101 and read_until(vb, '"snapshot"'), "bob's viewer gets its snapshot")
m = c.metrics({"Authorization": f"Bearer {TOK['alice']}"})
asked.append(("/metrics", "alice", 200))
check(m and metric(m, "gos_user_viewers", 'user="dave"') == 1 and
      metric(m, "gos_user_viewers", 'user="bob"') == 1, "one viewer each for dave and bob")
check(m and metric(m, "gos_user_forbidden_total", 'user="carol"') == 3,
      "carol's 403s counted (/export, /recording, /metrics)")
check(m and metric(m, "gos_user_requests_total", 'user="anonymous"') == 5,
      "the token file's user counted as anonymous")
check(m and (metric(m, "gos_ws_refused_total", 'reason="role"') or 0) >= 5,
      "403s counted as refused, reason role")

# ---- a reload with a bad line changes nothing
write_users(f"alice {TOK['alice']} admin\nerin {TOK['erin']} view\n"
            f"carol {TOK['carol']} view rate=0\n")
c.proc.send_signal(signal.SIGHUP)
deadline = time.monotonic() + 10
while time.monotonic() < deadline and "line 3" not in c.stderr():
    time.sleep(0.05)
err = [ln for ln in c.stderr().splitlines() if "SIGHUP" in ln]
check(err and f"--users-file {USERS} line 3:" in err[-1] and "nothing changed" in err[-1],
      f"a bad reload names line 3 and changes nothing ({err})")
st, _, _ = req(c, "/metrics", "alice")
check(st == 200, "alice still in after the bad reload")
st, _, _ = req(c, "/", "bob")
check(st == 200, "bob still in after the bad reload")
st, _, _ = req(c, "/", "erin")
check(st == 401, "erin, on the refused file, not in")

# ---- a reload adds erin, removes bob; dave's viewer stays
write_users(f"alice {TOK['alice']} admin\ncarol {TOK['carol']} view rate=2 burst=2\n"
            f"dave {TOK['dave']} view\nerin {TOK['erin']} export\n")
c.proc.send_signal(signal.SIGHUP)
deadline = time.monotonic() + 10
st = 0
while time.monotonic() < deadline and st != 200:
    st, _, _ = req(c, "/export?format=jsonl", "erin")
    time.sleep(0.05) if st != 200 else None
check(st == 200, "erin (export) in after the reload")
# the line may follow the swap a moment later (the main thread logs it)
deadline = time.monotonic() + 5
while time.monotonic() < deadline and "SIGHUP: users file read again: 4 users" not in c.stderr():
    time.sleep(0.05)
check("SIGHUP: users file read again: 4 users" in c.stderr(), "the reload is logged")
st, _, _ = req(c, "/", "bob")
check(st == 401, "bob out after the reload")
gone = read_until(vb, "never comes", timeout=10)
check(not gone and vb.closed and vb.closed[0] == 1008 and "user removed" in vb.closed[1],
      f"bob's viewer closed 1008 'user removed' ({vb.closed})")
vb.close()
viewer_gone(vb)
c.feed([token_line(100 + i) for i in range(5)])
check(read_until(vd, '"t104"'), "dave's viewer stayed connected and gets new deltas")

# ---- rate=2 burst=2 for all of carol's viewers together
vc1, vc2 = viewer(c, "carol"), viewer(c, "carol")
check(vc1.status == 101 and vc2.status == 101, "two viewers for carol")
for i in range(6):
    (vc1 if i % 2 else vc2).send(json.dumps({"type": "ping", "t": i}))
pongs = errors = 0
deadline = time.monotonic() + 5
for v in (vc1, vc2):
    v.s.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            msg = v.recv()
        except (TimeoutError, OSError):
            break
        if msg is None:
            break
        t = json.loads(msg).get("type")
        if t == "pong":
            pongs += 1
        elif t == "error" and json.loads(msg).get("code") == "rate_limited":
            errors += 1
check(pongs <= 3, f"at most burst (+ what refills) of carol's pings answered: {pongs}")
check(errors >= 1, f"carol's viewers told they are over the rate: {errors}")
m = c.metrics({"Authorization": f"Bearer {TOK['alice']}"})
asked.append(("/metrics", "alice", 200))
limited = metric(m, "gos_user_rate_limited_total", 'user="carol"') if m else None
check(limited is not None and limited >= 3, f"carol's limited messages counted: {limited}")
check(m and metric(m, "gos_user_inbound_messages_total", 'user="carol"') == 6,
      "carol's six messages counted")
check(m and metric(m, "gos_user_rate_limited_total", 'user="dave"') == 0, "dave: none limited")
check(m and metric(m, "gos_user_viewers", 'user="carol"') == 2 and
      metric(m, "gos_user_viewers", 'user="bob"') == 0, "viewers by user after the reload")
check(m and (metric(m, "gos_user_sent_bytes_total", 'user="dave"') or 0) > 0,
      "bytes sent to dave's viewer counted")
for v in (vc1, vc2, vd):
    v.close()
    viewer_gone(v)

# ---- rotation: SIGHUP reopens the access log
time.sleep(0.5)  # the closes above reach the server
os.rename(ALOG, ALOG + ".1")
c.proc.send_signal(signal.SIGHUP)
deadline = time.monotonic() + 10
while time.monotonic() < deadline and not os.path.exists(ALOG):
    time.sleep(0.05)
# the server takes the new file at its next wake-up: soon, not at once
while time.monotonic() < deadline and os.path.getsize(ALOG) == 0:
    req(c, "/health")
    time.sleep(0.05)
check(os.path.getsize(ALOG) > 0, "after SIGHUP requests go to the new access log")

# ---- the access log: one line per request and per viewer session
rc = c.stop()
check(rc == 0, f"clean exit ({rc})")
raw = []
for name in (ALOG + ".1", ALOG):
    with open(name) as f:
        raw += f.read().splitlines()
logged = []
bad = 0
for ln in raw:
    try:
        e = json.loads(ln)
    except ValueError:
        bad += 1
        continue
    if not all(k in e for k in ("time", "user", "address", "path", "status", "bytes",
                                "duration_ms")) or \
            not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]) or \
            e["address"] != "127.0.0.1":
        bad += 1
    logged.append((e.get("path"), e.get("user"), e.get("status")))
check(bad == 0, f"every access-log line is JSON with time, user, address, path, status, "
      f"bytes, duration_ms ({bad} not)")
want, got = collections.Counter(asked), collections.Counter(logged)
check(want == got, f"one access-log line per request: missing {want - got}, extra {got - want}")
sessions = [json.loads(ln) for ln in raw if '"session"' in ln]
check(sessions and all(s["path"] == "/ws" and s["status"] == 101 and "bytes_in" in s
                       for s in sessions), "viewer sessions: /ws, 101, session, bytes_in")
dave = [s for s in sessions if s["user"] == "dave" and s["bytes"] > 1000]
check(dave, "dave's session line counts the bytes it was sent")
check(any(s["user"] == "bob" and s.get("close") == 1008 for s in sessions),
      "bob's session ended with close 1008")
check(not any(t in "\n".join(raw) for t in TOK.values()), "no token in the access log")

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("ws_users"))
