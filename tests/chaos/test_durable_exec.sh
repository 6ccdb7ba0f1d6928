#!/bin/bash
# Durable execution features end to end: retries (503 / 429 with Retry-After),
# fallbacks, the run deadline, on_divergence fail|live, fork --at, show --at,
# admin backup and --durability power.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
cp "$SRC"/tests/chaos/lib/*.py "$T/lib/"
python3 "$T/lib/flaky_server.py" "$T/fport" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/fport" ] && break; sleep 0.05; done
F="http://127.0.0.1:$(cat "$T/fport")"
S="$T/state"
cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [
 {"id": "get", "tool": "http.request", "host": "127.0.0.1", "method": ["GET"], "decision": "allow"},
 {"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}
JSON
cat > "$T/durable.json" <<JSON
{"tools": [{"tool": "http.request", "attempts": 4, "initial_backoff_ms": 10, "multiplier": 2,
            "max_backoff_ms": 100, "jitter": 0.5,
            "fallbacks": [{"args": {"url": "$F/ok/fb"}}]}]}
JSON
A="$T/inst/bin/agentd"
call() { # call NAME URL: one GET from a python agent, prints the result
	(cd "$T/lib" && "$A" run --id "$1" --state "$S" --policy "$T/policy.json" --durable "$T/durable.json" \
		-- python3 call_tool.py http.request "{\"method\":\"GET\",\"url\":\"$2\"}") 2>"$T/$1.err"
}

# Retries: two 503s then 200; two 429s then 200. Each retry is a stored event.
call r1 "$F/flaky/a/2" | grep -q '"status":200' || { cat "$T/r1.err"; fail "503 was not retried to success"; }
call r2 "$F/throttle/b/2" | grep -q '"status":200' || { cat "$T/r2.err"; fail "429 was not retried"; }
curl -s "$F/_counts" | grep -q '"flaky/a": 3' || fail "expected 3 requests for flaky/a: $(curl -s "$F/_counts")"
[ "$("$A" show r1 --state "$S" | grep -c 'retry.scheduled')" = 2 ] || { "$A" show r1 --state "$S"; fail "retries are not events"; }
# Fallback: always 503; after 4 attempts the fallback endpoint answers.
call r3 "$F/down/c" | grep -q '"status":200' || { cat "$T/r3.err"; fail "fallback not used"; }
curl -s "$F/_counts" | grep -q '"down/c": 4, "ok/fb": 1' || fail "expected 4 attempts, then the fallback: $(curl -s "$F/_counts")"
"$A" show r3 --state "$S" | grep -q 'retry.fallback' || fail "fallback is not an event"

# Deadline: the agent would sleep 30 s; the run fails at its 300 ms deadline.
t0=$(date +%s%N)
if (cd "$T/lib" && "$A" run --id dl --state "$S" --deadline 300ms -- sleep 30) 2>"$T/dl.err"; then
	fail "a run past its deadline succeeded"
fi
el=$((($(date +%s%N) - t0) / 1000000))
grep -q "deadline" "$T/dl.err" || { cat "$T/dl.err"; fail "no deadline reason"; }
[ "$el" -lt 5000 ] || fail "deadline took $el ms"

# Divergence: fail names the seq and both calls; live truncates and goes on.
if (cd "$T/lib" && "$A" run --id dv1 --state "$S" --policy "$T/policy.json" -- python3 diverge_agent.py) 2>"$T/dv1.err"; then
	fail "a diverged run succeeded"
fi
grep -q "replay diverged at #2: the journal has agentd.echo" "$T/dv1.err" || { cat "$T/dv1.err"; fail "divergence message"; }
(cd "$T/lib" && "$A" run --id dv2 --state "$S" --policy "$T/policy.json" --on-divergence live \
	-- python3 diverge_agent.py) >"$T/dv2.out" 2>"$T/dv2.err" || { cat "$T/dv2.out" "$T/dv2.err"; fail "on-divergence live failed"; }
grep -qx "diverge agent finished" "$T/dv2.out" || { cat "$T/dv2.out" "$T/dv2.err"; fail "the agent did not go on past the divergence"; }
"$A" show dv2 --state "$S" | grep -q "replay.diverged\|diverged" || fail "live divergence not in the timeline"

# Fork: the fork's journal is the prefix; it replays it and goes live after.
(cd "$T/lib" && "$A" run --id tw --state "$S" --policy "$T/policy.json" -- python3 call_tool.py \
	agentd.echo '{"value":1}' agentd.echo '{"value":2}') >/dev/null 2>&1 || fail "two-call run"
"$A" fork tw --at 1 --id fk --state "$S" --no-start 2>"$T/fk.err" || { cat "$T/fk.err"; fail "fork"; }
[ "$("$A" show fk --state "$S" | grep -c '#[0-9].*agentd.echo')" = 1 ] || { "$A" show fk --state "$S"; fail "fork prefix"; }
"$A" fork tw --at 9 --id fk2 --state "$S" 2>/dev/null && fail "fork past the end accepted"
"$A" resume fk --state "$S" 2>"$T/fk2.err" || { cat "$T/fk2.err"; fail "forked run did not complete"; }
grep -q "replayed" "$T/fk2.err" || { cat "$T/fk2.err"; fail "fork did not replay its prefix"; }
# show --at: the run as it stood after call #1.
[ "$("$A" show dv2 --state "$S" --at 1 | grep -c '#[0-9].*agentd.echo')" = 1 ] || { "$A" show dv2 --state "$S" --at 1; fail "show --at"; }

# Backup: a consistent copy another agentd can read.
"$A" admin backup "$T/copy.db" --state "$S" || fail "backup"
mkdir -p "$T/copy" && mv "$T/copy.db" "$T/copy/agentd.db"
"$A" runs --state "$T/copy" | grep -q '^fk ' || fail "backup lacks runs"

# --durability power works end to end.
(cd "$T/lib" && "$A" run --id pw --state "$S" --durability power --policy "$T/policy.json" \
	-- python3 call_tool.py agentd.echo '{"value": 1}') >/dev/null 2>&1 || fail "--durability power"
"$A" run --id bad --state "$S" --durability nope -- true 2>/dev/null && fail "bad --durability accepted"
echo "durable execution: retries, fallbacks, deadline, divergence, fork, backup, durability ok"
