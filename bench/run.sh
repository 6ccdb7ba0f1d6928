#!/bin/bash
# make bench: every benchmark, each side by side with its peer in the same run.
# usage: bench/run.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/agentd-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "== spawn-to-exit: sandboxed /bin/true, agentd vs bwrap"
if [ -x "$HERE/spawn.sh" ]; then "$HERE/spawn.sh" "$BUILD"; else echo "(spawn benchmark missing)"; fi

echo
echo "== brokered no-op call round trip (agentd.echo, idempotent: intent and result journaled, one commit a step)"
N=${AGENTD_BENCH_CALLS:-20000}
cat > "$T/policy.json" <<JSON
{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}
JSON
(cd "$BUILD/bench" && "$BUILD/bin/agentd" run --id calls --state "$T/state" --policy "$T/policy.json" \
	-- ./calls_agent "$N" agentd.echo '{"value": 1}') >"$T/calls.out" 2>"$T/calls.err" ||
	{ cat "$T/calls.err"; echo "calls benchmark failed"; exit 1; }
grep '^BENCH' "$T/calls.out" | sed 's/^BENCH /  /'
echo "  (live = durable journal commits before each reply; replay = answered from the journal after a crash)"

echo
if [ -x "$HERE/durable.sh" ]; then "$HERE/durable.sh" "$BUILD"; fi

for b in policy_bench store_bench digest_bench; do
	if [ -x "$BUILD/bench/$b" ]; then
		echo
		echo "== $b"
		(cd "$T" && "$BUILD/bench/$b")
	fi
done

echo
echo "== agentd serve: concurrent sandboxed runs, API latency under load, aggregate durable calls/s"
if [ -x "$HERE/serve.sh" ]; then "$HERE/serve.sh" "$BUILD"; else echo "(serve benchmark missing)"; fi
