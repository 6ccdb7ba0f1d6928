#!/bin/bash
# agentd serve's control API end to end, through agentctl and raw HTTP: health,
# version, submit (201, idempotent retry 200), run --wait exit status, ls with
# filters and cursor paging, show, logs, events (NDJSON, ?after=), journal of a
# run with brokered calls, cancel, kill, JSON 4xx errors, the fair queue
# (positions, 429 when a tenant's queue is full), drain, wall-clock limit.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
start_effects_server
mkdir -p "$T/policies" "$T/out"
chmod 777 "$T/out"
me=$(id -un)
cat > "$T/policies/$me.json" <<JSON
{"version": 1, "rules": [
 {"id": "effects", "tool": "http.request", "host": "127.0.0.1", "method": ["POST"], "decision": "allow"},
 {"id": "out", "tool": "fs.write", "path": "$T/out/**", "decision": "allow"}
]}
JSON
start_serve "{\"policy_dir\": \"$T/policies\", \"max_running\": 2, \"max_running_per_user\": 2, \"max_queued_per_user\": 3, \"webhook_hosts\": [\"127.0.0.1\"]}"

# health and version
h=$(api GET /v1/health); [ "$(code)" = 200 ] || fail "health: $(code)"
[ "$(jget "$h" 'd["status"]')" = ok ] || fail "health status: $h"
ctl version | has "^server: agentd " || fail "version"

# run --wait exits with the agent's status; logs hold its output
rc=0; ctl -q run --name exit3 --max-restarts 0 --wait -- /bin/sh -c 'echo out-line; echo err-line >&2; exit 3' >/dev/null || rc=$?
[ $rc = 3 ] || fail "run --wait exit status $rc, expected 3"
ctl logs exit3 | has '^out-line$' || fail "logs: stdout"
ctl logs exit3 | has '^err-line$' || fail "logs: stderr"
rc=0; ctl run --wait -- /bin/true >/dev/null 2>&1 || rc=$?
[ $rc = 0 ] || fail "run --wait of /bin/true: $rc"

# a run with brokered calls: journal and events
(cd "$T/lib" && ctl -q run --name counter --wait -- python3 counter_agent.py "$URL" serve 4 "$T/out") >/dev/null ||
	{ ctl show counter; ctl logs counter; fail "counter run"; }
check_exactly_once serve 4
j=$(api GET /v1/runs/counter/journal)
[ "$(jget "$j" 'len(d["calls"])')" = 5 ] || fail "journal: $j"
[ "$(jget "$j" 'd["calls"][0]["tool"]')" = http.request ] || fail "journal tool: $j"
ev=$(api GET /v1/runs/counter/events)
echo "$ev" | python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin if l.strip()]' || fail "events are not NDJSON"
echo "$ev" | has '"run.succeeded"' || fail "events: no run.succeeded"
first=$(echo "$ev" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
n_all=$(echo "$ev" | grep -c .)
n_after=$(api GET "/v1/runs/counter/events?after=$first" | grep -c .)
[ "$n_after" = $((n_all - 1)) ] || fail "events?after: $n_after of $n_all"

# agentctl output modes and helpers
ctl -o jsonl ls | python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' || fail "ls -o jsonl"
ctl -o json show exit3 | python3 -c 'import json,sys; assert json.load(sys.stdin)["exit_code"] == 3' ||
	fail "show -o json"
ctl ls | has $'\033' && fail "colour when stdout is not a terminal"
ctl completion bash | has '^complete -F _agentctl agentctl$' || fail "completion bash"
rc=0; ctl frobnicate 2>/dev/null || rc=$?; [ $rc = 2 ] || fail "unknown verb: exit $rc"
rc=0; "$AGENTCTL" -H unix://$T/nothing.sock health 2>/dev/null || rc=$?
[ $rc = 125 ] || fail "unreachable daemon: exit $rc"

# completion webhook: POSTed once the run is final; only to configured hosts
applied() { counts | python3 -c 'import json,sys; print(json.load(sys.stdin)["applied"].get(sys.argv[1], 0))' "$1"; }
api POST /v1/runs "{\"command\": [\"/bin/true\"], \"name\": \"hooked\", \"webhook\": \"$URL/effect/hook-1\"}" >/dev/null
[ "$(code)" = 201 ] || fail "submit with a webhook: $(code)"
api GET '/v1/runs/hooked/result?wait=30' >/dev/null
for _ in $(seq 100); do [ "$(applied hook-1)" = 1 ] && break; sleep 0.05; done
[ "$(applied hook-1)" = 1 ] || fail "webhook delivered $(applied hook-1) times"
api POST /v1/runs '{"command": ["/bin/true"], "webhook": "http://169.254.169.254/x"}' >/dev/null
[ "$(code)" = 400 ] || fail "a webhook to a host not allowed: $(code)"
api POST /v1/runs '{"command": ["/bin/true"], "webhook": "file:///etc/passwd"}' >/dev/null
[ "$(code)" = 400 ] || fail "a file:// webhook: $(code)"

# fork after the last call: the fork replays every call and repeats no effect
ctl -q fork counter --from 5 --name counter-fork >/dev/null || fail "agentctl fork"
r=$(api GET '/v1/runs/counter-fork/result?wait=60')
[ "$(jget "$r" 'd["status"]')" = succeeded ] || { ctl logs counter-fork; fail "fork: $r"; }
check_exactly_once serve 4
api GET /v1/runs/counter-fork/events | has '"replay.summary".*"replayed":5' ||
	{ api GET /v1/runs/counter-fork/events; fail "the fork did not replay its 5 calls"; }
api POST /v1/runs/counter/fork '{"from_seq": 99}' >/dev/null; [ "$(code)" = 400 ] || fail "fork past the end: $(code)"

# idempotency: a retried submit returns the same run
b='{"command": ["/bin/true"], "idempotency_key": "k-1"}'
r1=$(api POST /v1/runs "$b"); [ "$(code)" = 201 ] || fail "submit: $(code) $r1"
r2=$(api POST /v1/runs "$b"); [ "$(code)" = 200 ] || fail "retried submit: $(code) $r2"
[ "$(jget "$r1" 'd["id"]')" = "$(jget "$r2" 'd["id"]')" ] || fail "idempotency key started a second run"

# errors: JSON bodies with code and message
e=$(api POST /v1/runs '{"command": []}'); [ "$(code)" = 400 ] || fail "empty command: $(code)"
[ "$(jget "$e" 'd["error"]["code"]')" = invalid ] || fail "error body: $e"
api POST /v1/runs '{"command": ["x"], "bogus": 1}' >/dev/null; [ "$(code)" = 400 ] || fail "unknown key: $(code)"
api POST /v1/runs '{"command": ["x"], "command": ["y"]}' >/dev/null; [ "$(code)" = 400 ] || fail "duplicate key: $(code)"
api POST /v1/runs 'not json' >/dev/null; [ "$(code)" = 400 ] || fail "not json: $(code)"
api POST /v1/runs '{"command": ["x"], "policy": {"version": 1, "extends": "x"}}' >/dev/null
[ "$(code)" = 400 ] || fail "a run policy with extends: $(code)"
api POST /v1/runs '{"command": ["x"], "policy": {"version": 1, "rules": [{"id": "w"}]}}' >/dev/null
[ "$(code)" = 400 ] || fail "an invalid run policy: $(code)"

# a run's own policy is one more layer: it narrows and never widens
cat > "$T/wide.json" <<JSON
{"version": 1, "rules": [{"id": "all-fs", "tool": "fs.*", "decision": "allow"}]}
JSON
cat > "$T/narrow.json" <<JSON
{"version": 1, "rules": [{"id": "read", "tool": "fs.read", "decision": "allow"}]}
JSON
w='python3 '$T'/lib/serve_call.py fs.write "{\"path\": \"'$T'/out/$0\", \"content\": \"x\"}" >/dev/null 2>&1; echo "w=$?"
python3 '$T'/lib/serve_call.py fs.read "{\"path\": \"/etc/hostname\"}" >/dev/null 2>&1; echo "r=$?"'
(cd "$T" && ctl -q run --name wide --policy "$T/wide.json" --wait -- /bin/sh -c "$w" wide) >/dev/null || fail "wide run"
(cd "$T" && ctl -q run --name narrow --policy "$T/narrow.json" --wait -- /bin/sh -c "$w" narrow) >/dev/null || fail "narrow run"
ctl logs wide | has '^w=0$' || { ctl logs wide; fail "a run layer allowing fs.* blocked what both allow"; }
ctl logs wide | has '^r=10$' || { ctl logs wide; fail "a run layer widened the user's policy"; }
ctl logs narrow | has '^w=10$' || { ctl logs narrow; fail "a run layer did not narrow the user's policy"; }
[ "$(jget "$(api GET /v1/runs/wide)" 'd["status"]')" = succeeded ] || fail "wide status"
api GET /v1/runs/nope >/dev/null; [ "$(code)" = 404 ] || fail "unknown run: $(code)"
api DELETE /v1/health >/dev/null; [ "$(code)" = 405 ] || fail "wrong method: $(code)"
api GET /v1/nothing >/dev/null; [ "$(code)" = 404 ] || fail "unknown path: $(code)"
api POST /v1/runs/exit3/cancel >/dev/null; [ "$(code)" = 409 ] || fail "cancel of a finished run: $(code)"
rc=0; ctl show nope 2>/dev/null || rc=$?; [ $rc = 125 ] || fail "agentctl exit status for a daemon error: $rc"

# the queue: 2 running, 3 queued with positions, the 4th queued is refused (429)
for i in 1 2 3 4 5; do ctl -q run --name "q$i" -- /bin/sleep 30 >/dev/null; done
[ "$(jget "$(api GET /v1/runs/q3)" 'd["status"]')" = queued ] || fail "q3 not queued"
[ "$(jget "$(api GET /v1/runs/q5)" 'd["queue_position"]')" = 3 ] || fail "queue position of q5"
e=$(api POST /v1/runs '{"command": ["/bin/true"]}'); [ "$(code)" = 429 ] || fail "full queue: $(code) $e"
ctl -q ls --status queued | sort | tr '\n' ' ' | has '^q3 q4 q5 $' || fail "ls --status queued"
# q1 makes no calls: a graceful cancel ends it after the grace period
ctl cancel q1 >/dev/null
[ "$(jget "$(api GET /v1/runs/q1)" 'd["status"]')" = running ] || fail "q1 ended before its grace period"
r=$(api GET '/v1/runs/q1/result?wait=15')
[ "$(jget "$r" 'd["status"]')" = cancelled ] || fail "q1 after a cancel: $r"
sleep 0.3
[ "$(jget "$(api GET /v1/runs/q3)" 'd["status"]')" = running ] || fail "q3 did not start after a cancel"
for i in 4 5; do ctl cancel q$i >/dev/null; done
[ "$(jget "$(api GET /v1/runs/q4)" 'd["status"]')" = cancelled ] || fail "cancel of a queued run"
ctl kill q2 >/dev/null; ctl kill q3 >/dev/null
[ "$(jget "$(api GET /v1/runs/q3)" 'd["reason"]')" = killed ] || fail "kill of a running run"

# paging: limit 2 walks every run exactly once
total=$(jget "$(api GET '/v1/runs?limit=500')" 'len(d["runs"])')
seen=0; cursor=
while :; do
	p=$(api GET "/v1/runs?limit=2${cursor:+&cursor=$cursor}")
	seen=$((seen + $(jget "$p" 'len(d["runs"])')))
	cursor=$(jget "$p" 'd["next_cursor"] or ""')
	[ -n "$cursor" ] || break
done
[ "$seen" = "$total" ] || fail "paging saw $seen of $total runs"
[ "$(ctl -q ls | wc -l)" = "$total" ] || fail "agentctl ls"

# wall-clock limit
ctl -q run --name slow --wall-clock 1 -- /bin/sleep 30 >/dev/null
r=$(api GET '/v1/runs/slow/result?wait=10')
[ "$(jget "$r" 'd["status"]')" = failed ] || fail "wall-clock: $r"
jget "$r" 'd["reason"]' | has wall-clock || fail "wall-clock reason: $r"

# result?wait does not block the loop: other requests are answered meanwhile
ctl -q run --name waiter -- /bin/sleep 2 >/dev/null
t0=$(date +%s%N)
api GET '/v1/runs/waiter/result?wait=20' >"$T/waited" &
wp=$!
sleep 0.3
api GET /v1/health >/dev/null; [ "$(code)" = 200 ] || fail "health while a request waits"
t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -lt 1500 ] || fail "the loop was blocked by a waiting request"
wait $wp
grep -q '"succeeded"' "$T/waited" || fail "result?wait: $(cat "$T/waited")"

# delete: a finished run's files go and it is no longer listed; a live one is refused
api DELETE /v1/runs/waiter >/dev/null; [ "$(code)" = 200 ] || fail "delete: $(code)"
api GET /v1/runs/waiter >/dev/null; [ "$(code)" = 404 ] || fail "a deleted run is shown"
[ ! -e "$STATE/runs/waiter" ] || fail "a deleted run's files stayed"
ctl -q ls | has -x waiter && fail "a deleted run is listed"
ctl -q run --name busy -- /bin/sleep 30 >/dev/null
api DELETE /v1/runs/busy >/dev/null; [ "$(code)" = 409 ] || fail "delete of a live run: $(code)"
ctl kill busy >/dev/null
ctl rm busy >/dev/null || fail "agentctl rm"

# drain: new runs refused (503), health says so; undrain
ctl drain >/dev/null
api POST /v1/runs '{"command": ["/bin/true"]}' >/dev/null; [ "$(code)" = 503 ] || fail "drain: $(code)"
[ "$(jget "$(api GET /v1/health)" 'd["status"]')" = draining ] || fail "health while draining"
ctl undrain >/dev/null
api POST /v1/runs '{"command": ["/bin/true"]}' >/dev/null; [ "$(code)" = 201 ] || fail "undrain: $(code)"

stop_serve TERM || fail "agentd serve did not exit 0 on SIGTERM"
[ ! -S "$SOCK" ] || fail "socket left behind"

# retention: finished runs are deleted retention_s after they finish, also
# after a restart; deleted runs stay deleted
start_serve "{\"policy_dir\": \"$T/policies\", \"retention_s\": 2}"
api GET /v1/runs/waiter >/dev/null; [ "$(code)" = 404 ] || fail "a deleted run came back"
ctl -q run --name short --wait -- /bin/true >/dev/null
api GET /v1/runs/short >/dev/null; [ "$(code)" = 200 ] || fail "short gone at once"
sleep 3.5
api GET /v1/runs/short >/dev/null; [ "$(code)" = 404 ] || fail "retention did not delete short"
api GET /v1/runs/exit3 >/dev/null; [ "$(code)" = 404 ] || fail "retention did not delete older runs"
stop_serve TERM
echo "ok: serve API"
