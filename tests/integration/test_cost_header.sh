#!/bin/bash
# limits.cost_header: an http.request whose response carries the header the
# policy names adds its integer value to the run's spend (reported as the
# result's "cost"), so max_spend refuses the call after the budget is spent.
# Controls: the same server without a cost_header in the policy spends nothing,
# and a malformed value reports no cost.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
cat > "$T/server.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("X-Cost", "4" if self.path != "/bad" else "4 units")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_port))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
python3 "$T/server.py" "$T/port" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || fail "server did not start"
URL="http://127.0.0.1:$(cat "$T/port")"
cat > "$T/lib/cost_agent.py" <<'PY'
import sys
import agentd
url, n = sys.argv[1], int(sys.argv[2])
c = agentd.connect()
for i in range(1, n + 1):
    try:
        r = c.call("http.request", {"method": "GET", "url": url})
        print(f"call {i}: ok status={r.get('status')} cost={r.get('cost')}", flush=True)
    except agentd.LimitReached as e:
        print(f"call {i}: limit {e.data.get('limit')}", flush=True)
PY
chmod 644 "$T/lib/cost_agent.py"
run() { # run NAME LIMITS PATH N
	cat > "$T/$1.json" <<JSON
{"version": 1, "rules": [{"id": "local", "tool": "http.request", "host": "127.0.0.1",
  "method": "GET", "decision": "allow"}], "limits": $2}
JSON
	(cd "$T/lib" && "$AGENTD" run --id "$1" --state "$T/st" --policy "$T/$1.json" \
		-- python3 cost_agent.py "$URL$3" "$4") >"$T/$1.out" 2>"$T/$1.err" ||
		{ cat "$T/$1.out" "$T/$1.err"; fail "$1: run failed"; }
}
# The agent's lines only: agentd's timeline goes to stderr, written after each
# reply, and would land inside a line printed in pieces.
expect() { grep -qx -- "$2" "$T/$1.out" || { cat "$T/$1.out" "$T/$1.err"; fail "$1: expected '$2'"; }; }

run cost '{"max_spend": 10, "cost_header": "X-Cost"}' /x 4
expect cost "call 1: ok status=200 cost=4"
expect cost "call 3: ok status=200 cost=4"
expect cost "call 4: limit max_spend"
# the refusal is journaled with the rule limits.max_spend
"$AGENTD" show cost --state "$T/st" >"$T/show" 2>&1
grep -q "limits.max_spend" "$T/show" || { cat "$T/show"; fail "cost: the timeline does not name the limit"; }

# control: no cost_header in the policy, nothing is spent
run free '{"max_spend": 10}' /x 4
expect free "call 4: ok status=200 cost=None"
# control: a value that is not a plain integer reports no cost
run bad '{"max_spend": 10, "cost_header": "x-cost"}' /bad 4
expect bad "call 4: ok status=200 cost=None"
echo "cost header: reported cost added to the spend, max_spend enforced on it"
