//! End-to-end tests of `tapedeck mcp record` and `tapedeck mcp replay` (and, in `session`, of
//! `tapedeck mcp -- SERVER…` in a session): a small fake MCP server
//! in Python (newline-delimited JSON-RPC on stdio: `initialize`, `server/discover`,
//! `tools/list` with one tool, `tools/call` of `echo`; with `FAKE_CHATTY` set it also logs,
//! reports progress, and asks the client for roots and a sampled message), driven by the test
//! itself as the client writing requests to tapedeck's stdin and reading its answers from
//! tapedeck's stdout. Both protocol eras are covered: the `initialize` handshake and the
//! 2026-07-28 era's `server/discover` with per-request `_meta`. The official `mcp` Python client
//! drives the chatty fake server and a registry server (`mcp-server-time`), when both are
//! installed (`python3 -m pip install mcp mcp-server-time`, as `.ci/test` does).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use tapedeck_testkit::cli::{Backend, TestDir};

mod eras;
mod fake_session;
mod lifecycle;
mod official;
mod session;

const SERVER: &str = r#"import json, os, sys
sys.stderr.write("fake server up\n")
sys.stderr.flush()
chatty = bool(os.environ.get("FAKE_CHATTY"))
backlog = []
def send(msg):
    print(json.dumps(msg), flush=True)
def log(text):
    send({"jsonrpc": "2.0", "method": "notifications/message",
          "params": {"level": "info", "logger": "fake", "data": text}})
def ask(id, method, params=None):
    # A request to the client: other messages that come meanwhile wait their turn.
    send({"jsonrpc": "2.0", "id": id, "method": method, "params": params or {}})
    while True:
        msg = json.loads(sys.stdin.readline())
        if msg.get("id") == id and "method" not in msg:
            return msg
        backlog.append(msg)
def messages():
    while True:
        if backlog:
            yield backlog.pop(0)
            continue
        line = sys.stdin.readline()
        if not line:
            return
        yield json.loads(line)
if chatty:
    log("starting")
for msg in messages():
    if msg.get("method") == "notifications/initialized" and chatty:
        roots = ask("srv-roots", "roots/list")
        log("roots: " + ",".join(r["uri"] for r in roots["result"]["roots"]))
    if "id" not in msg or "method" not in msg:
        continue
    m = msg.get("method")
    p = msg.get("params") or {}
    if m == "initialize":
        res = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
               "serverInfo": {"name": "fake", "version": "1.0"}}
    elif m == "server/discover":
        res = {"resultType": "complete", "supportedVersions": ["2026-07-28"],
               "capabilities": {"tools": {}},
               "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "fake", "version": "1.0"}}}
    elif m == "tools/list":
        res = {"tools": [{"name": "echo", "description": "Echo the text back",
                          "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                                          "required": ["text"]}}]}
    elif m == "tools/call" and p.get("name") == "summarize":
        # Logs and progress while it works, asks the client's model, then says its tools changed.
        log("summarizing")
        send({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": "p1", "progress": 1, "total": 2}})
        sampled = ask("srv-1", "sampling/createMessage",
                      {"messages": [{"role": "user", "content": {"type": "text", "text": p["arguments"]["text"]}}],
                       "maxTokens": 50})
        res = {"content": [{"type": "text", "text": "summary: " + sampled["result"]["content"]["text"]}],
               "isError": False}
        send({"jsonrpc": "2.0", "id": msg["id"], "result": res})
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        continue
    elif m == "tools/call" and p.get("name") == "rpc_error":
        send({"jsonrpc": "2.0", "id": msg["id"],
              "error": {"code": -32602, "message": "bad arguments", "data": {"field": "x"}}})
        continue
    elif m == "tools/call" and p.get("name") == "echo":
        res = {"content": [{"type": "text", "text": p["arguments"]["text"]}], "isError": False}
    elif m == "tools/call":
        res = {"content": [{"type": "text", "text": "unknown tool " + p.get("name", "")}], "isError": True}
    else:
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"],
                          "error": {"code": -32601, "message": "Method not found"}}), flush=True)
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": res}), flush=True)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"#;

/// A test's folder: the store and the fake server script.
/// The official client of the handshake era against `mcp-server-time` (the server's command
/// is its arguments): lists the tools, asks the time in UTC, prints both as JSON. It passes its
/// environment on to the server (the SDK passes only a few variables by default, and a
/// session's is not one of them).
const TIME_CLIENT: &str = r#"import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool("get_current_time", {"timezone": "UTC"})
            print(json.dumps({
                "tools": sorted(t.name for t in tools.tools),
                "time": [c.text for c in result.content if c.type == "text"],
            }))

asyncio.run(main())
"#;

/// Whether the official `mcp` Python client and `mcp-server-time` are installed; when they are
/// not, the test fails naming the install command, unless skipping is allowed.
fn require_mcp_server_time() -> bool {
    tapedeck_testkit::clients::require(
        "the mcp Python client or mcp-server-time",
        tapedeck_testkit::clients::python_imports("mcp, mcp_server_time"),
        "python3 -m pip install mcp mcp-server-time",
    )
}

/// A temporary folder holding the MCP server script and the store `t.db` ([`TestDir`]); its
/// commands run outside a session unless a test says otherwise.
struct Env(TestDir);

impl std::ops::Deref for Env {
    type Target = TestDir;
    fn deref(&self) -> &TestDir {
        &self.0
    }
}

/// What one tapedeck process did.
struct Session {
    /// The answers to the requests that had ids, in order.
    responses: Vec<Value>,
    /// Every line tapedeck wrote to stdout.
    lines: Vec<String>,
    stderr: String,
    code: Option<i32>,
}

impl Env {
    fn new() -> Self {
        Self::on(Backend::Sqlite)
    }

    /// [`Env::new`], its store on `backend`.
    fn on(backend: Backend) -> Self {
        let env = Self(TestDir::on(backend).with_setup(|cmd| {
            cmd.env_remove("TAPEDECK_SESSION");
        }));
        env.write("server.py", SERVER);
        env
    }

    /// `tapedeck --store STORE` in the folder as a process to talk to over stdio.
    fn tapedeck(&self) -> Command {
        let mut cmd = tapedeck_testkit::cli::process_in(self.dir.path());
        // Outside a session unless a test says otherwise.
        cmd.env_remove("TAPEDECK_SESSION")
            .arg("--store")
            .arg(self.store_arg());
        cmd
    }

    /// Runs `tapedeck ARGS` as an MCP server for a scripted client: each request is written
    /// in turn, and a request with an id waits for its answer.
    fn session(&self, args: &[&str], requests: &[Value]) -> Session {
        self.session_with(args, requests, &[])
    }

    /// [`Env::session`] with environment variables for tapedeck (and so for the server it
    /// starts). Requests the server sends meanwhile (`roots/list`, `sampling/createMessage`)
    /// get a canned answer.
    fn session_with(&self, args: &[&str], requests: &[Value], env: &[(&str, &str)]) -> Session {
        let mut child = self
            .tapedeck()
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tapedeck starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut responses = Vec::new();
        let mut lines = Vec::new();
        for request in requests {
            writeln!(stdin, "{request}").expect("tapedeck reads");
            stdin.flush().expect("flush");
            let Some(id) = request.get("id") else {
                continue;
            };
            loop {
                let mut line = String::new();
                stdout.read_line(&mut line).expect("tapedeck answers");
                assert!(line.ends_with('\n'), "one message per line: {line:?}");
                let message: Value = serde_json::from_str(&line).expect("the message is JSON");
                lines.push(line);
                match (message.get("method"), message.get("id")) {
                    (None, Some(answered)) if answered == id => {
                        responses.push(message);
                        break;
                    }
                    (Some(method), Some(server_id)) => {
                        let answer = json!({
                            "jsonrpc": "2.0",
                            "id": server_id,
                            "result": client_answer(method.as_str().unwrap_or_default()),
                        });
                        writeln!(stdin, "{answer}").expect("tapedeck reads");
                        stdin.flush().expect("flush");
                    }
                    _ => {}
                }
            }
        }
        drop(stdin);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).expect("stdout");
        lines.extend(rest.lines().map(str::to_owned));
        let output = child.wait_with_output().expect("tapedeck ends");
        Session {
            responses,
            lines,
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
            code: output.status.code(),
        }
    }

    fn record(&self, requests: &[Value]) -> (String, Session) {
        let session = self.session(
            &[
                "mcp",
                "record",
                "--task",
                "echo",
                "--label",
                "era=test",
                "--",
                "python3",
                "server.py",
            ],
            requests,
        );
        assert_eq!(session.code, Some(0), "stderr: {}", session.stderr);
        (run_id_of(&session.stderr, "recorded MCP run "), session)
    }

    /// Runs the Python client script `client.py` with tapedeck (`--store STORE`, then `args`) as
    /// its server command and `FAKE_CHATTY` set; checks it succeeded and returns the JSON it
    /// printed, and its stderr (tapedeck's included).
    fn python_client(&self, args: &[&str]) -> (Value, String) {
        self.python_client_with(args, &[])
    }

    /// [`Env::python_client`] with more environment variables for the client (and so for
    /// tapedeck and the server).
    fn python_client_with(&self, args: &[&str], env: &[(&str, &str)]) -> (Value, String) {
        let output = Command::new("python3")
            .current_dir(self.dir.path())
            .arg("client.py")
            .arg(env!("CARGO_BIN_EXE_tapedeck"))
            .arg("--store")
            .arg(self.store_arg())
            .args(args)
            .env_remove("TAPEDECK_STORE")
            .env_remove("TAPEDECK_SESSION")
            .env("FAKE_CHATTY", "1")
            .envs(env.iter().copied())
            .output()
            .expect("the client runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        let out: Value = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
        (out, stderr)
    }
}

/// The scripted client's answer to a request from the server.
fn client_answer(method: &str) -> Value {
    match method {
        "roots/list" => json!({ "roots": [{ "uri": "file:///work", "name": "work" }] }),
        "sampling/createMessage" => json!({
            "role": "assistant",
            "content": { "type": "text", "text": "it is short" },
            "model": "test-model",
            "stopReason": "endTurn",
        }),
        _ => json!({}),
    }
}

/// The short run id that follows `prefix` on stderr.
fn run_id_of(stderr: &str, prefix: &str) -> String {
    let at = stderr
        .find(prefix)
        .unwrap_or_else(|| panic!("no `{prefix}` in stderr:\n{stderr}"));
    stderr[at + prefix.len()..]
        .split_whitespace()
        .next()
        .expect("a run id")
        .to_owned()
}

fn request(id: Value, method: &str, params: Value) -> Value {
    let mut message = json!({ "jsonrpc": "2.0", "id": id, "method": method });
    if !params.is_null() {
        message["params"] = params;
    }
    message
}

fn notification(method: &str) -> Value {
    json!({ "jsonrpc": "2.0", "method": method })
}

fn call(id: Value, tool: &str, arguments: Value, meta: Option<Value>) -> Value {
    let mut params = json!({ "name": tool, "arguments": arguments });
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    request(id, "tools/call", params)
}

/// A 2026-07-28 era `_meta` from a client of this version.
fn meta(client_version: &str) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { "name": "test-client", "version": client_version },
    })
}

/// The response without its id.
fn without_id(mut response: Value) -> Value {
    response
        .as_object_mut()
        .expect("a response is an object")
        .remove("id");
    response
}

/// The events of a `show --json`, as (kind, data).
fn event_list(show: &Value) -> Vec<(String, Value)> {
    show["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["data"].clone(),
            )
        })
        .collect()
}

fn legacy_requests(ids: [Value; 4]) -> Vec<Value> {
    let [a, b, c, d] = ids;
    vec![
        request(
            a,
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "test-client", "version": "1.0" },
            }),
        ),
        notification("notifications/initialized"),
        request(b, "tools/list", Value::Null),
        call(c, "echo", json!({ "text": "hello" }), None),
        call(d, "nope", json!({}), None),
    ]
}

#[test]
fn help_has_examples() {
    for args in [
        &["mcp", "--help"][..],
        &["mcp", "record", "--help"],
        &["mcp", "replay", "-h"],
        &["help", "mcp"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_tapedeck"))
            .args(args)
            .env("COLUMNS", "100")
            .output()
            .expect("help runs");
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}");
        assert!(
            out.contains("Examples:\n  tapedeck mcp "),
            "{args:?}:\n{out}"
        );
    }
}
