// The JavaScript client's cost per tool call, printed as one JSON object:
//
//     {"bare_ns": ..., "outside_ns": ..., "recorded_us": ...}
//
// `bare_ns` is an awaited call of a plain async function and `outside_ns` the same function
// wrapped with `tool()` outside a session (best of 5 rounds, per call). `recorded_us` is the time
// per call of `--calls` calls through the session named by TAPEDECK_SESSION (each a `call` and an
// `outcome` round trip in a recording), or null without one. The session's run gets those calls
// as tool calls of `bench_echo`.
//
//     node clients/js/bench.mjs [--calls N] [--number N]

import { parseArgs } from "node:util";

import { disconnect, session, tool } from "./tapedeck.mjs";

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "1000" },
    number: { type: "string", default: "200000" },
  },
});
const calls = Number(values.calls);
const number = Number(values.number);

async function echo({ x }) {
  return x;
}
const wrapped = tool(echo, { name: "bench_echo" });

let recordedUs = null;
if (process.env.TAPEDECK_SESSION && (await session()) !== null) {
  await wrapped({ x: 0 }); // the first call says hello: not part of the per-call cost
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await wrapped({ x: i });
  recordedUs = Number(process.hrtime.bigint() - start) / calls / 1e3;
}
disconnect();
await wrapped({ x: 0 });

async function best(fn) {
  let fastest = Infinity;
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < number; i++) await fn({ x: 1 });
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / number);
  }
  return fastest;
}

const bareNs = await best(echo);
const outsideNs = await best(wrapped);
const round1 = (n) => (n === null ? null : Math.round(n * 10) / 10);
console.log(
  JSON.stringify({ bare_ns: round1(bareNs), outside_ns: round1(outsideNs), recorded_us: round1(recordedUs) }),
);
