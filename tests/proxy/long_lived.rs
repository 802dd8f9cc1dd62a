//! `tapedeck proxy`: the long-lived proxy, one run per `x-tapedeck-run` header value, ended by
//! Ctrl-C (SIGINT) or SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use tapedeck_testkit::on_both_stores;

use serde_json::json;
use tapedeck_testkit::cli::{Interrupt, interrupt};

use crate::server::{FakeServer, Reply};
use crate::{Env, KEY, contains};

fn answer(text: &str) -> serde_json::Value {
    json!({"id": "x", "object": "chat.completion", "model": "gpt-test",
           "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
}

/// POSTs `body` to `path` of the proxy at `addr` on a fresh connection, with `headers` (each
/// line ending in `\r\n`) after the content type; returns the whole response.
pub(crate) fn post_raw(addr: &str, path: &str, headers: &str, body: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect to the proxy");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the response");
    out
}

/// One request over a fresh connection; returns the whole response.
fn post(addr: &str, run: &str, content: &str) -> String {
    let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": content}]})
        .to_string();
    let headers = format!("authorization: Bearer {KEY}\r\nx-tapedeck-run: {run}\r\n");
    String::from_utf8_lossy(&post_raw(addr, "/v1/chat/completions", &headers, &body)).into_owned()
}

/// A `tapedeck proxy` process, started with `args` after `--listen 127.0.0.1:0`.
pub(crate) struct LongLived {
    child: std::process::Child,
    stderr: BufReader<std::process::ChildStderr>,
    /// The address it listens on.
    pub(crate) addr: String,
}

impl LongLived {
    fn start(env: &Env, args: &[&str]) -> Self {
        Self::start_in(env, &env.store_arg(), args)
    }

    /// [`LongLived::start`] recording into the store `store` (a file or a URL).
    pub(crate) fn start_in(env: &Env, store: &str, args: &[&str]) -> Self {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("tapedeck"))
            .current_dir(env.dir.path())
            .env("NO_COLOR", "1")
            .args(["--store", store, "proxy", "--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tapedeck proxy");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("the first line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Self {
            child,
            stderr,
            addr,
        }
    }

    /// Ctrl-C (SIGINT), then checks it exited 0; returns the ids of the runs it printed.
    pub(crate) fn stop(self) -> Vec<String> {
        self.stop_with(Interrupt::Int)
    }

    /// [`LongLived::stop`] with `signal`.
    fn stop_with(mut self, signal: Interrupt) -> Vec<String> {
        interrupt(&self.child, signal);
        let mut rest = String::new();
        self.stderr
            .read_to_string(&mut rest)
            .expect("the rest of stderr");
        let exit = self.child.wait().expect("tapedeck proxy ends");
        assert_eq!(exit.code(), Some(0), "{rest}");
        rest.lines()
            .filter_map(|l| l.strip_prefix("run "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }
}

// SIGTERM (how a service manager stops it) killed the proxy and left its open runs
// `incomplete`; it now ends them as Ctrl-C does.
#[test]
fn sigterm_ends_the_open_runs_as_ctrl_c_does() {
    let env = Env::new();
    let server = FakeServer::start(vec![Reply::json(200, &answer("one"))]);
    let upstream = format!("{}/v1", server.base);
    let proxy = LongLived::start(&env, &["--upstream-openai", &upstream]);
    assert!(post(&proxy.addr, "a", "first").contains("one"));
    let ids = proxy.stop_with(Interrupt::Term);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let show = env.show(&ids[0]);
    assert_eq!(show["run"]["status"], "ok", "{show}");
    assert_eq!(show["run"]["stop_reason"], "ok");
}

on_both_stores! {
    fn proxy_serves_one_run_per_session_header(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![
            Reply::json(200, &answer("one")),
            Reply::json(200, &answer("two")),
            Reply::json(200, &answer("three")),
        ]);
        let upstream = format!("{}/v1", server.base);
        let proxy = LongLived::start(&env, &["--upstream-openai", &upstream]);
        assert!(post(&proxy.addr, "a", "first").contains("one"));
        assert!(post(&proxy.addr, "b", "second").contains("two"));
        assert!(post(&proxy.addr, "a", "third").contains("three"));
        let ids = proxy.stop();
        assert_eq!(ids.len(), 2, "{ids:?}");
        let mut steps: Vec<(String, u64)> = ids
            .iter()
            .map(|id| {
                let show = env.show(id);
                assert_eq!(show["run"]["source"], "proxy");
                (
                    show["run"]["labels"]["x-tapedeck-run"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    show["run"]["totals"]["steps"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        steps.sort();
        assert_eq!(steps, [("a".to_owned(), 2), ("b".to_owned(), 1)]);
        assert!(!contains(&env.store_bytes(), KEY.as_bytes()));
    }
}

/// Every run of a long-lived proxy is one of the agent `--name` (else `proxy`), each with the
/// fingerprint of what its session sent; `--input` has no run to apply to and is refused.
#[test]
fn proxy_names_the_agent_of_every_run() {
    let env = Env::new();
    let server = FakeServer::start(vec![
        Reply::json(200, &answer("one")),
        Reply::json(200, &answer("two")),
    ]);
    let upstream = format!("{}/v1", server.base);
    let proxy = LongLived::start(
        &env,
        &["--upstream-openai", &upstream, "--name", "support-bot"],
    );
    assert!(post(&proxy.addr, "a", "first").contains("one"));
    assert!(post(&proxy.addr, "b", "second").contains("two"));
    let ids = proxy.stop();
    let agents: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| env.show(id)["run"]["agent"].clone())
        .collect();
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0]["name"], "support-bot", "{agents:?}");
    // The same model and no prompt or tool in both sessions: the same version.
    assert_eq!(agents[0], agents[1]);

    let server = FakeServer::start(vec![Reply::json(200, &answer("three"))]);
    let upstream = format!("{}/v1", server.base);
    let proxy = LongLived::start(&env, &["--upstream-openai", &upstream]);
    assert!(post(&proxy.addr, "c", "third").contains("three"));
    let ids = proxy.stop();
    let agent = &env.show(&ids[0])["run"]["agent"];
    assert_eq!(agent["name"], "proxy", "{agent}");
    assert_eq!(agent["fingerprint"], agents[0]["fingerprint"]);

    let refused =
        env.exec(
            env.tapedeck()
                .args(["proxy", "--listen", "127.0.0.1:0", "--input", "hi"]),
        );
    let line = refused.expect_input_error();
    assert!(
        line.starts_with("error: --input does not apply here"),
        "{line}"
    );
}

#[test]
fn proxy_splits_runs_after_an_idle_gap() {
    let env = Env::new();
    let server = FakeServer::start(vec![
        Reply::json(200, &answer("one")),
        Reply::json(200, &answer("two")),
    ]);
    let upstream = format!("{}/v1", server.base);
    let proxy = LongLived::start(
        &env,
        &["--split-idle", "1s", "--upstream-openai", &upstream],
    );
    assert!(post(&proxy.addr, "a", "first").contains("one"));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert!(post(&proxy.addr, "a", "second").contains("two"));
    assert_eq!(proxy.stop().len(), 2);
}

/// One Responses API request over a fresh connection, continuing `previous` if given.
fn post_response(addr: &str, content: &str, previous: Option<&str>) -> String {
    let mut body = json!({"model": "gpt-test", "input": content});
    if let Some(previous) = previous {
        body["previous_response_id"] = json!(previous);
    }
    String::from_utf8_lossy(&post_raw(addr, "/v1/responses", "", &body.to_string())).into_owned()
}

fn response(id: &str, text: &str) -> serde_json::Value {
    json!({"id": id, "object": "response", "model": "gpt-test", "status": "completed",
           "output": [{"type": "message", "role": "assistant",
                       "content": [{"type": "output_text", "text": text}]}],
           "usage": {"input_tokens": 3, "output_tokens": 2}})
}

#[test]
fn proxy_keeps_a_continued_response_in_its_run_across_an_idle_gap() {
    let env = Env::new();
    let server = FakeServer::start(vec![
        Reply::json(200, &response("resp_1", "one")),
        Reply::json(200, &response("resp_2", "two")),
        Reply::json(200, &response("resp_3", "three")),
    ]);
    let upstream = format!("{}/v1", server.base);
    let proxy = LongLived::start(
        &env,
        &["--split-idle", "1s", "--upstream-openai", &upstream],
    );
    let addr = proxy.addr.clone();
    let gap = std::time::Duration::from_millis(1200);
    assert!(post_response(&addr, "first", None).contains("one"));
    std::thread::sleep(gap);
    // A continuation joins the run of the response it continues, gap or not …
    assert!(post_response(&addr, "second", Some("resp_1")).contains("two"));
    std::thread::sleep(gap);
    // … while a new conversation after the gap starts a run of its own.
    assert!(post_response(&addr, "third", None).contains("three"));
    let ids = proxy.stop();
    let mut answers: Vec<(u64, String)> = ids
        .iter()
        .map(|id| {
            let show = env.show(id);
            (
                show["run"]["totals"]["steps"].as_u64().unwrap_or(0),
                show["run"]["answer"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    answers.sort();
    assert_eq!(answers, [(1, "three".to_owned()), (2, "two".to_owned())]);
}

#[test]
fn proxy_replays_a_recorded_run_to_each_session_without_the_upstream() {
    let env = Env::new();
    let server = FakeServer::start(vec![
        Reply::json(200, &answer("one")),
        Reply::json(200, &answer("two")),
    ]);
    let upstream = format!("{}/v1", server.base);
    let proxy = LongLived::start(&env, &["--upstream-openai", &upstream]);
    assert!(post(&proxy.addr, "a", "first").contains("one"));
    assert!(post(&proxy.addr, "a", "second").contains("two"));
    let recorded = proxy.stop();
    assert_eq!(recorded.len(), 1);
    drop(server);

    let proxy = LongLived::start(&env, &["--mode", "replay", "--run", &recorded[0]]);
    // Each session gets the whole recording: two clients, the same answers.
    for session in ["x", "y"] {
        assert!(post(&proxy.addr, session, "first").contains("one"));
        assert!(post(&proxy.addr, session, "second").contains("two"));
    }
    let miss = post(&proxy.addr, "z", "never asked");
    assert!(miss.starts_with("HTTP/1.1 400"), "{miss}");
    assert!(miss.contains("tapedeck_replay_miss"), "{miss}");
    assert!(miss.contains("body.messages[0].content"), "{miss}");
    let replays = proxy.stop();
    assert_eq!(replays.len(), 3, "{replays:?}");
    let mut stops: Vec<(String, String)> = replays
        .iter()
        .map(|id| {
            let show = env.show(id);
            assert!(
                show["run"]["parent"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&recorded[0])),
                "{}",
                show["run"]
            );
            assert_eq!(show["run"]["mode"], "proxy");
            (
                show["run"]["labels"]["x-tapedeck-run"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                show["run"]["stop_reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    stops.sort();
    assert_eq!(
        stops,
        [
            ("x".to_owned(), "ok".to_owned()),
            ("y".to_owned(), "ok".to_owned()),
            ("z".to_owned(), "replay_miss:llm".to_owned()),
        ]
    );
}

#[test]
fn proxy_replay_needs_a_recorded_proxy_run() {
    let env = Env::new();
    let out =
        env.exec(
            env.tapedeck()
                .args(["proxy", "--listen", "127.0.0.1:0", "--mode", "replay"]),
        );
    assert!(
        out.expect_input_error()
            .contains("--mode replay needs --run RUN"),
        "{}",
        out.stderr
    );
    let out = env.exec(env.tapedeck().args([
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--mode",
        "replay",
        "--run",
        "nosuchrun",
    ]));
    out.expect_input_error();
}
