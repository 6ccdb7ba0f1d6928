#!/bin/bash
# One escape attempt per known vector, inside the sandbox, as root (root mode)
# and as nobody (rootless). Each must be refused with the expected answer.
# A control shows the answer comes from the sandbox: the same attempt made
# with the seccomp filter off, or (as root) on the host in a private mount
# namespace, must get a different answer.
. "$(dirname "$0")/lib.sh"

# vector|expected result inside the sandbox|syscall recorded as a violation
# (- when the kernel, not the filter's errno, answers: the ENOSYS for clone3
# that glibc relies on stays in the kernel, kills are seen in exit statuses)
VECTORS='
io_uring_setup|BLOCKED (EPERM)|io_uring_setup
mount|BLOCKED (EPERM)|mount
ptrace|BLOCKED (EPERM)|ptrace
ptrace-traceme|BLOCKED (EPERM)|ptrace
unshare|BLOCKED (EPERM)|unshare
unshare-mount|BLOCKED (EPERM)|unshare
setns|BLOCKED (EPERM)|setns
chroot|BLOCKED (EPERM)|chroot
clone3-newuser|BLOCKED (ENOSYS)|-
clone3|BLOCKED (ENOSYS)|-
clone-newns|BLOCKED (EPERM)|clone
clone-newuser|BLOCKED (EPERM)|clone
clone-newnet|BLOCKED (EPERM)|clone
keyctl|BLOCKED (EPERM)|keyctl
bpf|BLOCKED (EPERM)|bpf
perf_event_open|BLOCKED (EPERM)|perf_event_open
userfaultfd|BLOCKED (EPERM)|userfaultfd
tiocsti|BLOCKED (EPERM)|ioctl
tiocsti-high|BLOCKED (EPERM)|ioctl
tioclinux|BLOCKED (EPERM)|ioctl
fsopen|BLOCKED (EPERM)|fsopen
open_tree|BLOCKED (EPERM)|open_tree
socket-netlink|BLOCKED (EAFNOSUPPORT)|socket
socket-packet|BLOCKED (EAFNOSUPPORT)|socket
socket-vsock|BLOCKED (EAFNOSUPPORT)|socket
socket-alg|BLOCKED (EAFNOSUPPORT)|socket
socket-highbits|BLOCKED (EAFNOSUPPORT)|socket
socket-inet|BLOCKED (EAFNOSUPPORT)|socket
socket-inet6|BLOCKED (EAFNOSUPPORT)|socket
process_vm_readv|BLOCKED (EPERM)|process_vm_readv
personality|BLOCKED (ENOSYS)|personality
mknod|BLOCKED (EPERM)|-
setuid-root|BLOCKED|-
int80|BLOCKED (signal 31)|-
x32|BLOCKED (signal 31)|-
'

result() { # strip the vector name
	sed -n 's/^[^:]*: //p' | head -1
}

for user in $USERS; do
	echo "== as $user"
	echo "$VECTORS" | while IFS='|' read -r v want sc; do
		[ -n "$v" ] || continue
		vf=$STAGE/violations.$user.$v
		: >"$vf"
		[ "$user" = root ] || chown "$user" "$vf"
		got=$(sandboxed "$user" --violations "$vf" -- "$PROBE" try "$v" 2>&1 | result)
		case "$got" in
		"$want"*) ;;
		*)
			echo "FAIL: [$user] $v: want '$want', got '$got'"
			echo x >>"$STAGE/fails"
			continue
			;;
		esac
		# The denial is recorded, with the errno the program saw; and a
		# vector the filter does not answer records nothing.
		if [ "$sc" = - ]; then
			if [ -s "$vf" ]; then
				echo "FAIL: [$user] $v: unexpected violation: $(cat "$vf")"
				echo x >>"$STAGE/fails"
			fi
		elif ! grep -q "^$sc $(echo "$got" | sed 's/.*(\(.*\))/\1/')\( \|$\)" "$vf"; then
			echo "FAIL: [$user] $v: violation '$sc' not recorded: '$(cat "$vf")'"
			echo x >>"$STAGE/fails"
		fi
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
