#!/bin/bash
# Durable execution, side by side in one run: a 1,000-step checkpointed loop
# in agentd (each step one journaled agentd.echo call) and in LangGraph.js
# (one node per step, SqliteSaver, durability "sync"), for payloads of 0 B,
# 1 KB and 10 KB and for a state that grows by 100 B a step. Prints time per
# step and storage bytes per step for both, then agentd's replay speed (the
# supervisor's replay path, and end to end through the socket) and
# crash-to-resume time (agentd itself killed, then agentd resume; and the
# agent killed, restarted by agentd run).
# The machine's speed drifts by tens of percent over seconds, so the compared
# pair (agentd process, LangGraph.js) runs alternately for ROUNDS rounds and
# each side's time per step is its median over the rounds.
# usage: bench/durable.sh BUILD_DIR
#   (AGENTD_BENCH_STEPS, default 1000; AGENTD_BENCH_ROUNDS, default 3)
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
STEPS=${AGENTD_BENCH_STEPS:-1000}
ROUNDS=${AGENTD_BENCH_ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "AGENTD_BENCH_ROUNDS must be a positive integer, not '$ROUNDS'" >&2; exit 2; }
T=$(mktemp -d /var/tmp/agentd-durable.XXXXXX)
trap 'rm -rf "$T"' EXIT
A="$BUILD/bin/agentd"

# The peer, installed from npm into a directory of the build tree (never the
# source tree). better-sqlite3 is pinned to 12: 13 crashes on Node 20.
PEER="$BUILD/bench-peers/langgraph"
peer_ok=false
if command -v node >/dev/null && command -v npm >/dev/null; then
	if [ ! -d "$PEER/node_modules/@langchain/langgraph-checkpoint-sqlite" ]; then
		mkdir -p "$PEER"
		echo '{"name":"agentd-bench-langgraph","private":true,"type":"module"}' >"$PEER/package.json"
		echo "  (installing @langchain/langgraph, @langchain/langgraph-checkpoint-sqlite, better-sqlite3@12 from npm into $PEER)"
		(cd "$PEER" && npm install --no-audit --no-fund --silent @langchain/langgraph \
			@langchain/langgraph-checkpoint-sqlite @langchain/core better-sqlite3@12) >"$T/npm.log" 2>&1 ||
			{ echo "  npm install failed:"; tail -5 "$T/npm.log"; }
	fi
	cp "$HERE/peers/langgraph_bench.mjs" "$PEER/"
	(cd "$PEER" && node -e "new (require('better-sqlite3'))(':memory:')") 2>/dev/null && peer_ok=true
fi
$peer_ok || echo "  LangGraph.js is NOT available (no node/npm, or the install failed): agentd figures only"
echo '{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}' >"$T/policy.json"

size_of() { # total bytes of a SQLite file and its WAL
	local s=0 f
	for f in "$1" "$1-wal"; do [ -f "$f" ] && s=$((s + $(stat -c %s "$f"))); done
	echo $s
}

agentd_loop() { # NAME PAYLOAD MODE DURABILITY -> "ns bytes"
	local d="$T/a-$1"
	mkdir -p "$d"
	(cd "$BUILD/bench" && "$A" run --id "$1" --state "$d" --policy "$T/policy.json" --durability "$4" \
		-- ./durable_agent "$STEPS" "$2" "$3") >"$d/out" 2>"$d/err" || { cat "$d/err"; exit 1; }
	local ns
	ns=$(sed -n 's/^BENCH steps=[0-9]* ns=//p' "$d/out")
	echo "$ns $(size_of "$d/agentd.db")"
	rm -f "$d"/agentd.db* # the 10 KB rounds would otherwise hold tens of MB each
}

lg_loop() { # NAME PAYLOAD MODE -> "ns bytes"
	local db="$T/lg-$1.db"
	(cd "$PEER" && node langgraph_bench.mjs "$db" "$STEPS" "$2" "$3") >"$T/lg-$1.out" 2>&1 ||
		{ cat "$T/lg-$1.out" >&2; echo "0 0"; return; }
	echo "$(sed -n 's/^BENCH steps=[0-9]* ns=//p' "$T/lg-$1.out") $(size_of "$db")"
	rm -f "$db"*
}

median() { # NS... -> their median
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
		END { printf "%.0f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
us() { awk -v n="$1" -v s="$STEPS" 'BEGIN { printf "%.1f us", n / s / 1000 }'; }
per_step() { awk -v s="$STEPS" 'BEGIN { for (i = 1; i < ARGC; i++) printf " %.1f", ARGV[i] / s / 1000 }' "$@"; }
ratio() { awk -v a="$1" -v l="$ln" 'BEGIN { if (l > 0) printf "1/%.1f", l / a; else print "-" }'; }

echo "== durable loop: $STEPS steps, time and storage per step (agentd process = synchronous NORMAL in WAL, like the peer's SqliteSaver; power = FULL)"
echo "   agentd process and LangGraph.js run alternately, median of $ROUNDS rounds; agentd power one run"
printf "  %-10s %16s %16s %16s %10s %10s   %14s %14s\n" case "agentd process" "agentd power" "LangGraph.js" "ratio" "power" "agentd B/step" "LG B/step"
for c in "0B 0 fixed" "1KB 1024 fixed" "10KB 10240 fixed" "grow100B 0 grow"; do
	# shellcheck disable=SC2086 # split into name, payload, mode
	set -- $c
	aps=() lns=() lb=0
	for r in $(seq "$ROUNDS"); do
		read -r ns _ < <(agentd_loop "p$1-$r" "$2" "$3" process)
		aps+=("$ns")
		if $peer_ok; then
			read -r ns lb < <(lg_loop "$1-$r" "$2" "$3")
			lns+=("$ns")
		fi
	done
	read -r aw ab < <(agentd_loop "w$1" "$2" "$3" power)
	ap=$(median "${aps[@]}")
	ln=0
	# a failed peer round (0) leaves no figure to compare: ratio "-"
	$peer_ok && [[ " ${lns[*]} " != *" 0 "* ]] && ln=$(median "${lns[@]}")
	printf "  %-10s %16s %16s %16s %10s %10s   %14d %14s\n" "$1" "$(us "$ap")" "$(us "$aw")" \
		"$($peer_ok && us "$ln" || echo n/a)" "$(ratio "$ap")" "$(ratio "$aw")" $((ab / STEPS)) \
		"$($peer_ok && echo $((lb / STEPS)) || echo n/a)"
	echo "             rounds: agentd$(per_step "${aps[@]}") us$($peer_ok && echo "; LangGraph.js$(per_step "${lns[@]}") us")"
done
$peer_ok && sed -n 's/^SQLITE /  LangGraph.js saver connection: /p' "$T/lg-0B-1.out"
echo "  (ratio: median agentd process per-step time / median LangGraph.js per-step time, the like-for-like"
echo "   durability; power: agentd power (one run) / median LangGraph.js; B/step: database + WAL bytes / steps)"

echo
echo "== storage growth with a state growing 100 B/step (bytes per step at N steps; linear = flat)"
for n in 250 500 1000; do
	STEPS=$n read -r _ ab < <(STEPS=$n agentd_loop "g$n" 0 grow process)
	if $peer_ok; then STEPS=$n read -r _ lb < <(STEPS=$n lg_loop "g$n" 0 grow); else lb=0; fi
	printf "  %5d steps: agentd %6d B/step   LangGraph.js %s B/step\n" "$n" $((ab / n)) \
		"$($peer_ok && echo $((lb / n)) || echo n/a)"
done

echo
echo "== replay speed"
"$BUILD/bench/replay_bench" -n 20000 -d "$T" | sed 's/^BENCH /  BENCH /'
echo "  (end to end through the socket: the replay line of the brokered-call benchmark above)"

echo
echo "== crash-to-resume: SIGKILL agentd run after $STEPS steps, then agentd resume"
d="$T/crash"
mkdir -p "$d"
for i in 1 2 3 4 5; do
	id="c$i"
	(cd "$BUILD/bench" && exec "$A" run --id "$id" --state "$d" --policy "$T/policy.json" \
		-- ./durable_agent "$STEPS" 100 fixed hold) >"$d/$id.out" 2>"$d/$id.err" &
	pid=$!
	for _ in $(seq 2000); do grep -q '^BENCH' "$d/$id.out" 2>/dev/null && break; sleep 0.005; done
	t0=$(date +%s%N)
	kill -KILL $pid
	wait $pid 2>/dev/null || true
	(cd "$BUILD/bench" && "$A" resume "$id" --state "$d") >"$d/$id.r" 2>"$d/$id.rerr" || { cat "$d/$id.rerr"; exit 1; }
	sed -n 's/^RESUME //p' "$d/$id.r" | awk -v t0="$t0" '{
		split($1, a, "="); split($2, b, "="); split($3, c, "=");
		printf "  run %d: resumed (agent has its resume point) %.1f ms after the kill; %d journaled steps replayed by %.1f ms\n", '"$i"', (a[2] - t0) / 1e6, c[2], (b[2] - t0) / 1e6 }'
done
echo "  (includes starting the agentd process, opening the store, verifying the journal, the sandbox spawn and the agent's exec)"

echo
echo "== agent crash-to-resume: the agent SIGKILLs itself after $STEPS steps; agentd run restarts it"
for i in 1 2 3 4 5; do
	id="k$i"
	(cd "$BUILD/bench" && "$A" run --id "$id" --state "$d" --policy "$T/policy.json" \
		-- ./durable_agent "$STEPS" 100 fixed crash) >"$d/$id.out" 2>"$d/$id.err" || { cat "$d/$id.err"; exit 1; }
	awk -v i="$i" -v n="$STEPS" '/^CRASH/ { split($2, k, "=") } /^RESUME/ { split($2, a, "="); split($3, b, "=") }
		END { printf "  run %d: resumed %.1f ms after the crash; %d steps replayed by %.1f ms\n", i,
			(a[2] - k[2]) / 1e6, n, (b[2] - k[2]) / 1e6 }' "$d/$id.out"
done
echo "  (the supervisor reaps the agent, loads and verifies the journal, spawns the sandbox and execs the agent; the first restart within the window has no backoff)"
