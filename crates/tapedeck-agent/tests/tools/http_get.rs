//! The builtin `http.get` against a small server on 127.0.0.1 (and never any other address).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_agent::tool::http_get::{HttpGet, MAX_BODY};
use tapedeck_agent::tool::{ToolBackend, ToolFailure};

/// A local HTTP/1.1 server answering a few fixed routes, counting the requests it got.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || serve(stream, addr, &counter));
            }
        });
        Self { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, addr: SocketAddr, hits: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut probe = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("x-probe")
                {
                    probe = value.trim().to_owned();
                }
            }
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let port = addr.port();
    let (status, headers, body): (&str, Vec<String>, Vec<u8>) = match path.as_str() {
        "/json" => (
            "200 OK",
            vec![
                "Content-Type: application/json; charset=utf-8".into(),
                "ETag: \"v1\"".into(),
            ],
            br#"{"status": "ok", "components": [{"name": "api", "up": true}]}"#.to_vec(),
        ),
        "/text" => (
            "200 OK",
            vec!["Content-Type: text/plain".into()],
            b"all good".to_vec(),
        ),
        "/bad-json" => (
            "200 OK",
            vec!["Content-Type: application/json".into()],
            b"{not json".to_vec(),
        ),
        "/big" => (
            "200 OK",
            vec!["Content-Type: text/plain".into()],
            vec![b'z'; 100_000],
        ),
        "/probe" => (
            "200 OK",
            vec!["Content-Type: application/json".into()],
            json!({"probe": probe}).to_string().into_bytes(),
        ),
        "/503" => (
            "503 Service Unavailable",
            vec!["Content-Type: text/plain".into(), "Retry-After: 30".into()],
            b"upstream overloaded,\n  try later".to_vec(),
        ),
        "/404" => ("404 Not Found", vec![], Vec::new()),
        "/hop" => ("302 Found", vec!["Location: /json".into()], Vec::new()),
        "/away" => (
            "302 Found",
            vec!["Location: http://not-allowed.invalid/json".into()],
            Vec::new(),
        ),
        "/localhost" => (
            "302 Found",
            vec![format!("Location: http://localhost:{port}/json")],
            Vec::new(),
        ),
        "/loop" => ("302 Found", vec!["Location: /loop".into()], Vec::new()),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            (
                "200 OK",
                vec!["Content-Type: application/json".into()],
                b"{}".to_vec(),
            )
        }
        _ => ("404 Not Found", vec![], b"no such route".to_vec()),
    };
    let mut stream = stream;
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(&header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

fn tool(hosts: &[&str]) -> HttpGet {
    HttpGet::new(hosts.iter().map(|h| (*h).to_owned()).collect()).expect("valid allow_hosts")
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn get(tool: &HttpGet, url: &str) -> Result<Value, ToolFailure> {
    tool.call(&json!({ "url": url }), TIMEOUT)
}

#[test]
fn an_allowed_host_answers_with_status_headers_and_a_json_body() {
    let server = Server::start();
    let out = get(&tool(&["127.0.0.1"]), &server.url("/json")).expect("fetched");
    assert_eq!(out["status"], 200);
    assert_eq!(
        out["headers"]["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(out["headers"]["etag"], "\"v1\"");
    assert_eq!(
        out["body"],
        json!({"status": "ok", "components": [{"name": "api", "up": true}]})
    );
    assert!(out.get("truncated").is_none());
    assert!(out.get("url").is_none());

    let out = get(&tool(&["127.0.0.1"]), &server.url("/text")).expect("fetched");
    assert_eq!(out["body"], "all good");
    // Says JSON but is not: the text comes back as it is.
    let out = get(&tool(&["127.0.0.1"]), &server.url("/bad-json")).expect("fetched");
    assert_eq!(out["body"], "{not json");
}

#[test]
fn a_port_in_allow_hosts_allows_only_that_port() {
    let server = Server::start();
    let port = server.addr.port();
    let exact = tool(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(
        get(&exact, &server.url("/json")).expect("fetched")["status"],
        200
    );
    let other = tool(&["127.0.0.1:1"]);
    assert!(matches!(
        get(&other, &server.url("/json")),
        Err(ToolFailure::Unavailable(_))
    ));
}

#[test]
fn a_host_not_allowed_is_refused_without_a_request() {
    let server = Server::start();
    let port = server.addr.port();
    let t = tool(&["status.example.com"]);
    assert_eq!(
        get(&t, &server.url("/json")),
        Err(ToolFailure::Unavailable(
            "host `127.0.0.1` is not in allow_hosts of http.get".to_owned()
        ))
    );
    // `localhost` is the same machine but not the same host name.
    let t = tool(&["127.0.0.1"]);
    assert!(matches!(
        get(&t, &format!("http://localhost:{port}/json")),
        Err(ToolFailure::Unavailable(m)) if m.contains("`localhost`")
    ));
    assert!(matches!(
        get(&t, &format!("ftp://127.0.0.1:{port}/json")),
        Err(ToolFailure::Unavailable(m)) if m.contains("not `ftp`")
    ));
    assert_eq!(server.hits(), 0, "no request may reach the server");

    assert!(
        matches!(t.call(&json!({}), TIMEOUT), Err(ToolFailure::Failed(m)) if m.contains("`url`"))
    );
    assert!(matches!(get(&t, "not a url"), Err(ToolFailure::Failed(_))));
    assert!(HttpGet::new(vec!["https://x.com/path".to_owned()]).is_err());
}

#[test]
fn an_http_error_status_is_a_tool_failure() {
    let server = Server::start();
    let t = tool(&["127.0.0.1"]);
    assert_eq!(
        get(&t, &server.url("/503")),
        Err(ToolFailure::Failed(
            "HTTP 503 Service Unavailable: upstream overloaded, try later".to_owned()
        ))
    );
    assert_eq!(
        get(&t, &server.url("/404")),
        Err(ToolFailure::Failed("HTTP 404 Not Found".to_owned()))
    );
}

#[test]
fn redirects_are_followed_only_to_allowed_hosts() {
    let server = Server::start();
    let t = tool(&["127.0.0.1"]);
    let out = get(&t, &server.url("/hop")).expect("followed");
    assert_eq!(out["status"], 200);
    assert_eq!(out["url"], server.url("/json"));

    let before = server.hits();
    assert_eq!(
        get(&t, &server.url("/away")),
        Err(ToolFailure::Unavailable(
            "redirect to host `not-allowed.invalid` refused: it is not in allow_hosts of http.get"
                .to_owned()
        ))
    );
    assert!(matches!(
        get(&t, &server.url("/localhost")),
        Err(ToolFailure::Unavailable(m)) if m.contains("`localhost`")
    ));
    // Only the redirecting requests themselves reached the server.
    assert_eq!(server.hits(), before + 2);

    assert!(matches!(
        get(&t, &server.url("/loop")),
        Err(ToolFailure::Failed(m)) if m == "more than 10 redirects"
    ));
}

#[test]
fn a_long_body_is_cut_and_marked() {
    let server = Server::start();
    let out = get(&tool(&["127.0.0.1"]), &server.url("/big")).expect("fetched");
    assert_eq!(out["body"].as_str().map(str::len), Some(MAX_BODY));
    assert_eq!(out["truncated"], true);
    assert_eq!(out["headers"]["content-length"], "100000");
}

#[test]
fn request_headers_are_sent_and_host_cannot_be_forged() {
    let server = Server::start();
    let t = tool(&["127.0.0.1"]);
    let out = t
        .call(
            &json!({"url": server.url("/probe"), "headers": {"X-Probe": "hello"}}),
            TIMEOUT,
        )
        .expect("fetched");
    assert_eq!(out["body"], json!({"probe": "hello"}));
    let forged = t.call(
        &json!({"url": server.url("/probe"), "headers": {"Host": "evil.com"}}),
        TIMEOUT,
    );
    assert!(matches!(forged, Err(ToolFailure::Failed(m)) if m.contains("Host")));
    let bad = t.call(
        &json!({"url": server.url("/probe"), "headers": {"X-Probe": 1}}),
        TIMEOUT,
    );
    assert!(matches!(bad, Err(ToolFailure::Failed(_))));
}

#[test]
fn a_slow_server_times_out() {
    let server = Server::start();
    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let result = tool(&["127.0.0.1"]).call(&json!({"url": server.url("/slow")}), timeout);
    assert_eq!(result, Err(ToolFailure::Timeout(timeout)));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_closed_port_cannot_be_reached() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    match get(
        &tool(&["127.0.0.1"]),
        &format!("http://127.0.0.1:{port}/json"),
    ) {
        Err(ToolFailure::Failed(message)) => {
            assert!(
                message.starts_with(&format!("cannot reach 127.0.0.1:{port}: ")),
                "{message}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn https_uses_the_installed_tls_provider() {
    // The local server speaks plain HTTP, so the TLS handshake fails: cleanly, as a tool
    // failure (no panic about a missing rustls crypto provider).
    let server = Server::start();
    let url = server.url("/json").replacen("http://", "https://", 1);
    match get(&tool(&["127.0.0.1"]), &url) {
        Err(ToolFailure::Failed(message)) => {
            assert!(message.starts_with("cannot reach 127.0.0.1:"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}
