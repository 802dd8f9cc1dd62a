//! The chat messages a scripted conversation is made of, in the provider-neutral shape the
//! fixtures use (OpenAI Chat Completions' roles, with tool arguments as JSON values).
//!
//! Each message becomes its own blob when a [`TapeBuilder`](crate::TapeBuilder) step sends it,
//! so a conversation resent on every step refers to the same blobs again.

use serde_json::{Value, json};

use tapedeck_trace::canonical_json;

use crate::Call;

/// `{"role":"system","content":…}`.
pub fn system(content: &str) -> Value {
    json!({ "role": "system", "content": content })
}

/// `{"role":"user","content":…}`.
pub fn user(content: &str) -> Value {
    json!({ "role": "user", "content": content })
}

/// An assistant message with a final (or partial) text answer.
pub fn assistant(content: &str) -> Value {
    json!({ "role": "assistant", "content": content })
}

/// An assistant message asking for tool calls: `tool_calls` lists each call's `id`, `name` and
/// `arguments`. [`TapeBuilder::llm_step`](crate::TapeBuilder::llm_step) reads the calls back
/// from here.
pub fn assistant_calls(calls: &[&Call]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|c| json!({ "id": c.id, "name": c.tool, "arguments": c.args }))
        .collect();
    json!({ "role": "assistant", "tool_calls": calls })
}

/// The tool message that feeds a call's outcome back to the model: the output's JSON text, or
/// `error: …` when the call failed.
///
/// # Panics
///
/// If the output has no canonical form (a number RFC 8785 cannot write).
pub fn tool(call: &Call, outcome: &Result<Value, String>) -> Value {
    let content = match outcome {
        // Canonical text, so the message does not depend on serde_json's map ordering.
        Ok(output) => canonical_json(output).expect("a JSON value has a canonical form"),
        Err(error) => format!("error: {error}"),
    };
    json!({ "role": "tool", "tool_call_id": call.id, "name": call.tool, "content": content })
}
