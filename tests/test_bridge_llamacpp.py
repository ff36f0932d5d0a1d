#!/usr/bin/python3
"""gos-bridge against what real servers send: every captured llama.cpp
response (tests/data/llamacpp/, served byte for byte by the fake server),
the error forms an event stream can carry (an "error:" field line, an
"event: error", data: {"error": ...}) mid-stream and before the first token,
HTTP statuses that must or must not be retried (chat and --sse), and
--completions. Each case checks the exit code, the requests the server got,
and what reached a real headless gos-compositor.

usage: test_bridge_llamacpp.py GOS_COMPOSITOR GOS_BRIDGE"""
import json
import math
import os
import shutil
import subprocess
import sys

COMPOSITOR, BRIDGE = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "data", "llamacpp")

sys.path.insert(0, os.path.join(HERE, "support"))
from gos_check import check, report  # noqa: E402
from fake_openai import WORDS  # noqa: E402
import gos_proc  # noqa: E402
from gos_proc import sync  # noqa: E402
from bridge_rig import Fake, Rig, run_bridge  # noqa: E402

rig = Rig(COMPOSITOR, "gos-bridge-lc-")
tmp, csock, psock, comp, proxy = rig.tmp, rig.csock, rig.psock, rig.comp, rig.proxy
fake = Fake()


def bridge(*args, **kw):
    return run_bridge(BRIDGE, proxy, [fake], psock, *args, **kw)


def content_chunks(name):
    """(text, logprob entry or None) of each chunk of a captured stream that
    carries text, in order, read straight from the file."""
    out = []
    with open(os.path.join(FIX, name), "rb") as f:
        for ln in f.read().split(b"\n"):
            if not ln.startswith(b"data: ") or ln.strip() == b"data: [DONE]":
                continue
            o = json.loads(ln[6:])
            for c in o.get("choices") or []:
                text = c["delta"].get("content") if "delta" in c else c.get("text")
                if c.get("index", 0) == 0 and text:
                    ents = (c.get("logprobs") or {}).get("content")
                    out.append((text, ents[0] if ents else None))
    return out


def finish_of(name):
    with open(os.path.join(FIX, name), "rb") as f:
        for ln in f.read().split(b"\n"):
            if ln.startswith(b"data: {"):
                for c in json.loads(ln[6:]).get("choices") or []:
                    if c.get("finish_reason"):
                        return c["finish_reason"]
    return None


# ---- every captured stream, byte for byte ----

for name, extra in [("llamacpp-b4750-chat-logprobs.sse", ["--top-logprobs", "3"]),
                    ("llamacpp-b4750-chat-logprobs-200.sse", ["--top-logprobs", "5"]),
                    ("llamacpp-b4750-chat-nologprobs.sse", ["--no-logprobs"]),
                    ("llamacpp-b4750-completions-logprobs.sse", ["--completions", "--top-logprobs", "3"])]:
    want = content_chunks(name)
    before = sync(csock)["tokens"]
    r = bridge("--url", fake.url("fixture,f=" + name), "--model", "models/tiny.gguf", "--prompt", "raw text",
               *extra)
    check(r.rc == 0 and len(r.reqs) == 1, f"{name}: exit 0, one request (rc={r.rc}, {r.err.strip()[-200:]})")
    check(len(r.tokens) == len(want) and [t["token_text"] for t in r.tokens] == [w[0] for w in want],
          f"{name}: one token per content chunk, the server's text ({len(r.tokens)} vs {len(want)})")
    check(sync(csock)["tokens"] == before + len(want), f"{name}: the compositor holds them")
    if want[0][1] is not None:
        ok = all(abs(t["confidence"] - math.exp(e["logprob"])) <= 1e-6 * max(1.0, math.exp(e["logprob"]))
                 and abs(t["logprob"] - e["logprob"]) < 1e-4
                 for t, (_, e) in zip(r.tokens, want))
        check(ok, f"{name}: confidence = exp(logprob) of each entry")
        check(all([a["token"] for a in t.get("top_logprobs", [])] == [a["token"] for a in e["top_logprobs"]]
                  for t, (_, e) in zip(r.tokens, want)), f"{name}: the alternatives, in the server's order")
    else:
        check(all("confidence" not in t for t in r.tokens), f"{name}: no logprobs, no confidence")
    d = r.states[-1] if r.states else {}
    check(d.get("state") == "done" and d.get("finish_reason") == finish_of(name)
          and d.get("tokens_processed") == len(want) and d.get("stream", "").startswith("tiny.gguf:"),
          f"{name}: done, finish reason {finish_of(name)}, stream named by the model's short name: {d}")
    q = r.reqs[0] if r.reqs else {}
    if "--completions" in extra:
        check(q.get("endpoint") == "completions" and q.get("prompt") == "raw text" and q.get("messages") is None
              and q.get("logprobs") == 3, f"{name}: POST /completions with the raw prompt, logprobs 3: {q}")

# ---- the 2025 error form: HTTP 200, an "error:" line, data: [DONE] ----

r = bridge("--url", fake.url("fixture,f=llamacpp-b4750-noshift-prompt-too-long.http"), "--model", "tiny",
           "--prompt", "x")
check(r.rc == 5 and len(r.reqs) == 1 and not r.tokens,
      f"error: field before the first token (invalid request): exit 5, not retried (rc={r.rc}, {len(r.reqs)} requests)")
check("exceeds the available context size" in r.err, f"...the server's message: {r.err.strip()[-200:]}")
check(r.states and r.states[-1]["state"] == "error" and "context size" in r.states[-1].get("message", ""),
      f"...neural_state error with the message: {r.states[-1:]}")

# HTTP 500 whose body says the request is invalid: not retried
r = bridge("--url", fake.url("fixture,f=llamacpp-b4750-error-top_logprobs-without-logprobs.http"), "--model", "tiny",
           "--prompt", "x")
check(r.rc == 5 and len(r.reqs) == 1 and "top_logprobs requires logprobs" in r.err and "not retried" in r.err,
      f"500 for an invalid request: exit 5, one request ({len(r.reqs)}), the message: {r.err.strip()[-200:]}")

# ---- error forms mid-stream: the generation fails, exit 1 ----

for form in ("errfield", "errevent", "errdata"):
    r = bridge("--url", fake.url(f"{form},at=5,msg=out%20of%20memory"), "--model", "m", "--prompt", "x")
    check(r.rc == 1 and len(r.tokens) == 5 and len(r.reqs) == 1,
          f"{form} mid-stream: exit 1 after 5 tokens, not restarted (rc={r.rc}, {len(r.tokens)}, {len(r.reqs)})")
    check("out of memory" in r.err and r.states and r.states[-1]["state"] == "error"
          and "out of memory" in r.states[-1].get("message", ""),
          f"{form} mid-stream: the server's message on stderr and in neural_state: {r.states[-1:]}")

# ---- before the first token: transient errors are retried, others are not ----

for i, form in enumerate(("errfield", "errevent", "errdata")):
    r = bridge("--url", fake.url(f"{form},at=0,code=503,msg=Loading%20model,fails=2,key=t{i}"), "--model", "m",
               "--prompt", "x")
    check(r.rc == 0 and len(r.reqs) == 3 and len(r.tokens) == 20,
          f"{form} 503 'Loading model' before the first token: retried, then 20 tokens (rc={r.rc}, {len(r.reqs)} requests)")
    r = bridge("--url", fake.url(f"{form},at=0,code=400,msg=bad%20grammar,key=p{i}"), "--model", "m", "--prompt", "x")
    check(r.rc == 5 and len(r.reqs) == 1 and "bad grammar" in r.err,
          f"{form} 400 before the first token: exit 5, one request (rc={r.rc}, {len(r.reqs)})")
r = bridge("--url", fake.url("errdata,at=0,code=0,msg=server%20busy,fails=1,key=busy"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and len(r.reqs) == 2, f"'server busy' without a code: retried (rc={r.rc}, {len(r.reqs)})")

# ---- chat: HTTP statuses ----

r = bridge("--url", fake.url("status,code=400,msg=bad%20request"), "--model", "m", "--prompt", "x")
check(r.rc == 5 and len(r.reqs) == 1 and "HTTP 400: bad request" in r.err, f"400: exit 5, not retried ({r.err.strip()[-160:]})")
r = bridge("--url", fake.url("status,code=408,fails=1,key=c408"), "--model", "m", "--prompt", "x")
check(r.rc == 0 and len(r.reqs) == 2, f"408: retried (rc={r.rc}, {len(r.reqs)})")
r = bridge("--url", fake.url("status,code=503,key=c503"), "--model", "m", "--prompt", "x", "--max-retries", "2")
check(r.rc == 5 and len(r.reqs) == 3 and "gave up after 3 attempts" in r.err,
      f"503 for ever, --max-retries 2: exit 5 after 3 requests ({len(r.reqs)})")
r = bridge("--url", fake.url("status,code=500,type=invalid_request_error,msg=bad%20param,key=c500"), "--model", "m",
           "--prompt", "x")
check(r.rc == 5 and len(r.reqs) == 1, f"500 invalid_request_error: exit 5, not retried ({len(r.reqs)})")

# ---- --sse: 204 ends it, 4xx is not retried, transient 5xx is ----

sse = fake.base + "/{}/events"
r = bridge("--sse", sse.format("status,code=204,key=s204"), "--reconnect", "0.05", timeout=20)
check(r.rc == 0 and len(r.reqs) == 1 and "204 No Content" in r.err,
      f"--sse 204 (text/event-stream): ends, exit 0, one request (rc={r.rc}, {len(r.reqs)} requests)")
for code in (400, 403, 404):
    r = bridge("--sse", sse.format(f"status,code={code},key=s{code}"), "--reconnect", "0.05", timeout=20)
    check(r.rc == 5 and len(r.reqs) == 1 and f"status {code} (fake)" in r.err,
          f"--sse {code}: exit 5, not retried, the server's message ({len(r.reqs)}, {r.err.strip()[-120:]})")
r = bridge("--sse", sse.format("status,code=408,fails=1,n=3,key=s408"), "--reconnect", "0.05", timeout=20)
check(r.rc == 0 and len(r.reqs) == 3 and len(r.tokens) == 3,
      f"--sse 408 once: retried, 3 events, then 204 (rc={r.rc}, {len(r.reqs)} requests)")
r = bridge("--sse", sse.format("status,code=503,fails=2,n=3,key=s503"), "--reconnect", "0.05", timeout=20)
check(r.rc == 0 and len(r.reqs) == 4 and len(r.tokens) == 3,
      f"--sse 503 twice: retried with backoff, 3 events, then 204 (rc={r.rc}, {len(r.reqs)} requests)")
r = bridge("--sse", sse.format("status,code=502,key=s502"), "--reconnect", "0.05", "--max-retries", "2", timeout=30)
check(r.rc == 5 and len(r.reqs) == 3 and "gave up" in r.err,
      f"--sse 502 for ever, --max-retries 2: exit 5 after 3 requests ({len(r.reqs)})")
r = bridge("--sse", sse.format("fixture,f=llamacpp-b4750-error-top_logprobs-without-logprobs.http"),
           "--reconnect", "0.05", timeout=20)
check(r.rc == 5 and len(r.reqs) == 1 and "top_logprobs requires logprobs" in r.err and "not retried" in r.err,
      f"--sse invalid-request 500: exit 5, one request ({len(r.reqs)}, {r.err.strip()[-160:]})")

# ---- --completions against the fake (the legacy logprobs arrays) ----

r = bridge("--url", fake.url("ok,n=6"), "--completions", "--model", "base", "--prompt", "Once upon", "--seed", "7")
q = r.reqs[0] if r.reqs else {}
check(r.rc == 0 and [t["token_text"] for t in r.tokens] == WORDS[:6] and q.get("endpoint") == "completions"
      and q.get("prompt") == "Once upon" and q.get("seed") == 7 and q.get("logprobs") == 5,
      f"--completions: POST /completions, raw prompt, seed, legacy logprobs (rc={r.rc}, {q})")
check(all(len(t.get("top_logprobs", [])) == 5 and "confidence" in t for t in r.tokens),
      "--completions: confidence and 5 alternatives from token_logprobs / top_logprobs")
r = bridge("--url", fake.url("ok,n=3"), "--completions", "--model", "base", "--prompt", "x", "--top-logprobs", "0")
check(r.rc == 0 and all("confidence" in t and "top_logprobs" not in t for t in r.tokens),
      "--completions --top-logprobs 0: confidence only")
p = subprocess.run([BRIDGE, "--url", fake.url("ok"), "--completions", "--system", "s", "--prompt", "x"],
                   capture_output=True, text=True)
check(p.returncode == 2 and "--system" in p.stderr, "--completions with --system: exit 2")

rc, err = gos_proc.stop_compositor(comp)
check(rc == 0, f"gos-compositor shut down cleanly (rc={rc}): {err.strip()[-300:]}")
fake.stop()
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(report("test_bridge_llamacpp"))
