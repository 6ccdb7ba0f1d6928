#!/bin/bash
# Durable execution, side by side in one run: a 1,000-step checkpointed loop
# in agentd (each step one journaled agentd.echo call), in LangGraph.js (one
# node per step, SqliteSaver, durability "sync") and in DBOS (one workflow,
# one step per loop step, its output checkpointed in PostgreSQL; run when a
# local PostgreSQL can be started), for payloads of 0 B, 1 KB and 10 KB and
# for a state that grows by 100 B a step. Prints time per
# step and storage bytes per step for each, then agentd's replay speed (the
# supervisor's replay path, and end to end through the socket) and
# crash-to-resume time (agentd itself killed, then agentd resume; and the
# agent killed, restarted by agentd run).
# The machine's speed drifts by tens of percent over seconds, so the compared
# systems (agentd process, LangGraph.js, DBOS) run alternately for ROUNDS
# rounds and each one's time per step is its median over the rounds. Seven
# rounds: a median of three swung by a tenth with the stretch of the
# machine its rounds landed in (docs/performance.md, "The 10 KB ratio over
# many rounds").
# usage: bench/durable.sh BUILD_DIR
#   (AGENTD_BENCH_STEPS, default 1000; AGENTD_BENCH_ROUNDS, default 7)
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
STEPS=${AGENTD_BENCH_STEPS:-1000}
ROUNDS=${AGENTD_BENCH_ROUNDS:-7}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "AGENTD_BENCH_ROUNDS must be a positive integer, not '$ROUNDS'" >&2; exit 2; }
T=$(mktemp -d /var/tmp/agentd-durable.XXXXXX)
PG="" # the PostgreSQL cluster's directory, once started
cleanup() {
	if [ -n "$PG" ]; then
		pg_as pg_ctl -D "$PG/data" -m immediate stop >/dev/null 2>&1 || true
		rm -rf "$PG"
	fi
	rm -rf "$T"
}
trap cleanup EXIT
A="$BUILD/bin/agentd"

# The peers, installed from npm into directories of the build tree (never the
# source tree). better-sqlite3 is pinned to 12: 13 crashes on Node 20.
npm_peer() { # DIR PACKAGE... -> installs them into DIR unless there already
	local dir=$1 name=$2
	shift
	[[ $name == ?*@* ]] && name=${name%@*} # a version, not a scope
	[ -d "$dir/node_modules/$name" ] && return 0
	mkdir -p "$dir"
	echo "{\"name\":\"agentd-bench-$(basename "$dir")\",\"private\":true,\"type\":\"module\"}" >"$dir/package.json"
	echo "  (installing $* from npm into $dir)"
	(cd "$dir" && npm install --no-audit --no-fund --silent "$@") >"$T/npm.log" 2>&1 ||
		{ echo "  npm install failed:"; tail -5 "$T/npm.log"; return 1; }
}
PEER="$BUILD/bench-peers/langgraph"
DBOS="$BUILD/bench-peers/dbos"
peer_ok=false dbos_ok=false
if command -v node >/dev/null && command -v npm >/dev/null; then
	npm_peer "$PEER" @langchain/langgraph-checkpoint-sqlite @langchain/langgraph @langchain/core \
		better-sqlite3@12 || true
	cp "$HERE/peers/langgraph_bench.mjs" "$PEER/"
	(cd "$PEER" && node -e "new (require('better-sqlite3'))(':memory:')") 2>/dev/null && peer_ok=true
	npm_peer "$DBOS" @dbos-inc/dbos-sdk@5 && cp "$HERE/peers/dbos_bench.mjs" "$DBOS/" && dbos_ok=true
fi
$peer_ok || echo "  LangGraph.js is NOT available (no node/npm, or the install failed): agentd figures only"

# DBOS needs PostgreSQL: a throwaway cluster of the host's server binaries,
# listening only on a unix socket in its own directory, with
# synchronous_commit off (commits reach the WAL without waiting for its
# flush, as agentd's process durability and the SQLite savers' synchronous
# NORMAL do). PostgreSQL refuses to run as root: as root it runs as the
# postgres user (or nobody), from a directory that user owns.
pg_bin=$(command -v pg_ctl 2>/dev/null || true)
if [ -z "$pg_bin" ]; then # Debian keeps the server's programs off PATH
	for b in /usr/lib/postgresql/*/bin/pg_ctl; do [ -x "$b" ] && pg_bin=$b; done
fi
pg_as() { # CMD ARGS... as the cluster's owner
	local cmd=$1
	shift
	if [ "$(id -u)" = 0 ]; then runuser -u "$pg_user" -- "$(dirname "$pg_bin")/$cmd" "$@"; else "$(dirname "$pg_bin")/$cmd" "$@"; fi
}
pg_start() {
	[ -n "$pg_bin" ] || { echo "no server programs; on Debian: apt-get install postgresql"; return 1; }
	pg_user=$(id -un)
	if [ "$(id -u)" = 0 ]; then
		pg_user=nobody
		id postgres >/dev/null 2>&1 && pg_user=postgres
	fi
	PG=$(mktemp -d /var/tmp/agentd-pg.XXXXXX)
	chown "$pg_user" "$PG"
	pg_as initdb -D "$PG/data" -U bench --auth=trust -E UTF8 --no-instructions >"$T/initdb.log" 2>&1 ||
		{ echo "initdb failed: $(tail -1 "$T/initdb.log")"; return 1; }
	pg_as pg_ctl -D "$PG/data" -l "$PG/log" -w -o "-k $PG -c listen_addresses='' -c synchronous_commit=off" \
		start >/dev/null 2>&1 || { echo "the server did not start: $(tail -1 "$PG/log" 2>/dev/null)"; return 1; }
}
if $dbos_ok; then
	pg_start >"$T/pg.why" ||
		{ dbos_ok=false; echo "  DBOS is NOT run: PostgreSQL could not be started ($(cat "$T/pg.why"))"; }
elif command -v node >/dev/null; then
	echo "  DBOS is NOT run: the npm install of @dbos-inc/dbos-sdk failed"
fi
echo '{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}' >"$T/policy.json"

size_of() { # total bytes of a SQLite file, its WAL and (agentd) its payload file
	local s=0 f
	for f in "$1" "$1-wal" "$1-payloads"; do [ -f "$f" ] && s=$((s + $(stat -c %s "$f"))); done
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

dbos_loop() { # NAME PAYLOAD MODE -> "ns bytes" (bytes: what the run added to its database)
	local db
	db=b_$(echo "$1" | tr 'A-Z-' 'a-z_')
	(cd "$DBOS" && node --no-deprecation dbos_bench.mjs "postgresql://bench@localhost/$db?host=$PG" \
		"$STEPS" "$2" "$3") >"$T/dbos-$1.out" 2>&1 || { cat "$T/dbos-$1.out" >&2; echo "0 0"; return; }
	sed -n 's/^BENCH steps=[0-9]* ns=\([0-9]*\) bytes=\([0-9]*\)$/\1 \2/p' "$T/dbos-$1.out"
}

median() { # NS... -> their median
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
		END { printf "%.0f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
us() { awk -v n="$1" -v s="$STEPS" 'BEGIN { printf "%.1f us", n / s / 1000 }'; }
per_step() { awk -v s="$STEPS" 'BEGIN { for (i = 1; i < ARGC; i++) printf " %.1f", ARGV[i] / s / 1000 }' "$@"; }
ratio() { awk -v a="$1" -v l="${2:-$ln}" 'BEGIN { if (l > 0) printf "1/%.1f", l / a; else print "-" }'; }

echo "== durable loop: $STEPS steps, time and storage per step (agentd process = synchronous NORMAL in WAL, like the peer's SqliteSaver; power = FULL)"
echo "   agentd process, LangGraph.js and DBOS run alternately, median of $ROUNDS rounds; agentd power one run"
printf "  %-10s %15s %13s %13s %11s %8s %7s %8s   %13s %9s %11s\n" case "agentd process" "agentd power" \
	"LangGraph.js" "DBOS" "ratio" "power" "vs DBOS" "agentd B/step" "LG B/step" "DBOS B/step"
for c in "0B 0 fixed" "1KB 1024 fixed" "10KB 10240 fixed" "grow100B 0 grow"; do
	# shellcheck disable=SC2086 # split into name, payload, mode
	set -- $c
	aps=() lns=() dns=() lb=0 db=0
	for r in $(seq "$ROUNDS"); do
		read -r ns _ < <(agentd_loop "p$1-$r" "$2" "$3" process)
		aps+=("$ns")
		if $peer_ok; then
			read -r ns lb < <(lg_loop "$1-$r" "$2" "$3")
			lns+=("$ns")
		fi
		if $dbos_ok; then
			read -r ns db < <(dbos_loop "$1-$r" "$2" "$3")
			dns+=("$ns")
		fi
	done
	read -r aw ab < <(agentd_loop "w$1" "$2" "$3" power)
	ap=$(median "${aps[@]}")
	ln=0 dn=0
	# a failed peer round (0) leaves no figure to compare: ratio "-"
	$peer_ok && [[ " ${lns[*]} " != *" 0 "* ]] && ln=$(median "${lns[@]}")
	$dbos_ok && [[ " ${dns[*]} " != *" 0 "* ]] && dn=$(median "${dns[@]}")
	printf "  %-10s %15s %13s %13s %11s %8s %7s %8s   %13d %9s %11s\n" "$1" "$(us "$ap")" "$(us "$aw")" \
		"$($peer_ok && us "$ln" || echo n/a)" "$($dbos_ok && us "$dn" || echo n/a)" "$(ratio "$ap")" \
		"$(ratio "$aw")" "$(ratio "$ap" "$dn")" $((ab / STEPS)) "$($peer_ok && echo $((lb / STEPS)) || echo n/a)" \
		"$($dbos_ok && echo $((db / STEPS)) || echo n/a)"
	echo "             rounds: agentd$(per_step "${aps[@]}") us$($peer_ok && echo "; LangGraph.js$(per_step "${lns[@]}") us")$($dbos_ok && echo "; DBOS$(per_step "${dns[@]}") us")"
done
$peer_ok && sed -n 's/^SQLITE /  LangGraph.js saver connection: /p' "$T/lg-0B-1.out"
$dbos_ok && sed -n 's/^PG /  DBOS system database (PostgreSQL): /p' "$T/dbos-0B-1.out"
echo "  (ratio: median agentd process per-step time / median LangGraph.js per-step time, the like-for-like"
echo "   durability; power: agentd power (one run) / median LangGraph.js; vs DBOS: agentd process / DBOS;"
echo "   B/step: database + WAL (+ agentd's payload file) bytes / steps; for DBOS, what the run added to its database / steps)"
$dbos_ok && echo "  (DBOS: PostgreSQL compresses a value over 2 KB (TOAST) and the payload repeats one byte, so its"
$dbos_ok && echo "   10 KB B/step is far below what the same size of real data would take)"

echo
echo "== storage growth with a state growing 100 B/step (bytes per step at N steps; linear = flat)"
for n in 250 500 1000; do
	STEPS=$n read -r _ ab < <(STEPS=$n agentd_loop "g$n" 0 grow process)
	if $peer_ok; then STEPS=$n read -r _ lb < <(STEPS=$n lg_loop "g$n" 0 grow); else lb=0; fi
	if $dbos_ok; then STEPS=$n read -r _ db < <(STEPS=$n dbos_loop "g$n" 0 grow); else db=0; fi
	printf "  %5d steps: agentd %6d B/step   LangGraph.js %s B/step   DBOS %s B/step\n" "$n" $((ab / n)) \
		"$($peer_ok && echo $((lb / n)) || echo n/a)" "$($dbos_ok && echo $((db / n)) || echo n/a)"
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
