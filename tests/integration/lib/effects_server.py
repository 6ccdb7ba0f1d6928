#!/usr/bin/env python3
"""A local HTTP service that counts side effects, for exactly-once tests.

POST /effect/<name>  applies effect <name> once per Idempotency-Key (a repeated
                     key returns the first response and applies nothing);
                     without a key every request applies.
GET  /_counts        {"requests": {name: n}, "applied": {name: n}}
POST /_hold/<name>   the next request for <name> is applied, then its reply
                     is held until POST /_release (to crash a client mid-call)
Usage: effects_server.py PORTFILE   (binds 127.0.0.1 on a free port)
"""
import http.server
import json
import sys
import threading

lock = threading.Lock()
requests, applied, seen = {}, {}, {}
held, release = set(), threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_counts":
            with lock:
                self.reply(200, {"requests": requests, "applied": applied})
        else:
            self.reply(200, {"path": self.path})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/_hold/"):
            held.add(self.path[len("/_hold/"):])
            release.clear()
            self.reply(200, {})
            return
        if self.path == "/_release":
            release.set()
            self.reply(200, {})
            return
        if not self.path.startswith("/effect/"):
            self.reply(404, {"error": "no such endpoint"})
            return
        name = self.path[len("/effect/"):]
        hold = False
        key = self.headers.get("Idempotency-Key")
        with lock:
            requests[name] = requests.get(name, 0) + 1
            if key and key in seen:
                self.reply(200, seen[key])
                return
            applied[name] = applied.get(name, 0) + 1
            resp = {"effect": name, "applied": applied[name]}
            if key:
                seen[key] = resp
            if name in held:
                held.discard(name)
                hold = True
        if hold:
            release.wait(30)
        self.reply(200, resp)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
