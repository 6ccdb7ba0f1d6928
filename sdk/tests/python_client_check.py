#!/usr/bin/env python3
"""Agent side of tests/integration/test_sdk_python.sh: run under
fake_supervisor.py with sdk/tests/python_scenario.json (written by the test);
every check prints its name and the script exits 1 on the first failure."""

import os
import sys

import agentd

failures = 0


def check(name, cond, detail=""):
    global failures
    print("%s %s%s" % ("ok  " if cond else "FAIL", name, (": %s" % detail) if detail else ""))
    if not cond:
        failures += 1


def expect(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as e:
        return e
    except agentd.Error as e:
        return e  # a different agentd.Error: the caller's isinstance check fails
    return None


c = agentd.connect()
check("initialize", c.initialize()["serverInfo"]["name"] == "agentd")
r = c.resume()
check("resume fields", r["attempt"] == 1 and r["state"] == {"step": 2} and r["state_seq"] == 3,
      r)
check("checkpoint returns seq", c.checkpoint({"step": 3, "ünï": "✓"}) == 0)
check("ping", c.ping() is True)
check("list_tools", [t["name"] for t in c.list_tools()][:2] == ["fs.read", "fs.write"])

res = c.call("fs.read", {"path": "/data/a.txt"})
check("call returns structuredContent", res == {"path": "/data/a.txt", "content": "alpha",
                                                "size": 5, "offset": 0, "eof": True}, res)
check("live result is not replayed", c.last_replayed is False and c.last_seq == 1)
check("fs_read wrapper", c.fs_read("/data/a.txt") == "alpha")

res = c.call("fs.read", {"path": "/data/b.txt"})
check("replayed flag from _meta", c.last_replayed is True and res["content"] == "beta")

check("messages queued in order", [m["text"] for m in c.messages()] == ["first", "second"])
check("messages drained", c.messages() == [])

e = expect(agentd.Denied, c.fs_read, "/etc/shadow")
check("denied raises Denied", isinstance(e, agentd.Denied), repr(e))
check("denied carries rule/reason/decision",
      isinstance(e, agentd.Denied) and e.rule == "no-secrets" and e.decision == "deny"
      and e.reason == "secrets are off limits", vars(e) if e else None)
check("Denied is an agentd.Error", isinstance(e, agentd.Error))

e = expect(agentd.Denied, c.http_request, "GET", "http://evil.example/")
check("unmatched call denied with null rule",
      isinstance(e, agentd.Denied) and e.rule is None and e.reason == "no rule matched")

e = expect(agentd.ToolError, c.fs_read, "/data/missing")
check("tool error raises ToolError",
      isinstance(e, agentd.ToolError) and e.code == "ENOENT" and "missing" in e.message
      and e.result["error"]["code"] == "ENOENT", repr(e))

e = expect(agentd.Diverged, c.call, "fs.delete", {"path": "/data/a.txt"})
check("diverged", isinstance(e, agentd.Diverged) and e.seq == 4, repr(e))
e = expect(agentd.LimitReached, c.call, "fs.list", {"path": "/data"})
check("limit reached", isinstance(e, agentd.LimitReached))
e = expect(agentd.Interrupted, c.call, "fs.stat", {"path": "/data"})
check("interrupted carries the user message",
      isinstance(e, agentd.Interrupted) and e.user_message == "stop and summarise")

res = c.http_request("GET", "http://127.0.0.1/big", headers={"X-A": "1"}, timeout_ms=500)
check("large result (2 MiB) read through the buffer", len(res["body"]) == 2 << 20)

res = c.fs_write("/out/r.md", "x\ny", append=True)
check("fs_write wrapper", res == {"path": "/out/r.md", "bytes": 3})

e = expect(agentd.ProtocolError, c.call, "fs.read", {"path": "/data/garbage"})
check("garbage frame raises ProtocolError", isinstance(e, agentd.ProtocolError), repr(e))

# Outside agentd: a clear error, not a traceback from socket internals.
saved = os.environ.pop("AGENTD_FD")
e = expect(agentd.ProtocolError, agentd.connect)
check("connect outside agentd", isinstance(e, agentd.ProtocolError)
      and "not running under agentd" in str(e), str(e))
os.environ["AGENTD_FD"] = saved
rfd, wfd = os.pipe()
e = expect(agentd.ProtocolError, agentd.connect, rfd)
check("connect on a non-socket fd", isinstance(e, agentd.ProtocolError), str(e))
os.close(rfd)
os.close(wfd)

sys.exit(1 if failures else 0)
