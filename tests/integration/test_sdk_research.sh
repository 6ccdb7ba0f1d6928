#!/usr/bin/env bash
# The research example end to end under the fake supervisor (real fs and HTTP,
# policy decisions, a journal that survives the child's SIGKILL): the crash
# happens, completed calls are replayed, the ticket is filed exactly once —
# both re-executing with replay (the demo's mode) and resuming from state.
set -euo pipefail
SRC=${AGENTD_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${AGENTD_BIN_DIR:-$SRC/build/bin}
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "skip: /usr/bin/python3 not found"; exit 77; }
TMP=$(mktemp -d)
SVC=
cleanup() {
	[ -n "$SVC" ] && kill "$SVC" 2>/dev/null && wait "$SVC" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
EX="$SRC/examples/research"

# 1. demo.sh itself, with the fake in place of agentd run.
rc=0
AGENTD_DEMO_FAKE=1 bash "$EX/demo.sh" "$(dirname "$BIN")" >"$TMP/demo.log" 2>&1 || rc=$?
cat "$TMP/demo.log"
[ "$rc" -eq 0 ] || { echo "FAIL: demo.sh exited $rc"; exit 1; }
grep -q "exactly-once check: PASSED (tickets applied: 1, POST requests: 1)" "$TMP/demo.log"
grep -q "attempt 1 killed by signal 9" "$TMP/demo.log"
grep -q "filed ticket T-1 (HTTP 201) \[replayed\]" "$TMP/demo.log"
grep -q "denied fs.read /etc/shadow: rule=no-secrets" "$TMP/demo.log"
grep -q "denied http.request http://evil.example/exfiltrate: rule=(none) reason=no rule matched" "$TMP/demo.log"
grep -q "summary: attempt 2, 3 topics, 7 facts, 2 denials, ticket T-1" "$TMP/demo.log"
echo "ok   demo.sh under the fake supervisor"

# 2. Resuming from the saved state: no step before the crash runs again.
"$PY" "$EX/service.py" "$TMP/port" &
SVC=$!
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(cat "$TMP/port")
mkdir -p "$TMP/out"
sed -e "s|@EXAMPLE@|$EX|g" -e "s|@OUT@|$TMP/out|g" -e "s|@PORT@|$PORT|g" \
	"$EX/policy.json.in" >"$TMP/policy.json"
(cd "$EX" && PYTHONPATH="$SRC/sdk/python" "$PY" "$SRC/sdk/tests/fake_supervisor.py" \
	--policy "$TMP/policy.json" --approve -- \
	"$PY" agent.py --service "http://127.0.0.1:$PORT" --out "$TMP/out" --use-state) \
	>"$TMP/state.log" 2>&1 || { cat "$TMP/state.log"; echo "FAIL: --use-state run"; exit 1; }
cat "$TMP/state.log"
grep -q "resuming from saved state" "$TMP/state.log"
# After the restart only the report is written: exactly one live call, none replayed.
grep -q "summary: attempt 2, .* ticket T-1, .* 0 calls replayed, 1 live" "$TMP/state.log"
[ "$(grep -c 'filed ticket' "$TMP/state.log")" -eq 1 ]
grep -q "^Follow-up ticket: T-1$" "$TMP/out/report.md"
"$PY" - "http://127.0.0.1:$PORT/_counts" <<'PYEOF'
import json, sys, urllib.request
c = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
assert c["effects"] == {"POST /tickets": 1}, c
assert c["requests"]["POST /tickets"] == 1 and c["requests"]["GET /sources"] == 3, c
PYEOF
echo "ok   --use-state resume"

# 3. The service honours Idempotency-Key on its own.
"$PY" - "http://127.0.0.1:$PORT" <<'PYEOF'
import json, sys, urllib.request
base = sys.argv[1]
def post(key):
    req = urllib.request.Request(base + "/tickets", data=b'{"title":"t"}', method="POST",
                                 headers={"Idempotency-Key": key})
    return json.load(urllib.request.urlopen(req, timeout=5))
a, b = post("k-1"), post("k-1")
assert a == b, (a, b)
c = json.load(urllib.request.urlopen(base + "/_counts", timeout=5))
assert c["effects"]["POST /tickets"] == 2 and c["requests"]["POST /tickets"] == 3, c
PYEOF
echo "ok   service idempotency"
echo PASS
