// LangGraph.js side of bench/durable.sh: a STEPS-step loop, one node per
// step, checkpointed by the SQLite saver with durability "sync" (each
// checkpoint written before the next step runs).
// usage: node langgraph_bench.mjs DB STEPS PAYLOAD fixed|grow
import { Annotation, END, START, StateGraph } from "@langchain/langgraph";
import { SqliteSaver } from "@langchain/langgraph-checkpoint-sqlite";

const [db, stepsArg, payloadArg, mode] = process.argv.slice(2);
const steps = Number(stepsArg);
const payload = Number(payloadArg);
const State = Annotation.Root({
  i: Annotation({ reducer: (_, b) => b, default: () => 0 }),
  data: Annotation({ reducer: (_, b) => b, default: () => "" }),
});
const step = (s) => {
  const tag = String(s.i).padStart(8, "0");
  const data = mode === "grow" ? s.data + tag + "x".repeat(92)
                               : tag + "x".repeat(Math.max(0, payload - 8));
  return { i: s.i + 1, data };
};
const saver = SqliteSaver.fromConnString(db);
const app = new StateGraph(State)
  .addNode("step", step)
  .addEdge(START, "step")
  .addConditionalEdges("step", (s) => (s.i >= steps ? END : "step"))
  .compile({ checkpointer: saver });
const t0 = process.hrtime.bigint();
await app.invoke({ i: 0 }, { configurable: { thread_id: "bench" }, recursionLimit: steps + 10,
                             durability: "sync" });
const ns = process.hrtime.bigint() - t0;
// The saver's own connection: synchronous is a per-connection setting.
console.log(`BENCH steps=${steps} ns=${ns}`);
console.log(`SQLITE journal_mode=${saver.db.pragma("journal_mode", { simple: true })} ` +
            `synchronous=${saver.db.pragma("synchronous", { simple: true })}`);
