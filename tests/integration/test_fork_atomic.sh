#!/bin/bash
# `agentd fork` copies the source's calls into the new run in one
# transaction: a fork that dies part way (here the file size limit kills it
# while it writes) leaves no run behind, rather than one whose journal holds
# only the first calls, which a daemon would start and whose missing calls
# would run again.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
S="$T/state"
A="$T/inst/bin/agentd"
echo '{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}' >"$T/policy.json"
chmod 644 "$T/policy.json"
(cd "$T/lib" && "$A" run --id src --state "$S" --policy "$T/policy.json" \
	-- python3 fill_agent.py 40) >"$T/src.out" 2>&1 || { cat "$T/src.out"; fail "source run failed"; }
[ "$(grep -c '^ok ' "$T/src.out")" = 40 ] || { cat "$T/src.out"; fail "source run made too few calls"; }
# 40 calls of about 32 KB each: the copy passes 512 KB early on.
rc=0
(ulimit -c 0; ulimit -f 512; exec "$A" fork src --at 40 --id fk --state "$S" --no-start) \
	>"$T/fk.out" 2>&1 || rc=$?
[ $rc != 0 ] || { cat "$T/fk.out"; fail "the fork was written past the file size limit"; }
"$A" show src --state "$S" >/dev/null 2>"$T/src.show" || { cat "$T/src.show"; fail "source journal damaged"; }
if "$A" show fk --state "$S" >"$T/fk.show" 2>&1; then
	cat "$T/fk.show"
	fail "a fork that died part way left a run behind"
fi
# And a fork that can write is whole.
"$A" fork src --at 40 --id fk --state "$S" --no-start >"$T/fk2.out" 2>&1 || { cat "$T/fk2.out"; fail "fork"; }
"$A" show fk --state "$S" >"$T/fk2.show" 2>&1 || { cat "$T/fk2.show"; fail "show fork"; }
grep -c 'agentd.echo' "$T/fk2.show" | grep -qx 40 || { cat "$T/fk2.show"; fail "the fork does not hold the 40 calls"; }
echo "ok: a fork killed part way left no run; a whole fork holds every call"
