#!/bin/bash
# What the program sees of itself and of the host: no capabilities,
# no_new_privs, a seccomp filter, loopback only, the mapped ids, and none of
# the host's files outside the binds. Run as root (root mode) and as nobody.
. "$(dirname "$0")/lib.sh"

expect_line() { # user file key value
	if grep -qx "$3=$4" "$2"; then
		pass "[$1] $3=$4"
	else
		fail "[$1] $3: want $4, got '$(grep "^$3=" "$2" | head -1)'"
	fi
}

expect_try() { # user want vector [path]
	local user=$1 want=$2
	shift 2
	local got
	got=$(sandboxed "$user" -- "$PROBE" try "$@" 2>&1)
	case "$got" in
	*": $want"*) pass "[$user] $got" ;;
	*) fail "[$user] try $*: want $want, got '$got'" ;;
	esac
}

# Control: the probe on the host really sees what the sandbox hides.
"$PROBE" status >"$STAGE/host.txt"
if grep -qx 'ifaces=lo' "$STAGE/host.txt"; then
	echo "note: the host itself has only lo; the interface check proves less here"
fi
if [ "$(id -u)" = 0 ]; then
	grep -qx 'CapEff=0000000000000000' "$STAGE/host.txt" &&
		fail "control: host root shows no capabilities, the capability check cannot fail"
	"$PROBE" try open /etc/shadow | grep -q ESCAPED ||
		fail "control: /etc/shadow not readable on the host as root"
fi

mkdir -p "$STAGE/data"
: >"$STAGE/data/own"
[ "$(id -u)" = 0 ] && chown 65534:65534 "$STAGE/data/own"
for user in $USERS; do
	out=$STAGE/status.$user
	sandboxed "$user" -- "$PROBE" status >"$out" 2>&1 || fail "[$user] probe status failed: $(cat "$out")"
	expect_line "$user" "$out" CapEff 0000000000000000
	expect_line "$user" "$out" CapPrm 0000000000000000
	expect_line "$user" "$out" CapBnd 0000000000000000
	expect_line "$user" "$out" CapAmb 0000000000000000
	expect_line "$user" "$out" NoNewPrivs 1
	expect_line "$user" "$out" Seccomp 2
	expect_line "$user" "$out" ifaces lo
	expect_line "$user" "$out" pid 2
	expect_line "$user" "$out" hostname agentd
	if [ "$user" = root ]; then
		expect_line "$user" "$out" uid 65534
		expect_line "$user" "$out" gid 65534
	else
		expect_line "$user" "$out" uid "$(id -u "$user")"
	fi
	# Host files outside the binds do not exist in the sandbox.
	for f in /etc/shadow /etc/gshadow /root /home /var /boot /etc/sudoers /sys; do
		expect_try "$user" "BLOCKED (ENOENT)" open "$f"
	done
	# Read-only where it must be, writable where it should be.
	expect_try "$user" "BLOCKED (EROFS)" write /usr/agentd-probe-file
	expect_try "$user" "BLOCKED (EACCES)" write /etc/passwd
	expect_try "$user" "BLOCKED (EROFS)" write /agentd-probe-file
	expect_try "$user" "BLOCKED (EROFS)" write "$STAGE/agentd-probe-file"
	expect_try "$user" "BLOCKED (EROFS)" write /dev/agentd-probe-file
	expect_try "$user" ESCAPED write /workspace/probe-file
	expect_try "$user" ESCAPED write /tmp/probe-file
	expect_try "$user" ESCAPED write /dev/shm/probe-file
	expect_try "$user" ESCAPED open /dev/null
	[ -e "$STAGE/ws/probe-file" ] || fail "[$user] /workspace write did not reach the host workspace"
	[ -e /tmp/probe-file ] && fail "[$user] sandbox /tmp is the host /tmp"
	rm -f "$STAGE/ws/probe-file"
	# Extra binds: read-only and read-write, files the program owns.
	got=$(sandboxed "$user" --bind "$STAGE/data:/data" --bind "$STAGE/data:/data-rw:rw" -- \
		/bin/sh -c 'echo x >> /data/own; echo "ro:$?"; echo y >> /data-rw/own; echo "rw:$?"' 2>&1 | grep -o '[a-z]*:[0-9]' | tr '\n' ' ')
	if [ "$got" = "ro:2 rw:0 " ] && [ "$(cat "$STAGE/data/own")" = y ]; then
		pass "[$user] ro bind refuses, rw bind writes through"
	else
		fail "[$user] binds: got '$got', file '$(cat "$STAGE/data/own")'"
	fi
	: >"$STAGE/data/own"
	# Bound files have their content (a symlinked source such as
	# /etc/localtime is resolved on the host, not in the new root).
	if [ -e /etc/localtime ]; then
		want=$(stat -L -c %s /etc/localtime)
		got=$(sandboxed "$user" -- /bin/sh -c 'wc -c < /etc/localtime' 2>&1)
		if [ "$got" = "$want" ]; then pass "[$user] /etc/localtime has $got bytes"
		else fail "[$user] /etc/localtime: want $want bytes, got '$got'"; fi
	fi
	# Landlock: a host directory handed in as fd 0 bypasses the mount
	# namespace; landlock still refuses what lies below it. Control: the
	# same with landlock off succeeds.
	got=$(sandboxed "$user" -- "$PROBE" try openat-fd0 hostname </etc 2>&1)
	ctl=$(sandboxed "$user" --no-landlock -- "$PROBE" try openat-fd0 hostname </etc 2>&1)
	if [[ "$got" == *"BLOCKED (EACCES)"* && "$ctl" == *ESCAPED* ]]; then
		pass "[$user] landlock: $got (without landlock: ESCAPED)"
	else
		fail "[$user] landlock: got '$got', without landlock '$ctl'"
	fi
	# Kernel knobs under /proc stay read-only.
	got=$(sandboxed "$user" -- "$PROBE" try write /proc/sys/kernel/hostname 2>&1)
	case "$got" in *BLOCKED*) pass "[$user] $got" ;; *) fail "[$user] $got" ;; esac
	# The control: without the sandbox, /workspace is not special and the
	# host's /etc/shadow exists (as root it is even readable).
	[ -e /etc/shadow ] || fail "control: host has no /etc/shadow"
done
finish
