#!/bin/bash
# SIGKILL the agent at every call boundary of a 20-call run (as root and, when
# root, also rootless as nobody): every run must end successfully with every
# side effect applied exactly once and never even requested twice, since
# completed calls are answered from the journal.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
start_effects_server
N=20
runs=0
for user in $(test_users); do
	for k in $(seq 1 $N); do
		d="$T/$user-$k"
		mkdir -p "$d/out" "$d/state"
		[ "$user" = self ] || chown -R "$user" "$d"
		counter_policy "$d/out"
		(cd "$T/lib" && as_user "$user" "$AGENTD" run --id "k$k" --state "$d/state" \
			--policy "$T/policy.json" -- python3 counter_agent.py "$URL" "$user$k" $N "$d/out" "$k") \
			>"$d/log" 2>&1 || { cat "$d/log"; fail "$user: run killed at call $k did not succeed"; }
		grep -q "killed by SIGKILL" "$d/log" || { cat "$d/log"; fail "$user k=$k: no crash seen"; }
		[ "$k" = $N ] || grep -q "replayed" "$d/log" || { cat "$d/log"; fail "$user k=$k: no replay seen"; }
		[ -f "$d/out/done.txt" ] || fail "$user k=$k: agent did not finish"
		check_exactly_once "$user$k" $N 1 || { cat "$d/log"; fail "$user k=$k"; }
		runs=$((runs + 1))
	done
done
echo "crash at every call boundary: $runs runs, every effect applied exactly once"
