#!/bin/bash
# The store is agentd.db and agentd.db-payloads (calls' args and results of
# 1 KiB or more, docs/store.md "Schema version 7"), through the CLI: a run
# with long and short texts replays whole on resume; without its payload file
# (or with another store's) the store is refused, saying why, and nothing is
# lost once the file is back; `agentd admin backup` writes one file that
# opens and resumes on its own. Runs as root and, when root, as nobody.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
cat >"$T/lib/texts_agent.py" <<'PY'
import os, sys, time
import agentd
c = agentd.connect()
long = "x" * 3000
for i in range(1, 7):
    v = c.call("agentd.echo", {"value": f"{i}:{long if i % 2 else ''}"})["value"]
    print(f"call {i}: {len(v)}", flush=True)
if os.environ["AGENTD_ATTEMPT"] == "1":
    open("/workspace/ready", "w").close()
    time.sleep(60)
print("done", flush=True)
PY
chmod a+r "$T/lib/texts_agent.py"
echo '{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}' \
	>"$T/policy.json"
chmod a+r "$T/policy.json"

for user in $(test_users); do
	st="$T/state-$user"
	mkdir -p "$st"
	[ "$user" = self ] || chown "$user" "$st"
	ag() { as_user "$user" "$AGENTD" "$@"; }
	# Attempt 1 makes its six calls, then waits; agentd run is stopped
	# (SIGTERM: interrupted, resumable).
	(cd "$T/lib" && ag run --id tx --state "$st" --policy "$T/policy.json" \
		-- python3 texts_agent.py) >"$T/out1" 2>"$T/err1" &
	pid=$!
	for _ in $(seq 200); do [ -f "$st/runs/tx/workspace/ready" ] && break; sleep 0.05; done
	[ -f "$st/runs/tx/workspace/ready" ] || { cat "$T/out1" "$T/err1"; fail "$user: attempt 1 did not reach its wait"; }
	pkill -TERM -f "agentd run --id tx --state $st " || true
	wait $pid 2>/dev/null || true
	grep -q "interrupted" "$T/err1" || { cat "$T/err1"; fail "$user: not interrupted"; }
	[ -s "$st/agentd.db-payloads" ] || fail "$user: no payload file"
	[ "$(stat -c %U "$st/agentd.db-payloads")" = "$(stat -c %U "$st/agentd.db")" ] ||
		fail "$user: the payload file is not owned like the database"
	[ "$(stat -c %a "$st/agentd.db-payloads")" = 600 ] || fail "$user: payload file mode"
	long=$(sqlite3 "$st/agentd.db" "SELECT count(*) FROM journal WHERE run = 'tx' AND typeof(args) = 'blob'")
	[ "$long" = 3 ] || fail "$user: $long calls' args in the payload file, want 3"

	# Without its payload file the store is refused, and says why.
	mv "$st/agentd.db-payloads" "$T/away"
	ag show tx --state "$st" >/dev/null 2>"$T/err" && fail "$user: store opened without its payload file"
	grep -q "payload file" "$T/err" || { cat "$T/err"; fail "$user: the refusal does not name the payload file"; }
	[ -f "$st/agentd.db-payloads" ] && fail "$user: a refused open made a new payload file"
	mv "$T/away" "$st/agentd.db-payloads"

	# The resumed attempt replays all six calls from the journal, long
	# texts included, and finishes.
	(cd "$T/lib" && ag resume tx --state "$st") >"$T/out2" 2>"$T/err2" ||
		{ cat "$T/out2" "$T/err2"; fail "$user: resume"; }
	for i in 1 3 5; do grep -qx "call $i: 3002" "$T/out2" || { cat "$T/out2"; fail "$user: call $i"; }; done
	for i in 2 4 6; do grep -qx "call $i: 2" "$T/out2" || { cat "$T/out2"; fail "$user: call $i"; }; done
	grep -qx done "$T/out2" || { cat "$T/out2" "$T/err2"; fail "$user: the resumed run did not finish"; }
	[ "$(grep -c "replayed" "$T/err2")" -ge 6 ] || { cat "$T/err2"; fail "$user: the calls were not replayed"; }

	# A backup is one file: it opens without the store's files and the run
	# reads back whole from it.
	ag admin backup "$st/backup.db" --state "$st" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "$user: backup"; }
	mkdir -p "$T/restored-$user"
	cp "$st/backup.db" "$T/restored-$user/agentd.db"
	[ "$user" = self ] || chown -R "$user" "$T/restored-$user"
	ag show tx --state "$T/restored-$user" >"$T/show" 2>&1 || { cat "$T/show"; fail "$user: the backup does not open"; }
	ag audit --run tx --state "$T/restored-$user" >/dev/null 2>"$T/err" ||
		{ cat "$T/err"; fail "$user: the backup's journal does not verify"; }
	[ "$(sqlite3 "$T/restored-$user/agentd.db" "SELECT count(*) FROM journal WHERE typeof(args) = 'blob'")" = 0 ] ||
		fail "$user: the backup names texts in a payload file"
	echo "ok: $user"
done
echo "store files through the CLI: as expected"
