//! Session: what the Python client library's tool decorator costs an agent — outside a session
//! against the bare function (goal: under 1 µs a call, measured with `timeit`), and per call
//! recorded through a session over a kept-open connection (goal: under 0.5 ms).
//!
//! The measuring is `clients/python/bench.py`, run with `python3` once on its own and once
//! under `tapedeck record`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::Exit;

/// Options of `bench session`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Python client library's folder [default: clients/python of this repository]
    #[arg(long, value_name = "DIR")]
    clients: Option<PathBuf>,
    /// The Python interpreter
    #[arg(long, default_value = "python3")]
    python: String,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            clients: None,
            python: "python3".to_owned(),
        }
    }
}

/// What `bench.py` prints.
#[derive(Debug, Deserialize)]
struct Measured {
    bare_ns: f64,
    outside_ns: f64,
    #[serde(default)]
    recorded_us: Option<f64>,
}

/// Outside a session, the decorator may add this much to a call.
const OUTSIDE_GOAL_NS: f64 = 1_000.0;
/// A recorded call may take this long.
const RECORDED_GOAL_US: f64 = 500.0;

fn measure(mut command: Command, what: &str) -> anyhow::Result<Measured> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    serde_json::from_str(line.unwrap_or_default())
        .with_context(|| format!("{what} printed no measurement: {stdout}"))
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let clients = args
        .clients
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/python"));
    let script = clients.join("bench.py");
    if !script.is_file() {
        bail!(
            "no `{}`: pass the Python client library's folder with --clients",
            script.display()
        );
    }
    let outside = {
        let mut command = Command::new(&args.python);
        command
            .arg(&script)
            .env_remove(tapedeck_proxy::session::ENV_VAR);
        measure(command, "bench.py outside a session")?
    };
    let dir = super::scratch_dir()?;
    let recorded = {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["--store"])
            .arg(dir.join("session.db"))
            .args(["record", "--"])
            .arg(&args.python)
            .arg(&script);
        measure(command, "bench.py in a recording session")?
    };
    let added = outside.outside_ns - outside.bare_ns;
    anstream::println!("session: the Python tool decorator (clients/python/bench.py)");
    anstream::println!(
        "  outside a session  {:>8.0} ns a call, bare function {:.0} ns: {:+.0} ns added ({:.2} of the {:.0} ns goal)",
        outside.outside_ns,
        outside.bare_ns,
        added,
        added / OUTSIDE_GOAL_NS,
        OUTSIDE_GOAL_NS
    );
    match recorded.recorded_us {
        Some(us) => anstream::println!(
            "  recorded           {us:>8.1} µs a call through the session ({:.2} of the {RECORDED_GOAL_US:.0} µs goal)",
            us / RECORDED_GOAL_US
        ),
        None => bail!("bench.py measured no recorded calls in the session"),
    }
    Ok(Exit::Ok)
}
