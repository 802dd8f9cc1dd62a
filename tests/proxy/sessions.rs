//! `tapedeck proxy --sessions`: one session at a time, opened and closed on the control
//! endpoints, each recorded to or replayed from its own tape (what the pytest plugin of
//! `clients/python` starts once per test process).

use serde_json::{Value, json};
use tapedeck_testkit::on_both_stores;

use crate::long_lived::{LongLived, post_raw};
use crate::server::{FakeServer, Reply};
use crate::{Env, KEY, contains};

/// POSTs `body` to `path`; returns the status and the JSON body.
fn post(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    let headers = format!("authorization: Bearer {KEY}\r\n");
    let raw = post_raw(addr, path, &headers, &body.to_string());
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The body of a chunked response.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

fn chat(addr: &str, content: &str) -> (u16, Value) {
    post(
        addr,
        "/v1/chat/completions",
        &json!({"model": "gpt-test", "messages": [{"role": "user", "content": content}]}),
    )
}

fn answer(text: &str) -> Value {
    json!({"id": "x", "object": "chat.completion", "model": "gpt-test",
           "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
}

on_both_stores! {
    fn sessions_record_to_their_own_tapes_and_replay_them(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![
            Reply::json(200, &answer("one")),
            Reply::json(200, &answer("two")),
            Reply::json(200, &answer("three")),
            Reply::json(200, &answer("four")),
        ]);
        let upstream = format!("{}/v1", server.base);
        let proxy = LongLived::start_in(
            &env,
            "t.db",
            &[
                "--sessions",
                "--upstream-openai",
                &upstream,
                "--outside-sessions",
                "refuse",
            ],
        );
        let addr = proxy.addr.clone();
        let open = |mode: &str, tape: &str| {
            post(
                &addr,
                "/tapedeck/control/v1/open",
                &json!({"mode": mode, "tape": env.dir.path().join(tape), "task": tape}),
            )
        };
        let close = || post(&addr, "/tapedeck/control/v1/close", &json!({}));

        // Outside a session nothing is forwarded (`--outside-sessions refuse`).
        let (status, refused) = chat(&addr, "first");
        assert_eq!(status, 409, "{refused}");
        assert!(server.requests().is_empty());

        // Two recordings, each to its own tape.
        let (status, opened) = open("record", "tapes/a.jsonl");
        assert_eq!(
            (status, &opened["mode"]),
            (200, &json!("record")),
            "{opened}"
        );
        let (status, again) = open("record", "tapes/b.jsonl");
        assert_eq!(status, 409, "a second session while one is open: {again}");
        let (_, hello) = post(
            &addr,
            "/tapedeck/session/v1/hello",
            &json!({"protocol": 1, "client": "test"}),
        );
        assert_eq!(hello["mode"], "record");
        assert_eq!(hello["run"], opened["run"]);
        assert_eq!(
            chat(&addr, "first").1["choices"][0]["message"]["content"],
            "one"
        );
        let (status, closed) = close();
        assert_eq!(status, 200, "{closed}");
        assert_eq!(closed["stop_reason"], "ok", "{closed}");
        assert_eq!(closed["tape_written"], true);
        assert_eq!(open("record", "tapes/b.jsonl").0, 200);
        assert_eq!(
            chat(&addr, "second").1["choices"][0]["message"]["content"],
            "two"
        );
        assert_eq!(close().0, 200);
        let tape = std::fs::read(env.dir.path().join("tapes/a.jsonl")).expect("tape a");
        assert!(!contains(&tape, KEY.as_bytes()));
        assert!(contains(&tape, b"first") && !contains(&tape, b"second"));

        // Replays: from the tape, the upstream done; a request it does not hold is a miss.
        let (status, replay) = open("replay", "tapes/a.jsonl");
        assert_eq!(
            (status, &replay["mode"]),
            (200, &json!("replay")),
            "{replay}"
        );
        assert_eq!(
            chat(&addr, "first").1["choices"][0]["message"]["content"],
            "one"
        );
        let (_, closed) = close();
        assert_eq!(closed["stop_reason"], "ok", "{closed}");
        assert_eq!(closed["divergence"], Value::Null, "{closed}");
        assert_eq!(closed["tape_written"], false);
        assert_eq!(open("replay", "tapes/b.jsonl").0, 200);
        let (status, miss) = chat(&addr, "third");
        assert_eq!(status, 400, "{miss}");
        let (_, closed) = close();
        assert_eq!(closed["stop_reason"], "replay_miss:llm", "{closed}");
        assert_eq!(server.requests().len(), 2);

        // New episodes: what the tape holds from it, the rest live, and the tape rewritten with
        // both, so a replay then answers both.
        let content = |(_, answer): (u16, Value)| answer["choices"][0]["message"]["content"].clone();
        assert_eq!(open("new_episodes", "tapes/a.jsonl").0, 200);
        assert_eq!(content(chat(&addr, "first")), "one");
        assert_eq!(content(chat(&addr, "fresh")), "three");
        let (_, closed) = close();
        assert_eq!(closed["tape_written"], true, "{closed}");
        assert_eq!(server.requests().len(), 3);
        assert_eq!(open("replay", "tapes/a.jsonl").0, 200);
        assert_eq!(content(chat(&addr, "first")), "one");
        assert_eq!(content(chat(&addr, "fresh")), "three");
        let (_, closed) = close();
        assert_eq!(closed["stop_reason"], "ok", "{closed}");
        assert_eq!(closed["divergence"], Value::Null, "{closed}");
        let tape_run = closed["parent"].clone();
        assert!(tape_run.is_string(), "{closed}");

        // A check: the model live, against the same tape's run, which the caller diffs.
        assert_eq!(open("check", "tapes/a.jsonl").0, 200);
        assert_eq!(content(chat(&addr, "first")), "four");
        let (_, closed) = close();
        assert_eq!(closed["parent"], tape_run, "{closed}");
        assert_eq!(closed["tape_written"], false);
        assert!(closed["divergence"].is_object(), "another answer: {closed}");
        assert_eq!(server.requests().len(), 4);

        // A tape that is not there cannot be replayed; a close with nothing open is refused.
        let (status, missing) = open("replay", "tapes/none.jsonl");
        assert_eq!(status, 400);
        let message = missing["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("tapes/none.jsonl"), "{message}");
        assert_eq!(close().0, 409);
        proxy.stop();
    }
}

#[test]
fn sessions_refuse_the_flags_of_the_per_header_proxy() {
    let env = Env::new();
    let refused = env.exec(env.tapedeck().args([
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--sessions",
        "--split-idle",
        "30s",
    ]));
    assert_eq!(refused.code, Some(2), "{refused:?}");
}

/// By default a model request outside every session reaches the upstream as if the proxy were
/// not there, and is recorded nowhere; the session protocol still needs a session.
#[test]
fn outside_a_session_requests_are_forwarded_unrecorded() {
    let env = Env::new();
    let server = FakeServer::start(vec![Reply::json(200, &answer("direct"))]);
    let upstream = format!("{}/v1", server.base);
    let proxy = LongLived::start_in(
        &env,
        "t.db",
        &["--sessions", "--upstream-openai", &upstream],
    );
    let (status, answered) = chat(&proxy.addr, "unmarked");
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["choices"][0]["message"]["content"], "direct");
    assert_eq!(server.requests().len(), 1);
    let (status, refused) = post(
        &proxy.addr,
        "/tapedeck/session/v1/hello",
        &json!({"protocol": 1, "client": "test"}),
    );
    assert_eq!(status, 409, "{refused}");
    proxy.stop();
    assert!(env.ls().is_empty(), "{:?}", env.ls());
}
