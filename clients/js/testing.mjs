// The test helper of the `tapedeck` package (`tapedeck/testing`): `withTape(tape, fn)` runs a
// test's agent code in a tapedeck session, recorded to or replayed from its own tape, with the
// record modes of the pytest plugin (`clients/python`) — a function, so it fits node:test,
// vitest and jest alike.
//
// One `tapedeck proxy --sessions` serves the whole test process ([`startProxy`]; `withTape`
// starts it on first use), and OPENAI_BASE_URL / ANTHROPIC_BASE_URL point at it: call
// `await startProxy()` before an SDK client is made at import time. Each `withTape` opens a
// session on it — the model and the tools of this module's `tool()` (and `tapedeck mcp`
// servers, through TAPEDECK_SESSION) recorded or answered from the tape — and closes it when
// `fn` settles; a replay that missed or diverged, a check that drifted, or a tape holding an
// API key rejects, naming the tape.
//
// The mode is `options.mode`, else TAPEDECK_MODE, else `once`:
// - `once`: replay the tape if it exists, else record it;
// - `none`: replay only; a missing tape or a miss fails, and connections to anything but the
//   loopback are refused (what CI runs);
// - `new_episodes`: replay what the tape holds, the rest live, then rewrite the tape;
// - `all`: record afresh, overwriting the tape.
// `options.check` (or TAPEDECK_CHECK=1) is the drift check: the model live, every tool from the
// tape, a write tool never run; it passes only if `tapedeck diff` of the tape's run and this
// one finds no drift (its default tolerances, or `options.tolerances`).

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { binaryPath } from "./binary.mjs";
import { connect, disconnect } from "./tapedeck.mjs";

export const MODES = ["once", "none", "new_episodes", "all"];
const CONTROL = "/tapedeck/control/v1";
const SESSION = "/tapedeck/session/v1";
const START_TIMEOUT_MS = 15_000;
// Variables whose values must never reach a tape: what the SDKs read their keys from, and any
// other `*_KEY`, `*_TOKEN` or `*_SECRET` long enough to be one.
const SECRET_NAME = /(KEY|TOKEN|SECRET)$/;
const SECRET_MIN_LENGTH = 8;

/** Why a tape's session failed its test: a miss, a divergence, drift, a leaked key, a
 * missing tape. `tape` is its path. */
export class TapeError extends Error {
  constructor(message, tape, options) {
    super(`tapedeck: ${message}`, options);
    this.name = "TapeError";
    this.tape = tape;
  }
}

let proxy = null;

/** The `tapedeck proxy --sessions` of this process: `{base, binary, store}`. Started once;
 * stopped when the process exits. */
export function startProxy() {
  proxy ??= launch();
  return proxy;
}

async function launch() {
  const binary = binaryPath();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tapedeck-node-"));
  const store = process.env.TAPEDECK_STORE || path.join(tmp, "t.db");
  const logPath = path.join(tmp, "proxy.log");
  // Read before the base URLs change, from the environment the tests get.
  const secrets = Object.entries(process.env).filter(
    ([name, value]) => SECRET_NAME.test(name) && (value ?? "").length >= SECRET_MIN_LENGTH,
  );
  const log = fs.openSync(logPath, "w");
  // A model call outside every `withTape` reaches its upstream unrecorded, as without the
  // helper; under TAPEDECK_MODE=none (CI, offline) it is refused.
  const outside =
    process.env.TAPEDECK_MODE === "none" && process.env.TAPEDECK_CHECK !== "1" ? "refuse" : "forward";
  // The proxy forwards to the base URLs the tests were given (else the public APIs).
  const child = spawn(
    binary,
    ["proxy", "--sessions", "--listen", "127.0.0.1:0", "--store", store, "--outside-sessions", outside],
    { stdio: ["ignore", log, log] },
  );
  fs.closeSync(log);
  // Neither the proxy nor its pipes keep the test process alive; it goes when the process does.
  child.unref();
  const readLog = () => {
    try {
      return fs.readFileSync(logPath, "utf8");
    } catch {
      return "";
    }
  };
  process.once("exit", () => {
    child.kill("SIGTERM");
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  const spawned = new Promise((resolve) => {
    child.once("spawn", () => resolve(null));
    child.once("error", (err) => resolve(err));
  });
  const failedToSpawn = await spawned;
  if (failedToSpawn) {
    throw new TapeError(`cannot run ${binary}: ${failedToSpawn.message}`, null);
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const found = /listening on (http:\/\/[0-9.:]+)/.exec(readLog());
    if (found) {
      const base = found[1];
      process.env.OPENAI_BASE_URL = `${base}/v1`;
      process.env.ANTHROPIC_BASE_URL = base;
      return { base, binary, store, secrets, readLog };
    }
    if (exited) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  child.kill("SIGTERM");
  throw new TapeError(`\`${binary} proxy --sessions\` did not start: ${readLog().trim()}`, null);
}

async function control(running, endpoint, body) {
  let answer;
  try {
    answer = await fetch(`${running.base}${CONTROL}/${endpoint}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new Error(
      `the tapedeck proxy at ${running.base} is not answering (${err.message}); its log:\n${running.readLog().trim()}`,
    );
  }
  const text = await answer.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  if (!answer.ok) throw new Error(parsed?.error?.message ?? text);
  return parsed;
}

function tapePath(tape) {
  return path.resolve(tape instanceof URL ? fileURLToPath(tape) : String(tape));
}

function describeMove(move) {
  return move ? `${move.kind} ${move.summary}` : "the end of the run";
}

/** Connections to anything but the loopback refused while a `none` test runs. */
function guardNetwork(tape) {
  const original = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function connectLoopbackOnly(...args) {
    const first = args[0];
    const options = Array.isArray(first) ? first[0] : first;
    const host = typeof options === "object" && options !== null ? options.host : args[1];
    const port = typeof options === "object" && options !== null ? options.port : first;
    const isPath = typeof options === "object" && options !== null && options.path !== undefined;
    const loopback =
      host === undefined || host === "localhost" || /^127\./.test(host) || host === "::1";
    if (!isPath && !loopback) {
      const err = new Error(
        `tapedeck: TAPEDECK_MODE=none refuses the connection to ${host}:${port} (the test replays ${tape})`,
      );
      err.code = "ECONNREFUSED";
      process.nextTick(() => this.destroy(err));
      return this;
    }
    return original.apply(this, args);
  };
  return () => {
    net.Socket.prototype.connect = original;
  };
}

/** What a session ended as: its run, and (lazily) the run's summary. */
class TapeRun {
  constructor(running, closed, tape, mode) {
    this.tape = tape;
    this.mode = mode;
    this.run = closed.run;
    this.id = closed.id;
    this.stopReason = closed.stop_reason;
    this.#running = running;
  }

  #running;

  /** `tapedeck show RUN --json` of the run (format `tapedeck-run`, version 1): `summary` has
   * `tool_calls`, `tokens_in`, `tokens_out`, `cost_usd`, `stop_reason`, `answer`, … */
  recordedRun() {
    const shown = spawnSync(
      this.#running.binary,
      ["--store", this.#running.store, "show", this.run, "--json"],
      { encoding: "utf8" },
    );
    if (shown.status !== 0) throw new Error(`tapedeck show ${this.run} failed: ${shown.stderr.trim()}`);
    return JSON.parse(shown.stdout);
  }
}

/**
 * Runs `fn(session)` in a tapedeck session recorded to or replayed from `tape` (a path, or a
 * file URL such as `new URL("./tapes/weather.jsonl", import.meta.url)`). Resolves to the
 * session's run ({tape, mode, run, id, stopReason, recordedRun()}); rejects with a TapeError
 * when the tape says the test failed, else with `fn`'s own error.
 */
export async function withTape(tape, fn, options = {}) {
  const file = tapePath(tape);
  const mode = options.mode ?? process.env.TAPEDECK_MODE ?? "once";
  if (!MODES.includes(mode)) {
    throw new TapeError(`mode \`${mode}\`: use one of ${MODES.join(", ")}`, file);
  }
  const check = options.check ?? process.env.TAPEDECK_CHECK === "1";
  const exists = fs.existsSync(file);
  if ((mode === "none" || check) && !exists) {
    const why = check ? "a check compares against it" : "TAPEDECK_MODE=none replays";
    throw new TapeError(`no tape at ${file}, and ${why}; record it with TAPEDECK_MODE=once`, file);
  }
  let sessionMode = "record";
  if (check) sessionMode = "check";
  else if (mode === "none" || (mode === "once" && exists)) sessionMode = "replay";
  else if (mode === "new_episodes" && exists) sessionMode = "new_episodes";

  const running = await startProxy();
  let opened;
  try {
    opened = await control(running, "open", {
      mode: sessionMode,
      tape: file,
      task: options.task ?? path.basename(file, ".jsonl"),
    });
  } catch (err) {
    throw new TapeError(`cannot open the session of ${file}: ${err.message}`, file);
  }
  const url = `${running.base}${SESSION}`;
  const savedSession = process.env.TAPEDECK_SESSION;
  process.env.TAPEDECK_SESSION = url;
  await connect(url);
  const release = mode === "none" && !check ? guardNetwork(file) : () => {};
  const session = { tape: file, mode: sessionMode, run: opened.run };
  let failure = null;
  let result;
  try {
    result = await fn(session);
  } catch (err) {
    failure = err;
  } finally {
    release();
    disconnect();
    if (savedSession === undefined) delete process.env.TAPEDECK_SESSION;
    else process.env.TAPEDECK_SESSION = savedSession;
  }
  let closed;
  try {
    closed = await control(running, "close", { exit_code: failure ? 1 : 0 });
  } catch (err) {
    throw new TapeError(`cannot end the session of ${file}: ${err.message}`, file, {
      cause: failure ?? undefined,
    });
  }
  // The session's verdict names the tape: it is the failure, caused by `fn`'s error if any
  // (a replay miss shows first as the SDK's error: the proxy answers 400).
  const verdict = judge(running, closed, file, sessionMode, options.tolerances);
  if (verdict) throw new TapeError(verdict, file, { cause: failure ?? undefined });
  if (failure) throw failure;
  void result;
  return new TapeRun(running, closed, file, sessionMode);
}

/** Why the closed session fails its test, or null. */
function judge(running, closed, file, mode, tolerances) {
  if (closed.tape_written) {
    let text = "";
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      text = "";
    }
    const leaked = running.secrets
      .filter(([, value]) => text.includes(value) || text.includes(JSON.stringify(value).slice(1, -1)))
      .map(([name]) => name)
      .sort();
    if (leaked.length > 0) {
      fs.rmSync(file, { force: true });
      return `the recording held the value of ${leaked.join(", ")}; the tape ${file} was removed. Keep keys out of prompts and tool results, or redact them`;
    }
  }
  const stop = closed.stop_reason ?? "";
  if (stop.startsWith("replay_miss")) {
    return `the replay of ${file} missed (${stop}): ${closed.error}\n(record it again with TAPEDECK_MODE=all)`;
  }
  const divergence = closed.divergence;
  if (mode === "check") return drift(running, closed, file, tolerances);
  if (divergence && mode === "replay") {
    return `the replay of ${file} left the recorded run at step ${divergence.step}: expected ${describeMove(divergence.expected)}, got ${describeMove(divergence.actual)}\n(record it again with TAPEDECK_MODE=all)`;
  }
  return null;
}

/** Why a check's run drifted from the tape's (`tapedeck diff` exits 1), or null. */
function drift(running, closed, file, tolerances = {}) {
  const args = ["--store", running.store, "diff"];
  for (const [metric, value] of Object.entries(tolerances)) {
    args.push("--tolerance", `${metric}=${value}`);
  }
  args.push(String(closed.parent), String(closed.id));
  const diff = spawnSync(running.binary, args, {
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  if (diff.status === 0) return null;
  if (diff.status !== 1) return `cannot diff the check of ${file}: ${diff.stderr.trim()}`;
  const d = closed.divergence;
  const first = d
    ? `\n\nfirst divergence at step ${d.step}: expected ${describeMove(d.expected)}, got ${describeMove(d.actual)}`
    : "";
  return `the run drifted from ${file}:\n${diff.stdout.trimEnd()}${first}`;
}
