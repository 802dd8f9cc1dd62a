//! Placeholder, replaced by the real backend.

use std::time::Duration;

use serde_json::Value;

use crate::AgentError;
use crate::tool::{ToolBackend, ToolFailure};

/// Placeholder.
pub struct HttpGet;

impl HttpGet {
    /// Placeholder.
    pub fn new(_allow_hosts: Vec<String>) -> Result<Self, AgentError> {
        Ok(Self)
    }
}

impl ToolBackend for HttpGet {
    fn call(&self, _args: &Value, _timeout: Duration) -> Result<Value, ToolFailure> {
        Err(ToolFailure::Unavailable("not built yet".into()))
    }
}
