//! Model backends: [`ModelBackend`] and its implementations — OpenAI-compatible Chat
//! Completions ([`openai`]), Anthropic Messages ([`anthropic`]), both plain and streaming, and
//! the deterministic [`scripted`] model that tests and the demo run on. The HTTP backends read
//! the APIs' answers with `tapedeck-wire` (its bounds are re-exported here).

pub mod anthropic;
pub(crate) mod http;
pub mod openai;
pub mod scripted;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tapedeck_wire::WireError;

use crate::config::{LoadedConfig, Provider};
use crate::{AgentError, ModelRequest, ModelResponse};

pub use tapedeck_wire::{MAX_INDEX, MAX_RESPONSE_BYTES, MAX_TOOL_CALLS, OverLimit};

/// A model the runtime can ask.
pub trait ModelBackend: Send {
    /// `openai`, `anthropic` or `scripted`, as recorded in `llm_request`.
    fn provider(&self) -> &'static str;

    /// One attempt at a request, which must end by `deadline`. The runtime retries the errors
    /// [`ModelError::is_retryable`] says may pass, and records each retry.
    fn complete(
        &mut self,
        request: &ModelRequest,
        deadline: Instant,
    ) -> Result<ModelResponse, ModelError>;
}

/// Why a model call failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The API answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// The status.
        status: u16,
        /// The error message from the body, or the body itself (shortened).
        message: String,
        /// How long the API asked to wait (`retry-after-ms` / `retry-after`).
        retry_after: Option<Duration>,
    },
    /// No answer before the deadline.
    #[error("no answer before the deadline")]
    Timeout,
    /// The API could not be reached.
    #[error("cannot reach the model API: {0}")]
    Connect(String),
    /// The answer was not what the API documents.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// A scripted model has nothing to answer with.
    #[error("script: {0}")]
    Script(String),
    /// A replay has no recorded response for this request; the run stops `replay_miss:llm`.
    #[error("no recorded response: {0}")]
    Unrecorded(String),
    /// The answer broke a bound on what the API may send; the run stops `model_error`.
    #[error("the model API's answer is past a bound: {0}")]
    OverLimit(#[from] OverLimit),
}

impl From<WireError> for ModelError {
    /// An answer not read: an error the API reported is the status its type stands for (so
    /// overload and rate limits stay retryable), or malformed when that is unknown.
    fn from(error: WireError) -> Self {
        match error {
            WireError::Malformed(message) => Self::Malformed(message),
            WireError::Reported {
                status: Some(status),
                message,
            } => Self::Status {
                status,
                message,
                retry_after: None,
            },
            reported @ WireError::Reported { status: None, .. } => {
                Self::Malformed(reported.to_string())
            }
            WireError::OverLimit(over) => Self::OverLimit(over),
        }
    }
}

impl ModelError {
    /// Whether trying again may help: rate limits, server errors, connection failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Connect(_) => true,
            _ => false,
        }
    }

    /// The wait the API asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The run label that says which repetition of a task a run is (`repeat=3`: the third).
pub const REPEAT_LABEL: &str = "repeat";

/// How far a run's scripted seed moves: repetition N (label `repeat=N`) gets `seed + N - 1`;
/// a run without that label (or with one that is not a number from 1) keeps the seed.
pub fn seed_offset(labels: &BTreeMap<String, String>) -> u64 {
    labels
        .get(REPEAT_LABEL)
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(0, |n| n.saturating_sub(1))
}

/// The backend a config asks for. Fails when it cannot work at all (no API key, bad script).
pub fn from_config(config: &LoadedConfig) -> Result<Box<dyn ModelBackend>, AgentError> {
    from_config_seeded(config, 0)
}

/// [`from_config`] for a repetition: a scripted model's seed moved by `seed_offset` (see
/// [`seed_offset`]). The seed is a parameter of the run, not of the agent version: the config
/// and its fingerprint stay as written.
pub fn from_config_seeded(
    config: &LoadedConfig,
    seed_offset: u64,
) -> Result<Box<dyn ModelBackend>, AgentError> {
    let model = config.model()?;
    Ok(match model.provider {
        Provider::Openai => Box::new(openai::OpenAi::new(model)?),
        Provider::Anthropic => Box::new(anthropic::Anthropic::new(model)?),
        Provider::Scripted => {
            let script = config
                .script
                .as_ref()
                .ok_or_else(|| AgentError::Model("a scripted model needs `model.script`".into()))?;
            Box::new(scripted::Scripted::new(script)?.with_seed_offset(seed_offset))
        }
    })
}
