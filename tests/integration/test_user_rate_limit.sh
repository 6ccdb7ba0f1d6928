#!/bin/bash
# limits.user_calls_per_minute counts the calls of all of one user's runs in a
# store: two runs of root share one budget of 3 calls per minute (the second
# run is refused at its second call, which no per-run limit would refuse), and
# a run of another user (nobody) in the same store still gets all of its own.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to run as a second user"; exit 77; }
stage
cat > "$T/p.json" <<JSON
{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}],
 "limits": {"user_calls_per_minute": 3}}
JSON
chmod 644 "$T/p.json"
mkdir -p "$T/st"
run() { # run USER NAME N
	local u=$1 name=$2 n=$3
	(cd "$T/lib" && as_user "$u" env HOME="$T" "$AGENTD" run --id "$name" --state "$T/st" \
		--policy "$T/p.json" -- python3 budget_agent.py "$n" 0) >"$T/$name.out" 2>"$T/$name.err" ||
		{ cat "$T/$name.out" "$T/$name.err"; fail "$name: run failed"; }
}
# The agent's lines only: agentd's timeline goes to stderr, written after each
# reply, and would land inside a line printed in pieces.
expect() { # expect NAME LINE
	grep -qx -- "$2" "$T/$1.out" || { cat "$T/$1.out" "$T/$1.err"; fail "$1: expected '$2'"; }
}

run self a 2
expect a "call 1: ok"
expect a "call 2: ok"
run self b 2
expect b "call 1: ok"
expect b "call 2: limit user_calls_per_minute rule=limits.user_calls_per_minute code=-32005"
"$AGENTD" show b --state "$T/st" >"$T/show" 2>&1
grep -q "limits.user_calls_per_minute" "$T/show" || { cat "$T/show"; fail "b: the timeline does not name the limit"; }

# control: another user's run in the same store has a budget of its own
chown -R nobody "$T/st"
run nobody c 3
expect c "call 1: ok"
expect c "call 3: ok"
# and root's window is still full (nobody's calls did not free it, b's refusal did not fill it)
chown -R root "$T/st"
run self d 1
expect d "call 1: limit user_calls_per_minute rule=limits.user_calls_per_minute code=-32005"
echo "user rate limit: shared by one user's runs, not by another user's"
