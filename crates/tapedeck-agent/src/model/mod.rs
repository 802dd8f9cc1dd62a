//! Model backends: [`ModelBackend`] and its implementations — OpenAI-compatible Chat
//! Completions ([`openai`]), Anthropic Messages ([`anthropic`]), both plain and streaming, and
//! the deterministic [`scripted`] model that tests and the demo run on.

pub mod anthropic;
pub(crate) mod http;
pub mod openai;
pub mod scripted;
pub mod sse;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::{LoadedConfig, Provider};
use crate::{AgentError, ModelRequest, ModelResponse};

/// The highest tool-call or content-block index a streamed answer may use: indexes are
/// positions, so a larger one is an upstream out of bounds, not a longer answer.
pub const MAX_INDEX: u64 = 1023;

/// The most tool calls one answer may hold.
pub const MAX_TOOL_CALLS: usize = 256;

/// The largest answer read (32 MiB), whole body or stream.
pub const MAX_RESPONSE_BYTES: u64 = 32 << 20;

/// An answer that broke one of the bounds on what a model API sends.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverLimit {
    /// A streamed tool call's `index` is over [`MAX_INDEX`].
    #[error("tool-call index {0} is over the limit of {MAX_INDEX}")]
    ToolCallIndex(u64),
    /// A streamed content block's `index` is over [`MAX_INDEX`].
    #[error("content-block index {0} is over the limit of {MAX_INDEX}")]
    BlockIndex(u64),
    /// The answer has more than [`MAX_TOOL_CALLS`] tool calls.
    #[error("the answer has more than the limit of {MAX_TOOL_CALLS} tool calls")]
    ToolCalls,
    /// The answer is over [`MAX_RESPONSE_BYTES`].
    #[error("the answer is over the limit of {MAX_RESPONSE_BYTES} bytes")]
    Size,
}

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
