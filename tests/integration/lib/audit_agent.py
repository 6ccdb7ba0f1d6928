#!/usr/bin/env python3
"""An allowed read, a denial by rule, a denial with no rule (printing the
suggested rule it was given), and an ask.

usage: audit_agent.py DATADIR
"""
import json
import sys

import agentd

data = sys.argv[1]
c = agentd.connect()
c.call("fs.read", {"path": f"{data}/ok.txt"})
for label, args in [("rule", {"path": f"{data}/hidden/x"}), ("none", {"path": f"{data}/../other.txt"})]:
    try:
        c.call("fs.read", args)
    except agentd.Denied as e:
        print(f"{label}: rule={e.rule} suggestion={json.dumps(e.data.get('suggestion'), sort_keys=True)}")
try:
    c.call("fs.write", {"path": f"{data}/w.txt", "content": "x"})
except agentd.Denied as e:
    print(f"ask: rule={e.rule}")
