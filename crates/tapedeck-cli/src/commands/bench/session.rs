//! Session: what the client libraries' tool decorator costs an agent — outside a session
//! against the bare function (goal: under 1 µs a call; Python measured with `timeit`), and per
//! call recorded through a session over a kept-open connection (goal: under 0.5 ms).
//!
//! The measuring is each library's bench script (`clients/python/bench.py`,
//! `clients/js/bench.mjs`), run once on its own and once under `tapedeck record`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::Exit;

/// Options of `bench session`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The client libraries' folder [default: clients/ of this repository]
    #[arg(long, value_name = "DIR")]
    clients: Option<PathBuf>,
    /// The Python interpreter
    #[arg(long, default_value = "python3")]
    python: String,
    /// The Node.js runtime
    #[arg(long, default_value = "node")]
    node: String,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            clients: None,
            python: "python3".to_owned(),
            node: "node".to_owned(),
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
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients"));
    anstream::println!(
        "session: a tool decorated with the client library, outside a session against the bare \
         function, and recorded through a session"
    );
    let dir = super::scratch_dir()?;
    client(
        &dir,
        "Python",
        &args.python,
        &clients.join("python/bench.py"),
    )?;
    client(
        &dir,
        "JavaScript",
        &args.node,
        &clients.join("js/bench.mjs"),
    )?;
    Ok(Exit::Ok)
}

/// Measures one client library: its `bench` script on its own, then under `tapedeck record`.
fn client(
    dir: &std::path::Path,
    name: &str,
    program: &str,
    script: &std::path::Path,
) -> anyhow::Result<()> {
    if !script.is_file() {
        bail!(
            "no `{}`: pass the folder of the client libraries with --clients",
            script.display()
        );
    }
    let outside = {
        let mut command = Command::new(program);
        command
            .arg(script)
            .env_remove(tapedeck_proxy::session::ENV_VAR);
        measure(command, &format!("{} outside a session", script.display()))?
    };
    let recorded = {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["--store"])
            .arg(dir.join(format!("{name}.db")))
            .args(["record", "--"])
            .arg(program)
            .arg(script);
        measure(
            command,
            &format!("{} in a recording session", script.display()),
        )?
    };
    let added = outside.outside_ns - outside.bare_ns;
    anstream::println!(
        "  {name:<10} outside a session {:>6.0} ns a call, bare function {:.0} ns: {:+.0} ns added ({:.2} of the {:.0} ns goal)",
        outside.outside_ns,
        outside.bare_ns,
        added,
        added / OUTSIDE_GOAL_NS,
        OUTSIDE_GOAL_NS
    );
    match recorded.recorded_us {
        Some(us) => anstream::println!(
            "  {name:<10} recorded          {us:>6.1} µs a call through the session ({:.2} of the {RECORDED_GOAL_US:.0} µs goal)",
            us / RECORDED_GOAL_US
        ),
        None => bail!(
            "{} measured no recorded calls in the session",
            script.display()
        ),
    }
    Ok(())
}
