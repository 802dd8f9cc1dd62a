//! Placeholder, replaced by the real backend.

use std::time::Instant;

use crate::config::ModelConfig;
use crate::model::{ModelBackend, ModelError};
use crate::{AgentError, ModelRequest, ModelResponse};

/// Placeholder.
pub struct OpenAi;

impl OpenAi {
    /// Placeholder.
    pub fn new(_model: &ModelConfig) -> Result<Self, AgentError> {
        Err(AgentError::Model("not built yet".into()))
    }
}

impl ModelBackend for OpenAi {
    fn provider(&self) -> &'static str {
        "openai"
    }

    fn complete(&mut self, _r: &ModelRequest, _d: Instant) -> Result<ModelResponse, ModelError> {
        Err(ModelError::Script("not built yet".into()))
    }
}
