#!/usr/bin/env bash
# The flagship demo: a research agent that reads, fetches, is refused by
# policy, files a ticket (approved), crashes, is restarted by agentd, and
# finishes without filing the ticket twice.
#
#   examples/research/demo.sh BUILD_DIR
#
# AGENTD_DEMO_FAKE=1 runs the agent under sdk/tests/fake_supervisor.py instead
# of agentd (no sandbox); the SDK tests use it.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 64
fi
BUILD=$(cd "$1" && pwd)
EXAMPLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$EXAMPLE/../.." && pwd)
AGENTD="$BUILD/bin/agentd"
FAKE=${AGENTD_DEMO_FAKE:-0}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

if [ "$FAKE" != 1 ] && [ ! -x "$AGENTD" ]; then
	echo "demo: $AGENTD not found; build it first (make build)" >&2
	exit 1
fi

STATE=$(mktemp -d "${TMPDIR:-/tmp}/agentd-demo.XXXXXX")
# mktemp makes it 0700; the sandboxed child runs as another uid and must be
# able to traverse to its workspace under here.
chmod 0755 "$STATE"
SERVICE_PID=
cleanup() {
	if [ -n "$SERVICE_PID" ]; then
		kill -TERM "$SERVICE_PID" 2>/dev/null || true
		wait "$SERVICE_PID" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then
	step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	step() { printf '\n== %s\n' "$*"; }
fi

step "starting the sources service (stands in for an external API)"
"$PY" "$EXAMPLE/service.py" "$STATE/port" &
SERVICE_PID=$!
for _ in $(seq 50); do
	[ -s "$STATE/port" ] && break
	kill -0 "$SERVICE_PID" 2>/dev/null || { echo "demo: service.py exited" >&2; exit 1; }
	sleep 0.1
done
[ -s "$STATE/port" ] || { echo "demo: service.py did not start" >&2; exit 1; }
PORT=$(cat "$STATE/port")
URL="http://127.0.0.1:$PORT"
echo "service on $URL (state in $STATE)"

mkdir -p "$STATE/out"
sed -e "s|@EXAMPLE@|$EXAMPLE|g" -e "s|@OUT@|$STATE/out|g" -e "s|@PORT@|$PORT|g" \
	"$EXAMPLE/policy.json.in" >"$STATE/policy.json"

step "running the agent under agentd (policy: $STATE/policy.json)"
cd "$EXAMPLE"
rc=0
if [ "$FAKE" = 1 ]; then
	PYTHONPATH="$SRC/sdk/python" "$PY" "$SRC/sdk/tests/fake_supervisor.py" \
		--policy "$STATE/policy.json" --approve --max-restarts 3 -- \
		"$PY" agent.py --service "$URL" --out "$STATE/out" || rc=$?
else
	"$AGENTD" run --id research-demo --policy "$STATE/policy.json" --state "$STATE/agentd" \
		--approve --max-restarts 3 -- \
		python3 agent.py --service "$URL" --out "$STATE/out" || rc=$?
fi
if [ "$rc" -ne 0 ]; then
	echo "demo: the run failed (exit $rc)" >&2
	exit "$rc"
fi

if [ "$FAKE" != 1 ]; then
	step "timeline (agentd show research-demo)"
	"$AGENTD" show research-demo --state "$STATE/agentd" || {
		echo "demo: agentd show failed" >&2
		exit 1
	}
fi

step "report written by the agent ($STATE/out/report.md)"
if [ ! -s "$STATE/out/report.md" ]; then
	echo "demo: the report was not written" >&2
	exit 1
fi
cat "$STATE/out/report.md"

step "checking side effects at the service"
"$PY" - "$URL/_counts" <<'PYEOF'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    counts = json.load(r)
effects = counts.get("effects", {})
tickets = effects.get("POST /tickets", 0)
posts = counts.get("requests", {}).get("POST /tickets", 0)
dups = {k: v for k, v in effects.items() if v != 1}
if tickets == 1 and not dups:
    print("exactly-once check: PASSED (tickets applied: %d, POST requests: %d)" % (tickets, posts))
    sys.exit(0)
print("exactly-once check: FAILED (tickets applied: %d, POST requests: %d, effects: %s)"
      % (tickets, posts, json.dumps(effects)))
sys.exit(1)
PYEOF
