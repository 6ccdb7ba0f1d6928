#!/usr/bin/env python3
"""Test agent: N brokered side effects, optionally SIGKILLing itself.

usage: counter_agent.py URL TAG N OUTDIR [KILL_AT [DELAY_S]]
Makes calls 1..N alternating POST URL/effect/<TAG>-e<i> and fs.write OUTDIR/<i>.txt,
checkpointing nothing (it re-executes from the start against the journal).
In attempt 1, after call KILL_AT returns, it kills itself with SIGKILL.
At the end it writes OUTDIR/done.txt with the results it saw.
"""
import os
import signal
import sys
import time

import agentd

url, tag, n, outdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
kill_at = int(sys.argv[5]) if len(sys.argv) > 5 else 0
delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
attempt = int(os.environ.get("AGENTD_ATTEMPT", "1"))
c = agentd.connect()
seen = []
for i in range(1, n + 1):
    if i % 2:
        r = c.call("http.request", {"method": "POST", "url": f"{url}/effect/{tag}-e{i}", "body": "x"})
        seen.append(r["status"])
    else:
        r = c.call("fs.write", {"path": f"{outdir}/f{i}.txt", "content": f"call {i}\n"})
        seen.append(r["bytes"])
    if delay:
        time.sleep(delay)
    if i == kill_at and attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
c.call("fs.write", {"path": f"{outdir}/done.txt", "content": repr(seen) + "\n"})
print(f"counter agent finished {n} calls in attempt {attempt}")
