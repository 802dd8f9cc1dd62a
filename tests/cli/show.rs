//! `tapedeck show`: summary and timeline, the audit log, `--json`, and the ways to name a run.

use serde_json::{Value, json};
use tapedeck_testkit::on_both_stores;
use tapedeck_testkit::snapshot::insta_settings;
use tapedeck_testkit::{TapeBuilder, scenarios};
use tapedeck_trace::{
    EventData, LlmRequest, LlmResponse, Source, StopReason, ToolCall, ToolCallSummary, Usage,
    hash_json,
};

use crate::{CLEAN, Env, INCIDENT, LONG_RUN, TOOL_DENIED, stdout};

on_both_stores! {
    fn clean_run_summary_and_timeline(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["show", CLEAN]));
        insta_settings().bind(|| insta::assert_snapshot!("show_clean", out));
    }
}

on_both_stores! {
    fn incident_summary_and_timeline(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["show", INCIDENT]));
        insta_settings().bind(|| insta::assert_snapshot!("show_incident", out));
    }
}

on_both_stores! {
    fn incident_summary_names_the_tool_that_spent_the_budget(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["show", INCIDENT]));
        let line = |label: &str| {
            out.lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_else(|| panic!("no `{label}` line in:\n{out}"))
                .to_owned()
        };
        assert!(line("status").contains("stopped — max_tool_calls"));
        let top = line("top tool");
        assert!(
            top.contains("browser.open — 15 of 15 tool calls"),
            "top tool line: {top}"
        );
        assert!(top.contains("$10.80"), "the tool's spend: {top}");
        assert!(top.contains("15 failed"), "{top}");
        let budget = line("budget");
        assert!(
            budget.contains("max_tool_calls exceeded: 15 used of 15, hit by a browser.open call"),
            "budget line: {budget}"
        );
        // The timeline has the 15 failed calls and the budget stop.
        assert_eq!(out.matches("✗ HTTP 503 Service Unavailable").count(), 15);
        assert!(out.contains("max_tool_calls  15 used of 15 · at a browser.open call"));
        assert!(out.contains("run_finished    stopped — max_tool_calls"));
    }
}

on_both_stores! {
    fn a_unique_prefix_of_the_full_or_short_id_names_a_run(backend) {
        let env = Env::with_fixtures_on(backend);
        let by_short = stdout(env.tapedeck().args(["show", INCIDENT]));
        for query in [
            scenarios::INCIDENT_RUN_ID,
            "01a1cdbf",
            "01a1cdbf-9418",
            "b7e5",
            "B7E5D602",
        ] {
            let out = stdout(env.tapedeck().args(["show", query]));
            assert_eq!(out, by_short, "`show {query}` shows another run");
        }
    }
}

on_both_stores! {
    fn audit_log_of_the_incident(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["show", INCIDENT, "--audit"]));
        insta_settings().bind(|| insta::assert_snapshot!("show_incident_audit", out));
        assert!(!out.contains("timeline"), "--audit replaces the timeline");
    }
}

on_both_stores! {
    fn audit_log_of_the_denied_call(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["show", TOOL_DENIED, "--audit"]));
        insta_settings().bind(|| insta::assert_snapshot!("show_tool_denied_audit", out));
        assert!(out.contains("http.post is not in tools.allow"));
    }
}

on_both_stores! {
    fn json_has_run_events_blobs_and_tool_spend(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["show", INCIDENT, "--json"]));
        let show: Value = serde_json::from_str(&out).expect("`show --json` prints JSON");
        assert_eq!(show["short_id"], INCIDENT);
        assert_eq!(show["run"]["id"], scenarios::INCIDENT_RUN_ID);
        assert_eq!(show["run"]["stop_reason"], "max_tool_calls");
        let events = show["events"].as_array().expect("events");
        assert_eq!(events.len(), 80);
        assert_eq!(events[0]["seq"], 1);
        assert_eq!(events[79]["seq"], 80);
        let spend = show["tool_spend"].as_array().expect("tool_spend");
        assert_eq!(spend.len(), 1);
        assert_eq!(spend[0]["tool"], "browser.open");
        assert_eq!(spend[0]["calls"], 15);
        assert_eq!(spend[0]["errors"], 15);
        let cost = spend[0]["cost_usd"].as_f64().expect("a cost");
        assert!(
            (cost - 15.0 * scenarios::BROWSER_OPEN_COST_USD).abs() < 1e-9,
            "{cost}"
        );
        // Every blob an event refers to is there, keyed by its hash.
        let blobs = show["blobs"].as_object().expect("blobs");
        assert!(!blobs.is_empty());
        for (hash, _) in blobs {
            assert!(hash.starts_with("sha256:"), "{hash}");
            assert!(
                out.matches(hash.as_str()).count() >= 2,
                "{hash} is referred to by no event"
            );
        }
    }
}

on_both_stores! {
    fn json_of_the_clean_run_lists_its_one_tool(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["show", CLEAN, "--json"]));
        let show: Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(show["events"].as_array().map(Vec::len), Some(9));
        assert_eq!(show["tool_spend"][0]["tool"], "kb.read");
        assert_eq!(show["tool_spend"][0]["calls"], 1);
        assert_eq!(show["tool_spend"][0]["errors"], 0);
    }
}

on_both_stores! {
    fn long_run_timeline_has_every_event(backend) {
        let env = Env::with_fixtures_on(backend);
        let out = stdout(env.tapedeck().args(["show", LONG_RUN]));
        assert!(out.contains("steps      121 · tool calls 120 (kb.read 60, search.read 60)"));
        assert!(out.contains("  step 121\n"));
        assert!(out.lines().any(|l| l.trim_start().starts_with("604 ")));
        assert!(out.contains("run_finished    ok — ok"));
    }
}

on_both_stores! {
    /// The help's example `show --json | jq .summary` names a key the JSON did not have.
    fn json_has_the_summary_the_help_names(backend) {
        let env = Env::with_fixtures_on(backend);
        let help = stdout(env.tapedeck().args(["show", "--help"]));
        assert!(help.contains("jq .summary"), "{help}");
        let out = stdout(env.tapedeck().args(["show", INCIDENT, "--json"]));
        let show: Value = serde_json::from_str(&out).expect("JSON");
        // The keys that were there before stay.
        for key in ["short_id", "run", "tool_spend", "events", "blobs"] {
            assert!(show.get(key).is_some(), "no `{key}`");
        }
        insta_settings()
            .bind(|| insta::assert_json_snapshot!("show_incident_json_summary", show["summary"]));
    }
}

/// Adds one model step as the HTTP proxy records it: the request's messages, then the response
/// with `message` in the API's own shape, asking for `calls` (call id, tool), and a `tool_call`
/// event for each.
fn proxy_step(
    tape: &mut TapeBuilder,
    (provider, model): (&str, &str),
    step: u64,
    messages: &[Value],
    message: &Value,
    calls: &[(&str, &str, Value)],
    finish: &str,
) {
    let refs = messages.iter().map(|m| tape.blob(m)).collect();
    let (request_hash, _) = hash_json(&json!({ "step": step, "messages": messages }))
        .expect("a request has a canonical form");
    tape.event(
        EventData::LlmRequest(LlmRequest {
            step,
            provider: Some(provider.to_owned()),
            model: model.to_owned(),
            params: Value::Null,
            extends: None,
            messages: refs,
            tools: None,
            request_hash,
        }),
        1,
    );
    let message = tape.blob(message);
    tape.event(
        EventData::LlmResponse(LlmResponse {
            step,
            message,
            tool_calls: calls
                .iter()
                .map(|(id, name, _)| ToolCallSummary {
                    id: (*id).to_owned(),
                    name: (*name).to_owned(),
                })
                .collect(),
            finish_reason: Some(finish.to_owned()),
            usage: Some(Usage {
                input_tokens: 50,
                output_tokens: 10,
            }),
            cost_usd: None,
            latency_ms: 300,
            streamed: false,
            truncated: false,
        }),
        300,
    );
    for (id, tool, args) in calls {
        let args = tape.blob(args);
        tape.event(
            EventData::ToolCall(ToolCall {
                step,
                call_id: (*id).to_owned(),
                tool: (*tool).to_owned(),
                args,
                args_hash: args,
                idempotency_key: None,
            }),
            1,
        );
    }
}

/// One model step of a proxy run: the messages sent, the response message, the calls it asks
/// for (call id, tool, arguments), its finish reason.
type Step<'a> = (Vec<Value>, Value, Vec<(&'a str, &'a str, Value)>, &'a str);

/// The timeline of a proxy run of `model` (provider, name) built with `steps`, imported from a
/// tape.
fn proxy_timeline(id: &str, model: (&str, &str), steps: &[Step<'_>]) -> String {
    let env = Env::new();
    let mut tape = TapeBuilder::new(id, "2026-11-21T10:00:00Z").source(Source::Proxy);
    for (i, (messages, message, calls, finish)) in steps.iter().enumerate() {
        proxy_step(
            &mut tape,
            model,
            i as u64 + 1,
            messages,
            message,
            calls,
            finish,
        );
    }
    let answer = "It is 14:05 in Paris.";
    std::fs::write(
        env.path("run.jsonl"),
        tape.finish(StopReason::Ok, Some(answer)),
    )
    .expect("write the tape");
    stdout(env.tapedeck().args(["import", "run.jsonl"]));
    let short = &id[id.len() - 8..];
    let out = stdout(env.tapedeck().args(["show", short]));
    out.split_once("timeline\n")
        .map(|(summary, timeline)| {
            assert!(summary.contains(answer), "{summary}");
            timeline.to_owned()
        })
        .expect("a timeline")
}

/// Regression: a Responses-API run (the OpenAI Agents SDK's default) showed its final answer as
/// `“”` on its `llm_response` line: the proxy records the response's `output` items, and only
/// Chat Completions' `content` was read.
#[test]
fn responses_api_answers_are_shown_in_the_timeline() {
    let question = json!({ "role": "user", "content": "What time is it in Paris?" });
    let call = json!({
        "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_time",
        "arguments": "{\"city\":\"Paris\"}", "status": "completed",
    });
    let output = json!({ "type": "function_call_output", "call_id": "call_1", "output": "14:05" });
    let timeline = proxy_timeline(
        "01a1a0b0-be20-73b0-8668-0000aa000001",
        ("openai", "gpt-4.1-mini"),
        &[
            (
                vec![question.clone()],
                json!({ "role": "assistant", "output": [call] }),
                vec![("call_1", "get_time", json!({ "city": "Paris" }))],
                "tool_calls",
            ),
            (
                vec![question, call, output],
                json!({ "role": "assistant", "output": [
                    { "type": "reasoning", "id": "rs_1", "summary": [] },
                    { "type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                      "content": [{ "type": "output_text", "text": "It is 14:05 in Paris.",
                                    "annotations": [] }] },
                ] }),
                vec![],
                "stop",
            ),
        ],
    );
    insta_settings().bind(|| insta::assert_snapshot!("show_responses_api_timeline", timeline));
    assert!(timeline.contains("“It is 14:05 in Paris.”"), "{timeline}");
}

/// Regression: the text an Anthropic model writes before a `tool_use` block ("Let me check…")
/// was missing from its `llm_response` line, which showed only the tools asked for.
#[test]
fn anthropic_text_before_tool_use_is_shown_in_the_timeline() {
    let question = json!({ "role": "user", "content": "What time is it in Paris?" });
    let asked = json!({ "role": "assistant", "content": [
        { "type": "text", "text": "Let me check the time in Paris." },
        { "type": "tool_use", "id": "toolu_1", "name": "get_time", "input": { "city": "Paris" } },
    ] });
    let result = json!({ "role": "user", "content": [
        { "type": "tool_result", "tool_use_id": "toolu_1", "content": "14:05" },
    ] });
    let timeline = proxy_timeline(
        "01a1a0b0-be20-73b0-8668-0000aa000002",
        ("anthropic", "claude-sonnet-4-5"),
        &[
            (
                vec![question.clone()],
                asked.clone(),
                vec![("toolu_1", "get_time", json!({ "city": "Paris" }))],
                "tool_use",
            ),
            (
                vec![question, asked, result],
                json!({ "role": "assistant", "content": [
                    { "type": "text", "text": "It is 14:05 in Paris." },
                ] }),
                vec![],
                "end_turn",
            ),
        ],
    );
    insta_settings().bind(|| insta::assert_snapshot!("show_anthropic_timeline", timeline));
    assert!(
        timeline.contains("“Let me check the time in Paris.” → get_time"),
        "{timeline}"
    );
}

on_both_stores! {
    /// Regression: an unknown cost is `?` in every place `show` prints one (the summary, and
    /// no per-step cost on the timeline), as in `ls`.
    fn unknown_cost_is_a_question_mark(backend) {
        let env = Env::on(backend);
        std::fs::write(
            env.path("run.jsonl"),
            crate::tiny_tape("01a1a0b0-be20-73b0-8668-0000aa000003"),
        )
        .expect("write the tape");
        stdout(env.tapedeck().args(["import", "run.jsonl"]));
        let out = stdout(env.tapedeck().args(["show", "aa000003"]));
        let cost = out
            .lines()
            .find(|l| l.trim_start().starts_with("cost"))
            .expect("a cost line");
        assert_eq!(cost.trim(), "cost       ?", "{out}");
        assert!(!out.contains("$0"), "{out}");
        let show: Value =
            serde_json::from_str(&stdout(env.tapedeck().args(["show", "aa000003", "--json"])))
                .expect("JSON");
        assert_eq!(show["summary"]["cost_usd"], Value::Null);
        let ls = stdout(env.tapedeck().arg("ls"));
        let row = ls.lines().nth(1).expect("a row");
        assert!(row.ends_with(" ?"), "{ls}");
    }
}
