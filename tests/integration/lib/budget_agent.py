#!/usr/bin/env python3
"""Calls agentd.echo N times, printing how each call ended; on its first attempt
it waits after call PAUSE (0: never) so the test can kill the supervisor.

usage: budget_agent.py N PAUSE
"""
import os
import sys
import time

import agentd

n, pause = int(sys.argv[1]), int(sys.argv[2])
attempt = int(os.environ.get("AGENTD_ATTEMPT", "1"))
c = agentd.connect()
for i in range(1, n + 1):
    try:
        c.call("agentd.echo", {"value": i})
        print(f"call {i}: ok", flush=True)
    except agentd.LimitReached as e:
        print(f"call {i}: limit {e.data.get('limit')} rule={e.data.get('rule')} code={e.code}",
              flush=True)
    except agentd.Denied as e:
        print(f"call {i}: denied rule={e.rule} decision={e.decision}", flush=True)
    if i == pause and attempt == 1:
        print("waiting", flush=True)
        time.sleep(120)
