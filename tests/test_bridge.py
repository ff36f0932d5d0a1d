#!/usr/bin/python3
"""gos-bridge end to end, as a user runs it: a real gos-compositor (headless),
the fake OpenAI-compatible server (tests/support/fake_openai.py), and gos-bridge in
between. Every scenario checks the exit code, the one-sentence error, what
the server was asked (its /stats), the lines the bridge wrote (recorded by a
pass-through proxy in front of the compositor's socket) and what the
compositor holds afterwards (its sync barrier's token count).

usage: test_bridge.py GOS_COMPOSITOR GOS_BRIDGE"""
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

COMPOSITOR, BRIDGE = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, os.path.join(HERE, "support"))
from gos_check import check, failures, report  # noqa: E402
from fake_openai import WORDS, logprob  # noqa: E402  (the server's own token table)
import gos_proc  # noqa: E402
from gos_proc import sync  # noqa: E402
from bridge_rig import Proxy, Fake, run_bridge  # noqa: E402


# ---- the pieces ----

def start_compositor(sock):
    # It renders offscreen (lavapipe here): validation on, and any error
    # makes it exit 1 at shutdown, which stop_compositor checks.
    p = gos_proc.start_compositor(COMPOSITOR, sock, validation=True, stdout=subprocess.DEVNULL)
    if p.poll() is not None:
        raise RuntimeError("gos-compositor did not start: " + p.stderr.read())
    return p


def stop_compositor(p):
    rc, err = gos_proc.stop_compositor(p)
    check(rc == 0, f"gos-compositor shut down cleanly (rc={rc}): {err.strip()[-300:]}")
    return rc


tmp = tempfile.mkdtemp(prefix="gos-bridge-")
csock = os.path.join(tmp, "gos.sock")
psock = os.path.join(tmp, "proxy.sock")
comp = start_compositor(csock)
proxy = Proxy(psock, csock)
fake = Fake()


def bridge(*args, env=None, stdin=None, timeout=60, sock=None):
    """Runs gos-bridge through the proxy (bridge_rig.run_bridge)."""
    return run_bridge(BRIDGE, proxy, [fake], sock or psock, *args, env=env, stdin=stdin, timeout=timeout)


def tokens_on_map():
    return sync(csock)["tokens"]


def words(n, start=0):
    return [WORDS[i % len(WORDS)] for i in range(start, start + n)]


# ---- command line ----

r = subprocess.run([BRIDGE, "--help"], capture_output=True, text=True)
check(r.returncode == 0 and "--parallel" in r.stdout and "exit codes" in r.stdout, "--help: exit 0, flags, exit codes")
r = subprocess.run([BRIDGE, "--version"], capture_output=True, text=True)
check(r.returncode == 0 and r.stdout.startswith("gos-bridge "), "--version")
r = subprocess.run([BRIDGE], capture_output=True, text=True)
check(r.returncode == 2 and "--url" in r.stderr, f"no --url nor --sse: exit 2 ({r.stderr.strip()})")
r = subprocess.run([BRIDGE, "--url", "localhost:1234"], capture_output=True, text=True)
check(r.returncode == 2 and "http://" in r.stderr, "--url without a scheme: exit 2")
r = subprocess.run([BRIDGE, "--url", fake.url("ok"), "--sse", fake.base + "/x/events"], capture_output=True, text=True)
check(r.returncode == 2 and "both" in r.stderr, "--url and --sse: exit 2")
r = subprocess.run([BRIDGE, "--url", fake.url("ok"), "--top-logprobs", "50", "--prompt", "x"],
                   capture_output=True, text=True)
check(r.returncode == 2 and "--top-logprobs" in r.stderr, "--top-logprobs 50: exit 2")
r = subprocess.run([BRIDGE, "--url", fake.url("ok"), "--prompt", ""], capture_output=True, text=True)
check(r.returncode == 2 and "prompt is empty" in r.stderr, "empty prompt: exit 2")
r = subprocess.run([BRIDGE, "--url", fake.url("ok"), "--prompt", "x", "--socket", os.path.join(tmp, "none.sock")],
                   capture_output=True, text=True)
check(r.returncode == 3 and "cannot connect to the compositor" in r.stderr,
      f"no compositor: exit 3 ({r.stderr.strip()})")

# ---- a generation with logprobs, end to end ----

before = tokens_on_map()
r = bridge("--url", fake.url("ok"), "--model", "m1", "--prompt", "Say hi", "--system", "Be brief",
           "--temperature", "0.5", env={"OPENAI_API_KEY": "sk-test"})
check(r.rc == 0, f"ok: exit 0 (rc={r.rc}, {r.err.strip()})")
check(tokens_on_map() == before + 20, "ok: the compositor holds 20 more tokens right after exit")
q = r.reqs[0] if r.reqs else {}
check(len(r.reqs) == 1 and q.get("stream") is True and q.get("logprobs") is True and q.get("top_logprobs") == 5
      and q.get("model") == "m1" and q.get("temperature") == 0.5
      and q.get("stream_options") == {"include_usage": True}, f"ok: the request asks for a stream with logprobs: {q}")
check(q.get("messages") == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Say hi"}],
      f"ok: system and user messages: {q.get('messages')}")
check(q.get("authorization") == "Bearer sk-test", "ok: OPENAI_API_KEY becomes a bearer token")
check([t["token_text"] for t in r.tokens] == words(20), "ok: the tokens are the server's, in order")
streams = {t.get("stream") for t in r.tokens}
check(len(streams) == 1 and next(iter(streams)).startswith("m1:"), f"ok: one stream named after the model: {streams}")
s = next(iter(streams))
check([t["token_id"] for t in r.tokens] == [f"{s}/{i}" for i in range(20)], "ok: token ids unique per stream")
check(all(abs(t["confidence"] - math.exp(logprob(i))) < 1e-5 and abs(t["logprob"] - logprob(i)) < 1e-5
          for i, t in enumerate(r.tokens)), "ok: confidence = exp(logprob)")
check(all(len(t.get("top_logprobs", [])) == 5 and t["top_logprobs"][0]["token"] == t["token_text"]
          for t in r.tokens), "ok: 5 alternatives per token, the chosen one first")
check(all("position" not in t for t in r.tokens), "ok: the compositor lays the tokens out")
check(len(r.states) >= 2 and r.states[0]["state"] == "processing" and r.states[-1]["state"] == "done",
      f"ok: neural_state processing ... done: {[x['state'] for x in r.states]}")
d = r.states[-1] if r.states else {}
check(d.get("tokens_processed") == 20 and d.get("total_tokens") == 20 and d.get("stream") == s
      and d.get("elapsed_ms", -1) >= 0 and 0 <= d.get("ttft_ms", -1) <= d.get("elapsed_ms", -1),
      f"ok: done carries counts, elapsed_ms and ttft_ms: {d}")
check(d.get("finish_reason") == "stop" and d.get("model") == "m1",
      f"ok: done carries the finish reason and the model: {d}")
check("20 tokens" in r.err and "rejected 0" in r.err, f"ok: one-line summary: {r.err.strip()}")

# the compositor accepted every line as it is (no rejects), checked on its own connection
check(all(l.get("type") != "error" for l in r.lines), "ok: nothing the bridge wrote was rejected")

# --max-tokens is asked for and is the progress total; stdin is the prompt; --echo
# a model named by its file path: the stream takes its short name
r = bridge("--url", fake.url("ok,n=3"), "--model", "/models/sub dir/tiny-q4.gguf", "--prompt", "x")
streams = {t.get("stream") for t in r.tokens}
check(r.rc == 0 and len(streams) == 1 and next(iter(streams)).startswith("tiny-q4.gguf:"),
      f"a model path names the stream by its file name: {streams}")
r = bridge("--url", fake.url("ok"), "--model", "m", "--max-tokens", "7", "--echo", stdin="from stdin\n")
check(r.rc == 0 and len(r.tokens) == 7 and r.reqs and r.reqs[0]["max_tokens"] == 7,
      f"--max-tokens 7: 7 tokens (rc={r.rc})")
check(r.reqs and r.reqs[0]["messages"][-1]["content"] == "from stdin", "the prompt from stdin")
check(r.states and r.states[0].get("total_tokens") == 7, f"--max-tokens: processing total_tokens 7: {r.states[:1]}")
check(r.out == "".join(words(7)) + "\n", f"--echo prints the text: {r.out!r}")

# no --model: the first of GET /models
r = bridge("--url", fake.url("ok,n=3"), "--prompt", "x")
check(r.rc == 0 and r.reqs and r.reqs[0]["model"] == "fake-model" and "using model fake-model" in r.err,
      f"no --model: asks /models ({r.err.strip()})")

# --no-logprobs and --top-logprobs 0
r = bridge("--url", fake.url("ok,n=3"), "--model", "m", "--prompt", "x", "--no-logprobs")
check(r.rc == 0 and r.reqs and r.reqs[0]["logprobs"] is None and all("confidence" not in t for t in r.tokens),
      "--no-logprobs: not asked, no confidence")
r = bridge("--url", fake.url("ok,n=3"), "--model", "m", "--prompt", "x", "--top-logprobs", "0")
check(r.rc == 0 and r.reqs and r.reqs[0]["logprobs"] is True and r.reqs[0]["top_logprobs"] is None
      and all("confidence" in t and "top_logprobs" not in t for t in r.tokens), "--top-logprobs 0: confidence only")

# ---- servers without logprobs ----

r = bridge("--url", fake.url("nolp"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and len(r.tokens) == 20 and all("confidence" not in t for t in r.tokens),
      "server ignores logprobs: tokens without confidence (drawn neutral)")
check(r.err.count("sends no logprobs") == 1, f"...said once: {r.err.strip()}")

r = bridge("--url", fake.url("refuse-lp"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and len(r.tokens) == 20, f"server refuses logprobs: exit 0, 20 tokens (rc={r.rc})")
check([q["logprobs"] for q in r.reqs] == [True, None], f"...asked again without: {[q['logprobs'] for q in r.reqs]}")
check(r.err.count("refuses logprobs") == 1 and "not supported" in r.err, f"...said once, with why: {r.err.strip()}")

# ---- chunks: odd boundaries, CRLF, several tokens per chunk, malformed ----

r = bridge("--url", fake.url("ok,crlf=1"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and [t["token_text"] for t in r.tokens] == words(20), "CRLF line ends, odd splits")
r = bridge("--url", fake.url("multi"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and [t["token_text"] for t in r.tokens] == words(20)
      and all(abs(t["confidence"] - math.exp(logprob(i))) < 1e-5 for i, t in enumerate(r.tokens)),
      "several logprob entries per chunk: one token each, each its own confidence")
r = bridge("--url", fake.url("malformed"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and len(r.tokens) == 20, f"malformed chunks skipped, the stream goes on (rc={r.rc})")
check("6 malformed chunks" in r.err and "not valid JSON" in r.err, f"...counted and said: {r.err.strip()[-200:]}")
r = bridge("--url", fake.url("slow,n=4"), "--model", "m", "--prompt", "x", "--no-logprobs")
check(r.rc == 0 and [t["token_text"] for t in r.tokens] == words(4), f"a 1-3 byte trickle (rc={r.rc})")

# ---- failures ----

r = bridge("--url", fake.url("midstream-error,at=5"), "--model", "m", "--prompt", "x")
check(r.rc == 1 and len(r.tokens) == 5 and len(r.reqs) == 1, f"error mid-stream: exit 1, 5 tokens, no restart (rc={r.rc})")
check("the model crashed" in r.err, f"...with the server's message: {r.err.strip()}")
check(r.states and r.states[-1]["state"] == "error" and "crashed" in r.states[-1].get("message", "")
      and r.states[-1]["tokens_processed"] == 5, f"...neural_state error: {r.states[-1:]}")

r = bridge("--url", fake.url("drop,at=4"), "--model", "m", "--prompt", "x")
check(r.rc == 1 and len(r.tokens) == 4 and len(r.reqs) == 1, f"connection cut after 4 tokens: exit 1, not restarted (rc={r.rc})")
check(r.states and r.states[-1]["state"] == "error", "...neural_state error")

r = bridge("--url", fake.url("429,key=a,ra=1"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and len(r.tokens) == 20 and len(r.reqs) == 2, f"429 then success (rc={r.rc})")
check(r.secs >= 0.9 and "Retry-After" in r.err and "rate limited" in r.err, f"...waited Retry-After 1 s ({r.secs:.2f} s)")

r = bridge("--url", fake.url("500,key=b"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and len(r.tokens) == 20 and len(r.reqs) == 2 and "HTTP 500" in r.err, f"500 then success (rc={r.rc})")

r = bridge("--url", fake.url("500,key=c,fails=99"), "--model", "m", "--prompt", "x", "--max-retries", "2")
check(r.rc == 5 and len(r.reqs) == 3 and "gave up after 3 attempts" in r.err, f"500 for ever: exit 5 after 3 attempts ({r.err.strip()[-160:]})")
check(r.states and r.states[-1]["state"] == "error", "...neural_state error")

r = bridge("--url", fake.url("404"), "--model", "m", "--prompt", "x")
check(r.rc == 5 and len(r.reqs) == 1 and "HTTP 404: model 'nope' not found" in r.err, f"404: exit 5, no retry ({r.err.strip()})")
r = bridge("--url", fake.url("html"), "--model", "m", "--prompt", "x")
check(r.rc == 6 and "text/html" in r.err and "not an event stream" in r.err, f"text/html: exit 6 ({r.err.strip()})")
r = bridge("--url", fake.url("json"), "--model", "m", "--prompt", "x")
check(r.rc == 6 and "application/json" in r.err, "a JSON answer, not a stream: exit 6")

dead = socket.socket()
dead.bind(("127.0.0.1", 0))
dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}/v1"   # bound, not listening: refused
r = bridge("--url", dead_url, "--model", "m", "--prompt", "x", "--max-retries", "2")
check(r.rc == 4 and "cannot reach" in r.err and "gave up after 3 attempts" in r.err, f"unreachable: exit 4 ({r.err.strip()[-200:]})")
check(r.secs >= 0.7, f"...with backoff between attempts ({r.secs:.2f} s)")
r = bridge("--url", dead_url, "--url", fake.url("ok"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and len(r.tokens) == 20 and len(r.reqs) == 1, f"fail-over to the second --url (rc={r.rc})")

r = bridge("--url", fake.url("stall,at=3"), "--model", "m", "--prompt", "x", "--read-timeout", "1")
check(r.rc == 1 and len(r.tokens) == 3 and "sent nothing for 1.0 s" in r.err, f"stalled after 3 tokens: read timeout, exit 1 ({r.err.strip()[-200:]})")
r = bridge("--url", fake.url("stall,at=0"), "--model", "m", "--prompt", "x", "--read-timeout", "0.5", "--max-retries", "1")
check(r.rc == 4 and len(r.reqs) == 2 and len(r.tokens) == 0, f"stalled before any token: retried, then exit 4 (rc={r.rc})")

r = bridge("--url", fake.url("nodone"), "--model", "m", "--prompt", "x", "--read-timeout", "30")
check(r.rc == 0 and len(r.tokens) == 20 and r.secs < 10 and r.states[-1]["state"] == "done",
      f"finish_reason without [DONE]: done soon after, not at the read timeout (rc={r.rc}, {r.secs:.1f} s)")

# SIGINT during a generation: cancelled, delivered, exit 130
n_conns = len(proxy.conns)
p = subprocess.Popen([BRIDGE, "--socket", psock, "--url", fake.url("stall,at=2"), "--model", "m", "--prompt", "x"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
time.sleep(1.0)
p.send_signal(signal.SIGINT)
_, err = p.communicate(timeout=20)
time.sleep(0.05)
states = [l for l in proxy.lines(n_conns) if l.get("type") == "neural_state"]
check(p.returncode == 130 and states and states[-1]["state"] == "cancelled", f"SIGINT: exit 130, state cancelled ({err.strip()[-160:]})")

# ---- --parallel ----

before = tokens_on_map()
r = bridge("--url", fake.url("ok,n=30"), "--model", "par", "--prompt", "x", "--parallel", "4")
by = {}
for t in r.tokens:
    by.setdefault(t["stream"], []).append(t["token_text"])
check(r.rc == 0 and len(r.reqs) == 4 and len(by) == 4 and all(v == words(30) for v in by.values()),
      f"--parallel 4: 4 streams of 30 tokens (rc={r.rc}, {list(by)})")
check(tokens_on_map() == before + 120, "--parallel 4: 120 more tokens on the map")
done = [x for x in r.states if x["state"] == "done"]
check(len(done) == 4 and {x["stream"] for x in done} == set(by), "--parallel 4: each stream ends done")

# ---- --sse: any event stream, reconnecting with Last-Event-ID ----

before = tokens_on_map()
r = bridge("--sse", fake.base + "/s1,n=23,drop=6,retry=100/events")
check(r.rc == 0, f"--sse: exit 0 once the server says 204 (rc={r.rc}, {r.err.strip()[-200:]})")
check([q.get("last_event_id") for q in r.reqs] == [None, "6", "12", "18", "23"],
      f"--sse: reconnects with Last-Event-ID: {[q.get('last_event_id') for q in r.reqs]}")
texts = [t["token_text"] for t in r.tokens]
fwd = [t for t in r.tokens if t["token_id"].startswith("ev-")]
check(len(r.tokens) == 23 and len(fwd) == 4 and [t["token_id"] for t in fwd] == ["ev-5", "ev-10", "ev-15", "ev-20"],
      f"--sse: 19 text tokens and 4 ingest events passed on as they were ({len(r.tokens)})")
check("event 1 ✓" in texts and "line one of 7\nline two" in texts, "--sse: event data as token text, lines joined")
check(tokens_on_map() == before + 23, "--sse: 23 more tokens on the map")
check("reconnecting in 0.1 s with Last-Event-ID 6" in r.err, "--sse: the server's retry is used")

r = bridge("--sse", dead_url + "/events", "--max-retries", "2", "--reconnect", "0.2")
check(r.rc == 4 and "gave up" in r.err and 0.2 <= r.secs < 5,
      f"--sse unreachable: exit 4 after retries, backing off from --reconnect ({r.secs:.1f} s, {r.err.strip()[-160:]})")
r = bridge("--sse", fake.base + "/s2,n=50/events", "--max-events", "10")
check(r.rc == 0 and len(r.tokens) == 10, f"--max-events 10 (rc={r.rc}, {len(r.tokens)})")

# ---- the compositor goes away and comes back ----

n_conns = len(proxy.conns)
p = subprocess.Popen([BRIDGE, "--socket", psock, "--url", fake.url("ok,n=60,delay=0.05"), "--model", "away",
                      "--prompt", "x", "--no-logprobs"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
time.sleep(1.0)
stop_compositor(comp)
time.sleep(0.6)
comp = start_compositor(csock)
_, err = p.communicate(timeout=60)
time.sleep(0.05)
check(p.returncode == 0 and "lost the compositor" in err and "reconnected" in err,
      f"compositor restarted mid-generation: exit 0 ({err.strip()[-300:]})")
conns = [[json.loads(ln) for ln in bytes(rec).decode().splitlines()] for rec in proxy.conns[n_conns:]]
ids = [{l["token_id"] for l in c if l.get("type") == "token_activation"} for c in conns]
every = set().union(*ids) if ids else set()
check(len(conns) >= 2 and len(every) == 60, f"...every token was written ({len(every)} ids over {len(conns)} connections)")
new = set().union(*ids[1:]) if len(ids) > 1 else set()
check(tokens_on_map() == len(new) and any(i.endswith("/59") for i in new),
      f"...the new compositor holds what was sent to it, to the last token ({tokens_on_map()} vs {len(new)})")

# away too long for --buffer: the drop is said, exit 3
p = subprocess.Popen([BRIDGE, "--socket", psock, "--url", fake.url("ok,n=40,delay=0.05"), "--model", "drop",
                      "--prompt", "x", "--no-logprobs", "--buffer", "5", "--sync-timeout", "5"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
time.sleep(0.6)
stop_compositor(comp)
time.sleep(1.2)
comp = start_compositor(csock)
_, err = p.communicate(timeout=60)
check(p.returncode == 3 and "dropped" in err and "--buffer" in err, f"--buffer 5 overrun: dropped events said, exit 3 ({err.strip()[-300:]})")

stop_compositor(comp)
fake.stop()
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("test_bridge"))
