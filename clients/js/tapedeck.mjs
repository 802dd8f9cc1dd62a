// tapedeck's JavaScript client: `tool(fn, {name, kind})` makes a function a tool that reports
// each call to the tapedeck session the process runs in (`tapedeck record -- CMD`), or takes its
// answer from the recording without calling the function (`tapedeck replay RUN -- CMD`).
// Outside a session a tool is the plain function. The protocol is ../PROTOCOL.md (version 1).

import net from "node:net";
import { performance } from "node:perf_hooks";

const PROTOCOL = 1;
const CLIENT = "tapedeck-js/0.1.0";
const ENV = "TAPEDECK_SESSION";
const KINDS = ["read", "write", "expensive"];

// Connecting to a live local session takes microseconds; the limit only bounds the wait on an
// address where nothing answers. Once `hello` is answered, requests wait as long as the session
// takes: tapedeck owns the process's lifetime anyway.
const HELLO_TIMEOUT_MS = 5000;

/** A replayed call whose recorded outcome was an error. `type` is the original error's class
 * name; `recordedMessage` its message (`message` is "type: recordedMessage"). */
export class RecordedToolError extends Error {
  constructor(type, message) {
    super(`${type}: ${message}`);
    this.name = "RecordedToolError";
    this.type = type;
    this.recordedMessage = message;
  }
}

/** A replayed call the recording has no answer for, that the miss policy does not let run. */
export class ReplayMissError extends Error {
  constructor(message) {
    super(message);
    this.name = "ReplayMissError";
  }
}

/** The session answered something this client does not understand, or went away after
 * `hello`. The tool is not run as a fallback: its call would be missing from the recording. */
export class SessionError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "SessionError";
  }
}

// Node's http module costs about 280 µs a local round trip where a socket that writes a prebuilt
// request costs about 65 µs, and a recorded tool call makes two. The session's answers are small
// and always carry a content-length, which is all this client reads.

/** One kept-open connection to the session, opened at the first request and again after the
 * server closed it. A request waits for the one before it to be answered: one is in flight at a
 * time, and they reach the session in the order the program made them. */
class Connection {
  constructor(host, port) {
    this.host = host;
    this.port = port;
    this.socket = null;
    this.timeoutMs = 0;
    this.pending = null; // the request in flight: {resolve, reject, buf, head, start}
    this.queue = Promise.resolve();
  }

  /** Sends `request` (head and body) once the requests before it are answered, and resolves
   * with the answer's {status, text}; with no answer in `timeoutMs` (0: no limit) it rejects. */
  request(request, timeoutMs = 0) {
    const answer = this.queue.then(() => this.exchange(request, timeoutMs));
    this.queue = answer.then(
      () => {},
      () => {},
    );
    return answer;
  }

  async exchange(request, timeoutMs) {
    const reused = this.socket !== null;
    try {
      return await this.once(request, timeoutMs);
    } catch (err) {
      // A kept-alive socket the server closed while idle fails on its next request: the request
      // is sent again on a new socket. A refused connection is not retried: it means the session
      // is gone.
      if (reused && (err.code === "ECONNRESET" || err.code === "EPIPE")) {
        return await this.once(request, timeoutMs);
      }
      throw err;
    }
  }

  once(request, timeoutMs) {
    if (this.socket === null) this.open();
    const socket = this.socket;
    if (this.timeoutMs !== timeoutMs) {
      socket.setTimeout(timeoutMs);
      this.timeoutMs = timeoutMs;
    }
    // An idle socket does not keep the process alive; one waiting for an answer does.
    socket.ref();
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject, buf: null, head: null, start: 0 };
      socket.write(request);
    });
  }

  open() {
    const socket = net.connect({ host: this.host, port: this.port });
    // The request goes out in one write, which must not wait for the ACK of the last.
    socket.setNoDelay(true);
    socket.on("data", (chunk) => this.read(socket, chunk));
    socket.on("timeout", () => {
      if (this.pending === null) return;
      const err = new Error(`no answer in ${this.timeoutMs} ms`);
      err.code = "ETIMEDOUT";
      socket.destroy(err);
    });
    socket.on("error", (err) => this.end(socket, err));
    socket.on("close", () => this.end(socket, null));
    this.socket = socket;
    this.timeoutMs = 0;
  }

  read(socket, chunk) {
    const p = this.pending;
    if (socket !== this.socket || p === null) {
      socket.destroy(); // an answer to nothing that was asked
      return;
    }
    p.buf = p.buf === null ? chunk : Buffer.concat([p.buf, chunk]);
    if (p.head === null) {
      const end = p.buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = parseHead(p.buf.toString("latin1", 0, end));
      if (head instanceof Error) {
        socket.destroy(head);
        return;
      }
      p.head = head;
      p.start = end + 4;
    }
    const { status, length, close } = p.head;
    // An answer without a length ends where the server closes the connection (see `end`).
    if (length === null || p.buf.length < p.start + length) return;
    this.pending = null;
    if (close) this.close();
    else socket.unref();
    p.resolve({ status, text: p.buf.toString("utf8", p.start, p.start + length) });
  }

  end(socket, err) {
    if (socket !== this.socket) return;
    this.socket = null;
    const p = this.pending;
    if (p === null) return;
    this.pending = null;
    if (err === null && p.head !== null && p.head.length === null) {
      p.resolve({ status: p.head.status, text: p.buf.toString("utf8", p.start) });
    } else if (err !== null) {
      p.reject(err);
    } else if (p.buf === null) {
      const hangUp = new Error("socket hang up");
      hangUp.code = "ECONNRESET";
      p.reject(hangUp);
    } else {
      p.reject(new Error("the connection closed in the middle of an answer"));
    }
  }

  close() {
    const socket = this.socket;
    if (socket === null) return;
    socket.destroy();
    // Not a hang-up: a request in flight is not sent again.
    this.end(socket, new Error("the connection was closed"));
  }
}

/** An answer's status, content-length (null without one) and whether the server closes the
 * connection after it; an Error for a head that is not HTTP/1.1. */
function parseHead(text) {
  const lines = text.split("\r\n");
  const m = /^HTTP\/1\.(\d) (\d{3})/.exec(lines[0]);
  if (m === null) return new Error(`the answer is not HTTP/1.1: ${JSON.stringify(lines[0].slice(0, 100))}`);
  let length = null;
  let close = m[1] === "0";
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-length") {
      if (!/^\d+$/.test(value)) {
        return new Error(`the answer's content-length is not a number: ${JSON.stringify(value)}`);
      }
      length = Number(value);
    } else if (name === "connection") {
      close = value.toLowerCase() === "close";
    }
  }
  return { status: Number(m[2]), length, close };
}

class Session {
  constructor(url, lenient) {
    let u;
    try {
      u = new URL(url);
    } catch {
      u = null;
    }
    if (u === null || u.protocol !== "http:" || !u.hostname) {
      throw new TypeError("not an http:// URL");
    }
    this.url = url;
    this.path = u.pathname.replace(/\/+$/, "");
    this.head = `host: ${u.host}\r\ncontent-type: application/json\r\n`;
    this.mode = null;
    this.run = null;
    // A session found in the environment falls back to "outside a session" when it cannot be
    // reached at hello; one asked for with connect() rejects instead.
    this.lenient = lenient;
    this.greeting = null; // the promise of `hello`'s answer, shared by concurrent first calls
    this.connection = new Connection(u.hostname.replace(/^\[(.*)\]$/, "$1"), Number(u.port || 80));
  }

  info() {
    return { url: this.url, mode: this.mode, run: this.run };
  }

  close() {
    this.connection.close();
  }

  /** Sends one message; rejects with the socket's error when the session cannot be reached and
   * with a SessionError for an answer that is not a 200 with a JSON object. */
  async post(endpoint, body, timeoutMs) {
    const json = JSON.stringify(body);
    const { status, text } = await this.connection.request(
      `POST ${this.path}/${endpoint} HTTP/1.1\r\n${this.head}` +
        `content-length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
      timeoutMs,
    );
    return answer(endpoint, status, text);
  }

  async hello() {
    const a = await this.post("hello", { protocol: PROTOCOL, client: CLIENT }, HELLO_TIMEOUT_MS);
    this.mode = a.mode ?? null;
    this.run = a.run ?? null;
  }
}

function answer(endpoint, status, text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (status !== 200) {
    const error = body && typeof body === "object" ? body.error : undefined;
    const what =
      error && typeof error === "object" && "message" in error
        ? `${error.message} (${error.type ?? "error"})`
        : text.slice(0, 500) || "an empty body";
    throw new SessionError(`the tapedeck session answered ${status} to \`${endpoint}\`: ${what}`);
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new SessionError(
      `the tapedeck session answered \`${endpoint}\` with something other than a JSON object: ` +
        JSON.stringify(text.slice(0, 500)),
    );
  }
  return body;
}

// The session of this process: UNRESOLVED until the first tool call reads the environment,
// then a Session or null (outside a session). A wrapper's only check outside a session is
// `current === null`.
const UNRESOLVED = Symbol("unresolved");
let current = UNRESOLVED;

function warn(url, reason) {
  process.stderr.write(
    `tapedeck: ${ENV}=${url} is not reachable (${reason}); tools run as outside a session\n`,
  );
}

function reason(err) {
  return err.code && !String(err.message).includes(err.code)
    ? `${err.code}: ${err.message}`
    : err.message;
}

/** The session to use for a call, after its `hello`; null outside a session. */
async function resolve() {
  if (current === UNRESOLVED) {
    const url = process.env[ENV];
    current = null;
    if (url) {
      try {
        current = new Session(url, true);
      } catch (err) {
        warn(url, err.message);
      }
    }
  }
  const session = current;
  if (session === null) return null;
  // Calls made together before the first answer share one `hello`, and one warning.
  session.greeting ??= session.hello().then(
    () => true,
    (err) => {
      if (err instanceof SessionError) {
        session.greeting = null; // said again by the next call, which fails the same way
        throw err;
      }
      if (!session.lenient) {
        throw new SessionError(
          `the tapedeck session at ${session.url} is not reachable (${reason(err)})`,
          { cause: err },
        );
      }
      warn(session.url, reason(err));
      session.close();
      if (current === session) current = null;
      return false;
    },
  );
  return (await session.greeting) ? session : null;
}

/** Uses the session at `url` from now on (instead of TAPEDECK_SESSION), saying `hello` now.
 * Rejects with a SessionError when it cannot be reached: asked for by name, it must be there. */
export async function connect(url) {
  let session;
  try {
    session = new Session(url, false);
  } catch (err) {
    throw new SessionError(`not a tapedeck session URL: ${url} (${err.message})`, { cause: err });
  }
  try {
    await session.hello();
  } catch (err) {
    session.close();
    if (err instanceof SessionError) throw err;
    throw new SessionError(`the tapedeck session at ${url} is not reachable (${reason(err)})`, {
      cause: err,
    });
  }
  session.greeting = Promise.resolve(true);
  const old = current;
  current = session;
  if (old instanceof Session) old.close();
  return session.info();
}

/** Closes the session's connections; tools run as outside a session from now on, whatever
 * TAPEDECK_SESSION says. */
export function disconnect() {
  const old = current;
  current = null;
  if (old instanceof Session) old.close();
}

/** The session tools report to ({url, mode, run}), reading TAPEDECK_SESSION and saying `hello`
 * if that has not been done; null outside a session. */
export async function session() {
  const s = await resolve();
  return s === null ? null : s.info();
}

/** `value` as JSON.stringify would write it, except that what JSON cannot hold becomes its
 * text: NaN and the infinities, BigInts. A Set becomes an array sorted by its items' JSON text
 * (its insertion order is not part of its value) and a Map an object. */
export function toJson(value, seen = new Set()) {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value === "bigint") return String(value);
  if (value === undefined || typeof value === "function" || typeof value === "symbol") {
    return undefined;
  }
  if (typeof value.toJSON === "function") return toJson(value.toJSON(), seen);
  if (seen.has(value)) return "[Circular]";
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      return value.map((v) => toJson(v, seen) ?? null);
    }
    if (value instanceof Set) {
      const items = [...value].map((v) => toJson(v, seen) ?? null);
      const keyed = items.map((v) => [JSON.stringify(v), v]);
      keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      return keyed.map(([, v]) => v);
    }
    const out = {};
    const entries = value instanceof Map ? value.entries() : Object.entries(value);
    for (const [k, v] of entries) {
      const j = toJson(v, seen);
      if (j !== undefined) out[String(k)] = j;
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

function isPlainObject(value) {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The `args` object of a call: a single plain-object argument as it is, anything else as
 * `{"args": [...]}`. */
export function callArgs(args) {
  if (args.length === 1 && isPlainObject(args[0])) return toJson(args[0]);
  return { args: toJson(args) };
}

function lost(session, err) {
  return new SessionError(
    `the tapedeck session at ${session.url} is not reachable any more (${reason(err)})`,
    { cause: err },
  );
}

async function post(session, endpoint, body) {
  try {
    return await session.post(endpoint, body);
  } catch (err) {
    if (err instanceof SessionError) throw err;
    throw lost(session, err);
  }
}

function replayed(spec, a) {
  switch (a.action) {
    case "return":
      return a.result ?? null;
    case "raise": {
      const e = a.error && typeof a.error === "object" ? a.error : {};
      throw new RecordedToolError(String(e.type ?? "Error"), String(e.message ?? ""));
    }
    case "miss":
      throw new ReplayMissError(String(a.message ?? `no recorded call of \`${spec.name}\``));
    default:
      throw new SessionError(
        `the tapedeck session answered \`call\` of \`${spec.name}\` with an unknown action ` +
          `${JSON.stringify(a.action)} (this client speaks protocol ${PROTOCOL})`,
      );
  }
}

function errorOf(err) {
  if (err instanceof Error) {
    return { type: err.constructor?.name || err.name || "Error", message: String(err.message) };
  }
  // A thrown value that is not an Error: its type of value and its text.
  return { type: err === null ? "null" : typeof err, message: String(err) };
}

async function inSession(spec, fn, self, args) {
  const session = await resolve();
  if (session === null) return fn.apply(self, args);
  const a = await post(session, "call", { tool: spec.name, kind: spec.kind, args: callArgs(args) });
  if (a.action !== "run") return replayed(spec, a);
  const start = performance.now();
  let result;
  try {
    result = await fn.apply(self, args);
  } catch (err) {
    const latency = round(performance.now() - start);
    await post(session, "outcome", { call: a.call, error: errorOf(err), latency_ms: latency });
    throw err;
  }
  const latency = round(performance.now() - start);
  await post(session, "outcome", {
    call: a.call,
    result: toJson(result) ?? null,
    latency_ms: latency,
  });
  return result;
}

function round(ms) {
  return Math.round(ms * 1000) / 1000;
}

/**
 * Makes `fn` a tool. The returned function always returns a Promise (a replayed call answers
 * through the session), passes `this` through (so it can be a method), and has `fn`'s `name`
 * and `length`. `name` is the tool's name as the model knows it (`fn.name` by default); `kind`
 * is "read" (the default), "write" (never runs in a replay) or "expensive".
 */
export function tool(fn, options = {}) {
  if (typeof fn !== "function") throw new TypeError("tool() takes a function");
  const kind = options.kind ?? "read";
  if (!KINDS.includes(kind)) {
    throw new TypeError(`a tool's kind is one of ${KINDS.join(", ")}, not ${JSON.stringify(kind)}`);
  }
  const name = options.name ?? fn.name;
  if (!name) throw new TypeError("an anonymous function needs tool(fn, {name})");
  const spec = { name, kind };
  const wrapper = async function (...args) {
    if (current === null) return fn.apply(this, args);
    return inSession(spec, fn, this, args);
  };
  Object.defineProperty(wrapper, "name", { value: fn.name || name });
  Object.defineProperty(wrapper, "length", { value: fn.length });
  Object.defineProperty(wrapper, "toolName", { value: name });
  Object.defineProperty(wrapper, "toolKind", { value: kind });
  return wrapper;
}

export default { tool, connect, disconnect, session, RecordedToolError, ReplayMissError, SessionError };
