#!/bin/bash
# on_unknown end to end. `agentd run` is SIGKILLed while an `effect` call (an
# fs.write append) is in flight: the intent is journaled, the append has not
# happened (strace holds the supervisor at the append's openat2). `agentd
# resume` then finds an unknown outcome and does what the run's policy says:
#   retry (a rule's on_unknown)  the append is rerun: the ledger has it once;
#   skip (the policy's)          the agent gets -32004 and goes on, no append;
#   fail                         the run fails naming the call, no append;
#   nothing (default: ask)       the approver decides: --approve reruns it,
#                                --deny answers -32004;
#   a rule's retry under --durable's skip: the stricter (skip) wins;
#   durable approvals (as in agentd serve): an approval row at the intent's
#   seq, decided from another process: approve reruns once, deny answers
#   -32004, expiry too; an idle wait suspends the run and the decision
#   outlives it; a call whose ask rule approved it is asked again; so is an
#   approved rerun that a second crash interrupts.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
has() { grep "$@" >/dev/null; }
# Each run NAME keeps the agent's lines (stdout) in $T/NAME/agent and agentd's
# (stderr, where the agent's stderr goes too) in $T/NAME/log: agentd writes a
# call's timeline line after the reply, so in one file it could land inside
# the line the agent prints next, which is printed in pieces.
logs() { cat "$T/$1/agent" "$T/$1/log"; } # NAME
command -v strace >/dev/null || { echo "SKIP: strace is not installed (apt-get install strace): it holds the supervisor mid-call"; exit 77; }
strace -o /dev/null true 2>/dev/null || { echo "SKIP: ptrace is not permitted here (strace cannot trace)"; exit 77; }
stage
cp "$SRC"/tests/chaos/lib/unknown_agent.py "$T/lib/"
S="$T/state"

# crash NAME TOP RULE [RUN OPTIONS...]: start run NAME with the policy's
# on_unknown TOP (or none) and the ledger rule's RULE (or none), SIGKILL its
# supervisor while the append is in flight.
crash() {
	local name=$1 top=$2 rule=$3; shift 3
	local d="$T/$name"
	mkdir -p "$d/out"
	python3 - "$d" "$top" "$rule" <<'PY'
import json, os, sys
d, top, rule = sys.argv[1:4]
ledger = {"id": "ledger", "tool": "fs.write", "path": d + "/out/ledger.txt",
          "decision": os.environ.get("LEDGER", "allow")}
if os.environ.get("LEDGER_EXPIRES"):
    ledger["expires"] = os.environ["LEDGER_EXPIRES"]
if rule != "-":
    ledger["on_unknown"] = rule
p = {"version": 1, "rules": [
    {"id": "echo", "tool": "agentd.echo", "decision": "allow"}, ledger,
    {"id": "done", "tool": "fs.write", "path": d + "/out/done.txt", "decision": "allow"}]}
if top != "-":
    p["on_unknown"] = top
json.dump(p, open(d + "/policy.json", "w"))
PY
	(cd "$T/lib" && exec strace -o /dev/null -e trace=openat2 -e inject=openat2:delay_enter=60s \
		"$AGENTD" run --id "$name" --state "$S" --policy "$d/policy.json" "$@" \
		-- python3 unknown_agent.py "$d/out") >"$d/agent" 2>"$d/log" &
	local tracer=$!
	PIDS+=($tracer)
	for _ in $(seq 300); do
		# An ask rule (LEDGER=ask, durable approvals): approved before it runs.
		[ "${LEDGER:-}" != ask ] || "$AGENTD" approve "$name" 2 --state "$S" >/dev/null 2>&1 || true
		"$AGENTD" show "$name" --state "$S" 2>/dev/null | has '#2 .*fs.write.*unknown outcome' && break
		sleep 0.05
	done
	"$AGENTD" show "$name" --state "$S" | has '#2 .*fs.write.*unknown outcome' ||
		{ logs "$name"; fail "$name: the append's intent was never journaled"; }
	local sv
	sv=$(pgrep -P $tracer) || fail "$name: no supervisor to kill"
	# The kill is pending while strace holds it at the openat2; once strace
	# is gone it dies without entering the call (a fatal signal aborts a
	# syscall at its entry stop).
	kill -KILL $sv
	kill -KILL $tracer
	wait $tracer 2>/dev/null || true
	for _ in $(seq 200); do kill -0 $sv 2>/dev/null || break; sleep 0.02; done
	! kill -0 $sv 2>/dev/null || fail "$name: the supervisor survived SIGKILL"
	[ ! -e "$d/out/ledger.txt" ] || fail "$name: the append ran before the kill"
}

# resume NAME [OPTIONS...]: resume after the crash; prints its exit status
resume() {
	local name=$1 rc=0; shift
	(cd "$T/lib" && "$AGENTD" resume "$name" --state "$S" "$@") >>"$T/$name/agent" 2>>"$T/$name/log" || rc=$?
	echo $rc
}

appended() { # NAME: how many times the ledger got the entry
	[ -e "$T/$1/out/ledger.txt" ] && grep -c '^entry$' "$T/$1/out/ledger.txt" || echo 0
}

expect() { # NAME RC APPENDS AGENT_LINE: the resume's outcome
	local name=$1 rc=$2 n=$3 line=$4 log="$T/$1/log" agent="$T/$1/agent"
	has "#2 fs.write: a crash left its outcome unknown (effect)" "$log" ||
		{ logs "$name"; fail "$name: the unknown outcome was not found"; }
	[ "$(appended "$name")" = "$n" ] || { logs "$name"; fail "$name: appended $(appended "$name") times, want $n"; }
	if [ -n "$line" ]; then
		has -x "$line" "$agent" || { logs "$name"; fail "$name: the agent did not print '$line'"; }
		has -x finished "$agent" || { logs "$name"; fail "$name: the agent did not finish"; }
	fi
	[ "$rc" = 0 ] || { logs "$name"; fail "$name: resume exited $rc"; }
}

crash retry - retry
expect retry "$(resume retry)" 1 "append: ok"
echo "ok: on_unknown retry (rule) reruns the effect once"

crash skip skip -
expect skip "$(resume skip)" 0 "append: error -32004"
echo "ok: on_unknown skip (policy) answers -32004, the agent goes on"

crash failing fail -
rc=$(resume failing)
[ "$rc" != 0 ] || { logs failing; fail "failing: resume succeeded"; }
has "#2 fs.write: a crash left this effect's outcome unknown (on_unknown: fail)" "$T/failing/log" ||
	{ logs failing; fail "failing: no reason naming the call"; }
[ "$(appended failing)" = 0 ] && [ ! -e "$T/failing/out/done.txt" ] || fail "failing: the run went on"
"$AGENTD" runs --state "$S" | has '^failing .*failed' || { "$AGENTD" runs --state "$S"; fail "failing: not failed"; }
echo "ok: on_unknown fail (policy) fails the run"

crash asked - -
expect asked "$(resume asked --approve)" 1 "append: ok"
crash refused - -
expect refused "$(resume refused --deny)" 0 "append: error -32004"
echo "ok: no on_unknown: the approver decides (approve reruns, deny answers -32004)"

printf '{"on_unknown": "skip"}\n' > "$T/durable.json"
crash stricter - retry --durable "$T/durable.json"
expect stricter "$(resume stricter)" 0 "append: error -32004"
echo "ok: the stricter of the policy (retry) and --durable (skip) wins"

# Durable approvals (--durable-approvals, as in agentd serve): the rerun waits
# for an approval row at the intent's seq (rule on_unknown), decided from
# another process. No terminal is ever asked: stdin is a pipe nobody writes.
wait_pending() { # NAME: until #2's unknown-outcome approval is listed pending
	for _ in $(seq 200); do
		"$AGENTD" approvals "$1" --state "$S" --status pending | has "^$1 *2 *fs.write *pending *on_unknown " && return 0
		sleep 0.05
	done
	"$AGENTD" approvals "$1" --state "$S"; logs "$1"; fail "$1: no pending approval for #2"
}
check_row() { # NAME: the row says what is asked, naming the call and its args
	"$AGENTD" approvals "$1" --state "$S" --json | python3 -c '
import json, sys
a = json.loads(sys.stdin.readline())
want = "unknown outcome: the call may or may not have run: #2 fs.write "
assert a["reason"].startswith(want), a["reason"]
assert json.loads(a["reason"][len(want):]) == a["args"], a
assert a["args"]["path"] == sys.argv[1] + "/out/ledger.txt", a
' "$T/$1" || fail "$1: the approval row"
}
# resume_waiting NAME [OPTIONS...]: resume in the background (pid in $bg)
resume_waiting() {
	local name=$1; shift
	(cd "$T/lib" && exec "$AGENTD" resume "$name" --state "$S" --durable-approvals "$@" \
		< <(exec sleep 60 2>/dev/null)) >>"$T/$name/agent" 2>>"$T/$name/log" &
	bg=$!
	PIDS+=($bg)
}
finish() { rc=0; wait "$1" || rc=$?; } # PID: its exit status in $rc
once() { # NAME: the agent saw one answer for the append
	[ "$(grep -c '^append: ' "$T/$1/agent")" = 1 ] || { logs "$1"; fail "$1: the agent saw $(grep -c '^append: ' "$T/$1/agent") answers for the append"; }
}

crash waiting - - --durable-approvals
resume_waiting waiting
wait_pending waiting
check_row waiting
sleep 0.5
kill -0 $bg 2>/dev/null || { logs waiting; fail "waiting: the resume did not wait"; }
[ "$(appended waiting)" = 0 ] || fail "waiting: the append was rerun before the decision"
"$AGENTD" approve waiting 2 --state "$S" >/dev/null || fail "waiting: approve"
finish $bg
expect waiting $rc 1 "append: ok"
once waiting
"$AGENTD" approvals waiting --state "$S" | has "^waiting *2 *fs.write *approved *on_unknown " || fail "waiting: the row is not approved"
echo "ok: durable approvals: the unknown outcome waits for its approval, approve reruns it once"

crash refused2 - - --durable-approvals
resume_waiting refused2
wait_pending refused2
"$AGENTD" approve refused2 2 --deny --comment "it ran" --state "$S" >/dev/null || fail "refused2: deny"
finish $bg
expect refused2 $rc 0 "append: error -32004"
once refused2
echo "ok: durable approvals: deny answers -32004, no append"

# The call's own rule asked and was approved before it ran: that approved
# one run; its rerun is asked again at the same seq.
LEDGER=ask crash reasked - - --durable-approvals
"$AGENTD" approvals reasked --state "$S" | has "^reasked *2 *fs.write *approved *ledger " ||
	{ "$AGENTD" approvals reasked --state "$S"; fail "reasked: the call's own approval"; }
LEDGER=ask resume_waiting reasked
wait_pending reasked
check_row reasked
"$AGENTD" approve reasked 2 --state "$S" >/dev/null || fail "reasked: approve"
finish $bg
expect reasked $rc 1 "append: ok"
once reasked
echo "ok: durable approvals: an approved call's unknown outcome is asked again, approve reruns it once"

# The rule's expiry applies to the rerun's approval too: expired is denied.
LEDGER=ask LEDGER_EXPIRES=3s crash expiring - - --durable-approvals
LEDGER=ask resume_waiting expiring
wait_pending expiring
finish $bg
expect expiring $rc 0 "append: error -32004"
once expiring
"$AGENTD" approvals expiring --state "$S" | has "^expiring *2 *fs.write *expired *on_unknown " ||
	{ "$AGENTD" approvals expiring --state "$S"; fail "expiring: the row did not expire"; }
echo "ok: durable approvals: an expired approval of the rerun answers -32004, no append"

# Idle: the run suspends; the row outlives the process; the decision is
# found when a resume replays to the call.
crash idle - - --durable-approvals
rc=$(resume idle --durable-approvals --approval-idle-suspend 1 < <(exec sleep 60 2>/dev/null))
[ "$rc" = 75 ] || { logs idle; fail "idle: the resume exited $rc, not 75 (suspended)"; }
has "suspended waiting for approval of call #2" "$T/idle/log" || { logs idle; fail "idle: no suspension"; }
wait_pending idle
[ "$(appended idle)" = 0 ] || fail "idle: appended before the decision"
"$AGENTD" approve idle 2 --state "$S" >/dev/null || fail "idle: approve"
expect idle "$(resume idle --durable-approvals)" 1 "append: ok"
once idle
[ "$("$AGENTD" approvals idle --state "$S" | grep -c '^idle ')" = 1 ] || { "$AGENTD" approvals idle --state "$S"; fail "idle: more than one approval"; }
echo "ok: durable approvals: suspended while waiting, approved, resumed: applied once"

# The approved rerun is itself interrupted (the append may have run again):
# the approval covered that one rerun, so the next resume asks again, a new
# pending row, and nothing reruns before it is decided.
rerun_attempt() { # NAME: the attempt that started the approved rerun (0: none)
	"$AGENTD" approvals "$1" --state "$S" --json |
		python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["rerun_attempt"])'
}
crash rerun - - --durable-approvals
(cd "$T/lib" && exec strace -o /dev/null -e trace=openat2 -e inject=openat2:delay_enter=60s \
	"$AGENTD" resume rerun --state "$S" --durable-approvals \
	< <(exec sleep 60 2>/dev/null)) >>"$T/rerun/agent" 2>>"$T/rerun/log" &
tracer=$!
PIDS+=($tracer)
wait_pending rerun
"$AGENTD" approve rerun 2 --state "$S" >/dev/null || fail "rerun: approve"
# Until the rerun has started (strace then holds it at the append's openat2);
# at most 10 s, then the kill lands wherever it is.
for _ in $(seq 200); do
	[ "$(rerun_attempt rerun)" = 0 ] || break
	sleep 0.05
done
sv=$(pgrep -P $tracer) || { logs rerun; fail "rerun: no supervisor to kill"; }
kill -KILL $sv
kill -KILL $tracer
wait $tracer 2>/dev/null || true
for _ in $(seq 200); do kill -0 $sv 2>/dev/null || break; sleep 0.02; done
! kill -0 $sv 2>/dev/null || fail "rerun: the supervisor survived SIGKILL"
[ "$(appended rerun)" = 0 ] || fail "rerun: the held rerun appended"
resume_waiting rerun
wait_pending rerun
"$AGENTD" approvals rerun --state "$S" --json | python3 -c '
import json, re, sys
a = json.loads(sys.stdin.readline())
assert a["status"] == "pending" and a["rerun_attempt"] == 0, a
assert re.fullmatch(r"unknown outcome: the call may or may not have run: #2 fs\.write \{.*\}; "
                    r"its approved rerun \(attempt [0-9]+\) was interrupted too and may have run again",
                    a["reason"]), a["reason"]
assert a["args"]["path"] == sys.argv[1] + "/out/ledger.txt", a
' "$T/rerun" || fail "rerun: the new approval row"
sleep 0.5
kill -0 $bg 2>/dev/null || { logs rerun; fail "rerun: the resume did not wait"; }
[ "$(appended rerun)" = 0 ] || { logs rerun; fail "rerun: the append was rerun again without a decision"; }
"$AGENTD" approve rerun 2 --state "$S" >/dev/null || fail "rerun: approve again"
finish $bg
expect rerun $rc 1 "append: ok"
once rerun
"$AGENTD" approvals rerun --state "$S" | has "^rerun *2 *fs.write *approved *on_unknown " ||
	{ "$AGENTD" approvals rerun --state "$S"; fail "rerun: the row is not approved"; }
echo "ok: durable approvals: an approved rerun interrupted by a crash is asked again, approve appends once"
