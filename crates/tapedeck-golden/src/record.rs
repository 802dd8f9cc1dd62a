//! Recording a suite's baselines: each task runs (once, or `repeat` times) with the agent
//! version or the suite's command, recorded; each run is exported as the task's tape, and the
//! first one's behaviour written as its snapshot.

use tapedeck_agent::approvals::Ask;
use tapedeck_agent::{Agent, LoadedConfig};
use tapedeck_diff::golden::{Suite, SuiteCommand, Task};
use tapedeck_proxy::http::{InterruptSource, Upstreams};
use tapedeck_store::{Store, Writer};
use tapedeck_trace::Run;

use crate::command::{self, Runs};
use crate::{GoldenError, Observer, files};

/// Recording has nothing to tell but its results.
struct Silent;

impl Observer for Silent {}

/// What records the tasks: a YAML agent version, or a command suite's command.
pub enum Recorder {
    /// An agent version, with who answers its write approvals.
    Agent {
        /// The agent version.
        config: Box<LoadedConfig>,
        /// Who answers its approvals.
        ask: Ask,
    },
    /// A command suite's command, its model at these upstreams.
    Command {
        /// The command.
        command: SuiteCommand,
        /// Where its model calls go.
        upstreams: Upstreams,
        /// What interrupts it while it runs.
        interrupts: InterruptSource,
    },
}

impl Recorder {
    /// Refuses, before anything is recorded, an agent version whose model, tools or approvals
    /// cannot be built, or a command that cannot start.
    pub fn check(&self) -> Result<(), GoldenError> {
        match self {
            Self::Agent { config, ask } => agent_for_repetition(config, *ask, 0).map(|_| ()),
            Self::Command { command, .. } => command::check(command),
        }
    }
}

/// The agent that runs repetition `i` (from 0; tape `i + 1`) of a task: the version as
/// written, its scripted model's `seed` moved to `seed + i` so that `one_of` rules vary from
/// run to run as a real model's answers do. The seed is a parameter of the run (its `repeat`
/// label, [`tapedeck_agent::model::REPEAT_LABEL`]), not of the version: the recorded config and
/// the fingerprint are those of the file, so every repetition is one version.
fn agent_for_repetition(config: &LoadedConfig, ask: Ask, i: usize) -> Result<Agent, GoldenError> {
    let model = tapedeck_agent::model::from_config_seeded(config, i as u64)?;
    let tools = tapedeck_agent::tool::ToolSet::from_config(config)?;
    let approver = tapedeck_agent::approvals_for(config, ask)?;
    Ok(Agent::new(config.clone(), model, tools, approver))
}

/// How recording one task went.
pub struct TaskRecording<'a> {
    /// The task.
    pub task: &'a Task,
    /// Its runs, in repetition order: all of them, or those before the one that failed.
    pub runs: Vec<Run>,
    /// Why a repetition failed; the task's other tapes are then as they were (no run) or hold
    /// only the runs recorded.
    pub error: Option<GoldenError>,
}

/// Records `repeat` runs of each of `tasks` with `recorder` into the store and the suite's
/// files. A task that fails does not stop the others: its error is in its result. Tapes of an
/// earlier recording beyond the runs now recorded are removed, so a check finds them missing
/// rather than mixing two baselines.
pub fn record<'a>(
    store: &Store,
    writer: &Writer,
    suite: &Suite,
    tasks: &[&'a Task],
    recorder: &Recorder,
    repeat: usize,
) -> Result<Vec<TaskRecording<'a>>, GoldenError> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        let mut runs = Vec::with_capacity(repeat);
        let mut error = None;
        for i in 0..repeat {
            match record_one(store, writer, suite, recorder, task, i, repeat) {
                Ok(run) => runs.push(run),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let done = runs.len();
        if error.is_none() || done > 0 {
            for n in (done + 1)..=suite.recorded_repetitions(&task.id).max(repeat) {
                tapedeck_diff::golden::remove_if_present(&suite.repeat_tape_path(&task.id, n))?;
            }
        }
        results.push(TaskRecording { task, runs, error });
    }
    Ok(results)
}

/// Records repetition `i` (from 0) of a task: its run, tape and (for the first) snapshot.
fn record_one(
    store: &Store,
    writer: &Writer,
    suite: &Suite,
    recorder: &Recorder,
    task: &Task,
    i: usize,
    repeat: usize,
) -> Result<Run, GoldenError> {
    let run = match recorder {
        Recorder::Agent { config, ask } => {
            let mut agent = agent_for_repetition(config, *ask, i)?;
            let mut run = agent.new_run(&task.input);
            run.suite = Some(suite.name.clone());
            run.task = Some(task.id.clone());
            run.labels.extend(task.labels.clone());
            if repeat > 1 {
                // The repetition (and so its seed) is a parameter of the run: replays read it
                // here.
                run.labels.insert(
                    tapedeck_agent::model::REPEAT_LABEL.to_owned(),
                    (i + 1).to_string(),
                );
            }
            let (run, _) = agent.run_recorded(writer, run)?;
            writer.flush()?;
            run
        }
        Recorder::Command {
            command,
            upstreams,
            interrupts,
        } => command::record(
            Runs {
                store,
                writer,
                command,
                interrupts: *interrupts,
                observer: &Silent,
            },
            suite,
            task,
            i,
            repeat,
            upstreams,
        )?,
    };
    files::export_tape(store, &run.id, &suite.repeat_tape_path(&task.id, i + 1))?;
    if i == 0 {
        files::write_snapshot(store, suite, &task.id, &run.id)?;
    }
    Ok(run)
}
