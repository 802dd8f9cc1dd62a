//! `tapedeck mcp -- SERVER…` inside a session (`TAPEDECK_SESSION`): the MCP server's messages
//! become events of the session's run, in order with its LLM events. [`record_in_session`]
//! passes every line through to the real server as `mcp record` does, sending each
//! `tools/call` to the session as a `call` and its response as the `outcome`, every other
//! message as `mcp`; [`replay_in_session`] answers the client from the server's recorded
//! messages (`mcp/recording`) without starting it, asking the session for each tool's answer —
//! and starts it (`live`) only for a read tool the replay lets run live.

use std::collections::{BTreeSet, HashSet};

use super::live::LiveServer;
use super::record::{Passed, Tap, pass_through, spawn_server};
use super::replay::{Answer, Recording, ReplayHost, ToolAnswer, serve};
use super::session_client::{SessionClient, SessionError};
use super::*;
use crate::session::{Action, Kind, ToolError};

/// The `type` of a tool error that is an MCP server's JSON-RPC error.
const MCP_ERROR: &str = "mcp_error";

/// How `tapedeck mcp` takes part in a session.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// The server's name in the session (`--name`; see [`default_server_name`]).
    pub name: String,
    /// The tools that change something (`--write`): `call` sends them as kind `write`, which
    /// never runs in a replay. Every other tool is a `read`.
    pub write_tools: BTreeSet<String>,
}

impl JoinOptions {
    fn kind(&self, tool: &str) -> Kind {
        if self.write_tools.contains(tool) {
            Kind::Write
        } else {
            Kind::Read
        }
    }
}

/// How `tapedeck mcp` in a session ended.
#[derive(Debug)]
pub struct JoinedOutcome {
    /// The server's exit code, in a recording (`None` in a replay, where it never ran, and
    /// when a signal killed it).
    pub exit_code: Option<i32>,
    /// The `tools/call` requests the client made.
    pub tool_calls: u64,
    /// In a replay, the requests that had no answer (method, and tool for `tools/call`).
    pub misses: Vec<String>,
    /// In a replay, how many messages the session had recorded for the server.
    pub recorded_messages: usize,
    /// The first failure talking to the session: the client got an error for a tool call it
    /// concerned, and other messages went unrecorded from then on.
    pub session_error: Option<SessionError>,
    /// In a replay, the client went away while being answered.
    pub client_gone: Option<std::io::Error>,
}

/// The extensions of the scripts an interpreter runs: an argument with one names the program.
const SCRIPT_EXTENSIONS: [&str; 17] = [
    "py", "pyw", "js", "mjs", "cjs", "jsx", "ts", "mts", "cts", "tsx", "rb", "pl", "php", "sh",
    "bash", "lua", "jl",
];

/// The name a command goes by when none is given: an MCP server's in a session (`tapedeck mcp
/// --name`), a recorded agent's (`tapedeck record --name`). The module of `python… -m MODULE`;
/// the first argument that names a script by its extension, whoever runs it (`uv run agent.py`,
/// `npx tsx agent.ts`), by its file name without extension; the script of an interpreter
/// (`python…`, `node`, `bun`, `ruby`, `perl`, `php`: its first argument that is not an option,
/// unless it runs inline code with `-c` / `-e`); the package of a package runner (`npx`, `uvx`,
/// `bunx`, `pnpx`: its first argument that is not an option, without a `@version` or
/// `@scope/`); else the program's file name without its extension. `None` without a command.
/// The program itself would name every server or agent run by `python3` or `npx` alike, and
/// servers of one name in a session share one recording.
///
/// `python3 -m mcp_server_time` → `mcp_server_time`; `node build/index.js` → `index`; `npx -y
/// @modelcontextprotocol/server-memory` → `server-memory`; `uvx mcp-server-time@1.0` →
/// `mcp-server-time`; `./bin/weather.py` → `weather`; `uv run agent.py` → `agent`.
pub fn default_server_name(command: &[String]) -> Option<String> {
    let (program, args) = command.split_first()?;
    let base = |path: &str| {
        let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
        match file.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem.to_owned(),
            _ => file.to_owned(),
        }
    };
    let program_name = base(program);
    let python = program_name.starts_with("python") || program_name.starts_with("pypy");
    if python
        && let Some(at) = args.iter().position(|a| a == "-m")
        && let Some(module) = args.get(at + 1)
    {
        return Some(module.clone());
    }
    let is_script = |arg: &str| {
        arg.rsplit_once('.')
            .is_some_and(|(_, ext)| SCRIPT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
    };
    if let Some(script) = args.iter().find(|a| !a.starts_with('-') && is_script(a)) {
        return Some(base(script));
    }
    let interpreter =
        python || ["node", "bun", "ruby", "perl", "php"].contains(&program_name.as_str());
    // Inline code (`python3 -c CODE`, `node -e CODE`) is no script to name the program by.
    let inline = args.iter().any(|a| a == "-c" || a == "-e");
    if interpreter
        && !inline
        && let Some(script) = args.iter().find(|a| !a.starts_with('-'))
    {
        return Some(base(script));
    }
    if ["npx", "uvx", "bunx", "pnpx"].contains(&program_name.as_str())
        && let Some(package) = args.iter().find(|a| !a.starts_with('-'))
    {
        let unscoped = package.rsplit('/').next().unwrap_or(package);
        let name = unscoped.split('@').next().unwrap_or(unscoped);
        if !name.is_empty() {
            return Some(name.to_owned());
        }
    }
    Some(program_name)
}

/// The session's side of a recording: every message to the session, `tools/call` as `call`
/// and `outcome`.
struct RecordTap {
    session: SessionClient,
    options: JoinOptions,
    /// `tools/call` requests sent on to the server, by JSON-RPC id (as text): the call token
    /// and when the request went.
    open_calls: HashMap<String, (String, Instant)>,
    tool_calls: u64,
    error: Option<SessionError>,
}

impl RecordTap {
    fn failed(&mut self, error: SessionError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// Sends a message other than a tool call, unless the session already failed (one warning
    /// is enough, and the run is lost anyway).
    fn send(&mut self, direction: Direction, message: &Value) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.session.mcp(&self.options.name, direction, message) {
            self.failed(e);
        }
    }
}

impl Tap for RecordTap {
    fn client_message(&mut self, message: &Value) -> Option<Value> {
        let Some((id, tool, arguments)) = tools_call(message) else {
            self.send(Direction::ClientToServer, message);
            return None;
        };
        self.tool_calls += 1;
        let kind = self.options.kind(tool);
        // The call goes to the session before the server, so the run holds it in order with
        // what the agent did before; a tool call the session does not let run is answered
        // here and never reaches the server.
        match self.session.call(tool, kind, &arguments) {
            Ok(Action::Run { call }) => {
                self.open_calls.insert(id_text(id), (call, Instant::now()));
                None
            }
            Ok(answer) => Some(response(id, &tool_answer(tool, answer, &mut self.session))),
            Err(e) => {
                let text = format!("tapedeck session: {e}");
                self.failed(e);
                Some(response(id, &internal_error(text)))
            }
        }
    }

    fn server_message(&mut self, message: &Value) {
        let answered = message
            .get("method")
            .is_none()
            .then(|| message.get("id").filter(|id| !id.is_null()).map(id_text))
            .flatten()
            .and_then(|id| self.open_calls.remove(&id));
        let Some((call, sent)) = answered else {
            self.send(Direction::ServerToClient, message);
            return;
        };
        let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
        let error = rpc_error_of(message);
        let result = message.get("result").cloned().unwrap_or(Value::Null);
        let outcome = match &error {
            Some(error) => Err(error),
            None => Ok(&result),
        };
        if let Err(e) = self.session.outcome(&call, outcome, latency_ms) {
            self.failed(e);
        }
    }
}

/// A `tools/call` request's id, tool and arguments (`{}` when it has none).
fn tools_call(message: &Value) -> Option<(&Value, &str, Value)> {
    if message.get("method").and_then(Value::as_str) != Some("tools/call") {
        return None;
    }
    let id = message.get("id").filter(|id| !id.is_null())?;
    let (tool, arguments) = replay::tool_and_arguments(message.get("params"));
    Some((id, tool, arguments))
}

/// A response's JSON-RPC error as a tool error (`mcp_error` and its message); `None` for a
/// result — an `isError` result included, which is the tool's own answer and is recorded
/// as it is.
fn rpc_error_of(response: &Value) -> Option<ToolError> {
    let error = response.get("error")?;
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("error without a message");
    Some(ToolError {
        kind: MCP_ERROR.to_owned(),
        message: message.to_owned(),
    })
}

fn response(id: &Value, answer: &Answer) -> Value {
    match answer {
        Answer::Result(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Answer::Error(error) => json!({ "jsonrpc": "2.0", "id": id, "error": error }),
    }
}

fn internal_error(message: String) -> Answer {
    Answer::Error(json!({ "code": -32603, "message": message }))
}

/// The client's answer for a call the session does not let run: its recorded result or error.
/// (A `run` is answered by the live server, [`ReplayTap::live_call`].)
fn tool_answer(tool: &str, answer: Action, session: &mut SessionClient) -> Answer {
    match answer {
        Action::Return { result, .. } => Answer::Result(result),
        Action::Raise { error } if error.kind == MCP_ERROR => internal_error(error.message),
        Action::Raise { error } => internal_error(format!("{}: {}", error.kind, error.message)),
        Action::Miss { message } => Answer::Error(json!({
            "code": -32602,
            "message": format!("tapedeck replay: {message}"),
            "data": { "tool": tool },
        })),
        Action::Run { call } => {
            let message = format!(
                "tapedeck mcp: the session lets `{tool}` run live, but no server command was given"
            );
            failed_live(session, &call, &message);
            internal_error(message)
        }
    }
}

/// Tells the session a call it let run failed before it ran. The session waits for the
/// outcome of such a call; a failure to send it shows in the session's own run.
fn failed_live(session: &mut SessionClient, call: &str, message: &str) {
    let error = ToolError {
        kind: MCP_ERROR.to_owned(),
        message: message.to_owned(),
    };
    let _ = session.outcome(call, Err(&error), 0.0);
}

/// Records the MCP session between the client on `client_in`/`client_out` and the server
/// `command` into the session `session` is connected to (whose `hello` said `record`):
/// every line passes through unchanged, as `mcp record` does.
pub fn record_in_session(
    session: SessionClient,
    options: &JoinOptions,
    command: &[String],
    client_in: impl Read + Send + 'static,
    client_out: impl Write + Send + 'static,
) -> Result<JoinedOutcome, McpError> {
    let child = spawn_server(command)?;
    let tap = Arc::new(Mutex::new(RecordTap {
        session,
        options: options.clone(),
        open_calls: HashMap::new(),
        tool_calls: 0,
        error: None,
    }));
    let Passed { exit_code, .. } = pass_through(child, Arc::clone(&tap), client_in, client_out)?;
    let mut tap = lock(&tap);
    // Calls the server never answered (it exited): the session is told, so no call of its run
    // is left without an outcome.
    let unanswered: Vec<(String, Instant)> = tap.open_calls.drain().map(|(_, c)| c).collect();
    for (call, sent) in unanswered {
        let error = ToolError {
            kind: MCP_ERROR.to_owned(),
            message: "the MCP server exited before answering".to_owned(),
        };
        let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
        if let Err(e) = tap.session.outcome(&call, Err(&error), latency_ms) {
            tap.failed(e);
        }
    }
    Ok(JoinedOutcome {
        exit_code,
        tool_calls: tap.tool_calls,
        misses: Vec::new(),
        recorded_messages: 0,
        session_error: tap.error.take(),
        client_gone: None,
    })
}

/// The session's side of a replay: every message but tool calls to the session as `mcp`;
/// each `tools/call` answered by the session's `call`.
struct ReplayTap {
    session: SessionClient,
    options: JoinOptions,
    /// The ids (as text) of the client's `tools/call` requests not answered yet: their answers
    /// are the session's own, not sent back to it.
    open_calls: HashSet<String>,
    tool_calls: u64,
    error: Option<SessionError>,
    /// The server's command, started for a live call.
    command: Vec<String>,
    /// The params of the client's `initialize`, for the live server's handshake.
    initialize: Option<Value>,
    /// The server, once a live call started it.
    live: Option<LiveServer>,
}

impl ReplayTap {
    /// Runs a call the session let run live on the server (started at the first one), and
    /// sends the session its outcome.
    fn live_call(&mut self, tool: &str, arguments: &Value, call: &str) -> Answer {
        if self.live.is_none() {
            match LiveServer::start(&self.command, self.initialize.as_ref()) {
                Ok(server) => self.live = Some(server),
                Err(why) => {
                    let message =
                        format!("tapedeck mcp: cannot start the server for `{tool}`: {why}");
                    failed_live(&mut self.session, call, &message);
                    return internal_error(message);
                }
            }
        }
        let Some(server) = self.live.as_mut() else {
            return internal_error("tapedeck mcp: no live server".to_owned());
        };
        let started = Instant::now();
        let outcome = server.call(tool, arguments);
        let latency = started.elapsed().as_secs_f64() * 1000.0;
        let (answer, sent) = match outcome {
            Ok(result) => match rpc_error(&result) {
                Some(error) => {
                    let message = error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("error without a message")
                        .to_owned();
                    let error_answer = Answer::Error(error.clone());
                    (
                        error_answer,
                        self.session.outcome(
                            call,
                            Err(&ToolError {
                                kind: MCP_ERROR.to_owned(),
                                message,
                            }),
                            latency,
                        ),
                    )
                }
                None => {
                    let sent = self.session.outcome(call, Ok(&result), latency);
                    (Answer::Result(result), sent)
                }
            },
            Err(why) => {
                let message = format!("tapedeck mcp: the live call of `{tool}` failed: {why}");
                failed_live(&mut self.session, call, &message);
                return internal_error(message);
            }
        };
        if let Err(e) = sent {
            self.failed(e);
        }
        answer
    }

    fn failed(&mut self, error: SessionError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }
}

impl ReplayHost for ReplayTap {
    fn observe(&mut self, direction: Direction, message: &Value) {
        if direction == Direction::ClientToServer
            && message.get("method").and_then(Value::as_str) == Some("initialize")
        {
            self.initialize = message.get("params").cloned();
        }
        let id = message.get("id").filter(|id| !id.is_null()).map(id_text);
        let is_call = match (direction, message.get("method"), id) {
            (Direction::ClientToServer, Some(_), Some(id)) if tools_call(message).is_some() => {
                self.open_calls.insert(id);
                true
            }
            (Direction::ServerToClient, None, Some(id)) => self.open_calls.remove(&id),
            _ => false,
        };
        if is_call || self.error.is_some() {
            return;
        }
        if let Err(e) = self.session.mcp(&self.options.name, direction, message) {
            self.failed(e);
        }
    }

    fn tool_answer(&mut self, tool: &str, arguments: &Value) -> Option<ToolAnswer> {
        self.tool_calls += 1;
        let kind = self.options.kind(tool);
        let answer = match self.session.call(tool, kind, arguments) {
            Ok(Action::Miss { message }) => {
                return Some(ToolAnswer::Miss(json!({
                    "code": -32602,
                    "message": format!("tapedeck replay: {message}"),
                    "data": { "tool": tool },
                })));
            }
            Ok(Action::Run { call }) if !self.command.is_empty() => {
                self.live_call(tool, arguments, &call)
            }
            Ok(answer) => tool_answer(tool, answer, &mut self.session),
            Err(e) => {
                let text = format!("tapedeck session: {e}");
                self.failed(e);
                internal_error(text)
            }
        };
        Some(ToolAnswer::Answer(answer))
    }
}

/// Answers the client on `client_in`/`client_out` from the messages the session `session`
/// (whose `hello` said `replay`) recorded for the server, without starting it. Each
/// `tools/call` is the session's to answer (`call`), by the same matching and miss policy as
/// every tool of the replay; a read tool the session lets run live goes to the server
/// `command`, started then. Every other message is sent to the session as `mcp`. Ends when the
/// client closes its end.
pub fn replay_in_session(
    mut session: SessionClient,
    options: &JoinOptions,
    command: &[String],
    client_in: impl Read,
    client_out: impl Write,
) -> Result<JoinedOutcome, McpError> {
    let messages = session.mcp_recording(&options.name)?;
    let recorded_messages = messages.len();
    let recording = Recording::from_messages(&messages);
    let mut tap = ReplayTap {
        session,
        options: options.clone(),
        open_calls: HashSet::new(),
        tool_calls: 0,
        error: None,
        command: command.to_vec(),
        initialize: None,
        live: None,
    };
    let mut misses = Vec::new();
    let client_gone = serve(&mut tap, &mut misses, recording, client_in, client_out).err();
    Ok(JoinedOutcome {
        exit_code: None,
        tool_calls: tap.tool_calls,
        misses,
        recorded_messages,
        session_error: tap.error,
        client_gone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(command: &[&str]) -> Option<String> {
        let command: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
        default_server_name(&command)
    }

    #[test]
    fn default_server_names() {
        assert_eq!(
            name(&["python3", "-m", "mcp_server_time"]).as_deref(),
            Some("mcp_server_time")
        );
        assert_eq!(
            name(&["npx", "-y", "@modelcontextprotocol/server-memory"]).as_deref(),
            Some("server-memory")
        );
        assert_eq!(
            name(&["uvx", "mcp-server-time@1.0"]).as_deref(),
            Some("mcp-server-time")
        );
        assert_eq!(name(&["./bin/weather.py"]).as_deref(), Some("weather"));
        assert_eq!(
            name(&["/usr/bin/node", "build/index.js"]).as_deref(),
            Some("index")
        );
        assert_eq!(
            name(&["python3", "-u", "server.py"]).as_deref(),
            Some("server")
        );
        assert_eq!(name(&["python3"]).as_deref(), Some("python3"));
        assert_eq!(name(&["uv", "run", "agent.py"]).as_deref(), Some("agent"));
        assert_eq!(
            name(&["npx", "tsx", "src/agent.ts"]).as_deref(),
            Some("agent")
        );
        assert_eq!(
            name(&["python3", "-u", "bots/weather_bot.py", "--x"]).as_deref(),
            Some("weather_bot")
        );
        assert_eq!(
            name(&["python3", "-c", "print('hi')"]).as_deref(),
            Some("python3")
        );
        assert_eq!(name(&["node", "-e", "1"]).as_deref(), Some("node"));
        assert_eq!(name(&["sh", "-c", "exec x"]).as_deref(), Some("sh"));
        assert_eq!(name(&[".hidden"]).as_deref(), Some(".hidden"));
        assert_eq!(name(&[]), None);
    }

    #[test]
    fn a_json_rpc_error_is_an_mcp_error_and_an_is_error_result_is_a_result() {
        let rpc = json!({ "id": 1, "error": { "code": -32602, "message": "Unknown tool" } });
        assert_eq!(
            rpc_error_of(&rpc),
            Some(ToolError {
                kind: "mcp_error".to_owned(),
                message: "Unknown tool".to_owned()
            })
        );
        let failed = json!({ "id": 1, "result": { "content": [], "isError": true } });
        assert_eq!(rpc_error_of(&failed), None);
    }
}
