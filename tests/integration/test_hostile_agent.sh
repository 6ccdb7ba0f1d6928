#!/bin/bash
# Bad input on the agent channel: garbage, invalid UTF-8, 100k-deep nesting,
# duplicate keys, unknown methods, wrong shapes and a 100 MB line each get a
# JSON-RPC error and the channel keeps working; a frame cut off by exit and a
# flood end the run cleanly with a recorded reason. agentd never crashes or hangs.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
cd "$T/lib"
for mode in garbage utf8 deep dupkeys unknown badshape bigline; do
	timeout 60 "$AGENTD" run --id "$mode" --state "$T/state" --max-restarts 0 -- \
		python3 hostile_agent.py "$mode" >"$T/$mode.log" 2>&1 ||
		{ cat "$T/$mode.log"; fail "$mode: run did not succeed"; }
	grep -q "channel still works" "$T/$mode.log" || { cat "$T/$mode.log"; fail "$mode"; }
	echo "ok: $mode"
done

set +e
timeout 60 "$AGENTD" run --id midframe --state "$T/state" --max-restarts 0 -- \
	python3 hostile_agent.py midframe >"$T/midframe.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$T/midframe.log"; fail "midframe: rc $rc"; }
grep -q "channel closed mid-frame" "$T/midframe.log" || { cat "$T/midframe.log"; fail "midframe: reason not recorded"; }
"$AGENTD" show midframe --state "$T/state" | grep -q "mid-frame" || fail "midframe: not in the stored timeline"
echo "ok: midframe"

set +e
timeout 60 "$AGENTD" run --id flood --state "$T/state" --max-restarts 0 -- \
	python3 hostile_agent.py flood >"$T/flood.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$T/flood.log"; fail "flood: rc $rc (124 = hang)"; }
grep -q "too much malformed input" "$T/flood.log" || { cat "$T/flood.log"; fail "flood: no reason"; }
echo "ok: flood"
"$AGENTD" runs --state "$T/state" >/dev/null || fail "store unreadable after hostile runs"
echo "hostile agent: all modes handled"
