#!/bin/bash
# Group commit in agentd serve: concurrent runs share their journal commits.
# N runs each make calls 1 s apart; once every run has made its first call the
# daemon is stopped (SIGSTOP) long enough for every agent to send its next
# call, then continued: that one
# iteration sees every run's call ready, so one commit carries the N intents
# and one the N outcomes (health: journal.largest_commit >= N, fewer commits
# than rows). Every run still gets each of its results, in order, and its
# journal holds exactly its calls. Durability power (one fsync per commit).
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
N=8
CALLS=6
mkdir -p "$T/policies"
cat > "$T/policies/default.json" <<JSON
{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}
JSON
AGENTD_DURABILITY=power start_serve '{"policy_dir": "'"$T/policies"'"}'
health() { jget "$(api GET /v1/health)" "$1"; }

for i in $(seq $N); do
	(cd "$T/lib" && ctl -q run --name "g$i" --max-restarts 0 -- python3 echo_agent.py $CALLS "$T/lib/go") \
		>/dev/null || fail "submit g$i"
done
# Every agent has the answer to its first call and waits.
for i in $(seq $N); do
	for _ in $(seq 300); do
		ctl logs "g$i" | has '^call 1: ' && break
		sleep 0.05
	done
	ctl logs "g$i" | has '^call 1: ' || fail "g$i did not make its first call"
done

kill -STOP $SERVE_PID
touch "$T/lib/go"
sleep 1.5
kill -CONT $SERVE_PID

for i in $(seq $N); do
	r=$(api GET "/v1/runs/g$i/result?wait=60")
	[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs "g$i"; fail "g$i: $r"; }
	out=$(ctl logs "g$i")
	for k in $(seq $CALLS); do
		printf '%s\n' "$out" | has "^call $k: {'value': $k}\$" || { printf '%s\n' "$out"; fail "g$i: result $k"; }
	done
	j=$(api GET "/v1/runs/g$i/journal")
	[ "$(jget "$j" '[(c["seq"], c["status"], c["args"]["value"]) for c in d["calls"]] == [(k, "ok", k) for k in range(1, '$CALLS' + 1)]')" = True ] ||
		fail "g$i journal: $j"
done
h=$(api GET /v1/health)
rows=$(jget "$h" 'd["journal"]["rows"]')
commits=$(jget "$h" 'd["journal"]["commits"]')
largest=$(jget "$h" 'd["journal"]["largest_commit"]')
[ "$rows" = $((2 * N * CALLS)) ] || fail "journal rows: $h"
[ "$largest" -ge $N ] || fail "no commit carried every run's call after the stop: $h"
[ "$commits" -lt "$rows" ] || fail "no commit was shared: $h"
echo "ok: $N concurrent runs, $rows journal rows in $commits commits (largest $largest rows)"
