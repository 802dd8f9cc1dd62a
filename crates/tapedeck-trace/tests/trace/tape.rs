//! The tape format: header parsing (format, version, JSON errors), event lines (round trip,
//! unknown fields rejected) and the event kind/payload forms the store relies on.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tapedeck_trace::tape::{self, TAPE_FORMAT, TAPE_VERSION, TapeEvent, TapeHeader};
use tapedeck_trace::{
    AgentIdentity, BudgetExceeded, BudgetKind, Decision, Direction, EVENT_KINDS, Event, EventData,
    HttpExchange, LlmRequest, LlmResponse, LlmRetry, McpMessage, Origin, PolicyDecision, Run,
    RunFinished, RunStarted, RunStatus, Source, StopReason, Timestamp, ToolCall, ToolCallSummary,
    ToolResult, TraceError, Usage, Validation, hash_bytes, hash_json,
};

fn run() -> Run {
    let mut run = Run::new(Source::Runtime);
    run.id = "019ac1f2-3b4c-7d5e-8f60-0123456789ab".parse().unwrap();
    run.started_at = "2026-11-26T02:54:18.000000Z".parse().unwrap();
    run.task = Some("vendor-health".into());
    run.labels.insert("model".into(), "gpt-4.1-mini".into());
    run
}

/// One event of every kind, in `EVENT_KINDS` order.
fn every_kind() -> Vec<EventData> {
    let h = |s: &str| hash_bytes(s.as_bytes());
    vec![
        EventData::RunStarted(RunStarted {
            input: Some("is the API healthy?".into()),
            agent_config: Some(h("config")),
            budgets: json!({"max_tool_calls": 15}),
            policy: Value::Null,
        }),
        EventData::LlmRequest(LlmRequest {
            step: 1,
            provider: Some("openai".into()),
            model: "gpt-4.1-mini".into(),
            params: json!({"temperature": 0}),
            extends: None,
            messages: vec![h("system"), h("user")],
            tools: Some(h("tools")),
            request_hash: h("request"),
        }),
        EventData::LlmRetry(LlmRetry {
            step: 1,
            attempt: 1,
            status: Some(429),
            error: Some("rate limited".into()),
            wait_ms: 250,
        }),
        EventData::LlmResponse(LlmResponse {
            step: 1,
            message: h("assistant"),
            tool_calls: vec![ToolCallSummary {
                id: "c1".into(),
                name: "browser.open".into(),
            }],
            finish_reason: Some("tool_calls".into()),
            usage: Some(Usage {
                input_tokens: 120,
                output_tokens: 30,
            }),
            cost_usd: Some(0.000096),
            latency_ms: 812,
            streamed: true,
            truncated: false,
        }),
        EventData::ToolCall(ToolCall {
            step: 1,
            call_id: "c1".into(),
            tool: "browser.open".into(),
            args: h("args"),
            args_hash: h("args"),
            idempotency_key: None,
        }),
        EventData::PolicyDecision(PolicyDecision {
            call_id: Some("c1".into()),
            tool: Some("browser.open".into()),
            decision: Decision::Allowed,
            rule: "tools.allow".into(),
            detail: None,
        }),
        EventData::ToolResult(ToolResult {
            call_id: "c1".into(),
            tool: "browser.open".into(),
            output: Some(h("output")),
            error: None,
            latency_ms: 40,
            validation: Validation::Invalid("/status: expected integer".into()),
            origin: Origin::Recorded,
            cost_usd: Some(0.72),
        }),
        EventData::HttpExchange(HttpExchange {
            method: "GET".into(),
            path: "/v1/models".into(),
            status: Some(200),
            step: None,
            request: Some(h("http-req")),
            response: Some(h("http-resp")),
            latency_ms: 9,
        }),
        EventData::McpMessage(McpMessage {
            direction: Direction::ServerToClient,
            method: None,
            message: h("mcp"),
            server: Some("time".into()),
        }),
        EventData::BudgetExceeded(BudgetExceeded {
            budget: BudgetKind::MaxToolCalls,
            limit: 15.0,
            used: 15.0,
            tool: Some("browser.open".into()),
        }),
        EventData::AgentIdentity(AgentIdentity::new(
            vec!["gpt-4.1-mini".into()],
            vec![h("prompt")],
            BTreeMap::from([("browser.open".to_owned(), h("browser-schema"))]),
            0,
        )),
        EventData::RunFinished(RunFinished {
            status: RunStatus::Stopped,
            stop_reason: StopReason::MaxToolCalls,
            answer: None,
            error: None,
        }),
    ]
}

#[test]
fn header_round_trips() {
    let header = TapeHeader::new(run());
    let line = tape::to_line(&header).unwrap();
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
    assert!(
        line.starts_with("{\"format\":\"tapedeck-tape\",\"run\":{"),
        "{line}"
    );
    let parsed = tape::parse_header(line.trim_end()).unwrap();
    assert_eq!(parsed, header);
    assert_eq!(parsed.format, TAPE_FORMAT);
    assert_eq!(parsed.version, TAPE_VERSION);
    assert_eq!(tape::to_line(&parsed).unwrap(), line);
}

fn header_value() -> Value {
    serde_json::to_value(TapeHeader::new(run())).unwrap()
}

#[test]
fn header_with_the_wrong_format_is_refused() {
    let mut v = header_value();
    v["format"] = json!("otel-spans");
    let err = tape::parse_header(&v.to_string()).unwrap_err();
    assert!(
        matches!(err, TraceError::TapeLine { line: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a tapedeck tape"), "{err}");

    let mut v = header_value();
    v.as_object_mut().unwrap().remove("format");
    assert!(matches!(
        tape::parse_header(&v.to_string()),
        Err(TraceError::TapeLine { line: 1, .. })
    ));

    // An event line where a header should be.
    let event = Event {
        seq: 1,
        at: Timestamp::from_micros(0),
        data: every_kind().remove(2),
    };
    let line = tape::to_line(&TapeEvent {
        event,
        blobs: BTreeMap::new(),
    })
    .unwrap();
    assert!(matches!(
        tape::parse_header(&line),
        Err(TraceError::TapeLine { line: 1, .. })
    ));
}

#[test]
fn header_of_a_newer_version_is_refused_with_an_upgrade_hint() {
    let mut v = header_value();
    v["version"] = json!(u64::from(TAPE_VERSION) + 1);
    // A newer version may carry fields this build does not know: the version check comes first.
    v["run"]["new_field"] = json!(true);
    let err = tape::parse_header(&v.to_string()).unwrap_err();
    match err {
        TraceError::TapeVersion { found, supported } => {
            assert_eq!(found, u64::from(TAPE_VERSION) + 1);
            assert_eq!(supported, TAPE_VERSION);
        }
        other => panic!("expected TapeVersion, got {other:?}"),
    }
    let message = tape::parse_header(&v.to_string()).unwrap_err().to_string();
    assert!(message.contains("upgrade tapedeck"), "{message}");
    assert!(!message.contains('\n'));

    let mut v = header_value();
    v["version"] = json!("1");
    let err = tape::parse_header(&v.to_string()).unwrap_err();
    assert!(
        matches!(err, TraceError::TapeLine { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn header_that_is_not_json_is_refused() {
    for bad in [
        "",
        "{",
        "not json",
        "{\"format\":\"tapedeck-tape\",",
        "[1,2]",
    ] {
        let err = tape::parse_header(bad).unwrap_err();
        assert!(
            matches!(err, TraceError::TapeLine { line: 1, .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().starts_with("line 1: "), "{err}");
    }
}

#[test]
fn header_with_unknown_fields_is_refused() {
    let mut v = header_value();
    v["extra"] = json!(1);
    let err = tape::parse_header(&v.to_string()).unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");

    let mut v = header_value();
    v["run"]["colour"] = json!("red");
    let err = tape::parse_header(&v.to_string()).unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");

    let mut v = header_value();
    v["run"]["totals"]["retries"] = json!(3);
    let err = tape::parse_header(&v.to_string()).unwrap_err();
    assert!(err.to_string().contains("retries"), "{err}");
}

#[test]
fn event_lines_round_trip_for_every_kind() {
    let kinds = every_kind();
    assert_eq!(kinds.len(), EVENT_KINDS.len());
    for (i, data) in kinds.into_iter().enumerate() {
        assert_eq!(data.kind(), EVENT_KINDS[i]);
        let mut blobs = BTreeMap::new();
        for hash in data.blob_refs() {
            blobs.insert(hash, json!({"content": hash.short(6)}));
        }
        let event = Event {
            seq: i as u64 + 1,
            at: Timestamp::from_micros(1_795_661_658_123_456 + i as i64),
            data,
        };
        let line = tape::to_line(&TapeEvent {
            event: event.clone(),
            blobs: blobs.clone(),
        })
        .unwrap();
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["kind"], json!(EVENT_KINDS[i]), "{line}");
        assert_eq!(value["seq"], json!(i + 1));
        let parsed = tape::parse_event(&line, i + 2).unwrap();
        assert_eq!(parsed.event, event, "{line}");
        assert_eq!(parsed.blobs, blobs);
        assert_eq!(
            tape::to_line(&parsed).unwrap(),
            line,
            "re-written line differs"
        );

        // The store keeps kind and payload apart; the two forms agree.
        let rebuilt = EventData::from_parts(event.data.kind(), event.data.payload()).unwrap();
        assert_eq!(rebuilt, event.data);
        let text = tapedeck_trace::canonical_json(&event.data.payload()).unwrap();
        assert_eq!(
            EventData::from_json(event.data.kind(), &text).unwrap(),
            event.data
        );
        assert_eq!(
            tapedeck_trace::canonical_json(&value["data"]).unwrap(),
            tapedeck_trace::canonical_json(&event.data.payload()).unwrap()
        );
    }
}

#[test]
fn blob_refs_list_every_referenced_blob() {
    let h = |s: &str| hash_bytes(s.as_bytes());
    let refs: Vec<Vec<_>> = every_kind().iter().map(EventData::blob_refs).collect();
    assert_eq!(refs[0], vec![h("config")]);
    assert_eq!(refs[1], vec![h("system"), h("user"), h("tools")]);
    assert!(refs[2].is_empty());
    assert_eq!(refs[3], vec![h("assistant")]);
    assert_eq!(refs[4], vec![h("args")]);
    assert!(refs[5].is_empty());
    assert_eq!(refs[6], vec![h("output")]);
    assert_eq!(refs[7], vec![h("http-req"), h("http-resp")]);
    assert_eq!(refs[8], vec![h("mcp")]);
    assert!(refs[9].is_empty());
    assert_eq!(refs[10], vec![h("prompt"), h("browser-schema")]);
    assert!(refs[11].is_empty());
}

fn valid_event_line() -> Value {
    let (hash, _) = hash_json(&json!({"q": "status"})).unwrap();
    let event = Event {
        seq: 3,
        at: Timestamp::from_micros(0),
        data: EventData::ToolCall(ToolCall {
            step: 1,
            call_id: "c1".into(),
            tool: "kb.read".into(),
            args: hash,
            args_hash: hash,
            idempotency_key: None,
        }),
    };
    let mut blobs = BTreeMap::new();
    blobs.insert(hash, json!({"q": "status"}));
    serde_json::from_str(&tape::to_line(&TapeEvent { event, blobs }).unwrap()).unwrap()
}

#[test]
fn event_line_with_unknown_payload_field_is_refused() {
    let mut v = valid_event_line();
    assert!(tape::parse_event(&v.to_string(), 4).is_ok());
    v["data"]["retries"] = json!(2);
    let err = tape::parse_event(&v.to_string(), 4).unwrap_err();
    assert!(
        matches!(err, TraceError::TapeLine { line: 4, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("line 4: ") && message.contains("retries"),
        "{message}"
    );
}

/// An unknown field next to `seq`/`kind` is a field of a newer tape format: reading on would
/// silently drop it (module docs of `tape`: "readers reject unknown fields").
#[test]
fn event_line_with_unknown_top_level_field_is_refused() {
    let mut v = valid_event_line();
    v["parent_seq"] = json!(2);
    let err = tape::parse_event(&v.to_string(), 7).unwrap_err();
    assert!(
        matches!(err, TraceError::TapeLine { line: 7, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("parent_seq"), "{err}");
}

#[test]
fn event_line_with_bad_kind_or_json_is_refused() {
    let mut v = valid_event_line();
    v["kind"] = json!("tool_called");
    let err = tape::parse_event(&v.to_string(), 5).unwrap_err();
    assert!(
        matches!(err, TraceError::TapeLine { line: 5, .. }),
        "{err:?}"
    );

    let mut v = valid_event_line();
    v.as_object_mut().unwrap().remove("seq");
    assert!(matches!(
        tape::parse_event(&v.to_string(), 6),
        Err(TraceError::TapeLine { line: 6, .. })
    ));

    let mut v = valid_event_line();
    let key = v["blobs"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let content = v["blobs"][&key].clone();
    v["blobs"] = json!({ key.to_uppercase(): content });
    assert!(matches!(
        tape::parse_event(&v.to_string(), 8),
        Err(TraceError::TapeLine { line: 8, .. })
    ));

    for bad in ["{", "", "null", "{\"seq\":1}"] {
        let err = tape::parse_event(bad, 9).unwrap_err();
        assert!(
            matches!(err, TraceError::TapeLine { line: 9, .. }),
            "{bad:?}: {err:?}"
        );
    }
}
