// The test TAPEDECK_CHECK=1 runs against its tape (tests/packages): the model live, the tool
// from the tape.

import assert from "node:assert/strict";
import { test } from "node:test";

import { startProxy, withTape } from "tapedeck/testing";

await startProxy();
const agent = await import("./agent.mjs");

test("forecast", async () => {
  await withTape(new URL("./tapes/forecast.jsonl", import.meta.url), async () => {
    assert.match(await agent.ask("Weather in Paris?"), /sunny/);
  });
});
