#!/usr/bin/env python3
"""Exercises policy outcomes through the real broker; prints one line per check.

usage: policy_agent.py DATADIR URL
"""
import sys

import agentd

data, url = sys.argv[1], sys.argv[2]
c = agentd.connect()
names = sorted(t["name"] for t in c.list_tools())
print("tools:", ",".join(names))
print("read:", c.call("fs.read", {"path": f"{data}/hello.txt"})["content"].strip())
for label, tool, args in [
    ("shadow", "fs.read", {"path": "/etc/shadow"}),
    ("dotdot", "fs.read", {"path": f"{data}/../../../etc/shadow"}),
    ("nomatch", "http.request", {"method": "GET", "url": "http://evil.example/"}),
    ("ask", "http.request", {"method": "POST", "url": f"{url}/effect/asked", "body": "x"}),
]:
    try:
        r = c.call(tool, args)
        print(f"{label}: allowed status={r.get('status')}")
    except agentd.Denied as e:
        print(f"{label}: denied rule={e.rule} decision={e.decision}")
try:
    c.call("fs.read", {"path": f"{data}/missing.txt"})
except agentd.ToolError as e:
    print("missing:", e.code)
