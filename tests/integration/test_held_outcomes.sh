#!/bin/bash
# Held outcomes (docs/durability.md): an agent's answered call is in the
# journal for every other reader soon after the answer, even while the agent
# goes quiet (the held round is committed after 1 ms without a next round),
# and an `agentd run` killed right after an answer loses nothing: resume
# replays the answered call instead of treating it as in flight.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
cat >"$T/lib/quiet_agent.py" <<'PY'
import os, time
import agentd
c = agentd.connect()
v = c.call("agentd.echo", {"value": "x" * 3000})["value"]
print(f"call 1: {len(v)} attempt {os.environ['AGENTD_ATTEMPT']}", flush=True)
open(f"/workspace/answered-{os.environ['AGENTD_ATTEMPT']}", "w").close()
if os.environ["AGENTD_ATTEMPT"] == "1":
    time.sleep(60)
print("done", flush=True)
PY
chmod a+r "$T/lib/quiet_agent.py"
echo '{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}' \
	>"$T/policy.json"
chmod a+r "$T/policy.json"
st="$T/state"
mkdir -p "$st"
(cd "$T/lib" && exec "$AGENTD" run --id quiet --state "$st" --policy "$T/policy.json" \
	-- python3 quiet_agent.py) >"$T/out" 2>&1 &
pid=$!
PIDS+=("$pid")
ws="$st/runs/quiet/workspace"
for _ in $(seq 200); do [ -e "$ws/answered-1" ] && break; sleep 0.05; done
[ -e "$ws/answered-1" ] || { cat "$T/out"; fail "the agent was not answered"; }
sleep 0.2
python3 - "$st/agentd.db" <<'PY' || { cat "$T/out"; fail "the answered call is not committed while its agent is quiet"; }
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
n = c.execute("SELECT count(*) FROM journal j JOIN outcomes o ON o.id = j.id "
              "WHERE j.run = 'quiet' AND j.seq = 1 AND o.status = 1").fetchone()[0]
sys.exit(0 if n == 1 else f"call 1 finished rows: {n}")
PY
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
(cd "$T/lib" && "$AGENTD" resume quiet --state "$st") >"$T/resume" 2>&1 ||
	{ cat "$T/resume"; fail "resume failed"; }
grep -q "call 1: 3000 attempt 2" "$T/resume" || { cat "$T/resume"; fail "attempt 2 did not get call 1"; }
grep -q "done" "$T/resume" || { cat "$T/resume"; fail "attempt 2 did not finish"; }
if grep -qi "unknown outcome" "$T/resume"; then cat "$T/resume"; fail "call 1 was taken as in flight"; fi
echo "ok: answered call committed while the agent was quiet, replayed after a kill"
