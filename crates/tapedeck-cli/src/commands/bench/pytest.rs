//! Pytest: what the pytest plugin (`clients/python/tapedeck/pytest_plugin.py`) adds to a test
//! replayed from its tape — the proxy it starts once, the session each test opens and closes —
//! over the same test run bare against a fake upstream (goal: under 50 ms a test).
//!
//! The measuring is `clients/python/bench_plugin.py`, run with this binary as the plugin's.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::Exit;

/// Options of `bench pytest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The client libraries' folder [default: clients/ of this repository]
    #[arg(long, value_name = "DIR")]
    clients: Option<PathBuf>,
    /// A Python interpreter that can import pytest
    #[arg(long, default_value = "python3")]
    python: String,
    /// Tests in the suite
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    tests: u32,
    /// Runs of each side; the fastest counts
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            clients: None,
            python: "python3".to_owned(),
            tests: 50,
            runs: 3,
        }
    }
}

/// What `bench_plugin.py` prints.
#[derive(Debug, Deserialize)]
struct Measured {
    tests: u32,
    bare_s: f64,
    replayed_s: f64,
}

/// A replayed test may take this much longer than the bare one.
const GOAL_MS: f64 = 50.0;

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let clients = args
        .clients
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients"));
    let script = clients.join("python/bench_plugin.py");
    if !script.is_file() {
        bail!(
            "no `{}`: pass the folder of the client libraries with --clients",
            script.display()
        );
    }
    let has_pytest = Command::new(&args.python)
        .args(["-c", "import pytest"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pytest {
        bail!(
            "`{}` cannot import pytest: `{} -m pip install pytest`, or pass another interpreter with --python",
            args.python,
            args.python
        );
    }
    anstream::println!(
        "pytest: {} tests of one model call each, replayed by the plugin from their tapes against the same tests run bare on a fake upstream (best of {})",
        args.tests,
        args.runs
    );
    let out = Command::new(&args.python)
        .arg(&script)
        .arg("--binary")
        .arg(std::env::current_exe().context("cannot find this binary")?)
        .args(["--tests", &args.tests.to_string()])
        .args(["--runs", &args.runs.to_string()])
        .env_remove(tapedeck_proxy::session::ENV_VAR)
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let measured: Measured = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("{} printed no measurement: {stdout}", script.display()))?;
    let tests = f64::from(measured.tests);
    let added_ms = (measured.replayed_s - measured.bare_s) * 1000.0 / tests;
    anstream::println!(
        "  bare {:.2} s, replayed {:.2} s: {added_ms:+.1} ms a test ({:.2} of the {GOAL_MS:.0} ms goal; the proxy's start shared by the {} tests)",
        measured.bare_s,
        measured.replayed_s,
        added_ms / GOAL_MS,
        measured.tests
    );
    Ok(Exit::Ok)
}
