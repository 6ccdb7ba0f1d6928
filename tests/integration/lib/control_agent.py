"""Agent for the cancel and pause tests.

control_agent.py URL TAG [stubborn]

POSTs effect TAG-1, TAG-2, ... every 0.1 s until a call is refused as
interrupted; prints "stopped reason=R" then and exits 0, or, when stubborn,
ignores it and sleeps (to be killed after the grace period).
"""
import sys
import time

import agentd

url, tag = sys.argv[1], sys.argv[2]
stubborn = "stubborn" in sys.argv[3:]
c = agentd.connect()
c.resume()
i = 0
while True:
    i += 1
    try:
        c.call("http.request", {"method": "POST", "url": f"{url}/effect/{tag}-{i}"})
    except agentd.Interrupted as e:
        print(f"stopped reason={(e.data or {}).get('reason')}", flush=True)
        if stubborn:
            time.sleep(120)
        sys.exit(0)
    print(f"did {i}", flush=True)
    time.sleep(0.1)
