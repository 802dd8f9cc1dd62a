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
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

mod fake_session;
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
struct Env {
    dir: tempfile::TempDir,
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
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(dir.path().join("server.py"), SERVER).expect("the server script");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tapedeck(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapedeck"));
        cmd.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("TAPEDECK_STORE")
            // Outside a session unless a test says otherwise.
            .env_remove("TAPEDECK_SESSION")
            .arg("--store")
            .arg("t.db");
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

    /// Runs the Python client script `client.py` with tapedeck (`--store t.db`, then `args`) as
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
            .args(["--store", "t.db"])
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

    fn show(&self, run: &str) -> Value {
        let output = self
            .tapedeck()
            .args(["show", run, "--json"])
            .output()
            .expect("show runs");
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice(&output.stdout).expect("show --json is JSON")
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
fn records_the_handshake_era_and_replays_it_without_the_server() {
    let env = Env::new();
    let (run, recorded) = env.record(&legacy_requests([
        json!(1),
        json!(2),
        json!("c-3"),
        json!(4),
    ]));

    // Pass-through: the server's answers, with its ids, one per line.
    assert_eq!(recorded.responses.len(), 4);
    assert_eq!(recorded.responses[0]["id"], json!(1));
    assert_eq!(
        recorded.responses[0]["result"]["serverInfo"]["name"],
        json!("fake")
    );
    assert_eq!(
        recorded.responses[1]["result"]["tools"][0]["name"],
        json!("echo")
    );
    assert_eq!(recorded.responses[2]["id"], json!("c-3"));
    assert_eq!(
        recorded.responses[2]["result"]["content"][0]["text"],
        json!("hello")
    );
    assert_eq!(recorded.responses[3]["result"]["isError"], json!(true));
    // The server's stderr passes through; lines are the server's own bytes.
    assert!(
        recorded.stderr.contains("fake server up"),
        "{}",
        recorded.stderr
    );
    assert!(
        recorded.lines[0].starts_with("{\"jsonrpc\": \"2.0\", \"id\": 1,"),
        "{:?}",
        recorded.lines
    );

    let show = env.show(&run);
    assert_eq!(show["run"]["source"], json!("mcp"));
    assert_eq!(show["run"]["task"], json!("echo"));
    assert_eq!(show["run"]["labels"]["era"], json!("test"));
    assert_eq!(show["run"]["status"], json!("ok"));
    let events = event_list(&show);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "tool_call").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "tool_result").count(), 2);
    assert_eq!(kinds.last(), Some(&"run_finished"));
    let methods: Vec<&str> = events
        .iter()
        .filter(|(k, d)| k == "mcp_message" && d["direction"] == json!("client_to_server"))
        .filter_map(|(_, d)| d["method"].as_str())
        .collect();
    assert_eq!(
        methods,
        ["initialize", "notifications/initialized", "tools/list"]
    );
    let (_, echo) = events
        .iter()
        .find(|(k, d)| k == "tool_call" && d["tool"] == json!("echo"))
        .expect("the echo call");
    assert_eq!(echo["call_id"], json!("c-3"));
    let args = &show["blobs"][echo["args"].as_str().expect("an args ref")];
    assert_eq!(args, &json!({ "text": "hello" }), "{}", show["blobs"]);
    let (_, result) = events
        .iter()
        .find(|(k, d)| k == "tool_result" && d["call_id"] == json!("c-3"))
        .expect("the echo result");
    assert!(
        result["output"].is_string() && result.get("error").is_none(),
        "{result}"
    );
    let (_, failed) = events
        .iter()
        .find(|(k, d)| k == "tool_result" && d["tool"] == json!("nope"))
        .expect("the failed call's result");
    assert_eq!(failed["error"], json!("unknown tool nope"));
    assert_eq!(failed["call_id"], json!("4"));

    // Replay with the server gone and other ids (and another client version).
    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let mut requests = legacy_requests([json!(10), json!("list"), json!(12), json!(13)]);
    requests[0]["params"]["clientInfo"]["version"] = json!("2.0");
    requests.push(request(json!(14), "ping", Value::Null));
    let replayed = env.session(&["mcp", "replay", &run], &requests);
    assert_eq!(replayed.code, Some(0), "stderr: {}", replayed.stderr);
    let ids: Vec<&Value> = replayed.responses.iter().map(|r| &r["id"]).collect();
    assert_eq!(
        ids,
        [
            &json!(10),
            &json!("list"),
            &json!(12),
            &json!(13),
            &json!(14)
        ]
    );
    for (live, replay) in recorded.responses.iter().zip(&replayed.responses) {
        assert_eq!(without_id(live.clone()), without_id(replay.clone()));
    }
    assert_eq!(replayed.responses[4]["result"], json!({}));

    let replay_run = run_id_of(&replayed.stderr, " as ");
    let show = env.show(&replay_run);
    assert_eq!(show["run"]["source"], json!("mcp"));
    assert_eq!(show["run"]["mode"], json!("mcp"));
    assert!(
        show["run"]["parent"]
            .as_str()
            .is_some_and(|p| p.ends_with(&run)),
        "{}",
        show["run"]
    );
    let origins: Vec<Value> = event_list(&show)
        .into_iter()
        .filter(|(k, _)| k == "tool_result")
        .map(|(_, d)| d["origin"].clone())
        .collect();
    assert_eq!(origins, [json!("recorded"), json!("recorded")]);
    // The replay diffs clean against its recording.
    let diff = env
        .tapedeck()
        .args(["diff", &run, &replay_run])
        .output()
        .expect("diff runs");
    assert_eq!(diff.status.code(), Some(0), "{diff:?}");
}

#[test]
fn messages_the_server_sends_on_its_own_are_replayed_where_they_came() {
    let env = Env::new();
    let mut requests = legacy_requests([json!(1), json!(2), json!(3), json!(4)]);
    requests[3] = call(
        json!(3),
        "summarize",
        json!({ "text": "a long text" }),
        None,
    );
    requests[4] = call(json!(5), "echo", json!({ "text": "after" }), None);
    requests.push(call(json!(6), "rpc_error", json!({}), None));
    let recorded = env.session_with(
        &["mcp", "record", "--", "python3", "server.py"],
        &requests,
        &[("FAKE_CHATTY", "1")],
    );
    assert_eq!(recorded.code, Some(0), "stderr: {}", recorded.stderr);
    let messages = |session: &Session| -> Vec<Value> {
        session
            .lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect()
    };
    let live = messages(&recorded);
    let methods: Vec<&str> = live.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(
        methods,
        [
            "notifications/message",
            "roots/list",
            "notifications/message",
            "notifications/message",
            "notifications/progress",
            "sampling/createMessage",
            "notifications/tools/list_changed",
        ],
        "{live:#?}"
    );
    // The server got the client's answers: the roots, and the sampled text.
    assert!(
        live.iter()
            .any(|m| m["params"]["data"] == json!("roots: file:///work"))
    );
    assert_eq!(
        recorded.responses[2]["result"]["content"][0]["text"],
        json!("summary: it is short")
    );
    assert_eq!(recorded.responses[4]["error"]["code"], json!(-32602));
    let run = run_id_of(&recorded.stderr, "recorded MCP run ");
    let events = event_list(&env.show(&run));
    let sampling_answered = events.iter().any(|(k, d)| {
        k == "mcp_message" && d["direction"] == json!("client_to_server") && d["method"].is_null()
    });
    assert!(sampling_answered, "{events:#?}");

    // Without the server, the client gets the same messages in the same order, and each
    // request of the server's own waits for the client's answer as it did.
    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let replayed = env.session(&["mcp", "replay", &run], &requests);
    assert_eq!(replayed.code, Some(0), "stderr: {}", replayed.stderr);
    assert_eq!(messages(&replayed), live);
    let replay_run = run_id_of(&replayed.stderr, " as ");
    let events = event_list(&env.show(&replay_run));
    let answers_from_client = events
        .iter()
        .filter(|(k, d)| {
            k == "mcp_message"
                && d["direction"] == json!("client_to_server")
                && d["method"].is_null()
        })
        .count();
    assert_eq!(answers_from_client, 2, "{events:#?}");
}

#[test]
fn records_the_stateless_era_and_replays_it_with_other_meta() {
    let env = Env::new();
    let requests = |version: &str, ids: [Value; 3]| {
        let [a, b, c] = ids;
        vec![
            request(a, "server/discover", json!({ "_meta": meta(version) })),
            request(b, "tools/list", json!({ "_meta": meta(version) })),
            call(
                c,
                "echo",
                json!({ "text": "stateless" }),
                Some(meta(version)),
            ),
        ]
    };
    let (run, recorded) = env.record(&requests("1.0", [json!(1), json!(2), json!(3)]));
    assert_eq!(
        recorded.responses[0]["result"]["supportedVersions"],
        json!(["2026-07-28"])
    );
    let events = event_list(&env.show(&run));
    let methods: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["method"].as_str())
        .collect();
    assert_eq!(methods, ["server/discover", "tools/list"]);
    assert!(events.iter().any(|(k, d)| k == "tool_call"
        && d["tool"] == json!("echo")
        && d["call_id"] == json!("3")));

    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let replayed = env.session(
        &["mcp", "replay", &run],
        &requests("9.9", [json!("a"), json!("b"), json!("c")]),
    );
    assert_eq!(replayed.code, Some(0), "stderr: {}", replayed.stderr);
    assert_eq!(replayed.responses.len(), 3);
    for ((live, replay), id) in recorded
        .responses
        .iter()
        .zip(&replayed.responses)
        .zip(["a", "b", "c"])
    {
        assert_eq!(replay["id"], json!(id));
        assert_eq!(without_id(live.clone()), without_id(replay.clone()));
    }
}

/// A discovery-era recording (`server/discover`, `tools/list`, one `echo` call with `_meta`).
fn record_discovery_era(env: &Env) -> String {
    let meta = meta("1.0");
    let (run, recorded) = env.record(&[
        request(json!(1), "server/discover", json!({ "_meta": meta })),
        request(json!(2), "tools/list", json!({ "_meta": meta })),
        call(json!(3), "echo", json!({ "text": "hello" }), Some(meta)),
    ]);
    assert_eq!(recorded.responses.len(), 3);
    run
}

#[test]
fn a_handshake_client_replays_a_discovery_era_recording() {
    let env = Env::new();
    let run = record_discovery_era(&env);
    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let requests = legacy_requests([json!(1), json!(2), json!(3), json!(4)]);
    // Without the unrecorded `nope` call: every request has an answer.
    let replayed = env.session(&["mcp", "replay", &run], &requests[..4]);
    assert_eq!(replayed.code, Some(0), "stderr: {}", replayed.stderr);
    // The handshake is built from the discovery, in the version the client asked for (the
    // fake's discovery lists only 2026-07-28, which a handshake-era client cannot speak).
    assert_eq!(
        replayed.responses[0],
        json!({
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "protocolVersion": "2025-06-18",
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "fake", "version": "1.0" },
            },
        })
    );
    // `notifications/initialized` has no recorded counterpart and needs none; the rest is
    // answered from the recording.
    assert_eq!(
        replayed.responses[1]["result"]["tools"][0]["name"],
        json!("echo")
    );
    assert_eq!(
        replayed.responses[2]["result"]["content"][0]["text"],
        json!("hello")
    );
    let show = env.show(&run_id_of(&replayed.stderr, " as "));
    assert_eq!(show["run"]["stop_reason"], json!("ok"), "{show}");
}

#[test]
fn a_recording_without_a_handshake_or_a_discovery_answers_initialize_with_an_error() {
    let env = Env::new();
    let (run, _) = env.record(&[request(json!(1), "tools/list", Value::Null)]);
    let replayed = env.session(
        &["mcp", "replay", &run],
        &legacy_requests([json!(1), json!(2), json!(3), json!(4)])[..1],
    );
    assert_eq!(replayed.code, Some(1), "stderr: {}", replayed.stderr);
    assert_eq!(
        replayed.responses[0]["error"],
        json!({
            "code": -32601,
            "message": "tapedeck replay: the recording has no `initialize` request and no `server/discover` answer",
        })
    );
}

#[test]
fn an_unrecorded_call_gets_an_error_naming_the_closest_recorded_call() {
    let env = Env::new();
    let (run, _) = env.record(&legacy_requests([json!(1), json!(2), json!(3), json!(4)]));
    let replayed = env.session(
        &["mcp", "replay", &run],
        &[
            call(json!(7), "echo", json!({ "text": "goodbye" }), None),
            request(json!(8), "resources/list", Value::Null),
        ],
    );
    assert_eq!(replayed.code, Some(1), "stderr: {}", replayed.stderr);
    let error = &replayed.responses[0]["error"];
    assert_eq!(replayed.responses[0]["id"], json!(7));
    let message = error["message"].as_str().expect("an error message");
    assert!(
        message.contains("echo({\"text\":\"goodbye\"})"),
        "{message}"
    );
    assert!(
        message.contains("closest recorded call is echo({\"text\":\"hello\"})"),
        "{message}"
    );
    assert_eq!(replayed.responses[1]["error"]["code"], json!(-32601));
    let show = env.show(&run_id_of(&replayed.stderr, " as "));
    assert_eq!(show["run"]["stop_reason"], json!("replay_miss:echo"));
}

#[test]
fn record_exits_with_the_server_code() {
    let env = Env::new();
    let session = env.session(
        &["mcp", "record", "--", "python3", "server.py", "3"],
        &[request(json!(1), "tools/list", Value::Null)],
    );
    assert_eq!(session.code, Some(3), "stderr: {}", session.stderr);
    assert_eq!(
        session.responses[0]["result"]["tools"][0]["name"],
        json!("echo")
    );
    let run = run_id_of(&session.stderr, "recorded MCP run ");
    let show = env.show(&run);
    assert_eq!(
        show["run"]["error"],
        json!("the MCP server exited with code 3")
    );
    // A server that exits non-zero failed, even after a session.
    assert_eq!(show["run"]["status"], json!("error"));
    assert_eq!(show["run"]["stop_reason"], json!("tool_error:mcp_server"));
}

/// Regression: a server that failed to start — it exits 1 at once, before any message, as
/// `python3 -m` of a module that is not installed does — was recorded `ok`, its exit code only
/// a note in the run's error.
#[test]
fn a_server_that_exits_before_any_message_ends_the_run_as_an_error() {
    let env = Env::new();
    let session = env.session(
        &[
            "mcp",
            "record",
            "--",
            "python3",
            "-m",
            "tapedeck_no_such_mcp_server",
        ],
        &[],
    );
    assert_eq!(session.code, Some(1), "stderr: {}", session.stderr);
    assert!(session.lines.is_empty(), "{:?}", session.lines);
    let run = run_id_of(&session.stderr, "recorded MCP run ");
    let show = env.show(&run);
    assert_eq!(show["run"]["status"], json!("error"));
    assert_eq!(show["run"]["stop_reason"], json!("tool_error:mcp_server"));
    assert_eq!(
        show["run"]["error"],
        json!(
            "the MCP server exited with code 1 before sending any message (did it start? see its stderr)"
        )
    );
    // `ls` shows it failed.
    let ls = env
        .tapedeck()
        .args(["ls", "--stop-reason", "tool_error:mcp_server", "--json"])
        .output()
        .expect("ls runs");
    let listed: Value = serde_json::from_slice(&ls.stdout).expect("ls --json is JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}

#[test]
fn a_server_that_cannot_start_is_an_input_error() {
    let env = Env::new();
    let output = env
        .tapedeck()
        .args(["mcp", "record", "--", "./no-such-server"])
        .stdin(Stdio::null())
        .output()
        .expect("tapedeck runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        "error: cannot start the MCP server `./no-such-server`: no such executable file\n"
    );
    assert!(!env.path("t.db").exists(), "nothing is written on exit 2");
}

// `mcp replay` whose client stopped reading left its run `incomplete` in half of the trials:
// the failed write ended the command before the run.
#[test]
fn a_replay_whose_client_goes_away_ends_its_run_cancelled() {
    let env = Env::new();
    let (run, _) = env.record(&legacy_requests([json!(1), json!(2), json!(3), json!(4)]));
    let mut child = env
        .tapedeck()
        .args(["mcp", "replay", &run])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tapedeck starts");
    // The client closes its reading end before asking anything: every answer fails to go out.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().expect("stdin");
    for request in legacy_requests([json!(1), json!(2), json!(3), json!(4)]) {
        // tapedeck may have ended already; what matters is how its run ended.
        if writeln!(stdin, "{request}").is_err() {
            break;
        }
    }
    drop(stdin);
    let output = child.wait_with_output().expect("tapedeck ends");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let replay = run_id_of(&stderr, &format!("replayed MCP run {run} as "));
    let show = env.show(&replay);
    assert_eq!(show["run"]["stop_reason"], json!("cancelled"), "{show}");
    assert!(
        show["run"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("the client went away")),
        "{show}"
    );
}

const OFFICIAL_CLIENT: &str = r#"import asyncio, json, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:])
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

#[test]
fn the_official_python_client_records_and_replays_mcp_server_time() {
    if !tapedeck_testkit::clients::require(
        "the mcp Python client or mcp-server-time",
        tapedeck_testkit::clients::python_imports("mcp, mcp_server_time"),
        "python3 -m pip install mcp mcp-server-time",
    ) {
        return;
    }
    let env = Env::new();
    std::fs::write(env.path("client.py"), OFFICIAL_CLIENT).expect("the client script");
    let (live, stderr) =
        env.python_client(&["mcp", "record", "--", "python3", "-m", "mcp_server_time"]);
    assert_eq!(live["tools"], json!(["convert_time", "get_current_time"]));
    let run = run_id_of(&stderr, "recorded MCP run ");
    let events = event_list(&env.show(&run));
    assert!(
        events
            .iter()
            .any(|(k, d)| k == "tool_call" && d["tool"] == json!("get_current_time")),
        "{events:?}"
    );
    assert!(events.iter().any(|(k, _)| k == "tool_result"));
    // The replay answers with the recorded time: the output is the same.
    let (replayed, _) = env.python_client(&["mcp", "replay", &run]);
    assert_eq!(replayed, live);
}

/// The official client of either era: `MCP_ERA=discover` probes with `server/discover` (the
/// 2026-07-28 era), anything else starts with the `initialize` handshake.
const ERA_CLIENT: &str = r#"import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            if os.environ.get("MCP_ERA") == "discover":
                await session.discover()
            else:
                await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool("get_current_time", {"timezone": "UTC"})
            print(json.dumps({
                "version": session.protocol_version,
                "server": session.server_info.name,
                "tools": sorted(t.name for t in tools.tools),
                "time": [c.text for c in result.content if c.type == "text"],
            }))

asyncio.run(main())
"#;

#[test]
fn the_official_handshake_client_replays_a_discovery_era_recording_of_mcp_server_time() {
    if !tapedeck_testkit::clients::require(
        "the mcp Python client or mcp-server-time",
        tapedeck_testkit::clients::python_imports("mcp, mcp_server_time"),
        "python3 -m pip install mcp mcp-server-time",
    ) {
        return;
    }
    let env = Env::new();
    std::fs::write(env.path("client.py"), ERA_CLIENT).expect("the client script");
    let (live, stderr) = env.python_client_with(
        &["mcp", "record", "--", "python3", "-m", "mcp_server_time"],
        &[("MCP_ERA", "discover")],
    );
    assert_eq!(live["version"], json!("2026-07-28"));
    let run = run_id_of(&stderr, "recorded MCP run ");
    let methods: Vec<String> = event_list(&env.show(&run))
        .into_iter()
        .filter_map(|(_, d)| d["method"].as_str().map(str::to_owned))
        .collect();
    assert!(
        methods.iter().any(|m| m == "server/discover")
            && !methods.iter().any(|m| m == "initialize"),
        "{methods:?}"
    );
    let (replayed, stderr) =
        env.python_client_with(&["mcp", "replay", &run], &[("MCP_ERA", "initialize")]);
    assert!(
        stderr.contains(&format!("replayed MCP run {run}")),
        "{stderr}"
    );
    // The SDK's own handshake version, the server's name from the discovery, the same tools
    // and the recorded time.
    assert_eq!(replayed["version"], json!("2025-11-25"));
    assert_eq!(replayed["server"], live["server"]);
    assert_eq!(replayed["tools"], live["tools"]);
    assert_eq!(replayed["time"], live["time"]);
}

const CALLBACK_CLIENT: &str = r#"import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

logs, asked = [], []

async def on_log(params):
    logs.append(params.data)

async def sample(context, params):
    asked.append("sampling")
    return types.CreateMessageResult(
        role="assistant", model="test-model", stopReason="endTurn",
        content=types.TextContent(type="text", text="it is short"))

async def roots(context):
    asked.append("roots")
    return types.ListRootsResult(roots=[types.Root(uri="file:///work", name="work")])

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, sampling_callback=sample,
                                 list_roots_callback=roots, logging_callback=on_log) as session:
            await session.initialize()
            result = await session.call_tool("summarize", {"text": "a long text"})
            print(json.dumps({"logs": logs, "asked": sorted(asked),
                              "result": [c.text for c in result.content if c.type == "text"]}))

asyncio.run(main())
"#;

#[test]
fn the_official_python_client_gets_the_servers_own_messages_in_replay() {
    if !tapedeck_testkit::clients::require(
        "the mcp Python client",
        tapedeck_testkit::clients::python_imports("mcp"),
        "python3 -m pip install mcp",
    ) {
        return;
    }
    let env = Env::new();
    std::fs::write(env.path("client.py"), CALLBACK_CLIENT).expect("the client script");
    let (live, stderr) = env.python_client(&["mcp", "record", "--", "python3", "server.py"]);
    assert_eq!(
        live,
        json!({
            "logs": ["starting", "roots: file:///work", "summarizing"],
            "asked": ["roots", "sampling"],
            "result": ["summary: it is short"],
        })
    );
    let run = run_id_of(&stderr, "recorded MCP run ");
    std::fs::remove_file(env.path("server.py")).expect("the server is removed");
    let (replayed, _) = env.python_client(&["mcp", "replay", &run]);
    assert_eq!(replayed, live);
}

#[test]
fn a_server_that_lingers_after_the_client_closed_is_stopped() {
    let env = Env::new();
    std::fs::write(
        env.path("linger.py"),
        "import sys, time\nfor line in sys.stdin:\n    pass\ntime.sleep(120)\n",
    )
    .expect("the script");
    let started = std::time::Instant::now();
    let session = env.session(
        &["mcp", "record", "--", "python3", "linger.py"],
        &[notification("notifications/initialized")],
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "the server was not stopped"
    );
    assert_ne!(session.code, Some(0), "stderr: {}", session.stderr);
    let run = run_id_of(&session.stderr, "recorded MCP run ");
    let show = env.show(&run);
    assert_eq!(
        show["run"]["error"],
        json!("the MCP server was killed by a signal")
    );
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
