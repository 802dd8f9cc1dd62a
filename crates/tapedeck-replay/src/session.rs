//! A command replayed in a session (`tapedeck replay RUN … -- CMD`, `golden check` of a
//! command suite): the proxy that serves it ([`replay_proxy`]: the model from the recording or
//! live, [`ModelSource`]), its tools answered from the recording ([`SessionTools`], the same
//! matching and miss policy as [`RecordedTools`] gives the runtime), and its trajectory checked
//! against the recorded one ([`session_divergence`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tapedeck_agent::config::ToolKind;
use tapedeck_agent::{Intercepted, ToolCallRequest, ToolInterceptor};
use tapedeck_proxy::http::{self, Backend, Pricing, Proxy, Upstreams};
use tapedeck_proxy::redact::Redactor;
use tapedeck_proxy::session::{Action, Call, Kind, McpRecording, ToolAnswers, ToolError, Tools};
use tapedeck_store::{Store, Writer};
use tapedeck_trace::{ContentHash, Origin, Run, RunId, Source};

use crate::recording::RecordedCall;
use crate::{Divergence, MissPolicy, RecordedTools, ReplayError, divergence};

/// Answers a session's tool calls from a recording.
pub struct SessionTools(RecordedTools);

impl SessionTools {
    /// Serves `calls` (a [`crate::Recording`]'s) with the given miss policy.
    pub fn new(
        calls: Vec<RecordedCall>,
        on_miss: MissPolicy,
        live_allow: HashSet<String>,
        match_position: bool,
    ) -> Self {
        Self(RecordedTools::new(
            calls,
            on_miss,
            live_allow,
            match_position,
        ))
    }
}

impl ToolAnswers for SessionTools {
    fn answer(&mut self, step: u64, call: &Call) -> Action {
        let kind = match call.kind {
            Kind::Read => ToolKind::Read,
            Kind::Write => ToolKind::Write,
            Kind::Expensive => ToolKind::Expensive,
        };
        let request = ToolCallRequest {
            id: String::new(),
            name: call.tool.clone(),
            arguments: call.args.clone(),
        };
        match self.0.intercept(step, &request, kind) {
            // The matcher lets only a live-allowed read tool through (the session gives the
            // call its token).
            None if kind == ToolKind::Read => Action::Run {
                call: String::new(),
            },
            None => Action::Miss {
                message: format!(
                    "`{}` is not a read tool: it never runs in a replay",
                    call.tool
                ),
            },
            Some(Intercepted::Answer { result, origin }) => match result {
                Ok(result) => Action::Return {
                    result,
                    origin: match origin {
                        Origin::Reused => "reused",
                        _ => "recorded",
                    }
                    .to_owned(),
                },
                Err(failure) => Action::Raise {
                    error: ToolError::from_recorded(&failure.to_string()),
                },
            },
            Some(Intercepted::Miss(message)) => Action::Miss { message },
        }
    }
}

/// [`SessionTools`] that let a read tool the recording has no answer for run (new episodes).
struct NewEpisodes(SessionTools);

impl ToolAnswers for NewEpisodes {
    fn answer(&mut self, step: u64, call: &Call) -> Action {
        match self.0.answer(step, call) {
            Action::Miss { .. } if call.kind == Kind::Read => Action::Run {
                call: String::new(),
            },
            action => action,
        }
    }
}

/// Where the replay `replayed` of a command first left the trajectory of its `parent`, if it
/// did.
pub fn session_divergence(
    store: &Store,
    parent: &RunId,
    replayed: &RunId,
) -> Result<Option<Divergence>, ReplayError> {
    let expected = divergence::moves_with(&store.events(parent)?, |h| {
        store.blob(h, parent).map_err(ReplayError::from)
    })?;
    let actual = divergence::moves_with(&store.events(replayed)?, |h| {
        store.blob(h, replayed).map_err(ReplayError::from)
    })?;
    Ok(divergence::first_divergence(&expected, &actual))
}

/// Where a command's replay gets its model's answers.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// The recording (exact): every request must be a recorded one.
    Recorded,
    /// The upstreams (a new model or prompt).
    Live(Upstreams),
    /// Model calls `1..=through_step` from the recording, the rest from the upstreams.
    Fork {
        /// The last model call served from the recording.
        through_step: u64,
        /// Where the later calls go.
        upstreams: Upstreams,
    },
    /// The recording for every request it holds, the upstreams for the others; likewise a read
    /// tool the recording has no answer for runs (new episodes). A write tool never runs.
    Episodes(Upstreams),
}

impl ModelSource {
    /// The replay's mode as its run records it: `proxy` (exact), `live-model`, `fork@K`,
    /// `new-episodes`.
    pub fn mode(&self) -> String {
        match self {
            Self::Recorded => "proxy".to_owned(),
            Self::Live(_) => "live-model".to_owned(),
            Self::Fork { through_step, .. } => format!("fork@{through_step}"),
            Self::Episodes(_) => "new-episodes".to_owned(),
        }
    }
}

/// How a command is replayed.
pub struct CommandReplay {
    /// Where the model's answers come from.
    pub model: ModelSource,
    /// What a tool call the recording has no answer for does.
    pub on_miss: MissPolicy,
    /// Read tools that may run live on a miss.
    pub live_allow: HashSet<String>,
    /// Also match a tool call to the recorded call of the same tool at the same position.
    pub match_position: bool,
    /// Patterns replaced in every string of a request before matching it (exact replays).
    pub ignore: Vec<regex::Regex>,
    /// The redaction the run was recorded with.
    pub redactor: Redactor,
    /// Prices for live model calls.
    pub pricing: Pricing,
}

/// The proxy that replays `parent` (a run of `tapedeck record -- CMD`) for its command run
/// again, with the replay's run started (parent, mode, task, suite, the recorded agent's name;
/// `input` as given): serve it with [`http::run_child`].
pub fn replay_proxy(
    store: &Store,
    writer: &Writer,
    parent: &Run,
    options: CommandReplay,
    input: String,
) -> Result<Arc<Proxy>, ReplayError> {
    if parent.source != Source::Proxy {
        return Err(ReplayError::Unreplayable {
            run: parent.id.short(),
            reason: format!(
                "it was recorded by the {}, not by `tapedeck record -- CMD`",
                parent.source
            ),
        });
    }
    let events = store.events(&parent.id)?;
    let blob = |hash: &ContentHash| store.blob(hash, &parent.id);
    let recording = http::Recording::from_events(&events, blob, options.ignore)?;
    let mcp = McpRecording::from_events(&events, blob)?;
    let calls = crate::Recording::load(store, &parent.id)?.calls;
    let answers = SessionTools::new(
        calls,
        options.on_miss,
        options.live_allow,
        options.match_position,
    );
    let client = || {
        http::client()
            .map_err(|e| ReplayError::Options(format!("cannot set up the HTTP client: {e}")))
    };
    let mode = options.model.mode();
    let live = !matches!(options.model, ModelSource::Recorded);
    let episodes = matches!(options.model, ModelSource::Episodes(_));
    let backend = match options.model {
        ModelSource::Recorded => Backend::Replay(Mutex::new(recording)),
        ModelSource::Live(upstreams) => Backend::Live {
            client: client()?,
            upstreams,
        },
        ModelSource::Fork {
            through_step,
            upstreams,
        } => Backend::Fork {
            recording: Mutex::new(recording),
            through_step,
            client: client()?,
            upstreams,
        },
        ModelSource::Episodes(upstreams) => Backend::Episodes {
            recording: Mutex::new(recording),
            client: client()?,
            upstreams,
        },
    };
    let mut run = Run::new(Source::Proxy);
    run.parent = Some(parent.id);
    run.mode = Some(mode);
    run.input = Some(options.redactor.text(&input));
    run.task.clone_from(&parent.task);
    run.suite.clone_from(&parent.suite);
    if !live {
        // Served calls keep their recorded cost: when that was unknown, so is the replay's,
        // even if it missed before serving any.
        run.totals.cost_usd = parent.totals.cost_usd.map(|_| 0.0);
    }
    let recorder = writer.start_run(run)?;
    let answers: Box<dyn ToolAnswers> = if episodes {
        Box::new(NewEpisodes(answers))
    } else {
        Box::new(answers)
    };
    let proxy = Proxy::new(backend, options.redactor, options.pricing, recorder)
        .with_tools(Tools::Replay { answers, mcp });
    // The replay is a run of the recorded agent: its fingerprint says whether it sent the same.
    if let Some(agent) = &parent.agent {
        proxy.name_agent(&agent.name);
    }
    Ok(proxy)
}
