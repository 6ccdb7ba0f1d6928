#!/usr/bin/env python3
"""Test agent: N agentd.echo calls (idempotent: an intent and an outcome
row each), printing each result. With GO_FILE, after the first call it waits
until that file exists, then makes the others back to back.

usage: echo_agent.py N [GO_FILE]
"""
import os
import sys
import time

import agentd

n = int(sys.argv[1])
go = sys.argv[2] if len(sys.argv) > 2 else None
c = agentd.connect()
for i in range(1, n + 1):
    r = c.call("agentd.echo", {"value": i})
    print(f"call {i}: {r}", flush=True)
    while i == 1 and go and not os.path.exists(go):
        time.sleep(0.01)
