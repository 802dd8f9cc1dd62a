#!/usr/bin/env node
// Packs the npm packages from a `tapedeck` binary that is already built: the platform package
// of this machine (`platform/<platform>-<arch>/` with the binary put in its `bin/`) and the
// `tapedeck` package (launcher, client library, test helper). The tests use it to package the
// binary their own build produced, with no second compile; a release packs one platform
// package per target from its cross-built binary (README.md). Prints the two tarballs' paths.
//
//     node clients/js/pack.mjs --binary target/debug/tapedeck --out dist/

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

function usage(message) {
  process.stderr.write(`pack: ${message}\nusage: node pack.mjs --binary PATH --out DIR [--platform linux-x64]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
const options = { platform: `${process.platform}-${process.arch}` };
for (let i = 0; i < args.length; i += 2) {
  const [flag, value] = [args[i], args[i + 1]];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === "--binary") options.binary = value;
  else if (flag === "--out") options.out = value;
  else if (flag === "--platform") options.platform = value;
  else usage(`unknown argument ${flag}`);
}
if (!options.binary || !options.out) usage("--binary and --out are required");
if (!fs.statSync(options.binary, { throwIfNoEntry: false })?.isFile()) {
  usage(`${options.binary} is not a file`);
}
const template = path.join(here, "platform", options.platform);
if (!fs.existsSync(path.join(template, "package.json"))) {
  usage(`no platform package for ${options.platform} in ${path.join(here, "platform")}`);
}

const out = path.resolve(options.out);
fs.mkdirSync(out, { recursive: true });
const staging = fs.mkdtempSync(path.join(os.tmpdir(), "tapedeck-pack-"));
try {
  fs.copyFileSync(path.join(template, "package.json"), path.join(staging, "package.json"));
  fs.mkdirSync(path.join(staging, "bin"));
  fs.copyFileSync(options.binary, path.join(staging, "bin", "tapedeck"));
  fs.chmodSync(path.join(staging, "bin", "tapedeck"), 0o755);
  const pack = (dir) =>
    execFileSync("npm", ["pack", "--silent", "--pack-destination", out], {
      cwd: dir,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    })
      .trim()
      .split("\n")
      .pop();
  const platform = pack(staging);
  const launcher = pack(here);
  process.stdout.write(`${path.join(out, launcher)}\n${path.join(out, platform)}\n`);
} finally {
  fs.rmSync(staging, { recursive: true, force: true });
}
