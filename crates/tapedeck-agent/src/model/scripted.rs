//! Placeholder, replaced by the real backend.

use std::time::Instant;

use serde_json::Value;

use crate::model::{ModelBackend, ModelError};
use crate::{AgentError, ModelRequest, ModelResponse};

/// Placeholder.
pub struct Scripted;

impl Scripted {
    /// Placeholder.
    pub fn new(_script: &Value) -> Result<Self, AgentError> {
        Err(AgentError::Model("not built yet".into()))
    }
}

impl ModelBackend for Scripted {
    fn provider(&self) -> &'static str {
        "scripted"
    }

    fn complete(&mut self, _r: &ModelRequest, _d: Instant) -> Result<ModelResponse, ModelError> {
        Err(ModelError::Script("not built yet".into()))
    }
}
