#!/usr/bin/env bash
# The Python SDK against a scripted fake supervisor: results, every error
# class, the replayed flag, queued notifications, ids and framing.
set -euo pipefail
SRC=${AGENTD_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "skip: /usr/bin/python3 not found"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$PY" - "$TMP/scenario.json" <<'PYEOF'
import json, sys
deny = lambda rule, reason: {"code": -32001, "message": "denied",
                             "data": {"decision": "deny", "rule": rule, "reason": reason}}
calls = [
    {"tool": "fs.read", "match": {"path": "/data/a.txt"},
     "result": {"path": "/data/a.txt", "content": "alpha", "size": 5, "offset": 0, "eof": True}},
    {"tool": "fs.read", "match": {"path": "/data/b.txt"}, "replayed": True,
     "notify": ["first", "second"], "result": {"content": "beta"}},
    {"tool": "fs.read", "match": {"path": "/etc/shadow"},
     "error": deny("no-secrets", "secrets are off limits")},
    {"tool": "fs.read", "match": {"path": "/data/missing"},
     "tool_error": {"code": "ENOENT", "message": "/data/missing: no such file"}},
    {"tool": "fs.delete", "error": {"code": -32002, "message": "diverged",
                                    "data": {"seq": 4, "recorded": {}, "received": {}}}},
    {"tool": "fs.list", "error": {"code": -32005, "message": "max_calls reached"}},
    {"tool": "fs.stat", "error": {"code": -32003, "message": "interrupted",
                                  "data": {"message": "stop and summarise"}}},
    # Before the reply: a ping request from the supervisor, an unknown
    # notification and a blank line, all of which the SDK must get past.
    {"tool": "http.request", "match": {"url": "http://127.0.0.1/big"},
     "before": ['{"jsonrpc":"2.0","id":"sup-1","method":"ping"}',
                '{"jsonrpc":"2.0","method":"notifications/progress","params":{}}', ""],
     "result": {"status": 200, "headers": {}, "body": "x" * (2 << 20)}},
    {"tool": "fs.write", "result": {"path": "/out/r.md", "bytes": 3}},
    {"tool": "fs.read", "match": {"path": "/data/garbage"}, "raw": "{not json"},
]
json.dump({"calls": calls, "resume": {"state": {"step": 2}, "state_seq": 3}},
          open(sys.argv[1], "w"))
PYEOF

rc=0
PYTHONPATH="$SRC/sdk/python" "$PY" "$SRC/sdk/tests/fake_supervisor.py" \
	--scenario "$TMP/scenario.json" --log "$TMP/frames.jsonl" -- \
	"$PY" "$SRC/sdk/tests/python_client_check.py" || rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL: client checks (exit $rc)"; exit 1; }
# The same against a supervisor that honours "agentd/text": false (content []).
PYTHONPATH="$SRC/sdk/python" "$PY" "$SRC/sdk/tests/fake_supervisor.py" --text-flag \
	--scenario "$TMP/scenario.json" -- \
	"$PY" "$SRC/sdk/tests/python_client_check.py" >"$TMP/notext.out" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/notext.out"; echo "FAIL: client checks without the text block (exit $rc)"; exit 1; }
echo "ok   client checks, replies without the text block"

# What the SDK put on the wire: unique increasing ids, the right methods and
# params, and an answer to the supervisor's ping.
"$PY" - "$TMP/frames.jsonl" <<'PYEOF'
import json, sys
frames = [json.loads(l) for l in open(sys.argv[1])]
reqs = [f for f in frames if "method" in f and "id" in f]
ids = [f["id"] for f in reqs]
assert ids == list(range(1, len(ids) + 1)), ids
assert all(f["jsonrpc"] == "2.0" for f in frames)
resume = [f for f in reqs if f["method"] == "agentd/resume"][0]
assert resume["params"] == {"use_state": True}, resume
ckpt = [f for f in reqs if f["method"] == "agentd/checkpoint"][0]
assert ckpt["params"]["state"]["ünï"] == "✓", ckpt
w = [f for f in reqs if f["method"] == "tools/call" and f["params"]["name"] == "fs.write"][0]
assert w["params"]["arguments"] == {"path": "/out/r.md", "content": "x\ny", "append": True}, w
calls = [f for f in reqs if f["method"] == "tools/call"]
assert all(f["params"]["_meta"] == {"agentd/text": False} for f in calls), calls
h = [f for f in reqs if f["method"] == "tools/call" and f["params"]["name"] == "http.request"][1]
assert h["params"]["arguments"] == {"method": "GET", "url": "http://127.0.0.1/big",
                                    "headers": {"X-A": "1"}, "timeout_ms": 500}, h
pong = [f for f in frames if f.get("id") == "sup-1"]
assert pong == [{"jsonrpc": "2.0", "id": "sup-1", "result": {}}], pong
assert any(f.get("method") == "notifications/initialized" and "id" not in f for f in frames)
print("ok   wire format: %d frames, ids 1..%d" % (len(frames), len(ids)))
PYEOF
echo "PASS"
