//! Golden: `tapedeck golden check SUITE -j 2` of a generated suite of 1,000 tasks, timed per
//! task, against `tapedeck replay --tapes SUITE/tapes --agent A -j 2` of the same tapes with the
//! same agent — the replays a check is made of, without the diffs, snapshots and reports — so
//! the figure is what golden adds on top of replay.
//!
//! The suite is written into a scratch folder: suite.yaml with `--tasks` tasks of distinct
//! inputs, and one small scripted agent (`kb.search`, then `kb.read`, then the answer; both
//! tools mocks). `golden record` records it first, timed on its own. Every command is this
//! binary run as a child, each with a fresh store, as CI runs them; every one must exit 0 (the
//! check: no drift). Checks and replays alternate, each on a fresh store, best of `--rounds`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use crate::Exit;
use crate::render;

/// Options of `bench golden`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tasks in the generated suite
    #[arg(long, default_value_t = 1000)]
    tasks: u64,
    /// Tasks checked (and tapes replayed) at once
    #[arg(long, short = 'j', default_value_t = 2)]
    jobs: u64,
    /// Checks and replays timed, alternately; the best of each is reported
    #[arg(long, default_value_t = 2)]
    rounds: u64,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            tasks: 1000,
            jobs: 2,
            rounds: 2,
        }
    }
}

/// The goal: the whole check of 1,000 tasks within this many seconds.
const GOAL_SECONDS: f64 = 60.0;

pub fn run(args: Args) -> anyhow::Result<Exit> {
    anyhow::ensure!(args.tasks > 0, "--tasks must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!((1..=64).contains(&args.jobs), "--jobs must be from 1 to 64");
    let dir = super::scratch_dir()?;
    measure(&dir, &args)
}

fn measure(dir: &Path, args: &Args) -> anyhow::Result<Exit> {
    let n = args.tasks;
    let jobs = args.jobs.to_string();
    anstream::println!(
        "golden: `golden check -j {jobs}` of a {}-task suite (3 steps a task: kb.search, kb.read, \
         answer), against `replay --tapes -j {jobs}` of the same tapes",
        render::thousands(n)
    );
    let suite = dir.join("suite");
    write_suite(&suite, n)?;
    let suite_arg = suite.to_string_lossy().into_owned();
    let agent = suite.join("agent").join("bench-bot.yaml");

    let record = tapedeck(dir, "record.db", &["golden", "record", &suite_arg])?;
    let tapes = suite.join("tapes").to_string_lossy().into_owned();
    let agent = agent.to_string_lossy().into_owned();
    // Alternated, each on a fresh store, best of `--rounds`: the least disturbed by the rest
    // of the machine.
    let (mut check, mut replay) = (Duration::MAX, Duration::MAX);
    for round in 0..args.rounds {
        let store = format!("check-{round}.db");
        check = check.min(tapedeck(
            dir,
            &store,
            &["golden", "check", &suite_arg, "-j", &jobs],
        )?);
        let store = format!("replay-{round}.db");
        replay = replay.min(tapedeck(
            dir,
            &store,
            &["replay", "--tapes", &tapes, "--agent", &agent, "-j", &jobs],
        )?);
    }

    let per_task = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    let (check_s, replay_s) = (check.as_secs_f64(), replay.as_secs_f64());
    let row = |what: String, d: Duration| {
        anstream::println!(
            "  {what:<34} {:>7.2} s  {:>6.2} ms/task",
            d.as_secs_f64(),
            per_task(d)
        );
    };
    row("golden record (not in the ratio)".to_owned(), record);
    row(format!("golden check -j {jobs}"), check);
    row(format!("replay --tapes -j {jobs} (baseline)"), replay);
    anstream::println!(
        "  golden check / replay: {:.2}   (golden adds {:+.2} ms/task: diffs, snapshots, report)",
        check_s / replay_s,
        per_task(check) - per_task(replay)
    );
    anstream::println!(
        "  {} tasks checked in {check_s:.1} s, best of {}; scaled to 1,000: {:.1} s = {:.2} of the \
         goal (goal < {GOAL_SECONDS:.0} s)",
        render::thousands(n),
        args.rounds,
        check_s * 1000.0 / n as f64,
        check_s * 1000.0 / n as f64 / GOAL_SECONDS
    );
    Ok(Exit::Ok)
}

/// Writes suite.yaml, the agent and its script under `suite`.
fn write_suite(suite: &Path, tasks: u64) -> anyhow::Result<()> {
    let agent_dir = suite.join("agent");
    std::fs::create_dir_all(&agent_dir)?;
    let script = json!({"responses": [
        {"tool_calls": [{"name": "kb.search", "arguments": {"query": "password"}}]},
        {"tool_calls": [{"name": "kb.read", "arguments": {"article": "password-reset"}}]},
        {"content": "Open Settings > Security and choose Reset password: the link we email \
            works for 30 minutes. (Article: password-reset)"},
    ]});
    std::fs::write(
        agent_dir.join("bench-bot.script.yaml"),
        serde_json::to_string_pretty(&script)?,
    )?;
    let agent = json!({
        "name": "bench-bot",
        "model": {"provider": "scripted", "name": "gpt-4.1-mini", "script": "bench-bot.script.yaml"},
        "system_prompt": "You are bench-bot, the help desk of Acme. Answer from the knowledge \
            base and name the article you used.",
        "tools": {
            "allow": ["kb.search", "kb.read"],
            "defs": [
                {
                    "name": "kb.search",
                    "kind": "read",
                    "description": "Search the knowledge base; returns article ids.",
                    "input_schema": {
                        "type": "object",
                        "properties": {"query": {"type": "string"}},
                        "required": ["query"]
                    },
                    "builtin": "mock",
                    "mock": [{"output": {"articles": ["password-reset", "account-locked"]}}]
                },
                {
                    "name": "kb.read",
                    "kind": "read",
                    "description": "Read one knowledge-base article.",
                    "input_schema": {
                        "type": "object",
                        "properties": {"article": {"type": "string"}},
                        "required": ["article"]
                    },
                    "builtin": "mock",
                    "mock": [{"output": {
                        "article": "password-reset",
                        "body": "Open Settings > Security, choose Reset password, and follow \
                            the link we email you. The link expires after 30 minutes."
                    }}]
                }
            ]
        },
        "budgets": {"max_steps": 10, "max_seconds": 60, "max_tool_calls": 8},
        "pricing": {"gpt-4.1-mini": {"input_per_mtok": 0.40, "output_per_mtok": 1.60}},
    });
    std::fs::write(
        agent_dir.join("bench-bot.yaml"),
        serde_json::to_string_pretty(&agent)?,
    )?;
    let mut yaml = String::from(
        "# Generated by `tapedeck bench golden`.\nagent: agent/bench-bot.yaml\ntolerances:\n  \
         tool_calls: +20%\n  tokens: +15%\n  answer_similarity: 0.9\ntasks:\n",
    );
    for i in 0..tasks {
        yaml.push_str(&format!(
            "- id: task-{i:05}\n  input: \"Customer #{i} asks: how do I reset my password?\"\n  \
             labels:\n    topic: t{}\n",
            i % 10
        ));
    }
    std::fs::write(suite.join("suite.yaml"), yaml)?;
    Ok(())
}

/// Runs this binary with `--store DIR/STORE ARGS…` in `dir`; returns how long it took. It must
/// exit 0.
pub(super) fn tapedeck(dir: &Path, store: &str, args: &[&str]) -> anyhow::Result<Duration> {
    let exe = std::env::current_exe()?;
    let began = Instant::now();
    let out = Command::new(exe)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("TAPEDECK_STORE")
        .arg("--store")
        .arg(dir.join(store))
        .args(args)
        .output()
        .with_context(|| format!("cannot run `tapedeck {}`", args.join(" ")))?;
    let took = began.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "`tapedeck {}` exited with {}:\n{}{}",
        args.join(" "),
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    Ok(took)
}

/// The last lines of some output, for an error message.
pub(super) fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}
