#!/usr/bin/env python3
"""Stand-in for an external API used by the research example.

    service.py PORT_FILE [--port N]

Listens on 127.0.0.1 (port 0 picks a free one) and writes the port to
PORT_FILE. Endpoints:
  GET  /sources?topic=T  facts about a topic (JSON)
  POST /tickets          create a ticket: a side effect. A repeated
                         Idempotency-Key returns the first response and
                         applies nothing new.
  GET  /_counts          requests received and effects applied, per endpoint
Exits cleanly on SIGTERM.
"""

import argparse
import json
import os
import signal
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FACTS = {
    "sandboxing": [
        "Namespaces give a process its own view of mounts, pids and the network.",
        "seccomp filters reduce the kernel attack surface to an allowlist of syscalls.",
        "Landlock lets an unprivileged process fence its own filesystem access.",
    ],
    "durable-execution": [
        "A journal of completed steps lets a restarted worker skip work already done.",
        "Side effects need idempotency keys or a recorded outcome to run exactly once.",
    ],
    "policy": [
        "Deny rules should win over allow rules so a broad grant cannot override a fence.",
        "Every decision is easier to audit when it names the rule that made it.",
    ],
}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = {}
        self.effects = {}
        self.tickets = []
        self.by_key = {}

    def count(self, table, name):
        table[name] = table.get(name, 0) + 1


STATE = State()


class Handler(BaseHTTPRequestHandler):
    server_version = "research-service/1"

    def log_message(self, fmt, *args):
        pass  # the demo prints its own timeline; keep the terminal readable

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_counts":
            with STATE.lock:
                self.reply(200, {"requests": STATE.requests, "effects": STATE.effects,
                                 "tickets": STATE.tickets})
            return
        with STATE.lock:
            STATE.count(STATE.requests, "GET " + url.path)
        if url.path == "/sources":
            topic = urllib.parse.parse_qs(url.query).get("topic", [""])[0]
            facts = FACTS.get(topic)
            if facts is None:
                self.reply(404, {"error": "unknown topic", "topic": topic})
            else:
                self.reply(200, {"topic": topic, "facts": facts})
            return
        self.reply(404, {"error": "not found"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with STATE.lock:
            STATE.count(STATE.requests, "POST " + url.path)
        if url.path != "/tickets":
            self.reply(404, {"error": "not found"})
            return
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            self.reply(400, {"error": "body is not JSON"})
            return
        key = self.headers.get("Idempotency-Key")
        with STATE.lock:
            if key and key in STATE.by_key:
                status, resp = STATE.by_key[key]
            else:
                ticket = {"id": "T-%d" % (len(STATE.tickets) + 1),
                          "title": str(payload.get("title", "")),
                          "idempotency_key": key}
                STATE.tickets.append(ticket)
                STATE.count(STATE.effects, "POST /tickets")
                status, resp = 201, ticket
                if key:
                    STATE.by_key[key] = (status, resp)
        self.reply(status, resp)


def main():
    ap = argparse.ArgumentParser(description="research example service")
    ap.add_argument("port_file")
    ap.add_argument("--port", type=int, default=0)
    opts = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    server.daemon_threads = True
    # shutdown() blocks until serve_forever returns, so call it off the main thread.
    signal.signal(signal.SIGTERM,
                  lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    tmp = opts.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, opts.port_file)  # readers never see a half-written port
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
