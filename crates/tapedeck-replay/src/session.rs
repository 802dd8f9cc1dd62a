//! A command replayed in a session (`tapedeck replay RUN … -- CMD`): its tools answered from
//! the recording ([`SessionTools`], the same matching and miss policy as [`RecordedTools`]
//! gives the runtime), and its trajectory checked against the recorded one
//! ([`session_divergence`]).

use std::collections::HashSet;

use tapedeck_agent::config::ToolKind;
use tapedeck_agent::{Intercepted, ToolCallRequest, ToolInterceptor};
use tapedeck_proxy::session::{Action, Call, Kind, ToolAnswers, ToolError};
use tapedeck_store::Store;
use tapedeck_trace::{Origin, RunId};

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
