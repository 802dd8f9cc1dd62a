//! Tool backends: [`ToolBackend`] and its implementations — a [`subprocess`] (JSON arguments
//! on stdin, a JSON result on stdout), the builtin [`http_get`] limited to allowed hosts, and
//! any Rust closure (in-process). [`ToolSet`] holds a run's backends by tool name.

pub mod http_get;
pub mod mock;
pub mod subprocess;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::AgentError;
use crate::config::{Builtin, LoadedConfig};

/// A tool the runtime can call.
pub trait ToolBackend: Send + Sync {
    /// Calls the tool; it must give up after `timeout`.
    fn call(&self, args: &Value, timeout: Duration) -> Result<Value, ToolFailure>;
}

/// An in-process tool: any closure from arguments to a result or an error message.
impl<F> ToolBackend for F
where
    F: Fn(&Value) -> Result<Value, String> + Send + Sync,
{
    fn call(&self, args: &Value, _timeout: Duration) -> Result<Value, ToolFailure> {
        self(args).map_err(ToolFailure::Failed)
    }
}

/// Answers tool calls in place of their backends: how a replay serves recorded outputs.
pub trait ToolInterceptor: Send {
    /// The answer to a call the gateway allowed, or `None` to let its backend run it.
    fn intercept(
        &mut self,
        step: u64,
        call: &crate::ToolCallRequest,
        kind: crate::config::ToolKind,
    ) -> Option<Intercepted>;
}

/// What an interceptor answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Intercepted {
    /// This result, recorded with this origin.
    Answer {
        /// The output or the failure.
        result: Result<Value, ToolFailure>,
        /// `recorded`, `reused`, or `live`.
        origin: tapedeck_trace::Origin,
    },
    /// Nothing to answer with: the run stops `replay_miss:<tool>`, with this explanation.
    Miss(String),
}

/// Why a tool call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ToolFailure {
    /// The tool ran and reported a failure (a non-zero exit with its stderr, an HTTP error).
    #[error("{0}")]
    Failed(String),
    /// It did not finish in time and was stopped.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// It finished but its output is not JSON.
    #[error("output is not JSON: {0}")]
    NotJson(String),
    /// It could not be started (command not found, host not allowed).
    #[error("{0}")]
    Unavailable(String),
}

/// The backends of a run's tools, by name.
#[derive(Clone, Default)]
pub struct ToolSet {
    backends: HashMap<String, Arc<dyn ToolBackend>>,
}

impl ToolSet {
    /// The backends a config defines (subprocess and builtin tools).
    pub fn from_config(config: &LoadedConfig) -> Result<Self, AgentError> {
        let mut set = Self::default();
        for def in &config.config.tools.defs {
            let backend: Arc<dyn ToolBackend> = match (&def.command, def.builtin) {
                (Some(command), _) => Arc::new(subprocess::Subprocess::new(
                    &def.name,
                    command,
                    &config.base_dir(),
                )?),
                (None, Some(Builtin::HttpGet)) => {
                    Arc::new(http_get::HttpGet::new(def.allow_hosts.clone())?)
                }
                (None, Some(Builtin::Mock)) => Arc::new(mock::Mock::new(def.mock.clone())),
                (None, None) => continue,
            };
            set.backends.insert(def.name.clone(), backend);
        }
        Ok(set)
    }

    /// Adds (or replaces) a backend, e.g. an in-process closure.
    pub fn register(&mut self, name: impl Into<String>, backend: Arc<dyn ToolBackend>) {
        self.backends.insert(name.into(), backend);
    }

    /// The backend of a tool.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn ToolBackend>> {
        self.backends.get(name)
    }
}
