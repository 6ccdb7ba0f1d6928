#!/bin/bash
# agentd policy lint on fixtures: a shadowed rule and an unknown key are reported
# with FILE:LINE:COLUMN, warnings alone exit 0, errors exit 1, a clean file
# prints nothing, an unreadable file exits 2.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
AGENTD="$BIN/agentd"
FX="$SRC/tests/fixtures/policy"

rc=0; "$AGENTD" policy lint "$FX/shadowed.json" >"$T/out" 2>&1 || rc=$?
cat "$T/out"
grep -Eq "^$FX/shadowed.json:5:5: warning: .*read-keys.*no-ssh" "$T/out" || fail "shadowed rule not reported at 5:5"
grep -q "read-home" "$T/out" && fail "read-home is not shadowed but was reported"
[ $rc = 0 ] || fail "warnings alone must exit 0 (got $rc)"

rc=0; "$AGENTD" policy lint "$FX/unknown_key.json" >"$T/out" 2>&1 || rc=$?
cat "$T/out"
grep -Eq "^$FX/unknown_key.json:4:39: error: .*paths" "$T/out" || fail "unknown key not reported at 4:39"
[ $rc = 1 ] || fail "an error must exit 1 (got $rc)"

rc=0; "$AGENTD" policy lint "$FX/clean.json" >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] && [ ! -s "$T/out" ] || { cat "$T/out"; fail "clean policy: rc=$rc"; }

printf '{"version": 1,\n "rules": [}\n' > "$T/broken.json"
rc=0; "$AGENTD" policy lint "$T/broken.json" >"$T/out" 2>&1 || rc=$?
grep -Eq "^$T/broken.json:2:[0-9]+: error: " "$T/out" || { cat "$T/out"; fail "syntax error position"; }
[ $rc = 1 ] || fail "syntax error must exit 1"

rc=0; "$AGENTD" policy lint "$T/nonexistent.json" >"$T/out" 2>&1 || rc=$?
[ $rc = 2 ] || fail "missing file must exit 2 (got $rc)"
echo "policy lint: findings with positions, exit codes as documented"
