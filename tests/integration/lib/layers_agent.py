#!/usr/bin/env python3
"""Reads each PATH through fs.read and prints how it ended; first the tools it
sees and the policy lines of fs.read's description.

usage: layers_agent.py PATH...
"""
import sys

import agentd

c = agentd.connect()
tools = {t["name"]: t for t in c.list_tools()}
print("tools:", ",".join(sorted(tools)))
for line in tools.get("fs.read", {}).get("description", "").splitlines():
    if line.startswith("- "):
        print("constraint:", line[2:])
for p in sys.argv[1:]:
    try:
        r = c.call("fs.read", {"path": p})
        print(f"read {p}: ok {r['content'].strip()}")
    except agentd.Denied as e:
        print(f"read {p}: denied rule={e.rule} reason={e.reason}")
