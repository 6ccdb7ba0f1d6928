#!/usr/bin/env python3
"""Chaos test agent: N steps cycling through all three effect classes.

usage: chaos_agent.py URL TAG N OUTDIR
Step i (1..N) is, by i % 4:
  1  http.request POST URL/effect/<TAG>-e<i>       idempotent (Idempotency-Key)
  2  fs.write OUTDIR/log.txt "step <i>" append     effect (never rerun blindly)
  3  fs.read OUTDIR/log.txt                        pure (sees the appends so far)
  0  agentd.echo {"value": <digest so far> x 40}  idempotent (2.5 KB: its args
                                                   and result go to the store's
                                                   payload file)
Every 5 steps it checkpoints {"i", "digest"}; a restarted attempt resumes from
the newest state and the calls after it are replayed from the journal.
The digest covers only what a correct run must reproduce exactly (no tags,
times or headers); it is written to OUTDIR/result.txt and printed.
If a crash left the outcome of an append unknown the agent is told so
(UnknownOutcome); it records that in the digest and goes on.
"""
import hashlib
import json
import sys

import agentd

url, tag, n, outdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = agentd.connect()
res = c.resume(use_state=True)
state = res.get("state") or {"i": 0, "digest": ""}
i, digest = state["i"], state["digest"]


def mix(d, v):
    return hashlib.sha256((d + json.dumps(v, sort_keys=True)).encode()).hexdigest()


while i < n:
    i += 1
    k = i % 4
    if k == 1:
        r = c.call("http.request", {"method": "POST", "url": f"{url}/effect/{tag}-e{i}", "body": "x"})
        body = json.loads(r["body"])
        v = [r["status"], body["applied"]]
    elif k == 2:
        try:
            r = c.call("fs.write", {"path": f"{outdir}/log.txt", "content": f"step {i}\n", "append": True})
            v = r["bytes"]
        except agentd.UnknownOutcome:
            print(f"chaos agent: step {i} outcome unknown", flush=True)
            v = f"unknown {i}"
    elif k == 3:
        try:
            r = c.call("fs.read", {"path": f"{outdir}/log.txt"})
            v = r.get("content", r.get("content_base64"))
        except agentd.ToolError as e:
            v = e.code  # only after the first append's outcome was unknown
    else:
        v = c.call("agentd.echo", {"value": digest * 40})["value"]
    digest = mix(digest, [i, v])
    if i % 5 == 0:
        c.checkpoint({"i": i, "digest": digest})
c.call("fs.write", {"path": f"{outdir}/result.txt", "content": digest + "\n"})
print(f"chaos agent: done {digest}", flush=True)
