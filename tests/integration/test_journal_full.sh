#!/bin/bash
# A journal commit that fails (the store's file system fills up: a 1 MiB
# tmpfs) fails the run and never answers a call with an outcome the journal
# does not hold: every call the agent got a result for has its finished row
# in the journal, and the call whose commit failed has none (its agent is
# killed with the run, or sees the channel close).
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
mkdir -p "$T/small"
if ! mount -t tmpfs -o size=1m,mode=755 tmpfs "$T/small" 2>/dev/null; then
	echo "SKIP: cannot mount a small tmpfs here (needs root and mount rights)"
	exit 77
fi
trap 'umount "$T/small" 2>/dev/null; cleanup' EXIT
cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}
JSON
chmod 644 "$T/policy.json"
rc=0
(cd "$T/lib" && "$AGENTD" run --id fill --state "$T/small/state" --policy "$T/policy.json" \
	-- python3 fill_agent.py 500) >"$T/out" 2>&1 || rc=$?
[ $rc != 0 ] || { cat "$T/out"; fail "the run succeeded on a full file system"; }
grep -q 'journal write failed' "$T/out" || { cat "$T/out"; fail "no journal write failure reported"; }
n=$(grep -c '^ok ' "$T/out" || true)
[ "$n" -ge 5 ] || { cat "$T/out"; fail "only $n calls before the file system filled"; }
python3 - "$T/small/state/agentd.db" "$n" <<'PY' || { cat "$T/out"; fail "journal and answers disagree"; }
import sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
rows = dict(c.execute("SELECT seq, coalesce(status, 0) FROM journal j LEFT JOIN outcomes o "
                      "ON o.id = j.id WHERE run = 'fill'").fetchall())
for seq in range(1, n + 1):  # answered: finished (1 = ok) in the journal
    if rows.get(seq) != 1:
        sys.exit(f"call {seq} was answered but its row is {rows.get(seq)!r}")
# The call that failed was never answered, so it has no finished row.
if rows.get(n + 1) == 1:
    sys.exit(f"call {n + 1} is finished in the journal but its agent got no result")
print(f"ok: {n} answered calls all journaled; call {n + 1} failed with "
      f"{'an intent row' if (n + 1) in rows else 'no row'}")
PY
