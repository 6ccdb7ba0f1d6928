#!/bin/bash
# Run control through agentd serve and agentctl:
# 1. a graceful cancel refuses the agent's next call (-32003, reason
#    "cancelled"); the agent exits and the run ends "cancelled" (final);
# 2. an agent that ignores it is killed after the grace period;
# 3. a call waiting for its approval is answered at once by a cancel;
# 4. pause holds the next call (no effect while paused), resume lets it go;
# 5. the environment of POST /v1/runs reaches the agent; reserved names are refused;
#    agentctl run -e/--env KEY=VAL sends it, a malformed one fails before a submit;
# 6. a paused run stays paused across a restart of agentd serve (SIGTERM and
#    SIGKILL): shown paused, no effect meanwhile, and resume still works.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
start_effects_server
mkdir -p "$T/policies"
cat > "$T/policies/default.json" <<JSON
{"version": 1, "rules": [
 {"id": "free", "tool": "http.request", "url_prefix": "$URL/effect/", "method": ["POST"], "decision": "allow"},
 {"id": "gate", "tool": "http.request", "url_prefix": "$URL/effect/gated-", "method": ["POST"], "decision": "ask"}
]}
JSON
# how many effects of TAG were applied
n_applied() { counts | python3 -c 'import json,sys; print(sum(1 for k in json.load(sys.stdin)["applied"] if k.startswith(sys.argv[1] + "-")))' "$1"; }
submit() { # NAME AGENT ARGS...
	local name=$1; shift
	(cd "$T/lib" && ctl -q run --name "$name" --max-restarts 0 -- python3 "$@") >/dev/null || fail "submit $name"
}
until_applied() { # TAG N
	for _ in $(seq 200); do [ "$(n_applied $1)" -ge $2 ] && return 0; sleep 0.05; done
	fail "$1: fewer than $2 effects"
}
result() { api GET "/v1/runs/$1/result?wait=60"; }
status() { jget "$(api GET /v1/runs/$1)" 'd["status"]'; }

cfg='{"policy_dir": "'"$T/policies"'", "approval_idle_suspend_s": -1}'
start_serve "$cfg"

# 1. graceful cancel: the agent sees why and ends on its own
submit c1 control_agent.py "$URL" c1
until_applied c1 2
t0=$(date +%s)
ctl cancel c1 >/dev/null || fail "agentctl cancel"
r=$(result c1)
[ "$(jget "$r" 'd["status"]')" = cancelled ] || { ctl logs c1; fail "c1: $r"; }
[ "$(jget "$r" 'd["exit_code"]')" = 0 ] || fail "c1 did not exit on its own: $r"
[ $(( $(date +%s) - t0 )) -lt 4 ] || fail "c1 took the grace period"
ctl logs c1 | has '^stopped reason=cancelled$' || { ctl logs c1; fail "c1: the agent did not see the cancel"; }
n=$(n_applied c1); sleep 0.3
[ "$(n_applied c1)" = "$n" ] || fail "c1 made effects after it was cancelled"
api GET /v1/runs/c1/events | has '"run.cancelled"' || fail "c1: no run.cancelled event"
api POST /v1/runs/c1/cancel >/dev/null; [ "$(code)" = 409 ] || fail "cancel of a cancelled run: $(code)"
api POST /v1/runs/c1/pause >/dev/null; [ "$(code)" = 409 ] || fail "pause of a cancelled run: $(code)"
echo "ok: graceful cancel"

# 2. an agent that ignores the cancel is killed after the grace period
submit c2 control_agent.py "$URL" c2 stubborn
until_applied c2 1
t0=$(date +%s)
ctl cancel c2 >/dev/null || fail "agentctl cancel c2"
sleep 1
[ "$(status c2)" = running ] || fail "c2 ended before the grace period: $(status c2)"
r=$(result c2)
dt=$(( $(date +%s) - t0 ))
[ "$(jget "$r" 'd["status"]')" = cancelled ] || fail "c2: $r"
[ $dt -ge 4 ] && [ $dt -le 15 ] || fail "c2 killed after $dt s"
jget "$r" 'd["reason"]' | has 'grace period' || fail "c2 reason: $r"
ctl logs c2 | has '^stopped reason=cancelled$' || fail "c2: the agent did not see the cancel"
echo "ok: killed after the grace period"

# 3. a call waiting for its approval is answered by the cancel
submit c3 interact_agent.py "$URL" c3 gated
for _ in $(seq 150); do [ -n "$(ctl -q approvals --run c3)" ] && break; sleep 0.1; done
[ -n "$(ctl -q approvals --run c3)" ] || fail "c3: no pending approval"
ctl cancel c3 >/dev/null || fail "agentctl cancel c3"
r=$(result c3)
[ "$(jget "$r" 'd["status"]')" = cancelled ] || fail "c3: $r"
ctl logs c3 | has 'asked: interrupted' || { ctl logs c3; fail "c3: the waiting call was not answered"; }
[ -z "$(ctl -q approvals --run c3)" ] || fail "c3: approval still pending"
echo "ok: cancel answers a waiting call"

# 4. pause and resume
submit p1 control_agent.py "$URL" p1
until_applied p1 2
ctl pause p1 >/dev/null || fail "agentctl pause"
[ "$(status p1)" = paused ] || fail "p1 status after pause: $(status p1)"
api POST /v1/runs/p1/pause >/dev/null; [ "$(code)" = 409 ] || fail "pause of a paused run: $(code)"
sleep 0.5
n=$(n_applied p1); sleep 1
[ "$(n_applied p1)" = "$n" ] || fail "p1 made effects while paused ($n -> $(n_applied p1))"
ctl resume p1 >/dev/null || fail "agentctl resume"
[ "$(status p1)" = running ] || fail "p1 status after resume: $(status p1)"
until_applied p1 $((n + 2))
api POST /v1/runs/p1/resume >/dev/null; [ "$(code)" = 409 ] || fail "resume of a running run: $(code)"
# a paused run can be cancelled: its waiting call is refused
ctl pause p1 >/dev/null || fail "second pause"
ctl cancel p1 >/dev/null || fail "cancel of a paused run"
r=$(result p1)
[ "$(jget "$r" 'd["status"]')" = cancelled ] || fail "p1: $r"
ctl logs p1 | has '^stopped reason=cancelled$' || fail "p1: the agent did not see the cancel"
echo "ok: pause and resume"

# 5. environment: added to the agent's, reserved names refused
api POST /v1/runs '{"command": ["/bin/sh", "-c", "echo mode=$RUN_MODE x=$_X1; echo path=$PATH"], "name": "env1", "environment": {"RUN_MODE": "fast", "_X1": "a b"}}' >/dev/null
[ "$(code)" = 201 ] || fail "submit with an environment: $(code)"
r=$(result env1)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || fail "env1: $r"
ctl logs env1 | has -x 'mode=fast x=a b' || { ctl logs env1; fail "env1: variables not set"; }
ctl logs env1 | has -x 'path=/opt/agentd/bin:/usr/local/bin:/usr/bin:/bin' || fail "env1: PATH changed"
for bad in '{"PATH": "/tmp"}' '{"HOME": "/"}' '{"LANG": "C"}' '{"PYTHONPATH": "/tmp"}' \
	'{"LD_PRELOAD": "/tmp/x.so"}' '{"AGENTD_FD": "4"}' '{"lower": "x"}' '{"1X": "x"}' \
	'{"A-B": "x"}' '{"X": 1}' '[]' '{"X": "'"$(head -c 4100 /dev/zero | tr '\0' a)"'"}' \
	"$(python3 -c 'import json; print(json.dumps({f"V{i}": "x" for i in range(65)}))')"; do
	api POST /v1/runs '{"command": ["/bin/true"], "environment": '"$bad"'}' >/dev/null
	[ "$(code)" = 400 ] || fail "environment $bad: $(code)"
done
api POST /v1/runs '{"command": ["/bin/true"], "name": "env64", "environment": '"$(python3 -c 'import json; print(json.dumps({f"V{i}": "x" for i in range(64)}))')"'}' >/dev/null
[ "$(code)" = 201 ] || fail "64 variables: $(code)"
# agentctl run -e / --env: repeatable, the value may hold '=' or be empty
(cd "$T/lib" && ctl -q run --name env2 -e RUN_MODE=slow --env '_X1=a=b c' -e EMPTY= \
	-- /bin/sh -c 'echo "mode=$RUN_MODE x=$_X1 empty=${EMPTY-unset}"') >/dev/null || fail "agentctl run -e"
r=$(result env2)
[ "$(jget "$r" 'd["status"]')" = succeeded ] || fail "env2: $r"
ctl logs env2 | has -x 'mode=slow x=a=b c empty=' || { ctl logs env2; fail "env2: -e variables not set"; }
n_runs=$(ctl -q ls | wc -l)
for bad in 'NOEQ:KEY=VALUE' '=x:KEY=VALUE' 'lower=x:is not \[A-Z_\]' 'PATH=/tmp:reserved' \
	'LD_PRELOAD=/x.so:reserved' 'A-B=1:is not \[A-Z_\]'; do
	rc=0; ctl run -e "${bad%%:*}" -- /bin/true >/dev/null 2>"$T/env.err" || rc=$?
	[ $rc = 2 ] || fail "agentctl run -e ${bad%%:*}: exit $rc"
	has -- "${bad#*:}" "$T/env.err" || { cat "$T/env.err"; fail "agentctl run -e ${bad%%:*}: message"; }
done
rc=0; ctl run -e A=1 --env A=2 -- /bin/true >/dev/null 2>"$T/env.err" || rc=$?
[ $rc = 2 ] && has 'given twice' "$T/env.err" || fail "a repeated -e name: exit $rc, $(cat "$T/env.err")"
[ "$(ctl -q ls | wc -l)" = "$n_runs" ] || fail "a malformed -e still submitted a run"
ctl completion bash | has -- '--env' || fail "completion lacks --env"
ctl -h | has -- '-e|--env K=V' || fail "help lacks -e|--env"
echo "ok: environment"

# 6. paused across a daemon restart
for sig in TERM KILL; do
	tag=pr$sig
	submit $tag control_agent.py "$URL" $tag
	until_applied $tag 2
	ctl pause $tag >/dev/null || fail "$tag: pause"
	sleep 0.3
	n=$(n_applied $tag)
	rc=0; stop_serve $sig || rc=$?
	[ $sig = KILL ] || [ $rc = 0 ] || fail "$tag: SIGTERM exit $rc"
	sleep 0.3 # a killed daemon's sandboxes go with it
	start_serve "$cfg"
	[ "$(status $tag)" = paused ] || fail "$tag: after the restart: $(status $tag)"
	ctl -q ls --status paused | has -x $tag || fail "$tag: not listed as paused"
	sleep 1
	[ "$(n_applied $tag)" = "$n" ] || fail "$tag: effects while paused after the restart ($n -> $(n_applied $tag))"
	api POST /v1/runs/$tag/pause >/dev/null; [ "$(code)" = 409 ] || fail "$tag: pause of a paused run: $(code)"
	ctl resume $tag >/dev/null || fail "$tag: resume after the restart"
	[ "$(status $tag)" = running ] || fail "$tag: after resume: $(status $tag)"
	until_applied $tag $((n + 2))
	# the journal replayed what came before: nothing applied twice
	counts | python3 -c 'import json,sys; d=json.load(sys.stdin)["applied"]; t=sys.argv[1] + "-"; bad=[k for k, v in d.items() if k.startswith(t) and v != 1]; sys.exit("applied twice: %s" % bad if bad else 0)' $tag ||
		fail "$tag: an effect applied twice"
	ctl cancel $tag >/dev/null || fail "$tag: cancel"
	[ "$(jget "$(result $tag)" 'd["status"]')" = cancelled ] || fail "$tag: not cancelled"
done
# resumed before the restart: runs on after it
submit prR control_agent.py "$URL" prR
until_applied prR 1
ctl pause prR >/dev/null && ctl resume prR >/dev/null || fail "prR: pause, resume"
stop_serve TERM || fail "prR: SIGTERM"
start_serve "$cfg"
n=$(n_applied prR)
until_applied prR $((n + 2))
[ "$(status prR)" = running ] || fail "prR: $(status prR)"
ctl cancel prR >/dev/null
echo "ok: paused across restarts"
