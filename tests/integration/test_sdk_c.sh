#!/usr/bin/env bash
# The C client library and agentd-call against a scripted fake supervisor:
# results, exit codes, denials with their rule, the replayed flag, queued
# notifications, stdin arguments. Also proves the staged SDK links.
set -euo pipefail
SRC=${AGENTD_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${AGENTD_BIN_DIR:-$SRC/build/bin}
SDK=${AGENTD_SDK_DIR:-$(dirname "$BIN")/share/agentd/sdk}
PY=/usr/bin/python3
CALL="$BIN/agentd-call"
[ -x "$PY" ] || { echo "skip: /usr/bin/python3 not found"; exit 77; }
[ -x "$CALL" ] || { echo "skip: $CALL not built"; exit 77; }
[ -f "$SDK/lib/libagentd_client.a" ] || { echo "skip: SDK not staged in $SDK"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
FAKE="$SRC/sdk/tests/fake_supervisor.py"
fails=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

"$PY" - "$TMP/scenario.json" <<'PYEOF'
import json, sys
calls = [
    {"tool": "fs.read", "match": {"path": "/data/a.txt"}, "result": {"content": "alpha"}},
    {"tool": "fs.read", "match": {"path": "/data/b.txt"}, "replayed": True,
     "notify": ["first", "second"], "result": {"content": "beta"}},
    {"tool": "fs.read", "match": {"path": "/etc/shadow"},
     "error": {"code": -32001, "message": "denied",
               "data": {"decision": "deny", "rule": "no-secrets", "reason": "secrets are off limits"}}},
    {"tool": "fs.read", "match": {"path": "/data/missing"},
     "tool_error": {"code": "ENOENT", "message": "/data/missing: no such file"}},
    {"tool": "fs.list", "error": {"code": -32005, "message": "max_calls reached"}},
    {"tool": "http.request", "match": {"url": "http://127.0.0.1/big"},
     "before": ['{"jsonrpc":"2.0","id":7,"method":"ping"}', ""],
     "result": {"status": 200, "headers": {}, "body": "x" * (2 << 20)}},
    {"tool": "fs.read", "match": {"path": "/data/garbage"}, "raw": "{not json"},
    {"tool": "fs.write", "result": {"path": "/out/r.md", "bytes": 3}},
]
json.dump({"calls": calls, "resume": {"attempt": 2}}, open(sys.argv[1], "w"))
PYEOF

# 1. The library, built against the staged SDK the way agent code would be.
# A sanitizer build of the SDK needs the sanitizer runtimes at link time.
SAN=""
# (grep reads all of nm's output: with -q, nm could die of SIGPIPE and fail
# the pipeline under pipefail)
if nm "$SDK/lib/libagentd_client.a" 2>/dev/null | grep __asan_ >/dev/null; then
	SAN="-fsanitize=address,undefined"
fi
cc -std=gnu17 -Wall -Wextra -Werror $SAN -I"$SDK/include" -o "$TMP/c_client_check" \
	"$SRC/sdk/tests/c_client_check.c" "$SDK/lib/libagentd_client.a" -ljansson
# Against a supervisor that ignores "agentd/text" (every reply has the text
# block), then one that honours it (content []): the same results.
if "$PY" "$FAKE" --scenario "$TMP/scenario.json" -- "$TMP/c_client_check"; then
	pass "C library checks"
else
	fail "C library checks"
fi
rm -f "$TMP/frames.jsonl"
if "$PY" "$FAKE" --text-flag --scenario "$TMP/scenario.json" --log "$TMP/frames.jsonl" -- \
	"$TMP/c_client_check"; then
	pass "C library checks, replies without the text block"
else
	fail "C library checks, replies without the text block"
fi
"$PY" - "$TMP/frames.jsonl" <<'PYEOF' && pass 'every call sends "agentd/text": false' || fail "no text flag on the wire"
import json, sys
calls = [f for f in map(json.loads, open(sys.argv[1])) if f.get("method") == "tools/call"]
# Framed around the caller's text (one line) and built by jansson (not).
assert {f["params"]["name"] for f in calls} >= {"fs.read", "fs.write"}, calls
for f in calls:
    assert f["params"]["_meta"] == {"agentd/text": False}, f
PYEOF

# 2. agentd-call: run one invocation under the fake; sets out, errout, rc.
run_call() {
	rc=0
	"$PY" "$FAKE" --scenario "$TMP/scenario.json" --log "$TMP/frames.jsonl" -- \
		"$CALL" "$@" <"${STDIN:-/dev/null}" >"$TMP/out" 2>"$TMP/err" || rc=$?
	out=$(cat "$TMP/out")
	errout=$(cat "$TMP/err")
}

run_call fs.read '{"path":"/data/a.txt"}'
[ "$rc" -eq 0 ] && [ "$out" = '{"content":"alpha"}' ] && pass "call prints structuredContent" ||
	fail "call: rc=$rc out=$out err=$errout"

run_call fs.read '{"path":"/etc/shadow"}'
[ "$rc" -eq 2 ] && [ -z "$out" ] && grep -q "rule no-secrets" "$TMP/err" &&
	grep -q "secrets are off limits" "$TMP/err" && pass "denied: exit 2, rule and reason" ||
	fail "denied: rc=$rc err=$errout"

run_call http.request '{"method":"GET","url":"http://evil.example/"}'
[ "$rc" -eq 2 ] && grep -q "no rule matched" "$TMP/err" && pass "unmatched: exit 2" ||
	fail "unmatched: rc=$rc err=$errout"

run_call fs.read '{"path":"/data/missing"}'
[ "$rc" -eq 1 ] && "$PY" -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; sys.exit(e["code"]!="ENOENT")' "$TMP/err" &&
	pass "tool error: exit 1, error JSON on stderr" || fail "tool error: rc=$rc err=$errout"

run_call fs.list '{"path":"/data"}'
[ "$rc" -eq 3 ] && grep -q -- "-32005" "$TMP/err" && pass "limit: exit 3" ||
	fail "limit: rc=$rc err=$errout"

run_call fs.read '{"path":"/data/garbage"}'
[ "$rc" -eq 3 ] && pass "garbage frame: exit 3" || fail "garbage: rc=$rc err=$errout"

run_call http.request '{"url":"http://127.0.0.1/big"}'
[ "$rc" -eq 0 ] && [ "${#out}" -gt $((2 << 20)) ] && pass "2 MiB result with an interleaved ping" ||
	fail "big: rc=$rc len=${#out} err=$errout"

printf '{"path":"/out/r.md","content":"x\\ny"}' >"$TMP/stdin.json"
rm -f "$TMP/frames.jsonl"
STDIN="$TMP/stdin.json" run_call fs.write -
[ "$rc" -eq 0 ] && [ "$out" = '{"path":"/out/r.md","bytes":3}' ] && "$PY" - "$TMP/frames.jsonl" <<'PYEOF' && pass "args from stdin reach the wire" || fail "stdin: rc=$rc out=$out"
import json, sys
f = [json.loads(l) for l in open(sys.argv[1])][0]
assert f["method"] == "tools/call" and f["id"] == 1, f
assert f["params"] == {"name": "fs.write", "arguments": {"path": "/out/r.md", "content": "x\ny"},
                       "_meta": {"agentd/text": False}}, f
PYEOF

run_call fs.read 'not json'
[ "$rc" -eq 64 ] && pass "bad JSON args: exit 64" || fail "bad args: rc=$rc"
rc=0; "$CALL" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 64 ] && pass "no tool: exit 64" || fail "usage: rc=$rc"
rc=0; env -u AGENTD_FD "$CALL" fs.read '{}' 2>"$TMP/err" || rc=$?
[ "$rc" -eq 3 ] && grep -q "not running under agentd" "$TMP/err" && pass "outside agentd: exit 3" ||
	fail "outside: rc=$rc"

[ "$fails" -eq 0 ] && echo PASS || { echo "$fails check(s) failed"; exit 1; }
