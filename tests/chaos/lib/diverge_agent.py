#!/usr/bin/env python3
"""Calls echo 1, echo 2 and dies in attempt 1; attempt 2 calls echo 1, echo 99."""
import os
import signal

import agentd

c = agentd.connect()
attempt = int(os.environ["AGENTD_ATTEMPT"])
c.call("agentd.echo", {"value": 1})
c.call("agentd.echo", {"value": 2 if attempt == 1 else 99})
if attempt == 1:
    os.kill(os.getpid(), signal.SIGKILL)
print("diverge agent finished")
