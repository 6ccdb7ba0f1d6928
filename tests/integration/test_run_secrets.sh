#!/bin/bash
# Secrets through real sandboxed runs: http.request sends a secret the agent
# only names ({"secret": "api"}) or that the policy binds to the host, to a
# local server that checks it; an echo of it comes back redacted; a secret is
# refused for a host or header it is not bound to; the value is absent from the
# store, the events, the logs and everything the agent saw. A secrets file
# others can read is refused.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
SECRET="s3cr3t-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
python3 "$T/lib/secret_server.py" "$T/sport" "$SECRET" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/sport" ] && break; sleep 0.05; done
[ -s "$T/sport" ] || fail "secret server did not start"
URL="http://127.0.0.1:$(cat "$T/sport")"
cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [
 {"id": "local", "tool": "http.request", "host": "127.0.0.1", "method": ["GET"], "decision": "allow"}
],
 "secrets": {"api": {"hosts": ["127.0.0.1"], "header": "Authorization", "format": "Bearer {}"},
             "elsewhere": {"hosts": ["api.example.com"], "header": "Authorization"}}}
JSON
chmod 644 "$T/policy.json"
for user in $(test_users); do
	st="$T/state-$user"; mkdir -p "$st"; [ "$user" = self ] || chown "$user" "$st"
	sf="$T/secrets-$user.json"
	printf '{"api": "%s", "elsewhere": "never-sent-value"}\n' "$SECRET" > "$sf"
	[ "$user" = self ] || chown "$user" "$sf"
	chmod 644 "$sf"
	rc=0
	(cd "$T/lib" && as_user "$user" "$AGENTD" run --id loose --state "$st" --policy "$T/policy.json" \
		--secrets "$sf" -- python3 secret_agent.py "$URL") >"$T/out-loose" 2>&1 || rc=$?
	[ $rc != 0 ] && grep -q "mode 0600" "$T/out-loose" || { cat "$T/out-loose"; fail "$user: a 0644 secrets file was accepted"; }
	chmod 600 "$sf"
	(cd "$T/lib" && as_user "$user" "$AGENTD" run --id sec --state "$st" --policy "$T/policy.json" \
		--secrets "$sf" -- python3 secret_agent.py "$URL") >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "$user: run failed"; }
	# The agent's lines only: agentd's timeline goes to stderr, written after
	# each reply, and would land inside a line printed in pieces.
	grep -q '^named: 200 {"ok": true}$' "$T/out" || { cat "$T/out" "$T/err"; fail "$user: named secret not accepted by the server"; }
	grep -q '^bound: 200$' "$T/out" || { cat "$T/out" "$T/err"; fail "$user: host-bound secret not injected"; }
	grep -q '^echo-body: {"authorization": "Bearer \[secret:api\]"}$' "$T/out" || { cat "$T/out" "$T/err"; fail "$user: echoed body not redacted"; }
	grep -q '^echo-header: Bearer \[secret:api\]$' "$T/out" || { cat "$T/out" "$T/err"; fail "$user: echoed header not redacted"; }
	grep -q '^other-host: EACCES$' "$T/out" || { cat "$T/out" "$T/err"; fail "$user: secret sent to a host it is not bound to"; }
	grep -q '^other-header: EACCES$' "$T/out" || { cat "$T/out" "$T/err"; fail "$user: secret sent in another header"; }
	grep -q '^unknown: EACCES$' "$T/out" || { cat "$T/out" "$T/err"; fail "$user: unknown secret"; }
	grep -q '^env: none$' "$T/out" || { cat "$T/out" "$T/err"; fail "$user: secret variables in the sandbox"; }
	as_user "$user" "$AGENTD" show sec --state "$st" >"$T/show" 2>&1 || { cat "$T/show"; fail "show"; }
	# Control: the grep below can find the value where it is.
	grep -rqa -- "$SECRET" "$sf" || fail "control: value not found in the secrets file"
	for f in "$T/out" "$T/err" "$T/out-loose" "$T/show"; do
		grep -qa -- "$SECRET" "$f" && fail "$user: secret value in $(basename "$f")"
	done
	grep -rqa -- "$SECRET" "$st" && fail "$user: secret value in the state dir (store, journal, events)"
	sqlite3 "$st/agentd.db" .dump 2>/dev/null | grep -qa -- "$SECRET" && fail "$user: secret value in the store dump"
	grep -rqa -- "never-sent-value" "$st" "$T/out" "$T/err" && fail "$user: unused secret leaked"
	echo "ok: $user"
done
# The environment is the other source; a value shorter than 8 bytes is refused.
rc=0; (cd "$T/lib" && AGENTD_SECRET_API=short "$AGENTD" run --id envshort --state "$T/state-env" \
	--policy "$T/policy.json" -- python3 secret_agent.py "$URL") >"$T/out" 2>&1 || rc=$?
[ $rc != 0 ] && grep -q "shorter than 8" "$T/out" || { cat "$T/out"; fail "short env secret accepted"; }
(cd "$T/lib" && AGENTD_SECRET_API="$SECRET" "$AGENTD" run --id env --state "$T/state-env" \
	--policy "$T/policy.json" -- python3 secret_agent.py "$URL") >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "env run failed"; }
grep -q '^named: 200 {"ok": true}$' "$T/out" || { cat "$T/out" "$T/err"; fail "env secret not accepted"; }
grep -rqa -- "$SECRET" "$T/state-env" "$T/out" "$T/err" && fail "env secret value leaked"
echo "secrets: used by http.request, never seen by the agent or stored"
