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
pub mod store;

use std::path::Path;

use tapedeck_store::RunFilter;
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

/// Loads an agent version that is to run: it must name a model; its warnings are shown.
pub(crate) fn load_runnable_agent(path: &Path) -> anyhow::Result<tapedeck_agent::LoadedConfig> {
    let config = tapedeck_agent::LoadedConfig::load(path)?;
    config.model()?;
    for warning in &config.warnings {
        crate::render::warning(&format!("{}: {warning}", path.display()));
    }
    Ok(config)
}
