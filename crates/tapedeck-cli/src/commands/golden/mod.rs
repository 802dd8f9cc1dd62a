//! `tapedeck golden`: golden suites — record baselines ([`record`]), check an agent version
//! against them ([`check`]), review, accept or reject pending snapshots ([`review`]), and turn
//! a stored run into a task ([`add`]). The file formats live in `tapedeck_diff::golden`.

pub mod add;
pub mod check;
pub mod record;
pub mod review;

use std::path::{Path, PathBuf};

use anyhow::bail;
use tapedeck_agent::LoadedConfig;
use tapedeck_diff::golden::Suite;

use crate::Exit;
use crate::settings::Settings;

/// Golden suites: baseline runs and behaviour snapshots an agent version is checked against
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A suite is a folder: suite.yaml (agent — a YAML agent version, or a command for an agent\nwritten as code —, tasks, tolerances), tapes/<task>/1.jsonl (baseline\nruns) and snapshots/<task>.snap (behaviour summaries in insta's .snap format).\n\nExamples:\n  tapedeck golden record golden/support --agent golden/support/agent/support-bot.yaml\n  tapedeck golden check golden/support --agent agents/support-v2.yaml --junit junit.xml\n  tapedeck golden review golden/support\n  tapedeck golden add golden/support --from-run 3f9c2e1a --task refund-twice"
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Record(record::Args),
    Check(check::Args),
    Accept(review::AcceptArgs),
    Reject(review::RejectArgs),
    Review(review::ReviewArgs),
    Add(add::Args),
}

/// Runs `tapedeck golden`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    match args.command {
        Command::Record(args) => record::run(settings, args),
        Command::Check(args) => check::run(settings, args),
        Command::Accept(args) => review::accept(args),
        Command::Reject(args) => review::reject(args),
        Command::Review(args) => review::review(args),
        Command::Add(args) => add::run(settings, args),
    }
}

/// The agent version: `--agent`, else the one `suite.yaml` names.
fn load_agent(suite: &Suite, agent: Option<&Path>) -> anyhow::Result<(LoadedConfig, PathBuf)> {
    let path = match agent {
        Some(path) => path.to_path_buf(),
        None => match suite.agent_path() {
            Some(path) => path,
            None => bail!(
                "{}: names no `agent`: pass --agent AGENT.yaml",
                suite.suite_path().display()
            ),
        },
    };
    Ok((super::load_runnable_agent(&path)?, path))
}

/// Runs per task: `--repeat`, else `repeat` in suite.yaml, else 1.
fn repeat_of(suite: &Suite, flag: Option<u32>) -> usize {
    flag.map_or_else(|| suite.repeat(), |n| n as usize)
}

/// The tasks named on the command line (all when none), in suite order.
fn select<'a>(
    suite: &'a Suite,
    names: &[String],
) -> anyhow::Result<Vec<&'a tapedeck_diff::golden::Task>> {
    for name in names {
        if suite.task(name).is_none() {
            return Err(suite.unknown_task(name).into());
        }
    }
    Ok(suite
        .tasks
        .iter()
        .filter(|t| names.is_empty() || names.contains(&t.id))
        .collect())
}

/// Shows a suite run's warnings, and a check's progress, on the terminal.
#[derive(Default)]
struct Terminal {
    bar: std::sync::OnceLock<indicatif::ProgressBar>,
}

impl Terminal {
    /// Clears the progress bar once the work is done.
    fn done(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

impl tapedeck_golden::Observer for Terminal {
    fn runs_planned(&self, runs: usize) {
        let _ = self.bar.set(crate::render::progress_bar(
            runs as u64,
            "task runs checked",
        ));
    }
    fn run_done(&self) {
        if let Some(bar) = self.bar.get() {
            bar.inc(1);
        }
    }
    fn warning(&self, message: &str) {
        crate::render::warning(message);
    }
}
