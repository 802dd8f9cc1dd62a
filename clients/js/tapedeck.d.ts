// Types of tapedeck.mjs, tapedeck's JavaScript client (session protocol v1, ../PROTOCOL.md).

/** What a tool does: "read" has no side effects, "write" changes something (and never runs in a
 * replay), "expensive" costs money or quota. */
export type ToolKind = "read" | "write" | "expensive";

export interface ToolOptions {
  /** The tool's name as the model knows it; `fn.name` by default. */
  name?: string;
  /** "read" by default. */
  kind?: ToolKind;
}

/** A tool made by {@link tool}: the function's parameters and `this`, its result as a Promise. */
export type Tool<T, A extends unknown[], R> = ((this: T, ...args: A) => Promise<Awaited<R>>) & {
  readonly toolName: string;
  readonly toolKind: ToolKind;
};

/**
 * Makes `fn` a tool. The result always returns a Promise, even for a synchronous `fn`: in a
 * session each call makes a round trip to it, and in a replay the answer comes from there.
 * A single plain-object argument is recorded as the call's `args` as it is; any other
 * arguments as `{"args": [...]}`.
 */
export function tool<T, A extends unknown[], R>(
  fn: (this: T, ...args: A) => R,
  options?: ToolOptions,
): Tool<T, A, R>;

/** A replayed call whose recorded outcome was an error. */
export class RecordedToolError extends Error {
  constructor(type: string, message: string);
  readonly name: "RecordedToolError";
  /** The original error's class name, such as "ValueError" or "TypeError". */
  readonly type: string;
  /** The original error's message (`message` is `"<type>: <recordedMessage>"`). */
  readonly recordedMessage: string;
}

/** A replayed call the recording has no answer for; the run ends `replay_miss:<tool>`. */
export class ReplayMissError extends Error {
  constructor(message: string);
  readonly name: "ReplayMissError";
}

/** The session answered something this client does not understand (a non-200 answer, an
 * unknown action) or went away after `hello`. The tool was not run. */
export class SessionError extends Error {
  constructor(message: string, options?: { cause?: unknown });
  readonly name: "SessionError";
}

export interface SessionInfo {
  /** The session's base URL, such as `http://127.0.0.1:PORT/tapedeck/session/v1`. */
  url: string;
  /** "record" or "replay", as `hello` answered. */
  mode: string | null;
  /** The session's run (its short id). */
  run: string | null;
}

/** Uses the session at `url` from now on instead of TAPEDECK_SESSION, saying `hello` now;
 * rejects with a SessionError when it cannot be reached. */
export function connect(url: string): Promise<SessionInfo>;

/** Closes the session's connections; tools run as outside a session from now on. */
export function disconnect(): void;

/** The session tools report to (reading TAPEDECK_SESSION and saying `hello` if not yet done),
 * or null outside a session. */
export function session(): Promise<SessionInfo | null>;

/** A value as the client records it: as `JSON.stringify` writes it, with NaN, the infinities
 * and BigInts as their text, a Set as a sorted array and a Map as an object. */
export function toJson(value: unknown): unknown;

/** The `args` object a call with these arguments is recorded with. */
export function callArgs(args: unknown[]): Record<string, unknown>;

declare const tapedeck: {
  tool: typeof tool;
  connect: typeof connect;
  disconnect: typeof disconnect;
  session: typeof session;
  RecordedToolError: typeof RecordedToolError;
  ReplayMissError: typeof ReplayMissError;
  SessionError: typeof SessionError;
};
export default tapedeck;
