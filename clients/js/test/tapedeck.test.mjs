// The JavaScript client against a fake session: outside a session, recording, replaying, an
// unreachable session, and the wrapper's shape. Each test imports a fresh copy of the module
// (a new query string is a new module), so each starts as a new process would.

import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";

const BASE = "/tapedeck/session/v1";
let copies = 0;

/** A fresh copy of the client, with TAPEDECK_SESSION set to `url` (or unset). */
async function client(url) {
  if (url === undefined) delete process.env.TAPEDECK_SESSION;
  else process.env.TAPEDECK_SESSION = url;
  copies += 1;
  return import(`../tapedeck.mjs?copy=${copies}`);
}

/** A fake session on 127.0.0.1: records every message with the client's port, and answers
 * each `call` with `answer(body)` (by default `run` with a fresh call id). */
async function fakeSession({ mode = "record", answer, hello, closeAfterEach = false } = {}) {
  const messages = [];
  let calls = 0;
  const run = () => [200, { action: "run", call: `c${++calls}` }];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const endpoint = req.url.startsWith(`${BASE}/`) ? req.url.slice(BASE.length + 1) : req.url;
      messages.push({ endpoint, body, port: req.socket.remotePort });
      let status;
      let out;
      if (endpoint === "hello") {
        [status, out] = hello ?? [200, { protocol: 1, mode, run: "3f9c2e1a" }];
      } else if (endpoint === "call") {
        [status, out] = (answer ?? run)(body);
      } else if (endpoint === "outcome") {
        [status, out] = [200, {}];
      } else {
        [status, out] = [404, { error: { type: "bad_request", message: `no ${endpoint}` } }];
      }
      const data = Buffer.from(JSON.stringify(out));
      res.writeHead(status, { "content-type": "application/json", "content-length": data.length });
      res.end(data);
      // A server closing an idle keep-alive connection, without saying so in the answer.
      if (closeAfterEach) res.on("finish", () => req.socket.destroy());
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}${BASE}`;
  return {
    url,
    messages,
    endpoints: () => messages.map((m) => m.endpoint),
    sent: (endpoint) => messages.filter((m) => m.endpoint === endpoint).map((m) => m.body),
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(r);
      }),
  };
}

/** Answers successive calls with these answers. */
function replaying(...answers) {
  return () => [200, answers.shift()];
}

async function closedPort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** What `fn` writes to stderr. */
async function stderrOf(fn) {
  const write = process.stderr.write;
  let text = "";
  process.stderr.write = (chunk, ...rest) => {
    text += chunk;
    const cb = rest.find((r) => typeof r === "function");
    if (cb) cb();
    return true;
  };
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return text;
}

class ValueError extends Error {}

test("outside a session a tool is the function, as a promise", async () => {
  const td = await client(undefined);
  const seen = [];
  const add = td.tool((a, b = 2) => {
    seen.push([a, b]);
    return a + b;
  }, { name: "add" });
  const p = add(1);
  assert.ok(p instanceof Promise);
  assert.equal(await p, 3);
  assert.equal(await add(1, 5), 6);
  assert.deepEqual(seen, [[1, 2], [1, 5]]);
  const boom = td.tool(function boom() {
    throw new ValueError("x");
  });
  await assert.rejects(boom(), ValueError);
  assert.equal(await td.session(), null);
});

test("record: hello once, then call and outcome on one keep-alive connection", async (t) => {
  const fake = await fakeSession();
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const getWeather = td.tool(function get_weather({ city, unit = "C" }) {
    return { city, temp: 21, unit };
  });
  assert.deepEqual(await getWeather({ city: "Paris" }), { city: "Paris", temp: 21, unit: "C" });
  await getWeather({ city: "Oslo", unit: "F" });
  assert.deepEqual(fake.endpoints(), ["hello", "call", "outcome", "call", "outcome"]);
  const hello = fake.sent("hello")[0];
  assert.equal(hello.protocol, 1);
  assert.match(hello.client, /^tapedeck-js\//);
  const calls = fake.sent("call");
  assert.deepEqual(calls[0], { tool: "get_weather", kind: "read", args: { city: "Paris" } });
  assert.deepEqual(calls[1].args, { city: "Oslo", unit: "F" });
  const outcomes = fake.sent("outcome");
  assert.equal(outcomes[0].call, "c1");
  assert.deepEqual(outcomes[0].result, { city: "Paris", temp: 21, unit: "C" });
  assert.equal(typeof outcomes[0].latency_ms, "number");
  assert.ok(!("error" in outcomes[0]));
  assert.equal(new Set(fake.messages.map((m) => m.port)).size, 1);
  assert.deepEqual(await td.session(), { url: fake.url, mode: "record", run: "3f9c2e1a" });
});

test("record: arguments other than one plain object are sent as args", async (t) => {
  const fake = await fakeSession();
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const f = td.tool((...xs) => xs.length, { name: "f", kind: "write" });
  await f("a", 1, [NaN, undefined], { n: 10n });
  await f();
  await f(new Set(["pear", "apple"]));
  const calls = fake.sent("call");
  assert.equal(calls[0].kind, "write");
  assert.deepEqual(calls[0].args, { args: ["a", 1, ["NaN", null], { n: "10" }] });
  assert.deepEqual(calls[1].args, { args: [] });
  assert.deepEqual(calls[2].args, { args: [["apple", "pear"]] });
  // A function returning nothing is recorded as null.
  const none = td.tool(function none() {});
  await none({});
  assert.equal(fake.sent("outcome").at(-1).result, null);
});

test("record: an error is reported and rethrown as it was", async (t) => {
  const fake = await fakeSession();
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const getWeather = td.tool(async function get_weather({ city }) {
    await new Promise((r) => setTimeout(r, 20));
    throw new ValueError(`no such city: ${city}`);
  });
  const err = await getWeather({ city: "Atlantis" }).catch((e) => e);
  assert.ok(err instanceof ValueError);
  assert.equal(err.message, "no such city: Atlantis");
  const outcome = fake.sent("outcome")[0];
  assert.deepEqual(outcome.error, { type: "ValueError", message: "no such city: Atlantis" });
  assert.ok(outcome.latency_ms >= 19, String(outcome.latency_ms));
  assert.ok(!("result" in outcome));
});

test("record: concurrent first calls share one hello", async (t) => {
  const fake = await fakeSession();
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const echo = td.tool(async (n) => n, { name: "echo" });
  assert.deepEqual(await Promise.all([0, 1, 2, 3].map((n) => echo(n))), [0, 1, 2, 3]);
  assert.equal(fake.endpoints().filter((e) => e === "hello").length, 1);
  assert.equal(fake.sent("call").length, 4);
});

test("record: a connection the server dropped is opened again", async (t) => {
  const fake = await fakeSession({ closeAfterEach: true });
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const one = td.tool(() => 1, { name: "one" });
  for (let i = 0; i < 3; i++) {
    assert.equal(await one(), 1);
    // Let the close reach the client, as an idle connection's would.
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(fake.endpoints(), ["hello", "call", "outcome", "call", "outcome", "call", "outcome"]);
});

test("record: methods keep their this", async (t) => {
  const fake = await fakeSession();
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  class Weather {
    constructor() {
      this.unit = "C";
    }
    get(city) {
      return `${city} 21${this.unit}`;
    }
  }
  Weather.prototype.get = td.tool(Weather.prototype.get);
  assert.equal(await new Weather().get("Paris"), "Paris 21C");
  assert.deepEqual(fake.sent("call")[0], { tool: "get", kind: "read", args: { args: ["Paris"] } });
});

test("replay: return, raise and miss without calling the function", async (t) => {
  const fake = await fakeSession({
    mode: "replay",
    answer: replaying(
      { action: "return", result: { temp_c: 21 }, origin: "recorded" },
      { action: "raise", error: { type: "ValueError", message: "no such city" } },
      { action: "miss", message: "no recorded call of `get_weather` with these args" },
    ),
  });
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const called = [];
  const getWeather = td.tool(({ city }) => called.push(city), { name: "get_weather" });
  assert.deepEqual(await getWeather({ city: "Paris" }), { temp_c: 21 });
  const raised = await getWeather({ city: "Atlantis" }).catch((e) => e);
  assert.ok(raised instanceof td.RecordedToolError);
  assert.ok(raised instanceof Error);
  assert.equal(raised.type, "ValueError");
  assert.equal(raised.recordedMessage, "no such city");
  assert.equal(raised.message, "ValueError: no such city");
  const missed = await getWeather({ city: "Oslo" }).catch((e) => e);
  assert.ok(missed instanceof td.ReplayMissError);
  assert.match(missed.message, /no recorded call of `get_weather`/);
  assert.deepEqual(called, []);
  assert.ok(!fake.endpoints().includes("outcome"));
});

test("replay: a write tool is not called", async (t) => {
  const fake = await fakeSession({
    mode: "replay",
    answer: replaying({ action: "return", result: "T-1", origin: "recorded" }),
  });
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const written = [];
  const create = td.tool(
    async ({ title }) => {
      written.push(title);
      return "T-new";
    },
    { name: "create_ticket", kind: "write" },
  );
  assert.equal(await create({ title: "printer on fire" }), "T-1");
  assert.deepEqual(written, []);
  assert.equal(fake.sent("call")[0].kind, "write");
});

test("replay: a read tool allowed to run live runs and reports", async (t) => {
  const fake = await fakeSession({ mode: "replay", answer: replaying({ action: "run", call: "c9" }) });
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const lookup = td.tool(() => "live", { name: "lookup" });
  assert.equal(await lookup(), "live");
  assert.equal(fake.sent("outcome")[0].call, "c9");
});

test("an unreachable session warns once and tools run as outside a session", async () => {
  const url = `http://127.0.0.1:${await closedPort()}${BASE}`;
  const td = await client(url);
  const one = td.tool(() => 1, { name: "one" });
  let results;
  const err = await stderrOf(async () => {
    results = await Promise.all([one(), one()]);
    results.push(await one());
  });
  assert.deepEqual(results, [1, 1, 1]);
  const lines = err.trim().split("\n");
  assert.equal(lines.length, 1, err);
  assert.match(
    lines[0],
    /^tapedeck: TAPEDECK_SESSION=http:\/\/127\.0\.0\.1:\d+\/tapedeck\/session\/v1 is not reachable \(.+\); tools run as outside a session$/,
  );
  assert.equal(await td.session(), null);
});

test("a session URL that is no http URL warns once", async () => {
  const td = await client("127.0.0.1:9/no-scheme");
  const one = td.tool(() => 1, { name: "one" });
  const err = await stderrOf(async () => {
    assert.equal(await one(), 1);
    assert.equal(await one(), 1);
  });
  assert.equal(err.trim().split("\n").length, 1, err);
  assert.match(err, /not an http:\/\/ URL/);
});

test("a non-200 answer rejects with a SessionError, without running the tool", async (t) => {
  const fake = await fakeSession({
    answer: () => [400, { error: { type: "bad_request", message: "args must be an object" } }],
  });
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const called = [];
  const one = td.tool(() => called.push(1), { name: "one" });
  const err = await one().catch((e) => e);
  assert.ok(err instanceof td.SessionError, String(err));
  assert.match(err.message, /400.*args must be an object/);
  assert.deepEqual(called, []);
});

test("a non-200 answer to hello rejects", async (t) => {
  const fake = await fakeSession({
    hello: [400, { error: { type: "protocol", message: "protocol 1 is not spoken here" } }],
  });
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const one = td.tool(() => assert.fail("never run after a refused hello"), { name: "one" });
  await assert.rejects(one(), (e) => e instanceof td.SessionError && /not spoken here/.test(e.message));
});

test("an unknown action rejects", async (t) => {
  const fake = await fakeSession({ answer: replaying({ action: "teleport" }) });
  t.after(fake.stop);
  const td = await client(fake.url);
  t.after(td.disconnect);
  const one = td.tool(() => assert.fail("never run on an unknown action"), { name: "one" });
  await assert.rejects(one(), td.SessionError);
});

test("a session gone after hello rejects", async (t) => {
  const fake = await fakeSession();
  const td = await client(fake.url);
  t.after(td.disconnect);
  const one = td.tool(() => 1, { name: "one" });
  assert.equal(await one(), 1);
  await fake.stop();
  await assert.rejects(one(), (e) => e instanceof td.SessionError && /any more/.test(e.message));
});

test("connect and disconnect", async (t) => {
  const fake = await fakeSession({ mode: "replay", answer: replaying({ action: "return", result: 5 }) });
  t.after(fake.stop);
  const td = await client(undefined);
  const info = await td.connect(fake.url);
  assert.equal(info.mode, "replay");
  const five = td.tool(() => assert.fail("not called in a replay"), { name: "five" });
  assert.equal(await five(), 5);
  td.disconnect();
  await assert.rejects(five(), assert.AssertionError);
  await assert.rejects(td.connect(`http://127.0.0.1:${await closedPort()}${BASE}`), td.SessionError);
});

test("the wrapper keeps the function's name and length, and checks its options", async () => {
  const td = await client(undefined);
  function get_weather(city, days) {
    return [city, days];
  }
  const w = td.tool(get_weather);
  assert.equal(w.name, "get_weather");
  assert.equal(w.length, 2);
  assert.equal(w.toolName, "get_weather");
  assert.equal(w.toolKind, "read");
  assert.equal(td.tool(get_weather, { name: "weather" }).toolName, "weather");
  assert.throws(() => td.tool(get_weather, { kind: "delete" }), TypeError);
  assert.throws(() => td.tool(() => 1), TypeError);
});
