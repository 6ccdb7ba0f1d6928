#!/bin/bash
# Tool workers in agentd serve: a run whose http.request is slow (held by the
# test's server until the test releases it) stalls neither the daemon nor the
# other runs: run B's 20 calls and GET /v1/health complete while A's request
# is still held. With the tools on the loop thread ("tool_workers": 0, or
# before workers) B never finishes and the API does not answer until then.
# A run whose tool is on a worker can be killed, cancelled, sent an interrupt
# or a restart message, or stopped by SIGTERM: the run waits for the call,
# whose outcome is journaled when the tool returns (never left an unknown
# outcome), then ends or goes on; the daemon exits only after it, and a run
# it stopped replays that outcome when it restarts.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
mkdir -p "$T/srv" "$T/policies"
python3 "$T/lib/hold_server.py" "$T/srv" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/srv/port" ] && break; sleep 0.05; done
[ -s "$T/srv/port" ] || fail "hold server did not start"
URL="http://127.0.0.1:$(cat "$T/srv/port")"
cat > "$T/policies/default.json" <<JSON
{"version": 1, "rules": [
 {"id": "echo", "tool": "agentd.echo", "decision": "allow"},
 {"id": "local", "tool": "http.request", "host": "127.0.0.1", "method": "GET", "decision": "allow"}
]}
JSON
CFG='{"policy_dir": "'"$T/policies"'", "tool_workers": 2}'
start_serve "$CFG"

submit() { # NAME AGENT ARGS...
	(cd "$T/lib" && timeout 30 "$AGENTCTL" -q run --name "$1" --max-restarts 0 -- python3 "${@:2}") \
		>/dev/null || fail "submit $1"
}
held() { # NAME: wait until the server holds NAME's request
	for _ in $(seq 600); do [ -e "$T/srv/$1.started" ] && return 0; sleep 0.05; done
	ctl logs "$1"
	fail "$1: its request never reached the server"
}
release() { touch "$T/srv/release-$1"; }
# A request with a deadline: a daemon whose loop is stuck must fail the test, not hang it.
get() { curl -s -m "$2" --unix-socket "$SOCK" "http://agentd$1"; }
status() { jget "$(get "/v1/runs/$1" 10)" 'd["status"]'; }
result() { get "/v1/runs/$1/result?wait=60" 70; }
journal() { # NAME: [(seq, tool, status)...] as python prints it
	jget "$(get "/v1/runs/$1/journal" 10)" '[(c["seq"], c["tool"], c["status"]) for c in d["calls"]]'
}

# 1. A's request held on a worker; B runs, the API answers.
submit a hold_agent.py "$URL/hold/a" 1
held a
submit b echo_agent.py 20
r=$(get "/v1/runs/b/result?wait=30" 40) || fail "the daemon did not answer while A's tool ran"
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs b; fail "b: $r"; }
ctl logs b | has -x "call 20: {'value': 20}" || { ctl logs b; fail "b: its last call"; }
h=$(get /v1/health 10) || fail "GET /v1/health did not answer while A's tool ran"
[ "$(jget "$h" 'd["status"]')" = ok ] || fail "health: $h"
[ "$(jget "$h" '(d["tools"]["workers"], d["tools"]["busy"])')" = "(2, 1)" ] ||
	fail "health: a's call is not the one call on the 2 workers: $h"
# The order is the point: all of that happened while A's request was held.
[ ! -e "$T/srv/a.done" ] || fail "A's request was answered before B finished"
[ "$(status a)" = running ] || fail "a is not running while its tool is held"
release a
r=$(result a)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs a; fail "a: $r"; }
ctl logs a | has -x "http: 200 held a" || { ctl logs a; fail "a: the answer"; }
[ "$(journal a)" = "[(1, 'http.request', 'ok'), (2, 'agentd.echo', 'ok')]" ] || fail "a journal: $(journal a)"
[ "$(cat "$T/srv/a.count")" = 1 ] || fail "a: $(cat "$T/srv/a.count") requests"
echo "ok: b's 20 calls and /v1/health while a's request was held on a worker"

# 2. kill while the tool is on a worker: the child goes at once, the run
# waits for the call (still running) and ends cancelled once it is journaled.
submit k hold_agent.py "$URL/hold/k" 2
held k
ctl kill k >/dev/null || fail "agentctl kill"
get /v1/health 10 >/dev/null || fail "health after the kill"
[ "$(status k)" = running ] || fail "k ended before its call came back: $(status k)"
release k
r=$(result k)
[ "$(jget "$r" 'd["status"]')" = cancelled ] || fail "k: $r"
[ "$(journal k)" = "[(1, 'http.request', 'ok')]" ] || fail "k journal: $(journal k)"
! ctl logs k | has '^http:' || { ctl logs k; fail "k: a killed agent got an answer"; }
echo "ok: kill of a run whose tool is on a worker: the late outcome is journaled, then cancelled"

# 3. cancel (graceful): the call in flight is answered when it lands, the
# next one refused; the run ends cancelled.
submit c hold_agent.py "$URL/hold/c" 2
held c
ctl cancel c >/dev/null || fail "agentctl cancel"
release c
r=$(result c)
[ "$(jget "$r" 'd["status"]')" = cancelled ] || fail "c: $r"
ctl logs c | has -x "http: 200 held c" || { ctl logs c; fail "c: the answer of the call in flight"; }
[ "$(journal c)" = "[(1, 'http.request', 'ok')]" ] || fail "c journal: $(journal c)"
echo "ok: cancel of a run whose tool is on a worker: answered, then cancelled"

# 4. Messages: an interrupt does not interrupt a call whose tool is already
# running: it is answered with its result, and the message comes at the next
# boundary. A restart waits for the call to land, then rolls back and starts
# the run again (its request made a second time).
submit i hold_agent.py "$URL/hold/i" 1
held i
api POST /v1/runs/i/messages '{"text": "stop that", "mode": "interrupt"}' >/dev/null
[ "$(code)" = 202 ] || fail "interrupt message: $(code)"
release i
r=$(result i)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs i; fail "i: $r"; }
[ "$(ctl logs i | grep -c -e '^http: 200 held i$' -e '^echo 0: ' -e '^msg: stop that mode=interrupt$')" = 3 ] ||
	{ ctl logs i; fail "i: the call in flight answered, the message at the next boundary"; }
[ "$(jget "$(get /v1/runs/i/journal 10)" '(d["calls"][0]["tool"], d["calls"][0]["status"])')" = "('http.request', 'ok')" ] ||
	fail "i journal: $(journal i)"
submit x hold_agent.py "$URL/hold/x" 1
held x
api POST /v1/runs/x/messages '{"text": "again", "mode": "restart"}' >/dev/null
[ "$(code)" = 202 ] || fail "restart message: $(code)"
[ "$(status x)" = running ] || fail "x: $(status x)"
release x
r=$(result x)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs x; fail "x: $r"; }
[ "$(cat "$T/srv/x.count")" = 2 ] || fail "x: $(cat "$T/srv/x.count") requests, want 2 (the restart reruns it)"
[ "$(jget "$r" 'd["attempts"]')" = 2 ] || fail "x: $r"
echo "ok: interrupt and restart messages to a run whose tool is on a worker"

# 5. SIGTERM: the daemon waits for the call, journals it, exits 0; started
# again, the run replays it (no second request) and succeeds.
submit s hold_agent.py "$URL/hold/s" 1
held s
kill -TERM $SERVE_PID
sleep 1
kill -0 $SERVE_PID 2>/dev/null || fail "agentd serve exited with a tool still running"
[ ! -e "$T/srv/s.done" ] || fail "s: answered before the release"
release s
rc=0; stop_serve TERM || rc=$?
[ $rc = 0 ] || fail "SIGTERM: agentd serve exited $rc"
start_serve "$CFG"
r=$(result s)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs s; fail "s: $r"; }
ctl logs s | has -x "http: 200 held s" || { ctl logs s; fail "s: the replayed answer"; }
[ "$(cat "$T/srv/s.count")" = 1 ] || fail "s: $(cat "$T/srv/s.count") requests, want 1"
[ "$(journal s)" = "[(1, 'http.request', 'ok'), (2, 'agentd.echo', 'ok')]" ] || fail "s journal: $(journal s)"
echo "ok: SIGTERM waits for a tool on a worker; the outcome is replayed after the restart"
