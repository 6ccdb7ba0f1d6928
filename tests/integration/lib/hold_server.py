#!/usr/bin/env python3
"""Test HTTP server that holds requests: GET /hold/NAME writes DIR/NAME.started,
waits until DIR/release-NAME exists (at most 60 s), answers 200 "held NAME"
and writes DIR/NAME.done; every request of NAME is counted in DIR/NAME.count.
Any other path answers 200 at once. Writes its port to DIR/port.

usage: hold_server.py DIR
"""
import http.server
import os
import sys
import time

d = sys.argv[1]


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        if self.path.startswith("/hold/"):
            name = self.path[len("/hold/"):]
            p = os.path.join(d, name)
            n = int(open(p + ".count").read()) if os.path.exists(p + ".count") else 0
            open(p + ".count", "w").write(str(n + 1))
            open(p + ".started", "w").close()
            for _ in range(6000):
                if os.path.exists(os.path.join(d, "release-" + name)):
                    break
                time.sleep(0.01)
            body = ("held " + name).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path.startswith("/hold/"):
            open(p + ".done", "w").close()

    def log_message(self, *a):
        pass


s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(os.path.join(d, "port.tmp"), "w").write(str(s.server_port))
os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
s.serve_forever()
