//! `tapedeck golden review | accept | reject SUITE`: the pending snapshots (`<task>.snap.new`,
//! written by `golden check` for drifting tasks) shown as diffs, taken over `<task>.snap`, or
//! dropped.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::bail;
use tapedeck_diff::golden::{Snapshot, Suite, snapshot};

use crate::Exit;
use crate::render::{BAD, DIM, GOOD, HEADING};

/// Take pending snapshots (<task>.snap.new) as the tasks' snapshots
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Accepting updates snapshots only: the baseline tapes stay as recorded. When the accepted\nbehaviour comes from a new agent version, record its baselines with\n`tapedeck golden record SUITE --agent NEW.yaml`.\n\nExamples:\n  tapedeck golden accept golden/support\n  tapedeck golden accept golden/support password-reset"
)]
pub struct AcceptArgs {
    /// The suite's folder
    #[arg(value_name = "SUITE")]
    suite: PathBuf,
    /// Only these tasks (default: every pending one)
    #[arg(value_name = "TASK")]
    tasks: Vec<String>,
}

/// Drop pending snapshots (<task>.snap.new)
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck golden reject golden/support\n  tapedeck golden reject golden/support password-reset"
)]
pub struct RejectArgs {
    /// The suite's folder
    #[arg(value_name = "SUITE")]
    suite: PathBuf,
    /// Only these tasks (default: every pending one)
    #[arg(value_name = "TASK")]
    tasks: Vec<String>,
}

/// Show each pending snapshot's diff and accept, reject or skip it
#[derive(Debug, clap::Args)]
#[command(
    after_help = "On a terminal, asks for each pending snapshot: [a]ccept, [r]eject or [s]kip. Elsewhere it prints\nthe diffs; take or drop them with `tapedeck golden accept` / `tapedeck golden reject`.\n\nExamples:\n  tapedeck golden review golden/support"
)]
pub struct ReviewArgs {
    /// The suite's folder
    #[arg(value_name = "SUITE")]
    suite: PathBuf,
}

/// The pending tasks among `names` (all pending when empty); a named task with nothing
/// pending is an error.
fn pending(suite: &Suite, names: &[String]) -> anyhow::Result<Vec<String>> {
    if names.is_empty() {
        return Ok(suite.pending().iter().map(|t| t.id.clone()).collect());
    }
    for name in names {
        if suite.task(name).is_none() {
            return Err(suite.unknown_task(name).into());
        }
        if !suite.pending_path(name).exists() {
            bail!(
                "{}: task `{name}` has no pending snapshot (run `tapedeck golden check {}` first)",
                suite.pending_path(name).display(),
                suite.dir.display()
            );
        }
    }
    Ok(names.to_vec())
}

/// Moves a task's `.snap.new` over its `.snap`, without the pending-only metadata.
fn accept_one(suite: &Suite, task: &str) -> anyhow::Result<Option<String>> {
    let path = suite.pending_path(task);
    let Some(new) = Snapshot::read(&path)? else {
        bail!("{}: task `{task}` has no pending snapshot", path.display());
    };
    let run = new
        .info
        .as_ref()
        .and_then(|i| i.get("candidate_run"))
        .cloned();
    Snapshot { info: None, ..new }.write(&suite.snapshot_path(task))?;
    tapedeck_diff::golden::remove_if_present(&path)?;
    Ok(run)
}

fn reject_one(suite: &Suite, task: &str) -> anyhow::Result<()> {
    Ok(tapedeck_diff::golden::remove_if_present(
        &suite.pending_path(task),
    )?)
}

/// Runs `tapedeck golden accept`.
pub fn accept(args: AcceptArgs) -> anyhow::Result<Exit> {
    let suite = Suite::load(&args.suite)?;
    let tasks = pending(&suite, &args.tasks)?;
    if tasks.is_empty() {
        anstream::println!("no pending snapshots in suite `{}`", suite.name);
        return Ok(Exit::Ok);
    }
    let good = GOOD;
    let dim = DIM;
    for task in &tasks {
        let run = accept_one(&suite, task)?;
        anstream::println!(
            "{good}accepted{good:#} {task}{}",
            run.map_or_else(String::new, |r| format!(
                " {dim}(from candidate run {}){dim:#}",
                r.get(..8).unwrap_or(&r)
            ))
        );
    }
    note_tapes(&suite);
    Ok(Exit::Ok)
}

fn note_tapes(suite: &Suite) {
    let dim = DIM;
    anstream::println!(
        "{dim}the baseline tapes are unchanged: to make a new agent version the baseline, run `tapedeck golden record {} --agent NEW.yaml`{dim:#}",
        suite.dir.display()
    );
}

/// Runs `tapedeck golden reject`.
pub fn reject(args: RejectArgs) -> anyhow::Result<Exit> {
    let suite = Suite::load(&args.suite)?;
    let tasks = pending(&suite, &args.tasks)?;
    if tasks.is_empty() {
        anstream::println!("no pending snapshots in suite `{}`", suite.name);
        return Ok(Exit::Ok);
    }
    for task in &tasks {
        reject_one(&suite, task)?;
        anstream::println!("rejected {task}");
    }
    Ok(Exit::Ok)
}

/// The diff of a task's snapshot to its pending one.
fn diff_of(suite: &Suite, task: &str) -> anyhow::Result<String> {
    let old = Snapshot::read(&suite.snapshot_path(task))?
        .map(|s| s.behaviour.to_yaml())
        .unwrap_or_default();
    let new = Snapshot::read(&suite.pending_path(task))?
        .map(|s| s.behaviour.to_yaml())
        .unwrap_or_default();
    Ok(snapshot::unified_diff(
        &old,
        &new,
        &format!("snapshots/{task}.snap"),
        &format!("snapshots/{task}.snap.new"),
    ))
}

fn print_diff(diff: &str) {
    let (good, bad, dim) = (GOOD, BAD, DIM);
    for line in diff.lines() {
        if line.starts_with("+++") || line.starts_with("---") || line.starts_with("@@") {
            anstream::println!("{dim}{line}{dim:#}");
        } else if line.starts_with('+') {
            anstream::println!("{good}{line}{good:#}");
        } else if line.starts_with('-') {
            anstream::println!("{bad}{line}{bad:#}");
        } else {
            anstream::println!("{line}");
        }
    }
}

/// Runs `tapedeck golden review`.
pub fn review(args: ReviewArgs) -> anyhow::Result<Exit> {
    let suite = Suite::load(&args.suite)?;
    let tasks = pending(&suite, &[])?;
    if tasks.is_empty() {
        anstream::println!("no pending snapshots in suite `{}`", suite.name);
        return Ok(Exit::Ok);
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let h = HEADING;
    let (mut accepted, mut rejected, mut skipped) = (0, 0, 0);
    for (i, task) in tasks.iter().enumerate() {
        anstream::println!("{h}task {task}{h:#} ({} of {})", i + 1, tasks.len());
        print_diff(&diff_of(&suite, task)?);
        if !interactive {
            continue;
        }
        loop {
            anstream::print!("[a]ccept, [r]eject, [s]kip? ");
            std::io::stdout().flush()?;
            let mut answer = String::new();
            if std::io::stdin().lock().read_line(&mut answer)? == 0 {
                // End of input: leave the rest pending.
                skipped += tasks.len() - i;
                report(accepted, rejected, skipped);
                return Ok(Exit::Ok);
            }
            match answer.trim() {
                "a" | "accept" => {
                    accept_one(&suite, task)?;
                    accepted += 1;
                }
                "r" | "reject" => {
                    reject_one(&suite, task)?;
                    rejected += 1;
                }
                "s" | "skip" | "" => skipped += 1,
                _ => continue,
            }
            break;
        }
        anstream::println!();
    }
    if interactive {
        report(accepted, rejected, skipped);
        if accepted > 0 {
            note_tapes(&suite);
        }
    } else {
        anstream::println!(
            "{} pending snapshot{}: not a terminal, so nothing was decided; take them with `tapedeck golden accept {}` or drop them with `tapedeck golden reject {}` (both take task ids)",
            tasks.len(),
            crate::render::plural(tasks.len() as u64),
            suite.dir.display(),
            suite.dir.display()
        );
    }
    Ok(Exit::Ok)
}

fn report(accepted: usize, rejected: usize, skipped: usize) {
    anstream::println!("{accepted} accepted, {rejected} rejected, {skipped} skipped");
}
