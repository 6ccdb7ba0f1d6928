# Shared helpers for integration tests. Source it; it sets:
#   BIN (agentd binaries), SRC, T (a private world-readable temp dir, removed on exit)
set -euo pipefail
BIN=${AGENTD_BIN_DIR:?run through ctest or set AGENTD_BIN_DIR}
SRC=${AGENTD_SRC_DIR:?}
T=$(mktemp -d /tmp/agentd-test.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Stage the build (agentd, SDK, probe) and the test libs into $T/inst so an
# unprivileged user can use them even when the source tree is not reachable.
stage() {
	mkdir -p "$T/inst/bin" "$T/inst/share"
	cp "$BIN"/agentd "$BIN"/agentd-serve "$T/inst/bin/"
	[ -f "$BIN/agentd-probe" ] && cp "$BIN/agentd-probe" "$T/inst/bin/"
	cp -r "$(dirname "$BIN")/share/agentd" "$T/inst/share/"
	cp -r "$SRC/tests/integration/lib" "$T/lib"
	chmod -R a+rX "$T/inst" "$T/lib"
	AGENTD="$T/inst/bin/agentd"
	# The staged SDK, not the build tree's (which nobody may not reach).
	export AGENTD_SDK_DIR="$T/inst/share/agentd/sdk"
}

# start_effects_server: sets PORT and URL
start_effects_server() {
	python3 "$T/lib/effects_server.py" "$T/port" &
	PIDS+=($!)
	for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
	[ -s "$T/port" ] || fail "effects server did not start"
	PORT=$(cat "$T/port")
	URL="http://127.0.0.1:$PORT"
}

counts() { curl -s "$URL/_counts"; }

# as_user USER CMD...: run CMD as USER (or as ourselves when USER is "self")
as_user() {
	local u=$1; shift
	if [ "$u" = self ]; then "$@"; else runuser -u "$u" -- "$@"; fi
}

# The users to run as: root runs both ways; others only as themselves.
test_users() {
	if [ "$(id -u)" = 0 ]; then echo "self nobody"; else echo self; fi
}

# policy for the counter agent: POST to the effects server, writes to $1
counter_policy() {
	cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [
 {"id": "effects", "tool": "http.request", "host": "127.0.0.1", "method": ["POST"], "decision": "allow"},
 {"id": "out", "tool": "fs.write", "path": "$1/**", "decision": "allow"}
]}
JSON
	chmod 644 "$T/policy.json"
}

# check_exactly_once TAG N [MAX_REQUESTS]: every odd effect 1..N of TAG applied
# exactly once; requests per effect at most MAX_REQUESTS (default 1).
check_exactly_once() {
	python3 - "$URL" "$1" "$2" "${3:-1}" <<'PY'
import json, sys, urllib.request
url, tag, n, maxreq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = json.load(urllib.request.urlopen(url + "/_counts"))
bad = []
for i in range(1, n + 1, 2):
    name = f"{tag}-e{i}"
    a, r = c["applied"].get(name, 0), c["requests"].get(name, 0)
    if a != 1 or r > maxreq:
        bad.append(f"{name}: applied {a}, requested {r}")
if bad:
    sys.exit("exactly-once violated: " + "; ".join(bad))
PY
}
