#!/bin/bash
# Retention end to end: `agentd admin compact NAME --keep N` compacts the
# journal rows before the oldest state kept; a resume from the state still
# replays the calls after it and goes live, while an attempt that re-executes
# from the start (use_state false) is refused at the first compacted call.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
S="$T/state"
A="$T/inst/bin/agentd"
echo '{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}' >"$T/policy.json"
cat >"$T/lib/ret_agent.py" <<'PY'
import os, signal, sys
import agentd
use_state = sys.argv[1] == "state"
c = agentd.connect()
res = c.resume(use_state=use_state)
st = res.get("state") if use_state else None
i = st["i"] if st else 0
attempt = int(os.environ.get("AGENTD_ATTEMPT", "1"))
while i < 10:
    i += 1
    assert c.call("agentd.echo", {"value": i})["value"] == i
    if i % 4 == 0:
        c.checkpoint({"i": i})
    if attempt == 1 and i == 6:
        print("held", flush=True)
        signal.pause()
print(f"done {i} attempt {attempt}", flush=True)
PY
chmod a+r "$T/lib/ret_agent.py"
for mode in state nostate; do
	# agentd run is SIGKILLed after call #6: the run stays resumable.
	(cd "$T/lib" && exec "$A" run --id "$mode" --state "$S" --policy "$T/policy.json" \
		-- python3 ret_agent.py "$mode") >"$T/$mode.out" 2>"$T/$mode.err" &
	pid=$!
	for _ in $(seq 200); do grep -q held "$T/$mode.out" 2>/dev/null && break; sleep 0.05; done
	grep -q held "$T/$mode.out" || { cat "$T/$mode.err"; fail "$mode: attempt 1 did not reach #6"; }
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	"$A" admin compact "$mode" --keep 2 --state "$S" >"$T/$mode.c0" || fail "$mode: compact --keep 2"
	grep -q ": 0 journal rows compacted" "$T/$mode.c0" || { cat "$T/$mode.c0"; fail "$mode: compacted with too few states"; }
	"$A" admin compact "$mode" --keep 1 --state "$S" >"$T/$mode.c1" || fail "$mode: compact --keep 1"
	grep -q ": 4 journal rows compacted" "$T/$mode.c1" || { cat "$T/$mode.c1"; fail "$mode: expected rows 1-4 compacted"; }
	"$A" show "$mode" --state "$S" >/dev/null 2>"$T/$mode.show" || { cat "$T/$mode.show"; fail "$mode: compacted journal does not verify"; }
	"$A" audit --run "$mode" --state "$S" >"$T/$mode.audit" 2>&1 || { cat "$T/$mode.audit"; fail "$mode: audit of a compacted journal"; }
done
"$A" admin compact state --keep 0 --state "$S" 2>/dev/null && fail "--keep 0 accepted"
"$A" admin compact nosuchrun --keep 1 --state "$S" 2>/dev/null && fail "unknown run accepted"
"$A" fork state --at 3 --id fk --state "$S" --no-start 2>"$T/fk.err" && fail "fork into the compacted prefix accepted"
grep -q "compacted" "$T/fk.err" || { cat "$T/fk.err"; fail "fork refusal does not say why"; }

# From the state (#4): #5 and #6 replayed, #7..#10 live.
(cd "$T/lib" && "$A" resume state --state "$S") >"$T/state.r" 2>"$T/state.rerr" || { cat "$T/state.rerr"; fail "resume from the state after compaction"; }
grep -q "done 10 attempt 2" "$T/state.r" || { cat "$T/state.r" "$T/state.rerr"; fail "resumed run did not finish"; }
[ "$(grep -c 'replayed' "$T/state.rerr")" -ge 1 ] || { cat "$T/state.rerr"; fail "calls after the state were not replayed"; }
# From the start: the first call hits a compacted row; the run fails, saying so.
(cd "$T/lib" && "$A" resume nostate --state "$S") >"$T/nostate.r" 2>"$T/nostate.rerr" && fail "re-execution into a compacted prefix succeeded"
grep -q "compacted by retention" "$T/nostate.rerr" || { cat "$T/nostate.rerr"; fail "failure does not name the compaction"; }
echo "retention: compact, resume from state, refusals ok"
