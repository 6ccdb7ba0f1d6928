#!/bin/bash
# Root mode: two tenants' runs get different uids from the tenant range, each
# stable across runs, each owning its own workspace, and neither can read the
# other's. Control: the owner itself reads its file through the same bind.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
[ "$(id -u)" = 0 ] || { echo "skip: tenant uids are a root-mode feature"; exit 77; }
stage
[ -x "$T/inst/bin/agentd-probe" ] || { echo "skip: agentd-probe not built"; exit 77; }
[ -x "$BIN/agentd-sandbox-exec" ] || { echo "skip: agentd-sandbox-exec not built"; exit 77; }
mkdir -p "$T/cwd" && cp "$T/inst/bin/agentd-probe" "$T/cwd/" && chmod -R a+rX "$T/cwd"
st=$T/state
mkdir -p "$st"

uid_of() { # TENANT RUN-ID: the run's uid as the program sees it; leaves a file in its workspace
	(cd "$T/cwd" && AGENTD_TENANT=$1 "$AGENTD" run --state "$st" --id "$2" -- \
		/bin/sh -c 'echo secret-of-'"$1"' > /workspace/file; ./agentd-probe status') 2>/dev/null |
		sed -n 's/^uid=//p'
}
a=$(uid_of alice a1)
b=$(uid_of bob b1)
a2=$(uid_of alice a2)
[ -n "$a" ] && [ -n "$b" ] || fail "no uid reported (alice '$a', bob '$b')"
[ "$a" != "$b" ] || fail "alice and bob share uid $a"
[ "$a" = "$a2" ] || fail "alice's uid changed between runs: $a, $a2"
for u in "$a" "$b"; do
	[ "$u" -ge 200000 ] && [ "$u" -lt 265536 ] || fail "uid $u outside the tenant range"
	[ "$u" != 65534 ] || fail "a tenant runs as nobody"
done
echo "ok: alice=$a bob=$b, stable across runs"
wa=$st/runs/a1/workspace
[ "$(stat -c '%u %a' "$wa")" = "$a 700" ] || fail "alice's workspace: $(stat -c '%u %a' "$wa")"
grep -q secret-of-alice "$wa/file" || fail "alice's run did not write its workspace"

# Bob's uid, given alice's workspace (as a policy mount could): refused.
# Control: alice's own uid through the same bind reads it.
got=$(cd "$T/cwd" && "$BIN/agentd-sandbox-exec" --quiet --workspace "$T/cwd" --uid "$b" --gid "$b" \
	--bind "$wa:/other" -- ./agentd-probe try open /other/file 2>&1) || true
ctl=$(cd "$T/cwd" && "$BIN/agentd-sandbox-exec" --quiet --workspace "$T/cwd" --uid "$a" --gid "$a" \
	--bind "$wa:/other" -- ./agentd-probe try open /other/file 2>&1) || true # ESCAPED exits 1
case "$got" in *"BLOCKED (EACCES)"*) ;; *) fail "bob read alice's workspace: $got" ;; esac
case "$ctl" in *ESCAPED*) ;; *) fail "control: alice cannot read her own workspace: $ctl" ;; esac
echo "ok: bob cannot read alice's workspace ($got); alice can"
grep -q "^alice $a\$" "$st/tenant-ids" && grep -q "^bob $b\$" "$st/tenant-ids" || fail "tenant-ids: $(cat "$st/tenant-ids")"
echo "tenant uids: all hold"
