//! One module per subcommand: its clap `Args` and its `run` function.

pub mod bench;
pub mod compare;
pub mod config;
pub mod demo;
pub mod diff;
pub mod export;
pub mod gc;
pub mod golden;
pub mod import;
pub mod ls;
pub mod mcp;
pub mod merge;
pub mod proxy;
pub mod record;
pub mod replay;
pub mod rm;
pub mod run;
pub mod show;
pub mod stats;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tapedeck_store::{RunFilter, Store, StoreError};
use tapedeck_trace::{RunStatus, Timestamp};

/// The run filters `ls`, `stats` and `rm` share.
#[derive(Debug, Default, clap::Args)]
pub struct FilterArgs {
    /// Only runs of this golden suite
    #[arg(long)]
    suite: Option<String>,
    /// Only runs of this task
    #[arg(long)]
    task: Option<String>,
    /// Only runs of this agent (name, or a prefix of its fingerprint)
    #[arg(long)]
    agent: Option<String>,
    /// Only runs that stopped for this reason (`max_tool_calls`, `tool_denied:http.get`, or
    /// `tool_denied` for any tool)
    #[arg(long, value_name = "REASON")]
    stop_reason: Option<String>,
    /// Only runs in this state (ok, stopped, error, incomplete, running)
    #[arg(long, value_parser = parse_status)]
    status: Option<RunStatus>,
    /// Only runs from this source (runtime, proxy, mcp, import)
    #[arg(long)]
    source: Option<String>,
    /// Only runs with this label (repeatable; all must match)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Only runs started since this time: an age (30d, 12h) or a date (2026-11-01)
    #[arg(long, value_name = "WHEN", value_parser = crate::when::parse_moment)]
    since: Option<Timestamp>,
}

impl FilterArgs {
    /// The store filter these arguments select.
    pub fn to_filter(&self) -> RunFilter {
        RunFilter {
            suite: self.suite.clone(),
            task: self.task.clone(),
            agent: self.agent.clone(),
            stop_reason: self.stop_reason.clone(),
            status: self.status,
            source: self.source.clone(),
            labels: self.labels.clone(),
            since: self.since,
            before: None,
            limit: None,
        }
    }
}

fn parse_status(text: &str) -> Result<RunStatus, String> {
    text.parse()
        .map_err(|e: tapedeck_trace::TraceError| e.to_string())
}

/// `key=value`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!(
            "`{text}` is not a label: use KEY=VALUE, e.g. model=gpt-4.1"
        )),
    }
}

/// Runs `work(store, i)` for every `i` in `0..len` on `jobs` threads, each with its own
/// connection to the store at `path` (`Err` if it could not open it), ticking `bar` after each;
/// returns the results in index order.
pub(crate) fn on_workers<R: Send>(
    path: &Path,
    len: usize,
    jobs: u32,
    bar: &indicatif::ProgressBar,
    work: impl Fn(&Result<Store, StoreError>, usize) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(len));
    std::thread::scope(|scope| {
        for _ in 0..(jobs as usize).min(len) {
            scope.spawn(|| {
                let store = Store::open(path);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= len {
                        break;
                    }
                    let result = work(&store, i);
                    done.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((i, result));
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Loads an agent version that is to run: it must name a model; its warnings are shown.
pub(crate) fn load_runnable_agent(path: &Path) -> anyhow::Result<tapedeck_agent::LoadedConfig> {
    let config = tapedeck_agent::LoadedConfig::load(path)?;
    config.model()?;
    for warning in &config.warnings {
        crate::render::warning(&format!("{}: {warning}", path.display()));
    }
    Ok(config)
}

/// Checks that the program of a client or server command can be run — a path to an executable
/// file, or a name found on `PATH` — before anything is recorded, so a typo is an input error
/// (exit 2) rather than a recorded run that failed.
///
/// `start` says what failing to start it is: "run" (`cannot run `X``), "start the MCP server".
pub(crate) fn check_program(command: &[String], start: &str) -> anyhow::Result<()> {
    let Some(program) = command.first() else {
        anyhow::bail!("no command to run: pass it after `--`");
    };
    let found = if program.contains('/') {
        is_executable(Path::new(program))
    } else {
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
        })
    };
    if found {
        Ok(())
    } else if program.contains('/') {
        anyhow::bail!("cannot {start} `{program}`: no such executable file")
    } else {
        anyhow::bail!("cannot {start} `{program}`: no such command on PATH")
    }
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}
