#!/usr/bin/env node
// The JavaScript client's conformance driver: the same calls, with the same arguments, as
// clients/python/conformance.py (whose header describes the tools, the calls and the one JSON
// line printed), so tests/session/conformance.rs checks both clients with one script. Each tool
// takes one plain object, so its recorded `args` are the Python client's: {"key": "a"}.

import { appendFileSync, readFileSync } from "node:fs";
import { tool, RecordedToolError, ReplayMissError } from "./tapedeck.mjs";

// Named as Python's, so both clients record the same error type.
class ValueError extends Error {
  constructor(message) {
    super(message);
    this.name = "ValueError";
  }
}

const lookup = tool(
  function lookup({ key }) {
    const path = process.env.CONFORMANCE_DATA;
    if (!path) return { key, value: "live" };
    return { key, value: readFileSync(path, "utf8").trimEnd() };
  },
);

const appendLine = tool(
  function append_line({ text }) {
    const path = process.env.CONFORMANCE_SINK;
    if (path) appendFileSync(path, `${text}\n`);
    return { ok: true };
  },
  { kind: "write" },
);

const fail = tool(function fail({ reason }) {
  throw new ValueError(reason);
});

const lookups = [await lookup({ key: "a" }), await lookup({ key: "a" }), await lookup({ key: "b" })];
const append = await appendLine({ text: "hello" });
let error = { type: null, message: null, caught: null };
try {
  await fail({ reason: "boom" });
} catch (e) {
  if (e instanceof ValueError) {
    error = { type: e.constructor.name, message: e.message, caught: "ValueError" };
  } else if (e instanceof RecordedToolError) {
    error = { type: e.type, message: e.recordedMessage, caught: "RecordedToolError" };
  } else {
    throw e;
  }
}
const out = { lookups, append, error };
if (process.env.CONFORMANCE_EXTRA === "1") {
  let miss = null;
  try {
    await lookup({ key: "zzz-unrecorded" });
  } catch (e) {
    if (!(e instanceof ReplayMissError)) throw e;
    miss = e.message;
  }
  out.miss = miss;
}
process.stdout.write(`${JSON.stringify(out)}\n`);
