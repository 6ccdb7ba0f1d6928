#!/bin/bash
# Automatic retention (durable.keep_states, agentd serve's keep_states):
# 1. storage stays bounded: with 8 KiB of arguments, result and state per
#    step, a run with keep_states 2 keeps at most 4 states and only the rows
#    after the oldest as text; doubling its steps adds tombstones only, while
#    a run without retention grows by every payload;
# 2. an agent that re-executes from the start (use_state false) is never
#    compacted;
# 3. after automatic compaction a SIGKILLed `agentd run` resumes from its
#    state and finishes;
# 4. agentd serve's "keep_states" applies to its runs; a bad value is refused.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
A="$T/inst/bin/agentd"
echo '{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}' >"$T/policy.json"
echo '{"keep_states": 2}' >"$T/keep2.json"
cat >"$T/lib/auto_agent.py" <<'PY'
import os, signal, sys
import agentd
n, hold, use_state = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "state"
pad = "x" * 8192
c = agentd.connect()
res = c.resume(use_state=use_state)
st = res.get("state") if use_state else None
i = st["i"] if st else 0
attempt = int(os.environ.get("AGENTD_ATTEMPT", "1"))
while i < n:
    i += 1
    assert c.call("agentd.echo", {"value": {"i": i, "pad": pad}})["value"]["i"] == i
    c.checkpoint({"i": i, "pad": pad})
    if attempt == 1 and i == hold:
        print("held", flush=True)
        signal.pause()
print(f"done {i} attempt {attempt}", flush=True)
PY
chmod a+r "$T/lib/auto_agent.py"

q() { sqlite3 "$1/agentd.db" "$2"; }
# run NAME STATE_DIR STEPS [OPTIONS...]
run() {
	local name=$1 s=$2 n=$3; shift 3
	(cd "$T/lib" && "$A" run --id "$name" --state "$s" --policy "$T/policy.json" "$@" \
		-- python3 auto_agent.py "$n" 0 state) >"$T/$name.out" 2>"$T/$name.err" ||
		{ cat "$T/$name.err"; fail "$name did not succeed"; }
	grep -q "^done $n attempt 1" "$T/$name.out" || fail "$name did not finish"
}
# the disk space the payload file takes (the long args and results; holes
# where retention gave texts back take none)
pbytes() { stat -c '%b %B' "$1/agentd.db-payloads" | awk '{ print $1 * $2 }'; }
# text bytes NAME STATE_DIR: args and results held as text in the rows, states,
# and the payload file's (one run per state directory here)
textbytes() { echo $(($(q "$2" "SELECT (SELECT COALESCE(SUM(IIF(typeof(args) = 'text', LENGTH(args), 0) + IIF(typeof(result) = 'text', LENGTH(result), 0)), 0) FROM journal j LEFT JOIN outcomes o ON o.id = j.id WHERE run = '$1') + (SELECT COALESCE(SUM(LENGTH(state)), 0) FROM states WHERE run = '$1')") + $(pbytes "$2"))); }
size() { echo $(($(stat -c %s "$1/agentd.db") + $(pbytes "$1"))); }

# 1. bounded
run keep300 "$T/s300" 300 --durable "$T/keep2.json"
run keep600 "$T/s600" 600 --durable "$T/keep2.json"
run none300 "$T/n300" 300
for r in "keep300 $T/s300" "keep600 $T/s600"; do
	set -- $r
	st=$(q "$2" "SELECT COUNT(*) FROM states WHERE run = '$1'")
	[ "$st" -ge 2 ] && [ "$st" -le 4 ] || fail "$1: $st states kept (want 2..4)"
	live=$(q "$2" "SELECT COUNT(*) FROM journal WHERE run = '$1' AND args != ''")
	[ "$live" -le 4 ] || fail "$1: $live rows not compacted (want at most 4)"
	b=$(textbytes "$1" "$2")
	[ "$b" -lt $((200 * 1024)) ] || fail "$1: $b bytes of text (want < 200 KiB)"
	"$A" show "$1" --state "$2" >/dev/null 2>"$T/$1.show" || { cat "$T/$1.show"; fail "$1: the compacted journal does not verify"; }
	"$A" show "$1" --state "$2" | grep -q "retention.compacted" || fail "$1: no retention.compacted event"
done
nb=$(textbytes none300 "$T/n300")
[ "$nb" -gt $((300 * 3 * 8192)) ] || fail "none300: only $nb bytes of text: the payloads are not what this test assumes"
[ "$(q "$T/n300" "SELECT COUNT(*) FROM states")" = 300 ] || fail "none300: states were dropped without retention"
s3=$(size "$T/s300"); s6=$(size "$T/s600"); sn=$(size "$T/n300")
# 300 more steps of 24 KiB each may add their tombstones, not their payloads.
[ $((s6 - s3)) -lt $((300 * 1024)) ] || fail "storage grows with the payloads: $s3 bytes after 300 steps, $s6 after 600"
[ "$s6" -lt $((sn / 5)) ] || fail "600 steps with retention take $s6 bytes, 300 without $sn"
echo "ok: bounded: $s3 bytes after 300 steps, $s6 after 600 (keep_states 2); $sn after 300 without"

# 2. an agent that re-executes from the start is never compacted
(cd "$T/lib" && "$A" run --id nostate --state "$T/s300" --policy "$T/policy.json" --durable "$T/keep2.json" \
	-- python3 auto_agent.py 20 0 nostate) >/dev/null 2>"$T/nostate.err" || { cat "$T/nostate.err"; fail "nostate"; }
[ "$(q "$T/s300" "SELECT COUNT(*) FROM journal WHERE run = 'nostate' AND args = ''")" = 0 ] ||
	fail "a run that re-executes from the start was compacted"

# 3. SIGKILL after automatic compaction, resume from the state
(cd "$T/lib" && exec "$A" run --id rs --state "$T/s300" --policy "$T/policy.json" --durable "$T/keep2.json" \
	-- python3 auto_agent.py 40 30 state) >"$T/rs.out" 2>"$T/rs.err" &
pid=$!
for _ in $(seq 300); do grep -q held "$T/rs.out" 2>/dev/null && break; sleep 0.05; done
grep -q held "$T/rs.out" || { cat "$T/rs.err"; fail "rs: attempt 1 did not reach #30"; }
kill -KILL $pid
wait $pid 2>/dev/null || true
c=$(q "$T/s300" "SELECT COUNT(*) FROM journal WHERE run = 'rs' AND args = ''")
[ "$c" -ge 20 ] || fail "rs: only $c rows compacted before the kill"
(cd "$T/lib" && "$A" resume rs --state "$T/s300") >"$T/rs.r" 2>"$T/rs.rerr" || { cat "$T/rs.rerr"; fail "rs: resume after automatic compaction"; }
grep -q "^done 40 attempt 2" "$T/rs.r" || { cat "$T/rs.r" "$T/rs.rerr"; fail "rs: the resumed run did not finish"; }
# fork: from a state that covers the compacted rows it copies them as they
# are; where no state covers them it is refused, saying why.
"$A" fork rs --at 35 --id rs-f35 --state "$T/s300" --no-start 2>"$T/f35.err" && fail "fork at #35 accepted with no state covering it"
grep -q "was compacted by retention and no state saved at or before #35 covers it" "$T/f35.err" || { cat "$T/f35.err"; fail "fork refusal does not say why"; }
at=$(q "$T/s300" "SELECT MIN(seq) FROM states WHERE run = 'rs'")
[ "$(q "$T/s300" "SELECT COUNT(*) FROM journal WHERE run = 'rs' AND args = '' AND seq < $at")" -ge 20 ] || fail "rs: the fork point has no compacted prefix"
(cd "$T/lib" && "$A" fork rs --at "$at" --id rs-f --state "$T/s300") >"$T/rsf.out" 2>"$T/rsf.err" || { cat "$T/rsf.err"; fail "fork at #$at after automatic compaction"; }
grep -q "^done 40 attempt" "$T/rsf.out" || { cat "$T/rsf.out" "$T/rsf.err"; fail "the fork did not finish"; }
[ "$(q "$T/s300" "SELECT COUNT(*) FROM journal WHERE run = 'rs-f' AND args = ''")" -ge 20 ] || fail "the fork's copied prefix is not compacted"
"$A" audit --run rs-f --state "$T/s300" >/dev/null 2>"$T/rsf.audit" || { cat "$T/rsf.audit"; fail "the fork's journal does not verify"; }
echo "ok: resume and fork after automatic compaction"

# 4. agentd serve: "keep_states" is the default of its runs
mkdir -p "$T/pol" && cp "$T/policy.json" "$T/pol/default.json"
start_serve '{"policy_dir": "'"$T/pol"'", "keep_states": 3}'
(cd "$T/lib" && ctl -q run --name sv --wait -- python3 auto_agent.py 30 0 state) >/dev/null || fail "serve run"
st=$(q "$STATE" "SELECT COUNT(*) FROM states WHERE run = 'sv'")
[ "$st" -ge 3 ] && [ "$st" -le 6 ] || fail "serve: $st states kept (want 3..6)"
[ "$(q "$STATE" "SELECT COUNT(*) FROM journal WHERE run = 'sv' AND args = ''")" -ge 20 ] || fail "serve: not compacted"
stop_serve TERM
printf '{"keep_states": -1}\n' >"$T/bad.json"
"$A" serve --config "$T/bad.json" --state "$T/bad" --socket "$T/bad.sock" 2>"$T/bad.err" && fail "keep_states -1 accepted"
grep -q "keep_states must be 0..1000" "$T/bad.err" || { cat "$T/bad.err"; fail "no clear error for keep_states -1"; }
echo '{"keep_states": 0.5}' >"$T/bad.json"
"$A" run --id bad --state "$T/bad" --durable "$T/bad.json" -- true 2>"$T/bad.err" && fail "durable keep_states 0.5 accepted"
echo '{"keep_states": 1001}' >"$T/bad.json"
"$A" run --id bad --state "$T/bad" --durable "$T/bad.json" -- true 2>"$T/bad.err" && fail "durable keep_states 1001 accepted"
grep -q "keep_states 0..1000" "$T/bad.err" || { cat "$T/bad.err"; fail "no clear error for durable keep_states 1001"; }
echo "ok: retention automatic"
