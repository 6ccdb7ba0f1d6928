#!/bin/bash
# Escape attempts aimed at the host and its resources, as root (root mode)
# and as nobody (rootless). Each is made twice: in the sandbox, where it must
# be refused, and with the protection off (the defence switched off, or the
# probe run on the host as the same user), where it must succeed, so a check
# that could not fail is itself a failure.
. "$(dirname "$0")/lib.sh"

result() { sed -n 's/^[^:]*: //p' | head -1; }

# check USER DESC WANT GOT CONTROL: GOT must start with WANT, CONTROL must be
# ESCAPED (the same attempt without the protection).
check() {
	case "$4" in
	"$3"*) ;;
	*)
		fail "[$1] $2: want '$3', got '$4'"
		return
		;;
	esac
	case "$5" in
	ESCAPED*) pass "[$1] $2: $4 (protection off: $5)" ;;
	*) fail "[$1] $2: control did not escape: '$5'" ;;
	esac
}

# A listener on an abstract unix socket in the host's network namespace.
ABS=agentd-test-$$
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind("\0" + sys.argv[1]); s.listen(64)
open(sys.argv[2], "w").close()
time.sleep(60)' "$ABS" "$STAGE/abs.ready" &
ABS_PID=$!
trap 'kill $ABS_PID 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do [ -e "$STAGE/abs.ready" ] && break; sleep 0.05; done

mkdir -p "$STAGE/host-only"
chmod 777 "$STAGE/host-only"
for user in $USERS; do
	# Signals to processes outside, here one of the same user: the sandbox
	# has its own pid namespace (and landlock scopes signals behind it).
	as "$user" /bin/sh -c "echo \$\$ > $STAGE/host-only/target.pid; exec sleep 29.$$" &
	bg=$!
	for _ in $(seq 100); do [ -s "$STAGE/host-only/target.pid" ] && break; sleep 0.02; done
	target=$(cat "$STAGE/host-only/target.pid")
	rm -f "$STAGE/host-only/target.pid"
	got=$(sandboxed "$user" -- "$PROBE" try kill "$target" 2>&1 | result)
	ctl=$(as "$user" "$PROBE" try kill "$target" 2>&1 | result)
	kill "$target"
	wait "$bg" 2>/dev/null
	check "$user" "signal 0 to a host process" "BLOCKED (ESRCH)" "$got" "$ctl"

	# /proc of the supervisor: not in the sandbox's /proc.
	got=$(sandboxed "$user" -- "$PROBE" try open "/proc/$$/status" 2>&1 | result)
	ctl=$(as "$user" "$PROBE" try open "/proc/$$/status" 2>&1 | result)
	check "$user" "/proc of the supervisor" "BLOCKED (ENOENT)" "$got" "$ctl"

	# Abstract unix sockets of the host: a separate network namespace
	# (and landlock scoping behind it).
	got=$(sandboxed "$user" -- "$PROBE" try abstract-connect "$ABS" 2>&1 | result)
	ctl=$(as "$user" "$PROBE" try abstract-connect "$ABS" 2>&1 | result)
	check "$user" "abstract unix socket on the host" "BLOCKED (ECONNREFUSED)" "$got" "$ctl"

	# TCP: the socket-family filter refuses AF_INET; behind it landlock
	# refuses TCP connect (EACCES) where the kernel has ABI 4. Without
	# either, the stack answers (ECONNREFUSED on a closed port).
	got=$(sandboxed "$user" -- "$PROBE" try tcp-connect 2>&1 | result)
	ctl=$(sandboxed "$user" --network loopback -- "$PROBE" try tcp-connect 2>&1 | result)
	if [ "$got" = "BLOCKED (EAFNOSUPPORT)" ] && [ "$ctl" = "BLOCKED (ECONNREFUSED)" ]; then
		pass "[$user] tcp connect: $got (loopback network: $ctl)"
	else
		fail "[$user] tcp connect: got '$got', loopback network '$ctl'"
	fi
	got=$(sandboxed "$user" --no-seccomp -- "$PROBE" try tcp-connect 2>&1 | result)
	ctl=$(sandboxed "$user" --no-seccomp --no-landlock -- "$PROBE" try tcp-connect 2>&1 | result)
	if [ "$got" = "BLOCKED (EACCES)" ] && [ "$ctl" = "BLOCKED (ECONNREFUSED)" ]; then
		pass "[$user] landlock tcp fence: $got (without landlock: $ctl)"
	elif [ "$got" = "$ctl" ] && grep -q 'landlock' <(sandboxed "$user" -- /bin/true 2>&1); then
		pass "[$user] landlock unavailable here (reported): $got"
	else
		fail "[$user] landlock tcp fence: got '$got', without landlock '$ctl'"
	fi

	# Writes outside the mounts: the cwd is bound read-only, other host
	# directories do not exist.
	got=$(sandboxed "$user" -- "$PROBE" try write "$STAGE/outside" 2>&1 | result)
	ctl=$(as "$user" "$PROBE" try write "$STAGE/host-only/outside" 2>&1 | result)
	check "$user" "write into the bound cwd" "BLOCKED (EROFS)" "$got" "$ctl"
	got=$(sandboxed "$user" --cwd "$STAGE" -- "$PROBE" try write "$STAGE/host-only/x" 2>&1 | result)
	check "$user" "write into a host dir below the cwd" "BLOCKED (EROFS)" "$got" "$ctl"
	got=$(sandboxed "$user" -- "$PROBE" try write "/var/tmp/agentd-probe-$$" 2>&1 | result)
	ctl=$(as "$user" "$PROBE" try write "/var/tmp/agentd-probe-$$" 2>&1 | result)
	rm -f "/var/tmp/agentd-probe-$$"
	check "$user" "write to an unbound host dir" "BLOCKED (ENOENT)" "$got" "$ctl"
	rm -f "$STAGE/host-only/outside" "$STAGE/host-only/x"

	# Fork bomb: RLIMIT_NPROC (256) in the sandbox; the host allows more.
	got=$(sandboxed "$user" -- "$PROBE" try forkbomb 400 2>/dev/null | result)
	ctl=$(as "$user" "$PROBE" try forkbomb 400 2>/dev/null | result)
	check "$user" "fork bomb" "BLOCKED (EAGAIN)" "$got" "$ctl"

	# Memory exhaustion: the address-space limit stops it.
	got=$(sandboxed "$user" --memory $((128 << 20)) -- "$PROBE" try memhog 256 2>/dev/null | result)
	ctl=$(as "$user" "$PROBE" try memhog 256 2>/dev/null | result)
	check "$user" "memory exhaustion (limit 128 MiB)" "BLOCKED (ENOMEM)" "$got" "$ctl"

	# Protected names in a writable mount: git hooks and config, shell rc
	# files stay read-only and .git cannot be moved aside. Control: the same
	# names listed as writable (what a policy that names them gets).
	pws=$STAGE/pws
	rm -rf "$pws" && mkdir -p "$pws/.git/hooks" && : >"$pws/.git/config" && : >"$pws/.bashrc"
	chown -R 65534:65534 "$pws"
	pw() { sandboxed "$user" --workspace "$pws" "$@" 2>&1 | result; }
	got=$(pw -- "$PROBE" try write /workspace/.bashrc)
	ctl=$(pw --writable-name .bashrc -- "$PROBE" try write /workspace/.bashrc)
	check "$user" "write a shell rc file in the workspace" "BLOCKED (EROFS)" "$got" "$ctl"
	got=$(pw -- "$PROBE" try write /workspace/.git/hooks/post-checkout)
	ctl=$(pw --writable-name .git/hooks -- "$PROBE" try write /workspace/.git/hooks/post-checkout)
	check "$user" "add a git hook" "BLOCKED (EROFS)" "$got" "$ctl"
	got=$(pw -- "$PROBE" try write /workspace/.git/config)
	ctl=$(pw --writable-name .git/config -- "$PROBE" try write /workspace/.git/config)
	check "$user" "change .git/config" "BLOCKED (EROFS)" "$got" "$ctl"
	got=$(sandboxed "$user" --workspace "$pws" -- /bin/sh -c 'mv /workspace/.git /workspace/moved 2>/dev/null && echo "rename: ESCAPED" || echo "rename: BLOCKED (EBUSY)"' | result)
	ctl=$(sandboxed "$user" --workspace "$pws" --writable-name .git/hooks --writable-name .git/config -- \
		/bin/sh -c 'mv /workspace/.git /workspace/moved 2>/dev/null && echo "rename: ESCAPED" || echo "rename: BLOCKED"' | result)
	check "$user" "move .git aside" "BLOCKED (EBUSY)" "$got" "$ctl"
	[ -d "$pws/.git" ] || [ ! -d "$pws/moved" ] || mv "$pws/moved" "$pws/.git"

	# Protected names that do not exist yet cannot be created either (a
	# read-only placeholder is bound there): a shell rc file, and a .git
	# with hooks or config where there was no repository. Control: the same
	# names listed as writable, in a fresh workspace each time.
	fresh() { rm -rf "$pws" && mkdir -p "$pws" && chown 65534:65534 "$pws"; }
	fresh; got=$(pw -- "$PROBE" try write /workspace/.profile)
	[ -f "$pws/.profile" ] && [ ! -s "$pws/.profile" ] || fail "[$user] no empty .profile placeholder"
	fresh; ctl=$(pw --writable-name .profile -- "$PROBE" try write /workspace/.profile)
	check "$user" "create a shell rc file in the workspace" "BLOCKED" "$got" "$ctl"
	rmrc='rm -f /workspace/.profile 2>/dev/null && [ ! -e /workspace/.profile ] && echo "rm: ESCAPED" || echo "rm: BLOCKED (EBUSY)"'
	fresh; got=$(sandboxed "$user" --workspace "$pws" -- /bin/sh -c "$rmrc" | result)
	fresh; : >"$pws/.profile"; chown 65534:65534 "$pws/.profile"
	ctl=$(sandboxed "$user" --workspace "$pws" --writable-name .profile -- /bin/sh -c "$rmrc" | result)
	check "$user" "remove the .profile placeholder" "BLOCKED (EBUSY)" "$got" "$ctl"
	mkcfg='mkdir -p /workspace/.git 2>/dev/null; (: >>/workspace/.git/config) 2>/dev/null && echo "config: ESCAPED" || echo "config: BLOCKED (EROFS)"'
	fresh; got=$(sandboxed "$user" --workspace "$pws" -- /bin/sh -c "$mkcfg" | result)
	fresh; ctl=$(sandboxed "$user" --workspace "$pws" --writable-name .git/hooks --writable-name .git/config -- \
		/bin/sh -c "$mkcfg" | result)
	check "$user" "create .git/config where there was no repository" "BLOCKED (EROFS)" "$got" "$ctl"
	fresh; got=$(sandboxed "$user" --workspace "$pws" -- /bin/sh -c 'mkdir -p /workspace/.git/hooks 2>/dev/null && echo "mkdir: ESCAPED" || echo "mkdir: BLOCKED (EROFS)"' | result)
	fresh; ctl=$(sandboxed "$user" --workspace "$pws" --writable-name .git/hooks --writable-name .git/config -- \
		/bin/sh -c 'mkdir -p /workspace/.git/hooks 2>/dev/null && echo "mkdir: ESCAPED" || echo "mkdir: BLOCKED"' | result)
	check "$user" "create .git/hooks where there was no repository" "BLOCKED (EROFS)" "$got" "$ctl"
done

# Set-uid binaries: a set-uid-root copy of the probe, run by the program.
# nosuid mounts, no_new_privs and the unmapped uid 0 all stand in the way;
# on the host the same file gives nobody euid 0.
if [ "$(id -u)" = 0 ] && [[ " $USERS " == *" nobody "* ]]; then
	cp "$PROBE" "$STAGE/suid-probe"
	chown root:root "$STAGE/suid-probe"
	chmod 4755 "$STAGE/suid-probe"
	ctl=$(runuser -u nobody -- "$STAGE/suid-probe" try euid-root 2>&1 | result)
	for user in $USERS; do
		got=$(sandboxed "$user" -- "$STAGE/suid-probe" try euid-root 2>&1 | result)
		check "$user" "set-uid root binary" "BLOCKED (euid" "$got" "$ctl"
	done
	rm -f "$STAGE/suid-probe"
else
	echo "note: set-uid check needs root (to create a set-uid-root file)"
fi
finish
