//! The guarded agent loop: an agent version ([`LoadedConfig`]) runs against a model backend
//! ([`ModelBackend`]) and tool backends ([`ToolBackend`]) behind a default-deny gateway, within
//! budgets, and every decision, observation and stop reason is recorded ([`Agent::run`]).
//!
//! Where an event is born: [`runtime`] asks the model and records `llm_request` /
//! `llm_retry` / `llm_response`; the [`gateway`] decides each tool call and records
//! `policy_decision`; the runtime records `tool_call`, `tool_result`, `budget_exceeded` and
//! `run_finished`.

#![warn(missing_docs)]

pub mod approvals;
pub mod config;
mod error;
pub mod gateway;
pub mod message;
pub mod model;
pub mod runtime;
pub mod tool;

pub use config::{AgentConfig, LoadedConfig};
pub use error::AgentError;
pub use message::{
    FinishReason, MatchingForm, Message, ModelRequest, ModelResponse, ToolCallRequest, ToolSpec,
};
pub use model::{ModelBackend, ModelError};
pub use runtime::{Agent, CancelToken, RunOutcome};
pub use tapedeck_trace::{EventSink, SinkError};
pub use tool::{Intercepted, ToolBackend, ToolFailure, ToolInterceptor};

/// The approver a config asks for: its approvals file, else whoever `ask` gives
/// ([`approvals::nobody`]: every write denied).
pub fn approvals_for(
    config: &LoadedConfig,
    ask: approvals::Ask,
) -> Result<Box<dyn approvals::Approver>, AgentError> {
    let file = config
        .config
        .writes
        .approvals_file
        .as_ref()
        .map(|f| config.resolve_path(f));
    approvals::source(file, ask)
}
