#!/usr/bin/env python3
"""Test agent: agentd.echo calls with a 16 KB value until one fails; prints
"ok N" for each result it received (N is the call's number, which is its
seq here), and "failed N: ERROR" (exit 1) if it outlives a failed call.

usage: fill_agent.py MAX
"""
import sys

import agentd

c = agentd.connect()
for i in range(1, int(sys.argv[1]) + 1):
    try:
        r = c.call("agentd.echo", {"value": str(i) * (16384 // len(str(i)))})
    except Exception as e:  # the supervisor failed the run: the channel closes
        print(f"failed {i}: {e!r}", flush=True)
        sys.exit(1)
    print(f"ok {i}", flush=True)
