#!/bin/bash
# User messages through `agentd send` to a run supervised by `agentd run`:
# queue (an agentd/message notification before the next reply), agentd/inbox,
# reject (delivered when idle, refused while a call waits), interrupt (the
# waiting call answers -32003 with the message, journaled so a replay gets the
# same), restart (rollback to the checkpoint, the new attempt gets the message
# first). After a crash the replayed attempt sees the same messages at the
# same points.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
start_effects_server
cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [
 {"id": "free", "tool": "http.request", "url_prefix": "$URL/effect/free-", "method": ["POST"], "decision": "allow"},
 {"id": "gate", "tool": "http.request", "url_prefix": "$URL/effect/gated-", "method": ["POST"], "decision": "ask"}
]}
JSON
chmod 644 "$T/policy.json"
chmod 777 "$T/lib"
st="$T/state"
A() { "$AGENTD" "$@" --state "$st"; }
applied() { counts | python3 -c 'import json,sys; print(json.load(sys.stdin)["applied"].get(sys.argv[1], 0))' "$1"; }
wait_line() { # FILE PATTERN
	for _ in $(seq 200); do grep -q "$2" "$1" && return 0; sleep 0.05; done
	cat "$1"; fail "no line '$2'"
}
wait_pending() {
	for _ in $(seq 100); do
		A approvals "$1" --status pending | grep -q "^$1 *$2 " && return 0
		sleep 0.1
	done
	fail "no pending approval $1 #$2"
}
msg_status() { # RUN TEXT: the stored status of that message
	python3 - "$st/agentd.db" "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
row = db.execute("SELECT status FROM messages WHERE run = ? AND text = ?", sys.argv[2:4]).fetchone()
print(row[0] if row else "none")
PY
}

# 1. queue, reject while idle, inbox; a crash, and the replay sees the same.
(cd "$T/lib" && "$AGENTD" run --state "$st" --id q1 --policy "$T/policy.json" \
	-- python3 msg_agent.py "$URL" q1) >"$T/q1" 2>&1 &
pid=$!; PIDS+=($pid)
wait_line "$T/q1" "^\[1\] ready1"
A send q1 "hello" >/dev/null || fail "send hello"
A send q1 "not busy" --mode reject >/dev/null || fail "send reject"
touch "$T/lib/go1-q1"
wait_line "$T/q1" "^\[1\] ready2"
A send q1 "second" >/dev/null || fail "send second"
touch "$T/lib/go2-q1"
wait $pid || { cat "$T/q1"; fail "q1 failed"; }
for a in 1 2; do
	grep -q "^\[$a\] msg@2: hello mode=queue" "$T/q1" || { cat "$T/q1"; fail "attempt $a: queued message"; }
	grep -q "^\[$a\] msg@2: not busy mode=reject" "$T/q1" || { cat "$T/q1"; fail "attempt $a: idle reject"; }
	grep -q "^\[$a\] inbox: second mode=queue" "$T/q1" || { cat "$T/q1"; fail "attempt $a: inbox"; }
done
grep -q "msg@3\|inbox: hello" "$T/q1" && { cat "$T/q1"; fail "a message was delivered twice"; }
grep -q "^\[2\] done" "$T/q1" || fail "q1 did not finish"
[ "$(grep -c "msg@2: hello" "$T/q1")" = 2 ] || fail "hello not seen exactly once per attempt"
for e in free-q1-1 free-q1-2 free-q1-3; do [ "$(applied $e)" = 1 ] || fail "$e applied $(applied $e)"; done
[ "$(msg_status q1 hello)" = delivered ] || fail "hello not marked delivered"
echo "ok: queue, idle reject, inbox, replay after a crash"

# 2. interrupt a call waiting for its approval; reject while it waits.
(cd "$T/lib" && "$AGENTD" run --state "$st" --id i1 --policy "$T/policy.json" --durable-approvals \
	-- python3 interact_agent.py "$URL" i1 gated crash_after_ask) >"$T/i1" 2>&1 &
pid=$!; PIDS+=($pid)
wait_pending i1 3
A send i1 "later please" --mode reject >/dev/null || fail "send reject"
for _ in $(seq 50); do [ "$(msg_status i1 'later please')" = rejected ] && break; sleep 0.1; done
[ "$(msg_status i1 'later please')" = rejected ] || fail "reject while waiting: $(msg_status i1 'later please')"
A send i1 "stop that" --mode interrupt >/dev/null || fail "send interrupt"
wait $pid || { cat "$T/i1"; fail "i1 failed"; }
for a in 1 2; do
	grep -q "^\[$a\] asked: interrupted message=stop that" "$T/i1" || { cat "$T/i1"; fail "attempt $a: interrupt"; }
done
grep -q "later please" "$T/i1" && fail "a rejected message was delivered"
grep -q "^\[2\] done" "$T/i1" || fail "i1 did not finish"
[ "$(applied gated-i1)" = 0 ] || fail "interrupted call ran"
A approvals i1 | grep -q "^i1 *3 *http.request *denied .*interrupt" || { A approvals i1; fail "approval not closed"; }
A show i1 | grep -q "message.interrupted" || fail "no message.interrupted event"
echo "ok: interrupt and reject while a call waits"

# 3. restart: roll back to the checkpoint; the new attempt gets the message first.
(cd "$T/lib" && "$AGENTD" run --state "$st" --id r1 --policy "$T/policy.json" --durable-approvals \
	-- python3 interact_agent.py "$URL" r1 gated checkpoint) >"$T/r1" 2>&1 &
pid=$!; PIDS+=($pid)
wait_pending r1 3
A send r1 "change of plan" --mode restart >/dev/null || fail "send restart"
wait $pid || { cat "$T/r1"; fail "r1 failed"; }
grep -q "^\[2\] resumed from state {'step': 1}" "$T/r1" || { cat "$T/r1"; fail "no resume from the checkpoint"; }
grep -q "^\[2\] msg@1b: change of plan mode=restart" "$T/r1" || { cat "$T/r1"; fail "restart message not first"; }
grep -q "^\[2\] replanned" "$T/r1" || fail "not replanned"
[ "$(applied gated-r1)" = 0 ] || fail "rolled-back call ran"
[ "$(applied free-r1-1)" = 1 ] || fail "the call before the checkpoint ran again"
A show r1 | grep -q "journal.discarded" || fail "no journal.discarded event"
A approvals r1 | grep -q "^r1 " && { A approvals r1; fail "the rolled-back approval is still listed"; }
echo "ok: restart from the checkpoint"
echo "messages: all four modes as expected"
