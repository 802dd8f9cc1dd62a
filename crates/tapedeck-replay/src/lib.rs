//! The replayer: reruns a recorded run with its model responses and tool outputs served from
//! the recording ([`replay`]).
//!
//! - *Exact* (the incident case): the recorded agent version, the recorded model responses
//!   and the recorded tool outputs — offline, no API key, no tool process — and the replayed
//!   trajectory is checked against the recorded one ([`Divergence`]).
//! - *Tools only* (the CI case): a new agent version runs with its own model, and every tool
//!   call is answered from the recording ([`serve::RecordedTools`]).
//! - *Fork at K*: steps `1..=K` from the recording, then the agent (the recorded version or a
//!   new one) goes on live.
//!
//! Every replay is itself a run, recorded with its parent and mode, so it can be diffed.
//!
//! An agent written as code is replayed as a command in a session ([`session`]): its tools get
//! the same answers from the recording; [`tapes`] gives a long-lived proxy one such session at
//! a time, each recorded to or replayed from a tape of its own (the pytest plugin's).

//!
//! ```
//! use tapedeck_replay::{Options, replay};
//! use tapedeck_store::{ImportOutcome, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("tapedeck.db"))?;
//! let tape = include_str!(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../../golden/support/tapes/password-reset/1.jsonl"
//! ));
//! let ImportOutcome::Imported { id, .. } = store.import_tape(&mut tape.as_bytes())? else {
//!     unreachable!("a fresh store has no runs");
//! };
//! // Offline: the recorded model answers and tool outputs are served back.
//! let report = replay(&store, &store.writer()?, &id, &Options::exact())?;
//! assert!(report.divergence.is_none());
//! assert_eq!(report.run.stop_reason, report.parent.stop_reason);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod divergence;
pub mod recording;
pub mod serve;
pub mod session;
pub mod tapes;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;
use tapedeck_agent::EventSink;
use tapedeck_agent::approvals::Ask;
use tapedeck_agent::config::{LoadedConfig, ToolKind};
use tapedeck_agent::tool::ToolSet;
use tapedeck_agent::{Agent, AgentError, RunOutcome};
use tapedeck_store::{Store, StoreError, Writer};
use tapedeck_trace::{
    ContentHash, Event, EventData, Run, RunFinished, RunId, SinkError, Timestamp,
};

pub use divergence::{Divergence, Move};
pub use recording::Recording;
pub use serve::{MissPolicy, RecordedApprover, RecordedModel, RecordedTools};

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store failed (unknown run, missing blob, …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The agent version could not be set up.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// A proxy run's recording cannot be read back.
    #[error(transparent)]
    Recording(#[from] tapedeck_proxy::http::RecordingError),
    /// The run cannot be replayed this way.
    #[error("run {run} cannot be replayed: {reason}")]
    Unreplayable {
        /// The run's short id.
        run: String,
        /// Why.
        reason: String,
    },
    /// The options contradict each other.
    #[error("{0}")]
    Options(String),
    /// `--strict` and the recording is stale for this agent version.
    #[error("the recording of run {run} is stale for this agent version: {}; record it again", changes.join("; "))]
    Stale {
        /// The run's short id.
        run: String,
        /// What changed.
        changes: Vec<String>,
    },
}

impl ReplayError {
    /// The store error inside, if the store is what failed (while reading the parent or writing
    /// the replay), not the input.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) | Self::Recording(tapedeck_proxy::http::RecordingError::Store(e)) => {
                Some(e)
            }
            Self::Agent(AgentError::Record(e)) => e.downcast_ref(),
            _ => None,
        }
    }
}

/// Which replay.
#[derive(Clone, Debug)]
pub enum Mode {
    /// The recorded version, model and tools, checked move by move.
    Exact,
    /// A new version with its own model; tools from the recording.
    ToolsOnly(LoadedConfig),
    /// Steps `1..=k` from the recording, then the agent (the recorded version, or the given
    /// one) goes on live.
    Fork {
        /// The last recorded step served.
        k: u64,
        /// The version that goes on; `None`: the recorded one.
        agent: Option<LoadedConfig>,
    },
}

impl Mode {
    /// The mode as recorded on the replay run: `exact`, `tools-only`, `fork@K`.
    pub fn label(&self) -> String {
        match self {
            Self::Exact => "exact".to_owned(),
            Self::ToolsOnly(_) => "tools-only".to_owned(),
            Self::Fork { k, .. } => format!("fork@{k}"),
        }
    }
}

/// How to replay.
#[derive(Clone, Debug)]
pub struct Options {
    /// The mode.
    pub mode: Mode,
    /// What to do with a tool call the recording has no answer for.
    pub on_miss: MissPolicy,
    /// Read tools that may run live on a miss (`--on-miss live`).
    pub live_allow: Vec<String>,
    /// Also match a tool call to the recorded call of the same tool at the same position.
    pub match_position: bool,
    /// Refuse a stale recording instead of warning.
    pub strict: bool,
    /// Where relative paths of the recorded agent version resolve (its tools never run in an
    /// exact replay; a fork may run them).
    pub base_dir: PathBuf,
    /// Who answers a fork's live writes when the agent's config names no approvals file
    /// (default: nobody, every such write rejected).
    pub ask: Ask,
}

impl Options {
    /// An exact replay with the defaults.
    pub fn exact() -> Self {
        Self {
            mode: Mode::Exact,
            on_miss: MissPolicy::Error,
            live_allow: Vec::new(),
            match_position: false,
            strict: false,
            base_dir: PathBuf::from("."),
            ask: tapedeck_agent::approvals::nobody,
        }
    }

    /// A tools-only replay with agent version `config` (its own model; every tool call
    /// answered from the recording, a miss an error), relative paths from its folder.
    pub fn tools_only(config: LoadedConfig) -> Self {
        Self {
            base_dir: config.base_dir(),
            mode: Mode::ToolsOnly(config),
            ..Self::exact()
        }
    }
}

/// What a replay did.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    /// The recorded run.
    pub parent: Run,
    /// The replay, as recorded.
    pub run: Run,
    /// `exact`, `tools-only` or `fork@K`.
    pub mode: String,
    /// Where the replay first left the recorded trajectory, if it did.
    pub divergence: Option<Divergence>,
    /// How the recording is stale for the replaying version (tools whose schemas changed, a
    /// different fingerprint); empty when it is not.
    pub stale: Vec<String>,
    /// The replay's stop reason and answer.
    #[serde(skip)]
    pub outcome: Option<RunOutcome>,
}

/// Replays run `id` of `store`, recording the replay through `writer`.
pub fn replay(
    store: &Store,
    writer: &Writer,
    id: &RunId,
    options: &Options,
) -> Result<ReplayReport, ReplayError> {
    let mut recording = Recording::load(store, id)?;
    if recording.is_proxy_run() {
        return Err(ReplayError::Unreplayable {
            run: id.short(),
            reason: match recording.run.source {
                tapedeck_trace::Source::Mcp => format!(
                    "it was recorded by the MCP proxy, not the runtime: replay it with `tapedeck mcp replay {}` as the client's server command",
                    id.short()
                ),
                _ => format!(
                    "it was recorded by the HTTP proxy, not the runtime: replay it by running its client again, `tapedeck replay {} -- CMD…`",
                    id.short()
                ),
            },
        });
    }
    let recorded_agent = recording.agent(options.base_dir.clone())?;
    let live_allow: HashSet<String> = options.live_allow.iter().cloned().collect();
    let config = match &options.mode {
        Mode::Exact => recorded_agent.clone(),
        Mode::ToolsOnly(agent) => agent.clone(),
        Mode::Fork { agent, .. } => agent.clone().unwrap_or_else(|| recorded_agent.clone()),
    };
    check_live_allow(&config, &live_allow)?;
    // A repetition's scripted seed is a parameter of the recorded run (its `repeat` label),
    // not of the agent version: a live model gets the seed the recording had.
    let seed_offset = tapedeck_agent::model::seed_offset(&recording.run.labels);
    let (model, through_step): (Box<dyn tapedeck_agent::ModelBackend>, u64) = match &options.mode {
        Mode::Exact => (
            Box::new(RecordedModel::exact(std::mem::take(&mut recording.steps))),
            u64::MAX,
        ),
        Mode::ToolsOnly(_) => (
            tapedeck_agent::model::from_config_seeded(&config, seed_offset)?,
            u64::MAX,
        ),
        Mode::Fork { k, .. } => {
            let live = tapedeck_agent::model::from_config_seeded(&config, seed_offset)?;
            let steps = std::mem::take(&mut recording.steps);
            (Box::new(RecordedModel::fork(steps, *k, live)), *k)
        }
    };
    // A fork's steps after K run its tools; otherwise no tool runs, unless `--on-miss live`
    // allows a read tool to.
    let tools = if matches!(options.mode, Mode::Fork { .. }) || !live_allow.is_empty() {
        ToolSet::from_config(&config)?
    } else {
        ToolSet::default()
    };
    let stale = staleness(&recorded_agent, &config, &recording);
    if options.strict && !stale.is_empty() {
        return Err(ReplayError::Stale {
            run: id.short(),
            changes: stale,
        });
    }
    let approver = match &options.mode {
        // A fork's steps after K run live: their writes are asked about as the agent's own
        // config says, never approved by a recorded answer.
        Mode::Fork { k, .. } => Box::new(
            RecordedApprover::new(
                recording
                    .approvals
                    .iter()
                    .filter(|a| a.step <= *k)
                    .cloned()
                    .collect(),
            )
            .otherwise(match tapedeck_agent::approvals_for(&config, options.ask) {
                Ok(approver) => approver,
                // The fork may make no write at all: only a write it makes is refused.
                Err(e) => Box::new(Refuse(format!("replay: no approver ({e})"))),
            }),
        ),
        _ => Box::new(RecordedApprover::new(std::mem::take(
            &mut recording.approvals,
        ))),
    };
    let mut agent = Agent::new(config, model, tools, approver);
    // What the replay serves moves out of the recording; its events and blobs stay, for the
    // divergence check.
    let interceptor = RecordedTools::new(
        std::mem::take(&mut recording.calls),
        options.on_miss,
        live_allow,
        options.match_position,
    )
    .through_step(through_step);
    agent.set_interceptor(Box::new(interceptor));
    let mut run = agent.new_run(recording.run.input.as_deref().unwrap_or_default());
    run.parent = Some(recording.run.id);
    run.mode = Some(options.mode.label());
    run.suite = recording.run.suite.clone();
    run.task = recording.run.task.clone();
    run.labels = recording.run.labels.clone();
    // Run as `Agent::run_recorded` does, keeping the replay's events as they are recorded:
    // the divergence check then reads them from memory, and their blobs from the recording's
    // (a blob the recording does not have, from the store).
    let input = run.input.clone().unwrap_or_default();
    let mut recorder = writer.start_run(run)?;
    let mut tee = Tee::new(&mut recorder);
    let outcome = agent.run(&input, &mut tee)?;
    let mut events = tee.events;
    let run = recorder.end(outcome.clone().into())?;
    events.push(Event {
        seq: events.last().map_or(1, |e| e.seq + 1),
        at: run.ended_at.unwrap_or(run.started_at),
        data: EventData::RunFinished(RunFinished {
            status: run.status,
            stop_reason: outcome.stop_reason.clone(),
            answer: outcome.answer.clone(),
            error: outcome.error.clone(),
        }),
    });
    let divergence = {
        let blob = |hash: &ContentHash, run: &RunId| match recording.blobs.get(hash) {
            Some(value) => Ok(value.clone()),
            None => store.blob(hash, run).map_err(ReplayError::from),
        };
        let expected = divergence::moves_with(&recording.events, |h| blob(h, &recording.run.id))?;
        let actual = divergence::moves_with(&events, |h| blob(h, &run.id))?;
        divergence::first_divergence(&expected, &actual)
    };
    Ok(ReplayReport {
        parent: recording.run,
        run,
        mode: options.mode.label(),
        divergence,
        stale,
        outcome: Some(outcome),
    })
}

/// `--on-miss live` may only run read tools.
fn check_live_allow(agent: &LoadedConfig, live_allow: &HashSet<String>) -> Result<(), ReplayError> {
    for tool in live_allow {
        match agent.tool(tool).map(|d| d.kind) {
            Some(ToolKind::Read) => {}
            Some(kind) => {
                return Err(ReplayError::Options(format!(
                    "--live-allow {tool}: `{tool}` is {} tool; only read tools may run live in a replay",
                    serve::a_kind(kind)
                )));
            }
            None => {
                return Err(ReplayError::Options(format!(
                    "--live-allow {tool}: the agent version defines no tool `{tool}`"
                )));
            }
        }
    }
    Ok(())
}

/// How the recording is stale for `replaying`: tools it called whose schemas changed or that
/// are no longer (or were not yet) defined. A different fingerprint alone is not staleness: a
/// tools-only replay exists to run a new version.
fn staleness(
    recorded: &LoadedConfig,
    replaying: &LoadedConfig,
    recording: &Recording,
) -> Vec<String> {
    let schemas = |c: &LoadedConfig| -> BTreeMap<String, (Value, Option<Value>)> {
        c.config
            .tools
            .defs
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    (d.input_schema.clone(), d.output_schema.clone()),
                )
            })
            .collect()
    };
    let (old, new) = (schemas(recorded), schemas(replaying));
    let called: HashSet<&str> = recording.calls.iter().map(|c| c.tool.as_str()).collect();
    let mut changes = Vec::new();
    for (tool, schema) in &new {
        match old.get(tool) {
            Some(recorded) if recorded != schema && called.contains(tool.as_str()) => {
                changes.push(format!(
                    "tool `{tool}` changed its schema since the recording"
                ));
            }
            None if called.contains(tool.as_str()) => {
                changes.push(format!(
                    "tool `{tool}` was not defined when the run was recorded"
                ));
            }
            _ => {}
        }
    }
    for tool in old.keys() {
        if !new.contains_key(tool) && called.contains(tool.as_str()) {
            changes.push(format!("tool `{tool}` is no longer defined"));
        }
    }
    changes
}

/// A sink that records into a [`Recorder`](tapedeck_store::Recorder) and keeps a copy of the
/// events it recorded.
struct Tee<'a> {
    inner: &'a mut dyn EventSink,
    events: Vec<Event>,
}

impl<'a> Tee<'a> {
    fn new(inner: &'a mut dyn EventSink) -> Self {
        Self {
            inner,
            events: Vec::new(),
        }
    }
}

impl EventSink for Tee<'_> {
    fn blob(&mut self, value: &Value) -> Result<ContentHash, SinkError> {
        self.inner.blob(value)
    }

    fn append(&mut self, data: EventData) -> Result<u64, SinkError> {
        let seq = self.inner.append(data.clone())?;
        self.events.push(Event {
            seq,
            at: Timestamp::now(),
            data,
        });
        Ok(seq)
    }
}

/// Rejects every approval request, with the rule given.
struct Refuse(String);

impl tapedeck_agent::approvals::Approver for Refuse {
    fn ask(
        &mut self,
        _tool: &str,
        _args: &Value,
        _key: Option<&str>,
    ) -> tapedeck_agent::approvals::ApprovalAnswer {
        tapedeck_agent::approvals::ApprovalAnswer {
            approved: false,
            rule: self.0.clone(),
            by: None,
        }
    }
}
