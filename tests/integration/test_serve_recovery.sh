#!/bin/bash
# Recovery of agentd serve: a run making brokered side effects survives
# (1) SIGKILL of the daemon and (2) SIGTERM (exit 0, run left interrupted);
# each time the restarted daemon resumes it from its journal and every effect
# is applied exactly once. Queued runs stay queued across a restart, in order.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
start_effects_server
mkdir -p "$T/policies" "$T/out1" "$T/out2"
chmod 777 "$T/out1" "$T/out2"
cat > "$T/policies/default.json" <<JSON
{"version": 1, "rules": [
 {"id": "effects", "tool": "http.request", "host": "127.0.0.1", "method": ["POST"], "decision": "allow"},
 {"id": "out", "tool": "fs.write", "path": "$T/out*/**", "decision": "allow"}
]}
JSON
cfg="{\"policy_dir\": \"$T/policies\", \"max_running\": 1}"

# wait_calls RUN N: until the run's journal holds at least N calls
wait_calls() {
	for _ in $(seq 200); do
		n=$(api GET "/v1/runs/$1/journal" | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("calls", [])))' 2>/dev/null || echo 0)
		[ "$n" -ge "$2" ] && return 0
		sleep 0.05
	done
	fail "run $1 did not reach $2 calls"
}

for sig in KILL TERM; do
	out="$T/out1"; [ $sig = TERM ] && out="$T/out2"
	start_serve "$cfg"
	(cd "$T/lib" && ctl -q run --name "r-$sig" -- python3 counter_agent.py "$URL" "$sig" 12 "$out" 0 0.15) >/dev/null
	# queued behind it (max_running 1): must still be queued after the restart
	ctl -q run --name "later-$sig" -- /bin/true >/dev/null
	wait_calls "r-$sig" 4
	rc=0; stop_serve $sig || rc=$?
	if [ $sig = TERM ]; then
		[ $rc = 0 ] || fail "SIGTERM: agentd serve exited $rc"
		grep -q "stopping 1 running run" "$T/serve.log" || fail "SIGTERM did not stop the run"
	fi
	sleep 0.3 # the orphaned child notices its channel is gone
	start_serve "$cfg"
	grep -q "1 resumed" "$T/serve.log" || { cat "$T/serve.log"; fail "$sig: the run was not resumed"; }
	r=$(api GET "/v1/runs/r-$sig/result?wait=60")
	[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs "r-$sig"; fail "$sig: $r"; }
	[ "$(jget "$r" 'd["attempts"]')" -ge 2 ] || fail "$sig: not resumed in a new attempt: $r"
	# A SIGKILL can land while a POST is in flight: the resumed run sends it
	# again with the same Idempotency-Key (applied once, requested twice).
	# SIGTERM stops at a call boundary: one request per effect.
	maxreq=1; [ $sig = KILL ] && maxreq=2
	check_exactly_once "$sig" 12 $maxreq
	test -f "$out/done.txt" || fail "$sig: agent did not finish"
	r=$(api GET "/v1/runs/later-$sig/result?wait=30")
	[ "$(jget "$r" 'd["status"]')" = succeeded ] || fail "$sig: the queued run: $r"
	stop_serve TERM
	echo "ok: $sig"
done
echo "ok: serve recovery"
