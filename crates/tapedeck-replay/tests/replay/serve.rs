//! What a replay serves: [`RecordedTools`] (occurrence, reuse, position, the miss policies),
//! [`RecordedModel`] with its request hashes ([`MatchingForm`]), [`RecordedApprover`].

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_agent::approvals::{ApprovalAnswer, Approver};
use tapedeck_agent::config::ToolKind;
use tapedeck_agent::{
    FinishReason, Intercepted, MatchingForm, Message, ModelBackend, ModelError, ModelRequest,
    ModelResponse, ToolCallRequest, ToolFailure, ToolInterceptor, ToolSpec,
};
use tapedeck_replay::recording::{RecordedApproval, RecordedCall, RecordedStep};
use tapedeck_replay::{MissPolicy, RecordedApprover, RecordedModel, RecordedTools};
use tapedeck_trace::{ContentHash, Origin, hash_json};

fn hash(value: &Value) -> ContentHash {
    hash_json(value).expect("hashable").0
}

fn recorded(seq: u64, tool: &str, args: Value, output: Value) -> RecordedCall {
    RecordedCall {
        seq,
        step: seq,
        call_id: format!("call_{seq}"),
        tool: tool.to_owned(),
        args_hash: hash(&args),
        args,
        result: Some(Ok(output)),
    }
}

fn request(tool: &str, args: Value) -> ToolCallRequest {
    ToolCallRequest {
        id: "call_x".to_owned(),
        name: tool.to_owned(),
        arguments: args,
    }
}

fn tools(calls: Vec<RecordedCall>, policy: MissPolicy) -> RecordedTools {
    RecordedTools::new(calls, policy, HashSet::new(), false)
}

/// Asks `tools` for a read call; the output and origin it answers with.
fn ask(tools: &mut RecordedTools, tool: &str, args: Value) -> Option<Intercepted> {
    tools.intercept(1, &request(tool, args), ToolKind::Read)
}

fn answered(intercepted: Option<Intercepted>) -> (Value, Origin) {
    match intercepted {
        Some(Intercepted::Answer {
            result: Ok(value),
            origin,
        }) => (value, origin),
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn missed(intercepted: Option<Intercepted>) -> String {
    match intercepted {
        Some(Intercepted::Miss(detail)) => detail,
        other => panic!("expected a miss, got {other:?}"),
    }
}

#[test]
fn identical_calls_are_served_by_occurrence_then_reused() {
    let next = json!({});
    let mut served = tools(
        vec![
            recorded(1, "counter.next", next.clone(), json!(1)),
            recorded(2, "kb.read", json!({"article": "x"}), json!("x")),
            recorded(3, "counter.next", next.clone(), json!(2)),
            recorded(4, "counter.next", next.clone(), json!(3)),
        ],
        MissPolicy::Error,
    );
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(answered(ask(&mut served, "counter.next", next.clone())));
    }
    assert_eq!(
        got,
        [
            (json!(1), Origin::Recorded),
            (json!(2), Origin::Recorded),
            (json!(3), Origin::Recorded),
            (json!(3), Origin::Reused),
            (json!(3), Origin::Reused),
        ]
    );
    // Another tool's occurrences are its own.
    assert_eq!(
        answered(ask(&mut served, "kb.read", json!({"article": "x"}))),
        (json!("x"), Origin::Recorded)
    );
}

#[test]
fn arguments_match_canonically() {
    let mut served = tools(
        vec![recorded(
            1,
            "search",
            json!({"q": "status", "n": 1.0}),
            json!("found"),
        )],
        MissPolicy::Error,
    );
    // Another key order and `1` for `1.0`: the same canonical arguments.
    let args: Value = serde_json::from_str(r#"{"n": 1, "q": "status"}"#).expect("JSON");
    assert_eq!(
        answered(ask(&mut served, "search", args)),
        (json!("found"), Origin::Recorded)
    );
}

#[test]
fn recorded_failures_are_served_as_failures() {
    let mut call = recorded(1, "browser.open", json!({"url": "u"}), Value::Null);
    call.result = Some(Err("HTTP 503".to_owned()));
    let mut unfinished = recorded(2, "browser.open", json!({"url": "v"}), Value::Null);
    unfinished.result = None;
    let mut served = tools(vec![call, unfinished], MissPolicy::Error);
    assert_eq!(
        ask(&mut served, "browser.open", json!({"url": "u"})),
        Some(Intercepted::Answer {
            result: Err(ToolFailure::Failed("HTTP 503".to_owned())),
            origin: Origin::Recorded,
        })
    );
    match ask(&mut served, "browser.open", json!({"url": "v"})) {
        Some(Intercepted::Answer {
            result: Err(ToolFailure::Failed(message)),
            ..
        }) => assert!(message.contains("has no result"), "{message}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn articles() -> Vec<RecordedCall> {
    vec![
        recorded(
            1,
            "kb.read",
            json!({"article": "password-reset"}),
            json!("reset"),
        ),
        recorded(
            2,
            "kb.read",
            json!({"article": "refund-policy"}),
            json!("refunds"),
        ),
    ]
}

#[test]
fn new_arguments_are_a_miss_naming_the_closest_call() {
    let mut served = tools(articles(), MissPolicy::Error);
    let detail = missed(ask(
        &mut served,
        "kb.read",
        json!({"article": "password-recovery"}),
    ));
    assert_eq!(
        detail,
        r#"no recorded call of `kb.read` with arguments {"article":"password-recovery"}; closest recorded: {"article":"password-reset"} (similarity 0.88), which differs in `article`"#
    );
    let detail = missed(ask(&mut served, "web.search", json!({"q": "x"})));
    assert!(
        detail.ends_with("the recording never called `web.search`"),
        "{detail}"
    );
}

#[test]
fn matching_by_position_is_opt_in() {
    let mut without = tools(articles(), MissPolicy::Error);
    missed(ask(&mut without, "kb.read", json!({"article": "a"})));
    let mut with = RecordedTools::new(articles(), MissPolicy::Error, HashSet::new(), true);
    // The first call matches exactly; the second, new, gets the second recorded kb.read.
    assert_eq!(
        answered(ask(
            &mut with,
            "kb.read",
            json!({"article": "password-reset"})
        )),
        (json!("reset"), Origin::Recorded)
    );
    assert_eq!(
        answered(ask(&mut with, "kb.read", json!({"article": "b"}))),
        (json!("refunds"), Origin::Recorded)
    );
    // Past the recorded calls there is no position to match: the miss policy again.
    missed(ask(&mut with, "kb.read", json!({"article": "c"})));
}

#[test]
fn on_miss_closest_serves_the_most_similar_call_as_reused() {
    let mut served = tools(articles(), MissPolicy::Closest);
    assert_eq!(
        answered(ask(
            &mut served,
            "kb.read",
            json!({"article": "password-recovery"})
        )),
        (json!("reset"), Origin::Reused)
    );
    assert_eq!(
        answered(ask(
            &mut served,
            "kb.read",
            json!({"article": "refund-policies"})
        )),
        (json!("refunds"), Origin::Reused)
    );
    // Never another tool's call.
    let detail = missed(ask(
        &mut served,
        "kb.search",
        json!({"article": "refund-policy"}),
    ));
    assert_eq!(detail, "the recording has no call of `kb.search` at all");
}

#[test]
fn on_miss_live_runs_only_read_tools_that_are_listed() {
    let allowed: HashSet<String> = ["kb.read", "orders.refund", "browser.open"]
        .map(str::to_owned)
        .into();
    let mut served = RecordedTools::new(articles(), MissPolicy::Live, allowed, false);
    let new = json!({"article": "new"});
    // A listed read tool: `None`, its backend runs.
    assert_eq!(
        served.intercept(1, &request("kb.read", new.clone()), ToolKind::Read),
        None
    );
    // A read tool not listed.
    let detail = missed(served.intercept(1, &request("kb.search", new.clone()), ToolKind::Read));
    assert!(
        detail.contains("(`kb.search` is not in --live-allow)"),
        "{detail}"
    );
    // Listed, but writes and expensive tools never run live.
    let detail =
        missed(served.intercept(1, &request("orders.refund", new.clone()), ToolKind::Write));
    assert!(
        detail.contains("(`--on-miss live` never runs a write tool)"),
        "{detail}"
    );
    let detail = missed(served.intercept(1, &request("browser.open", new), ToolKind::Expensive));
    assert!(
        detail.contains("(`--on-miss live` never runs an expensive tool)"),
        "{detail}"
    );
    // A recorded call is still served from the recording.
    assert_eq!(
        answered(ask(
            &mut served,
            "kb.read",
            json!({"article": "refund-policy"})
        )),
        (json!("refunds"), Origin::Recorded)
    );
}

#[test]
fn a_fork_serves_only_the_steps_up_to_k() {
    let mut served = tools(articles(), MissPolicy::Error).through_step(2);
    let args = json!({"article": "password-reset"});
    assert!(
        served
            .intercept(2, &request("kb.read", args.clone()), ToolKind::Read)
            .is_some()
    );
    assert_eq!(
        served.intercept(3, &request("kb.read", args), ToolKind::Read),
        None
    );
}

fn conversation(turns: usize) -> Vec<Message> {
    let mut messages = vec![
        Message::System {
            content: "You are a bot.".to_owned(),
        },
        Message::User {
            content: "Reset my password — ünïcode, \"quotes\", \u{1F600}".to_owned(),
        },
    ];
    for i in 0..turns {
        messages.push(Message::Assistant {
            content: None,
            tool_calls: vec![ToolCallRequest {
                id: format!("call_{i}"),
                name: "kb.read".to_owned(),
                arguments: json!({"article": format!("a-{i}"), "n": i, "x": 1.5}),
            }],
        });
        messages.push(Message::Tool {
            tool_call_id: format!("call_{i}"),
            name: "kb.read".to_owned(),
            content: format!("{{\"body\": \"article {i}\"}}"),
            is_error: i % 3 == 0,
        });
    }
    messages
}

fn model_request(step: u64, messages: Vec<Message>, tools: bool) -> ModelRequest {
    ModelRequest {
        model: "gpt-4.1-mini".to_owned(),
        messages,
        tools: if tools {
            vec![ToolSpec {
                name: "kb.read".to_owned(),
                description: "Read an article.".to_owned(),
                input_schema: json!({"type": "object", "properties": {"article": {"type": "string"}}}),
            }]
        } else {
            Vec::new()
        },
        temperature: Some(0.0),
        max_output_tokens: 1024,
        step,
    }
}

/// The incremental form gives `matching_form`'s hash and message JSON, whatever changed
/// between two requests, and stores each message once.
#[test]
fn the_incremental_matching_form_agrees_with_the_matching_form() {
    /// Updates `form` to `request`, checks it against `matching_form`, and stores the new
    /// messages into `stored`.
    fn check(form: &mut MatchingForm, stored: &mut Vec<Value>, request: &ModelRequest) {
        let (_, messages, hash) = request.matching_form();
        assert_eq!(form.update(request), hash);
        let blobs = form
            .message_blobs(|value| -> Result<ContentHash, ()> {
                stored.push(value.clone());
                Ok(hash_json(value).expect("hashable").0)
            })
            .expect("stored");
        let expected: Vec<ContentHash> = messages
            .iter()
            .map(|m| hash_json(m).expect("hashable").0)
            .collect();
        assert_eq!(blobs, expected);
    }
    let mut form = MatchingForm::default();
    let mut stored = Vec::new();
    for turns in 0..6 {
        check(
            &mut form,
            &mut stored,
            &model_request(1, conversation(turns), true),
        );
    }
    // Each message was stored once, as it first appeared.
    assert_eq!(stored.len(), conversation(5).len());
    // Fewer messages, no tools, then a message changed in the middle.
    check(
        &mut form,
        &mut stored,
        &model_request(1, conversation(2), true),
    );
    check(
        &mut form,
        &mut stored,
        &model_request(1, conversation(2), false),
    );
    let mut changed = conversation(4);
    changed[3] = Message::Tool {
        tool_call_id: "call_0".to_owned(),
        name: "kb.read".to_owned(),
        content: "changed".to_owned(),
        is_error: false,
    };
    let before = stored.len();
    check(&mut form, &mut stored, &model_request(1, changed, true));
    // Only the changed message and the four past the end of the last request were new.
    assert_eq!(stored.len(), before + 5);
    let mut other_model = model_request(1, conversation(4), true);
    other_model.model = "other".to_owned();
    check(&mut form, &mut stored, &other_model);
    check(
        &mut MatchingForm::default(),
        &mut Vec::new(),
        &model_request(1, Vec::new(), false),
    );
}

fn response(text: &str) -> ModelResponse {
    ModelResponse {
        message: Message::Assistant {
            content: Some(text.to_owned()),
            tool_calls: Vec::new(),
        },
        finish: FinishReason::Stop,
        raw_finish_reason: Some("stop".to_owned()),
        usage: None,
        streamed: false,
        truncated: false,
    }
}

fn steps(requests: &[&ModelRequest]) -> BTreeMap<u64, RecordedStep> {
    requests
        .iter()
        .map(|r| {
            (
                r.step,
                RecordedStep {
                    step: r.step,
                    request_hash: r.matching_form().2,
                    retries: Vec::new(),
                    response: Some(response(&format!("answer {}", r.step))),
                    error: None,
                },
            )
        })
        .collect()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[test]
fn the_recorded_model_serves_the_recorded_requests_only() {
    let first = model_request(1, conversation(0), true);
    let second = model_request(2, conversation(1), true);
    let mut recorded_steps = steps(&[&first, &second]);
    let retry = ModelError::Status {
        status: 429,
        message: "slow down".to_owned(),
        retry_after: Some(Duration::ZERO),
    };
    if let Some(step) = recorded_steps.get_mut(&2) {
        step.retries.push(retry.clone());
    }
    let mut model = RecordedModel::exact(recorded_steps.clone());
    assert_eq!(model.provider(), "replay");
    assert_eq!(model.complete(&first, deadline()), Ok(response("answer 1")));
    // The recorded retry first, then the answer.
    assert_eq!(model.complete(&second, deadline()), Err(retry));
    assert_eq!(
        model.complete(&second, deadline()),
        Ok(response("answer 2"))
    );
    // Another conversation at a recorded step, and a step past the recording.
    let mut model = RecordedModel::exact(recorded_steps);
    let other = model_request(1, conversation(1), true);
    match model.complete(&other, deadline()) {
        Err(ModelError::Unrecorded(detail)) => {
            assert!(
                detail.contains("the request differs from the recorded one"),
                "{detail}"
            );
        }
        other => panic!("expected a miss, got {other:?}"),
    }
    match model.complete(&model_request(3, conversation(2), true), deadline()) {
        Err(ModelError::Unrecorded(detail)) => {
            assert!(detail.contains("has no step 3"), "{detail}");
        }
        other => panic!("expected a miss, got {other:?}"),
    }
}

fn approval(tool: &str, args: &Value, approved: bool) -> RecordedApproval {
    RecordedApproval {
        tool: tool.to_owned(),
        args_hash: Some(hash(args)),
        approved,
        rule: "approvals_file:1".to_owned(),
        by: Some("alice".to_owned()),
        step: 2,
    }
}

#[test]
fn a_recorded_approval_answers_the_same_call_only() {
    let refund = json!({"order": "A-1234"});
    let mut approver = RecordedApprover::new(vec![approval("orders.refund", &refund, true)]);
    assert_eq!(
        approver.ask("orders.refund", &refund, None),
        ApprovalAnswer {
            approved: true,
            rule: "replay: recorded approvals_file:1".to_owned(),
            by: Some("alice".to_owned()),
        }
    );
    for (tool, args) in [
        ("orders.refund", json!({"order": "B-5678"})),
        ("orders.cancel", refund.clone()),
    ] {
        let answer = approver.ask(tool, &args, None);
        assert!(!answer.approved, "{tool} {args}");
        assert_eq!(answer.rule, "replay: no recorded approval for this call");
    }
}

struct Everyone;

impl Approver for Everyone {
    fn ask(&mut self, _tool: &str, _args: &Value, _key: Option<&str>) -> ApprovalAnswer {
        ApprovalAnswer {
            approved: true,
            rule: "everyone".to_owned(),
            by: None,
        }
    }
}

#[test]
fn calls_without_a_recorded_answer_go_to_the_fallback() {
    let refund = json!({"order": "A-1234"});
    let mut approver = RecordedApprover::new(vec![approval("orders.refund", &refund, false)])
        .otherwise(Box::new(Everyone));
    // The recorded rejection stands; another call is the fallback's.
    assert!(!approver.ask("orders.refund", &refund, None).approved);
    let answer = approver.ask("orders.refund", &json!({"order": "B"}), None);
    assert_eq!((answer.approved, answer.rule.as_str()), (true, "everyone"));
}
