#!/bin/bash
# Required and optional defences through `agentd run`: a policy that requires
# a defence this host lacks is refused before anything runs, with the reason
# and how to enable it; the same policy without the requirement starts (the
# control), and says which optional defence it went without.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
mkdir -p "$T/cwd"
run() { (cd "$T/cwd" && "$AGENTD" run --state "$T/state-$1" --max-restarts 0 --policy "$T/$1.json" -- /bin/sh -c 'echo started') 2>&1; }
pol() { echo "{\"version\":1,\"rules\":[],\"limits\":{\"memory\":\"512M\",\"pids\":64,\"cpu\":\"50%\"},\"sandbox\":{$2}}" >"$T/$1.json"; }

# Control: no requirement; the run starts.
pol open '"optional":["cgroup"]'
out=$(run open) || { echo "$out"; fail "control run did not start"; }
grep -qx started <<<"$out" || { echo "$out"; fail "control: the agent did not run"; }
if grep -q '"sandbox.skipped\|sandbox.skipped {"defences":\[[^]]*"cgroup"' <<<"$out"; then have_cgroup=no; else have_cgroup=yes; fi

pol req '"require":["cgroup"]'
if [ "$have_cgroup" = no ]; then
	out=$(run req) && { echo "$out"; fail "a run requiring cgroup started without one"; }
	grep -q "required defence missing: cgroup" <<<"$out" || { echo "$out"; fail "refusal does not name cgroup"; }
	grep -q "Delegate=yes" <<<"$out" || { echo "$out"; fail "refusal does not say how to enable it"; }
	grep -qx started <<<"$out" && { echo "$out"; fail "the agent ran despite the refusal"; }
	echo "ok: requiring cgroup is refused here, with the reason"
else
	out=$(run req) || { echo "$out"; fail "a run requiring cgroup failed on a host that has it"; }
	echo "ok: cgroup is available here and the requiring run started"
fi

# Landlock: required where the kernel has it, refused where it does not.
pol ll '"require":["landlock"]'
if grep -q '"landlock unavailable' <<<"$(run open)"; then
	out=$(run ll) && fail "a run requiring landlock started without it"
	grep -q "required defence missing: landlock" <<<"$out" || { echo "$out"; fail "landlock refusal unclear"; }
else
	out=$(run ll) || { echo "$out"; fail "requiring landlock failed on a kernel with landlock"; }
	grep -qx started <<<"$out" || { echo "$out"; fail "landlock: the agent did not run"; }
fi
echo "ok: landlock requirement"

# What is always applied cannot be made optional.
pol bad '"optional":["seccomp"]'
out=$(run bad) && { echo "$out"; fail "seccomp accepted as optional"; }
grep -q "always applied" <<<"$out" || { echo "$out"; fail "no reason for the rejected policy"; }
echo "defences: all checks passed"
