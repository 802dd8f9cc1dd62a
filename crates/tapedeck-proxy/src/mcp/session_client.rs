//! The client side of the session protocol (`clients/PROTOCOL.md`), as `tapedeck mcp` speaks
//! it: [`SessionClient`]. The messages are the protocol's own types, [`crate::session`], which
//! the session's server parses too.
//!
//! Blocking HTTP/1.1 over one kept-alive `TcpStream`: the session is a local tapedeck process,
//! its answers are small JSON objects with a `content-length`, and a call costs one local round
//! trip — an HTTP library would add a runtime thread and TLS setup for none of that.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::{Value, json};
use tapedeck_trace::Direction;

use crate::session::{
    Action, Call, ENV_VAR, Hello, Kind, McpNote, McpRecorded, McpRecordingAnswer,
    McpRecordingRequest, PROTOCOL, ToolError, Welcome,
};

/// How long connecting and the answer to `hello` may take before the session counts as
/// unreachable (`clients/PROTOCOL.md`): a listener that accepts and never answers is not a
/// session.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a session's answer may hold: a server's whole recording (`mcp/recording`) is the
/// largest answer, and a length beyond this is a broken answer rather than a recording.
const MAX_BODY: usize = 1 << 30;

/// The most a status line or a header may hold.
const MAX_LINE: usize = 64 * 1024;

/// What went wrong talking to a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The variable's value is not an `http://HOST:PORT/PATH` URL.
    #[error(
        "{ENV_VAR}={url} is not a session URL ({reason}): expected http://127.0.0.1:PORT/tapedeck/session/v1"
    )]
    BadUrl {
        /// The value.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No connection could be made: the session ended, or the value is stale.
    #[error("{ENV_VAR}={url} is not reachable ({source})")]
    Unreachable {
        /// The session's URL.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed during an exchange.
    #[error("the session at {url} went away during `{endpoint}`: {source}")]
    Io {
        /// The session's URL.
        url: String,
        /// The endpoint being called.
        endpoint: String,
        /// Why.
        source: std::io::Error,
    },
    /// The session answered with an error status: a bug in this client or a version mismatch.
    #[error("the session refused `{endpoint}` ({status} {kind}): {message}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The error's `type` (`bad_request`, `protocol`, …).
        kind: String,
        /// The error's message.
        message: String,
    },
    /// The answer was not what the protocol says.
    #[error("the session's answer to `{endpoint}` is not valid: {reason}")]
    BadAnswer {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
}

impl SessionError {
    /// Whether the session could not be reached at all — a value that is no session URL, no
    /// connection, or one dropped before `hello` was answered (a stale value whose port another
    /// program took) — so the caller behaves as outside a session, with a warning, rather than
    /// a session that answered wrongly.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::BadUrl { .. } | Self::Unreachable { .. } => true,
            Self::Io { endpoint, .. } => endpoint == "hello",
            _ => false,
        }
    }
}

/// A connection to a session (`TAPEDECK_SESSION`), kept open between calls.
pub struct SessionClient {
    url: String,
    /// `host:port`, for the `Host` header.
    authority: String,
    /// The base path, without a trailing slash.
    path: String,
    addrs: Vec<SocketAddr>,
    stream: Option<BufReader<TcpStream>>,
    /// Whether `stream` has carried an exchange already (so the session may have closed it
    /// while it was idle).
    reused: bool,
    /// How long an answer may take (`hello` only).
    timeout: Option<Duration>,
}

impl std::fmt::Debug for SessionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl SessionClient {
    /// Connects to the session at `url` (an `http://HOST:PORT/PATH` URL).
    pub fn connect(url: &str) -> Result<Self, SessionError> {
        let bad = |reason| SessionError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("not http://"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let unreachable = |source| SessionError::Unreachable {
            url: url.to_owned(),
            source,
        };
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(unreachable)?
            .collect();
        let mut client = Self {
            url: url.to_owned(),
            authority: authority.to_owned(),
            path: path.trim_end_matches('/').to_owned(),
            addrs,
            stream: None,
            reused: false,
            timeout: Some(HELLO_TIMEOUT),
        };
        client.stream = Some(client.open().map_err(unreachable)?);
        Ok(client)
    }

    /// The session's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Announces this client (`tapedeck-mcp/VERSION`) and learns the session's mode and run.
    /// A session that does not answer within 5 seconds is unreachable.
    pub fn hello(&mut self, client: &str) -> Result<Welcome, SessionError> {
        let hello = Hello {
            protocol: PROTOCOL,
            client: client.to_owned(),
        };
        self.timeout = Some(HELLO_TIMEOUT);
        let welcome = self.post::<Welcome>("hello", &hello);
        // Later calls wait as long as the session takes: a tool's answer in a replay may come
        // only after the session has read the recording.
        self.timeout = None;
        if let Some(stream) = &self.stream {
            stream
                .get_ref()
                .set_read_timeout(None)
                .map_err(|source| SessionError::Io {
                    url: self.url.clone(),
                    endpoint: "hello".to_owned(),
                    source,
                })?;
        }
        let welcome = welcome.map_err(|e| match e {
            SessionError::Io { url, source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                SessionError::Unreachable {
                    url,
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer to hello within {} s", HELLO_TIMEOUT.as_secs()),
                    ),
                }
            }
            e => e,
        })?;
        if welcome.protocol != PROTOCOL {
            return Err(SessionError::BadAnswer {
                endpoint: "hello".to_owned(),
                reason: format!(
                    "it speaks protocol {}, this client {PROTOCOL}",
                    welcome.protocol
                ),
            });
        }
        Ok(welcome)
    }

    /// Tells the session a tool of `kind` is called with `args`, and learns what to do.
    pub fn call(&mut self, tool: &str, kind: Kind, args: &Value) -> Result<Action, SessionError> {
        let call = Call {
            tool: tool.to_owned(),
            kind,
            args: args.clone(),
        };
        self.post("call", &call)
    }

    /// Sends what the tool of call `call` returned (`Ok`) or failed with (`Err`), and how long
    /// it took. (Built here rather than from [`crate::session::Outcome`], which would send
    /// `"error": null` beside a result: the protocol has exactly one of them.)
    pub fn outcome(
        &mut self,
        call: &str,
        outcome: Result<&Value, &ToolError>,
        latency_ms: f64,
    ) -> Result<(), SessionError> {
        let mut body = json!({ "call": call, "latency_ms": latency_ms });
        match outcome {
            Ok(result) => body["result"] = result.clone(),
            Err(error) => body["error"] = json!(error),
        }
        self.post::<Value>("outcome", &body).map(drop)
    }

    /// Sends one message of an MCP session with `server` (not a `tools/call` or its response).
    pub fn mcp(
        &mut self,
        server: &str,
        direction: Direction,
        message: &Value,
    ) -> Result<(), SessionError> {
        let note = McpNote {
            server: server.to_owned(),
            direction,
            message: message.clone(),
        };
        self.post::<Value>("mcp", &note).map(drop)
    }

    /// The messages recorded for `server` in the run being replayed, in order.
    pub fn mcp_recording(&mut self, server: &str) -> Result<Vec<McpRecorded>, SessionError> {
        let request = McpRecordingRequest {
            server: server.to_owned(),
        };
        let recording: McpRecordingAnswer = self.post("mcp/recording", &request)?;
        Ok(recording.messages)
    }

    fn open(&self) -> std::io::Result<BufReader<TcpStream>> {
        let mut last = None;
        for addr in &self.addrs {
            match TcpStream::connect_timeout(addr, HELLO_TIMEOUT) {
                Ok(stream) => {
                    // Small requests answered at once: Nagle's algorithm would hold each one
                    // back waiting for the previous answer's acknowledgement.
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(self.timeout)?;
                    return Ok(BufReader::new(stream));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address")
        }))
    }

    /// POSTs `body` to `endpoint` and reads the JSON answer as `T`.
    fn post<T: serde::de::DeserializeOwned>(
        &mut self,
        endpoint: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, SessionError> {
        let body = serde_json::to_vec(body).map_err(|e| SessionError::BadAnswer {
            endpoint: endpoint.to_owned(),
            reason: format!("the request could not be written: {e}"),
        })?;
        let mut request = format!(
            "POST {}/{endpoint} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.path,
            self.authority,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let url = self.url.clone();
        let io = |source| SessionError::Io {
            url: url.clone(),
            endpoint: endpoint.to_owned(),
            source,
        };
        let answer = match self.exchange(&request) {
            // A kept-alive connection the session closed while idle fails before any byte of
            // the answer: the request was not taken, so it is sent once more on a new one. (A
            // new connection that fails so is not retried: the session may have taken it.)
            Err(Exchange::Unsent(_)) if self.reused => {
                self.stream = None;
                self.exchange(&request)
            }
            answer => answer,
        };
        let (status, body, keep) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                self.stream = None;
                return Err(io(e.into_io()));
            }
        };
        self.reused = keep;
        if !keep {
            self.stream = None;
        }
        let bad = |reason: String| SessionError::BadAnswer {
            endpoint: endpoint.to_owned(),
            reason,
        };
        if status != 200 {
            let error = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").cloned());
            let text = |field| {
                error
                    .as_ref()
                    .and_then(|e| e.get(field))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            return Err(SessionError::Refused {
                endpoint: endpoint.to_owned(),
                status,
                kind: text("type").unwrap_or_else(|| "error".to_owned()),
                message: text("message")
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned()),
            });
        }
        serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))
    }

    /// Sends one request and reads its answer: (status, body, whether the connection stays
    /// open).
    fn exchange(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>, bool), Exchange> {
        let stream = match self.stream.as_mut() {
            Some(stream) => stream,
            None => {
                self.reused = false;
                self.stream.insert(self.open().map_err(Exchange::Unsent)?)
            }
        };
        stream
            .get_mut()
            .write_all(request)
            .and_then(|()| stream.get_mut().flush())
            .map_err(Exchange::Unsent)?;
        let status_line = read_line(stream).map_err(Exchange::Unsent)?;
        if status_line.is_empty() {
            return Err(Exchange::Unsent(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed before an answer",
            )));
        }
        read_answer(stream, &status_line).map_err(Exchange::Failed)
    }
}

/// How an exchange failed: before the session could have taken the request (it may be sent
/// again), or after.
enum Exchange {
    Unsent(std::io::Error),
    Failed(std::io::Error),
}

impl Exchange {
    fn into_io(self) -> std::io::Error {
        match self {
            Self::Unsent(e) | Self::Failed(e) => e,
        }
    }
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Reads one line without its `\r\n`; empty at the end of the stream.
fn read_line(stream: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = Vec::new();
    stream
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if !line.is_empty() && !line.ends_with(b"\n") {
        return Err(invalid(
            "a line of the answer is too long or cut short".to_owned(),
        ));
    }
    let line = String::from_utf8(line).map_err(|_| invalid("the answer is not text".to_owned()))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads the rest of an answer after its status line: (status, body, keep-alive).
fn read_answer(
    stream: &mut BufReader<TcpStream>,
    status_line: &str,
) -> std::io::Result<(u16, Vec<u8>, bool)> {
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| invalid(format!("not an HTTP status line: {status_line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep = version == "HTTP/1.1";
    loop {
        let line = read_line(stream)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid(format!("not a header: {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= MAX_BODY)
                    .ok_or_else(|| invalid(format!("content-length {value}")))?;
                length = Some(n);
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size_line = read_line(stream)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .ok()
                .filter(|n| body.len() + n <= MAX_BODY)
                .ok_or_else(|| invalid(format!("chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, up to the blank line.
                while !read_line(stream)?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            stream.read_exact(&mut body[start..])?;
            read_line(stream)?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        stream.read_exact(&mut body)?;
    } else {
        // Neither: the body runs to the end of the connection.
        stream.take(MAX_BODY as u64).read_to_end(&mut body)?;
        keep = false;
    }
    Ok((status, body, keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Mode;

    #[test]
    fn urls_that_are_not_sessions_are_refused_before_connecting() {
        for (url, reason) in [
            ("https://127.0.0.1:1/x", "not http://"),
            ("http:///tapedeck", "no host"),
            ("http://127.0.0.1:port/x", "the port is not a number"),
        ] {
            match SessionClient::connect(url) {
                Err(SessionError::BadUrl { reason: r, .. }) => assert_eq!(r, reason, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    /// A session on 127.0.0.1 that answers each connection's requests with `answers` (raw
    /// HTTP), in turn, then closes it; returns its URL.
    fn scripted_session(connections: Vec<Vec<String>>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("an address").port();
        std::thread::spawn(move || {
            for answers in connections {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                for answer in answers {
                    // The request: its head, then its content-length body.
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = n.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let _ = reader.get_mut().write_all(answer.as_bytes());
                }
            }
        });
        format!("http://127.0.0.1:{port}/tapedeck/session/v1")
    }

    /// An answer with a content-length.
    fn answer(status: &str, body: &Value) -> String {
        let body = body.to_string();
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn a_connection_closed_while_idle_is_opened_again() {
        let hello = answer(
            "200 OK",
            &json!({ "protocol": 1, "mode": "replay", "run": "ab" }),
        );
        // The second in two chunks.
        let (first, second) = ("{\"protocol\"", ":1,\"mode\":\"record\",\"run\":\"cd\"}");
        let chunked = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
            first.len(),
            second.len()
        );
        let url = scripted_session(vec![vec![hello], vec![chunked]]);
        let mut client = SessionClient::connect(&url).expect("a session");
        let hello = client.hello("test/1").expect("hello");
        assert_eq!((hello.mode, hello.run.as_str()), (Mode::Replay, "ab"));
        // The session closed the first connection after one answer: the next request goes on
        // a new one.
        let hello = client.hello("test/1").expect("hello again");
        assert_eq!((hello.mode, hello.run.as_str()), (Mode::Record, "cd"));
    }

    #[test]
    fn an_error_status_is_refused_with_the_sessions_message() {
        let refused = answer(
            "404 Not Found",
            &json!({ "error": { "type": "bad_request", "message": "unknown endpoint" } }),
        );
        let url = scripted_session(vec![vec![refused]]);
        let mut client = SessionClient::connect(&url).expect("a session");
        let err = client
            .mcp_recording("time")
            .expect_err("the session refuses");
        assert_eq!(
            err.to_string(),
            "the session refused `mcp/recording` (404 bad_request): unknown endpoint"
        );
        assert!(!err.is_unreachable());
    }

    #[test]
    fn a_listener_that_never_answers_hello_is_unreachable_after_5_seconds() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("an address").port();
        // Accepts, reads, and holds the connection without a word.
        std::thread::spawn(move || {
            let held: Vec<TcpStream> = listener.incoming().flatten().collect();
            drop(held);
        });
        let started = std::time::Instant::now();
        let mut client =
            SessionClient::connect(&format!("http://127.0.0.1:{port}/x")).expect("a connection");
        let err = client.hello("test/1").expect_err("no answer");
        assert!(err.is_unreachable(), "{err}");
        assert!(
            err.to_string()
                .ends_with("is not reachable (no answer to hello within 5 s)"),
            "{err}"
        );
        let waited = started.elapsed();
        assert!(
            waited >= HELLO_TIMEOUT && waited < HELLO_TIMEOUT * 3,
            "{waited:?}"
        );
    }

    #[test]
    fn a_session_that_closes_before_answering_hello_is_unreachable() {
        let url = scripted_session(vec![vec![]]);
        let mut client = SessionClient::connect(&url).expect("a connection");
        let err = client.hello("test/1").expect_err("no answer");
        assert!(err.is_unreachable(), "{err}");
    }

    #[test]
    fn fields_added_to_answers_within_version_1_are_ignored() {
        let answer: Action =
            serde_json::from_value(json!({ "action": "run", "call": "c7", "later": 1 }))
                .expect("a run answer");
        assert_eq!(
            answer,
            Action::Run {
                call: "c7".to_owned()
            }
        );
    }
}
