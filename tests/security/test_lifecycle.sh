#!/bin/bash
# Exit status, signal deaths, signal forwarding, descriptor hygiene, and that
# nothing started in the sandbox outlives the program.
. "$(dirname "$0")/lib.sh"

check_rc() { # desc want got
	if [ "$2" = "$3" ]; then pass "$1: $3"; else fail "$1: want $2, got $3"; fi
}

for user in $USERS; do
	sandboxed "$user" -- /bin/true
	check_rc "[$user] /bin/true" 0 $?
	sandboxed "$user" -- /bin/sh -c 'exit 42'
	check_rc "[$user] exit 42" 42 $?
	# A program killed by SIGKILL is reported as such (137 from the driver,
	# which prints the signal); an exit(137) is not a signal.
	msg=$(as "$user" "$SBX" --workspace "$STAGE/ws" -- /bin/sh -c 'kill -9 $$' 2>&1)
	check_rc "[$user] kill -9 self" 137 $?
	case "$msg" in *"killed by signal 9"*) pass "[$user] reported as signal 9" ;;
	*) fail "[$user] SIGKILL not reported as a signal: $msg" ;; esac
	msg=$(as "$user" "$SBX" --workspace "$STAGE/ws" -- /bin/sh -c 'exit 137' 2>&1)
	check_rc "[$user] exit 137" 137 $?
	case "$msg" in *"killed by signal"*) fail "[$user] exit 137 reported as a signal" ;;
	*) pass "[$user] exit 137 is an exit" ;; esac

	# Only 0..3 are open in the program (fd 3 only when a channel is given).
	fds=$(sandboxed "$user" -- /bin/sh -c 'ls /proc/self/fd' 9</dev/null 2>&1 | sort -n | tr '\n' ' ')
	check_rc "[$user] open fds (ls has one extra for the dir)" "0 1 2 3 " "$fds"
	fds=$(sandboxed "$user" --channel 0 -- /bin/sh -c 'exec 5</dev/null; ls /proc/self/fd' 2>&1 | sort -n | tr '\n' ' ')
	check_rc "[$user] channel on fd 3" "0 1 2 3 4 5 " "$fds"

	# SIGTERM to the sandbox (its init) reaches the program.
	rm -f "$STAGE/ws/term"
	rm -f "$STAGE/init.pid"
	as "$user" "$SBX" --quiet --workspace "$STAGE/ws" --pidfile "$STAGE/ws/init.pid" -- /bin/sh -c \
		'trap "echo got-term > /workspace/term; exit 7" TERM; echo ready > /workspace/ready; while :; do sleep 0.05; done' &
	drv=$!
	for _ in $(seq 100); do [ -e "$STAGE/ws/ready" ] && break; sleep 0.05; done
	kill -TERM "$(cat "$STAGE/ws/init.pid")"
	wait "$drv"
	check_rc "[$user] SIGTERM forwarded, program's exit status" 7 $?
	[ -e "$STAGE/ws/term" ] && pass "[$user] program saw SIGTERM" || fail "[$user] program did not see SIGTERM"
	rm -f "$STAGE/ws/ready" "$STAGE/ws/term" "$STAGE/ws/init.pid"

	# A daemonized grandchild dies with the program.
	# (A duration unique to this test, so other tests' sleeps do not count.)
	marker="31.$$"
	sandboxed "$user" -- /bin/sh -c "(setsid sleep $marker </dev/null >/dev/null 2>&1 &) ; exit 0"
	sleep 0.2
	if pgrep -f "^sleep $marker\$" >/dev/null; then
		fail "[$user] a process outlived the sandbox"
		pkill -KILL -f "^sleep $marker\$"
	else
		pass "[$user] nothing outlives the program"
	fi

	# Rlimits are applied.
	lim=$(sandboxed "$user" -- /bin/sh -c 'ulimit -n; ulimit -c; grep "Max processes" /proc/self/limits' 2>&1 | awk '{ printf "%s ", ($1 == "Max" ? $3 : $1) }')
	check_rc "[$user] rlimits nofile nproc core" "1024 0 256 " "$lim"

	# python3 works (threads, subprocess, sockets on lo when the network is
	# "loopback"); by default only unix sockets exist.
	if [ -x /usr/bin/python3 ]; then
		out=$(sandboxed "$user" -- /usr/bin/python3 -c 'import socket, threading, subprocess
a, b = socket.socketpair(); a.send(b"u"); print(b.recv(1).decode(), subprocess.run(["/bin/true"]).returncode)
try:
    socket.socket()
except OSError as e:
    print(e.errno)' 2>&1)
		check_rc "[$user] python3 default: unix sockets, subprocess; AF_INET refused (EAFNOSUPPORT)" "u 0
97" "$out"
		out=$(sandboxed "$user" --network loopback -- /usr/bin/python3 -c '
import socket, subprocess, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.send(b"x")
t = threading.Thread(target=lambda: None); t.start(); t.join()
print(a.recv(1).decode(), subprocess.run(["/bin/true"]).returncode)' 2>&1)
		check_rc "[$user] python3 with --network loopback: tcp on lo, threads, subprocess" "x 0" "$out"
	fi
	# Setup errors are reported, not run.
	msg=$(sandboxed "$user" -- /nonexistent/prog 2>&1)
	check_rc "[$user] exec failure status" 127 $?
	case "$msg" in *"exec /nonexistent/prog failed: ENOENT"*) pass "[$user] exec error named" ;;
	*) fail "[$user] exec error message: $msg" ;; esac
done
finish
