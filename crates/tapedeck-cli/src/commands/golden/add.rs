//! `tapedeck golden add SUITE --from-run RUN`: a stored run (an incident, a good example)
//! becomes a golden task: its input, its tape as the baseline, its behaviour as the snapshot.

use std::path::PathBuf;

use anyhow::bail;
use tapedeck_diff::golden::{Suite, TaskDef};

use crate::Exit;
use crate::render::DIM;
use crate::settings::Settings;

/// Turn a stored run into a golden task: input, baseline tape and snapshot
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The task id is --task, else the run's task, else its short id. The task is appended to\nsuite.yaml with the run's input and labels.\n\nA suite takes the runs it can replay: a suite of an agent version (`agent:`) runs of the\nruntime; a suite of a command (`command:`) runs of `tapedeck record -- CMD`, whose input (`record\n--input`) becomes the task's `{input}`. Another run is refused with exit 2.\n\nExamples:\n  tapedeck golden add golden/research --from-run b7e5d602 --task browser-retry\n  tapedeck golden add golden/support --from-run 3f9c2e1a"
)]
pub struct Args {
    /// The suite's folder
    #[arg(value_name = "SUITE")]
    suite: PathBuf,
    /// The run: its short id or a unique prefix of its full id
    #[arg(long, value_name = "RUN")]
    from_run: String,
    /// The new task's id
    #[arg(long, value_name = "ID")]
    task: Option<String>,
}

/// Runs `tapedeck golden add`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let mut suite = Suite::load(&args.suite)?;
    let store = settings.open_required_store()?;
    let id = store.resolve_run(&args.from_run)?;
    let run = store.run(&id)?;
    let runs_a_command = suite.command().is_some();
    match (runs_a_command, run.source) {
        (true, tapedeck_trace::Source::Proxy)
        | (false, tapedeck_trace::Source::Runtime | tapedeck_trace::Source::Import) => {}
        (true, source) => bail!(
            "run {} was recorded by the {source}: suite `{}` runs a command (`command:` in suite.yaml), which replays only runs of `tapedeck record -- CMD`",
            id.short(),
            suite.name
        ),
        (false, tapedeck_trace::Source::Proxy) => bail!(
            "run {} is of an agent written as code (`tapedeck record -- CMD`): suite `{}` runs {}, which cannot replay it; add it to a suite with `command:` in its suite.yaml",
            id.short(),
            suite.name,
            if suite.file.agent.is_some() {
                "an agent version (`agent:` in suite.yaml)"
            } else {
                "no command (give suite.yaml a `command:` first)"
            }
        ),
        (false, source) => bail!(
            "run {} was recorded by the {source}, which a golden suite cannot replay",
            id.short()
        ),
    }
    let Some(input) = run.input.clone() else {
        bail!(
            "run {} has no recorded input, so it cannot become a task (runs recorded by a proxy keep theirs in their events)",
            id.short()
        );
    };
    let task = args
        .task
        .clone()
        .or_else(|| run.task.clone())
        .unwrap_or_else(|| id.short());
    suite.add_task(TaskDef {
        id: task.clone(),
        input,
        // The repetition label belongs to the run's tape, not to the task.
        labels: run
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != tapedeck_agent::model::REPEAT_LABEL)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        tolerances: Default::default(),
    })?;
    tapedeck_golden::export_tape(&store, &id, &suite.tape_path(&task))?;
    let behaviour = tapedeck_golden::write_snapshot(&store, &suite, &task, &id)?;
    suite.save()?;
    let dim = DIM;
    anstream::println!(
        "added task {task} to suite `{}` from run {} {dim}({}, {} tool calls){dim:#}",
        suite.name,
        id.short(),
        behaviour.stop_reason,
        behaviour.tool_calls.values().sum::<u64>()
    );
    Ok(Exit::Ok)
}
