#!/bin/bash
# The optional TCP listener of agentd serve: off unless configured; callers
# present a bearer token whose SHA-256 is in the config (never the token);
# no token or a wrong one is 401 with a JSON error; a token acts as its user
# (own runs only, no admin verbs unless marked admin); agentctl -H tcp://.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
. "$SRC/tests/integration/lib/serve.sh"
me=$(id -un)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tok_user=tok-user-$RANDOM-0123456789abcdef
tok_admin=tok-admin-$RANDOM-0123456789abcdef
h() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

# off by default: nothing listens
start_serve '{}'
curl -s -o /dev/null "http://127.0.0.1:$port/v1/health" && fail "a TCP listener without configuration"
stop_serve TERM

start_serve "{\"tcp_listen\": \"127.0.0.1:$port\", \"tokens\": [
 {\"user\": \"nobody\", \"sha256\": \"$(h "$tok_user")\"},
 {\"user\": \"$me\", \"sha256\": \"$(h "$tok_admin")\", \"admin\": true}]}"
grep -q "$tok_user" "$T/serve.json" && fail "a token in clear in the config"
tcp() { # TOKEN METHOD PATH [BODY]: prints body; the status goes to $T/http_code
	local out
	out=$(curl -s -X "$2" -w '\n%{http_code}' ${1:+-H "Authorization: Bearer $1"} \
		${4:+-H 'Content-Type: application/json' --data-binary "$4"} "http://127.0.0.1:$port$3")
	printf '%s\n' "${out##*$'\n'}" > "$T/http_code"
	printf '%s\n' "${out%$'\n'*}"
}
e=$(tcp "" GET /v1/health); [ "$(code)" = 401 ] || fail "no token: $(code)"
[ "$(jget "$e" 'd["error"]["code"]')" = unauthorized ] || fail "401 body: $e"
tcp "wrong-token-0123456789" GET /v1/health >/dev/null; [ "$(code)" = 401 ] || fail "wrong token: $(code)"
v=$(tcp "$tok_user" GET /v1/version); [ "$(code)" = 200 ] || fail "user token: $(code)"
[ "$(jget "$v" 'd["uid"]')" = "$(id -u nobody)" ] || fail "token user: $v"
[ "$(jget "$v" 'd["admin"]')" = False ] || fail "user token is admin"
tcp "$tok_user" POST /v1/admin/drain >/dev/null; [ "$(code)" = 403 ] || fail "user token drained: $(code)"

# a run over TCP belongs to the token's user: invisible to others, visible to admins
tcp "$tok_user" POST /v1/runs '{"command": ["/bin/true"], "cwd": "/"}' >/dev/null
[ "$(code)" = 400 ] || fail "cwd /: $(code)"
r=$(tcp "$tok_user" POST /v1/runs '{"command": ["/bin/true"], "name": "t1"}')
[ "$(code)" = 201 ] || fail "submit over TCP: $(code) $r"
[ "$(jget "$r" 'd["user"]')" = nobody ] || fail "owner: $r"
r=$(tcp "$tok_user" GET '/v1/runs/t1/result?wait=30')
[ "$(jget "$r" 'd["status"]')" = succeeded ] || fail "t1: $r"
ctl -q ls | has '^t1$' || fail "the local admin does not see t1"
AGENTD_TOKEN=$tok_admin "$AGENTCTL" -H "tcp://127.0.0.1:$port" -q ls | has '^t1$' || fail "admin token"
AGENTD_TOKEN=$tok_admin "$AGENTCTL" -H "tcp://127.0.0.1:$port" version | has '^server: agentd' ||
	fail "agentctl version over tcp"
rc=0; AGENTD_TOKEN=nope-nope-nope-nope-nope "$AGENTCTL" -H "tcp://127.0.0.1:$port" ls 2>/dev/null || rc=$?
[ $rc = 125 ] || fail "agentctl with a bad token: exit $rc"
stop_serve TERM || fail "SIGTERM exit status"
echo "ok: serve tcp"
