#!/bin/bash
# tools/call replies with and without the result's text block ("_meta":
# {"agentd/text": false}), live and replayed, compared byte for byte by the
# agent (lib/text_agent.py); a _meta that is not an object is -32602.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
echo '{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}' >"$T/policy.json"
chmod 644 "$T/policy.json"
cd "$T/lib"
timeout 60 "$AGENTD" run --id text --state "$T/state" --policy "$T/policy.json" --max-restarts 1 \
	-- python3 text_agent.py >"$T/out" 2>&1 || { cat "$T/out"; fail "run failed"; }
cat "$T/out" | grep "^attempt"
for a in 1 2; do
	[ "$(grep -c "^attempt $a call" "$T/out")" -eq 5 ] || { cat "$T/out"; fail "attempt $a: not every call answered"; }
done
grep -q "attempt 2 started" "$T/out" || { cat "$T/out"; fail "no second attempt"; }
echo "tools/call text block: as asked, live and replayed"
