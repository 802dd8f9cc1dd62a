//! The tasks of a command suite (an agent written as code): each runs the suite's command in a
//! session — recorded through the proxy for `golden record`, replayed against its baseline for
//! `golden check` (the model live or from the baseline, every tool from the baseline) — with its
//! output kept in a log that an error quotes.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tapedeck_diff::golden::{Suite, SuiteCommand, Task};
use tapedeck_proxy::http::{self, Backend, ClientCommand, Pricing, Proxy, Upstreams};
use tapedeck_proxy::redact::Redactor;
use tapedeck_replay::MissPolicy;
use tapedeck_replay::session::{CommandReplay, ModelSource, replay_proxy};
use tapedeck_store::{Store, Writer};
use tapedeck_trace::{Run, RunId, Source};

use crate::commands::record::{ClientRun, run_client_to_end};

/// How much of a failed command's output an error quotes.
const OUTPUT_TAIL: usize = 20;

/// Refuses a command that cannot start (exit 2, before anything is written): its program is
/// looked for on PATH, or (with a `/`) from the command's folder.
pub(super) fn check(command: &SuiteCommand) -> anyhow::Result<()> {
    let mut argv = command.argv.clone();
    if let Some(program) = argv.first_mut()
        && program.contains('/')
        && Path::new(program.as_str()).is_relative()
    {
        *program = command.cwd.join(&*program).display().to_string();
    }
    if !command.cwd.is_dir() {
        bail!(
            "the suite's `cwd` `{}` is not a folder",
            command.cwd.display()
        );
    }
    crate::commands::check_program(&argv, "run the suite's command")
}

/// The upstreams: the flags, else the environment's, else the public APIs.
pub(super) fn upstreams(openai: Option<&str>, anthropic: Option<&str>) -> Upstreams {
    let defaults = Upstreams::from_env();
    Upstreams {
        openai: openai.map_or(defaults.openai, str::to_owned),
        anthropic: anthropic.map_or(defaults.anthropic, str::to_owned),
    }
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

/// Runs the command of `task` behind `proxy`, its output into a log; a command that could not
/// start or exited non-zero is an error quoting its output's end.
fn run_task(
    proxy: std::sync::Arc<Proxy>,
    command: &SuiteCommand,
    argv: Vec<String>,
    task: &Task,
    log: &Path,
) -> anyhow::Result<ClientRun> {
    let client = ClientCommand {
        argv,
        env: command.env_for(task),
        cwd: Some(command.cwd.clone()),
        output: Some(log.to_path_buf()),
    };
    let ended = run_client_to_end(proxy, &client, false)?;
    if ended.end.code != Some(0) {
        let code = ended
            .end
            .code
            .map_or_else(|| "no code".to_owned(), |c| c.to_string());
        bail!(
            "the command exited with {code} (run {}); the end of its output:\n{}",
            ended.run.id.short(),
            tail(log)
        );
    }
    let _ = std::fs::remove_file(log);
    Ok(ended)
}

/// Where a command suite's task runs go: the store, its writer, and the suite's command.
#[derive(Clone, Copy)]
pub(super) struct Runs<'a> {
    pub(super) store: &'a Store,
    pub(super) writer: &'a Writer,
    pub(super) command: &'a SuiteCommand,
}

/// Records repetition `rep` (from 0) of `repeat` of `task` with the suite's command against
/// `upstreams`.
pub(super) fn record(
    runs: Runs<'_>,
    suite: &Suite,
    task: &Task,
    rep: usize,
    repeat: usize,
    upstreams: &Upstreams,
) -> anyhow::Result<Run> {
    let Runs {
        store,
        writer,
        command,
    } = runs;
    let argv = command.argv_for(task);
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
    let recorder = writer.start_run(run)?;
    let client = http::client().context("cannot set up the HTTP client")?;
    let proxy = Proxy::new(
        Backend::Live {
            client,
            upstreams: upstreams.clone(),
        },
        Redactor::default(),
        Pricing::default(),
        recorder,
    );
    proxy.name_agent(
        &command
            .name
            .clone()
            .unwrap_or_else(|| crate::shell::agent_name(&argv)),
    );
    let log = log_path(store, &task.id, rep);
    let ended = run_task(proxy, command, argv, task, &log)?;
    writer.flush()?;
    Ok(ended.run)
}

/// Replays `baseline` of `task` with `argv` (the suite's command, or the candidate's), the
/// model from `model`; returns the replay's run id.
pub(super) fn replay(
    runs: Runs<'_>,
    argv: &[String],
    task: &Task,
    rep: usize,
    baseline: &RunId,
    model: &ModelSource,
) -> anyhow::Result<RunId> {
    let Runs {
        store,
        writer,
        command,
    } = runs;
    let parent = store.run(baseline)?;
    let options = CommandReplay {
        model: model.clone(),
        on_miss: MissPolicy::Error,
        live_allow: Default::default(),
        match_position: false,
        ignore: Vec::new(),
        redactor: Redactor::default(),
        pricing: Pricing::default(),
    };
    let proxy = replay_proxy(store, writer, &parent, options, task.input.clone())?;
    if parent.agent.is_none() {
        proxy.name_agent(
            &command
                .name
                .clone()
                .unwrap_or_else(|| crate::shell::agent_name(argv)),
        );
    }
    let argv: Vec<String> = argv
        .iter()
        .map(|w| {
            w.replace("{input}", &task.input)
                .replace("{task}", &task.id)
        })
        .collect();
    let log = log_path(store, &task.id, rep);
    let client = ClientCommand {
        argv,
        env: command.env_for(task),
        cwd: Some(command.cwd.clone()),
        output: Some(log.clone()),
    };
    // A candidate that fails is a finding of the check (its run shows why), not an error; its
    // output is kept for a look at why.
    let ended = run_client_to_end(proxy, &client, false)?;
    match ended.end.code {
        Some(0) => {
            let _ = std::fs::remove_file(&log);
        }
        code => crate::render::warning(&format!(
            "task `{}`: the command exited with {}; its output is in {}",
            task.id,
            code.map_or_else(|| "no code".to_owned(), |c| format!("code {c}")),
            log.display()
        )),
    }
    writer.flush()?;
    Ok(ended.run.id)
}
