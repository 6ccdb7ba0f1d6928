# Shared by the escape suite (sourced, not run). Stages the probe and the
# sandbox driver into a world-readable temporary directory so an unprivileged
# user can run them even when the build tree is not reachable for that user.
set -u

BIN_DIR=${AGENTD_BIN_DIR:-$(cd "$(dirname "$0")/../../build/bin" 2>/dev/null && pwd)}
PROBE_SRC=$BIN_DIR/agentd-probe
EXEC_SRC=$BIN_DIR/agentd-sandbox-exec

skip() {
	echo "SKIP: $*"
	exit 77
}

for b in "$PROBE_SRC" "$EXEC_SRC"; do
	[ -x "$b" ] || skip "$b not built"
done

STAGE=$(mktemp -d /tmp/agentd-sec.XXXXXX)
cleanup() {
	rm -rf "$STAGE"
}
trap cleanup EXIT INT TERM
chmod 755 "$STAGE"
cp "$PROBE_SRC" "$EXEC_SRC" "$STAGE/"
chmod 755 "$STAGE/agentd-probe" "$STAGE/agentd-sandbox-exec"
mkdir -p "$STAGE/ws"
PROBE=$STAGE/agentd-probe
SBX=$STAGE/agentd-sandbox-exec
cd "$STAGE" || exit 1

FAILS=0
fail() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}
pass() {
	echo "ok: $*"
}

# Users to run as: root (root mode, program as nobody) and nobody (rootless).
USERS=$(id -un)
if [ "$(id -u)" = 0 ]; then
	if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null; then
		USERS="root nobody"
		chown nobody "$STAGE/ws"
	fi
fi

# as USER CMD...: run as that user (root mode runs the program as 65534).
as() {
	local user=$1
	shift
	if [ "$user" = "$(id -un)" ]; then
		"$@"
	else
		runuser -u "$user" -- "$@"
	fi
}

# sandboxed USER [driver options] -- CMD...
sandboxed() {
	local user=$1
	shift
	as "$user" "$SBX" --quiet --workspace "$STAGE/ws" "$@"
}

# Check the sandbox works at all here (user namespaces may be disabled).
if ! out=$(sandboxed "$(id -un)" -- /bin/true 2>&1); then
	skip "sandbox unavailable on this host: $out"
fi

finish() {
	if [ "$FAILS" -ne 0 ]; then
		echo "$FAILS check(s) failed"
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
