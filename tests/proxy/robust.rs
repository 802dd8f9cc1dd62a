//! The proxy's edge cases, with a raw python `http.client` client: a stream cut before its end,
//! a malformed request body, an unmodelled endpoint passed through (and replayed), a request
//! body over the limit, an upstream that is down, a client that hangs up mid-stream, and the
//! proxy itself killed mid-stream.

use serde_json::{Value, json};
use tapedeck_testkit::on_both_stores;

use crate::server::{FakeServer, PAUSE, Reply};
use crate::{Env, KEY, contains, kinds};

/// `raw.py METHOD PATH [BODY]`: one request to the proxy (OpenAI base), prints the status on
/// the first line and the body after it. BODY `@big` sends 33 MiB; `RAW_HEADER="name: value"`
/// adds a header.
const RAW: &str = r#"
import http.client, os, sys, urllib.parse
base = urllib.parse.urlparse(os.environ["OPENAI_BASE_URL"])
method, path = sys.argv[1], sys.argv[2]
body = sys.argv[3] if len(sys.argv) > 3 else None
if body == "@big":
    body = '{"model": "m", "messages": [{"role": "user", "content": "' + "x" * (33 << 20) + '"}]}'
conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
headers = {"content-type": "application/json", "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
if os.environ.get("RAW_HEADER"):
    name, value = os.environ["RAW_HEADER"].split(": ", 1)
    headers[name] = value
try:
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    print(r.status)
    print(r.read().decode(errors="replace"))
except Exception as e:
    print("failed", type(e).__name__)
"#;

/// `tapedeck record` of `raw.py ARGS` against `server`.
fn record(env: &Env, server: &FakeServer, args: &[&str]) -> crate::Outcome {
    env.write("raw.py", RAW);
    let upstream = format!("{}/v1", server.base);
    env.record(
        &["--upstream-openai", &upstream],
        &[&["python3", "raw.py"], args].concat(),
    )
}

#[test]
fn proxy_records_a_cut_stream_as_truncated() {
    let env = Env::new();
    let server = FakeServer::start(vec![Reply::Sse(vec![
        format!(
            "data: {}\n\n",
            json!({"model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}}]})
        ),
        "data: {\"choices\": [{\"ind".to_owned(),
    ])]);
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let out = record(
        &env,
        &server,
        &["POST", "/v1/chat/completions", &body.to_string()],
    );
    out.expect_code(0);
    assert!(out.stdout.starts_with("200\n"), "{}", out.stdout);
    assert!(out.stdout.contains("Hel"));
    let show = env.show(&out.run_id());
    let events = show["events"].as_array().expect("events");
    let response = events
        .iter()
        .find(|e| e["kind"] == "llm_response")
        .expect("a response");
    assert_eq!(response["data"]["truncated"], true);
    assert_eq!(response["data"]["streamed"], true);
    let message = &show["blobs"][response["data"]["message"].as_str().expect("a ref")];
    assert_eq!(message["content"], "Hel");
}

#[test]
fn proxy_records_malformed_json_and_unmodelled_endpoints_as_exchanges() {
    let env = Env::new();
    let server = FakeServer::start(vec![
        Reply::text(400, "application/json", "{\"error\": \"bad json\"}"),
        Reply::json(200, &json!({"data": [{"id": "gpt-test"}]})),
    ]);
    env.write("raw.py", RAW);
    env.write(
        "two.sh",
        "python3 raw.py POST /v1/chat/completions '{not json' && python3 raw.py GET '/v1/models?api-key=QUERYSECRET1'\n",
    );
    let upstream = format!("{}/v1", server.base);
    let rec = env.record(&["--upstream-openai", &upstream], &["sh", "two.sh"]);
    rec.expect_code(0);
    assert_eq!(
        rec.stdout,
        "400\n{\"error\": \"bad json\"}\n200\n{\"data\":[{\"id\":\"gpt-test\"}]}\n"
    );
    let requests = server.requests();
    assert_eq!(requests[1].path, "/v1/models?api-key=QUERYSECRET1");
    let id = rec.run_id();
    let show = env.show(&id);
    assert_eq!(
        kinds(&show),
        [
            "http_exchange",
            "http_exchange",
            "agent_identity",
            "run_finished"
        ]
        .map(str::to_owned)
    );
    let events = show["events"].as_array().expect("events");
    assert_eq!(events[0]["data"]["status"], 400);
    let request = &show["blobs"][events[0]["data"]["request"].as_str().expect("a ref")];
    assert_eq!(request["body"], "{not json");
    assert!(request["headers"].get("authorization").is_none());
    assert_eq!(events[1]["data"]["path"], "/v1/models?api-key=[REDACTED]");
    let bytes = env.store_bytes();
    assert!(!contains(&bytes, KEY.as_bytes()));
    assert!(!contains(&bytes, b"QUERYSECRET1"));

    // Both come back in replay, from the recording.
    drop(server);
    env.replay_same(&id, &["sh", "two.sh"], &rec);
}

#[test]
fn proxy_refuses_a_body_over_the_limit_and_reports_a_down_upstream() {
    let env = Env::new();
    // Nothing listens there once the server has answered its only reply.
    let server = FakeServer::start(vec![Reply::json(200, &Value::Null)]);
    let out = record(&env, &server, &["POST", "/v1/chat/completions", "@big"]);
    // The client exits 0, but its run ended `model_error`: 1.
    out.expect_code(1);
    assert!(
        out.stdout.starts_with("413\n") || out.stdout.starts_with("failed"),
        "{}",
        out.stdout
    );
    assert!(server.requests().is_empty(), "nothing reached the upstream");
    // The refusal is recorded, and as the last model call it ends the run.
    let show = env.show(&out.run_id());
    assert_eq!(
        kinds(&show),
        ["http_exchange", "agent_identity", "run_finished"].map(str::to_owned)
    );
    let exchange = &show["events"][0]["data"];
    assert_eq!(exchange["status"], 413);
    assert_eq!(exchange["path"], "/v1/chat/completions");
    let request = &show["blobs"][exchange["request"].as_str().expect("a ref")];
    assert_eq!(
        request["body_error"],
        "the request body is over the proxy's limit of 33554432 bytes"
    );
    assert!(request["headers"].get("authorization").is_none());
    assert_eq!(show["run"]["stop_reason"], "model_error");

    let gone = FakeServer::start(vec![]);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let out = record(
        &env,
        &gone,
        &["POST", "/v1/chat/completions", &body.to_string()],
    );
    out.expect_code(1);
    assert!(out.stdout.starts_with("502\n"), "{}", out.stdout);
    let show = env.show(&out.run_id());
    assert_eq!(show["run"]["stop_reason"], "model_error");
    assert_eq!(
        kinds(&show),
        [
            "llm_request",
            "http_exchange",
            "agent_identity",
            "run_finished"
        ]
        .map(str::to_owned)
    );
}

/// Reads a stream line by line; prints when the first data line came and when it ended.
const TIMED: &str = r#"
import http.client, json, os, sys, time, urllib.parse
base = urllib.parse.urlparse(os.environ["OPENAI_BASE_URL"])
conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
t0 = time.time()
conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"content-type": "application/json"})
r = conn.getresponse()
first = None
while True:
    line = r.readline()
    if not line:
        break
    if line.startswith(b"data:") and first is None:
        first = time.time() - t0
print(json.dumps({"first": first, "end": time.time() - t0}))
"#;

/// A stream of "first", a second's pause, then " second" and its end.
fn paused_stream() -> Reply {
    let piece = |text: &str| {
        format!(
            "data: {}\n\n",
            json!({"model": "m", "choices": [{"index": 0, "delta": {"content": text}}]})
        )
    };
    Reply::Sse(vec![
        piece("first"),
        PAUSE.to_owned(),
        piece(" second"),
        format!(
            "data: {}\n\n",
            json!({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        ),
        "data: [DONE]\n\n".to_owned(),
    ])
}

#[test]
fn proxy_streams_pieces_as_they_arrive() {
    let env = Env::new();
    env.write("timed.py", TIMED);
    let server = FakeServer::start(vec![paused_stream()]);
    let upstream = format!("{}/v1", server.base);
    let out = env.record(&["--upstream-openai", &upstream], &["python3", "timed.py"]);
    out.expect_code(0);
    let times: Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    let first = times["first"].as_f64().expect("a first piece");
    let end = times["end"].as_f64().expect("an end");
    assert!(
        end - first > 0.7,
        "the first piece waited for the end: {times}"
    );
    let show = env.show(&out.run_id());
    assert_eq!(show["run"]["answer"], "first second");

    // Replay re-emits the recorded pieces: the same text.
    drop(server);
    let rep = env.exec(
        env.tapedeck()
            .args(["replay", &out.run_id(), "--", "python3", "timed.py"]),
    );
    rep.expect_code(0);
}

/// Reads the first line of a stream, then hangs up.
const HANG_UP: &str = r#"
import http.client, json, os, urllib.parse
base = urllib.parse.urlparse(os.environ["OPENAI_BASE_URL"])
conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"content-type": "application/json"})
r = conn.getresponse()
print(r.readline().decode().strip())
conn.sock.close()
"#;

#[test]
fn proxy_keeps_recording_after_the_client_hangs_up() {
    let env = Env::new();
    env.write("hang.py", HANG_UP);
    let server = FakeServer::start(vec![paused_stream()]);
    let upstream = format!("{}/v1", server.base);
    let out = env.record(&["--upstream-openai", &upstream], &["python3", "hang.py"]);
    out.expect_code(0);
    assert!(out.stdout.contains("first"), "{}", out.stdout);
    let show = env.show(&out.run_id());
    let events = show["events"].as_array().expect("events");
    let response = events
        .iter()
        .find(|e| e["kind"] == "llm_response")
        .expect("the response is recorded");
    assert!(response["data"].get("truncated").is_none(), "{response}");
    assert_eq!(show["run"]["answer"], "first second");
}

#[test]
fn proxy_redacts_configured_patterns_and_replays_with_them() {
    let env = Env::new();
    let server = FakeServer::start(vec![Reply::json(
        200,
        &json!({"model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "noted secret-42"}}]}),
    )]);
    let body =
        json!({"model": "m", "messages": [{"role": "user", "content": "my id is secret-42"}]});
    env.write("raw.py", RAW);
    let upstream = format!("{}/v1", server.base);
    let rec = env.record(
        &["--upstream-openai", &upstream, "--redact", r"secret-\d+"],
        &[
            "python3",
            "raw.py",
            "POST",
            "/v1/chat/completions",
            &body.to_string(),
        ],
    );
    rec.expect_code(0);
    assert!(
        rec.stdout.contains("noted secret-42"),
        "the client gets it as it was"
    );
    assert!(!contains(&env.store_bytes(), b"secret-42"));
    drop(server);
    let id = rec.run_id();
    let rep = env.exec(env.tapedeck().args([
        "replay",
        &id,
        "--redact",
        r"secret-\d+",
        "--",
        "python3",
        "raw.py",
        "POST",
        "/v1/chat/completions",
        &body.to_string(),
    ]));
    rep.expect_code(0);
    assert!(rep.stdout.starts_with("200\n"), "{}", rep.stdout);
    // Served from the recording: redacted there.
    assert!(rep.stdout.contains("noted [REDACTED]"), "{}", rep.stdout);
}

/// Two calls: the first whole, then a stream; prints a line after the first.
const TWO_CALLS: &str = r#"
import http.client, json, os, sys, urllib.parse
base = urllib.parse.urlparse(os.environ["OPENAI_BASE_URL"])
def post(body):
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"content-type": "application/json"})
    return conn.getresponse()
r = post({"model": "m", "messages": [{"role": "user", "content": "one"}]})
print(r.status, json.loads(r.read())["choices"][0]["message"]["content"], flush=True)
r = post({"model": "m", "stream": True, "messages": [{"role": "user", "content": "two"}]})
print(r.readline().decode().strip(), flush=True)
r.read()
"#;

on_both_stores! {
    fn a_killed_proxy_keeps_what_it_recorded_and_its_run_shows_incomplete(backend) {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt as _;

    let env = Env::on(backend);
    env.write("two.py", TWO_CALLS);
    let server = FakeServer::start(vec![
        Reply::json(
            200,
            &json!({"model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "first"}}]}),
        ),
        // The second answer starts, then stalls: the proxy is killed meanwhile.
        Reply::Sse(vec![
            format!(
                "data: {}\n\n",
                json!({"model": "m", "choices": [{"index": 0, "delta": {"content": "sec"}}]})
            ),
            PAUSE.to_owned(),
            PAUSE.to_owned(),
            PAUSE.to_owned(),
        ]),
    ]);
    let upstream = format!("{}/v1", server.base);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tapedeck"));
    cmd.current_dir(env.dir.path())
        .arg("--store")
        .arg(env.store_arg())
        .args(["record", "--upstream-openai", &upstream])
        .args(["--", "python3", "two.py"])
        .env_remove("TAPEDECK_STORE")
        // A short lease: the run of a recorder that died shows `incomplete` once it lapses (a
        // SQLite file also sees at once that the recorder's pid is gone).
        .env("TAPEDECK_LEASE_SECS", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        // Its own process group, so the kill takes the client too.
        .process_group(0);
    let mut child = cmd.spawn().expect("tapedeck starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("text");
    assert_eq!(first, "200 first");
    let second = lines.next().expect("a line").expect("text");
    assert!(second.starts_with("data:"), "{second}");
    // Past the store's flush interval, then SIGKILL the whole group mid-stream.
    std::thread::sleep(std::time::Duration::from_millis(400));
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status()
        .expect("kill");
    assert!(killed.success());
    child.wait().expect("tapedeck ends");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let run = loop {
        let run = env.ls().swap_remove(0);
        if run["status"] == "incomplete" || std::time::Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(run["status"], "incomplete", "{run}");
    let show = env.show(run["short_id"].as_str().expect("an id"));
    let kinds = kinds(&show);
    assert_eq!(
        kinds[..4],
        [
            "llm_request",
            "llm_response",
            "http_exchange",
            "llm_request"
        ],
        "the first call and the second request were committed: {kinds:?}"
    );
    assert_eq!(show["run"]["status"], "incomplete");
    }
}

#[test]
fn record_forwards_to_the_clients_own_base_urls_by_default() {
    let env = Env::new();
    env.write("raw.py", RAW);
    let openai = FakeServer::start(vec![Reply::json(200, &json!({"data": []}))]);
    let anthropic = FakeServer::start(vec![Reply::json(200, &json!({"data": []}))]);
    // The Anthropic SDK marks its requests with `anthropic-version`: that picks the upstream.
    let cases = [
        ("/v1/models", None, &openai),
        (
            "/v1/models?beta=true",
            Some("anthropic-version: 2023-06-01"),
            &anthropic,
        ),
    ];
    for (path, header, server) in cases {
        let mut cmd = env.tapedeck();
        cmd.env("OPENAI_BASE_URL", format!("{}/v1", openai.base))
            .env("ANTHROPIC_BASE_URL", &anthropic.base)
            .args(["record", "--", "python3", "raw.py", "GET", path]);
        if let Some(header) = header {
            cmd.env("RAW_HEADER", header);
        }
        let out = env.exec(&mut cmd);
        out.expect_code(0);
        assert!(out.stdout.starts_with("200\n"), "{}", out.stdout);
        assert_eq!(
            server.requests().last().map(|r| r.path.as_str()),
            Some(path)
        );
    }
}
