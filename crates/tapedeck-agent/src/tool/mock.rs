//! The `builtin: mock` tool: canned answers from the config, so demos, golden suites and tests
//! have deterministic tools with no process and no network.

use std::time::Duration;

use serde_json::Value;

use crate::config::MockAnswer;
use crate::tool::{ToolBackend, ToolFailure};

/// A tool that answers from a list.
pub struct Mock {
    answers: Vec<MockAnswer>,
}

impl Mock {
    /// A mock answering with the first of `answers` whose `args` the call's arguments contain.
    pub fn new(answers: Vec<MockAnswer>) -> Self {
        Self { answers }
    }
}

impl ToolBackend for Mock {
    fn call(&self, args: &Value, timeout: Duration) -> Result<Value, ToolFailure> {
        let Some(answer) = self
            .answers
            .iter()
            .find(|a| a.args.as_ref().is_none_or(|want| contains(args, want)))
        else {
            return Err(ToolFailure::Failed(format!(
                "no mock answer matches the arguments {args}"
            )));
        };
        let latency = Duration::from_millis(answer.latency_ms);
        if latency > timeout {
            std::thread::sleep(timeout);
            return Err(ToolFailure::Timeout(timeout));
        }
        std::thread::sleep(latency);
        match (&answer.output, &answer.error) {
            (_, Some(error)) => Err(ToolFailure::Failed(error.clone())),
            (Some(output), None) => Ok(output.clone()),
            (None, None) => Ok(Value::Null),
        }
    }
}

/// Whether `value` contains `want`: equal scalars and arrays, and for objects every key of
/// `want` present in `value` with a contained value.
pub fn contains(value: &Value, want: &Value) -> bool {
    match (value, want) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| have.get(k).is_some_and(|h| contains(h, w))),
        _ => value == want,
    }
}
