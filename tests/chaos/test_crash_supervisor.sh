#!/bin/bash
# SIGKILL `agentd run` itself while a side-effecting call is in flight (the
# service has applied the effect but not yet answered), then continue with
# `agentd resume`. The journal holds an intent without a result for that call:
# an unknown outcome. http.request is idempotent, so it is rerun with the same
# Idempotency-Key and the service applies it once. Every effect of the 20-call
# run must be applied exactly once. Runs as root and, when root, as nobody.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
start_effects_server
N=20
runs=0
for user in $(test_users); do
	for k in 1 7 13 19; do
		d="$T/$user-$k"
		mkdir -p "$d/out" "$d/state"
		[ "$user" = self ] || chown -R "$user" "$d"
		counter_policy "$d/out"
		tag="$user$k"
		curl -sf -X POST "$URL/_hold/$tag-e$k" >/dev/null
		(cd "$T/lib" && as_user "$user" "$AGENTD" run --id sv --state "$d/state" \
			--policy "$T/policy.json" -- python3 counter_agent.py "$URL" "$tag" $N "$d/out") \
			>"$d/log" 2>&1 &
		pid=$!
		# Wait until call k is applied and held, then kill the supervisor.
		for _ in $(seq 500); do
			counts | grep -q "\"$tag-e$k\": 1" && break
			sleep 0.01
		done
		counts | grep -q "\"$tag-e$k\": 1" || { cat "$d/log"; fail "$tag: call $k never arrived"; }
		pkill -KILL -f "agentd run --id sv --state $d/state" || true
		wait $pid 2>/dev/null || true
		curl -sf -X POST "$URL/_release" >/dev/null
		[ -f "$d/out/done.txt" ] && fail "$tag: the run finished although its supervisor was killed"
		(cd "$T/lib" && as_user "$user" "$AGENTD" resume sv --state "$d/state") >>"$d/log" 2>&1 ||
			{ cat "$d/log"; fail "$tag: resume did not succeed"; }
		grep -q "outcome unknown" "$d/log" || { cat "$d/log"; fail "$tag: the unknown outcome was not handled"; }
		[ -f "$d/out/done.txt" ] || { cat "$d/log"; fail "$tag: agent did not finish"; }
		# The held call reached the service twice (original + rerun), applied once.
		check_exactly_once "$tag" $N 2 || { cat "$d/log"; fail "$tag"; }
		runs=$((runs + 1))
	done
done
echo "supervisor killed mid-call then resumed: $runs runs, every effect applied exactly once"
