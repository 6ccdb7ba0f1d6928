#!/bin/bash
# The sandbox as `agentd run` applies it (root mode and rootless): the static
# probe, run as the agent, sees no capabilities, no_new_privs, seccomp in filter
# mode, only the loopback interface, no host files outside its binds, and fails
# to call io_uring_setup, unshare, mount and ptrace. The probe's controls (the
# same vectors succeeding outside the sandbox) live in tests/security/.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
[ -x "$T/inst/bin/agentd-probe" ] || { echo "skip: agentd-probe not built"; exit 77; }
mkdir -p "$T/cwd" && cp "$T/inst/bin/agentd-probe" "$T/cwd/" && chmod -R a+rX "$T/cwd"
for user in $(test_users); do
	st="$T/state-$user"; mkdir -p "$st"; [ "$user" = self ] || chown "$user" "$st"
	out="$T/status-$user"
	(cd "$T/cwd" && as_user "$user" "$AGENTD" run --state "$st" -- ./agentd-probe status) >"$out" 2>&1 ||
		{ cat "$out"; fail "$user: probe run failed"; }
	for want in CapEff=0000000000000000 CapBnd=0000000000000000 CapAmb=0000000000000000 \
		NoNewPrivs=1 Seccomp=2 ifaces=lo; do
		grep -qx "$want" "$out" || { cat "$out"; fail "$user: expected $want"; }
	done
	probe() { (cd "$T/cwd" && as_user "$user" "$AGENTD" run --state "$st" --max-restarts 0 -- ./agentd-probe "$@"); }
	for path in /etc/shadow /root /home "$AGENTD_SRC_DIR" "$st"; do
		probe try open "$path" >"$T/open" 2>&1 || { cat "$T/open"; fail "$user: $path is visible in the sandbox"; }
		grep -q "^open $path: BLOCKED" "$T/open" || { cat "$T/open"; fail "$user: open $path"; }
	done
	# Control: the bound working directory is visible, so the check above can fail.
	probe try open "$T/cwd/agentd-probe" >"$T/open" 2>&1 && fail "$user: control: cwd not visible"
	grep -q "ESCAPED" "$T/open" || { cat "$T/open"; fail "$user: control"; }
	for vector in io_uring_setup unshare mount ptrace; do
		probe try "$vector" >"$T/try" 2>&1 || { cat "$T/try"; fail "$user: $vector was not blocked"; }
		grep -q "^$vector: BLOCKED" "$T/try" || { cat "$T/try"; fail "$user: $vector"; }
	done
	# Sockets: AF_UNIX only by default; a policy can grant loopback IP.
	probe try socket-inet >"$T/try" 2>&1 || { cat "$T/try"; fail "$user: AF_INET allowed by default"; }
	grep -q "^socket-inet: BLOCKED" "$T/try" || { cat "$T/try"; fail "$user: socket-inet"; }
	echo '{"version":1,"rules":[],"sandbox":{"network":"loopback"}}' >"$T/net.json"
	chmod 644 "$T/net.json"
	(cd "$T/cwd" && as_user "$user" "$AGENTD" run --state "$st" --max-restarts 0 --policy "$T/net.json" \
		-- ./agentd-probe try socket-inet) >"$T/try" 2>&1 && fail "$user: loopback policy not applied"
	grep -q "^socket-inet: ESCAPED" "$T/try" || { cat "$T/try"; fail "$user: socket-inet with loopback"; }
	echo "ok: $user"
done
echo "sandbox through agentd run: all properties hold"
