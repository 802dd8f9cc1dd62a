#!/usr/bin/env node
// The `tapedeck` command of the npm package: runs the binary of this machine's platform
// package (`@tapedeck/cli-linux-x64`, …, an optional dependency npm installs only where it
// fits), passing the arguments, the standard streams and the exit code through — a signal
// that ends the binary ends this process the same way.

import { spawnSync } from "node:child_process";
import { binaryPath } from "../binary.mjs";

let binary;
try {
  binary = binaryPath();
} catch (err) {
  process.stderr.write(`tapedeck: ${err.message}\n`);
  process.exit(2);
}
const ran = spawnSync(binary, process.argv.slice(2), { stdio: "inherit" });
if (ran.error) {
  process.stderr.write(`tapedeck: cannot run ${binary}: ${ran.error.message}\n`);
  process.exit(2);
}
if (ran.signal) {
  process.kill(process.pid, ran.signal);
}
process.exit(ran.status ?? 1);
