#!/usr/bin/env python3
"""Uses a secret through http.request without ever holding it; prints one line per check.

usage: secret_agent.py URL
"""
import json
import os
import sys

import agentd

url = sys.argv[1]
c = agentd.connect()
r = c.call("http.request", {"method": "GET", "url": url + "/check",
                            "headers": {"Authorization": {"secret": "api"}}})
print("named:", r["status"], r["body"].strip())
r = c.call("http.request", {"method": "GET", "url": url + "/check"})
print("bound:", r["status"])
r = c.call("http.request", {"method": "GET", "url": url + "/echo",
                            "headers": {"Authorization": {"secret": "api"}}})
print("echo-body:", r["body"].strip())
print("echo-header:", r["headers"].get("x-echo"))
for label, hdr, name in [("other-host", "Authorization", "elsewhere"),
                         ("other-header", "X-Leak", "api"),
                         ("unknown", "Authorization", "nope")]:
    try:
        c.call("http.request", {"method": "GET", "url": url + "/echo",
                                "headers": {hdr: {"secret": name}}})
        print(label + ": sent")
    except agentd.ToolError as e:
        print(label + ":", e.code)
print("env:", ",".join(sorted(k for k in os.environ if "SECRET" in k)) or "none")
print("view:", json.dumps(r))
