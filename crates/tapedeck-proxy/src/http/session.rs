//! The session endpoints (`crate::session`, `clients/PROTOCOL.md`) served on the proxy's own
//! port: a tool call reported by a client library or `tapedeck mcp` becomes events of the same
//! run as the LLM traffic, in order.
//!
//! A session call that answers a tool call the model asked for (same tool, same canonical
//! arguments, oldest first) is recorded as that call's `tool_result`, so the tool call is
//! counted once; a call no response asked for (an MCP call at start-up, a tool the agent calls
//! on its own) becomes a `tool_call` of its own, in the current step.

use axum::extract::Path as UrlPath;
use tapedeck_trace::{McpMessage, hash_value};

use super::*;
use crate::session::{
    Action, Call, Hello, McpNote, McpRecordingAnswer, McpRecordingRequest, Mode, Outcome, PROTOCOL,
    ToolError, Tools, Welcome,
};

/// A tool call the model asked for that no session call has answered yet.
pub(super) struct Asked {
    pub(super) call_id: String,
    pub(super) tool: String,
    pub(super) args_hash: Option<ContentHash>,
}

/// A tool call reported through the session that is running.
struct Running {
    call_id: String,
    tool: String,
}

/// The session's side of a proxy run: what tools are answered with, and the calls in flight.
pub struct ToolSession {
    tools: Tools,
    running: HashMap<String, Running>,
    next: u64,
    /// The first tool call a replay had no answer for: (tool, why).
    pub(super) miss: Option<(String, String)>,
}

impl ToolSession {
    /// A session answering tools with `tools`.
    pub fn new(tools: Tools) -> Self {
        Self {
            tools,
            running: HashMap::new(),
            next: 0,
            miss: None,
        }
    }

    fn mode(&self) -> Mode {
        match self.tools {
            Tools::Record => Mode::Record,
            Tools::Replay { .. } => Mode::Replay,
        }
    }
}

/// The answer to a request the session cannot take.
fn bad_request(status: u16, kind: &str, message: &str) -> Response {
    json_error(status, kind, message)
}

fn ok_json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => json_response(200, body),
        Err(e) => bad_request(500, "internal", &e.to_string()),
    }
}

/// The body of a request as `T`, or why not.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("tapedeck session: {e}"))
}

/// Serves `POST {PATH}/{endpoint}`.
pub(super) async fn endpoint(
    State(proxy): State<Arc<Proxy>>,
    UrlPath(endpoint): UrlPath<String>,
    body: Bytes,
) -> Response {
    let answer = match endpoint.as_str() {
        "hello" => parse::<Hello>(&body).map(|hello| proxy.hello(&hello)),
        "call" => parse::<Call>(&body).map(|call| proxy.call(call)),
        "outcome" => parse::<Outcome>(&body).map(|outcome| proxy.outcome(outcome)),
        "mcp" => parse::<McpNote>(&body).map(|note| proxy.mcp_note(&note)),
        "mcp/recording" => {
            parse::<McpRecordingRequest>(&body).map(|request| proxy.mcp_recording(&request))
        }
        other => {
            return bad_request(
                404,
                "not_found",
                &format!("tapedeck session: no endpoint `{other}` in protocol version {PROTOCOL}"),
            );
        }
    };
    answer.unwrap_or_else(|why| bad_request(400, "bad_request", &why))
}

impl Proxy {
    /// Sets how the session answers tool calls (by default it records them).
    pub fn with_tools(self: Arc<Self>, tools: Tools) -> Arc<Self> {
        *lock(&self.tools) = ToolSession::new(tools);
        self
    }

    fn hello(&self, hello: &Hello) -> Response {
        if hello.protocol != PROTOCOL {
            return bad_request(
                400,
                "protocol",
                &format!(
                    "tapedeck session: this tapedeck speaks protocol {PROTOCOL}, the client `{}` protocol {}",
                    hello.client, hello.protocol
                ),
            );
        }
        let run = lock(&self.session)
            .recorder
            .as_ref()
            .map(|r| r.id().short())
            .unwrap_or_default();
        ok_json(&Welcome {
            protocol: PROTOCOL,
            mode: lock(&self.tools).mode(),
            run,
        })
    }

    /// The id of the model's tool call this session call answers, taken off the list of calls
    /// waiting; else a new `tool_call` of its own.
    fn call_id_for(&self, call: &Call, args: Option<ContentHash>) -> String {
        let args_hash = hash_value(&call.args).ok().map(|(h, _)| h);
        let mut session = lock(&self.session);
        let asked = session
            .asked
            .iter()
            .position(|a| a.tool == call.tool && a.args_hash.is_some() && a.args_hash == args_hash);
        if let Some(i) = asked {
            let asked = session.asked.remove(i);
            // Its result is recorded here: the next request's copy of it is not recorded again.
            session.pending.remove(&asked.call_id);
            return asked.call_id;
        }
        session.session_calls += 1;
        let call_id = format!("session-{}", session.session_calls);
        let step = session.step;
        drop(session);
        if let Some(args) = args {
            self.record(|r| {
                r.append(EventData::ToolCall(ToolCall {
                    step,
                    call_id: call_id.clone(),
                    tool: self.redactor.text(&call.tool),
                    args,
                    args_hash: args,
                    idempotency_key: None,
                }))
            });
        }
        call_id
    }

    fn record_result(
        &self,
        call_id: &str,
        tool: &str,
        result: Result<&Value, &ToolError>,
        latency_ms: u64,
        origin: Origin,
    ) {
        let (output, error) = match result {
            Ok(value) => (self.blob(value), None),
            Err(e) => (None, Some(self.redactor.text(&e.recorded()))),
        };
        self.record(|r| {
            r.append(EventData::ToolResult(ToolResult {
                call_id: self.redactor.text(call_id),
                tool: self.redactor.text(tool),
                output,
                error,
                latency_ms,
                validation: Validation::NotChecked,
                origin,
                cost_usd: None,
            }))
        });
    }

    fn call(&self, call: Call) -> Response {
        let args = self.blob(&call.args);
        let step = lock(&self.session).step;
        let action = {
            let mut tools = lock(&self.tools);
            match &mut tools.tools {
                Tools::Record => None,
                Tools::Replay { answers, .. } => Some(answers.answer(step, &call)),
            }
        };
        let call_id = self.call_id_for(&call, args);
        let action = match action {
            None | Some(Action::Run { .. }) => {
                let mut tools = lock(&self.tools);
                tools.next += 1;
                let token = format!("c{}", tools.next);
                tools.running.insert(
                    token.clone(),
                    Running {
                        call_id,
                        tool: call.tool.clone(),
                    },
                );
                Action::Run { call: token }
            }
            Some(Action::Return { result, origin }) => {
                let recorded = if origin == "reused" {
                    Origin::Reused
                } else {
                    Origin::Recorded
                };
                self.record_result(&call_id, &call.tool, Ok(&result), 0, recorded);
                Action::Return { result, origin }
            }
            Some(Action::Raise { error }) => {
                self.record_result(&call_id, &call.tool, Err(&error), 0, Origin::Recorded);
                Action::Raise { error }
            }
            Some(Action::Miss { message }) => {
                let message = self.redactor.text(&message);
                lock(&self.tools)
                    .miss
                    .get_or_insert_with(|| (call.tool.clone(), message.clone()));
                Action::Miss { message }
            }
        };
        ok_json(&action)
    }

    fn outcome(&self, outcome: Outcome) -> Response {
        let Some(running) = lock(&self.tools).running.remove(&outcome.call) else {
            return bad_request(
                400,
                "bad_request",
                &format!(
                    "tapedeck session: no call `{}` is running (an outcome is sent once, with the token `call` gave)",
                    outcome.call
                ),
            );
        };
        let latency_ms = if outcome.latency_ms.is_finite() && outcome.latency_ms > 0.0 {
            outcome.latency_ms.round() as u64
        } else {
            0
        };
        let result = match (&outcome.result, &outcome.error) {
            (_, Some(error)) => Err(error),
            (Some(result), None) => Ok(result),
            (None, None) => Ok(&Value::Null),
        };
        self.record_result(
            &running.call_id,
            &running.tool,
            result,
            latency_ms,
            Origin::Live,
        );
        ok_json(&json!({}))
    }

    fn mcp_note(&self, note: &McpNote) -> Response {
        let Some(message) = self.blob(&note.message) else {
            return ok_json(&json!({}));
        };
        let method = note
            .message
            .get("method")
            .and_then(Value::as_str)
            .map(|m| self.redactor.text(m));
        self.record(|r| {
            r.append(EventData::McpMessage(McpMessage {
                direction: note.direction,
                method,
                message,
                server: Some(self.redactor.text(&note.server)),
            }))
        });
        ok_json(&json!({}))
    }

    fn mcp_recording(&self, request: &McpRecordingRequest) -> Response {
        let tools = lock(&self.tools);
        match &tools.tools {
            Tools::Replay { mcp, .. } => ok_json(&McpRecordingAnswer {
                messages: mcp.of(&request.server),
            }),
            Tools::Record => bad_request(
                400,
                "bad_request",
                "tapedeck session: this session records; there is no recording to read",
            ),
        }
    }
}
