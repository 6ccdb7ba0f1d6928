#!/bin/bash
# Policy layers through real sandboxed runs: the policy directory's system.json
# and the user's policy (<user>.json, else default.json), then --policy FILE.
# A run narrowed by its file cannot read what its user could; a run file
# cannot widen the user's policy; the system layer forbids for everyone;
# tools/list shows only what every layer may allow, with each layer's
# constraints in the description; `agentd policy check` explains the stack.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
D="$T/data"
mkdir -p "$D/a" "$D/b" "$D/secret" "$T/pdir"
echo A > "$D/a/f"; echo B > "$D/b/f"; echo S > "$D/secret/f"
chmod -R a+rX "$D"
cat > "$T/pdir/system.json" <<JSON
{"version": 1, "rules": [
 {"id": "sys-fs", "tool": "fs.read", "path": "$T/**", "decision": "allow"},
 {"id": "sys-http", "tool": "http.request", "host": "127.0.0.1", "decision": "allow"},
 {"id": "sys-no-secret", "tool": "fs.*", "path": "$D/secret/**", "decision": "deny"}]}
JSON
cat > "$T/pdir/default.json" <<JSON
{"version": 1, "rules": [
 {"id": "default-read", "tool": "fs.read", "path": "$D/**", "decision": "allow"},
 {"id": "default-http", "tool": "http.request", "host": "127.0.0.1", "method": "GET", "decision": "allow"}]}
JSON
cat > "$T/narrow.json" <<JSON
{"version": 1, "rules": [{"id": "only-a", "tool": "fs.read", "path": "$D/a/**", "decision": "allow"}]}
JSON
cat > "$T/widen.json" <<JSON
{"version": 1, "rules": [{"id": "want-etc", "tool": "fs.read", "path": "/etc/**", "decision": "allow"},
 {"id": "all-a", "tool": "fs.*", "path": "$D/**", "decision": "allow"}]}
JSON
chmod -R a+rX "$T/pdir" "$T"/*.json
for user in $(test_users); do
	name=$(as_user "$user" id -un)
	# we get our own file (default.json with another rule id); nobody falls back to default.json
	rid=default-read
	if [ "$user" = self ]; then
		sed 's/default-read/own-read/' "$T/pdir/default.json" > "$T/pdir/$name.json"
		chmod 644 "$T/pdir/$name.json"
		rid=own-read
	fi
	layer="user:$name"
	st="$T/state-$user"; mkdir -p "$st"; [ "$user" = self ] || chown "$user" "$st"
	r() { # r NAME [agentd run options]
		local n=$1; shift
		(cd "$T/lib" && as_user "$user" "$AGENTD" run --id "$n" --state "$st" --policy-dir "$T/pdir" "$@" \
			-- python3 layers_agent.py "$D/a/f" "$D/b/f" "$D/secret/f" /etc/hostname) >"$T/$n.out" 2>"$T/$n.err" ||
			{ cat "$T/$n.out" "$T/$n.err"; fail "$user/$n: run failed"; }
	}
	# The agent's lines only: agentd's timeline goes to stderr, written after
	# each reply, and would land inside a line printed in pieces.
	ex() { grep -qxF -- "$2" "$T/$1.out" || { cat "$T/$1.out" "$T/$1.err"; fail "$user/$1: expected '$2'"; }; }

	# the user's own policy under the system layer
	r user
	ex user "tools: fs.read,http.request"
	ex user "read $D/a/f: ok A"
	ex user "read $D/b/f: ok B"
	ex user "read $D/secret/f: denied rule=sys-no-secret reason=rule 'sys-no-secret' (deny) matched fs.read path $D/secret/f in layer 'system'"
	grep -q "^read /etc/hostname: denied rule=None reason=no rule matched in layer 'system'$" "$T/user.out" || { cat "$T/user.out" "$T/user.err"; fail "$user: /etc outside every layer"; }
	ex user "constraint: allow (rule 'sys-fs'): path \"$T/**\" [layer system]"
	ex user "constraint: allow (rule '$rid'): path \"$D/**\" [layer $layer]"

	# narrowed by the run's file: b is no longer readable, http.request is gone
	r narrow --policy "$T/narrow.json"
	ex narrow "tools: fs.read"
	ex narrow "read $D/a/f: ok A"
	ex narrow "read $D/b/f: denied rule=None reason=no rule matched in layer 'run'"
	ex narrow "constraint: allow (rule 'only-a'): path \"$D/a/**\" [layer run]"

	# a run file cannot widen: /etc stays denied, fs.write stays hidden
	r widen --policy "$T/widen.json"
	ex widen "tools: fs.read"
	grep -q "^read /etc/hostname: denied rule=None reason=no rule matched in layer 'system'$" "$T/widen.out" || { cat "$T/widen.out" "$T/widen.err"; fail "$user: a run file widened the user policy"; }
	ex widen "read $D/secret/f: denied rule=sys-no-secret reason=rule 'sys-no-secret' (deny) matched fs.read path $D/secret/f in layer 'system'"
	echo "ok: $user"
done
rm -f "$T/pdir/$(id -un).json"

# policy check explains the stack, with every layer's answer
rc=0; "$AGENTD" policy check --policy-dir "$T/pdir" --user alice --policy "$T/narrow.json" \
	fs.read "{\"path\": \"$D/b/f\"}" >"$T/check" 2>&1 || rc=$?
[ $rc = 4 ] || { cat "$T/check"; fail "policy check: exit $rc, want 4 (deny)"; }
grep -qx "layer: run" "$T/check" && grep -qx "  system: allow (sys-fs)" "$T/check" &&
	grep -qx "  user:alice: allow (default-read)" "$T/check" &&
	grep -qx "  run: deny (no rule matched)" "$T/check" || { cat "$T/check"; fail "policy check output"; }
rc=0; "$AGENTD" policy check --policy-dir "$T/pdir" --user alice fs.read "{\"path\": \"$D/b/f\"}" >"$T/check" 2>&1 || rc=$?
[ $rc = 0 ] || { cat "$T/check"; fail "policy check without the run file: exit $rc"; }
! grep -q "^on_unknown:" "$T/check" || { cat "$T/check"; fail "policy check: on_unknown shown though no layer sets it"; }
# on_unknown: the deciding rule's in the run layer, else its top level
printf '{"version": 1, "on_unknown": "fail", "rules": [{"id": "w", "tool": "fs.write", "path": "%s/a/**", "decision": "allow", "on_unknown": "retry"}]}\n' "$D" >"$T/onu.json"
"$AGENTD" policy check --policy-dir "$T/pdir" --user alice --policy "$T/onu.json" \
	fs.write "{\"path\": \"$D/a/f\", \"content\": \"x\", \"append\": true}" >"$T/check" 2>&1 || true
grep -qx "on_unknown: retry" "$T/check" || { cat "$T/check"; fail "policy check: on_unknown of the deciding rule"; }
"$AGENTD" policy check --policy-dir "$T/pdir" --user alice --policy "$T/onu.json" \
	fs.write "{\"path\": \"$D/b/f\", \"content\": \"x\", \"append\": true}" >"$T/check" 2>&1 || true
grep -qx "on_unknown: fail" "$T/check" || { cat "$T/check"; fail "policy check: the policy's on_unknown"; }
echo "policy layers: narrowed runs, no widening, system denies for all"
