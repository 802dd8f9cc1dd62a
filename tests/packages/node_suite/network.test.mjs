// Under TAPEDECK_MODE=none a test reaches nothing but the loopback (tests/packages).

import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";

import { withTape } from "tapedeck/testing";

test("only the loopback", async () => {
  await withTape(new URL("./tapes/network.jsonl", import.meta.url), async () => {
    // Recorded with nothing to do; only a replay under `none` has the guard to check.
    if (process.env.TAPEDECK_MODE !== "none") return;
    // 192.0.2.1 is TEST-NET-1: refused before any packet leaves.
    const refused = await new Promise((resolve) => {
      const socket = net.connect({ host: "192.0.2.1", port: 443 });
      socket.once("error", resolve);
      socket.once("connect", () => resolve(null));
    });
    assert.match(String(refused?.message), /TAPEDECK_MODE=none refuses/);
  });
});
