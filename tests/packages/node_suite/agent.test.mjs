// The sample suite the packaging tests run (tests/packages): one tape per test under tapes/,
// recorded or replayed as TAPEDECK_MODE says.

import assert from "node:assert/strict";
import { test } from "node:test";

import { startProxy, withTape } from "tapedeck/testing";

// Before the agent's module reads OPENAI_BASE_URL.
await startProxy();
const agent = await import("./agent.mjs");

const tape = (name) => new URL(`./tapes/${name}.jsonl`, import.meta.url);

test("weather", async () => {
  const done = await withTape(tape("weather"), async (session) => {
    assert.match(await agent.ask("Weather in Paris?"), /sunny/);
    // The tool ran in the recording; in a replay its answer came from the tape.
    assert.deepEqual(agent.calls, session.mode === "record" ? ["Paris"] : []);
  });
  const { summary } = done.recordedRun();
  assert.equal(summary.stop_reason, "ok");
  assert.equal(summary.tool_calls, 1);
  assert.equal(summary.answer, "It is sunny in Paris.");
});

test("capital", async () => {
  const country = process.env.SAMPLE_COUNTRY ?? "France";
  await withTape(tape("capital"), async () => {
    assert.equal(await agent.ask(`Capital of ${country}?`), { France: "Paris.", Spain: "Madrid." }[country]);
  });
});
