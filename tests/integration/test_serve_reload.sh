#!/bin/bash
# SIGHUP in agentd serve: a running run is judged by its stored policy layers
# plus the reloaded ones, so a reload can narrow it and never widen it.
#   step 1: the user's policy allows agentd.echo, not fs.read;
#   step 2: the file is widened to allow fs.read too: the running run still
#           may not read (control: a run submitted now may);
#   step 3: the file no longer allows agentd.echo: the running run is denied it.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
W="$T/w"
mkdir -p "$T/policies" "$W"
echo data > "$W/data.txt"
cat > "$W/reload_agent.py" <<'PY'
import os, sys, time
import agentd
c = agentd.connect()
data = os.path.abspath("data.txt")
for i in [int(s) for s in sys.argv[1:]]:
    while not os.path.exists(f"go-{i}"):
        time.sleep(0.05)
    for tool, args in (("agentd.echo", {"value": i}), ("fs.read", {"path": data})):
        try:
            c.call(tool, args)
            print(f"step {i} {tool}: ok", flush=True)
        except agentd.Denied:
            print(f"step {i} {tool}: denied", flush=True)
PY
chmod -R a+rX "$W"
echo_rule='{"id": "echo", "tool": "agentd.echo", "decision": "allow"}'
read_rule='{"id": "read", "tool": "fs.read", "path": "'"$W"'/**", "decision": "allow"}'
set_policy() { printf '{"version": 1, "rules": [%s]}\n' "$1" > "$T/policies/default.json"; }
hup() { # send SIGHUP and wait until the daemon has handled it
	local before
	before=$(grep -c "SIGHUP: policies reloaded" "$T/serve.log" || true)
	kill -HUP "$SERVE_PID"
	for _ in $(seq 100); do
		[ "$(grep -c "SIGHUP: policies reloaded" "$T/serve.log" || true)" -gt "$before" ] && return 0
		sleep 0.05
	done
	fail "SIGHUP was not handled"
}
step_done() { # NAME LINE: wait for a line of the run's output
	for _ in $(seq 200); do ctl logs "$1" 2>/dev/null | has -x "$2" && return 0; sleep 0.05; done
	ctl logs "$1"; fail "$1: no '$2'"
}

set_policy "$echo_rule"
start_serve "{\"policy_dir\": \"$T/policies\"}"
(cd "$W" && ctl -q run --name live -- python3 reload_agent.py 1 2 3) >/dev/null

touch "$W/go-1"
step_done live "step 1 fs.read: denied"
ctl logs live | has -x "step 1 agentd.echo: ok" || { ctl logs live; fail "step 1: echo"; }

set_policy "$echo_rule, $read_rule"
hup
touch "$W/go-2"
step_done live "step 2 fs.read: denied"
ctl logs live | has -x "step 2 agentd.echo: ok" || { ctl logs live; fail "step 2: echo"; }
# control: the widened file does allow reading to a run that starts with it
(cd "$W" && ctl -q run --name fresh -- python3 reload_agent.py 2) >/dev/null
step_done fresh "step 2 fs.read: ok"

set_policy "$read_rule"
hup
touch "$W/go-3"
step_done live "step 3 fs.read: denied"
ctl logs live | has -x "step 3 agentd.echo: denied" || { ctl logs live; fail "step 3: echo not narrowed"; }
stop_serve TERM || true
echo "serve reload: SIGHUP narrows running runs, never widens them"
