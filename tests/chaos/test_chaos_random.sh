#!/bin/bash
# Randomized chaos: SIGKILL the agent, and separately the supervisor, at random
# moments across runs that use all three effect classes (pure fs.read,
# idempotent http.request / agentd.echo, effect fs.write append) against the
# effects-counting HTTP service. AGENTD_CHAOS_INJECTIONS kills (default 200;
# `make chaos` asks for thousands), AGENTD_CHAOS_SEED to reproduce a run.
. "$AGENTD_SRC_DIR/tests/integration/lib/common.sh"
stage
cp "$SRC"/tests/chaos/lib/chaos_*.py "$T/lib/"
start_effects_server
n=${AGENTD_CHAOS_INJECTIONS:-200}
seed=${AGENTD_CHAOS_SEED:-$RANDOM}
mkdir -p "$T/work"
python3 "$T/lib/chaos_driver.py" "$AGENTD" "$T/lib" "$URL" "$T/work" "$n" "$seed"
