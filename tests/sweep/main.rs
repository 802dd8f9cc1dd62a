//! A sweep of malformed inputs through the binary: broken agent configs and scripts, broken
//! tapes, hostile model-API replies (to the runtime's backends and through the recording
//! proxy) and broken MCP lines (from a client and from a server). Every one must end inside
//! the exit-code contract — 0, 1 or 2, or the client's own code where a client runs — never a
//! panic (101) or a signal; and an input error (2) must leave the store as it was.
//!
//! The inputs are made by rule from valid ones (each value of a field replaced, the file cut at
//! several places, lines dropped or doubled, bytes that are not UTF-8), so a failure names the
//! input that caused it and reruns the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tapedeck_testkit::cli::{Outcome, STORE, tapedeck};
use tapedeck_testkit::fake_http::{FakeServer, Reply};

/// The repository's root (fixtures are read from it).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Counts the cases and collects the ones that broke the contract.
#[derive(Default)]
struct Sweep {
    cases: usize,
    broken: Vec<String>,
}

impl Sweep {
    /// Checks one command's outcome: an exit in `allowed`, no panic, and after an exit 2 the
    /// same number of runs in the store as `runs_before`.
    fn check(
        &mut self,
        name: &str,
        out: &Outcome,
        allowed: &[i32],
        dir: &Path,
        runs_before: usize,
    ) {
        self.cases += 1;
        let code = out.code;
        let mut wrong = Vec::new();
        if !code.is_some_and(|c| allowed.contains(&c)) {
            wrong.push(format!("exit {code:?}, expected one of {allowed:?}"));
        }
        if out.stderr.contains("panicked") || out.stderr.contains("RUST_BACKTRACE") {
            wrong.push("panicked".to_owned());
        }
        if code == Some(2) {
            if !out.stderr.starts_with("error: ") {
                wrong.push("exit 2 without an `error:` line".to_owned());
            }
            let after = run_count(dir);
            if after != runs_before {
                wrong.push(format!(
                    "exit 2 but the store went from {runs_before} to {after} runs"
                ));
            }
        }
        if !wrong.is_empty() {
            self.broken.push(format!(
                "{name}: {}\n  stderr: {}",
                wrong.join("; "),
                out.stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
            ));
        }
    }

    fn finish(self, at_least: usize) {
        assert!(
            self.cases >= at_least,
            "the sweep ran {} cases, fewer than {at_least}",
            self.cases
        );
        assert!(
            self.broken.is_empty(),
            "{} of {} inputs broke the exit-code contract:\n{}",
            self.broken.len(),
            self.cases,
            self.broken.join("\n")
        );
    }
}

/// The runs in the store of `dir` (0 when there is none yet).
fn run_count(dir: &Path) -> usize {
    if !dir.join(STORE).exists() {
        return 0;
    }
    let out = Outcome::of(tapedeck(dir).args(["ls", "--json", "--limit", "100000"]));
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|listing| listing["runs"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// Runs `cmd` (in `dir`) with a time limit and checks it.
fn run_case(
    sweep: &mut Sweep,
    name: &str,
    dir: &Path,
    allowed: &[i32],
    cmd: &mut assert_cmd::Command,
) {
    let before = run_count(dir);
    let out = Outcome::of(cmd.timeout(Duration::from_secs(60)));
    sweep.check(name, &out, allowed, dir, before);
}

/// Byte offsets to cut a file of `len` bytes at: the start, the end, and evenly between.
fn cuts(len: usize, count: usize) -> Vec<usize> {
    (0..count).map(|i| len * i / count).collect()
}

/// Values that break a number: out of range, not finite, not a number.
const BAD_NUMBERS: [&str; 10] = [
    "0",
    "-1",
    "-5",
    "1e300",
    ".inf",
    ".nan",
    "18446744073709551616",
    "\"ten\"",
    "[]",
    "{}",
];

/// The support bot of the demo, with its script and approvals, in a fresh folder.
fn support_bot() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for file in [
        "support-bot.yaml",
        "support-bot.script.yaml",
        "approvals.yaml",
    ] {
        std::fs::copy(
            root().join("fixtures/agents").join(file),
            dir.path().join(file),
        )
        .expect("copy a fixture agent");
    }
    let config = std::fs::read_to_string(dir.path().join("support-bot.yaml")).expect("read");
    (dir, config)
}

/// `config check` (0 or 2) and `run` (0, 1 or 2) of `agent.yaml` in `dir`.
fn check_and_run(sweep: &mut Sweep, dir: &Path, name: &str) {
    check_and_run_expecting(sweep, dir, name, &[0, 2]);
}

/// [`check_and_run`] with the exits `config check` may give.
fn check_and_run_expecting(sweep: &mut Sweep, dir: &Path, name: &str, check: &[i32]) {
    run_case(
        sweep,
        &format!("config check ({name})"),
        dir,
        check,
        tapedeck(dir).args(["config", "check", "agent.yaml"]),
    );
    run_case(
        sweep,
        &format!("run ({name})"),
        dir,
        &[0, 1, 2],
        tapedeck(dir).args([
            "run",
            "agent.yaml",
            "--input",
            "How do I reset my password?",
        ]),
    );
}

/// `config check` and `run` of each broken agent version.
#[test]
fn malformed_configs_and_scripts_end_inside_the_contract() {
    let mut sweep = Sweep::default();
    let (dir, config) = support_bot();
    let dir = dir.path();
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    // Where 0 is allowed (no tool calls; free; no latency), it is the only bad number that is
    // not refused: every other one must be an input error already at `config check`.
    let zero_allowed = [
        "max_tool_calls",
        "input_per_mtok",
        "output_per_mtok",
        "latency_ms",
    ];
    for (field, valid) in [
        ("max_steps", "max_steps: 10"),
        ("max_seconds", "max_seconds: 60"),
        ("max_tool_calls", "max_tool_calls: 8"),
        ("input_per_mtok", "input_per_mtok: 0.40"),
        ("output_per_mtok", "output_per_mtok: 1.60"),
        ("latency_ms", "latency_ms: 5"),
    ] {
        for bad in BAD_NUMBERS {
            let key = valid.split(':').next().unwrap_or(field);
            let bytes = config.replacen(valid, &format!("{key}: {bad}"), 1);
            std::fs::write(dir.join("agent.yaml"), bytes).expect("write the variant");
            let check: &[i32] = if bad == "0" && zero_allowed.contains(&field) {
                &[0]
            } else {
                &[2]
            };
            check_and_run_expecting(&mut sweep, dir, &format!("{field}={bad}"), check);
        }
    }
    for bad in ["1e300", "-1", ".nan"] {
        variants.push((
            format!("timeout_s={bad}"),
            config
                .replacen(
                    "      builtin: mock\n",
                    &format!("      timeout_s: {bad}\n      builtin: mock\n"),
                    1,
                )
                .into_bytes(),
        ));
    }
    for at in cuts(config.len(), 8) {
        variants.push((
            format!("cut at byte {at}"),
            config.as_bytes()[..at].to_vec(),
        ));
    }
    variants.push((
        "not UTF-8".to_owned(),
        [config.as_bytes(), b"\xff\xfe\n"].concat(),
    ));
    variants.push((
        "a tab indent".to_owned(),
        config.replacen("  provider", "\tprovider", 1).into_bytes(),
    ));
    variants.push((
        "an unknown key".to_owned(),
        format!("{config}\nbudgetz: 3\n").into_bytes(),
    ));
    variants.push((
        "a missing script".to_owned(),
        config
            .replacen("support-bot.script.yaml", "nope.yaml", 1)
            .into_bytes(),
    ));
    variants.push((
        "a missing approvals file".to_owned(),
        config
            .replacen("approvals.yaml", "nope.yaml", 1)
            .into_bytes(),
    ));
    variants.push(("a list".to_owned(), b"- 1\n- 2\n".to_vec()));
    variants.push(("empty".to_owned(), Vec::new()));
    for (name, bytes) in &variants {
        std::fs::write(dir.join("agent.yaml"), bytes).expect("write the variant");
        check_and_run(&mut sweep, dir, name);
    }
    // The script file itself, broken.
    std::fs::write(dir.join("agent.yaml"), &config).expect("write the agent");
    let script = std::fs::read_to_string(dir.join("support-bot.script.yaml")).expect("read");
    let mut scripts: Vec<(String, String)> = cuts(script.len(), 6)
        .into_iter()
        .filter_map(|at| {
            script
                .get(..at)
                .map(|s| (format!("script cut at byte {at}"), s.to_owned()))
        })
        .collect();
    scripts.push((
        "script with an unknown key".to_owned(),
        format!("{script}\nreplys: []\n"),
    ));
    scripts.push((
        "script seed .nan".to_owned(),
        format!("{script}\nseed: .nan\n"),
    ));
    for (name, text) in scripts {
        std::fs::write(dir.join("support-bot.script.yaml"), text).expect("write the script");
        check_and_run(&mut sweep, dir, &name);
    }
    sweep.finish(140);
}

/// `import` of each broken tape: whole or not at all.
#[test]
fn malformed_tapes_end_inside_the_contract() {
    let mut sweep = Sweep::default();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let dir = dir.path();
    for fixture in ["clean.jsonl", "tool-denied.jsonl"] {
        let tape = std::fs::read_to_string(root().join("fixtures/tapes").join(fixture))
            .expect("read a tape");
        let lines: Vec<&str> = tape.lines().collect();
        let mut variants: Vec<(String, String)> = Vec::new();
        for at in cuts(tape.len(), 10) {
            if let Some(cut) = tape.get(..at) {
                variants.push((format!("cut at byte {at}"), cut.to_owned()));
            }
        }
        for i in 0..lines.len().min(6) {
            let mut dropped = lines.clone();
            dropped.remove(i);
            variants.push((format!("line {} dropped", i + 1), dropped.join("\n")));
            let mut doubled = lines.clone();
            doubled.insert(i, lines[i]);
            variants.push((format!("line {} doubled", i + 1), doubled.join("\n")));
        }
        variants.push((
            "version 99".to_owned(),
            tape.replacen("\"version\":1", "\"version\":99", 1),
        ));
        variants.push((
            "a hash changed".to_owned(),
            tape.replacen("sha256:", "sha256:0", 1),
        ));
        variants.push((
            "a line that is not JSON".to_owned(),
            format!("{tape}\nnot json\n"),
        ));
        variants.push((
            "seq as text".to_owned(),
            tape.replacen("\"seq\":1", "\"seq\":\"1\"", 1),
        ));
        variants.push(("empty".to_owned(), String::new()));
        for (name, text) in variants {
            // A fresh store each time, so "whole or not at all" is checked against nothing.
            let _ = std::fs::remove_file(dir.join(STORE));
            std::fs::write(dir.join("tape.jsonl"), text).expect("write the tape");
            run_case(
                &mut sweep,
                &format!("import {fixture} ({name})"),
                dir,
                &[0, 2],
                tapedeck(dir).args(["import", "tape.jsonl"]),
            );
        }
    }
    sweep.finish(50);
}

/// What a hostile OpenAI-compatible upstream answers: broken JSON, broken streams, absurd
/// indexes, wrong types.
fn hostile_openai_replies() -> Vec<(String, Reply)> {
    let chunk = |delta: serde_json::Value| {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": delta}]})
        )
    };
    let mut replies = vec![
        (
            "empty body".to_owned(),
            Reply::text(200, "application/json", ""),
        ),
        (
            "not JSON".to_owned(),
            Reply::text(200, "application/json", "{\"choices\": ["),
        ),
        (
            "an HTML error".to_owned(),
            Reply::text(502, "text/html", "<html>bad gateway</html>"),
        ),
        (
            "choices empty".to_owned(),
            Reply::json(200, &json!({"choices": []})),
        ),
        (
            "choices a string".to_owned(),
            Reply::json(200, &json!({"choices": "x"})),
        ),
        (
            "usage negative".to_owned(),
            Reply::json(
                200,
                &json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}], "usage": {"prompt_tokens": -5, "completion_tokens": 1e300}}),
            ),
        ),
        (
            "tool call without a name".to_owned(),
            Reply::json(
                200,
                &json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"arguments": "{"}}]}}]}),
            ),
        ),
        (
            "tool arguments not JSON".to_owned(),
            Reply::json(
                200,
                &json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "kb.read", "arguments": "{{{"}}]}}]}),
            ),
        ),
        (
            "a 429 without retry-after".to_owned(),
            Reply::json(429, &json!({"error": {"message": "slow down"}})),
        ),
        (
            "a 400".to_owned(),
            Reply::json(400, &json!({"error": "not an object"})),
        ),
    ];
    for index in [
        "10000000000",
        "100000",
        "1024",
        "-1",
        "1.5",
        "\"0\"",
        "null",
    ] {
        replies.push((
            format!("stream tool-call index {index}"),
            Reply::Sse(vec![
                format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{index},\"id\":\"c\",\"function\":{{\"name\":\"kb.read\",\"arguments\":\"{{}}\"}}}}]}}}}]}}\n\n"),
                "data: [DONE]\n\n".to_owned(),
            ]),
        ));
    }
    replies.push((
        "300 streamed tool calls".to_owned(),
        Reply::Sse(
            (0..300)
                .map(|i| chunk(json!({"tool_calls": [{"index": i, "id": format!("c{i}"), "function": {"name": "kb.read", "arguments": "{}"}}]})))
                .chain(["data: [DONE]\n\n".to_owned()])
                .collect(),
        ),
    ));
    replies.push((
        "a stream cut mid-event".to_owned(),
        Reply::Sse(vec![
            chunk(json!({"content": "Hel"})),
            "data: {\"choices\": [{\"ind".to_owned(),
        ]),
    ));
    replies.push((
        "a stream of garbage".to_owned(),
        Reply::Sse(vec![
            "\u{0}\u{1}garbage\n\n".to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ]),
    ));
    replies.push((
        "a stream with no data lines".to_owned(),
        Reply::Sse(vec![": comment\n\n".to_owned(), "event: x\n\n".to_owned()]),
    ));
    replies.push((
        "a stream whose delta is a number".to_owned(),
        Reply::Sse(vec![
            "data: {\"choices\":[{\"index\":0,\"delta\":5}]}\n\n".to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ]),
    ));
    replies
}

/// What a hostile Anthropic upstream answers.
fn hostile_anthropic_replies() -> Vec<(String, Reply)> {
    let event = |kind: &str, data: serde_json::Value| format!("event: {kind}\ndata: {data}\n\n");
    let mut replies = vec![
        (
            "content a string".to_owned(),
            Reply::json(
                200,
                &json!({"type": "message", "content": "x", "stop_reason": "end_turn"}),
            ),
        ),
        (
            "an unknown block".to_owned(),
            Reply::json(
                200,
                &json!({"type": "message", "role": "assistant", "content": [{"type": "hologram"}], "stop_reason": "end_turn"}),
            ),
        ),
        (
            "an overloaded error".to_owned(),
            Reply::json(
                529,
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
            ),
        ),
    ];
    for index in ["100000", "10000000000", "-3", "\"1\""] {
        replies.push((
            format!("content_block index {index}"),
            Reply::Sse(vec![
                event("message_start", json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": [], "model": "claude", "usage": {"input_tokens": 3, "output_tokens": 0}}})),
                format!("event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{index},\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"kb.read\",\"input\":{{}}}}}}\n\n"),
                event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}})),
                event("message_stop", json!({"type": "message_stop"})),
            ]),
        ));
    }
    replies.push((
        "a block that is not an object, then its deltas".to_owned(),
        Reply::Sse(vec![
            event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": 5})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}})),
            event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            event("message_stop", json!({"type": "message_stop"})),
        ]),
    ));
    replies.push(("a delta before its block".to_owned(), Reply::Sse(vec![event("content_block_delta", json!({"type": "content_block_delta", "index": 7, "delta": {"type": "text_delta", "text": "hi"}}))])));
    replies
}

/// An agent version on a real model provider at `base_url`, with one read tool.
fn http_agent(provider: &str, base_url: &str, stream: bool) -> String {
    format!(
        r#"name: sweep-bot
model: {{provider: {provider}, name: m, base_url: "{base_url}", api_key_env: SWEEP_KEY, stream: {stream}}}
tools:
  allow: [kb.read]
  defs:
    - {{name: kb.read, builtin: mock, mock: [{{output: {{body: text}}}}]}}
budgets: {{max_steps: 3, max_seconds: 20}}
"#
    )
}

/// The runtime's own model backends against each hostile reply.
#[test]
fn hostile_model_replies_to_the_runtime_end_inside_the_contract() {
    let mut sweep = Sweep::default();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let dir = dir.path();
    let cases = hostile_openai_replies()
        .into_iter()
        .map(|(n, r)| ("openai", n, r))
        .chain(
            hostile_anthropic_replies()
                .into_iter()
                .map(|(n, r)| ("anthropic", n, r)),
        );
    for (provider, name, reply) in cases {
        let streamed = matches!(reply, Reply::Sse(_));
        // The reply, then a refusal for every retry, so the run ends quickly.
        let refusal = || Reply::json(400, &json!({"error": {"message": "no more"}}));
        let server = FakeServer::start(vec![reply, refusal(), refusal(), refusal(), refusal()]);
        let base = if provider == "openai" {
            format!("{}/v1", server.base)
        } else {
            server.base.clone()
        };
        std::fs::write(
            dir.join("agent.yaml"),
            http_agent(provider, &base, streamed),
        )
        .expect("write the agent");
        run_case(
            &mut sweep,
            &format!("run against {provider} ({name})"),
            dir,
            &[0, 1],
            tapedeck(dir)
                .args(["run", "agent.yaml", "--input", "hi"])
                .env("SWEEP_KEY", "k"),
        );
    }
    sweep.finish(30);
}

/// `client.py PATH STREAM`: one request through the proxy, the whole answer read, exit 0.
const CLIENT: &str = r#"
import http.client, json, os, sys, urllib.parse
path, stream = sys.argv[1], sys.argv[2] == "1"
base = urllib.parse.urlparse(os.environ["OPENAI_BASE_URL"])
conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
body = {"model": "m", "max_tokens": 10, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json", "x-api-key": "k", "authorization": "Bearer k"})
try:
    r = conn.getresponse()
    r.read()
except Exception:
    pass
"#;

/// The recording proxy between a client and each hostile reply.
#[test]
fn hostile_model_replies_through_the_proxy_end_inside_the_contract() {
    let mut sweep = Sweep::default();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let dir = dir.path();
    std::fs::write(dir.join("client.py"), CLIENT).expect("write the client");
    let cases = hostile_openai_replies()
        .into_iter()
        .map(|(n, r)| ("/v1/chat/completions", n, r))
        .chain(
            hostile_anthropic_replies()
                .into_iter()
                .map(|(n, r)| ("/v1/messages", n, r)),
        );
    for (path, name, reply) in cases {
        let streamed = if matches!(reply, Reply::Sse(_)) {
            "1"
        } else {
            "0"
        };
        let server = FakeServer::start(vec![reply]);
        run_case(
            &mut sweep,
            &format!("record {path} ({name})"),
            dir,
            &[0, 1],
            tapedeck(dir)
                .args(["record", "--upstream-openai"])
                .arg(format!("{}/v1", server.base))
                .arg("--upstream-anthropic")
                .arg(&server.base)
                .args(["--", "python3", "client.py", path, streamed]),
        );
    }
    sweep.finish(30);
}

/// A stdio MCP server that answers every line with the line in `reply.txt`, then exits when
/// the client closes.
const SERVER: &str = r#"
import sys
reply = open("reply.txt").read()
for line in sys.stdin:
    sys.stdout.write(reply + "\n")
    sys.stdout.flush()
"#;

/// Broken MCP lines: from the client to `mcp record` and `mcp replay`, and from the server.
#[test]
fn malformed_mcp_lines_end_inside_the_contract() {
    let mut sweep = Sweep::default();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let dir = dir.path();
    std::fs::write(dir.join("server.py"), SERVER).expect("write the server");
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let lines: Vec<String> = vec![
        "not json".to_owned(),
        "[]".to_owned(),
        "[1, 2]".to_owned(),
        "{}".to_owned(),
        "null".to_owned(),
        "{\"jsonrpc\": \"2.0\"}".to_owned(),
        "{\"jsonrpc\": \"2.0\", \"id\": {\"a\": 1}, \"method\": \"tools/call\"}".to_owned(),
        "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": 5}".to_owned(),
        "{\"jsonrpc\": \"2.0\", \"id\": 1e400, \"method\": \"ping\"}".to_owned(),
        "{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"tools/call\", \"params\": \"x\"}".to_owned(),
        "{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"tools/call\", \"params\": {\"name\": 7, \"arguments\": []}}".to_owned(),
        "{\"jsonrpc\": \"2.0\", \"id\": 4, \"result\": {}}".to_owned(),
        "{\"jsonrpc\": \"2.0\", \"method\": \"notifications/initialized\", \"params\": null}".to_owned(),
        deep.clone(),
        "\u{feff}{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": \"ping\"}".to_owned(),
    ];
    let valid_call = "{\"jsonrpc\": \"2.0\", \"id\": 9, \"method\": \"tools/call\", \"params\": {\"name\": \"echo\", \"arguments\": {}}}";
    // Each broken client line, with a valid call after it, recorded against a server that
    // answers with a valid result.
    let result = "{\"jsonrpc\": \"2.0\", \"id\": 9, \"result\": {\"content\": []}}";
    std::fs::write(dir.join("reply.txt"), result).expect("write the reply");
    let mut recorded = None;
    for (i, line) in lines.iter().enumerate() {
        let before = run_count(dir);
        let out = Outcome::of(
            tapedeck(dir)
                .args(["mcp", "record", "--", "python3", "server.py"])
                .write_stdin(format!("{line}\n{valid_call}\n"))
                .timeout(Duration::from_secs(60)),
        );
        sweep.check(
            &format!("mcp record, client line {i}"),
            &out,
            &[0, 1, 2],
            dir,
            before,
        );
        if recorded.is_none() {
            recorded = out
                .stderr
                .split_whitespace()
                .skip_while(|w| *w != "run")
                .nth(1)
                .map(str::to_owned);
        }
    }
    // The same lines to a replay of one of those runs.
    let run = recorded.expect("an MCP run was recorded");
    for (i, line) in lines.iter().enumerate() {
        let before = run_count(dir);
        let out = Outcome::of(
            tapedeck(dir)
                .args(["mcp", "replay", &run])
                .write_stdin(format!("{line}\n{valid_call}\n{line}\n"))
                .timeout(Duration::from_secs(60)),
        );
        sweep.check(
            &format!("mcp replay, client line {i}"),
            &out,
            &[0, 1],
            dir,
            before,
        );
    }
    // Each broken line as the server's answer.
    for (i, line) in lines.iter().chain([&"x".repeat(1 << 20)]).enumerate() {
        std::fs::write(dir.join("reply.txt"), line).expect("write the reply");
        let before = run_count(dir);
        let out = Outcome::of(
            tapedeck(dir)
                .args(["mcp", "record", "--", "python3", "server.py"])
                .write_stdin(format!("{valid_call}\n"))
                .timeout(Duration::from_secs(60)),
        );
        sweep.check(
            &format!("mcp record, server line {i}"),
            &out,
            &[0, 1],
            dir,
            before,
        );
    }
    sweep.finish(45);
}
