#!/bin/bash
# Multi-tenant agentd serve (root): two unprivileged users created for the
# test. Each sees and acts on its own runs only (list, show, result, events,
# logs, journal, cancel, kill: 404 for the other's), admin verbs are refused
# (403), root sees all. Each user's policy applies to its own runs only, and
# each user's agents run as that tenant's own unprivileged uid. The queue is fair: round robin across users.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
if [ "$(id -u)" != 0 ]; then echo "skip: needs root to create users"; exit 77; fi
command -v useradd >/dev/null || { echo "skip: no useradd"; exit 77; }
stage
. "$SRC/tests/integration/lib/serve.sh"
UA=agdta$$; UB=agdtb$$
useradd -M -N -s /bin/sh "$UA"
useradd -M -N -s /bin/sh "$UB"
trap 'serve_cleanup; userdel "$UA" 2>/dev/null; userdel "$UB" 2>/dev/null; true' EXIT

mkdir -p "$T/policies" "$T/shared"
chmod 777 "$T/shared"
cat > "$T/policies/$UA.json" <<JSON
{"version": 1, "rules": [{"id": "a-out", "tool": "fs.write", "path": "$T/shared/a-*", "decision": "allow"},
 {"id": "a-ask", "tool": "fs.write", "path": "$T/shared/ask-*", "decision": "ask"}]}
JSON
cat > "$T/policies/$UB.json" <<JSON
{"version": 1, "rules": [{"id": "b-out", "tool": "fs.write", "path": "$T/shared/b-*", "decision": "allow"}]}
JSON
start_serve "{\"policy_dir\": \"$T/policies\", \"max_running\": 1, \"approval_idle_suspend_s\": 1}"
as() { local u=$1; shift; (cd "$T" && runuser -u "$u" -- "$@"); }
actl() { local u=$1; shift; as "$u" "$AGENTCTL" "$@"; }
aapi() { # aapi USER METHOD PATH: prints the HTTP status
	as "$1" curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" -X "$2" "http://agentd$3"
}

# policies: each user's rules apply to its own runs only
w='python3 '$T'/lib/serve_call.py fs.write "{\"path\": \"'$T'/shared/$0\", \"content\": \"x\"}"; echo "rc=$?"; id -u'
actl "$UA" -q run --name a-pol --wait -- /bin/sh -c "$w" a-file >/dev/null || fail "A's allowed write"
actl "$UA" -q run --name a-steal --wait -- /bin/sh -c "$w" b-file >/dev/null || true
actl "$UB" -q run --name b-pol --wait -- /bin/sh -c "$w" b-file >/dev/null || fail "B's allowed write"
actl "$UA" logs a-pol | has '^rc=0$' || { actl "$UA" logs a-pol; fail "A's policy did not allow A"; }
actl "$UA" logs a-steal | has '^rc=10$' || { actl "$UA" logs a-steal; fail "B's policy applied to A's run"; }
actl "$UB" logs b-pol | has '^rc=0$' || fail "B's policy did not allow B"
# root mode: each tenant's agents run as its own unprivileged uid (200000..)
ua=$(actl "$UA" logs a-pol | grep -x '[0-9]*'); ub=$(actl "$UB" logs b-pol | grep -x '[0-9]*')
[ "$ua" -ge 200000 ] && [ "$ub" -ge 200000 ] && [ "$ua" != "$ub" ] || fail "sandbox uids: A $ua, B $ub"
[ -f "$T/shared/a-file" ] && [ -f "$T/shared/b-file" ] || fail "allowed writes missing"

# isolation: B cannot see or touch A's runs
actl "$UA" -q run --name a-long -- /bin/sleep 30 >/dev/null
actl "$UB" -q ls | has '^a-' && fail "B lists A's runs"
actl "$UB" -q ls | has '^b-pol$' || fail "B does not list its own run"
for p in "GET /v1/runs/a-long" "GET /v1/runs/a-long/result" "GET /v1/runs/a-long/events" \
	"GET /v1/runs/a-long/logs" "GET /v1/runs/a-long/journal" "POST /v1/runs/a-long/cancel" \
	"POST /v1/runs/a-long/kill" "POST /v1/runs/a-long/messages"; do
	c=$(aapi "$UB" $p)
	[ "$c" = 404 ] || [ "$c" = 403 ] || fail "B: $p answered $c"
done
rc=0; actl "$UB" cancel a-long 2>/dev/null || rc=$?
[ $rc = 125 ] || fail "agentctl cancel of another user's run: exit $rc"
[ "$(aapi "$UB" GET '/v1/runs?user='"$UA")" = 200 ] || fail "filtered listing"
[ -z "$(actl "$UB" -q ls --user "$UA")" ] || fail "B lists A's runs with --user"
[ "$(aapi "$UB" POST /v1/admin/drain)" = 403 ] || fail "B may drain"
ctl -q ls | has '^a-long$' || fail "root does not see A's run"
ctl -q ls | has '^b-pol$' || fail "root does not see B's run"
[ "$(jget "$(api GET /v1/runs/a-long)" 'd["status"]')" = running ] || fail "a-long not running"

# approvals and messages: only A (the owner; no approvers named) decides
actl "$UA" kill a-long >/dev/null
actl "$UA" -q run --name a-ask -- /bin/sh -c "$w" ask-file >/dev/null
for _ in $(seq 100); do p=$(actl "$UA" -q approvals --run a-ask); [ -n "$p" ] && break; sleep 0.1; done
[ "$p" = a-ask/1 ] || fail "A's pending approval: '$p'"
[ -z "$(actl "$UB" -q approvals)" ] || fail "B sees A's approvals"
[ "$(aapi "$UB" GET '/v1/approvals?run=a-ask')" = 404 ] || fail "B lists A's approvals by run"
rc=0; actl "$UB" approve a-ask 1 2>/dev/null || rc=$?
[ $rc = 125 ] || fail "B approved A's call (exit $rc)"
rc=0; actl "$UB" send a-ask hello 2>/dev/null || rc=$?
[ $rc = 125 ] || fail "B messaged A's run (exit $rc)"
[ ! -f "$T/shared/ask-file" ] || fail "the call ran before its approval"
actl "$UA" approve a-ask 1 >/dev/null || fail "A approves its own call"
[ "$(jget "$(api GET /v1/runs/a-ask/result?wait=30)" 'd["status"]')" = succeeded ] || fail "a-ask"
[ -f "$T/shared/ask-file" ] || fail "the approved call did not run"
actl "$UA" -q run --name a-long -- /bin/sleep 30 >/dev/null 2>&1 || true
actl "$UA" -q run --name a-long2 -- /bin/sleep 30 >/dev/null

# fairness: with one slot, B's run goes before A's later ones
for i in 1 2; do actl "$UA" -q run --name "a-q$i" -- /bin/true >/dev/null; done
actl "$UB" -q run --name b-q1 -- /bin/true >/dev/null
[ "$(jget "$(api GET /v1/runs/b-q1)" 'd["queue_position"]')" = 1 ] || fail "B's run is not next: $(api GET /v1/runs/b-q1)"
[ "$(jget "$(api GET /v1/runs/a-q2)" 'd["queue_position"]')" = 3 ] || fail "A's second run position"
actl "$UA" kill a-long2 >/dev/null
for r in a-q1 a-q2 b-q1; do
	[ "$(jget "$(api GET "/v1/runs/$r/result?wait=20")" 'd["status"]')" = succeeded ] || fail "$r"
done
sb=$(jget "$(api GET /v1/runs/b-q1)" 'd["started_ms"]')
sa=$(jget "$(api GET /v1/runs/a-q1)" 'd["started_ms"]')
s2=$(jget "$(api GET /v1/runs/a-q2)" 'd["started_ms"]')
[ "$sb" -le "$sa" ] || [ "$sb" -le "$s2" ] || fail "round robin: B started after both of A's queued runs"
stop_serve TERM
echo "ok: serve tenants"
