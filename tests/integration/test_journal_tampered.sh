#!/bin/bash
# The journal is verified while the next attempt's sandbox is being built
# (sandbox_spawn_gated), and the agent starts only once it has passed. A run
# whose journal was edited after `agentd run` was stopped (a row's result, a
# row's arguments) is refused by `agentd resume` with "journal unreadable",
# and its agent never runs: the marker it writes first thing does not appear
# for attempt 2. Control: the same run untouched resumes and its agent runs.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
cat >"$T/lib/marked_agent.py" <<'PY'
import os, time
import agentd
attempt = os.environ["AGENTD_ATTEMPT"]
open(f"/workspace/ran-{attempt}", "w").close()
c = agentd.connect()
for i in range(3):
    c.call("agentd.echo", {"value": i})
if attempt == "1":
    open("/workspace/ready", "w").close()
    time.sleep(60)
PY
chmod a+r "$T/lib/marked_agent.py"
echo '{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}' \
	>"$T/policy.json"

# start NAME: run the agent through its three calls, then stop agentd run
# (SIGTERM: the run is interrupted, resumable).
start() {
	local st="$T/state-$1" ws="$T/state-$1/runs/$1/workspace"
	mkdir -p "$st"
	(cd "$T/lib" && exec "$AGENTD" run --id "$1" --state "$st" --policy "$T/policy.json" \
		-- python3 marked_agent.py) >"$T/$1.log" 2>&1 &
	local pid=$!
	for _ in $(seq 500); do [ -f "$ws/ready" ] && break; sleep 0.01; done
	[ -f "$ws/ready" ] || { cat "$T/$1.log"; fail "$1: the agent did not make its calls"; }
	kill -TERM $pid
	wait $pid 2>/dev/null || true
	grep -q "interrupted" "$T/$1.log" || { cat "$T/$1.log"; fail "$1: not interrupted"; }
}

# tamper NAME SQL: edit the stopped run's store
tamper() {
	python3 - "$T/state-$1/agentd.db" "$2" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
n = c.execute(sys.argv[2]).rowcount
c.commit()
sys.exit(0 if n == 1 else f"tamper: {n} rows changed")
PY
}

for edit in result args; do
	id="t-$edit"
	start "$id"
	case $edit in
	result) tamper "$id" "UPDATE outcomes SET result = replace(result, '1', '7') WHERE id = (SELECT id FROM journal WHERE run = '$id' AND seq = 2)" ;;
	args) tamper "$id" "UPDATE journal SET args = '{\"value\":5}' WHERE run = '$id' AND seq = 3" ;;
	esac
	(cd "$T/lib" && "$AGENTD" resume "$id" --state "$T/state-$id") >"$T/$id.resume" 2>&1 &&
		{ cat "$T/$id.resume"; fail "$id: a tampered journal was resumed"; }
	grep -q "journal unreadable" "$T/$id.resume" || { cat "$T/$id.resume"; fail "$id: not reported"; }
	[ -e "$T/state-$id/runs/$id/workspace/ran-2" ] &&
		{ cat "$T/$id.resume"; fail "$id: the agent ran on a tampered journal"; }
	echo "ok: $edit edited: refused, agent not started"
done

start ctl
(cd "$T/lib" && "$AGENTD" resume ctl --state "$T/state-ctl") >"$T/ctl.resume" 2>&1 ||
	{ cat "$T/ctl.resume"; fail "control: an untouched journal was refused"; }
[ -e "$T/state-ctl/runs/ctl/workspace/ran-2" ] || { cat "$T/ctl.resume"; fail "control: agent did not run"; }
grep -q "replayed" "$T/ctl.resume" || { cat "$T/ctl.resume"; fail "control: nothing replayed"; }
echo "tampered journals stop the run before its agent starts; the untouched one resumes"
