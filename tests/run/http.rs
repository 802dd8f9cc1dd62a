//! The HTTP model backends end to end: `tapedeck run` against a fake OpenAI-compatible server
//! and a fake Anthropic server on 127.0.0.1 — tool calls, streaming, a rate limit retried,
//! malformed answers, the model's own length limit — with the API key read from the variable
//! `api_key_env` names and never written to the store.

use std::time::Duration;
use tapedeck_testkit::on_both_stores;

use serde_json::{Value, json};

use crate::server::{FakeServer, Reply};
use crate::stop_reasons::KB;
use crate::{Env, Outcome, dedent};

/// The variable the configs name in `api_key_env`, and the key it holds.
const KEY_VAR: &str = "TAPEDECK_TEST_MODEL_KEY";
const KEY: &str = "sk-tapedeck-test-5ecret-0123456789abcdef";

/// Prices of the test models, in dollars per million tokens.
const PRICING: &str = r#"
    pricing:
      gpt-test: {input_per_mtok: 1.0, output_per_mtok: 2.0}
      claude-test: {input_per_mtok: 3.0, output_per_mtok: 15.0}
    "#;

/// A model of a fake server: provider, name, and whether answers are streamed.
#[derive(Clone, Copy)]
struct Model {
    provider: &'static str,
    name: &'static str,
    stream: bool,
}

impl Model {
    const OPENAI: Self = Self {
        provider: "openai",
        name: "gpt-test",
        stream: false,
    };
    const ANTHROPIC: Self = Self {
        provider: "anthropic",
        name: "claude-test",
        stream: false,
    };

    fn streamed(self) -> Self {
        Self {
            stream: true,
            ..self
        }
    }
}

/// Writes `agent.yaml` for `model` at `base_url`, with the `kb.read` tool and `extra`.
fn agent(env: &Env, model: Model, base_url: &str, extra: &[&str]) {
    let Model {
        provider,
        name,
        stream,
    } = model;
    let mut config = format!(
        "name: http-bot\nmodel:\n  provider: {provider}\n  name: {name}\n  base_url: \"{base_url}\"\n  api_key_env: {KEY_VAR}\n  temperature: 0\n  stream: {stream}\n"
    );
    for part in extra {
        config.push_str(&dedent(part));
    }
    config.push_str("system_prompt: You are a help desk.\n");
    config.push_str(&dedent(KB));
    env.write("agent.yaml", &config);
}

/// An OpenAI agent on `server`, its base URL ending in `/v1` as OpenAI's does.
fn openai_agent(env: &Env, server: &FakeServer, model: Model) {
    agent(env, model, &format!("{}/v1", server.base), &[PRICING]);
}

/// An Anthropic agent on `server`, its base URL without `/v1` as Anthropic's is.
fn anthropic_agent(env: &Env, server: &FakeServer, model: Model) {
    agent(env, model, &server.base, &[PRICING]);
}

/// `tapedeck run agent.yaml --input INPUT` with the key in the environment.
fn run(env: &Env, input: &str) -> Outcome {
    env.run_with(&["agent.yaml", "--input", input], &[(KEY_VAR, KEY)])
}

/// Checks the key is nowhere in the store: the SQLite files (the database, its WAL and shared
/// memory), or every table of the PostgreSQL database.
fn assert_key_not_stored(env: &Env) {
    if let Some(db) = env.database() {
        let found = db.psql(&format!(
            "SELECT (SELECT count(*) FROM blobs WHERE position('{KEY}'::bytea IN data) > 0)
                  + (SELECT count(*) FROM events WHERE position('{KEY}'::bytea IN data) > 0)
                  + (SELECT count(*) FROM runs WHERE strpos(runs::text, '{KEY}') > 0)"
        ));
        assert_eq!(found, "0", "the API key is in the database");
        assert_ne!(
            db.psql("SELECT count(*) FROM events"),
            "0",
            "no events were recorded"
        );
        return;
    }
    let mut checked = 0;
    for suffix in ["", "-wal", "-shm"] {
        let path = env.path(&format!("{}{suffix}", crate::STORE));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        checked += 1;
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the API key is in {}",
            path.display()
        );
    }
    assert!(checked > 0, "no store file was written");
}

/// A Chat Completions answer.
fn completion(message: Value, finish: &str, usage: (u64, u64)) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}
    })
}

fn openai_tool_call() -> Value {
    completion(
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_a", "type": "function",
            "function": {"name": "kb_read", "arguments": "{\"article\":\"password-reset\"}"}
        }]}),
        "tool_calls",
        (40, 10),
    )
}

fn openai_text(text: &str) -> Value {
    completion(
        json!({"role": "assistant", "content": text}),
        "stop",
        (60, 8),
    )
}

on_both_stores! {
    fn openai_tool_calling_conversation(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![
            Reply::json(200, &openai_tool_call()),
            Reply::json(200, &openai_text("Open Settings > Security.")),
        ]);
        openai_agent(&env, &server, Model::OPENAI);
        let out = run(&env, "How do I reset my password?");
        out.expect_code(0);
        assert_eq!(out.stderr, "");
        assert!(
            out.stdout.starts_with("Open Settings > Security.\n"),
            "{}",
            out.stdout
        );

        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        for request in &requests {
            assert_eq!(request.path, "/v1/chat/completions");
            assert_eq!(
                request.header("authorization"),
                Some(format!("Bearer {KEY}").as_str())
            );
        }
        let first = requests[0].json();
        assert_eq!(first["model"], "gpt-test");
        assert_eq!(first["tools"][0]["function"]["name"], "kb_read");
        let second = requests[1].json();
        let messages = second["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 4, "{second}");
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages[2]["tool_calls"][0]["id"], "call_a");
        assert_eq!(messages[3]["role"], "tool");
        assert_eq!(messages[3]["tool_call_id"], "call_a");
        assert_eq!(
            messages[3]["content"],
            r#"{"article":"password-reset","body":"Open Settings > Security."}"#
        );

        let run = env.last_run();
        run.expect_stop("ok", "ok");
        assert_eq!(run.data("llm_request")[0]["provider"], "openai");
        // The tool call comes back under the tool's own name.
        assert_eq!(run.data("tool_call")[0]["tool"], "kb.read");
        assert_eq!(run.data("tool_call")[0]["call_id"], "call_a");
        let totals = &run.run()["totals"];
        assert_eq!(totals["tokens_in"], 100);
        assert_eq!(totals["tokens_out"], 18);
        let cost = totals["cost_usd"].as_f64().expect("a known cost");
        assert!((cost - (100.0 + 36.0) / 1e6).abs() < 1e-12, "{cost}");
        assert_key_not_stored(&env);
        assert!(
            !env.stdout(&["show", &env.last_id(), "--json"])
                .contains(KEY)
        );
    }
}

/// One Chat Completions stream chunk.
fn chunk(value: &Value) -> String {
    format!("data: {value}\n\n")
}

on_both_stores! {
    fn openai_streaming(backend) {
        let env = Env::on(backend);
        let tool_stream = vec![
            chunk(
                &json!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
                {"index": 0, "id": "call_s", "type": "function", "function": {"name": "kb_read", "arguments": "{\"arti"}}
            ]}, "finish_reason": null}]}),
            ),
            chunk(&json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "cle\":\"password-reset\"}"}}
            ]}, "finish_reason": null}]})),
            chunk(&json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
            chunk(&json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 7}})),
            "data: [DONE]\n\n".to_owned(),
        ];
        let text_stream = vec![
            chunk(
                &json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Open "}, "finish_reason": null}]}),
            ),
            chunk(
                &json!({"choices": [{"index": 0, "delta": {"content": "Settings."}, "finish_reason": "stop"}]}),
            ),
            chunk(&json!({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 3}})),
            "data: [DONE]\n\n".to_owned(),
        ];
        let server = FakeServer::start(vec![Reply::Sse(tool_stream), Reply::Sse(text_stream)]);
        openai_agent(&env, &server, Model::OPENAI.streamed());
        run(&env, "How do I reset my password?").expect_code(0);
        for request in server.requests() {
            assert_eq!(request.json()["stream"], true);
        }
        let run = env.last_run();
        run.expect_stop("ok", "ok");
        assert_eq!(run.run()["answer"], "Open Settings.");
        assert_eq!(
            run.data("tool_call")[0]["tool"],
            "kb.read",
            "the streamed tool call is put back together"
        );
        for response in run.data("llm_response") {
            assert_eq!(response["streamed"], true, "{response}");
        }
        assert_eq!(run.run()["totals"]["tokens_in"], 70);
        assert_eq!(run.run()["totals"]["tokens_out"], 10);
        assert_key_not_stored(&env);
    }
}

on_both_stores! {
    fn openai_rate_limit_is_retried(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![
            Reply::json(
                429,
                &json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}),
            )
            .header("retry-after-ms", "10"),
            Reply::json(200, &openai_text("Hello.")),
        ]);
        openai_agent(&env, &server, Model::OPENAI);
        run(&env, "hi").expect_code(0);
        assert_eq!(server.requests().len(), 2);
        let run = env.last_run();
        run.expect_stop("ok", "ok");
        let retries = run.data("llm_retry");
        assert_eq!(retries.len(), 1);
        assert_eq!(retries[0]["status"], 429);
        assert_eq!(retries[0]["wait_ms"], 10);
        assert_eq!(retries[0]["error"], "HTTP 429: Rate limit reached");
        assert_eq!(
            run.kinds(),
            [
                "run_started",
                "llm_request",
                "llm_retry",
                "llm_response",
                "run_finished"
            ]
        );
    }
}

on_both_stores! {
    fn openai_malformed_response_is_a_model_error(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![Reply::text(
            200,
            "application/json",
            "<html>upstream proxy error</html>",
        )]);
        openai_agent(&env, &server, Model::OPENAI);
        let out = run(&env, "hi");
        out.expect_code(1);
        assert!(out.stdout.contains("error — model_error"), "{}", out.stdout);
        assert!(
            out.stdout.contains("reason: malformed response:"),
            "{}",
            out.stdout
        );
        let runs = env.ls();
        assert_eq!(runs.len(), 1, "the failed run is recorded");
        let run = env.last_run();
        run.expect_stop("model_error", "error");
        assert!(
            run.error()
                .starts_with("malformed response: the response body is not JSON"),
            "{}",
            run.error()
        );
        assert!(
            run.error().contains("upstream proxy error"),
            "{}",
            run.error()
        );
        let show = env.stdout(&["show", &env.last_id()]);
        assert!(
            show.contains("error      malformed response: the response body is not JSON"),
            "{show}"
        );
        assert_key_not_stored(&env);
    }
}

on_both_stores! {
    fn openai_answer_without_choices_is_a_model_error(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![Reply::json(
            200,
            &json!({"id": "x", "object": "chat.completion"}),
        )]);
        openai_agent(&env, &server, Model::OPENAI);
        run(&env, "hi").expect_code(1);
        let run = env.last_run();
        run.expect_stop("model_error", "error");
        assert!(
            run.error().starts_with("malformed response:"),
            "{}",
            run.error()
        );
    }
}

on_both_stores! {
    fn openai_length_is_model_length(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![Reply::json(
            200,
            &completion(
                json!({"role": "assistant", "content": "It was a dark"}),
                "length",
                (10, 256),
            ),
        )]);
        openai_agent(&env, &server, Model::OPENAI);
        run(&env, "Tell me a story.").expect_code(1);
        let run = env.last_run();
        run.expect_stop("model_length", "stopped");
        assert_eq!(run.data("llm_response")[0]["finish_reason"], "length");
        assert_eq!(run.run()["answer"], "It was a dark");
    }
}

/// An Anthropic Messages answer.
fn message(content: Value, stop: &str, usage: (u64, u64)) -> Value {
    json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {"input_tokens": usage.0, "output_tokens": usage.1}
    })
}

on_both_stores! {
    fn anthropic_tool_calling_conversation(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![
            Reply::json(
                200,
                &message(
                    json!([
                        {"type": "text", "text": "Let me look."},
                        {"type": "tool_use", "id": "toolu_1", "name": "kb_read", "input": {"article": "password-reset"}}
                    ]),
                    "tool_use",
                    (30, 12),
                ),
            ),
            Reply::json(
                200,
                &message(
                    json!([{"type": "text", "text": "Open Settings > Security."}]),
                    "end_turn",
                    (70, 9),
                ),
            ),
        ]);
        anthropic_agent(&env, &server, Model::ANTHROPIC);
        run(&env, "How do I reset my password?").expect_code(0);
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        for request in &requests {
            assert_eq!(request.path, "/v1/messages");
            assert_eq!(request.header("x-api-key"), Some(KEY));
            assert_eq!(request.header("authorization"), None);
        }
        let second = requests[1].json();
        assert_eq!(second["system"], "You are a help desk.");
        let messages = second["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 3, "{second}");
        assert_eq!(messages[2]["content"][0]["type"], "tool_result");
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_1");

        let run = env.last_run();
        run.expect_stop("ok", "ok");
        assert_eq!(run.data("llm_request")[0]["provider"], "anthropic");
        assert_eq!(run.data("tool_call")[0]["tool"], "kb.read");
        assert_eq!(run.run()["answer"], "Open Settings > Security.");
        let cost = run.run()["totals"]["cost_usd"]
            .as_f64()
            .expect("a known cost");
        assert!(
            (cost - (100.0 * 3.0 + 21.0 * 15.0) / 1e6).abs() < 1e-12,
            "{cost}"
        );
        assert_key_not_stored(&env);
    }
}

/// One Anthropic stream event.
fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

on_both_stores! {
    fn anthropic_streaming(backend) {
        let env = Env::on(backend);
        let stream = vec![
            event(
                "message_start",
                &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                    "role": "assistant", "content": [], "model": "claude-test", "stop_reason": null,
                    "usage": {"input_tokens": 25, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "All "}}),
            ),
            event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "good."}}),
            ),
            event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": 0}),
            ),
            event(
                "message_delta",
                &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}}),
            ),
            event("message_stop", &json!({"type": "message_stop"})),
        ];
        let server = FakeServer::start(vec![Reply::Sse(stream)]);
        anthropic_agent(&env, &server, Model::ANTHROPIC.streamed());
        run(&env, "status?").expect_code(0);
        assert_eq!(server.requests()[0].json()["stream"], true);
        let run = env.last_run();
        run.expect_stop("ok", "ok");
        assert_eq!(run.run()["answer"], "All good.");
        assert_eq!(run.data("llm_response")[0]["streamed"], true);
        assert_key_not_stored(&env);
    }
}

on_both_stores! {
    fn anthropic_max_tokens_is_model_length(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![Reply::json(
            200,
            &message(
                json!([{"type": "text", "text": "Once upon"}]),
                "max_tokens",
                (10, 1024),
            ),
        )]);
        anthropic_agent(&env, &server, Model::ANTHROPIC);
        run(&env, "Tell me a story.").expect_code(1);
        let run = env.last_run();
        run.expect_stop("model_length", "stopped");
        assert_eq!(run.data("llm_response")[0]["finish_reason"], "max_tokens");
        assert_key_not_stored(&env);
    }
}

on_both_stores! {
    fn anthropic_overloaded_then_success(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![
            Reply::json(
                529,
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            )
            .header("retry-after-ms", "10"),
            Reply::json(
                200,
                &message(json!([{"type": "text", "text": "Hi."}]), "end_turn", (5, 2)),
            ),
        ]);
        anthropic_agent(&env, &server, Model::ANTHROPIC);
        run(&env, "hi").expect_code(0);
        let run = env.last_run();
        run.expect_stop("ok", "ok");
        let retries = run.data("llm_retry");
        assert_eq!(retries.len(), 1);
        assert_eq!(retries[0]["status"], 529);
    }
}

on_both_stores! {
    fn a_model_that_does_not_answer_ends_at_max_seconds(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![Reply::Silent(Duration::from_secs(20))]);
        agent(
            &env,
            Model::OPENAI,
            &format!("{}/v1", server.base),
            &[PRICING, "budgets: {max_seconds: 1}\n"],
        );
        let out = run(&env, "hi");
        out.expect_code(1);
        assert!(out.elapsed < Duration::from_secs(6), "{:?}", out.elapsed);
        let run = env.last_run();
        run.expect_stop("max_seconds", "stopped");
        assert_eq!(run.budget_exceeded()["budget"], "max_seconds");
        assert!(
            run.data("llm_retry").is_empty(),
            "a timeout at the deadline is not retried"
        );
    }
}

on_both_stores! {
    fn missing_price_warns_and_leaves_the_cost_unknown(backend) {
        let env = Env::on(backend);
        let server = FakeServer::start(vec![Reply::json(200, &openai_text("Hello."))]);
        // No `pricing` for gpt-test.
        let base = format!("{}/v1", server.base);
        agent(&env, Model::OPENAI, &base, &[]);
        let out = run(&env, "hi");
        out.expect_code(0);
        assert!(
            out.stderr.contains(
                "warning: agent.yaml: no price for model `gpt-test` under `pricing`: its cost will be unknown"
            ),
            "{}",
            out.stderr
        );
        // Unknown, never a made-up 0.
        assert!(out.stdout.contains(" tokens · ?\n"), "{}", out.stdout);
        let runs = env.ls();
        assert!(runs[0]["totals"]["cost_usd"].is_null(), "{}", runs[0]);
        let table = env.stdout(&["ls"]);
        let row = table.lines().nth(1).expect("a row");
        assert!(row.trim_end().ends_with('?'), "{table}");
        let run = env.last_run();
        assert!(run.data("llm_response")[0]["cost_usd"].is_null());
    }
}

on_both_stores! {
    fn missing_api_key_is_an_input_error(backend) {
        let env = Env::on(backend);
        agent(&env, Model::OPENAI, "http://127.0.0.1:9/v1", &[PRICING]);
        let mut cmd = env.tapedeck();
        cmd.args(["run", "agent.yaml", "--input", "hi"])
            .env_remove(KEY_VAR);
        let out = env.exec(&mut cmd);
        let stderr = out.expect_input_error();
        assert!(
            stderr.contains(&format!("environment variable {KEY_VAR} is not set")),
            "{stderr}"
        );
        assert!(env.ls().is_empty(), "nothing ran");
    }
}
