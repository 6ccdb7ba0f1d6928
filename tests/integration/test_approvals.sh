#!/bin/bash
# Durable approvals through `agentd run --durable-approvals`: an ask makes the
# call wait, the idle run suspends (exit 75), `agentd approve` from another
# process records the decision, `agentd resume` replays up to the call, which
# then runs exactly once. Also: approval of a live run from another process,
# the deny path, expiry while waiting and expiry while suspended.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
start_effects_server
mkdir -p "$T/work"
chmod 755 "$T/work"
cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [
 {"id": "free", "tool": "http.request", "url_prefix": "$URL/effect/free-", "method": ["POST"], "decision": "allow"},
 {"id": "gate", "tool": "http.request", "url_prefix": "$URL/effect/gated-", "method": ["POST"], "decision": "ask", "approvers": ["alice"]},
 {"id": "gate-short", "tool": "http.request", "url_prefix": "$URL/effect/short-", "method": ["POST"], "decision": "ask", "expires": "1s"},
 {"id": "gate-mid", "tool": "http.request", "url_prefix": "$URL/effect/mid-", "method": ["POST"], "decision": "ask", "expires": "2s"}
]}
JSON
chmod 644 "$T/policy.json"
st="$T/state"
A() { "$AGENTD" "$@" --state "$st"; }
applied() { counts | python3 -c 'import json,sys; print(json.load(sys.stdin)["applied"].get(sys.argv[1], 0))' "$1"; }
run_agent() { # NAME TAG GATED IDLE [flags...]: agentd run in $T/lib
	local name=$1 tag=$2 gated=$3 idle=$4; shift 4
	(cd "$T/lib" && "$AGENTD" run --state "$st" --id "$name" --policy "$T/policy.json" \
		--durable-approvals --approval-idle-suspend "$idle" \
		-- python3 interact_agent.py "$URL" "$tag" "$gated" "$@")
}
wait_pending() { # NAME SEQ: until the approval is listed pending
	for _ in $(seq 100); do
		A approvals "$1" --status pending | grep -q "^$1 *$2 " && return 0
		sleep 0.1
	done
	fail "no pending approval $1 #$2"
}

# 1. Suspend, approve from another process, resume: exactly once.
rc=0; run_agent s1 s1 gated 1 >"$T/out1" 2>&1 || rc=$?
[ $rc = 75 ] || { cat "$T/out1"; fail "suspended run exited $rc, not 75"; }
grep -q "suspended waiting for approval of call #3" "$T/out1" || { cat "$T/out1"; fail "suspension message"; }
A runs | grep -q "^s1 *suspended" || fail "store status is not suspended"
A approvals s1 | grep -q "^s1 *3 *http.request *pending *gate " || { A approvals s1; fail "approval row"; }
[ "$(applied gated-s1)" = 0 ] || fail "the gated effect ran before approval"
A approve s1 3 --comment "looks fine" >/dev/null || fail "approve"
A approve s1 3 2>/dev/null && fail "a second decision was accepted"
(cd "$T/lib" && "$AGENTD" resume s1 --state "$st") >"$T/out1b" 2>&1 || { cat "$T/out1b"; fail "resume after approval"; }
grep -q "^\[2\] asked: approved status=200 replayed=False" "$T/out1b" || { cat "$T/out1b"; fail "approved call did not run"; }
grep -q "^\[2\] done" "$T/out1b" || fail "agent did not finish"
for e in free-s1-1 free-s1-1b gated-s1 free-s1-2; do
	[ "$(applied $e)" = 1 ] || fail "$e applied $(applied $e) times"
done
A approvals s1 --json | grep -q '"decided_by":"root".*"status":"approved"' ||
	A approvals s1 --json | grep -q '"status":"approved"' || fail "approval not recorded"
A show s1 | grep -q "approval.suspended" || fail "no approval.suspended event"
echo "ok: suspend, approve, resume, exactly once"

# 2. A live run approved from another process (the supervisor polls the store).
run_agent s2 s2 gated 30 >"$T/out2" 2>&1 &
pid=$!; PIDS+=($pid)
wait_pending s2 3
A approve s2 3 --by alice >/dev/null || fail "approve live"
wait $pid || { cat "$T/out2"; fail "live run failed after approval"; }
grep -q "^\[1\] asked: approved status=200" "$T/out2" || { cat "$T/out2"; fail "live approval"; }
[ "$(applied gated-s2)" = 1 ] || fail "gated-s2 applied $(applied gated-s2) times"
echo "ok: live approval from another process"

# 3. Deny while suspended: the resumed call is refused, the effect never runs.
rc=0; run_agent s3 s3 gated 1 >"$T/out3" 2>&1 || rc=$?
[ $rc = 75 ] || { cat "$T/out3"; fail "s3 exited $rc"; }
A approve s3 3 --deny --comment "not now" >/dev/null || fail "deny"
(cd "$T/lib" && "$AGENTD" resume s3 --state "$st") >"$T/out3b" 2>&1 || { cat "$T/out3b"; fail "resume after deny"; }
grep -q "^\[2\] asked: denied reason=not now approved=False" "$T/out3b" || { cat "$T/out3b"; fail "denial"; }
[ "$(applied gated-s3)" = 0 ] || fail "denied effect applied"
[ "$(applied free-s3-2)" = 1 ] || fail "free-s3-2 after the denial"
echo "ok: deny"

# 4. Expiry while the call waits (rule expires in 1 s, no suspension).
run_agent s4 s4 short 30 >"$T/out4" 2>&1 || { cat "$T/out4"; fail "s4 failed"; }
grep -q "^\[1\] asked: denied reason=the approval expired approved=False" "$T/out4" || { cat "$T/out4"; fail "expiry"; }
A approvals s4 | grep -q "^s4 *3 *http.request *expired" || fail "expired not recorded"
A approve s4 3 2>/dev/null && fail "an expired approval was approved"
[ "$(applied short-s4)" = 0 ] || fail "expired effect applied"
echo "ok: expiry while waiting"

# 5. Expiry while suspended (2 s, suspended after 1 s): approving too late
# fails, resume denies.
rc=0; (cd "$T/lib" && "$AGENTD" run --state "$st" --id s5 --policy "$T/policy.json" \
	--approval-idle-suspend 1 -- python3 interact_agent.py "$URL" s5 mid) >"$T/out5" 2>&1 || rc=$?
[ $rc = 75 ] || { cat "$T/out5"; fail "s5 exited $rc"; }
sleep 1.5
rc=0; A approve s5 3 2>"$T/err5" || rc=$?
[ $rc = 1 ] && grep -q "expired" "$T/err5" || { cat "$T/err5"; fail "late approval accepted"; }
(cd "$T/lib" && "$AGENTD" resume s5 --state "$st") >"$T/out5b" 2>&1 || { cat "$T/out5b"; fail "resume s5"; }
grep -q "^\[2\] asked: denied reason=the approval expired" "$T/out5b" || { cat "$T/out5b"; fail "expired on resume"; }
echo "ok: expiry while suspended"
# 6. Approved with edited arguments: the tool runs on the edit, the journal
# keeps the agent's call.
rc=0; run_agent s6 s6 gated 1 >"$T/out6" 2>&1 || rc=$?
[ $rc = 75 ] || { cat "$T/out6"; fail "s6 exited $rc"; }
A approve s6 3 --args "{\"method\":\"POST\",\"url\":\"$URL/effect/gated-s6-edited\"}" >/dev/null || fail "approve --args"
(cd "$T/lib" && "$AGENTD" resume s6 --state "$st") >"$T/out6b" 2>&1 || { cat "$T/out6b"; fail "resume s6"; }
grep -q "^\[2\] asked: approved status=200" "$T/out6b" || { cat "$T/out6b"; fail "edited call"; }
[ "$(applied gated-s6-edited)" = 1 ] && [ "$(applied gated-s6)" = 0 ] || fail "the edit was not what ran"
A show s6 | grep -q "ask:edited" || fail "journal decision ask:edited"
A approvals s6 --json | grep -q '"edited_args":{"method":"POST"' || fail "edit not recorded"
echo "ok: approve with edited arguments"
echo "durable approvals: all paths as expected"
