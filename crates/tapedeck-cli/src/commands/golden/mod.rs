//! `tapedeck golden`: golden suites — record baselines ([`record`]), check an agent version
//! against them ([`check`]), review, accept or reject pending snapshots ([`review`]), and turn
//! a stored run into a task ([`add`]). The file formats live in `tapedeck_diff::golden`.

pub mod add;
pub mod check;
mod command;
pub mod record;
pub mod review;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tapedeck_agent::{Agent, LoadedConfig};
use tapedeck_diff::RunSummary;
use tapedeck_diff::golden::{Behaviour, Snapshot, Suite};
use tapedeck_store::{ImportOutcome, Store};
use tapedeck_trace::RunId;

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

/// The agent that runs repetition `i` (from 0; tape `i + 1`) of a task: the version as
/// written, its scripted model's `seed` moved to `seed + i` so that `one_of` rules vary from
/// run to run as a real model's answers do. The seed is a parameter of the run (its
/// `repeat` label, [`tapedeck_agent::model::REPEAT_LABEL`]), not of the version: the recorded config and the fingerprint are
/// those of the file, so every repetition is one version.
fn agent_for_repetition(config: &LoadedConfig, i: usize) -> anyhow::Result<Agent> {
    let model = tapedeck_agent::model::from_config_seeded(config, i as u64)?;
    let tools = tapedeck_agent::tool::ToolSet::from_config(config)?;
    let approver = tapedeck_agent::approvals_for(config, crate::terminal_approval::ask)?;
    Ok(Agent::new(config.clone(), model, tools, approver))
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

/// Writes run `id` as a task's baseline tape.
fn export_tape(store: &Store, id: &RunId, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder `{}`", dir.display()))?;
    }
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path)
            .with_context(|| format!("cannot write `{}`", path.display()))?,
    );
    store
        .export_tape(id, &mut out)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

/// Reads a task's baseline tape into the store.
fn import_tape(store: &Store, path: &Path, task: &str) -> anyhow::Result<RunId> {
    let file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "{}: no baseline tape for task `{task}`: record it with `tapedeck golden record`",
                path.display()
            )
        } else {
            anyhow::anyhow!(
                "{}: cannot read the tape of task `{task}`: {e}",
                path.display()
            )
        }
    })?;
    let outcome = store
        .import_tape(&mut std::io::BufReader::new(file))
        .with_context(|| format!("{}: the tape of task `{task}`", path.display()))?;
    Ok(match outcome {
        ImportOutcome::Imported { id, .. } | ImportOutcome::AlreadyPresent(id) => id,
    })
}

/// Writes the behaviour of run `id` as the task's snapshot and drops a pending one.
fn write_snapshot(
    store: &Store,
    suite: &Suite,
    task: &str,
    id: &RunId,
) -> anyhow::Result<Behaviour> {
    let behaviour = Behaviour::of(&RunSummary::load(store, id)?);
    Snapshot {
        source: suite.source(),
        expression: task.to_owned(),
        info: None,
        behaviour: behaviour.clone(),
    }
    .write(&suite.snapshot_path(task))?;
    tapedeck_diff::golden::remove_if_present(&suite.pending_path(task))?;
    Ok(behaviour)
}
