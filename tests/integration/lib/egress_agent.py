#!/usr/bin/env python3
"""Tries http.request against local and metadata addresses; one line per try.

usage: egress_agent.py PORT
"""
import sys

import agentd

port = sys.argv[1]
c = agentd.connect()
for label, method, url in [
    ("named", "POST", f"http://127.0.0.1:{port}/effect/egress"),
    ("unnamed-ip", "GET", f"http://127.0.0.1:{port}/"),
    ("name-to-loopback", "GET", f"http://localhost:{port}/"),
    ("short-form", "GET", f"http://127.1:{port}/"),
    ("metadata", "GET", "http://169.254.169.254/latest/meta-data/"),
]:
    try:
        r = c.call("http.request", {"method": method, "url": url, "body": "x"}
                   if method == "POST" else {"method": method, "url": url, "timeout_ms": 2000})
        print(f"{label}: status {r['status']}")
    except agentd.ToolError as e:
        print(f"{label}: {e.code}")
    except agentd.Denied as e:
        print(f"{label}: denied {e.rule}")
