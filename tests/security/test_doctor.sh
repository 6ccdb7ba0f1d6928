#!/bin/bash
# `agentd doctor` as root and as nobody: it names every defence, proves a run
# can start here (exit 0), and its landlock ABI is the kernel's. Control: run
# inside the sandbox, where user namespaces and clone3 are denied, it reports
# them missing, says how to enable them, and refuses (exit 1).
. "$(dirname "$0")/lib.sh"

[ -x "$BIN_DIR/agentd" ] || skip "agentd not built"
cp "$BIN_DIR/agentd" "$STAGE/agentd"
chmod 755 "$STAGE/agentd"
abi=$(python3 -c 'import ctypes; print(ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1))')

for user in $USERS; do
	out=$(as "$user" "$STAGE/agentd" doctor 2>&1)
	rc=$?
	[ $rc = 0 ] && pass "[$user] doctor exit 0" || fail "[$user] doctor exit $rc: $out"
	for key in mode container "user namespaces" seccomp landlock cgroups "a run here"; do
		grep -q "^$key  " <<<"$out" || fail "[$user] no '$key' line: $out"
	done
	if [ "$abi" -ge 1 ]; then
		grep -q "^landlock  *ABI $abi:" <<<"$out" && pass "[$user] landlock ABI $abi" ||
			fail "[$user] landlock line does not say ABI $abi: $(grep ^landlock <<<"$out")"
	fi
	grep -q "^a run here .*violations recorded" <<<"$out" && pass "[$user] a run records violations" ||
		fail "[$user] run line: $(grep '^a run here' <<<"$out")"
	case "$user" in
	root) grep -q "^mode  *root" <<<"$out" ;;
	*) grep -q "^mode  *rootless" <<<"$out" ;;
	esac && pass "[$user] mode named" || fail "[$user] mode: $(grep ^mode <<<"$out")"

	# Control: no user namespaces, no clone3 inside the sandbox.
	# (A 64 TiB address-space limit leaves room for a sanitizer build's
	# shadow; the leak checker needs ptrace, which the sandbox denies.)
	out=$(ASAN_OPTIONS=detect_leaks=0 sandboxed "$user" --memory $((1 << 46)) -- "$STAGE/agentd" doctor 2>&1)
	rc=$?
	if [ $rc = 1 ] && grep -q "^user namespaces  *NOT AVAILABLE.*enable" <<<"$out" &&
		grep -q "^a run here  *REFUSED: sandbox: .*namespaces" <<<"$out"; then
		pass "[$user] inside the sandbox: refused, missing defence named"
	else
		fail "[$user] doctor inside the sandbox (exit $rc): $out"
	fi
done
finish
