//! The MCP stdio record/replay proxy.
//!
//! MCP's stdio transport is newline-delimited JSON-RPC: one message per line, no embedded
//! newlines, logging on stderr. [`record`] sits between a client (its own stdin/stdout) and a
//! spawned server: every line passes through unchanged in both directions and is recorded as a
//! run (source `mcp`): a `tools/call` request and its response become `tool_call` and
//! `tool_result`, every other message an `mcp_message`. [`replay`] answers a client from such a
//! run without starting the server: whatever request methods were recorded (`initialize` of
//! the handshake era, `server/discover` of the 2026-07-28 era, `tools/list`, `tools/call`, …),
//! matched by method and canonical params without the volatile `_meta` and ids, answered with
//! the client's own ids. Messages the server sent on its own (notifications, and requests to
//! the client such as `sampling/createMessage`) are sent again where they came: before the
//! client's first message, while a request was open, or after an answer or a notification; a
//! server request holds back what follows it until the client has answered. The replay is
//! itself recorded (parent and mode `mcp`).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_store::{Ending, Recorder, Store, StoreError, Writer};
use tapedeck_trace::{
    ContentHash, Direction, EventData, McpMessage, Origin, Run, RunId, Source, StopReason,
    ToolCall, ToolResult, Validation, canonical_json,
};

/// How long a server may take to exit after the client closed its end, before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often a recording checks whether the server exited.
const POLL: Duration = Duration::from_millis(10);

/// The mode a replayed MCP run records for itself.
pub const REPLAY_MODE: &str = "mcp";

/// What went wrong in the MCP proxy.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// No server command was given.
    #[error("no MCP server command: pass it after `--`")]
    NoCommand,
    /// The server could not be started.
    #[error("cannot start the MCP server `{command}`: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing a stream failed.
    #[error("MCP stdio: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run to replay was not recorded by the MCP proxy.
    #[error("run {run} was recorded by the {origin}, not `tapedeck mcp record`")]
    NotMcp {
        /// The run's short id.
        run: String,
        /// Where it came from.
        origin: Source,
    },
}

/// Run metadata for a recording.
#[derive(Clone, Debug, Default)]
pub struct RecordOptions {
    /// The task the run belongs to.
    pub task: Option<String>,
    /// `key=value` labels.
    pub labels: BTreeMap<String, String>,
}

/// How a recording ended.
#[derive(Debug)]
pub struct RecordOutcome {
    /// The recorded run.
    pub run: Run,
    /// The server's exit code (`None` when a signal killed it).
    pub exit_code: Option<i32>,
}

/// How a replay ended.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// The replay's own run.
    pub run: Run,
    /// The requests the recording had no answer for (method, and tool for `tools/call`).
    pub misses: Vec<String>,
}

/// The recorder and the tool calls waiting for their results, shared by both directions.
struct Session {
    recorder: Option<Recorder>,
    /// `tools/call` requests by JSON-RPC id (as text): tool name and when it was sent.
    pending: HashMap<String, (String, Instant)>,
    error: Option<StoreError>,
}

impl Session {
    fn new(recorder: Recorder) -> Self {
        Self {
            recorder: Some(recorder),
            pending: HashMap::new(),
            error: None,
        }
    }

    /// Records one message that went `direction`; `origin` marks tool results.
    fn observe(&mut self, direction: Direction, message: &Value, origin: Origin) {
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
                }))?;
            }
        }
        Ok(())
    }

    /// Ends the run (once); later messages are no longer recorded.
    fn end(&mut self, ending: Ending) -> Result<Option<Run>, StoreError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.recorder.take() {
            Some(recorder) => recorder.end(ending).map(Some),
            None => Ok(None),
        }
    }
}

/// A JSON-RPC id as text: a string as itself, a number in its JSON form.
fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
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
fn rpc_error(output: &Value) -> Option<&Value> {
    let map = output.as_object()?;
    (map.len() == 1).then(|| map.get("error")).flatten()
}

/// Reads one line (its newline included); `None` at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line)? {
        0 => Ok(None),
        _ => Ok(Some(line)),
    }
}

/// A line as a JSON-RPC message, if it is one.
fn parse_line(line: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records an MCP session: spawns `command` as the server, passes every line from `client_in`
/// to it and every line it writes to `client_out`, unchanged, and records the messages. The
/// server's stderr is inherited. Ends when the server closes its stdout (after the client
/// closed `client_in`, a well-behaved server exits).
pub fn record(
    writer: &Writer,
    command: &[String],
    options: &RecordOptions,
    client_in: impl Read + Send + 'static,
    mut client_out: impl Write,
) -> Result<RecordOutcome, McpError> {
    let (program, args) = command.split_first().ok_or(McpError::NoCommand)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| McpError::Spawn {
            command: command.join(" "),
            source,
        })?;
    let mut run = mcp_run();
    run.task.clone_from(&options.task);
    run.labels.clone_from(&options.labels);
    let recorder = match writer.start_run(run) {
        Ok(recorder) => recorder,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.into());
        }
    };
    let session = Arc::new(Mutex::new(Session::new(recorder)));
    let (Some(mut server_in), Some(server_out)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(McpError::Io(std::io::Error::other("no pipe to the server")));
    };
    let child = Arc::new(Mutex::new(child));

    // Client → server, on its own thread: the client may keep its end open after the server
    // exited, so this thread is not joined.
    {
        let session = Arc::clone(&session);
        let child = Arc::clone(&child);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(client_in);
            while let Ok(Some(line)) = read_line(&mut reader) {
                if let Some(message) = parse_line(&line) {
                    lock(&session).observe(Direction::ClientToServer, &message, Origin::Live);
                }
                if server_in
                    .write_all(&line)
                    .and_then(|()| server_in.flush())
                    .is_err()
                {
                    break;
                }
            }
            // Closing the server's stdin asks it to exit; one that does not in time is killed.
            drop(server_in);
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            loop {
                let mut child = child.lock().unwrap_or_else(PoisonError::into_inner);
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    break;
                }
                drop(child);
                std::thread::sleep(POLL);
            }
        });
    }

    // Server → client, here.
    let mut reader = BufReader::new(server_out);
    let mut client_gone = false;
    while let Some(line) = read_line(&mut reader)? {
        if let Some(message) = parse_line(&line) {
            lock(&session).observe(Direction::ServerToClient, &message, Origin::Live);
        }
        if !client_gone
            && client_out
                .write_all(&line)
                .and_then(|()| client_out.flush())
                .is_err()
        {
            client_gone = true;
        }
    }
    // The server closed its stdout: wait for it to exit (polling, so the client side can
    // still kill a server that lingers after the client closed its end).
    let status = loop {
        if let Some(status) = child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_wait()?
        {
            break status;
        }
        std::thread::sleep(POLL);
    };
    let exit_code = status.code();
    let error = match exit_code {
        Some(0) => None,
        Some(code) => Some(format!("the MCP server exited with code {code}")),
        None => Some("the MCP server was killed by a signal".to_owned()),
    };
    let run = lock(&session).end(Ending {
        stop_reason: StopReason::Ok,
        answer: None,
        error,
    })?;
    let run = run.ok_or_else(|| McpError::Io(std::io::Error::other("the run ended twice")))?;
    Ok(RecordOutcome { run, exit_code })
}

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

enum Answer {
    Result(Value),
    Error(Value),
}

/// A recorded MCP run, as replay serves it.
struct Recording {
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

/// The messages of a recorded MCP run, with the server's answers and the messages it sent on
/// its own, in order.
fn load_recording(store: &Store, id: &RunId) -> Result<Recording, McpError> {
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
    let mut recording = Recording {
        prelude: Vec::new(),
        messages: Vec::new(),
    };
    let mut placement = Placement::default();
    // Requests waiting for their responses, by id text: index into `recording.messages`.
    let mut waiting: HashMap<String, usize> = HashMap::new();
    let mut tool_calls: HashMap<String, usize> = HashMap::new();
    let recorded = |method: &str, params: Option<&Value>, tool| Recorded {
        method: method.to_owned(),
        key: params_key(params),
        tool,
        answer: None,
        during: Vec::new(),
        after: Vec::new(),
        served: false,
    };
    for event in &events {
        match &event.data {
            EventData::McpMessage(m) => {
                let message = blob(&m.message);
                let id = message.get("id").filter(|id| !id.is_null()).map(id_text);
                match (m.direction, m.method.as_deref(), id) {
                    (Direction::ClientToServer, Some(method), id) => {
                        let i = recording.messages.len();
                        recording
                            .messages
                            .push(recorded(method, message.get("params"), None));
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
                                None => Answer::Error(
                                    message.get("error").cloned().unwrap_or(Value::Null),
                                ),
                            });
                            placement.closed(i);
                        }
                    }
                    (Direction::ServerToClient, Some(_), _) => {
                        placement.place(&mut recording, message);
                    }
                    // The client's answers to the server's requests: replay gets them anew.
                    _ => {}
                }
            }
            EventData::ToolCall(c) => {
                let arguments = blob(&c.args);
                let params = json!({ "name": c.tool, "arguments": arguments });
                let i = recording.messages.len();
                tool_calls.insert(c.call_id.clone(), i);
                recording.messages.push(recorded(
                    "tools/call",
                    Some(&params),
                    Some((c.tool.clone(), arguments)),
                ));
                placement.opened(i);
            }
            EventData::ToolResult(r) => {
                if let Some(i) = tool_calls.remove(&r.call_id) {
                    recording.messages[i].answer = Some(match (&r.output, &r.error) {
                        (Some(output), error) => {
                            let output = blob(output);
                            match rpc_error(&output).filter(|_| error.is_some()) {
                                Some(rpc) => Answer::Error(rpc.clone()),
                                None => Answer::Result(output),
                            }
                        }
                        (None, error) => Answer::Error(json!({
                            "code": -32603,
                            "message": error.clone().unwrap_or_default(),
                        })),
                    });
                    placement.closed(i);
                }
            }
            _ => {}
        }
    }
    Ok(recording)
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

fn response(id: &Value, answer: &Answer) -> Value {
    match answer {
        Answer::Result(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Answer::Error(error) => json!({ "jsonrpc": "2.0", "id": id, "error": error }),
    }
}

fn write_message(out: &mut impl Write, message: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
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

    /// Writes what may go now, recording each message.
    fn flush(&mut self, session: &mut Session, out: &mut impl Write) -> std::io::Result<()> {
        while self.awaiting.is_none() {
            let Some(message) = self.queue.pop_front() else {
                break;
            };
            session.observe(Direction::ServerToClient, &message, Origin::Recorded);
            write_message(out, &message)?;
            if message.get("method").is_some()
                && let Some(id) = message.get("id").filter(|id| !id.is_null())
            {
                self.awaiting = Some(id_text(id));
            }
        }
        Ok(())
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
    let Recording {
        prelude,
        messages: mut recorded,
    } = load_recording(store, id)?;
    let parent = store.run(id)?;
    let mut run = mcp_run();
    run.parent = Some(*id);
    run.mode = Some(REPLAY_MODE.to_owned());
    run.task.clone_from(&parent.task);
    run.suite.clone_from(&parent.suite);
    let mut session = Session::new(writer.start_run(run)?);
    let mut misses = Vec::new();
    let mut outbox = Outbox::default();
    outbox.extend(prelude);
    outbox.flush(&mut session, &mut client_out)?;
    let mut reader = BufReader::new(client_in);
    while let Some(line) = read_line(&mut reader)? {
        let Some(message) = parse_line(&line) else {
            if !line.iter().all(u8::is_ascii_whitespace) {
                write_message(
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
        session.observe(Direction::ClientToServer, &message, Origin::Recorded);
        let method = message.get("method").and_then(Value::as_str);
        let request_id = message.get("id").filter(|id| !id.is_null());
        let key = params_key(message.get("params"));
        let (method, request_id) = match (method, request_id) {
            (Some(method), Some(request_id)) => (method, request_id),
            (Some(method), None) => {
                if let Some(i) = find_notification(&mut recorded, method, &key) {
                    outbox.extend(recorded[i].after.clone());
                }
                outbox.flush(&mut session, &mut client_out)?;
                continue;
            }
            (None, Some(answer_id)) => {
                outbox.answered(&id_text(answer_id));
                outbox.flush(&mut session, &mut client_out)?;
                continue;
            }
            (None, None) => continue,
        };
        let found = find(&mut recorded, method, &key).map(|i| &recorded[i]);
        let mut after = Vec::new();
        let answer = match found.and_then(|r| Some((r, r.answer.as_ref()?))) {
            Some((r, answer)) => {
                outbox.extend(r.during.iter().cloned());
                after.extend(r.after.iter().cloned());
                response(request_id, answer)
            }
            // `ping` needs no recording: its answer is always empty.
            None if method == "ping" => response(request_id, &Answer::Result(json!({}))),
            None if method == "tools/call" => {
                let params = message.get("params");
                let tool = params
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let args = params
                    .and_then(|p| p.get("arguments"))
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                misses.push(format!("tools/call {tool}"));
                let closest = closest_call(&recorded, tool, &args).map_or_else(
                    || "the recording has no tool calls".to_owned(),
                    |c| format!("the closest recorded call is {c}"),
                );
                let text = format!(
                    "tapedeck replay: no recorded call {tool}({}): {closest}",
                    canonical_json(&args).unwrap_or_default()
                );
                response(
                    request_id,
                    &Answer::Error(json!({
                        "code": -32602,
                        "message": text,
                        "data": { "tool": tool, "closest": closest_call(&recorded, tool, &args) },
                    })),
                )
            }
            None => {
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
        outbox.flush(&mut session, &mut client_out)?;
    }
    let stop_reason = match misses.first() {
        None => StopReason::Ok,
        Some(miss) => StopReason::ReplayMissTool(
            miss.strip_prefix("tools/call ")
                .unwrap_or(miss.as_str())
                .to_owned(),
        ),
    };
    let error =
        (!misses.is_empty()).then(|| format!("no recorded answer for: {}", misses.join(", ")));
    let run = session
        .end(Ending {
            stop_reason,
            answer: None,
            error,
        })?
        .ok_or_else(|| McpError::Io(std::io::Error::other("the run ended twice")))?;
    Ok(ReplayOutcome { run, misses })
}

/// A new MCP run. The client's model calls never cross this proxy, so its tokens and cost are
/// unknown — not 0.
fn mcp_run() -> Run {
    let mut run = Run::new(Source::Mcp);
    run.totals.tokens_in = None;
    run.totals.tokens_out = None;
    run.totals.cost_usd = None;
    run
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

    #[test]
    fn ids_as_text() {
        assert_eq!(id_text(&json!(7)), "7");
        assert_eq!(id_text(&json!("a-1")), "a-1");
    }
}
