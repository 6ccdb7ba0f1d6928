#!/usr/bin/env python3
"""HTTP service that fails on purpose, for retry / fallback tests.

GET /flaky/<name>/<k>   503 with Retry-After: 0 for the first k requests, then 200
GET /throttle/<name>/<k> 429 with Retry-After: 0 for the first k requests, then 200
GET /down/<name>        always 503
GET /ok/<name>          200
GET /_counts            {name: requests}
Usage: flaky_server.py PORTFILE
"""
import http.server
import json
import os
import sys
import threading

lock = threading.Lock()
counts = {}


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, code, obj, extra=()):
        b = json.dumps(obj).encode()
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts == ["_counts"]:
            with lock:
                return self.send(200, counts)
        name = "/".join(parts[:2])
        with lock:
            n = counts[name] = counts.get(name, 0) + 1
        if parts[0] in ("flaky", "throttle"):
            if n <= int(parts[2]):
                code = 503 if parts[0] == "flaky" else 429
                return self.send(code, {"n": n}, [("Retry-After", "0")])
            return self.send(200, {"n": n})
        if parts[0] == "down":
            return self.send(503, {"n": n})
        return self.send(200, {"n": n, "ok": True})


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
