#!/bin/bash
# Through `agentd run` (root mode and rootless): a denied syscall becomes a
# sandbox.violation event in the run's timeline (`agentd show`), with the
# syscall, the arguments that decided it and the errno the program got; a
# program killed by the filter is recorded from its SIGSYS; violations are
# rate-limited per run; the policy's wall-clock limit fails the run; and a
# double-forked, setsid grandchild dies with the run. Each has a control: an
# allowed call records nothing, a run without the limit finishes, and the
# same daemonizing command outside the sandbox leaves its grandchild behind.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
[ -x "$T/inst/bin/agentd-probe" ] || { echo "skip: agentd-probe not built"; exit 77; }
mkdir -p "$T/cwd" && cp "$T/inst/bin/agentd-probe" "$T/cwd/" && chmod -R a+rX "$T/cwd"
echo '{"version": 1, "rules": [], "limits": {"wall_clock": "1s"}}' >"$T/cwd/wall.json"
chmod 644 "$T/cwd/wall.json"

for user in $(test_users); do
	st="$T/state-$user"; mkdir -p "$st"; [ "$user" = self ] || chown "$user" "$st"
	run() { (cd "$T/cwd" && as_user "$user" "$AGENTD" run --state "$st" --max-restarts 0 "$@"); }
	show() { as_user "$user" "$AGENTD" show "$1" --state "$st"; }

	run --id v-netlink -- ./agentd-probe try socket-netlink >"$T/out" 2>&1 || { cat "$T/out"; fail "$user: run failed"; }
	grep -q "BLOCKED (EAFNOSUPPORT)" "$T/out" || { cat "$T/out"; fail "$user: netlink not blocked"; }
	show v-netlink >"$T/show"
	grep 'sandbox.violation' "$T/show" | grep '"syscall":"socket"' | grep '"errno":"EAFNOSUPPORT"' |
		grep -q '"family":16' || { cat "$T/show"; fail "$user: no violation event for socket(AF_NETLINK)"; }

	run --id v-ptrace -- ./agentd-probe try ptrace >"$T/out" 2>&1 || { cat "$T/out"; fail "$user: run failed"; }
	show v-ptrace | grep 'sandbox.violation' | grep '"syscall":"ptrace"' | grep -q '"errno":"EPERM"' ||
		{ show v-ptrace; fail "$user: no violation event for ptrace"; }

	# Control: an allowed socket records nothing, so the check above can fail.
	run --id v-allowed -- ./agentd-probe try socket-unix >"$T/out" 2>&1 || true  # ESCAPED exits 1
	grep -q "socket-unix: ESCAPED" "$T/out" || { cat "$T/out"; fail "$user: control: AF_UNIX refused"; }
	if show v-allowed | grep -q 'sandbox.violation'; then
		show v-allowed; fail "$user: a violation recorded for an allowed call"
	fi

	# Killed by the filter (i386 int 0x80 in the program itself).
	run --id v-int80 -- ./agentd-probe try int80-self >"$T/out" 2>&1 && { cat "$T/out"; fail "$user: int80 not killed"; }
	show v-int80 | grep 'sandbox.violation' | grep '"action":"killed"' | grep -q SIGSYS ||
		{ show v-int80; fail "$user: the SIGSYS kill is not a violation event"; }

	# A flood is rate-limited: a burst of events, the rest counted.
	run --id v-flood -- /bin/sh -c 'for i in $(seq 60); do ./agentd-probe try bpf; done >/dev/null' >"$T/out" 2>&1 ||
		{ cat "$T/out"; fail "$user: flood run failed"; }
	n=$(show v-flood | grep -cF 'sandbox.violation {')
	suppressed=$(show v-flood | sed -n 's/.*violations_suppressed {"count":\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')
	if [ "$n" -lt 20 ] || [ "$n" -gt 30 ] || [ $((n + suppressed)) -ne 60 ]; then
		show v-flood | tail -5; fail "$user: flood: $n events, $suppressed suppressed (want 20..30 and 60 in all)"
	fi

	# Wall-clock limit from the policy; control: the same program without it.
	start=$(date +%s%N)
	run --id v-wall --policy wall.json -- /bin/sleep 30 >"$T/out" 2>&1 && { cat "$T/out"; fail "$user: wall-clock limit not enforced"; }
	ms=$((($(date +%s%N) - start) / 1000000))
	grep -q "wall-clock limit of 1 s reached" "$T/out" || { cat "$T/out"; fail "$user: reason"; }
	[ "$ms" -lt 5000 ] || fail "$user: wall-clock limit took $ms ms"
	show v-wall | grep -q "^run v-wall: failed.*wall-clock limit of 1 s reached" || { show v-wall; fail "$user: stored reason"; }
	run --id v-nowall -- /bin/sleep 1.2 >"$T/out" 2>&1 || { cat "$T/out"; fail "$user: control run without a limit failed"; }

	# Nothing outlives the run: a double-forked setsid grandchild.
	marker=$((RANDOM % 1000 + 3000)).25
	run --id v-daemon -- /bin/sh -c "(setsid sleep $marker </dev/null >/dev/null 2>&1 &); exit 0" >"$T/out" 2>&1 ||
		{ cat "$T/out"; fail "$user: daemon run failed"; }
	sleep 0.2
	if pgrep -f "^sleep $marker\$" >/dev/null; then
		pkill -KILL -f "^sleep $marker\$"; fail "$user: a daemonized grandchild outlived its run"
	fi
	(cd "$T/cwd" && as_user "$user" /bin/sh -c "(setsid sleep $marker </dev/null >/dev/null 2>&1 &); exit 0")
	sleep 0.2
	pgrep -f "^sleep $marker\$" >/dev/null || fail "$user: control: the grandchild did not survive outside the sandbox"
	pkill -KILL -f "^sleep $marker\$" || true
	echo "ok: $user"
done
echo "violations, wall-clock limit and run teardown through agentd run: all hold"
