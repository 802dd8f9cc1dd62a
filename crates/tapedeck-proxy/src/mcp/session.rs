//! What an MCP session records, in either direction: [`Session`].

use super::*;

/// The recorder and the tool calls waiting for their results, shared by both directions.
pub(super) struct Session {
    recorder: Option<Recorder>,
    /// `tools/call` requests by JSON-RPC id (as text): tool name and when it was sent.
    pending: HashMap<String, (String, Instant)>,
    error: Option<StoreError>,
}

impl Session {
    pub(super) fn new(recorder: Recorder) -> Self {
        Self {
            recorder: Some(recorder),
            pending: HashMap::new(),
            error: None,
        }
    }

    /// Records one message that went `direction`; `origin` marks tool results.
    pub(super) fn observe(&mut self, direction: Direction, message: &Value, origin: Origin) {
        if let Err(e) = self.try_observe(direction, message, origin)
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }

    fn try_observe(
        &mut self,
        direction: Direction,
        message: &Value,
        origin: Origin,
    ) -> Result<(), StoreError> {
        let Some(recorder) = self.recorder.as_mut() else {
            return Ok(());
        };
        let method = message.get("method").and_then(Value::as_str);
        let id = message.get("id").filter(|id| !id.is_null()).map(id_text);
        match (direction, method, id) {
            (Direction::ClientToServer, Some("tools/call"), Some(id)) => {
                let params = message.get("params").cloned().unwrap_or(Value::Null);
                let tool = params
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let arguments = params
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let args = recorder.blob(&arguments)?;
                recorder.append(EventData::ToolCall(ToolCall {
                    step: 0,
                    call_id: id.clone(),
                    tool: tool.clone(),
                    args,
                    args_hash: args,
                    idempotency_key: None,
                }))?;
                self.pending.insert(id, (tool, Instant::now()));
            }
            (Direction::ServerToClient, None, Some(id)) if self.pending.contains_key(&id) => {
                let (tool, sent) = self
                    .pending
                    .remove(&id)
                    .unwrap_or_else(|| (String::new(), Instant::now()));
                let (output, error) = tool_outcome(message);
                let output = output.map(|o| recorder.blob(&o)).transpose()?;
                recorder.append(EventData::ToolResult(ToolResult {
                    call_id: id,
                    tool,
                    output,
                    error,
                    latency_ms: u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX),
                    validation: Validation::default(),
                    origin,
                    cost_usd: None,
                }))?;
            }
            _ => {
                let blob = recorder.blob(message)?;
                recorder.append(EventData::McpMessage(McpMessage {
                    direction,
                    method: method.map(str::to_owned),
                    message: blob,
                    server: None,
                }))?;
            }
        }
        Ok(())
    }

    /// Ends the run (once); later messages are no longer recorded. A message that could not
    /// be recorded is reported, but only after the run was ended with what it has, so it is not
    /// left `running`.
    pub(super) fn end(&mut self, ending: Ending) -> Result<Option<Run>, StoreError> {
        let ended = match self.recorder.take() {
            Some(recorder) => recorder.end(ending).map(Some),
            None => Ok(None),
        };
        match self.error.take() {
            Some(e) => Err(e),
            None => ended,
        }
    }
}

/// A `tools/call` response as (output, error): the result (with `isError` content as the
/// error), or for a JSON-RPC error `{"error": …}` and its message.
fn tool_outcome(response: &Value) -> (Option<Value>, Option<String>) {
    if let Some(result) = response.get("result") {
        let error = (result.get("isError") == Some(&Value::Bool(true))).then(|| {
            let text: Vec<&str> = result
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("text").and_then(Value::as_str))
                .collect();
            if text.is_empty() {
                "the tool reported an error".to_owned()
            } else {
                text.join("\n")
            }
        });
        return (Some(result.clone()), error);
    }
    let error = response.get("error").cloned().unwrap_or(Value::Null);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("error without a message")
        .to_owned();
    // The whole JSON-RPC error is kept as the output, so replay answers with its code and data.
    (Some(json!({ "error": error })), Some(message))
}

/// The JSON-RPC error a failed call's output holds (see [`tool_outcome`]), if it is one.
pub(super) fn rpc_error(output: &Value) -> Option<&Value> {
    let map = output.as_object()?;
    (map.len() == 1).then(|| map.get("error")).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_outcomes() {
        let ok = json!({ "id": 1, "result": { "content": [], "isError": false } });
        assert_eq!(tool_outcome(&ok).1, None);
        let failed = json!({ "id": 1, "result": {
            "content": [{ "type": "text", "text": "no such city" }], "isError": true } });
        let (output, error) = tool_outcome(&failed);
        assert!(output.is_some());
        assert_eq!(error.as_deref(), Some("no such city"));
        let error = json!({ "code": -32602, "message": "Unknown tool" });
        let rpc = json!({ "id": 1, "error": error });
        let (output, message) = tool_outcome(&rpc);
        assert_eq!(message.as_deref(), Some("Unknown tool"));
        assert_eq!(output.as_ref().and_then(rpc_error), Some(&error));
        assert_eq!(rpc_error(&failed["result"]), None);
    }
}
