#!/bin/bash
# Policy decisions through a real sandboxed run: an allowed read, a denial that
# names its rule, ".." normalised before matching, "no rule matched", an ask
# answered both ways (--approve / --deny), a tool error, and tools/list showing
# only what the policy may allow.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
start_effects_server
mkdir -p "$T/data"
echo "hello agent" > "$T/data/hello.txt"
chmod -R a+rX "$T/data"
cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [
 {"id": "read-data", "tool": "fs.read", "path": "$T/data/**", "decision": "allow"},
 {"id": "no-secrets", "tool": "fs.*", "path": "/etc/shadow", "decision": "deny"},
 {"id": "post-ask", "tool": "http.request", "host": "127.0.0.1", "method": ["POST"], "decision": "ask"}
]}
JSON
chmod 644 "$T/policy.json"
for user in $(test_users); do
	for answer in approve deny; do
		st="$T/state-$user-$answer"; mkdir -p "$st"; [ "$user" = self ] || chown "$user" "$st"
		(cd "$T/lib" && as_user "$user" "$AGENTD" run --state "$st" --policy "$T/policy.json" --$answer \
			-- python3 policy_agent.py "$T/data" "$URL") >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "$user/$answer: run failed"; }
		# The agent's lines only: agentd's timeline goes to stderr, written
		# after each reply, and would land inside a line printed in pieces.
		grep -q "^tools: fs.delete,fs.list,fs.read,fs.stat,fs.write,http.request$" "$T/out" && fail "tools/list not filtered"
		grep -q "^tools: fs.read,http.request$" "$T/out" || { cat "$T/out"; fail "tools/list"; }
		grep -q "^read: hello agent$" "$T/out" || { cat "$T/out"; fail "allowed read"; }
		grep -q "^shadow: denied rule=no-secrets decision=deny$" "$T/out" || { cat "$T/out"; fail "shadow"; }
		grep -q "^dotdot: denied rule=no-secrets decision=deny$" "$T/out" || { cat "$T/out"; fail "dotdot"; }
		grep -q "^nomatch: denied rule=None decision=deny$" "$T/out" || { cat "$T/out"; fail "no rule matched"; }
		grep -q "^missing: ENOENT$" "$T/out" || { cat "$T/out"; fail "tool error"; }
		if [ $answer = approve ]; then
			grep -q "^ask: allowed status=200$" "$T/out" || { cat "$T/out"; fail "ask approved"; }
		else
			grep -q "^ask: denied rule=post-ask decision=ask$" "$T/out" || { cat "$T/out"; fail "ask denied"; }
		fi
		echo "ok: $user $answer"
	done
done
applied=$(counts | python3 -c 'import json,sys; print(json.load(sys.stdin)["applied"].get("asked", 0))')
[ "$applied" = "$(test_users | wc -w)" ] || fail "approved effects applied $applied times"
echo "policy through real runs: all decisions as expected"
