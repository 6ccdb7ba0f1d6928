#!/usr/bin/env python3
"""Randomized crash injection against `agentd run` (see test_chaos_random.sh).

usage: chaos_driver.py AGENTD LIBDIR URL WORKDIR INJECTIONS SEED

One fault-free reference run first, then runs of the same agent with SIGKILLs
at random moments, each aimed at the agent (the supervisor restarts it) or at
`agentd run` / `agentd resume` itself (the driver resumes the run), until
INJECTIONS kills have landed. A kill counts only if it hit a live process of a
run that had not finished. Checks after every run, from the service's and the
file system's own records:
  - every idempotent HTTP effect applied exactly once (requests beyond one are
    reruns with the same Idempotency-Key after an unknown outcome);
  - every append (an `effect`) applied exactly once, except one whose outcome
    a crash left unknown: applied at most once and reported to the agent,
    never silently repeated;
  - the run's final output equals the reference run's (unless the agent was
    told of an unknown outcome, which it records in its output).
Prints the number of injections and the outcomes; exits non-zero on a violation.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request

agentd, libdir, url, work, target, seed = sys.argv[1:7]
target, seed = int(target), int(seed)
N = 24
rng = random.Random(seed)
outcomes = {"kill agent": 0, "kill supervisor": 0, "runs": 0, "idempotent reruns": 0,
            "effect outcome unknown (reported to agent, not rerun)": 0,
            "output identical to fault-free run": 0, "replayed calls seen": 0,
            "supervisor killed before the run was recorded": 0}
violations = []


def policy(outdir):
    p = os.path.join(work, "policy.json")
    with open(p, "w") as f:
        json.dump({"version": 1, "rules": [
            {"id": "effects", "tool": "http.request", "host": "127.0.0.1", "method": ["POST"],
             "decision": "allow"},
            {"id": "out-w", "tool": "fs.write", "path": outdir + "/**", "decision": "allow"},
            {"id": "out-r", "tool": "fs.read", "path": outdir + "/**", "decision": "allow"},
            {"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}, f)
    return p


def start(args, agent_out, log):
    return subprocess.Popen([agentd] + args, cwd=libdir, stdout=agent_out, stderr=log,
                            stdin=subprocess.DEVNULL)


def sandboxed(pid):
    """True for a process in a nested pid namespace (the sandbox's init):
    agentd's other children (a sanitizer's helper, say) must not be hit."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(l.startswith("NSpid:") and len(l.split()) > 2 for l in f)
    except OSError:
        return False


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split() if sandboxed(int(x))]
    except OSError:
        return []


def counts():
    return json.load(urllib.request.urlopen(url + "/_counts"))


def one_run(name, kills):
    d = os.path.join(work, name)
    outdir = os.path.join(d, "out")
    os.makedirs(outdir)
    pol = policy(outdir)
    # The agent's lines (stdout) apart from agentd's (stderr): agentd writes a
    # call's timeline line after the reply, so in one file it could land
    # inside the line the agent prints next, which is printed in pieces.
    agentpath, logpath = os.path.join(d, "agent"), os.path.join(d, "log")
    agent_out, log = open(agentpath, "ab"), open(logpath, "ab")
    state = os.path.join(d, "state")
    cmd = ["run", "--id", name, "--state", state, "--policy", pol, "--max-restarts", "1000",
           "--", "python3", "chaos_agent.py", url, name, str(N), outdir]
    p = start(cmd, agent_out, log)
    t0 = time.monotonic()
    landed = 0
    for _ in range(kills):
        time.sleep(rng.uniform(0, horizon))
        if p.poll() is not None:
            break
        kids = children(p.pid)
        if kids and rng.random() < 0.5:
            try:
                os.kill(kids[0], signal.SIGKILL)
            except ProcessLookupError:
                continue
            # The supervisor may have been reaping it already: it counts only
            # if the run was still going.
            if p.poll() is None:
                landed += 1
                outcomes["kill agent"] += 1
        else:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            rows = subprocess.run([agentd, "runs", "--state", state], capture_output=True,
                                  text=True).stdout.splitlines()
            status = next((r.split()[1] for r in rows if r.split()[:1] == [name]), None)
            if status == "succeeded":
                # Too late: the run had finished; this kill hit nothing.
                p = subprocess.Popen(["true"])
                break
            landed += 1
            outcomes["kill supervisor"] += 1
            if status:
                p = start(["resume", name, "--state", state], agent_out, log)
            else:
                outcomes["supervisor killed before the run was recorded"] += 1
                p = start(cmd, agent_out, log)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "timeout"
    agent_out.close()
    log.close()
    agent_text = open(agentpath, errors="replace").read()
    text = open(logpath, errors="replace").read()
    if rc != 0:
        violations.append(f"{name}: exit {rc}\n{agent_text[-1500:]}{text[-3000:]}")
        return landed
    res = os.path.join(outdir, "result.txt")
    out = open(res).read() if os.path.exists(res) else None
    unknown = [int(l.split()[3]) for l in agent_text.splitlines()
               if l.startswith("chaos agent: step") and l.endswith("outcome unknown")]
    c = counts()
    for i in range(1, N + 1, 4):
        e = f"{name}-e{i}"
        a, r = c["applied"].get(e, 0), c["requests"].get(e, 0)
        if a != 1:
            violations.append(f"{name}: HTTP effect {e} applied {a} times ({r} requests)")
        outcomes["idempotent reruns"] += max(0, r - 1)
    lines = open(os.path.join(outdir, "log.txt")).read().splitlines() \
        if os.path.exists(os.path.join(outdir, "log.txt")) else []
    for i in range(2, N + 1, 4):
        k = lines.count(f"step {i}")
        if k > 1 or (k == 0 and i not in unknown):
            violations.append(f"{name}: append 'step {i}' applied {k} times"
                              f"{' (outcome unknown)' if i in unknown else ''}")
    if len(lines) != len(set(lines)):
        violations.append(f"{name}: duplicated appends {lines}")
    outcomes["effect outcome unknown (reported to agent, not rerun)"] += len(unknown)
    outcomes["replayed calls seen"] += text.count("replayed")
    if not unknown:
        if out != reference:
            violations.append(f"{name}: output {out!r} differs from the fault-free {reference!r}")
        else:
            outcomes["output identical to fault-free run"] += 1
    outcomes["runs"] += 1
    return landed


horizon = 0.0
t = time.monotonic()
ref_name = "ref"
d = os.path.join(work, ref_name)
one_run_ok = True
os.makedirs(os.path.join(d, "out"))
pol = policy(os.path.join(d, "out"))
r = subprocess.run([agentd, "run", "--id", "ref", "--state", os.path.join(d, "state"), "--policy",
                    pol, "--", "python3", "chaos_agent.py", url, "ref", str(N),
                    os.path.join(d, "out")], cwd=libdir, capture_output=True, text=True)
if r.returncode != 0:
    sys.exit("fault-free reference run failed:\n" + r.stderr)
reference = open(os.path.join(d, "out", "result.txt")).read()
horizon = (time.monotonic() - t) * 1.1
print(f"chaos: fault-free run of {N} steps takes {horizon / 1.1 * 1000:.0f} ms; seed {seed}")

injections = 0
k = 0
start_t = time.monotonic()
while injections < target:
    k += 1
    injections += one_run(f"c{k}", rng.randint(1, 4))
    if len(violations) > 5:
        break
el = time.monotonic() - start_t
print(f"chaos: {injections} injections ({outcomes['kill agent']} agent, "
      f"{outcomes['kill supervisor']} supervisor) over {outcomes['runs']} runs in {el:.1f} s")
for key, v in outcomes.items():
    print(f"  {key}: {v}")
if violations:
    print("VIOLATIONS:")
    for v in violations:
        print("  " + v)
    sys.exit(1)
print("chaos: zero duplicated or lost effects")
