// Types of `tapedeck/testing` (testing.mjs).

/** The record modes, as pytest-recording names them. */
export declare const MODES: readonly ["once", "none", "new_episodes", "all"];

export type Mode = (typeof MODES)[number];

/** Why a tape's session failed its test; `tape` is its path. */
export declare class TapeError extends Error {
  readonly tape: string | null;
}

/** The proxy of this process. */
export interface RunningProxy {
  readonly base: string;
  readonly binary: string;
  readonly store: string;
}

/** Starts (once) the `tapedeck proxy --sessions` of this process and points
 * OPENAI_BASE_URL / ANTHROPIC_BASE_URL at it. */
export declare function startProxy(): Promise<RunningProxy>;

/** The open session `fn` runs in. */
export interface TapeSession {
  readonly tape: string;
  /** What the session does with the tape. */
  readonly mode: "record" | "replay" | "new_episodes" | "check";
  /** The run's short id. */
  readonly run: string;
}

export interface WithTapeOptions {
  /** Default: TAPEDECK_MODE, else `once`. */
  mode?: Mode;
  /** The drift check (default: TAPEDECK_CHECK=1). */
  check?: boolean;
  /** `tapedeck diff` tolerances for the check, e.g. `{ tool_calls: "+50%" }`. */
  tolerances?: Record<string, string | number>;
  /** The run's task (default: the tape's file name). */
  task?: string;
}

/** What a session ended as. */
export interface TapeRun extends TapeSession {
  readonly id: string;
  readonly stopReason: string | null;
  /** `tapedeck show RUN --json` (format `tapedeck-run`, version 1). */
  recordedRun(): { summary: Record<string, unknown>; [key: string]: unknown };
}

/** Runs `fn` in a tapedeck session recorded to or replayed from `tape`. */
export declare function withTape(
  tape: string | URL,
  fn: (session: TapeSession) => unknown | Promise<unknown>,
  options?: WithTapeOptions,
): Promise<TapeRun>;
