#!/bin/bash
# Budgets through real sandboxed runs: max_calls survives a supervisor crash
# (counters are rebuilt from the journal on resume), calls_per_minute,
# tool_calls_per_minute, max_spend with a per-tool cost, bytes_out, and
# "on_limit": "ask" answered both ways. A limit denial is -32005 and names the
# limit; its journal row names the rule "limits.NAME".
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
policy() { # policy FILE LIMITS_JSON
	cat > "$1" <<JSON
{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}],
 "limits": $2}
JSON
	chmod 644 "$1"
}
run() { # run NAME LIMITS N [agentd options...]
	local name=$1 limits=$2 n=$3; shift 3
	policy "$T/$name.json" "$limits"
	(cd "$T/lib" && "$AGENTD" run --id "$name" --state "$T/st" --policy "$T/$name.json" "$@" \
		-- python3 budget_agent.py "$n" 0) >"$T/$name.out" 2>"$T/$name.err" ||
		{ cat "$T/$name.out" "$T/$name.err"; fail "$name: run failed"; }
}
# The agent's lines only: agentd's timeline goes to stderr, written after each
# reply, and would land inside a line printed in pieces.
expect() { # expect NAME LINE
	grep -qx -- "$2" "$T/$1.out" || { cat "$T/$1.out" "$T/$1.err"; fail "$1: expected '$2'"; }
}
mkdir -p "$T/st"

# max_calls across a supervisor crash: 2 calls, SIGKILL agentd, resume.
policy "$T/max.json" '{"max_calls": 3}'
(cd "$T/lib" && exec "$AGENTD" run --id max --state "$T/st" --policy "$T/max.json" \
	-- python3 budget_agent.py 5 2) >"$T/max.out" 2>"$T/max.err" &
bg=$!
for _ in $(seq 400); do grep -q '^waiting$' "$T/max.out" && break; sleep 0.025; done
grep -q '^waiting$' "$T/max.out" || { cat "$T/max.out" "$T/max.err"; fail "max: agent never paused"; }
kill -KILL $bg; wait $bg 2>/dev/null || true
(cd "$T/lib" && "$AGENTD" resume max --state "$T/st") >"$T/max.out" 2>"$T/max.err" ||
	{ cat "$T/max.out" "$T/max.err"; fail "max: resume failed"; }
expect max "call 2: ok"
expect max "call 3: ok"
expect max "call 4: limit max_calls rule=limits.max_calls code=-32005"
expect max "call 5: limit max_calls rule=limits.max_calls code=-32005"
"$AGENTD" show max --state "$T/st" >"$T/show" 2>&1
grep -q "limits.max_calls" "$T/show" || { cat "$T/show"; fail "max: the timeline does not name the limit"; }

# control: without a limit all five calls run
run nolimit '{}' 5
expect nolimit "call 5: ok"

run cpm '{"calls_per_minute": 2}' 3
expect cpm "call 2: ok"
expect cpm "call 3: limit calls_per_minute rule=limits.calls_per_minute code=-32005"

run tcpm '{"tool_calls_per_minute": 1}' 2
expect tcpm "call 1: ok"
expect tcpm "call 2: limit tool_calls_per_minute rule=limits.tool_calls_per_minute code=-32005"

run spend '{"max_spend": 10, "cost": {"agentd.echo": 4}}' 3
expect spend "call 2: ok"
expect spend "call 3: limit max_spend rule=limits.max_spend code=-32005"

# an echo result ({"value":1}) is 11 bytes: the second call finds the budget spent
run bout '{"bytes_out": 10}' 2
expect bout "call 1: ok"
expect bout "call 2: limit bytes_out rule=limits.bytes_out code=-32005"

run bin '{"bytes_in": 10}' 1
expect bin "call 1: limit bytes_in rule=limits.bytes_in code=-32005"

run askdeny '{"max_calls": 1, "on_limit": "ask"}' 2 --deny
expect askdeny "call 1: ok"
expect askdeny "call 2: denied rule=limits.max_calls decision=ask"
run askok '{"max_calls": 1, "on_limit": "ask"}' 2 --approve
expect askok "call 2: ok"
echo "budgets: limits named in the denial, counters kept across a supervisor crash"
