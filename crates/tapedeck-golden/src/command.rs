//! The tasks of a command suite (an agent written as code): each runs the suite's command in a
//! session — recorded through the proxy for a baseline, replayed against its baseline for a
//! check (the model live or from the baseline, every tool from the baseline) — with its output
//! kept in a log that an error quotes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tapedeck_diff::golden::{Suite, SuiteCommand, Task};
use tapedeck_proxy::command_line;
use tapedeck_proxy::http::{
    self, Backend, ClientCommand, ClientRun, InterruptSource, Pricing, Proxy, Upstreams,
};
use tapedeck_proxy::redact::Redactor;
use tapedeck_replay::MissPolicy;
use tapedeck_replay::session::{CommandReplay, ModelSource, replay_proxy};
use tapedeck_store::{Store, Writer};
use tapedeck_trace::{Run, RunId, Source};

use crate::{GoldenError, Observer};

/// How much of a failed command's output an error quotes.
const OUTPUT_TAIL: usize = 20;

/// Refuses a command that cannot start, before anything is written: its program is looked for
/// on `PATH`, or (with a `/`) from the command's folder.
pub fn check(command: &SuiteCommand) -> Result<(), GoldenError> {
    let mut argv = command.argv.clone();
    if let Some(program) = argv.first_mut()
        && program.contains('/')
        && Path::new(program.as_str()).is_relative()
    {
        *program = command.cwd.join(&*program).display().to_string();
    }
    if !command.cwd.is_dir() {
        return Err(GoldenError::NotAFolder(command.cwd.clone()));
    }
    Ok(command_line::check_program(
        &argv,
        "run the suite's command",
    )?)
}

/// Where a task run's output goes: a log file beside the store, removed once the run is kept.
fn log_path(store: &Store, task: &str, rep: usize) -> PathBuf {
    // A store named without a folder (`--store t.db`) has the empty path as its parent: that
    // is the current folder, not a reason to fall back to the temporary one.
    let dir = store
        .path()
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .filter(|d| d.is_dir())
        .map_or_else(std::env::temp_dir, Path::to_path_buf);
    dir.join(format!(
        "golden-{task}-{}-{}.log",
        rep + 1,
        tapedeck_trace::Timestamp::now().as_micros()
    ))
}

/// The last lines of a log, for an error.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(OUTPUT_TAIL);
    lines[start..].join("\n")
}

/// The name of the agent a command runs: the suite's `name`, else the one its command line
/// goes by.
fn agent_name(command: &SuiteCommand, argv: &[String]) -> String {
    command
        .name
        .clone()
        .unwrap_or_else(|| command_line::agent_name(argv))
}

/// Where a command suite's task runs go, and what runs them.
#[derive(Clone, Copy)]
pub(crate) struct Runs<'a> {
    pub(crate) store: &'a Store,
    pub(crate) writer: &'a Writer,
    pub(crate) command: &'a SuiteCommand,
    /// What interrupts a command while it runs.
    pub(crate) interrupts: InterruptSource,
    /// Who hears of a candidate that failed.
    pub(crate) observer: &'a dyn Observer,
}

impl Runs<'_> {
    /// Runs `argv` for repetition `rep` of `task` behind `proxy`, its output into a log.
    fn run(
        &self,
        proxy: Arc<Proxy>,
        argv: Vec<String>,
        task: &Task,
        log: &Path,
    ) -> Result<ClientRun, GoldenError> {
        let client = ClientCommand {
            argv,
            env: self.command.env_for(task),
            cwd: Some(self.command.cwd.clone()),
            output: Some(log.to_path_buf()),
        };
        Ok(http::run_client(proxy, &client, self.interrupts)?)
    }
}

/// Records repetition `rep` (from 0) of `repeat` of `task` with the suite's command against
/// `upstreams`; a command that could not start or exited non-zero is an error quoting its
/// output's end.
pub(crate) fn record(
    runs: Runs<'_>,
    suite: &Suite,
    task: &Task,
    rep: usize,
    repeat: usize,
    upstreams: &Upstreams,
) -> Result<Run, GoldenError> {
    let argv = runs.command.argv_for(task);
    let mut run = Run::new(Source::Proxy);
    run.suite = Some(suite.name.clone());
    run.task = Some(task.id.clone());
    run.input = Some(task.input.clone());
    run.labels.extend(task.labels.clone());
    if repeat > 1 {
        run.labels.insert(
            tapedeck_agent::model::REPEAT_LABEL.to_owned(),
            (rep + 1).to_string(),
        );
    }
    let recorder = runs.writer.start_run(run)?;
    let client = http::client().map_err(|e| GoldenError::HttpClient(Box::new(e)))?;
    let proxy = Proxy::new(
        Backend::Live {
            client,
            upstreams: upstreams.clone(),
        },
        Redactor::default(),
        Pricing::default(),
        recorder,
    );
    proxy.name_agent(&agent_name(runs.command, &argv));
    let log = log_path(runs.store, &task.id, rep);
    let ended = runs.run(proxy, argv, task, &log)?;
    if ended.end.code != Some(0) {
        return Err(GoldenError::CommandFailed {
            code: ended
                .end
                .code
                .map_or_else(|| "no code".to_owned(), |c| c.to_string()),
            run: ended.run.id.short(),
            tail: tail(&log),
        });
    }
    let _ = std::fs::remove_file(&log);
    runs.writer.flush()?;
    Ok(ended.run)
}

/// Replays `baseline` of `task` with `argv` (the suite's command, or the candidate's), the
/// model from `model`; returns the replay's run id. A candidate that fails is a finding of the
/// check (its run shows why), not an error: its output is kept, and the observer told where.
pub(crate) fn replay(
    runs: Runs<'_>,
    argv: &[String],
    task: &Task,
    rep: usize,
    baseline: &RunId,
    model: &ModelSource,
) -> Result<RunId, GoldenError> {
    let parent = runs.store.run(baseline)?;
    let options = CommandReplay {
        model: model.clone(),
        on_miss: MissPolicy::Error,
        live_allow: Default::default(),
        match_position: false,
        ignore: Vec::new(),
        redactor: Redactor::default(),
        pricing: Pricing::default(),
    };
    let proxy = replay_proxy(
        runs.store,
        runs.writer,
        &parent,
        options,
        task.input.clone(),
    )?;
    if parent.agent.is_none() {
        proxy.name_agent(&agent_name(runs.command, argv));
    }
    let argv: Vec<String> = argv
        .iter()
        .map(|w| {
            w.replace("{input}", &task.input)
                .replace("{task}", &task.id)
        })
        .collect();
    let log = log_path(runs.store, &task.id, rep);
    let ended = runs.run(proxy, argv, task, &log)?;
    match ended.end.code {
        Some(0) => {
            let _ = std::fs::remove_file(&log);
        }
        code => runs.observer.warning(&format!(
            "task `{}`: the command exited with {}; its output is in {}",
            task.id,
            code.map_or_else(|| "no code".to_owned(), |c| format!("code {c}")),
            log.display()
        )),
    }
    runs.writer.flush()?;
    Ok(ended.run.id)
}
