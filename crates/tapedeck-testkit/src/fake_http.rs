//! A fake model API on 127.0.0.1 (port 0), [`FakeServer`], for the tests of the model backends,
//! runs and proxies: it records each request (head and body, read by `Content-Length`) and
//! answers with the next canned [`Reply`], one connection per reply (`connection: close`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

/// A piece of a [`Reply::Sse`] that is not sent: the server waits a second there.
pub const PAUSE: &str = "<pause>";

/// What the server answers one request with.
pub enum Reply {
    /// A whole body.
    Body {
        /// The HTTP status.
        status: u16,
        /// Extra headers.
        headers: Vec<(&'static str, String)>,
        /// The `content-type`.
        content_type: &'static str,
        /// The body.
        body: String,
    },
    /// A server-sent-events stream, written in pieces and ended by closing the connection.
    Sse(Vec<String>),
    /// A server-sent-events stream written piece by piece. `chunked` uses
    /// `Transfer-Encoding: chunked` (else the body ends at the close); `cut` closes the
    /// connection after the pieces without finishing the body.
    Stream {
        /// The pieces, each written and flushed on its own.
        pieces: Vec<String>,
        /// Whether to use chunked transfer encoding.
        chunked: bool,
        /// Whether to end without finishing the body.
        cut: bool,
    },
    /// Reads the request and answers nothing for this long.
    Silent(Duration),
    /// Sends the head of an SSE answer and the pieces, then nothing for `pause`.
    StallStream {
        /// What is sent before the stall.
        pieces: Vec<String>,
        /// How long it stalls.
        pause: Duration,
    },
}

impl Reply {
    /// A JSON body with a status.
    pub fn json(status: u16, body: &Value) -> Self {
        Self::Body {
            status,
            headers: vec![],
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    /// A body of any text.
    pub fn text(status: u16, content_type: &'static str, body: &str) -> Self {
        Self::Body {
            status,
            headers: vec![],
            content_type,
            body: body.to_owned(),
        }
    }

    /// With an extra header (for `Body` replies).
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Self::Body { headers, .. } = &mut self {
            headers.push((name, value.to_owned()));
        }
        self
    }

    /// An SSE stream of `text` cut into pieces of `size` bytes (so lines and even `\r\n`
    /// pairs are split across writes).
    pub fn sse(text: &str, size: usize) -> Self {
        Self::Stream {
            pieces: pieces(text, size),
            chunked: false,
            cut: false,
        }
    }
}

/// `text` in pieces of at most `size` bytes.
pub fn pieces(text: &str, size: usize) -> Vec<String> {
    text.as_bytes()
        .chunks(size)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The request method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// A header's value (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; a body that is not JSON fails the test.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

/// A running fake server; it stops after its last reply.
pub struct FakeServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    /// Serves `replies`, one connection each, in order.
    pub fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base = format!(
            "http://{}",
            listener.local_addr().expect("the listener's address")
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        thread::spawn(move || {
            for reply in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                serve(stream, reply, &seen);
            }
        });
        Self { base, requests }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("the request log").clone()
    }

    /// The only request received; another count fails the test.
    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected one request");
        requests.into_iter().next().expect("one request")
    }
}

fn serve(stream: TcpStream, reply: Reply, seen: &Mutex<Vec<Recorded>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    seen.lock().expect("the request log").push(request);
    let mut out = stream;
    // An error writing means the client went away: nothing to do about it here.
    let _ = write_reply(&mut out, reply);
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

fn write_reply(out: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Body {
            status,
            headers,
            content_type,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} Whatever\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            out.write_all(head.as_bytes())?;
            out.write_all(body.as_bytes())?;
            out.flush()
        }
        Reply::Sse(pieces) => write_stream(out, pieces, false, false),
        Reply::Stream {
            pieces,
            chunked,
            cut,
        } => write_stream(out, pieces, chunked, cut),
        Reply::Silent(pause) => {
            thread::sleep(pause);
            Ok(())
        }
        Reply::StallStream { pieces, pause } => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
            )?;
            for piece in pieces {
                out.write_all(piece.as_bytes())?;
            }
            out.flush()?;
            thread::sleep(pause);
            Ok(())
        }
    }
}

/// Writes an SSE answer piece by piece, flushing each; a [`PAUSE`] piece waits a second.
fn write_stream(
    out: &mut TcpStream,
    pieces: Vec<String>,
    chunked: bool,
    cut: bool,
) -> std::io::Result<()> {
    let encoding = if chunked {
        "transfer-encoding: chunked\r\n"
    } else {
        ""
    };
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n{encoding}connection: close\r\n\r\n"
    )?;
    out.flush()?;
    for piece in pieces {
        if piece == PAUSE {
            thread::sleep(Duration::from_secs(1));
            continue;
        }
        if chunked {
            write!(out, "{:x}\r\n{piece}\r\n", piece.len())?;
        } else {
            out.write_all(piece.as_bytes())?;
        }
        out.flush()?;
        thread::sleep(Duration::from_millis(1));
    }
    if cut {
        return out.shutdown(std::net::Shutdown::Both);
    }
    if chunked {
        out.write_all(b"0\r\n\r\n")?;
        out.flush()?;
    }
    out.shutdown(std::net::Shutdown::Write)
}
