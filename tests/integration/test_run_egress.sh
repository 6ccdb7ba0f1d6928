#!/bin/bash
# Egress address control is on for every http.request: a rule that does not
# name an address (here: any GET) cannot reach loopback, link-local (cloud
# metadata) or private addresses, whether given as a literal, a short form or
# a name that resolves there; a rule naming 127.0.0.1 can. Control: the named
# call reaches the local server and is applied.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
start_effects_server
cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [
 {"id": "any-get", "tool": "http.request", "method": "GET", "decision": "allow"},
 {"id": "local-post", "tool": "http.request", "host": "127.0.0.1", "method": "POST", "decision": "allow"}
]}
JSON
chmod 644 "$T/policy.json"
(cd "$T/lib" && "$AGENTD" run --state "$T/st" --policy "$T/policy.json" \
	-- python3 egress_agent.py "$PORT") >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "run failed"; }
# The agent's lines only: agentd's timeline goes to stderr, written after each
# reply, and would land inside a line printed in pieces.
ex() { grep -qx -- "$1" "$T/out" || { cat "$T/out" "$T/err"; fail "expected '$1'"; }; }
ex "named: status 200"
ex "unnamed-ip: EACCES"
ex "name-to-loopback: EACCES"
ex "short-form: EACCES"
ex "metadata: EACCES"
applied=$(counts | python3 -c 'import json,sys; print(json.load(sys.stdin)["applied"].get("egress", 0))')
[ "$applied" = 1 ] || fail "named call applied $applied times"
echo "egress: private addresses only where a rule names them"
