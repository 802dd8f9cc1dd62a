//! A fake session: the server side of the session protocol (`clients/PROTOCOL.md`) on
//! 127.0.0.1, with canned answers, keeping every request it received in order. `tapedeck mcp`
//! is tested against it until a real session runs under `tapedeck record`/`replay -- CMD`.
//!
//! HTTP/1.1 with keep-alive, one thread per connection; bodies are JSON with a
//! `content-length`, as the protocol says.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// The base path of version 1.
const BASE: &str = "/tapedeck/session/v1/";

/// The run the fake says it holds.
pub const RUN: &str = "5e55104e";

#[derive(Default)]
struct State {
    mode: &'static str,
    /// (endpoint, body) of every request, in the order they came.
    received: Vec<(String, Value)>,
    /// `mcp/recording` answers: the messages by server name.
    recordings: HashMap<String, Value>,
    /// `call` answers in a replay, in turn; a miss when they run out.
    answers: VecDeque<Value>,
    calls: usize,
    refuse_hello: bool,
}

/// A running fake session; its threads end with the test process.
pub struct FakeSession {
    /// The value of `TAPEDECK_SESSION` for it.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeSession {
    /// A session in `mode` (`record` or `replay`).
    pub fn start(mode: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let state = Arc::new(Mutex::new(State {
            mode,
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/tapedeck/session/v1"),
            state,
        }
    }

    /// Answers `mcp/recording` for `server` with `messages`.
    pub fn with_recording(self, server: &str, messages: Value) -> Self {
        self.lock().recordings.insert(server.to_owned(), messages);
        self
    }

    /// Answers the `call`s of a replay with `answers`, in turn.
    pub fn with_call_answers(self, answers: Vec<Value>) -> Self {
        self.lock().answers = answers.into();
        self
    }

    /// Refuses `hello` as a session of another protocol version does.
    pub fn refusing_hello(self) -> Self {
        self.lock().refuse_hello = true;
        self
    }

    /// Every request received so far, as (endpoint, body).
    pub fn received(&self) -> Vec<(String, Value)> {
        self.lock().received.clone()
    }

    /// The bodies received at `endpoint`, in order.
    pub fn bodies(&self, endpoint: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|(e, _)| e == endpoint)
            .map(|(_, body)| body)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("the fake session's state")
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut writer = stream.try_clone().expect("a second handle");
    let mut reader = BufReader::new(stream);
    while let Some((path, body)) = read_request(&mut reader) {
        let (status, answer) = match path.strip_prefix(BASE) {
            Some(endpoint) => answer(state, endpoint, body),
            None => (404, bad_request("not a session path")),
        };
        let body = answer.to_string();
        let reason = if status == 200 { "OK" } else { "Bad Request" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(body.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

fn bad_request(message: &str) -> Value {
    json!({ "error": { "type": "bad_request", "message": message } })
}

fn answer(state: &Mutex<State>, endpoint: &str, body: Value) -> (u16, Value) {
    let mut state = state.lock().expect("the fake session's state");
    state.received.push((endpoint.to_owned(), body.clone()));
    match endpoint {
        "hello" if state.refuse_hello => (
            400,
            json!({ "error": { "type": "protocol", "message": "this session speaks protocol 7" } }),
        ),
        "hello" => (
            200,
            json!({ "protocol": 1, "mode": state.mode, "run": RUN, "later_field": true }),
        ),
        "call" if state.mode == "record" => {
            state.calls += 1;
            (
                200,
                json!({ "action": "run", "call": format!("c{}", state.calls) }),
            )
        }
        "call" => {
            let tool = body["tool"].as_str().unwrap_or_default().to_owned();
            let answer = state.answers.pop_front().unwrap_or_else(
                || json!({ "action": "miss", "message": format!("no recorded call of `{tool}`") }),
            );
            (200, answer)
        }
        "outcome" | "mcp" => (200, json!({})),
        "mcp/recording" => {
            let server = body["server"].as_str().unwrap_or_default();
            let messages = state.recordings.get(server).cloned().unwrap_or(json!([]));
            (200, json!({ "messages": messages }))
        }
        _ => (404, bad_request("unknown endpoint")),
    }
}

/// Reads one request: its path and JSON body; `None` when the connection ends.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Value)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    assert_eq!(
        parts.next(),
        Some("POST"),
        "the protocol only POSTs: {line:?}"
    );
    let path = parts.next()?.to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a content-length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, serde_json::from_slice(&body).expect("a JSON body")))
}
