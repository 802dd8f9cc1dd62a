// Where the `tapedeck` binary is: TAPEDECK_BIN, else the one the platform package of this
// machine carries (installed by npm as an optional dependency of `tapedeck`).

import { createRequire } from "node:module";
import path from "node:path";

/** The platform packages there are, by `${process.platform}-${process.arch}`. */
export const PLATFORMS = { "linux-x64": "@tapedeck/cli-linux-x64" };

/** The path of the `tapedeck` binary; throws naming what to install when there is none. */
export function binaryPath() {
  if (process.env.TAPEDECK_BIN) return process.env.TAPEDECK_BIN;
  const key = `${process.platform}-${process.arch}`;
  const name = PLATFORMS[key];
  if (name === undefined) {
    throw new Error(
      `no tapedeck binary is published for ${key} (there are: ${Object.keys(PLATFORMS).join(", ")}); ` +
        "build it with `cargo install --path .` from the repository and set TAPEDECK_BIN",
    );
  }
  const require = createRequire(import.meta.url);
  let manifest;
  try {
    manifest = require.resolve(`${name}/package.json`);
  } catch {
    throw new Error(
      `the package ${name}, which carries the binary for ${key}, is not installed: ` +
        "install `tapedeck` again without --no-optional (or --omit=optional), or set TAPEDECK_BIN",
    );
  }
  return path.join(path.dirname(manifest), "bin", "tapedeck");
}
