//! `Totals::observe`: steps, tool calls per tool, tokens and cost, where an unknown figure
//! makes the total unknown (`None`), never 0.

use tapedeck_trace::{
    EventData, LlmRequest, LlmResponse, Origin, Run, Source, ToolCall, ToolResult, Totals, Usage,
    Validation, hash_bytes,
};

fn request(step: u64) -> EventData {
    EventData::LlmRequest(LlmRequest {
        step,
        provider: None,
        model: "m".into(),
        params: serde_json::Value::Null,
        extends: None,
        messages: vec![hash_bytes(b"m")],
        tools: None,
        request_hash: hash_bytes(b"r"),
    })
}

fn response(usage: Option<(u64, u64)>, cost: Option<f64>) -> EventData {
    EventData::LlmResponse(LlmResponse {
        step: 1,
        message: hash_bytes(b"a"),
        tool_calls: Vec::new(),
        finish_reason: None,
        usage: usage.map(|(i, o)| Usage {
            input_tokens: i,
            output_tokens: o,
        }),
        cost_usd: cost,
        latency_ms: 5,
        streamed: false,
        truncated: false,
    })
}

fn call(tool: &str) -> EventData {
    EventData::ToolCall(ToolCall {
        step: 1,
        call_id: "c".into(),
        tool: tool.into(),
        args: hash_bytes(b"x"),
        args_hash: hash_bytes(b"x"),
        idempotency_key: None,
    })
}

fn result(tool: &str, cost: Option<f64>) -> EventData {
    EventData::ToolResult(ToolResult {
        call_id: "c".into(),
        tool: tool.into(),
        output: None,
        error: Some("503".into()),
        latency_ms: 1,
        validation: Validation::NotChecked,
        origin: Origin::Live,
        cost_usd: cost,
    })
}

#[test]
fn a_new_run_starts_from_known_zeros() {
    let totals = Run::new(Source::Proxy).totals;
    assert_eq!(totals, Totals::default());
    assert_eq!(totals.steps, 0);
    assert_eq!(totals.tokens_in, Some(0));
    assert_eq!(totals.cost_usd, Some(0.0));
    assert_eq!(totals.latency_ms, None);
    assert_eq!(totals.tokens_total(), Some(0));
    assert_eq!(totals.tool_calls_total(), 0);
}

#[test]
fn known_usage_and_cost_add_up() {
    let mut t = Totals::default();
    for data in [
        request(1),
        response(Some((100, 20)), Some(0.25)),
        call("browser.open"),
        result("browser.open", Some(0.72)),
        request(2),
        response(Some((150, 5)), Some(0.5)),
        call("browser.open"),
        call("kb.read"),
        result("kb.read", None), // absent tool cost means free
    ] {
        t.observe(&data);
    }
    assert_eq!(t.steps, 2);
    assert_eq!(t.tokens_in, Some(250));
    assert_eq!(t.tokens_out, Some(25));
    assert_eq!(t.tokens_total(), Some(275));
    let cost = t.cost_usd.unwrap();
    assert!((cost - 1.47).abs() < 1e-12, "{cost}");
    assert_eq!(t.tool_calls.get("browser.open"), Some(&2));
    assert_eq!(t.tool_calls.get("kb.read"), Some(&1));
    assert_eq!(t.tool_calls.len(), 2);
    assert_eq!(t.tool_calls_total(), 3);
}

#[test]
fn unknown_usage_makes_tokens_unknown_for_good() {
    let mut t = Totals::default();
    t.observe(&response(Some((10, 10)), Some(0.1)));
    t.observe(&response(None, Some(0.1)));
    assert_eq!((t.tokens_in, t.tokens_out), (None, None));
    assert_eq!(t.tokens_total(), None);
    // A later response with usage does not bring back a made-up total.
    t.observe(&response(Some((10, 10)), Some(0.1)));
    assert_eq!((t.tokens_in, t.tokens_out), (None, None));
    // Cost stayed known throughout.
    assert!((t.cost_usd.unwrap() - 0.3).abs() < 1e-12);
}

#[test]
fn unknown_model_cost_makes_cost_unknown_for_good() {
    let mut t = Totals::default();
    t.observe(&response(Some((1, 1)), Some(0.1)));
    t.observe(&response(Some((1, 1)), None));
    assert_eq!(t.cost_usd, None);
    t.observe(&response(Some((1, 1)), Some(0.1)));
    t.observe(&result("browser.open", Some(0.72)));
    assert_eq!(
        t.cost_usd, None,
        "a known tool cost must not turn an unknown total into a number"
    );
    assert_eq!(t.tokens_in, Some(3));
}

#[test]
fn only_requests_count_as_steps_and_only_calls_as_tool_calls() {
    let mut t = Totals::default();
    for _ in 0..15 {
        t.observe(&call("browser.open"));
        t.observe(&result("browser.open", Some(0.72)));
    }
    assert_eq!(t.steps, 0);
    assert_eq!(t.tool_calls_total(), 15);
    assert_eq!(t.tool_calls["browser.open"], 15);
    // The browser-retry incident: 15 calls at $0.72 is $10.80.
    assert!((t.cost_usd.unwrap() - 10.8).abs() < 1e-9);
}
