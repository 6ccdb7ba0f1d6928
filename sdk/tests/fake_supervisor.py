#!/usr/bin/env python3
"""A small stand-in for the agentd supervisor, for testing the SDKs and examples.

It speaks the agent channel protocol on fd 3 of a child it spawns, answers
from a JSON scenario, and can optionally run fs.* and http.request for real
under a (simplified) version-1 policy, with a journal that survives child
restarts so replay after a crash can be exercised without the real agentd.

    fake_supervisor.py [--scenario FILE] [--policy FILE] [--approve|--deny]
                       [--max-restarts N] [--log FILE] -- CMD [ARG...]

Scenario (all keys optional):
  {"calls": [{"tool": "fs.read", "match": {"path": "/x"},      # args subset
              "result": {...} | "tool_error": {"code","message"}
                | "error": {"code","message","data"} | "raw": "line",
              "replayed": true, "notify": ["text", ...], "before": ["raw line", ...],
              "times": 1}],
   "resume": {...}, "tools": [...], "live": true}
Scripted entries win; otherwise a live tool runs when "live" (or --policy) is
given, else the call is denied with "no rule matched". Every frame received is
appended to --log as one JSON line; the exit status is the child's.
"""

import argparse
import base64
import fnmatch
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

TOOLS = [
    {"name": n, "description": n + " (fake)", "inputSchema": {"type": "object"}}
    for n in ("fs.read", "fs.write", "fs.list", "fs.stat", "fs.delete", "http.request")
]


def glob_re(pattern, sep):
    """Translate a glob where * stays within one segment and ** crosses them."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^%s]*" % re.escape(sep))
            i += 1
        elif pattern[i] == "?":
            out.append("[^%s]" % re.escape(sep))
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def as_list(v):
    return v if isinstance(v, list) else [v]


def rule_matches(rule, tool, args):
    if not fnmatch.fnmatchcase(tool, rule.get("tool", "*")):
        return False
    if "path" in rule:
        p = os.path.normpath(os.path.join(os.getcwd(), str(args.get("path", ""))))
        if not any(glob_re(g, "/").match(p) for g in as_list(rule["path"])):
            return False
    url = urllib.parse.urlsplit(str(args.get("url", "")))
    if "host" in rule:
        if not any(glob_re(g, ".").match(url.hostname or "") for g in as_list(rule["host"])):
            return False
    if "method" in rule:
        if str(args.get("method", "")).upper() not in [m.upper() for m in as_list(rule["method"])]:
            return False
    if "url_prefix" in rule:
        if not str(args.get("url", "")).startswith(rule["url_prefix"]):
            return False
    if "max_bytes" in rule:
        size = len(str(args.get("content", args.get("body", ""))).encode())
        if size > rule["max_bytes"]:
            return False
    return True


def decide(policy, tool, args):
    """deny > ask > allow > default deny, as in DESIGN.md."""
    rank = {"deny": 3, "ask": 2, "allow": 1}
    best = None
    for rule in policy.get("rules", []):
        if rule_matches(rule, tool, args):
            if best is None or rank[rule["decision"]] > rank[best["decision"]]:
                best = rule
    if best is None:
        return "deny", None, "no rule matched"
    return best["decision"], best.get("id"), "rule %s: %s" % (best.get("id"), best["decision"])


def tool_err(code, message):
    return {"error": {"code": code, "message": message}}, True


def run_tool(tool, args, key):
    try:
        if tool == "fs.read":
            with open(args["path"], "rb") as f:
                f.seek(int(args.get("offset", 0)))
                data = f.read(int(args["length"])) if "length" in args else f.read()
                eof = f.read(1) == b""
            res = {"path": args["path"], "size": os.path.getsize(args["path"]),
                   "offset": int(args.get("offset", 0)), "eof": eof}
            try:
                res["content"] = data.decode("utf-8")
            except UnicodeDecodeError:
                res["content_base64"] = base64.b64encode(data).decode()
            return res, False
        if tool == "fs.write":
            with open(args["path"], "a" if args.get("append") else "w") as f:
                n = f.write(args["content"])
            return {"path": args["path"], "bytes": n}, False
        if tool == "fs.list":
            return {"path": args["path"], "entries": sorted(os.listdir(args["path"]))}, False
        if tool == "http.request":
            headers = dict(args.get("headers") or {})
            if args["method"].upper() not in ("GET", "HEAD"):
                headers.setdefault("Idempotency-Key", key)
            body = args.get("body")
            req = urllib.request.Request(args["url"], method=args["method"].upper(),
                                         data=body.encode() if body is not None else None,
                                         headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=args.get("timeout_ms", 10000) / 1000) as r:
                    status, hdrs, text = r.status, r.headers, r.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as e:
                status, hdrs, text = e.code, e.headers, e.read().decode("utf-8", "replace")
            return {"status": status, "headers": {k.lower(): v for k, v in hdrs.items()},
                    "body": text}, False
    except FileNotFoundError as e:
        return tool_err("ENOENT", str(e))
    except (OSError, urllib.error.URLError) as e:
        return tool_err("EIO", str(e))
    except (KeyError, TypeError, ValueError) as e:
        return tool_err("EINVAL", "bad arguments: %s" % e)
    return tool_err("ENOSYS", "tool not implemented by the fake supervisor")


def tool_result(content, is_error, seq, replayed=False, text=True):
    meta = {"agentd/seq": seq}
    if replayed:
        meta["agentd/replayed"] = True
    blocks = [{"type": "text", "text": json.dumps(content, separators=(",", ":"))}] if text else []
    return {"content": blocks, "structuredContent": content, "isError": is_error, "_meta": meta}


class Fake:
    def __init__(self, opts):
        self.opts = opts
        self.scenario = {}
        if opts.scenario:
            with open(opts.scenario) as f:
                self.scenario = json.load(f)
        self.policy = None
        if opts.policy:
            with open(opts.policy) as f:
                self.policy = json.load(f)
        self.live = self.policy is not None or self.scenario.get("live", False)
        self.calls = self.scenario.get("calls", [])
        self.journal = []      # [(tool, args, reply dict)] where reply is {"result"} or {"error"}
        self.state, self.state_seq = None, 0
        self.log = open(opts.log, "a") if opts.log else None
        self.attempt = 0

    def send(self, sock, obj):
        sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def scripted(self, tool, args):
        for entry in self.calls:
            if entry.get("tool") != tool or entry.get("times", 1) == 0:
                continue
            match = entry.get("match", {})
            if all(args.get(k) == v for k, v in match.items()):
                if "times" in entry:
                    entry["times"] -= 1
                return entry
        return None

    def live_call(self, tool, args):
        """Replay from the journal when it can, else decide by policy and run."""
        for entry in self.journal:
            if not entry["consumed"]:
                if entry["tool"] == tool and entry["args"] == args:
                    entry["consumed"] = True
                    reply = dict(entry["reply"])
                    if "result" in reply:
                        reply["result"] = dict(reply["result"])
                        reply["result"]["_meta"] = {"agentd/seq": entry["seq"],
                                                    "agentd/replayed": True}
                    return reply
                return {"error": {"code": -32002, "message": "diverged",
                                  "data": {"seq": entry["seq"],
                                           "recorded": {"tool": entry["tool"], "args": entry["args"]},
                                           "received": {"tool": tool, "args": args}}}}
        seq = len(self.journal) + 1
        decision, rule, reason = decide(self.policy or {"rules": []}, tool, args)
        if decision == "ask":
            if self.opts.approve:
                decision = "allow"
            else:
                reason = "approval refused"
        if decision != "allow":
            reply = {"error": {"code": -32001, "message": "denied",
                               "data": {"decision": "deny" if decision == "deny" else "ask",
                                        "rule": rule, "reason": reason}}}
        else:
            content, is_err = run_tool(tool, args, "%s:%d" % (self.run_id(), seq))
            reply = {"result": tool_result(content, is_err, seq)}
        self.journal.append({"seq": seq, "tool": tool, "args": args, "reply": reply,
                             "consumed": True})
        return reply

    def run_id(self):
        return self.scenario.get("run_id", "fake-run")

    def handle(self, sock, msg):
        method, params = msg.get("method"), msg.get("params") or {}
        if "id" not in msg:
            return
        if method is None:
            return  # the agent answering one of our requests (a ping)
        rid = msg["id"]
        reply = None
        if method == "initialize":
            reply = {"result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                "serverInfo": {"name": "agentd", "version": "0.1.0"}}}
        elif method == "ping":
            reply = {"result": {}}
        elif method == "tools/list":
            reply = {"result": {"tools": self.scenario.get("tools", TOOLS)}}
        elif method == "agentd/resume":
            res = {"run_id": self.run_id(), "attempt": self.attempt, "state": None,
                   "state_seq": 0, "journal_len": len(self.journal)}
            if params.get("use_state", True) and self.state is not None:
                res["state"], res["state_seq"] = self.state, self.state_seq
                for entry in self.journal[: self.state_seq]:
                    entry["consumed"] = True
            res.update(self.scenario.get("resume", {}))
            reply = {"result": res}
        elif method == "agentd/checkpoint":
            self.state, self.state_seq = params.get("state"), len(self.journal)
            reply = {"result": {"seq": self.state_seq}}
        elif method == "tools/call":
            tool, args = params.get("name"), params.get("arguments") or {}
            # Like agentd with --text-flag: no text block when the call says
            # "agentd/text": false; without it, like a supervisor that ignores it.
            meta = params.get("_meta")
            with_text = not (self.opts.text_flag and isinstance(meta, dict)
                             and meta.get("agentd/text") is False)
            entry = self.scripted(tool, args)
            if entry is not None:
                for text in entry.get("notify", []):
                    self.send(sock, {"jsonrpc": "2.0", "method": "agentd/message",
                                     "params": {"text": text, "mode": "queue"}})
                for line in entry.get("before", []):
                    sock.sendall(line.encode() + b"\n")
                if "raw" in entry:
                    sock.sendall(entry["raw"].encode() + b"\n")
                    return
                seq = len(self.journal) + 1
                if "error" in entry:
                    reply = {"error": entry["error"]}
                elif "tool_error" in entry:
                    reply = {"result": tool_result({"error": entry["tool_error"]}, True, seq,
                                                   text=with_text)}
                else:
                    reply = {"result": tool_result(entry.get("result", {}), False, seq,
                                                   entry.get("replayed", False), with_text)}
            elif self.live:
                reply = self.live_call(tool, args)
            else:
                reply = {"error": {"code": -32001, "message": "denied",
                                   "data": {"decision": "deny", "rule": None,
                                            "reason": "no rule matched"}}}
        else:
            reply = {"error": {"code": -32601, "message": "method not found"}}
        reply.update({"jsonrpc": "2.0", "id": rid})
        self.send(sock, reply)

    def serve(self, sock):
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    self.send(sock, {"jsonrpc": "2.0", "id": None,
                                     "error": {"code": -32700, "message": "parse error"}})
                    continue
                if self.log:
                    self.log.write(json.dumps(msg) + "\n")
                    self.log.flush()
                try:
                    self.handle(sock, msg)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the child died mid-reply; its exit status tells why

    def run_once(self, cmd):
        self.attempt += 1
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ, AGENTD_FD="3", AGENTD_RUN_ID=self.run_id(),
                   AGENTD_ATTEMPT=str(self.attempt))
        cfd = child.fileno()
        # The channel must be fd 3 exactly, as in the real sandbox.
        proc = subprocess.Popen(cmd, env=env, close_fds=False,
                                preexec_fn=lambda: os.dup2(cfd, 3))
        child.close()
        try:
            self.serve(parent)
        finally:
            parent.close()
        return proc.wait()

    def run(self, cmd):
        restarts = 0
        while True:
            rc = self.run_once(cmd)
            if rc >= 0:
                return rc
            print("fake-supervisor: attempt %d killed by signal %d" % (self.attempt, -rc),
                  file=sys.stderr)
            if restarts >= self.opts.max_restarts:
                return 128 - rc
            restarts += 1
            for entry in self.journal:
                entry["consumed"] = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario")
    ap.add_argument("--policy")
    ap.add_argument("--approve", action="store_true")
    ap.add_argument("--deny", action="store_true")
    ap.add_argument("--max-restarts", type=int, default=3)
    ap.add_argument("--log")
    ap.add_argument("--text-flag", action="store_true",
                    help='honour "_meta": {"agentd/text": false} in tools/call')
    ap.add_argument("cmd", nargs="+")
    opts = ap.parse_args()
    sys.exit(Fake(opts).run(opts.cmd))


if __name__ == "__main__":
    main()
