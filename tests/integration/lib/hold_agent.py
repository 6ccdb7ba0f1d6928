#!/usr/bin/env python3
"""Test agent: one http.request to URL (a hold_server.py /hold/NAME), printing
its status and body, then N agentd.echo calls; after each call, the messages
that came with its answer.

usage: hold_agent.py URL [N]
"""
import sys

import agentd

c = agentd.connect()
r = c.call("http.request", {"method": "GET", "url": sys.argv[1], "timeout_ms": 90000})
print(f"http: {r.get('status')} {r.get('body')}", flush=True)


def messages():
    for m in c.messages():
        print(f"msg: {m.get('text')} mode={m.get('mode')}", flush=True)


messages()
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 0):
    print(f"echo {i}: {c.call('agentd.echo', {'value': i})}", flush=True)
    messages()
