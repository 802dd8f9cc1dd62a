//! `tapedeck mcp replay`: a client answered from a recording, without the server.

use super::*;
use crate::session::McpRecorded;

/// One recorded client message (a request, or a notification) with what the server sent for
/// it.
struct Recorded {
    method: String,
    /// Canonical params without `_meta`.
    key: String,
    /// For `tools/call`: the tool and its arguments, for naming the closest call.
    tool: Option<(String, Value)>,
    /// The answer to a request; `None` for a notification.
    answer: Option<Answer>,
    /// Messages the server sent on its own while the request was open (log and progress
    /// notifications, requests to the client such as `sampling/createMessage`).
    during: Vec<Value>,
    /// Messages the server sent on its own after the answer (or after the notification),
    /// before the client's next message.
    after: Vec<Value>,
    served: bool,
}

/// A JSON-RPC answer: its `result`, or its `error` object.
pub(super) enum Answer {
    Result(Value),
    Error(Value),
}

/// A recorded MCP session, as replay serves it.
pub(super) struct Recording {
    /// Messages the server sent before the client's first message.
    prelude: Vec<Value>,
    messages: Vec<Recorded>,
}

/// The canonical form of a request's params, without the volatile `_meta`.
fn params_key(params: Option<&Value>) -> String {
    let mut params = params.cloned().unwrap_or(Value::Null);
    if let Value::Object(map) = &mut params {
        map.remove("_meta");
        if map.is_empty() {
            params = Value::Null;
        }
    }
    canonical_json(&params).unwrap_or_default()
}

/// Where a message the server sent on its own belongs: while a request is open, to the
/// latest one opened; else after the client's latest message (or the answer to it).
#[derive(Default)]
struct Placement {
    /// Open requests, as indexes into the recording, in the order they were opened.
    open: Vec<usize>,
    /// The latest answered request or notification.
    latest: Option<usize>,
}

impl Placement {
    fn place(&self, recording: &mut Recording, message: Value) {
        match (self.open.last(), self.latest) {
            (Some(&i), _) => recording.messages[i].during.push(message),
            (None, Some(i)) => recording.messages[i].after.push(message),
            (None, None) => recording.prelude.push(message),
        }
    }

    fn opened(&mut self, i: usize) {
        self.open.push(i);
    }

    fn closed(&mut self, i: usize) {
        self.open.retain(|&o| o != i);
        self.latest = Some(i);
    }
}

impl Recording {
    /// The recording of a session's messages, in the order they crossed: each client request
    /// with the server's answer and what the server sent on its own while it was open and
    /// after it. The client's answers to the server's own requests are left out: a replay gets
    /// them anew.
    pub(super) fn from_messages(messages: &[McpRecorded]) -> Self {
        let mut recording = Self {
            prelude: Vec::new(),
            messages: Vec::new(),
        };
        let mut placement = Placement::default();
        // Requests waiting for their responses, by id text: index into `recording.messages`.
        let mut waiting: HashMap<String, usize> = HashMap::new();
        for McpRecorded { direction, message } in messages {
            let method = message.get("method").and_then(Value::as_str);
            let id = message.get("id").filter(|id| !id.is_null()).map(id_text);
            match (direction, method, id) {
                (Direction::ClientToServer, Some(method), id) => {
                    let params = message.get("params");
                    let tool = (method == "tools/call").then(|| {
                        let name = params.and_then(|p| p.get("name")).and_then(Value::as_str);
                        let arguments = params.and_then(|p| p.get("arguments"));
                        (
                            name.unwrap_or_default().to_owned(),
                            arguments.cloned().unwrap_or_else(|| json!({})),
                        )
                    });
                    let i = recording.messages.len();
                    recording.messages.push(Recorded {
                        method: method.to_owned(),
                        key: params_key(params),
                        tool,
                        answer: None,
                        during: Vec::new(),
                        after: Vec::new(),
                        served: false,
                    });
                    match id {
                        Some(id) => {
                            waiting.insert(id, i);
                            placement.opened(i);
                        }
                        None => placement.closed(i),
                    }
                }
                (Direction::ServerToClient, None, Some(id)) => {
                    if let Some(i) = waiting.remove(&id) {
                        recording.messages[i].answer = Some(match message.get("result") {
                            Some(result) => Answer::Result(result.clone()),
                            None => {
                                Answer::Error(message.get("error").cloned().unwrap_or(Value::Null))
                            }
                        });
                        placement.closed(i);
                    }
                }
                (Direction::ServerToClient, Some(_), _) => {
                    placement.place(&mut recording, message.clone());
                }
                _ => {}
            }
        }
        recording
    }
}

/// The messages of an MCP run recorded by `mcp record`, in order, with its `tool_call` and
/// `tool_result` events turned back into the `tools/call` requests and responses they were
/// (the call id as the JSON-RPC id).
fn messages_of_run(store: &Store, id: &RunId) -> Result<Vec<McpRecorded>, McpError> {
    let run = store.run(id)?;
    if run.source != Source::Mcp {
        return Err(McpError::NotMcp {
            run: id.short(),
            origin: run.source,
        });
    }
    let events = store.events(id)?;
    let hashes: Vec<ContentHash> = events.iter().flat_map(|e| e.data.blob_refs()).collect();
    let blobs = store.blobs(hashes, id)?;
    let blob = |h: &ContentHash| blobs.get(h).cloned().unwrap_or(Value::Null);
    let mut messages = Vec::new();
    for event in &events {
        let (direction, message) = match &event.data {
            EventData::McpMessage(m) => (m.direction, blob(&m.message)),
            EventData::ToolCall(c) => (
                Direction::ClientToServer,
                json!({
                    "jsonrpc": "2.0",
                    "id": c.call_id,
                    "method": "tools/call",
                    "params": { "name": c.tool, "arguments": blob(&c.args) },
                }),
            ),
            EventData::ToolResult(r) => {
                let mut message = json!({ "jsonrpc": "2.0", "id": r.call_id });
                match (r.output.as_ref().map(&blob), &r.error) {
                    (Some(output), error) => match rpc_error(&output).filter(|_| error.is_some()) {
                        Some(rpc) => message["error"] = rpc.clone(),
                        None => message["result"] = output,
                    },
                    (None, error) => {
                        message["error"] = json!({
                            "code": -32603,
                            "message": error.clone().unwrap_or_default(),
                        });
                    }
                }
                (Direction::ServerToClient, message)
            }
            _ => continue,
        };
        messages.push(McpRecorded { direction, message });
    }
    Ok(messages)
}

/// Picks the recorded request answering one of the client's: the first unserved exact match
/// (method and canonical params), else the last exact match again, else (for methods other
/// than `tools/call`, whose params carry client details such as `clientInfo`) the first of the
/// same method.
fn find(recorded: &mut [Recorded], method: &str, key: &str) -> Option<usize> {
    let answerable = |r: &Recorded| r.answer.is_some() && r.method == method;
    let exact = |r: &Recorded| answerable(r) && r.key == key;
    let i = recorded
        .iter()
        .position(|r| exact(r) && !r.served)
        .or_else(|| recorded.iter().rposition(exact))
        .or_else(|| {
            (method != "tools/call")
                .then(|| recorded.iter().position(answerable))
                .flatten()
        })?;
    recorded[i].served = true;
    Some(i)
}

/// Picks the recorded notification matching one of the client's, each served once: the first
/// unserved exact match, else the first unserved of the same method.
fn find_notification(recorded: &mut [Recorded], method: &str, key: &str) -> Option<usize> {
    let unserved = |r: &Recorded| r.answer.is_none() && r.method == method && !r.served;
    let i = recorded
        .iter()
        .position(|r| unserved(r) && r.key == key)
        .or_else(|| recorded.iter().position(unserved))?;
    recorded[i].served = true;
    Some(i)
}

/// The recorded `tools/call` closest to `tool(args)`, for a miss's message.
fn closest_call(recorded: &[Recorded], tool: &str, args: &Value) -> Option<String> {
    let candidates = recorded.iter().filter_map(|r| r.tool.as_ref());
    let score = |(name, recorded_args): &(String, Value)| {
        let mut s = 0usize;
        if name == tool {
            s += 1000;
        }
        if let (Some(a), Some(b)) = (args.as_object(), recorded_args.as_object()) {
            s += a.iter().filter(|(k, v)| b.get(*k) == Some(*v)).count() * 10;
            s += a.keys().filter(|k| b.contains_key(*k)).count();
        }
        s
    };
    candidates
        .max_by_key(|c| score(c))
        .map(|(name, args)| format!("{name}({})", canonical_json(args).unwrap_or_default()))
}

/// Where a 2026-07-28 era discovery names the server (its `_meta`); some servers put
/// `serverInfo` at the top of the result instead, as `initialize` does.
const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// The newest protocol version of the handshake era: every version up to it starts with
/// `initialize`, every later one is stateless (`server/discover`, per-request `_meta`).
const LAST_HANDSHAKE_VERSION: &str = "2025-11-25";

/// An `initialize` result for a handshake-era client replaying a recording of the discovery
/// era, built from the recorded `server/discover` answer (the last one that succeeded): its
/// capabilities, server info and instructions, and a protocol version (see
/// [`handshake_version`]). `Err` says what the recording lacks.
fn initialize_from_discovery(
    recorded: &[Recorded],
    params: Option<&Value>,
) -> Result<Value, String> {
    let discovery = recorded
        .iter()
        .rev()
        .filter(|r| r.method == "server/discover")
        .find_map(|r| match &r.answer {
            Some(Answer::Result(result)) => Some(result),
            _ => None,
        })
        .ok_or("no `initialize` request and no `server/discover` answer")?;
    let lacks = |what: &str| {
        format!(
            "no `initialize` request, and the recorded `server/discover` answer has no {what} to build one from"
        )
    };
    let supported: Vec<&str> = discovery
        .get("supportedVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    let version =
        handshake_version(requested, &supported).ok_or_else(|| lacks("supportedVersions"))?;
    let capabilities = discovery
        .get("capabilities")
        .filter(|c| c.is_object())
        .ok_or_else(|| lacks("capabilities"))?;
    let server_info = discovery
        .get("serverInfo")
        .or_else(|| discovery.get("_meta")?.get(SERVER_INFO_META))
        .filter(|i| i.is_object())
        .ok_or_else(|| lacks("serverInfo"))?;
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": server_info,
    });
    if let Some(instructions) = discovery.get("instructions").filter(|i| i.is_string()) {
        result["instructions"] = instructions.clone();
    }
    Ok(result)
}

/// The protocol version an `initialize` built from a discovery answers with: the one the client
/// asked for when the recorded server lists it; for a handshake-era version it does not list,
/// the newest handshake-era version it lists, or else the client's own — a discovery lists the
/// versions spoken without a handshake, so the recording cannot say the server refused the
/// client's, and answering a stateless version to `initialize` makes every handshake-era client
/// hang up (the official SDKs do); otherwise the newest version the recorded server lists.
/// `None` when it lists none.
fn handshake_version<'a>(requested: Option<&'a str>, supported: &[&'a str]) -> Option<&'a str> {
    if supported.is_empty() {
        return None;
    }
    if let Some(requested) = requested.filter(|r| supported.contains(r)) {
        return Some(requested);
    }
    // Versions are dates (YYYY-MM-DD): their text order is their age.
    let newest_handshake = supported
        .iter()
        .copied()
        .filter(|v| *v <= LAST_HANDSHAKE_VERSION)
        .max();
    match requested.filter(|r| *r <= LAST_HANDSHAKE_VERSION) {
        Some(requested) => Some(newest_handshake.unwrap_or(requested)),
        None => supported.iter().copied().max(),
    }
}

fn response(id: &Value, answer: &Answer) -> Value {
    match answer {
        Answer::Result(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Answer::Error(error) => json!({ "jsonrpc": "2.0", "id": id, "error": error }),
    }
}

/// What replay writes to the client, in order. A request of the server's own (such as
/// `sampling/createMessage`) holds back what follows it until the client has answered it, as
/// the server it stands for did.
#[derive(Default)]
struct Outbox {
    queue: std::collections::VecDeque<Value>,
    /// The id (as text) of the server request whose answer is awaited.
    awaiting: Option<String>,
}

impl Outbox {
    fn extend(&mut self, messages: impl IntoIterator<Item = Value>) {
        self.queue.extend(messages);
    }

    /// Takes the client's answer to a server request.
    fn answered(&mut self, id: &str) {
        if self.awaiting.as_deref() == Some(id) {
            self.awaiting = None;
        }
    }

    /// Writes what may go now, telling the host of each message.
    fn flush(&mut self, host: &mut dyn ReplayHost, out: &mut impl Write) -> std::io::Result<()> {
        while self.awaiting.is_none() {
            let Some(message) = self.queue.pop_front() else {
                break;
            };
            host.observe(Direction::ServerToClient, &message);
            write_json_line(out, &message)?;
            if message.get("method").is_some()
                && let Some(id) = message.get("id").filter(|id| !id.is_null())
            {
                self.awaiting = Some(id_text(id));
            }
        }
        Ok(())
    }
}

/// Whom a replay tells what crossed, and asks for tool answers: the run it records (`mcp
/// replay`), or the session it joined (`tapedeck mcp` in a replay session), which answers
/// tool calls by its own matching and miss policy.
pub(super) trait ReplayHost {
    /// A message that crossed, either way.
    fn observe(&mut self, direction: Direction, message: &Value);

    /// The answer to the client's `tools/call` of `tool` with `arguments`, or `None` to
    /// answer it from the recording.
    fn tool_answer(&mut self, tool: &str, arguments: &Value) -> Option<ToolAnswer>;
}

/// A host's answer to a `tools/call`.
pub(super) enum ToolAnswer {
    /// What the client gets.
    Answer(Answer),
    /// No answer: the JSON-RPC error the client gets, and the call is a miss.
    Miss(Value),
}

/// `mcp replay` records its run: every message, with what replay sent marked `recorded`.
impl ReplayHost for Session {
    fn observe(&mut self, direction: Direction, message: &Value) {
        Session::observe(self, direction, message, Origin::Recorded);
    }

    fn tool_answer(&mut self, _tool: &str, _arguments: &Value) -> Option<ToolAnswer> {
        None
    }
}

/// Replays the MCP run `id` to the client on `client_in`/`client_out` without a server, and
/// records the replay as a run (parent `id`, mode `mcp`). Ends when the client closes its end.
///
/// The messages the server sent on its own are sent again where they were: before the client's
/// first message, while a request is open (before its answer), or after an answer or a
/// notification.
pub fn replay(
    store: &Store,
    writer: &Writer,
    id: &RunId,
    client_in: impl Read,
    mut client_out: impl Write,
) -> Result<ReplayOutcome, McpError> {
    let recording = Recording::from_messages(&messages_of_run(store, id)?);
    let parent = store.run(id)?;
    let mut run = mcp_run();
    run.parent = Some(*id);
    run.mode = Some(REPLAY_MODE.to_owned());
    run.task.clone_from(&parent.task);
    run.suite.clone_from(&parent.suite);
    let mut session = Session::new(writer.start_run(run)?);
    let mut misses = Vec::new();
    // A client that goes away (closes its end, stops reading) ends the run, which is then
    // recorded `cancelled` with what it had done, instead of being left `incomplete`.
    let gone = serve(
        &mut session,
        &mut misses,
        recording,
        client_in,
        &mut client_out,
    )
    .err();
    let (stop_reason, error) = match (&gone, misses.first()) {
        (Some(e), _) => (
            StopReason::Cancelled,
            Some(format!("the client went away: {e}")),
        ),
        (None, None) => (StopReason::Ok, None),
        (None, Some(miss)) => (
            StopReason::ReplayMissTool(
                miss.strip_prefix("tools/call ")
                    .unwrap_or(miss.as_str())
                    .to_owned(),
            ),
            Some(format!("no recorded answer for: {}", misses.join(", "))),
        ),
    };
    let run = session
        .end(Ending {
            stop_reason,
            answer: None,
            error,
        })?
        .ok_or_else(|| McpError::Io(std::io::Error::other("the run ended twice")))?;
    Ok(ReplayOutcome { run, misses })
}

/// A host that records nothing and leaves every answer to the recording.
struct Unrecorded;

impl ReplayHost for Unrecorded {
    fn observe(&mut self, _direction: Direction, _message: &Value) {}

    fn tool_answer(&mut self, _tool: &str, _arguments: &Value) -> Option<ToolAnswer> {
        None
    }
}

/// Answers the client on `client_in`/`client_out` from recorded `messages` (in the order they
/// crossed) as [`replay`] does, but records nothing; returns the requests that had no answer.
/// Everything a client's lines meet in a replay, without a store to set up: what the fuzz
/// target of MCP lines drives.
pub fn serve_messages(
    messages: &[McpRecorded],
    client_in: impl Read,
    client_out: impl Write,
) -> std::io::Result<Vec<String>> {
    let mut misses = Vec::new();
    serve(
        &mut Unrecorded,
        &mut misses,
        Recording::from_messages(messages),
        client_in,
        client_out,
    )?;
    Ok(misses)
}

/// The tool and arguments of a `tools/call` request's params.
pub(super) fn tool_and_arguments(params: Option<&Value>) -> (&str, Value) {
    let tool = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let arguments = params
        .and_then(|p| p.get("arguments"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    (tool, arguments)
}

/// Answers the client from `recording` until it closes its end, telling `host` what crossed
/// and noting in `misses` the requests that had no answer (method, and tool for
/// `tools/call`); an I/O error means the client went away.
pub(super) fn serve(
    host: &mut dyn ReplayHost,
    misses: &mut Vec<String>,
    recording: Recording,
    client_in: impl Read,
    mut client_out: impl Write,
) -> std::io::Result<()> {
    let Recording {
        prelude,
        messages: mut recorded,
    } = recording;
    let mut outbox = Outbox::default();
    outbox.extend(prelude);
    outbox.flush(host, &mut client_out)?;
    let mut reader = BufReader::new(client_in);
    while let Some(line) = read_line(&mut reader)? {
        let Some(message) = parse_line(&line) else {
            if !line.iter().all(u8::is_ascii_whitespace) {
                write_json_line(
                    &mut client_out,
                    &json!({
                        "jsonrpc": "2.0",
                        "id": null,
                        "error": { "code": -32700, "message": "Parse error" },
                    }),
                )?;
            }
            continue;
        };
        host.observe(Direction::ClientToServer, &message);
        let method = message.get("method").and_then(Value::as_str);
        let request_id = message.get("id").filter(|id| !id.is_null());
        let key = params_key(message.get("params"));
        let (method, request_id) = match (method, request_id) {
            (Some(method), Some(request_id)) => (method, request_id),
            (Some(method), None) => {
                if let Some(i) = find_notification(&mut recorded, method, &key) {
                    outbox.extend(recorded[i].after.clone());
                }
                outbox.flush(host, &mut client_out)?;
                continue;
            }
            (None, Some(answer_id)) => {
                outbox.answered(&id_text(answer_id));
                outbox.flush(host, &mut client_out)?;
                continue;
            }
            (None, None) => continue,
        };
        let found = find(&mut recorded, method, &key).map(|i| &recorded[i]);
        let hosted = if method == "tools/call" {
            let (tool, arguments) = tool_and_arguments(message.get("params"));
            host.tool_answer(tool, &arguments)
        } else {
            None
        };
        let mut after = Vec::new();
        let answer = match (hosted, found.and_then(|r| Some((r, r.answer.as_ref()?)))) {
            (Some(ToolAnswer::Miss(error)), _) => {
                let (tool, _) = tool_and_arguments(message.get("params"));
                misses.push(format!("tools/call {tool}"));
                response(request_id, &Answer::Error(error))
            }
            // The host's answer, with what the server sent on its own around the matching
            // recorded call (its progress and logs), if there is one.
            (Some(ToolAnswer::Answer(answer)), recorded) => {
                if let Some((r, _)) = recorded {
                    outbox.extend(r.during.iter().cloned());
                    after.extend(r.after.iter().cloned());
                }
                response(request_id, &answer)
            }
            (None, Some((r, answer))) => {
                outbox.extend(r.during.iter().cloned());
                after.extend(r.after.iter().cloned());
                response(request_id, answer)
            }
            // `ping` needs no recording: its answer is always empty.
            (None, None) if method == "ping" => response(request_id, &Answer::Result(json!({}))),
            // A handshake-era client replaying a recording of the discovery era: its
            // `notifications/initialized` needs no recorded counterpart either (notifications
            // get no answer).
            (None, None) if method == "initialize" => {
                match initialize_from_discovery(&recorded, message.get("params")) {
                    Ok(result) => response(request_id, &Answer::Result(result)),
                    Err(lacking) => {
                        misses.push(method.to_owned());
                        response(
                            request_id,
                            &Answer::Error(json!({
                                "code": -32601,
                                "message": format!("tapedeck replay: the recording has {lacking}"),
                            })),
                        )
                    }
                }
            }
            (None, None) if method == "tools/call" => {
                let (tool, args) = tool_and_arguments(message.get("params"));
                misses.push(format!("tools/call {tool}"));
                let closest = closest_call(&recorded, tool, &args);
                let said = closest.as_ref().map_or_else(
                    || "the recording has no tool calls".to_owned(),
                    |c| format!("the closest recorded call is {c}"),
                );
                let text = format!(
                    "tapedeck replay: no recorded call {tool}({}): {said}",
                    canonical_json(&args).unwrap_or_default()
                );
                response(
                    request_id,
                    &Answer::Error(json!({
                        "code": -32602,
                        "message": text,
                        "data": { "tool": tool, "closest": closest },
                    })),
                )
            }
            (None, None) => {
                misses.push(method.to_owned());
                response(
                    request_id,
                    &Answer::Error(json!({
                        "code": -32601,
                        "message": format!("tapedeck replay: the recording has no `{method}` request"),
                    })),
                )
            }
        };
        outbox.extend([answer]);
        outbox.extend(after);
        outbox.flush(host, &mut client_out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(method: &str, params: Value, answer: Value) -> Recorded {
        Recorded {
            method: method.to_owned(),
            key: params_key(Some(&params)),
            tool: (method == "tools/call").then(|| {
                (
                    params["name"].as_str().unwrap_or_default().to_owned(),
                    params["arguments"].clone(),
                )
            }),
            answer: Some(Answer::Result(answer)),
            during: Vec::new(),
            after: Vec::new(),
            served: false,
        }
    }

    #[test]
    fn serve_messages_answers_from_the_recording_and_names_the_misses() {
        let message = |direction, message| McpRecorded { direction, message };
        let recording = [
            message(
                Direction::ClientToServer,
                json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }),
            ),
            message(
                Direction::ServerToClient,
                json!({ "jsonrpc": "2.0", "id": 1, "result": { "tools": [] } }),
            ),
        ];
        let client = concat!(
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#,
            "\nnot json\n",
            r#"{"jsonrpc":"2.0","id":"b","method":"prompts/list"}"#,
            "\n",
        );
        let mut out = Vec::new();
        let misses = serve_messages(&recording, client.as_bytes(), &mut out).expect("in memory");
        assert_eq!(misses, ["prompts/list"]);
        let answers: Vec<Value> = out.split(|b| *b == b'\n').filter_map(parse_line).collect();
        assert_eq!(answers.len(), 3);
        assert_eq!(
            answers[0],
            json!({ "jsonrpc": "2.0", "id": "a", "result": { "tools": [] } })
        );
        assert_eq!(answers[1]["error"]["code"], json!(-32700));
        assert_eq!(answers[2]["id"], json!("b"));
        assert_eq!(answers[2]["error"]["code"], json!(-32601));
    }

    #[test]
    fn params_key_ignores_meta_and_key_order() {
        let a = json!({ "name": "echo", "arguments": { "b": 1, "a": 2 }, "_meta": { "x": 1 } });
        let b = json!({ "arguments": { "a": 2, "b": 1 }, "name": "echo" });
        assert_eq!(params_key(Some(&a)), params_key(Some(&b)));
        assert_eq!(params_key(Some(&json!({ "_meta": {} }))), params_key(None));
    }

    #[test]
    fn find_serves_in_order_then_reuses_the_last() {
        let mut list = vec![
            recorded(
                "initialize",
                json!({ "clientInfo": { "version": "1" } }),
                json!(1),
            ),
            recorded(
                "tools/call",
                json!({ "name": "t", "arguments": {} }),
                json!("first"),
            ),
            recorded(
                "tools/call",
                json!({ "name": "t", "arguments": {} }),
                json!("second"),
            ),
        ];
        let call = params_key(Some(&json!({ "name": "t", "arguments": {} })));
        assert_eq!(find(&mut list, "tools/call", &call), Some(1));
        assert_eq!(find(&mut list, "tools/call", &call), Some(2));
        assert_eq!(find(&mut list, "tools/call", &call), Some(2));
        // Another client's initialize still gets the recorded handshake …
        let other = params_key(Some(&json!({ "clientInfo": { "version": "2" } })));
        assert_eq!(find(&mut list, "initialize", &other), Some(0));
        // … but a tool call with other arguments is a miss.
        let miss = params_key(Some(&json!({ "name": "t", "arguments": { "x": 1 } })));
        assert_eq!(find(&mut list, "tools/call", &miss), None);
    }

    #[test]
    fn a_handshake_version_is_the_clients_unless_the_discovery_says_otherwise() {
        let modern = ["2026-07-28"];
        // Listed: the client's own.
        assert_eq!(
            handshake_version(Some("2026-07-28"), &modern),
            Some("2026-07-28")
        );
        // A handshake-era version a discovery could not list: the client's own.
        assert_eq!(
            handshake_version(Some("2025-06-18"), &modern),
            Some("2025-06-18")
        );
        // A discovery that lists handshake-era versions, not the client's: the newest of them.
        assert_eq!(
            handshake_version(
                Some("2024-11-05"),
                &["2026-07-28", "2025-06-18", "2025-03-26"]
            ),
            Some("2025-06-18")
        );
        // A version the server does not list and no handshake-era one, or none: the newest.
        assert_eq!(
            handshake_version(Some("2099-01-01"), &["2026-07-28", "2027-01-01"]),
            Some("2027-01-01")
        );
        assert_eq!(handshake_version(None, &modern), Some("2026-07-28"));
        assert_eq!(handshake_version(Some("2025-06-18"), &[]), None);
    }

    #[test]
    fn initialize_from_discovery_needs_versions_capabilities_and_server_info() {
        let discover = |result: Value| {
            let mut r = recorded("server/discover", json!({}), result);
            r.tool = None;
            vec![r]
        };
        let params = json!({ "protocolVersion": "2025-06-18" });
        let full = json!({
            "resultType": "complete",
            "supportedVersions": ["2026-07-28"],
            "capabilities": { "tools": {} },
            "instructions": "Ask for times.",
            "_meta": { SERVER_INFO_META: { "name": "time", "version": "1" } },
        });
        assert_eq!(
            initialize_from_discovery(&discover(full.clone()), Some(&params)),
            Ok(json!({
                "protocolVersion": "2025-06-18",
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "time", "version": "1" },
                "instructions": "Ask for times.",
            }))
        );
        // `serverInfo` at the top, as some servers send it.
        let mut top = full.clone();
        top["serverInfo"] = json!({ "name": "top", "version": "2" });
        let built = initialize_from_discovery(&discover(top), Some(&params));
        assert_eq!(
            built.map(|r| r["serverInfo"]["name"].clone()),
            Ok(json!("top"))
        );
        for missing in ["supportedVersions", "capabilities", "_meta"] {
            let mut lacking = full.clone();
            lacking.as_object_mut().map(|m| m.remove(missing));
            let err = initialize_from_discovery(&discover(lacking), Some(&params))
                .expect_err("a discovery that lacks a field builds nothing");
            let field = if missing == "_meta" {
                "serverInfo"
            } else {
                missing
            };
            assert!(
                err.ends_with(&format!("has no {field} to build one from")),
                "{err}"
            );
        }
        assert_eq!(
            initialize_from_discovery(&[], Some(&params)),
            Err("no `initialize` request and no `server/discover` answer".to_owned())
        );
    }

    #[test]
    fn closest_call_prefers_the_same_tool_and_arguments() {
        let list = vec![
            recorded(
                "tools/call",
                json!({ "name": "a", "arguments": { "q": 1 } }),
                json!(0),
            ),
            recorded(
                "tools/call",
                json!({ "name": "b", "arguments": { "q": 1 } }),
                json!(0),
            ),
            recorded(
                "tools/call",
                json!({ "name": "b", "arguments": { "q": 2 } }),
                json!(0),
            ),
        ];
        assert_eq!(
            closest_call(&list, "b", &json!({ "q": 2, "r": 3 })).as_deref(),
            Some("b({\"q\":2})")
        );
        assert_eq!(closest_call(&[], "b", &json!({})), None);
    }
}
