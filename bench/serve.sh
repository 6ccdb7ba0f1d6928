#!/bin/bash
# agentd serve under load (part of `make bench`):
#   1. N concurrent sandboxed runs (default 1000), each making 10 brokered
#      calls (agentd.echo, idempotent: intent and result journaled) with a pause
#      between them (4 s) so that all are alive at once: peak concurrency, peak RSS
#      of the daemon and per run, API latency p50/p99 (GET /v1/runs/{id} and
#      /v1/health) while they run, time until all succeeded;
#   2. BUSY runs (default 100) making CALLS calls (200) back to back:
#      aggregate durable calls per second through one daemon from the first
#      submit until all have exited (spawn and exit included);
#   3. BUSY runs making STEADY calls (1000) back to back: the steady-state
#      rate, i.e. the calls that finished while every run was between its
#      first and its last call, over that window (the journal's timestamps).
# usage: bench/serve.sh BUILD_DIR   (AGENTD_BENCH_SERVE_RUNS, _BUSY, _CALLS, _STEADY override;
#        _RUNS=0 skips part 1; AGENTD_DURABILITY=power for synchronous=FULL)
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
N=${AGENTD_BENCH_SERVE_RUNS:-1000}
BUSY=${AGENTD_BENCH_SERVE_BUSY:-100}
CALLS=${AGENTD_BENCH_SERVE_CALLS:-200}
STEADY=${AGENTD_BENCH_SERVE_STEADY:-1000}
T=$(mktemp -d /tmp/agentd-bench-serve.XXXXXX)
chmod 755 "$T"
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T/policies"
cat > "$T/policies/default.json" <<JSON
{"version": 1, "rules": [{"id": "echo", "tool": "agentd.echo", "decision": "allow"}]}
JSON
cat > "$T/serve.json" <<JSON
{"policy_dir": "$T/policies", "max_running": $((N > BUSY ? N : BUSY)),
 "max_running_per_user": $((N > BUSY ? N : BUSY)),
 "max_queued_per_user": $((N + BUSY + 10)), "log_max_bytes": 65536}
JSON
cp "$BUILD/bench/serve_agent" "$T/"
chmod 755 "$T/serve_agent"
"$BUILD/bin/agentd" serve --config "$T/serve.json" --state "$T/state" --socket "$T/sock" \
	>"$T/serve.log" 2>&1 &
PID=$!
for _ in $(seq 200); do [ -S "$T/sock" ] && break; sleep 0.05; done
[ -S "$T/sock" ] || { cat "$T/serve.log"; echo "agentd serve did not start"; exit 1; }

python3 - "$T" "$PID" "$N" "$BUSY" "$CALLS" "$STEADY" <<'PY'
import http.client, json, os, socket, sqlite3, sys, time

T, pid, N, BUSY, CALLS, STEADY = sys.argv[1], *map(int, sys.argv[2:7])

class Conn(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("agentd", timeout=120)
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(T + "/sock")

c = Conn()
def req(method, path, body=None):
    t0 = time.perf_counter()
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"} if body is not None else {})
    r = c.getresponse()
    data = r.read()
    return r.status, json.loads(data), (time.perf_counter() - t0) * 1e3

def rss_kb(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]

def cpu_s(children=False):
    # user + system of agentd itself, or of its reaped children (the runs'
    # sandboxes and agents: counted once they have exited)
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    k = 13 if children else 11
    return (int(v[k]) + int(v[k + 1])) / os.sysconf("SC_CLK_TCK")

samples = []  # (wall ms, agentd's CPU seconds) while waiting

def wait_all(ids, deadline_s):
    end = time.time() + deadline_s
    while time.time() < end:
        samples.append((time.time() * 1e3, cpu_s()))
        st, h, _ = req("GET", "/v1/health")
        if h["running"] == 0 and h["queued"] == 0:
            break
        time.sleep(0.2)
    ok = 0
    for i in ids:
        st, r, _ = req("GET", f"/v1/runs/{i}")
        ok += r["status"] == "succeeded"
    return ok

base = rss_kb("VmRSS")
# 1. N runs alive at once: 10 calls each, 4 s apart (about 40 s per run)
if N > 0:
    t0 = time.time()
    sub, ids = [], []
    for i in range(N):
        st, r, ms = req("POST", "/v1/runs", {"command": ["./serve_agent", "10", "4000"], "cwd": T,
                                              "name": f"c{i}"})
        if st != 201:
            sys.exit(f"submit {i}: {st} {r}")
        ids.append(r["id"])
        sub.append(ms)
    submitted = time.time() - t0
    lat, peak_running = [], 0
    while True:
        st, h, ms = req("GET", "/v1/health")
        lat.append(ms)
        peak_running = max(peak_running, h["running"])
        for k in range(0, N, max(1, N // 20)):
            st, r, ms = req("GET", f"/v1/runs/{ids[k]}")
            lat.append(ms)
        if h["running"] == 0 and h["queued"] == 0:
            break
        if time.time() - t0 > 600:
            break
    ok = wait_all(ids, 60)
    elapsed = time.time() - t0
    peak = rss_kb("VmHWM")
    print(f"  {N} runs x 10 brokered calls (4 s apart): {ok}/{N} succeeded in {elapsed:.1f} s; "
          f"peak concurrently running {peak_running}")
    print(f"  submit latency p50 {pct(sub, .5):.2f} ms  p99 {pct(sub, .99):.2f} ms  "
          f"({N} submits in {submitted:.1f} s)")
    print(f"  API latency under that load (GET /v1/health, /v1/runs/ID; {len(lat)} requests): "
          f"p50 {pct(lat, .5):.2f} ms  p99 {pct(lat, .99):.2f} ms")
    print(f"  agentd RSS: {base / 1024:.1f} MiB idle, peak {peak / 1024:.1f} MiB; "
          f"{(peak - base) / max(1, peak_running):.0f} KiB per concurrently running run")

# 2. BUSY runs back to back: aggregate durable calls/s
t0 = time.time()
ids = []
for i in range(BUSY):
    st, r, _ = req("POST", "/v1/runs", {"command": ["./serve_agent", str(CALLS)], "cwd": T,
                                         "name": f"b{i}"})
    ids.append(r["id"])
ok = wait_all(ids, 600)
elapsed = time.time() - t0
print(f"  {BUSY} busy runs x {CALLS} calls: {ok}/{BUSY} succeeded in {elapsed:.1f} s = "
      f"{BUSY * CALLS / elapsed:.0f} durable calls/s aggregate (spawn and exit included)")

# 3. Steady state: BUSY runs of STEADY calls each. Between the moment the last
# run made its first call and the moment the first run made its last one,
# every run was busy; the journal's timestamps give that window, and the
# daemon's CPU time sampled meanwhile its cost per call.
samples.clear()
t0, kids0 = time.time(), cpu_s(children=True)
ids = []
for i in range(BUSY):
    st, r, _ = req("POST", "/v1/runs", {"command": ["./serve_agent", str(STEADY)], "cwd": T,
                                         "name": f"s{i}"})
    ids.append(r["id"])
ok = wait_all(ids, 600)
elapsed = time.time() - t0
db = sqlite3.connect(f"file:{T}/state/agentd.db?mode=ro", uri=True)
q = ",".join("?" * len(ids))
J = "journal j JOIN outcomes o ON o.id = j.id"
spans = db.execute(f"SELECT run, MIN(started_ms), MAX(finished_ms) FROM {J} "
                   f"WHERE run IN ({q}) GROUP BY run", ids).fetchall()
lo, hi = max(s[1] for s in spans), min(s[2] for s in spans)
n = db.execute(f"SELECT COUNT(*) FROM {J} WHERE run IN ({q}) AND finished_ms > ? "
               f"AND finished_ms <= ?", ids + [lo, hi]).fetchone()[0]
inside = [s for s in samples if lo <= s[0] <= hi]
if ok == BUSY and hi - lo >= 500 and len(inside) >= 2:
    print(f"  steady state, {BUSY} runs x {STEADY} calls, all busy: {n} calls in "
          f"{(hi - lo) / 1e3:.2f} s = {n * 1e3 / (hi - lo):.0f} durable calls/s aggregate")
    (t1, c1), (t2, c2) = inside[0], inside[-1]
    k = db.execute(f"SELECT COUNT(*) FROM {J} WHERE run IN ({q}) AND finished_ms > ? "
                   f"AND finished_ms <= ?", ids + [int(t1), int(t2)]).fetchone()[0]
    print(f"  agentd's own CPU time (user + system) meanwhile: {(c2 - c1) * 1e6 / max(1, k):.1f} us "
          f"per call ({k} calls in {(t2 - t1) / 1e3:.2f} s)")
else:
    print(f"  steady state: {ok}/{BUSY} succeeded, all busy for {hi - lo} ms only; "
          f"raise AGENTD_BENCH_SERVE_STEADY")
print(f"  the whole part, spawn and exit included: {BUSY * STEADY / elapsed:.0f} calls/s, "
      f"agentd's CPU time {(samples[-1][1] - samples[0][1]) * 1e6 / (BUSY * STEADY):.1f} us per call, "
      f"the runs' (sandboxes and agents) "
      f"{(cpu_s(children=True) - kids0) * 1e6 / (BUSY * STEADY):.1f} us per call")
m = req("GET", "/v1/health")[1].get("journal")
if m:
    print(f"  journal commits: {m['commits']} for {m['rows']} rows "
          f"({m['rows'] / max(1, m['commits']):.1f} rows per commit)")
PY
