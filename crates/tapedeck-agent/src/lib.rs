//! The guarded agent loop: an agent version ([`LoadedConfig`]) runs against a model backend
//! ([`ModelBackend`]) and tool backends ([`ToolBackend`]) behind a default-deny gateway, within
//! budgets, and every decision, observation and stop reason is recorded ([`Agent::run`]).
//!
//! Where an event is born: [`runtime`] asks the model and records `llm_request` /
//! `llm_retry` / `llm_response`; the [`gateway`] decides each tool call and records
//! `policy_decision`; the runtime records `tool_call`, `tool_result`, `budget_exceeded` and
//! `run_finished`.

//!
//! ```
//! use tapedeck_agent::approvals::nobody;
//! use tapedeck_agent::{Agent, LoadedConfig};
//! use tapedeck_trace::{NullSink, StopReason};
//!
//! // An agent version with a scripted model and a mock tool: no network, no API key.
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("helper.yaml"), r#"
//! name: helper
//! model: {provider: scripted, name: demo-model, script: helper.script.yaml}
//! tools:
//!   allow: [kb.read]
//!   defs:
//!     - name: kb.read
//!       kind: read
//!       description: Read an article.
//!       input_schema: {type: object, properties: {article: {type: string}}, required: [article]}
//!       builtin: mock
//!       mock: [{output: {body: "Refunds take 5 days."}}]
//! "#)?;
//! std::fs::write(dir.path().join("helper.script.yaml"), r#"
//! rules:
//!   - when: {step: 1}
//!     respond: {tool_calls: [{name: kb.read, arguments: {article: refunds}}]}
//!   - respond: {content: "Refunds take 5 days."}
//! "#)?;
//! let config = LoadedConfig::load(&dir.path().join("helper.yaml"))?;
//! // Writes would need an approver: there is nobody to ask here.
//! let mut agent = Agent::from_config(config, nobody)?;
//! let outcome = agent.run("How long do refunds take?", &mut NullSink::default())?;
//! assert_eq!(outcome.stop_reason, StopReason::Ok);
//! assert_eq!(outcome.answer.as_deref(), Some("Refunds take 5 days."));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
