//! Placeholder, replaced by the real backend.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::AgentError;
use crate::tool::{ToolBackend, ToolFailure};

/// Placeholder.
pub struct Subprocess;

impl Subprocess {
    /// Placeholder.
    pub fn new(_name: &str, _command: &[String], _dir: &Path) -> Result<Self, AgentError> {
        Ok(Self)
    }
}

impl ToolBackend for Subprocess {
    fn call(&self, _args: &Value, _timeout: Duration) -> Result<Value, ToolFailure> {
        Err(ToolFailure::Unavailable("not built yet".into()))
    }
}
