#!/usr/bin/env python3
"""A local HTTP service that checks a bearer secret, for secret-injection tests.

GET /check   200 {"ok": true} when Authorization is "Bearer <SECRET>", else 401
GET /echo    200, echoes the Authorization it got in the body and in X-Echo
Usage: secret_server.py PORTFILE SECRET   (binds 127.0.0.1 on a free port)
"""
import http.server
import json
import sys

secret = sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        auth = self.headers.get("Authorization") or ""
        if self.path == "/check":
            ok = auth == "Bearer " + secret
            self.reply(200 if ok else 401, {"ok": ok})
        elif self.path == "/echo":
            self.reply(200, {"authorization": auth}, {"X-Echo": auth})
        else:
            self.reply(404, {})


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os

os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
