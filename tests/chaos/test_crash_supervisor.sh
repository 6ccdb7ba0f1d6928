#!/bin/bash
# SIGKILL `agentd run` itself in the middle of a 20-call run, then continue with
# `agentd resume`: every effect applied exactly once. A call whose intent was
# journaled but whose result was not is rerun with the same Idempotency-Key, so
# the service may see it twice but applies it once.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
start_effects_server
N=20
runs=0
for user in $(test_users); do
	for k in 2 5 9 13 17; do
		d="$T/$user-$k"
		mkdir -p "$d/out" "$d/state"
		[ "$user" = self ] || chown -R "$user" "$d"
		counter_policy "$d/out"
		(cd "$T/lib" && as_user "$user" "$AGENTD" run --id sv --state "$d/state" \
			--policy "$T/policy.json" -- python3 counter_agent.py "$URL" "$user$k" $N "$d/out") \
			>"$d/log" 2>&1 &
		pid=$!
		# Wait until the service has seen k effects, then kill the supervisor.
		for _ in $(seq 400); do
			seen=$(counts | python3 -c "import json,sys; c=json.load(sys.stdin)['requests']; print(sum(v for n,v in c.items() if n.startswith('$user$k-')))")
			[ "$seen" -ge $(((k + 1) / 2)) ] && break
			sleep 0.01
		done
		pkill -KILL -f "agentd run --id sv --state $d/state" || true
		wait $pid 2>/dev/null || true
		[ -f "$d/out/done.txt" ] && { echo "note: k=$k finished before the kill"; }
		(cd "$T/lib" && as_user "$user" "$AGENTD" resume sv --state "$d/state") >>"$d/log" 2>&1 ||
			{ cat "$d/log"; fail "$user k=$k: resume did not succeed"; }
		[ -f "$d/out/done.txt" ] || { cat "$d/log"; fail "$user k=$k: agent did not finish"; }
		check_exactly_once "$user$k" $N 2 || { cat "$d/log"; fail "$user k=$k"; }
		runs=$((runs + 1))
	done
done
echo "supervisor killed mid-run then resumed: $runs runs, every effect applied exactly once"
