#!/bin/bash
# Approvals and messages through agentd serve and agentctl:
# 1. a run waits on an approval, agentd is SIGKILLed and restarted, the
#    approval is given with `agentctl approve`: the run completes with every
#    effect exactly once;
# 2. an idle run suspends (no process), `agentctl approve --edit` restarts it;
#    a suspended run paused (before or after its suspension, and across a
#    restart of agentd) stays paused when its approval restarts it, until
#    `agentctl resume`;
# 3. `agentctl deny`;
# 4. `agentctl send --mode interrupt` answers the waiting call with the message.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
start_effects_server
mkdir -p "$T/policies"
cat > "$T/policies/default.json" <<JSON
{"version": 1, "rules": [
 {"id": "free", "tool": "http.request", "url_prefix": "$URL/effect/free-", "method": ["POST"], "decision": "allow"},
 {"id": "gate", "tool": "http.request", "url_prefix": "$URL/effect/gated-", "method": ["POST"], "decision": "ask"}
]}
JSON
applied() { counts | python3 -c 'import json,sys; print(json.load(sys.stdin)["applied"].get(sys.argv[1], 0))' "$1"; }
submit() { # NAME TAG [flags]
	local name=$1 tag=$2; shift 2
	(cd "$T/lib" && ctl -q run --name "$name" -- python3 interact_agent.py "$URL" "$tag" gated "$@") >/dev/null
}
pending() { # NAME: prints RUN/SEQ of its pending approval once there is one
	for _ in $(seq 150); do
		p=$(ctl -q approvals --run "$1")
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	fail "no pending approval for $1"
}
result() { api GET "/v1/runs/$1/result?wait=60"; }

# 1. SIGKILL of agentd while a run waits on its approval
start_serve '{"policy_dir": "'"$T/policies"'", "approval_idle_suspend_s": -1}'
submit k1 k1
p=$(pending k1)
stop_serve KILL || true
sleep 0.3
start_serve '{"policy_dir": "'"$T/policies"'", "approval_idle_suspend_s": -1}'
[ "$(ctl -q approvals --run k1)" = "$p" ] || fail "the approval did not survive SIGKILL"
ctl approve ${p%/*} ${p#*/} --comment "fine" >/dev/null || fail "agentctl approve"
r=$(result k1)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs k1; fail "k1: $r"; }
ctl logs k1 | has "asked: approved status=200" || { ctl logs k1; fail "k1 not approved"; }
for e in free-k1-1 free-k1-1b gated-k1 free-k1-2; do
	[ "$(applied $e)" = 1 ] || fail "k1: $e applied $(applied $e) times"
done
[ "$(ctl -q approvals --run k1 --status approved)" = "$p" ] || fail "approved listing"
ctl -o json approvals --run k1 --status all | has '"decided_by": "root"\|"decided_by": "'"$(id -un)"'"' || fail "decided_by"
ctl approve ${p%/*} ${p#*/} >/dev/null 2>&1 && fail "a decided approval was decided twice"
echo "ok: approve after SIGKILL"
stop_serve TERM

# 2. suspension: the idle run has no process; approving starts it again
start_serve '{"policy_dir": "'"$T/policies"'", "approval_idle_suspend_s": 1}'
submit s2 s2
p=$(pending s2)
for _ in $(seq 100); do
	[ "$(jget "$(api GET /v1/runs/s2)" 'd["status"]')" = suspended ] && break
	sleep 0.1
done
[ "$(jget "$(api GET /v1/runs/s2)" 'd["status"]')" = suspended ] || fail "s2 did not suspend"
ctl approve "$p" --edit '{"method": "POST", "url": "'"$URL"'/effect/gated-s2-edited"}' >/dev/null
r=$(result s2)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs s2; fail "s2: $r"; }
[ "$(applied gated-s2-edited)" = 1 ] && [ "$(applied gated-s2)" = 0 ] || fail "edited arguments not used"
[ "$(applied free-s2-1)" = 1 ] || fail "s2 repeated an effect after its restart"
echo "ok: suspended run restarted by its approval"

# 2b. a suspended run that is paused (after its suspension, or before it)
#     stays paused when its approval restarts it, until it is resumed
status() { jget "$(api GET "/v1/runs/$1")" 'd["status"]'; }
wait_status() { # NAME STATUS
	for _ in $(seq 100); do
		[ "$(status "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "$1: status $(status "$1"), not $2"
}
submit ps ps
p=$(pending ps)
wait_status ps suspended
ctl pause ps >/dev/null || fail "ps: pause of a suspended run"
[ "$(status ps)" = paused ] || fail "ps: after pause: $(status ps)"
api GET /v1/runs/ps/events | grep '"run.paused"' | has '"process": *false' ||
	fail "ps: no run.paused event for the pause of a suspended run"
stop_serve TERM
start_serve '{"policy_dir": "'"$T/policies"'", "approval_idle_suspend_s": 1}'
[ "$(status ps)" = paused ] || fail "ps: after a restart of agentd: $(status ps)"
[ "$(ctl -q approvals --run ps)" = "$p" ] || fail "ps: its approval after the restart"
submit pw pw
q=$(pending pw)
ctl pause pw >/dev/null || fail "pw: pause of a waiting run"
sleep 2 # past approval_idle_suspend_s: suspended while paused
[ "$(status pw)" = paused ] || fail "pw: suspended while paused: $(status pw)"
jget "$(api GET /v1/runs/pw)" 'd["reason"]' | has "suspended waiting" || fail "pw: not suspended"
ctl approve "$p" >/dev/null || fail "ps: approve"
ctl approve "$q" >/dev/null || fail "pw: approve"
sleep 2
for n in ps pw; do
	[ "$(status $n)" = paused ] || { ctl logs $n; fail "$n: after its approval: $(status $n)"; }
	[ "$(applied gated-$n)" = 0 ] && [ "$(applied free-$n-2)" = 0 ] ||
		fail "$n: went on while paused"
	ctl resume $n >/dev/null || fail "$n: resume"
	[ "$(api GET /v1/runs/$n/events | grep -c '"run.resumed"')" -ge 1 ] || fail "$n: no run.resumed event"
	r=$(result $n)
	[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs $n; fail "$n: $r"; }
	for e in free-$n-1 gated-$n free-$n-2; do
		[ "$(applied $e)" = 1 ] || fail "$n: $e applied $(applied $e) times"
	done
done
echo "ok: a paused suspended run stays paused when its approval restarts it"

# 3. deny
submit d3 d3
p=$(pending d3)
ctl deny "$p" --comment no >/dev/null
[ "$(jget "$(result d3)" 'd["status"]')" = succeeded ] || fail "d3"
ctl logs d3 | has "asked: denied" || { ctl logs d3; fail "d3 not denied"; }
[ "$(applied gated-d3)" = 0 ] || fail "a denied call ran"
echo "ok: deny"
stop_serve TERM

# 4. a message interrupts the waiting call
start_serve '{"policy_dir": "'"$T/policies"'", "approval_idle_suspend_s": -1}'
submit m4 m4
pending m4 >/dev/null
ctl send --mode interrupt m4 "please stop" >/dev/null || fail "agentctl send"
[ "$(jget "$(result m4)" 'd["status"]')" = succeeded ] || fail "m4"
ctl logs m4 | has "asked: interrupted message=please stop" || { ctl logs m4; fail "m4 not interrupted"; }
api POST /v1/runs/m4/messages '{"text": "late"}' >/dev/null
[ "$(code)" = 409 ] || fail "message to a finished run: $(code)"
api POST /v1/runs/m4/messages '{"text": "x", "mode": "shout"}' >/dev/null
[ "$(code)" = 400 ] || fail "bad mode: $(code)"
echo "ok: messages"
stop_serve TERM
echo "ok: serve approvals"
