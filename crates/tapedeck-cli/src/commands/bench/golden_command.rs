//! Golden suites of commands: `golden check -j N` of a suite whose tasks each run a small
//! Python agent (one tool through the Python client library, one model call), against running
//! the same commands bare, N at a time, against the same fake upstream. The difference per task
//! is what a check adds: the proxy and session, the replay of the tool, the diff and snapshot
//! (goal: under 50 ms).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::Exit;

/// Options of `bench golden-command`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tasks in the suite
    #[arg(long, default_value_t = 100)]
    tasks: u64,
    /// Tasks checked (and bare commands run) at once
    #[arg(long, short = 'j', default_value_t = 2)]
    jobs: u32,
    /// The Python client library's folder [default: clients/python of this repository]
    #[arg(long, value_name = "DIR")]
    clients: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            tasks: 100,
            jobs: 2,
            clients: None,
        }
    }
}

/// A check may add this much per task over the bare command.
const GOAL_MS: f64 = 50.0;

/// The agent: one read tool through the client library, one chat completion, the answer.
const AGENT: &str = r#"import json, os, sys, urllib.request
sys.path.insert(0, CLIENTS)
import tapedeck

@tapedeck.tool
def lookup(key: str) -> dict:
    return {"key": key, "value": len(key)}

found = lookup(sys.argv[1])
body = json.dumps({"model": "gpt-test", "messages": [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": sys.argv[1] + " " + json.dumps(found)}]}).encode()
request = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", body,
                                 {"content-type": "application/json", "authorization": "Bearer sk-bench"})
print(json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"])
"#;

pub fn run(args: Args) -> anyhow::Result<Exit> {
    anyhow::ensure!(args.tasks > 0, "--tasks must be at least 1");
    anyhow::ensure!((1..=64).contains(&args.jobs), "--jobs must be from 1 to 64");
    let clients = args
        .clients
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/python"));
    let clients = std::fs::canonicalize(&clients).with_context(|| {
        format!(
            "no Python client library at `{}`: pass its folder with --clients",
            clients.display()
        )
    })?;
    let dir = super::scratch_dir()?;
    let upstream = format!("http://{}/v1", super::proxy::start_upstream()?);
    let suite = dir.join("suite");
    std::fs::create_dir_all(&suite)?;
    let agent = AGENT.replace("CLIENTS", &format!("{:?}", clients.display().to_string()));
    std::fs::write(suite.join("agent.py"), agent)?;
    let mut yaml = String::from("command: [python3, agent.py, \"{input}\"]\ntasks:\n");
    for i in 0..args.tasks {
        yaml.push_str(&format!("  - id: t{i}\n    input: question-{i}\n"));
    }
    std::fs::write(suite.join("suite.yaml"), yaml)?;
    let jobs = args.jobs.to_string();
    anstream::println!(
        "golden-command: `golden check -j {jobs}` of a {}-task command suite (a Python agent: one \
         tool through the client library, one model call), against the same commands run bare, \
         {jobs} at a time, on the same fake upstream",
        args.tasks
    );
    let suite_arg = suite.display().to_string();
    let record = super::golden::tapedeck(
        &dir,
        "record.db",
        &[
            "golden",
            "record",
            &suite_arg,
            "--upstream-openai",
            &upstream,
        ],
    )?;
    let check = super::golden::tapedeck(
        &dir,
        "check.db",
        &[
            "golden",
            "check",
            &suite_arg,
            "-j",
            &jobs,
            "--upstream-openai",
            &upstream,
        ],
    )?;
    let bare = bare(&suite, &upstream, args.tasks, args.jobs)?;
    let per_task = |d: Duration| d.as_secs_f64() * 1e3 / args.tasks as f64;
    let row = |what: &str, d: Duration| {
        anstream::println!(
            "  {what:<36} {:>7.2} s  {:>7.2} ms/task",
            d.as_secs_f64(),
            per_task(d)
        );
    };
    row("golden record (not in the ratio)", record);
    row(&format!("golden check -j {jobs}"), check);
    row(&format!("the commands bare, {jobs} at a time"), bare);
    let added = per_task(check) - per_task(bare);
    anstream::println!(
        "  golden check adds {added:+.2} ms/task over the bare commands: {:.2} of the goal (goal < {GOAL_MS:.0} ms)",
        added / GOAL_MS
    );
    Ok(Exit::Ok)
}

/// Runs every task's command directly (no tapedeck), `jobs` at a time; returns the wall time.
fn bare(suite: &Path, upstream: &str, tasks: u64, jobs: u32) -> anyhow::Result<Duration> {
    let next = AtomicU64::new(0);
    let began = Instant::now();
    let failed: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tasks {
                        break;
                    }
                    let out = Command::new("python3")
                        .arg("agent.py")
                        .arg(format!("question-{i}"))
                        .current_dir(suite)
                        .env("OPENAI_BASE_URL", upstream)
                        .env_remove(tapedeck_proxy::session::ENV_VAR)
                        .output();
                    let why = match out {
                        Ok(o) if o.status.success() => continue,
                        Ok(o) => format!(
                            "exited with {}: {}",
                            o.status,
                            super::golden::tail(&o.stderr)
                        ),
                        Err(e) => e.to_string(),
                    };
                    failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get_or_insert(why);
                    break;
                }
            });
        }
    });
    let took = began.elapsed();
    if let Some(why) = failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        anyhow::bail!("the bare agent failed: {why}");
    }
    Ok(took)
}
