#!/bin/bash
# sd_notify without libsystemd: agentd serve sends READY=1 (with a STATUS=)
# once it serves, and STOPPING=1 on SIGTERM, as datagrams to $NOTIFY_SOCKET.
# Also checks contrib/agentd.service with systemd-analyze when it is present.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
PY
PIDS+=($!)
for _ in $(seq 100); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done
export NOTIFY_SOCKET="$T/notify.sock"
start_serve '{}'
for _ in $(seq 100); do grep -q READY=1 "$T/notify.log" 2>/dev/null && break; sleep 0.05; done
grep -q '^READY=1|STATUS=serving on ' "$T/notify.log" || fail "no READY=1: $(cat "$T/notify.log" 2>/dev/null)"
stop_serve TERM || fail "SIGTERM exit status"
sleep 0.1
grep -q '^STOPPING=1' "$T/notify.log" || fail "no STOPPING=1: $(cat "$T/notify.log")"
unset NOTIFY_SOCKET
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify "$SRC/contrib/agentd.service" 2>&1 | grep -v "agentd: " | grep -i "unknown\|invalid" &&
		fail "contrib/agentd.service has unknown or invalid settings"
fi
echo "ok: sd_notify"
