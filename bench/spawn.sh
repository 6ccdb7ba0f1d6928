#!/bin/bash
# Spawn-to-exit latency of a sandboxed /bin/true: agentd's sandbox (through
# agentd-sandbox-exec, the same library calls the supervisor makes) against
# bubblewrap with the closest isolation it offers, N runs each, interleaved
# in one run so both see the same machine state.
#
# usage: bench/spawn.sh BUILD_DIR [N]
set -euo pipefail

BUILD=$(cd "${1:?usage: bench/spawn.sh BUILD_DIR [N]}" && pwd)
N=${2:-200}
EXEC=$BUILD/bin/agentd-sandbox-exec
[ -x "$EXEC" ] || { echo "no $EXEC (build the agentd-sandbox-exec target)" >&2; exit 1; }
command -v bwrap >/dev/null || { echo "bwrap not installed" >&2; exit 1; }

WS=$(mktemp -d /tmp/agentd-bench.XXXXXX)
trap 'rm -rf "$WS"' EXIT
chmod 755 "$WS"
[ "$(id -u)" = 0 ] && chown 65534:65534 "$WS"
cd "$WS"

# bwrap: same namespaces, new session, die with parent, tmpfs root with the
# merged-/usr layout, the same /etc files, /proc, /dev, /tmp, cwd ro and a rw
# workspace; capabilities dropped and the same unprivileged uid as root mode.
BWRAP=(bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL
	--ro-bind /usr /usr)
for d in bin sbin lib lib64 lib32; do
	if [ -L /$d ]; then BWRAP+=(--symlink "$(readlink /$d)" /$d)
	elif [ -d /$d ]; then BWRAP+=(--ro-bind /$d /$d); fi
done
for f in ld.so.cache ld.so.conf ld.so.conf.d alternatives localtime hosts nsswitch.conf \
	passwd group resolv.conf ssl/certs; do
	BWRAP+=(--ro-bind-try /etc/$f /etc/$f)
done
BWRAP+=(--proc /proc --dev /dev --tmpfs /tmp --ro-bind "$WS" "$WS" --bind "$WS" /workspace
	--chdir "$WS")
[ "$(id -u)" = 0 ] && BWRAP+=(--uid 65534 --gid 65534)
AGENTD=("$EXEC" --quiet --workspace "$WS")

"${BWRAP[@]}" /bin/true || { echo "bwrap cannot run here" >&2; exit 1; }
"${AGENTD[@]}" -- /bin/true || { echo "agentd sandbox cannot run here" >&2; exit 1; }

# Warm up page cache and dentries for both.
for _ in 1 2 3 4 5; do "${BWRAP[@]}" /bin/true; "${AGENTD[@]}" -- /bin/true; done

: >"$WS/agentd.us"
: >"$WS/bwrap.us"
for ((i = 0; i < N; i++)); do
	t0=$EPOCHREALTIME
	"${AGENTD[@]}" -- /bin/true
	t1=$EPOCHREALTIME
	"${BWRAP[@]}" /bin/true
	t2=$EPOCHREALTIME
	echo "$t0 $t1" | awk '{ printf "%d\n", ($2 - $1) * 1e6 }' >>"$WS/agentd.us"
	echo "$t1 $t2" | awk '{ printf "%d\n", ($2 - $1) * 1e6 }' >>"$WS/bwrap.us"
done

stats() { # file -> "median p99" in microseconds
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		p = v[int(NR * 0.99 + 0.999999)]
		printf "%d %d\n", m, p }'
}
read -r am ap < <(stats "$WS/agentd.us")
read -r bm bp < <(stats "$WS/bwrap.us")
printf 'spawn-to-exit of /bin/true, N=%d each, as uid %d (%s)\n' "$N" "$(id -u)" \
	"$([ "$(id -u)" = 0 ] && echo "root mode" || echo rootless)"
printf '%-8s median %7.2f ms   p99 %7.2f ms\n' agentd "$(echo "$am / 1000" | bc -l)" \
	"$(echo "$ap / 1000" | bc -l)"
printf '%-8s median %7.2f ms   p99 %7.2f ms\n' bwrap "$(echo "$bm / 1000" | bc -l)" \
	"$(echo "$bp / 1000" | bc -l)"
printf 'ratio agentd/bwrap: median %.2fx   p99 %.2fx\n' "$(echo "$am / $bm" | bc -l)" \
	"$(echo "$ap / $bp" | bc -l)"
