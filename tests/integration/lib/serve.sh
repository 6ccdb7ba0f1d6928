# Helpers for `agentd serve` tests. Source after common.sh and stage():
#   start_serve [CONFIG_JSON]   starts agentd serve on $T/agentd.sock with state $T/state
#   stop_serve [SIGNAL]         stops it and waits (returns its exit status)
#   api METHOD PATH [BODY]      raw HTTP against the socket: prints the body;
#                               `code` then prints its HTTP status
#   ctl ARGS...                 agentctl against the socket
cp "$BIN/agentctl" "$T/inst/bin/"
chmod a+rx "$T/inst/bin/agentctl"
AGENTCTL="$T/inst/bin/agentctl"
SOCK="$T/agentd.sock"
STATE="$T/state"
SERVE_PID=
export AGENTD_HOST="unix://$SOCK"

start_serve() {
	local cfg=${1:-'{}'}
	printf '%s\n' "$cfg" > "$T/serve.json"
	rm -f "$SOCK"
	"$AGENTD" serve --config "$T/serve.json" --state "$STATE" --socket "$SOCK" \
		>>"$T/serve.log" 2>&1 &
	SERVE_PID=$!
	PIDS+=($SERVE_PID)
	for _ in $(seq 200); do
		[ -S "$SOCK" ] && curl -s --unix-socket "$SOCK" http://x/v1/health >/dev/null && return 0
		kill -0 $SERVE_PID 2>/dev/null || break
		sleep 0.05
	done
	cat "$T/serve.log"
	fail "agentd serve did not start"
}

stop_serve() {
	local sig=${1:-TERM} rc=0
	kill -$sig $SERVE_PID 2>/dev/null || true
	wait $SERVE_PID || rc=$?
	SERVE_PID=
	return $rc
}

api() {
	local out
	out=$(curl -s --unix-socket "$SOCK" -X "$1" -w '\n%{http_code}' ${3:+-H 'Content-Type: application/json' --data-binary "$3"} "http://agentd$2")
	printf '%s\n' "${out##*$'\n'}" > "$T/http_code"
	printf '%s\n' "${out%$'\n'*}"
}

code() { cat "$T/http_code"; }

ctl() { "$AGENTCTL" "$@"; }

# jget JSON EXPR: a field of a JSON document (python expression on d)
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

# On failure, show the daemon's own account before the temp dir goes.
serve_cleanup() {
	local rc=$?
	if [ $rc != 0 ] && [ -f "$T/serve.log" ]; then
		echo "--- agentd serve log (last 40 lines)" >&2
		tail -40 "$T/serve.log" >&2
	fi
	cleanup
}
trap serve_cleanup EXIT

# has PATTERN...: grep that reads all of its input. `cmd | grep -q` under
# pipefail fails when grep exits at the first match and cmd gets SIGPIPE.
has() { grep "$@" >/dev/null; }
