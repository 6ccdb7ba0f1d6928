// DBOS side of bench/durable.sh: a STEPS-step loop in one workflow, each
// step a DBOS step whose output is checkpointed in the system database
// (PostgreSQL) before the next step runs. As in agentd's loop, a step
// returns its PAYLOAD bytes ("fixed") or its 100-byte addition to a state
// the workflow keeps ("grow"); the store holds each step's output, never
// the whole state.
// usage: node dbos_bench.mjs DATABASE_URL STEPS PAYLOAD fixed|grow
// Prints the time per step and the bytes the run added to the database.
import { DBOS } from "@dbos-inc/dbos-sdk";
import pg from "pg";

const [url, stepsArg, payloadArg, mode] = process.argv.slice(2);
const steps = Number(stepsArg);
const payload = Number(payloadArg);

const echo = DBOS.registerStep(async (data) => data, { name: "echo" });
const loop = DBOS.registerWorkflow(
  async (n) => {
    let state = "";
    for (let i = 0; i < n; i++) {
      const tag = String(i).padStart(8, "0");
      const data = mode === "grow" ? tag + "x".repeat(92) : tag + "x".repeat(Math.max(0, payload - 8));
      const out = await echo(data);
      if (mode === "grow") state += out;
    }
    return state.length;
  },
  { name: "loop" },
);

DBOS.setConfig({ name: "agentd-bench", systemDatabaseUrl: url, logLevel: "error" });
await DBOS.launch();
const db = new pg.Client({ connectionString: url });
await db.connect();
const size = async () => Number((await db.query("SELECT pg_database_size(current_database()) AS n")).rows[0].n);
const before = await size();
const t0 = process.hrtime.bigint();
await loop(steps);
const ns = process.hrtime.bigint() - t0;
await db.query("CHECKPOINT");
const after = await size();
const sc = (await db.query("SHOW synchronous_commit")).rows[0].synchronous_commit;
await db.end();
await DBOS.shutdown();
console.log(`BENCH steps=${steps} ns=${ns} bytes=${after - before}`);
console.log(`PG synchronous_commit=${sc}`);
