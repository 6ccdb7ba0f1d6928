#!/bin/bash
# One escape attempt per known vector, inside the sandbox, as root (root mode)
# and as nobody (rootless). Each must be refused with the expected answer.
# A control shows the answer comes from the sandbox: the same attempt made
# with the seccomp filter off, or (as root) on the host in a private mount
# namespace, must get a different answer.
. "$(dirname "$0")/lib.sh"

# vector|expected result inside the sandbox
VECTORS='
io_uring_setup|BLOCKED (EPERM)
mount|BLOCKED (EPERM)
ptrace|BLOCKED (EPERM)
ptrace-traceme|BLOCKED (EPERM)
unshare|BLOCKED (EPERM)
unshare-mount|BLOCKED (EPERM)
setns|BLOCKED (EPERM)
chroot|BLOCKED (EPERM)
clone3-newuser|BLOCKED (ENOSYS)
clone3|BLOCKED (ENOSYS)
clone-newns|BLOCKED (EPERM)
clone-newuser|BLOCKED (EPERM)
clone-newnet|BLOCKED (EPERM)
keyctl|BLOCKED (EPERM)
bpf|BLOCKED (EPERM)
perf_event_open|BLOCKED (EPERM)
userfaultfd|BLOCKED (EPERM)
tiocsti|BLOCKED (EPERM)
tiocsti-high|BLOCKED (EPERM)
tioclinux|BLOCKED (EPERM)
fsopen|BLOCKED (EPERM)
open_tree|BLOCKED (EPERM)
socket-netlink|BLOCKED (EAFNOSUPPORT)
socket-packet|BLOCKED (EAFNOSUPPORT)
socket-vsock|BLOCKED (EAFNOSUPPORT)
socket-alg|BLOCKED (EAFNOSUPPORT)
socket-highbits|BLOCKED (EAFNOSUPPORT)
personality|BLOCKED (ENOSYS)
mknod|BLOCKED (EPERM)
setuid-root|BLOCKED
int80|BLOCKED (signal 31)
x32|BLOCKED (signal 31)
'

result() { # strip the vector name
	sed -n 's/^[^:]*: //p' | head -1
}

for user in $USERS; do
	echo "== as $user"
	echo "$VECTORS" | while IFS='|' read -r v want; do
		[ -n "$v" ] || continue
		got=$(sandboxed "$user" -- "$PROBE" try "$v" 2>&1 | result)
		case "$got" in
		"$want"*) ;;
		*)
			echo "FAIL: [$user] $v: want '$want', got '$got'"
			echo x >>"$STAGE/fails"
			continue
			;;
		esac
		ctl=$(sandboxed "$user" --no-seccomp -- "$PROBE" try "$v" 2>&1 | result)
		host=""
		if [ "$(id -u)" = 0 ]; then
			host=$(unshare -m --propagation private "$PROBE" try "$v" 2>&1 | result)
		fi
		if [ "$ctl" != "$got" ]; then
			echo "ok: [$user] $v: $got (no seccomp: $ctl)"
		elif [ -n "$host" ] && [ "$host" != "$got" ]; then
			echo "ok: [$user] $v: $got (host: $host)"
		elif [ "$v" = socket-alg ] || [ "$v" = setuid-root ] || [ "$(id -u)" != 0 ]; then
			# AF_ALG may be absent from the kernel; uid 0 is never mapped;
			# without root there is no host control for privileged calls.
			echo "ok: [$user] $v: $got (no control possible here)"
		else
			echo "FAIL: [$user] $v: control did not differ (got '$got', no seccomp '$ctl', host '$host')"
			echo x >>"$STAGE/fails"
		fi
	done
done
[ -f "$STAGE/fails" ] && FAILS=$(wc -l <"$STAGE/fails")
finish
