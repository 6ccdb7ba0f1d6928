#!/bin/bash
# The audit stream: `agentd audit` exports every decision of a real run
# (allow, deny by rule, deny with no rule, ask refused) as JSONL with run, seq
# and rule; a denial with no matching rule carries a suggested rule, which the
# agent also received. Control: the suggested rule, added to the policy, makes
# `agentd policy check` allow the call.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
D="$T/data"; mkdir -p "$D/hidden"; echo ok > "$D/ok.txt"; echo o > "$T/other.txt"; chmod -R a+rX "$D"
cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [
 {"id": "read-data", "tool": "fs.read", "path": "$D/**", "decision": "allow"},
 {"id": "no-hidden", "tool": "fs.read", "path": "$D/hidden/**", "decision": "deny"},
 {"id": "write-ask", "tool": "fs.write", "path": "$D/**", "decision": "ask"}
]}
JSON
(cd "$T/lib" && "$AGENTD" run --id aud --state "$T/st" --policy "$T/policy.json" --deny \
	-- python3 audit_agent.py "$D") >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "run failed"; }
(cd "$T/lib" && "$AGENTD" run --id aud2 --state "$T/st" --policy "$T/policy.json" --deny \
	-- python3 audit_agent.py "$D") >/dev/null 2>&1 || fail "second run failed"
# The agent's lines only: agentd's timeline goes to stderr, written after each
# reply, and would land inside a line printed in pieces.
want_sugg="{\"decision\": \"allow\", \"id\": \"allow-fs.read-other.txt\", \"path\": \"$T/other.txt\", \"tool\": \"fs.read\"}"
grep -qxF "none: rule=None suggestion=$want_sugg" "$T/out" || { cat "$T/out" "$T/err"; fail "agent did not get the suggestion"; }
grep -qxF "rule: rule=no-hidden suggestion=null" "$T/out" || { cat "$T/out" "$T/err"; fail "a deny rule got a suggestion"; }
"$AGENTD" show aud --state "$T/st" >"$T/show" 2>&1 || fail "show failed"
grep -qF "would be allowed by: {\"decision\":\"allow\",\"id\":\"allow-fs.read-other.txt\"" "$T/show" || { cat "$T/show"; fail "timeline lacks the suggestion"; }
"$AGENTD" audit --run aud --state "$T/st" >"$T/audit" || fail "audit failed"
cat "$T/audit"
python3 - "$T/audit" "$T/other.txt" <<'PY' || fail "audit content"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["seq"] for r in rows] == [1, 2, 3, 4], rows
assert all(r["run"] == "aud" for r in rows)
got = [(r["decision"], r["rule"], r["status"]) for r in rows]
assert got == [("allow", "read-data", "ok"), ("deny", "no-hidden", "denied"),
               ("deny", "(no rule matched)", "denied"), ("ask:denied", "write-ask", "denied")], got
assert rows[2]["suggestion"]["path"] == sys.argv[2], rows[2]
assert "suggestion" not in rows[1]
assert "args" not in rows[0] and len(rows[0]["args_hash"]) == 64
PY
n=$("$AGENTD" audit --state "$T/st" | python3 -c 'import json,sys; print(len({json.loads(l)["run"] for l in sys.stdin}))')
[ "$n" = 2 ] || fail "audit of all runs covers $n runs"
# control: the suggestion, added to the policy, allows the call
python3 - "$T/policy.json" "$T/audit" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2])]
p["rules"].append(rows[2]["suggestion"])
json.dump(p, open(sys.argv[1], "w"))
PY
"$AGENTD" policy check --policy "$T/policy.json" fs.read "{\"path\": \"$T/other.txt\"}" >/dev/null ||
	fail "the suggested rule does not allow the call"
rc=0; "$AGENTD" audit --run nosuch --state "$T/st" >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "unknown run: exit $rc"
# A relative --state is the directory it names from where agentd starts:
# the run is created, runs, and is found again by its absolute path.
(cd "$T" && "$AGENTD" run --id rel --state relstate -- /bin/true) >"$T/rel.out" 2>&1 ||
	{ cat "$T/rel.out"; fail "a run with a relative --state failed"; }
"$AGENTD" show rel --state "$T/relstate" >/dev/null 2>&1 || fail "run rel not in $T/relstate"
echo "audit: every decision exported with run, seq and rule; suggestions for unmatched denials"
