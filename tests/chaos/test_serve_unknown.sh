#!/bin/bash
# on_unknown `ask` under agentd serve: the daemon is SIGKILLed while an
# `effect` call (an fs.write append) is in flight (intent journaled, the
# append held by strace at its openat2; -f: it runs on a tool worker thread). Restarted, it recovers the run,
# which waits on an approval (rule on_unknown) listed by agentctl:
# `agentctl approve` appends once and the run succeeds; `agentctl deny`
# answers the agent -32004 and nothing is appended.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
command -v strace >/dev/null || { echo "SKIP: strace is not installed (apt-get install strace): it holds the daemon mid-call"; exit 77; }
strace -o /dev/null true 2>/dev/null || { echo "SKIP: ptrace is not permitted here (strace cannot trace)"; exit 77; }
stage
. "$SRC/tests/integration/lib/serve.sh"
cp "$SRC"/tests/chaos/lib/unknown_agent.py "$T/lib/"
mkdir -p "$T/policies"
cat > "$T/policies/default.json" <<JSON
{"version": 1, "rules": [
 {"id": "echo", "tool": "agentd.echo", "decision": "allow"},
 {"id": "out", "tool": "fs.write", "path": "$T/out/**", "decision": "allow"}
]}
JSON
CFG='{"policy_dir": "'"$T/policies"'", "approval_idle_suspend_s": -1}'
appended() { [ -e "$T/out/$1/ledger.txt" ] && grep -c '^entry$' "$T/out/$1/ledger.txt" || echo 0; }
result() { api GET "/v1/runs/$1/result?wait=60"; }

# crash NAME: submit the run to a daemon held at the append, SIGKILL it there
crash() {
	local name=$1
	mkdir -p "$T/out/$name"
	chmod -R a+rwx "$T/out"
	printf '%s\n' "$CFG" > "$T/serve.json"
	rm -f "$SOCK"
	strace -f -o /dev/null -e trace=openat2 -e inject=openat2:delay_enter=60s \
		"$AGENTD" serve --config "$T/serve.json" --state "$STATE" --socket "$SOCK" \
		>>"$T/serve.log" 2>&1 &
	local tracer=$!
	PIDS+=($tracer)
	for _ in $(seq 200); do
		[ -S "$SOCK" ] && curl -s --unix-socket "$SOCK" http://x/v1/health >/dev/null && break
		sleep 0.05
	done
	(cd "$T/lib" && ctl -q run --name "$name" -- python3 unknown_agent.py "$T/out/$name") >/dev/null ||
		fail "$name: submit"
	for _ in $(seq 300); do
		"$AGENTD" show "$name" --state "$STATE" 2>/dev/null | has '#2 .*fs.write.*unknown outcome' && break
		sleep 0.05
	done
	"$AGENTD" show "$name" --state "$STATE" | has '#2 .*fs.write.*unknown outcome' ||
		fail "$name: the append's intent was never journaled"
	local sv
	sv=$(pgrep -P $tracer) || fail "$name: no daemon to kill"
	kill -KILL $sv
	kill -KILL $tracer
	wait $tracer 2>/dev/null || true
	for _ in $(seq 200); do kill -0 $sv 2>/dev/null || break; sleep 0.02; done
	! kill -0 $sv 2>/dev/null || fail "$name: the daemon survived SIGKILL"
	[ "$(appended "$name")" = 0 ] || fail "$name: the append ran before the kill"
}
pending() { # NAME: RUN/SEQ of its pending approval, which must be the unknown outcome
	local p
	for _ in $(seq 150); do
		p=$(ctl -q approvals --run "$1")
		[ -n "$p" ] && break
		sleep 0.1
	done
	[ "$p" = "$1/2" ] || fail "$1: no pending approval for #2 (got '$p')"
	ctl -o json approvals --run "$1" | has '"rule": "on_unknown"' || { ctl -o json approvals --run "$1"; fail "$1: not an on_unknown approval"; }
	ctl -o json approvals --run "$1" | has '"reason": "unknown outcome: the call may or may not have run: #2 fs.write ' ||
		{ ctl -o json approvals --run "$1"; fail "$1: the reason does not name the call"; }
	echo "$p"
}

crash u1
start_serve "$CFG"
p=$(pending u1)
sleep 0.5
[ "$(appended u1)" = 0 ] || fail "u1: appended before the decision"
ctl approve "$p" >/dev/null || fail "u1: agentctl approve"
r=$(result u1)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs u1; fail "u1: $r"; }
[ "$(appended u1)" = 1 ] || fail "u1: appended $(appended u1) times, want 1"
[ "$(ctl logs u1 | grep -c '^append: ')" = 1 ] && ctl logs u1 | has -x "append: ok" || { ctl logs u1; fail "u1: the agent's answer"; }
echo "ok: serve killed mid-effect, restarted: the unknown outcome waits, agentctl approve appends once"
stop_serve TERM

crash u2
start_serve "$CFG"
p=$(pending u2)
ctl deny "$p" --comment "it may have run" >/dev/null || fail "u2: agentctl deny"
r=$(result u2)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs u2; fail "u2: $r"; }
[ "$(appended u2)" = 0 ] || fail "u2: appended $(appended u2) times, want 0"
[ "$(ctl logs u2 | grep -c '^append: ')" = 1 ] && ctl logs u2 | has -x "append: error -32004" || { ctl logs u2; fail "u2: the agent's answer"; }
echo "ok: agentctl deny answers -32004, nothing appended"
stop_serve TERM
